//! The retention sweeper: deletes raw events older than `retention.raw_days`
//! and the free text in the roll-ups of those days (see
//! [`expire_free_text`]), and roll-ups older than `retention.rollup_days`
//! when set, on the cron
//! schedule from the config, and once at start-up when a scheduled sweep
//! was missed while the service was down.
//!
//! A sweep is a series of calls to the store boundary (cut the free text
//! of each expired local day out of the roll-ups, drop each expired day,
//! trim the boundary day, expire strings and roll-ups, vacuum), each of which
//! the store carries out in short durable steps between which ingest goes
//! on, so a crash between two of them leaves a consistent store that the
//! next sweep finishes. Every sweep
//! writes an audit record before it starts (`running`) and completes it at
//! the end (`ok` or `error`); a record still `running` when the next sweep
//! starts is marked `interrupted`.
//!
//! Within one process every sweep goes through a [`SweepGate`]: the
//! scheduled sweeper and `POST /api/v1/sweep` share it, so two sweeps never
//! overlap (one would take the other's `running` record for a crashed one)
//! and shutdown stops whichever is running.

use crate::store::ids::DayNumber;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::audit::{self, AuditError, AuditRecord, SweepRecord};
use crate::config::Config;
use crate::storage::{FreeTextExpiry, FreeTextVetted};
use crate::storage::{Storage, StorageError};
use crate::store::schema::{self, MS_PER_DAY};

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("store: {0}")]
    Store(#[from] StorageError),
    #[error("audit log: {0}")]
    Audit(#[from] AuditError),
    #[error("sweep cancelled by shutdown")]
    Cancelled,
}

/// What one sweep deleted (or, dry, would delete).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SweepReport {
    pub dry_run: bool,
    /// Raw events received before this time (milliseconds since the Unix
    /// epoch) expire: the time of the sweep minus `retention.raw_days`.
    pub cutoff_ms: i64,
    /// Roll-up cutoff; null while roll-ups are kept
    /// (`retention.rollup_days = 0`).
    #[schema(required = true)]
    pub rollup_cutoff_ms: Option<i64>,
    /// UTC days (`YYYY-MM-DD`) deleted whole.
    #[schema(value_type = Vec<chrono::NaiveDate>)]
    pub partitions_dropped: Vec<String>,
    /// The UTC day the cutoff falls into, when some of its events expired.
    #[schema(value_type = Option<chrono::NaiveDate>, required = true)]
    pub partition_trimmed: Option<String>,
    pub events_deleted: u64,
    /// Interned strings (URLs, titles, search terms, referrers, device
    /// names) that only deleted events used.
    pub strings_deleted: u64,
    pub rollup_rows_deleted: u64,
    /// Roll-ups of site-local days before this day (`YYYY-MM-DD`) hold no
    /// free text any more (search terms, query-parameter values), except
    /// values `retention.free_text_min_visitors` kept.
    #[schema(value_type = chrono::NaiveDate)]
    pub free_text_before: String,
    /// Roll-up rows whose free text expired: cut to the URL without its
    /// query (counts merged there) or, for search terms, deleted.
    pub free_text_rows_expired: u64,
    /// The same per dimension, e.g. {"page": 12, "search_term": 30}.
    pub free_text_expired_by_dimension: BTreeMap<String, u64>,
    /// Roll-up rows whose free text was kept, seen from at least
    /// `retention.free_text_min_visitors` distinct visitors that day.
    pub free_text_rows_kept: u64,
    /// The store file was rewritten afterwards with live data only
    /// (`retention.vacuum_after_sweep`, on by default).
    pub vacuumed: bool,
    /// UTC days (`YYYY-MM-DD`) whose roll-ups were written into the
    /// backend's roll-up table before their raw events (or the day
    /// before's) went, free text cut (ClickHouse; the embedded store keeps
    /// roll-ups as it stores events).
    #[schema(value_type = Vec<chrono::NaiveDate>)]
    pub rollups_kept: Vec<String>,
    /// Rows written for them.
    pub rollup_rows_written: u64,
}

impl SweepReport {
    fn add_free_text(&mut self, e: &FreeTextExpiry) {
        self.free_text_rows_expired += e.rows_expired;
        self.free_text_rows_kept += e.rows_kept;
        for (d, n) in &e.by_dimension {
            *self
                .free_text_expired_by_dimension
                .entry(d.as_str().to_owned())
                .or_default() += n;
        }
    }
}

/// The raw-event cutoff at `now`: events with `ts_ms < cutoff` expire.
pub fn cutoff_ms(config: &Config, now: DateTime<Utc>) -> i64 {
    now.timestamp_millis() - i64::from(config.retention.raw_days) * MS_PER_DAY
}

fn rollup_cutoff_ms(config: &Config, now: DateTime<Utc>) -> Option<i64> {
    (config.retention.rollup_days > 0)
        .then(|| now.timestamp_millis() - i64::from(config.retention.rollup_days) * MS_PER_DAY)
}

/// Runs one sweep now. A real sweep is recorded in the audit log, whatever
/// its outcome; a dry run only reads. `cancel` is checked between steps.
pub fn sweep_now(
    store: &dyn Storage,
    config: &Config,
    now: DateTime<Utc>,
    dry_run: bool,
    cancel: &AtomicBool,
) -> Result<SweepReport, SweepError> {
    let cutoff = cutoff_ms(config, now);
    let rollup_cutoff = rollup_cutoff_ms(config, now);
    let mut report = SweepReport {
        dry_run,
        cutoff_ms: cutoff,
        rollup_cutoff_ms: rollup_cutoff,
        ..SweepReport::default()
    };
    if dry_run {
        expire_free_text(store, config, cutoff, true, cancel, &mut report)?;
        let plan = store.expiry_plan(cutoff)?;
        report.partitions_dropped = plan.whole.iter().map(|(d, _)| d.to_string()).collect();
        report.partition_trimmed = plan.boundary.map(|(d, _)| d.to_string());
        report.events_deleted = plan.events();
        report.strings_deleted = plan.strings;
        if let Some(rc) = rollup_cutoff {
            let r = store.expire_rollups(rc, true)?;
            report.rollup_rows_deleted = r.hourly_rows + r.dim_rows;
        }
        return Ok(report);
    }

    audit::mark_interrupted(store)?;
    let started = Instant::now();
    let mut record = SweepRecord {
        started_ms: now.timestamp_millis(),
        cutoff_ms: cutoff,
        rollup_cutoff_ms: rollup_cutoff,
        outcome: "running".into(),
        ..SweepRecord::default()
    };
    let id = audit::append(store, &AuditRecord::Sweep(record.clone()))?;
    // The raw events go even when the free-text step failed (an
    // undecodable old block, say): the retention period must not depend on
    // roll-up bookkeeping, and once the raw events are gone the next sweep
    // vets that day's free text with nothing to keep. Both errors are
    // recorded; only a shutdown stops the deletion.
    let free_text = expire_free_text(store, config, cutoff, false, cancel, &mut report);
    let result = match free_text {
        Err(SweepError::Cancelled) => Err(SweepError::Cancelled),
        free_text => {
            if let Err(e) = &free_text {
                tracing::error!(error = %e, "sweep: free-text step failed; deleting the raw events all the same");
            }
            run_steps(
                store,
                config.retention.vacuum_after_sweep,
                cutoff,
                rollup_cutoff,
                cancel,
                &mut report,
            )
            .and(free_text)
        }
    };
    record.finished_ms = Some(Utc::now().timestamp_millis());
    record.duration_ms = Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
    record.partitions_dropped = report.partitions_dropped.clone();
    record.events_deleted = report.events_deleted;
    record.strings_deleted = report.strings_deleted;
    record.vacuumed = report.vacuumed;
    record.rollup_rows_deleted = report.rollup_rows_deleted;
    record.rollups_kept = report.rollups_kept.clone();
    record.rollup_rows_written = report.rollup_rows_written;
    record.free_text_before = Some(report.free_text_before.clone());
    record.free_text_rows_expired = report.free_text_rows_expired;
    record.free_text_expired_by_dimension = report.free_text_expired_by_dimension.clone();
    record.free_text_rows_kept = report.free_text_rows_kept;
    match &result {
        Ok(()) => record.outcome = "ok".into(),
        Err(SweepError::Cancelled) => record.outcome = "interrupted".into(),
        Err(e) => {
            record.outcome = "error".into();
            record.error = Some(e.to_string());
        }
    }
    audit::update(store, id, &AuditRecord::Sweep(record.clone()))?;
    match result {
        Ok(()) => {
            tracing::info!(
                cutoff = cutoff,
                partitions = record.partitions_dropped.len(),
                events = record.events_deleted,
                "retention sweep finished"
            );
            metrics::counter!("sparsam_sweep_events_deleted_total")
                .increment(record.events_deleted);
            Ok(report)
        }
        Err(e) => Err(e),
    }
}

fn run_steps(
    store: &dyn Storage,
    vacuum: bool,
    cutoff: i64,
    rollup_cutoff: Option<i64>,
    cancel: &AtomicBool,
    report: &mut SweepReport,
) -> Result<(), SweepError> {
    let boundary = schema::utc_day(cutoff);
    let free_text_before = DayNumber::of(boundary).stored();
    // days that end at or before the cutoff go whole
    let days: Vec<_> = store.days()?.into_iter().map(|(day, _)| day).collect();
    let whole: Vec<_> = days.iter().copied().filter(|d| *d < boundary).collect();
    // Roll-ups that must outlive the raw events: every day about to lose
    // raw events, and the boundary day, whose day before goes now. All of
    // them before anything is deleted (a day's roll-ups replay the day
    // before too); a day already stored is not written again, so a sweep
    // that stopped between these writes and the deletions loses and
    // doubles nothing.
    let keep = whole
        .iter()
        .copied()
        .chain(days.iter().copied().filter(|d| *d == boundary));
    for day in keep {
        if cancel.load(Ordering::Relaxed) {
            return Err(SweepError::Cancelled);
        }
        let started = Instant::now();
        let kept = store.keep_rollups(day, free_text_before)?;
        if kept.sites_written + kept.sites_present > 0 {
            tracing::info!(day = %day, rows = kept.rows, free_text_cut = kept.free_text_cut, elapsed_ms = started.elapsed().as_millis() as u64, "sweep: roll-ups of the day kept");
            report.rollups_kept.push(day.to_string());
            report.rollup_rows_written += kept.rows;
        }
    }
    for day in &whole {
        if cancel.load(Ordering::Relaxed) {
            return Err(SweepError::Cancelled);
        }
        // One short transaction per day: the writer waits for one day at most.
        let started = Instant::now();
        let n = store.drop_day(*day)?;
        tracing::info!(day = %day, events = n, elapsed_ms = started.elapsed().as_millis() as u64, "sweep: day partition dropped");
        report.events_deleted += n;
        report.partitions_dropped.push(day.to_string());
    }
    if cancel.load(Ordering::Relaxed) {
        return Err(SweepError::Cancelled);
    }
    let trimmed = store.trim_day(boundary, cutoff)?;
    if trimmed > 0 {
        report.events_deleted += trimmed;
        report.partition_trimmed = Some(boundary.to_string());
    }
    if cancel.load(Ordering::Relaxed) {
        return Err(SweepError::Cancelled);
    }
    let started = Instant::now();
    report.strings_deleted = store.expire_strings(cutoff)?;
    tracing::info!(
        strings = report.strings_deleted,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "sweep: unused dictionary strings deleted"
    );
    if let Some(rc) = rollup_cutoff {
        let r = store.expire_rollups(rc, false)?;
        report.rollup_rows_deleted = r.hourly_rows + r.dim_rows;
    }
    let deleted = report.events_deleted
        + report.strings_deleted
        + report.rollup_rows_deleted
        + report.free_text_rows_expired
        > 0;
    if vacuum && deleted && !cancel.load(Ordering::Relaxed) {
        let v = store.vacuum()?;
        tracing::info!(
            bytes_before = v.bytes_before,
            bytes_after = v.bytes_after,
            "store file rewritten after the sweep"
        );
        report.vacuumed = true;
    }
    Ok(())
}

/// Takes the free text out of the roll-ups of every site-local day before
/// the UTC day of `cutoff` that was not vetted yet, one day per
/// transaction, before the raw events of those days go (they are what
/// visitors are counted from). Under `retention.free_text_min_visitors = k`
/// a value stays when at least `k` distinct visitors (visitor numbers of
/// the day's raw events) produced it that local day; otherwise, and for
/// days whose raw events are already gone, it is cut to its path or
/// deleted. Days vetted under a laxer rule than the one now in force are
/// vetted again, which (their raw events being gone) expires what they kept.
fn expire_free_text(
    store: &dyn Storage,
    config: &Config,
    cutoff: i64,
    dry_run: bool,
    cancel: &AtomicBool,
    report: &mut SweepReport,
) -> Result<(), SweepError> {
    let cut_day = DayNumber::of(schema::utc_day(cutoff));
    report.free_text_before = schema::utc_day(cutoff).to_string();
    let rule = match config.retention.free_text_min_visitors {
        0 => u32::MAX,
        k => k,
    };
    let vetted = store.free_text_vetted()?;
    // Days before `again_before` are vetted afresh with nothing kept.
    let (from, again_before) = match vetted {
        None => (None, None),
        Some(v) if rule > v.min_visitors => (None, Some(v.before_day)),
        Some(v) => (Some(v.before_day), None),
    };
    let after = FreeTextVetted {
        before_day: vetted.map_or(cut_day, |v| v.before_day.max(cut_day)),
        min_visitors: match vetted {
            Some(v) if again_before.is_none() => v.min_visitors.min(rule),
            _ => rule,
        },
    };
    let days = store.free_text_days(from, cut_day)?;
    let tz: HashMap<&str, chrono_tz::Tz> = config
        .sites
        .iter()
        .map(|s| (s.id.as_str(), s.tz()))
        .collect();
    let started = Instant::now();
    for (day, sites) in &days {
        if cancel.load(Ordering::Relaxed) {
            return Err(SweepError::Cancelled);
        }
        let count = rule != u32::MAX && again_before.is_none_or(|b| *day >= b);
        // per site: the values the rule keeps
        let mut common: HashMap<String, HashSet<String>> = HashMap::new();
        if count {
            for site in sites {
                let zone = tz.get(site.as_str()).copied().unwrap_or(chrono_tz::Tz::UTC);
                common.insert(
                    site.clone(),
                    store.common_free_text(site, zone, *day, rule)?,
                );
            }
        }
        // The rule's state moves with the last day, so a crash re-vets at
        // most that day (its raw events are still there).
        let mark = FreeTextVetted {
            before_day: day.next(),
            min_visitors: after.min_visitors,
        };
        let e = store.expire_free_text(*day, sites.clone(), common, Some(mark), dry_run)?;
        report.add_free_text(&e);
    }
    if !dry_run && vetted != Some(after) {
        store.set_free_text_vetted(after)?;
    }
    if !dry_run && report.free_text_rows_expired > 0 {
        // the cut values themselves, now that no row uses them
        let started = Instant::now();
        let values = store.delete_unused_rollup_values()?;
        tracing::info!(
            values,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "sweep: roll-up values no row uses any more deleted"
        );
    }
    tracing::info!(
        days = days.len(),
        expired = report.free_text_rows_expired,
        kept = report.free_text_rows_kept,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "sweep: free text in roll-ups expired"
    );
    Ok(())
}

/// True when the scheduled time before `now` passed without a sweep
/// starting at or after it (e.g. the service was down), or no sweep ever ran.
pub fn sweep_missed(
    store: &dyn Storage,
    schedule: &cron::Schedule,
    now: DateTime<Utc>,
) -> Result<bool, SweepError> {
    let last = audit::last_sweeps(store, 1)?.into_iter().next();
    let Some(last) = last else { return Ok(true) };
    let Some(prev) = schedule.after(&now).next_back() else {
        return Ok(false);
    };
    Ok(last.started_ms < prev.timestamp_millis())
}

/// One sweep at a time in this process, and a shared stop switch.
#[derive(Debug, Default)]
pub struct SweepGate {
    running: Mutex<()>,
    cancel: AtomicBool,
}

impl SweepGate {
    /// Runs one sweep (or dry run) once any sweep in progress has finished.
    /// The cutoff is taken when this sweep starts, not when it was asked
    /// for. Blocks: call from a blocking thread.
    pub fn sweep(
        &self,
        store: &dyn Storage,
        config: &Config,
        dry_run: bool,
    ) -> Result<SweepReport, SweepError> {
        let _running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if !dry_run && self.cancel.load(Ordering::Relaxed) {
            return Err(SweepError::Cancelled);
        }
        sweep_now(store, config, Utc::now(), dry_run, &self.cancel)
    }

    /// Stops the sweep in progress after its current step and refuses new
    /// ones (shutdown).
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

/// A running scheduled sweeper; [`SweeperTask::stop`] ends it.
pub struct SweeperTask {
    stop: watch::Sender<bool>,
    gate: Arc<SweepGate>,
    handle: JoinHandle<()>,
}

impl SweeperTask {
    /// Starts the sweeper on the current tokio runtime, sharing `gate` with
    /// other callers of [`SweepGate::sweep`].
    pub fn spawn(
        store: Arc<dyn Storage>,
        config: Arc<Config>,
        gate: Arc<SweepGate>,
    ) -> SweeperTask {
        let schedule = config.retention.sweep_schedule.clone();
        let (stop, rx) = watch::channel(false);
        let handle = tokio::spawn(run(store, config, schedule, rx, gate.clone()));
        SweeperTask { stop, gate, handle }
    }

    /// Stops the sweeper; a sweep in progress stops after its current step.
    pub async fn stop(self) {
        self.gate.cancel();
        let _ = self.stop.send(true);
        let _ = self.handle.await;
    }
}

async fn sweep_blocking(store: &Arc<dyn Storage>, config: &Arc<Config>, gate: &Arc<SweepGate>) {
    let (s, c, g) = (store.clone(), config.clone(), gate.clone());
    match tokio::task::spawn_blocking(move || g.sweep(&*s, &c, false)).await {
        Ok(Ok(_)) => {}
        Ok(Err(SweepError::Cancelled)) => tracing::info!("retention sweep interrupted by shutdown"),
        Ok(Err(e)) => tracing::error!(error = %e, "retention sweep failed"),
        Err(e) => tracing::error!(error = %e, "retention sweep task failed"),
    }
}

async fn run(
    store: Arc<dyn Storage>,
    config: Arc<Config>,
    schedule: cron::Schedule,
    mut stop: watch::Receiver<bool>,
    gate: Arc<SweepGate>,
) {
    let missed = {
        let (s, sch) = (store.clone(), schedule.clone());
        tokio::task::spawn_blocking(move || sweep_missed(&*s, &sch, Utc::now())).await
    };
    match missed {
        Ok(Ok(true)) => {
            tracing::info!(
                missed = true,
                "start-up sweep check: a scheduled retention sweep was missed; sweeping now"
            );
            sweep_blocking(&store, &config, &gate).await;
        }
        Ok(Ok(false)) => tracing::info!(
            missed = false,
            "start-up sweep check: no scheduled retention sweep was missed"
        ),
        Ok(Err(e)) => tracing::error!(error = %e, "cannot read the audit log"),
        Err(e) => tracing::error!(error = %e, "start-up sweep check failed"),
    }
    loop {
        if *stop.borrow() {
            return;
        }
        let Some(next) = schedule.upcoming(Utc).next() else {
            tracing::warn!("the sweep schedule has no future time; sweeper stops");
            return;
        };
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        if Utc::now() < next {
            // Woken before the scheduled time by the wall clock (the timer
            // runs on another clock, or the clock was set back): wait
            // again rather than sweep twice for one slot.
            continue;
        }
        sweep_blocking(&store, &config, &gate).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn previous_scheduled_time_is_before_now() {
        let s = cron::Schedule::from_str("0 30 3 * * *").unwrap();
        let now: DateTime<Utc> = "2026-11-05T12:00:00Z".parse().unwrap();
        let prev = s.after(&now).next_back().unwrap();
        assert_eq!(prev.to_rfc3339(), "2026-11-05T03:30:00+00:00");
        let next = s.after(&now).next().unwrap();
        assert_eq!(next.to_rfc3339(), "2026-11-06T03:30:00+00:00");
    }
}
