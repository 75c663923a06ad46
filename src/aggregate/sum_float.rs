//! `sum` of a float column: an exact accumulator (Shewchuk partials, see `exact_sum`) and a
//! non-null count per group. The result is correctly rounded, so it never depends on the order
//! of rows, the segment layout or the number of threads.
//!
//! Partial-state layout (v1): the non-null count as u64, then the exact sum in its own codec
//! (`ExactSum::write_bytes`). Persisted and partial sums are written in canonical form
//! (`ExactSum::canonical`), so equal sums give equal bytes whatever the split or merge order.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use crate::arrow::array::{Array, ArrayRef, BinaryArray, Float64Array, RecordBatch};

use super::exact_sum::{ExactSum, FixedSum};
use super::input::float64_values;
use super::mean::SumState;
use super::{
    binary_column, counts_column, downcast, for_each_valid, need, read_counts, read_partials,
    GroupsAccumulator,
};
use crate::error::{Error, Result};

/// Per group: the exact sum and, in one 32-byte slot, the non-null count and the values pending
/// in the fixed-point fast path (see `exact_sum::FixedSum`), so a row touches one slot. Every
/// read goes through `total`, so pending values are always included; `into_served` flushes them.
#[derive(Debug, Clone, Default)]
pub struct FloatSum {
    sum: Vec<ExactSum>,
    fixed: Vec<FixedSum>,
}

impl FloatSum {
    fn grow(&mut self, groups: usize) {
        if groups > self.fixed.len() {
            self.sum.resize(groups, ExactSum::new());
            self.fixed.resize(groups, FixedSum::default());
        }
    }

    fn count(&self, g: usize) -> u64 {
        self.fixed[g].count
    }

    /// The exact sum of group `g`, pending values included.
    fn total(&self, g: usize) -> Cow<'_, ExactSum> {
        let mut f = self.fixed[g];
        if f.is_flushed() {
            Cow::Borrowed(&self.sum[g])
        } else {
            let mut s = self.sum[g].clone();
            f.flush(&mut s);
            Cow::Owned(s)
        }
    }
}

impl SumState for FloatSum {
    fn mean(&self, g: usize) -> Option<f64> {
        let n = self.count(g);
        (n > 0).then(|| self.total(g).finalize() / n as f64)
    }
    fn hidden_state(&self, name: &str, order: &[u32]) -> Result<Vec<(String, ArrayRef)>> {
        let arr = binary_column(order.len(), |i, out| {
            // Canonical partials: equal sums give equal bytes, whatever the merge tree.
            self.total(order[i] as usize).canonical().write_bytes(out);
            Ok(())
        })?;
        Ok(vec![
            (format!("__{name}__state"), arr),
            (
                format!("__{name}__n"),
                counts_column(order, |g| self.count(g)),
            ),
        ])
    }
}

impl GroupsAccumulator for FloatSum {
    fn update(&mut self, gids: &[u32], input: Option<&ArrayRef>, groups: usize) -> Result<()> {
        self.grow(groups);
        let a = float64_values(need(input)?)?;
        let (sum, fixed) = (&mut self.sum, &mut self.fixed);
        for_each_valid(gids, a.values(), a.nulls(), |g, v| {
            fixed[g].add(&mut sum[g], v)
        });
        Ok(())
    }

    fn merge(
        &mut self,
        other: &dyn GroupsAccumulator,
        pairs: &[(u32, u32)],
        groups: usize,
    ) -> Result<()> {
        let o = downcast::<Self>(other)?;
        self.grow(groups);
        for &(d, s) in pairs {
            self.sum[d as usize].merge(&o.total(s as usize));
            self.fixed[d as usize].count += o.count(s as usize);
        }
        Ok(())
    }

    fn evaluate(&self, name: &str, order: &[u32]) -> Result<Vec<(String, ArrayRef)>> {
        let values: Float64Array = order
            .iter()
            .map(|&g| {
                let g = g as usize;
                (self.count(g) > 0).then(|| self.total(g).finalize())
            })
            .collect();
        Ok(vec![(name.to_string(), Arc::new(values))])
    }

    fn state(&self, name: &str, order: &[u32]) -> Result<Vec<(String, ArrayRef)>> {
        let mut cols = self.evaluate(name, order)?;
        cols.extend(self.hidden_state(name, order)?);
        Ok(cols)
    }

    fn load_state(
        &self,
        name: &str,
        batch: &RecordBatch,
        file: &Path,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let what = format!("__{name}__state");
        let s = super::binary_state_column(batch, &what, file)?;
        let sum = (0..s.len())
            .map(|i| {
                s.is_valid(i)
                    .then(|| ExactSum::from_bytes(s.value(i)))
                    .flatten()
                    .ok_or_else(|| {
                        Error::corruption(file, format!("bad float-sum state in {name:?}"))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let n = read_counts(batch, &format!("__{name}__n"), file)?;
        if n.len() != sum.len() {
            return Err(Error::corruption(
                file,
                format!("{name:?}: sum and count columns differ in length"),
            ));
        }
        let fixed = n.iter().map(|&count| FixedSum::with_count(count)).collect();
        Ok(Box::new(FloatSum { sum, fixed }))
    }

    fn fresh(&self) -> Box<dyn GroupsAccumulator> {
        Box::new(Self::default())
    }
    fn write_partial(&self, g: usize, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&self.count(g).to_le_bytes());
        self.total(g).canonical().write_bytes(out);
        Ok(())
    }
    fn load_partial(&self, values: &BinaryArray, what: &str) -> Result<Box<dyn GroupsAccumulator>> {
        let parts = read_partials(values, what, |r| {
            let n = r.u64()?;
            let sum = ExactSum::from_bytes(r.rest()).ok_or_else(|| r.error("bad exact sum"))?;
            Ok((sum, FixedSum::with_count(n)))
        })?;
        let (sum, fixed) = parts.into_iter().unzip();
        Ok(Box::new(FloatSum { sum, fixed }))
    }
    fn into_served(mut self: Box<Self>) -> Result<Box<dyn GroupsAccumulator>> {
        self.settle();
        Ok(self)
    }
    fn settle(&mut self) {
        for (f, s) in self.fixed.iter_mut().zip(self.sum.iter_mut()) {
            f.flush(s);
        }
    }
    fn len(&self) -> usize {
        self.fixed.len()
    }
    fn memory_bytes(&self) -> usize {
        self.sum.iter().map(|s| s.memory_bytes()).sum::<usize>()
            + self.fixed.capacity() * std::mem::size_of::<FixedSum>()
    }
}
