//! Clusters: the successor of the LAX cluster manager's tree. Per cluster
//! every server with its condition (up, fenced, unreachable and why), its
//! memory in use and free, and the VMs it runs; the VMs that do not run and
//! why (from the journal's plans and, for a server that is down, a dry-run
//! plan); who holds the cluster lock; the last reorganisation step by step
//! with its timings; a dry-run plan for "what if SERVER failed"; and
//! by-hand start/stop/migrate forms (admin role, with a confirmation).
//!
//! Reads through [`crate::query`] only (status queries and dry runs, each
//! bounded by [`QUERY_TIMEOUT`]): a hypervisor that fails or hangs shows as
//! an error on the page, never as a failed page. This file never changes a
//! cluster: its forms post to `/ui/clusters/...` (`act.rs`), which go
//! through the API.

use super::layout::{self, action_form, badge, Nav};
use super::session::Viewer;
use super::text;
use super::WebState;
use crate::cluster::{Action, ReorgReport};
use crate::config::http::Role;
use crate::config::ClusterConfig;
use crate::daemon::Generation;
use crate::plugin_output::State;
use crate::query::{
    ClusterStatus, ClusterVm, JournalRun, JournalStep, LockHolder, ServerStatus, StepProgress,
};
use crate::state::StateType;
use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The longest a page waits for a cluster's servers (or a dry run).
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Recent runs listed on a cluster's page.
const RUNS: usize = 10;

/// A server's condition, as the page names it (word and colour).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Condition {
    /// It answered.
    Up,
    /// It did not answer, but cannot run a VM (fenced, or confirmed dead).
    Fenced { why: String, error: String },
    /// It did not answer and may still run its VMs.
    Unreachable { error: String },
}

impl Condition {
    fn word(&self) -> &'static str {
        match self {
            Condition::Up => "UP",
            Condition::Fenced { .. } => "FENCED",
            Condition::Unreachable { .. } => "UNREACHABLE",
        }
    }

    fn class(&self) -> &'static str {
        match self {
            Condition::Up => "st-ok",
            Condition::Fenced { .. } => "st-warning",
            Condition::Unreachable { .. } => "st-critical",
        }
    }
}

/// A server's condition from its answer and the servers known safe.
pub(super) fn condition(server: &ServerStatus, safe: &BTreeMap<String, String>) -> Condition {
    if server.vms.is_some() {
        return Condition::Up;
    }
    let error = server.error.clone().unwrap_or_else(|| "no answer".into());
    match safe.get(&server.server) {
        Some(why) => Condition::Fenced {
            why: why.clone(),
            error,
        },
        None => Condition::Unreachable { error },
    }
}

/// A server's memory as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MemoryUse {
    /// Percent of the capacity in use, rounded down (may exceed 100).
    pub(super) percent: u64,
    /// The bar's value: the use, at most the capacity.
    pub(super) bar: u64,
    /// A word beside the numbers when it matters: `nearly full`, `full`,
    /// `over capacity`; empty otherwise.
    pub(super) warning: &'static str,
    /// The numbers in words.
    pub(super) words: String,
}

/// `used_mb` of `capacity_mb` in use: percent, bar value and words.
pub(super) fn memory_use(used_mb: u64, capacity_mb: u64) -> MemoryUse {
    let percent = match capacity_mb {
        0 if used_mb == 0 => 0,
        0 => 100,
        c => used_mb.saturating_mul(100) / c,
    };
    let free = capacity_mb.saturating_sub(used_mb);
    let warning = if used_mb > capacity_mb {
        "over capacity"
    } else if free == 0 && capacity_mb > 0 {
        "full"
    } else if percent >= 90 {
        "nearly full"
    } else {
        ""
    };
    MemoryUse {
        percent,
        bar: used_mb.min(capacity_mb),
        warning,
        words: format!("{used_mb} of {capacity_mb} MB used ({percent} %), {free} MB free"),
    }
}

/// One plan action in words.
pub(super) fn action_words(a: &Action) -> String {
    match a {
        Action::Stop { vm, host } => format!("stop {vm} on {host}"),
        Action::Migrate { vm, from, to } => format!("migrate {vm} from {from} to {to}"),
        Action::Start { vm, host } => format!("start {vm} on {host}"),
    }
}

fn action_vm(a: &Action) -> &str {
    match a {
        Action::Stop { vm, .. } | Action::Migrate { vm, .. } | Action::Start { vm, .. } => vm,
    }
}

/// Whether a run has not ended (its steps may still change).
fn open(run: &JournalRun) -> bool {
    matches!(run.state.as_str(), "running" | "unfinished")
}

/// How far a step got, in words with its time: `done in 2.1 s`.
pub(super) fn step_words(step: &JournalStep, run_open: bool, now_ms: u64) -> String {
    let took = step.took_ms().map(|ms| text::millis(ms as f64));
    match step.state {
        StepProgress::Done => match took {
            Some(t) => format!("done in {t}"),
            None => "done".into(),
        },
        StepProgress::Failed => {
            let error = step.error.as_deref().unwrap_or("no reason journalled");
            match took {
                Some(t) => format!("failed after {t}: {error}"),
                None => format!("failed: {error}"),
            }
        }
        StepProgress::Running if run_open => match step.started_ms {
            Some(t) => format!(
                "running for {}",
                text::millis(now_ms.saturating_sub(t) as f64)
            ),
            None => "running".into(),
        },
        StepProgress::Running => {
            "started, its end not journalled (the run stopped; a rerun checks it against the live state)"
                .into()
        }
        StepProgress::NotStarted if run_open => "waiting".into(),
        StepProgress::NotStarted => "not started".into(),
    }
}

/// What a run was, in words: `the reorganisation after cs2 failed`.
pub(super) fn run_title(run: &JournalRun) -> String {
    let server = run.server.as_deref().unwrap_or("?");
    let by = run
        .by
        .as_deref()
        .map(|b| format!(" by {b}"))
        .unwrap_or_default();
    match run.kind.as_str() {
        "reorg" => format!("the reorganisation after {server} failed"),
        "restore" => format!("the restore after {server} returned"),
        kind => format!(
            "the by-hand {kind} of {}{by}",
            run.vm.as_deref().unwrap_or("?")
        ),
    }
}

/// What `run` did to `vm`, in words, if it touched it.
fn run_explains(run: &JournalRun, vm: &str, now: DateTime<Utc>) -> Option<String> {
    let title = run_title(run);
    let when = at(run.started_ms)
        .map(|t| format!(" ({})", text::ago(t, now)))
        .unwrap_or_default();
    if let Some(reason) = run.left_down.get(vm) {
        let reason = if reason.is_empty() {
            String::new()
        } else {
            format!(": {reason}")
        };
        return Some(format!("{title}{when} left it down{reason}"));
    }
    if run.stopped.iter().any(|s| s == vm) {
        return Some(format!("{title}{when} stopped it"));
    }
    let last = run.steps.iter().rev().find(|s| action_vm(&s.action) == vm);
    if let Some(step) = last {
        let what = action_words(&step.action);
        return Some(match (step.state, &step.action) {
            (StepProgress::Failed, _) => format!(
                "{title}{when}: {what} failed: {}",
                step.error.as_deref().unwrap_or("no reason journalled")
            ),
            (StepProgress::Done, Action::Stop { host, .. }) => {
                format!("{title}{when} stopped it on {host}")
            }
            (StepProgress::Done, Action::Start { host: to, .. } | Action::Migrate { to, .. }) => {
                format!("{title}{when} left it running on {to}; it has stopped since")
            }
            (StepProgress::Running | StepProgress::NotStarted, _) if open(run) => {
                let now = if step.state == StepProgress::Running {
                    "running"
                } else {
                    "waiting"
                };
                format!("{title} is under way: {what} is {now}")
            }
            (StepProgress::Running | StepProgress::NotStarted, _) => {
                format!("{title}{when} ended ({}) before: {what}", run.state)
            }
        });
    }
    None
}

/// Why `vm` does not run, for the admin who was paged: what the live
/// state says, the newest journalled run that touched it, and what a
/// reorganisation (the dry run `plan`, if any) would do with it.
pub(super) fn why_down(
    vm: &ClusterVm,
    status: &ClusterStatus,
    plan: Option<&ReorgReport>,
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut why = Vec::new();
    if vm.state == "unknown" {
        let silent: Vec<&str> = status
            .servers
            .iter()
            .filter(|s| s.vms.is_none() && !status.silent_but_safe.contains_key(&s.server))
            .filter(|s| {
                vm.allowed_hosts
                    .as_ref()
                    .is_none_or(|h| h.contains(&s.server))
            })
            .map(|s| s.server.as_str())
            .collect();
        let (list, verb, them) = match silent.as_slice() {
            [one] => (one.to_string(), "is", "it is"),
            many => (many.join(", "), "are", "they are"),
        };
        why.push(format!(
            "{list} did not answer and {verb} not fenced: it may still run there, so laxmon starts it nowhere else until {them} fenced or confirmed dead"
        ));
    }
    if let Some(line) = status
        .runs
        .iter()
        .find_map(|r| run_explains(r, &vm.name, now))
    {
        why.push(line);
    }
    if let Some(p) = plan {
        if let Some(reason) = p.plan.reasons.get(&vm.name) {
            why.push(format!(
                "a reorganisation after {} failed would leave it down: {reason}",
                p.server
            ));
        } else if let Some(Some(host)) = p.plan.placement.get(&vm.name) {
            why.push(format!(
                "a reorganisation after {} failed would start it on {host}",
                p.server
            ));
        }
    }
    if why.is_empty() {
        why.push(
            "no journalled run stopped it: it was shut down outside laxmon (or from inside), or never started"
                .into(),
        );
    }
    why
}

fn at(ms: u64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)
}

fn now_ms(now: DateTime<Utc>) -> u64 {
    u64::try_from(now.timestamp_millis()).unwrap_or(0)
}

fn when_ms(ms: u64, now: DateTime<Utc>) -> Markup {
    match at(ms) {
        Some(t) => {
            html! { time datetime=(t.to_rfc3339()) title=(text::when(t)) { (text::ago(t, now)) } }
        }
        None => html! { "at an unknown time" },
    }
}

/// A cluster's status, or why it could not be had.
async fn status_of(cluster: &ClusterConfig) -> Result<ClusterStatus, String> {
    match tokio::time::timeout(QUERY_TIMEOUT, crate::query::cluster_status(cluster)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "the servers did not all answer within {} s",
            QUERY_TIMEOUT.as_secs()
        )),
    }
}

/// A dry-run reorganisation after `failed` failed, or why it could not be made.
async fn plan_of(cluster: &ClusterConfig, failed: &str, dead: bool) -> Result<ReorgReport, String> {
    match tokio::time::timeout(
        QUERY_TIMEOUT,
        crate::query::cluster_plan(cluster, failed, dead),
    )
    .await
    {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "the dry run did not finish within {} s (a server does not answer in time)",
            QUERY_TIMEOUT.as_secs()
        )),
    }
}

/// A server's alive check: its name and state (None: no check, or never ran).
struct Alive {
    check: String,
    state: Option<State>,
    hard: bool,
}

fn alive(generation: &Generation, cluster: &ClusterConfig, server: &str) -> Option<Alive> {
    let check = cluster.server(server)?.alive.clone()?;
    let live = generation
        .live
        .index(&check)
        .and_then(|i| generation.live.row(i))
        .and_then(|r| r.live);
    Some(Alive {
        state: live.as_ref().map(|l| l.state),
        hard: live.is_some_and(|l| l.state_type == StateType::Hard),
        check,
    })
}

/// The servers whose alive check is HARD CRITICAL (what the API passes as
/// confirmed dead).
fn confirmed_dead(generation: &Generation, cluster: &ClusterConfig) -> Vec<String> {
    cluster
        .servers
        .iter()
        .filter(|s| {
            alive(generation, cluster, &s.name)
                .is_some_and(|a| a.state == Some(State::Critical) && a.hard)
        })
        .map(|s| s.name.clone())
        .collect()
}

fn restarting(state: &WebState, v: &Viewer, title: &str) -> Response {
    let main = html! { p.note { "The daemon is (re)starting its configuration; this page refreshes by itself." } };
    layout::page(state, v, Nav::Clusters, title, true, main)
}

/// `GET /clusters`.
pub(super) async fn list(AxState(state): AxState<WebState>, v: Viewer) -> Response {
    let Some(generation) = state.app.shared.current() else {
        return restarting(&state, &v, "Clusters");
    };
    let clusters = &generation.config.clusters;
    let mut set = tokio::task::JoinSet::new();
    for (i, c) in clusters.iter().enumerate() {
        let c = c.clone();
        set.spawn(async move { (i, status_of(&c).await) });
    }
    let mut statuses: Vec<Option<Result<ClusterStatus, String>>> = vec![None; clusters.len()];
    while let Some(joined) = set.join_next().await {
        if let Ok((i, s)) = joined {
            if let Some(slot) = statuses.get_mut(i) {
                *slot = Some(s);
            }
        }
    }
    let now = Utc::now();
    let main = html! {
        h1 { "Clusters" }
        @if clusters.is_empty() {
            p.note { "No clusters are configured (" code { "clusters:" } " in the configuration)." }
        }
        @for (c, s) in clusters.iter().zip(statuses) {
            @let s = s.unwrap_or_else(|| Err("the status query failed".into()));
            @let cid = id_part(&c.name);
            section.cluster id={ "cluster-" (cid) } data-live aria-labelledby={ "cluster-" (cid) "-h" } {
                h2 id={ "cluster-" (cid) "-h" } {
                    a href={ "/cluster/" (text::percent_encode(&c.name)) } { (c.name) }
                    " " small { "(" (c.driver.name()) " driver)" }
                }
                (cluster_body(&generation, c, &s, None, now))
                p { a href={ "/cluster/" (text::percent_encode(&c.name)) } { "Details, last reorganisation, dry-run plan and VM operations for " (c.name) " →" } }
            }
        }
    };
    layout::page(&state, &v, Nav::Clusters, "Clusters", true, main)
}

/// The part both pages share: lock holder, servers with their VMs, VMs
/// that do not run and why, and the last run in one line.
fn cluster_body(
    generation: &Generation,
    c: &ClusterConfig,
    s: &Result<ClusterStatus, String>,
    plan: Option<&ReorgReport>,
    now: DateTime<Utc>,
) -> Markup {
    let journal = journal_of(c, s);
    let (busy, runs) = match &journal {
        Ok((busy, runs)) => (busy.as_ref(), runs.as_slice()),
        Err(_) => (None, &[][..]),
    };
    html! {
        @if let Some(h) = busy {
            p.busy role="status" {
                strong { "BUSY: " } (h.what) ", started " (when_ms(h.since_ms, now)) " (laxmon process " (h.pid) "); by-hand operations are refused until it ends."
            }
        }
        @match s {
            Ok(status) => (placement(generation, c, status, plan, now)),
            Err(e) => {
                p.error role="alert" { "Cannot read the cluster's state now: " (e) }
                (servers_unknown(generation, c))
            }
        }
        @if let Err(e) = &journal {
            p.error { "Cannot read the cluster's journal: " (e) }
        }
        @if let Some(run) = runs.first() {
            p.lastrun {
                "Last run: " (run_title(run)) ", " (when_ms(run.started_ms, now)) ": "
                strong { (run.state) } " · " (run.steps_done) " step(s) done, " (run.steps_failed) " failed"
            }
        }
    }
}

/// Who holds the cluster's lock and its newest runs: from its status, else
/// from the journal alone (the servers may not answer; the journal is
/// still there).
fn journal_of(
    c: &ClusterConfig,
    s: &Result<ClusterStatus, String>,
) -> Result<(Option<LockHolder>, Vec<JournalRun>), String> {
    match s {
        Ok(status) => Ok((status.busy.clone(), status.runs.clone())),
        Err(_) => crate::query::cluster_journal(c).map_err(|e| e.to_string()),
    }
}

/// The servers with their VMs, then the VMs that do not run and why.
fn placement(
    generation: &Generation,
    c: &ClusterConfig,
    status: &ClusterStatus,
    plan: Option<&ReorgReport>,
    now: DateTime<Utc>,
) -> Markup {
    let down: Vec<&ClusterVm> = status
        .vms
        .iter()
        .filter(|vm| vm.state != "running")
        .collect();
    let cid = id_part(&c.name);
    html! {
        div.servers {
            @for server in &status.servers {
                (server_card(generation, c, status, server))
            }
        }
        h3 id={ "down-" (cid) } { "Not running (" (down.len()) ")" }
        @if down.is_empty() {
            p.note { "Every configured VM runs." }
        } @else {
            ul.down aria-labelledby={ "down-" (cid) } {
                @for vm in &down {
                    li id={ "down-" (cid) "-" (id_part(&vm.name)) } {
                        strong { (vm.name) } " "
                        span class={ "st " (if vm.state == "unknown" { "st-unknown" } else { "st-critical" }) } {
                            (if vm.state == "unknown" { "UNKNOWN" } else { "DOWN" })
                        }
                        " · priority " (vm.priority)
                        @if let Some(m) = vm.memory_mb { " · " (m) " MB" }
                        @if let Some(h) = &vm.home { " · home " (h) }
                        ul {
                            @for line in why_down(vm, status, plan, now) { li { (line) } }
                        }
                    }
                }
            }
        }
    }
}

/// The configured servers when the status could not be read.
fn servers_unknown(generation: &Generation, c: &ClusterConfig) -> Markup {
    html! {
        ul {
            @for s in &c.servers {
                li { (s.name) " · " (alive_line(alive(generation, c, &s.name))) }
            }
        }
    }
}

fn alive_line(a: Option<Alive>) -> Markup {
    match a {
        Some(a) => html! {
            "alive check " a href={ "/check/" (text::percent_encode(&a.check)) } { (a.check) } " "
            (badge(a.state))
            @if a.state.is_some() { " " (if a.hard { "hard" } else { "soft" }) }
        },
        None => html! { "no alive check" },
    }
}

fn server_card(
    generation: &Generation,
    c: &ClusterConfig,
    status: &ClusterStatus,
    s: &ServerStatus,
) -> Markup {
    let cond = condition(s, &status.silent_but_safe);
    let mem = memory_use(s.used_mb, s.capacity_mb);
    let id = format!("server-{}-{}", id_part(&c.name), id_part(&s.server));
    html! {
        article id=(id) class={ "server " (cond.class()) } aria-labelledby={ (id) "-h" } {
            h3 id={ (id) "-h" } {
                (s.server) " " span class={ "st " (cond.class()) } { (cond.word()) }
            }
            p.alive { (alive_line(alive(generation, c, &s.server))) }
            @match &cond {
                Condition::Up => {
                    p.memory {
                        meter min="0" max=(s.capacity_mb) value=(mem.bar)
                            low=(s.capacity_mb * 3 / 4) high=(s.capacity_mb * 9 / 10) optimum="0"
                            aria-label={ "memory in use on " (s.server) } { (mem.percent) " %" }
                        " " (mem.words)
                        @if !mem.warning.is_empty() { " · " strong { (mem.warning) } }
                    }
                    @let vms = s.vms.as_deref().unwrap_or(&[]);
                    @if vms.is_empty() {
                        p.note { "Runs no VMs." }
                    } @else {
                        table.vms {
                            thead { tr { th scope="col" { "VM" } th scope="col" { "Memory" } th scope="col" { "Priority" } th scope="col" { "State" } } }
                            tbody {
                                @for vm in vms {
                                    @let home = status.vms.iter().find(|x| x.name == vm.name).and_then(|x| x.home.as_deref());
                                    tr {
                                        th scope="row" { (vm.name) @if !vm.configured { " " small { "(not configured)" } } }
                                        td.mem { @if let Some(m) = vm.memory_mb { (m) " MB" } @else { "?" } }
                                        td { (vm.priority) }
                                        td {
                                            span.st.st-ok { "RUNNING" }
                                            @if let Some(h) = home.filter(|h| *h != s.server) { " " small { "away from home " (h) } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                Condition::Fenced { why, error } => {
                    p.note { "Did not answer (" (error) "), but cannot run a VM: " (why) "." }
                }
                Condition::Unreachable { error } => {
                    p.error role="alert" { "Did not answer: " (error) }
                    p.note {
                        "Not fenced: its VMs may still run there. Nothing starts them elsewhere until it is fenced or confirmed dead. "
                        a href={ "/cluster/" (text::percent_encode(&c.name)) "?failed=" (text::percent_encode(&s.server)) "#plan" } { "What would a reorganisation do?" }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct PlanQuery {
    /// The server to plan the failure of.
    #[serde(default)]
    failed: String,
}

/// `GET /cluster/{name}`.
pub(super) async fn page(
    AxState(state): AxState<WebState>,
    v: Viewer,
    Path(name): Path<String>,
    Query(q): Query<PlanQuery>,
) -> Response {
    let Some(generation) = state.app.shared.current() else {
        return restarting(&state, &v, &name);
    };
    let Some(cluster) = generation.config.cluster(&name) else {
        let names: Vec<&str> = generation
            .config
            .clusters
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        let hint = crate::suggest::did_you_mean(&name, &names);
        let main = html! {
            h1 { "No such cluster" }
            p.error role="alert" { "There is no cluster named " code { (name) } (hint) }
            p { a href="/clusters" { "All clusters" } }
        };
        let mut r = layout::page(&state, &v, Nav::Clusters, "No such cluster", false, main);
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    };
    let dead = confirmed_dead(&generation, cluster);
    // The failure to plan: the one asked for, else a server whose alive
    // check says CRITICAL now (the question of the admin who was paged).
    let asked = q.failed.trim().to_string();
    let (failed, why_planned) = if !asked.is_empty() {
        (Some(asked.clone()), "asked for")
    } else {
        let critical = cluster.servers.iter().find(|s| {
            alive(&generation, cluster, &s.name).is_some_and(|a| a.state == Some(State::Critical))
        });
        (
            critical.map(|s| s.name.clone()),
            "its alive check is CRITICAL",
        )
    };
    let plan_input = match &failed {
        Some(f) if cluster.server(f).is_none() => {
            let names: Vec<&str> = cluster.servers.iter().map(|s| s.name.as_str()).collect();
            Some(Err(format!(
                "{name} has no server {f:?}{}",
                crate::suggest::did_you_mean(f, &names)
            )))
        }
        Some(f) => Some(Ok(f.clone())),
        None => None,
    };
    let (status, plan) = match &plan_input {
        Some(Ok(f)) => {
            let (s, p) = tokio::join!(status_of(cluster), plan_of(cluster, f, dead.contains(f)));
            (s, Some(p))
        }
        Some(Err(e)) => (status_of(cluster).await, Some(Err(e.clone()))),
        None => (status_of(cluster).await, None),
    };
    let now = Utc::now();
    let ok_plan = plan.as_ref().and_then(|p| p.as_ref().ok());
    let main = html! {
        h1 { "Cluster " (name) " " small { "(" (cluster.driver.name()) " driver)" } }
        @if cluster.dry_run { p.note { "This cluster is configured with " code { "dry_run: true" } ": reorganisations and operations only plan." } }
        section #servers data-live aria-label="Servers and VMs" {
            (cluster_body(&generation, cluster, &status, ok_plan, now))
        }
        section #runs data-live aria-labelledby="runs-h" {
            h2 #runs-h { "Last reorganisation" }
            (runs_view(cluster, &status, now))
        }
        section #plan aria-labelledby="plan-h" {
            h2 #plan-h { "Dry run: what if a server failed?" }
            (plan_form(cluster, failed.as_deref()))
            @match &plan {
                Some(Ok(r)) => (plan_view(r, why_planned)),
                Some(Err(e)) => p.error role="alert" { "No plan: " (e) },
                None => p.note { "Every alive check is fine; pick a server to see what would happen if it failed." },
            }
        }
        section #vms data-live aria-labelledby="vms-h" {
            h2 #vms-h { "Start, stop or migrate a VM" }
            (vm_forms(&v, cluster, &status))
        }
    };
    layout::page(&state, &v, Nav::Clusters, &name, true, main)
}

fn runs_view(
    cluster: &ClusterConfig,
    status: &Result<ClusterStatus, String>,
    now: DateTime<Utc>,
) -> Markup {
    let runs = match journal_of(cluster, status) {
        Ok((_, runs)) => runs,
        Err(e) => return html! { p.error { "Cannot read the cluster's journal: " (e) } },
    };
    let last = runs
        .iter()
        .find(|r| matches!(r.kind.as_str(), "reorg" | "restore"));
    html! {
        @match last {
            Some(run) => (run_detail(run, now)),
            None => p.note { "No reorganisation is journalled." },
        }
        @if !runs.is_empty() {
            h3 { "Recent runs" }
            table.runs.stack {
                thead { tr { th scope="col" { "Began" } th scope="col" { "What" } th scope="col" { "Outcome" } th scope="col" { "Steps" } th scope="col" { "Took" } } }
                tbody {
                    @for run in runs.iter().take(RUNS) {
                        tr {
                            td data-label="Began" { (when_ms(run.started_ms, now)) }
                            td data-label="What" {
                                (run_title(run))
                                @if !run.steps.is_empty() {
                                    details id={ "steps-" (run.id) } {
                                        summary { "steps" }
                                        (steps_list(run, now))
                                    }
                                }
                            }
                            td data-label="Outcome" { (run.state) }
                            td data-label="Steps" { (run.steps_done) " done, " (run.steps_failed) " failed" }
                            td data-label="Took" { (took(run, now)) }
                        }
                    }
                }
            }
        }
    }
}

/// How long a run took (or has been running).
fn took(run: &JournalRun, now: DateTime<Utc>) -> String {
    match (run.ended_ms, open(run)) {
        (Some(end), _) => text::millis(end.saturating_sub(run.started_ms) as f64),
        (None, true) => format!(
            "running for {}",
            text::millis(now_ms(now).saturating_sub(run.started_ms) as f64)
        ),
        (None, false) => "?".into(),
    }
}

/// One run step by step, with its times.
fn run_detail(run: &JournalRun, now: DateTime<Utc>) -> Markup {
    let offset =
        |ms: Option<u64>| ms.map(|t| text::millis(t.saturating_sub(run.started_ms) as f64));
    html! {
        article.run id={ "run-" (id_part(&run.id)) } {
            h3 {
                (capitalised(&run_title(run))) ": " (run.state)
            }
            p {
                "Began " (when_ms(run.started_ms, now))
                @if let Some(t) = at(run.started_ms) { " (" (text::when(t)) ")" }
                " · took " (took(run, now))
                @if run.rounds > 1 { " · " (run.rounds) " plans (replanned after a failed step)" }
            }
            @if let Some(f) = &run.fencing {
                p { "Made safe: " (f) @if let Some(o) = offset(run.fenced_ms) { " (done " (o) " after the run began)" } }
            }
            @if run.steps.is_empty() {
                p.note { "No steps: the plan had nothing to do." }
            } @else {
                (steps_list(run, now))
            }
            @if !run.left_down.is_empty() {
                p { "Left down:" }
                ul {
                    @for (vm, reason) in &run.left_down {
                        li { strong { (vm) } @if !reason.is_empty() { ": " (reason) } }
                    }
                }
            }
        }
    }
}

fn steps_list(run: &JournalRun, now: DateTime<Utc>) -> Markup {
    let is_open = open(run);
    let now = now_ms(now);
    html! {
        ol.steps {
            @for step in &run.steps {
                li class={ "step " (progress_class(step.state)) } {
                    @if run.rounds > 1 { small { "plan " (step.round + 1) ": " } }
                    (action_words(&step.action)) " — "
                    @if step.state == StepProgress::Failed {
                        strong.error { (step_words(step, is_open, now)) }
                    } @else {
                        (step_words(step, is_open, now))
                    }
                    @if let Some(t) = step.started_ms {
                        " " small { "(began +" (text::millis(t.saturating_sub(run.started_ms) as f64)) ")" }
                    }
                }
            }
        }
    }
}

fn progress_class(p: StepProgress) -> &'static str {
    match p {
        StepProgress::NotStarted => "not-started",
        StepProgress::Running => "running",
        StepProgress::Done => "done",
        StepProgress::Failed => "failed",
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn plan_form(cluster: &ClusterConfig, failed: Option<&str>) -> Markup {
    html! {
        form.plan method="get" action={ "/cluster/" (text::percent_encode(&cluster.name)) "#plan" } {
            label for="failed" { "If this server failed: " }
            select #failed name="failed" {
                @for s in &cluster.servers {
                    option value=(s.name) selected[failed == Some(s.name.as_str())] { (s.name) }
                }
            }
            " "
            button type="submit" { "Plan (dry run, changes nothing)" }
        }
    }
}

fn plan_view(r: &ReorgReport, why: &str) -> Markup {
    let p = &r.plan;
    html! {
        p {
            "If " strong { (r.server) } " failed (" (why) "), a reorganisation would: "
        }
        p { "Make it safe: " (r.fencing.strip_prefix("dry run: ").unwrap_or(&r.fencing)) }
        @if p.actions.is_empty() {
            p.note { "Change nothing: no VM needs to move." }
        } @else {
            ol.plan-actions {
                @for a in &p.actions { li { (action_words(a)) } }
            }
        }
        h3 { "Final placement" }
        @if p.placement.is_empty() {
            p.note { "No VM ran before." }
        } @else {
            table.placement {
                thead { tr { th scope="col" { "VM" } th scope="col" { "Would run on" } } }
                tbody {
                    @for (vm, host) in &p.placement {
                        tr {
                            th scope="row" { (vm) }
                            td { @match host { Some(h) => (h), None => span.st.st-critical { "DOWN" } } }
                        }
                    }
                }
            }
        }
        @if !p.down.is_empty() {
            h3 { "Left down, and why" }
            ul {
                @for vm in &p.down {
                    li { strong { (vm) } ": " (p.reasons.get(vm).map(String::as_str).unwrap_or("no reason given")) }
                }
            }
        }
        p.note { "Planned in " (text::millis(r.timings.planning_ms)) " by the " (format!("{:?}", p.planner).to_lowercase()) " planner; nothing was changed." }
    }
}

/// Per VM: start (where it does not run), stop and migrate (where it runs).
fn vm_forms(v: &Viewer, cluster: &ClusterConfig, status: &Result<ClusterStatus, String>) -> Markup {
    let Ok(status) = status else {
        return html! { p.note { "Operations need the cluster's state; it could not be read (see above)." } };
    };
    let answering: Vec<&str> = status
        .servers
        .iter()
        .filter(|s| s.vms.is_some())
        .map(|s| s.server.as_str())
        .collect();
    let c = text::percent_encode(&cluster.name);
    html! {
        p.hint { "Each operation follows the same rules as a reorganisation (a VM is never started while a server that did not answer may run it) and is journalled. Tick the box to confirm; Preview only says what would be done." }
        table.vm-ops.stack {
            thead { tr { th scope="col" { "VM" } th scope="col" { "State" } th scope="col" { "Server" } th scope="col" { "Memory" } th scope="col" { "Priority" } th scope="col" { "Operate" } } }
            tbody {
                @for vm in &status.vms {
                    @let base = format!("/ui/clusters/{c}/vms/{}", text::percent_encode(&vm.name));
                    @let key = id_part(&vm.name);
                    tr id={ "vm-" (key) } {
                        th scope="row" { (vm.name) }
                        td data-label="State" { span class={ "st " (vm_class(vm.state)) } { (vm.state.to_uppercase()) } }
                        td data-label="Server" { (vm.server.as_deref().unwrap_or("—")) @if let Some(h) = vm.home.as_deref().filter(|h| vm.server.as_deref() != Some(*h)) { " " small { "(home " (h) ")" } } }
                        td.mem data-label="Memory" { @if let Some(m) = vm.memory_mb { (m) " MB" } }
                        td data-label="Priority" { (vm.priority) }
                        td.operate {
                            @if !v.may(Role::Admin) {
                                // Says what it takes (log in, or the admin role).
                                (action_form(v, &base, Role::Admin, "", html! {}))
                            } @else {
                                details id={ "operate-" (key) } {
                                    summary { "Operate " (vm.name) "…" }
                                    (operations(v, &base, &key, vm, &answering))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The forms for one VM: stop and migrate where it runs, else start.
fn operations(v: &Viewer, base: &str, key: &str, vm: &ClusterVm, answering: &[&str]) -> Markup {
    let Some(on) = vm.server.as_deref().filter(|_| vm.state == "running") else {
        return html! {
            (action_form(v, &format!("{base}/start"), Role::Admin, "vm-op start", html! {
                label for={ "server-" (key) } { "Start on " }
                select id={ "server-" (key) } name="server" {
                    option value="" { "the server with the most room (laxmon chooses)" }
                    @for t in answering { option value=(t) { (t) } }
                }
                (confirm(key, "start", &format!("Yes, start {} now", vm.name)))
                button type="submit" { "Start " (vm.name) }
                " " button type="submit" name="intent" value="preview" formnovalidate { "Preview" }
            }))
        };
    };
    let targets: Vec<&str> = answering.iter().copied().filter(|s| *s != on).collect();
    html! {
        (action_form(v, &format!("{base}/stop"), Role::Admin, "vm-op stop", html! {
            (confirm(key, "stop", &format!("Yes, stop {} on {on} now", vm.name)))
            button type="submit" { "Stop " (vm.name) }
            " " button type="submit" name="intent" value="preview" formnovalidate { "Preview" }
        }))
        @if !targets.is_empty() {
            (action_form(v, &format!("{base}/migrate"), Role::Admin, "vm-op migrate", html! {
                label for={ "to-" (key) } { "Migrate to " }
                select id={ "to-" (key) } name="to" required {
                    @for t in &targets { option value=(t) { (t) } }
                }
                " "
                input id={ "cold-" (key) } type="checkbox" name="cold" value="yes";
                label for={ "cold-" (key) } { "cold (shut down, then start)" }
                (confirm(key, "migrate", &format!("Yes, migrate {} away from {on} now", vm.name)))
                button type="submit" { "Migrate " (vm.name) }
                " " button type="submit" name="intent" value="preview" formnovalidate { "Preview" }
            }))
        }
    }
}

/// The confirmation box of one operation form.
fn confirm(key: &str, op: &str, label: &str) -> Markup {
    let id = format!("confirm-{op}-{key}");
    html! {
        span.confirm {
            input id=(id) type="checkbox" name="confirm" value="yes" required;
            label for=(id) { (label) }
        }
        " "
    }
}

fn vm_class(state: &str) -> &'static str {
    match state {
        "running" => "st-ok",
        "unknown" => "st-unknown",
        _ => "st-critical",
    }
}

/// A name as part of an element id: letters, digits, `-` and `_` kept,
/// everything else `_`.
pub(super) fn id_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Plan, PlannerKind};

    fn server(name: &str, vms: Option<Vec<&str>>, error: Option<&str>) -> ServerStatus {
        ServerStatus {
            server: name.into(),
            vms: vms.map(|v| {
                v.into_iter()
                    .map(|n| crate::query::VmStatus {
                        name: n.into(),
                        memory_mb: Some(1024),
                        priority: 1,
                        configured: true,
                    })
                    .collect()
            }),
            error: error.map(str::to_string),
            used_mb: 0,
            capacity_mb: 3584,
            free_mb: 3584,
        }
    }

    fn vm(name: &str, state: &'static str) -> ClusterVm {
        ClusterVm {
            name: name.into(),
            state,
            server: None,
            memory_mb: Some(2048),
            priority: 9,
            configured: true,
            home: Some("cs2".into()),
            allowed_hosts: None,
            anti_affinity: None,
        }
    }

    fn run(kind: &str, state: &str) -> JournalRun {
        JournalRun {
            id: "r1".into(),
            kind: kind.into(),
            server: Some("cs2".into()),
            vm: None,
            by: None,
            started_ms: 1_800_000_000_000,
            actions: Vec::new(),
            steps_done: 0,
            steps_failed: 0,
            state: state.into(),
            ended_ms: None,
            fencing: None,
            fenced_ms: None,
            rounds: 1,
            left_down: BTreeMap::new(),
            stopped: Vec::new(),
            steps: Vec::new(),
        }
    }

    fn status(servers: Vec<ServerStatus>, runs: Vec<JournalRun>) -> ClusterStatus {
        ClusterStatus {
            cluster: "demo".into(),
            driver: "sim".into(),
            servers,
            vms: Vec::new(),
            silent_but_safe: BTreeMap::new(),
            busy: None,
            runs,
        }
    }

    fn step(state: StepProgress, started: Option<u64>, ended: Option<u64>) -> JournalStep {
        JournalStep {
            round: 0,
            index: 0,
            action: Action::Stop {
                vm: "vm3".into(),
                host: "cs1".into(),
            },
            state,
            error: (state == StepProgress::Failed).then(|| "timed out".to_string()),
            started_ms: started,
            ended_ms: ended,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_300_000).expect("time")
    }

    #[test]
    fn memory_is_shown_in_numbers_and_words_never_colour_alone() {
        let cases: &[(u64, u64, u64, u64, &str)] = &[
            // used, capacity -> percent, bar, warning
            (1024, 3584, 28, 1024, ""),
            (0, 3584, 0, 0, ""),
            (3300, 3584, 92, 3300, "nearly full"),
            (3584, 3584, 100, 3584, "full"),
            (4096, 3584, 114, 3584, "over capacity"),
            (0, 0, 0, 0, ""),
            (512, 0, 100, 0, "over capacity"),
        ];
        for &(used, cap, percent, bar, warning) in cases {
            let m = memory_use(used, cap);
            assert_eq!(
                (m.percent, m.bar, m.warning),
                (percent, bar, warning),
                "{used}/{cap}"
            );
        }
        assert_eq!(
            memory_use(1024, 3584).words,
            "1024 of 3584 MB used (28 %), 2560 MB free"
        );
    }

    #[test]
    fn a_server_is_up_fenced_or_unreachable() {
        let mut safe = BTreeMap::new();
        safe.insert("cs2".to_string(), "fenced by a reorganisation".to_string());
        assert_eq!(
            condition(&server("cs1", Some(vec![]), None), &safe),
            Condition::Up
        );
        assert_eq!(
            condition(&server("cs2", None, Some("connection refused")), &safe),
            Condition::Fenced {
                why: "fenced by a reorganisation".into(),
                error: "connection refused".into()
            }
        );
        let c = condition(&server("cs3", None, None), &safe);
        assert_eq!(
            c,
            Condition::Unreachable {
                error: "no answer".into()
            }
        );
        assert_eq!((c.word(), c.class()), ("UNREACHABLE", "st-critical"));
    }

    #[test]
    fn steps_say_how_far_they_got_with_their_time() {
        let t = 1_800_000_000_000;
        let cases = [
            (
                step(StepProgress::Done, Some(t), Some(t + 2_100)),
                true,
                "done in 2.1 s",
            ),
            (step(StepProgress::Done, None, Some(t)), false, "done"),
            (
                step(StepProgress::Failed, Some(t), Some(t + 850)),
                false,
                "failed after 850 ms: timed out",
            ),
            (
                step(StepProgress::Running, Some(t), None),
                true,
                "running for 5.0 s",
            ),
            (step(StepProgress::NotStarted, None, None), true, "waiting"),
            (
                step(StepProgress::NotStarted, None, None),
                false,
                "not started",
            ),
        ];
        for (s, open, want) in cases {
            assert_eq!(step_words(&s, open, t + 5_000), want, "{s:?}");
        }
        assert!(
            step_words(&step(StepProgress::Running, Some(t), None), false, t)
                .starts_with("started, its end not journalled")
        );
        assert_eq!(
            action_words(&Action::Migrate {
                vm: "web".into(),
                from: "cs1".into(),
                to: "cs2".into()
            }),
            "migrate web from cs1 to cs2"
        );
    }

    #[test]
    fn a_down_vm_is_explained_by_the_live_state_the_journal_and_the_dry_run() {
        // A server that does not answer and is not fenced: the VM may run there.
        let st = status(
            vec![
                server("cs1", Some(vec![]), None),
                server("cs2", None, Some("timeout")),
            ],
            Vec::new(),
        );
        let why = why_down(&vm("db", "unknown"), &st, None, now());
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(
            why[0].starts_with("cs2 did not answer and is not fenced"),
            "{why:?}"
        );

        // The reorganisation left it down: the planner's reason is quoted.
        let mut r = run("reorg", "finished");
        r.left_down
            .insert("db".into(), "no server has 2048 MB free".into());
        let st = status(vec![server("cs1", Some(vec![]), None)], vec![r]);
        let why = why_down(&vm("db", "stopped"), &st, None, now());
        assert_eq!(
            why,
            ["the reorganisation after cs2 failed (5 min ago) left it down: no server has 2048 MB free"]
        );

        // Stopped by hand; a dry run would start it again.
        let mut r = run("stop", "finished");
        r.vm = Some("db".into());
        r.by = Some("API (boss)".into());
        r.steps = vec![JournalStep {
            action: Action::Stop {
                vm: "db".into(),
                host: "cs2".into(),
            },
            ..step(StepProgress::Done, None, None)
        }];
        let st = status(vec![server("cs1", Some(vec![]), None)], vec![r]);
        let mut placement = BTreeMap::new();
        placement.insert("db".to_string(), Some("cs1".to_string()));
        let plan = ReorgReport {
            cluster: "demo".into(),
            kind: "reorg",
            server: "cs2".into(),
            id: String::new(),
            dry_run: true,
            resumed: false,
            fencing: String::new(),
            plan: Plan {
                actions: Vec::new(),
                placement: placement.clone(),
                down: Vec::new(),
                reasons: BTreeMap::new(),
                planner: PlannerKind::Exact,
            },
            rounds: 1,
            steps: Vec::new(),
            steps_done: 0,
            steps_failed: 0,
            placement,
            stopped: Vec::new(),
            timings: Default::default(),
        };
        let why = why_down(&vm("db", "stopped"), &st, Some(&plan), now());
        assert_eq!(
            why,
            [
                "the by-hand stop of db by API (boss) (5 min ago) stopped it on cs2",
                "a reorganisation after cs2 failed would start it on cs1"
            ]
        );

        // Nothing known.
        let st = status(vec![server("cs1", Some(vec![]), None)], Vec::new());
        assert!(
            why_down(&vm("db", "stopped"), &st, None, now())[0].starts_with("no journalled run")
        );
    }

    #[test]
    fn ids_keep_only_safe_characters() {
        assert_eq!(id_part("web-1_a"), "web-1_a");
        assert_eq!(id_part("a b\"<c>"), "a_b__c_");
    }
}
