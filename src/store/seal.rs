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

use std::collections::{BTreeMap, HashMap};

use redb::{Database, Durability, ReadableTable};

use super::rollup::{decode_signed, encode_sealed, for_each_sealed, Counters};
use super::schema::{SealedKey, DIMS_OPEN, DIMS_SEALED};
use super::StoreError;

/// Seals `dims_open` rows of days before each site's current local day
/// (`today(site)`), at most about `max_rows` rows per call. Returns how many
/// rows it moved; call again while that is `max_rows` or more.
pub(crate) fn seal_closed_days(
    db: &Database,
    today: &dyn Fn(&str) -> i32,
    max_rows: usize,
) -> Result<usize, StoreError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    type Rows = Vec<(u32, [i64; 3])>;
    let mut groups: BTreeMap<(String, u8, i32), Rows> = BTreeMap::new();
    let mut moved = 0usize;
    {
        let open = txn.open_table(DIMS_OPEN)?;
        let mut today_of: HashMap<String, i32> = HashMap::new();
        for row in open.iter()? {
            let (k, v) = row?;
            let (site, dim, day, id) = k.value();
            let t = match today_of.get(site) {
                Some(t) => *t,
                None => {
                    let t = today(site);
                    today_of.insert(site.to_owned(), t);
                    t
                }
            };
            if day >= t {
                continue;
            }
            groups
                .entry((site.to_owned(), dim, day))
                .or_default()
                .push((id, decode_signed(v.value())?));
            moved += 1;
            if moved >= max_rows {
                break;
            }
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
            let mut merged: BTreeMap<u32, [i64; 3]> = BTreeMap::new();
            if let Some(v) = sealed.get(key)? {
                for_each_sealed(v.value(), |id, c| {
                    merged.insert(id, [sat(c.pageviews), sat(c.visits), sat(c.events)]);
                })?;
            }
            for (id, d) in &rows {
                let m = merged.entry(*id).or_default();
                for (x, dx) in m.iter_mut().zip(d) {
                    *x = x.saturating_add(*dx);
                }
                open.remove((site.as_str(), dim, day, *id))?;
            }
            let packed: Vec<(u32, Counters)> = merged
                .into_iter()
                .filter(|(_, c)| c.iter().any(|&x| x > 0))
                .map(|(id, c)| {
                    let u = |x: i64| u64::try_from(x).unwrap_or(0);
                    (
                        id,
                        Counters {
                            pageviews: u(c[0]),
                            visits: u(c[1]),
                            events: u(c[2]),
                        },
                    )
                })
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
