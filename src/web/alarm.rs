//! One alarm and its whole timeline: state changes, who was told when by
//! which channel and whether it was delivered, every action with its exit
//! status and output, acknowledgements and audit entries.

use super::layout::{self, action_form, badge, Nav};
use super::session::Viewer;
use super::text;
use super::WebState;
use crate::config::http::Role;
use crate::store::TimelineEntry;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use maud::{html, Markup};
use serde_json::Value;

/// `GET /alarm/{id}`.
pub(super) async fn page(
    AxState(state): AxState<WebState>,
    v: Viewer,
    Path(id): Path<u64>,
) -> Response {
    let Some(generation) = state.app.shared.current() else {
        let main = html! { p.note { "The daemon is (re)starting its configuration; this page refreshes by itself." } };
        return layout::page(&state, &v, Nav::Problems, "Alarm", true, main);
    };
    let timeline = match crate::query::alarm_timeline(&generation.store, id).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            let main = html! { h1 { "No such alarm" } p.error role="alert" { "There is no alarm #" (id) "." } };
            let mut r = layout::page(&state, &v, Nav::Problems, "No such alarm", false, main);
            *r.status_mut() = StatusCode::NOT_FOUND;
            return r;
        }
        Err(e) => {
            let main = html! { h1 { "Alarm #" (id) } p.error role="alert" { "The store cannot be read now: " (e.to_string()) } };
            let mut r = layout::page(&state, &v, Nav::Problems, "Alarm", true, main);
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            return r;
        }
    };
    let a = &timeline.alarm;
    let now = Utc::now();
    let title = format!("Alarm #{id}");
    let main = html! {
        section #alarm data-live {
            h1 { (badge(text::parse_state(&a.state))) " Alarm #" (id) ": " a href={ "/check/" (text::percent_encode(&a.check)) } { (a.check) } }
            dl.facts {
                dt { "Host" } dd { (a.host) }
                dt { "Summary" } dd { (a.summary) }
                dt { "Opened" } dd { (text::when(a.opened)) " (" (text::ago(a.opened, now)) ")" }
                dt { "Resolved" } dd { @if let Some(t) = a.resolved { (text::when(t)) " (open for " (text::span((t - a.opened).num_seconds())) ")" } @else { strong { "still open" } } }
                dt { "Acknowledged" } dd {
                    @if let Some(by) = &a.ack_by {
                        (by) @if let Some(t) = a.ack_at { " at " (text::when(t)) } ": " (a.ack_comment.as_deref().unwrap_or(""))
                        @if let Some(t) = a.ack_expires { " (until " (text::when(t)) ")" }
                    } @else { "no" }
                }
                @if a.suppressed { dt { "Held back" } dd { "yes (maintenance, silence, flapping or off duty)" } }
            }
            @if a.resolved.is_none() {
                div.actions {
                    @if a.ack_by.is_none() {
                        (action_form(&v, &format!("/ui/alarms/{id}/ack"), Role::Operate, "ack", html! {
                            label for="ack-comment" { "Acknowledge: " }
                            input #ack-comment type="text" name="comment" placeholder="what you are doing about it" required;
                            button type="submit" { "Acknowledge" }
                        }))
                    } @else {
                        (action_form(&v, &format!("/ui/alarms/{id}/unack"), Role::Operate, "unack", html! {
                            button type="submit" { "Remove acknowledgement" }
                        }))
                    }
                }
            }
            h2 { "Timeline" }
            @if timeline.state_changes_truncated { p.note { "Only the newest state changes are shown." } }
            table.timeline {
                thead { tr { th scope="col" { "When" } th scope="col" { "What" } th scope="col" { "Detail" } } }
                tbody { @for e in &timeline.entries { (entry(e)) } }
            }
        }
    };
    layout::page(&state, &v, Nav::Problems, &title, true, main)
}

/// A JSON value in one line, for details that have no column of their own.
fn compact(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| format!("{k}: {}", compact(v)))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Array(items) => items.iter().map(compact).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

/// `v` without `keys` (what the row shows already).
fn without(v: &Value, keys: &[&str]) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !keys.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn entry(e: &TimelineEntry) -> Markup {
    let at = e.at();
    html! {
        tr class=(kind_class(e)) {
            td { time datetime=(at.to_rfc3339()) { (text::when(at)) } }
            @match e {
                TimelineEntry::Alarm(ev) => {
                    td { "alarm " (ev.event) }
                    td { (compact(&without(&ev.detail, &["at", "event"]))) }
                }
                TimelineEntry::StateChange(s) => {
                    td { "state " (badge(text::parse_state(&s.previous_state))) " → " (badge(text::parse_state(&s.state))) " " (s.state_type.to_lowercase()) }
                    td.output { (s.output.lines().next().unwrap_or("")) }
                }
                TimelineEntry::Notification(n) => {
                    td { (n.channel) " to " (n.contact) }
                    td {
                        strong { (match n.status.as_str() { "sent" => "delivered", "failed" => "FAILED for good", "pending" => "not yet delivered", other => other }) }
                        @if let Some(t) = n.sent { " at " (text::when(t)) }
                        @if n.attempts > 0 { " · " (n.attempts) " failed attempt" @if n.attempts != 1 { "s" } }
                        @if let Some(err) = &n.last_error { " · last error: " (err) }
                        @if let Some(s) = &n.subject { br; small { (s) } }
                    }
                }
                TimelineEntry::Action(a) => {
                    td { "action " (a.action) }
                    td {
                        strong { @if a.timed_out { "TIMED OUT" } @else if let Some(err) = &a.error { "FAILED: " (err) } @else { @match a.exit_status { Some(0) => "exit 0", Some(n) => { "exit " (n) }, None => "no exit status" } } }
                        " · " (text::millis(a.duration_ms))
                        @if !a.argv.is_empty() { br; code { (a.argv.join(" ")) } }
                        @if !a.output.is_empty() { details { summary { "output" } pre.output { (a.output) } } }
                    }
                }
                TimelineEntry::Audit(r) => {
                    td { "audit: " (r.entry.who) }
                    td { (r.entry.action) " → " (r.entry.result) " (from " (r.entry.source) ")" @let d = compact(&r.entry.detail); @if !d.is_empty() { br; small { (d) } } }
                }
            }
        }
    }
}

fn kind_class(e: &TimelineEntry) -> &'static str {
    match e {
        TimelineEntry::Alarm(_) => "k-alarm",
        TimelineEntry::StateChange(_) => "k-state",
        TimelineEntry::Notification(_) => "k-notification",
        TimelineEntry::Action(_) => "k-action",
        TimelineEntry::Audit(_) => "k-audit",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn details_read_as_one_line() {
        assert_eq!(
            compact(&json!({"by": "alice", "comment": "disk", "expires": null, "n": 2})),
            "by: alice, comment: disk, n: 2"
        );
        assert_eq!(compact(&json!(["a", 1])), "a 1");
        assert_eq!(compact(&Value::Null), "");
    }
}
