//! checks/cluster.yaml, san.yaml and vms.yaml load as a configuration and
//! every `laxmon plugin ...` command in them is a valid plugin invocation.
//! Nothing is run: the hosts in those files are not contacted.

use laxmon::checks::plugin::expand_macros;
use laxmon::config::{self, CheckKind};
use laxmon::stack::cli::{parse_args, Invocation};

#[test]
fn cluster_check_files_load_and_their_plugin_commands_parse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = env!("CARGO_MANIFEST_DIR");
    let main = dir.path().join("laxmon.yaml");
    let text = format!(
        "include:\n  - {root}/checks/cluster.yaml\n  - {root}/checks/san.yaml\n  - {root}/checks/vms.yaml\nstorage: sqlite:{}/x.db\n",
        dir.path().display()
    );
    std::fs::write(&main, text).expect("write");
    let cfg = config::load(&main).unwrap_or_else(|e| panic!("{e}"));
    for host in ["cs1", "cs2", "cs3", "san1", "san2", "deb1", "win3", "t1"] {
        assert!(cfg.host(host).is_some(), "host {host}");
    }
    let mut plugins = 0;
    for check in &cfg.checks {
        let CheckKind::Plugin { command, .. } = &check.kind else {
            continue;
        };
        if command.first().map(String::as_str) != Some("laxmon") {
            continue;
        }
        assert_eq!(
            command.get(1).map(String::as_str),
            Some("plugin"),
            "{}",
            check.name
        );
        // As the runner does: the check's host fills in $HOSTNAME$/$HOSTADDRESS$.
        let address = config::connect_address(
            &check.host,
            cfg.host(&check.host).map(|h| h.address.as_str()),
        );
        let command = expand_macros(command, &check.host, &address);
        assert!(
            !command.iter().any(|w| w.contains('$')),
            "{}: {command:?}",
            check.name
        );
        match parse_args(&command[2..]) {
            Ok(Invocation::Run(..)) => plugins += 1,
            other => panic!("{}: {command:?}: {other:?}", check.name),
        }
    }
    assert!(plugins >= 15, "only {plugins} plugin checks");
}
