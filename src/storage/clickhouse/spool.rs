//! The local spool: every accepted batch is written here and fsynced
//! before ingest is told it is stored, and stays until ClickHouse
//! confirmed it. A restart, a crash or an outage of ClickHouse loses
//! nothing acknowledged: the sender replays the spool in order.
//!
//! One file per batch, named `{seq}-{batch id}-{day}-{rows}.jsonl`
//! (sequence numbers keep the order; the batch id is the insert id inside
//! every row, so a replayed batch is the very block sent before). The body
//! is exactly what is inserted. Files are written under a temporary name,
//! fsynced, renamed and the folder fsynced, so a crash leaves either a
//! whole batch or a `.tmp` file that the next start deletes (its events
//! were never acknowledged). The folder is 0700 and the files 0600: they
//! hold visitor hashes and shortened addresses.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use chrono::NaiveDate;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the ClickHouse spool is full ({held} bytes held, limit {limit}); ClickHouse is behind or unreachable")]
    Full { held: u64, limit: u64 },
    #[error("spool {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A batch held in the spool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpooledBatch {
    pub path: PathBuf,
    pub seq: u64,
    /// The insert id in every row of the batch.
    pub id: u64,
    pub day: NaiveDate,
    pub rows: u64,
    pub bytes: u64,
}

impl SpooledBatch {
    fn parse(path: PathBuf, bytes: u64) -> Option<SpooledBatch> {
        let name = path.file_name()?.to_str()?.strip_suffix(".jsonl")?;
        let mut parts = name.split('-');
        let seq = parts.next()?.parse().ok()?;
        let id = u64::from_str_radix(parts.next()?, 16).ok()?;
        let day = NaiveDate::parse_from_str(parts.next()?, "%Y%m%d").ok()?;
        let rows = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(SpooledBatch {
            path,
            seq,
            id,
            day,
            rows,
            bytes,
        })
    }
}

/// The spool folder and what it holds.
pub struct Spool {
    dir: PathBuf,
    limit: u64,
    next_seq: Mutex<u64>,
    held_bytes: AtomicU64,
    held_batches: AtomicU64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Spool {
    /// Opens (creating) the spool in `dir`, deletes half-written files and
    /// counts what is held.
    pub fn open(dir: &Path, limit: u64) -> Result<Spool, SpoolError> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(io(dir))?;
        for entry in fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                fs::remove_file(&path).map_err(io(&path))?;
            }
        }
        let spool = Spool {
            dir: dir.to_path_buf(),
            limit,
            next_seq: Mutex::new(0),
            held_bytes: AtomicU64::new(0),
            held_batches: AtomicU64::new(0),
        };
        let held = spool.pending()?;
        *spool.next_seq.lock().unwrap_or_else(|p| p.into_inner()) =
            held.last().map_or(0, |b| b.seq + 1);
        spool
            .held_bytes
            .store(held.iter().map(|b| b.bytes).sum(), Ordering::Relaxed);
        spool
            .held_batches
            .store(held.len() as u64, Ordering::Relaxed);
        Ok(spool)
    }

    /// Batches and bytes waiting.
    pub fn backlog(&self) -> (u64, u64) {
        (
            self.held_batches.load(Ordering::Relaxed),
            self.held_bytes.load(Ordering::Relaxed),
        )
    }

    /// True when `bytes` more fit.
    pub fn has_room(&self, bytes: u64) -> Result<(), SpoolError> {
        let held = self.held_bytes.load(Ordering::Relaxed);
        if held.saturating_add(bytes) > self.limit {
            return Err(SpoolError::Full {
                held,
                limit: self.limit,
            });
        }
        Ok(())
    }

    /// Writes a batch durably (file and folder fsynced) and returns it.
    pub fn put(
        &self,
        id: u64,
        day: NaiveDate,
        rows: u64,
        body: &[u8],
    ) -> Result<SpooledBatch, SpoolError> {
        let seq = {
            let mut next = self.next_seq.lock().unwrap_or_else(|p| p.into_inner());
            let seq = *next;
            *next += 1;
            seq
        };
        let name = format!("{seq:020}-{id:016x}-{}-{rows}", day.format("%Y%m%d"));
        let tmp = self.dir.join(format!("{name}.tmp"));
        let path = self.dir.join(format!("{name}.jsonl"));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = (|| {
            let mut file = options.open(&tmp)?;
            file.write_all(body)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()
        })();
        if let Err(source) = written {
            let _ = fs::remove_file(&tmp);
            let _ = fs::remove_file(&path);
            return Err(SpoolError::Io { path, source });
        }
        self.held_bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        self.held_batches.fetch_add(1, Ordering::Relaxed);
        Ok(SpooledBatch {
            path,
            seq,
            id,
            day,
            rows,
            bytes: body.len() as u64,
        })
    }

    /// Every held batch, oldest first.
    pub fn pending(&self) -> Result<Vec<SpooledBatch>, SpoolError> {
        let mut held = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "jsonl") {
                continue;
            }
            let bytes = entry.metadata().map_err(io(&path))?.len();
            match SpooledBatch::parse(path.clone(), bytes) {
                Some(batch) => held.push(batch),
                None => {
                    tracing::warn!(path = %path.display(), "file in the ClickHouse spool that sparsam did not write; left alone")
                }
            }
        }
        held.sort_by_key(|b| b.seq);
        Ok(held)
    }

    pub fn read(&self, batch: &SpooledBatch) -> Result<Vec<u8>, SpoolError> {
        fs::read(&batch.path).map_err(io(&batch.path))
    }

    /// Deletes a batch ClickHouse confirmed. (Not fsynced: should the
    /// deletion be lost in a crash, the batch is sent again and recognised
    /// as already stored.)
    pub fn remove(&self, batch: &SpooledBatch) -> Result<(), SpoolError> {
        fs::remove_file(&batch.path).map_err(io(&batch.path))?;
        self.held_bytes.fetch_sub(batch.bytes, Ordering::Relaxed);
        self.held_batches.fetch_sub(1, Ordering::Relaxed);
        Ok(())
    }
}
