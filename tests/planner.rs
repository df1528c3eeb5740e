//! The clusterreorg planner against its contract (`docs/clusterreorg.md`):
//! its examples, an exhaustive reference search on generated small
//! clusters, a step-by-step replay checker, determinism, heuristic quality
//! and bad input.

use laxmon::cluster::{
    plan, plan_command, plan_with, score, Action, Cluster, Host, HostState, Plan, PlanScore,
    PlannerKind, Strategy, Vm,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/plan")
        .join(name)
}

fn fails(hosts: &[&str]) -> Vec<String> {
    hosts.iter().map(|s| s.to_string()).collect()
}

// ------------------------------------------------------------ spec examples

#[test]
fn spec_examples_give_the_expected_plans() {
    for (name, failed) in [
        ("example1", ["cs2"]),
        ("example2", ["cs2"]),
        ("example3", ["cs2"]),
    ] {
        let failed = fails(&failed);
        let out = plan_command(&fixture(&format!("{name}.yaml")), &failed, true)
            .expect("fixture is valid");
        assert_eq!(
            out.lines().count(),
            1,
            "{name}: one JSON object on one line"
        );
        let got: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
        let want: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fixture(&format!("{name}.json"))).expect("expected file"),
        )
        .expect("expected JSON");
        for key in ["actions", "placement", "down"] {
            assert_eq!(got[key], want[key], "{name}: key {key}\n got: {out}");
        }
        let cluster = Cluster::load(&fixture(&format!("{name}.yaml")), &failed).expect("valid");
        let plan = plan(&cluster, &failed);
        validate_plan(&cluster, &failed, &plan);
        assert_eq!(plan.planner, PlannerKind::Exact);
        for vm in &plan.down {
            assert!(!plan.reasons[vm].is_empty());
        }
    }
}

#[test]
fn reasons_name_the_cause() {
    let c = Cluster::load(&fixture("example3.yaml"), &fails(&["cs2"])).expect("valid");
    let p = plan(&c, &fails(&["cs2"]));
    assert!(p.reasons["y"].contains("rule 3"), "{}", p.reasons["y"]);
    let c = Cluster::load(&fixture("example2.yaml"), &fails(&["cs2"])).expect("valid");
    let p = plan(&c, &fails(&["cs2"]));
    assert!(
        p.reasons["d"].contains("stopped on cs3"),
        "{}",
        p.reasons["d"]
    );
    let mut c = Cluster::load(&fixture("example1.yaml"), &fails(&["cs2"])).expect("valid");
    c.vms[1].allowed_hosts = Some(vec!["cs2".into()]);
    let p = plan(&c, &fails(&["cs2"]));
    assert!(p.reasons["b"].contains("not allowed"), "{}", p.reasons["b"]);
    let text = plan_command(&fixture("example2.yaml"), &fails(&["cs2"]), false).expect("valid");
    assert!(text.contains("stop") && text.contains("d:"), "{text}");
}

// ------------------------------------------------------------ replay checker

/// Replays `plan` from the current state and asserts rules 1, 3 and 5 at
/// every step, and that `placement` / `down` match the end state.
fn validate_plan(cluster: &Cluster, failed: &[String], plan: &Plan) {
    let up: HashMap<&str, bool> = cluster
        .hosts
        .iter()
        .map(|h| {
            (
                h.name.as_str(),
                h.state == HostState::Up && !failed.contains(&h.name),
            )
        })
        .collect();
    let cap: HashMap<&str, u64> = cluster
        .hosts
        .iter()
        .map(|h| (h.name.as_str(), h.capacity_mb()))
        .collect();
    let vm: HashMap<&str, &Vm> = cluster.vms.iter().map(|v| (v.name.as_str(), v)).collect();
    let mut loc: HashMap<&str, Option<&str>> = HashMap::new();
    let mut displaced: HashSet<&str> = HashSet::new();
    for v in &cluster.vms {
        if let Some(h) = v.host.as_deref() {
            if up[h] {
                loc.insert(&v.name, Some(h));
            } else {
                loc.insert(&v.name, None);
                displaced.insert(&v.name);
            }
        }
    }
    let check_host = |loc: &HashMap<&str, Option<&str>>, h: &str, ctx: &str| {
        let on: Vec<&&Vm> = loc
            .iter()
            .filter(|(_, l)| **l == Some(h))
            .map(|(n, _)| &vm[n])
            .collect();
        let used: u64 = on.iter().map(|v| v.memory_mb).sum();
        assert!(
            used <= cap[h],
            "{ctx}: {h} over capacity ({used} > {})",
            cap[h]
        );
        let mut groups = HashSet::new();
        for v in &on {
            if let Some(g) = &v.anti_affinity {
                assert!(groups.insert(g), "{ctx}: group {g} twice on {h}");
            }
        }
    };
    let placeable = |name: &str, h: &str, ctx: &str| {
        assert!(up[h], "{ctx}: {h} is not up");
        if let Some(allowed) = &vm[name].allowed_hosts {
            assert!(
                allowed.iter().any(|a| a == h),
                "{ctx}: {name} not allowed on {h}"
            );
        }
    };
    let mut touched = HashSet::new();
    let mut stopped = Vec::new();
    let mut started = Vec::new();
    let mut seen_non_stop = false;
    for (i, a) in plan.actions.iter().enumerate() {
        let ctx = format!("step {i} {a:?}");
        match a {
            Action::Stop { vm: name, host } => {
                assert!(!seen_non_stop, "{ctx}: stop after a migrate/start (rule 5)");
                assert_eq!(
                    loc.get(name.as_str()).copied().flatten(),
                    Some(host.as_str()),
                    "{ctx}"
                );
                assert!(!displaced.contains(name.as_str()), "{ctx}");
                loc.insert(vm[name.as_str()].name.as_str(), None);
                stopped.push(name.clone());
            }
            Action::Migrate { vm: name, from, to } => {
                seen_non_stop = true;
                assert!(
                    !displaced.contains(name.as_str()),
                    "{ctx}: displaced VM migrated"
                );
                assert_eq!(
                    loc.get(name.as_str()).copied().flatten(),
                    Some(from.as_str()),
                    "{ctx}"
                );
                assert_ne!(from, to, "{ctx}");
                placeable(name, to, &ctx);
                // Target needs the memory while the source still holds it.
                let v = vm[name.as_str()];
                let used_to: u64 = loc
                    .iter()
                    .filter(|(_, l)| **l == Some(to.as_str()))
                    .map(|(n, _)| vm[n].memory_mb)
                    .sum();
                assert!(
                    used_to + v.memory_mb <= cap[to.as_str()],
                    "{ctx}: no room on {to} before freeing {from}"
                );
                loc.insert(v.name.as_str(), Some(cluster_host(cluster, to)));
                check_host(&loc, to, &ctx);
            }
            Action::Start { vm: name, host } => {
                seen_non_stop = true;
                assert!(
                    displaced.contains(name.as_str()),
                    "{ctx}: only displaced VMs are started"
                );
                assert_eq!(loc.get(name.as_str()).copied().flatten(), None, "{ctx}");
                placeable(name, host, &ctx);
                let v = vm[name.as_str()];
                loc.insert(v.name.as_str(), Some(cluster_host(cluster, host)));
                check_host(&loc, host, &ctx);
                started.push(v);
            }
        }
        let name = match a {
            Action::Stop { vm, .. } | Action::Migrate { vm, .. } | Action::Start { vm, .. } => vm,
        };
        assert!(touched.insert(name.clone()), "{ctx}: {name} acted on twice");
    }
    // Rule 3: each stopped VM is below some started displaced VM.
    let top_started = started.iter().map(|v| v.priority).max();
    for s in &stopped {
        assert!(
            top_started.is_some_and(|t| vm[s.as_str()].priority < t),
            "rule 3: {s} stopped without cause"
        );
    }
    // Rule 5: displaced VMs start in descending priority.
    for w in started.windows(2) {
        assert!(
            w[0].priority >= w[1].priority,
            "rule 5: {} started before {}",
            w[0].name,
            w[1].name
        );
    }
    let end: BTreeMap<String, Option<String>> = loc
        .iter()
        .map(|(n, l)| (n.to_string(), l.map(str::to_string)))
        .collect();
    assert_eq!(end, plan.placement, "placement is the replayed end state");
    let down: Vec<String> = end
        .iter()
        .filter(|(_, l)| l.is_none())
        .map(|(n, _)| n.clone())
        .collect();
    assert_eq!(
        down, plan.down,
        "down lists the VMs that end not running, sorted"
    );
    for d in &down {
        assert!(plan.reasons.contains_key(d), "reason for {d}");
    }
}

fn cluster_host<'c>(cluster: &'c Cluster, name: &str) -> &'c str {
    cluster
        .hosts
        .iter()
        .find(|h| h.name == name)
        .map(|h| h.name.as_str())
        .expect("known host")
}

// ------------------------------------------------------------ reference search

/// Deterministic PRNG (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A random valid cluster and the host that fails.
fn generate(rng: &mut Rng, max_hosts: u64, max_vms: u64) -> (Cluster, Vec<String>) {
    let n_hosts = 2 + rng.below(max_hosts - 1) as usize;
    let hosts: Vec<Host> = (0..n_hosts)
        .map(|i| Host {
            name: format!("cs{}", i + 1),
            memory_mb: [4096, 6144, 8192, 8192, 12288][rng.below(5) as usize],
            reserve_mb: if rng.chance(20) { 1024 } else { 0 },
            state: HostState::Up,
        })
        .collect();
    let mut cluster = Cluster {
        hosts,
        vms: Vec::new(),
    };
    let failed = cluster.hosts[rng.below(n_hosts as u64) as usize]
        .name
        .clone();
    if n_hosts > 2 && rng.chance(15) {
        let other = rng.below(n_hosts as u64) as usize;
        if cluster.hosts[other].name != failed {
            cluster.hosts[other].state = HostState::Down;
        }
    }
    let n_vms = 1 + rng.below(max_vms) as usize;
    let mut used = vec![0u64; n_hosts];
    let mut groups: HashSet<(usize, String)> = HashSet::new();
    for i in 0..n_vms {
        let memory_mb = [1024, 2048, 2048, 3072, 4096, 6144][rng.below(6) as usize];
        let anti_affinity = rng.chance(30).then(|| format!("g{}", rng.below(2)));
        let mut allowed_hosts = None;
        if rng.chance(25) {
            let list: Vec<String> = cluster
                .hosts
                .iter()
                .filter(|_| rng.chance(60))
                .map(|h| h.name.clone())
                .collect();
            allowed_hosts = Some(list);
        }
        let h = rng.below(n_hosts as u64) as usize;
        let hname = cluster.hosts[h].name.clone();
        let gone = cluster.hosts[h].state == HostState::Down || hname == failed;
        // A failed or down host is not checked: it may have been overfull.
        let fits = gone
            || used[h] + memory_mb <= cluster.hosts[h].capacity_mb()
                && allowed_hosts
                    .as_ref()
                    .is_none_or(|l: &Vec<String>| l.contains(&hname))
                && anti_affinity
                    .as_ref()
                    .is_none_or(|g| !groups.contains(&(h, g.clone())));
        let host = if fits && !rng.chance(8) {
            used[h] += memory_mb;
            if let Some(g) = &anti_affinity {
                groups.insert((h, g.clone()));
            }
            Some(hname)
        } else {
            None
        };
        cluster.vms.push(Vm {
            name: format!("v{i}"),
            host,
            memory_mb,
            priority: rng.below(4) as i64,
            allowed_hosts,
            anti_affinity,
        });
    }
    cluster
        .validate(std::slice::from_ref(&failed))
        .expect("generated cluster is valid");
    (cluster, vec![failed])
}

/// Score of a final placement under rules 2 and 4 (test-side, independent).
fn ref_score(
    cluster: &Cluster,
    final_host: &BTreeMap<String, Option<String>>,
    stops: i64,
    migs: i64,
) -> PlanScore {
    let mut levels: BTreeMap<std::cmp::Reverse<i64>, u32> = BTreeMap::new();
    for v in &cluster.vms {
        if let Some(h) = final_host.get(&v.name) {
            *levels.entry(std::cmp::Reverse(v.priority)).or_default() += u32::from(h.is_some());
        }
    }
    PlanScore {
        running_by_priority: levels.into_iter().map(|(p, n)| (p.0, n)).collect(),
        neg_stops: -stops,
        neg_migrations: -migs,
    }
}

/// The best score over every final placement that the policy allows
/// (capacity, allowed_hosts, anti-affinity, rule 3, and an order of the
/// migrations that is feasible at every step).
fn exhaustive_best(cluster: &Cluster, failed: &[String]) -> PlanScore {
    let up: Vec<bool> = cluster
        .hosts
        .iter()
        .map(|h| h.state == HostState::Up && !failed.contains(&h.name))
        .collect();
    let hidx: HashMap<&str, usize> = cluster
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.name.as_str(), i))
        .collect();
    let planned: Vec<&Vm> = cluster.vms.iter().filter(|v| v.host.is_some()).collect();
    let cur: Vec<usize> = planned
        .iter()
        .map(|v| hidx[v.host.as_deref().expect("planned")])
        .collect();
    let options: Vec<Vec<Option<usize>>> = planned
        .iter()
        .map(|v| {
            let mut o = vec![None];
            for (h, host) in cluster.hosts.iter().enumerate() {
                if up[h]
                    && v.allowed_hosts
                        .as_ref()
                        .is_none_or(|l| l.contains(&host.name))
                {
                    o.push(Some(h));
                }
            }
            o
        })
        .collect();
    let cap: Vec<u64> = cluster.hosts.iter().map(Host::capacity_mb).collect();
    let mut best: Option<PlanScore> = None;
    let mut choice = vec![0usize; planned.len()];
    loop {
        let assign: Vec<Option<usize>> = choice.iter().zip(&options).map(|(c, o)| o[*c]).collect();
        if let Some(s) = admissible(&planned, &cur, &up, &cap, &assign, cluster) {
            if best.as_ref().is_none_or(|b| s > *b)
                && sequencable(&planned, &cur, &up, &cap, &assign)
            {
                best = Some(s);
            }
        }
        // next combination
        let mut i = 0;
        loop {
            if i == choice.len() {
                return best.expect("leaving everything as is (or down) is always admissible");
            }
            choice[i] += 1;
            if choice[i] < options[i].len() {
                break;
            }
            choice[i] = 0;
            i += 1;
        }
    }
}

fn admissible(
    planned: &[&Vm],
    cur: &[usize],
    up: &[bool],
    cap: &[u64],
    assign: &[Option<usize>],
    cluster: &Cluster,
) -> Option<PlanScore> {
    let mut used = vec![0u64; cap.len()];
    let mut groups = HashSet::new();
    let (mut stops, mut migs) = (0, 0);
    let mut top_started = None;
    for (i, v) in planned.iter().enumerate() {
        let running = up[cur[i]];
        if let Some(h) = assign[i] {
            used[h] += v.memory_mb;
            if let Some(g) = &v.anti_affinity {
                if !groups.insert((h, g)) {
                    return None;
                }
            }
            if running && h != cur[i] {
                migs += 1;
            }
            if !running {
                top_started = top_started.max(Some(v.priority));
            }
        } else if running {
            stops += 1;
        }
    }
    if used.iter().zip(cap).any(|(u, c)| u > c) {
        return None;
    }
    for (i, v) in planned.iter().enumerate() {
        if up[cur[i]] && assign[i].is_none() && top_started.is_none_or(|t| v.priority >= t) {
            return None;
        }
    }
    let fin: BTreeMap<String, Option<String>> = planned
        .iter()
        .zip(assign)
        .map(|(v, a)| (v.name.clone(), a.map(|h| cluster.hosts[h].name.clone())))
        .collect();
    Some(ref_score(cluster, &fin, stops, migs))
}

/// Stops first, starts last; is there an order of the migrations that fits at every step?
fn sequencable(
    planned: &[&Vm],
    cur: &[usize],
    up: &[bool],
    cap: &[u64],
    assign: &[Option<usize>],
) -> bool {
    let migs: Vec<usize> = (0..planned.len())
        .filter(|&i| up[cur[i]] && assign[i].is_some_and(|h| h != cur[i]))
        .collect();
    let state = |done: u32| -> Vec<Option<usize>> {
        (0..planned.len())
            .map(|i| {
                if !up[cur[i]] || assign[i].is_none() {
                    None
                } else if let Some(k) = migs.iter().position(|&m| m == i) {
                    if done & (1 << k) != 0 {
                        assign[i]
                    } else {
                        Some(cur[i])
                    }
                } else {
                    Some(cur[i])
                }
            })
            .collect()
    };
    let mut reachable = HashSet::from([0u32]);
    let mut frontier = vec![0u32];
    while let Some(done) = frontier.pop() {
        if done.count_ones() as usize == migs.len() {
            return true;
        }
        let loc = state(done);
        for (k, &m) in migs.iter().enumerate() {
            if done & (1 << k) != 0 {
                continue;
            }
            let to = assign[m].expect("migrating");
            let used: u64 = (0..planned.len())
                .filter(|&i| loc[i] == Some(to))
                .map(|i| planned[i].memory_mb)
                .sum();
            let clash = planned[m].anti_affinity.as_ref().is_some_and(|g| {
                (0..planned.len()).any(|i| {
                    i != m && loc[i] == Some(to) && planned[i].anti_affinity.as_ref() == Some(g)
                })
            });
            if used + planned[m].memory_mb <= cap[to] && !clash && reachable.insert(done | (1 << k))
            {
                frontier.push(done | (1 << k));
            }
        }
    }
    migs.is_empty()
}

#[test]
fn exact_planner_matches_exhaustive_search_on_generated_clusters() {
    let mut rng = Rng(0x1a2b_3c4d);
    let mut with_actions = 0;
    let mut with_stops = 0;
    let mut with_migrations = 0;
    for case in 0..1000 {
        let (cluster, failed) = generate(&mut rng, 4, 8);
        let p = plan_with(&cluster, &failed, Strategy::Exact);
        assert_eq!(
            p.planner,
            PlannerKind::Exact,
            "case {case}: search finished"
        );
        validate_plan(&cluster, &failed, &p);
        let want = exhaustive_best(&cluster, &failed);
        let got = score(&cluster, &p);
        assert_eq!(
            got,
            want,
            "case {case}: {cluster:#?}\nfailed {failed:?}\nplan {}",
            p.to_json()
        );
        let heuristic = plan_with(&cluster, &failed, Strategy::Heuristic);
        validate_plan(&cluster, &failed, &heuristic);
        assert!(
            score(&cluster, &heuristic) <= got,
            "case {case}: heuristic beats exact"
        );
        with_actions += usize::from(!p.actions.is_empty());
        with_stops += usize::from(p.stops() > 0);
        with_migrations += usize::from(p.migrations() > 0);
    }
    println!("1000 cases: {with_actions} with actions, {with_stops} with stops, {with_migrations} with migrations");
    assert!(
        with_stops > 20 && with_migrations > 10,
        "the generator exercises preemption and migration"
    );
}

#[test]
fn plans_are_deterministic() {
    let mut rng = Rng(7);
    for _ in 0..50 {
        let (cluster, failed) = generate(&mut rng, 6, 14);
        let a = plan(&cluster, &failed).to_json();
        let b = plan(&cluster, &failed).to_json();
        assert_eq!(a, b);
        let mut shuffled = cluster.clone();
        shuffled.vms.reverse();
        shuffled.hosts.reverse();
        assert_eq!(
            a,
            plan(&shuffled, &failed).to_json(),
            "file order does not matter"
        );
    }
    let one = plan_command(&fixture("example2.yaml"), &fails(&["cs2"]), true).expect("valid");
    let two = plan_command(&fixture("example2.yaml"), &fails(&["cs2"]), true).expect("valid");
    assert_eq!(one, two);
}

#[test]
fn heuristic_quality_against_exact() {
    let mut rng = Rng(42);
    let (mut equal, mut total) = (0, 0);
    let mut worst: Option<(PlanScore, PlanScore)> = None;
    let mut lost_top_level = 0;
    for _ in 0..400 {
        let (cluster, failed) = generate(&mut rng, 5, 10);
        let e = plan_with(&cluster, &failed, Strategy::Exact);
        let h = plan_with(&cluster, &failed, Strategy::Heuristic);
        validate_plan(&cluster, &failed, &h);
        let (se, sh) = (score(&cluster, &e), score(&cluster, &h));
        assert!(sh <= se);
        total += 1;
        if sh == se {
            equal += 1;
        } else {
            if sh.running_by_priority != se.running_by_priority {
                lost_top_level += 1;
            }
            let gap = |(a, b): &(PlanScore, PlanScore)| gap_vms(a, b);
            if worst
                .as_ref()
                .is_none_or(|w| gap(&(se.clone(), sh.clone())) > gap(w))
            {
                worst = Some((se, sh));
            }
        }
    }
    let pct = 100.0 * equal as f64 / total as f64;
    println!("heuristic equals exact in {equal}/{total} cases ({pct:.1}%); {lost_top_level} run fewer VMs at some level");
    if let Some((e, h)) = &worst {
        println!("worst gap: exact {e:?} vs heuristic {h:?}");
    }
    assert!(pct >= 80.0, "heuristic quality dropped: {pct:.1}%");
}

/// Running VMs the heuristic loses, summed over levels.
fn gap_vms(exact: &PlanScore, heuristic: &PlanScore) -> i64 {
    exact
        .running_by_priority
        .iter()
        .zip(&heuristic.running_by_priority)
        .map(|((_, a), (_, b))| i64::from(*a) - i64::from(*b))
        .map(|d| d.max(0))
        .sum()
}

// ------------------------------------------------------------ bad input

fn bad(yaml: &str, failed: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cluster.yaml");
    std::fs::write(&path, yaml).expect("write");
    assert_eq!(
        laxmon::cluster::run_plan_command(&path, &fails(failed), true),
        2
    );
    let err = plan_command(&path, &fails(failed), true)
        .expect_err("bad input")
        .to_string();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

const HOSTS: &str =
    "hosts:\n  - name: cs1\n    memory_mb: 8192\n  - name: cs2\n    memory_mb: 8192\n";

#[test]
fn bad_input_is_rejected_with_a_message_naming_the_entry() {
    let cases: Vec<(String, Vec<&str>, Vec<&str>)> = vec![
        ("hosts: [\n".to_string(), vec![], vec!["unreadable"]),
        ("hosts: 3\n".to_string(), vec![], vec!["unreadable"]),
        (format!("{HOSTS}vms:\n  - name: a\n    host: cs9\n    memory_mb: 512\n"), vec![], vec!["`a`", "cs9", ":7:"]),
        (
            format!("{HOSTS}vms:\n  - name: a\n    memory_mb: 512\n    allowed_hosts: [cs1, nope]\n"),
            vec![],
            vec!["`a`", "nope"],
        ),
        (format!("{HOSTS}  - name: cs1\n    memory_mb: 4096\n"), vec![], vec!["duplicate host", "cs1", ":6:"]),
        (
            format!("{HOSTS}vms:\n  - name: a\n    memory_mb: 512\n  - name: a\n    memory_mb: 512\n"),
            vec![],
            vec!["duplicate VM", "`a`"],
        ),
        ("hosts:\n  - name: cs1\n    memory_mb: 0\n".to_string(), vec![], vec!["cs1", "memory_mb"]),
        (format!("{HOSTS}vms:\n  - name: a\n    memory_mb: -5\n"), vec![], vec!["`a`", "memory_mb"]),
        ("hosts:\n  - name: cs1\n    memory_mb: 1024\n    reserve_mb: 1024\n".to_string(), vec![], vec!["cs1", "reserve_mb"]),
        (
            format!("{HOSTS}vms:\n  - name: a\n    host: cs1\n    memory_mb: 6000\n  - name: b\n    host: cs1\n    memory_mb: 6000\n"),
            vec![],
            vec!["cs1", "over capacity"],
        ),
        (HOSTS.to_string(), vec!["cs7"], vec!["--fail cs7"]),
        (format!("{HOSTS}vms:\n  - name: a\n    memory_mb: 512\n    colour: red\n"), vec![], vec!["colour"]),
        (
            format!("{HOSTS}vms:\n  - name: a\n    host: cs1\n    memory_mb: 512\n    allowed_hosts: [cs2]\n"),
            vec![],
            vec!["`a`", "allowed_hosts"],
        ),
        (
            format!(
                "{HOSTS}vms:\n  - name: a\n    host: cs1\n    memory_mb: 512\n    anti_affinity: dns\n  - name: b\n    host: cs1\n    memory_mb: 512\n    anti_affinity: dns\n"
            ),
            vec![],
            vec!["`b`", "`a`", "dns"],
        ),
        ("hosts:\n  - name: cs1\n    memory_mb: 1024\n    state: sideways\n".to_string(), vec![], vec!["unreadable"]),
    ];
    for (yaml, failed, needles) in cases {
        let err = bad(&yaml, &failed);
        for n in needles {
            assert!(
                err.contains(n),
                "message {err:?} should contain {n:?} for input:\n{yaml}"
            );
        }
    }
    let missing =
        plan_command(Path::new("/nonexistent/cluster.yaml"), &[], true).expect_err("missing");
    assert!(missing.to_string().contains("/nonexistent/cluster.yaml"));
}

#[test]
fn over_capacity_on_a_down_host_is_not_an_error() {
    let yaml = "hosts:\n  - name: cs1\n    memory_mb: 8192\n  - name: cs2\n    memory_mb: 1024\n    state: down\nvms:\n  - name: a\n    host: cs2\n    memory_mb: 4096\n";
    let c = Cluster::from_yaml(yaml, "inline", &[]).expect("down hosts are not capacity-checked");
    let p = plan(&c, &[]);
    assert_eq!(
        p.actions,
        vec![Action::Start {
            vm: "a".into(),
            host: "cs1".into()
        }]
    );
}
