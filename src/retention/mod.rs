//! Retention: the cron sweeper that deletes expired raw data, the audit log
//! that records every sweep and the privacy settings in force, and the
//! audit view built from both and from a check over the store. See
//! `docs/retention.md` for the exact rule.

pub mod audit;
pub mod sweeper;

use std::sync::atomic::AtomicBool;

use chrono::Utc;

use crate::config::Config;
use crate::storage::redb::RedbStorage;
use crate::storage::{Storage, StorageError};
use crate::store::StoreError;
use audit::iso;

pub use sweeper::{sweep_now, SweepError, SweepGate, SweepReport, SweeperTask};

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(
        "the store {0} is open in a running sparsam server; stop it first \
         (or use GET /api/v1/audit while it runs)"
    )]
    InUse(String),
    #[error("store: {0}")]
    Store(#[from] StorageError),
    #[error("store: {0}")]
    Open(#[from] StoreError),
    #[error(transparent)]
    Sweep(#[from] SweepError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    #[error("cannot create data directory: {0}")]
    DataDir(std::io::Error),
}

/// Opens the store directly (for the CLI), refusing clearly when a server
/// holds its lock.
pub fn open_store_direct(config: &Config) -> Result<RedbStorage, RetentionError> {
    if config.store.backend != crate::config::StoreBackend::Redb {
        return Err(RetentionError::Store(StorageError::Rejected(
            "this command works on the embedded store only (store.backend = \"redb\"); \
             with ClickHouse the running collectors sweep and GET /api/v1/audit reports"
                .into(),
        )));
    }
    std::fs::create_dir_all(&config.server.data_dir).map_err(RetentionError::DataDir)?;
    let path = config.store_path();
    RedbStorage::open(
        &path,
        &crate::app::store_options(config),
        crate::app::writer_options(config),
    )
    .map_err(|e| {
        if e.is_locked() {
            RetentionError::InUse(path.display().to_string())
        } else {
            RetentionError::Open(e)
        }
    })
}

/// `sparsam compact`: rewrites the store file with live data only.
pub fn compact_command(config: &Config) -> Result<String, RetentionError> {
    let store = open_store_direct(config)?;
    let v = store.vacuum()?;
    Ok(format!(
        "store rewritten: {} bytes before, {} bytes after ({})\n",
        v.bytes_before,
        v.bytes_after,
        config.store_path().display()
    ))
}

/// `sparsam sweep [--dry-run]`: runs one sweep now and describes it.
pub fn sweep_command(config: &Config, dry_run: bool) -> Result<String, RetentionError> {
    let store = open_store_direct(config)?;
    let r = sweep_now(&store, config, Utc::now(), dry_run, &AtomicBool::new(false))?;
    Ok(render_sweep(&r, config))
}

/// A sweep report as text: what was deleted, or for a dry run what would be.
pub fn render_sweep(r: &SweepReport, config: &Config) -> String {
    use std::fmt::Write;
    let (verb, drop, trim) = if r.dry_run {
        (
            "would delete",
            "would be deleted whole",
            "would be trimmed at the cutoff",
        )
    } else {
        ("deleted", "deleted whole", "trimmed at the cutoff")
    };
    let mut s = String::new();
    if r.dry_run {
        let _ = writeln!(s, "dry run: nothing was deleted");
    }
    let _ = writeln!(
        s,
        "cutoff:      {} (raw events received before it expire; retention.raw_days = {})",
        iso(r.cutoff_ms),
        config.retention.raw_days
    );
    let _ = writeln!(s, "raw events:  {verb} {}", r.events_deleted);
    let _ = writeln!(
        s,
        "strings:     {verb} {} (URLs, titles, search terms, … no remaining event uses)",
        r.strings_deleted
    );
    let _ = writeln!(
        s,
        "days:        {}",
        if r.partitions_dropped.is_empty() {
            "none".to_string()
        } else {
            format!("{} {drop}", r.partitions_dropped.join(", "))
        }
    );
    if let Some(t) = &r.partition_trimmed {
        let _ = writeln!(s, "boundary:    {t} {trim}");
    }
    match r.rollup_cutoff_ms {
        Some(c) => {
            let _ = writeln!(
                s,
                "roll-ups:    {verb} {} rows older than {} (retention.rollup_days = {})",
                r.rollup_rows_deleted,
                iso(c),
                config.retention.rollup_days
            );
        }
        None => {
            let _ = writeln!(s, "roll-ups:    kept (retention.rollup_days = 0)");
        }
    }
    let verb_free = if r.dry_run { "would cut" } else { "cut" };
    let kept = match config.retention.free_text_min_visitors {
        0 => "none kept (retention.free_text_min_visitors = 0)".to_string(),
        k => format!(
            "{} kept, seen from at least {k} visitors (retention.free_text_min_visitors)",
            r.free_text_rows_kept
        ),
    };
    let _ = writeln!(
        s,
        "free text:   {verb_free} {} roll-up values of days before {} (search terms, URL queries); {kept}",
        r.free_text_rows_expired, r.free_text_before
    );
    if r.vacuumed {
        let _ = writeln!(s, "file:        rewritten with live data only");
    }
    s
}

/// `sparsam audit [--json]`: the view, and whether its verification passed.
pub fn audit_command(config: &Config, json: bool) -> Result<(String, bool), RetentionError> {
    let store = open_store_direct(config)?;
    let view = audit::audit_view(&store, config, Utc::now())?;
    let ok = view.verification.ok;
    let text = if json {
        serde_json::to_string_pretty(&view).unwrap_or_default() + "\n"
    } else {
        audit::render_text(&view)
    };
    Ok((text, ok))
}
