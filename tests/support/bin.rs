//! Running the real `laxmon` binary from integration tests.

use std::path::Path;
use std::process::{Command, Output};

/// The path of the `laxmon` binary cargo built for these tests.
pub fn laxmon_path() -> &'static str {
    env!("CARGO_BIN_EXE_laxmon")
}

/// Runs `laxmon ARGS...` with no inherited `LAXMON_CONFIG`/`RUST_LOG` and returns its output.
pub fn laxmon(args: &[&str]) -> Output {
    Command::new(laxmon_path())
        .args(args)
        .env_remove("LAXMON_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .expect("the laxmon binary runs")
}

/// Writes `text` to `dir/name` and returns the path as a string.
pub fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create parent directory");
    }
    std::fs::write(&path, text).expect("write test file");
    path.to_string_lossy().into_owned()
}

/// stdout of an output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr of an output as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
