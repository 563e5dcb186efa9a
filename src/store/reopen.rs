//! Recovery from a failed write (disk full, file-size limit, I/O error).
//!
//! After one failed write, redb latches the `Database` as failed: every
//! later read or write on it returns `PreviousIo`, even once space is back.
//! So the writer thread, after a batch failed with an I/O error, replaces
//! the handle: it takes the current `Database` out of the [`Store`] (new
//! readers wait on the lock for that moment), waits briefly for readers
//! that still hold a clone to finish, drops it (which closes the file and
//! its lock) and opens the file again, which repairs it if needed. Readers
//! share the `Arc<Store>` and pick up the new handle on their next call.
//! If the file cannot be opened yet, the slot stays empty: readers get
//! [`StoreError::Unavailable`] and the next batch tries again, so ingest
//! resumes by itself once writes succeed again. A failed commit never
//! leaves a partial batch behind (redb's commit is atomic), so nothing that
//! was stored before is touched.

use std::sync::{Arc, PoisonError, RwLockWriteGuard};

use redb::Database;
use std::time::Duration;

use super::{Store, StoreError};

/// Bound on the polls for readers to let go of the old handle, and for the
/// file lock to be released, each [`POLL`] apart.
const MAX_POLLS: u32 = 200;
const POLL: Duration = Duration::from_millis(5);

impl StoreError {
    /// True when the failure came from the disk (full, size limit, I/O
    /// error), or the store is reopening after one: a retry can succeed.
    pub fn is_io(&self) -> bool {
        self.needs_reopen()
    }

    /// True when another process holds the file open.
    pub fn is_locked(&self) -> bool {
        matches!(self, StoreError::Db(redb::Error::DatabaseAlreadyOpen))
    }

    /// True when the database handle is unusable and must be reopened.
    fn needs_reopen(&self) -> bool {
        match self {
            StoreError::Db(
                redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed,
            )
            | StoreError::Unavailable => true,
            StoreError::Batch(inner) => inner.needs_reopen(),
            _ => false,
        }
    }
}

impl Store {
    /// Takes the database slot for exclusive use: new readers and the
    /// writer wait on the lock, and this waits (bounded) for those that
    /// still hold a clone of the handle to let go.
    /// With `require_sole`, fails with [`StoreError::Unavailable`] instead
    /// of going on when somebody still holds it after the wait.
    pub(crate) fn take_exclusive(
        &self,
        require_sole: bool,
    ) -> Result<RwLockWriteGuard<'_, Option<Arc<Database>>>, StoreError> {
        let slot = self.db.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(db) = slot.as_ref() {
            let mut sole = false;
            for _ in 0..MAX_POLLS {
                if Arc::strong_count(db) == 1 {
                    sole = true;
                    break;
                }
                std::thread::sleep(POLL);
            }
            if require_sole && !sole {
                return Err(StoreError::Unavailable);
            }
        }
        Ok(slot)
    }

    /// Replaces the database handle by a freshly opened one. Only the
    /// writer thread calls this, between two commands, so no write is in
    /// flight.
    pub(crate) fn reopen(&self) -> Result<(), StoreError> {
        let mut slot = self.take_exclusive(false)?;
        drop(slot.take());
        let mut last = StoreError::Unavailable;
        for _ in 0..MAX_POLLS {
            match Self::open_database(&self.path, &self.opts) {
                Ok(db) => {
                    *slot = Some(Arc::new(db));
                    return Ok(());
                }
                // A reader's transaction still holds the old file open.
                Err(StoreError::Db(redb::Error::DatabaseAlreadyOpen)) => {
                    last = StoreError::Db(redb::Error::DatabaseAlreadyOpen);
                    std::thread::sleep(POLL);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }
}

/// Called by the writer thread after a batch or a maintenance step failed
/// with `error`.
pub(super) fn after_failed_write(store: &Store, error: &StoreError) {
    if !error.needs_reopen() {
        return;
    }
    match store.reopen() {
        Ok(()) => tracing::warn!("store reopened after an I/O error"),
        Err(e) => {
            tracing::error!(error = %e, "store could not be reopened yet; retrying with the next batch")
        }
    }
}
