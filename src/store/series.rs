//! A check's history over a time range for charts: its state changes, and
//! its results downsampled to at most a given number of equal time buckets,
//! each with count, worst state, run time and per-perfdata-label
//! min/avg/max.
//!
//! The backends bucket in SQL (bucket = whole microseconds since `from`
//! divided by the bucket width, so both agree to the microsecond) and
//! aggregate count, state and run time there. PostgreSQL aggregates the
//! perfdata in SQL too (jsonb); SQLite hands each result's perfdata text to
//! [`PerfAccumulator`], since its JSON functions re-parse every element per
//! field (measured five times slower for a week of a one-minute check). The
//! bucket plan, the accumulator and the assembly are pure and tested here.
//! Read-only: nothing here writes.

use super::timeline::StateChangeRow;
use super::{dispatch, Backend, Store, StoreError};
use crate::plugin_output::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most buckets a series is cut into, whatever is asked.
pub const MAX_SERIES_POINTS: u32 = 10_000;

/// At most this many state changes go into one series;
/// [`HistorySeries::state_changes_truncated`] says when more were left out.
pub const SERIES_STATE_CHANGES: u32 = 5000;

/// Minimum, mean and maximum of some values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ValueStats {
    /// Smallest.
    pub min: f64,
    /// Arithmetic mean.
    pub avg: f64,
    /// Largest.
    pub max: f64,
}

/// One perfdata label's values within a bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerfStats {
    /// The label.
    pub label: String,
    /// Its unit (empty when none); a label reported with two units has two entries.
    pub uom: String,
    /// How many results reported it (with a numeric value).
    pub count: u64,
    /// Its values.
    #[serde(flatten)]
    pub values: ValueStats,
}

/// The results of one time bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesBucket {
    /// Start (inclusive).
    pub start: DateTime<Utc>,
    /// End (exclusive).
    pub end: DateTime<Utc>,
    /// Results started within it.
    pub count: u64,
    /// The worst state among them (CRITICAL > UNKNOWN > WARNING > OK).
    pub worst_state: State,
    /// Their run times in milliseconds.
    pub duration_ms: ValueStats,
    /// Per perfdata label (and unit), sorted by label.
    pub perfdata: Vec<PerfStats>,
}

/// A check's history between two instants, for a chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistorySeries {
    /// The check.
    pub check: String,
    /// Start of the range (inclusive).
    pub from: DateTime<Utc>,
    /// End of the range (exclusive).
    pub to: DateTime<Utc>,
    /// The width of every bucket (the last may be cut short by `to`).
    pub bucket_ms: f64,
    /// The buckets holding results, oldest first; buckets without any are left out.
    pub buckets: Vec<SeriesBucket>,
    /// The check's state changes in the range, oldest first.
    pub state_changes: Vec<StateChangeRow>,
    /// More than [`SERIES_STATE_CHANGES`] state changes fell into the
    /// range; only the first ones are listed.
    pub state_changes_truncated: bool,
}

/// How a range is cut into buckets, in microseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BucketPlan {
    /// Start of the range.
    pub(super) from_us: i64,
    /// End of the range (exclusive).
    pub(super) to_us: i64,
    /// Width of a bucket; bucket `b` starts at `from_us + b * width_us`.
    pub(super) width_us: i64,
}

impl BucketPlan {
    /// At most `points` (at least 1, at most [`MAX_SERIES_POINTS`]) equal
    /// buckets of whole microseconds covering `[from, to)`; `None` for an
    /// empty range.
    pub(super) fn new(from: DateTime<Utc>, to: DateTime<Utc>, points: u32) -> Option<BucketPlan> {
        let (from_us, to_us) = (from.timestamp_micros(), to.timestamp_micros());
        let range = to_us.checked_sub(from_us).filter(|r| *r > 0)?;
        let points = i64::from(points.clamp(1, MAX_SERIES_POINTS));
        // Ceiling division: `points` buckets of this width cover the range.
        let width_us = (range + points - 1) / points;
        Some(BucketPlan {
            from_us,
            to_us,
            width_us,
        })
    }

    /// The range's start, to the microsecond.
    pub(super) fn from(&self) -> DateTime<Utc> {
        micros(self.from_us)
    }

    /// The range's end, to the microsecond.
    pub(super) fn to(&self) -> DateTime<Utc> {
        micros(self.to_us)
    }

    /// Start and end of bucket `b`.
    fn bounds(&self, b: i64) -> (DateTime<Utc>, DateTime<Utc>) {
        let start = self.from_us.saturating_add(b.saturating_mul(self.width_us));
        let end = start.saturating_add(self.width_us).min(self.to_us);
        (micros(start), micros(end))
    }
}

fn micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// One bucket's aggregates as the backends read them.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct BucketRow {
    /// Bucket number.
    pub(super) bucket: i64,
    pub(super) count: i64,
    /// The worst [`State::severity`].
    pub(super) worst: i64,
    pub(super) duration: ValueStats,
}

/// One label's aggregates in one bucket as the backends read them.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PerfRow {
    /// Bucket number.
    pub(super) bucket: i64,
    pub(super) label: String,
    pub(super) uom: String,
    pub(super) count: i64,
    pub(super) values: ValueStats,
}

/// Per bucket, label and unit: how many values, their sum and extremes.
#[derive(Debug, Default)]
pub(super) struct PerfAccumulator {
    acc: BTreeMap<(i64, String, String), Sums>,
}

/// How many values, their sum and extremes.
#[derive(Debug)]
struct Sums {
    count: i64,
    sum: f64,
    min: f64,
    max: f64,
}

/// The fields of a stored perfdata item the series needs.
#[derive(Deserialize)]
struct StoredDatum {
    label: String,
    value: Option<f64>,
    #[serde(default)]
    uom: Option<String>,
}

impl PerfAccumulator {
    /// Adds one result's stored perfdata (a JSON array of `PerfDatum`) to
    /// `bucket`; items without a numeric value are left out.
    pub(super) fn add(&mut self, bucket: i64, perfdata: &str) -> Result<(), serde_json::Error> {
        let items: Vec<StoredDatum> = serde_json::from_str(perfdata)?;
        for d in items {
            let Some(v) = d.value.filter(|v| v.is_finite()) else {
                continue;
            };
            let e = self
                .acc
                .entry((bucket, d.label, d.uom.unwrap_or_default()))
                .or_insert(Sums {
                    count: 0,
                    sum: 0.0,
                    min: v,
                    max: v,
                });
            e.count += 1;
            e.sum += v;
            e.min = e.min.min(v);
            e.max = e.max.max(v);
        }
        Ok(())
    }

    /// The aggregates, ordered by bucket, label and unit (byte order).
    pub(super) fn finish(self) -> Vec<PerfRow> {
        self.acc
            .into_iter()
            .map(|((bucket, label, uom), s)| PerfRow {
                bucket,
                label,
                uom,
                count: s.count,
                values: ValueStats {
                    min: s.min,
                    avg: s.sum / s.count as f64,
                    max: s.max,
                },
            })
            .collect()
    }
}

/// SQL for a state's [`State::severity`] (`CRITICAL` > `UNKNOWN` >
/// `WARNING` > `OK`; anything else counts as UNKNOWN), on column `state`.
pub(super) const SEVERITY_SQL: &str = "CASE state WHEN 'OK' THEN 0 WHEN 'WARNING' THEN 1 \
     WHEN 'CRITICAL' THEN 3 ELSE 2 END";

fn state_of_severity(s: i64) -> State {
    [State::Ok, State::Warning, State::Unknown, State::Critical]
        .into_iter()
        .find(|st| i64::from(st.severity()) == s)
        .unwrap_or(State::Unknown)
}

/// Joins the bucket rows (ordered by bucket) with the label rows (ordered by
/// bucket, label, unit) into buckets with times.
pub(super) fn assemble(
    plan: &BucketPlan,
    buckets: Vec<BucketRow>,
    perf: Vec<PerfRow>,
) -> Vec<SeriesBucket> {
    let mut perf = perf.into_iter().peekable();
    buckets
        .into_iter()
        .map(|row| {
            // Label rows of earlier buckets cannot exist; skip them should they.
            while perf.next_if(|p| p.bucket < row.bucket).is_some() {}
            let mut labels = Vec::new();
            while let Some(p) = perf.next_if(|p| p.bucket == row.bucket) {
                labels.push(PerfStats {
                    label: p.label,
                    uom: p.uom,
                    count: u64::try_from(p.count).unwrap_or(0),
                    values: p.values,
                });
            }
            let (start, end) = plan.bounds(row.bucket);
            SeriesBucket {
                start,
                end,
                count: u64::try_from(row.count).unwrap_or(0),
                worst_state: state_of_severity(row.worst),
                duration_ms: row.duration,
                perfdata: labels,
            }
        })
        .collect()
}

impl Store {
    /// `check`'s history in `[from, to)`: its state changes, and its results
    /// cut into at most `points` equal buckets (clamped to
    /// 1..=[`MAX_SERIES_POINTS`]), each with count, worst state, run time
    /// and perfdata min/avg/max per label. An empty range has no buckets.
    pub async fn history_series(
        &self,
        check: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        points: u32,
    ) -> Result<HistorySeries, StoreError> {
        let Some(plan) = BucketPlan::new(from, to, points) else {
            return Ok(HistorySeries {
                check: check.to_string(),
                from,
                to,
                bucket_ms: 0.0,
                buckets: Vec::new(),
                state_changes: Vec::new(),
                state_changes_truncated: false,
            });
        };
        let limit = i64::from(SERIES_STATE_CHANGES);
        let (buckets, perf, mut changes) =
            dispatch!(self, b => b.history_series(check, plan, limit + 1).await)?;
        let truncated = changes.len() > SERIES_STATE_CHANGES as usize;
        changes.truncate(SERIES_STATE_CHANGES as usize);
        Ok(HistorySeries {
            check: check.to_string(),
            from: plan.from(),
            to: plan.to(),
            bucket_ms: plan.width_us as f64 / 1000.0,
            buckets: assemble(&plan, buckets, perf),
            state_changes: changes,
            state_changes_truncated: truncated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0)
            .single()
            .expect("valid")
    }

    #[test]
    fn plans_cover_the_range_with_at_most_points_buckets() {
        // (range in s, points) -> (width in µs, buckets)
        let cases = [
            (3600, 60, 60_000_000, 60),
            (3600, 7, 514_285_715, 7),
            (10, 0, 10_000_000, 1),
            (1, 3, 333_334, 3),
            (86400, 1_000_000, 8_640_000, 10_000),
        ];
        for (range, points, width, count) in cases {
            let p = BucketPlan::new(t(0), t(range), points).expect("non-empty");
            assert_eq!(p.width_us, width, "range {range} points {points}");
            let buckets = (p.to_us - p.from_us + p.width_us - 1) / p.width_us;
            assert_eq!(buckets, count, "range {range} points {points}");
            let (_, last_end) = p.bounds(buckets - 1);
            assert_eq!(last_end, t(range), "the last bucket ends at `to`");
        }
        assert_eq!(BucketPlan::new(t(5), t(5), 10), None);
        assert_eq!(BucketPlan::new(t(6), t(5), 10), None);
    }

    #[test]
    fn assembles_buckets_with_their_labels() {
        let plan = BucketPlan::new(t(0), t(100), 10).expect("plan");
        let stats = |v: f64| ValueStats {
            min: v,
            avg: v,
            max: v,
        };
        let perf = |bucket: i64, label: &str| PerfRow {
            bucket,
            label: label.into(),
            uom: "s".into(),
            count: 1,
            values: stats(1.0),
        };
        let out = assemble(
            &plan,
            vec![
                BucketRow {
                    bucket: 0,
                    count: 2,
                    worst: 0,
                    duration: stats(5.0),
                },
                BucketRow {
                    bucket: 3,
                    count: 1,
                    worst: 3,
                    duration: stats(7.0),
                },
            ],
            vec![perf(0, "a"), perf(0, "b"), perf(3, "a")],
        );
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].start, out[0].end), (t(0), t(10)));
        assert_eq!((out[1].start, out[1].end), (t(30), t(40)));
        assert_eq!(out[0].worst_state, State::Ok);
        assert_eq!(out[1].worst_state, State::Critical);
        let labels = |b: &SeriesBucket| {
            b.perfdata
                .iter()
                .map(|p| p.label.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(labels(&out[0]), vec!["a", "b"]);
        assert_eq!(labels(&out[1]), vec!["a"]);
        let v = serde_json::to_value(&out[1]).expect("json");
        assert_eq!(v["worst_state"], "CRITICAL");
        assert_eq!(v["perfdata"][0]["max"], 1.0);
    }

    #[test]
    fn accumulates_perfdata_per_bucket_label_and_unit() {
        let mut acc = PerfAccumulator::default();
        let items = |v: &[(&str, Option<f64>, &str)]| {
            let items: Vec<serde_json::Value> = v
                .iter()
                .map(|(l, v, u)| serde_json::json!({"label": l, "value": v, "uom": u, "warn": "1"}))
                .collect();
            serde_json::to_string(&items).expect("json")
        };
        acc.add(1, &items(&[("time", Some(1.0), "s"), ("b", Some(4.0), "")]))
            .expect("add");
        acc.add(
            1,
            &items(&[("time", Some(3.0), "s"), ("time", Some(7.0), "ms")]),
        )
        .expect("add");
        acc.add(0, &items(&[("time", None, "s"), ("B", Some(2.0), "")]))
            .expect("add");
        acc.add(0, "[]").expect("add");
        assert!(acc.add(0, "{").is_err());
        let rows: Vec<(i64, String, String, i64, f64, f64, f64)> = acc
            .finish()
            .into_iter()
            .map(|p| {
                (
                    p.bucket,
                    p.label,
                    p.uom,
                    p.count,
                    p.values.min,
                    p.values.avg,
                    p.values.max,
                )
            })
            .collect();
        let row = |b: i64, l: &str, u: &str, n: i64, min: f64, avg: f64, max: f64| {
            (b, l.to_string(), u.to_string(), n, min, avg, max)
        };
        assert_eq!(
            rows,
            vec![
                row(0, "B", "", 1, 2.0, 2.0, 2.0),
                row(1, "b", "", 1, 4.0, 4.0, 4.0),
                row(1, "time", "ms", 1, 7.0, 7.0, 7.0),
                row(1, "time", "s", 2, 1.0, 2.0, 3.0),
            ]
        );
    }

    #[test]
    fn severities_map_back_to_states() {
        for s in [State::Ok, State::Warning, State::Unknown, State::Critical] {
            assert_eq!(state_of_severity(i64::from(s.severity())), s);
        }
    }
}
