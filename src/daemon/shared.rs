//! What outlives a configuration reload and what the operations API reaches
//! the running daemon through: [`Shared`] lives as long as the process,
//! [`Generation`] as long as one configuration (one [`super::run`]).
//!
//! Handles only: this file must never run checks, write to the store or
//! decide anything about alarms.

use super::control::AlarmControl;
use super::live::LiveView;
use super::scheduler::SchedulerControl;
use super::Stop;
use crate::config::Config;
use crate::result::CheckResult;
use crate::store::Store;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, watch};

/// The process-wide handles: the configuration generation now running, the
/// last reload's outcome, and the way to ask for a reload.
pub struct Shared {
    started: DateTime<Utc>,
    config_path: PathBuf,
    current: watch::Sender<Option<Arc<Generation>>>,
    generations: AtomicU64,
    last_reload: Mutex<Option<ReloadOutcome>>,
    reload_tx: mpsc::Sender<Box<Config>>,
    reload_rx: tokio::sync::Mutex<mpsc::Receiver<Box<Config>>>,
    alarms: AlarmControl,
}

/// One configuration's running daemon, as the API sees it.
pub struct Generation {
    /// Counts configurations since the process started (1 for the first).
    pub number: u64,
    /// When this configuration started running.
    pub started: DateTime<Utc>,
    /// The configuration.
    pub config: Arc<Config>,
    /// The store.
    pub store: Store,
    /// Every check's current state.
    pub live: Arc<LiveView>,
    /// Asks the scheduler to run a check now.
    pub scheduler: SchedulerControl,
    /// Callers waiting for a check's next result, by check name.
    waiters: Mutex<HashMap<String, Vec<oneshot::Sender<Arc<CheckResult>>>>>,
    /// How many entries `waiters` has (read without the lock on every result).
    waiting: AtomicUsize,
}

/// How the last reload went.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadOutcome {
    /// When it was asked for.
    pub at: DateTime<Utc>,
    /// Whether the new configuration was taken.
    pub ok: bool,
    /// What was wrong with it, one line per problem.
    pub errors: Vec<String>,
    /// Who asked (`SIGHUP`, or the API caller).
    pub by: String,
}

impl ReloadOutcome {
    /// A reload that took the new configuration.
    pub fn taken(by: &str) -> ReloadOutcome {
        ReloadOutcome {
            at: Utc::now(),
            ok: true,
            errors: Vec::new(),
            by: by.to_string(),
        }
    }

    /// A reload refused for `errors`.
    pub fn refused(by: &str, errors: &crate::config::ConfigErrors) -> ReloadOutcome {
        ReloadOutcome {
            at: Utc::now(),
            ok: false,
            errors: errors.0.iter().map(|e| e.to_string()).collect(),
            by: by.to_string(),
        }
    }
}

impl Shared {
    /// The handles for a daemon started on the configuration at `config_path`.
    pub fn new(config_path: &Path) -> Arc<Shared> {
        let (reload_tx, reload_rx) = mpsc::channel(1);
        Arc::new(Shared {
            started: Utc::now(),
            config_path: config_path.to_path_buf(),
            current: watch::channel(None).0,
            generations: AtomicU64::new(0),
            last_reload: Mutex::new(None),
            reload_tx,
            reload_rx: tokio::sync::Mutex::new(reload_rx),
            alarms: AlarmControl::new(),
        })
    }

    /// The alarm stage's control handle: ack, unack, silences, the
    /// per-check alarm summary (answers `Unavailable` while no stage runs).
    pub fn alarms(&self) -> &AlarmControl {
        &self.alarms
    }

    /// When the process started.
    pub fn started(&self) -> DateTime<Utc> {
        self.started
    }

    /// The main configuration file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The generation running now; `None` between two (during a reload).
    pub fn current(&self) -> Option<Arc<Generation>> {
        self.current.borrow().clone()
    }

    /// Follows generations as they start and stop.
    pub fn watch(&self) -> watch::Receiver<Option<Arc<Generation>>> {
        self.current.subscribe()
    }

    /// The number the next generation gets.
    fn next_number(&self) -> u64 {
        self.generations.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The last reload's outcome, if there was one.
    pub fn last_reload(&self) -> Option<ReloadOutcome> {
        self.last_reload.lock().ok().and_then(|g| g.clone())
    }

    /// Remembers a reload's outcome.
    pub fn record_reload(&self, outcome: ReloadOutcome) {
        if let Ok(mut g) = self.last_reload.lock() {
            *g = Some(outcome);
        }
    }

    /// Asks the running daemon to switch to `config` (already loaded and
    /// valid); false when a reload is already waiting.
    pub fn request_reload(&self, config: Config) -> bool {
        self.reload_tx.try_send(Box::new(config)).is_ok()
    }

    /// Waits for a reload requested through [`Self::request_reload`].
    pub(crate) async fn reload_requested(&self) -> Stop {
        let mut rx = self.reload_rx.lock().await;
        match rx.recv().await {
            Some(config) => Stop::Reload(config),
            None => std::future::pending().await,
        }
    }

    /// Publishes a new generation; returns its number.
    pub(crate) fn start_generation(
        &self,
        config: Arc<Config>,
        store: Store,
        live: Arc<LiveView>,
        scheduler: SchedulerControl,
    ) -> Arc<Generation> {
        let generation = Arc::new(Generation {
            number: self.next_number(),
            started: Utc::now(),
            config,
            store,
            live,
            scheduler,
            waiters: Mutex::new(HashMap::new()),
            waiting: AtomicUsize::new(0),
        });
        self.current.send_replace(Some(Arc::clone(&generation)));
        generation
    }

    /// Withdraws the running generation (it is stopping).
    pub(crate) fn end_generation(&self) {
        self.current.send_replace(None);
    }

    /// How many generations have started.
    pub fn generations(&self) -> u64 {
        self.generations.load(Ordering::Relaxed)
    }
}

impl Generation {
    /// The next result of `check`, whenever it comes.
    pub fn next_result(&self, check: &str) -> oneshot::Receiver<Arc<CheckResult>> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = self.waiters.lock() {
            let list = w.entry(check.to_string()).or_default();
            list.retain(|t| !t.is_closed());
            list.push(tx);
            self.waiting.store(w.len(), Ordering::Relaxed);
        }
        rx
    }

    /// Hands a result to whoever waits for one of its check (cheap when
    /// nobody waits).
    pub(crate) fn publish(&self, result: &CheckResult) {
        if self.waiting.load(Ordering::Relaxed) == 0 {
            return;
        }
        let Ok(mut w) = self.waiters.lock() else {
            return;
        };
        if let Some(list) = w.remove(&result.check) {
            let shared = Arc::new(result.clone());
            for tx in list {
                let _ = tx.send(Arc::clone(&shared));
            }
        }
        self.waiting.store(w.len(), Ordering::Relaxed);
    }
}
