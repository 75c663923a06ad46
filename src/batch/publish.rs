//! Publishing's build: a recomputed (exact) table becomes what a batch view serves and
//! persists. Declared roll-ups are merged from the exact table, before it becomes sketches
//! (merging exact states is exact); then the table is turned into its served form (sketches
//! where the speed layer has them), and both are encoded as the view's file (`view_file`).
//! Writing the file and committing it are the store's stages.

use rayon::prelude::*;

use crate::aggregate::Mode;
use crate::control::profile::Profile;
use crate::error::Result;
use crate::view::table::{AggTable, ViewPlan};

use super::view_file;

/// A batch view ready to publish: what serving holds (exactly what the file persists, and what
/// a restart loads), and the file.
pub struct Built {
    pub table: AggTable,
    pub rollups: Vec<AggTable>,
    pub bytes: Vec<u8>,
    /// Rows of the file (the view's groups and its roll-ups').
    pub rows: u64,
}

/// Build the batch view of `plan` from its recomputed `table`, on the current pool, adding the
/// time of each phase to `prof`.
pub fn build(plan: &ViewPlan, table: AggTable, prof: &Profile) -> Result<Built> {
    let rollups: Vec<AggTable> = prof.time("rollups", || {
        // One task per roll-up (each merges every group of the view once).
        crate::control::parallel::install(|| {
            plan.rollups
                .par_iter()
                .map(|r| {
                    let mut t = r.plan.new_table(Mode::Exact);
                    let grain = (r.plan.grain != plan.grain).then_some(r.plan.grain);
                    t.absorb(&table, &r.keep, grain, &|_, _| true)?;
                    t.into_served()
                })
                .collect::<Result<_>>()
        })
    })?;
    let served = prof.time("sketch", || table.into_served())?;
    let (view, shapes) = prof.time("sort+state", || {
        let view = served.state_batch_profiled(&plan.def.by, &plan.metrics, prof)?;
        let shapes = plan
            .rollups
            .iter()
            .zip(&rollups)
            .map(|(r, t)| t.state_batch(&r.plan.def.by, &r.plan.metrics))
            .collect::<Result<Vec<_>>>()?;
        Ok::<_, crate::Error>((view, shapes))
    })?;
    let (bytes, rows) = prof.time("encode", || view_file::encode(view, shapes))?;
    Ok(Built {
        table: served,
        rollups,
        bytes,
        rows,
    })
}
