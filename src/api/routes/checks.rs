//! `GET /checks` (filtered, paged by cursor), `GET /checks/{name}` and
//! `POST /checks/{name}/run`.

use super::super::auth::Caller;
use super::super::error::{ApiError, JsonBody, QueryArgs};
use super::super::AppState;
use crate::alarm::lifecycle::Suppression;
use crate::config::http::Role;
use crate::daemon::control::CheckAlarm;
use crate::daemon::live::{CheckInfo, CheckRow, LiveEntry};
use crate::daemon::RunNow;
use crate::plugin_output::{PerfDatum, State};
use crate::result::CheckResult;
use crate::state::StateType;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Rows per page unless the caller asks for another number.
const DEFAULT_LIMIT: usize = 100;
/// The most rows one page holds.
const MAX_LIMIT: usize = 5000;
/// How long "run now" waits for the result unless told otherwise.
const DEFAULT_WAIT: Duration = Duration::from_secs(10);
/// The longest "run now" waits.
const MAX_WAIT: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// Comma-separated states (`ok,warning,critical,unknown,pending`) or `problem`.
    state: Option<String>,
    /// true: only checks whose open alarm is acknowledged, silenced or in
    /// maintenance; false: only the others.
    handled: Option<bool>,
    /// Only checks on this host.
    host: Option<String>,
    /// Only checks with this tag.
    tag: Option<String>,
    /// Only checks whose name matches this glob.
    name: Option<String>,
    /// Rows per page.
    limit: Option<usize>,
    /// The `next_cursor` of the page before.
    cursor: Option<String>,
}

/// A listed check: its row and its open alarm, if any.
#[derive(Serialize)]
pub(super) struct Listed {
    #[serde(flatten)]
    row: CheckRow,
    /// The open alarm: its id, whether acknowledged, what holds it back.
    alarm: Option<CheckAlarm>,
}

/// Whether a check's open alarm is taken care of: acknowledged, silenced or in maintenance.
fn handled(alarm: Option<&CheckAlarm>) -> bool {
    alarm.is_some_and(|a| {
        a.acked
            || matches!(
                a.suppressed,
                Some(Suppression::Maintenance { .. } | Suppression::Silence { .. })
            )
    })
}

#[derive(Serialize)]
pub(super) struct Page {
    checks: Vec<Listed>,
    /// Pass as `cursor` for the next page; absent on the last.
    next_cursor: Option<String>,
}

/// Which states a `state=` filter lets through.
#[derive(Default)]
struct StateFilter {
    states: Vec<State>,
    pending: bool,
}

impl StateFilter {
    fn parse(s: &str) -> Result<StateFilter, ApiError> {
        let mut f = StateFilter::default();
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word.to_ascii_lowercase().as_str() {
                "ok" => f.states.push(State::Ok),
                "warning" => f.states.push(State::Warning),
                "critical" => f.states.push(State::Critical),
                "unknown" => f.states.push(State::Unknown),
                "pending" => f.pending = true,
                "problem" => f
                    .states
                    .extend([State::Warning, State::Critical, State::Unknown]),
                other => {
                    return Err(ApiError::bad_request(format!(
                        "state={other:?}: expected ok, warning, critical, unknown, pending or problem (comma-separated)"
                    )))
                }
            }
        }
        Ok(f)
    }

    fn keeps(&self, live: Option<&LiveEntry>) -> bool {
        match live {
            None => self.pending,
            Some(e) => self.states.contains(&e.state),
        }
    }
}

pub(super) async fn list(
    AxState(app): AxState<AppState>,
    Extension(caller): Extension<Caller>,
    QueryArgs(q): QueryArgs<ListQuery>,
) -> Result<Json<Page>, ApiError> {
    caller.require(Role::Read)?;
    let generation = app.generation()?;
    let states = q.state.as_deref().map(StateFilter::parse).transpose()?;
    let name = q
        .name
        .as_deref()
        .map(glob::Pattern::new)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("name: not a valid glob: {e}")))?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit={limit}: expected 1 to {MAX_LIMIT}"
        )));
    }
    let alarms = app.shared.alarms().alarms_by_check().borrow().clone();
    let keep = |info: &CheckInfo, live: Option<&LiveEntry>| {
        q.handled
            .is_none_or(|h| handled(alarms.get(&info.name)) == h)
            && q.host.as_deref().is_none_or(|h| info.host == h)
            && q.tag
                .as_deref()
                .is_none_or(|t| info.tags.iter().any(|x| x == t))
            && name.as_ref().is_none_or(|p| p.matches(&info.name))
            && states.as_ref().is_none_or(|s| s.keeps(live))
    };
    let (rows, next_cursor) = generation.live.page(q.cursor.as_deref(), limit, keep);
    let checks = rows
        .into_iter()
        .map(|row| Listed {
            alarm: alarms.get(&row.info.name).cloned(),
            row,
        })
        .collect();
    Ok(Json(Page {
        checks,
        next_cursor,
    }))
}

#[derive(Serialize)]
pub(super) struct OneCheck {
    #[serde(flatten)]
    row: CheckRow,
    /// The open alarm, if any.
    alarm: Option<CheckAlarm>,
    /// The last stored result, in full.
    last_result: Option<crate::store::HistoryRow>,
}

pub(super) async fn one(
    AxState(app): AxState<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<OneCheck>, ApiError> {
    caller.require(Role::Read)?;
    let generation = app.generation()?;
    let index = find(&generation, &name)?;
    let row = generation
        .live
        .row(index)
        .ok_or_else(|| ApiError::not_found(format!("no check named {name:?}")))?;
    // The last result lies within a few intervals (or within the last day
    // for slow checks); the live view keeps only the first line.
    let since = Duration::from_secs_f64(row.info.interval_s * 3.0 + 600.0);
    let last_result = match crate::query::history(&generation.store, &name, since).await {
        Ok(rows) => rows.into_iter().last(),
        Err(e) => {
            tracing::debug!(error = %e, check = %name, "last result not read");
            None
        }
    };
    let alarm = app
        .shared
        .alarms()
        .alarms_by_check()
        .borrow()
        .get(&name)
        .cloned();
    Ok(Json(OneCheck {
        row,
        alarm,
        last_result,
    }))
}

fn find(generation: &crate::daemon::Generation, name: &str) -> Result<usize, ApiError> {
    generation.live.index(name).ok_or_else(|| {
        let names: Vec<&str> = generation.live.names().collect();
        let hint = crate::suggest::did_you_mean(name, &names);
        ApiError::not_found(format!("no check named {name:?}{hint}"))
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RunRequest {
    /// Seconds to wait for the result (default 10, at most 60).
    wait_s: Option<f64>,
}

#[derive(Serialize)]
pub(super) struct RunAnswer {
    run: RunNow,
    /// The result, if it came within the wait.
    result: Option<ResultView>,
}

/// One finished run as the API shows it.
#[derive(Serialize)]
pub(super) struct ResultView {
    check: String,
    host: String,
    kind: &'static str,
    state: State,
    state_type: StateType,
    attempt: u32,
    output: String,
    long_output: String,
    perfdata: Vec<PerfDatum>,
    planned: DateTime<Utc>,
    started: DateTime<Utc>,
    duration_ms: f64,
}

impl From<&CheckResult> for ResultView {
    fn from(r: &CheckResult) -> ResultView {
        ResultView {
            check: r.check.clone(),
            host: r.host.clone(),
            kind: r.kind,
            state: r.state.state(),
            state_type: r.state.state_type(),
            attempt: r.state.attempt(),
            output: r.output.output.clone(),
            long_output: r.output.long_output.clone(),
            perfdata: r.output.perfdata.clone(),
            planned: r.planned,
            started: r.started,
            duration_ms: r.duration.as_secs_f64() * 1000.0,
        }
    }
}

/// Runs a check now and waits (a few seconds) for its result: 200 with the
/// result, or 202 when it did not come within the wait.
pub(super) async fn run_now(
    AxState(app): AxState<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<RunRequest>,
) -> Result<(StatusCode, Json<RunAnswer>), ApiError> {
    caller.require(Role::Operate)?;
    let wait = match req.wait_s {
        None => DEFAULT_WAIT,
        Some(s) if s.is_finite() && (0.0..=MAX_WAIT.as_secs_f64()).contains(&s) => {
            Duration::from_secs_f64(s)
        }
        Some(s) => {
            return Err(ApiError::bad_request(format!(
                "wait_s={s}: expected 0 to {}",
                MAX_WAIT.as_secs()
            )))
        }
    };
    let generation = app.generation()?;
    let index = find(&generation, &name)?;
    // Wait before asking, so a quick result is not missed.
    let next = generation.next_result(&name);
    let run =
        generation.scheduler.run_now(index).await.ok_or_else(|| {
            ApiError::unavailable("the scheduler is stopping; try again in a moment")
        })?;
    let result = match tokio::time::timeout(wait, next).await {
        Ok(Ok(r)) => Some(ResultView::from(r.as_ref())),
        _ => None,
    };
    let status = if result.is_some() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(RunAnswer { run, result })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResultsQuery {
    /// How far back, in seconds (default 3600).
    since_s: Option<u64>,
}

/// `GET /checks/{name}/results?since_s=N`: the stored results of the last
/// N seconds, oldest first, in full (what `laxmon history` prints).
pub(super) async fn results(
    AxState(app): AxState<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    QueryArgs(q): QueryArgs<ResultsQuery>,
) -> Result<Json<Vec<crate::store::HistoryRow>>, ApiError> {
    caller.require(Role::Read)?;
    let generation = app.generation()?;
    let since = Duration::from_secs(q.since_s.unwrap_or(3600).min(400 * 86_400));
    crate::query::history(&generation.store, &name, since)
        .await
        .map(Json)
        .map_err(ApiError::store)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SeriesQuery {
    /// Start of the range (RFC 3339); default `to` minus `range`.
    from: Option<DateTime<Utc>>,
    /// End of the range (RFC 3339); default now.
    to: Option<DateTime<Utc>>,
    /// The range's length when `from` is not given (`24h`, `7d`; default 24h).
    range: Option<String>,
    /// How many points (buckets) at most (default 200, at most 10000).
    points: Option<u32>,
}

/// `GET /checks/{name}/history`: the check's state changes and its results
/// over a range, downsampled to at most `points` buckets (duration and
/// every perfdata label: min, avg, max), from the store.
pub(super) async fn history(
    AxState(app): AxState<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    QueryArgs(q): QueryArgs<SeriesQuery>,
) -> Result<Json<crate::store::HistorySeries>, ApiError> {
    caller.require(Role::Read)?;
    let generation = app.generation()?;
    find(&generation, &name)?;
    let to = q.to.unwrap_or_else(Utc::now);
    let from = match (q.from, q.range.as_deref()) {
        (Some(from), None) => from,
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("give `from` or `range`, not both"))
        }
        (None, range) => {
            let range = range.unwrap_or("24h");
            let d = crate::config::duration::parse(range)
                .map_err(|e| ApiError::bad_request(format!("range {range:?}: {e}")))?;
            chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| to.checked_sub_signed(d))
                .ok_or_else(|| ApiError::bad_request(format!("range {range:?}: too long")))?
        }
    };
    if from >= to {
        return Err(ApiError::bad_request("`from` must be before `to`"));
    }
    let points = q.points.unwrap_or(200);
    if points == 0 || points > crate::store::MAX_SERIES_POINTS {
        return Err(ApiError::bad_request(format!(
            "points={points}: expected 1 to {}",
            crate::store::MAX_SERIES_POINTS
        )));
    }
    crate::query::history_series(&generation.store, &name, from, to, points)
        .await
        .map(Json)
        .map_err(ApiError::store)
}
