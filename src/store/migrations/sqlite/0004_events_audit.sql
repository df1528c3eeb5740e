-- laxmon schema v4 (SQLite): the event feed, the audit log and the
-- idempotency keys of the HTTP API. Never edit an applied migration, add a
-- new one.

-- One row for everything that happened, written by the triggers below in
-- the same transaction as the record it reports, so no write path can
-- forget one. Clients follow it by id (`events_after`); AUTOINCREMENT never
-- reuses an id, and SQLite's single writer hands them out in commit order.
-- `detail` (JSON) carries what a client needs to show the event.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    kind        TEXT NOT NULL
                CHECK (kind IN ('state_change', 'alarm', 'notification', 'action', 'audit')),
    check_name  TEXT,
    host        TEXT,
    alarm_id    INTEGER,
    detail      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_time ON events (at);

-- What people did through the HTTP API: who, from where, what, the outcome.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    who         TEXT NOT NULL,
    source      TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    alarm_id    INTEGER,
    check_name  TEXT,
    result      TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_alarm ON audit (alarm_id, id) WHERE alarm_id IS NOT NULL;
CREATE INDEX audit_check ON audit (check_name, id) WHERE check_name IS NOT NULL;
CREATE INDEX audit_time ON audit (at);

-- The answer to a POST made with an Idempotency-Key, per token (scope):
-- a retry gets the stored answer instead of doing it twice. Kept 24 hours.
CREATE TABLE idempotency (
    scope         TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status        INTEGER NOT NULL CHECK (status BETWEEN 100 AND 599),
    body          TEXT NOT NULL,
    at            TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_time ON idempotency (at);

-- A timeline reads an alarm's notifications; retention's cascade finds them too.
CREATE INDEX notifications_alarm ON notifications (alarm_id);

CREATE TRIGGER events_state_change AFTER INSERT ON state_changes
BEGIN
    INSERT INTO events (at, kind, check_name, host, alarm_id, detail)
    VALUES (NEW.at, 'state_change', NEW.check_name, NEW.host, NULL,
        json_object(
            'state_change_id', NEW.id,
            'result_id', NEW.result_id,
            'previous_state', NEW.previous_state,
            'previous_state_type', NEW.previous_state_type,
            'state', NEW.state,
            'state_type', NEW.state_type,
            'attempt', NEW.attempt,
            'change', NEW.change,
            'flapping', json(CASE WHEN NEW.flapping THEN 'true' ELSE 'false' END),
            'unreachable', json(CASE WHEN NEW.unreachable THEN 'true' ELSE 'false' END),
            'output', NEW.output));
END;

CREATE TRIGGER events_alarm AFTER INSERT ON alarm_events
BEGIN
    INSERT INTO events (at, kind, check_name, host, alarm_id, detail)
    SELECT NEW.at, 'alarm', a.check_name, a.host, NEW.alarm_id,
        json_object(
            'alarm_event_id', NEW.id,
            'event', NEW.kind,
            'entry', json(NEW.detail),
            'state', a.state,
            'summary', a.summary,
            'opened_at', a.opened_at,
            'resolved_at', a.resolved_at,
            'acknowledged_by', a.acknowledged_by,
            'escalation_level', a.escalation_level,
            'suppressed', json(CASE WHEN a.suppressed THEN 'true' ELSE 'false' END))
    FROM (SELECT NULL) LEFT JOIN alarms a ON a.id = NEW.alarm_id;
END;

-- Queued (insert), then each delivery outcome: sent, failed for good, or
-- failed with a retry to come (attempts grew, status still pending).
CREATE TRIGGER events_notification_queued AFTER INSERT ON notifications
BEGIN
    INSERT INTO events (at, kind, check_name, host, alarm_id, detail)
    VALUES (NEW.created_at, 'notification',
        (SELECT check_name FROM alarms WHERE id = NEW.alarm_id),
        (SELECT host FROM alarms WHERE id = NEW.alarm_id),
        NEW.alarm_id,
        json_object(
            'notification_id', NEW.id,
            'change', 'queued',
            'contact', NEW.contact,
            'channel', NEW.channel,
            'key', NEW.idempotency_key,
            'subject', json_extract(NEW.payload, '$.subject'),
            'status', NEW.status,
            'attempts', NEW.attempts,
            'last_error', NEW.last_error,
            'next_attempt_at', NEW.next_attempt_at,
            'sent_at', NEW.sent_at));
END;

CREATE TRIGGER events_notification_outcome AFTER UPDATE OF status, attempts ON notifications
WHEN OLD.status IS NOT NEW.status OR OLD.attempts IS NOT NEW.attempts
BEGIN
    INSERT INTO events (at, kind, check_name, host, alarm_id, detail)
    VALUES (
        CASE WHEN NEW.status = 'sent' AND NEW.sent_at IS NOT NULL THEN NEW.sent_at
             ELSE strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z' END,
        'notification',
        (SELECT check_name FROM alarms WHERE id = NEW.alarm_id),
        (SELECT host FROM alarms WHERE id = NEW.alarm_id),
        NEW.alarm_id,
        json_object(
            'notification_id', NEW.id,
            'change', CASE NEW.status WHEN 'sent' THEN 'sent' WHEN 'failed' THEN 'failed'
                      ELSE 'retry' END,
            'contact', NEW.contact,
            'channel', NEW.channel,
            'key', NEW.idempotency_key,
            'subject', json_extract(NEW.payload, '$.subject'),
            'status', NEW.status,
            'attempts', NEW.attempts,
            'last_error', NEW.last_error,
            'next_attempt_at', NEW.next_attempt_at,
            'sent_at', NEW.sent_at));
END;

CREATE TRIGGER events_action AFTER INSERT ON action_runs
BEGIN
    INSERT INTO events (at, kind, check_name, host, alarm_id, detail)
    VALUES (NEW.started_at, 'action',
        (SELECT check_name FROM alarms WHERE id = NEW.alarm_id),
        (SELECT host FROM alarms WHERE id = NEW.alarm_id),
        NEW.alarm_id,
        json_object(
            'action_run_id', NEW.id,
            'action', NEW.action,
            'action_key', NEW.action_key,
            'argv', json(NEW.argv),
            'started_at', NEW.started_at,
            'duration_ms', NEW.duration_ms,
            'exit_status', NEW.exit_status,
            'timed_out', json(CASE WHEN NEW.timed_out THEN 'true' ELSE 'false' END),
            'error', NEW.error,
            'output', substr(NEW.output, 1, 4000),
            'output_truncated', json(CASE WHEN length(NEW.output) > 4000 THEN 'true' ELSE 'false' END)));
END;

CREATE TRIGGER events_audit AFTER INSERT ON audit
BEGIN
    INSERT INTO events (at, kind, check_name, host, alarm_id, detail)
    VALUES (NEW.at, 'audit',
        COALESCE(NEW.check_name, (SELECT check_name FROM alarms WHERE id = NEW.alarm_id)),
        COALESCE((SELECT host FROM alarms WHERE id = NEW.alarm_id),
                 (SELECT host FROM checks WHERE name = NEW.check_name)),
        NEW.alarm_id,
        json_object(
            'audit_id', NEW.id,
            'who', NEW.who,
            'source', NEW.source,
            'action', NEW.action,
            'target', NEW.target,
            'result', NEW.result,
            'detail', json(NEW.detail)));
END;
