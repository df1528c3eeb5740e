//! The event feed in words: one line per event of the store's feed (state
//! changes, alarm events, notifications with their delivery outcome,
//! actions with their outcome, audit entries), e.g. "ran restart-service
//! (exit 0, 1.2 s), recovered after 40 s". Pure: no I/O.

use super::text;
use crate::store::{EventRow, FeedKind};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// How an event went, for its colour (and its word).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tone {
    /// A recovery, a delivery, an action that worked.
    Good,
    /// A problem, a failed delivery or action.
    Bad,
    /// Anything else.
    Neutral,
}

/// One event as a line of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FeedLine {
    /// The event's id.
    pub(super) id: i64,
    /// When it happened.
    pub(super) at: DateTime<Utc>,
    /// Its kind's word (`state`, `alarm`, `notification`, `action`, `audit`).
    pub(super) kind: &'static str,
    /// The check it is about.
    pub(super) check: Option<String>,
    /// The alarm it belongs to.
    pub(super) alarm_id: Option<u64>,
    /// What happened.
    pub(super) text: String,
    /// How it went.
    pub(super) tone: Tone,
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// The lines for `rows` (oldest first), newest first. An action followed by
/// its check's recovery within `rows` says how long the recovery took.
pub(super) fn lines(rows: &[EventRow]) -> Vec<FeedLine> {
    let mut out: Vec<FeedLine> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| line(row, &rows[i + 1..]))
        .collect();
    out.reverse();
    out
}

/// The first recovery (a state change to OK) of `check` among `later`.
fn recovery<'a>(check: &str, later: &'a [EventRow]) -> Option<&'a EventRow> {
    later.iter().find(|r| {
        r.kind == FeedKind::StateChange
            && r.check.as_deref() == Some(check)
            && s(&r.detail, "state").eq_ignore_ascii_case("OK")
    })
}

/// `text` after the check's name, when the event names one.
fn prefixed(check: &str, text: String) -> String {
    if check.is_empty() {
        text
    } else {
        format!("{check}: {text}")
    }
}

fn line(row: &EventRow, later: &[EventRow]) -> FeedLine {
    let d = &row.detail;
    let check = row.check.as_deref().unwrap_or("");
    let (kind, text, tone) = match row.kind {
        FeedKind::StateChange => {
            let (from, to) = (s(d, "previous_state"), s(d, "state"));
            let tone = match to.to_ascii_uppercase().as_str() {
                "OK" => Tone::Good,
                _ => Tone::Bad,
            };
            let mut t = if from.eq_ignore_ascii_case(to) {
                format!(
                    "{check}: {} {}",
                    to.to_ascii_uppercase(),
                    s(d, "state_type")
                )
            } else {
                format!(
                    "{check}: {} → {} ({})",
                    from.to_ascii_uppercase(),
                    to.to_ascii_uppercase(),
                    s(d, "state_type")
                )
            };
            if d.get("flapping").and_then(Value::as_bool) == Some(true) {
                t.push_str(", flapping");
            }
            let output = first_line(s(d, "output"));
            if !output.is_empty() {
                t.push_str(": ");
                t.push_str(output);
            }
            ("state", t, tone)
        }
        FeedKind::Alarm => {
            let event = s(d, "event");
            let tone = match event {
                "resolved" | "acknowledged" => Tone::Good,
                "opened" | "escalated" => Tone::Bad,
                _ => Tone::Neutral,
            };
            let mut t = prefixed(check, format!("alarm {event}"));
            let by = s(d, "acknowledged_by");
            if event == "acknowledged" && !by.is_empty() {
                t.push_str(&format!(" by {by}"));
            }
            ("alarm", t, tone)
        }
        FeedKind::Notification => {
            let (change, channel, contact) = (s(d, "change"), s(d, "channel"), s(d, "contact"));
            let (t, tone) = match change {
                "sent" => (format!("{channel} to {contact}: delivered"), Tone::Good),
                "failed" => (
                    format!(
                        "{channel} to {contact}: failed for good: {}",
                        s(d, "last_error")
                    ),
                    Tone::Bad,
                ),
                "retry" => (
                    format!(
                        "{channel} to {contact}: not delivered ({}), will retry",
                        s(d, "last_error")
                    ),
                    Tone::Bad,
                ),
                _ => (format!("{channel} to {contact}: queued"), Tone::Neutral),
            };
            ("notification", prefixed(check, t), tone)
        }
        FeedKind::Action => {
            let action = s(d, "action");
            let ms = d.get("duration_ms").and_then(Value::as_f64).unwrap_or(0.0);
            let exit = d.get("exit_status").and_then(Value::as_i64);
            let timed_out = d.get("timed_out").and_then(Value::as_bool) == Some(true);
            let error = s(d, "error");
            let (outcome, tone) = if timed_out {
                (format!("timed out after {}", text::millis(ms)), Tone::Bad)
            } else if !error.is_empty() {
                (format!("failed: {error}"), Tone::Bad)
            } else {
                match exit {
                    Some(0) => (format!("exit 0, {}", text::millis(ms)), Tone::Good),
                    Some(n) => (format!("exit {n}, {}", text::millis(ms)), Tone::Bad),
                    None => (format!("no exit status, {}", text::millis(ms)), Tone::Bad),
                }
            };
            let mut t = prefixed(check, format!("ran {action} ({outcome})"));
            if let Some(r) = recovery(check, later) {
                let started = d
                    .get("started_at")
                    .and_then(Value::as_str)
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map_or(row.at, |t| t.with_timezone(&Utc));
                t.push_str(&format!(
                    ", recovered after {}",
                    text::span((r.at - started).num_seconds())
                ));
            }
            ("action", t, tone)
        }
        FeedKind::Audit => {
            let result = s(d, "result");
            let tone = if result.starts_with('2') || result == "ok" {
                Tone::Neutral
            } else {
                Tone::Bad
            };
            (
                "audit",
                format!(
                    "{} {} {} → {result}",
                    s(d, "who"),
                    s(d, "action"),
                    s(d, "target")
                ),
                tone,
            )
        }
    };
    FeedLine {
        id: row.id,
        at: row.at,
        kind,
        check: row.check.clone(),
        alarm_id: row.alarm_id,
        text,
        tone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap_or_default()
    }

    fn row(id: i64, secs: i64, kind: FeedKind, detail: Value) -> EventRow {
        EventRow {
            id,
            at: at(secs),
            kind,
            check: Some("web1-apache".into()),
            host: Some("web1".into()),
            alarm_id: Some(9),
            detail,
        }
    }

    #[test]
    fn an_action_followed_by_recovery_says_how_long_it_took() {
        let rows = vec![
            row(
                1,
                0,
                FeedKind::StateChange,
                json!({"previous_state": "OK", "state": "CRITICAL", "state_type": "HARD", "output": "connection refused\nmore"}),
            ),
            row(
                2,
                1,
                FeedKind::Action,
                json!({"action": "restart-service", "exit_status": 0, "duration_ms": 1200.0, "timed_out": false, "started_at": at(1).to_rfc3339()}),
            ),
            row(
                3,
                2,
                FeedKind::Notification,
                json!({"change": "sent", "channel": "mail", "contact": "alice"}),
            ),
            row(
                4,
                41,
                FeedKind::StateChange,
                json!({"previous_state": "CRITICAL", "state": "OK", "state_type": "HARD", "output": "HTTP OK"}),
            ),
        ];
        let l = lines(&rows);
        assert_eq!(l.iter().map(|l| l.id).collect::<Vec<_>>(), [4, 3, 2, 1]);
        assert_eq!(
            l[2].text,
            "web1-apache: ran restart-service (exit 0, 1.2 s), recovered after 40 s"
        );
        assert_eq!(l[2].tone, Tone::Good);
        assert_eq!(
            l[3].text,
            "web1-apache: OK → CRITICAL (HARD): connection refused"
        );
        assert_eq!(l[3].tone, Tone::Bad);
        assert_eq!(l[1].text, "web1-apache: mail to alice: delivered");
        assert_eq!(l[0].tone, Tone::Good);
    }

    #[test]
    fn failures_say_why() {
        let rows = vec![
            row(
                1,
                0,
                FeedKind::Action,
                json!({"action": "restart-service", "exit_status": 1, "duration_ms": 80.0, "timed_out": false}),
            ),
            row(
                2,
                1,
                FeedKind::Notification,
                json!({"change": "retry", "channel": "sms", "contact": "bob", "last_error": "HTTP 503"}),
            ),
            row(
                3,
                2,
                FeedKind::Action,
                json!({"action": "script", "timed_out": true, "duration_ms": 30000.0}),
            ),
        ];
        let l = lines(&rows);
        assert_eq!(
            l[2].text,
            "web1-apache: ran restart-service (exit 1, 80 ms)"
        );
        assert_eq!(
            l[1].text,
            "web1-apache: sms to bob: not delivered (HTTP 503), will retry"
        );
        assert_eq!(
            l[0].text,
            "web1-apache: ran script (timed out after 30.0 s)"
        );
        assert!(l.iter().all(|l| l.tone == Tone::Bad));
    }
}
