//! Alert-storm grouping: when forty checks fail at once, each contact gets
//! one message per channel and short window, not forty.
//!
//! The first notification for a recipient opens a group that is held for
//! the group window; every notification for the same recipient that comes
//! while the group waits joins it; the group then goes out as one message.
//! Pure: the outbox asks these functions, nothing here sends or stores.

use chrono::{DateTime, Utc};
use std::time::Duration;

/// When a new notification for a recipient goes out: with the group already
/// waiting for that recipient (if it still waits), else after the window.
pub(crate) fn hold_until(
    waiting_group: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    window: Duration,
) -> DateTime<Utc> {
    match waiting_group {
        Some(t) if t > now => t,
        _ => now + chrono::Duration::from_std(window).unwrap_or_default(),
    }
}

/// One message made of several: subject and body.
pub(crate) fn compose(items: &[(&str, &str)], max_body: Option<usize>) -> (String, String) {
    match items {
        [] => (String::new(), String::new()),
        [(s, b)] => (s.to_string(), cut(b, max_body)),
        many => {
            let subject = format!("[laxmon] {} notifications: {}", many.len(), many[0].0);
            let body = match max_body {
                // Short channels (SMS): one line per item.
                Some(_) => many.iter().map(|(_, b)| *b).collect::<Vec<_>>().join(" | "),
                None => many
                    .iter()
                    .map(|(s, b)| format!("{s}\n\n{b}"))
                    .collect::<Vec<_>>()
                    .join("\n----------------------------------------\n"),
            };
            let body = match max_body {
                Some(_) => format!("{} alarms: {body}", many.len()),
                None => body,
            };
            (subject, cut(&body, max_body))
        }
    }
}

/// Cuts `s` to at most `max` characters, marking the cut with `...`.
pub(crate) fn cut(s: &str, max: Option<usize>) -> String {
    match max {
        Some(m) if s.chars().count() > m => {
            let mut out: String = s.chars().take(m.saturating_sub(3)).collect();
            out.push_str("...");
            out
        }
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    #[test]
    fn joins_a_waiting_group_or_opens_one() {
        let w = Duration::from_secs(30);
        let now = t("2026-12-01T10:00:10Z");
        let cases = [
            (None, t("2026-12-01T10:00:40Z")),
            (Some(t("2026-12-01T10:00:30Z")), t("2026-12-01T10:00:30Z")),
            (Some(t("2026-12-01T10:00:05Z")), t("2026-12-01T10:00:40Z")),
        ];
        for (waiting, want) in cases {
            assert_eq!(hold_until(waiting, now, w), want, "{waiting:?}");
        }
    }

    #[test]
    fn composes_one_or_many() {
        assert_eq!(compose(&[("s", "b")], None), ("s".into(), "b".into()));
        let (s, b) = compose(&[("a down", "A"), ("b down", "B")], None);
        assert_eq!(s, "[laxmon] 2 notifications: a down");
        assert!(b.contains("a down\n\nA") && b.contains("b down\n\nB"));
        let (_, sms) = compose(&[("", "web CRIT"), ("", "db CRIT")], Some(160));
        assert_eq!(sms, "2 alarms: web CRIT | db CRIT");
        assert_eq!(cut("abcdef", Some(5)), "ab...");
    }
}
