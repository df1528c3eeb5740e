//! The web dashboard: server-rendered HTML pages for the staff who were just
//! paged (problems, hosts and services, check and alarm detail, clusters,
//! silences), served by the daemon beside the operations API.
//!
//! Pages read what the API reads (the live view, the alarm stage's handles,
//! [`crate::query`]); every change a page makes is a form posted to
//! `/ui/...`, which checks the session's CSRF token and then sends the
//! matching request to the API itself with the session's token, so the API's
//! rules, idempotency and audit log apply unchanged. A small script
//! (`assets/app.js`) refreshes the live parts of a page from the API's event
//! stream and sends forms without leaving the page; without it every page
//! and form still works.
//!
//! This module must never change anything except by forwarding to the API,
//! and never put a token where a script or a log can read it.

mod act;
mod alarm;
mod check;
mod cluster;
mod feed;
mod hosts;
mod layout;
mod problems;
mod session;
mod silences;
pub mod svg;
pub mod text;

use crate::api::AppState;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

/// What every page handler gets: the API's state and the API itself (to
/// forward changes to).
#[derive(Clone)]
pub(crate) struct WebState {
    pub(crate) app: AppState,
    pub(crate) api: Router,
}

/// The dashboard's routes, with `api` (the operations API's router) behind
/// them for every other path.
pub(crate) fn router(app: AppState, api: Router) -> Router {
    let state = WebState {
        app,
        api: api.clone(),
    };
    Router::new()
        .route("/", get(problems::page))
        .route("/hosts", get(hosts::page))
        .route("/check/{name}", get(check::page))
        .route("/alarm/{id}", get(alarm::page))
        .route("/clusters", get(cluster::list))
        .route("/cluster/{name}", get(cluster::page))
        .route("/silences", get(silences::page))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/ui/alarms/{id}/ack", post(act::ack))
        .route("/ui/alarms/{id}/unack", post(act::unack))
        .route("/ui/ack", post(act::bulk_ack))
        .route("/ui/checks/{name}/run", post(act::run_now))
        .route("/ui/silences", post(act::add_silence))
        .route("/ui/silences/{id}/end", post(act::end_silence))
        .route("/ui/clusters/{name}/vms/{vm}/{op}", post(act::vm_operation))
        .route("/static/app.js", get(script))
        .route("/static/app.css", get(style))
        .with_state(state)
        .fallback_service(api)
}

/// The dashboard's script.
const SCRIPT: &str = include_str!("assets/app.js");
/// The dashboard's style sheet.
const STYLE: &str = include_str!("assets/app.css");

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SCRIPT,
    )
}

async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        STYLE,
    )
}
