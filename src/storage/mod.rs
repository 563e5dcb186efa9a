//! The store boundary: everything the rest of sparsam asks of stored data,
//! in domain terms (sites, UTC days, dimensions, counters, filters, events),
//! with no table, block or dictionary id in sight.
//!
//! HTTP handlers, reports, retention, import and the application talk only
//! to [`Storage`]; the embedded redb engine (`crate::store`, wrapped by
//! [`redb::RedbStorage`]) is one implementation. A second engine (a
//! column database for sites that outgrow one machine) implements the same
//! trait and leaves the HTTP and report code untouched.
//!
//! Why a trait and not an enum of engines: the engines will live in
//! different crates' worlds (an embedded file and a network client), and a
//! trait object lets the application pick one at start-up while tests hand
//! in the real redb engine without compiling every other engine in. The
//! trait is object safe (`Arc<dyn Storage>`): methods take plain values and
//! `&mut dyn FnMut` visitors, never generic parameters. It is `Send + Sync`
//! because every request handler and the sweeper share one instance. Its
//! methods block (an engine may fsync or wait for a network round trip);
//! async callers run them on a blocking thread, as reads already were.
//!
//! Errors: [`StorageError`] keeps what the caller can act on apart. A full
//! write queue or an engine that is reopening after a disk-full failure is
//! transient (the HTTP layer answers 503 with `Retry-After`); a request the
//! engine cannot answer as asked is the client's ([`StorageError::Rejected`],
//! 400); everything else is an internal failure (500, logged), never blamed
//! on the client.

pub mod clickhouse;
pub mod migrate;
pub mod redb;

use crate::store::ids::DayNumber;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::NaiveDate;
use tokio::sync::oneshot;

use crate::model::Event;
use crate::report::filter::Filter;

pub use crate::store::rollup::{Counters, Dimension, SortBy, Totals, UnknownDimension};
pub use crate::store::sweep::{FreeTextExpiry, FreeTextVetted};
pub use crate::store::{ExpiryPlan, Ranked, RollupExpiry, VacuumReport};

/// Failures at the store boundary, by who can do something about them.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The write queue is full: the engine is behind. Nothing of the batch
    /// was taken; retry later.
    #[error("the store's write queue is full; retry later")]
    Busy,
    /// The engine has shut down and takes no more writes.
    #[error("the store is closed")]
    Closed,
    /// The engine cannot write or read for now (a write failed for lack of
    /// disk space or an I/O error and the engine is reopening, or the
    /// database servers of a networked engine are out of reach); retry later.
    #[error("the store cannot answer for now: {0}")]
    Unavailable(String),
    /// The request asks for something this engine cannot answer as asked
    /// (the client's to change).
    #[error("{0}")]
    Rejected(String),
    /// A failure inside the engine: corrupt data, a broken invariant, a
    /// lost writer. Answered as an internal error and logged.
    #[error("internal store failure: {0}")]
    Internal(String),
}

impl StorageError {
    /// True when retrying the same request later can succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StorageError::Busy | StorageError::Closed | StorageError::Unavailable(_)
        )
    }
}

/// Resolves once a submitted batch is durable (or failed).
pub type PendingAck = oneshot::Receiver<Result<(), StorageError>>;

/// What a filtered query counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counting {
    /// Hourly totals (summary and time series).
    Hourly,
    /// Counters per value of a dimension.
    Breakdown(Dimension),
    /// Search terms of searches that reported no results.
    NoResultSearches,
    /// Distinct visitors and page views (realtime).
    Live,
}

/// A question only raw events can answer: `counting` over the events of
/// `site` received in `[from_ms, to_ms)` that pass every filter.
#[derive(Clone, Debug)]
pub struct FilteredQuery<'a> {
    pub site: &'a str,
    pub from_ms: i64,
    pub to_ms: i64,
    pub filters: &'a [Filter],
    pub counting: Counting,
}

/// The answer of a [`FilteredQuery`], shaped by its [`Counting`].
#[derive(Clone, Debug, PartialEq)]
pub enum FilteredAnswer {
    /// Hourly totals, oldest first; hours without data left out.
    Hourly(Vec<(i64, Totals)>),
    /// Counters per value, rows that count nothing left out.
    Rows(std::collections::HashMap<String, Counters>),
    Live {
        visitors: u64,
        pageviews: u64,
    },
}

/// Goals and a funnel over the visits of `site` in `[from_ms, to_ms)`
/// that pass every filter (a visit passes when any of its events does).
#[derive(Clone, Debug)]
pub struct ConversionQuery<'a> {
    pub site: &'a str,
    pub from_ms: i64,
    pub to_ms: i64,
    pub filters: &'a [Filter],
    pub goals: &'a [crate::goals::Goal],
    pub funnel: Option<&'a crate::goals::Funnel>,
}

/// The answer of a [`ConversionQuery`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conversions {
    /// Visits that pass the filters.
    pub visits: u64,
    /// Per goal, in the query's order.
    pub goals: Vec<GoalCount>,
    /// Per funnel step: visits that reached it after every step before it.
    pub funnel: Vec<u64>,
}

/// One goal's conversions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GoalCount {
    /// Visits with at least one event meeting the goal.
    pub conversions: u64,
    /// Distinct visitors (per day's visitor hash) of those visits.
    pub visitors: u64,
    /// Revenue of the goal's events, in hundredths (`None`: none given).
    pub revenue_cents: Option<i64>,
}

/// One stored event as the privacy verification sees it.
#[derive(Clone, Debug)]
pub struct StoredEventFact {
    /// Name of the place it is stored (the engine's partition name).
    pub partition: String,
    pub site: String,
    /// Position within its partition and site.
    pub seq: u32,
    /// Receipt time, or why the event (or its whole block) cannot be read.
    pub ts_ms: Result<i64, String>,
    /// The stored, shortened address (`None`: it does not decode).
    pub ip: Option<crate::privacy::StoredIp>,
}

/// One roll-up row that carries free text, as the audit sees it.
#[derive(Clone, Copy, Debug)]
pub struct FreeTextRowFact<'a> {
    /// Name of the place it is stored (the engine's table name).
    pub table: &'static str,
    pub site: &'a str,
    pub dimension: Dimension,
    /// Site-local day, days since 1970-01-01.
    pub day: DayNumber,
}

/// Everything the rest of the program needs from stored data. See the
/// module comment for the shape and the error rules.
pub trait Storage: Send + Sync {
    // ---- writes (the engine decides what is durable and when)

    /// Queues `events` for durable storage without waiting. The answer
    /// resolves once they are durable: an acknowledged event survives a
    /// crash. A full queue is [`StorageError::Busy`] at once.
    fn submit(&self, events: Vec<Event>) -> Result<PendingAck, StorageError>;

    /// True while writes are accepted (health check).
    fn is_accepting(&self) -> bool;

    /// Deletes the raw events of UTC day `day`; roll-ups stay. Returns how
    /// many were deleted. Ingest goes on meanwhile.
    fn drop_day(&self, day: NaiveDate) -> Result<u64, StorageError>;

    /// Deletes the events of UTC day `day` received before `cutoff_ms`.
    fn trim_day(&self, day: NaiveDate, cutoff_ms: i64) -> Result<u64, StorageError>;

    /// Deletes stored strings (URLs, titles, search terms, …) that no event
    /// received at or after `cutoff_ms` can use. Returns how many.
    fn expire_strings(&self, cutoff_ms: i64) -> Result<u64, StorageError>;

    /// Counts (`dry_run`) or deletes roll-up rows older than `cutoff_ms`.
    fn expire_rollups(&self, cutoff_ms: i64, dry_run: bool) -> Result<RollupExpiry, StorageError>;

    /// Takes the free text (search terms, URL queries; the dimensions in
    /// `crate::store::rollup::FREE_TEXT_DIMS`) out of the roll-ups of site-local day
    /// `day` (days since 1970-01-01) of `sites`: each value is cut to what
    /// remains without it (counters merged there) or deleted, unless
    /// `keep[site]` holds it. Records `vetted` with it. A dry run only
    /// counts. Ingest goes on meanwhile.
    fn expire_free_text(
        &self,
        day: DayNumber,
        sites: BTreeSet<String>,
        keep: HashMap<String, HashSet<String>>,
        vetted: Option<FreeTextVetted>,
        dry_run: bool,
    ) -> Result<FreeTextExpiry, StorageError>;

    /// Records how far free text in the roll-ups was vetted.
    fn set_free_text_vetted(&self, vetted: FreeTextVetted) -> Result<(), StorageError>;

    /// Deletes the roll-up values that no roll-up row counts any more.
    /// Returns how many.
    fn delete_unused_rollup_values(&self) -> Result<u64, StorageError>;

    /// Rewrites stored data so that deleted bytes are gone from the disk.
    /// Ingest goes on while the data is copied; writes wait only for the
    /// short catch-up at the end.
    fn vacuum(&self) -> Result<VacuumReport, StorageError>;

    /// Commits what is queued and stops taking writes. Idempotent.
    fn close(&self) -> Result<(), StorageError>;

    // ---- reads

    /// Hourly totals of `site` for the hours starting in `[from_ms, to_ms)`,
    /// oldest first; hours without data are left out.
    fn hourly_totals(
        &self,
        site: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, Totals)>, StorageError>;

    /// Values of `dim` for `site` over the site-local days `from..=to`,
    /// ranked by [`Dimension::sort_by`] (descending, ties by value), a page
    /// of `limit` after `offset`, with the count and total of all values.
    fn ranked(
        &self,
        site: &str,
        dim: Dimension,
        from: NaiveDate,
        to: NaiveDate,
        limit: usize,
        offset: usize,
    ) -> Result<Ranked, StorageError>;

    /// Answers a question only raw events can answer (filters, realtime).
    fn filtered(&self, query: &FilteredQuery<'_>) -> Result<FilteredAnswer, StorageError>;

    /// Goal conversions and funnel progress, from the raw events of the
    /// range with the visit engine. An engine that cannot answer them yet
    /// says so as an internal failure: nothing about the request is wrong,
    /// so it is answered 500 and logged, never blamed on the client.
    fn conversions(&self, query: &ConversionQuery<'_>) -> Result<Conversions, StorageError> {
        let _ = query;
        Err(StorageError::Internal(
            "goal and funnel reports are not available with this store engine".into(),
        ))
    }

    // ---- audit facts

    /// UTC days that hold raw events, with their event counts, oldest first.
    fn days(&self) -> Result<Vec<(NaiveDate, u64)>, StorageError>;

    /// Number of raw events stored.
    fn event_count(&self) -> Result<u64, StorageError> {
        Ok(self.days()?.iter().map(|(_, n)| n).sum())
    }

    /// Receipt time of the oldest raw event, if any.
    fn oldest_event_ms(&self) -> Result<Option<i64>, StorageError>;

    /// What deleting everything received before `cutoff_ms` involves.
    fn expiry_plan(&self, cutoff_ms: i64) -> Result<ExpiryPlan, StorageError>;

    /// Calls `visit` with every stored event's time and address (the
    /// privacy verification: it must see every byte and go on past a bad
    /// one).
    fn for_each_stored_event(
        &self,
        visit: &mut dyn FnMut(StoredEventFact),
    ) -> Result<(), StorageError>;

    /// Calls `visit` with the expiry bound of every stored string (an upper
    /// bound on the receipt time of the events that use it).
    fn for_each_string_bound(&self, visit: &mut dyn FnMut(i64)) -> Result<(), StorageError>;

    /// How far free text in the roll-ups was vetted (`None`: never).
    fn free_text_vetted(&self) -> Result<Option<FreeTextVetted>, StorageError>;

    /// Site-local days in `[from_day, before_day)` (every day before
    /// `before_day` when `from_day` is `None`) whose roll-ups hold rows of
    /// a free-text dimension, each with the sites that have them.
    fn free_text_days(
        &self,
        from_day: Option<DayNumber>,
        before_day: DayNumber,
    ) -> Result<BTreeMap<DayNumber, BTreeSet<String>>, StorageError>;

    /// The free text (page URLs, link targets, search terms) of `site`'s
    /// local day `day` in `tz` that at least `min_visitors` distinct
    /// visitors produced, counted from the raw events.
    fn common_free_text(
        &self,
        site: &str,
        tz: chrono_tz::Tz,
        day: DayNumber,
        min_visitors: u32,
    ) -> Result<HashSet<String>, StorageError>;

    /// Calls `visit` for every roll-up row whose value carries free text.
    fn for_each_free_text_row(
        &self,
        visit: &mut dyn FnMut(FreeTextRowFact<'_>),
    ) -> Result<(), StorageError>;

    /// The audit log (never swept): every record as `(number, JSON)`,
    /// oldest first.
    fn audit_records(&self) -> Result<Vec<(u64, String)>, StorageError>;

    /// Appends a record to the audit log, durably; returns its number.
    fn audit_append(&self, json: &str) -> Result<u64, StorageError>;

    /// Replaces audit record `id`, durably.
    fn audit_replace(&self, id: u64, json: &str) -> Result<(), StorageError>;

    // ---- roll-ups that outlive raw events

    /// Makes sure the roll-ups of UTC day `day` outlive its raw events:
    /// called by the sweep before it deletes any raw event of `day` or of
    /// the day before. Free text of site-local days before
    /// `free_text_before` (days since 1970-01-01) is cut as
    /// [`Storage::expire_free_text`] cuts it. An engine whose writer keeps
    /// roll-ups as it stores events (the embedded store) has nothing to do.
    fn keep_rollups(
        &self,
        day: NaiveDate,
        free_text_before: i32,
    ) -> Result<KeptRollups, StorageError> {
        let _ = (day, free_text_before);
        Ok(KeptRollups::default())
    }

    /// The earliest UTC day the stored roll-ups hold counts of (for the
    /// audit: how far back reports reach).
    fn oldest_rollup_day(&self) -> Result<Option<NaiveDate>, StorageError>;

    /// The tables the roll-ups' free text may be stored in (each listed by
    /// the audit, with none found or with what was found).
    fn rollup_tables(&self) -> &'static [&'static str] {
        &["dims_open", "dims_sealed"]
    }
}

/// What [`Storage::keep_rollups`] did for one UTC day.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeptRollups {
    /// Sites whose roll-ups of the day were written now.
    pub sites_written: u64,
    /// Sites whose roll-ups of the day were stored already (a sweep that
    /// stopped before deleting the raw events wrote them).
    pub sites_present: u64,
    /// Rows written.
    pub rows: u64,
    /// Value rows whose free text was cut before they were written.
    pub free_text_cut: u64,
}
