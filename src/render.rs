//! Renders what the read side returns ([`crate::query`]) for the CLI: as
//! JSON, or as aligned text tables for a terminal. The one place where
//! `--json` is decided; the values themselves are the same ones the HTTP
//! API will serialise.
//!
//! Nothing here reads the store or a cluster: it only formats values.

use crate::alarm::lifecycle::Suppression;
use crate::alarm::silence::{NewSilence, Silence};
use crate::query::ClusterStatus;
use crate::store::{AlarmRow, HistoryRow, Stats};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt::Write as _;

/// `value` as pretty JSON with `json`, else as `text` makes it.
pub fn render<T: Serialize + ?Sized>(
    value: &T,
    json: bool,
    text: impl FnOnce(&T) -> String,
) -> Result<String, serde_json::Error> {
    if json {
        serde_json::to_string_pretty(value)
    } else {
        Ok(text(value))
    }
}

/// Formats alarms as an aligned text table, one line per alarm.
pub fn alarms_text(rows: &[AlarmRow]) -> String {
    if rows.is_empty() {
        return "no alarms\n".into();
    }
    let width = |f: &dyn Fn(&AlarmRow) -> usize, title: &str| {
        rows.iter().map(f).max().unwrap_or(0).max(title.len())
    };
    let wid = width(&|r| r.id.to_string().len(), "ID");
    let wcheck = width(&|r| r.check.chars().count(), "CHECK");
    let whost = width(&|r| r.host.chars().count(), "HOST");
    let time = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
    let mut out = format!(
        "{:>wid$}  {:<8}  {:<wcheck$}  {:<whost$}  {:<19}  {:<19}  {:<3}  ACK  SUMMARY\n",
        "ID", "STATE", "CHECK", "HOST", "OPENED", "RESOLVED", "ESC"
    );
    for r in rows {
        let resolved = r.resolved.map(time).unwrap_or_else(|| "open".into());
        let ack = match (&r.ack_by, &r.ack_comment) {
            (Some(by), Some(c)) if !c.is_empty() => format!("{by} ({c})"),
            (Some(by), _) => by.clone(),
            (None, _) => "-".into(),
        };
        let ack = match (r.ack_expires, r.ack_sticky) {
            (Some(t), _) => format!("{ack} until {}", time(t)),
            (None, Some(false)) => format!("{ack} until the state changes"),
            _ => ack,
        };
        let held = match (&r.suppressed_by, r.suppressed) {
            (Some(Suppression::Maintenance { window }), _) => format!(" [maintenance {window}]"),
            (Some(Suppression::Silence { id, by, .. }), _) => format!(" [silence {id} by {by}]"),
            (Some(why), _) => format!(" [{}]", why.reason()),
            (None, true) => " [suppressed]".to_string(),
            (None, false) => String::new(),
        };
        let _ = writeln!(
            out,
            "{:>wid$}  {:<8}  {:<wcheck$}  {:<whost$}  {:<19}  {:<19}  {:<3}  {}  {}{}",
            r.id,
            r.state,
            r.check,
            r.host,
            time(r.opened),
            resolved,
            r.escalation_level,
            ack,
            r.summary,
            held
        );
    }
    out
}

/// Formats silences as an aligned text table, one line per silence.
pub fn silences_text(rows: &[Silence]) -> String {
    if rows.is_empty() {
        return "no silences\n".into();
    }
    let time = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
    let matchers: Vec<String> = rows.iter().map(|s| s.matchers.to_string()).collect();
    let wid = rows
        .iter()
        .map(|s| s.id.to_string().len())
        .max()
        .unwrap_or(0)
        .max(2);
    let wmatch = matchers
        .iter()
        .map(|m| m.chars().count())
        .max()
        .unwrap_or(0)
        .max(7);
    let wby = rows
        .iter()
        .map(|s| s.by.chars().count())
        .max()
        .unwrap_or(0)
        .max(2);
    let mut out = format!(
        "{:>wid$}  {:<wmatch$}  {:<wby$}  {:<19}  {:<19}  COMMENT\n",
        "ID", "MATCHES", "BY", "STARTS", "ENDS"
    );
    for (s, m) in rows.iter().zip(&matchers) {
        let removed = match (&s.removed, &s.removed_by) {
            (Some(t), Some(by)) => format!(" [removed {} by {by}]", time(*t)),
            (Some(t), None) => format!(" [removed {}]", time(*t)),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:>wid$}  {:<wmatch$}  {:<wby$}  {:<19}  {:<19}  {}{}",
            s.id,
            m,
            s.by,
            time(s.starts),
            time(s.ends),
            s.comment,
            removed
        );
    }
    out
}

/// What `laxmon silence add` says it did: the silence and the configured
/// checks it covers.
pub fn silence_added_text(s: &Silence, covered: &[String]) -> String {
    format!(
        "silence {} set by {} ({}) from {} until {}: {}\n{}",
        s.id,
        s.by,
        s.matchers,
        s.starts.format("%Y-%m-%d %H:%M:%S UTC"),
        s.ends.format("%Y-%m-%d %H:%M:%S UTC"),
        s.comment,
        covered_text(covered)
    )
}

/// What `laxmon silence add --dry-run` shows: which configured checks it would cover.
pub fn silence_preview_text(s: &NewSilence, covered: &[String]) -> String {
    format!(
        "dry run, nothing stored: a silence of {} until {}\n{}",
        s.matchers,
        s.ends.format("%Y-%m-%d %H:%M:%S UTC"),
        covered_text(covered)
    )
}

fn covered_text(covered: &[String]) -> String {
    match covered.len() {
        0 => "it covers no configured check (yet)\n".into(),
        n => format!(
            "it covers {n} configured check{}: {}\n",
            if n == 1 { "" } else { "s" },
            covered.join(", ")
        ),
    }
}

/// Formats history rows as an aligned text table.
pub fn history_text(check: &str, rows: &[HistoryRow]) -> String {
    if rows.is_empty() {
        return format!("no results for {check}\n");
    }
    let mut out = format!(
        "{:<24}  {:<8}  {:<4}  {:>3}  {:>10}  OUTPUT\n",
        "STARTED", "STATE", "TYPE", "ATT", "DURATION"
    );
    for r in rows {
        let perf = crate::plugin_output::format_perfdata(&r.perfdata);
        let perf = if perf.is_empty() {
            String::new()
        } else {
            format!(" | {perf}")
        };
        let _ = writeln!(
            out,
            "{:<24}  {:<8}  {:<4}  {:>3}  {:>8.1}ms  {}{}",
            r.started.format("%Y-%m-%d %H:%M:%S%.3f"),
            r.state,
            r.state_type,
            r.attempt,
            r.duration_ms,
            r.output,
            perf
        );
    }
    out
}

/// Formats [`Stats`] as text.
pub fn stats_text(s: &Stats) -> String {
    let mut out = format!(
        "database: {}\nschema version: {}\nsize: {:.1} MiB\noldest result: {}\n",
        s.database,
        s.schema_version,
        s.size_bytes as f64 / (1024.0 * 1024.0),
        s.oldest_result
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "-".into())
    );
    for t in &s.tables {
        let _ = writeln!(out, "{:<16} {:>12}", t.table, t.rows);
    }
    out
}

/// A cluster's live placement as text: one line per server with its memory
/// in use, free, and its VMs with their priorities (or why it did not
/// answer); then the VMs that do not run, who holds the cluster, and the
/// recent runs.
pub fn cluster_status_text(status: &ClusterStatus) -> String {
    let mut out = format!("cluster {} ({} driver)\n", status.cluster, status.driver);
    for s in &status.servers {
        match &s.vms {
            Some(vms) => {
                let names: Vec<String> = vms
                    .iter()
                    .map(|v| format!("{}({})", v.name, v.priority))
                    .collect();
                let names = if names.is_empty() {
                    "-".to_string()
                } else {
                    names.join(" ")
                };
                let _ = writeln!(
                    out,
                    "  {:<12} {:>6}/{:<6} MB  {:>6} free  {}",
                    s.server, s.used_mb, s.capacity_mb, s.free_mb, names
                );
            }
            None => {
                let safe = status
                    .silent_but_safe
                    .get(&s.server)
                    .map(|why| format!(" ({why})"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {:<12} UNREACHABLE: {}{safe}",
                    s.server,
                    s.error.as_deref().unwrap_or("")
                );
            }
        }
    }
    let idle: Vec<String> = status
        .vms
        .iter()
        .filter(|v| v.state != "running")
        .map(|v| {
            let unknown = if v.state == "unknown" { "?" } else { "" };
            format!("{}({}){unknown}", v.name, v.priority)
        })
        .collect();
    if !idle.is_empty() {
        let _ = writeln!(out, "  {:<12} {}", "not running", idle.join(" "));
    }
    if let Some(h) = &status.busy {
        let _ = writeln!(out, "busy: {h} since {}", time_ms(h.since_ms));
    }
    if !status.runs.is_empty() {
        let _ = writeln!(out, "recent runs (newest first):");
    }
    for r in &status.runs {
        let what = match (&r.vm, &r.server) {
            (Some(vm), _) => format!("{} {vm}", r.kind),
            (None, Some(server)) => format!("{} {server}", r.kind),
            (None, None) => r.kind.clone(),
        };
        let state = if r.state == "interrupted" {
            "INTERRUPTED".to_string()
        } else {
            r.state.clone()
        };
        let by =
            r.by.as_deref()
                .map(|b| format!(" by {b}"))
                .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {}  {:<24} {:<12} {} step(s) done, {} failed{by}",
            time_ms(r.started_ms),
            what,
            state,
            r.steps_done,
            r.steps_failed
        );
    }
    out
}

/// Milliseconds since the Unix epoch as a UTC time to the second.
fn time_ms(ms: u64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms as i64)
        .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}
