//! `laxmon config check` on a YAML text, and assertions on its errors.

use super::bin::{laxmon, stderr, write_file};

/// Runs `laxmon config check` on `yaml` (as laxmon.yaml in a fresh temp dir,
/// with an executable `alarm-scripts/fix-it` beside it); returns
/// (exit code, stderr, path of the file).
pub fn config_check(yaml: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = write_file(dir.path(), "alarm-scripts/fix-it", "#!/bin/sh\nexit 0\n");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let path = write_file(dir.path(), "laxmon.yaml", yaml);
    let out = laxmon(&["config", "check", "--config", &path]);
    (out.status.code().unwrap_or(-1), stderr(&out), path)
}

/// Asserts that `laxmon config check` exits 64 with an error at
/// `line:col` that mentions every one of `words`.
pub fn assert_error(yaml: &str, line: u32, col: u32, words: &[&str]) {
    let (code, err, path) = config_check(yaml);
    assert_eq!(code, 64, "exit code for:\n{yaml}\nstderr:\n{err}");
    let prefix = format!("{path}:{line}:{col}: ");
    let hit = err
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no error at {prefix} in:\n{err}"));
    for w in words {
        assert!(hit.contains(w), "error {hit:?} should mention {w:?}");
    }
}
