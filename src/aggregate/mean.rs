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

use crate::arrow::array::{ArrayRef, BinaryArray, Float64Array, RecordBatch};

use super::{downcast, GroupsAccumulator};
use crate::error::Result;

/// A sum state that can give the mean of a group.
pub trait SumState: GroupsAccumulator + Clone + Default + 'static {
    fn mean(&self, g: usize) -> Option<f64>;
    /// The hidden state columns of the sum (not its public value, which a mean never needs:
    /// an integer sum past int64 still has a mean).
    fn hidden_state(&self, name: &str, order: &[u32]) -> Result<Vec<(String, ArrayRef)>>;
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

    fn like(&self, sum: S) -> Self {
        Mean {
            sum,
            with_sum: self.with_sum.clone(),
        }
    }

    fn means(&self, order: &[u32]) -> ArrayRef {
        let values: Float64Array = order.iter().map(|&g| self.sum.mean(g as usize)).collect();
        Arc::new(values)
    }
}

impl<S: SumState> GroupsAccumulator for Mean<S> {
    fn update(&mut self, gids: &[u32], input: Option<&ArrayRef>, groups: usize) -> Result<()> {
        self.sum.update(gids, input, groups)
    }

    fn merge(
        &mut self,
        other: &dyn GroupsAccumulator,
        pairs: &[(u32, u32)],
        groups: usize,
    ) -> Result<()> {
        let o = downcast::<Self>(other)?;
        self.sum.merge(&o.sum, pairs, groups)
    }

    fn evaluate(&self, name: &str, order: &[u32]) -> Result<Vec<(String, ArrayRef)>> {
        Ok(match &self.with_sum {
            None => vec![(name.to_string(), self.means(order))],
            Some(mean) => {
                let mut cols = self.sum.evaluate(name, order)?;
                cols.push((mean.clone(), self.means(order)));
                cols
            }
        })
    }

    fn state(&self, name: &str, order: &[u32]) -> Result<Vec<(String, ArrayRef)>> {
        Ok(match &self.with_sum {
            None => {
                // The sum's hidden columns; its public column is replaced by the mean.
                let mut cols = vec![(name.to_string(), self.means(order))];
                cols.extend(self.sum.hidden_state(name, order)?);
                cols
            }
            Some(mean) => {
                let mut cols = self.sum.state(name, order)?;
                cols.push((mean.clone(), self.means(order)));
                cols
            }
        })
    }

    fn load_state(
        &self,
        name: &str,
        batch: &RecordBatch,
        file: &Path,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let inner = self.sum.load_state(name, batch, file)?;
        let sum = downcast::<S>(inner.as_ref())?.clone();
        Ok(Box::new(self.like(sum)))
    }

    fn fresh(&self) -> Box<dyn GroupsAccumulator> {
        Box::new(self.like(S::default()))
    }
    fn write_partial(&self, g: usize, out: &mut Vec<u8>) -> Result<()> {
        self.sum.write_partial(g, out)
    }
    fn load_partial(&self, values: &BinaryArray, what: &str) -> Result<Box<dyn GroupsAccumulator>> {
        let inner = self.sum.load_partial(values, what)?;
        let sum = downcast::<S>(inner.as_ref())?.clone();
        Ok(Box::new(self.like(sum)))
    }
    fn into_served(mut self: Box<Self>) -> Result<Box<dyn GroupsAccumulator>> {
        self.settle();
        Ok(self)
    }
    fn settle(&mut self) {
        self.sum.settle();
    }
    fn len(&self) -> usize {
        self.sum.len()
    }
    fn memory_bytes(&self) -> usize {
        self.sum.memory_bytes()
    }
}
