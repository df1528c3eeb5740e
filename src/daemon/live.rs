//! The live view: every configured check's current state, last run and next
//! planned run, kept in memory for the operations API so that listing
//! 60,000 checks never touches the database.
//!
//! The fan-out task records each result, the scheduler records each planned
//! start; readers filter and page under a short read lock. This file must
//! never do I/O or hold a lock across an `.await`.

use crate::config::{Check, Config};
use crate::plugin_output::State;
use crate::result::CheckResult;
use crate::state::{CheckState, StateType};
use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::RwLock;

/// How much of a check's output the live view keeps (the store has it all).
const OUTPUT_KEPT: usize = 512;

/// The current state of every check of one configuration generation.
pub struct LiveView {
    statics: Vec<CheckInfo>,
    by_name: HashMap<String, usize>,
    /// Indices into `statics`, sorted by check name (the listing order).
    sorted: Vec<usize>,
    /// Indices into `statics`, sorted by host, then check name.
    by_host: Vec<usize>,
    /// Each check's position in `by_host`.
    host_rank: Vec<usize>,
    entries: RwLock<Vec<Option<LiveEntry>>>,
    /// Next planned start per check, as Unix milliseconds (0: not planned).
    next_run: Vec<AtomicI64>,
}

/// What the configuration says about a check (fixed for a generation).
#[derive(Debug, Clone, Serialize)]
pub struct CheckInfo {
    /// The check's name.
    pub name: String,
    /// The host entry it runs against.
    pub host: String,
    /// Its kind (`ping`, `port`, `init`, `plugin`).
    pub kind: &'static str,
    /// Its tags, the host's included.
    pub tags: Vec<String>,
    /// Seconds between runs.
    pub interval_s: f64,
    /// Seconds between retries while SOFT.
    pub retry_interval_s: f64,
    /// Attempts before a problem is HARD.
    pub max_attempts: u32,
}

/// A check's state as of its last run.
#[derive(Debug, Clone, Serialize)]
pub struct LiveEntry {
    /// OK, WARNING, CRITICAL or UNKNOWN.
    pub state: State,
    /// SOFT or HARD.
    pub state_type: StateType,
    /// The attempt the state was reached at.
    pub attempt: u32,
    /// Whether the check is flapping.
    pub flapping: bool,
    /// When it last ran (absent after a restart until it runs again).
    pub last_run: Option<DateTime<Utc>>,
    /// When its state last changed.
    pub last_state_change: Option<DateTime<Utc>>,
    /// How long the last run took, in milliseconds.
    pub duration_ms: Option<f64>,
    /// The start of the last run's first output line.
    pub output: Option<String>,
}

/// One row of a listing: the configuration, the state and the next run.
#[derive(Debug, Clone, Serialize)]
pub struct CheckRow {
    /// The configuration.
    #[serde(flatten)]
    pub info: CheckInfo,
    /// The state; absent while the check has never run.
    #[serde(flatten)]
    pub live: Option<LiveEntry>,
    /// Whether it has run at all since laxmon knows it.
    pub pending: bool,
    /// The next planned start.
    pub next_run: Option<DateTime<Utc>>,
}

impl LiveView {
    /// The view of `config`'s checks, starting from the states resumed from the store.
    pub fn new(config: &Config, resumed: &[(String, CheckState)]) -> LiveView {
        let statics: Vec<CheckInfo> = config.checks.iter().map(|c| info(config, c)).collect();
        let by_name: HashMap<String, usize> = statics
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        let mut sorted: Vec<usize> = (0..statics.len()).collect();
        sorted.sort_by(|&a, &b| statics[a].name.cmp(&statics[b].name));
        let mut by_host: Vec<usize> = (0..statics.len()).collect();
        by_host.sort_by(|&a, &b| {
            (&statics[a].host, &statics[a].name).cmp(&(&statics[b].host, &statics[b].name))
        });
        let mut host_rank = vec![0; statics.len()];
        for (rank, &i) in by_host.iter().enumerate() {
            host_rank[i] = rank;
        }
        let mut entries: Vec<Option<LiveEntry>> = vec![None; statics.len()];
        for (name, state) in resumed {
            if let Some(&i) = by_name.get(name) {
                if state.last_check().is_some() {
                    entries[i] = Some(LiveEntry {
                        state: state.state(),
                        state_type: state.state_type(),
                        attempt: state.attempt(),
                        flapping: state.is_flapping(),
                        last_run: state.last_check(),
                        last_state_change: state.last_state_change(),
                        duration_ms: None,
                        output: None,
                    });
                }
            }
        }
        let next_run = (0..statics.len()).map(|_| AtomicI64::new(0)).collect();
        LiveView {
            statics,
            by_name,
            sorted,
            by_host,
            host_rank,
            entries: RwLock::new(entries),
            next_run,
        }
    }

    /// How many checks the view holds.
    pub fn len(&self) -> usize {
        self.statics.len()
    }

    /// Whether the view holds no check.
    pub fn is_empty(&self) -> bool {
        self.statics.is_empty()
    }

    /// The index of the check of this name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Every check's name, in configuration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.statics.iter().map(|c| c.name.as_str())
    }

    /// Records a finished run.
    pub fn record(&self, result: &CheckResult) {
        let Some(i) = self.index(&result.check) else {
            return;
        };
        let s = &result.state;
        let entry = LiveEntry {
            state: s.state(),
            state_type: s.state_type(),
            attempt: s.attempt(),
            flapping: s.is_flapping(),
            last_run: Some(result.started),
            last_state_change: s.last_state_change(),
            duration_ms: Some(result.duration.as_secs_f64() * 1000.0),
            output: Some(truncate(&result.output.output, OUTPUT_KEPT)),
        };
        if let Ok(mut entries) = self.entries.write() {
            entries[i] = Some(entry);
        }
    }

    /// Records when check `index` is next planned to start.
    pub fn planned(&self, index: usize, at: DateTime<Utc>) {
        if let Some(slot) = self.next_run.get(index) {
            slot.store(at.timestamp_millis(), Ordering::Relaxed);
        }
    }

    /// The row of one check.
    pub fn row(&self, index: usize) -> Option<CheckRow> {
        let info = self.statics.get(index)?.clone();
        let live = self.entries.read().ok()?.get(index).cloned().flatten();
        Some(self.make_row(index, info, live))
    }

    fn make_row(&self, index: usize, info: CheckInfo, live: Option<LiveEntry>) -> CheckRow {
        let ms = self.next_run[index].load(Ordering::Relaxed);
        CheckRow {
            info,
            pending: live.is_none(),
            live,
            next_run: (ms != 0)
                .then(|| Utc.timestamp_millis_opt(ms).single())
                .flatten(),
        }
    }

    /// Up to `limit` rows, in name order, after the check named `after`,
    /// for which `keep` says yes; and the name to continue after, if more
    /// rows may follow.
    pub fn page(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: impl Fn(&CheckInfo, Option<&LiveEntry>) -> bool,
    ) -> (Vec<CheckRow>, Option<String>) {
        let start = match after {
            Some(name) => self
                .sorted
                .partition_point(|&i| self.statics[i].name.as_str() <= name),
            None => 0,
        };
        self.collect(&self.sorted[start..], limit, keep)
    }

    /// As [`LiveView::page`], in host order (host, then check name): the
    /// page continues after the check named `after` in that order (from the
    /// start if no check has that name any more).
    pub fn page_by_host(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: impl Fn(&CheckInfo, Option<&LiveEntry>) -> bool,
    ) -> (Vec<CheckRow>, Option<String>) {
        let start = after
            .and_then(|name| self.index(name))
            .map_or(0, |i| self.host_rank[i] + 1);
        self.collect(&self.by_host[start..], limit, keep)
    }

    fn collect(
        &self,
        order: &[usize],
        limit: usize,
        keep: impl Fn(&CheckInfo, Option<&LiveEntry>) -> bool,
    ) -> (Vec<CheckRow>, Option<String>) {
        let Ok(entries) = self.entries.read() else {
            return (Vec::new(), None);
        };
        let mut rows = Vec::new();
        for &i in order {
            let info = &self.statics[i];
            let live = entries[i].as_ref();
            if !keep(info, live) {
                continue;
            }
            if rows.len() == limit {
                let next = rows.last().map(|r: &CheckRow| r.info.name.clone());
                return (rows, next);
            }
            rows.push(self.make_row(i, info.clone(), live.cloned()));
        }
        (rows, None)
    }

    /// Calls `f` with every check and its state, in configuration order,
    /// under one read lock (`f` must be quick: the fan-out waits).
    pub fn visit(&self, mut f: impl FnMut(&CheckInfo, Option<&LiveEntry>)) {
        if let Ok(entries) = self.entries.read() {
            for (info, live) in self.statics.iter().zip(entries.iter()) {
                f(info, live.as_ref());
            }
        }
    }

    /// How many checks are in each state (pending ones separately).
    pub fn counts(&self) -> StateCounts {
        let mut c = StateCounts::default();
        if let Ok(entries) = self.entries.read() {
            for e in entries.iter() {
                match e.as_ref().map(|e| e.state) {
                    None => c.pending += 1,
                    Some(State::Ok) => c.ok += 1,
                    Some(State::Warning) => c.warning += 1,
                    Some(State::Critical) => c.critical += 1,
                    Some(State::Unknown) => c.unknown += 1,
                }
            }
        }
        c
    }
}

/// Checks per state.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct StateCounts {
    /// OK.
    pub ok: usize,
    /// WARNING.
    pub warning: usize,
    /// CRITICAL.
    pub critical: usize,
    /// UNKNOWN.
    pub unknown: usize,
    /// Never ran yet.
    pub pending: usize,
}

fn info(config: &Config, c: &Check) -> CheckInfo {
    let mut tags = c.tags.clone();
    if let Some(h) = config.host(&c.host) {
        for t in &h.tags {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
    }
    CheckInfo {
        name: c.name.clone(),
        host: c.host.clone(),
        kind: c.kind_name(),
        tags,
        interval_s: c.interval.as_secs_f64(),
        retry_interval_s: c.retry_interval.as_secs_f64(),
        max_attempts: c.max_attempts,
    }
}

/// `s` cut at a character boundary to at most `max` bytes, first line only.
fn truncate(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.len() <= max {
        return line.to_string();
    }
    let mut end = max;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(checks: &[(&str, &str)]) -> LiveView {
        let mut yaml = String::from("hosts:\n");
        let mut hosts: Vec<&str> = checks.iter().map(|c| c.1).collect();
        hosts.sort_unstable();
        hosts.dedup();
        for h in &hosts {
            yaml.push_str(&format!("  - {{name: {h}, address: 127.0.0.1}}\n"));
        }
        yaml.push_str("checks:\n");
        for (name, host) in checks {
            yaml.push_str(&format!("  - {{name: {name}, host: {host}, kind: ping}}\n"));
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("laxmon.yaml");
        std::fs::write(&path, yaml).expect("write config");
        let config = crate::config::Config::from_file(&path).expect("test config");
        LiveView::new(&config, &[])
    }

    fn names(rows: &[CheckRow]) -> Vec<&str> {
        rows.iter().map(|r| r.info.name.as_str()).collect()
    }

    #[test]
    fn pages_in_host_order_continue_after_the_cursor() {
        let v = view(&[
            ("a-ping", "zeta"),
            ("b-ping", "alpha"),
            ("c-ping", "alpha"),
            ("d-ping", "mid"),
        ]);
        let (rows, next) = v.page_by_host(None, 2, |_, _| true);
        assert_eq!(names(&rows), ["b-ping", "c-ping"]);
        assert_eq!(next.as_deref(), Some("c-ping"));
        let (rows, next) = v.page_by_host(next.as_deref(), 2, |_, _| true);
        assert_eq!(names(&rows), ["d-ping", "a-ping"]);
        assert_eq!(next, None);
        let (rows, _) = v.page_by_host(None, 10, |i, _| i.host != "alpha");
        assert_eq!(names(&rows), ["d-ping", "a-ping"]);
        let (rows, _) = v.page(None, 10, |_, _| true);
        assert_eq!(names(&rows), ["a-ping", "b-ping", "c-ping", "d-ping"]);
        let mut seen = Vec::new();
        v.visit(|i, live| seen.push((i.name.clone(), live.is_some())));
        assert_eq!(seen.len(), 4);
        assert!(seen.iter().all(|(_, l)| !l));
    }

    #[test]
    fn truncates_at_char_boundaries() {
        assert_eq!(truncate("abc\ndef", 10), "abc");
        assert_eq!(truncate("äöü", 3), "ä…");
        assert_eq!(truncate("", 3), "");
    }
}
