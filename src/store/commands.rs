//! What the writer thread is asked to do. Every change to stored events,
//! dictionaries and roll-ups reaches the one writer as a [`WriterCommand`]
//! and is answered on its own oneshot channel: a batch of events once it is
//! durable, a maintenance command (the retention sweep's deletions, vacuum)
//! once it is done. The thread that keeps the writer's memory (day states,
//! dictionary caches) is therefore the only one that changes the file, and
//! after each maintenance step it forgets exactly what that step changed:
//! no other thread has to tell it.
//!
//! Long maintenance runs in short durable steps ([`Maintenance::step`]):
//! a day is dropped 128 blocks at a time, strings expire 4,096 at a time,
//! and the writer commits the batches that queued up between two steps, so
//! ingest waits for one step at most, never for a whole sweep. Free text
//! leaves the roll-ups one local day per command, and the vacuum's long
//! copy runs on the caller's thread from a snapshot: only its catch-up and
//! file swap is a command, so ingest goes on while the file is copied.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::NaiveDate;
use tokio::sync::oneshot;

use crate::model::Event;

use super::apply::WriterState;
use super::sweep::{FreeTextExpiry, FreeTextVetted, STRINGS_PER_TXN};
use super::vacuum::VacuumCopy;
use super::{schema, RollupExpiry, Store, StoreError, VacuumReport};

/// Answer to one submitted batch (see [`super::writer::Ack`]).
pub(crate) type BatchReply = oneshot::Sender<super::writer::Ack>;

/// Where a maintenance command is answered.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One request to the writer thread.
pub(crate) enum WriterCommand {
    /// Store these events; answered once they are durable.
    Batch {
        events: Vec<Event>,
        reply: BatchReply,
    },
    /// Change stored data outside a batch; answered when done.
    Maintain(Maintenance),
}

/// Maintenance commands, each with its progress so far.
pub(crate) enum Maintenance {
    /// Delete the raw events of a UTC day (roll-ups stay).
    DropDay {
        day: NaiveDate,
        deleted: u64,
        reply: Reply<u64>,
    },
    /// Delete the events of a UTC day received before `cutoff_ms`.
    TrimDay {
        day: NaiveDate,
        cutoff_ms: i64,
        reply: Reply<u64>,
    },
    /// Delete the dictionary strings no event at or after `cutoff_ms` can
    /// use; `candidates` are found in the first step.
    ExpireStrings {
        cutoff_ms: i64,
        candidates: Option<Vec<u32>>,
        next: usize,
        deleted: u64,
        reply: Reply<u64>,
    },
    /// Delete roll-up rows older than `cutoff_ms` and unused roll-up values.
    ExpireRollups {
        cutoff_ms: i64,
        reply: Reply<RollupExpiry>,
    },
    /// Take the free text out of the roll-ups of local day `day` of
    /// `sites`, keeping per site the values in `keep`; record `vetted`.
    ExpireFreeText {
        day: i32,
        sites: BTreeSet<String>,
        keep: HashMap<String, HashSet<String>>,
        vetted: Option<FreeTextVetted>,
        dry_run: bool,
        reply: Reply<FreeTextExpiry>,
    },
    /// Record how far free text was vetted.
    SetFreeTextVetted {
        vetted: FreeTextVetted,
        reply: Reply<()>,
    },
    /// Delete the roll-up values no roll-up row uses.
    DeleteUnusedRollupValues { reply: Reply<u64> },
    /// Finish a vacuum whose copy was made off this thread: catch up with
    /// what changed since its snapshot and swap the files.
    VacuumSwap {
        /// Boxed: a file handle and a snapshot, large next to a batch.
        copy: Box<VacuumCopy>,
        reply: Reply<VacuumReport>,
    },
}

impl Maintenance {
    /// Runs one short durable step. Returns the command again when there
    /// is more to do; otherwise it has answered its caller. The writer's
    /// memory forgets what the step changed; after a failure it forgets
    /// everything (the step may have stopped half way through its memory).
    pub(crate) fn step(self, store: &Store, memory: &mut WriterState) -> Option<Maintenance> {
        match self {
            Maintenance::DropDay {
                day,
                deleted,
                reply,
            } => {
                let step = store.drop_partition_chunk(day);
                memory.forget_day(schema::day_number(day));
                match step {
                    Ok((n, false)) => Some(Maintenance::DropDay {
                        day,
                        deleted: deleted + n,
                        reply,
                    }),
                    Ok((n, true)) => answer(reply, Ok(deleted + n)),
                    Err(e) => fail(store, memory, reply, e),
                }
            }
            Maintenance::TrimDay {
                day,
                cutoff_ms,
                reply,
            } => {
                let trimmed = store.trim_partition(day, cutoff_ms);
                memory.forget_day(schema::day_number(day));
                match trimmed {
                    Ok(n) => answer(reply, Ok(n)),
                    Err(e) => fail(store, memory, reply, e),
                }
            }
            Maintenance::ExpireStrings {
                cutoff_ms,
                candidates: None,
                reply,
                ..
            } => match store.string_expiry_candidates(cutoff_ms) {
                Ok(candidates) => Some(Maintenance::ExpireStrings {
                    cutoff_ms,
                    candidates: Some(candidates),
                    next: 0,
                    deleted: 0,
                    reply,
                }),
                Err(e) => fail(store, memory, reply, e),
            },
            Maintenance::ExpireStrings {
                cutoff_ms,
                candidates: Some(candidates),
                next,
                deleted,
                reply,
            } => {
                let end = (next + STRINGS_PER_TXN).min(candidates.len());
                let Some(chunk) = candidates.get(next..end).filter(|c| !c.is_empty()) else {
                    return answer(reply, Ok(deleted));
                };
                let expired = store.expire_string_chunk(chunk, cutoff_ms);
                // cached string ids may be gone
                memory.forget_strings();
                match expired {
                    Ok(n) => Some(Maintenance::ExpireStrings {
                        cutoff_ms,
                        candidates: Some(candidates),
                        next: end,
                        deleted: deleted + n,
                        reply,
                    }),
                    Err(e) => fail(store, memory, reply, e),
                }
            }
            Maintenance::ExpireRollups { cutoff_ms, reply } => {
                let expired = store.expire_rollups(cutoff_ms, false);
                // roll-up values no row uses were deleted: cached value ids
                // may be gone (the writer keeps no roll-up rows in memory)
                memory.forget_rollup_values();
                match expired {
                    Ok(r) => answer(reply, Ok(r)),
                    Err(e) => fail(store, memory, reply, e),
                }
            }
            Maintenance::ExpireFreeText {
                day,
                sites,
                keep,
                vetted,
                dry_run,
                reply,
            } => {
                let kept = |site: &str, value: &str| {
                    keep.get(site).is_some_and(|values| values.contains(value))
                };
                let expired = store.expire_free_text(day, &sites, &kept, vetted, dry_run);
                if !dry_run {
                    // values were cut into others and may have been handed
                    // a new id: forget cached value ids and read the next
                    // free id again before the next batch
                    memory.forget_rollup_values();
                }
                match expired {
                    Ok(r) => answer(reply, Ok(r)),
                    Err(e) => fail(store, memory, reply, e),
                }
            }
            Maintenance::SetFreeTextVetted { vetted, reply } => {
                match store.set_free_text_vetted(vetted) {
                    Ok(()) => answer(reply, Ok(())),
                    Err(e) => fail(store, memory, reply, e),
                }
            }
            Maintenance::DeleteUnusedRollupValues { reply } => {
                let deleted = store.delete_unused_dim_values();
                memory.forget_rollup_values();
                match deleted {
                    Ok(n) => answer(reply, Ok(n)),
                    Err(e) => fail(store, memory, reply, e),
                }
            }
            Maintenance::VacuumSwap { copy, reply } => {
                // No batch is in flight on this thread, and the new file
                // holds the same data as the old one at its commit, so
                // what the writer remembers stays true.
                match store.vacuum_swap(*copy) {
                    Ok(r) => answer(reply, Ok(r)),
                    Err(e) => fail(store, memory, reply, e),
                }
            }
        }
    }
}

fn answer<T>(reply: Reply<T>, result: Result<T, StoreError>) -> Option<Maintenance> {
    // the caller may have gone away (shutdown); the work is done either way
    let _ = reply.send(result);
    None
}

fn fail<T>(
    store: &Store,
    memory: &mut WriterState,
    reply: Reply<T>,
    error: StoreError,
) -> Option<Maintenance> {
    tracing::error!(error = %error, "store maintenance step failed");
    memory.reset();
    super::reopen::after_failed_write(store, &error);
    answer(reply, Err(error))
}
