//! `laxmon plan` through the real binary: the examples of
//! `docs/clusterreorg.md`, JSON on
//! stdout, exit 2 with a one-line message for bad input.

mod support;

use support::bin::{laxmon, stderr, stdout, write_file};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/plan");

#[test]
fn spec_examples_through_the_binary() {
    for example in ["example1", "example2", "example3"] {
        let yaml = format!("{FIXTURES}/{example}.yaml");
        let out = laxmon(&["plan", "--cluster", &yaml, "--fail", "cs2", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{example}: {}", stderr(&out));
        let got: serde_json::Value =
            serde_json::from_str(stdout(&out).trim()).expect("one JSON object");
        let want: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{FIXTURES}/{example}.json")).expect("expected json"),
        )
        .expect("expected JSON parses");
        for key in ["actions", "placement", "down"] {
            assert_eq!(got[key], want[key], "{example}: {key}");
        }
    }
}

#[test]
fn table_output_without_json() {
    let out = laxmon(&[
        "plan",
        "--cluster",
        &format!("{FIXTURES}/example2.yaml"),
        "--fail",
        "cs2",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("stop") && text.contains("start"), "{text}");
    assert!(text.contains("d: stopped on cs3"), "{text}");
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        ("hosts:\n  - name: cs1\n    memory_mb: 0\nvms: []\n", "cs1"),
        ("hosts:\n  - name: cs1\n    memory_mb: 100\nvms:\n  - name: a\n    host: cs9\n    memory_mb: 10\n", "cs9"),
        ("hosts:\n  - name: cs1\n    memory_mb: 100\n  - name: cs1\n    memory_mb: 100\nvms: []\n", "cs1"),
    ];
    for (i, (yaml, names)) in cases.iter().enumerate() {
        let file = write_file(dir.path(), &format!("c{i}.yaml"), yaml);
        let out = laxmon(&["plan", "--cluster", &file]);
        assert_eq!(out.status.code(), Some(2), "{yaml}");
        let err = stderr(&out);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(names), "{err} should name {names}");
        assert!(stdout(&out).is_empty());
    }
    let file = write_file(
        dir.path(),
        "ok.yaml",
        "hosts:\n  - name: cs1\n    memory_mb: 100\nvms: []\n",
    );
    let out = laxmon(&["plan", "--cluster", &file, "--fail", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nope"));
}
