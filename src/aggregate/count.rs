//! `count()` (rows) and `count(column)` (non-null values): a u64 per group, exact everywhere.
//!
//! Partial-state layout (v1): the count, u64.

use std::path::Path;
use std::sync::Arc;

use crate::arrow::array::{Array, ArrayRef, BinaryArray, Int64Array, RecordBatch};

use super::{downcast, read_counts, read_partials, GroupsAccumulator, NO_GROUP};
use crate::error::Result;

#[derive(Debug, Clone, Default)]
pub struct Count {
    n: Vec<u64>,
}

impl GroupsAccumulator for Count {
    fn update(&mut self, gids: &[u32], input: Option<&ArrayRef>, groups: usize) -> Result<()> {
        self.n.resize(groups.max(self.n.len()), 0);
        let n = &mut self.n;
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

    fn merge(
        &mut self,
        other: &dyn GroupsAccumulator,
        pairs: &[(u32, u32)],
        groups: usize,
    ) -> Result<()> {
        let o = downcast::<Self>(other)?;
        self.n.resize(groups.max(self.n.len()), 0);
        for &(d, s) in pairs {
            self.n[d as usize] += o.n[s as usize];
        }
        Ok(())
    }

    fn evaluate(&self, name: &str, order: &[u32]) -> Result<Vec<(String, ArrayRef)>> {
        let col = Int64Array::from_iter_values(order.iter().map(|&g| self.n[g as usize] as i64));
        Ok(vec![(name.to_string(), Arc::new(col))])
    }

    fn state(&self, name: &str, order: &[u32]) -> Result<Vec<(String, ArrayRef)>> {
        self.evaluate(name, order)
    }

    fn load_state(
        &self,
        name: &str,
        batch: &RecordBatch,
        file: &Path,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let n = read_counts(batch, name, file)?;
        Ok(Box::new(Count { n }))
    }

    fn fresh(&self) -> Box<dyn GroupsAccumulator> {
        Box::new(Count::default())
    }
    fn write_partial(&self, g: usize, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&self.n[g].to_le_bytes());
        Ok(())
    }
    fn load_partial(&self, values: &BinaryArray, what: &str) -> Result<Box<dyn GroupsAccumulator>> {
        let n = read_partials(values, what, |r| r.u64())?;
        Ok(Box::new(Count { n }))
    }
    fn into_served(self: Box<Self>) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(self)
    }
    fn len(&self) -> usize {
        self.n.len()
    }
    fn memory_bytes(&self) -> usize {
        self.n.capacity() * 8
    }
}
