//! The catalog: the log of every change to a store, and the state it folds to.
//!
//! * `records`: the log's record types: the master dataset's appends, schemas and compactions,
//!   and the views' definitions, publishes and saved speed states;
//! * `state`: their fold ([`ManifestState`]), immutable and shared by readers (`Arc`), with the
//!   check that a record applies before it is written;
//! * `log`: the files (one per record, with a CRC-32; checkpoints; a reader's refresh).
//!
//! The catalog sits above the master dataset and the views, which know nothing of it: the
//! master dataset describes its segments and commits (`master::commits`), a view its
//! definition, and the catalog records both.

pub mod log;
pub mod records;
pub mod state;

pub use log::{Manifest, Refresh, CHECKPOINT_EVERY};
pub use records::{Published, Record, SavedSpeed, ViewEntry};
pub use state::ManifestState;
