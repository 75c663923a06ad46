//! lamina: the Lambda Architecture in one process.
//!
//! The folders are the architecture:
//!
//! * [`master`]: the master dataset on disk: segments, the manifest log, the writer lock, the
//!   schema every append is conformed to. Immutable, append-only, committed atomically.
//! * [`aggregate`]: the aggregates, one file each behind one trait ([`aggregate::GroupsAccumulator`]):
//!   update over group ids, merge, state, evaluate. Every layer uses the same states.
//! * [`view`]: a view definition, its plan against the schema, group keys, grains, and the
//!   aggregation table (group keys + one accumulator per metric).
//! * [`batch`]: recompute every view from scratch over a snapshot, in parallel, exactly.
//! * [`speed`]: the speed layer: per view, the state of the commits its batch view does not cover.
//! * [`serving`]: per view, the published batch view and the speed state, merged into answers.
//! * [`time`]: timestamp units, the calendar, the range of accepted times, time zones.
//! * [`layout`]: every path a store writes, and the parser that recognises lamina's own files.
//! * [`store`]: the thin shell that owns the locks and sequences the stages of each operation.
//!
//! This crate is free of Python; the bindings live in `python/` behind the `python` feature.

pub mod aggregate;
pub mod arrow;
pub mod batch;
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
pub(crate) mod testutil;

pub use error::{Error, ErrorKind, Result};
