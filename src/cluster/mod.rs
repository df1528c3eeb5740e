//! Cluster reorganisation: what runs where after a cluster server fails.
//!
//! [`model`] holds the planner's input (hosts and VMs, loaded and validated
//! from YAML) and output (the [`Plan`] of stop / migrate / start actions);
//! [`planner`] turns one into the other as a pure function. The contract is
//! `docs/clusterreorg.md`. Nothing in this module executes a plan: the
//! planner never does I/O, never reads the clock, and gives the same plan
//! byte for byte for the same input. Only [`plan_command`] reads a file.
//!
//! Carrying a plan out is [`executor`]'s job, through a hypervisor
//! [`drivers::Driver`], with progress in a [`journal`]: it fences the failed
//! server first and never starts a VM while any server may still run it.
//! `manual` starts, stops and migrates one VM by hand under the same rules.

pub(crate) mod commands;
pub mod drivers;
pub(crate) mod executor;
pub(crate) mod journal;
pub(crate) mod manual;
pub mod model;
pub(crate) mod planner;
pub mod restart;

pub use executor::{reorganise, restore, ReorgError, ReorgOptions, ReorgReport};
pub use manual::{operate, OpOptions, OpOutcome, OpReport, OpTimings, VmOp};
pub use model::{
    Action, Cluster, Host, HostState, Plan, PlanInputError, PlanScore, PlannerKind, Vm,
};
pub use planner::{plan, plan_with, score, Strategy};

use std::path::Path;

/// Loads `cluster_file`, plans for the hosts in `fail` failing, and renders
/// the plan as one JSON object (`json`) or a readable table.
///
/// This is what `laxmon plan` calls: print the `Ok` string on stdout and exit
/// 0, or print the error (one line) on stderr and exit 2.
pub fn plan_command(
    cluster_file: &Path,
    fail: &[String],
    json: bool,
) -> Result<String, PlanInputError> {
    let cluster = Cluster::load(cluster_file, fail)?;
    let plan = plan(&cluster, fail);
    if json {
        Ok(plan.to_json())
    } else {
        Ok(plan.to_table(&cluster, fail))
    }
}

/// Runs [`plan_command`] and writes its output to stdout or stderr; returns
/// the process exit code (0 planned, 2 bad input).
pub fn run_plan_command(cluster_file: &Path, fail: &[String], json: bool) -> i32 {
    match plan_command(cluster_file, fail, json) {
        Ok(out) => {
            print!("{out}");
            0
        }
        Err(e) => {
            eprintln!("laxmon plan: {e}");
            2
        }
    }
}
