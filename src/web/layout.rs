//! The page shell every view shares (navigation, who is logged in, the
//! flash message, the live-status indicator) and the small pieces views
//! repeat: state badges and action forms.
//!
//! Everything is rendered with maud, which escapes every value it inserts;
//! this file never builds HTML by string concatenation.

use super::session::{clear_flash, Viewer};
use super::text;
use super::WebState;
use crate::config::http::Role;
use crate::plugin_output::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// Which navigation entry a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Nav {
    Problems,
    Hosts,
    Clusters,
    Silences,
}

const NAV: &[(Nav, &str, &str)] = &[
    (Nav::Problems, "/", "Problems"),
    (Nav::Hosts, "/hosts", "Hosts & services"),
    (Nav::Clusters, "/clusters", "Clusters"),
    (Nav::Silences, "/silences", "Silences"),
];

fn head(title: &str) -> Markup {
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        meta name="color-scheme" content="light dark";
        title { (title) " · laxmon" }
        link rel="stylesheet" href="/static/app.css";
        script src="/static/app.js" defer {}
    }
}

/// A whole page. `live` pages refresh their `data-live` parts from the
/// event stream.
pub(super) fn page(
    state: &WebState,
    v: &Viewer,
    nav: Nav,
    title: &str,
    live: bool,
    main: Markup,
) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head { (head(title)) }
            body data-live-page=[live.then_some("1")] {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    nav aria-label="Main" {
                        a.brand href="/" { "laxmon" }
                        @for (n, href, label) in NAV {
                            @if *n == nav {
                                a href=(href) aria-current="page" { (label) }
                            } @else {
                                a href=(href) { (label) }
                            }
                        }
                    }
                    div.who {
                        @if let Some(csrf) = &v.csrf {
                            span { (v.caller.name) " (" (v.caller.role.name()) ")" }
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(csrf);
                                button.link type="submit" { "Log out" }
                            }
                        } @else {
                            span { "Anonymous (read only)" }
                            a href={ "/login?next=" (text::percent_encode(&v.here)) } { "Log in" }
                        }
                        @if live {
                            span #live-status.live-status role="status" { "live updates off" }
                        }
                    }
                }
                div #flash.flash role="status" aria-live="polite" {
                    @if let Some(f) = &v.flash { (f) }
                }
                main #main { (main) }
            }
        }
    };
    let mut response = (
        [(header::CACHE_CONTROL, "no-store")],
        maud::Markup::from(markup),
    )
        .into_response();
    if !v.live {
        clear_flash(
            &mut response,
            v.flash.is_some(),
            state.app.http.tls.is_some(),
        );
    }
    response
}

/// A page without navigation (the login form).
pub(super) fn bare(title: &str, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head(title)) }
            body { main #main { (main) } }
        }
    }
}

/// A state's word in its colour.
pub(super) fn badge(state: Option<State>) -> Markup {
    html! { span class={ "st " (text::state_class(state)) } { (text::state_word(state)) } }
}

/// A fresh idempotency key for one form: a resubmitted form (reload,
/// double click) is answered again instead of done twice.
fn idempotency_key() -> String {
    let mut bytes = [0u8; 12];
    if getrandom::fill(&mut bytes).is_err() {
        return String::new();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An action form posting to `action`, or, for a viewer who may not do it,
/// a note saying what it takes.
pub(super) fn action_form(
    v: &Viewer,
    action: &str,
    role: Role,
    class: &str,
    body: Markup,
) -> Markup {
    action_form_id(v, None, action, role, class, body)
}

/// [`action_form`] with an element id (for inputs elsewhere on the page
/// that belong to it through their `form` attribute).
pub(super) fn action_form_id(
    v: &Viewer,
    id: Option<&str>,
    action: &str,
    role: Role,
    class: &str,
    body: Markup,
) -> Markup {
    if !v.may(role) {
        return html! {
            span.needs {
                @if v.csrf.is_none() {
                    a href={ "/login?next=" (text::percent_encode(&v.here)) } { "Log in" } " to act"
                } @else {
                    "needs the " (role.name()) " role"
                }
            }
        };
    }
    html! {
        form id=[id] class=(class) method="post" action=(action) data-js {
            input type="hidden" name="csrf" value=[v.csrf.as_deref()];
            input type="hidden" name="idem" value=(idempotency_key());
            input type="hidden" name="back" value=(v.here);
            (body)
        }
    }
}

/// Inline SVG (already escaped by its builder).
pub(super) fn svg(text: String) -> Markup {
    PreEscaped(text)
}
