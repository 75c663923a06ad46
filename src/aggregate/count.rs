//! `count()` (rows) and `count(column)` (non-null values): a u64 per group, exact everywhere.
//!
//! Partial-state layout (v1): the count, u64.

use crate::aggregate::sketch::codec::ByteWriter;
use std::path::Path;
use std::sync::Arc;

use crate::arrow::array::{Array, ArrayRef, Int64Array, RecordBatch};

use super::groups::Aggregate;
use super::runs::GroupRuns;
use super::{read_counts, ByteReader, SketchError, NO_GROUP};
use crate::error::Result;

#[derive(Debug, Clone, Copy, Default)]
pub struct Count;

impl Aggregate for Count {
    type Slot = u64;

    fn update(
        &self,
        n: &mut [u64],
        gids: &[u32],
        input: Option<&ArrayRef>,
        _: &mut GroupRuns,
    ) -> Result<()> {
        match input.and_then(|c| c.nulls().filter(|nb| nb.null_count() > 0)) {
            Some(nulls) => {
                for (row, &g) in gids.iter().enumerate() {
                    if g != NO_GROUP && nulls.is_valid(row) {
                        n[g as usize] += 1;
                    }
                }
            }
            None => {
                for &g in gids {
                    if g != NO_GROUP {
                        n[g as usize] += 1;
                    }
                }
            }
        }
        Ok(())
    }

    fn merge(&self, dst: &mut u64, src: &u64) -> Result<()> {
        *dst += *src;
        Ok(())
    }

    fn evaluate(&self, name: &str, n: &[u64], order: &[u32]) -> Result<Vec<(String, ArrayRef)>> {
        let col = Int64Array::from_iter_values(order.iter().map(|&g| n[g as usize] as i64));
        Ok(vec![(name.to_string(), Arc::new(col))])
    }

    fn load_state(&self, name: &str, batch: &RecordBatch, file: &Path) -> Result<(Self, Vec<u64>)> {
        Ok((Count, read_counts(batch, name, file)?))
    }

    fn write_slot(&self, n: &u64, out: &mut Vec<u8>) {
        out.put(n);
    }

    fn read_slot(&self, r: &mut ByteReader<'_>) -> std::result::Result<u64, SketchError> {
        r.u64()
    }
}
