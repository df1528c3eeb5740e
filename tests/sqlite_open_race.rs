//! CLI commands and the daemon creating a new SQLite database at the same
//! moment: each waits for the others' locks. Before this was fixed, `laxmon
//! run` (or the CLI command) exited 1 with "switching to WAL mode: database
//! is locked" in a few starts out of a hundred.

mod support;

use std::process::{Child, Command, Stdio};
use support::bin::{laxmon_path, write_file};
use support::daemon::{field, Daemon};

const ROUNDS: usize = 20;

fn spawn_cli(args: &[&str]) -> Child {
    Command::new(laxmon_path())
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the CLI command")
}

#[test]
fn daemon_and_cli_start_together_on_a_fresh_database() {
    for round in 0..ROUNDS {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = write_file(
            dir.path(),
            "laxmon.yaml",
            &format!(
                "storage: sqlite:{}/db/laxmon.db\nchecks:\n  - {{name: t, kind: plugin, command: /bin/true, interval: 1s}}\n",
                dir.path().display()
            ),
        );
        // The commands the issue names, started just before and just after the daemon.
        let commands: [&[&str]; 3] = [
            &["alarms", "--config", &config],
            &["history", "--config", &config, "t"],
            &["alarms", "--config", &config, "--open"],
        ];
        let mut clis = vec![spawn_cli(commands[round % 3])];
        let mut daemon = Daemon::start(&config);
        clis.push(spawn_cli(commands[(round + 1) % 3]));
        clis.push(spawn_cli(commands[(round + 2) % 3]));
        for cli in clis {
            let out = cli.wait_with_output().expect("CLI command finishes");
            assert_eq!(
                out.status.code(),
                Some(0),
                "round {round}: a CLI command failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        daemon.wait_for("laxmon started", |v| {
            field(v, "message") == "laxmon started"
        });
        // Running: the check's first result (the signal handlers are in place by then).
        daemon.wait_for("a result", |v| field(v, "check") == "t");
        assert_eq!(daemon.terminate(), 0, "round {round}: daemon exit status");
    }
}
