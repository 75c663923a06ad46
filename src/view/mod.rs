//! Views: a definition (`def`), resolved against the store's schema into a plan and an
//! aggregation table (`table`), with its group keys (`group`) and event-time grain (`grain`).

pub mod def;
pub mod grain;
pub mod group;
pub mod table;

pub use def::{AggSpec, Filter, ViewDef};
pub use table::{AggTable, ViewPlan};
