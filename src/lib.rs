//! lamina: the Lambda Architecture in one process.
//!
//! * [`store`]: the master dataset (immutable, append-only, on disk) and the three layers.
//! * [`batch`]: recompute every view from scratch over a snapshot, in parallel, exactly.
//! * [`speed`]: incremental views of the commits the batch views do not cover yet.
//! * [`serve`]: merge batch and speed into one answer.
//! * [`agg`]: the aggregate states (update, merge, finalize) all three layers share.
//!
//! This crate is free of Python; the bindings live in `python.rs` behind the `python` feature.

pub mod agg;
pub mod batch;
pub mod error;
pub mod exact_sum;
pub mod grain;
pub mod group;
pub mod schema;
pub mod serve;
pub mod sketch;
pub mod speed;
pub mod storage;
pub mod store;
pub mod table;
pub mod view;

#[cfg(feature = "python")]
mod python;

pub use error::{Error, ErrorKind, Result};
