//! Views: a definition (`def`), resolved against the store's schema into a plan and an
//! aggregation table (`table`), with its group keys (`group`), event-time grain (`grain`) and the
//! time zone its buckets follow (`zone`).

pub mod def;
pub mod grain;
pub mod group;
pub mod table;
pub mod zone;

pub use def::{AggSpec, Filter, ViewDef};
pub use table::{AggTable, ViewPlan};
