//! Charts as inline SVG, drawn on the server from the store's downsampled
//! series: a state strip (each bucket in its worst state's colour) and a
//! line chart (mean as a line, min..max as a band). Pure functions from
//! numbers to SVG text; every text they embed is escaped here.

use super::text;
use crate::plugin_output::State;
use crate::store::{HistorySeries, ValueStats};
use chrono::{DateTime, Utc};
use std::fmt::Write;

/// Drawing width in SVG units (the chart scales to its container).
const W: f64 = 800.0;
/// Left margin for the y labels.
const LEFT: f64 = 64.0;
/// Bottom margin for the time labels.
const BOTTOM: f64 = 18.0;

/// `s` escaped for SVG text and attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn x_of(t: DateTime<Utc>, from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    let span = (to - from).num_milliseconds().max(1) as f64;
    let at = (t - from).num_milliseconds() as f64;
    LEFT + (at / span).clamp(0.0, 1.0) * (W - LEFT)
}

fn time_label(t: DateTime<Utc>, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let hours = (to - from).num_hours();
    if hours > 48 {
        t.format("%a %d %H:%M").to_string()
    } else if hours > 12 {
        t.format("%a %H:%M").to_string()
    } else {
        t.format("%H:%M").to_string()
    }
}

fn time_axis(out: &mut String, from: DateTime<Utc>, to: DateTime<Utc>, y: f64) {
    for (i, anchor) in [(0, "start"), (2, "middle"), (4, "end")] {
        let t = from + (to - from) * i / 4;
        let x = x_of(t, from, to);
        let _ = write!(
            out,
            r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}" class="axis">{}</text>"#,
            escape(&time_label(t, from, to))
        );
    }
}

/// The state strip: every bucket in its worst state's colour (no results:
/// left blank), with a tooltip naming state, time and count.
pub fn state_strip(series: &HistorySeries) -> String {
    let h = 28.0;
    let mut out = format!(
        r#"<svg class="chart strip" viewBox="0 0 {W} {}" role="img" aria-label="State over time: {}"><title>State over time</title>"#,
        h + BOTTOM,
        escape(&strip_summary(series))
    );
    let _ = write!(
        out,
        r#"<rect x="{LEFT}" y="0" width="{:.1}" height="{h}" class="nodata"/>"#,
        W - LEFT
    );
    for b in &series.buckets {
        if b.count == 0 {
            continue;
        }
        let x0 = x_of(b.start, series.from, series.to);
        let x1 = x_of(b.end, series.from, series.to).max(x0 + 0.5);
        let state = Some(b.worst_state);
        let _ = write!(
            out,
            r#"<rect x="{x0:.1}" y="0" width="{:.1}" height="{h}" class="{}"><title>{} {} – {} ({} results)</title></rect>"#,
            x1 - x0,
            text::state_class(state),
            text::state_word(state),
            escape(&text::when(b.start)),
            escape(&b.end.format("%H:%M:%S").to_string()),
            b.count
        );
    }
    time_axis(&mut out, series.from, series.to, h + BOTTOM - 4.0);
    out.push_str("</svg>");
    out
}

/// Share of buckets with results per state, in words (for screen readers).
pub fn strip_summary(series: &HistorySeries) -> String {
    let with: Vec<State> = series
        .buckets
        .iter()
        .filter(|b| b.count > 0)
        .map(|b| b.worst_state)
        .collect();
    if with.is_empty() {
        return "no results in this range".into();
    }
    let mut parts = Vec::new();
    for s in [State::Critical, State::Unknown, State::Warning, State::Ok] {
        let n = with.iter().filter(|&&x| x == s).count();
        if n > 0 {
            parts.push(format!(
                "{} {}%",
                text::state_word(Some(s)),
                (n * 100 + with.len() / 2) / with.len()
            ));
        }
    }
    parts.join(", ")
}

/// A value as a y label: three significant digits and the unit.
pub fn value_label(v: f64, unit: &str) -> String {
    let a = v.abs();
    let s = if a == 0.0 {
        "0".to_string()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    };
    if unit.is_empty() {
        s
    } else {
        format!("{s} {unit}")
    }
}

/// A line chart of `points` (bucket start, end, stats) from `from` to `to`:
/// the mean as a line, min..max as a band, y from 0 (or the minimum, if
/// negative) to the maximum.
pub fn line_chart(
    title: &str,
    unit: &str,
    points: &[(DateTime<Utc>, DateTime<Utc>, ValueStats)],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> String {
    let h = 140.0;
    let top = 6.0;
    let mut out = format!(
        r#"<svg class="chart line" viewBox="0 0 {W} {}" role="img" aria-label="{}"><title>{}</title>"#,
        h + BOTTOM,
        escape(&format!("{title}: {} points", points.len())),
        escape(title)
    );
    let finite: Vec<_> = points
        .iter()
        .filter(|(_, _, v)| v.min.is_finite() && v.max.is_finite() && v.avg.is_finite())
        .collect();
    let lo = finite.iter().map(|p| p.2.min).fold(0.0_f64, f64::min);
    let hi = finite.iter().map(|p| p.2.max).fold(f64::MIN, f64::max);
    let hi = if hi <= lo { lo + 1.0 } else { hi };
    let y_of = |v: f64| top + (1.0 - (v - lo) / (hi - lo)) * (h - top);
    let _ = write!(
        out,
        r#"<line x1="{LEFT}" y1="{h}" x2="{W}" y2="{h}" class="axisline"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="axis">{}</text><text x="{:.1}" y="{h}" text-anchor="end" class="axis">{}</text>"#,
        LEFT - 4.0,
        top + 8.0,
        escape(&value_label(hi, unit)),
        LEFT - 4.0,
        escape(&value_label(lo, unit))
    );
    if finite.is_empty() {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="axis">no values in this range</text>"#,
            (LEFT + W) / 2.0,
            h / 2.0
        );
    } else {
        let mid =
            |a: DateTime<Utc>, b: DateTime<Utc>| (x_of(a, from, to) + x_of(b, from, to)) / 2.0;
        let mut band = String::new();
        for (a, b, v) in &finite {
            let _ = write!(band, "{:.1},{:.1} ", mid(*a, *b), y_of(v.max));
        }
        for (a, b, v) in finite.iter().rev() {
            let _ = write!(band, "{:.1},{:.1} ", mid(*a, *b), y_of(v.min));
        }
        let _ = write!(
            out,
            r#"<polygon points="{}" class="band"/>"#,
            band.trim_end()
        );
        let mut line = String::new();
        for (a, b, v) in &finite {
            let _ = write!(line, "{:.1},{:.1} ", mid(*a, *b), y_of(v.avg));
        }
        let _ = write!(
            out,
            r#"<polyline points="{}" class="mean"/>"#,
            line.trim_end()
        );
    }
    time_axis(&mut out, from, to, h + BOTTOM - 4.0);
    out.push_str("</svg>");
    out
}

/// The duration chart's points: each bucket with results.
pub fn duration_points(series: &HistorySeries) -> Vec<(DateTime<Utc>, DateTime<Utc>, ValueStats)> {
    series
        .buckets
        .iter()
        .filter(|b| b.count > 0)
        .map(|b| (b.start, b.end, b.duration_ms))
        .collect()
}

/// Every perfdata label (with unit) in the series, in order of first appearance.
pub fn perf_labels(series: &HistorySeries) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = Vec::new();
    for b in &series.buckets {
        for p in &b.perfdata {
            if !labels.iter().any(|(l, u)| *l == p.label && *u == p.uom) {
                labels.push((p.label.clone(), p.uom.clone()));
            }
        }
    }
    labels
}

/// One perfdata label's points.
pub fn perf_points(
    series: &HistorySeries,
    label: &str,
    uom: &str,
) -> Vec<(DateTime<Utc>, DateTime<Utc>, ValueStats)> {
    series
        .buckets
        .iter()
        .filter_map(|b| {
            b.perfdata
                .iter()
                .find(|p| p.label == label && p.uom == uom)
                .map(|p| (b.start, b.end, p.values))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{PerfStats, SeriesBucket};

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap_or_default()
    }

    fn stats(v: f64) -> ValueStats {
        ValueStats {
            min: v - 1.0,
            avg: v,
            max: v + 1.0,
        }
    }

    fn series() -> HistorySeries {
        let bucket = |i: i64, count: u64, state: State| SeriesBucket {
            start: t(i * 60),
            end: t(i * 60 + 60),
            count,
            worst_state: state,
            duration_ms: stats(10.0 * (i + 1) as f64),
            perfdata: vec![PerfStats {
                label: "time".into(),
                uom: "s".into(),
                count,
                values: stats(i as f64 + 2.0),
            }],
        };
        HistorySeries {
            check: "web <1>".into(),
            from: t(0),
            to: t(240),
            bucket_ms: 60_000.0,
            buckets: vec![
                bucket(0, 2, State::Ok),
                bucket(1, 1, State::Critical),
                bucket(2, 0, State::Ok),
                bucket(3, 1, State::Ok),
            ],
            state_changes: Vec::new(),
            state_changes_truncated: false,
        }
    }

    #[test]
    fn the_strip_colours_buckets_with_results_and_escapes_text() {
        let s = series();
        let svg = state_strip(&s);
        assert_eq!(svg.matches("class=\"st-ok\"").count(), 2);
        assert_eq!(svg.matches("class=\"st-critical\"").count(), 1);
        assert!(svg.contains("CRITICAL 2027-01-15"), "{svg}");
        assert_eq!(strip_summary(&s), "CRITICAL 33%, OK 67%");
        assert!(escape("a<b & \"c\"") == "a&lt;b &amp; &quot;c&quot;");
    }

    #[test]
    fn line_charts_scale_to_the_values() {
        let s = series();
        let pts = duration_points(&s);
        assert_eq!(pts.len(), 3);
        let svg = line_chart("run <time>", "ms", &pts, s.from, s.to);
        assert!(svg.contains("aria-label=\"run &lt;time&gt;: 3 points\""));
        // The top label is the largest maximum (41 ms), the bottom one 0.
        assert!(svg.contains(">41.0 ms<"), "{svg}");
        assert!(svg.contains(">0 ms<"));
        let mean = svg
            .split("class=\"mean\"")
            .next()
            .and_then(|s| s.rsplit("points=\"").next())
            .unwrap_or("")
            .trim_end_matches(['"', ' ']);
        assert_eq!(mean.split(' ').count(), 3, "{mean}");
        assert_eq!(perf_labels(&s), [("time".to_string(), "s".to_string())]);
        assert_eq!(perf_points(&s, "time", "s").len(), 4);
        let empty = line_chart("x", "", &[], s.from, s.to);
        assert!(empty.contains("no values in this range"));
    }

    #[test]
    fn value_labels_keep_three_digits() {
        assert_eq!(value_label(1234.4, "ms"), "1234 ms");
        assert_eq!(value_label(12.345, ""), "12.3");
        assert_eq!(value_label(0.01234, "s"), "0.012 s");
        assert_eq!(value_label(0.0, "%"), "0 %");
    }
}
