//! `GET /clusters`, `GET /clusters/{name}` (live placement),
//! `GET /clusters/{name}/plan?failed=SERVER` (a dry-run reorganisation) and
//! `POST /clusters/{name}/vms/{vm}/{start|stop|migrate}` (admin): by-hand
//! operations through the executor's safety rules, journalled like a
//! reorganisation step.

use super::super::auth::Caller;
use super::super::error::{ApiError, JsonBody, QueryArgs};
use super::super::AppState;
use crate::cluster::{OpOptions, OpOutcome, OpReport, ReorgError, ReorgReport, VmOp};
use crate::config::http::Role;
use crate::config::ClusterConfig;
use crate::daemon::Generation;
use crate::plugin_output::State;
use crate::query::ClusterStatus;
use crate::state::StateType;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
pub(super) struct ClusterSummary {
    name: String,
    driver: &'static str,
    servers: Vec<String>,
    vms: usize,
}

pub(super) async fn list(
    AxState(app): AxState<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<ClusterSummary>>, ApiError> {
    caller.require(Role::Read)?;
    let generation = app.generation()?;
    Ok(Json(
        generation
            .config
            .clusters
            .iter()
            .map(|c| ClusterSummary {
                name: c.name.clone(),
                driver: c.driver.name(),
                servers: c.servers.iter().map(|s| s.name.clone()).collect(),
                vms: c.vms.len(),
            })
            .collect(),
    ))
}

fn cluster<'a>(generation: &'a Generation, name: &str) -> Result<&'a ClusterConfig, ApiError> {
    generation.config.cluster(name).ok_or_else(|| {
        let names: Vec<&str> = generation
            .config
            .clusters
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        let hint = crate::suggest::did_you_mean(name, &names);
        ApiError::not_found(format!("no cluster named {name:?}{hint}"))
    })
}

fn reorg_error(e: ReorgError) -> ApiError {
    match e {
        ReorgError::Unknown { .. } | ReorgError::UnknownServer { .. } => {
            ApiError::not_found(e.to_string())
        }
        ReorgError::Busy { .. } => ApiError::conflict(e.to_string()),
        ReorgError::NoFence { .. }
        | ReorgError::NotConfirmedDead { .. }
        | ReorgError::FenceFailed { .. }
        | ReorgError::StillRunning { .. }
        | ReorgError::RestoreDisabled(_)
        | ReorgError::NotBack { .. } => ApiError::unprocessable(e.to_string()),
        other => ApiError::internal(other.to_string()),
    }
}

pub(super) async fn status(
    AxState(app): AxState<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<ClusterStatus>, ApiError> {
    caller.require(Role::Read)?;
    let generation = app.generation()?;
    let cluster = cluster(&generation, &name)?;
    crate::query::cluster_status(cluster)
        .await
        .map(Json)
        .map_err(reorg_error)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PlanQuery {
    /// The server to plan the failure of.
    failed: String,
}

pub(super) async fn plan(
    AxState(app): AxState<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    QueryArgs(q): QueryArgs<PlanQuery>,
) -> Result<Json<ReorgReport>, ApiError> {
    caller.require(Role::Read)?;
    let generation = app.generation()?;
    let cluster = cluster(&generation, &name)?;
    let dead = confirmed_dead(&generation, cluster).contains(&q.failed);
    crate::query::cluster_plan(cluster, &q.failed, dead)
        .await
        .map(Json)
        .map_err(reorg_error)
}

/// The cluster's servers whose alive check is HARD CRITICAL now.
fn confirmed_dead(generation: &Generation, cluster: &ClusterConfig) -> Vec<String> {
    cluster
        .servers
        .iter()
        .filter(|s| {
            s.alive
                .as_deref()
                .and_then(|check| generation.live.index(check))
                .and_then(|i| generation.live.row(i))
                .and_then(|row| row.live)
                .is_some_and(|e| e.state == State::Critical && e.state_type == StateType::Hard)
        })
        .map(|s| s.name.clone())
        .collect()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct OpRequest {
    /// `start`: the server (default: chosen by free memory).
    server: Option<String>,
    /// `migrate`: the target server.
    to: Option<String>,
    /// `migrate`: stop and start instead of a live migration.
    #[serde(default)]
    cold: bool,
    /// Decide and report only.
    #[serde(default)]
    dry_run: bool,
}

/// The answer to an operation: the report, with a status that says how it ended.
pub(super) struct OpAnswer(OpReport);

impl IntoResponse for OpAnswer {
    fn into_response(self) -> Response {
        let status = match self.0.outcome {
            OpOutcome::Done | OpOutcome::Unchanged | OpOutcome::Planned => StatusCode::OK,
            OpOutcome::Refused => StatusCode::CONFLICT,
            OpOutcome::Failed => StatusCode::BAD_GATEWAY,
        };
        (status, Json(self.0)).into_response()
    }
}

pub(super) async fn operate(
    AxState(app): AxState<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, vm, op)): Path<(String, String, String)>,
    JsonBody(req): JsonBody<OpRequest>,
) -> Result<OpAnswer, ApiError> {
    caller.require(Role::Admin)?;
    let generation = app.generation()?;
    let cluster = cluster(&generation, &name)?;
    let op = match op.as_str() {
        "start" if req.to.is_none() && !req.cold => VmOp::Start {
            vm,
            server: req.server,
        },
        "stop" if req.to.is_none() && req.server.is_none() && !req.cold => VmOp::Stop { vm },
        "migrate" if req.server.is_none() => VmOp::Migrate {
            vm,
            to: req
                .to
                .ok_or_else(|| ApiError::bad_request("migrate needs `to`: the target server"))?,
            cold: req.cold,
        },
        "start" | "stop" | "migrate" => {
            return Err(ApiError::bad_request(format!(
                "{op}: takes {}",
                match op.as_str() {
                    "start" => "`server` (optional) and `dry_run`",
                    "stop" => "only `dry_run`",
                    _ => "`to`, `cold` and `dry_run`",
                }
            )))
        }
        other => {
            return Err(ApiError::not_found(format!(
                "no operation {other:?}: start, stop or migrate"
            )))
        }
    };
    let opts = OpOptions {
        dry_run: req.dry_run,
        confirmed_dead: confirmed_dead(&generation, cluster),
        by: format!("API ({})", caller.name),
    };
    crate::cluster::operate(cluster, &op, &opts)
        .await
        .map(OpAnswer)
        .map_err(reorg_error)
}
