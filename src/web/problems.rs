//! The start page: what is wrong now and who is on it. Counters per state
//! split into unhandled / acknowledged / in maintenance, the unhandled
//! problems (worst and newest first) with an inline and a bulk
//! acknowledgement, the recent events in words, and the daemon's own
//! health.
//!
//! Reads the live view and the alarm stage's published alarms (no database
//! query per check: the page renders in milliseconds with 60,000 checks).

use super::feed::{self, Tone};
use super::layout::{self, action_form, action_form_id, badge, Nav};
use super::session::Viewer;
use super::text;
use super::WebState;
use crate::alarm::lifecycle::Suppression;
use crate::config::http::Role;
use crate::daemon::control::CheckAlarm;
use crate::daemon::live::{CheckInfo, LiveEntry};
use crate::daemon::Generation;
use crate::plugin_output::State;
use crate::state::StateType;
use axum::extract::State as AxState;
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use std::time::Duration;

/// The most problems the page lists (the hosts view filters the rest).
const LISTED: usize = 500;
/// Events in the feed.
const FEED: u32 = 40;
/// How long the page waits for the database to answer its probe.
const DB_PROBE: Duration = Duration::from_millis(800);

/// How a problem is taken care of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Handling {
    /// Nobody is on it.
    Unhandled,
    /// Someone acknowledged its alarm.
    Acknowledged,
    /// A maintenance window or a silence covers it.
    Maintenance,
}

/// How the open alarm of a check (if any) is taken care of.
pub(super) fn handling(alarm: Option<&CheckAlarm>) -> Handling {
    match alarm {
        Some(a) if a.acked => Handling::Acknowledged,
        Some(a)
            if matches!(
                a.suppressed,
                Some(Suppression::Maintenance { .. } | Suppression::Silence { .. })
            ) =>
        {
            Handling::Maintenance
        }
        _ => Handling::Unhandled,
    }
}

/// Problems per state and handling: rows CRITICAL, UNKNOWN, WARNING.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Counters {
    /// `[state][handling]`, states in severity order.
    pub(super) problems: [[usize; 3]; 3],
    pub(super) ok: usize,
    pub(super) pending: usize,
}

/// One unhandled problem.
pub(super) struct Problem {
    pub(super) check: String,
    pub(super) host: String,
    pub(super) state: State,
    pub(super) state_type: StateType,
    pub(super) attempt: u32,
    pub(super) max_attempts: u32,
    pub(super) since: Option<DateTime<Utc>>,
    pub(super) output: String,
    pub(super) alarm: Option<u64>,
}

const STATES: [State; 3] = [State::Critical, State::Unknown, State::Warning];

/// Counts every check and collects the unhandled problems, worst first,
/// then newest first.
pub(super) fn survey(
    visit: impl FnOnce(&mut dyn FnMut(&CheckInfo, Option<&LiveEntry>)),
    alarms: &std::collections::HashMap<String, CheckAlarm>,
) -> (Counters, Vec<Problem>) {
    let mut counters = Counters::default();
    let mut problems = Vec::new();
    visit(&mut |info, live| {
        let Some(live) = live else {
            counters.pending += 1;
            return;
        };
        let Some(row) = STATES.iter().position(|&s| s == live.state) else {
            counters.ok += 1;
            return;
        };
        let alarm = alarms.get(&info.name);
        let h = handling(alarm);
        counters.problems[row][h as usize] += 1;
        if h == Handling::Unhandled {
            problems.push(Problem {
                check: info.name.clone(),
                host: info.host.clone(),
                state: live.state,
                state_type: live.state_type,
                attempt: live.attempt,
                max_attempts: info.max_attempts,
                since: live.last_state_change,
                output: live.output.clone().unwrap_or_default(),
                alarm: alarm.map(|a| a.alarm_id),
            });
        }
    });
    problems.sort_by(|a, b| {
        text::severity(a.state)
            .cmp(&text::severity(b.state))
            .then(b.since.cmp(&a.since))
            .then(a.check.cmp(&b.check))
    });
    (counters, problems)
}

/// `GET /`.
pub(super) async fn page(AxState(state): AxState<WebState>, v: Viewer) -> Response {
    let now = Utc::now();
    let Some(generation) = state.app.shared.current() else {
        let main = html! { p.note { "The daemon is (re)starting its configuration; this page refreshes by itself." } };
        return layout::page(&state, &v, Nav::Problems, "Problems", true, main);
    };
    let alarms = state.app.shared.alarms().alarms_by_check().borrow().clone();
    let (counters, problems) = survey(|f| generation.live.visit(f), &alarms);
    let health = health(&state, &generation, now).await;
    let events = recent_events(&generation).await;
    let main = html! {
        h1.visually-hidden { "Problems" }
        (health)
        section #counters data-live aria-labelledby="counters-h" {
            h2 #counters-h { "Problems by state" }
            (counter_table(&counters, generation.live.len()))
        }
        section #problems data-live aria-labelledby="problems-h" {
            h2 #problems-h { "Unhandled problems (" (problems.len()) ")" }
            (problem_list(&v, &problems, now))
        }
        section #feed data-live aria-labelledby="feed-h" {
            h2 #feed-h { "Recent events" }
            (events_list(events, now))
        }
    };
    layout::page(&state, &v, Nav::Problems, "Problems", true, main)
}

fn hosts_link(state: State, handled: Option<bool>) -> String {
    let mut q = format!(
        "/hosts?state={}",
        text::state_word(Some(state)).to_ascii_lowercase()
    );
    if let Some(h) = handled {
        q.push_str(if h { "&handled=yes" } else { "&handled=no" });
    }
    q
}

fn counter_table(c: &Counters, configured: usize) -> Markup {
    html! {
        table.counters {
            thead { tr { th scope="col" { "State" } th scope="col" { "Unhandled" } th scope="col" { "Acknowledged" } th scope="col" { "In maintenance" } } }
            tbody {
                @for (i, state) in STATES.iter().enumerate() {
                    tr {
                        th scope="row" { (badge(Some(*state))) }
                        @let [unhandled, acked, maint] = c.problems[i];
                        td { a.count.unhandled[unhandled > 0] href=(hosts_link(*state, Some(false))) { (unhandled) } }
                        td { a.count href=(hosts_link(*state, Some(true))) { (acked) } }
                        td { a.count href=(hosts_link(*state, Some(true))) { (maint) } }
                    }
                }
            }
        }
        p.totals {
            (badge(Some(State::Ok))) " " a href="/hosts?state=ok" { (c.ok) } " · "
            (badge(None)) " " a href="/hosts?state=pending" { (c.pending) } " · "
            (configured) " checks configured"
        }
    }
}

fn problem_list(v: &Viewer, problems: &[Problem], now: DateTime<Utc>) -> Markup {
    if problems.is_empty() {
        return html! { p.allgood { "Nothing unhandled. " (badge(Some(State::Ok))) } };
    }
    let shown = &problems[..problems.len().min(LISTED)];
    let any_alarm = shown.iter().any(|p| p.alarm.is_some());
    html! {
        @if any_alarm {
            (action_form_id(v, Some("bulk-form"), "/ui/ack", Role::Operate, "bulk", html! {
                label for="bulk-comment" { "Acknowledge the ticked problems:" }
                input #bulk-comment type="text" name="comment" placeholder="what you are doing about it" required;
                button type="submit" { "Acknowledge ticked" }
            }))
        }
        table.problems {
            thead { tr {
                th scope="col" { span.visually-hidden { "Tick" } }
                th scope="col" { "State" } th scope="col" { "Check" } th scope="col" { "Host" }
                th scope="col" { "Since" } th scope="col" { "Output" } th scope="col" { "Acknowledge" }
            } }
            tbody {
                @for p in shown {
                    tr id={ "p-" (p.check) } class={ "row " (text::state_class(Some(p.state))) } {
                        td {
                            @if let Some(id) = p.alarm {
                                @if v.may(Role::Operate) {
                                    input id={ "sel-" (id) } type="checkbox" name="alarm" value=(id) form="bulk-form" aria-label={ "tick " (p.check) };
                                }
                            }
                        }
                        td { (badge(Some(p.state))) br; small { (if p.state_type == StateType::Hard { "hard" } else { "soft" }) " " (p.attempt) "/" (p.max_attempts) } }
                        td { a href={ "/check/" (text::percent_encode(&p.check)) } { (p.check) } }
                        td { a href={ "/hosts?host=" (text::percent_encode(&p.host)) } { (p.host) } }
                        td { @if let Some(t) = p.since { time datetime=(t.to_rfc3339()) title=(text::when(t)) { (text::span((now - t).num_seconds())) } } }
                        td.output { (p.output) }
                        td {
                            @match p.alarm {
                                Some(id) if v.may(Role::Operate) => {
                                    (action_form(v, &format!("/ui/alarms/{id}/ack"), Role::Operate, "ack", html! {
                                        label.visually-hidden for={ "ack-comment-" (id) } { "Comment for " (p.check) }
                                        input id={ "ack-comment-" (id) } type="text" name="comment" placeholder="comment" required;
                                        button type="submit" { "Ack" }
                                    }))
                                    " " a href={ "/alarm/" (id) } { "#" (id) }
                                }
                                Some(id) => { a href={ "/alarm/" (id) } { "alarm #" (id) } }
                                None => { small { "no alarm yet" } }
                            }
                        }
                    }
                }
            }
        }
        @if problems.len() > shown.len() {
            p.note { (problems.len() - shown.len()) " more: " a href="/hosts?state=problem&handled=no" { "see them all in the hosts view" } }
        }
    }
}

async fn recent_events(generation: &Generation) -> Vec<feed::FeedLine> {
    let store = &generation.store;
    let latest = match crate::query::latest_event_id(store).await {
        Ok(id) => id,
        Err(e) => {
            tracing::debug!(error = %e, "dashboard: event feed not readable");
            return Vec::new();
        }
    };
    // A window a little wider than shown, so an action's recovery is found.
    let window = i64::from(FEED) * 3;
    match crate::query::events(store, (latest - window).max(0), FEED * 3).await {
        Ok(rows) => {
            let mut l = feed::lines(&rows);
            l.truncate(FEED as usize);
            l
        }
        Err(e) => {
            tracing::debug!(error = %e, "dashboard: event feed not readable");
            Vec::new()
        }
    }
}

fn events_list(events: Vec<feed::FeedLine>, now: DateTime<Utc>) -> Markup {
    html! {
        @if events.is_empty() {
            p.note { "No events yet." }
        }
        ol.feed {
            @for e in events {
                li class=(match e.tone { Tone::Good => "good", Tone::Bad => "bad", Tone::Neutral => "neutral" }) {
                    time datetime=(e.at.to_rfc3339()) title=(text::when(e.at)) { (text::ago(e.at, now)) }
                    " " span.kind { (e.kind) } " "
                    @if let Some(c) = &e.check {
                        a href={ "/check/" (text::percent_encode(c)) } { (e.text) }
                    } @else { (e.text) }
                    @if let Some(id) = e.alarm_id { " " a href={ "/alarm/" (id) } { "alarm #" (id) } }
                }
            }
        }
    }
}

/// The daemon's own health: database, spool, last reload, lateness.
async fn health(state: &WebState, generation: &Generation, now: DateTime<Utc>) -> Markup {
    let m = crate::metrics::snapshot();
    let db = tokio::time::timeout(DB_PROBE, generation.store.schema_version()).await;
    let (db_ok, db_text) = match db {
        Ok(Ok(_)) => (
            true,
            format!("database: {} reachable", generation.store.describe()),
        ),
        Ok(Err(e)) => (false, format!("database unreachable: {e}")),
        Err(_) => (
            false,
            format!("database: no answer within {} ms", DB_PROBE.as_millis()),
        ),
    };
    let spool_ok = m.spool_results == 0;
    let reload = state.app.shared.last_reload();
    let late_ok = m.lateness.max_seconds < 5.0;
    html! {
        section #health.health data-live aria-label="Daemon health" {
            ul {
                li class=(if db_ok { "good" } else { "bad" }) { (if db_ok { "OK" } else { "PROBLEM" }) " · " (db_text) }
                li class=(if spool_ok { "good" } else { "bad" }) {
                    (if spool_ok { "OK" } else { "PROBLEM" }) " · spool: "
                    @if spool_ok { "empty" } @else { (m.spool_results) " results (" (m.spool_bytes / 1024) " KiB) wait for the database" }
                    " · writer queue " (m.writer_queued)
                }
                @match &reload {
                    Some(r) => li class=(if r.ok { "good" } else { "bad" }) {
                        (if r.ok { "OK" } else { "PROBLEM" }) " · last reload " (text::ago(r.at, now)) " by " (r.by)
                        @if !r.ok { ": refused: " (r.errors.join("; ")) }
                    },
                    None => li.good { "OK · configuration loaded " (text::ago(generation.started, now)) ", not reloaded since" },
                }
                li class=(if late_ok { "good" } else { "bad" }) {
                    (if late_ok { "OK" } else { "LATE" }) " · start lateness mean "
                    (format!("{:.2}", m.lateness.mean_seconds)) " s, max " (format!("{:.2}", m.lateness.max_seconds))
                    " s over " (m.lateness.runs) " runs in " (m.lateness.window_seconds) " s"
                    " · " (m.runs_in_flight) " running, " (m.process_slots_in_use) "/" (m.process_slots_limit) " process slots"
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn info(name: &str) -> CheckInfo {
        CheckInfo {
            name: name.into(),
            host: "h".into(),
            kind: "ping",
            tags: Vec::new(),
            interval_s: 60.0,
            retry_interval_s: 60.0,
            max_attempts: 3,
        }
    }

    fn live(state: State, since_s: i64) -> LiveEntry {
        LiveEntry {
            state,
            state_type: StateType::Hard,
            attempt: 3,
            flapping: false,
            last_run: None,
            last_state_change: DateTime::from_timestamp(1_800_000_000 + since_s, 0),
            duration_ms: None,
            output: Some(format!("{state:?}")),
        }
    }

    fn alarm(id: u64, acked: bool, suppressed: Option<Suppression>) -> CheckAlarm {
        CheckAlarm {
            alarm_id: id,
            state: State::Critical,
            acked,
            suppressed,
        }
    }

    #[test]
    fn counts_split_by_handling_and_lists_unhandled_worst_then_newest() {
        let checks = vec![
            (info("a"), Some(live(State::Warning, 10))),
            (info("b"), Some(live(State::Critical, 5))),
            (info("c"), Some(live(State::Critical, 50))),
            (info("d"), Some(live(State::Critical, 1))),
            (info("e"), Some(live(State::Unknown, 1))),
            (info("f"), Some(live(State::Critical, 1))),
            (info("g"), Some(live(State::Ok, 1))),
            (info("h"), None),
        ];
        let mut alarms = HashMap::new();
        alarms.insert("d".to_string(), alarm(4, true, None));
        alarms.insert(
            "f".to_string(),
            alarm(
                6,
                false,
                Some(Suppression::Maintenance {
                    window: "nightly".into(),
                }),
            ),
        );
        alarms.insert(
            "c".to_string(),
            alarm(3, false, Some(Suppression::Flapping)),
        );
        let (counters, problems) = survey(
            |f| {
                for (i, l) in &checks {
                    f(i, l.as_ref());
                }
            },
            &alarms,
        );
        assert_eq!(counters.problems[0], [2, 1, 1], "critical: b, c / d / f");
        assert_eq!(counters.problems[1], [1, 0, 0]);
        assert_eq!(counters.problems[2], [1, 0, 0]);
        assert_eq!((counters.ok, counters.pending), (1, 1));
        let order: Vec<&str> = problems.iter().map(|p| p.check.as_str()).collect();
        assert_eq!(order, ["c", "b", "e", "a"]);
        assert_eq!(problems[0].alarm, Some(3));
        assert_eq!(problems[1].alarm, None);
    }
}
