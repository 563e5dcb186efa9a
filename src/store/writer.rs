//! The single writer: one OS thread owns every write and commits batches.
//!
//! One fsynced redb commit costs about a millisecond and a half, so a commit
//! per hit would cap ingest near 700 hits/s. Instead requests go over a
//! bounded channel; the writer thread drains whatever is queued (up to
//! `max_batch` requests), writes it all in one `Durability::Immediate`
//! transaction (the raw events, see `apply`), commits, and only then
//! answers every request in the batch. An acknowledged event is therefore
//! on disk. What the batch adds to the roll-ups is held in memory and
//! folded into the roll-up tables at a bounded cadence, with a watermark
//! that start-up replays from after a crash (`open_rollups`): rewriting
//! the hot roll-up rows with every commit cost ten times more bytes than
//! the events themselves. A full channel is reported to the caller at once
//! ([`SubmitError::QueueFull`], which the HTTP layer turns into 503 with
//! `Retry-After`) instead of dropping anything silently. A failed commit is
//! reported to every request of that batch, leaves nothing of it visible,
//! and the thread carries on with the next batch (after an I/O error it
//! first reopens the database, see `reopen`).
//!
//! Maintenance (dropping and trimming days, expiring strings, roll-ups and
//! their free text, a vacuum's catch-up and file swap) arrives on the same
//! channel as commands (`super::commands`),
//! each answered on its own oneshot channel when done. A long one runs in
//! short durable steps with the batches that queued meanwhile committed
//! between two steps. When nothing is queued, the thread also seals
//! closed days of the dimension roll-ups (`seal`), in short transactions
//! of their own. Since this thread makes every change, it forgets what it
//! changed itself; nobody else touches what its memory mirrors.
//!
//! Shutdown ([`WriterHandle::shutdown`] or [`WriterHandle::shutdown_blocking`])
//! closes the channel; the thread commits everything already queued, answers
//! it, drops its `Arc<Store>` and exits, and shutdown joins it. Once the
//! caller drops its own `Arc<Store>` the database is closed cleanly (redb
//! runs a slow repair on the next open after an unclean close).

use super::ids::{DayNumber, DimValueId};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use chrono_tz::Tz;
use redb::Durability;
use tokio::sync::{mpsc, oneshot};

use crate::model::Event;

use super::apply::{local_day, BatchRollups, WriterState};
use super::commands::{Maintenance, Reply, WriterCommand};
use super::rollup::FREE_TEXT_DIMS;
use super::sweep::{
    FreeTextCutPlan, FreeTextExpiry, FreeTextVetted, DIM_VALUES_PER_TXN, STRINGS_PER_TXN,
};
use super::{RollupExpiry, Store, StoreError, VacuumReport};
use crate::storage::StorageError;

/// How often an idle writer looks for closed days to seal.
const SEAL_EVERY: Duration = Duration::from_secs(60);
/// Rows moved per sealing transaction: bounds how long a request that
/// arrives meanwhile waits (a few milliseconds).
const SEAL_ROWS: usize = 5_000;
/// How often a free-text cut is planned again when its rows keep changing
/// between the plan and the writer's check (an import into that day).
const FREE_TEXT_ATTEMPTS: u32 = 5;

/// Answer to one submitted batch: `Ok` once its events are committed. In
/// the boundary's terms: whoever submitted cannot act on the engine's own
/// error, only on whether it was the disk (retry) or not.
pub type Ack = Result<(), StorageError>;

/// Why a batch was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The queue is full: the store is behind. Retry later.
    #[error("store queue is full")]
    QueueFull,
    /// The writer has shut down.
    #[error("store writer is closed")]
    Closed,
}

/// Settings of the writer.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// Capacity of the request channel, in submitted batches.
    pub queue_capacity: usize,
    /// Most requests committed in one transaction.
    pub max_batch: usize,
    /// Time zone per site for the daily dimension roll-ups; UTC otherwise.
    pub site_timezones: HashMap<String, Tz>,
    /// Most engaged time the store gives a ping it times itself (one that
    /// came without a measurement, see [`crate::model::ENGAGED_SERVER_TIMED`]).
    pub max_engaged_ms: u32,
    /// Benchmarks only ([`DISCARD_EVENTS_ENV`]): answer every batch at once
    /// and store nothing, so a load test measures what the pipeline alone
    /// can take on this machine.
    pub discard_events: bool,
    /// Longest time committed roll-up changes wait in memory before they
    /// are folded into the tables (see `super::open_rollups`).
    pub rollup_fold_interval: Duration,
    /// Most committed events whose roll-up changes wait in memory: bounds
    /// what a start-up after a crash replays.
    pub rollup_fold_events: u64,
    /// Most roll-up rows (hours and dimension values of all sites) held in
    /// memory: past it they are folded early, which bounds the writer's
    /// memory for the open days.
    pub rollup_max_rows: usize,
}

/// Set to `1` to have the writer discard every event (benchmarks only:
/// the ceiling of ingest without a store). Honoured only when the service
/// listens on loopback only; ignored, with a warning, otherwise.
pub const DISCARD_EVENTS_ENV: &str = "SPARSAM_BENCH_DISCARD_EVENTS";

/// Whether [`DISCARD_EVENTS_ENV`] asks for discarding and may.
pub fn discard_events_from_env(listen_is_loopback: bool) -> bool {
    if std::env::var(DISCARD_EVENTS_ENV).as_deref() != Ok("1") {
        return false;
    }
    if !listen_is_loopback {
        tracing::warn!(
            "{DISCARD_EVENTS_ENV} is ignored: server.listen is not a loopback address only"
        );
        return false;
    }
    tracing::warn!(
        "{DISCARD_EVENTS_ENV}=1: events are counted and discarded, nothing is stored (benchmark)"
    );
    true
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            queue_capacity: 10_000,
            max_batch: 1024,
            site_timezones: HashMap::new(),
            max_engaged_ms: 86_400_000,
            discard_events: false,
            rollup_fold_interval: Duration::from_secs(1),
            rollup_fold_events: 50_000,
            rollup_max_rows: 200_000,
        }
    }
}

/// A batch waiting for the next commit.
struct Request {
    events: Vec<Event>,
    reply: oneshot::Sender<Ack>,
}

/// Starts the writer thread.
pub struct Writer;

impl Writer {
    /// Spawns the writer thread over `store`. Fails if the thread cannot
    /// be started.
    pub fn spawn(store: Arc<Store>, opts: WriterOptions) -> Result<WriterHandle, StoreError> {
        store.db()?;
        let (tx, rx) = mpsc::channel(opts.queue_capacity.max(1));
        // before anyone reads: reports after a crash equal those before
        let memory = recover(&store, &opts)?;
        let thread_store = store.clone();
        let join = std::thread::Builder::new()
            .name("sparsam-store-writer".into())
            .spawn(move || {
                let folding = Folding::default();
                run(thread_store, opts, rx, memory, folding)
            })
            .map_err(StoreError::Spawn)?;
        Ok(WriterHandle {
            tx: Mutex::new(Some(tx)),
            join: Mutex::new(Some(join)),
            store: Arc::downgrade(&store),
        })
    }
}

/// Handle to the writer thread. Share it (e.g. in an `Arc`); `submit` takes
/// `&self`. Dropping it without calling shutdown closes the channel too: the
/// thread still commits what is queued, but nobody waits for it.
pub struct WriterHandle {
    tx: Mutex<Option<mpsc::Sender<WriterCommand>>>,
    join: Mutex<Option<JoinHandle<()>>>,
    /// The store the thread writes, read from a snapshot on the caller's
    /// thread to find what maintenance should change. Weak: the handle
    /// outlives the thread, and must not keep the file open after it.
    store: Weak<Store>,
}

impl WriterHandle {
    /// Queues `events` for the next commit without waiting. The receiver
    /// resolves once they are durable (or the batch failed).
    pub fn submit(&self, events: Vec<Event>) -> Result<oneshot::Receiver<Ack>, SubmitError> {
        let guard = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = guard.as_ref().ok_or(SubmitError::Closed)?;
        let (reply, rx) = oneshot::channel();
        match tx.try_send(WriterCommand::Batch { events, reply }) {
            Ok(()) => {
                let depth = tx.max_capacity() - tx.capacity();
                metrics::gauge!("sparsam_store_queue_depth").set(depth as f64);
                Ok(rx)
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(SubmitError::QueueFull),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SubmitError::Closed),
        }
    }

    /// True while the thread runs and accepts work.
    pub fn is_running(&self) -> bool {
        let tx_open = self
            .tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|tx| !tx.is_closed());
        let alive = self
            .join
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|j| !j.is_finished());
        tx_open && alive
    }

    /// Submits and waits for the commit.
    pub async fn write(&self, events: Vec<Event>) -> Result<(), WriteError> {
        let rx = self.submit(events)?;
        rx.await.map_err(|_| WriteError::Lost)??;
        Ok(())
    }

    /// The store, while anyone still holds it.
    fn store(&self) -> Result<Arc<Store>, StoreError> {
        self.store.upgrade().ok_or(StoreError::WriterClosed)
    }

    /// Sends a maintenance command and waits for its answer. It waits for
    /// room in the queue rather than failing when ingest filled it. Blocks:
    /// call from a blocking thread, never from async code.
    fn maintain<T>(&self, command: impl FnOnce(Reply<T>) -> Maintenance) -> Result<T, StoreError> {
        let tx = self
            .tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(StoreError::WriterClosed)?;
        let (reply, answer) = oneshot::channel();
        tx.blocking_send(WriterCommand::Maintain(command(reply)))
            .map_err(|_| StoreError::WriterClosed)?;
        answer
            .blocking_recv()
            .map_err(|_| StoreError::WriterClosed)?
    }

    /// Deletes the raw events of UTC day `day`, a chunk of blocks per
    /// durable transaction with batches committed in between; roll-ups
    /// stay. Returns how many events were deleted.
    pub fn drop_day(&self, day: NaiveDate) -> Result<u64, StoreError> {
        self.maintain(|reply| Maintenance::DropDay {
            day,
            deleted: 0,
            reply,
        })
    }

    /// Deletes the events of UTC day `day` received before `cutoff_ms`.
    pub fn trim_day(&self, day: NaiveDate, cutoff_ms: i64) -> Result<u64, StoreError> {
        self.maintain(|reply| Maintenance::TrimDay {
            day,
            cutoff_ms,
            reply,
        })
    }

    /// Deletes the dictionary strings that no event received at or after
    /// `cutoff_ms` can use. Returns how many. The candidates are found in
    /// a snapshot on the calling thread; the writer deletes them
    /// [`STRINGS_PER_TXN`] per command, checking each again, with batches
    /// committed between two commands.
    pub fn expire_strings(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let candidates = self.store()?.string_expiry_candidates(cutoff_ms)?;
        let mut deleted = 0;
        for chunk in candidates.chunks(STRINGS_PER_TXN) {
            deleted += self.maintain(|reply| Maintenance::ExpireStringChunk {
                ids: chunk.to_vec(),
                cutoff_ms,
                reply,
            })?;
        }
        Ok(deleted)
    }

    /// Returns once the roll-up changes held in memory are in the tables,
    /// so that a snapshot taken next sees every roll-up row written so far
    /// (the free-text step looks for its days in one).
    pub fn fold_held(&self) -> Result<(), StoreError> {
        self.maintain(|reply| Maintenance::Fold { reply })
    }

    /// Deletes roll-up rows older than `cutoff_ms` and the roll-up values
    /// no remaining row uses.
    pub fn expire_rollups(&self, cutoff_ms: i64) -> Result<RollupExpiry, StoreError> {
        self.maintain(|reply| Maintenance::ExpireRollups { cutoff_ms, reply })
    }

    /// Takes the free text out of the roll-ups of local day `day` of
    /// `sites`, keeping per site the values in `keep`, and records
    /// `vetted` once the day is done. A dry run changes nothing.
    ///
    /// Each (site, free-text dimension) of the day is planned from a
    /// snapshot on the calling thread (values resolved, cuts worked out,
    /// see [`Store::plan_free_text_cut`]); the writer gets ids for new cut
    /// values ([`DIM_VALUES_PER_TXN`] per command) and then one command per
    /// plan that checks the rows are unchanged and writes them. A plan
    /// whose rows changed meanwhile (an import into that day) is made again.
    pub fn expire_free_text(
        &self,
        day: DayNumber,
        sites: BTreeSet<String>,
        keep: HashMap<String, HashSet<String>>,
        vetted: Option<FreeTextVetted>,
        dry_run: bool,
    ) -> Result<FreeTextExpiry, StoreError> {
        let kept = |site: &str, value: &str| keep.get(site).is_some_and(|v| v.contains(value));
        let mut out = FreeTextExpiry::default();
        for site in &sites {
            for dim in FREE_TEXT_DIMS {
                let mut attempts = 0;
                while let Some(plan) = self.store()?.plan_free_text_cut(site, dim, day, &kept)? {
                    let (expired, rows_kept) = (plan.expired, plan.kept);
                    if dry_run || expired == 0 || self.apply_free_text_cut(plan)? {
                        out.rows_expired += expired;
                        out.rows_kept += rows_kept;
                        if expired > 0 {
                            *out.by_dimension.entry(dim).or_default() += expired;
                        }
                        break;
                    }
                    attempts += 1;
                    if attempts >= FREE_TEXT_ATTEMPTS {
                        return Err(StoreError::Invariant(
                            "the roll-ups of a day kept changing while its free text was cut",
                        ));
                    }
                }
            }
        }
        if let (Some(v), false) = (vetted, dry_run) {
            self.set_free_text_vetted(v)?;
        }
        Ok(out)
    }

    /// Gives the plan's new cut values ids, a few hundred per command, and
    /// has the writer apply it. False when its rows changed meanwhile.
    fn apply_free_text_cut(&self, plan: FreeTextCutPlan) -> Result<bool, StoreError> {
        let values: Vec<String> = plan
            .new_values()
            .map(str::to_owned)
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect();
        let mut new_ids: HashMap<String, DimValueId> = HashMap::with_capacity(values.len());
        for chunk in values.chunks(DIM_VALUES_PER_TXN) {
            let ids = self.maintain(|reply| Maintenance::InternRollupValues {
                values: chunk.to_vec(),
                reply,
            })?;
            new_ids.extend(chunk.iter().cloned().zip(ids));
        }
        self.maintain(|reply| Maintenance::ApplyFreeTextCut {
            plan: Box::new(plan),
            new_ids,
            vetted: None,
            reply,
        })
    }

    /// Records how far free text in the roll-ups was vetted.
    pub fn set_free_text_vetted(&self, vetted: FreeTextVetted) -> Result<(), StoreError> {
        self.maintain(|reply| Maintenance::SetFreeTextVetted { vetted, reply })
    }

    /// Deletes the roll-up values no roll-up row uses. Returns how many.
    /// The writer notes which values batches use while the unused ones
    /// are found in a snapshot on the calling thread; it then deletes
    /// them [`DIM_VALUES_PER_TXN`] per command, except those used since.
    pub fn delete_unused_rollup_values(&self) -> Result<u64, StoreError> {
        self.maintain(|reply| Maintenance::TrackRollupValues { on: true, reply })?;
        let deleted = (|| -> Result<u64, StoreError> {
            let unused = self.store()?.unused_dim_values()?;
            let mut deleted = 0;
            for chunk in unused.chunks(DIM_VALUES_PER_TXN) {
                deleted += self.maintain(|reply| Maintenance::DeleteRollupValues {
                    values: chunk.to_vec(),
                    reply,
                })?;
            }
            Ok(deleted)
        })();
        let stopped = self.maintain(|reply| Maintenance::TrackRollupValues { on: false, reply });
        let deleted = deleted?;
        stopped?;
        Ok(deleted)
    }

    /// Rewrites `store` (the one this writer writes) into a fresh file with
    /// live data only. The copy runs on the calling thread from a snapshot
    /// while this writer keeps committing batches; only the catch-up with
    /// what changed meanwhile and the file swap run on the writer thread,
    /// with the store held exclusively (see `super::vacuum`).
    pub fn vacuum(&self, store: &Store) -> Result<VacuumReport, StoreError> {
        let copy = Box::new(store.vacuum_copy()?);
        self.maintain(|reply| Maintenance::VacuumSwap { copy, reply })
    }

    /// Closes the channel, waits (without blocking the async runtime) for
    /// the thread to commit everything already queued, and joins it.
    /// Later submits return [`SubmitError::Closed`]. Idempotent.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        let join = self.close();
        match join {
            Some(j) => tokio::task::spawn_blocking(move || j.join())
                .await
                .map_err(|_| StoreError::WriterPanicked)?
                .map_err(|_| StoreError::WriterPanicked),
            None => Ok(()),
        }
    }

    /// Like [`shutdown`](Self::shutdown), blocking the calling thread; for
    /// use outside an async runtime (CLI, tests, benches).
    pub fn shutdown_blocking(&self) -> Result<(), StoreError> {
        match self.close() {
            Some(j) => j.join().map_err(|_| StoreError::WriterPanicked),
            None => Ok(()),
        }
    }

    fn close(&self) -> Option<JoinHandle<()>> {
        drop(
            self.tx
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        self.join
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// Error of [`WriterHandle::write`].
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Submit(#[from] SubmitError),
    #[error(transparent)]
    Store(#[from] StorageError),
    /// The writer went away without answering (it panicked).
    #[error("store writer stopped without answering")]
    Lost,
}

/// Replays the roll-up changes that a crashed process held in memory (the
/// events committed after the last fold) into the tables, and returns the
/// writer's memory to start with. A failure refuses the start: folding
/// later would move the watermarks past what the replay missed.
fn recover(store: &Store, opts: &WriterOptions) -> Result<WriterState, StoreError> {
    let mut memory = WriterState::default();
    let started = Instant::now();
    let n = memory.recover(store, opts).inspect_err(|e| {
        tracing::error!(error = %e, "could not replay the roll-ups of the events committed after the last fold");
    })?;
    if n > 0 {
        tracing::info!(
            events = n,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "roll-ups of the events committed after the last fold replayed"
        );
    }
    memory.reset();
    Ok(memory)
}

/// Where the folding of held roll-ups stands.
#[derive(Default)]
struct Folding {
    /// When the oldest roll-up change held in memory was committed.
    unfolded_since: Option<Instant>,
    /// After a failed fold (a full disk, say), no attempt before this
    /// moment, and whether that failure came from the disk. A due fold is
    /// otherwise tried again at once, and each failure reopens the store:
    /// the writer would spin on a disk that stays full.
    retry_after_failure: Option<(Instant, bool)>,
}

impl Folding {
    /// When the writer has to wake up for the next fold, if anything is
    /// held: the fold interval after the oldest held change, and not
    /// before the retry after a failure.
    fn due(&self, interval: Duration) -> Option<Instant> {
        let since = self.unfolded_since?;
        let due = since + interval;
        Some(match self.retry_after_failure {
            Some((retry, _)) => due.max(retry),
            None => due,
        })
    }
}

/// Least time between two attempts to fold after one failed.
const FOLD_RETRY: Duration = Duration::from_secs(1);

fn run(
    store: Arc<Store>,
    opts: WriterOptions,
    mut rx: mpsc::Receiver<WriterCommand>,
    mut memory: WriterState,
    mut folding: Folding,
) {
    let max_batch = opts.max_batch.max(1);
    let mut received: Vec<WriterCommand> = Vec::with_capacity(max_batch.min(4096));
    let mut buf: Vec<Request> = Vec::with_capacity(max_batch.min(4096));
    // Maintenance in progress, oldest first; the front one runs a step
    // after each round of batches.
    let mut maintenance: VecDeque<Maintenance> = VecDeque::new();
    // Waits for requests at most until the held roll-ups are due.
    let timer = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| tracing::warn!(error = %e, "no timer for the writer: roll-ups are folded as batches come"))
        .ok();
    // Rebuild today's and yesterday's state before the first request.
    let preloaded = store
        .snapshot()
        .and_then(|snap| memory.preload(&snap, &opts, chrono::Utc::now().timestamp_millis()));
    if let Err(e) = preloaded {
        tracing::warn!(error = %e, "could not rebuild the writer's state ahead; it is rebuilt on demand");
        memory.reset();
    }
    // Seal once soon after start-up (days may have closed while down).
    let mut last_seal = Instant::now()
        .checked_sub(SEAL_EVERY)
        .unwrap_or_else(Instant::now);
    let mut closed = false;
    loop {
        if maintenance.is_empty()
            && last_seal.elapsed() >= SEAL_EVERY
            // sealing reads the roll-up rows: they must all be there
            && fold(&store, &mut folding, &mut memory).is_ok()
        {
            // idle: seal until done or requests come; busy (a bulk load):
            // one chunk between batches, so the open rows stay few
            let done = if rx.is_empty() {
                seal(&store, &opts, || !rx.is_empty(), usize::MAX)
            } else {
                seal(&store, &opts, || false, 1)
            };
            if done {
                last_seal = Instant::now();
            }
        }
        if maintenance.is_empty() && !closed {
            // nothing in progress: wait for work, or until held roll-ups
            // are due
            match (folding.due(opts.rollup_fold_interval), &timer) {
                (Some(due), Some(timer)) => {
                    let left = due.saturating_duration_since(Instant::now());
                    let got = timer.block_on(async {
                        tokio::time::timeout(left, rx.recv_many(&mut received, max_batch)).await
                    });
                    match got {
                        Ok(n) => closed = n == 0,
                        Err(_) => {
                            let _ = fold(&store, &mut folding, &mut memory);
                        }
                    }
                }
                _ => closed = rx.blocking_recv_many(&mut received, max_batch) == 0,
            }
        } else {
            // a maintenance step is due: take only what is already queued
            while received.len() < max_batch {
                match rx.try_recv() {
                    Ok(command) => received.push(command),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
        }
        for command in received.drain(..) {
            match command {
                WriterCommand::Batch { events, reply } => buf.push(Request { events, reply }),
                WriterCommand::Maintain(m) => maintenance.push_back(m),
            }
        }
        metrics::gauge!("sparsam_store_queue_depth").set(rx.len() as f64);
        if !buf.is_empty() && commit_batch(&store, &opts, &mut buf, &mut memory) {
            let since = *folding.unfolded_since.get_or_insert_with(Instant::now);
            let (events, rows) = store.open_rollups.pending();
            if events >= opts.rollup_fold_events
                || rows >= opts.rollup_max_rows
                || since.elapsed() >= opts.rollup_fold_interval
            {
                let _ = fold(&store, &mut folding, &mut memory);
            }
        }
        if let Some(next) = maintenance.pop_front() {
            // every step sees (and may change) the roll-up rows and the
            // watermarks as if each batch had written its own
            if let Err(e) = fold(&store, &mut folding, &mut memory) {
                next.refuse(e);
                continue;
            }
            let kind = next.kind();
            let started = Instant::now();
            let unfinished = next.step(&store, &mut memory);
            let held = started.elapsed();
            metrics::histogram!("sparsam_store_maintenance_step_seconds", "kind" => kind)
                .record(held.as_secs_f64());
            tracing::debug!(
                kind,
                held_us = held.as_micros() as u64,
                "store maintenance step"
            );
            if let Some(unfinished) = unfinished {
                maintenance.push_front(unfinished);
            }
        }
        if closed && maintenance.is_empty() {
            // closed and drained: fold (one last attempt even right after
            // a failure; what stays held is replayed at the next start),
            // and leave closed days sealed for the next start
            folding.retry_after_failure = None;
            if fold(&store, &mut folding, &mut memory).is_ok() {
                seal(&store, &opts, || false, usize::MAX);
            }
            break;
        }
    }
}

/// Folds the roll-up changes held in memory into the tables (see
/// `super::open_rollups`). On failure (logged) they stay held for the
/// next attempt, at least [`FOLD_RETRY`] later; until then this fails at
/// once, with [`StoreError::Unavailable`] when the failure was the disk's
/// (a maintenance step refused with it answers "retry later").
fn fold(store: &Store, folding: &mut Folding, memory: &mut WriterState) -> Result<(), StoreError> {
    if store.open_rollups.is_empty() && !memory.has_unindexed() {
        folding.unfolded_since = None;
        folding.retry_after_failure = None;
        return Ok(());
    }
    if let Some((retry, disk)) = folding.retry_after_failure {
        if Instant::now() < retry {
            return Err(if disk {
                StoreError::Unavailable
            } else {
                StoreError::Invariant("held roll-ups could not be folded (see the log)")
            });
        }
    }
    let started = Instant::now();
    let folded = store.db().and_then(|db| {
        store
            .open_rollups
            .fold(&db, |txn| super::dict::index_new_entries(txn).map(drop))
    });
    match folded {
        Ok(events) => {
            memory.indexed();
            tracing::debug!(
                events,
                held_us = started.elapsed().as_micros() as u64,
                "roll-ups folded"
            );
            folding.unfolded_since = None;
            folding.retry_after_failure = None;
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, "folding the held roll-ups failed; will retry");
            folding.retry_after_failure = Some((Instant::now() + FOLD_RETRY, e.is_io()));
            super::reopen::after_failed_write(store, &e);
            Err(e)
        }
    }
}

/// Writes the requests in `buf` in one transaction and answers each.
/// True when they were committed (and their roll-up changes are held).
fn commit_batch(
    store: &Store,
    opts: &WriterOptions,
    buf: &mut Vec<Request>,
    memory: &mut WriterState,
) -> bool {
    let started = Instant::now();
    let n_events: usize = buf.iter().map(|r| r.events.len()).sum();
    if opts.discard_events {
        metrics::counter!("sparsam_store_discarded_events_total").increment(n_events as u64);
        for r in buf.drain(..) {
            let _ = r.reply.send(Ok(()));
        }
        return false;
    }
    let result = write_batch(store, opts, buf, memory);
    metrics::histogram!("sparsam_store_commit_seconds").record(started.elapsed().as_secs_f64());
    match result {
        Ok(rollups) => {
            // held before anyone hears of the commit, so a report asked
            // for after the answer counts these events
            store
                .open_rollups
                .add(rollups.delta, rollups.counts, n_events as u64);
            metrics::counter!("sparsam_store_batches_total").increment(1);
            metrics::counter!("sparsam_store_events_total").increment(n_events as u64);
            for r in buf.drain(..) {
                let _ = r.reply.send(Ok(()));
            }
            true
        }
        Err(e) => {
            tracing::error!(error = %e, requests = buf.len(), "store batch failed");
            // memory may hold parts of the failed batch: start over
            memory.reset();
            let e = Arc::new(e);
            let answer = StorageError::from(StoreError::Batch(e.clone()));
            for r in buf.drain(..) {
                let _ = r.reply.send(Err(answer.clone()));
            }
            super::reopen::after_failed_write(store, &e);
            false
        }
    }
}

/// Seals closed days of the dimension roll-ups, a chunk at a time, until
/// done, `interrupted()` says requests are waiting, or `max_chunks` ran.
/// True when done.
fn seal(
    store: &Store,
    opts: &WriterOptions,
    interrupted: impl Fn() -> bool,
    max_chunks: usize,
) -> bool {
    let now = chrono::Utc::now().timestamp_millis();
    let today = |site: &str| {
        let tz = opts.site_timezones.get(site).copied().unwrap_or(Tz::UTC);
        local_day(tz, now)
    };
    for _ in 0..max_chunks {
        if interrupted() {
            return false;
        }
        let db = match store.db() {
            Ok(db) => db,
            Err(_) => return false,
        };
        match super::seal::seal_closed_days(&db, &today, SEAL_ROWS) {
            Ok(n) if n >= SEAL_ROWS => continue,
            Ok(_) => return true,
            Err(e) => {
                tracing::warn!(error = %e, "sealing closed roll-up days failed; will retry");
                return false;
            }
        }
    }
    false
}

/// Writes all requests of one batch in one transaction and commits it.
/// On error the transaction is dropped, which aborts it.
fn write_batch(
    store: &Store,
    opts: &WriterOptions,
    batch: &[Request],
    state: &mut WriterState,
) -> Result<BatchRollups, StoreError> {
    // Every write happens on this thread, so the handle cannot be replaced
    // while the batch runs (only this thread reopens or vacuums).
    let db = store.db()?;
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    let events: Vec<&Event> = batch.iter().flat_map(|r| r.events.iter()).collect();
    let rollups = state.apply_batch(&txn, events, opts)?;
    txn.commit()?;
    Ok(rollups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{test_event, StoreOptions};

    #[test]
    fn full_queue_is_reported_while_writer_is_blocked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path().join("db"), &StoreOptions::default()).unwrap());
        let cap = 2;
        // spawned first: its start-up (the replay of unfolded roll-ups)
        // writes before the thread starts
        let handle = Writer::spawn(
            store.clone(),
            WriterOptions {
                queue_capacity: cap,
                max_batch: 1024,
                ..Default::default()
            },
        )
        .unwrap();
        // Hold the write lock so the writer blocks in begin_write.
        let blocker = store.db().unwrap().begin_write().unwrap();
        // The writer can take at most one receive round (≤ cap requests)
        // before it blocks, and the queue holds cap more.
        let mut accepted = Vec::new();
        let mut full = 0;
        for i in 0..(2 * cap + 1) {
            match handle.submit(vec![test_event("s", 1_000 + i as i64, 1)]) {
                Ok(rx) => accepted.push(rx),
                Err(SubmitError::QueueFull) => full += 1,
                Err(SubmitError::Closed) => panic!("closed"),
            }
        }
        assert!(full >= 1, "no QueueFull with a blocked writer");
        assert!(accepted.len() >= cap);
        drop(blocker); // aborts; the writer proceeds
        let n_accepted = accepted.len() as u64;
        for rx in accepted {
            rx.blocking_recv().unwrap().unwrap();
        }
        handle.shutdown_blocking().unwrap();
        assert_eq!(store.event_count().unwrap(), n_accepted);
        assert!(matches!(
            handle.submit(vec![]).unwrap_err(),
            SubmitError::Closed
        ));
    }

    /// Unused roll-up values are found in a snapshot off the writer
    /// thread and deleted later: a value a batch puts into a row in
    /// between must stay, or the row would point at nothing.
    #[test]
    fn unused_rollup_values_used_since_the_snapshot_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path().join("db"), &StoreOptions::default()).unwrap());
        let w = Writer::spawn(store.clone(), WriterOptions::default()).unwrap();
        let later = "https://example.org/later".to_owned();
        let unused = "https://example.org/unused".to_owned();
        w.maintain(|reply| Maintenance::InternRollupValues {
            values: vec![later.clone(), unused.clone()],
            reply,
        })
        .unwrap();
        w.maintain(|reply| Maintenance::TrackRollupValues { on: true, reply })
            .unwrap();
        let found = store.unused_dim_values().unwrap();
        let names: Vec<&str> = found.iter().map(|(_, v)| v.as_str()).collect();
        assert!(names.contains(&later.as_str()) && names.contains(&unused.as_str()));
        // a batch uses one of them after the snapshot
        let now = chrono::Utc::now().timestamp_millis();
        let mut e = test_event("s", now, 1);
        e.url = later.clone();
        w.submit(vec![e]).unwrap().blocking_recv().unwrap().unwrap();
        let deleted = w
            .maintain(|reply| Maintenance::DeleteRollupValues {
                values: found.clone(),
                reply,
            })
            .unwrap();
        w.maintain(|reply| Maintenance::TrackRollupValues { on: false, reply })
            .unwrap();
        assert_eq!(
            deleted,
            found.len() as u64 - 1,
            "all but the one used since"
        );
        let left: Vec<String> = store
            .unused_dim_values()
            .unwrap()
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert!(!left.contains(&unused));
        // the row of the batch still resolves
        let today = crate::store::schema::utc_day(now);
        let ranked = store
            .ranked("s", crate::store::Dimension::Page, today, today, 10, 0)
            .unwrap();
        assert!(format!("{ranked:?}").contains("/later"), "{ranked:?}");
        w.shutdown_blocking().unwrap();
    }

    /// The bench-only discarding mode is refused unless the service
    /// listens on loopback only, and off unless asked for.
    #[test]
    fn discarding_events_needs_the_variable_and_loopback() {
        assert!(!discard_events_from_env(true), "off unless asked for");
        std::env::set_var(DISCARD_EVENTS_ENV, "1");
        let public = discard_events_from_env(false);
        let loopback = discard_events_from_env(true);
        std::env::remove_var(DISCARD_EVENTS_ENV);
        assert!(!public, "refused on a public address");
        assert!(loopback);
    }

    #[test]
    fn events_with_equal_times_are_all_kept_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        for _ in 0..2 {
            let store = Arc::new(Store::open(&path, &StoreOptions::default()).unwrap());
            let h = Writer::spawn(store.clone(), WriterOptions::default()).unwrap();
            // same site and millisecond both times: only seq keeps them apart
            let rx = h
                .submit(vec![test_event("s", 5_000, 1), test_event("s", 5_000, 2)])
                .unwrap();
            rx.blocking_recv().unwrap().unwrap();
            h.shutdown_blocking().unwrap();
        }
        let store = Store::open(&path, &StoreOptions::default()).unwrap();
        assert_eq!(store.event_count().unwrap(), 4);
    }
}
