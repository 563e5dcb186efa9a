//! Sealing: packing a closed day of a dimension roll-up into one value.
//!
//! While a site's local day runs, the writer counts into `dims_open`, one
//! row per (dimension, day, value). A 90-day report over a busy site would
//! then read hundreds of thousands of rows, so once the day is over the
//! writer moves all rows of each (site, dimension, day) into one packed
//! `dims_sealed` value (see [`super::rollup::encode_sealed`]). Rows that
//! arrive later for a sealed day (a log import, an exit page that moved
//! after midnight) are merged in at the next sealing; readers always add
//! both, so a report never depends on whether sealing has run.
//!
//! The writer seals when it has nothing queued, in its own short
//! transactions, so sealing never competes with ingest for the write lock.

use super::ids::{DayNumber, DimValueId};
use std::collections::BTreeMap;

use redb::{Database, Durability, ReadableTable};

use super::rollup::{add_signed, decode_signed, encode_sealed, for_each_sealed, Counters};
use super::schema::{DimKey, SealedKey, DIMS_OPEN, DIMS_SEALED};
use super::StoreError;

/// Seals `dims_open` rows of days before each site's current local day
/// (`today(site)`), at most about `max_rows` rows per call. Returns how many
/// rows it moved; call again while that is `max_rows` or more.
pub(crate) fn seal_closed_days(
    db: &Database,
    today: &dyn Fn(&str) -> DayNumber,
    max_rows: usize,
) -> Result<usize, StoreError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    type Rows = Vec<(DimValueId, [i64; 3])>;
    let mut groups: BTreeMap<(String, u8, DayNumber), Rows> = BTreeMap::new();
    let mut moved = 0usize;
    {
        let open = txn.open_table(DIMS_OPEN)?;
        // Rows are ordered by (site, dimension, day): per (site, dimension)
        // read only the closed days, then seek to the next pair, so the
        // rows of the running days (most of the table) are never visited.
        let mut from: (String, u8) = (String::new(), 0);
        'pairs: loop {
            let first = open
                .range::<DimKey>((from.0.as_str(), from.1, DayNumber::MIN, DimValueId::NONE)..)?
                .next();
            let Some(first) = first else { break };
            let (site, dim) = {
                let (k, _) = first?;
                let k = k.value();
                (k.0.to_owned(), k.1)
            };
            let t = today(&site);
            for row in open.range::<DimKey>(
                (site.as_str(), dim, DayNumber::MIN, DimValueId::NONE)
                    ..(site.as_str(), dim, t, DimValueId::NONE),
            )? {
                let (k, v) = row?;
                let (_, _, day, id) = k.value();
                groups
                    .entry((site.clone(), dim, day))
                    .or_default()
                    .push((id, decode_signed(v.value())?));
                moved += 1;
                if moved >= max_rows {
                    break 'pairs;
                }
            }
            from = match dim.checked_add(1) {
                Some(next) => (site, next),
                // the smallest site id after this one
                None => (format!("{site}\0"), 0),
            };
        }
    }
    if groups.is_empty() {
        return Ok(0);
    }
    {
        let mut open = txn.open_table(DIMS_OPEN)?;
        let mut sealed = txn.open_table(DIMS_SEALED)?;
        for ((site, dim, day), rows) in groups {
            let key: SealedKey = (&site, dim, day);
            let mut merged: BTreeMap<DimValueId, [i64; 3]> = BTreeMap::new();
            if let Some(v) = sealed.get(key)? {
                for_each_sealed(v.value(), |id, c| {
                    merged.insert(id, [sat(c.pageviews), sat(c.visits), sat(c.events)]);
                })?;
            }
            for (id, d) in &rows {
                add_signed(merged.entry(*id).or_default(), *d);
                open.remove((site.as_str(), dim, day, *id))?;
            }
            let packed: Vec<(DimValueId, Counters)> = merged
                .into_iter()
                .map(|(id, c)| (id, Counters::from_signed(c)))
                .filter(|(_, c)| *c != Counters::default())
                .collect();
            if packed.is_empty() {
                sealed.remove(key)?;
            } else {
                sealed.insert(key, encode_sealed(&packed).as_slice())?;
            }
        }
    }
    txn.commit()?;
    Ok(moved)
}

fn sat(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}
