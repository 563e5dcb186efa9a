//! The write path: a batcher thread gathers submitted events for up to
//! `clickhouse.flush_ms` or `clickhouse.batch_rows` events, cuts them into
//! one batch per UTC day, writes the batches into the fsynced spool and
//! only then acknowledges; a sender thread inserts spooled batches into
//! ClickHouse in order and deletes each once ClickHouse confirmed it.
//! While ClickHouse is unreachable ingest goes on into the spool (bounded
//! by `clickhouse.spool_max_mb`), with a metric and a log line saying how
//! much waits.
//!
//! Retries never count twice, distinct events are never merged:
//! - every batch gets a random 64-bit insert id when it is made, written
//!   into each of its rows and into its spool file name. A retry sends the
//!   very same bytes, so the block each shard receives is identical to the
//!   first attempt's and a replicated table drops it as a duplicate
//!   (deduplication window raised to 10 000 blocks in `schema.rs`); two
//!   different batches differ in their ids, so even two batches of
//!   identical events are never taken for one (which is why deduplication
//!   stays on rather than being switched off with `insert_deduplicate`);
//! - one batch holds one UTC day, so on one server it is one part,
//!   written whole or not at all; a plain MergeTree (which does not
//!   deduplicate on 18.16) is asked before a retry whether the batch's
//!   rows are already there (`count()` of its insert id): all of them,
//!   and the batch is done; none, and it is sent.
//! - on a cluster, inserts are synchronous (`insert_distributed_sync`): the
//!   answer comes once every shard wrote its part, not when the receiving
//!   server queued it in its own local folder.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use tokio::sync::oneshot;

use super::http::{Client, HttpError};
use super::rows::{push_row, utc_day};
use super::schema::Layout;
use super::spool::{Spool, SpoolError, SpooledBatch};
use crate::model::Event;
use crate::storage::{PendingAck, StorageError};

/// Batching settings.
#[derive(Clone, Debug)]
pub struct WriterSettings {
    pub batch_rows: usize,
    pub flush: Duration,
    pub queue_capacity: usize,
}

type Ack = oneshot::Sender<Result<(), StorageError>>;

enum Message {
    Events(Vec<Event>, Ack),
    /// Spool what is gathered now, then answer.
    Flush(mpsc::Sender<()>),
}

/// Wakes the sender when a batch was spooled or on shutdown.
#[derive(Default)]
struct Signal {
    spooled: Mutex<u64>,
    changed: Condvar,
}

impl Signal {
    fn notify(&self) {
        *self.spooled.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.changed.notify_all();
    }

    /// Waits up to `timeout` for a notification after `seen`.
    fn wait(&self, seen: u64, timeout: Duration) -> u64 {
        let guard = self.spooled.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, timeout, |n| *n == seen)
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }

    fn current(&self) -> u64 {
        *self.spooled.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running writer.
pub struct Writer {
    tx: Mutex<Option<SyncSender<Message>>>,
    running: Arc<AtomicBool>,
    signal: Arc<Signal>,
    spool: Arc<Spool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Writer {
    pub fn spawn(
        client: Arc<Client>,
        layout: Layout,
        spool: Arc<Spool>,
        settings: WriterSettings,
    ) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::sync_channel(settings.queue_capacity.max(1));
        let running = Arc::new(AtomicBool::new(true));
        let signal = Arc::new(Signal::default());
        report_backlog(&spool);
        let batcher = {
            let (spool, signal) = (spool.clone(), signal.clone());
            std::thread::Builder::new()
                .name("clickhouse-batcher".into())
                .spawn(move || batch_loop(rx, &spool, &signal, &settings))?
        };
        let sender = {
            let (spool, signal, running) = (spool.clone(), signal.clone(), running.clone());
            std::thread::Builder::new()
                .name("clickhouse-sender".into())
                .spawn(move || send_loop(&client, &layout, &spool, &signal, &running))?
        };
        Ok(Writer {
            tx: Mutex::new(Some(tx)),
            running,
            signal,
            spool,
            threads: Mutex::new(vec![batcher, sender]),
        })
    }

    pub fn submit(&self, events: Vec<Event>) -> Result<PendingAck, StorageError> {
        let (ack, pending) = oneshot::channel();
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let tx = tx.as_ref().ok_or(StorageError::Closed)?;
        match tx.try_send(Message::Events(events, ack)) {
            Ok(()) => Ok(pending),
            Err(TrySendError::Full(_)) => Err(StorageError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(StorageError::Closed),
        }
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
            && self.tx.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Spools what is gathered now (tests and shutdown).
    pub fn flush(&self) -> Result<(), StorageError> {
        let (done, wait) = mpsc::channel();
        {
            let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
            let tx = tx.as_ref().ok_or(StorageError::Closed)?;
            tx.send(Message::Flush(done))
                .map_err(|_| StorageError::Closed)?;
        }
        wait.recv().map_err(|_| StorageError::Closed)
    }

    /// Batches and bytes in the spool, not yet confirmed by ClickHouse.
    pub fn backlog(&self) -> (u64, u64) {
        self.spool.backlog()
    }

    /// Stops taking events, spools what was accepted, makes one last
    /// attempt to send the spool and stops. What ClickHouse did not take
    /// stays spooled for the next start. Idempotent.
    pub fn shutdown(&self) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let threads: Vec<_> =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        if threads.is_empty() {
            return;
        }
        drop(tx);
        let mut threads = threads.into_iter();
        if let Some(batcher) = threads.next() {
            let _ = batcher.join();
        }
        self.running.store(false, Ordering::Relaxed);
        self.signal.notify();
        for t in threads {
            let _ = t.join();
        }
        let (batches, bytes) = self.spool.backlog();
        if batches > 0 {
            tracing::warn!(
                batches,
                bytes,
                "ClickHouse spool holds batches at shutdown; they are sent at the next start"
            );
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn report_backlog(spool: &Spool) {
    let (batches, bytes) = spool.backlog();
    metrics::gauge!("sparsam_clickhouse_spool_batches").set(batches as f64);
    metrics::gauge!("sparsam_clickhouse_spool_bytes").set(bytes as f64);
}

/// A random insert id (never 0, so an id is always set).
/// Reserves `n` numbers of the collector's receipt sequence: rows of one
/// receipt millisecond are read back in this order, the order the
/// embedded store's writer would have taken them in. It starts from the
/// system clock in microseconds, so a restarted collector goes on above
/// the numbers it gave before.
fn next_seqs(n: u64) -> u64 {
    use std::sync::atomic::AtomicU64;
    use std::sync::OnceLock;
    static NEXT: OnceLock<AtomicU64> = OnceLock::new();
    NEXT.get_or_init(|| {
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        AtomicU64::new(u64::try_from(micros).unwrap_or(0))
    })
    .fetch_add(n, Ordering::Relaxed)
}

fn batch_id() -> Result<u64, String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for an insert id: {e}"))?;
    Ok(u64::from_le_bytes(bytes).max(1))
}

fn batch_loop(
    rx: mpsc::Receiver<Message>,
    spool: &Spool,
    signal: &Signal,
    settings: &WriterSettings,
) {
    let mut events: Vec<Event> = Vec::new();
    let mut acks: Vec<Ack> = Vec::new();
    let mut deadline: Option<Instant> = None;
    loop {
        let message = match deadline {
            Some(d) => rx.recv_timeout(d.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let (flush_now, waiter, stop) = match message {
            Ok(Message::Events(mut batch, ack)) => {
                deadline.get_or_insert_with(|| Instant::now() + settings.flush);
                events.append(&mut batch);
                acks.push(ack);
                (events.len() >= settings.batch_rows, None, false)
            }
            Ok(Message::Flush(done)) => (true, Some(done), false),
            Err(RecvTimeoutError::Timeout) => (true, None, false),
            Err(RecvTimeoutError::Disconnected) => (true, None, true),
        };
        if flush_now && !acks.is_empty() {
            // what an acknowledgement waits for, beside the flush interval
            let started = Instant::now();
            let n = events.len();
            let outcome = spool_events(std::mem::take(&mut events), spool, settings.batch_rows);
            metrics::histogram!("sparsam_clickhouse_spool_seconds")
                .record(started.elapsed().as_secs_f64());
            metrics::counter!("sparsam_clickhouse_spooled_events_total").increment(n as u64);
            report_backlog(spool);
            if outcome.is_ok() {
                signal.notify();
            }
            for ack in acks.drain(..) {
                let _ = ack.send(outcome.clone());
            }
            deadline = None;
        }
        if let Some(done) = waiter {
            let _ = done.send(());
        }
        if stop {
            return;
        }
    }
}

/// Cuts `events` into batches of one UTC day and at most `batch_rows`
/// events and spools them all, or none: on a failure, what was already
/// spooled of them is taken out again, so an answer of "not stored" is
/// true and a client's retry cannot count twice.
fn spool_events(
    mut events: Vec<Event>,
    spool: &Spool,
    batch_rows: usize,
) -> Result<(), StorageError> {
    // numbered in the order received, before they are cut by day
    let first_seq = next_seqs(events.len() as u64);
    let mut events: Vec<(u64, Event)> = (first_seq..).zip(events.drain(..)).collect();
    events.sort_by_key(|(_, e)| utc_day(e.ts_ms));
    let mut bodies: Vec<(u64, NaiveDate, u64, Vec<u8>)> = Vec::new();
    for day_events in events.chunk_by(|(_, a), (_, b)| utc_day(a.ts_ms) == utc_day(b.ts_ms)) {
        for chunk in day_events.chunks(batch_rows.max(1)) {
            let id = batch_id().map_err(StorageError::Internal)?;
            let mut body = Vec::with_capacity(chunk.len() * 400);
            for (seq, event) in chunk {
                push_row(&mut body, event, id, *seq);
            }
            bodies.push((id, utc_day(chunk[0].1.ts_ms), chunk.len() as u64, body));
        }
    }
    let total: u64 = bodies.iter().map(|b| b.3.len() as u64).sum();
    let mut written = Vec::new();
    let result = spool.has_room(total).and_then(|()| {
        for (id, day, rows, body) in &bodies {
            written.push(spool.put(*id, *day, *rows, body)?);
        }
        Ok(())
    });
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            for batch in &written {
                let _ = spool.remove(batch);
            }
            tracing::error!(error = %e, "events not accepted: the ClickHouse spool cannot take them");
            Err(match e {
                SpoolError::Full { .. } => StorageError::Unavailable(e.to_string()),
                SpoolError::Io { .. } => StorageError::Unavailable(e.to_string()),
            })
        }
    }
}

/// Inserts spooled batches in order until shutdown.
fn send_loop(
    client: &Client,
    layout: &Layout,
    spool: &Spool,
    signal: &Signal,
    running: &AtomicBool,
) {
    // Batches found at start may have reached ClickHouse before a crash.
    let mut uncertain: std::collections::HashSet<u64> = match spool.pending() {
        Ok(held) => held.iter().map(|b| b.id).collect(),
        Err(_) => Default::default(),
    };
    let mut backoff = Duration::from_millis(100);
    let mut failing_since: Option<Instant> = None;
    let mut last_warning: Option<Instant> = None;
    loop {
        let seen = signal.current();
        let stopping = !running.load(Ordering::Relaxed);
        let held = match spool.pending() {
            Ok(held) => held,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the ClickHouse spool");
                Vec::new()
            }
        };
        let mut failed = false;
        for batch in &held {
            let started = Instant::now();
            let sent = send_batch(client, layout, spool, batch, uncertain.contains(&batch.id));
            metrics::histogram!("sparsam_clickhouse_insert_seconds")
                .record(started.elapsed().as_secs_f64());
            match sent {
                Ok(()) => {
                    uncertain.remove(&batch.id);
                    if let Err(e) = spool.remove(batch) {
                        tracing::error!(error = %e, "cannot delete a confirmed batch from the ClickHouse spool");
                    }
                    metrics::counter!("sparsam_clickhouse_rows_inserted_total")
                        .increment(batch.rows);
                    report_backlog(spool);
                }
                Err(e) => {
                    // the outcome of a failed insert is unknown: the next
                    // attempt asks first (or relies on deduplication)
                    uncertain.insert(batch.id);
                    metrics::counter!("sparsam_clickhouse_insert_failures_total").increment(1);
                    let (batches, bytes) = spool.backlog();
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
                        tracing::warn!(
                            error = %e,
                            waiting_batches = batches,
                            waiting_bytes = bytes,
                            failing_secs = since.elapsed().as_secs(),
                            "ClickHouse does not take inserts; events wait in the local spool"
                        );
                        last_warning = Some(Instant::now());
                    }
                    failed = true;
                    break;
                }
            }
        }
        if !failed {
            if failing_since.take().is_some() {
                tracing::info!("ClickHouse takes inserts again; the spool is sent");
                last_warning = None;
            }
            backoff = Duration::from_millis(100);
        }
        if stopping {
            // one last pass was made at shutdown
            return;
        }
        if failed {
            // woken early by new batches or shutdown
            signal.wait(seen, backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        } else {
            signal.wait(seen, Duration::from_secs(1));
        }
    }
}

/// Inserts one batch; `uncertain`: an earlier attempt may have landed.
fn send_batch(
    client: &Client,
    layout: &Layout,
    spool: &Spool,
    batch: &SpooledBatch,
    uncertain: bool,
) -> Result<(), String> {
    let events = layout.table("events");
    if uncertain {
        let answer = client
            .query(
                &format!(
                    "SELECT count() FROM {events} WHERE day = '{}' AND batch = {}",
                    batch.day.format("%Y-%m-%d"),
                    batch.id
                ),
                &[],
            )
            .map_err(|e| e.to_string())?;
        if answer.trim().parse::<u64>().ok() == Some(batch.rows) {
            tracing::debug!(batch = batch.id, "spooled batch was already stored");
            return Ok(());
        }
    }
    let body = spool.read(batch).map_err(|e| e.to_string())?;
    let params: &[(&str, &str)] = if layout.is_cluster() {
        &[("insert_distributed_sync", "1")]
    } else {
        &[]
    };
    match client.execute(
        &format!("INSERT INTO {events} FORMAT JSONEachRow"),
        body,
        params,
    ) {
        Ok(_) => Ok(()),
        Err(e @ HttpError::Refused { .. }) if !e.is_transient() => {
            tracing::error!(error = %e, batch = batch.id, "ClickHouse refuses a spooled batch; it stays in the spool");
            Err(e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}
