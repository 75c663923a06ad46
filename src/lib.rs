//! lamina: the Lambda Architecture in one process.
//!
//! The folders are the architecture, a stack in which each layer knows only those below it
//! (held by the test in `layers.rs`), from the bottom up:
//!
//! * [`arrow`], [`error`]: the Arrow names the core uses; the crate's one error type.
//! * [`time`]: timestamp units, the calendar, the range of accepted times, time zones.
//! * [`control`]: cancellation, progress, thread limits and pools, profiles of long operations.
//! * [`layout`]: every path a store writes, and the parser that recognises lamina's own files.
//! * [`failpoint`]: named test hooks that force an interleaving or a failure.
//! * [`aggregate`]: the aggregates, one file each behind one trait ([`aggregate::GroupsAccumulator`]):
//!   update over group ids, merge, state, evaluate. Every layer uses the same states.
//! * [`master`]: the master dataset on disk: segments, commits, the writer lock, the schema every
//!   append is conformed to. Immutable, append-only.
//! * [`view`]: a view definition, its plan against the schema, group keys, grains, and the
//!   aggregation table (group keys + one accumulator per metric).
//! * [`catalog`]: the log of every change (the master dataset's commits and the views'
//!   definitions and publishes), its checkpoints, and the state it folds to, committed atomically.
//! * [`batch`]: recompute every view from scratch over a snapshot, in parallel, exactly.
//! * [`speed`]: the speed layer: per view, the state of the commits its batch view does not cover.
//! * [`serving`]: per view, the published batch view and the speed state, merged into answers.
//! * [`store`]: the thin shell that owns the locks and sequences the stages of each operation.
//!
//! This crate is free of Python; the bindings live in `python/` behind the `python` feature.

pub mod aggregate;
pub mod arrow;
pub mod batch;
pub mod catalog;
pub mod control;
pub mod error;
pub mod failpoint;
pub mod layout;
pub mod master;
pub mod serving;
pub mod speed;
pub mod store;
pub mod time;
pub mod view;

#[cfg(feature = "python")]
mod python;

#[cfg(test)]
mod layers;
#[cfg(test)]
pub(crate) mod testutil;

pub use error::{Error, ErrorKind, Result};
