//! Clusters: per cluster the servers, the VMs on each, the VMs that are
//! down and why, the last reorganisations, a dry-run plan, and by-hand VM
//! operations (admin role, with a confirmation).

use super::layout::{self, Nav};
use super::session::Viewer;
use super::text;
use super::WebState;
use axum::extract::{Path, State as AxState};
use axum::response::Response;
use maud::html;

/// `GET /clusters`.
pub(super) async fn list(AxState(state): AxState<WebState>, v: Viewer) -> Response {
    let Some(generation) = state.app.shared.current() else {
        let main = html! { p.note { "The daemon is (re)starting its configuration; this page refreshes by itself." } };
        return layout::page(&state, &v, Nav::Clusters, "Clusters", true, main);
    };
    let main = html! {
        h1 { "Clusters" }
        ul { @for c in &generation.config.clusters { li { a href={ "/cluster/" (text::segment(&c.name)) } { (c.name) } } } }
    };
    layout::page(&state, &v, Nav::Clusters, "Clusters", false, main)
}

/// `GET /cluster/{name}`.
pub(super) async fn page(
    AxState(state): AxState<WebState>,
    v: Viewer,
    Path(name): Path<String>,
) -> Response {
    let main = html! { h1 { (name) } };
    layout::page(&state, &v, Nav::Clusters, &name, false, main)
}
