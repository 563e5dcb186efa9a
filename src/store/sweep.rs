//! Deleting expired data, in short transactions, for the retention sweeper.
//!
//! The rule is exact: every raw event with `ts_ms < cutoff` goes. Day
//! partitions that end at or before the cutoff are dropped whole (one
//! table, one transaction per day); the one partition the cutoff falls
//! into is rewritten without its expired events. Dictionary strings whose
//! bound (the end of the hour of their last use) is at or before the cutoff
//! are used by no surviving event and go too. Each step is its own durable
//! transaction (strings go in chunks), run by the writer thread as a step
//! of a maintenance command (`super::commands`) with batches in between,
//! so ingest waits at most for one step, never for a whole sweep, and a
//! crash between steps leaves a consistent file that the next sweep
//! finishes. The writer forgets what each step made stale (a day's state,
//! cached string or roll-up value ids), only that, so today's state
//! survives a sweep. Roll-ups are trimmed by their own cutoff, and roll-up
//! values no roll-up uses any more are deleted with them.
//!
//! Free text in roll-ups (see [`super::rollup::FREE_TEXT_DIMS`]) does not
//! follow the roll-ups' cutoff but the raw one: [`Store::expire_free_text`]
//! rewrites one local day of those dimensions at a time, cutting each
//! value to what [`super::rollup::without_free_text`] keeps (its counters
//! merged there) unless the caller's rule keeps it. `meta` records up to
//! which day and under which rule free text was vetted, so each day is
//! vetted once, while its raw events still exist to count visitors.

use super::ids::{DayNumber, DimValueId, StringId};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::ControlFlow;

use chrono::NaiveDate;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableHandle};

use super::codec::{decode_block, BlockBuilder, Cols, RawEvent};
use super::dict::{resolve_dim, split_raw_value};
use super::rollup::{
    add_signed, decode_signed, encode_sealed, for_each_sealed, without_free_text, Counters,
    Dimension, FREE_TEXT_DIMS,
};
use super::schema::{
    self, DAY_COUNTS, DIMS_OPEN, DIMS_SEALED, DIM_VALUES, DIM_VALUE_IDS, HOURLY, META, STRINGS,
    STRING_IDS,
};
use super::state::{DayState, InternedEvent, NoSink};
use super::{open_optional, Store, StoreError};

/// What deleting everything before a cutoff involves (or involved).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExpiryPlan {
    /// Partitions entirely before the cutoff, with their event counts.
    pub whole: Vec<(NaiveDate, u64)>,
    /// The partition the cutoff falls into, with the number of its events
    /// older than the cutoff (only when that number is not zero).
    pub boundary: Option<(NaiveDate, u64)>,
    /// Dictionary strings used only by events before the cutoff.
    pub strings: u64,
}

impl ExpiryPlan {
    pub fn events(&self) -> u64 {
        self.whole.iter().map(|(_, n)| n).sum::<u64>() + self.boundary.map_or(0, |(_, n)| n)
    }
}

/// Roll-up rows older than a cutoff.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RollupExpiry {
    pub hourly_rows: u64,
    pub dim_rows: u64,
}

/// Free text taken out of the roll-ups of one or more days (or, dry, that
/// would be).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FreeTextExpiry {
    /// Rows whose value lost its free text: cut to the value without it
    /// (counters merged there) or deleted.
    pub rows_expired: u64,
    /// Rows whose free text the rule kept (seen from enough visitors).
    pub rows_kept: u64,
    /// Expired rows per dimension.
    pub by_dimension: BTreeMap<Dimension, u64>,
}

impl FreeTextExpiry {
    pub fn add(&mut self, o: &FreeTextExpiry) {
        self.rows_expired += o.rows_expired;
        self.rows_kept += o.rows_kept;
        for (d, n) in &o.by_dimension {
            *self.by_dimension.entry(*d).or_default() += n;
        }
    }
}

/// How far free text in the roll-ups has been vetted: every local day
/// before `before_day`, under a rule that kept only values seen from at
/// least `min_visitors` distinct visitors (`u32::MAX`: none kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FreeTextVetted {
    pub before_day: DayNumber,
    pub min_visitors: u32,
}

const META_FREE_TEXT_BEFORE: &str = "free_text_vetted_before_day";
const META_FREE_TEXT_RULE: &str = "free_text_vetted_min_visitors";

/// Dictionary strings deleted per writer command when strings expire:
/// each deletion dirties a leaf of `string_ids` (keyed by the string, so
/// they spread), and a few hundred keep a command within milliseconds.
pub const STRINGS_PER_TXN: usize = 256;

/// Unused roll-up values deleted per writer command, for the same reason.
pub const DIM_VALUES_PER_TXN: usize = 256;

impl Store {
    /// Which partitions, events and strings are older than `cutoff_ms`
    /// (read only).
    pub fn expiry_plan(&self, cutoff_ms: i64) -> Result<ExpiryPlan, StoreError> {
        let boundary_day = schema::utc_day(cutoff_ms);
        let stats = self.partition_stats()?;
        let mut plan = ExpiryPlan::default();
        for (day, n) in stats {
            if day < boundary_day {
                plan.whole.push((day, n));
            } else if day == boundary_day {
                let snap = self.snapshot()?;
                let mut old = 0u64;
                for site in snap.sites_of(day)? {
                    snap.scan_days(
                        &site,
                        schema::day_start_ms(day),
                        cutoff_ms,
                        Cols::NONE,
                        |d| {
                            old += d.events.len() as u64;
                            Ok(ControlFlow::Continue(()))
                        },
                    )?;
                }
                if old > 0 {
                    plan.boundary = Some((day, old));
                }
            }
        }
        self.snapshot()?
            .for_each_string_bound(|_, bound| plan.strings += u64::from(bound <= cutoff_ms))?;
        Ok(plan)
    }

    /// Deletes the events of partition `day` older than `cutoff_ms`, in one
    /// durable transaction, by rewriting each site's blocks without them.
    /// Returns how many were deleted. Only the writer calls this.
    pub(crate) fn trim_partition(&self, day: NaiveDate, cutoff_ms: i64) -> Result<u64, StoreError> {
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        let name = schema::day_table_name(schema::EVENTS_PREFIX, day);
        if !txn.list_tables()?.any(|t| t.name() == name) {
            return Ok(0);
        }
        let mut deleted = 0u64;
        let mut kept_by_site: Vec<(String, u64)> = Vec::new();
        {
            let mut t = txn.open_table(schema::events_table(&name))?;
            let mut blocks: HashMap<String, Vec<(u32, Vec<u8>)>> = HashMap::new();
            for row in t.iter()? {
                let (k, v) = row?;
                let (site, no) = k.value();
                blocks
                    .entry(site.to_owned())
                    .or_default()
                    .push((no, v.value().to_vec()));
            }
            for (site, rows) in blocks {
                let (new_blocks, removed) = rewrite_without_old(&rows, cutoff_ms)?;
                if removed == 0 {
                    continue;
                }
                deleted += removed;
                for (no, _) in &rows {
                    t.remove((site.as_str(), *no))?;
                }
                let mut kept = 0u64;
                for (no, b) in new_blocks.iter().enumerate() {
                    kept += b.len() as u64;
                    let no = u32::try_from(no).unwrap_or(u32::MAX);
                    t.insert((site.as_str(), no), b.encode().as_slice())?;
                }
                kept_by_site.push((site, kept));
            }
        }
        if deleted == 0 {
            return Ok(0);
        }
        {
            let mut counts = txn.open_table(DAY_COUNTS)?;
            let d = DayNumber::of(day);
            for (site, kept) in &kept_by_site {
                // the writer folded the roll-ups before this step: they
                // include every event the day keeps
                if *kept == 0 {
                    counts.remove((d, site.as_str()))?;
                    super::open_rollups::set_watermark(&txn, d, site, None)?;
                } else {
                    counts.insert((d, site.as_str()), *kept)?;
                    super::open_rollups::set_watermark(&txn, d, site, Some(*kept))?;
                }
            }
        }
        txn.commit()?;
        Ok(deleted)
    }

    /// Dictionary strings that no event at or after `cutoff_ms` can use
    /// (their bound is at or before it), found in a snapshot on the
    /// caller's thread. Run after the partitions before the cutoff are
    /// gone; the writer then deletes them with
    /// [`Store::expire_string_chunk`], [`STRINGS_PER_TXN`] per command, so
    /// ingest waits for one small chunk at most, never for the dictionary.
    pub(crate) fn string_expiry_candidates(
        &self,
        cutoff_ms: i64,
    ) -> Result<Vec<StringId>, StoreError> {
        let mut candidates: Vec<StringId> = Vec::new();
        self.snapshot()?.for_each_string_bound(|id, bound| {
            if bound <= cutoff_ms {
                candidates.push(id);
            }
        })?;
        Ok(candidates)
    }

    /// Deletes the strings `chunk` of [`Store::string_expiry_candidates`]
    /// in one durable transaction, each checked again: a string used since
    /// the snapshot has a later bound and stays. Returns the ids and keys
    /// of those that went (the writer forgets them).
    pub(crate) fn expire_string_chunk(
        &self,
        chunk: &[StringId],
        cutoff_ms: i64,
    ) -> Result<Vec<(StringId, Vec<u8>)>, StoreError> {
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        let mut gone: Vec<(StringId, Vec<u8>)> = Vec::new();
        {
            let mut strings = txn.open_table(STRINGS)?;
            let mut ids = txn.open_table(STRING_IDS)?;
            for &id in chunk {
                let key = match strings.get(id)? {
                    Some(v) => {
                        let (bound, key) = split_raw_value(v.value())?;
                        // an event since the snapshot moved its bound
                        if bound > cutoff_ms {
                            continue;
                        }
                        key.to_vec()
                    }
                    None => continue,
                };
                strings.remove(id)?;
                ids.remove(key.as_slice())?;
                gone.push((id, key));
            }
        }
        if !gone.is_empty() {
            txn.commit()?;
        }
        Ok(gone)
    }

    /// Counts (`dry_run`) or deletes roll-up rows older than `cutoff_ms`:
    /// hourly rows of hours that start before it and daily dimension rows
    /// of site-local days before its UTC day; then the roll-up values that
    /// no remaining row uses. Deleting is the writer's (a command); counting
    /// only reads.
    pub(crate) fn expire_rollups(
        &self,
        cutoff_ms: i64,
        dry_run: bool,
    ) -> Result<RollupExpiry, StoreError> {
        let cut_hour = schema::hour_of(cutoff_ms);
        let cut_day = DayNumber::of(schema::utc_day(cutoff_ms));
        let mut out = RollupExpiry::default();
        if dry_run {
            let txn = self.db()?.begin_read()?;
            if let Some(t) = open_optional(&txn, HOURLY)? {
                for row in t.iter()? {
                    out.hourly_rows += u64::from(row?.0.value().1 < cut_hour);
                }
            }
            if let Some(t) = open_optional(&txn, DIMS_OPEN)? {
                for row in t.iter()? {
                    out.dim_rows += u64::from(row?.0.value().2 < cut_day);
                }
            }
            if let Some(t) = open_optional(&txn, DIMS_SEALED)? {
                for row in t.iter()? {
                    let (k, v) = row?;
                    if k.value().2 < cut_day {
                        for_each_sealed(v.value(), |_, _| out.dim_rows += 1)?;
                    }
                }
            }
            return Ok(out);
        }
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        {
            let mut t = txn.open_table(HOURLY)?;
            let before = t.len()?;
            t.retain(|k, _| k.1 >= cut_hour)?;
            out.hourly_rows = before - t.len()?;
        }
        {
            let mut t = txn.open_table(DIMS_OPEN)?;
            let before = t.len()?;
            t.retain(|k, _| k.2 >= cut_day)?;
            out.dim_rows = before - t.len()?;
        }
        {
            let mut t = txn.open_table(DIMS_SEALED)?;
            let mut old: Vec<(String, u8, DayNumber)> = Vec::new();
            for row in t.iter()? {
                let (k, v) = row?;
                let (site, dim, day) = k.value();
                if day < cut_day {
                    for_each_sealed(v.value(), |_, _| out.dim_rows += 1)?;
                    old.push((site.to_owned(), dim, day));
                }
            }
            for (site, dim, day) in &old {
                t.remove((site.as_str(), *dim, *day))?;
            }
        }
        if out.dim_rows > 0 {
            self.delete_unused_dim_values_in(&txn)?;
        }
        txn.commit()?;
        Ok(out)
    }

    fn delete_unused_dim_values_in(&self, txn: &redb::WriteTransaction) -> Result<u64, StoreError> {
        let mut used: HashSet<DimValueId> = HashSet::new();
        for row in txn.open_table(DIMS_OPEN)?.iter()? {
            used.insert(row?.0.value().3);
        }
        for row in txn.open_table(DIMS_SEALED)?.iter()? {
            for_each_sealed(row?.1.value(), |id, _| {
                used.insert(id);
            })?;
        }
        let mut unused: Vec<(DimValueId, String)> = Vec::new();
        for row in txn.open_table(DIM_VALUES)?.iter()? {
            let (k, v) = row?;
            if !used.contains(&k.value()) {
                unused.push((k.value(), v.value().to_owned()));
            }
        }
        let mut values = txn.open_table(DIM_VALUES)?;
        let mut ids = txn.open_table(DIM_VALUE_IDS)?;
        for (id, s) in &unused {
            values.remove(*id)?;
            ids.remove(s.as_str())?;
        }
        Ok(unused.len() as u64)
    }

    /// How far free text in the roll-ups was vetted (`None`: never).
    pub fn free_text_vetted(&self) -> Result<Option<FreeTextVetted>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let Some(meta) = open_optional(&txn, META)? else {
            return Ok(None);
        };
        let before = meta.get(META_FREE_TEXT_BEFORE)?.map(|v| v.value());
        let rule = meta.get(META_FREE_TEXT_RULE)?.map(|v| v.value());
        Ok(before.zip(rule).map(|(b, r)| FreeTextVetted {
            before_day: DayNumber::from_stored(i32::try_from(b).unwrap_or(i32::MAX)),
            min_visitors: r,
        }))
    }

    /// Records how far free text was vetted (one durable transaction).
    /// Only the writer calls this (a command).
    pub(crate) fn set_free_text_vetted(&self, v: FreeTextVetted) -> Result<(), StoreError> {
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        write_vetted(&txn, v)?;
        txn.commit()?;
        Ok(())
    }

    /// Local days in `[from_day, before_day)` (all before `before_day` when
    /// `from_day` is `None`) with roll-up rows in a free-text dimension,
    /// each with the sites that have them.
    pub fn free_text_days(
        &self,
        from_day: Option<DayNumber>,
        before_day: DayNumber,
    ) -> Result<BTreeMap<DayNumber, BTreeSet<String>>, StoreError> {
        let from = from_day.unwrap_or(DayNumber::MIN);
        let free = |dim: u8| Dimension::from_u8(dim).is_some_and(|d| FREE_TEXT_DIMS.contains(&d));
        let mut out: BTreeMap<DayNumber, BTreeSet<String>> = BTreeMap::new();
        let txn = self.db()?.begin_read()?;
        if let Some(t) = open_optional(&txn, DIMS_SEALED)? {
            for row in t.iter()? {
                let (k, _) = row?;
                let (site, dim, day) = k.value();
                if free(dim) && day >= from && day < before_day {
                    out.entry(day).or_default().insert(site.to_owned());
                }
            }
        }
        if let Some(t) = open_optional(&txn, DIMS_OPEN)? {
            for row in t.iter()? {
                let (k, _) = row?;
                let (site, dim, day, _) = k.value();
                if free(dim) && day >= from && day < before_day {
                    out.entry(day).or_default().insert(site.to_owned());
                }
            }
        }
        Ok(out)
    }

    /// Works out, from a snapshot and off the writer thread, how the free
    /// text leaves `site`'s dimension `dim` on local day `day`: every value
    /// that `keep(site, value)` does not keep is cut to what
    /// [`without_free_text`] leaves (counters merged into that value) or
    /// deleted, and the day's open rows are merged into its sealed value on
    /// the way (the day is long closed). `None` when nothing changes. The
    /// writer applies the result with [`Store::apply_free_text_cut`], so it
    /// only compares and writes a few rows.
    pub(crate) fn plan_free_text_cut(
        &self,
        site: &str,
        dim: Dimension,
        day: DayNumber,
        keep: &dyn Fn(&str, &str) -> bool,
    ) -> Result<Option<FreeTextCutPlan>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let (Some(values), Some(value_ids)) = (
            open_optional(&txn, DIM_VALUES)?,
            open_optional(&txn, DIM_VALUE_IDS)?,
        ) else {
            return Ok(None);
        };
        let d = dim as u8;
        let mut rows: BTreeMap<DimValueId, [i64; 3]> = BTreeMap::new();
        let mut sealed_before = None;
        if let Some(sealed) = open_optional(&txn, DIMS_SEALED)? {
            if let Some(v) = sealed.get((site, d, day))? {
                for_each_sealed(v.value(), |id, c| {
                    rows.insert(id, [sat(c.pageviews), sat(c.visits), sat(c.events)]);
                })?;
                sealed_before = Some(v.value().to_vec());
            }
        }
        let mut open_before: Vec<(DimValueId, Vec<u8>)> = Vec::new();
        if let Some(open) = open_optional(&txn, DIMS_OPEN)? {
            for row in open.range::<schema::DimKey>(
                (site, d, day, DimValueId::NONE)..=(site, d, day, DimValueId::MAX),
            )? {
                let (k, v) = row?;
                let id = k.value().3;
                add_signed(rows.entry(id).or_default(), decode_signed(v.value())?);
                open_before.push((id, v.value().to_vec()));
            }
        }
        let mut plan = FreeTextCutPlan {
            site: site.to_owned(),
            dim,
            day,
            sealed_before,
            open_before,
            rows: Vec::with_capacity(rows.len()),
            expired: 0,
            kept: 0,
        };
        for (id, c) in rows {
            let value = resolve_dim(&values, id)?;
            let target = match without_free_text(dim, &value) {
                None => CutTarget::Id(id),
                Some(_) if keep(site, &value) => {
                    plan.kept += 1;
                    CutTarget::Id(id)
                }
                Some("") => CutTarget::Gone,
                Some(cut) => match value_ids.get(cut)? {
                    Some(cut_id) => CutTarget::Id(cut_id.value()),
                    None => CutTarget::New(cut.to_owned()),
                },
            };
            if !matches!(target, CutTarget::Id(t) if t == id) {
                plan.expired += 1;
            }
            plan.rows.push((target, c));
        }
        Ok((plan.expired > 0 || plan.kept > 0).then_some(plan))
    }

    /// Applies one [`FreeTextCutPlan`] whose new values all have ids
    /// (`new_ids`), in one durable transaction, if the rows it was planned
    /// from are still as they were (an import may have added to the day
    /// since); `vetted`, when given, is recorded with it. Returns false,
    /// changing nothing, when they are not, and the caller plans again.
    /// Only the writer calls this (a command). Returns the value ids the
    /// day's rows now use.
    pub(crate) fn apply_free_text_cut(
        &self,
        plan: &FreeTextCutPlan,
        new_ids: &HashMap<String, DimValueId>,
        vetted: Option<FreeTextVetted>,
    ) -> Result<Option<Vec<DimValueId>>, StoreError> {
        let mut merged: BTreeMap<DimValueId, [i64; 3]> = BTreeMap::new();
        for (target, c) in &plan.rows {
            let id = match target {
                CutTarget::Id(id) => *id,
                CutTarget::Gone => continue,
                CutTarget::New(value) => *new_ids.get(value).ok_or(StoreError::Invariant(
                    "a cut roll-up value was interned before its cut",
                ))?,
            };
            add_signed(merged.entry(id).or_default(), *c);
        }
        let packed: Vec<(DimValueId, Counters)> = merged
            .into_iter()
            .map(|(id, c)| (id, Counters::from_signed(c)))
            .filter(|(_, c)| *c != Counters::default())
            .collect();
        let site = plan.site.as_str();
        let d = plan.dim as u8;
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        {
            let mut open = txn.open_table(DIMS_OPEN)?;
            let mut sealed = txn.open_table(DIMS_SEALED)?;
            let sealed_now = sealed.get((site, d, plan.day))?.map(|v| v.value().to_vec());
            let mut open_now: Vec<(DimValueId, Vec<u8>)> = Vec::new();
            for row in open.range::<schema::DimKey>(
                (site, d, plan.day, DimValueId::NONE)..=(site, d, plan.day, DimValueId::MAX),
            )? {
                let (k, v) = row?;
                open_now.push((k.value().3, v.value().to_vec()));
            }
            if sealed_now != plan.sealed_before || open_now != plan.open_before {
                // dropping the transaction aborts it
                return Ok(None);
            }
            for (id, _) in &open_now {
                open.remove((site, d, plan.day, *id))?;
            }
            if packed.is_empty() {
                sealed.remove((site, d, plan.day))?;
            } else {
                sealed.insert((site, d, plan.day), encode_sealed(&packed).as_slice())?;
            }
        }
        if let Some(v) = vetted {
            write_vetted(&txn, v)?;
        }
        txn.commit()?;
        Ok(Some(packed.into_iter().map(|(id, _)| id).collect()))
    }

    /// Roll-up values that no roll-up row refers to, found in a snapshot
    /// off the writer thread; the writer deletes them with
    /// [`Store::delete_dim_values`], a few hundred per command.
    pub(crate) fn unused_dim_values(&self) -> Result<Vec<(DimValueId, String)>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let mut used: HashSet<DimValueId> = HashSet::new();
        if let Some(t) = open_optional(&txn, DIMS_OPEN)? {
            for row in t.iter()? {
                used.insert(row?.0.value().3);
            }
        }
        if let Some(t) = open_optional(&txn, DIMS_SEALED)? {
            for row in t.iter()? {
                for_each_sealed(row?.1.value(), |id, _| {
                    used.insert(id);
                })?;
            }
        }
        let mut unused: Vec<(DimValueId, String)> = Vec::new();
        if let Some(t) = open_optional(&txn, DIM_VALUES)? {
            for row in t.iter()? {
                let (k, v) = row?;
                if !used.contains(&k.value()) {
                    unused.push((k.value(), v.value().to_owned()));
                }
            }
        }
        Ok(unused)
    }

    /// Deletes the roll-up values `values` of [`Store::unused_dim_values`]
    /// in one durable transaction, except those in `used_since` (the
    /// writer has put them into a row since the snapshot). Returns the
    /// values deleted. Only the writer calls this (a command).
    pub(crate) fn delete_dim_values(
        &self,
        values: &[(DimValueId, String)],
        used_since: &HashSet<DimValueId>,
    ) -> Result<Vec<(DimValueId, String)>, StoreError> {
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        let mut deleted = Vec::new();
        {
            let mut by_id = txn.open_table(DIM_VALUES)?;
            let mut ids = txn.open_table(DIM_VALUE_IDS)?;
            for (id, value) in values {
                if used_since.contains(id) {
                    continue;
                }
                if by_id.remove(*id)?.is_some() {
                    ids.remove(value.as_str())?;
                    deleted.push((*id, value.clone()));
                }
            }
        }
        if !deleted.is_empty() {
            txn.commit()?;
        }
        Ok(deleted)
    }
}

/// What one (site, free-text dimension, local day) becomes once its free
/// text is cut, and what it was when that was worked out.
#[derive(Debug)]
pub(crate) struct FreeTextCutPlan {
    site: String,
    dim: Dimension,
    day: DayNumber,
    /// The sealed value and open rows the plan was made from.
    sealed_before: Option<Vec<u8>>,
    open_before: Vec<(DimValueId, Vec<u8>)>,
    /// Each row's counters and where they go.
    rows: Vec<(CutTarget, [i64; 3])>,
    /// Rows whose value lost its free text.
    pub expired: u64,
    /// Rows whose free text the rule kept.
    pub kept: u64,
}

impl FreeTextCutPlan {
    /// Cut values that have no roll-up value id yet.
    pub(crate) fn new_values(&self) -> impl Iterator<Item = &str> {
        self.rows.iter().filter_map(|(t, _)| match t {
            CutTarget::New(v) => Some(v.as_str()),
            _ => None,
        })
    }
}

/// Where a row's counters go when its free text is cut.
#[derive(Debug)]
enum CutTarget {
    /// To this value (itself, or a cut value that has an id).
    Id(DimValueId),
    /// To a cut value the roll-up dictionary does not hold yet.
    New(String),
    /// Nowhere: the row goes (the day's totals keep the count).
    Gone,
}

impl Store {
    /// The free-text strings (page URLs, link targets, search terms) of
    /// `site`'s local day `day` in `tz` that at least `min_visitors` distinct
    /// visitors produced, counted from the raw events.
    pub fn common_free_text(
        &self,
        site: &str,
        tz: chrono_tz::Tz,
        day: DayNumber,
        min_visitors: u32,
    ) -> Result<HashSet<String>, StoreError> {
        use chrono::TimeZone;
        let date = day.date();
        // a local day lies within the UTC day before, itself and the one after
        let from = schema::day_start_ms(date) - schema::MS_PER_DAY;
        let to = from + 3 * schema::MS_PER_DAY;
        let snap = self.snapshot()?;
        let cols = Cols::NONE
            .with(super::Col::Visitor)
            .with(super::Col::Url)
            .with(super::Col::Target)
            .with(super::Col::SearchTerm);
        // visitors are numbered per UTC day (the salt changes at midnight)
        let mut seen: HashMap<StringId, HashSet<(DayNumber, u32)>> = HashMap::new();
        snap.scan_days(site, from, to, cols, |d| {
            let utc = DayNumber::of(d.day);
            for e in &d.events {
                let local = tz
                    .timestamp_millis_opt(e.ts_ms)
                    .single()
                    .map(|t| t.date_naive());
                if local != Some(date) {
                    continue;
                }
                for id in [e.url, e.target, e.search_term] {
                    if !id.is_none() {
                        seen.entry(id).or_default().insert((utc, e.visitor));
                    }
                }
            }
            Ok(ControlFlow::Continue(()))
        })?;
        let mut resolver = snap.resolver()?;
        let mut out = HashSet::new();
        for (id, visitors) in seen {
            if visitors.len() >= min_visitors as usize {
                out.insert(resolver.text(id)?);
            }
        }
        Ok(out)
    }

    /// Calls `f(table, site, dimension, local day)` for every roll-up row
    /// whose value carries free text (for the audit).
    pub fn for_each_free_text_row(
        &self,
        mut f: impl FnMut(&'static str, &str, Dimension, DayNumber),
    ) -> Result<(), StoreError> {
        let txn = self.db()?.begin_read()?;
        let Some(values) = open_optional(&txn, DIM_VALUES)? else {
            return Ok(());
        };
        let mut cache: HashMap<(Dimension, DimValueId), bool> = HashMap::new();
        let mut is_free = |dim: Dimension, id: DimValueId| -> Result<bool, StoreError> {
            if let Some(&b) = cache.get(&(dim, id)) {
                return Ok(b);
            }
            let b = without_free_text(dim, &resolve_dim(&values, id)?).is_some();
            cache.insert((dim, id), b);
            Ok(b)
        };
        let free_dim = |d: u8| Dimension::from_u8(d).filter(|d| FREE_TEXT_DIMS.contains(d));
        if let Some(t) = open_optional(&txn, DIMS_OPEN)? {
            for row in t.iter()? {
                let (k, _) = row?;
                let (site, d, day, id) = k.value();
                if let Some(dim) = free_dim(d) {
                    if is_free(dim, id)? {
                        f("dims_open", site, dim, day);
                    }
                }
            }
        }
        if let Some(t) = open_optional(&txn, DIMS_SEALED)? {
            for row in t.iter()? {
                let (k, v) = row?;
                let (site, d, day) = k.value();
                let Some(dim) = free_dim(d) else { continue };
                let mut ids: Vec<DimValueId> = Vec::new();
                for_each_sealed(v.value(), |id, _| ids.push(id))?;
                for id in ids {
                    if is_free(dim, id)? {
                        f("dims_sealed", site, dim, day);
                    }
                }
            }
        }
        Ok(())
    }

    /// The earliest hour (since the epoch) the hourly roll-ups of any site
    /// hold (for the audit: how far back reports reach).
    pub fn oldest_rollup_hour(&self) -> Result<Option<i64>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let Some(t) = open_optional(&txn, super::schema::HOURLY)? else {
            return Ok(None);
        };
        let mut oldest: Option<i64> = None;
        for row in t.iter()? {
            let (k, _) = row?;
            let (_, hour) = k.value();
            oldest = Some(oldest.map_or(hour, |o| o.min(hour)));
        }
        Ok(oldest)
    }
}

fn write_vetted(txn: &redb::WriteTransaction, v: FreeTextVetted) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META)?;
    meta.insert(
        META_FREE_TEXT_BEFORE,
        u32::try_from(v.before_day.stored()).unwrap_or(0),
    )?;
    meta.insert(META_FREE_TEXT_RULE, v.min_visitors)?;
    Ok(())
}

fn sat(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

/// Re-encodes one site's blocks of a day without the events before
/// `cutoff_ms`, numbering visitors and page views afresh. Returns the new
/// blocks and how many events were left out.
fn rewrite_without_old(
    rows: &[(u32, Vec<u8>)],
    cutoff_ms: i64,
) -> Result<(Vec<BlockBuilder>, u64), StoreError> {
    // Numbered afresh exactly as the writer numbers a day (its day state,
    // replayed without roll-ups), so the rewritten day loads like any other.
    let mut state = DayState::empty();
    let mut hashes: Vec<u64> = Vec::new();
    let mut pageview_ids: Vec<u64> = Vec::new();
    let mut out: Vec<BlockBuilder> = Vec::new();
    let mut removed = 0u64;
    for (_, bytes) in rows {
        let block = decode_block(bytes, Cols::ALL)?;
        hashes.extend_from_slice(&block.new_visitors);
        pageview_ids.extend_from_slice(&block.new_pageviews);
        for e in &block.events {
            if e.ts_ms < cutoff_ms {
                removed += 1;
                continue;
            }
            let hash = *hashes
                .get(e.visitor as usize)
                .ok_or_else(|| StoreError::Decode("event block: visitor number".into()))?;
            let pageview_id = match e.pageview {
                0 => 0,
                p => *pageview_ids
                    .get(p as usize - 1)
                    .ok_or_else(|| StoreError::Decode("event block: page-view number".into()))?,
            };
            let input = InternedEvent::from_raw(e, hash, pageview_id);
            let step = state.step(
                None,
                &input,
                &|_| DayNumber::default(),
                u32::MAX,
                &mut NoSink,
            );
            // everything but the numbers stays as stored
            let raw = RawEvent {
                visitor: step.visitor,
                pageview: step.pageview,
                ..*e
            };
            let ip = block
                .ips
                .get(usize::from(e.ip))
                .ok_or_else(|| StoreError::Decode("event block: address index".into()))?;
            if let Some(full) = state.push(&raw, &step, &input, ip) {
                out.push(full.block);
            }
        }
    }
    if !state.tail.is_empty() {
        out.push(state.tail);
    }
    Ok((out, removed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{test_event, StoreOptions, Writer, WriterOptions};
    use std::sync::Arc;

    #[test]
    fn plan_drop_and_trim_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path().join("db"), &StoreOptions::default()).unwrap());
        let w = Writer::spawn(store.clone(), WriterOptions::default()).unwrap();
        let day = schema::MS_PER_DAY;
        let base = 20_000 * day;
        let evs = vec![
            test_event("a", base + 100, 1),
            test_event("a", base + day + 10, 2),
            test_event("b", base + day + 20, 3),
            test_event("a", base + day + 30, 4),
            test_event("a", base + 2 * day, 5),
        ];
        w.submit(evs).unwrap().blocking_recv().unwrap().unwrap();
        let cutoff = base + day + 30;
        let plan = store.expiry_plan(cutoff).unwrap();
        assert_eq!(plan.whole, vec![(schema::utc_day(base), 1)]);
        assert_eq!(plan.boundary, Some((schema::utc_day(cutoff), 2)));
        assert_eq!(plan.events(), 3);
        assert_eq!(w.drop_day(schema::utc_day(base)).unwrap(), 1);
        assert_eq!(w.trim_day(schema::utc_day(cutoff), cutoff).unwrap(), 2);
        assert_eq!(store.event_count().unwrap(), 2);
        assert_eq!(store.oldest_event_ts().unwrap(), Some(cutoff));
        let after = store.expiry_plan(cutoff).unwrap();
        assert_eq!((after.whole.len(), after.boundary), (0, None));
        let r = store.expire_rollups(cutoff, true).unwrap();
        assert!(r.hourly_rows > 0);
        assert_eq!(w.expire_rollups(cutoff).unwrap(), r);
        assert_eq!(
            store.expire_rollups(cutoff, true).unwrap(),
            RollupExpiry::default()
        );
        w.shutdown_blocking().unwrap();
        // the surviving events still read back whole
        let mut n = 0;
        store
            .scan_events("a", 0, i64::MAX, |e| {
                assert_eq!(e.url, "https://example.org/");
                n += 1;
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(n, 2);
    }
}
