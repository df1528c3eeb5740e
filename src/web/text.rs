//! Words and numbers as the dashboard shows them: state words and their
//! colour classes, ages, durations, percent-encoding. Pure functions, no I/O.

use crate::plugin_output::State;
use chrono::{DateTime, Utc};

/// A state's word, as shown beside its colour (colour is never the only signal).
pub fn state_word(state: Option<State>) -> &'static str {
    match state {
        None => "PENDING",
        Some(State::Ok) => "OK",
        Some(State::Warning) => "WARNING",
        Some(State::Critical) => "CRITICAL",
        Some(State::Unknown) => "UNKNOWN",
    }
}

/// A state's CSS class (`st-ok`, `st-critical`, ...).
pub fn state_class(state: Option<State>) -> &'static str {
    match state {
        None => "st-pending",
        Some(State::Ok) => "st-ok",
        Some(State::Warning) => "st-warning",
        Some(State::Critical) => "st-critical",
        Some(State::Unknown) => "st-unknown",
    }
}

/// A state named as stored (`OK`, `critical`, ...).
pub fn parse_state(s: &str) -> Option<State> {
    match s.to_ascii_uppercase().as_str() {
        "OK" => Some(State::Ok),
        "WARNING" => Some(State::Warning),
        "CRITICAL" => Some(State::Critical),
        "UNKNOWN" => Some(State::Unknown),
        _ => None,
    }
}

/// How bad a state is: 0 is the worst (CRITICAL, then UNKNOWN, WARNING, OK).
pub fn severity(state: State) -> u8 {
    match state {
        State::Critical => 0,
        State::Unknown => 1,
        State::Warning => 2,
        State::Ok => 3,
    }
}

/// A span of seconds in the two largest units: `45 s`, `3 min 5 s`,
/// `2 h 5 min`, `4 d 3 h`.
pub fn span(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec} s"),
        (0, 0, _) if sec == 0 => format!("{m} min"),
        (0, 0, _) => format!("{m} min {sec} s"),
        (0, _, 0) => format!("{h} h"),
        (0, _, _) => format!("{h} h {m} min"),
        (_, 0, _) => format!("{d} d"),
        _ => format!("{d} d {h} h"),
    }
}

/// How long ago `at` was, e.g. `3 min 5 s ago`.
pub fn ago(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ago", span((now - at).num_seconds()))
}

/// A run's duration: `850 ms`, `1.2 s`, `2 min 3 s`.
pub fn millis(ms: f64) -> String {
    if !ms.is_finite() || ms < 0.0 {
        return "?".into();
    }
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        span((ms / 1000.0).round() as i64)
    }
}

/// A time as shown in tables: `2026-12-02 16:15:21 UTC`.
pub fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `s` with everything but `A-Z a-z 0-9 - . _ ~` written as `%XX`: for a
/// path segment (a check, cluster or VM name), a query value or a cookie.
pub fn percent_encode(s: &str) -> String {
    crate::alarm::template::url_encode(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_use_the_two_largest_units() {
        assert_eq!(span(0), "0 s");
        assert_eq!(span(45), "45 s");
        assert_eq!(span(60), "1 min");
        assert_eq!(span(185), "3 min 5 s");
        assert_eq!(span(7500), "2 h 5 min");
        assert_eq!(span(7200), "2 h");
        assert_eq!(span(86_400 * 4 + 3 * 3600 + 59), "4 d 3 h");
        assert_eq!(span(86_400 * 2 + 60), "2 d");
        assert_eq!(span(-5), "0 s");
    }

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(millis(850.2), "850 ms");
        assert_eq!(millis(1234.0), "1.2 s");
        assert_eq!(millis(123_000.0), "2 min 3 s");
        assert_eq!(millis(f64::NAN), "?");
    }

    #[test]
    fn states_have_words_and_an_order() {
        assert_eq!(state_word(Some(State::Critical)), "CRITICAL");
        assert_eq!(state_word(None), "PENDING");
        assert_eq!(parse_state("warning"), Some(State::Warning));
        assert_eq!(parse_state("bogus"), None);
        let mut s = vec![State::Ok, State::Warning, State::Critical, State::Unknown];
        s.sort_by_key(|&x| severity(x));
        assert_eq!(
            s,
            [State::Critical, State::Unknown, State::Warning, State::Ok]
        );
    }

    #[test]
    fn percent_encoding_round_trips_through_the_cookie_reader() {
        let s = "a b;c=d/é";
        let e = percent_encode(s);
        assert_eq!(e, "a%20b%3Bc%3Dd%2F%C3%A9");
        assert_eq!(crate::api::auth::percent_decode(&e), s);
    }
}
