-- laxmon schema v2 (PostgreSQL): what the alarm lifecycle persists.
-- Never edit an applied migration, add a new one.

-- The lifecycle's whole alarm (history, rule progress, who was notified) as
-- JSON; the columns of 0001 stay the queryable summary. NULL for alarms
-- written through the older open_alarm path.
ALTER TABLE alarms ADD COLUMN detail jsonb;

-- What an action run was: its request key (ALARM:RULE:INDEX), the argv
-- that ran, whether it timed out and why it could not start.
ALTER TABLE action_runs
    ADD COLUMN action_key text,
    ADD COLUMN argv       jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN timed_out  boolean NOT NULL DEFAULT false,
    ADD COLUMN error      text;

-- Small named documents of the daemon (the alarm lifecycle's snapshot).
CREATE TABLE daemon_state (
    key         text PRIMARY KEY,
    value       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL
);
