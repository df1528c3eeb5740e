-- laxmon schema v4 (PostgreSQL): the event feed, the audit log and the
-- idempotency keys of the HTTP API. Never edit an applied migration, add a
-- new one.

-- Timestamps inside JSON details, the same text on both backends and in
-- every session time zone: RFC 3339 UTC with microseconds.
CREATE FUNCTION laxmon_ts(t timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- One row for everything that happened, written by the triggers below in
-- the same transaction as the record it reports, so no write path can
-- forget one. Clients follow it by id (`events_after`); `detail` carries
-- what they need to show the event without another query.
CREATE TABLE events (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL,
    kind        text NOT NULL
                CHECK (kind IN ('state_change', 'alarm', 'notification', 'action', 'audit')),
    check_name  text,
    host        text,
    alarm_id    bigint,
    detail      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX events_time ON events (at);

-- What people did through the HTTP API: who, from where, what, the outcome.
CREATE TABLE audit (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL,
    who         text NOT NULL,
    source      text NOT NULL,
    action      text NOT NULL,
    target      text NOT NULL,
    alarm_id    bigint,
    check_name  text,
    result      text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_alarm ON audit (alarm_id, id) WHERE alarm_id IS NOT NULL;
CREATE INDEX audit_check ON audit (check_name, id) WHERE check_name IS NOT NULL;
CREATE INDEX audit_time ON audit (at);

-- The answer to a POST made with an Idempotency-Key, per token (scope):
-- a retry gets the stored answer instead of doing it twice. Kept 24 hours.
CREATE TABLE idempotency (
    scope         text NOT NULL,
    key           text NOT NULL,
    request_hash  text NOT NULL,
    status        integer NOT NULL CHECK (status BETWEEN 100 AND 599),
    body          text NOT NULL,
    at            timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_time ON idempotency (at);

-- A timeline reads an alarm's notifications; retention's cascade finds them too.
CREATE INDEX notifications_alarm ON notifications (alarm_id);

-- Appends one event. The transaction-scoped lock serialises event writers
-- from their first event to their commit, so ids are handed out in commit
-- order: a reader that has seen id N never later finds a new event below N.
CREATE FUNCTION laxmon_event(p_at timestamptz, p_kind text, p_check text, p_host text,
                             p_alarm bigint, p_detail jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(119165887542900); -- "laxevt"
    INSERT INTO events (at, kind, check_name, host, alarm_id, detail)
    VALUES (p_at, p_kind, p_check, p_host, p_alarm, p_detail);
END
$$;

CREATE FUNCTION laxmon_event_state_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM laxmon_event(NEW.at, 'state_change', NEW.check_name, NEW.host, NULL,
        jsonb_build_object(
            'state_change_id', NEW.id,
            'result_id', NEW.result_id,
            'previous_state', NEW.previous_state,
            'previous_state_type', NEW.previous_state_type,
            'state', NEW.state,
            'state_type', NEW.state_type,
            'attempt', NEW.attempt,
            'change', NEW.change,
            'flapping', NEW.flapping,
            'unreachable', NEW.unreachable,
            'output', NEW.output));
    RETURN NULL;
END
$$;
CREATE TRIGGER events_state_change AFTER INSERT ON state_changes
    FOR EACH ROW EXECUTE FUNCTION laxmon_event_state_change();

CREATE FUNCTION laxmon_event_alarm() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_check text; v_host text; v_state text; v_summary text;
    v_opened timestamptz; v_resolved timestamptz; v_ack_by text;
    v_level integer; v_suppressed boolean;
BEGIN
    SELECT check_name, host, state, summary, opened_at, resolved_at, acknowledged_by,
           escalation_level, suppressed
      INTO v_check, v_host, v_state, v_summary, v_opened, v_resolved, v_ack_by,
           v_level, v_suppressed
      FROM alarms WHERE id = NEW.alarm_id;
    PERFORM laxmon_event(NEW.at, 'alarm', v_check, v_host, NEW.alarm_id,
        jsonb_build_object(
            'alarm_event_id', NEW.id,
            'event', NEW.kind,
            'entry', NEW.detail,
            'state', v_state,
            'summary', v_summary,
            'opened_at', laxmon_ts(v_opened),
            'resolved_at', laxmon_ts(v_resolved),
            'acknowledged_by', v_ack_by,
            'escalation_level', v_level,
            'suppressed', v_suppressed));
    RETURN NULL;
END
$$;
CREATE TRIGGER events_alarm AFTER INSERT ON alarm_events
    FOR EACH ROW EXECUTE FUNCTION laxmon_event_alarm();

-- Queued (insert), then each delivery outcome: sent, failed for good, or
-- failed with a retry to come (attempts grew, status still pending).
CREATE FUNCTION laxmon_event_notification() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_check text; v_host text; v_change text; v_at timestamptz;
BEGIN
    IF TG_OP = 'INSERT' THEN
        v_change := 'queued'; v_at := NEW.created_at;
    ELSIF NEW.status = 'sent' THEN
        v_change := 'sent'; v_at := COALESCE(NEW.sent_at, now());
    ELSIF NEW.status = 'failed' THEN
        v_change := 'failed'; v_at := now();
    ELSE
        v_change := 'retry'; v_at := now();
    END IF;
    SELECT check_name, host INTO v_check, v_host FROM alarms WHERE id = NEW.alarm_id;
    PERFORM laxmon_event(v_at, 'notification', v_check, v_host, NEW.alarm_id,
        jsonb_build_object(
            'notification_id', NEW.id,
            'change', v_change,
            'contact', NEW.contact,
            'channel', NEW.channel,
            'key', NEW.idempotency_key,
            'subject', NEW.payload ->> 'subject',
            'status', NEW.status,
            'attempts', NEW.attempts,
            'last_error', NEW.last_error,
            'next_attempt_at', laxmon_ts(NEW.next_attempt_at),
            'sent_at', laxmon_ts(NEW.sent_at)));
    RETURN NULL;
END
$$;
CREATE TRIGGER events_notification_queued AFTER INSERT ON notifications
    FOR EACH ROW EXECUTE FUNCTION laxmon_event_notification();
CREATE TRIGGER events_notification_outcome AFTER UPDATE OF status, attempts ON notifications
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.attempts IS DISTINCT FROM NEW.attempts)
    EXECUTE FUNCTION laxmon_event_notification();

CREATE FUNCTION laxmon_event_action() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_check text; v_host text;
BEGIN
    SELECT check_name, host INTO v_check, v_host FROM alarms WHERE id = NEW.alarm_id;
    PERFORM laxmon_event(NEW.started_at, 'action', v_check, v_host, NEW.alarm_id,
        jsonb_build_object(
            'action_run_id', NEW.id,
            'action', NEW.action,
            'action_key', NEW.action_key,
            'argv', NEW.argv,
            'started_at', laxmon_ts(NEW.started_at),
            'duration_ms', NEW.duration_ms,
            'exit_status', NEW.exit_status,
            'timed_out', NEW.timed_out,
            'error', NEW.error,
            'output', left(NEW.output, 4000),
            'output_truncated', length(NEW.output) > 4000));
    RETURN NULL;
END
$$;
CREATE TRIGGER events_action AFTER INSERT ON action_runs
    FOR EACH ROW EXECUTE FUNCTION laxmon_event_action();

CREATE FUNCTION laxmon_event_audit() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_check text; v_host text;
BEGIN
    SELECT check_name, host INTO v_check, v_host FROM alarms WHERE id = NEW.alarm_id;
    IF v_host IS NULL THEN
        SELECT host INTO v_host FROM checks WHERE name = NEW.check_name;
    END IF;
    PERFORM laxmon_event(NEW.at, 'audit', COALESCE(NEW.check_name, v_check), v_host, NEW.alarm_id,
        jsonb_build_object(
            'audit_id', NEW.id,
            'who', NEW.who,
            'source', NEW.source,
            'action', NEW.action,
            'target', NEW.target,
            'result', NEW.result,
            'detail', NEW.detail));
    RETURN NULL;
END
$$;
CREATE TRIGGER events_audit AFTER INSERT ON audit
    FOR EACH ROW EXECUTE FUNCTION laxmon_event_audit();
