//! `laxmon ack` names who acknowledged: `--by`/`--author` when given, else
//! the account name of the calling user, also when `$USER` and `$LOGNAME`
//! are not set (root under `sudo -i`, systemd units, cron jobs).

mod support;

use laxmon::alarm::store::AlarmStore;
use laxmon::config::{Storage, StorageConfig};
use laxmon::store::Store;
use std::process::Command;
use support::alarm::alarm;
use support::bin::{laxmon_path, stderr, stdout, write_file};

/// A config on a fresh SQLite database with one open alarm per check in
/// `checks`, saved as the daemon saves them, numbered from 1.
async fn database_with_alarms(dir: &std::path::Path, checks: &[&str]) -> (String, Vec<u64>) {
    let db = dir.join("laxmon.db");
    let cfg = StorageConfig {
        backend: Storage::Sqlite(db.clone()),
        spool_dir: dir.join("spool"),
        ..StorageConfig::default()
    };
    let store = Store::open(&cfg).await.expect("open the store");
    let mut ids = Vec::new();
    for (id, check) in (1..).zip(checks) {
        store
            .save_alarm(&alarm(id, check, chrono::Utc::now()))
            .await
            .expect("save alarm");
        ids.push(id);
    }
    let config = write_file(
        dir,
        "laxmon.yaml",
        &format!("storage: sqlite:{}\n", db.display()),
    );
    (config, ids)
}

/// `laxmon ARGS` with no `USER`, `LOGNAME` or `SUDO_USER` in its environment.
fn laxmon_without_user(args: &[&str]) -> std::process::Output {
    Command::new(laxmon_path())
        .args(args)
        .env_remove("USER")
        .env_remove("LOGNAME")
        .env_remove("SUDO_USER")
        .env_remove("LAXMON_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .expect("laxmon runs")
}

/// The ack_by of alarm `id` as `laxmon alarms --json` shows it.
fn ack_by(config: &str, id: u64) -> String {
    let out = laxmon_without_user(&["alarms", "--config", config, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let alarms: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let alarm = alarms
        .as_array()
        .expect("array")
        .iter()
        .find(|a| a["id"].as_u64() == Some(id))
        .unwrap_or_else(|| panic!("alarm {id} in {alarms}"));
    alarm["ack_by"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn without_user_the_account_name_of_the_caller() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, ids) = database_with_alarms(dir.path(), &["web", "db", "dns"]).await;
    let whoami = Command::new("id").arg("-un").output().expect("id -un");
    let me = String::from_utf8_lossy(&whoami.stdout).trim().to_string();
    assert!(!me.is_empty(), "id -un printed nothing");

    let out = laxmon_without_user(&["ack", "--config", &config, &ids[0].to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("acknowledged by {me}")),
        "{}",
        stdout(&out)
    );
    assert_ne!(me, "unknown");
    assert_eq!(ack_by(&config, ids[0]), me);

    // --author (and --by) name someone else.
    let out = laxmon_without_user(&[
        "ack",
        "--config",
        &config,
        &ids[1].to_string(),
        "--author",
        "alice",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(ack_by(&config, ids[1]), "alice");
    let out = laxmon_without_user(&[
        "ack",
        "--config",
        &config,
        &ids[2].to_string(),
        "--by",
        "bob",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(ack_by(&config, ids[2]), "bob");
}
