//! Alarms and silences: `POST /alarms/{id}/ack`, `/alarms/{id}/unack`,
//! `/alarms/ack` and `/alarms/unack` (bulk, by filter), `GET /silences`,
//! `POST /silences` (with a dry run), `DELETE /silences/{id}`. Every change
//! goes through the alarm stage's control handle, and the answer is the
//! alarm's (or silence's) new state, not "submitted".

use super::super::auth::Caller;
use super::super::error::{ApiError, JsonBody, QueryArgs};
use super::super::AppState;
use crate::alarm::lifecycle::AckTerms;
use crate::alarm::silence::{NewSilence, Silence, SilenceMatch};
use crate::config::http::Role;
use crate::daemon::control::{AckCommand, AlarmFilter, AlarmView, ControlError};
use crate::plugin_output::State;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A control handle's refusal as an API error.
pub(super) fn control_error(e: ControlError) -> ApiError {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let word = match e {
        ControlError::NotFound(_) => "not_found",
        ControlError::Conflict(_) => "conflict",
        ControlError::Invalid(_) => "unprocessable",
        ControlError::Unavailable(_) => "unavailable",
    };
    ApiError::new(status, word, e.to_string())
}

/// When an acknowledgement ends: a time, or a duration from now (`2h`).
fn expires_at(text: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = crate::config::duration::parse(text).map_err(|e| {
        ApiError::bad_request(format!(
            "expires {text:?}: neither an RFC 3339 time (2026-12-03T08:00:00Z) nor a duration (2h): {e}"
        ))
    })?;
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| Utc::now().checked_add_signed(d))
        .ok_or_else(|| ApiError::bad_request(format!("expires {text:?}: too far away")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// Only alarms that are still open.
    #[serde(default)]
    open: bool,
    /// Alarms per page (default 100, at most 1000).
    limit: Option<u32>,
    /// The `next_cursor` of the page before.
    cursor: Option<u64>,
}

#[derive(Serialize)]
pub(super) struct AlarmsPage {
    alarms: Vec<AlarmView>,
    /// Pass as `cursor` for the next (older) page; absent on the last.
    next_cursor: Option<u64>,
}

/// `GET /alarms`: alarms, newest first, paged.
pub(super) async fn list(
    AxState(app): AxState<AppState>,
    Extension(caller): Extension<Caller>,
    QueryArgs(q): QueryArgs<ListQuery>,
) -> Result<Json<AlarmsPage>, ApiError> {
    caller.require(Role::Read)?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > crate::query::PAGE_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit={limit}: expected 1 to {}",
            crate::query::PAGE_LIMIT
        )));
    }
    let generation = app.generation()?;
    let alarms = crate::query::alarms_page(&generation.store, q.open, q.cursor, limit)
        .await
        .map_err(ApiError::store)?;
    let next_cursor = (alarms.len() == limit as usize)
        .then(|| alarms.last().map(|a| a.id))
        .flatten();
    Ok(Json(AlarmsPage {
        alarms,
        next_cursor,
    }))
}

/// `GET /alarms/{id}`: the alarm and its whole timeline: state changes,
/// notifications with their delivery outcome, actions with exit status and
/// output, acknowledgements, audit entries.
pub(super) async fn one(
    AxState(app): AxState<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<u64>,
) -> Result<Json<crate::store::AlarmTimeline>, ApiError> {
    caller.require(Role::Read)?;
    let generation = app.generation()?;
    crate::query::alarm_timeline(&generation.store, id)
        .await
        .map_err(ApiError::store)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no alarm {id}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    alarm: Option<u64>,
    check: Option<String>,
    limit: Option<u32>,
    cursor: Option<i64>,
}

#[derive(Serialize)]
pub(super) struct AuditPage {
    entries: Vec<crate::store::AuditRow>,
    next_cursor: Option<i64>,
}

/// `GET /audit`: who changed what, newest first, paged.
pub(super) async fn audit(
    AxState(app): AxState<AppState>,
    Extension(caller): Extension<Caller>,
    QueryArgs(q): QueryArgs<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    caller.require(Role::Read)?;
    let limit = q.limit.unwrap_or(100).clamp(1, crate::query::PAGE_LIMIT);
    let generation = app.generation()?;
    let filter = crate::store::AuditFilter {
        alarm_id: q.alarm,
        check: q.check,
        before_id: q.cursor,
        limit,
    };
    let entries = crate::query::audit(&generation.store, &filter)
        .await
        .map_err(ApiError::store)?;
    let next_cursor = (entries.len() == limit as usize)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(Json(AuditPage {
        entries,
        next_cursor,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AckRequest {
    /// Why (required).
    comment: String,
    /// When it ends: an RFC 3339 time or a duration from now.
    expires: Option<String>,
    /// Holds until recovery (default); false: ends at the next change to another problem state.
    sticky: Option<bool>,
}

impl AckRequest {
    fn terms(&self, caller: &Caller) -> Result<AckTerms, ApiError> {
        if self.comment.trim().is_empty() {
            return Err(ApiError::bad_request(
                "comment is required: say why, for the others on the team",
            ));
        }
        Ok(AckTerms {
            by: caller.name.clone(),
            comment: self.comment.clone(),
            expires: self.expires.as_deref().map(expires_at).transpose()?,
            sticky: self.sticky.unwrap_or(true),
        })
    }
}

pub(super) async fn ack(
    AxState(app): AxState<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<u64>,
    JsonBody(req): JsonBody<AckRequest>,
) -> Result<Json<AlarmView>, ApiError> {
    caller.require(Role::Operate)?;
    let terms = req.terms(&caller)?;
    app.shared
        .alarms()
        .ack(AckCommand {
            alarm_id: id,
            by: terms.by,
            comment: terms.comment,
            expires: terms.expires,
            sticky: terms.sticky,
        })
        .await
        .map(Json)
        .map_err(control_error)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct UnackRequest {}

pub(super) async fn unack(
    AxState(app): AxState<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<u64>,
    JsonBody(UnackRequest {}): JsonBody<UnackRequest>,
) -> Result<Json<AlarmView>, ApiError> {
    caller.require(Role::Operate)?;
    app.shared
        .alarms()
        .unack(id, &caller.name)
        .await
        .map(Json)
        .map_err(control_error)
}

/// Which open alarms a bulk request covers; every given criterion must match.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct FilterRequest {
    /// `warning`, `critical` or `unknown`.
    state: Option<String>,
    /// A host name or glob.
    host: Option<String>,
    /// A check name or glob.
    check: Option<String>,
    /// A tag of the check or its host.
    tag: Option<String>,
}

impl FilterRequest {
    fn filter(&self, unacknowledged: bool) -> Result<AlarmFilter, ApiError> {
        let state = match self
            .state
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None => None,
            Some("warning") => Some(State::Warning),
            Some("critical") => Some(State::Critical),
            Some("unknown") => Some(State::Unknown),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "filter.state {other:?}: expected warning, critical or unknown"
                )))
            }
        };
        if self.host.is_none() && self.check.is_none() && self.tag.is_none() && state.is_none() {
            return Err(ApiError::bad_request(
                "filter is empty: give at least one of state, host, check, tag (a bulk request never covers every alarm by accident)",
            ));
        }
        Ok(AlarmFilter {
            state,
            host: self.host.clone(),
            check: self.check.clone(),
            tag: self.tag.clone(),
            unacknowledged,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BulkAckRequest {
    filter: FilterRequest,
    comment: String,
    expires: Option<String>,
    sticky: Option<bool>,
}

/// One alarm's outcome in a bulk request.
#[derive(Serialize)]
pub(super) struct BulkOutcome {
    id: u64,
    /// The alarm's new state, when it worked.
    alarm: Option<AlarmView>,
    /// Why not, when it did not.
    error: Option<String>,
}

#[derive(Serialize)]
pub(super) struct BulkAnswer {
    /// How many alarms changed.
    changed: usize,
    results: Vec<BulkOutcome>,
}

fn bulk_answer(results: Vec<(u64, Result<AlarmView, ControlError>)>) -> BulkAnswer {
    let results: Vec<BulkOutcome> = results
        .into_iter()
        .map(|(id, r)| match r {
            Ok(alarm) => BulkOutcome {
                id,
                alarm: Some(alarm),
                error: None,
            },
            Err(e) => BulkOutcome {
                id,
                alarm: None,
                error: Some(e.to_string()),
            },
        })
        .collect();
    BulkAnswer {
        changed: results.iter().filter(|r| r.alarm.is_some()).count(),
        results,
    }
}

pub(super) async fn ack_matching(
    AxState(app): AxState<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(req): JsonBody<BulkAckRequest>,
) -> Result<Json<BulkAnswer>, ApiError> {
    caller.require(Role::Operate)?;
    let terms = AckRequest {
        comment: req.comment,
        expires: req.expires,
        sticky: req.sticky,
    }
    .terms(&caller)?;
    let filter = req.filter.filter(true)?;
    let results = app
        .shared
        .alarms()
        .ack_matching(filter, terms)
        .await
        .map_err(control_error)?;
    Ok(Json(bulk_answer(results)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BulkUnackRequest {
    filter: FilterRequest,
}

/// Un-acknowledges every acknowledged open alarm the filter matches.
pub(super) async fn unack_matching(
    AxState(app): AxState<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(req): JsonBody<BulkUnackRequest>,
) -> Result<Json<BulkAnswer>, ApiError> {
    caller.require(Role::Operate)?;
    let filter = req.filter.filter(false)?;
    let generation = app.generation()?;
    let glob = |p: &Option<String>, what: &str| {
        p.as_deref()
            .map(glob::Pattern::new)
            .transpose()
            .map_err(|e| ApiError::bad_request(format!("filter.{what}: not a valid glob: {e}")))
    };
    let (host, check) = (glob(&filter.host, "host")?, glob(&filter.check, "check")?);
    let by_check = app.shared.alarms().alarms_by_check().borrow().clone();
    let mut ids: Vec<u64> = by_check
        .iter()
        .filter(|(_, a)| a.acked)
        .filter(|(_, a)| filter.state.is_none_or(|s| a.state == s))
        .filter(|(name, _)| check.as_ref().is_none_or(|p| p.matches(name)))
        .filter(|(name, _)| {
            let row = generation
                .live
                .index(name)
                .and_then(|i| generation.live.row(i));
            let Some(row) = row else {
                return host.is_none() && filter.tag.is_none();
            };
            host.as_ref().is_none_or(|p| p.matches(&row.info.host))
                && filter
                    .tag
                    .as_ref()
                    .is_none_or(|t| row.info.tags.iter().any(|x| x == t))
        })
        .map(|(_, a)| a.alarm_id)
        .collect();
    ids.sort_unstable();
    let mut results = Vec::with_capacity(ids.len());
    for id in ids {
        results.push((id, app.shared.alarms().unack(id, &caller.name).await));
    }
    Ok(Json(bulk_answer(results)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SilencesQuery {
    /// Also the silences that ended or were removed.
    #[serde(default)]
    all: bool,
}

pub(super) async fn silences(
    AxState(app): AxState<AppState>,
    Extension(caller): Extension<Caller>,
    QueryArgs(q): QueryArgs<SilencesQuery>,
) -> Result<Json<Vec<Silence>>, ApiError> {
    caller.require(Role::Read)?;
    if q.all {
        let generation = app.generation()?;
        return crate::query::silences(&generation.store, true)
            .await
            .map(Json)
            .map_err(ApiError::store);
    }
    app.shared
        .alarms()
        .silences()
        .await
        .map(Json)
        .map_err(control_error)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SilenceRequest {
    /// Which checks: `hosts`, `checks` (globs), `tags`; all given must match.
    matchers: SilenceMatch,
    /// Why (required).
    comment: String,
    /// When it starts (default: now).
    starts: Option<DateTime<Utc>>,
    /// When it ends: an RFC 3339 time or a duration from now (required).
    ends: String,
    /// List what would be muted; change nothing.
    #[serde(default)]
    dry_run: bool,
}

#[derive(Serialize)]
pub(super) struct SilenceAnswer {
    /// The silence, unless this was a dry run.
    silence: Option<Silence>,
    /// The checks it covers now.
    checks: Vec<String>,
}

pub(super) async fn add_silence(
    AxState(app): AxState<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(req): JsonBody<SilenceRequest>,
) -> Result<(StatusCode, Json<SilenceAnswer>), ApiError> {
    caller.require(if req.dry_run {
        Role::Read
    } else {
        Role::Operate
    })?;
    let generation = app.generation()?;
    let new = NewSilence {
        matchers: req.matchers,
        comment: req.comment,
        by: caller.name.clone(),
        starts: req.starts,
        ends: expires_at(&req.ends)?,
    };
    new.validate(Utc::now())
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let checks = crate::alarm::silence::preview(&new.matchers, &generation.config)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    if req.dry_run {
        return Ok((
            StatusCode::OK,
            Json(SilenceAnswer {
                silence: None,
                checks,
            }),
        ));
    }
    let silence = app
        .shared
        .alarms()
        .add_silence(new)
        .await
        .map_err(control_error)?;
    Ok((
        StatusCode::CREATED,
        Json(SilenceAnswer {
            silence: Some(silence),
            checks,
        }),
    ))
}

pub(super) async fn remove_silence(
    AxState(app): AxState<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<u64>,
) -> Result<Json<Silence>, ApiError> {
    caller.require(Role::Operate)?;
    app.shared
        .alarms()
        .remove_silence(id, &caller.name)
        .await
        .map(Json)
        .map_err(control_error)
}
