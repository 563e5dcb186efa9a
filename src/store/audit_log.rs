//! The audit log table: records of sweeps and of the privacy settings in
//! force, as JSON text under increasing numbers. It is never swept; what a
//! record says is `crate::retention::audit`'s business, this only keeps it.

use redb::{ReadableDatabase, ReadableTable};

use super::schema::AUDIT;
use super::{Store, StoreError};

impl Store {
    /// Every audit record as `(number, JSON)`, oldest first.
    pub fn audit_records(&self) -> Result<Vec<(u64, String)>, StoreError> {
        let txn = self.db()?.begin_read()?;
        let Some(t) = super::open_optional(&txn, AUDIT)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.push((k.value(), v.value().to_owned()));
        }
        Ok(out)
    }

    /// Appends a record in its own durable transaction; returns its number.
    pub fn audit_append(&self, json: &str) -> Result<u64, StoreError> {
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        let id = {
            let mut t = txn.open_table(AUDIT)?;
            let id = t.last()?.map_or(1, |(k, _)| k.value() + 1);
            t.insert(id, json)?;
            id
        };
        txn.commit()?;
        Ok(id)
    }

    /// Replaces record `id` in its own durable transaction.
    pub fn audit_replace(&self, id: u64, json: &str) -> Result<(), StoreError> {
        let mut txn = self.db()?.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        txn.open_table(AUDIT)?.insert(id, json)?;
        txn.commit()?;
        Ok(())
    }
}
