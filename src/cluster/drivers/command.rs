//! Any toolstack through argv templates run on the admin server, e.g. the
//! LAX scripts `vx-start {cluster} {vm}`, `vx-move {cluster} {vm} {target}`,
//! `vx-stop {cluster} {vm}`.
//!
//! Placeholders `{cluster}`, `{vm}`, `{host}` (the server the operation is
//! about; the source of a migration) and `{target}` (a migration's
//! destination) are replaced inside each word; no shell ever sees them. The
//! `list` template prints one VM per line: `NAME [MEMORY_MB]`; blank lines
//! and lines starting with `#` are ignored.

use super::{run, Driver, DriverError, DriverFuture, RunningVm, Target};
use crate::config::{ClusterConfig, CommandTemplates};
use std::time::Duration;

/// The `command` driver.
#[derive(Debug, Clone)]
pub struct CommandDriver {
    cluster: String,
    templates: CommandTemplates,
    timeout: Duration,
}

/// Fills a template's placeholders word by word.
pub fn expand(
    template: &[String],
    cluster: &str,
    vm: &str,
    host: &str,
    target: &str,
) -> Vec<String> {
    template
        .iter()
        .map(|w| {
            w.replace("{cluster}", cluster)
                .replace("{vm}", vm)
                .replace("{host}", host)
                .replace("{target}", target)
        })
        .collect()
}

/// Parses the `list` template's output: `NAME [MEMORY_MB]` per line.
pub fn parse_list(text: &str) -> Result<Vec<RunningVm>, String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut cols = line.split_whitespace();
        let name = cols.next().unwrap_or_default().to_string();
        let memory_mb = match cols.next() {
            Some(m) => Some(
                m.parse::<u64>()
                    .map_err(|_| format!("memory {m:?} of {name} is not a number of MB"))?,
            ),
            None => None,
        };
        if cols.next().is_some() {
            return Err(format!("unexpected line {line:?}: want NAME [MEMORY_MB]"));
        }
        out.push(RunningVm { name, memory_mb });
    }
    Ok(out)
}

impl CommandDriver {
    /// A `command` driver for `cluster` with these templates.
    pub fn new(cluster: &ClusterConfig, templates: CommandTemplates) -> CommandDriver {
        CommandDriver {
            cluster: cluster.name.clone(),
            templates,
            timeout: cluster.operation_timeout,
        }
    }

    async fn run(
        &self,
        template: &[String],
        vm: &str,
        host: &str,
        target: &str,
        timeout: Duration,
    ) -> Result<String, DriverError> {
        let argv = expand(template, &self.cluster, vm, host, target);
        run(host, &Target::Local, &argv, timeout).await
    }
}

impl Driver for CommandDriver {
    fn list<'a>(&'a self, server: &'a str) -> DriverFuture<'a, Vec<RunningVm>> {
        Box::pin(async move {
            let text = self
                .run(&self.templates.list, "", server, "", self.timeout)
                .await?;
            parse_list(&text).map_err(|message| DriverError::Output {
                server: server.to_string(),
                command: shell_words::join(&self.templates.list),
                message,
            })
        })
    }

    fn migrate<'a>(&'a self, vm: &'a str, from: &'a str, to: &'a str) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            self.run(&self.templates.migrate, vm, from, to, self.timeout)
                .await
                .map(drop)
        })
    }

    fn start<'a>(&'a self, vm: &'a str, server: &'a str) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            self.run(&self.templates.start, vm, server, "", self.timeout)
                .await
                .map(drop)
        })
    }

    fn shutdown<'a>(
        &'a self,
        vm: &'a str,
        server: &'a str,
        timeout: Duration,
    ) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            self.run(&self.templates.shutdown, vm, server, "", timeout)
                .await
                .map(drop)
        })
    }

    fn destroy<'a>(&'a self, vm: &'a str, server: &'a str) -> DriverFuture<'a, ()> {
        Box::pin(async move {
            self.run(&self.templates.destroy, vm, server, "", self.timeout)
                .await
                .map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_placeholders_inside_words() {
        let t: Vec<String> = ["vx-move", "{cluster}", "{vm}", "--to={target}", "{host}"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            expand(&t, "lax", "t1", "cs1", "cs3"),
            vec!["vx-move", "lax", "t1", "--to=cs3", "cs1"]
        );
    }

    #[test]
    fn parses_list_output() {
        let vms = parse_list("# running on cs1\nt1 1024\n\nwin3\n").expect("parses");
        assert_eq!(vms[0].name, "t1");
        assert_eq!(vms[0].memory_mb, Some(1024));
        assert_eq!(vms[1].memory_mb, None);
        assert!(parse_list("t1 lots\n").is_err());
        assert!(parse_list("t1 1 2\n").is_err());
    }
}
