//! The master dataset: every event ever appended, immutable and append-only, on disk.
//!
//! On-disk layout of a store (see README "Storage"):
//!
//! ```text
//! <root>/LOCK                      writer lock (advisory, held by the one writer process)
//! <root>/_log/<version>.json       manifest log: one record per change, written, fsynced, renamed
//! <root>/_log/<version>.checkpoint.json   the whole manifest state every CHECKPOINT_EVERY versions
//! <root>/segments/*.parquet        event segments (the master dataset)
//! <root>/quarantine/*.parquet      rows refused under the quarantine policy, with a reason
//! <root>/views/<name>/*.parquet    published batch views
//! ```
//! A file is only ever visible under its final name once complete; the manifest record that
//! references it is the commit point. Anything on disk that no committed record references is a
//! leftover of a crash (or a file replaced by compaction or a newer batch view) and is removed by
//! a writer once readers in other processes had a grace period to move on.

pub mod boundary;
pub mod chunked;
pub mod commits;
pub mod conform;
pub mod files;
pub mod lock;
pub mod parquet_io;
pub mod schema;
pub mod segments;
pub mod source;
