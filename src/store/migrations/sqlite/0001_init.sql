-- laxmon schema v1 (SQLite). Applied once by the migration runner under
-- BEGIN IMMEDIATE; never edit an applied migration, add a new one.

CREATE TABLE hosts (
    name        TEXT PRIMARY KEY,
    address     TEXT NOT NULL,
    ssh         TEXT,
    tags        TEXT NOT NULL DEFAULT '[]',
    host_check  TEXT,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    removed_at  TEXT
);

CREATE TABLE checks (
    name            TEXT PRIMARY KEY,
    host            TEXT NOT NULL,
    kind            TEXT NOT NULL,
    interval_s      REAL NOT NULL,
    retry_interval_s REAL NOT NULL,
    max_attempts    integer NOT NULL,
    timeout_s       REAL NOT NULL,
    tags            TEXT NOT NULL DEFAULT '[]',
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    removed_at      TEXT
);

-- Every check result. result_id makes replays idempotent; id gives insertion
-- order. Retention deletes by started_at in bulk.
CREATE TABLE results (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    result_id   TEXT NOT NULL UNIQUE,
    check_name  TEXT NOT NULL,
    host        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    planned_at  TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    duration_ms REAL NOT NULL,
    state       TEXT NOT NULL,
    state_type  TEXT NOT NULL,
    attempt     integer NOT NULL,
    output      TEXT NOT NULL,
    long_output TEXT NOT NULL,
    perfdata    TEXT NOT NULL
);
CREATE INDEX results_check_time ON results (check_name, started_at DESC);
CREATE INDEX results_time ON results (started_at);

CREATE TABLE state_changes (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    result_id           TEXT NOT NULL UNIQUE,
    check_name          TEXT NOT NULL,
    host                TEXT NOT NULL,
    at                  TEXT NOT NULL,
    previous_state      TEXT NOT NULL,
    previous_state_type TEXT NOT NULL,
    state               TEXT NOT NULL,
    state_type          TEXT NOT NULL,
    attempt             integer NOT NULL,
    change              TEXT NOT NULL,
    flapping            INTEGER NOT NULL,
    unreachable         INTEGER NOT NULL,
    output              TEXT NOT NULL
);
CREATE INDEX state_changes_check_time ON state_changes (check_name, at DESC);
CREATE INDEX state_changes_time ON state_changes (at);

CREATE TABLE check_states (
    check_name  TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE alarms (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    check_name        TEXT NOT NULL,
    host              TEXT NOT NULL,
    opened_at         TEXT NOT NULL,
    resolved_at       TEXT,
    state             TEXT NOT NULL,
    severity          TEXT NOT NULL,
    summary           TEXT NOT NULL DEFAULT '',
    acknowledged_at   TEXT,
    acknowledged_by   TEXT,
    ack_comment       TEXT,
    escalation_level  integer NOT NULL DEFAULT 0,
    last_notified_at  TEXT,
    suppressed        INTEGER NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX alarms_one_open_per_check ON alarms (check_name) WHERE resolved_at IS NULL;
CREATE INDEX alarms_opened ON alarms (opened_at);

CREATE TABLE alarm_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id  INTEGER NOT NULL REFERENCES alarms (id) ON DELETE CASCADE,
    at        TEXT NOT NULL,
    kind      TEXT NOT NULL,
    detail    TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX alarm_events_alarm ON alarm_events (alarm_id, at);

CREATE TABLE notifications (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id         INTEGER REFERENCES alarms (id) ON DELETE CASCADE,
    contact          TEXT NOT NULL,
    channel          TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL UNIQUE,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    sent_at          TEXT
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notifications_created ON notifications (created_at);

CREATE TABLE action_runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id     INTEGER REFERENCES alarms (id) ON DELETE SET NULL,
    action       TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    duration_ms  REAL NOT NULL,
    exit_status  integer,
    output       TEXT NOT NULL
);
CREATE INDEX action_runs_alarm ON action_runs (alarm_id);
CREATE INDEX action_runs_time ON action_runs (started_at);

CREATE TABLE cluster_plans (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed', 'aborted')),
    plan         TEXT NOT NULL,
    finished_at  TEXT
);
CREATE INDEX cluster_plans_unfinished ON cluster_plans (id) WHERE status IN ('pending', 'running');

CREATE TABLE plan_steps (
    plan_id      INTEGER NOT NULL REFERENCES cluster_plans (id) ON DELETE CASCADE,
    seq          integer NOT NULL,
    op           TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
    started_at   TEXT,
    finished_at  TEXT,
    error        TEXT,
    PRIMARY KEY (plan_id, seq)
);
