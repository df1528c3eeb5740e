//! "Did you mean": the known word closest to a mistyped one, for error
//! messages about unknown keys, kinds, states, modes and names.
//!
//! Distance is the optimal string alignment distance (`strsim`): insertions,
//! deletions, substitutions and swaps of neighbours each count one, so the
//! commonest typo, two letters swapped (`prot` for `port`), is one edit.
//! Pure: no I/O. It must never pick a candidate that is not a plausible typo
//! (a wrong hint is worse than none).

/// The candidate closest to `word` when `word` is a plausible typo of it:
/// one edit for candidates up to four characters, two for longer ones, and
/// fewer edits than the longer of the two has characters (so `x` is no
/// typo of `s`); compared without regard to ASCII case. On a tie the
/// earlier candidate wins.
pub(crate) fn closest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let word = word.to_ascii_lowercase();
    let word_len = word.chars().count();
    candidates
        .iter()
        .map(|c| (strsim::osa_distance(&word, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| *d <= max_edits(c) && *d < word_len.max(c.chars().count()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// How many edits still make `candidate` a plausible intended word.
fn max_edits(candidate: &str) -> usize {
    if candidate.chars().count() <= 4 {
        1
    } else {
        2
    }
}

/// ` (did you mean "WORD"?)` for the closest candidate, or an empty string,
/// to append to an error message.
pub(crate) fn did_you_mean(word: &str, candidates: &[&str]) -> String {
    closest(word, candidates)
        .map(|c| format!(" (did you mean {c:?}?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECK_KEYS: &[&str] = &[
        "name",
        "kind",
        "host",
        "interval",
        "retry_interval",
        "max_attempts",
        "timeout",
        "tags",
        "port",
        "send",
        "expect",
        "warn",
        "crit",
    ];
    const KINDS: &[&str] = &["ping", "port", "init", "plugin"];
    const STATES: &[&str] = &["WARNING", "CRITICAL", "UNKNOWN"];
    const TLS: &[&str] = &["none", "starttls", "tls"];
    const STORAGE_TLS: &[&str] = &["disable", "prefer", "require"];
    const DRIVERS: &[&str] = &["xl", "virsh", "command", "sim"];
    const UNITS: &[&str] = &["s", "m", "min", "h", "d", "ms"];
    const SHORTHANDS: &[&str] = &["@hourly", "@daily", "@weekly", "@monthly", "@yearly"];
    const WEEKDAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

    #[test]
    fn suggests_the_intended_word() {
        let cases: &[(&str, &[&str], Option<&str>)] = &[
            // Swapped neighbours are one edit: `prot` is `port`, not `crit`.
            ("prot", CHECK_KEYS, Some("port")),
            ("hsot", CHECK_KEYS, Some("host")),
            ("kidn", CHECK_KEYS, Some("kind")),
            ("intreval", CHECK_KEYS, Some("interval")),
            ("max_attemps", CHECK_KEYS, Some("max_attempts")),
            ("retry_intervall", CHECK_KEYS, Some("retry_interval")),
            ("timout", CHECK_KEYS, Some("timeout")),
            ("epxect", CHECK_KEYS, Some("expect")),
            ("plugn", KINDS, Some("plugin")),
            ("pnig", KINDS, Some("ping")),
            ("iint", KINDS, Some("init")),
            ("critcal", STATES, Some("CRITICAL")),
            ("CRTIICAL", STATES, Some("CRITICAL")),
            ("warnign", STATES, Some("WARNING")),
            ("starttsl", TLS, Some("starttls")),
            ("tsl", TLS, Some("tls")),
            ("requrie", STORAGE_TLS, Some("require")),
            ("disabel", STORAGE_TLS, Some("disable")),
            ("virhs", DRIVERS, Some("virsh")),
            ("Port", KINDS, Some("port")),
            ("hr", UNITS, Some("h")),
            ("mn", UNITS, Some("m")),
            ("@daly", SHORTHANDS, Some("@daily")),
            ("mno", WEEKDAYS, Some("mon")),
            (
                "Europe/Berln",
                &["Europe/Berlin", "Europe/Bern", "Europe/Dublin"],
                Some("Europe/Berlin"),
            ),
        ];
        for (word, candidates, want) in cases {
            assert_eq!(closest(word, candidates), *want, "{word}");
        }
    }

    #[test]
    fn no_hint_for_what_is_not_a_typo() {
        let cases: &[(&str, &[&str])] = &[
            // Two substitutions in a short word: a different word, not a typo.
            ("crt", &["port"]),
            ("prot", &["crit"]),
            ("tcp", TLS),
            ("ssl", TLS),
            ("icmp", KINDS),
            ("http", KINDS),
            ("xen", DRIVERS),
            ("OK", STATES),
            ("address", CHECK_KEYS),
            ("", KINDS),
            ("x", UNITS),
            ("sec", UNITS),
            ("xyz", WEEKDAYS),
        ];
        for (word, candidates) in cases {
            assert_eq!(closest(word, candidates), None, "{word}");
        }
    }

    #[test]
    fn ties_go_to_the_earlier_candidate() {
        assert_eq!(closest("pot", &["port", "pit"]), Some("port"));
        assert_eq!(closest("pot", &["pit", "port"]), Some("pit"));
    }

    #[test]
    fn hint_text() {
        assert_eq!(did_you_mean("prot", KINDS), " (did you mean \"port\"?)");
        assert_eq!(did_you_mean("zzz", KINDS), "");
    }
}
