//! Planner benchmark: plan time on a large cluster (10,000 VMs on 500
//! hosts, one and ten hosts failed) and heuristic-vs-exact quality on small
//! generated clusters. Run with `cargo bench --bench planner`; prints figures.

use laxmon::cluster::{
    plan, plan_with, score, Cluster, Host, HostState, PlannerKind, Strategy, Vm,
};
use std::time::Instant;

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
}

/// `hosts` hosts of 64-192 GB filled to about `fill_percent`, VMs of 1-16 GB,
/// priorities 0-4, some anti-affinity groups and pinned VMs.
fn large(rng: &mut Rng, hosts: usize, vms: usize, fill_percent: u64) -> Cluster {
    let mut c = Cluster::default();
    for i in 0..hosts {
        c.hosts.push(Host {
            name: format!("cs{i:04}"),
            memory_mb: [65536, 131072, 196608][rng.below(3) as usize],
            reserve_mb: 2048,
            state: HostState::Up,
        });
    }
    let mut used = vec![0u64; hosts];
    let mut h = 0;
    for i in 0..vms {
        let memory_mb = [1024, 2048, 4096, 4096, 8192, 16384][rng.below(6) as usize];
        // Round-robin from a random start keeps hosts evenly filled.
        let mut placed = None;
        for k in 0..hosts {
            let cand = (h + k) % hosts;
            if (used[cand] + memory_mb) * 100 <= c.hosts[cand].capacity_mb() * fill_percent {
                placed = Some(cand);
                break;
            }
        }
        h = (h + 1 + rng.below(3) as usize) % hosts;
        if let Some(p) = placed {
            used[p] += memory_mb;
        }
        let pinned = rng.below(20) == 0;
        c.vms.push(Vm {
            name: format!("vm{i:05}"),
            host: placed.map(|p| c.hosts[p].name.clone()),
            memory_mb,
            priority: rng.below(5) as i64,
            allowed_hosts: match (pinned, placed) {
                (true, Some(p)) => Some(vec![
                    c.hosts[p].name.clone(),
                    c.hosts[(p + 7) % hosts].name.clone(),
                ]),
                _ => None,
            },
            anti_affinity: None,
        });
    }
    c
}

fn small(rng: &mut Rng, max_hosts: u64, min_vms: u64, max_vms: u64) -> (Cluster, Vec<String>) {
    let n_hosts = 3 + rng.below(max_hosts - 2) as usize;
    let mut c = Cluster::default();
    for i in 0..n_hosts {
        c.hosts.push(Host {
            name: format!("cs{i}"),
            memory_mb: [8192, 12288, 16384][rng.below(3) as usize],
            reserve_mb: 0,
            state: HostState::Up,
        });
    }
    let failed = c.hosts[rng.below(n_hosts as u64) as usize].name.clone();
    let mut used = vec![0u64; n_hosts];
    for i in 0..(min_vms + rng.below(max_vms - min_vms + 1)) as usize {
        let memory_mb = [1024, 2048, 3072, 4096, 6144][rng.below(5) as usize];
        let h = rng.below(n_hosts as u64) as usize;
        let fits = c.hosts[h].name == failed || used[h] + memory_mb <= c.hosts[h].capacity_mb();
        if fits {
            used[h] += memory_mb;
        }
        c.vms.push(Vm {
            name: format!("v{i}"),
            host: fits.then(|| c.hosts[h].name.clone()),
            memory_mb,
            priority: rng.below(4) as i64,
            allowed_hosts: None,
            anti_affinity: (rng.below(4) == 0).then(|| "g".to_string()),
        });
    }
    // Drop anti-affinity clashes in the generated current state.
    let mut seen = std::collections::HashSet::new();
    for v in &mut c.vms {
        if let (Some(h), Some(g)) = (&v.host, &v.anti_affinity) {
            if *h != failed && !seen.insert((h.clone(), g.clone())) {
                v.anti_affinity = None;
            }
        }
    }
    (c, vec![failed])
}

fn main() {
    let mut rng = Rng(2024);
    for fill in [85, 98, 100] {
        let cluster = large(&mut rng, 500, 10_000, fill);
        if let Err(e) = cluster.validate(&[]) {
            println!("generated cluster invalid: {e}");
            return;
        }
        for n_failed in [1usize, 10] {
            let failed: Vec<String> = (0..n_failed)
                .map(|i| cluster.hosts[i * 37].name.clone())
                .collect();
            let displaced = cluster
                .vms
                .iter()
                .filter(|v| v.host.as_ref().is_some_and(|h| failed.contains(h)))
                .count();
            let mut times = Vec::new();
            let mut last = None;
            for _ in 0..5 {
                let t = Instant::now();
                let p = plan(&cluster, &failed);
                times.push(t.elapsed());
                last = Some(p);
            }
            times.sort();
            let Some(p) = last else { return };
            println!(
                "10000 VMs / 500 hosts, {fill}% full, {n_failed:>2} failed ({displaced:>3} displaced): median {:>8.2?} (min {:.2?}, max {:.2?}); planner {:?}; {} actions: {} stops, {} migrations, {} displaced left down",
                times[2],
                times[0],
                times[4],
                p.planner,
                p.actions.len(),
                p.stops(),
                p.migrations(),
                p.down.iter().filter(|d| cluster.vms.iter().any(|v| &v.name == *d && v.host.as_ref().is_some_and(|h| failed.contains(h)))).count(),
            );
        }
    }

    for (label, max_hosts, min_vms, max_vms) in [
        ("3-6 hosts, 6-12 VMs", 6, 6, 12),
        ("3-8 hosts, 12-14 VMs (the switch point)", 8, 12, 14),
    ] {
        quality(&mut rng, label, max_hosts, min_vms, max_vms);
    }
}

fn quality(rng: &mut Rng, label: &str, max_hosts: u64, min_vms: u64, max_vms: u64) {
    let (mut equal, mut total, mut truncated) = (0, 0, 0);
    let mut lost_vms = 0i64;
    let mut worst_lost = 0i64;
    let (mut exact_time, mut heur_time) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    let mut exact_max = std::time::Duration::ZERO;
    for _ in 0..1000 {
        let (c, failed) = small(rng, max_hosts, min_vms, max_vms);
        if c.validate(&failed).is_err() {
            continue;
        }
        let t = Instant::now();
        let e = plan_with(&c, &failed, Strategy::Exact);
        let took = t.elapsed();
        exact_time += took;
        exact_max = exact_max.max(took);
        let t = Instant::now();
        let h = plan_with(&c, &failed, Strategy::Heuristic);
        heur_time += t.elapsed();
        truncated += usize::from(e.planner == PlannerKind::ExactTruncated);
        let (se, sh) = (score(&c, &e), score(&c, &h));
        total += 1;
        if se == sh {
            equal += 1;
        }
        let lost: i64 = se
            .running_by_priority
            .iter()
            .zip(&sh.running_by_priority)
            .map(|((_, a), (_, b))| (i64::from(*a) - i64::from(*b)).max(0))
            .sum();
        lost_vms += lost;
        worst_lost = worst_lost.max(lost);
    }
    println!(
        "{label}: heuristic equals exact in {equal}/{total} ({:.1}%); VMs exact runs that the heuristic leaves down: {lost_vms} in total, at most {worst_lost} in one case; exact truncated by budget: {truncated}; exact mean {:.1?} max {:.1?}, heuristic mean {:.1?}",
        100.0 * equal as f64 / total.max(1) as f64,
        exact_time / total.max(1) as u32,
        exact_max,
        heur_time / total.max(1) as u32,
    );
}
