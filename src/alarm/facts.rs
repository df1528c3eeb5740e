//! The facts of an alarm as named strings: what templates, scripts and
//! webhooks see.
//!
//! One set of names serves the `{{key}}` templates (lower case), the
//! `LAXMON_*` environment of alarm scripts (upper case) and, through
//! [`NAGIOS_MACROS`], the `NAGIOS_*` environment and `$MACRO$` arguments
//! that existing Nagios event handlers expect. Pure data; never reads the
//! environment itself.

use std::collections::BTreeMap;
use std::time::Duration;

/// Every fact name an alarm carries; templates may use exactly these (plus
/// per-channel extras such as `to` and `message`).
pub const FACT_NAMES: &[&str] = &[
    "alarm_id",
    "check",
    "host",
    "address",
    "tags",
    "state",
    "state_id",
    "state_type",
    "previous_state",
    "attempt",
    "max_attempts",
    "output",
    "long_output",
    "perfdata",
    "flapping",
    "notification_type",
    "notification_kind",
    "opened",
    "since",
    "time",
    "timet",
    "rule",
    "level",
    "contact",
    "contact_email",
    "contact_phone",
    "ack_by",
    "ack_comment",
    "note",
    "count",
];

/// Nagios macro names (without `NAGIOS_` and `$`) and the fact each one carries.
pub const NAGIOS_MACROS: &[(&str, &str)] = &[
    ("HOSTNAME", "host"),
    ("HOSTALIAS", "host"),
    ("HOSTADDRESS", "address"),
    ("SERVICEDESC", "check"),
    ("SERVICESTATE", "state"),
    ("SERVICESTATEID", "state_id"),
    ("SERVICESTATETYPE", "state_type"),
    ("LASTSERVICESTATE", "previous_state"),
    ("SERVICEATTEMPT", "attempt"),
    ("MAXSERVICEATTEMPTS", "max_attempts"),
    ("SERVICEOUTPUT", "output"),
    ("LONGSERVICEOUTPUT", "long_output"),
    ("SERVICEPERFDATA", "perfdata"),
    ("SERVICEPROBLEMID", "alarm_id"),
    ("SERVICEISFLAPPING", "flapping"),
    ("NOTIFICATIONTYPE", "notification_type"),
    ("SERVICEACKAUTHOR", "ack_by"),
    ("SERVICEACKCOMMENT", "ack_comment"),
    ("CONTACTNAME", "contact"),
    ("CONTACTEMAIL", "contact_email"),
    ("CONTACTPAGER", "contact_phone"),
    ("LONGDATETIME", "time"),
    ("TIMET", "timet"),
];

/// Named facts of one alarm at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Facts(pub BTreeMap<String, String>);

impl Facts {
    /// Sets a fact.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.0.insert(key.to_string(), value.into());
    }

    /// A fact's value; empty when unset.
    pub fn get(&self, key: &str) -> &str {
        self.0.get(key).map(String::as_str).unwrap_or("")
    }

    /// A copy with `key` set.
    pub fn with(&self, key: &str, value: impl Into<String>) -> Facts {
        let mut f = self.clone();
        f.set(key, value);
        f
    }

    /// The environment for an alarm script: `LAXMON_<FACT>` for every fact
    /// and `NAGIOS_<MACRO>` for every Nagios macro.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .0
            .iter()
            .map(|(k, v)| (format!("LAXMON_{}", k.to_ascii_uppercase()), v.clone()))
            .collect();
        for (macro_name, fact) in NAGIOS_MACROS {
            env.push((format!("NAGIOS_{macro_name}"), self.get(fact).to_string()));
        }
        env
    }

    /// Expands Nagios `$MACRO$` references (e.g. `$SERVICESTATE$`) in an
    /// argument; unknown macros and a lone `$` stay as written, `$$` is `$`.
    pub fn expand_macros(&self, arg: &str) -> String {
        let mut out = String::with_capacity(arg.len());
        let mut rest = arg;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(stripped) = after.strip_prefix('$') {
                out.push('$');
                rest = stripped;
                continue;
            }
            match after.find('$') {
                Some(j) => {
                    let name = &after[..j];
                    match NAGIOS_MACROS.iter().find(|(m, _)| *m == name) {
                        Some((_, fact)) => {
                            out.push_str(self.get(fact));
                            rest = &after[j + 1..];
                        }
                        None => {
                            out.push('$');
                            rest = after;
                        }
                    }
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// A duration for people: its largest unit and the next one, e.g. `4m 12s`,
/// `2h 5m`, `3d 1h`, `45s`, `1h` (smaller units are dropped, not rounded).
pub fn human_duration(d: Duration) -> String {
    const UNITS: [(&str, u64); 4] = [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)];
    let secs = d.as_secs();
    let Some(i) = UNITS.iter().position(|(_, size)| secs >= *size) else {
        return "0s".into();
    };
    let (unit, size) = UNITS[i];
    let mut out = format!("{}{unit}", secs / size);
    if let Some((next, next_size)) = UNITS.get(i + 1) {
        let rest = secs % size / next_size;
        if rest > 0 {
            out.push_str(&format!(" {rest}{next}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        let cases = [
            (0, "0s"),
            (45, "45s"),
            (60, "1m"),
            (61, "1m 1s"),
            (252, "4m 12s"),
            (3600, "1h"),
            (7500, "2h 5m"),
            (7512, "2h 5m"),
            (90061, "1d 1h"),
            (86400 * 3 + 59, "3d"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(Duration::from_secs(secs)), want, "{secs}");
        }
    }

    #[test]
    fn every_macro_names_a_known_fact() {
        for (m, f) in NAGIOS_MACROS {
            assert!(FACT_NAMES.contains(f), "{m} -> {f}");
        }
    }

    #[test]
    fn env_has_both_namings() {
        let mut f = Facts::default();
        f.set("check", "apache");
        f.set("state", "CRITICAL");
        let env = f.env();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("LAXMON_CHECK"), Some("apache"));
        assert_eq!(get("NAGIOS_SERVICEDESC"), Some("apache"));
        assert_eq!(get("NAGIOS_SERVICESTATE"), Some("CRITICAL"));
        assert_eq!(get("NAGIOS_SERVICEATTEMPT"), Some(""));
    }

    #[test]
    fn macro_expansion_table() {
        let mut f = Facts::default();
        f.set("state", "CRITICAL");
        f.set("state_type", "HARD");
        f.set("attempt", "3");
        let cases = [
            ("$SERVICESTATE$", "CRITICAL"),
            (
                "$SERVICESTATE$/$SERVICESTATETYPE$/$SERVICEATTEMPT$",
                "CRITICAL/HARD/3",
            ),
            ("plain", "plain"),
            ("cost $5", "cost $5"),
            ("$$HOME", "$HOME"),
            ("$NOSUCH$", "$NOSUCH$"),
        ];
        for (arg, want) in cases {
            assert_eq!(f.expand_macros(arg), want, "{arg}");
        }
    }
}
