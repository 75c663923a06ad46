//! `mean`: the exact sum and the non-null count of its sum aggregate (integer or float), divided
//! only when evaluated, so merges stay exact.
//!
//! A view that also sums the same column keeps one state for both: the sum's plan carries the
//! mean (`AggPlan::mean`), its accumulator is a `Mean` that gives the sum's columns and then the
//! mean's, and only the sum's state is persisted (one fold, one state, one set of hidden
//! columns). A mean on its own persists its sum's hidden columns under its own name.
//!
//! Partial-state layout: its sum's (`sum.rs` or `sum_float.rs`).

use std::path::Path;
use std::sync::Arc;

use crate::arrow::array::{ArrayRef, Float64Array, RecordBatch};

use super::groups::Aggregate;
use super::runs::GroupRuns;
use super::{ByteReader, SketchError};
use crate::error::Result;

/// A sum aggregate that can give the mean of a group.
pub trait SumState: Aggregate + Default {
    fn mean(slot: &Self::Slot) -> Option<f64>;
    /// The hidden state columns of the sum (not its public value, which a mean never needs:
    /// an integer sum past int64 still has a mean).
    fn hidden_state(
        &self,
        name: &str,
        slots: &[Self::Slot],
        order: &[u32],
    ) -> Result<Vec<(String, ArrayRef)>>;
}

#[derive(Debug, Clone)]
pub struct Mean<S: SumState> {
    sum: S,
    /// Set when this is a sum metric's state that also gives the mean of the same column: the
    /// mean's name (the accumulator is then called with the sum's name).
    with_sum: Option<String>,
}

impl<S: SumState> Mean<S> {
    pub fn new(sum: S) -> Self {
        Mean {
            sum,
            with_sum: None,
        }
    }

    /// The state of a sum metric that also gives the mean `mean` of its column.
    pub fn shared(sum: S, mean: String) -> Self {
        Mean {
            sum,
            with_sum: Some(mean),
        }
    }

    fn means(slots: &[S::Slot], order: &[u32]) -> ArrayRef {
        let values: Float64Array = order.iter().map(|&g| S::mean(&slots[g as usize])).collect();
        Arc::new(values)
    }
}

impl<S: SumState> Aggregate for Mean<S> {
    type Slot = S::Slot;

    fn update(
        &self,
        slots: &mut [S::Slot],
        gids: &[u32],
        input: Option<&ArrayRef>,
        runs: &mut GroupRuns,
    ) -> Result<()> {
        self.sum.update(slots, gids, input, runs)
    }

    fn merge(&self, dst: &mut S::Slot, src: &S::Slot) -> Result<()> {
        self.sum.merge(dst, src)
    }

    fn evaluate(
        &self,
        name: &str,
        slots: &[S::Slot],
        order: &[u32],
    ) -> Result<Vec<(String, ArrayRef)>> {
        Ok(match &self.with_sum {
            None => vec![(name.to_string(), Self::means(slots, order))],
            Some(mean) => {
                let mut cols = self.sum.evaluate(name, slots, order)?;
                cols.push((mean.clone(), Self::means(slots, order)));
                cols
            }
        })
    }

    fn state(
        &self,
        name: &str,
        slots: &[S::Slot],
        order: &[u32],
    ) -> Result<Vec<(String, ArrayRef)>> {
        Ok(match &self.with_sum {
            None => {
                // The sum's hidden columns; its public column is replaced by the mean.
                let mut cols = vec![(name.to_string(), Self::means(slots, order))];
                cols.extend(self.sum.hidden_state(name, slots, order)?);
                cols
            }
            Some(mean) => {
                let mut cols = self.sum.state(name, slots, order)?;
                cols.push((mean.clone(), Self::means(slots, order)));
                cols
            }
        })
    }

    fn load_state(
        &self,
        name: &str,
        batch: &RecordBatch,
        file: &Path,
    ) -> Result<(Self, Vec<S::Slot>)> {
        let (sum, slots) = self.sum.load_state(name, batch, file)?;
        Ok((
            Mean {
                sum,
                with_sum: self.with_sum.clone(),
            },
            slots,
        ))
    }

    fn write_slot(&self, slot: &S::Slot, out: &mut Vec<u8>) {
        self.sum.write_slot(slot, out)
    }

    fn read_slot(&self, r: &mut ByteReader<'_>) -> std::result::Result<S::Slot, SketchError> {
        self.sum.read_slot(r)
    }

    fn settle(&self, slots: &mut [S::Slot]) {
        self.sum.settle(slots)
    }

    fn heap_bytes(&self, slots: &[S::Slot]) -> usize {
        self.sum.heap_bytes(slots)
    }
}
