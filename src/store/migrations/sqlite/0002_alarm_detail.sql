-- laxmon schema v2 (SQLite): what the alarm lifecycle persists.
-- Never edit an applied migration, add a new one.

-- The lifecycle's whole alarm (history, rule progress, who was notified) as
-- JSON text; the columns of 0001 stay the queryable summary. NULL for alarms
-- written through the older open_alarm path.
ALTER TABLE alarms ADD COLUMN detail TEXT;

-- What an action run was: its request key (ALARM:RULE:INDEX), the argv
-- that ran (JSON array), whether it timed out and why it could not start.
ALTER TABLE action_runs ADD COLUMN action_key TEXT;
ALTER TABLE action_runs ADD COLUMN argv TEXT NOT NULL DEFAULT '[]';
ALTER TABLE action_runs ADD COLUMN timed_out INTEGER NOT NULL DEFAULT false;
ALTER TABLE action_runs ADD COLUMN error TEXT;

-- Small named documents of the daemon (the alarm lifecycle's snapshot).
CREATE TABLE daemon_state (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
