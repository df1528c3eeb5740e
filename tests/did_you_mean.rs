//! "Did you mean": every unknown key and every unknown enumerated value in a
//! configuration gets the intended word when it is a likely typo, swapped
//! letters included (`prot` is `port`, not `crit`), through `laxmon config check`.

mod support;

use support::config::{assert_error, config_check};

const HOST: &str = "hosts:\n  - {name: cs1, address: 127.0.0.1}\n";
const CONTACT: &str = "contacts:\n  - {name: c, email: a@localhost}\n";

/// (configuration, line, column, the hint expected there)
fn cases() -> Vec<(String, u32, u32, &'static str)> {
    vec![
        // Keys.
        (format!("{HOST}checks:\n  - {{name: p, kind: port, host: cs1, prot: 22}}\n"), 4, 38, "\"port\""),
        (format!("{HOST}checks:\n  - {{name: p, kidn: port, host: cs1, port: 22}}\n"), 4, 15, "\"kind\""),
        (format!("{HOST}checks:\n  - {{name: p, kind: ping, hsot: cs1}}\n"), 4, 27, "\"host\""),
        ("checks:\n  - {name: q, kind: plugin, command: x, intreval: 1m}\n".into(), 2, 41, "\"interval\""),
        ("storage: {url: \"sqlite:x.db\", keep_reuslts: 1d}\n".into(), 1, 31, "\"keep_results\""),
        // Check kinds.
        ("checks:\n  - {name: q, kind: plugn, command: x}\n".into(), 2, 21, "\"plugin\""),
        (format!("{HOST}checks:\n  - {{name: p, kind: pnig, host: cs1}}\n"), 4, 21, "\"ping\""),
        // TLS modes.
        ("storage: {url: \"sqlite:x.db\", tls: requrie}\n".into(), 1, 36, "\"require\""),
        (format!("notifiers:\n  - {{name: m, kind: smtp, host: localhost, from: a@localhost, tls: starttsl}}\n{CONTACT}"), 2, 68, "\"starttls\""),
        // Notifier kinds, methods, priorities.
        (format!("notifiers:\n  - {{name: m, kind: smtpp, host: localhost}}\n{CONTACT}"), 2, 21, "\"smtp\""),
        (format!("notifiers:\n  - {{name: s, kind: sms, url: \"http://127.0.0.1/\", method: PSOT}}\n{CONTACT}"), 2, 60, "\"POST\""),
        (format!("notifiers:\n  - {{name: pop, kind: ntfy, server: \"http://127.0.0.1\", topic: t, priority: hihg}}\n{CONTACT}"), 2, 77, "\"high\""),
        // States.
        (format!("{CONTACT}rules:\n  - {{name: r, match: {{states: [critcal]}}, notify: [c]}}\n"), 4, 32, "\"CRITICAL\""),
        (format!("{CONTACT}rules:\n  - {{name: r, match: {{states: [WARNIGN]}}, notify: [c]}}\n"), 4, 32, "\"WARNING\""),
        // Cluster drivers and command placeholders.
        ("clusters:\n  - {name: cl, driver: virhs}\n".into(), 2, 24, "\"virsh\""),
        ("clusters:\n  - {name: cl, driver: command, command: {list: [vx-list, \"{hots}\"]}}\n".into(), 2, 49, "\"host\""),
        // Windows: shorthands, weekday names, timezones; duration units; template keys.
        ("windows:\n  - {name: w, cron: \"@daly\", duration: 1h}\n".into(), 2, 21, "\"@daily\""),
        ("windows:\n  - {name: w, cron: \"0 8 * * mno-fri\", duration: 1h}\n".into(), 2, 21, "\"mon\""),
        ("alarms:\n  timezone: Europe/Berln\n".into(), 2, 13, "\"Europe/Berlin\""),
        ("checks:\n  - {name: q, kind: plugin, command: x, interval: 1hr}\n".into(), 2, 51, "\"h\""),
        (format!("notifiers:\n  - {{name: m, kind: smtp, host: localhost, from: a@localhost, tls: none, subject: \"{{{{chekc}}}}\"}}\n{CONTACT}"), 2, 83, "\"check\""),
    ]
}

#[test]
fn typos_get_the_intended_word() {
    for (yaml, line, col, word) in cases() {
        assert_error(&yaml, line, col, &[&format!("did you mean {word}?")]);
    }
}

#[test]
fn no_hint_for_words_that_are_not_typos() {
    let cases = [
        (
            "checks:\n  - {name: q, kind: http, command: x}\n",
            "unknown kind \"http\"",
        ),
        (
            "storage: {url: \"sqlite:x.db\", tls: verify-full}\n",
            "storage.tls",
        ),
        (
            "clusters:\n  - {name: cl, driver: xen}\n",
            "unknown driver \"xen\"",
        ),
    ];
    for (yaml, error) in cases {
        let (code, err, _) = config_check(yaml);
        assert_eq!(code, 64, "{yaml}: {err}");
        let line = err
            .lines()
            .find(|l| l.contains(error))
            .unwrap_or_else(|| panic!("no {error:?} in {err}"));
        assert!(!line.contains("did you mean"), "{line}");
    }
}
