//! Time windows: a classic 5-field crontab expression saying when a window
//! opens, how long it stays open, and the timezone it is read in.
//!
//! Admins write crontab (`0 8 * * 1-5` = weekdays at 08:00, `1` = Monday,
//! `0` and `7` = Sunday). The `cron` crate wants a seconds field and counts
//! weekdays from 1 = Sunday, so [`translate`] rewrites each field into
//! explicit values (weekdays as names), and, as Vixie cron does, a restricted
//! day-of-month *and* a restricted day-of-week mean either day (two
//! schedules). Start times are computed on the local wall clock and only then
//! mapped to instants, so daylight-saving changes never skip or double a
//! window: a start inside the spring-forward gap opens when the clock jumps
//! (as cronie runs such jobs), a start in the repeated fall-back hour opens
//! at its first occurrence, and a window ends at the local wall time
//! `start + duration` (so `0 22 * * *` for `10h` always ends at 08:00).
//!
//! Pure: no clock is read here; every query takes the instant it is about.

use crate::suggest::did_you_mean;
use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Why a window could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// The crontab expression is malformed; the message names the field and value.
    #[error("cron expression {expr:?}: {message}")]
    Cron {
        /// The expression as written.
        expr: String,
        /// What is wrong with it.
        message: String,
    },
    /// The timezone is not an IANA name.
    #[error("unknown timezone {0:?}: use an IANA name such as Europe/Berlin or UTC")]
    Timezone(String),
    /// The duration is zero.
    #[error("window duration must be longer than 0s")]
    Duration,
}

/// A recurring window: opens at each crontab match and stays open for `duration`.
#[derive(Clone)]
pub struct Window {
    expr: String,
    schedules: Vec<cron::Schedule>,
    duration: Duration,
    timezone: Tz,
}

impl fmt::Debug for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Window({:?} for {} in {})",
            self.expr,
            crate::config::duration::format(self.duration),
            self.timezone
        )
    }
}

impl PartialEq for Window {
    fn eq(&self, other: &Self) -> bool {
        self.expr == other.expr
            && self.duration == other.duration
            && self.timezone == other.timezone
    }
}

/// Parses a timezone name (`Europe/Berlin`, `UTC`).
pub(crate) fn parse_timezone(name: &str) -> Result<Tz, WindowError> {
    Tz::from_str(name).map_err(|_| WindowError::Timezone(name.to_string()))
}

/// How far a local wall time can be from the UTC-free naive reading (DST shifts are at most 2h).
const DST_MARGIN: chrono::Duration = chrono::Duration::hours(3);

/// Upper bound on schedule iterations per query, so a pathological window cannot spin.
const MAX_STEPS: usize = 200_000;

impl Window {
    /// Builds a window from a 5-field crontab expression (or `@hourly`,
    /// `@daily`, `@weekly`, `@monthly`, `@yearly`), a duration and a timezone.
    pub fn new(expr: &str, duration: Duration, timezone: Tz) -> Result<Window, WindowError> {
        if duration.is_zero() {
            return Err(WindowError::Duration);
        }
        let schedules = translate(expr)?
            .iter()
            .map(|s| {
                cron::Schedule::from_str(s).map_err(|e| WindowError::Cron {
                    expr: expr.to_string(),
                    message: format!("rejected after translation to {s:?}: {e}"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Window {
            expr: expr.trim().to_string(),
            schedules,
            duration,
            timezone,
        })
    }

    /// The crontab expression as written.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// How long the window stays open after each start (on the local wall clock).
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// The timezone the expression is read in.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// Whether `t` lies inside an occurrence of the window.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.occurrence_at(t).is_some()
    }

    /// The occurrence `[start, end)` containing `t`, if any.
    pub fn occurrence_at(&self, t: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let local = t.with_timezone(&self.timezone).naive_local();
        let span = chrono::Duration::from_std(self.duration).ok()?;
        let from = local - span - DST_MARGIN;
        let until = local + DST_MARGIN;
        for schedule in &self.schedules {
            for fire in schedule.after(&naive_as_utc(from)).take(MAX_STEPS) {
                let start_naive = fire.naive_utc();
                if start_naive > until {
                    break;
                }
                let (start, end) = self.span_of(start_naive, span);
                if start <= t && t < end {
                    return Some((start, end));
                }
            }
        }
        None
    }

    /// The first occurrence starting at or after `t`.
    pub fn next_start(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.timezone).naive_local();
        let span = chrono::Duration::from_std(self.duration).ok()?;
        let from = local - DST_MARGIN - chrono::Duration::seconds(1);
        self.schedules
            .iter()
            .filter_map(|s| {
                s.after(&naive_as_utc(from))
                    .take(MAX_STEPS)
                    .map(|f| self.span_of(f.naive_utc(), span).0)
                    .find(|start| *start >= t)
            })
            .min()
    }

    fn span_of(
        &self,
        start_naive: NaiveDateTime,
        span: chrono::Duration,
    ) -> (DateTime<Utc>, DateTime<Utc>) {
        let start = resolve(self.timezone, start_naive);
        let mut end = resolve(self.timezone, start_naive + span);
        if end <= start {
            // The whole window fell into a spring-forward gap: keep its length.
            end = start + span;
        }
        (start, end)
    }
}

fn naive_as_utc(n: NaiveDateTime) -> DateTime<Utc> {
    Utc.from_utc_datetime(&n)
}

/// The instant of a local wall time: the first one when it occurs twice,
/// the moment the clock jumps when it does not occur at all.
fn resolve(tz: Tz, naive: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
        LocalResult::None => {
            let mut probe = naive;
            for _ in 0..(4 * 60) {
                probe += chrono::Duration::minutes(1);
                let probe_floor = probe
                    .with_second(0)
                    .and_then(|p| p.with_nanosecond(0))
                    .unwrap_or(probe);
                if let Some(t) = tz.from_local_datetime(&probe_floor).earliest() {
                    return t.with_timezone(&Utc);
                }
            }
            naive_as_utc(naive)
        }
    }
}

use chrono::Timelike;

/// The `@` shorthands [`translate`] accepts.
const SHORTHANDS: &[&str] = &[
    "@hourly",
    "@daily",
    "@midnight",
    "@weekly",
    "@monthly",
    "@yearly",
    "@annually",
];
const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
/// Weekday names as the cron crate writes them, indexed by crontab number (0 = Sunday).
const CRON_WEEKDAYS: &[&str] = &["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// Translates a classic 5-field crontab expression into the `cron` crate's
/// 6-field format (seconds first, weekdays as names). Returns two schedules
/// when both day-of-month and day-of-week are restricted (Vixie cron fires
/// on either), one otherwise.
pub(crate) fn translate(expr: &str) -> Result<Vec<String>, WindowError> {
    let err = |message: String| WindowError::Cron {
        expr: expr.to_string(),
        message,
    };
    let trimmed = expr.trim();
    let expanded = match trimmed {
        "@hourly" => "0 * * * *",
        "@daily" | "@midnight" => "0 0 * * *",
        "@weekly" => "0 0 * * 0",
        "@monthly" => "0 0 1 * *",
        "@yearly" | "@annually" => "0 0 1 1 *",
        s if s.starts_with('@') => {
            let hint = did_you_mean(s, SHORTHANDS);
            return Err(err(format!(
                "unknown shorthand {s:?}{hint}: use @hourly, @daily, @weekly, @monthly or @yearly"
            )));
        }
        s => s,
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(err(format!(
            "has {} fields; write the 5 crontab fields: minute hour day-of-month month day-of-week (e.g. \"0 8 * * 1-5\")",
            fields.len()
        )));
    }
    let minute = parse_field(fields[0], "minute", 0, 59, &[]).map_err(err)?;
    let hour = parse_field(fields[1], "hour", 0, 23, &[]).map_err(err)?;
    let dom = parse_field(fields[2], "day-of-month", 1, 31, &[]).map_err(err)?;
    let month = parse_field(fields[3], "month", 1, 12, MONTHS).map_err(err)?;
    let dow_raw = parse_field(fields[4], "day-of-week", 0, 7, WEEKDAYS).map_err(err)?;
    let dow: BTreeSet<u32> = dow_raw.iter().map(|d| d % 7).collect();

    let list = |set: &BTreeSet<u32>, min: u32, max: u32| -> String {
        if set.len() as u32 == max - min + 1 {
            "*".to_string()
        } else {
            join(set.iter().map(|v| v.to_string()))
        }
    };
    let minute = list(&minute, 0, 59);
    let hour = list(&hour, 0, 23);
    let month = list(&month, 1, 12);
    let dom_text = list(&dom, 1, 31);
    let dow_text = if dow.len() == 7 {
        "*".to_string()
    } else {
        join(dow.iter().map(|d| CRON_WEEKDAYS[*d as usize].to_string()))
    };
    let dom_restricted = !fields[2].starts_with('*');
    let dow_restricted = !fields[4].starts_with('*');
    if dom_restricted && dow_restricted {
        Ok(vec![
            format!("0 {minute} {hour} {dom_text} {month} *"),
            format!("0 {minute} {hour} * {month} {dow_text}"),
        ])
    } else {
        Ok(vec![format!(
            "0 {minute} {hour} {dom_text} {month} {dow_text}"
        )])
    }
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(",")
}

/// Parses one crontab field into the set of values it names.
fn parse_field(
    text: &str,
    field: &str,
    min: u32,
    max: u32,
    names: &[&str],
) -> Result<BTreeSet<u32>, String> {
    let value = |s: &str| -> Result<u32, String> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| *n == lower) {
            // Month names count from 1, weekday names from 0 (Sunday).
            let base = if names.len() == 12 { 1 } else { 0 };
            return Ok(i as u32 + base);
        }
        let v: u32 = s.parse().map_err(|_| {
            let hint = if names.is_empty() {
                String::new()
            } else {
                format!(" or a name such as {}{}", names[0], did_you_mean(s, names))
            };
            format!("{field} field {text:?}: {s:?} is not a number{hint}")
        })?;
        if v < min || v > max {
            return Err(format!(
                "{field} field {text:?}: {v} is out of range {min}-{max}"
            ));
        }
        Ok(v)
    };
    let mut out = BTreeSet::new();
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!("{field} field {text:?} has an empty list entry"));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    format!("{field} field {text:?}: step {s:?} must be a whole number above 0")
                })?;
                (r, step)
            }
            None => (item, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(format!(
                    "{field} field {text:?}: range {range:?} runs backwards"
                ));
            }
            (a, b)
        } else {
            let a = value(range)?;
            if step > 1 {
                (a, max)
            } else {
                (a, a)
            }
        };
        out.extend((lo..=hi).step_by(step as usize));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> Tz {
        parse_timezone("Europe/Berlin").expect("tz")
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("rfc3339")
            .with_timezone(&Utc)
    }

    fn w(expr: &str, mins: u64) -> Window {
        Window::new(expr, Duration::from_secs(mins * 60), berlin()).expect("window")
    }

    #[test]
    fn translation_table() {
        let cases = [
            ("0 8 * * 1-5", vec!["0 0 8 * * Mon,Tue,Wed,Thu,Fri"]),
            ("0 8 * * mon-fri", vec!["0 0 8 * * Mon,Tue,Wed,Thu,Fri"]),
            ("0 9 * * 0", vec!["0 0 9 * * Sun"]),
            ("0 9 * * 7", vec!["0 0 9 * * Sun"]),
            ("0 9 * * 5-7", vec!["0 0 9 * * Sun,Fri,Sat"]),
            ("*/15 * * * *", vec!["0 0,15,30,45 * * * *"]),
            ("0 0 1 * 1", vec!["0 0 0 1 * *", "0 0 0 * * Mon"]),
            ("30 2 * jan-mar *", vec!["0 30 2 * 1,2,3 *"]),
            ("@daily", vec!["0 0 0 * * *"]),
            ("0 22 * * */2", vec!["0 0 22 * * Sun,Tue,Thu,Sat"]),
        ];
        for (expr, want) in cases {
            assert_eq!(translate(expr).expect(expr), want, "{expr}");
        }
    }

    #[test]
    fn bad_expressions_name_the_field() {
        let cases = [
            ("0 8 * *", "has 4 fields"),
            ("61 8 * * *", "minute field \"61\": 61 is out of range 0-59"),
            ("0 24 * * *", "hour field"),
            (
                "0 8 * * 8",
                "day-of-week field \"8\": 8 is out of range 0-7",
            ),
            ("0 8 * * funday", "\"funday\" is not a number or a name"),
            ("0 8 * foo *", "month field"),
            ("0 8 5-1 * *", "runs backwards"),
            ("*/0 8 * * *", "step"),
            ("@sometimes", "unknown shorthand"),
            ("0 0 8 * * *", "has 6 fields"),
        ];
        for (expr, want) in cases {
            let e = translate(expr).expect_err(expr).to_string();
            assert!(e.contains(want), "{expr}: {e}");
        }
    }

    #[test]
    fn weekday_one_is_monday() {
        // 2026-11-30 is a Monday, 2026-11-29 a Sunday; 09:00 CET = 08:00 UTC.
        let cases = [
            ("0 9 * * 1", "2026-11-30T08:30:00Z", true),
            ("0 9 * * 1", "2026-11-29T08:30:00Z", false),
            ("0 9 * * 0", "2026-11-29T08:30:00Z", true),
            ("0 9 * * 7", "2026-11-29T08:30:00Z", true),
            ("0 9 * * 7", "2026-11-30T08:30:00Z", false),
            ("0 9 * * 1-5", "2026-12-04T08:30:00Z", true), // Friday
            ("0 9 * * 1-5", "2026-12-05T08:30:00Z", false), // Saturday
            ("0 9 * * sat,sun", "2026-12-05T08:30:00Z", true),
            ("0 9 * * 1", "2026-11-30T07:59:00Z", false), // before opening
            ("0 9 * * 1", "2026-11-30T09:00:00Z", false), // end is exclusive
        ];
        for (expr, at, want) in cases {
            assert_eq!(w(expr, 60).contains(utc(at)), want, "{expr} at {at}");
        }
    }

    #[test]
    fn vixie_day_or_weekday() {
        // "on the 1st or on Mondays": 2026-12-01 is a Tuesday, 2026-12-07 a Monday.
        let win = w("0 12 1 * 1", 60);
        assert!(win.contains(utc("2026-12-01T11:30:00Z")));
        assert!(win.contains(utc("2026-12-07T11:30:00Z")));
        assert!(!win.contains(utc("2026-12-08T11:30:00Z")));
    }

    #[test]
    fn window_across_midnight() {
        let night = w("0 22 * * *", 10 * 60);
        assert!(night.contains(utc("2026-12-02T05:00:00Z"))); // 06:00 local
        assert!(!night.contains(utc("2026-12-02T07:00:00Z"))); // 08:00 local
        assert!(night.contains(utc("2026-12-01T21:00:00Z"))); // 22:00 local
    }

    #[test]
    fn spring_forward_start_in_gap_is_not_skipped() {
        // 2026-03-29 Berlin: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
        let win = w("30 2 * * *", 30);
        let (start, end) = win
            .occurrence_at(utc("2026-03-29T01:10:00Z"))
            .expect("window opens when the clock jumps");
        assert_eq!(start, utc("2026-03-29T01:00:00Z"));
        assert_eq!(end, utc("2026-03-29T01:30:00Z"));
        // The day before and after it opens at 02:30 local as usual.
        assert!(win.contains(utc("2026-03-28T01:40:00Z"))); // 02:40 CET
        assert!(win.contains(utc("2026-03-30T00:40:00Z"))); // 02:40 CEST
    }

    #[test]
    fn fall_back_start_in_repeated_hour_opens_once() {
        // 2026-10-25 Berlin: 03:00 CEST goes back to 02:00 CET; 02:30 happens
        // at 00:30 UTC and again at 01:30 UTC.
        let win = w("30 2 * * *", 10);
        assert!(win.contains(utc("2026-10-25T00:35:00Z")));
        assert!(!win.contains(utc("2026-10-25T01:35:00Z")));
        assert_eq!(
            win.next_start(utc("2026-10-25T00:31:00Z")),
            Some(utc("2026-10-26T01:30:00Z"))
        );
    }

    #[test]
    fn overnight_window_ends_at_local_wall_time_across_dst() {
        let night = w("0 22 * * *", 10 * 60);
        // Fall back night: 22:00 CEST (20:00 UTC) to 08:00 CET (07:00 UTC), 11h.
        assert!(night.contains(utc("2026-10-25T06:30:00Z"))); // 07:30 CET
        assert!(!night.contains(utc("2026-10-25T07:00:00Z"))); // 08:00 CET
                                                               // Spring forward night: 22:00 CET (21:00 UTC) to 08:00 CEST (06:00 UTC), 9h.
        assert!(night.contains(utc("2026-03-29T05:30:00Z"))); // 07:30 CEST
        assert!(!night.contains(utc("2026-03-29T06:00:00Z"))); // 08:00 CEST
    }

    #[test]
    fn day_and_night_windows_tile_the_day_across_dst() {
        let day = w("0 8 * * *", 14 * 60);
        let night = w("0 22 * * *", 10 * 60);
        for start in ["2026-03-28T00:00:00Z", "2026-10-24T00:00:00Z"] {
            let mut t = utc(start);
            for _ in 0..(3 * 24 * 4) {
                assert!(
                    day.contains(t) ^ night.contains(t),
                    "exactly one window at {t}"
                );
                t += chrono::Duration::minutes(15);
            }
        }
    }

    #[test]
    fn timezone_and_duration_errors() {
        assert!(parse_timezone("Mars/Olympus").is_err());
        assert_eq!(
            Window::new("0 8 * * *", Duration::ZERO, berlin()).err(),
            Some(WindowError::Duration)
        );
    }
}
