//! Both store backends for one test: [`Env`] prepares SQLite (a temporary
//! directory) or PostgreSQL (a fresh database from [`super::pg`]), and
//! [`both!`] runs one async scenario `fn name(env: Env)` against each.
//!
//! Use with `use support::backend::{both, Env};`: the macro calls
//! `super::Env`, so `Env` must be in scope at the test file's root.
#![allow(unused_macros, unused_imports)]

use laxmon::config::{Storage, StorageConfig};
use laxmon::store::{Store, WriterOptions};
use std::time::Duration;

/// One backend prepared for a test: its config (not yet migrated) and what must live as long.
pub struct Env {
    /// The storage settings of this backend.
    pub cfg: StorageConfig,
    /// Temporary directory for the SQLite file and the spool.
    pub dir: tempfile::TempDir,
    /// The PostgreSQL database, dropped with the value.
    pub db: Option<super::pg::TestDb>,
}

impl Env {
    /// SQLite in a temporary directory.
    pub async fn sqlite() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = StorageConfig {
            backend: Storage::Sqlite(dir.path().join("db/laxmon.db")),
            spool_dir: dir.path().join("spool"),
            ..StorageConfig::default()
        };
        Env { cfg, dir, db: None }
    }

    /// A fresh PostgreSQL database.
    pub async fn postgres() -> Env {
        let db = super::pg::fresh_database().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = StorageConfig {
            backend: Storage::Postgres(db.url.clone()),
            spool_dir: dir.path().join("spool"),
            ..StorageConfig::default()
        };
        Env {
            cfg,
            dir,
            db: Some(db),
        }
    }

    /// Opens (and migrates) the store.
    pub async fn open(&self) -> Store {
        Store::open(&self.cfg).await.expect("open the store")
    }

    /// Whether this is the PostgreSQL backend.
    pub fn is_postgres(&self) -> bool {
        matches!(self.cfg.backend, Storage::Postgres(_))
    }

    /// Writer options with a short linger and backoff, for tests.
    pub fn writer_options(&self) -> WriterOptions {
        WriterOptions {
            linger: Duration::from_millis(20),
            max_backoff: Duration::from_secs(2),
            ..WriterOptions::from_config(&self.cfg)
        }
    }
}

/// Runs one scenario against both backends.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Env::sqlite().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::Env::postgres().await).await;
            }
        }
    };
}
pub(crate) use both;
