//! `GET /status` (the daemon's own health) and `POST /reload`.

use super::super::auth::Caller;
use super::super::error::{ApiError, JsonBody};
use super::super::AppState;
use crate::config::http::Role;
use crate::daemon::live::StateCounts;
use crate::daemon::ReloadOutcome;
use axum::extract::State;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long a status request waits for the database to answer.
const DB_PROBE: Duration = Duration::from_secs(2);
/// How long a reload request waits for the new configuration to run.
const RELOAD_WAIT: Duration = Duration::from_secs(30);

#[derive(Serialize)]
pub(super) struct Status {
    version: &'static str,
    started: DateTime<Utc>,
    uptime_s: i64,
    config: String,
    /// False while a configuration is being (re)started: the rest is absent then.
    running: bool,
    generation: Option<u64>,
    generation_started: Option<DateTime<Utc>>,
    last_reload: Option<ReloadOutcome>,
    database: Option<Database>,
    checks: Option<Checks>,
    /// The engine's own figures: runs in flight, process slots, scheduler
    /// lateness, missed slots, writer queue and spool depth, store writes,
    /// open alarms and the outbox backlog.
    engine: crate::metrics::MetricsSnapshot,
}

#[derive(Serialize)]
struct Database {
    store: String,
    reachable: bool,
    error: Option<String>,
}

#[derive(Serialize)]
struct Checks {
    configured: usize,
    #[serde(flatten)]
    states: StateCounts,
}

pub(super) async fn status(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Status>, ApiError> {
    caller.require(Role::Read)?;
    let started = app.shared.started();
    let mut status = Status {
        version: env!("CARGO_PKG_VERSION"),
        started,
        uptime_s: (Utc::now() - started).num_seconds(),
        config: app.shared.config_path().display().to_string(),
        running: false,
        generation: None,
        generation_started: None,
        last_reload: app.shared.last_reload(),
        database: None,
        checks: None,
        engine: crate::metrics::snapshot(),
    };
    let Some(generation) = app.shared.current() else {
        return Ok(Json(status));
    };
    let probe = tokio::time::timeout(DB_PROBE, generation.store.schema_version()).await;
    let (reachable, error) = match probe {
        Ok(Ok(_)) => (true, None),
        Ok(Err(e)) => (false, Some(e.to_string())),
        Err(_) => (false, Some(format!("no answer within {DB_PROBE:?}"))),
    };
    status.running = true;
    status.generation = Some(generation.number);
    status.generation_started = Some(generation.started);
    status.database = Some(Database {
        store: generation.store.describe(),
        reachable,
        error,
    });
    status.checks = Some(Checks {
        configured: generation.live.len(),
        states: generation.live.counts(),
    });
    Ok(Json(status))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReloadRequest {}

/// `GET /metrics`: the Prometheus text format.
pub(super) async fn metrics(
    Extension(caller): Extension<Caller>,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    caller.require(Role::Read)?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render_text(),
    ))
}

#[derive(Serialize)]
pub(super) struct Reloaded {
    generation: u64,
    checks: usize,
}

/// Loads the configuration file again; refused (422, every error listed)
/// when it is invalid, else the daemon switches to it (as on SIGHUP) and
/// the answer comes once the new configuration runs.
pub(super) async fn reload(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(ReloadRequest {}): JsonBody<ReloadRequest>,
) -> Result<Json<Reloaded>, ApiError> {
    caller.require(Role::Admin)?;
    let path = app.shared.config_path().to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || crate::daemon::reload(&path))
        .await
        .map_err(|e| ApiError::internal(format!("loading the configuration: {e}")))?;
    let config = match loaded {
        Ok(c) => c,
        Err(errors) => {
            let by = format!("API ({})", caller.name);
            app.shared
                .record_reload(ReloadOutcome::refused(&by, &errors));
            return Err(ApiError::unprocessable(errors.to_string()));
        }
    };
    let checks = config.checks.len();
    let mut watch = app.shared.watch();
    let before = app.shared.generations();
    if !app.shared.request_reload(config) {
        return Err(ApiError::conflict("a reload is already under way"));
    }
    app.shared
        .record_reload(ReloadOutcome::taken(&format!("API ({})", caller.name)));
    let running = tokio::time::timeout(RELOAD_WAIT, async {
        loop {
            if let Some(g) = watch.borrow_and_update().as_ref() {
                if g.number > before {
                    return Some(g.number);
                }
            }
            if watch.changed().await.is_err() {
                return None;
            }
        }
    })
    .await;
    match running {
        Ok(Some(generation)) => Ok(Json(Reloaded { generation, checks })),
        _ => Err(ApiError::unavailable(format!(
            "the new configuration was taken but is not running after {RELOAD_WAIT:?} (the old one may still be finishing its checks); see GET /api/v1/status"
        ))),
    }
}
