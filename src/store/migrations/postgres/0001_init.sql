-- laxmon schema v1 (PostgreSQL). Applied once by the migration runner under
-- pg_advisory_lock; never edit an applied migration, add a new one.

CREATE TABLE hosts (
    name        text PRIMARY KEY,
    address     text NOT NULL,
    ssh         text,
    tags        jsonb NOT NULL DEFAULT '[]',
    host_check  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    removed_at  timestamptz
);

CREATE TABLE checks (
    name            text PRIMARY KEY,
    host            text NOT NULL,
    kind            text NOT NULL,
    interval_s      double precision NOT NULL,
    retry_interval_s double precision NOT NULL,
    max_attempts    integer NOT NULL,
    timeout_s       double precision NOT NULL,
    tags            jsonb NOT NULL DEFAULT '[]',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    removed_at      timestamptz
);

-- Every check result; partitioned by day on started_at so retention drops
-- whole partitions. result_id makes replays idempotent; id gives insertion order.
CREATE SEQUENCE results_id_seq;
CREATE TABLE results (
    id          bigint NOT NULL DEFAULT nextval('results_id_seq'),
    result_id   uuid NOT NULL,
    check_name  text NOT NULL,
    host        text NOT NULL,
    kind        text NOT NULL,
    planned_at  timestamptz NOT NULL,
    started_at  timestamptz NOT NULL,
    duration_ms double precision NOT NULL,
    state       text NOT NULL,
    state_type  text NOT NULL,
    attempt     integer NOT NULL,
    output      text NOT NULL,
    long_output text NOT NULL,
    perfdata    jsonb NOT NULL,
    PRIMARY KEY (result_id, started_at)
) PARTITION BY RANGE (started_at);
CREATE INDEX results_check_time ON results (check_name, started_at DESC);

CREATE TABLE state_changes (
    id                  bigserial PRIMARY KEY,
    result_id           uuid NOT NULL UNIQUE,
    check_name          text NOT NULL,
    host                text NOT NULL,
    at                  timestamptz NOT NULL,
    previous_state      text NOT NULL,
    previous_state_type text NOT NULL,
    state               text NOT NULL,
    state_type          text NOT NULL,
    attempt             integer NOT NULL,
    change              text NOT NULL,
    flapping            boolean NOT NULL,
    unreachable         boolean NOT NULL,
    output              text NOT NULL
);
CREATE INDEX state_changes_check_time ON state_changes (check_name, at DESC);
CREATE INDEX state_changes_time ON state_changes (at);

CREATE TABLE check_states (
    check_name  text PRIMARY KEY,
    state       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE alarms (
    id                bigserial PRIMARY KEY,
    check_name        text NOT NULL,
    host              text NOT NULL,
    opened_at         timestamptz NOT NULL,
    resolved_at       timestamptz,
    state             text NOT NULL,
    severity          text NOT NULL,
    summary           text NOT NULL DEFAULT '',
    acknowledged_at   timestamptz,
    acknowledged_by   text,
    ack_comment       text,
    escalation_level  integer NOT NULL DEFAULT 0,
    last_notified_at  timestamptz,
    suppressed        boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX alarms_one_open_per_check ON alarms (check_name) WHERE resolved_at IS NULL;
CREATE INDEX alarms_opened ON alarms (opened_at);

CREATE TABLE alarm_events (
    id        bigserial PRIMARY KEY,
    alarm_id  bigint NOT NULL REFERENCES alarms (id) ON DELETE CASCADE,
    at        timestamptz NOT NULL,
    kind      text NOT NULL,
    detail    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX alarm_events_alarm ON alarm_events (alarm_id, at);

CREATE TABLE notifications (
    id               bigserial PRIMARY KEY,
    alarm_id         bigint REFERENCES alarms (id) ON DELETE CASCADE,
    contact          text NOT NULL,
    channel          text NOT NULL,
    idempotency_key  text NOT NULL UNIQUE,
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    last_error       text,
    created_at       timestamptz NOT NULL,
    sent_at          timestamptz
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notifications_created ON notifications (created_at);

CREATE TABLE action_runs (
    id           bigserial PRIMARY KEY,
    alarm_id     bigint REFERENCES alarms (id) ON DELETE SET NULL,
    action       text NOT NULL,
    started_at   timestamptz NOT NULL,
    duration_ms  double precision NOT NULL,
    exit_status  integer,
    output       text NOT NULL
);
CREATE INDEX action_runs_alarm ON action_runs (alarm_id);
CREATE INDEX action_runs_time ON action_runs (started_at);

CREATE TABLE cluster_plans (
    id           bigserial PRIMARY KEY,
    cluster      text NOT NULL,
    created_at   timestamptz NOT NULL,
    status       text NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed', 'aborted')),
    plan         jsonb NOT NULL,
    finished_at  timestamptz
);
CREATE INDEX cluster_plans_unfinished ON cluster_plans (id) WHERE status IN ('pending', 'running');

CREATE TABLE plan_steps (
    plan_id      bigint NOT NULL REFERENCES cluster_plans (id) ON DELETE CASCADE,
    seq          integer NOT NULL,
    op           jsonb NOT NULL,
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
    started_at   timestamptz,
    finished_at  timestamptz,
    error        text,
    PRIMARY KEY (plan_id, seq)
);
