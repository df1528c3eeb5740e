//! The `restart-vm` action: shut a VM down where it runs (destroy it when it
//! does not stop in time) and start it again on the same server.
//!
//! Same rule as the executor: the VM is started only when every server of
//! the cluster answered and none runs it. A VM found on two servers is never
//! touched: that is for a human (its disk is at risk already). It holds the
//! cluster lock, so it never runs beside a reorganisation or a by-hand
//! operation.

use super::drivers::{self, Driver};
use super::executor::{lock, observe, ReorgError};
use super::journal::Journal;
use crate::config::ClusterConfig;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

/// What a VM restart did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestartReport {
    /// The cluster.
    pub cluster: String,
    /// The VM.
    pub vm: String,
    /// The server it runs on afterwards.
    pub server: String,
    /// How it was stopped: `shutdown`, `destroy`, or `not running`.
    pub stopped_by: &'static str,
    /// Milliseconds from the request to the VM running again.
    pub duration_ms: f64,
}

/// Restarts `vm` through the cluster's driver.
pub async fn restart_vm(cluster: &ClusterConfig, vm: &str) -> Result<RestartReport, ReorgError> {
    restart_vm_with(cluster, drivers::build(cluster), vm).await
}

/// [`restart_vm`] with a given driver.
pub async fn restart_vm_with(
    cluster: &ClusterConfig,
    driver: Arc<dyn Driver>,
    vm: &str,
) -> Result<RestartReport, ReorgError> {
    let t0 = Instant::now();
    let inconsistent = |message: String| ReorgError::Inconsistent {
        cluster: cluster.name.clone(),
        message,
    };
    let Some(config) = cluster.vm(vm) else {
        return Err(inconsistent(format!("{vm} is not one of its VMs")));
    };
    let journal = Journal::open(&cluster.state_dir, &cluster.name)?;
    let _lock = lock(cluster, &journal, &format!("the restart of {vm}"), true).await?;
    let where_now = running_on(cluster, &driver, vm)
        .await
        .map_err(inconsistent)?;
    let (server, stopped_by) = match where_now.as_slice() {
        [] => match &config.home {
            Some(home) => (home.clone(), "not running"),
            None => {
                return Err(inconsistent(format!(
                    "{vm} runs nowhere and has no home server to start it on"
                )))
            }
        },
        [one] => {
            let how = match driver.shutdown(vm, one, cluster.shutdown_timeout).await {
                Ok(()) => "shutdown",
                Err(e) => {
                    tracing::warn!(vm, server = %one, error = %e, "graceful shutdown failed; destroying");
                    driver
                        .destroy(vm, one)
                        .await
                        .map_err(|e| inconsistent(format!("cannot stop {vm} on {one}: {e}")))?;
                    "destroy"
                }
            };
            (one.clone(), how)
        }
        many => {
            return Err(inconsistent(format!(
                "{vm} runs on {} at once: not touching it",
                many.join(" and ")
            )))
        }
    };
    let still = running_on(cluster, &driver, vm)
        .await
        .map_err(inconsistent)?;
    if !still.is_empty() {
        return Err(inconsistent(format!(
            "{vm} still runs on {} after stopping it",
            still.join(", ")
        )));
    }
    driver
        .start(vm, &server)
        .await
        .map_err(|e| inconsistent(format!("cannot start {vm} on {server}: {e}")))?;
    let after = running_on(cluster, &driver, vm)
        .await
        .map_err(inconsistent)?;
    if after != [server.clone()] {
        return Err(inconsistent(format!(
            "{vm} was started on {server} but runs on [{}]",
            after.join(", ")
        )));
    }
    Ok(RestartReport {
        cluster: cluster.name.clone(),
        vm: vm.to_string(),
        server,
        stopped_by,
        duration_ms: t0.elapsed().as_secs_f64() * 1000.0,
    })
}

/// The servers `vm` runs on; an error when any server cannot be asked
/// (it might run the VM).
async fn running_on(
    cluster: &ClusterConfig,
    driver: &Arc<dyn Driver>,
    vm: &str,
) -> Result<Vec<String>, String> {
    let mut found = Vec::new();
    for (server, answer) in observe(cluster, driver).await {
        match answer {
            Ok(vms) if vms.iter().any(|v| v.name == vm) => found.push(server),
            Ok(_) => {}
            Err(e) => return Err(format!("cannot ask {server} whether it runs {vm}: {e}")),
        }
    }
    Ok(found)
}
