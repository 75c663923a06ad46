//! Views: a definition (`def`), resolved against the store's schema into a plan and an
//! aggregation table (`table`), with its group keys (`group`), event-time grain (`grain`); the time
//! zones its buckets follow are in [`crate::time::zone`].

pub mod def;
pub mod filter;
pub mod grain;
pub mod group;
pub mod table;
#[cfg(test)]
pub(crate) mod testutil;

pub use def::{Filter, ViewDef};
pub use table::{AggTable, ViewPlan};
