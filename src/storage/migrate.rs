//! `sparsam migrate --to clickhouse`: copies the embedded store's raw
//! events and its audit log into the configured ClickHouse database, so a
//! site that outgrows one machine keeps its history when it moves.
//!
//! The copy goes one UTC day (the partition of both engines) at a time and
//! is resumable: a progress file beside the store records each day as
//! *started* before the first row is sent and as *finished* once
//! ClickHouse holds exactly as many events of that day as the embedded
//! store. A later run skips finished days, drops and copies again a day it
//! started but did not finish (its own partial copy), and refuses to touch
//! a day that ClickHouse holds events of without having started it here
//! (collectors already writing into it: their events must not be dropped).
//! At the end every day is counted on both sides.
//!
//! Rows are written through the same write path as a collector's (the
//! spooled writer, one unique insert id per batch), and a day counts as
//! copied only when ClickHouse has confirmed every batch, not when the
//! spool has it. Addresses travel as stored: already truncated, and
//! truncated again to their own prefix on the way, so a stored value can
//! never carry host bits further.
//!
//! What is not copied: roll-ups of days whose raw events have already
//! expired (ClickHouse answers every report from raw events) and the
//! embedded store's daily salt (the events carry their visitor hashes).

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions as FileOptions};
use std::io::{BufRead, BufReader, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::model::Event;
use crate::storage::clickhouse::{self, ClickHouseStorage};
use crate::storage::redb::RedbStorage;
use crate::storage::{Storage, StorageError};
use crate::store::{StoreError, StoredEvent};

/// Events sent to the writer at a time.
const CHUNK_EVENTS: usize = 10_000;

/// How long to wait for ClickHouse to confirm what the writer holds before
/// giving up on this run (a later run resumes).
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(600);

/// Why a migration could not run or had to stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    #[error(
        "the store {0} is open in a running sparsam server; stop it first, \
         the copy reads the store file directly"
    )]
    InUse(String),
    #[error("embedded store: {0}")]
    Source(#[from] StoreError),
    #[error("ClickHouse: {0}")]
    Target(#[from] clickhouse::OpenError),
    #[error("store: {0}")]
    Storage(#[from] StorageError),
    #[error("progress file {0}: {1}")]
    Progress(PathBuf, std::io::Error),
    #[error(
        "ClickHouse has not confirmed {batches} batches ({bytes} bytes) after {secs} s; \
         they stay in the spool, run the command again to resume"
    )]
    NotConfirmed { batches: u64, bytes: u64, secs: u64 },
}

/// What happened to one UTC day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DayOutcome {
    /// Copied in this run.
    Copied { events: u64 },
    /// A partial copy of an earlier run was dropped and the day copied again.
    Recopied { dropped: u64, events: u64 },
    /// Finished in an earlier run and still complete.
    AlreadyCopied { events: u64 },
    /// ClickHouse holds events of this day that this migration did not
    /// write: left alone.
    Conflict { source: u64, target: u64 },
}

/// The result of a run: one outcome per day of the embedded store, the
/// audit records copied and the final count per day on both sides.
#[derive(Debug, Default)]
pub struct MigrateReport {
    pub days: BTreeMap<NaiveDate, DayOutcome>,
    /// Final counts: (embedded store, ClickHouse) per day.
    pub counts: BTreeMap<NaiveDate, (u64, u64)>,
    pub audit_records: usize,
    pub progress_file: PathBuf,
}

impl MigrateReport {
    /// Days whose counts differ at the end, or that were left alone.
    pub fn problems(&self) -> Vec<NaiveDate> {
        self.counts
            .iter()
            .filter(|(_, (source, target))| source != target)
            .map(|(day, _)| *day)
            .collect()
    }

    /// The report as the command prints it.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        for (day, outcome) in &self.days {
            let what = match outcome {
                DayOutcome::Copied { events } => format!("copied {events} events"),
                DayOutcome::Recopied { dropped, events } => format!(
                    "dropped {dropped} events of an interrupted copy, copied {events} events"
                ),
                DayOutcome::AlreadyCopied { events } => {
                    format!("already copied ({events} events)")
                }
                DayOutcome::Conflict { source, target } => format!(
                    "LEFT ALONE: ClickHouse already holds {target} events of this day that \
                     this migration did not write (collectors writing into it?); the \
                     embedded store has {source}"
                ),
            };
            let _ = writeln!(out, "{day}  {what}");
        }
        let _ = writeln!(out, "audit records copied: {}", self.audit_records);
        let (source, target) = self
            .counts
            .values()
            .fold((0, 0), |(s, t), (ds, dt)| (s + ds, t + dt));
        let _ = writeln!(
            out,
            "count check: {} days, {source} events in the embedded store, {target} of them in ClickHouse",
            self.counts.len()
        );
        let problems = self.problems();
        if problems.is_empty() {
            let _ = writeln!(out, "every day's count matches");
        } else {
            for day in &problems {
                let (s, t) = self.counts[day];
                let _ = writeln!(out, "MISMATCH {day}: embedded store {s}, ClickHouse {t}");
            }
        }
        let _ = writeln!(
            out,
            "roll-ups are not copied: ClickHouse answers reports from raw events, so days \
             kept only as counts in the embedded store do not appear there"
        );
        let _ = writeln!(out, "progress: {}", self.progress_file.display());
        out
    }
}

/// One line of the progress file.
#[derive(Debug, Serialize, Deserialize)]
struct ProgressLine {
    day: NaiveDate,
    state: DayState,
    #[serde(default)]
    events: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum DayState {
    Started,
    Finished,
}

/// The progress file: an append-only log, fsynced line by line, read back
/// as the last state of each day.
struct Progress {
    path: PathBuf,
    file: File,
    days: HashMap<NaiveDate, (DayState, u64)>,
}

impl Progress {
    fn open(path: &Path) -> Result<Progress, MigrateError> {
        let fail = |e| MigrateError::Progress(path.to_path_buf(), e);
        let mut days = HashMap::new();
        if path.exists() {
            let reader = BufReader::new(File::open(path).map_err(fail)?);
            for line in reader.lines() {
                let line = line.map_err(fail)?;
                // a line cut short by a crash is the last one: ignore it
                if let Ok(entry) = serde_json::from_str::<ProgressLine>(&line) {
                    days.insert(entry.day, (entry.state, entry.events));
                }
            }
        }
        let file = FileOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(fail)?;
        Ok(Progress {
            path: path.to_path_buf(),
            file,
            days,
        })
    }

    fn state(&self, day: NaiveDate) -> Option<(DayState, u64)> {
        self.days.get(&day).copied()
    }

    fn record(&mut self, day: NaiveDate, state: DayState, events: u64) -> Result<(), MigrateError> {
        let mut line = serde_json::to_string(&ProgressLine { day, state, events })
            .map_err(|e| MigrateError::Progress(self.path.clone(), e.into()))?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(|e| MigrateError::Progress(self.path.clone(), e))?;
        self.days.insert(day, (state, events));
        Ok(())
    }
}

/// Where the progress of a migration into ClickHouse is kept.
pub fn progress_path(config: &Config) -> PathBuf {
    config.server.data_dir.join("clickhouse-migration.jsonl")
}

/// Runs the migration described in the module comment.
pub fn migrate_to_clickhouse(config: &Config) -> Result<MigrateReport, MigrateError> {
    let path = config.store_path();
    let source = RedbStorage::open(
        &path,
        &crate::app::store_options(config),
        crate::app::writer_options(config),
    )
    .map_err(|e| {
        if e.is_locked() {
            MigrateError::InUse(path.display().to_string())
        } else {
            MigrateError::Source(e)
        }
    })?;
    let target = clickhouse::open_from_config(config)?;
    // What an earlier, interrupted run left in the spool lands first, so
    // that dropping a partial day below cannot race with its replay.
    wait_until_confirmed(&target)?;
    let mut progress = Progress::open(&progress_path(config))?;

    let source_days = source.days()?;
    let target_days: HashMap<NaiveDate, u64> = target.days()?.into_iter().collect();
    let total: u64 = source_days.iter().map(|(_, n)| n).sum();
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {human_pos}/{human_len} events ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );

    let mut report = MigrateReport {
        progress_file: progress.path.clone(),
        ..MigrateReport::default()
    };
    for &(day, expected) in &source_days {
        bar.set_message(day.to_string());
        let in_target = target_days.get(&day).copied().unwrap_or(0);
        let outcome = match progress.state(day) {
            Some((DayState::Finished, _)) if in_target == expected => {
                DayOutcome::AlreadyCopied { events: expected }
            }
            Some(_) => {
                // Started here (or finished, but no longer complete): the
                // rows of this day in ClickHouse are this migration's own.
                let dropped = if in_target > 0 {
                    target.drop_day(day)?
                } else {
                    0
                };
                progress.record(day, DayState::Started, 0)?;
                let events = copy_day(&source, &target, day, &bar)?;
                progress.record(day, DayState::Finished, events)?;
                DayOutcome::Recopied { dropped, events }
            }
            None if in_target > 0 => DayOutcome::Conflict {
                source: expected,
                target: in_target,
            },
            None => {
                progress.record(day, DayState::Started, 0)?;
                let events = copy_day(&source, &target, day, &bar)?;
                progress.record(day, DayState::Finished, events)?;
                DayOutcome::Copied { events }
            }
        };
        if !matches!(
            outcome,
            DayOutcome::Copied { .. } | DayOutcome::Recopied { .. }
        ) {
            bar.inc(expected);
        }
        report.days.insert(day, outcome);
    }
    bar.finish_and_clear();

    report.audit_records = copy_audit(&source, &target)?;

    let after: HashMap<NaiveDate, u64> = target.days()?.into_iter().collect();
    report.counts = source_days
        .iter()
        .map(|&(day, n)| (day, (n, after.get(&day).copied().unwrap_or(0))))
        .collect();
    target.close()?;
    source.close()?;
    Ok(report)
}

/// Copies every event of `day`, waits until ClickHouse has confirmed them
/// and returns how many were sent.
fn copy_day(
    source: &RedbStorage,
    target: &ClickHouseStorage,
    day: NaiveDate,
    bar: &ProgressBar,
) -> Result<u64, MigrateError> {
    let engine = source.engine();
    let sites = engine.snapshot()?.sites_of(day)?;
    let from_ms = day
        .and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp_millis());
    let to_ms = from_ms + 86_400_000;
    let mut sent = 0u64;
    for site in sites {
        let mut chunk = Vec::with_capacity(CHUNK_EVENTS);
        let mut failure: Option<MigrateError> = None;
        engine.scan_events(&site, from_ms, to_ms, |stored| {
            chunk.push(pipeline_event(stored));
            if chunk.len() >= CHUNK_EVENTS {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_EVENTS));
                let n = full.len() as u64;
                if let Err(e) = send(target, full) {
                    failure = Some(e);
                    return ControlFlow::Break(());
                }
                sent += n;
                bar.inc(n);
            }
            ControlFlow::Continue(())
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        let n = chunk.len() as u64;
        if n > 0 {
            send(target, chunk)?;
            sent += n;
            bar.inc(n);
        }
    }
    wait_until_confirmed(target)?;
    Ok(sent)
}

/// Hands a chunk to the writer, waiting while its queue is full, and waits
/// for the writer to take responsibility for it.
fn send(target: &ClickHouseStorage, events: Vec<Event>) -> Result<(), MigrateError> {
    let ack = loop {
        match target.submit(events.clone()) {
            Ok(ack) => break ack,
            Err(StorageError::Busy) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(e.into()),
        }
    };
    ack.blocking_recv()
        .map_err(|_| StorageError::Internal("the ClickHouse writer went away".into()))??;
    Ok(())
}

/// Waits until everything handed to the writer is confirmed by ClickHouse.
fn wait_until_confirmed(target: &ClickHouseStorage) -> Result<(), MigrateError> {
    target.flush()?;
    let start = Instant::now();
    loop {
        let (batches, bytes) = target.backlog();
        if batches == 0 && bytes == 0 {
            return Ok(());
        }
        if start.elapsed() >= CONFIRM_TIMEOUT {
            return Err(MigrateError::NotConfirmed {
                batches,
                bytes,
                secs: CONFIRM_TIMEOUT.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Copies the sweep log. Records keep their embedded-store numbers, which
/// sort before every number a collector gives a record in ClickHouse, so
/// the history reads in order; copying a record again replaces it with
/// itself.
fn copy_audit(source: &RedbStorage, target: &ClickHouseStorage) -> Result<usize, MigrateError> {
    let records = source.audit_records()?;
    for (id, json) in &records {
        target.audit_replace(*id, json)?;
    }
    Ok(records.len())
}

/// A stored event as the pipeline hands events to a store.
fn pipeline_event(stored: StoredEvent) -> Event {
    Event {
        site: stored.site,
        ts_ms: stored.ts_ms,
        kind: stored.kind,
        visitor: stored.visitor,
        pageview_id: stored.pageview_id,
        url: stored.url,
        title: stored.title,
        referrer: stored.referrer,
        campaign: stored.campaign,
        target: stored.target,
        search_term: stored.search_term,
        search_results: stored.search_results,
        engaged_ms: stored.engaged_ms,
        device: stored.device,
        plugins: stored.plugins,
        anon_ip: stored.anon_ip.to_anon(),
        custom: stored.custom,
    }
}
