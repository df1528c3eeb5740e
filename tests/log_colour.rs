//! Text logs carry ANSI colours only on a terminal without `NO_COLOR`: the
//! real binary with stderr to a pipe and to a file, and under a pseudo
//! terminal (util-linux `script`, part of Debian's essential bsdutils) with
//! and without `NO_COLOR`.

mod support;

use std::process::{Command, Output, Stdio};
use support::bin::{laxmon_path, write_file};

const ESC: u8 = 0x1b;

/// A configuration with a fresh SQLite database, so `db migrate` logs the
/// migrations it applies.
fn fresh_config(dir: &std::path::Path) -> String {
    write_file(
        dir,
        "laxmon.yaml",
        &format!(
            "storage: sqlite:{}/laxmon.db\nchecks:\n  - {{name: t, kind: plugin, command: /bin/true}}\n",
            dir.display()
        ),
    )
}

/// The arguments of `laxmon db migrate` with text logs.
fn migrate_args(config: &str) -> Vec<&str> {
    vec!["db", "migrate", "--config", config, "--log-format", "text"]
}

/// Sets the environment the logger looks at: no `RUST_LOG`, a colour
/// terminal type, and `NO_COLOR` only as given.
fn log_env<'a>(cmd: &'a mut Command, no_color: Option<&str>) -> &'a mut Command {
    cmd.env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env("TERM", "xterm-256color");
    if let Some(v) = no_color {
        cmd.env("NO_COLOR", v);
    }
    cmd
}

/// `laxmon db migrate` with text logs and `NO_COLOR` as given.
fn migrate(config: &str, no_color: Option<&str>) -> Command {
    let mut cmd = Command::new(laxmon_path());
    cmd.args(migrate_args(config));
    log_env(&mut cmd, no_color);
    cmd
}

fn assert_logged(text: &[u8], what: &str) {
    let text = String::from_utf8_lossy(text);
    assert!(
        text.contains("applied migration"),
        "{what}: no log line in {text:?}"
    );
}

#[test]
fn no_colour_into_a_pipe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = fresh_config(dir.path());
    let out = migrate(&config, None).output().expect("laxmon runs");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_logged(&out.stderr, "pipe");
    assert!(
        !out.stderr.contains(&ESC),
        "escape codes in a pipe: {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn no_colour_into_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = fresh_config(dir.path());
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let status = migrate(&config, None)
        .stdout(Stdio::null())
        .stderr(log)
        .status()
        .expect("laxmon runs");
    assert_eq!(status.code(), Some(0));
    let text = std::fs::read(&log_path).expect("read log");
    assert_logged(&text, "file");
    assert!(
        !text.contains(&ESC),
        "escape codes in a file: {:?}",
        String::from_utf8_lossy(&text)
    );
}

/// Runs `laxmon db migrate` on a pseudo terminal; returns what the terminal showed.
fn on_a_terminal(no_color: Option<&str>) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = fresh_config(dir.path());
    let mut words = vec![laxmon_path()];
    words.extend(migrate_args(&config));
    let line = shell_words::join(words);
    let mut script = Command::new("script");
    script
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .stdin(Stdio::null());
    let out = log_env(&mut script, no_color).output().unwrap_or_else(|e| {
        panic!("util-linux `script` is needed for the terminal tests (Debian bsdutils): {e}")
    });
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_logged(&out.stdout, "terminal");
    out
}

#[test]
fn colour_on_a_terminal() {
    let out = on_a_terminal(None);
    assert!(
        out.stdout.contains(&ESC),
        "no colour on a terminal: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn no_colour_on_a_terminal_with_no_color() {
    let out = on_a_terminal(Some("1"));
    assert!(
        !out.stdout.contains(&ESC),
        "NO_COLOR=1 still coloured: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
}
