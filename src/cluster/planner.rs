//! The clusterreorg planner: a pure function from cluster state and failed
//! hosts to a [`Plan`], following the policy in `docs/clusterreorg.md`.
//!
//! It never does I/O, never reads the clock and uses no randomness or hash
//! iteration order, so the same input gives the same plan byte for byte.
//!
//! # How it plans
//!
//! Planning happens in two stages: choose a *final placement* (every planned
//! VM on an up host or down), then *sequence* it into actions.
//!
//! * **Exact** (at most [`EXACT_MAX_VMS`] planned VMs and
//!   [`EXACT_MAX_HOSTS`] up hosts): depth-first branch and bound over final
//!   placements, VMs in descending priority. The incumbent starts as the
//!   heuristic's plan. A branch is cut when even running as many of the
//!   remaining VMs as could fit in the memory left (smallest first, level by
//!   level) cannot beat the incumbent under rule 2, or when it
//!   ties on rule 2 but already has more stops / migrations (rule 4). Rule 3
//!   is checked exactly as VMs are fixed: because VMs go in descending
//!   priority, every displaced VM that could justify a stop is decided first.
//!   Each candidate that beats the incumbent must also be sequencable (below);
//!   if not, it is rejected. The search has a budget of [`EXACT_NODE_BUDGET`]
//!   nodes; past it the best plan so far is returned as
//!   [`PlannerKind::ExactTruncated`].
//! * **Heuristic** (larger clusters): displaced VMs in descending priority
//!   (then memory), each (a) started on the allowed host with the most free
//!   memory, else (b) started after migrating one running VM off a host to
//!   make room, else (c) started after preempting strictly-lower-priority VMs
//!   on one host (each victim is migrated elsewhere if it fits, else stopped),
//!   choosing the host whose victims have the lowest top priority, then the
//!   fewest of them. It gives up: multi-VM reshuffles (two or more migrations
//!   for one start), preemption combined with a migration, and global
//!   optimality of which low-priority VMs to sacrifice; each VM moves at most
//!   once. It is O(displaced × VMs) in the worst case; every plan it returns
//!   satisfies rules 1, 3, 5 and 6 by construction.
//!
//! # Sequencing
//!
//! All stops come first (lowest priority first): they only free memory. Then
//! migrations, in an order that keeps every step within capacity and
//! anti-affinity: an exact search over orders (memoised on the set done) for
//! up to 20 migrations, the construction order for the heuristic. Each VM
//! migrates at most once and directly; final placements whose migrations
//! cannot be ordered (a capacity cycle) are rejected rather than broken with
//! a temporary stop or an extra hop. Starts go in descending priority, each
//! as early as it can go without blocking a pending migration.
//!
//! # Ties
//!
//! Plans equal under rules 2-4 are told apart by balance of free memory: the
//! plan whose smallest free memory over up hosts is largest wins, then the
//! second smallest, and so on; remaining ties go to the first found, which
//! is deterministic (hosts and VMs are handled in name order).

use super::model::{Action, Cluster, HostState, Plan, PlanScore, PlannerKind};
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Largest number of planned VMs (running or displaced) the exact planner takes.
pub(crate) const EXACT_MAX_VMS: usize = 14;
/// Largest number of up hosts the exact planner takes.
pub(crate) const EXACT_MAX_HOSTS: usize = 8;
/// Search nodes the exact planner may visit before settling for its best so far.
pub(crate) const EXACT_NODE_BUDGET: u64 = 2_000_000;
/// Most migrations the exact sequencer orders by search (above: greedy).
const SEQUENCE_SEARCH_MAX: usize = 20;

/// Which planner to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Exact when the cluster is small enough, heuristic otherwise.
    Auto,
    /// Always the exact search (subject to its node budget).
    Exact,
    /// Always the heuristic.
    Heuristic,
}

/// Plans the reorganisation after the hosts in `failed` (and those marked
/// down in the cluster) fail, choosing the planner by size.
///
/// Expects a validated cluster; unknown names in `failed` are ignored.
pub fn plan(cluster: &Cluster, failed: &[String]) -> Plan {
    plan_with(cluster, failed, Strategy::Auto)
}

/// Like [`plan`], with the planner chosen by the caller.
pub fn plan_with(cluster: &Cluster, failed: &[String], strategy: Strategy) -> Plan {
    let p = Problem::new(cluster, failed);
    let heuristic = p.heuristic();
    let use_exact = match strategy {
        Strategy::Heuristic => false,
        Strategy::Exact => true,
        Strategy::Auto => p.vms.len() <= EXACT_MAX_VMS && p.up_hosts() <= EXACT_MAX_HOSTS,
    };
    if !use_exact {
        return p.finish(&heuristic.assign, heuristic.actions, PlannerKind::Heuristic);
    }
    let (best, complete) = p.exact(heuristic);
    let kind = if complete {
        PlannerKind::Exact
    } else {
        PlannerKind::ExactTruncated
    };
    p.finish(&best.assign, best.actions, kind)
}

/// Scores a plan under rules 2 and 4 (greater is better).
pub fn score(cluster: &Cluster, plan: &Plan) -> PlanScore {
    let prio: HashMap<&str, i64> = cluster
        .vms
        .iter()
        .map(|v| (v.name.as_str(), v.priority))
        .collect();
    let mut levels: BTreeMap<Reverse<i64>, u32> = BTreeMap::new();
    for (vm, host) in &plan.placement {
        let p = prio.get(vm.as_str()).copied().unwrap_or(0);
        *levels.entry(Reverse(p)).or_default() += u32::from(host.is_some());
    }
    PlanScore {
        running_by_priority: levels.into_iter().map(|(Reverse(p), n)| (p, n)).collect(),
        neg_stops: -(plan.stops() as i64),
        neg_migrations: -(plan.migrations() as i64),
    }
}

struct HostInfo<'a> {
    name: &'a str,
    cap: u64,
    up: bool,
}

struct VmInfo<'a> {
    name: &'a str,
    mem: u64,
    prio: i64,
    /// Allowed host indices as a mask over hosts; `None` = all.
    allowed: Option<Vec<bool>>,
    group: Option<usize>,
    /// Current host if it runs on an up host.
    cur: Option<usize>,
    /// Its host failed: it can only be started.
    displaced: bool,
}

/// The planning problem with names turned into indices (hosts and VMs sorted by name).
struct Problem<'a> {
    hosts: Vec<HostInfo<'a>>,
    vms: Vec<VmInfo<'a>>,
}

/// A final placement and the actions that reach it.
#[derive(Clone)]
struct Candidate {
    assign: Vec<Option<usize>>,
    actions: Vec<Act>,
}

/// An action by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Act {
    Stop(usize),
    Migrate(usize, usize),
    Start(usize, usize),
}

/// Memory use and anti-affinity occupancy while actions are replayed.
#[derive(Clone)]
struct Sim {
    used: Vec<u64>,
    groups: HashMap<(usize, usize), u32>,
    loc: Vec<Option<usize>>,
}

type RuleScore = (Vec<u32>, Reverse<u32>, Reverse<u32>);

impl<'a> Problem<'a> {
    fn new(cluster: &'a Cluster, failed: &[String]) -> Problem<'a> {
        let mut hosts: Vec<HostInfo<'a>> = cluster
            .hosts
            .iter()
            .map(|h| HostInfo {
                name: &h.name,
                cap: h.capacity_mb(),
                up: h.state == HostState::Up && !failed.contains(&h.name),
            })
            .collect();
        hosts.sort_by(|a, b| a.name.cmp(b.name));
        let host_idx: HashMap<&str, usize> =
            hosts.iter().enumerate().map(|(i, h)| (h.name, i)).collect();
        let mut group_names: Vec<&str> = cluster
            .vms
            .iter()
            .filter_map(|v| v.anti_affinity.as_deref())
            .collect();
        group_names.sort_unstable();
        group_names.dedup();
        let mut vms: Vec<VmInfo<'a>> = cluster
            .vms
            .iter()
            .filter_map(|v| {
                let h = *host_idx.get(v.host.as_deref()?)?;
                let allowed = v.allowed_hosts.as_ref().map(|list| {
                    let mut mask = vec![false; hosts.len()];
                    for a in list {
                        if let Some(&i) = host_idx.get(a.as_str()) {
                            mask[i] = true;
                        }
                    }
                    mask
                });
                Some(VmInfo {
                    name: &v.name,
                    mem: v.memory_mb,
                    prio: v.priority,
                    allowed,
                    group: v
                        .anti_affinity
                        .as_deref()
                        .and_then(|g| group_names.binary_search(&g).ok()),
                    cur: hosts[h].up.then_some(h),
                    displaced: !hosts[h].up,
                })
            })
            .collect();
        vms.sort_by(|a, b| a.name.cmp(b.name));
        Problem { hosts, vms }
    }

    fn up_hosts(&self) -> usize {
        self.hosts.iter().filter(|h| h.up).count()
    }

    /// Whether VM `v` may ever run on host `h` (up and allowed).
    fn may_run(&self, v: usize, h: usize) -> bool {
        self.hosts[h].up && self.vms[v].allowed.as_ref().is_none_or(|m| m[h])
    }

    fn initial_sim(&self) -> Sim {
        let mut sim = Sim {
            used: vec![0; self.hosts.len()],
            groups: HashMap::new(),
            loc: vec![None; self.vms.len()],
        };
        for (v, vm) in self.vms.iter().enumerate() {
            if let Some(h) = vm.cur {
                sim.put(self, v, h);
            }
        }
        sim
    }

    /// Rule-2/4 score of a final placement.
    fn rule_score(&self, assign: &[Option<usize>], levels: &[i64]) -> RuleScore {
        let mut counts = vec![0u32; levels.len()];
        let (mut stops, mut migs) = (0, 0);
        for (v, vm) in self.vms.iter().enumerate() {
            if assign[v].is_some() {
                if let Ok(l) = levels.binary_search_by(|p| vm.prio.cmp(p)) {
                    counts[l] += 1;
                }
            }
            match (vm.cur, assign[v]) {
                (Some(_), None) => stops += 1,
                (Some(c), Some(t)) if c != t => migs += 1,
                _ => {}
            }
        }
        (counts, Reverse(stops), Reverse(migs))
    }

    /// Balance key: free memory of up hosts, ascending (greater is better).
    fn balance(&self, assign: &[Option<usize>]) -> Vec<u64> {
        let mut used = vec![0u64; self.hosts.len()];
        for (v, a) in assign.iter().enumerate() {
            if let Some(h) = a {
                used[*h] += self.vms[v].mem;
            }
        }
        let mut free: Vec<u64> = self
            .hosts
            .iter()
            .zip(&used)
            .filter(|(h, _)| h.up)
            .map(|(h, u)| h.cap.saturating_sub(*u))
            .collect();
        free.sort_unstable();
        free
    }

    /// Distinct priorities of planned VMs, highest first.
    fn levels(&self) -> Vec<i64> {
        let mut l: Vec<i64> = self.vms.iter().map(|v| v.prio).collect();
        l.sort_unstable_by(|a, b| b.cmp(a));
        l.dedup();
        l
    }

    // ---------------------------------------------------------------- heuristic

    fn heuristic(&self) -> Candidate {
        let mut sim = self.initial_sim();
        let mut moved = vec![false; self.vms.len()];
        let mut log: Vec<Act> = Vec::new();
        let mut displaced: Vec<usize> = (0..self.vms.len())
            .filter(|&v| self.vms[v].displaced)
            .collect();
        displaced.sort_by_key(|&v| (Reverse(self.vms[v].prio), Reverse(self.vms[v].mem)));
        for d in displaced {
            if let Some(h) = self.roomiest(&sim, d, None) {
                sim.put(self, d, h);
                log.push(Act::Start(d, h));
            } else if let Some((r, from, to)) = self.one_move(&sim, &moved, d) {
                sim.take(self, r, from);
                sim.put(self, r, to);
                moved[r] = true;
                log.push(Act::Migrate(r, to));
                sim.put(self, d, from);
                log.push(Act::Start(d, from));
            } else if let Some((h, victims)) = self.preemption(&sim, &moved, d) {
                for r in victims {
                    sim.take(self, r, h);
                    match self.roomiest(&sim, r, Some(h)).filter(|_| !moved[r]) {
                        Some(to) => {
                            sim.put(self, r, to);
                            moved[r] = true;
                            log.push(Act::Migrate(r, to));
                        }
                        None => log.push(Act::Stop(r)),
                    }
                }
                sim.put(self, d, h);
                log.push(Act::Start(d, h));
            }
        }
        Candidate {
            assign: sim.loc.clone(),
            actions: log,
        }
    }

    /// The allowed host with room and no group conflict for `v` that has the
    /// most free memory (ties: lowest name), never `except`.
    fn roomiest(&self, sim: &Sim, v: usize, except: Option<usize>) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for h in 0..self.hosts.len() {
            if Some(h) == except || Some(h) == sim.loc[v] || !sim.fits(self, v, h) {
                continue;
            }
            let free = self.hosts[h].cap - sim.used[h];
            if best.is_none_or(|(f, _)| free > f) {
                best = Some((free, h));
            }
        }
        best.map(|(_, h)| h)
    }

    /// One migration that makes room for displaced `d`: `(vm, from, to)`.
    /// Prefers moving the smallest VM, then the host with most free memory.
    fn one_move(&self, sim: &Sim, moved: &[bool], d: usize) -> Option<(usize, usize, usize)> {
        let total_free: u64 = (0..self.hosts.len())
            .filter(|&h| self.may_run(d, h))
            .map(|h| self.hosts[h].cap - sim.used[h])
            .sum();
        if total_free < self.vms[d].mem {
            return None;
        }
        let mut by_free: Vec<usize> = (0..self.hosts.len())
            .filter(|&h| self.hosts[h].up)
            .collect();
        by_free.sort_by_key(|&h| (Reverse(self.hosts[h].cap - sim.used[h]), h));
        let mut best: Option<(u64, usize, usize, usize)> = None;
        for (r, vm) in self.vms.iter().enumerate() {
            let Some(h) = sim.loc[r] else { continue };
            if moved[r] || vm.cur != Some(h) || !self.may_run(d, h) {
                continue;
            }
            if best.is_some_and(|(m, ..)| vm.mem >= m) {
                continue;
            }
            let free = self.hosts[h].cap - sim.used[h];
            if free + vm.mem < self.vms[d].mem {
                continue;
            }
            // d's group must not stay on h after r leaves.
            if let Some(g) = self.vms[d].group {
                let others = sim.group_count(h, g) - u32::from(vm.group == Some(g));
                if others > 0 {
                    continue;
                }
            }
            let target = by_free
                .iter()
                .take_while(|&&t| self.hosts[t].cap - sim.used[t] >= vm.mem)
                .find(|&&t| t != h && sim.fits(self, r, t));
            if let Some(&t) = target {
                best = Some((vm.mem, r, h, t));
            }
        }
        best.map(|(_, r, h, t)| (r, h, t))
    }

    /// Preempting strictly-lower-priority VMs on one host to start `d`:
    /// `(host, victims)`, victims lowest priority first.
    fn preemption(&self, sim: &Sim, moved: &[bool], d: usize) -> Option<(usize, Vec<usize>)> {
        let dv = &self.vms[d];
        let mut on_host: Vec<Vec<usize>> = vec![Vec::new(); self.hosts.len()];
        for (r, loc) in sim.loc.iter().enumerate() {
            if let Some(h) = loc {
                on_host[*h].push(r);
            }
        }
        // (cost, host, victims); cost = (top victim priority, victims, memory freed beyond need).
        type Choice = ((i64, usize, u64), usize, Vec<usize>);
        let mut best: Option<Choice> = None;
        for (h, here) in on_host.iter().enumerate() {
            if !self.may_run(d, h) || self.vms[d].mem > self.hosts[h].cap {
                continue;
            }
            // Only originally running, unmoved VMs of lower priority may go.
            let victim_ok =
                |r: usize| self.vms[r].prio < dv.prio && self.vms[r].cur == Some(h) && !moved[r];
            let mut victims: Vec<usize> = Vec::new();
            let mut feasible = true;
            if let Some(g) = dv.group {
                for &r in here {
                    if self.vms[r].group == Some(g) {
                        if victim_ok(r) {
                            victims.push(r);
                        } else {
                            feasible = false;
                        }
                    }
                }
            }
            if !feasible {
                continue;
            }
            let mut free = self.hosts[h].cap - sim.used[h]
                + victims.iter().map(|&r| self.vms[r].mem).sum::<u64>();
            let mut pool: Vec<usize> = here
                .iter()
                .copied()
                .filter(|&r| victim_ok(r) && !victims.contains(&r))
                .collect();
            pool.sort_by_key(|&r| (self.vms[r].prio, Reverse(self.vms[r].mem), r));
            for r in pool {
                if free >= dv.mem {
                    break;
                }
                free += self.vms[r].mem;
                victims.push(r);
            }
            if free < dv.mem {
                continue;
            }
            let top = victims
                .iter()
                .map(|&r| self.vms[r].prio)
                .max()
                .unwrap_or(i64::MIN);
            let cost = (top, victims.len(), free - dv.mem);
            if best.as_ref().is_none_or(|(c, ..)| cost < *c) {
                best = Some((cost, h, victims));
            }
        }
        best.map(|(_, h, mut victims)| {
            victims.sort_by_key(|&r| (self.vms[r].prio, r));
            (h, victims)
        })
    }

    // ---------------------------------------------------------------- exact

    /// Branch and bound over final placements; returns the best candidate
    /// and whether the search completed within its budget.
    fn exact(&self, incumbent: Candidate) -> (Candidate, bool) {
        let levels = self.levels();
        let mut order: Vec<usize> = (0..self.vms.len()).collect();
        order.sort_by_key(|&v| {
            (
                Reverse(self.vms[v].prio),
                self.vms[v].displaced,
                Reverse(self.vms[v].mem),
                v,
            )
        });
        let level_of: Vec<usize> = order
            .iter()
            .map(|&v| {
                levels
                    .iter()
                    .position(|&p| p == self.vms[v].prio)
                    .unwrap_or(0)
            })
            .collect();
        let runnable: Vec<bool> = (0..self.vms.len())
            .map(|v| {
                (0..self.hosts.len())
                    .any(|h| self.may_run(v, h) && self.hosts[h].cap >= self.vms[v].mem)
            })
            .collect();
        let mut pending = vec![0u64; self.hosts.len()];
        for vm in &self.vms {
            if let Some(c) = vm.cur {
                pending[c] += vm.mem;
            }
        }
        let best_score = self.rule_score(&incumbent.assign, &levels);
        let best_balance = self.balance(&incumbent.assign);
        let mut search = Search {
            p: self,
            order,
            level_of,
            runnable,
            levels: levels.clone(),
            assign: vec![None; self.vms.len()],
            used: vec![0; self.hosts.len()],
            pending,
            groups: HashMap::new(),
            counts: vec![0; levels.len()],
            stops: 0,
            migs: 0,
            max_started: None,
            nodes: 0,
            best: incumbent,
            best_score,
            best_balance,
        };
        search.dfs(0);
        let complete = search.nodes <= EXACT_NODE_BUDGET;
        (search.best, complete)
    }

    // ---------------------------------------------------------------- sequencing

    /// Turns a final placement into actions feasible at every step, or `None`
    /// when its migrations cannot be ordered. `hint` is a known-good migration order.
    fn sequence(&self, assign: &[Option<usize>], hint: Option<&[usize]>) -> Option<Vec<Act>> {
        let mut sim = self.initial_sim();
        let mut acts = Vec::new();
        let mut stops: Vec<usize> = (0..self.vms.len())
            .filter(|&v| self.vms[v].cur.is_some() && assign[v].is_none())
            .collect();
        stops.sort_by_key(|&v| (self.vms[v].prio, v));
        for v in stops {
            if let Some(h) = sim.loc[v] {
                sim.take(self, v, h);
            }
            acts.push(Act::Stop(v));
        }
        let mut migs: Vec<usize> = (0..self.vms.len())
            .filter(|&v| matches!((self.vms[v].cur, assign[v]), (Some(c), Some(t)) if c != t))
            .collect();
        migs.sort_by_key(|&v| (Reverse(self.vms[v].prio), v));
        let order = match hint {
            Some(h) if self.migrations_ok(&sim, h, assign) => h.to_vec(),
            _ => self.order_migrations(&sim, &migs, assign)?,
        };
        let mut starts: Vec<usize> = (0..self.vms.len())
            .filter(|&v| self.vms[v].displaced && assign[v].is_some())
            .collect();
        starts.sort_by_key(|&v| (Reverse(self.vms[v].prio), Reverse(self.vms[v].mem), v));
        let mut next = 0;
        for s in starts {
            let h = assign[s]?;
            loop {
                if sim.fits(self, s, h) {
                    let mut trial = sim.clone();
                    trial.put(self, s, h);
                    if self.migrations_ok(&trial, &order[next..], assign) {
                        break;
                    }
                }
                let &m = order.get(next)?;
                let to = assign[m]?;
                sim.relocate(self, m, to);
                acts.push(Act::Migrate(m, to));
                next += 1;
            }
            sim.put(self, s, h);
            acts.push(Act::Start(s, h));
        }
        for &m in &order[next..] {
            let to = assign[m]?;
            if !sim.fits(self, m, to) {
                return None;
            }
            sim.relocate(self, m, to);
            acts.push(Act::Migrate(m, to));
        }
        Some(acts)
    }

    /// Whether `order` can be carried out from `sim` one after another.
    fn migrations_ok(&self, sim: &Sim, order: &[usize], assign: &[Option<usize>]) -> bool {
        if order.is_empty() {
            return true;
        }
        let mut s = sim.clone();
        for &m in order {
            let Some(to) = assign[m] else { return false };
            if !s.fits(self, m, to) {
                return false;
            }
            s.relocate(self, m, to);
        }
        true
    }

    /// An order for `migs` that is feasible at every step: exact search with
    /// memo for few migrations, greedy first-feasible beyond.
    fn order_migrations(
        &self,
        sim: &Sim,
        migs: &[usize],
        assign: &[Option<usize>],
    ) -> Option<Vec<usize>> {
        if migs.len() > SEQUENCE_SEARCH_MAX {
            let mut s = sim.clone();
            let mut left: Vec<usize> = migs.to_vec();
            let mut out = Vec::new();
            while !left.is_empty() {
                let i = left
                    .iter()
                    .position(|&m| assign[m].is_some_and(|to| s.fits(self, m, to)))?;
                let m = left.remove(i);
                s.relocate(self, m, assign[m]?);
                out.push(m);
            }
            return Some(out);
        }
        let mut dead: HashSet<u32> = HashSet::new();
        let mut out = Vec::new();
        let mut s = sim.clone();
        if self.order_dfs(&mut s, migs, assign, 0, &mut dead, &mut out) {
            Some(out)
        } else {
            None
        }
    }

    fn order_dfs(
        &self,
        s: &mut Sim,
        migs: &[usize],
        assign: &[Option<usize>],
        done: u32,
        dead: &mut HashSet<u32>,
        out: &mut Vec<usize>,
    ) -> bool {
        if out.len() == migs.len() {
            return true;
        }
        if dead.contains(&done) {
            return false;
        }
        for (i, &m) in migs.iter().enumerate() {
            if done & (1 << i) != 0 {
                continue;
            }
            let (Some(to), Some(from)) = (assign[m], s.loc[m]) else {
                continue;
            };
            if !s.fits(self, m, to) {
                continue;
            }
            s.relocate(self, m, to);
            out.push(m);
            if self.order_dfs(s, migs, assign, done | (1 << i), dead, out) {
                return true;
            }
            out.pop();
            s.relocate(self, m, from);
        }
        dead.insert(done);
        false
    }

    // ---------------------------------------------------------------- output

    fn finish(&self, assign: &[Option<usize>], log: Vec<Act>, kind: PlannerKind) -> Plan {
        let hint: Vec<usize> = log
            .iter()
            .filter_map(|a| {
                if let Act::Migrate(v, _) = a {
                    Some(*v)
                } else {
                    None
                }
            })
            .collect();
        // The candidate's own log is feasible; re-sequencing only reorders it
        // into the rule-5 order, which the log's validity guarantees.
        let acts = self.sequence(assign, Some(&hint)).unwrap_or(log);
        let actions = acts
            .iter()
            .map(|a| match *a {
                Act::Stop(v) => Action::Stop {
                    vm: self.vms[v].name.to_string(),
                    host: self.vms[v]
                        .cur
                        .map(|h| self.hosts[h].name.to_string())
                        .unwrap_or_default(),
                },
                Act::Migrate(v, to) => Action::Migrate {
                    vm: self.vms[v].name.to_string(),
                    from: self.vms[v]
                        .cur
                        .map(|h| self.hosts[h].name.to_string())
                        .unwrap_or_default(),
                    to: self.hosts[to].name.to_string(),
                },
                Act::Start(v, h) => Action::Start {
                    vm: self.vms[v].name.to_string(),
                    host: self.hosts[h].name.to_string(),
                },
            })
            .collect();
        let placement: BTreeMap<String, Option<String>> = self
            .vms
            .iter()
            .zip(assign)
            .map(|(vm, a)| {
                (
                    vm.name.to_string(),
                    a.map(|h| self.hosts[h].name.to_string()),
                )
            })
            .collect();
        let down: Vec<String> = placement
            .iter()
            .filter(|(_, h)| h.is_none())
            .map(|(v, _)| v.clone())
            .collect();
        let reasons = self.reasons(assign);
        Plan {
            actions,
            placement,
            down,
            reasons,
            planner: kind,
        }
    }

    /// Why each VM that ends down does so, judged against the final state.
    fn reasons(&self, assign: &[Option<usize>]) -> BTreeMap<String, String> {
        let mut used = vec![0u64; self.hosts.len()];
        let mut groups: HashMap<(usize, usize), u32> = HashMap::new();
        for (v, a) in assign.iter().enumerate() {
            if let Some(h) = *a {
                used[h] += self.vms[v].mem;
                if let Some(g) = self.vms[v].group {
                    *groups.entry((h, g)).or_default() += 1;
                }
            }
        }
        let mut out = BTreeMap::new();
        for (v, vm) in self.vms.iter().enumerate() {
            if assign[v].is_some() {
                continue;
            }
            let reason = if let Some(c) = vm.cur {
                let beneficiaries: Vec<&str> = self
                    .vms
                    .iter()
                    .zip(assign)
                    .filter(|(d, a)| d.displaced && d.prio > vm.prio && **a == Some(c))
                    .map(|(d, _)| d.name)
                    .collect();
                if beneficiaries.is_empty() {
                    format!(
                        "stopped (priority {}) to make room for higher-priority displaced VMs elsewhere",
                        vm.prio
                    )
                } else {
                    format!(
                        "stopped on {} (priority {}) to make room for higher-priority {}",
                        self.hosts[c].name,
                        vm.prio,
                        beneficiaries.join(", ")
                    )
                }
            } else {
                self.why_not_started(v, assign, &used, &groups)
            };
            out.insert(vm.name.to_string(), reason);
        }
        out
    }

    fn why_not_started(
        &self,
        v: usize,
        assign: &[Option<usize>],
        used: &[u64],
        groups: &HashMap<(usize, usize), u32>,
    ) -> String {
        let vm = &self.vms[v];
        let allowed: Vec<usize> = (0..self.hosts.len())
            .filter(|&h| self.may_run(v, h))
            .collect();
        if allowed.is_empty() {
            return "not allowed on any live host (allowed_hosts are all down)".to_string();
        }
        let largest = allowed
            .iter()
            .map(|&h| self.hosts[h].cap)
            .max()
            .unwrap_or(0);
        if largest < vm.mem {
            return format!(
                "needs {} MB, more than any allowed live host can hold ({largest} MB)",
                vm.mem
            );
        }
        let conflict = |h: usize| {
            vm.group
                .is_some_and(|g| groups.get(&(h, g)).copied().unwrap_or(0) > 0)
        };
        let roomy: Vec<usize> = allowed
            .iter()
            .copied()
            .filter(|&h| self.hosts[h].cap - used[h] >= vm.mem)
            .collect();
        if !roomy.is_empty() && roomy.iter().all(|&h| conflict(h)) {
            return format!(
                "anti-affinity: every allowed live host with {} MB free already runs a VM of its group",
                vm.mem
            );
        }
        // Could stopping lower-priority VMs have made room? (rule 3)
        let preemptible = |h: usize| -> u64 {
            self.vms
                .iter()
                .zip(assign)
                .filter(|(r, a)| r.cur.is_some() && r.prio < vm.prio && **a == Some(h))
                .map(|(r, _)| r.mem)
                .sum()
        };
        let room_by_preemption = allowed
            .iter()
            .any(|&h| self.hosts[h].cap - used[h] + preemptible(h) >= vm.mem);
        if !room_by_preemption {
            format!(
                "no allowed live host has {} MB free, and stopping VMs of priority {} or higher to make room is forbidden (rule 3)",
                vm.mem, vm.prio
            )
        } else {
            format!(
                "no allowed live host has {} MB free; the room that preemption could make is used better by VMs the policy ranks first",
                vm.mem
            )
        }
    }
}

impl Sim {
    fn group_count(&self, h: usize, g: usize) -> u32 {
        self.groups.get(&(h, g)).copied().unwrap_or(0)
    }

    /// Whether `v` may be placed on `h` now (up, allowed, memory, anti-affinity).
    fn fits(&self, p: &Problem<'_>, v: usize, h: usize) -> bool {
        let vm = &p.vms[v];
        p.may_run(v, h)
            && self.used[h] + vm.mem <= p.hosts[h].cap
            && vm.group.is_none_or(|g| self.group_count(h, g) == 0)
    }

    fn put(&mut self, p: &Problem<'_>, v: usize, h: usize) {
        let vm = &p.vms[v];
        self.used[h] += vm.mem;
        if let Some(g) = vm.group {
            *self.groups.entry((h, g)).or_default() += 1;
        }
        self.loc[v] = Some(h);
    }

    fn take(&mut self, p: &Problem<'_>, v: usize, h: usize) {
        let vm = &p.vms[v];
        self.used[h] -= vm.mem;
        if let Some(g) = vm.group {
            if let Some(c) = self.groups.get_mut(&(h, g)) {
                *c -= 1;
                if *c == 0 {
                    self.groups.remove(&(h, g));
                }
            }
        }
        self.loc[v] = None;
    }

    /// Moves `v` from wherever it is to `to` (the caller checked `fits`).
    fn relocate(&mut self, p: &Problem<'_>, v: usize, to: usize) {
        if let Some(from) = self.loc[v] {
            self.take(p, v, from);
        }
        self.put(p, v, to);
    }
}

/// State of the exact branch-and-bound search.
struct Search<'p, 'a> {
    p: &'p Problem<'a>,
    order: Vec<usize>,
    level_of: Vec<usize>,
    /// Whether each VM fits on at least one allowed up host at all.
    runnable: Vec<bool>,
    levels: Vec<i64>,
    assign: Vec<Option<usize>>,
    /// Memory of decided VMs per host.
    used: Vec<u64>,
    /// Memory of undecided running VMs on their current host (for host order only).
    pending: Vec<u64>,
    groups: HashMap<(usize, usize), u32>,
    counts: Vec<u32>,
    stops: u32,
    migs: u32,
    max_started: Option<i64>,
    nodes: u64,
    best: Candidate,
    best_score: RuleScore,
    best_balance: Vec<u64>,
}

impl Search<'_, '_> {
    fn dfs(&mut self, i: usize) {
        self.nodes += 1;
        if self.nodes > EXACT_NODE_BUDGET {
            return;
        }
        if i == self.order.len() {
            self.leaf();
            return;
        }
        if !self.promising(i) {
            return;
        }
        let v = self.order[i];
        let p = self.p;
        let vm = &p.vms[v];
        let level = self.level_of[i];
        if let Some(c) = vm.cur {
            self.pending[c] -= vm.mem;
        }
        // Hosts to try: current host first (no disruption), then by most free memory.
        let mut hosts: Vec<usize> = (0..p.hosts.len()).filter(|&h| p.may_run(v, h)).collect();
        hosts.sort_by_key(|&h| {
            let free = p.hosts[h].cap as i64 - self.used[h] as i64 - self.pending[h] as i64;
            (Some(h) != vm.cur, Reverse(free), h)
        });
        for h in hosts {
            if self.used[h] + vm.mem > p.hosts[h].cap {
                continue;
            }
            if vm
                .group
                .is_some_and(|g| self.groups.get(&(h, g)).copied().unwrap_or(0) > 0)
            {
                continue;
            }
            let migrate = vm.cur.is_some_and(|c| c != h);
            self.used[h] += vm.mem;
            if let Some(g) = vm.group {
                *self.groups.entry((h, g)).or_default() += 1;
            }
            self.counts[level] += 1;
            self.migs += u32::from(migrate);
            let prev_started = self.max_started;
            if vm.displaced {
                self.max_started = Some(prev_started.map_or(vm.prio, |m| m.max(vm.prio)));
            }
            self.assign[v] = Some(h);
            self.dfs(i + 1);
            self.assign[v] = None;
            self.max_started = prev_started;
            self.migs -= u32::from(migrate);
            self.counts[level] -= 1;
            if let Some(g) = vm.group {
                if let Some(c) = self.groups.get_mut(&(h, g)) {
                    *c -= 1;
                }
            }
            self.used[h] -= vm.mem;
        }
        // Leave it down: a displaced VM is not started; a running one is
        // stopped, which rule 3 allows only below a started displaced VM.
        let may_stop = vm.cur.is_none() || self.max_started.is_some_and(|m| m > vm.prio);
        if may_stop {
            let stop = vm.cur.is_some();
            self.stops += u32::from(stop);
            self.dfs(i + 1);
            self.stops -= u32::from(stop);
        }
        if let Some(c) = vm.cur {
            self.pending[c] += vm.mem;
        }
    }

    /// Whether the subtree at position `i` can still match or beat the incumbent.
    ///
    /// Upper bound, level by level from the top: decided VMs, plus as many
    /// undecided VMs of the level (those that fit on some allowed up host) as
    /// fit, smallest first, in the memory left after the smallest VMs of the
    /// levels above. If a completion matches the bound on a level it uses at
    /// least that memory, so the bound stays valid lexicographically.
    fn promising(&self, i: usize) -> bool {
        let mut free: u64 = self
            .p
            .hosts
            .iter()
            .zip(&self.used)
            .filter(|(h, _)| h.up)
            .map(|(h, u)| h.cap.saturating_sub(*u))
            .sum();
        for (l, best) in self.best_score.0.iter().enumerate() {
            let mut bound = self.counts[l];
            if l >= self.level_of[i] {
                let mut mems: Vec<u64> = (i..self.order.len())
                    .filter(|&j| self.level_of[j] == l && self.runnable[self.order[j]])
                    .map(|j| self.p.vms[self.order[j]].mem)
                    .collect();
                mems.sort_unstable();
                for m in mems {
                    if m > free {
                        break;
                    }
                    free -= m;
                    bound += 1;
                }
            }
            match bound.cmp(best) {
                std::cmp::Ordering::Less => return false,
                std::cmp::Ordering::Greater => return true,
                std::cmp::Ordering::Equal => {}
            }
        }
        (Reverse(self.stops), Reverse(self.migs)) >= (self.best_score.1, self.best_score.2)
    }

    fn leaf(&mut self) {
        let score = (self.counts.clone(), Reverse(self.stops), Reverse(self.migs));
        let better = match score.cmp(&self.best_score) {
            std::cmp::Ordering::Less => return,
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Equal => false,
        };
        let balance = if better {
            Vec::new()
        } else {
            self.p.balance(&self.assign)
        };
        if !better && balance <= self.best_balance {
            return;
        }
        let Some(actions) = self.p.sequence(&self.assign, None) else {
            return;
        };
        let balance = if better {
            self.p.balance(&self.assign)
        } else {
            balance
        };
        debug_assert_eq!(self.p.rule_score(&self.assign, &self.levels), score);
        self.best = Candidate {
            assign: self.assign.clone(),
            actions,
        };
        self.best_score = score;
        self.best_balance = balance;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::model::{Host, Vm};

    fn host(name: &str, memory_mb: u64) -> Host {
        Host {
            name: name.into(),
            memory_mb,
            reserve_mb: 0,
            state: HostState::Up,
        }
    }

    fn vm(name: &str, host: &str, memory_mb: u64) -> Vm {
        Vm {
            name: name.into(),
            host: Some(host.into()),
            memory_mb,
            priority: 0,
            allowed_hosts: None,
            anti_affinity: None,
        }
    }

    fn assign(p: &Problem<'_>, to: &[(&str, &str)]) -> Vec<Option<usize>> {
        let idx = |n: &str| p.hosts.iter().position(|h| h.name == n).expect("host");
        p.vms
            .iter()
            .map(|v| {
                to.iter()
                    .find(|(n, _)| *n == v.name)
                    .map(|(_, h)| idx(h))
                    .or(v.cur)
            })
            .collect()
    }

    #[test]
    fn sequencing_finds_the_order_a_greedy_pass_misses() {
        // Moving v to b first would block both w->b and y->c.
        let c = Cluster {
            hosts: vec![host("a", 4096), host("b", 8192), host("c", 4096)],
            vms: vec![vm("v", "a", 4096), vm("y", "b", 4096), vm("w", "c", 4096)],
        };
        let p = Problem::new(&c, &[]);
        let target = assign(&p, &[("v", "b"), ("w", "b"), ("y", "c")]);
        let acts = p.sequence(&target, None).expect("an order exists");
        let names: Vec<&str> = acts
            .iter()
            .map(|a| match a {
                Act::Migrate(v, _) => p.vms[*v].name,
                _ => "?",
            })
            .collect();
        assert_eq!(names, ["w", "y", "v"]);
    }

    #[test]
    fn a_swap_between_full_hosts_cannot_be_sequenced() {
        let c = Cluster {
            hosts: vec![host("a", 4096), host("b", 4096)],
            vms: vec![vm("x", "a", 4096), vm("y", "b", 4096)],
        };
        let p = Problem::new(&c, &[]);
        assert!(p
            .sequence(&assign(&p, &[("x", "b"), ("y", "a")]), None)
            .is_none());
    }
}
