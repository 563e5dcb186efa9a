//! `sparsam migrate --to clickhouse`: copies the embedded store's raw
//! events and its audit log into the configured ClickHouse database, so a
//! site that outgrows one machine keeps its history when it moves.
//!
//! The copy goes one UTC day (the partition of both engines) at a time and
//! is resumable: a progress file beside the store, bound to the ClickHouse
//! target it was written for, records each day as *started* before the
//! first row is sent and as *finished* once ClickHouse holds exactly as
//! many events of that day as the embedded store. A later run skips
//! finished days, drops and copies again a day it started but did not
//! finish (its own partial copy, never more rows than the embedded store
//! has), and never drops a day that ClickHouse holds events of that this
//! migration cannot account for: a day it did not start, or a finished day
//! whose count has changed since (collectors writing into it, or their
//! sweep trimming it). Days wholly past `retention.raw_days` are not
//! copied, and of the day the cutoff falls in only the events after it.
//! At the end every day is counted on both sides.
//!
//! Rows are written through the same write path as a collector's (the
//! spooled writer, one unique insert id per batch), and a day counts as
//! copied only when ClickHouse has confirmed every batch, not when the
//! spool has it. Addresses travel as stored, truncated again on the way to
//! their own prefix or the configured masks, whichever keeps fewer bits.
//!
//! The roll-ups of the days wholly before the cutoff (kept only as counts
//! in the embedded store) go into ClickHouse's roll-up table
//! (`clickhouse/history.rs`), one write per site and day, free text cut,
//! so reports on the cluster reach as far back as the embedded store's.
//! What is not copied: the embedded store's daily salt (the events carry
//! their visitor hashes).
//! The embedded store file itself is left as it was: once the collectors
//! run on ClickHouse nothing sweeps it any more, so the report says to
//! delete it.

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
use crate::privacy::IpMasks;
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
    #[error(
        "progress file {file} records a migration into {recorded}, not into {configured}; \
         move it away to start a migration into the configured target"
    )]
    OtherTarget {
        file: PathBuf,
        recorded: String,
        configured: String,
    },
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
    /// Finished in an earlier run, but ClickHouse's count has changed since
    /// (collectors writing into the day, or their sweep trimming it): left
    /// alone, never dropped.
    ChangedSinceCopy {
        copied: u64,
        source: u64,
        target: u64,
    },
    /// Copied, but ClickHouse does not hold as many events as were sent:
    /// not recorded as finished, so the next run copies it again.
    CountDiffers { sent: u64, target: u64 },
    /// Past `retention.raw_days`: not copied (the sweeper would delete it).
    Expired { events: u64 },
}

/// The result of a run: one outcome per day of the embedded store, the
/// audit records copied and the final count per day on both sides.
#[derive(Debug, Default)]
pub struct MigrateReport {
    pub days: BTreeMap<NaiveDate, DayOutcome>,
    /// Final counts: (embedded store, ClickHouse) per day.
    pub counts: BTreeMap<NaiveDate, (u64, u64)>,
    pub audit_records: usize,
    /// Days before the first copied one whose roll-ups were written into
    /// ClickHouse's roll-up table (site and day pairs), those already
    /// there from an earlier run, and the rows written.
    pub rollups_copied: usize,
    pub rollups_present: usize,
    pub rollup_rows: u64,
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
                DayOutcome::ChangedSinceCopy {
                    copied,
                    source,
                    target,
                } => format!(
                    "LEFT ALONE: copied {copied} events in an earlier run, ClickHouse now \
                     holds {target} (collectors writing into it, or their sweep?); the \
                     embedded store has {source}"
                ),
                DayOutcome::CountDiffers { sent, target } => format!(
                    "NOT FINISHED: sent {sent} events, ClickHouse holds {target}; run the \
                     command again to copy the day again"
                ),
                DayOutcome::Expired { events } => {
                    format!("not copied: {events} events past retention.raw_days")
                }
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
            "roll-ups of days before the first copied day: {} site-days copied ({} rows), {} \
             already there",
            self.rollups_copied, self.rollup_rows, self.rollups_present
        );
        let _ = writeln!(out, "progress: {}", self.progress_file.display());
        let _ = writeln!(
            out,
            "the embedded store file is unchanged: once store.backend = \"clickhouse\" \
             nothing sweeps it any more, so delete it when the collectors run on ClickHouse"
        );
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

/// The first line of the progress file: which ClickHouse target the days
/// below were copied into (a file written for another target says nothing
/// about this one).
#[derive(Debug, Serialize, Deserialize)]
struct TargetLine {
    target: String,
}

/// The progress file: an append-only log, fsynced line by line, read back
/// as the last state of each day.
struct Progress {
    path: PathBuf,
    file: File,
    days: HashMap<NaiveDate, (DayState, u64)>,
}

impl Progress {
    /// Opens the progress of a migration into `target` (see
    /// [`target_fingerprint`]), refusing a file written for another one.
    fn open(path: &Path, target: &str) -> Result<Progress, MigrateError> {
        let fail = |e| MigrateError::Progress(path.to_path_buf(), e);
        let mut days = HashMap::new();
        let mut recorded: Option<String> = None;
        if path.exists() {
            let reader = BufReader::new(File::open(path).map_err(fail)?);
            for line in reader.lines() {
                let line = line.map_err(fail)?;
                if let Ok(head) = serde_json::from_str::<TargetLine>(&line) {
                    recorded.get_or_insert(head.target);
                // a line cut short by a crash is the last one: ignore it
                } else if let Ok(entry) = serde_json::from_str::<ProgressLine>(&line) {
                    days.insert(entry.day, (entry.state, entry.events));
                }
            }
        }
        match &recorded {
            Some(recorded) if recorded != target => {
                return Err(MigrateError::OtherTarget {
                    file: path.to_path_buf(),
                    recorded: recorded.clone(),
                    configured: target.to_owned(),
                })
            }
            // days without a target line cannot be vouched for
            None if !days.is_empty() => {
                return Err(MigrateError::OtherTarget {
                    file: path.to_path_buf(),
                    recorded: "an unnamed target".into(),
                    configured: target.to_owned(),
                })
            }
            _ => {}
        }
        let mut file = FileOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(fail)?;
        if recorded.is_none() {
            let mut line = serde_json::to_string(&TargetLine {
                target: target.to_owned(),
            })
            .map_err(|e| fail(e.into()))?;
            line.push('\n');
            file.write_all(line.as_bytes())
                .and_then(|()| file.sync_data())
                .map_err(fail)?;
        }
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

/// Names the ClickHouse target a progress file belongs to: its servers,
/// database and cluster (no user or password).
fn target_fingerprint(config: &Config) -> String {
    let ch = &config.clickhouse;
    format!(
        "{} database {} cluster {:?}",
        ch.urls.join(","),
        ch.database,
        ch.cluster
    )
}

/// How long a finished copy may take to show in ClickHouse's count (on a
/// cluster a read may reach a replica that is still fetching the part).
const COUNT_SETTLE: Duration = Duration::from_secs(30);

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
    let mut progress = Progress::open(&progress_path(config), &target_fingerprint(config))?;
    let masks = config.privacy.masks();
    let cutoff_ms = crate::retention::sweeper::cutoff_ms(config, chrono::Utc::now());

    let mut source_days = source.days()?;
    let mut expired = Vec::new();
    source_days.retain(|&(day, events)| {
        let keep = day_start_ms(day) + MS_PER_DAY > cutoff_ms;
        if !keep {
            expired.push((day, events));
        }
        keep
    });
    // the day the cutoff falls in: only its events after the cutoff
    for (day, events) in source_days.iter_mut() {
        if day_start_ms(*day) < cutoff_ms {
            *events = count_day(&source, *day, cutoff_ms)?;
        }
    }
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
    for (day, events) in expired {
        report.days.insert(day, DayOutcome::Expired { events });
    }
    let copy = |progress: &mut Progress, day: NaiveDate, expected: u64| {
        progress.record(day, DayState::Started, 0)?;
        let sent = copy_day(&source, &target, day, cutoff_ms, &masks, &bar)?;
        let in_target = settled_count(&target, day, expected)?;
        if sent == expected && in_target == expected {
            progress.record(day, DayState::Finished, sent)?;
            Ok::<_, MigrateError>(Ok(sent))
        } else {
            Ok(Err(DayOutcome::CountDiffers {
                sent,
                target: in_target,
            }))
        }
    };
    for &(day, expected) in &source_days {
        bar.set_message(day.to_string());
        let in_target = target_days.get(&day).copied().unwrap_or(0);
        let outcome = match progress.state(day) {
            Some((DayState::Finished, _)) if in_target == expected => {
                DayOutcome::AlreadyCopied { events: expected }
            }
            // unchanged since it was copied; only the retention cutoff has
            // moved into the day since (ClickHouse's sweep trims it there)
            Some((DayState::Finished, copied)) if in_target == copied => {
                DayOutcome::AlreadyCopied { events: copied }
            }
            Some((DayState::Finished, copied)) => DayOutcome::ChangedSinceCopy {
                copied,
                source: expected,
                target: in_target,
            },
            // Started here and not finished: the day's rows are this
            // migration's partial copy, unless there are more of them than
            // it can have sent.
            Some((DayState::Started, _)) if in_target > expected => DayOutcome::Conflict {
                source: expected,
                target: in_target,
            },
            Some((DayState::Started, _)) => {
                let dropped = if in_target > 0 {
                    target.drop_day(day)?
                } else {
                    0
                };
                match copy(&mut progress, day, expected)? {
                    Ok(events) => DayOutcome::Recopied { dropped, events },
                    Err(differs) => differs,
                }
            }
            None if in_target > 0 => DayOutcome::Conflict {
                source: expected,
                target: in_target,
            },
            None => match copy(&mut progress, day, expected)? {
                Ok(events) => DayOutcome::Copied { events },
                Err(differs) => differs,
            },
        };
        if !matches!(
            outcome,
            DayOutcome::Copied { .. }
                | DayOutcome::Recopied { .. }
                | DayOutcome::CountDiffers { .. }
        ) {
            bar.inc(expected);
        }
        report.days.insert(day, outcome);
    }
    bar.finish_and_clear();

    report.audit_records = copy_audit(&source, &target)?;
    copy_rollups(&source, &target, config, cutoff_ms, &mut report)?;

    let after: HashMap<NaiveDate, u64> = target.days()?.into_iter().collect();
    report.counts = source_days
        .iter()
        .map(|&(day, n)| {
            let source_n = match report.days.get(&day) {
                Some(DayOutcome::AlreadyCopied { events }) => *events,
                _ => n,
            };
            (day, (source_n, after.get(&day).copied().unwrap_or(0)))
        })
        .collect();
    target.close()?;
    source.close()?;
    Ok(report)
}

fn day_start_ms(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp_millis())
}

const MS_PER_DAY: i64 = 86_400_000;

/// Events of `day` in the embedded store at or after `from_ms`.
fn count_day(source: &RedbStorage, day: NaiveDate, from_ms: i64) -> Result<u64, MigrateError> {
    let engine = source.engine();
    let to_ms = day_start_ms(day) + MS_PER_DAY;
    let mut n = 0u64;
    for site in engine.snapshot()?.sites_of(day)? {
        engine.scan_events(&site, from_ms.max(day_start_ms(day)), to_ms, |_| {
            n += 1;
            ControlFlow::Continue(())
        })?;
    }
    Ok(n)
}

/// ClickHouse's count of `day`, read again for a while until it reaches
/// `expected` (a replica may still be fetching the last part).
fn settled_count(
    target: &ClickHouseStorage,
    day: NaiveDate,
    expected: u64,
) -> Result<u64, MigrateError> {
    let start = Instant::now();
    loop {
        let days: HashMap<NaiveDate, u64> = target.days()?.into_iter().collect();
        let n = days.get(&day).copied().unwrap_or(0);
        if n == expected || start.elapsed() >= COUNT_SETTLE {
            return Ok(n);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Copies every event of `day` at or after `cutoff_ms`, waits until
/// ClickHouse has confirmed them and returns how many were sent.
fn copy_day(
    source: &RedbStorage,
    target: &ClickHouseStorage,
    day: NaiveDate,
    cutoff_ms: i64,
    masks: &IpMasks,
    bar: &ProgressBar,
) -> Result<u64, MigrateError> {
    let engine = source.engine();
    let sites = engine.snapshot()?.sites_of(day)?;
    let from_ms = day_start_ms(day).max(cutoff_ms);
    let to_ms = day_start_ms(day) + MS_PER_DAY;
    let mut sent = 0u64;
    for site in sites {
        let mut chunk = Vec::with_capacity(CHUNK_EVENTS);
        let mut failure: Option<MigrateError> = None;
        engine.scan_events(&site, from_ms, to_ms, |stored| {
            chunk.push(pipeline_event(stored, masks));
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
/// for the writer to take responsibility for it. The chunk is spooled at
/// once rather than after `clickhouse.flush_ms`: nothing else is coming
/// while the copy waits for it, so the interval would only make every
/// chunk wait (it bounded a copy to one chunk per `flush_ms`).
fn send(target: &ClickHouseStorage, events: Vec<Event>) -> Result<(), MigrateError> {
    let ack = loop {
        match target.submit(events.clone()) {
            Ok(ack) => break ack,
            Err(StorageError::Busy) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(e.into()),
        }
    };
    target.flush()?;
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

/// Copies the embedded store's roll-ups of the UTC days wholly before the
/// retention cutoff (their raw events are not copied) into ClickHouse's
/// roll-up table, a write per site and day: hourly totals of the day's
/// hours and each dimension's counters of the site-local day of that date,
/// free text cut as the sweep cuts it past `retention.raw_days`. So
/// reports on the cluster reach as far back as the embedded store's. A
/// (site, day) already written (an earlier run) is skipped.
fn copy_rollups(
    source: &RedbStorage,
    target: &ClickHouseStorage,
    config: &Config,
    cutoff_ms: i64,
    report: &mut MigrateReport,
) -> Result<(), MigrateError> {
    use crate::storage::Dimension;
    use crate::store::ids::DayNumber;
    use crate::store::replay::DayRollups;
    use crate::store::schema::utc_day;
    let first_copied = utc_day(cutoff_ms);
    let Some(oldest) = source.oldest_rollup_day()? else {
        return Ok(());
    };
    let free_text_before = DayNumber::of(first_copied).stored();
    let present = target.stored_site_days(first_copied)?;
    for site in &config.sites {
        let mut day = oldest;
        while day < first_copied {
            if present.contains(&(site.id.clone(), day)) {
                report.rollups_present += 1;
            } else {
                let start = day_start_ms(day);
                let hourly = source
                    .hourly_totals(&site.id, start, start + MS_PER_DAY)?
                    .into_iter()
                    .map(|(hour, totals)| {
                        (
                            hour,
                            totals
                                .as_array()
                                .map(|x| i64::try_from(x).unwrap_or(i64::MAX)),
                        )
                    })
                    .collect();
                let mut dims = Vec::new();
                for dim in Dimension::ALL {
                    let ranked = source.ranked(&site.id, dim, day, day, usize::MAX, 0)?;
                    for (value, c) in ranked.rows {
                        let counts = [c.pageviews, c.visits, c.events]
                            .map(|x| i64::try_from(x).unwrap_or(i64::MAX));
                        dims.push((dim, DayNumber::of(day).stored(), value, counts));
                    }
                }
                dims.sort_unstable();
                let rollups = DayRollups { hourly, dims };
                let (rollups, _) = clickhouse::history::cut_free_text(&rollups, |local_day| {
                    local_day < free_text_before
                });
                let rows = target.write_rollups(&site.id, day, &rollups)?;
                if rows > 0 {
                    report.rollups_copied += 1;
                    report.rollup_rows += rows;
                }
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
    }
    Ok(())
}

/// A stored event as the pipeline hands events to a store.
fn pipeline_event(stored: StoredEvent, masks: &IpMasks) -> Event {
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
        anon_ip: stored.anon_ip.to_anon(masks),
        custom: stored.custom,
    }
}
