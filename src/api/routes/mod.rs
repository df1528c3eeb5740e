//! The API's routes: one file per resource. Every route is behind
//! authentication; each handler checks the role it needs first.

mod alarms;
mod checks;
mod clusters;
mod events;
mod status;

use super::error::ApiError;
use super::AppState;
use axum::routing::{get, post};
use axum::Router;

/// Every route of the API, with authentication in front.
pub(super) fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/status", get(status::status))
        .route("/reload", post(status::reload))
        .route("/checks", get(checks::list))
        .route("/checks/{name}", get(checks::one))
        .route("/checks/{name}/run", post(checks::run_now))
        .route("/checks/{name}/results", get(checks::results))
        .route("/checks/{name}/history", get(checks::history))
        .route("/events", get(events::events))
        .route("/audit", get(alarms::audit))
        .route("/alarms", get(alarms::list))
        .route("/alarms/{id}", get(alarms::one))
        .route("/alarms/ack", post(alarms::ack_matching))
        .route("/alarms/unack", post(alarms::unack_matching))
        .route("/alarms/{id}/ack", post(alarms::ack))
        .route("/alarms/{id}/unack", post(alarms::unack))
        .route("/silences", get(alarms::silences).post(alarms::add_silence))
        .route(
            "/silences/{id}",
            axum::routing::delete(alarms::remove_silence),
        )
        .route("/clusters", get(clusters::list))
        .route("/clusters/{name}", get(clusters::status))
        .route("/clusters/{name}/plan", get(clusters::plan))
        .route("/clusters/{name}/vms/{vm}/{op}", post(clusters::operate));
    Router::new()
        .nest("/api/v1", api)
        .route("/metrics", get(status::metrics))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::gate::gate,
        ))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {}", uri.path()))
}
