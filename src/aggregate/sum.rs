//! `sum` of an integer column: an exact i128 accumulator and a non-null count per group, generic
//! over the input's native type (int64, with narrower integers widened, or uint64). The result is
//! int64; a total outside its range is a `SumOverflowError`, never a wrapped value.
//!
//! Partial-state layout (v1): the exact sum as i128, then the non-null count as u64.

use crate::aggregate::sketch::codec::ByteWriter;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;

use crate::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, Int64Array, RecordBatch};
use crate::arrow::datatypes::Decimal128Type;

use super::groups::Aggregate;
use super::input::{int64_values, uint64_values};
use super::mean::SumState;
use super::runs::GroupRuns;
use super::{
    counts_column, for_each_valid, need, read_counts, state_column, ByteReader, SketchError,
};
use crate::error::{Error, ErrorKind, Result};

/// An integer input type a sum folds exactly into i128.
pub trait IntInput: Debug + Default + Clone + Send + Sync + 'static {
    fn fold(col: &ArrayRef, gids: &[u32], f: impl FnMut(usize, i128)) -> Result<()>;
}

impl IntInput for i64 {
    fn fold(col: &ArrayRef, gids: &[u32], mut f: impl FnMut(usize, i128)) -> Result<()> {
        let a = int64_values(col)?;
        for_each_valid(gids, a.values(), a.nulls(), |g, v| f(g, v as i128));
        Ok(())
    }
}

impl IntInput for u64 {
    fn fold(col: &ArrayRef, gids: &[u32], mut f: impl FnMut(usize, i128)) -> Result<()> {
        let a = uint64_values(col)?;
        for_each_valid(gids, a.values(), a.nulls(), |g, v| f(g, v as i128));
        Ok(())
    }
}

/// One group: the exact sum (an i128 kept as two words, so a slot is 24 bytes, not 32 with
/// i128's alignment) and the non-null count.
#[derive(Debug, Clone, Copy, Default)]
pub struct IntSlot {
    lo: u64,
    hi: i64,
    n: u64,
}

impl IntSlot {
    #[inline]
    fn sum(&self) -> i128 {
        ((self.hi as i128) << 64) | self.lo as i128
    }
    #[inline]
    fn set(&mut self, sum: i128) {
        self.lo = sum as u64;
        self.hi = (sum >> 64) as i64;
    }
    #[inline]
    fn add(&mut self, v: i128, n: u64) {
        self.set(self.sum() + v);
        self.n += n;
    }
    fn new(sum: i128, n: u64) -> Self {
        let mut s = IntSlot { lo: 0, hi: 0, n };
        s.set(sum);
        s
    }
}

#[derive(Debug, Clone, Default)]
pub struct IntSum<T: IntInput> {
    _input: PhantomData<T>,
}

fn value(name: &str, s: &IntSlot) -> Result<Option<i64>> {
    if s.n == 0 {
        return Ok(None);
    }
    i64::try_from(s.sum()).map(Some).map_err(|_| {
        Error::new(
            ErrorKind::Overflow,
            format!("sum {name:?} overflows int64 (exact value {})", s.sum()),
        )
    })
}

impl<T: IntInput> SumState for IntSum<T> {
    fn mean(s: &IntSlot) -> Option<f64> {
        (s.n > 0).then(|| s.sum() as f64 / s.n as f64)
    }
    fn hidden_state(
        &self,
        name: &str,
        slots: &[IntSlot],
        order: &[u32],
    ) -> Result<Vec<(String, ArrayRef)>> {
        let s = Decimal128Array::from_iter_values(order.iter().map(|&g| slots[g as usize].sum()))
            .with_precision_and_scale(38, 0)?;
        Ok(vec![
            (format!("__{name}__sum"), Arc::new(s) as ArrayRef),
            (format!("__{name}__n"), counts_column(order, |g| slots[g].n)),
        ])
    }
}

impl<T: IntInput> Aggregate for IntSum<T> {
    type Slot = IntSlot;

    fn update(
        &self,
        slots: &mut [IntSlot],
        gids: &[u32],
        input: Option<&ArrayRef>,
        _: &mut GroupRuns,
    ) -> Result<()> {
        T::fold(need(input)?, gids, |g, v| slots[g].add(v, 1))
    }

    fn merge(&self, dst: &mut IntSlot, src: &IntSlot) -> Result<()> {
        dst.add(src.sum(), src.n);
        Ok(())
    }

    fn evaluate(
        &self,
        name: &str,
        slots: &[IntSlot],
        order: &[u32],
    ) -> Result<Vec<(String, ArrayRef)>> {
        let values = order
            .iter()
            .map(|&g| value(name, &slots[g as usize]))
            .collect::<Result<Int64Array>>()?;
        Ok(vec![(name.to_string(), Arc::new(values))])
    }

    fn state(
        &self,
        name: &str,
        slots: &[IntSlot],
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
    ) -> Result<(Self, Vec<IntSlot>)> {
        let what = format!("__{name}__sum");
        let s = state_column(batch, &what, file)?;
        let s = s
            .as_primitive_opt::<Decimal128Type>()
            .ok_or_else(|| Error::corruption(file, format!("{what}: not a decimal column")))?;
        if s.null_count() > 0 {
            return Err(Error::corruption(file, format!("{what}: null state")));
        }
        let n = read_counts(batch, &format!("__{name}__n"), file)?;
        let slots = s
            .values()
            .iter()
            .zip(n)
            .map(|(&sum, n)| IntSlot::new(sum, n))
            .collect();
        Ok((self.clone(), slots))
    }

    fn write_slot(&self, s: &IntSlot, out: &mut Vec<u8>) {
        out.put(s.sum());
        out.put(s.n);
    }

    fn read_slot(&self, r: &mut ByteReader<'_>) -> std::result::Result<IntSlot, SketchError> {
        let sum = r.u128()? as i128;
        Ok(IntSlot::new(sum, r.u64()?))
    }
}
