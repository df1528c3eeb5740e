//! The spool: an append-only JSON-lines file of results that could not be
//! written yet, replayed in order once the database is back.
//!
//! One line per result (`{"seq":N,"record":{...}}`), fsync'd after every
//! appended batch. The file is locked (`flock`) so two writers never share
//! it. A torn last line (a crash mid-append) is cut off on open. This file
//! must never reorder or drop a complete line: the writer's exactly-once and
//! in-order promise rests on it; entries are removed only by truncating the
//! whole file after every line was written to the database.

use super::{ResultRecord, StoreError};
use crate::state::CheckState;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// The spool file's name inside `spool_dir`.
pub const SPOOL_FILE: &str = "results.spool";

/// One spooled result with its position in the writer's queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpoolEntry {
    /// Position in submission order (per writer process).
    pub seq: u64,
    /// The result.
    pub record: ResultRecord,
}

/// The open, locked spool file and how far it has been replayed.
pub struct Spool {
    path: PathBuf,
    file: File,
    /// Bytes of complete lines in the file.
    len: u64,
    /// Bytes already replayed (in this process).
    read_offset: u64,
    /// Lines not yet replayed.
    unread: u64,
    /// Highest seq in the file.
    max_seq: u64,
}

fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let what = what.to_string();
    let path = path.to_path_buf();
    move |source| StoreError::Io { what, path, source }
}

impl Spool {
    /// Opens (creating `dir` and the file if needed) and locks the spool;
    /// cuts off a torn last line.
    pub fn open(dir: &Path) -> Result<Spool, StoreError> {
        std::fs::create_dir_all(dir).map_err(io_err("creating the spool directory", dir))?;
        let path = dir.join(SPOOL_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err("opening the spool", &path))?;
        // SAFETY: flock on a file descriptor we own; no memory is shared.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(StoreError::Io {
                what: "locking the spool (is another laxmon using this spool_dir?)".into(),
                path,
                source: std::io::Error::last_os_error(),
            });
        }
        let mut spool = Spool {
            path,
            file,
            len: 0,
            read_offset: 0,
            unread: 0,
            max_seq: 0,
        };
        spool.scan()?;
        Ok(spool)
    }

    /// Counts complete lines, finds the highest seq and cuts off a torn tail.
    fn scan(&mut self) -> Result<(), StoreError> {
        let mut reader = BufReader::new(&self.file);
        reader
            .seek(SeekFrom::Start(0))
            .map_err(io_err("reading the spool", &self.path))?;
        let mut good = 0u64;
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(io_err("reading the spool", &self.path))?;
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            good += n as u64;
            self.unread += 1;
            if let Ok(e) = serde_json::from_slice::<SpoolSeq>(&line) {
                self.max_seq = self.max_seq.max(e.seq);
            }
        }
        let total = self
            .file
            .metadata()
            .map_err(io_err("reading the spool size", &self.path))?
            .len();
        if total > good {
            tracing::warn!(spool = %self.path.display(), bytes = total - good, "cutting off a torn last spool line");
            self.file
                .set_len(good)
                .map_err(io_err("truncating the spool", &self.path))?;
        }
        self.len = good;
        if self.unread > 0 {
            tracing::info!(spool = %self.path.display(), results = self.unread, "found spooled results to replay");
        }
        Ok(())
    }

    /// Appends entries in order and fsyncs.
    pub fn append<'a>(
        &mut self,
        entries: impl IntoIterator<Item = &'a SpoolEntry>,
    ) -> Result<(), StoreError> {
        let mut buf = Vec::new();
        let mut count = 0u64;
        for e in entries {
            serde_json::to_writer(&mut buf, e).map_err(|source| StoreError::Json {
                what: format!("encoding a spool entry of {}", e.record.check),
                source,
            })?;
            buf.push(b'\n');
            self.max_seq = self.max_seq.max(e.seq);
            count += 1;
        }
        if count == 0 {
            return Ok(());
        }
        self.file
            .seek(SeekFrom::Start(self.len))
            .and_then(|_| self.file.write_all(&buf))
            .and_then(|_| self.file.sync_data())
            .map_err(io_err("appending to the spool", &self.path))?;
        self.len += buf.len() as u64;
        self.unread += count;
        Ok(())
    }

    /// Whether some lines have not been replayed yet.
    pub fn has_unread(&self) -> bool {
        self.read_offset < self.len
    }

    /// Lines not yet replayed.
    pub fn unread(&self) -> u64 {
        self.unread
    }

    /// Bytes of the lines not yet replayed.
    pub fn unread_bytes(&self) -> u64 {
        self.len - self.read_offset
    }

    /// Highest seq ever appended (0 when empty).
    pub fn max_seq(&self) -> u64 {
        self.max_seq
    }

    /// Reads up to `max` unread entries in order; returns them with the
    /// offset to pass to [`Spool::consume`] once they are in the database.
    /// Undecodable lines are skipped with a warning.
    pub fn read_batch(&mut self, max: usize) -> Result<(Vec<SpoolEntry>, u64, u64), StoreError> {
        let mut reader = BufReader::new(&self.file);
        reader
            .seek(SeekFrom::Start(self.read_offset))
            .map_err(io_err("reading the spool", &self.path))?;
        let mut reader = reader.take(self.len - self.read_offset);
        let mut offset = self.read_offset;
        let mut entries = Vec::new();
        let mut lines = 0u64;
        let mut line = Vec::new();
        while entries.len() < max {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(io_err("reading the spool", &self.path))?;
            if n == 0 {
                break;
            }
            offset += n as u64;
            lines += 1;
            match serde_json::from_slice::<SpoolEntry>(&line) {
                Ok(e) => entries.push(e),
                Err(e) => {
                    tracing::warn!(spool = %self.path.display(), offset, error = %e, "skipping an undecodable spool line")
                }
            }
        }
        Ok((entries, offset, lines))
    }

    /// Marks everything up to `offset` (`lines` lines) replayed; truncates
    /// the file once all of it is.
    pub fn consume(&mut self, offset: u64, lines: u64) -> Result<(), StoreError> {
        self.read_offset = offset.min(self.len);
        self.unread = self.unread.saturating_sub(lines);
        if self.read_offset >= self.len {
            self.file
                .set_len(0)
                .and_then(|_| self.file.sync_data())
                .map_err(io_err("truncating the replayed spool", &self.path))?;
            self.len = 0;
            self.read_offset = 0;
            self.unread = 0;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct SpoolSeq {
    seq: u64,
}

/// The newest check state of every check in the spool at `dir` (without
/// locking it): states written after the database's.
pub fn spooled_states(dir: &Path) -> Result<HashMap<String, CheckState>, StoreError> {
    let path = dir.join(SPOOL_FILE);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(io_err("opening the spool", &path)(e)),
    };
    let mut states = HashMap::new();
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(io_err("reading the spool", &path))?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        if let Ok(e) = serde_json::from_slice::<SpoolEntry>(&line) {
            if let Some(s) = e.record.check_state {
                states.insert(e.record.check, s);
            }
        }
    }
    Ok(states)
}
