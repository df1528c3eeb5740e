//! The alarm stage's intake: where check results wait until the alarm stage
//! takes them, a bounded number per check.
//!
//! The alarm stage may be away for long: its state must come from the store,
//! so while the database is away at start-up it waits. The checks keep
//! running meanwhile; a plain channel would hold every result (each with up
//! to 64 KiB of output) for as long as the outage lasts. [`Backlog`] keeps,
//! per check, only what the alarm lifecycle can tell apart. It follows the
//! check's *phase* as the lifecycle sees it: clear (OK, or a SOFT problem
//! after OK: no alarm can be open), a SOFT problem not known to follow OK (an
//! open alarm takes its state), or a HARD problem in a given state (an alarm
//! is open in that state). It keeps
//!
//! - every result that changes the phase, in order, and every one that
//!   starts or stops flapping while the phase is not clear: the *changes*;
//! - the latest result, which replaces an earlier one that changed nothing
//!   (it carries the current output and attempt of an open alarm);
//! - nothing else: a result that changes nothing while clear is dropped.
//!
//! Observing a phase twice does to the lifecycle what observing it once
//! does, so the kept results open, change and resolve the same alarms, with
//! the same events, notifications and final contents, as all results would;
//! only the count of results seen (the cycles of restart-loop protection) is
//! smaller. A HARD problem that recovered while waiting still opens its
//! alarm and resolves it. At most [`PER_CHECK`] results of a check wait:
//! beyond that (a check flapping between HARD states all through an outage)
//! the oldest changes after the first are merged, preferably two incidents
//! into one alarm, and the sender logs how many.
//!
//! Sending never blocks and never fails; results leave in the order they
//! came. [`Backlog`] is pure: no I/O, no clock.

use super::CheckResult;
use crate::checks::State;
use crate::state::StateType;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::Notify;

/// At most this many results of one check wait for the alarm stage.
pub(crate) const PER_CHECK: usize = 8;

/// What the alarm lifecycle can tell from a check's results so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// OK, or a SOFT problem after OK: no alarm can be open.
    Clear,
    /// A SOFT problem not known to follow OK: an open alarm takes its state.
    Soft(State),
    /// A HARD problem: an alarm is open in this state.
    Hard(State),
}

impl Phase {
    /// The phase after `r`, when it was `before` (`None`: no result yet).
    fn after(before: Option<Phase>, r: &CheckResult) -> Phase {
        let cur = r.transition.current;
        match (cur.state, cur.state_type) {
            (State::Ok, _) => Phase::Clear,
            (state, StateType::Hard) => Phase::Hard(state),
            (_, StateType::Soft) if before == Some(Phase::Clear) => Phase::Clear,
            (state, StateType::Soft) => Phase::Soft(state),
        }
    }
}

/// One waiting result of a check, as its check's queue knows it.
#[derive(Debug, Clone, Copy)]
struct Mark {
    /// Its place in [`Backlog::order`].
    seq: u64,
    /// The phase after it.
    phase: Phase,
    /// It changed the phase or the flapping (else it is the latest and goes
    /// when a newer result comes).
    change: bool,
}

#[derive(Debug, Default)]
struct CheckBacklog {
    /// The phase after the check's latest result (waiting or taken).
    phase: Option<Phase>,
    /// Its waiting results, oldest first; all are changes but the last.
    waiting: VecDeque<Mark>,
}

/// Results waiting for the alarm stage, coalesced per check (see the module comment).
#[derive(Debug)]
pub(crate) struct Backlog {
    per_check: usize,
    next_seq: u64,
    /// Every waiting result, in the order they came.
    order: BTreeMap<u64, CheckResult>,
    checks: HashMap<String, CheckBacklog>,
}

impl Backlog {
    /// An empty backlog keeping at most `per_check` results of a check (at least 3).
    pub(crate) fn new(per_check: usize) -> Backlog {
        Backlog {
            per_check: per_check.max(3),
            next_seq: 0,
            order: BTreeMap::new(),
            checks: HashMap::new(),
        }
    }

    /// Adds a result; returns how many waiting changes of its check were
    /// merged away to stay within the bound (normally 0).
    pub(crate) fn push(&mut self, result: CheckResult) -> usize {
        let seq = self.next_seq;
        self.next_seq += 1;
        let check = self.checks.entry(result.check.clone()).or_default();
        let before = check.phase;
        let phase = Phase::after(before, &result);
        let flap = result.transition.flap_change.is_some() && phase != Phase::Clear;
        let change = before != Some(phase) || flap;
        check.phase = Some(phase);
        if check.waiting.back().is_some_and(|m| !m.change) {
            if let Some(m) = check.waiting.pop_back() {
                self.order.remove(&m.seq);
            }
        }
        if !change && phase == Phase::Clear {
            return 0;
        }
        check.waiting.push_back(Mark { seq, phase, change });
        self.order.insert(seq, result);
        let mut merged = 0;
        while check.waiting.len() > self.per_check {
            for m in merge_oldest(&mut check.waiting) {
                self.order.remove(&m.seq);
                merged += 1;
            }
        }
        merged
    }

    /// Takes the oldest waiting result.
    pub(crate) fn pop(&mut self) -> Option<CheckResult> {
        let (seq, result) = self.order.pop_first()?;
        if let Some(check) = self.checks.get_mut(&result.check) {
            check.waiting.retain(|m| m.seq != seq);
        }
        Some(result)
    }

    /// How many results wait.
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no result waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// Makes room in a check's full queue, keeping its first and its latest
/// result, and returns what it removed: the oldest two neighbouring changes
/// whose removal leaves the phase before the next one as it was, a clear
/// spell between two incidents first (they become one alarm); failing that,
/// the oldest change after the first.
fn merge_oldest(waiting: &mut VecDeque<Mark>) -> Vec<Mark> {
    let latest = waiting.len().saturating_sub(1);
    let pair = |clear_only: bool| {
        (1..latest.saturating_sub(1)).find(|&i| {
            waiting[i - 1].phase == waiting[i + 1].phase
                && (!clear_only || waiting[i].phase == Phase::Clear)
        })
    };
    match pair(true).or_else(|| pair(false)) {
        Some(i) => waiting.drain(i..i + 2).collect(),
        None => waiting.remove(1).into_iter().collect(),
    }
}

/// The shared half of the intake.
struct Shared {
    backlog: Mutex<Backlog>,
    closed: AtomicBool,
    ready: Notify,
}

impl Shared {
    fn backlog(&self) -> MutexGuard<'_, Backlog> {
        // A panic while holding the lock leaves a consistent backlog: every
        // change is made before anything can panic.
        self.backlog.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Creates the intake: the sender for the fan-out, the receiver for the alarm stage.
pub(crate) fn intake() -> (IntakeSender, IntakeReceiver) {
    let shared = Arc::new(Shared {
        backlog: Mutex::new(Backlog::new(PER_CHECK)),
        closed: AtomicBool::new(false),
        ready: Notify::new(),
    });
    (
        IntakeSender {
            shared: Arc::clone(&shared),
        },
        IntakeReceiver { shared },
    )
}

/// Hands results to the alarm stage; dropping it closes the intake.
pub(crate) struct IntakeSender {
    shared: Arc<Shared>,
}

impl IntakeSender {
    /// Adds a result to the backlog; never blocks.
    pub(crate) fn send(&self, result: CheckResult) {
        let check = result.check.clone();
        let merged = self.shared.backlog().push(result);
        if merged > 0 {
            tracing::warn!(%check, merged, per_check = PER_CHECK, "the alarm stage is behind and this check changed state too often: its oldest waiting changes were merged (the results are stored)");
        }
        self.shared.ready.notify_one();
    }
}

impl Drop for IntakeSender {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.ready.notify_one();
    }
}

/// The alarm stage's end of the intake.
pub struct IntakeReceiver {
    shared: Arc<Shared>,
}

impl IntakeReceiver {
    /// The oldest waiting result; `None` once the sender is gone and
    /// nothing waits. Cancel-safe: a result is taken only when returned.
    pub async fn recv(&mut self) -> Option<CheckResult> {
        loop {
            // Closed before looking means nothing more can come.
            let closed = self.shared.closed.load(Ordering::SeqCst);
            if let Some(result) = self.shared.backlog().pop() {
                return Some(result);
            }
            if closed {
                return None;
            }
            self.shared.ready.notified().await;
        }
    }

    /// Whether the sender is gone (results may still wait).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// How many results wait.
    pub fn len(&self) -> usize {
        self.shared.backlog().len()
    }

    /// Whether no result waits.
    pub fn is_empty(&self) -> bool {
        self.shared.backlog().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarm::lifecycle::{Alarms, Effect};
    use crate::checks::CheckOutput;
    use crate::state::{
        Change, CheckState, FlapChange, FlapThresholds, IntervalKind, Policy, Reachability, Status,
        Transition,
    };
    use chrono::{DateTime, Utc};

    /// A result of `check` labelled `label`, from a token: `O` (OK), `s2`
    /// (SOFT CRITICAL), `h1` (HARD WARNING), ...; a trailing `~` means
    /// flapping started with it. Only the current status and the flap
    /// change matter to the backlog.
    fn result(check: &str, label: &str, token: &str) -> CheckResult {
        let flap = token.ends_with('~');
        let token = token.trim_end_matches('~');
        let state = |d: &str| match d {
            "1" => State::Warning,
            "2" => State::Critical,
            "3" => State::Unknown,
            _ => panic!("bad token {token}"),
        };
        let current = match token.split_at(1) {
            ("O", "") => Status {
                state: State::Ok,
                state_type: StateType::Hard,
                attempt: 1,
            },
            ("s", d) => Status {
                state: state(d),
                state_type: StateType::Soft,
                attempt: 1,
            },
            ("h", d) => Status {
                state: state(d),
                state_type: StateType::Hard,
                attempt: 3,
            },
            _ => panic!("bad token {token}"),
        };
        let at: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().expect("time");
        CheckResult {
            check: check.into(),
            host: "cs1".into(),
            kind: "port",
            output: CheckOutput::new(current.state, label),
            planned: at,
            started: at,
            duration: std::time::Duration::ZERO,
            transition: Transition {
                previous: current,
                current,
                change: Change::Unchanged,
                unreachable: false,
                flapping: flap,
                flap_change: flap.then_some(FlapChange::Started),
                percent_state_change: 0.0,
                next_interval: IntervalKind::Normal,
            },
            state: CheckState::new(),
        }
    }

    fn drain(backlog: &mut Backlog) -> Vec<CheckResult> {
        std::iter::from_fn(|| backlog.pop()).collect()
    }

    struct Case {
        name: &'static str,
        per_check: usize,
        /// `check:token` pushed in this order; the label is check and index.
        pushed: &'static str,
        /// Labels taken, in order.
        taken: &'static str,
        merged: usize,
    }

    const CASES: &[Case] = &[
        Case {
            name: "a steady OK check keeps only its first result",
            per_check: 8,
            pushed: "a:O a:O a:O a:O",
            taken: "a0",
            merged: 0,
        },
        Case {
            name: "a problem being confirmed keeps the HARD step and the latest",
            per_check: 8,
            pushed: "a:O a:s2 a:s2 a:h2 a:h2 a:h2",
            taken: "a0 a3 a5",
            merged: 0,
        },
        Case {
            name: "a HARD problem that recovered while waiting opens and resolves",
            per_check: 8,
            pushed: "a:O a:s2 a:h2 a:h2 a:O a:O",
            taken: "a0 a2 a4",
            merged: 0,
        },
        Case {
            name: "a first SOFT result may change an open alarm: kept",
            per_check: 8,
            pushed: "a:s2 a:s2 a:h2",
            taken: "a0 a2",
            merged: 0,
        },
        Case {
            name: "a HARD problem changing state keeps every state",
            per_check: 8,
            pushed: "a:h2 a:h1 a:h1 a:h2",
            taken: "a0 a1 a3",
            merged: 0,
        },
        Case {
            name: "flapping matters only while a problem is HARD",
            per_check: 8,
            pushed: "a:O a:O~ a:h2 a:h2~ a:h2",
            taken: "a0 a2 a3 a4",
            merged: 0,
        },
        Case {
            name: "a SOFT problem after HARD (states reset) is a change",
            per_check: 8,
            pushed: "a:h2 a:s1 a:O",
            taken: "a0 a1 a2",
            merged: 0,
        },
        Case {
            name: "checks leave in the order they came",
            per_check: 8,
            pushed: "a:O b:O a:O b:h2 a:h2 b:h2 b:h2",
            taken: "a0 b1 b3 a4 b6",
            merged: 0,
        },
        Case {
            name: "over the bound, two incidents become one alarm",
            per_check: 4,
            pushed: "a:O a:h2 a:O a:h2 a:O a:h2",
            taken: "a0 a1 a4 a5",
            merged: 2,
        },
        Case {
            name: "over the bound, a state change and its return are merged",
            per_check: 3,
            pushed: "a:h2 a:h1 a:h2 a:h1 a:h2",
            taken: "a0 a3 a4",
            merged: 2,
        },
        Case {
            name: "over the bound with no pair to merge, the oldest change after the first goes",
            per_check: 3,
            pushed: "a:O a:h1 a:h2 a:h3",
            taken: "a0 a2 a3",
            merged: 1,
        },
    ];

    #[test]
    fn coalescing_keeps_what_the_lifecycle_can_tell_apart() {
        for case in CASES {
            let mut backlog = Backlog::new(case.per_check);
            let mut merged = 0;
            for (i, item) in case.pushed.split_whitespace().enumerate() {
                let (check, token) = item.split_once(':').expect("check:token");
                merged += backlog.push(result(check, &format!("{check}{i}"), token));
            }
            let taken: Vec<String> = drain(&mut backlog)
                .into_iter()
                .map(|r| r.output.output)
                .collect();
            assert_eq!(taken.join(" "), case.taken, "{}", case.name);
            assert_eq!(merged, case.merged, "{}", case.name);
            assert!(backlog.is_empty(), "{}", case.name);
        }
    }

    /// A small deterministic generator (64-bit LCG, Knuth's constants).
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }
    }

    fn config() -> crate::config::Config {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("laxmon.yaml");
        std::fs::write(
            &path,
            "hosts:\n  - {name: cs1, address: 127.0.0.21}\n\
             checks:\n  - {name: web, kind: port, host: cs1, port: 80}\n\
             \x20 - {name: db, kind: port, host: cs1, port: 5432}\n\
             notifiers:\n  - {name: hook, kind: webhook, url: \"http://127.0.0.1:9/hook\"}\n\
             contacts:\n  - {name: ops, via: [hook]}\n\
             rules:\n  - {name: all, match: {checks: [web, db]}, notify: [ops], repeat: 1h}\n",
        )
        .expect("write");
        crate::config::load(&path).unwrap_or_else(|e| panic!("config: {e}"))
    }

    /// What the lifecycle holds, without the count of results seen.
    fn alarm_state(alarms: &Alarms) -> String {
        let mut snapshot = alarms.snapshot();
        for memory in snapshot.checks.values_mut() {
            memory.cycle = 0;
        }
        let every: Vec<_> = (0..snapshot.next_id).map(|id| alarms.alarm(id)).collect();
        format!("{snapshot:?}\n{every:?}")
    }

    fn keys(effects: Vec<Effect>) -> Vec<String> {
        effects
            .into_iter()
            .filter_map(|e| match e {
                Effect::Notify(n) => Some(n.key),
                _ => None,
            })
            .collect()
    }

    /// Real state machines feed pseudo-random results of two checks to one
    /// lifecycle directly and to another through the backlog (taken now and
    /// then, as a stage that is behind would): both end with the same
    /// alarms, events and notifications.
    #[test]
    fn the_lifecycle_sees_the_same_alarms_through_the_backlog() {
        let config = config();
        let mut rng = Lcg(0x1a5_c0de);
        let mut opened = 0;
        for run in 0..300 {
            let mut direct = Alarms::new(&config);
            let mut through = Alarms::new(&config);
            let mut backlog = Backlog::new(usize::MAX);
            let (mut sent, mut taken) = (Vec::new(), Vec::new());
            let now: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().expect("time");
            let mut states = [CheckState::new(), CheckState::new()];
            let policies = [2, 3].map(|max_attempts| Policy {
                max_attempts,
                flap: FlapThresholds {
                    low: 15.0,
                    high: 30.0,
                },
            });
            let mut last = [State::Ok; 2];
            for i in 0..60 {
                let c = rng.below(2) as usize;
                if rng.below(10) < 3 {
                    last[c] = [State::Ok, State::Warning, State::Critical, State::Unknown]
                        [rng.below(4) as usize];
                }
                let at = now + chrono::Duration::minutes(i);
                let transition =
                    states[c].apply(last[c], &policies[c], Reachability::Reachable, at);
                let label = format!("run {run} result {i}");
                let mut r = result(["web", "db"][c], &label, "O");
                r.output = CheckOutput::new(last[c], label);
                r.transition = transition;
                r.state = states[c].clone();
                sent.extend(keys(direct.observe(&r, now)));
                backlog.push(r);
                if rng.below(10) == 0 {
                    for r in drain(&mut backlog) {
                        taken.extend(keys(through.observe(&r, now)));
                    }
                }
            }
            for r in drain(&mut backlog) {
                taken.extend(keys(through.observe(&r, now)));
            }
            assert_eq!(alarm_state(&direct), alarm_state(&through), "run {run}");
            assert_eq!(sent, taken, "run {run}");
            opened += direct.snapshot().next_id;
        }
        assert!(opened > 300, "the runs open alarms ({opened})");
    }

    /// The stage takes what was sent, wakes for what comes later, and ends
    /// once the sender is gone and nothing waits.
    #[tokio::test]
    async fn the_receiver_takes_every_result_then_ends() {
        let (tx, mut rx) = intake();
        let waiter = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(r) = rx.recv().await {
                got.push(r.output.output);
            }
            got
        });
        tx.send(result("a", "a0", "O"));
        tokio::task::yield_now().await;
        tx.send(result("b", "b1", "h2"));
        tx.send(result("b", "b2", "h2"));
        drop(tx);
        let got = waiter.await.expect("receiver");
        // b1 is a change and b2 the latest: both wait.
        assert_eq!(got.join(" "), "a0 b1 b2");
    }
}
