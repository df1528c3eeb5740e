//! Silences: set one (with a preview of the checks it would mute now),
//! list the current and coming ones, end one early, and see the ones that
//! are over.

use super::layout::{self, action_form, Nav};
use super::session::Viewer;
use super::text;
use super::WebState;
use crate::alarm::silence::{Silence, SilenceMatch};
use crate::config::http::Role;
use axum::extract::{Query, State as AxState};
use axum::response::Response;
use chrono::Utc;
use maud::{html, Markup};
use serde::Deserialize;

/// Checks listed in a preview.
const PREVIEW_LISTED: usize = 200;
/// Silences that are over, listed.
const OVER_LISTED: usize = 20;

/// The silence form's fields; `preview` set means "show what it would cover".
#[derive(Deserialize, Default)]
pub(super) struct SilenceForm {
    #[serde(default)]
    hosts: String,
    #[serde(default)]
    checks: String,
    #[serde(default)]
    tags: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    ends: String,
    preview: Option<String>,
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// `GET /silences`.
pub(super) async fn page(
    AxState(state): AxState<WebState>,
    v: Viewer,
    Query(f): Query<SilenceForm>,
) -> Response {
    let Some(generation) = state.app.shared.current() else {
        let main = html! { p.note { "The daemon is (re)starting its configuration; this page refreshes by itself." } };
        return layout::page(&state, &v, Nav::Silences, "Silences", true, main);
    };
    let matchers = SilenceMatch {
        hosts: words(&f.hosts),
        checks: words(&f.checks),
        tags: words(&f.tags),
    };
    let preview = f.preview.is_some().then(|| {
        if matchers.is_empty() {
            Err("give at least one host, check or tag".to_string())
        } else {
            crate::alarm::silence::preview(&matchers, &generation.config).map_err(|e| e.to_string())
        }
    });
    let all = crate::query::silences(&generation.store, true).await;
    let now = Utc::now();
    let main = html! {
        h1 { "Silences" }
        section.new-silence aria-labelledby="new-h" {
            h2 #new-h { "New silence" }
            p.hint { "A silence holds back the alarms of every check it matches (all given criteria must match; names and globs, separated by commas)." }
            (action_form(&v, "/ui/silences", Role::Operate, "silence", html! {
                (fields(&f))
                div.buttons {
                    button #silence-preview type="submit" formaction="/silences" formmethod="get" name="preview" value="1" { "Preview" }
                    button #silence-create type="submit" name="intent" value="create" { "Set silence" }
                }
            }))
            @if !v.may(Role::Operate) {
                form method="get" action="/silences" {
                    (fields(&f))
                    button type="submit" name="preview" value="1" { "Preview" }
                }
            }
            @match &preview {
                Some(Ok(checks)) => section #preview.preview aria-live="polite" {
                    h3 { "It would cover " (checks.len()) " check" @if checks.len() != 1 { "s" } " now" }
                    ul { @for c in checks.iter().take(PREVIEW_LISTED) { li { a href={ "/check/" (text::percent_encode(c)) } { (c) } } } }
                    @if checks.len() > PREVIEW_LISTED { p.note { "and " (checks.len() - PREVIEW_LISTED) " more" } }
                },
                Some(Err(e)) => p #preview.error role="alert" { (e) },
                None => {}
            }
        }
        section #silences data-live aria-labelledby="list-h" {
            h2 #list-h { "Current and coming" }
            @match &all {
                Ok(list) => {
                    @let current: Vec<&Silence> = list.iter().filter(|s| !s.is_over(now)).collect();
                    @if current.is_empty() { p.note { "No silences." } }
                    @else { (table(&v, &current, now, true)) }
                    @let over: Vec<&Silence> = list.iter().rev().filter(|s| s.is_over(now)).take(OVER_LISTED).collect();
                    @if !over.is_empty() {
                        h2 { "Over" }
                        (table(&v, &over, now, false))
                    }
                }
                Err(e) => p.error { "Silences not readable now: " (e.to_string()) }
            }
        }
    };
    layout::page(&state, &v, Nav::Silences, "Silences", true, main)
}

fn fields(f: &SilenceForm) -> Markup {
    html! {
        div.fields {
            label { "Hosts " input #silence-hosts type="text" name="hosts" value=(f.hosts) placeholder="web1, db*"; }
            label { "Checks " input #silence-checks type="text" name="checks" value=(f.checks) placeholder="*apache*"; }
            label { "Tags " input #silence-tags type="text" name="tags" value=(f.tags) placeholder="backup"; }
            label { "Ends " input #silence-ends type="text" name="ends" value=(if f.ends.is_empty() { "2h" } else { &f.ends }) list="silence-durations" required; }
            datalist #silence-durations { option value="30m"; option value="1h"; option value="2h"; option value="4h"; option value="1d"; option value="7d"; }
            label.wide { "Why " input #silence-comment type="text" name="comment" value=(f.comment) placeholder="kernel update on web1" required; }
        }
    }
}

fn describe(m: &SilenceMatch) -> String {
    let mut parts = Vec::new();
    if !m.hosts.is_empty() {
        parts.push(format!("hosts {}", m.hosts.join(", ")));
    }
    if !m.checks.is_empty() {
        parts.push(format!("checks {}", m.checks.join(", ")));
    }
    if !m.tags.is_empty() {
        parts.push(format!("tags {}", m.tags.join(", ")));
    }
    parts.join("; ")
}

fn table(v: &Viewer, list: &[&Silence], now: chrono::DateTime<Utc>, current: bool) -> Markup {
    html! {
        table.silences {
            thead { tr { th { "#" } th { "Covers" } th { "Why" } th { "By" } th { "From" } th { "Until" } @if current { th { "End" } } } }
            tbody { @for s in list { tr id={ "silence-" (s.id) } {
                td { (s.id) }
                td { (describe(&s.matchers)) }
                td { (s.comment) }
                td { (s.by) }
                td { (text::when(s.starts)) @if s.starts > now { " (coming)" } }
                td {
                    @if let Some(t) = s.removed { "ended " (text::when(t)) @if let Some(by) = &s.removed_by { " by " (by) } }
                    @else { (text::when(s.ends)) @if s.ends > now { " (in " (text::span((s.ends - now).num_seconds())) ")" } }
                }
                @if current {
                    td { (action_form(v, &format!("/ui/silences/{}/end", s.id), Role::Operate, "end", html! { button type="submit" { "End now" } })) }
                }
            } } }
        }
    }
}
