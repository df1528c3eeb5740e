//! The result writer: takes results off the check path and gets each of them
//! into the database exactly once and in submission order, spooling them to
//! disk while the database is away.
//!
//! Data flow: [`ResultWriter::submit`] does a `try_send` into a bounded
//! channel (a check never waits for the database); an intake thread moves
//! them into the in-memory queue, numbering them; the flusher task writes
//! batches (up to `max_batch`, after at most `linger`) with
//! [`Store::write_result_refs`]: a batch never sent before as
//! [`WriteMode::New`] (PostgreSQL: plain binary COPY), a replay as
//! [`WriteMode::Replay`] (duplicates skipped). The queue holds at most `queue_capacity`
//! results: beyond that, and whenever a write fails, the whole queue is
//! appended to the spool (oldest first). Whatever is in the spool is older
//! than whatever is in memory, and the flusher always drains the spool
//! first, so order holds. A batch is only removed from memory or the spool
//! after its transaction committed; a replay of an already-committed result
//! is ignored by the database (`ON CONFLICT (result_id) DO NOTHING`), so a
//! crash between commit and truncation writes nothing twice.
//!
//! This module must never block the submitter on I/O, and never drop a
//! result it accepted (except one the database rejects as invalid, which is
//! kept in `rejected.jsonl` beside the spool).

use super::spool::{spooled_states, Spool, SpoolEntry};
use super::{ResultRecord, Store, StoreError, WriteMode};
use crate::config::StorageConfig;
use crate::result::CheckResult;
use crate::state::CheckState;
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

/// How the writer batches and retries.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Results held in memory before they spill to the spool (also the channel's capacity).
    pub queue_capacity: usize,
    /// Most results in one transaction.
    pub max_batch: usize,
    /// How long an idle writer waits for more results before writing a small batch.
    pub linger: Duration,
    /// Longest wait between reconnection attempts.
    pub max_backoff: Duration,
    /// Directory of the spool file.
    pub spool_dir: PathBuf,
}

impl WriterOptions {
    /// The options for a `storage:` section: its queue capacity and spool
    /// directory, batches of 5,000, 100 ms linger, backoff up to 30 s.
    pub fn from_config(cfg: &StorageConfig) -> WriterOptions {
        WriterOptions {
            queue_capacity: cfg.queue_capacity.max(1),
            max_batch: 5_000,
            linger: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            spool_dir: cfg.spool_dir.clone(),
        }
    }
}

/// Why a result was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The channel is full: the intake thread is behind (the spool disk is very slow).
    #[error("result writer queue full: result of {0} dropped")]
    Full(String),
    /// The writer has stopped.
    #[error("result writer stopped: result of {0} dropped")]
    Closed(String),
}

/// Counters for logs, tests and `laxmon db stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Results in memory, not yet written.
    pub queued: u64,
    /// Results in the spool file, not yet written.
    pub spooled: u64,
    /// Result rows inserted.
    pub written: u64,
    /// Results skipped because their id was already stored (replays).
    pub duplicates: u64,
    /// Results the database refused as invalid (kept in `rejected.jsonl`).
    pub rejected: u64,
    /// The last write failed: the database is considered away.
    pub database_down: bool,
}

struct Queue {
    mem: VecDeque<Arc<SpoolEntry>>,
    spool: Spool,
    next_seq: u64,
    /// Highest seq known to be committed.
    committed: u64,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Notify,
    closing: AtomicBool,
    intake_done: AtomicBool,
    written: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    down: AtomicBool,
    capacity: usize,
    spool_dir: PathBuf,
}

/// Publishes the backlog (memory and spool) to the metrics; call with the lock held.
fn publish_backlog(q: &Queue) {
    let (spooled, bytes) = (q.spool.unread(), q.spool.unread_bytes());
    crate::metrics::set_result_backlog(q.mem.len() as u64, spooled, bytes);
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves the queue consistent (every
        // operation is append or pop), so a poisoned lock is still usable.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Moves the whole in-memory queue to the end of the spool. On failure the
/// entries stay in memory (nothing is lost, memory grows).
fn spill(q: &mut Queue) {
    if q.mem.is_empty() {
        return;
    }
    let Queue { mem, spool, .. } = q;
    match spool.append(mem.iter().map(|e| &**e)) {
        Ok(()) => {
            q.mem.clear();
            publish_backlog(q);
        }
        Err(e) => {
            tracing::error!(error = %e, queued = q.mem.len(), "cannot spill results to the spool; keeping them in memory")
        }
    }
}

/// The running writer. Dropping it without [`ResultWriter::shutdown`] is a
/// crash as far as unwritten results in memory are concerned.
pub struct ResultWriter {
    tx: Option<mpsc::Sender<ResultRecord>>,
    shared: Arc<Shared>,
    intake: Option<std::thread::JoinHandle<()>>,
    flusher: JoinHandle<()>,
}

impl ResultWriter {
    /// Opens the spool in `opts.spool_dir` (replaying what an earlier run
    /// left there before anything new) and starts the intake thread and the
    /// flusher task. Must be called within a tokio runtime.
    pub fn start(store: Store, opts: WriterOptions) -> Result<ResultWriter, StoreError> {
        let spool = Spool::open(&opts.spool_dir)?;
        crate::metrics::set_result_backlog(0, spool.unread(), spool.unread_bytes());
        let capacity = opts.queue_capacity.max(1);
        let next_seq = spool.max_seq() + 1;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                mem: VecDeque::new(),
                spool,
                next_seq,
                committed: 0,
            }),
            wake: Notify::new(),
            closing: AtomicBool::new(false),
            intake_done: AtomicBool::new(false),
            written: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            down: AtomicBool::new(false),
            capacity,
            spool_dir: opts.spool_dir.clone(),
        });
        let (tx, rx) = mpsc::channel(capacity);
        let intake_shared = Arc::clone(&shared);
        let intake = std::thread::Builder::new()
            .name("laxmon-result-intake".into())
            .spawn(move || intake_loop(rx, &intake_shared))
            .map_err(|source| StoreError::Io {
                what: "starting the result intake thread for".into(),
                path: opts.spool_dir.clone(),
                source,
            })?;
        let flusher = tokio::spawn(flush_loop(store, Arc::clone(&shared), opts));
        Ok(ResultWriter {
            tx: Some(tx),
            shared,
            intake: Some(intake),
            flusher,
        })
    }

    /// Hands a result to the writer without waiting.
    pub fn submit(&self, record: ResultRecord) -> Result<(), SubmitError> {
        let Some(tx) = &self.tx else {
            return Err(SubmitError::Closed(record.check));
        };
        tx.try_send(record).map_err(|e| match e {
            mpsc::error::TrySendError::Full(r) => SubmitError::Full(r.check),
            mpsc::error::TrySendError::Closed(r) => SubmitError::Closed(r.check),
        })
    }

    /// Makes the record for a finished run (`state`: the check's state after
    /// it, for resume) and submits it; returns the result's id.
    pub fn submit_result(
        &self,
        result: &CheckResult,
        state: Option<&CheckState>,
    ) -> Result<Uuid, SubmitError> {
        let record = ResultRecord::new(result, state);
        let id = record.result_id;
        self.submit(record).map(|()| id)
    }

    /// Current counters.
    pub fn stats(&self) -> WriterStats {
        let (queued, spooled) = {
            let q = self.shared.lock();
            (q.mem.len() as u64, q.spool.unread())
        };
        WriterStats {
            queued,
            spooled,
            written: self.shared.written.load(Ordering::SeqCst),
            duplicates: self.shared.duplicates.load(Ordering::SeqCst),
            rejected: self.shared.rejected.load(Ordering::SeqCst),
            database_down: self.shared.down.load(Ordering::SeqCst),
        }
    }

    /// Stops accepting results, writes what is queued (or, while the
    /// database is away, spools it) and stops; gives up writing after
    /// `timeout` and spools the rest.
    pub async fn shutdown(mut self, timeout: Duration) -> WriterStats {
        self.tx = None;
        if let Some(intake) = self.intake.take() {
            let _ = tokio::task::spawn_blocking(move || intake.join()).await;
        }
        self.shared.closing.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
        let flusher = &mut self.flusher;
        if tokio::time::timeout(timeout, &mut *flusher).await.is_err() {
            flusher.abort();
            let _ = (&mut *flusher).await;
            tracing::warn!("result writer did not finish in time; spooling the rest");
        }
        {
            let mut q = self.shared.lock();
            spill(&mut q);
        }
        self.stats()
    }

    /// Stops at once without writing or spooling what is in memory (what a
    /// crash does, except that the spool is closed and unlocked on return);
    /// for tests of recovery.
    pub async fn abort(mut self) {
        self.flusher.abort();
        let _ = (&mut self.flusher).await;
        self.tx = None;
        if let Some(intake) = self.intake.take() {
            let _ = tokio::task::spawn_blocking(move || intake.join()).await;
        }
        // Aborting the flusher does not stop blocking work it handed off
        // (a spool append, a replay read), which holds the queue and so the
        // spool's lock: wait for it, boundedly, as a dying process would.
        for _ in 0..3000 {
            if Arc::strong_count(&self.shared) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for ResultWriter {
    fn drop(&mut self) {
        self.flusher.abort();
    }
}

fn intake_loop(mut rx: mpsc::Receiver<ResultRecord>, shared: &Shared) {
    let mut buf = Vec::with_capacity(1024);
    // The last state snapshot submitted per check (see `same_for_resume`).
    let mut last_state: HashMap<String, CheckState> = HashMap::new();
    while rx.blocking_recv().map(|r| buf.push(r)).is_some() {
        while buf.len() < 1024 {
            match rx.try_recv() {
                Ok(r) => buf.push(r),
                Err(_) => break,
            }
        }
        for record in &mut buf {
            drop_unchanged_state(record, &mut last_state);
        }
        {
            let mut q = shared.lock();
            for record in buf.drain(..) {
                let seq = q.next_seq;
                q.next_seq += 1;
                q.mem.push_back(Arc::new(SpoolEntry { seq, record }));
            }
            if q.mem.len() >= shared.capacity {
                spill(&mut q);
            }
            publish_backlog(&q);
        }
        shared.wake.notify_one();
    }
    shared.intake_done.store(true, Ordering::SeqCst);
    shared.wake.notify_one();
}

/// Leaves out a state snapshot that a resume would not tell apart from the
/// check's previous one (only `last_check` moved, e.g. OK after OK), so a
/// steady check costs no `check_states` update per result. The previous
/// snapshot is ahead of this record in the queue, so it is stored first.
fn drop_unchanged_state(record: &mut ResultRecord, last: &mut HashMap<String, CheckState>) {
    let Some(state) = &record.check_state else {
        return;
    };
    if last
        .get(&record.check)
        .is_some_and(|prev| same_for_resume(prev, state))
    {
        record.check_state = None;
    } else {
        last.insert(record.check.clone(), state.clone());
    }
}

/// Equal in everything the state machine reads when it resumes.
fn same_for_resume(a: &CheckState, b: &CheckState) -> bool {
    a.status() == b.status()
        && a.last_hard_state() == b.last_hard_state()
        && a.is_flapping() == b.is_flapping()
        && a.flap_history() == b.flap_history()
        && a.last_state_change() == b.last_state_change()
        && a.last_hard_state_change() == b.last_hard_state_change()
}

/// A batch taken for writing, and where it came from.
struct Batch {
    entries: Vec<Arc<SpoolEntry>>,
    /// Spool offset and line count to consume after commit; `None` for memory.
    spool_end: Option<(u64, u64)>,
}

/// Takes the next batch: unread spool first, then memory. `None` when idle.
fn take_batch(shared: &Shared, max: usize) -> Result<Option<Batch>, StoreError> {
    let mut q = shared.lock();
    loop {
        if q.spool.has_unread() {
            let (entries, end, lines) = q.spool.read_batch(max)?;
            let committed = q.committed;
            let entries: Vec<Arc<SpoolEntry>> = entries
                .into_iter()
                .filter(|e| e.seq > committed)
                .map(Arc::new)
                .collect();
            if entries.is_empty() {
                q.spool.consume(end, lines)?;
                continue;
            }
            return Ok(Some(Batch {
                entries,
                spool_end: Some((end, lines)),
            }));
        }
        if q.mem.is_empty() {
            return Ok(None);
        }
        let entries = q.mem.iter().take(max).cloned().collect();
        return Ok(Some(Batch {
            entries,
            spool_end: None,
        }));
    }
}

/// Removes a committed batch from memory or the spool.
fn commit_batch(shared: &Shared, batch: &Batch) -> Result<(), StoreError> {
    let mut q = shared.lock();
    if let Some(last) = batch.entries.last() {
        q.committed = q.committed.max(last.seq);
    }
    let committed = q.committed;
    while q.mem.front().is_some_and(|e| e.seq <= committed) {
        q.mem.pop_front();
    }
    if let Some((end, lines)) = batch.spool_end {
        q.spool.consume(end, lines)?;
    }
    publish_backlog(&q);
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Task(format!("spool task: {e}")))?
}

/// Failed writes tolerated while shutting down before the rest is left in the spool.
const CLOSING_RETRIES: u32 = 4;

async fn flush_loop(store: Store, shared: Arc<Shared>, opts: WriterOptions) {
    let max = opts.max_batch.max(1);
    let mut outage: Option<Instant> = None;
    let mut backoff = Duration::from_millis(250);
    let mut idle = true;
    // The previous write failed: the next batch from memory may be partly stored.
    let mut after_failure = false;
    let mut closing_failures = 0;
    loop {
        let s = Arc::clone(&shared);
        let batch = match blocking(move || take_batch(&s, max)).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the spool; retrying");
                tokio::time::sleep(opts.max_backoff).await;
                continue;
            }
        };
        let Some(batch) = batch else {
            if shared.closing.load(Ordering::SeqCst) && shared.intake_done.load(Ordering::SeqCst) {
                return;
            }
            idle = true;
            let _ = tokio::time::timeout(Duration::from_secs(1), shared.wake.notified()).await;
            continue;
        };
        // Coming from idle with a small batch: wait a little for more.
        if idle
            && batch.spool_end.is_none()
            && batch.entries.len() < max
            && !shared.closing.load(Ordering::SeqCst)
        {
            idle = false;
            tokio::time::sleep(opts.linger).await;
            continue;
        }
        idle = false;
        let records: Vec<&ResultRecord> = batch.entries.iter().map(|e| &e.record).collect();
        let mode = if batch.spool_end.is_none() && !after_failure {
            WriteMode::New
        } else {
            WriteMode::Replay
        };
        let t = Instant::now();
        let written = write_batch(&store, &shared, &records, mode).await;
        crate::metrics::store_write(t.elapsed(), written.as_ref().ok().copied());
        let count = records.len() as u64;
        drop(records);
        match written {
            Ok(inserted) => {
                shared.written.fetch_add(inserted, Ordering::SeqCst);
                shared
                    .duplicates
                    .fetch_add(count.saturating_sub(inserted), Ordering::SeqCst);
                let s = Arc::clone(&shared);
                if let Err(e) = blocking(move || commit_batch(&s, &batch)).await {
                    tracing::error!(error = %e, "cannot update the spool after a write; its results will be replayed (and skipped)");
                }
                if let Some(since) = outage.take() {
                    let (queued, spooled) = {
                        let q = shared.lock();
                        (q.mem.len(), q.spool.unread())
                    };
                    tracing::info!(
                        db = %store.describe(),
                        outage_s = since.elapsed().as_secs_f64(),
                        queued,
                        spooled,
                        "database reachable again; replaying spooled results"
                    );
                }
                shared.down.store(false, Ordering::SeqCst);
                backoff = Duration::from_millis(250);
                after_failure = false;
            }
            Err(e) => {
                if outage.is_none() {
                    tracing::warn!(db = %store.describe(), error = %e, "database unreachable: results go to the spool until it is back");
                    outage = Some(Instant::now());
                }
                shared.down.store(true, Ordering::SeqCst);
                after_failure = true;
                let s = Arc::clone(&shared);
                let _ = blocking(move || {
                    spill(&mut s.lock());
                    Ok(())
                })
                .await;
                if shared.closing.load(Ordering::SeqCst) {
                    // Shutting down: a few quick retries (a busy pool, a
                    // restarting server), then leave the rest in the spool
                    // rather than hold up the stop.
                    closing_failures += 1;
                    if closing_failures >= CLOSING_RETRIES {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = wait_closing(&shared) => {}
                }
                backoff = (backoff * 2).min(opts.max_backoff);
            }
        }
    }
}

async fn wait_closing(shared: &Shared) {
    while !shared.closing.load(Ordering::SeqCst) {
        let _ = tokio::time::timeout(Duration::from_millis(200), shared.wake.notified()).await;
    }
}

/// Writes a batch. A `New` batch the database refuses (e.g. one of its ids
/// is stored after all) is repeated as `Replay`; a batch still refused is
/// written one result at a time, and results refused on their own go to
/// `rejected.jsonl`. Errors returned are transient (the batch stays queued).
async fn write_batch(
    store: &Store,
    shared: &Shared,
    records: &[&ResultRecord],
    mode: WriteMode,
) -> Result<u64, StoreError> {
    let first = store.write_result_refs(records, mode).await;
    let first = match (first, mode) {
        (Err(e), WriteMode::New) if !e.is_transient() => {
            tracing::debug!(error = %e, "new batch refused; repeating it as a replay");
            store.write_result_refs(records, WriteMode::Replay).await
        }
        (other, _) => other,
    };
    match first {
        Ok(n) => Ok(n),
        Err(e) if e.is_transient() => Err(e),
        Err(e) => {
            tracing::error!(error = %e, results = records.len(), "database refused a result batch; writing its results one by one");
            let mut inserted = 0;
            for r in records {
                match store.write_result_refs(&[r], WriteMode::Replay).await {
                    Ok(n) => inserted += n,
                    Err(e) if e.is_transient() => return Err(e),
                    Err(e) => {
                        tracing::error!(error = %e, check = %r.check, result_id = %r.result_id, "result rejected; kept in rejected.jsonl");
                        shared.rejected.fetch_add(1, Ordering::SeqCst);
                        reject(&shared.spool_dir, r);
                    }
                }
            }
            Ok(inserted)
        }
    }
}

fn reject(dir: &Path, r: &ResultRecord) {
    let path = dir.join("rejected.jsonl");
    let line = match serde_json::to_string(r) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a rejected result");
            return;
        }
    };
    let res = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = res {
        tracing::error!(path = %path.display(), error = %e, "cannot keep a rejected result");
    }
}

/// The states a restarted daemon resumes with: the stored `check_states`,
/// overridden by newer ones still waiting in the spool. When the database is
/// away, only the spooled states are returned (and a warning is logged).
pub async fn resume_states(
    store: &Store,
    spool_dir: &Path,
) -> Result<Vec<(String, CheckState)>, StoreError> {
    let mut states: std::collections::BTreeMap<String, CheckState> = match store.load_states().await
    {
        Ok(v) => v.into_iter().collect(),
        Err(e) if e.is_transient() => {
            tracing::warn!(error = %e, "cannot load check states from the database; resuming from the spool only");
            Default::default()
        }
        Err(e) => return Err(e),
    };
    let dir = spool_dir.to_path_buf();
    let spooled = blocking(move || spooled_states(&dir)).await?;
    states.extend(spooled);
    Ok(states.into_iter().collect())
}
