//! One check: its state, attempt, output, long output and perfdata; its
//! state over 24 hours or 7 days and its run time and perfdata as charts
//! from laxmon's own store; its state changes and alarms; and buttons to
//! run it now, acknowledge its alarm and silence it.

use super::layout::{self, action_form, badge, Nav};
use super::session::Viewer;
use super::svg;
use super::text;
use super::WebState;
use crate::config::http::Role;
use crate::state::StateType;
use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use std::time::Duration;

/// Buckets per chart.
const POINTS: u32 = 240;
/// Perfdata labels charted at most.
const MAX_PERF_CHARTS: usize = 6;
/// State changes listed.
const CHANGES: usize = 20;
/// Alarms listed.
const ALARMS: usize = 10;

#[derive(Deserialize)]
pub(super) struct RangeQuery {
    /// `24h` (default) or `7d`.
    range: Option<String>,
}

/// `GET /check/{name}`.
pub(super) async fn page(
    AxState(state): AxState<WebState>,
    v: Viewer,
    Path(name): Path<String>,
    Query(q): Query<RangeQuery>,
) -> Response {
    let Some(generation) = state.app.shared.current() else {
        let main = html! { p.note { "The daemon is (re)starting its configuration; this page refreshes by itself." } };
        return layout::page(&state, &v, Nav::Hosts, &name, true, main);
    };
    let Some(row) = generation
        .live
        .index(&name)
        .and_then(|i| generation.live.row(i))
    else {
        let names: Vec<&str> = generation.live.names().collect();
        let hint = crate::suggest::did_you_mean(&name, &names);
        let main = html! {
            h1 { "No such check" }
            p.error role="alert" { "There is no check named " code { (name) } (hint) }
            p { a href="/hosts" { "All hosts and services" } }
        };
        let mut r = layout::page(&state, &v, Nav::Hosts, "No such check", false, main);
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    };
    let week = q.range.as_deref() == Some("7d");
    let range = if week {
        chrono::Duration::days(7)
    } else {
        chrono::Duration::hours(24)
    };
    let now = Utc::now();
    let store = &generation.store;
    let since = Duration::from_secs_f64(row.info.interval_s * 3.0 + 600.0);
    let last = crate::query::history(store, &name, since)
        .await
        .ok()
        .and_then(|rows| rows.into_iter().last());
    let series = crate::query::history_series(store, &name, now - range, now, POINTS).await;
    let alarms = crate::query::alarms(store, false).await.map(|all| {
        all.into_iter()
            .filter(|a| a.check == name)
            .take(ALARMS)
            .collect::<Vec<_>>()
    });
    let alarm = state
        .app
        .shared
        .alarms()
        .alarms_by_check()
        .borrow()
        .get(&name)
        .cloned();
    let live = row.live.as_ref();
    let st = live.map(|l| l.state);
    let seg = text::percent_encode(&name);
    let main = html! {
        section #summary data-live {
            h1 { (badge(st)) " " (name) }
            dl.facts {
                dt { "Host" } dd { a href={ "/hosts?host=" (text::percent_encode(&row.info.host)) } { (row.info.host) } }
                dt { "Kind" } dd { (row.info.kind) }
                @if let Some(l) = live {
                    dt { "Attempt" } dd { (l.attempt) "/" (row.info.max_attempts) " " (if l.state_type == StateType::Hard { "(hard)" } else { "(soft)" }) @if l.flapping { " · flapping" } }
                    @if let Some(t) = l.last_state_change { dt { "In this state since" } dd { time datetime=(t.to_rfc3339()) { (text::when(t)) } " (" (text::span((now - t).num_seconds())) ")" } }
                    @if let Some(t) = l.last_run { dt { "Last run" } dd { time #last-run datetime=(t.to_rfc3339()) { (text::when(t)) } " (" (text::ago(t, now)) ")" @if let Some(ms) = l.duration_ms { ", took " (text::millis(ms)) } } }
                } @else {
                    dt { "State" } dd { "never ran yet" }
                }
                @if let Some(t) = row.next_run { dt { "Next run" } dd { time datetime=(t.to_rfc3339()) { (text::when(t)) } } }
                dt { "Interval" } dd { (text::span(row.info.interval_s as i64)) ", retries every " (text::span(row.info.retry_interval_s as i64)) }
                @if !row.info.tags.is_empty() { dt { "Tags" } dd { @for t in &row.info.tags { a.tag href={ "/hosts?tag=" (text::percent_encode(t)) } { (t) } " " } } }
                @if let Some(a) = &alarm {
                    dt { "Open alarm" } dd {
                        a href={ "/alarm/" (a.alarm_id) } { "#" (a.alarm_id) }
                        @if a.acked { " · acknowledged" }
                        @if let Some(s) = &a.suppressed { " · held back: " (held_back(s)) }
                    }
                }
            }
            h2 { "Output" }
            @match &last {
                Some(r) => {
                    pre.output #output { (r.output) }
                    @if !r.long_output.is_empty() { pre.output.long { (r.long_output) } }
                    @if !r.perfdata.is_empty() {
                        table.perf {
                            thead { tr { th { "Label" } th { "Value" } th { "Warn" } th { "Crit" } th { "Min" } th { "Max" } } }
                            tbody { @for p in &r.perfdata { tr {
                                td { (p.label) } td { (p.value) " " (p.uom) }
                                td { (p.warn.as_deref().unwrap_or("")) } td { (p.crit.as_deref().unwrap_or("")) }
                                td { (opt(p.min.as_ref())) } td { (opt(p.max.as_ref())) }
                            } } }
                        }
                    }
                }
                None => p #output.output { (live.and_then(|l| l.output.as_deref()).unwrap_or("no result stored yet")) }
            }
        }
        section.actions aria-label="Act on this check" {
            (action_form(&v, &format!("/ui/checks/{seg}/run"), Role::Operate, "run", html! {
                button #run-now type="submit" { "Run now" }
            }))
            @if let Some(a) = alarm.as_ref().filter(|a| !a.acked) {
                (action_form(&v, &format!("/ui/alarms/{}/ack", a.alarm_id), Role::Operate, "ack", html! {
                    label for="ack-comment" { "Acknowledge: " }
                    input #ack-comment type="text" name="comment" placeholder="what you are doing about it" required;
                    select name="expires" aria-label="until" {
                        option value="" { "until it recovers" }
                        option value="1h" { "for 1 hour" }
                        option value="4h" { "for 4 hours" }
                        option value="1d" { "for a day" }
                    }
                    button type="submit" { "Acknowledge" }
                }))
            }
            @if let Some(a) = alarm.as_ref().filter(|a| a.acked) {
                (action_form(&v, &format!("/ui/alarms/{}/unack", a.alarm_id), Role::Operate, "unack", html! {
                    button type="submit" { "Remove acknowledgement" }
                }))
            }
            a.button href={ "/silences?checks=" (text::percent_encode(&name)) } { "Silence…" }
        }
        section #history data-live aria-labelledby="history-h" {
            h2 #history-h { "History" }
            nav.range aria-label="Range" {
                @if week { a href={ "/check/" (seg) } { "24 hours" } " · " strong { "7 days" } }
                @else { strong { "24 hours" } " · " a href={ "/check/" (seg) "?range=7d" } { "7 days" } }
            }
            @match &series {
                Ok(s) => {
                    h3 { "State" }
                    (layout::svg(svg::state_strip(s)))
                    h3 { "Run time" }
                    (layout::svg(svg::line_chart("Run time", "ms", &svg::duration_points(s), s.from, s.to)))
                    @for (label, uom) in svg::perf_labels(s).iter().take(MAX_PERF_CHARTS) {
                        h3 { (label) @if !uom.is_empty() { " (" (uom) ")" } }
                        (layout::svg(svg::line_chart(label, uom, &svg::perf_points(s, label, uom), s.from, s.to)))
                    }
                    h3 { "State changes" }
                    @if s.state_changes.is_empty() { p.note { "None in this range." } }
                    @else {
                        table.changes {
                            thead { tr { th { "When" } th { "From" } th { "To" } th { "Output" } } }
                            tbody { @for c in s.state_changes.iter().rev().take(CHANGES) { tr {
                                td { (when(c.at)) }
                                td { (badge(text::parse_state(&c.previous_state))) " " (c.previous_state_type.to_lowercase()) }
                                td { (badge(text::parse_state(&c.state))) " " (c.state_type.to_lowercase()) }
                                td.output { (c.output.lines().next().unwrap_or("")) }
                            } } }
                        }
                    }
                }
                Err(e) => p.error { "History not readable now: " (e.to_string()) }
            }
        }
        section #alarms data-live aria-labelledby="alarms-h" {
            h2 #alarms-h { "Alarms" }
            @match &alarms {
                Ok(list) if list.is_empty() => p.note { "No alarms." },
                Ok(list) => table.alarms {
                    thead { tr { th { "Alarm" } th { "State" } th { "Opened" } th { "Resolved" } th { "Acknowledged" } } }
                    tbody { @for a in list { tr {
                        td { a href={ "/alarm/" (a.id) } { "#" (a.id) } }
                        td { (badge(text::parse_state(&a.state))) }
                        td { (when(a.opened)) }
                        td { @if let Some(t) = a.resolved { (when(t)) } @else { "open" } }
                        td { @if let Some(by) = &a.ack_by { (by) ": " (a.ack_comment.as_deref().unwrap_or("")) } }
                    } } }
                },
                Err(e) => p.error { "Alarms not readable now: " (e.to_string()) },
            }
        }
    };
    layout::page(&state, &v, Nav::Hosts, &name, true, main).into_response()
}

fn when(t: DateTime<Utc>) -> Markup {
    html! { time datetime=(t.to_rfc3339()) { (text::when(t)) } }
}

/// What holds an alarm back, in words.
fn held_back(s: &crate::alarm::lifecycle::Suppression) -> String {
    use crate::alarm::lifecycle::Suppression;
    match s {
        Suppression::Maintenance { window } => format!("maintenance window {window}"),
        Suppression::Silence { id, by, ends } => {
            format!("silence #{id} by {by} until {}", text::when(*ends))
        }
        other => other.reason().replace('_', " "),
    }
}

fn opt(v: Option<&f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}
