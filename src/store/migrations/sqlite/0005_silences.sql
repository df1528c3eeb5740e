-- laxmon schema v5 (SQLite): silences and operator requests.
-- Never edit an applied migration, add a new one.

-- Silences: maintenance declared at run time (`laxmon silence add`, the
-- HTTP API). The alarm stage holds back the alarms of the checks they
-- match from starts_at until ends_at or removed_at. matchers is JSON text
-- {"hosts": [...], "checks": [...], "tags": [...]} (globs for hosts and checks).
CREATE TABLE silences (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    matchers    TEXT NOT NULL,
    comment     TEXT NOT NULL CHECK (comment <> ''),
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    starts_at   TEXT NOT NULL,
    ends_at     TEXT NOT NULL CHECK (ends_at > starts_at),
    removed_at  TEXT,
    removed_by  TEXT
);
CREATE INDEX silences_current ON silences (ends_at) WHERE removed_at IS NULL;

-- Acknowledgements and their removal asked for outside the daemon
-- (`laxmon ack`, `laxmon unack`): the daemon applies each to its alarm
-- lifecycle, in id order, and notes when and with what outcome. The alarm's
-- ack columns are the lifecycle's alone; until a request is applied,
-- `laxmon alarms` shows the alarm as it will be.
CREATE TABLE alarm_requests (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id      INTEGER NOT NULL REFERENCES alarms (id) ON DELETE CASCADE,
    op            TEXT NOT NULL CHECK (op IN ('ack', 'unack')),
    requested_by  TEXT NOT NULL,
    comment       TEXT NOT NULL DEFAULT '',
    expires_at    TEXT,
    sticky        INTEGER NOT NULL DEFAULT true,
    requested_at  TEXT NOT NULL,
    applied_at    TEXT,
    outcome       TEXT
);
CREATE INDEX alarm_requests_pending ON alarm_requests (id) WHERE applied_at IS NULL;

-- Acknowledgements `laxmon ack` wrote into the columns before this
-- migration reach the daemon as requests (one it applied already is
-- refused as a duplicate, harmlessly).
INSERT INTO alarm_requests (alarm_id, op, requested_by, comment, requested_at)
SELECT id, 'ack', COALESCE(acknowledged_by, ''), COALESCE(ack_comment, ''), acknowledged_at
FROM alarms WHERE resolved_at IS NULL AND acknowledged_at IS NOT NULL ORDER BY id;
