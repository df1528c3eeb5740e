//! Builds the command lines of alarm actions: scripts (with `{{key}}` and
//! Nagios `$MACRO$` arguments) and `restart-service` (init script or
//! systemd unit, locally or over SSH to the check's host, through the one
//! SSH command builder [`crate::ssh`] with `engine.ssh`'s options and the
//! shared master connection).
//!
//! `restart-vm` and `clusterreorg` belong to the cluster module; until it
//! lands they are reported as not carried out. Nothing here decides
//! whether an action should run (that is the alarm lifecycle).

use super::script::{self, Exec};
use crate::alarm::facts::{Facts, FACT_NAMES};
use crate::alarm::lifecycle::ActionRequest;
use crate::alarm::store::ActionRun;
use crate::alarm::template::Template;
use crate::config::alarms::Action;
use crate::config::{Config, InitTarget, LOCAL_HOST};
use crate::ssh::{self, SshOptions};
use std::time::Duration;

/// Why an action could not be turned into a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The target host has no SSH destination.
    #[error("restart-service on host {0:?}: the host has no `ssh:` destination")]
    NoSsh(String),
    /// The host's `ssh:` destination is not usable.
    #[error("restart-service on host {0:?}: {1}")]
    BadSsh(String, String),
    /// The host is not defined.
    #[error("restart-service on host {0:?}: no such host entry")]
    UnknownHost(String),
    /// The cluster module does not exist yet.
    #[error("{0} is carried out by the cluster module, which is not part of this build yet")]
    NotAvailable(&'static str),
}

/// Expands `{{key}}` templates and Nagios `$MACRO$`s in one argument.
pub fn expand_arg(arg: &str, facts: &Facts) -> String {
    let templated = match Template::parse(arg, FACT_NAMES) {
        Ok(t) => t.render(facts),
        Err(_) => arg.to_string(),
    };
    facts.expand_macros(&templated)
}

/// The command that carries out `req`.
pub fn command(req: &ActionRequest, config: &Config) -> Result<Exec, ActionError> {
    let env = req.facts.env();
    match &req.action {
        Action::Script {
            program,
            args,
            timeout,
        } => Ok(Exec {
            program: program.clone(),
            args: args.iter().map(|a| expand_arg(a, &req.facts)).collect(),
            env,
            timeout: *timeout,
        }),
        Action::RestartService {
            target,
            host,
            timeout,
        } => {
            let host = host.clone().unwrap_or_else(|| check_host_or_local(req));
            restart_service(target, &host, config, env, *timeout)
        }
        Action::RestartVm { .. } => Err(ActionError::NotAvailable("restart-vm")),
        Action::ClusterReorg { .. } => Err(ActionError::NotAvailable("clusterreorg")),
    }
}

/// The check's host, or the admin server for results without one.
fn check_host_or_local(req: &ActionRequest) -> String {
    if req.host.is_empty() {
        LOCAL_HOST.to_string()
    } else {
        req.host.clone()
    }
}

/// `systemctl restart UNIT` or `SCRIPT restart`, through `ssh` for a remote host.
pub fn restart_service(
    target: &InitTarget,
    host: &str,
    config: &Config,
    env: Vec<(String, String)>,
    timeout: Duration,
) -> Result<Exec, ActionError> {
    let remote: Vec<String> = match target {
        InitTarget::Unit(u) => vec!["systemctl".into(), "restart".into(), u.clone()],
        InitTarget::Script(s) => vec![s.clone(), "restart".into()],
    };
    if host == LOCAL_HOST {
        let mut it = remote.into_iter();
        let program = it.next().unwrap_or_default();
        return Ok(Exec {
            program: program.into(),
            args: it.collect(),
            env,
            timeout,
        });
    }
    let h = config
        .host(host)
        .ok_or_else(|| ActionError::UnknownHost(host.to_string()))?;
    let dest = h
        .ssh
        .clone()
        .ok_or_else(|| ActionError::NoSsh(host.to_string()))?;
    let options = SshOptions::from_settings(&config.engine.ssh);
    let mut argv = ssh::remote_argv(&dest, &options, &remote)
        .map_err(|e| ActionError::BadSsh(host.to_string(), e.to_string()))?
        .into_iter();
    let program = argv.next().unwrap_or_default();
    Ok(Exec {
        program: program.into(),
        args: argv.collect(),
        env,
        timeout,
    })
}

/// Carries out an action request and records the run.
pub async fn run(req: &ActionRequest, config: &Config) -> ActionRun {
    match command(req, config) {
        Ok(exec) => {
            if exec.program.as_os_str() == "ssh" {
                // The master connection's socket directory, as ssh::execute makes it.
                let options = SshOptions::from_settings(&config.engine.ssh);
                if let Err(e) = ssh::ensure_control_dir(&options).await {
                    tracing::warn!(error = %e, "restart-service: no shared ssh connection");
                }
            }
            script::run(&exec, &req.key, req.alarm_id, req.action.kind()).await
        }
        Err(e) => ActionRun {
            key: req.key.clone(),
            alarm_id: req.alarm_id,
            action: req.action.kind().to_string(),
            argv: Vec::new(),
            started: chrono::Utc::now(),
            duration: Duration::ZERO,
            exit_code: None,
            timed_out: false,
            output: String::new(),
            error: Some(e.to_string()),
        },
    }
}
