//! Durations as the config writes them: `500ms`, `10s`, `1m`, `2h`, `1d`, `1m30s`.
//!
//! Pure parsing and formatting; a bare number is an error that says which
//! unit is missing.

use std::time::Duration;

/// Parses `500ms`, `10s`, `1m`, `2h`, `1d` or combinations such as `1m30s`.
/// Fractions are allowed (`1.5s`). The error says what is wrong.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration: write e.g. 10s, 500ms, 1m or 2h".into());
    }
    if s.parse::<f64>().is_ok() {
        return Err(format!(
            "duration {s:?} has no unit: write e.g. {s}s or {s}ms (units: ms, s, m, h, d)"
        ));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!(
                "invalid duration {s:?}: expected a number before {rest:?} (e.g. 10s, 500ms, 1m30s)"
            ));
        }
        let number: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid number in duration {s:?}"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let factor = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "" => {
                return Err(format!(
                    "duration {s:?} has no unit after {number}: units are ms, s, m, h, d"
                ))
            }
            other => {
                return Err(format!(
                    "unknown unit {other:?} in duration {s:?}{}: units are ms, s, m, h, d",
                    crate::suggest::did_you_mean(other, &["s", "m", "min", "h", "d", "ms"])
                ))
            }
        };
        total += number * factor;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > 10.0 * 365.0 * 86400.0 {
        return Err(format!("duration {s:?} is too long"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Formats a duration the way the config writes it (`1m30s`, `500ms`).
pub(crate) fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let mut secs = ms / 1000;
    let mut out = String::new();
    for (unit, size) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{}", secs / size, unit));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        let cases = [
            ("500ms", 500),
            ("10s", 10_000),
            ("1m", 60_000),
            ("2h", 7_200_000),
            ("1d", 86_400_000),
            ("1m30s", 90_000),
            ("1.5s", 1_500),
            (" 3s ", 3_000),
        ];
        for (text, ms) in cases {
            assert_eq!(parse(text), Ok(Duration::from_millis(ms)), "{text}");
        }
    }

    #[test]
    fn rejects_missing_and_unknown_units() {
        assert!(parse("10").unwrap_err().contains("has no unit"));
        assert!(parse("10 s").unwrap_err().contains("unknown unit"));
        assert!(parse("10x").unwrap_err().contains("unknown unit \"x\""));
        assert!(parse("s").unwrap_err().contains("expected a number"));
        assert!(parse("").is_err());
        assert!(parse("1m30").unwrap_err().contains("no unit after 30"));
    }

    #[test]
    fn formats_back() {
        for text in ["500ms", "10s", "1m30s", "2h", "1d"] {
            assert_eq!(format(parse(text).expect("valid")), text);
        }
    }
}
