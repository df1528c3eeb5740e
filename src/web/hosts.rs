//! Hosts and services: every host with its checks as cells in their state's
//! colour and word, filtered by host, tag, name (glob), state and handling,
//! a page of [`PAGE`] checks at a time in host order. The server filters and
//! pages; the browser never gets all 60,000 checks.

use super::layout::{self, badge, Nav};
use super::problems::{handling, Handling};
use super::session::Viewer;
use super::text;
use super::WebState;
use crate::daemon::live::{CheckInfo, CheckRow, LiveEntry};
use crate::plugin_output::State;
use axum::extract::{Query, State as AxState};
use axum::response::Response;
use chrono::Utc;
use maud::{html, Markup};
use serde::Deserialize;

/// Checks per page.
const PAGE: usize = 500;

/// The filter form's fields (all optional; blank means "any").
#[derive(Deserialize, Default)]
pub(super) struct Filter {
    #[serde(default)]
    host: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    name: String,
    /// `problem`, `ok`, `warning`, `critical`, `unknown`, `pending`.
    #[serde(default)]
    state: String,
    /// `yes` (acknowledged or in maintenance) or `no`.
    #[serde(default)]
    handled: String,
    /// The last check of the page before.
    #[serde(default)]
    after: String,
}

/// The filter as a predicate; an error names the field that is wrong.
struct Compiled {
    host: Option<glob::Pattern>,
    tag: Option<String>,
    name: Option<glob::Pattern>,
    states: Option<Vec<Option<State>>>,
    handled: Option<bool>,
}

fn compile(f: &Filter) -> Result<Compiled, String> {
    let pattern = |s: &str, what: &str| -> Result<Option<glob::Pattern>, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        glob::Pattern::new(s)
            .map(Some)
            .map_err(|e| format!("{what} {s:?} is not a valid pattern: {e}"))
    };
    let states = match f.state.trim().to_ascii_lowercase().as_str() {
        "" | "all" => None,
        "problem" => Some(vec![
            Some(State::Warning),
            Some(State::Critical),
            Some(State::Unknown),
        ]),
        "pending" => Some(vec![None]),
        other => match text::parse_state(other) {
            Some(s) => Some(vec![Some(s)]),
            None => {
                return Err(format!(
                    "state {other:?}: expected problem, ok, warning, critical, unknown or pending"
                ))
            }
        },
    };
    let handled = match f.handled.trim() {
        "" | "any" => None,
        "yes" => Some(true),
        "no" => Some(false),
        other => return Err(format!("handled {other:?}: expected yes or no")),
    };
    Ok(Compiled {
        host: pattern(&f.host, "host")?,
        tag: Some(f.tag.trim().to_string()).filter(|t| !t.is_empty()),
        name: pattern(&f.name, "name")?,
        states,
        handled,
    })
}

impl Compiled {
    fn keeps(
        &self,
        info: &CheckInfo,
        live: Option<&LiveEntry>,
        alarms: &std::collections::HashMap<String, crate::daemon::control::CheckAlarm>,
    ) -> bool {
        self.host.as_ref().is_none_or(|p| p.matches(&info.host))
            && self.tag.as_ref().is_none_or(|t| info.tags.contains(t))
            && self.name.as_ref().is_none_or(|p| p.matches(&info.name))
            && self
                .states
                .as_ref()
                .is_none_or(|s| s.contains(&live.map(|l| l.state)))
            && self
                .handled
                .is_none_or(|h| (handling(alarms.get(&info.name)) != Handling::Unhandled) == h)
    }
}

/// `GET /hosts`.
pub(super) async fn page(
    AxState(state): AxState<WebState>,
    v: Viewer,
    Query(f): Query<Filter>,
) -> Response {
    let Some(generation) = state.app.shared.current() else {
        let main = html! { p.note { "The daemon is (re)starting its configuration; this page refreshes by itself." } };
        return layout::page(&state, &v, Nav::Hosts, "Hosts & services", true, main);
    };
    let compiled = compile(&f);
    let alarms = state.app.shared.alarms().alarms_by_check().borrow().clone();
    let (rows, next, matching) = match &compiled {
        Ok(c) => {
            let after = Some(f.after.as_str()).filter(|a| !a.is_empty());
            let (rows, next) = generation
                .live
                .page_by_host(after, PAGE, |i, l| c.keeps(i, l, &alarms));
            let mut matching = 0usize;
            generation.live.visit(|i, l| {
                if c.keeps(i, l, &alarms) {
                    matching += 1;
                }
            });
            (rows, next, matching)
        }
        Err(_) => (Vec::new(), None, 0),
    };
    let now = Utc::now();
    let main = html! {
        h1 { "Hosts & services" }
        (filter_form(&f))
        @if let Err(e) = &compiled { p.error role="alert" { (e) } }
        section #cells data-live aria-label="Checks by host" {
            p.totals {
                (matching) " of " (generation.live.len()) " checks match"
                @if matching > rows.len() { "; showing " (rows.len()) " from " @if f.after.is_empty() { "the first" } @else { "after " (f.after) } }
                "."
            }
            (groups(&rows, now))
            @if let Some(next) = next {
                p { a.next rel="next" href=(next_link(&f, &next)) { "Next " (PAGE) " checks →" } }
            }
        }
    };
    layout::page(&state, &v, Nav::Hosts, "Hosts & services", true, main)
}

fn next_link(f: &Filter, after: &str) -> String {
    let q = serde_urlencoded::to_string([
        ("host", f.host.as_str()),
        ("tag", f.tag.as_str()),
        ("name", f.name.as_str()),
        ("state", f.state.as_str()),
        ("handled", f.handled.as_str()),
        ("after", after),
    ])
    .unwrap_or_default();
    format!("/hosts?{q}")
}

fn filter_form(f: &Filter) -> Markup {
    const STATES: &[(&str, &str)] = &[
        ("", "any state"),
        ("problem", "any problem"),
        ("critical", "CRITICAL"),
        ("unknown", "UNKNOWN"),
        ("warning", "WARNING"),
        ("ok", "OK"),
        ("pending", "PENDING"),
    ];
    const HANDLED: &[(&str, &str)] = &[
        ("", "handled or not"),
        ("no", "unhandled"),
        ("yes", "handled"),
    ];
    html! {
        form.filter method="get" action="/hosts" role="search" {
            label { "Host " input type="search" name="host" value=(f.host) placeholder="web* "; }
            label { "Tag " input type="search" name="tag" value=(f.tag); }
            label { "Check " input #filter-name type="search" name="name" value=(f.name) placeholder="*apache*"; }
            label { "State "
                select name="state" {
                    @for (value, label) in STATES {
                        option value=(value) selected[f.state == *value] { (label) }
                    }
                }
            }
            label { "Handling "
                select name="handled" {
                    @for (value, label) in HANDLED {
                        option value=(value) selected[f.handled == *value] { (label) }
                    }
                }
            }
            button type="submit" { "Filter" }
            a href="/hosts" { "Clear" }
        }
    }
}

fn groups(rows: &[CheckRow], now: chrono::DateTime<Utc>) -> Markup {
    let mut groups: Vec<(&str, Vec<&CheckRow>)> = Vec::new();
    for row in rows {
        match groups.last_mut() {
            Some((host, list)) if *host == row.info.host => list.push(row),
            _ => groups.push((row.info.host.as_str(), vec![row])),
        }
    }
    html! {
        @for (host, checks) in groups {
            section.host {
                h2 { a href={ "/hosts?host=" (text::percent_encode(host)) } { (host) } }
                ul.cells {
                    @for row in checks {
                        @let state = row.live.as_ref().map(|l| l.state);
                        li {
                            a class={ "cell " (text::state_class(state)) } href={ "/check/" (text::percent_encode(&row.info.name)) }
                                title={ (row.live.as_ref().and_then(|l| l.output.as_deref()).unwrap_or("never ran yet"))
                                    @if let Some(t) = row.live.as_ref().and_then(|l| l.last_run) { " (" (text::ago(t, now)) ")" } } {
                                span.name { (row.info.name) }
                                " " (badge(state))
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_filters_name_the_field() {
        let f = Filter {
            state: "broken".into(),
            ..Filter::default()
        };
        assert!(compile(&f)
            .err()
            .is_some_and(|e| e.contains("state \"broken\"")));
        let f = Filter {
            name: "[".into(),
            ..Filter::default()
        };
        assert!(compile(&f)
            .err()
            .is_some_and(|e| e.starts_with("name \"[\"")));
        let f = Filter {
            handled: "maybe".into(),
            ..Filter::default()
        };
        assert!(compile(&f).is_err());
        assert!(compile(&Filter::default()).is_ok());
    }

    #[test]
    fn next_links_keep_the_filter() {
        let f = Filter {
            host: "web*".into(),
            state: "problem".into(),
            ..Filter::default()
        };
        assert_eq!(
            next_link(&f, "web1 ping"),
            "/hosts?host=web*&tag=&name=&state=problem&handled=&after=web1+ping"
        );
    }
}
