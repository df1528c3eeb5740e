//! Which rules and maintenance windows apply to a check result.
//!
//! Pure matching over names, globs, tags and states; never decides what
//! to do about a match (that is `lifecycle`).

use crate::config::alarms::{Maintenance, Matcher, Rule};
use crate::plugin_output::State;
use chrono::{DateTime, Utc};

/// What a rule is matched against: one check at one state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subject<'a> {
    /// The check's name.
    pub check: &'a str,
    /// The check's host entry (`local` for the admin server).
    pub host: &'a str,
    /// Tags of the check and of its host.
    pub tags: &'a [String],
    /// The check's current state.
    pub state: State,
}

/// Whether `m` covers `s`, ignoring states when `with_states` is false.
pub(crate) fn matches(m: &Matcher, s: &Subject, with_states: bool) -> bool {
    let checks = m.checks.is_empty() || m.checks.iter().any(|p| p.matches(s.check));
    let hosts = m.hosts.is_empty() || m.hosts.iter().any(|p| p.matches(s.host));
    let tags = m.tags.is_empty() || m.tags.iter().any(|t| s.tags.contains(t));
    let states = !with_states
        || if m.states.is_empty() {
            s.state != State::Ok
        } else {
            m.states.contains(&s.state)
        };
    checks && hosts && tags && states
}

/// The rules that apply to `s` in its current state, in config order.
pub(crate) fn matching_rules<'r>(rules: &'r [Rule], s: &Subject) -> Vec<&'r Rule> {
    rules
        .iter()
        .filter(|r| matches(&r.matcher, s, true))
        .collect()
}

/// The name of the first maintenance window covering `s` at `now`, if any.
pub(crate) fn maintenance_at<'m>(
    maintenance: &'m [Maintenance],
    s: &Subject,
    now: DateTime<Utc>,
) -> Option<&'m str> {
    maintenance
        .iter()
        .find(|m| matches(&m.matcher, s, false) && m.windows.iter().any(|w| w.contains(now)))
        .map(|m| m.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(checks: &[&str], hosts: &[&str], tags: &[&str], states: &[State]) -> Matcher {
        Matcher {
            checks: checks
                .iter()
                .map(|c| glob::Pattern::new(c).expect("glob"))
                .collect(),
            hosts: hosts
                .iter()
                .map(|c| glob::Pattern::new(c).expect("glob"))
                .collect(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            states: states.to_vec(),
        }
    }

    #[test]
    fn matching_table() {
        let tags = vec!["web".to_string(), "prod".to_string()];
        let s = Subject {
            check: "apache-cs1",
            host: "cs1",
            tags: &tags,
            state: State::Critical,
        };
        let cases = [
            (matcher(&[], &[], &[], &[]), true),
            (matcher(&["apache-*"], &[], &[], &[]), true),
            (matcher(&["apache"], &[], &[], &[]), false),
            (matcher(&["nginx-*", "apache-cs?"], &[], &[], &[]), true),
            (matcher(&[], &["cs*"], &[], &[]), true),
            (matcher(&[], &["cs2"], &[], &[]), false),
            (matcher(&[], &[], &["db", "prod"], &[]), true),
            (matcher(&[], &[], &["db"], &[]), false),
            (matcher(&["apache-*"], &["cs2"], &[], &[]), false),
            (matcher(&[], &[], &[], &[State::Warning]), false),
            (
                matcher(&[], &[], &[], &[State::Warning, State::Critical]),
                true,
            ),
        ];
        for (i, (m, want)) in cases.iter().enumerate() {
            assert_eq!(matches(m, &s, true), *want, "case {i}: {m:?}");
        }
        let ok = Subject {
            state: State::Ok,
            ..s
        };
        assert!(!matches(&matcher(&[], &[], &[], &[]), &ok, true));
        assert!(matches(&matcher(&[], &[], &[], &[]), &ok, false));
    }
}
