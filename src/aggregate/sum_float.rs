//! `sum` of a float column: an exact accumulator (Shewchuk partials, see `exact_sum`) and a
//! non-null count per group. The result is correctly rounded, so it never depends on the order
//! of rows, the segment layout or the number of threads.
//!
//! Partial-state layout (v1): the non-null count as u64, then the exact sum in its own codec
//! (`ExactSum::write_bytes`). Persisted and partial sums are written in canonical form
//! (`ExactSum::canonical`), so equal sums give equal bytes whatever the split or merge order.

use crate::aggregate::sketch::codec::ByteWriter;
use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use crate::arrow::array::{Array, ArrayRef, Float64Array, RecordBatch};

use super::exact_sum::{ExactSum, FixedSum};
use super::groups::Aggregate;
use super::input::float64_values;
use super::mean::SumState;
use super::runs::GroupRuns;
use super::{
    binary_column, counts_column, for_each_valid, need, read_counts, ByteReader, SketchError,
};
use crate::error::{Error, Result};

/// One group: in its first 32 bytes the non-null count and the values pending in the
/// fixed-point fast path (see `exact_sum::FixedSum`), then the exact sum, so a row touches one
/// cache line. Every read goes through `total`, so pending values are always included; serving
/// flushes them.
#[derive(Debug, Clone, Default)]
pub struct FloatSlot {
    fixed: FixedSum,
    sum: ExactSum,
}

impl FloatSlot {
    fn count(&self) -> u64 {
        self.fixed.count
    }

    /// The exact sum, pending values included.
    fn total(&self) -> Cow<'_, ExactSum> {
        let mut f = self.fixed;
        if f.is_flushed() {
            Cow::Borrowed(&self.sum)
        } else {
            let mut s = self.sum.clone();
            f.flush(&mut s);
            Cow::Owned(s)
        }
    }

    fn loaded(sum: ExactSum, count: u64) -> Self {
        FloatSlot {
            fixed: FixedSum::with_count(count),
            sum,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct FloatSum;

impl SumState for FloatSum {
    fn mean(s: &FloatSlot) -> Option<f64> {
        let n = s.count();
        (n > 0).then(|| s.total().finalize() / n as f64)
    }
    fn hidden_state(
        &self,
        name: &str,
        slots: &[FloatSlot],
        order: &[u32],
    ) -> Result<Vec<(String, ArrayRef)>> {
        let arr = binary_column(order.len(), |i, out| {
            // Canonical partials: equal sums give equal bytes, whatever the merge tree.
            slots[order[i] as usize]
                .total()
                .canonical()
                .write_bytes(out);
            Ok(())
        })?;
        Ok(vec![
            (format!("__{name}__state"), arr),
            (
                format!("__{name}__n"),
                counts_column(order, |g| slots[g].count()),
            ),
        ])
    }
}

impl Aggregate for FloatSum {
    type Slot = FloatSlot;

    fn update(
        &self,
        slots: &mut [FloatSlot],
        gids: &[u32],
        input: Option<&ArrayRef>,
        _: &mut GroupRuns,
    ) -> Result<()> {
        let a = float64_values(need(input)?)?;
        for_each_valid(gids, a.values(), a.nulls(), |g, v| {
            let s = &mut slots[g];
            s.fixed.add(&mut s.sum, v)
        });
        Ok(())
    }

    fn merge(&self, dst: &mut FloatSlot, src: &FloatSlot) -> Result<()> {
        dst.sum.merge(&src.total());
        dst.fixed.count += src.count();
        Ok(())
    }

    fn evaluate(
        &self,
        name: &str,
        slots: &[FloatSlot],
        order: &[u32],
    ) -> Result<Vec<(String, ArrayRef)>> {
        let values: Float64Array = order
            .iter()
            .map(|&g| {
                let s = &slots[g as usize];
                (s.count() > 0).then(|| s.total().finalize())
            })
            .collect();
        Ok(vec![(name.to_string(), Arc::new(values))])
    }

    fn state(
        &self,
        name: &str,
        slots: &[FloatSlot],
        order: &[u32],
    ) -> Result<Vec<(String, ArrayRef)>> {
        let mut cols = self.evaluate(name, slots, order)?;
        cols.extend(self.hidden_state(name, slots, order)?);
        Ok(cols)
    }

    fn load_state(
        &self,
        name: &str,
        batch: &RecordBatch,
        file: &Path,
    ) -> Result<(Self, Vec<FloatSlot>)> {
        let what = format!("__{name}__state");
        let s = super::binary_state_column(batch, &what, file)?;
        let n = read_counts(batch, &format!("__{name}__n"), file)?;
        if n.len() != s.len() {
            return Err(Error::corruption(
                file,
                format!("{name:?}: sum and count columns differ in length"),
            ));
        }
        let slots = n
            .into_iter()
            .enumerate()
            .map(|(i, count)| {
                s.is_valid(i)
                    .then(|| ExactSum::from_bytes(s.value(i)))
                    .flatten()
                    .map(|sum| FloatSlot::loaded(sum, count))
                    .ok_or_else(|| {
                        Error::corruption(file, format!("bad float-sum state in {name:?}"))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((FloatSum, slots))
    }

    fn write_slot(&self, s: &FloatSlot, out: &mut Vec<u8>) {
        out.put(s.count());
        s.total().canonical().write_bytes(out);
    }

    fn read_slot(&self, r: &mut ByteReader<'_>) -> std::result::Result<FloatSlot, SketchError> {
        let n = r.u64()?;
        let sum = ExactSum::from_bytes(r.rest()).ok_or_else(|| r.error("bad exact sum"))?;
        Ok(FloatSlot::loaded(sum, n))
    }

    fn settle(&self, slots: &mut [FloatSlot]) {
        for s in slots {
            s.fixed.flush(&mut s.sum);
        }
    }

    fn heap_bytes(&self, slots: &[FloatSlot]) -> usize {
        slots
            .iter()
            .map(|s| s.sum.memory_bytes() - std::mem::size_of::<ExactSum>())
            .sum()
    }
}
