//! The Nagios plugin API: its result types ([`State`], [`PerfDatum`],
//! [`CheckOutput`]), the output parser and threshold ranges (pure). Every
//! check kind produces these types; this module imports nothing of laxmon.
//!
//! [`parse`] turns what a plugin printed into a [`CheckOutput`]: the first
//! line is the output, text after the first `|` on it is perfdata, later
//! lines are long output until a `|` appears on one of them; everything after
//! that `|` (the rest of the line and all following lines) is perfdata too.
//! [`Range`] is the Nagios threshold range (`10`, `10:`, `~:10`, `@10:20`).
//!
//! This module must never do I/O and never panic on any input: plugins are
//! third-party programs and may print anything.
//!
//! Choices where the plugin guidelines are silent or plugins disagree:
//! - Line ends: `\r\n` and `\n` are both line ends; a lone trailing `\r` is dropped.
//! - Output and long output have trailing whitespace removed; long output
//!   keeps its inner blank lines.
//! - A perfdata item whose label or value cannot be read is skipped; the
//!   others are kept. Unreadable `min`/`max` become `None`. `warn`/`crit` are
//!   kept verbatim (trimmed), unvalidated, `None` when empty: they are the
//!   plugin's own words and [`Range::parse`] is there for whoever needs them.
//! - A decimal comma (`0,5`, written by some localised plugins) is read as a
//!   decimal point in value/min/max, as PNP4Nagios does; `1,234.5` is refused.
//! - The value `U` ("could not be determined", in the guidelines) is kept as
//!   `f64::NAN`, which JSON shows as `null`.

use serde::Serialize;
use std::fmt;

/// A check's state, as Nagios defines it; the numeric value is the exit code.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    /// Everything fine (exit 0).
    Ok = 0,
    /// A threshold was crossed (exit 1).
    Warning = 1,
    /// A problem (exit 2).
    Critical = 2,
    /// The check itself could not decide (exit 3).
    Unknown = 3,
}

impl State {
    /// The Nagios exit code of this state.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The state for a Nagios exit code, `None` for anything outside 0..=3.
    pub fn from_code(code: i32) -> Option<State> {
        match code {
            0 => Some(State::Ok),
            1 => Some(State::Warning),
            2 => Some(State::Critical),
            3 => Some(State::Unknown),
            _ => None,
        }
    }

    /// The upper-case name used in output, JSON and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
            State::Unknown => "UNKNOWN",
        }
    }

    /// Parses the upper-case name (`OK`, `WARNING`, ...).
    pub fn parse(s: &str) -> Option<State> {
        match s {
            "OK" => Some(State::Ok),
            "WARNING" => Some(State::Warning),
            "CRITICAL" => Some(State::Critical),
            "UNKNOWN" => Some(State::Unknown),
            _ => None,
        }
    }

    /// Severity for "worst state" ordering: OK < WARNING < UNKNOWN < CRITICAL.
    pub fn severity(self) -> u8 {
        match self {
            State::Ok => 0,
            State::Warning => 1,
            State::Unknown => 2,
            State::Critical => 3,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One performance data item, as the Nagios plugin API defines it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PerfDatum {
    /// The label, unquoted.
    pub label: String,
    /// The measured value.
    pub value: f64,
    /// Unit of measurement as written (`s`, `ms`, `%`, `B`, `KB`, `MB`, `c`, ...), empty when none.
    pub uom: String,
    /// The warning range string exactly as the plugin wrote it.
    pub warn: Option<String>,
    /// The critical range string exactly as the plugin wrote it.
    pub crit: Option<String>,
    /// Minimum possible value.
    pub min: Option<f64>,
    /// Maximum possible value.
    pub max: Option<f64>,
}

/// What one run of a check says: state, text and perfdata.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct CheckOutput {
    /// The state the check reported.
    pub state: State,
    /// First line of output, without perfdata.
    pub output: String,
    /// Remaining lines, without perfdata.
    pub long_output: String,
    /// Every perfdata item in order.
    pub perfdata: Vec<PerfDatum>,
}

impl CheckOutput {
    /// An output with a state and a one-line message and nothing else.
    pub fn new(state: State, output: impl Into<String>) -> CheckOutput {
        CheckOutput {
            state,
            output: output.into(),
            long_output: String::new(),
            perfdata: Vec::new(),
        }
    }

    /// An UNKNOWN output: the check could not run or could not decide.
    pub fn unknown(output: impl Into<String>) -> CheckOutput {
        CheckOutput::new(State::Unknown, output)
    }
}

impl fmt::Display for PerfDatum {
    /// Formats the item as a plugin writes it: `'label'=value[UOM];[warn];[crit];[min];[max]`,
    /// with trailing empty fields left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = if self.label.contains([' ', '\'', '=']) {
            format!("'{}'", self.label.replace('\'', "''"))
        } else {
            self.label.clone()
        };
        let num = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        let mut fields = vec![
            self.warn.clone().unwrap_or_default(),
            self.crit.clone().unwrap_or_default(),
            num(self.min),
            num(self.max),
        ];
        while fields.last().is_some_and(|s| s.is_empty()) {
            fields.pop();
        }
        write!(f, "{label}={}{}", self.value, self.uom)?;
        for field in fields {
            write!(f, ";{field}")?;
        }
        Ok(())
    }
}

/// Formats perfdata items as a plugin writes them, separated by spaces.
pub fn format_perfdata(items: &[PerfDatum]) -> String {
    items
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses plugin output printed as bytes, replacing invalid UTF-8 lossily.
pub fn parse_bytes(state: State, raw: &[u8]) -> CheckOutput {
    parse(state, &String::from_utf8_lossy(raw))
}

/// Parses plugin output into output, long output and perfdata, keeping `state`.
pub fn parse(state: State, raw: &str) -> CheckOutput {
    let mut lines = raw.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().unwrap_or("");

    let mut perf_text = String::new();
    let output = match first.split_once('|') {
        Some((text, perf)) => {
            perf_text.push_str(perf);
            text
        }
        None => first,
    };

    let mut long_lines: Vec<&str> = Vec::new();
    let mut in_perf = false;
    for line in lines {
        if in_perf {
            perf_text.push('\n');
            perf_text.push_str(line);
        } else if let Some((text, perf)) = line.split_once('|') {
            long_lines.push(text);
            perf_text.push('\n');
            perf_text.push_str(perf);
            in_perf = true;
        } else {
            long_lines.push(line);
        }
    }

    let long_output = long_lines.join("\n");
    CheckOutput {
        state,
        output: output.trim_end().to_string(),
        long_output: long_output.trim_end().to_string(),
        perfdata: parse_perfdata(&perf_text),
    }
}

/// Why one perfdata item could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PerfdataError {
    /// The item has no `=` between label and value.
    #[error("perfdata item {0:?} has no '=' between label and value")]
    MissingEquals(String),
    /// The label is empty.
    #[error("perfdata item {0:?} has an empty label")]
    EmptyLabel(String),
    /// A quoted label has no closing quote.
    #[error("perfdata item {0:?} has an unterminated quoted label")]
    UnterminatedQuote(String),
    /// The value is not a number.
    #[error("perfdata item {0:?} has no numeric value")]
    BadValue(String),
}

/// Parses a perfdata string (items separated by whitespace), skipping unreadable items.
pub fn parse_perfdata(text: &str) -> Vec<PerfDatum> {
    split_perfdata(text)
        .into_iter()
        .filter_map(|item| parse_perfdatum(item).ok())
        .collect()
}

/// Splits perfdata text into items: whitespace separates them except inside a quoted label.
fn split_perfdata(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut items = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if bytes[i] == b'\'' {
            // Quoted label: '' is an escaped quote. Without a closing quote on
            // the same line the item ends at the next whitespace instead.
            if let Some(close) = closing_quote(bytes, i + 1) {
                i = close + 1;
            }
        }
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        // Only ASCII bytes were used as boundaries, so these are char boundaries.
        items.push(&text[start..i]);
    }
    items
}

/// Index of the quote closing a label that opened before `from`, if on the same line.
fn closing_quote(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < bytes.len() && bytes[i] != b'\n' {
        if bytes[i] == b'\'' {
            if bytes.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Parses one perfdata item `label=value[UOM];[warn];[crit];[min];[max]`.
pub fn parse_perfdatum(item: &str) -> Result<PerfDatum, PerfdataError> {
    let (label, rest) = split_label(item)?;
    let mut fields = rest.split(';');
    let value_field = fields.next().unwrap_or("").trim();
    let (value, uom) =
        parse_value(value_field).ok_or_else(|| PerfdataError::BadValue(item.to_string()))?;
    let warn = range_field(fields.next());
    let crit = range_field(fields.next());
    let min = fields.next().and_then(|f| parse_number(f.trim()));
    let max = fields.next().and_then(|f| parse_number(f.trim()));
    Ok(PerfDatum {
        label,
        value,
        uom,
        warn,
        crit,
        min,
        max,
    })
}

/// Splits `label=rest`, unquoting a quoted label.
fn split_label(item: &str) -> Result<(String, &str), PerfdataError> {
    if let Some(quoted) = item.strip_prefix('\'') {
        let mut label = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '\'' {
                label.push(c);
                continue;
            }
            if quoted[i + 1..].starts_with('\'') {
                label.push('\'');
                chars.next();
                continue;
            }
            let after = &quoted[i + 1..];
            let rest = after
                .strip_prefix('=')
                .ok_or_else(|| PerfdataError::MissingEquals(item.to_string()))?;
            if label.is_empty() {
                return Err(PerfdataError::EmptyLabel(item.to_string()));
            }
            return Ok((label, rest));
        }
        return Err(PerfdataError::UnterminatedQuote(item.to_string()));
    }
    let (label, rest) = item
        .split_once('=')
        .ok_or_else(|| PerfdataError::MissingEquals(item.to_string()))?;
    if label.is_empty() {
        return Err(PerfdataError::EmptyLabel(item.to_string()));
    }
    Ok((label.to_string(), rest))
}

/// A warn/crit field as written, `None` when absent or empty.
fn range_field(field: Option<&str>) -> Option<String> {
    let f = field?.trim();
    (!f.is_empty()).then(|| f.to_string())
}

/// Reads `value[UOM]`; `U` alone is an undetermined value (NaN).
fn parse_value(field: &str) -> Option<(f64, String)> {
    if field == "U" {
        return Some((f64::NAN, String::new()));
    }
    let len = number_prefix_len(field);
    if len == 0 {
        return None;
    }
    let value = parse_number(&field[..len])?;
    Some((value, field[len..].to_string()))
}

/// Length of the leading `[+-]digits[.,digits][e[+-]digits]` of `s`, 0 when there is none.
fn number_prefix_len(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - int_start;
    if i < b.len() && (b[i] == b'.' || b[i] == b',') {
        let frac_start = i + 1;
        let mut j = frac_start;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > frac_start || digits > 0 {
            digits += j - frac_start;
            i = j;
        }
    }
    if digits == 0 {
        return 0;
    }
    // An exponent only when digits follow, so a UOM starting with 'e' stays a UOM.
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp_start = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > exp_start {
            i = j;
        }
    }
    i
}

/// Parses a whole field as a number, accepting one decimal comma; `None` otherwise.
fn parse_number(s: &str) -> Option<f64> {
    if s.is_empty() || number_prefix_len(s) != s.len() {
        return None;
    }
    let v: f64 = if s.contains(',') {
        s.replacen(',', ".", 1).parse().ok()?
    } else {
        s.parse().ok()?
    };
    v.is_finite().then_some(v)
}

/// Why a threshold range string is not a valid Nagios range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// The string is empty.
    #[error("empty threshold range")]
    Empty,
    /// A bound is not a number.
    #[error("threshold range {range:?}: {bound:?} is not a number")]
    BadNumber {
        /// The whole range as written.
        range: String,
        /// The bound that failed.
        bound: String,
    },
    /// The start is above the end.
    #[error("threshold range {0:?}: start is greater than end")]
    StartAfterEnd(String),
}

/// A Nagios threshold range: alert outside `start..=end`, or inside it with `@`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// Lower bound; `f64::NEG_INFINITY` for `~`.
    pub start: f64,
    /// Upper bound; `f64::INFINITY` when omitted after `:`.
    pub end: f64,
    /// `true` for `@`: alert when the value is inside the range (inclusive).
    pub inside: bool,
}

impl Range {
    /// Parses `[@][start:][end]` as in the Nagios plugin guidelines (`10`, `10:`, `~:10`, `@10:20`).
    pub fn parse(s: &str) -> Result<Range, RangeError> {
        let s = s.trim();
        let (inside, body) = match s.strip_prefix('@') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        if body.is_empty() {
            return Err(RangeError::Empty);
        }
        let number = |bound: &str| {
            parse_number(bound).ok_or_else(|| RangeError::BadNumber {
                range: s.to_string(),
                bound: bound.to_string(),
            })
        };
        let (start, end) = match body.split_once(':') {
            Some((start, end)) => {
                let start = match start {
                    "~" => f64::NEG_INFINITY,
                    "" => 0.0,
                    other => number(other)?,
                };
                let end = if end.is_empty() {
                    f64::INFINITY
                } else {
                    number(end)?
                };
                (start, end)
            }
            None => (0.0, number(body)?),
        };
        if start > end {
            return Err(RangeError::StartAfterEnd(s.to_string()));
        }
        Ok(Range { start, end, inside })
    }

    /// Whether `value` should raise an alert under this range.
    pub fn alerts(&self, value: f64) -> bool {
        let within = self.start <= value && value <= self.end;
        if self.inside {
            within
        } else {
            !within
        }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.inside {
            f.write_str("@")?;
        }
        if self.start == 0.0 && self.end.is_finite() {
            return write!(f, "{}", self.end);
        }
        if self.start == f64::NEG_INFINITY {
            f.write_str("~:")?;
        } else {
            write!(f, "{}:", self.start)?;
        }
        if self.end.is_finite() {
            write!(f, "{}", self.end)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pd(
        label: &str,
        value: f64,
        uom: &str,
        w: Option<&str>,
        c: Option<&str>,
        min: Option<f64>,
        max: Option<f64>,
    ) -> PerfDatum {
        PerfDatum {
            label: label.into(),
            value,
            uom: uom.into(),
            warn: w.map(Into::into),
            crit: c.map(Into::into),
            min,
            max,
        }
    }

    fn simple(label: &str, value: f64, uom: &str) -> PerfDatum {
        pd(label, value, uom, None, None, None, None)
    }

    /// (name, raw, output, long_output, perfdata)
    #[test]
    fn parses_real_and_edge_outputs() {
        let cases: Vec<(&str, &str, &str, &str, Vec<PerfDatum>)> = vec![
            (
                "check_disk",
                "DISK OK - free space: / 80379MiB (86% inode=97%);| /=13287555072B;243497277849;257024904396;0;270552530944\n",
                "DISK OK - free space: / 80379MiB (86% inode=97%);",
                "",
                vec![pd("/", 13287555072.0, "B", Some("243497277849"), Some("257024904396"), Some(0.0), Some(270552530944.0))],
            ),
            (
                "check_load with trailing space",
                "LOAD OK - total load average: 1.58, 0.68, 0.26|load1=1.580;5.000;10.000;0; load5=0.680;4.000;8.000;0; load15=0.260;3.000;6.000;0; \n",
                "LOAD OK - total load average: 1.58, 0.68, 0.26",
                "",
                vec![
                    pd("load1", 1.58, "", Some("5.000"), Some("10.000"), Some(0.0), None),
                    pd("load5", 0.68, "", Some("4.000"), Some("8.000"), Some(0.0), None),
                    pd("load15", 0.26, "", Some("3.000"), Some("6.000"), Some(0.0), None),
                ],
            ),
            (
                "check_procs",
                "PROCS OK: 73 processes | procs=73;500;1000;0;\n",
                "PROCS OK: 73 processes",
                "",
                vec![pd("procs", 73.0, "", Some("500"), Some("1000"), Some(0.0), None)],
            ),
            (
                "check_ping",
                "PING OK - Packet loss = 0%, RTA = 0.34 ms|rta=0.345000ms;100.000000;500.000000;0.000000 pl=0%;20;60;0\n",
                "PING OK - Packet loss = 0%, RTA = 0.34 ms",
                "",
                vec![
                    pd("rta", 0.345, "ms", Some("100.000000"), Some("500.000000"), Some(0.0), None),
                    pd("pl", 0.0, "%", Some("20"), Some("60"), Some(0.0), None),
                ],
            ),
            (
                "check_http",
                "HTTP OK: HTTP/1.0 200 OK - 120 bytes in 0.001 second response time |time=0.001004s;;;0.000000;10.000000 size=120B;;;0\n",
                "HTTP OK: HTTP/1.0 200 OK - 120 bytes in 0.001 second response time",
                "",
                vec![
                    pd("time", 0.001004, "s", None, None, Some(0.0), Some(10.0)),
                    pd("size", 120.0, "B", None, None, Some(0.0), None),
                ],
            ),
            (
                "check_tcp refused, no perfdata",
                "connect to address 127.0.0.1 and port 1: Connection refused\n",
                "connect to address 127.0.0.1 and port 1: Connection refused",
                "",
                vec![],
            ),
            (
                "guidelines example: perfdata spread across lines",
                "DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\n/ 15272 MB (77%);\n/boot 68 MB (69%);\n/home 69357 MB (27%);\n/var/log 819 MB (84%); | /boot=68MB;88;93;0;98\n/home=69357MB;253404;253409;0;253414 \n/var/log=818MB;970;975;0;980\n",
                "DISK OK - free space: / 3326 MB (56%);",
                "/ 15272 MB (77%);\n/boot 68 MB (69%);\n/home 69357 MB (27%);\n/var/log 819 MB (84%);",
                vec![
                    pd("/", 2643.0, "MB", Some("5948"), Some("5958"), Some(0.0), Some(5968.0)),
                    pd("/boot", 68.0, "MB", Some("88"), Some("93"), Some(0.0), Some(98.0)),
                    pd("/home", 69357.0, "MB", Some("253404"), Some("253409"), Some(0.0), Some(253414.0)),
                    pd("/var/log", 818.0, "MB", Some("970"), Some("975"), Some(0.0), Some(980.0)),
                ],
            ),
            (
                "long output only after a first line without perfdata",
                "OK all good\nline 2\nline 3 | a=1 b=2\nc=3\n",
                "OK all good",
                "line 2\nline 3",
                vec![simple("a", 1.0, ""), simple("b", 2.0, ""), simple("c", 3.0, "")],
            ),
            (
                "a second | on a perfdata line is part of perfdata, not a new split",
                "OK | a=1\nlong | b=2 | c=3\n",
                "OK",
                "long",
                vec![simple("a", 1.0, ""), simple("b", 2.0, ""), simple("c", 3.0, "")],
            ),
            ("empty", "", "", "", vec![]),
            ("only newline", "\n", "", "", vec![]),
            ("only a pipe", "|", "", "", vec![]),
            ("no trailing newline", "OK", "OK", "", vec![]),
            (
                "CRLF line ends",
                "WARNING - x\r\nmore\r\n| t=1s\r\n",
                "WARNING - x",
                "more",
                vec![simple("t", 1.0, "s")],
            ),
            (
                "trailing whitespace and blank lines in long output",
                "OK  \t\nfirst\n\nthird   \n\n\n",
                "OK",
                "first\n\nthird",
                vec![],
            ),
            (
                "quoted labels with spaces and escaped quotes",
                "OK | 'free space'=10GB;;;0;100 'it''s'=3 'C:\\ Label'=7% plain=1",
                "OK",
                "",
                vec![
                    pd("free space", 10.0, "GB", None, None, Some(0.0), Some(100.0)),
                    simple("it's", 3.0, ""),
                    simple("C:\\ Label", 7.0, "%"),
                    simple("plain", 1.0, ""),
                ],
            ),
            (
                "UOMs kept as written",
                "OK | a=1s b=2ms c=3us d=4% e=5B f=6KB g=7MB h=8GB i=9TB j=10c k=11KiB l=12dBm",
                "OK",
                "",
                vec![
                    simple("a", 1.0, "s"),
                    simple("b", 2.0, "ms"),
                    simple("c", 3.0, "us"),
                    simple("d", 4.0, "%"),
                    simple("e", 5.0, "B"),
                    simple("f", 6.0, "KB"),
                    simple("g", 7.0, "MB"),
                    simple("h", 8.0, "GB"),
                    simple("i", 9.0, "TB"),
                    simple("j", 10.0, "c"),
                    simple("k", 11.0, "KiB"),
                    simple("l", 12.0, "dBm"),
                ],
            ),
            (
                "ranges kept verbatim, empty fields None",
                "OK | a=5;10:;~:10;; b=5;@10:20;@~:30 c=-1.5;;;-10;10",
                "OK",
                "",
                vec![
                    pd("a", 5.0, "", Some("10:"), Some("~:10"), None, None),
                    pd("b", 5.0, "", Some("@10:20"), Some("@~:30"), None, None),
                    pd("c", -1.5, "", None, None, Some(-10.0), Some(10.0)),
                ],
            ),
            (
                "malformed items are skipped, the rest kept",
                "OK | good=1 noequals =5 bad=abc 'unterminated=3 also=2",
                "OK",
                "",
                vec![simple("good", 1.0, ""), simple("also", 2.0, "")],
            ),
            (
                "unreadable min/max become None, extra fields ignored",
                "OK | a=1;2;3;x;y;extra b=1;;;0;10;99",
                "OK",
                "",
                vec![
                    pd("a", 1.0, "", Some("2"), Some("3"), None, None),
                    pd("b", 1.0, "", None, None, Some(0.0), Some(10.0)),
                ],
            ),
            (
                "decimal comma and exponent accepted",
                "OK | a=0,5s;1,0;2,0;0;1,5 b=1.5e3 c=2e",
                "OK",
                "",
                vec![
                    pd("a", 0.5, "s", Some("1,0"), Some("2,0"), Some(0.0), Some(1.5)),
                    simple("b", 1500.0, ""),
                    simple("c", 2.0, "e"),
                ],
            ),
            (
                "values without leading digit and with sign",
                "OK | a=.5 b=+3 c=-.25ms",
                "OK",
                "",
                vec![simple("a", 0.5, ""), simple("b", 3.0, ""), simple("c", -0.25, "ms")],
            ),
            (
                "pipe in long output without first-line perfdata, no perfdata after it",
                "CRITICAL\ndetail |\n",
                "CRITICAL",
                "detail",
                vec![],
            ),
            (
                "unicode text",
                "OK – café ✓ | 'température'=21.5C",
                "OK – café ✓",
                "",
                vec![simple("température", 21.5, "C")],
            ),
        ];
        for (name, raw, output, long_output, perfdata) in cases {
            let got = parse(State::Warning, raw);
            assert_eq!(got.state, State::Warning, "{name}");
            assert_eq!(got.output, output, "{name}: output");
            assert_eq!(got.long_output, long_output, "{name}: long_output");
            assert_eq!(got.perfdata, perfdata, "{name}: perfdata");
        }
    }

    #[test]
    fn undetermined_value_is_nan() {
        let got = parse(State::Ok, "OK | a=U;1;2 b=1");
        assert_eq!(got.perfdata.len(), 2);
        assert!(got.perfdata[0].value.is_nan());
        assert_eq!(got.perfdata[0].warn.as_deref(), Some("1"));
        assert_eq!(got.perfdata[1].value, 1.0);
    }

    #[test]
    fn non_utf8_is_replaced_lossily() {
        let got = parse_bytes(State::Critical, b"BAD \xff\xfe bytes | a=1\n\x80 more\n");
        assert_eq!(got.output, "BAD \u{fffd}\u{fffd} bytes");
        assert_eq!(got.long_output, "\u{fffd} more");
        assert_eq!(got.perfdata, vec![simple("a", 1.0, "")]);
    }

    #[test]
    fn perfdatum_errors_say_what_is_wrong() {
        let cases = [
            ("noequals", PerfdataError::MissingEquals("noequals".into())),
            ("=1", PerfdataError::EmptyLabel("=1".into())),
            ("''=1", PerfdataError::EmptyLabel("''=1".into())),
            ("'abc=1", PerfdataError::UnterminatedQuote("'abc=1".into())),
            ("'abc'1", PerfdataError::MissingEquals("'abc'1".into())),
            ("a=", PerfdataError::BadValue("a=".into())),
            ("a=ms", PerfdataError::BadValue("a=ms".into())),
            ("a=-", PerfdataError::BadValue("a=-".into())),
            ("a=.", PerfdataError::BadValue("a=.".into())),
        ];
        for (item, err) in cases {
            assert_eq!(parse_perfdatum(item), Err(err), "{item}");
        }
    }

    #[test]
    fn ranges_parse_and_alert_like_nagios() {
        // (range, values that alert, values that do not)
        let cases: &[(&str, &[f64], &[f64])] = &[
            ("10", &[-1.0, 10.5, 11.0], &[0.0, 5.0, 10.0]),
            ("10:", &[-5.0, 9.99], &[10.0, 1e9]),
            ("~:10", &[10.01, 100.0], &[-1e9, 10.0]),
            ("10:20", &[9.0, 21.0], &[10.0, 15.0, 20.0]),
            ("@10:20", &[10.0, 15.0, 20.0], &[9.0, 21.0]),
            ("@~:0", &[-3.0, 0.0], &[0.1]),
            ("@5", &[0.0, 5.0], &[-0.1, 5.1]),
            (":5", &[-1.0, 6.0], &[0.0, 5.0]),
            ("-5:-1", &[0.0, -6.0], &[-5.0, -1.0]),
            ("1.5:2,5", &[1.4, 2.6], &[1.5, 2.5]),
            (" 10 ", &[11.0], &[10.0]),
        ];
        for (text, alert, quiet) in cases {
            let r = Range::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            for v in *alert {
                assert!(r.alerts(*v), "{text} should alert on {v}");
            }
            for v in *quiet {
                assert!(!r.alerts(*v), "{text} should not alert on {v}");
            }
        }
    }

    #[test]
    fn bad_ranges_are_errors() {
        for text in ["", "@", "abc", "10:abc", "20:10", "@20:10", "1:2:3", "~"] {
            assert!(Range::parse(text).is_err(), "{text:?} should be rejected");
        }
    }

    #[test]
    fn range_display_round_trips() {
        for text in [
            "10", "10:", "~:10", "10:20", "@10:20", "@~:30", "-5:-1", "@0.5",
        ] {
            let r = Range::parse(text).expect("valid");
            assert_eq!(r.to_string(), text);
            assert_eq!(Range::parse(&r.to_string()).expect("round trip"), r);
        }
    }
}
