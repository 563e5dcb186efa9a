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
//! a day is dropped 32 blocks at a time, and the writer commits the
//! batches that queued up between two steps, so ingest waits for one step
//! at most, never for a whole sweep. Work whose size grows with the
//! dictionaries is split differently: what to delete or rewrite is found
//! from a read snapshot on the caller's thread, and the writer only gets
//! small commands that check and apply it (a few hundred strings or
//! roll-up values, or one free-text dimension of one day, see
//! `super::sweep`). The vacuum's long copy also runs on the caller's
//! thread from a snapshot: only its catch-up and file swap is a command,
//! so ingest goes on while the file is copied.

use super::ids::{DayNumber, DimValueId, StringId};
use std::collections::HashMap;

use chrono::NaiveDate;
use tokio::sync::oneshot;

use crate::model::Event;

use super::apply::WriterState;
use super::sweep::{FreeTextCutPlan, FreeTextVetted};
use super::vacuum::VacuumCopy;
use super::{RollupExpiry, Store, StoreError, VacuumReport};

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
    /// Delete these dictionary strings (candidates found in a snapshot off
    /// this thread), each unless an event at or after `cutoff_ms` uses it.
    ExpireStringChunk {
        ids: Vec<StringId>,
        cutoff_ms: i64,
        reply: Reply<u64>,
    },
    /// Delete roll-up rows older than `cutoff_ms` and unused roll-up values.
    ExpireRollups {
        cutoff_ms: i64,
        reply: Reply<RollupExpiry>,
    },
    /// Give these roll-up values ids (those a free-text cut needs).
    InternRollupValues {
        values: Vec<String>,
        reply: Reply<Vec<DimValueId>>,
    },
    /// Apply one free-text cut planned off this thread, if its rows are
    /// unchanged (answer `false` otherwise); record `vetted` with it.
    ApplyFreeTextCut {
        /// Boxed: the rows of one dimension and day, large next to a batch.
        plan: Box<FreeTextCutPlan>,
        new_ids: HashMap<String, DimValueId>,
        vetted: Option<FreeTextVetted>,
        reply: Reply<bool>,
    },
    /// Nothing but the fold every step begins with: the roll-up changes
    /// held in memory are in the tables when this is answered, so what a
    /// caller reads from a snapshot next (which days hold free text) sees
    /// them.
    Fold { reply: Reply<()> },
    /// Record how far free text was vetted.
    SetFreeTextVetted {
        vetted: FreeTextVetted,
        reply: Reply<()>,
    },
    /// Start (`true`) or stop noting which roll-up values batches put into
    /// rows, so that values found unused in a snapshot and used since
    /// are not deleted.
    TrackRollupValues { on: bool, reply: Reply<()> },
    /// Delete these roll-up values (found unused in a snapshot taken while
    /// tracking), except those used since.
    DeleteRollupValues {
        values: Vec<(DimValueId, String)>,
        reply: Reply<u64>,
    },
    /// Finish a vacuum whose copy was made off this thread: catch up with
    /// what changed since its snapshot and swap the files.
    VacuumSwap {
        /// Boxed: a file handle and a snapshot, large next to a batch.
        copy: Box<VacuumCopy>,
        reply: Reply<VacuumReport>,
    },
}

impl Maintenance {
    /// The command's name, for the writer's log of how long each step held it.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Maintenance::DropDay { .. } => "drop_day",
            Maintenance::TrimDay { .. } => "trim_day",
            Maintenance::ExpireStringChunk { .. } => "expire_strings",
            Maintenance::ExpireRollups { .. } => "expire_rollups",
            Maintenance::InternRollupValues { .. } => "intern_rollup_values",
            Maintenance::ApplyFreeTextCut { .. } => "free_text_cut",
            Maintenance::Fold { .. } => "fold",
            Maintenance::SetFreeTextVetted { .. } => "free_text_vetted",
            Maintenance::TrackRollupValues { .. } => "track_rollup_values",
            Maintenance::DeleteRollupValues { .. } => "delete_rollup_values",
            Maintenance::VacuumSwap { .. } => "vacuum_swap",
        }
    }

    /// Answers the command with `error` without running it.
    pub(crate) fn refuse(self, error: StoreError) {
        // the caller may have gone away (shutdown)
        match self {
            Maintenance::DropDay { reply, .. }
            | Maintenance::TrimDay { reply, .. }
            | Maintenance::ExpireStringChunk { reply, .. }
            | Maintenance::DeleteRollupValues { reply, .. } => drop(reply.send(Err(error))),
            Maintenance::ExpireRollups { reply, .. } => drop(reply.send(Err(error))),
            Maintenance::InternRollupValues { reply, .. } => drop(reply.send(Err(error))),
            Maintenance::ApplyFreeTextCut { reply, .. } => drop(reply.send(Err(error))),
            Maintenance::SetFreeTextVetted { reply, .. }
            | Maintenance::Fold { reply }
            | Maintenance::TrackRollupValues { reply, .. } => drop(reply.send(Err(error))),
            Maintenance::VacuumSwap { reply, .. } => drop(reply.send(Err(error))),
        }
    }

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
                memory.forget_day(DayNumber::of(day));
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
                memory.forget_day(DayNumber::of(day));
                match trimmed {
                    Ok(n) => answer(reply, Ok(n)),
                    Err(e) => fail(store, memory, reply, e),
                }
            }
            Maintenance::ExpireStringChunk {
                ids,
                cutoff_ms,
                reply,
            } => match store.expire_string_chunk(&ids, cutoff_ms) {
                Ok(gone) => {
                    // only the deleted strings' cached ids are stale
                    memory.forget_deleted_strings(&gone);
                    answer(reply, Ok(gone.len() as u64))
                }
                Err(e) => fail(store, memory, reply, e),
            },
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
            Maintenance::InternRollupValues { values, reply } => {
                match memory.intern_rollup_values(store, &values) {
                    Ok(ids) => answer(reply, Ok(ids)),
                    Err(e) => fail(store, memory, reply, e),
                }
            }
            Maintenance::ApplyFreeTextCut {
                plan,
                new_ids,
                vetted,
                reply,
            } => match store.apply_free_text_cut(&plan, &new_ids, vetted) {
                Ok(Some(used)) => {
                    // the rows now use these values (a deletion of unused
                    // values that runs meanwhile must keep them)
                    memory.note_rollup_values_used(used);
                    answer(reply, Ok(true))
                }
                Ok(None) => answer(reply, Ok(false)),
                Err(e) => fail(store, memory, reply, e),
            },
            // the writer folded before running this step
            Maintenance::Fold { reply } => answer(reply, Ok(())),
            Maintenance::SetFreeTextVetted { vetted, reply } => {
                match store.set_free_text_vetted(vetted) {
                    Ok(()) => answer(reply, Ok(())),
                    Err(e) => fail(store, memory, reply, e),
                }
            }
            Maintenance::TrackRollupValues { on, reply } => {
                memory.track_rollup_values(on);
                answer(reply, Ok(()))
            }
            Maintenance::DeleteRollupValues { values, reply } => {
                match store.delete_dim_values(&values, memory.rollup_values_used_since()) {
                    Ok(gone) => {
                        memory.forget_deleted_rollup_values(&gone);
                        answer(reply, Ok(gone.len() as u64))
                    }
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
