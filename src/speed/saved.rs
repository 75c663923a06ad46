//! The speed state saved when a writer closes: per view, the fold of the commits its batch
//! view does not cover, as one state table (every chunk merged) in one Parquet file with the
//! layout of a batch view without roll-ups (`batch::view_file`). Derived data: a reopening
//! store loads it instead of replaying those commits, and replays them if the file is damaged
//! or no longer fits. Which views to save, the file's name and its record are the store's.

use std::path::Path;

use crate::aggregate::Mode;
use crate::error::Result;
use crate::master::parquet_io::{self, ParquetBytes};
use crate::view::table::{AggTable, ViewPlan};

use super::SpeedView;

/// The file of `speed`'s state: its chunks merged into one table, in sketch mode (what serving
/// merges it with).
pub fn encode(plan: &ViewPlan, speed: &SpeedView) -> Result<Vec<u8>> {
    let keep: Vec<usize> = (0..plan.dims.len()).collect();
    let mut table = plan.new_table(Mode::Sketch);
    for chunk in &speed.chunks {
        for t in chunk.tables() {
            table.absorb(t, &keep, None, &|_, _| true)?;
        }
    }
    table.settle();
    let batch = table.state_batch(&plan.def.by, &plan.metrics)?;
    parquet_io::encode(&batch.schema(), std::slice::from_ref(&batch))
}

/// A saved state file's bytes as a speed view of commits `first..=last` (`rows` events).
/// Damage is a `CorruptionError` naming `path`.
pub fn decode(
    plan: &ViewPlan,
    path: &Path,
    bytes: bytes::Bytes,
    (first, last, rows): (u64, u64, u64),
) -> Result<SpeedView> {
    let pq = ParquetBytes::open(path, bytes)?;
    let batches = pq.read(path, None, None, None)?;
    let table = AggTable::from_state_batches(plan, &batches, path)?;
    Ok(SpeedView::saved(first, last, rows, table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_state_loads_back_as_the_merge_of_its_chunks() {
        let (plan, batch) = crate::view::testutil::count_view(&[1, 2, 1, 2, 1, 3]);
        let mut speed = SpeedView::default();
        speed.update(&plan, 1, &batch.slice(0, 4)).unwrap();
        speed
            .update_range(&plan, 2, 2, &[batch.slice(4, 2)])
            .unwrap();
        assert_eq!(speed.chunks.len(), 2);
        let bytes = encode(&plan, &speed).unwrap();
        let path = Path::new("speed.parquet");
        let back = decode(&plan, path, bytes.into(), (1, 2, 6)).unwrap();
        assert_eq!((back.chunks.len(), back.rows()), (1, 6));
        let got = back.chunks[0]
            .table
            .state_batch(&plan.def.by, &plan.metrics)
            .unwrap();
        let mut one = plan.new_table(Mode::Sketch);
        one.update(&plan, &batch).unwrap();
        let want = one.state_batch(&plan.def.by, &plan.metrics).unwrap();
        assert_eq!(got, want);
        let e = decode(
            &plan,
            path,
            bytes::Bytes::from_static(b"not parquet"),
            (1, 2, 6),
        );
        assert!(e.unwrap_err().to_string().contains("speed.parquet"));
    }
}
