//! `sum` of an integer column: an exact i128 accumulator and a non-null count per group, generic
//! over the input's native type (int64, with narrower integers widened, or uint64). The result is
//! int64; a total outside its range is a `SumOverflowError`, never a wrapped value.
//!
//! Partial-state layout (v1): the exact sum as i128, then the non-null count as u64.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;

use crate::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, Decimal128Array, Int64Array, RecordBatch,
};
use crate::arrow::datatypes::Decimal128Type;

use super::input::{int64_values, uint64_values};
use super::mean::SumState;
use super::{
    counts_column, downcast, for_each_valid, need, read_counts, read_partials, state_column,
    GroupsAccumulator,
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

#[derive(Debug, Clone, Default)]
pub struct IntSum<T: IntInput> {
    sum: Vec<i128>,
    n: Vec<u64>,
    _input: PhantomData<T>,
}

impl<T: IntInput> IntSum<T> {
    fn grow(&mut self, groups: usize) {
        if groups > self.n.len() {
            self.sum.resize(groups, 0);
            self.n.resize(groups, 0);
        }
    }

    fn value(&self, name: &str, g: usize) -> Result<Option<i64>> {
        if self.n[g] == 0 {
            return Ok(None);
        }
        i64::try_from(self.sum[g]).map(Some).map_err(|_| {
            Error::new(
                ErrorKind::Overflow,
                format!("sum {name:?} overflows int64 (exact value {})", self.sum[g]),
            )
        })
    }
}

impl<T: IntInput> SumState for IntSum<T> {
    fn mean(&self, g: usize) -> Option<f64> {
        (self.n[g] > 0).then(|| self.sum[g] as f64 / self.n[g] as f64)
    }
    fn hidden_state(&self, name: &str, order: &[u32]) -> Result<Vec<(String, ArrayRef)>> {
        let s = Decimal128Array::from_iter_values(order.iter().map(|&g| self.sum[g as usize]))
            .with_precision_and_scale(38, 0)?;
        Ok(vec![
            (format!("__{name}__sum"), Arc::new(s) as ArrayRef),
            (format!("__{name}__n"), counts_column(order, |g| self.n[g])),
        ])
    }
}

impl<T: IntInput> GroupsAccumulator for IntSum<T> {
    fn update(&mut self, gids: &[u32], input: Option<&ArrayRef>, groups: usize) -> Result<()> {
        self.grow(groups);
        let (sum, n) = (&mut self.sum, &mut self.n);
        T::fold(need(input)?, gids, |g, v| {
            sum[g] += v;
            n[g] += 1;
        })
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
            self.sum[d as usize] += o.sum[s as usize];
            self.n[d as usize] += o.n[s as usize];
        }
        Ok(())
    }

    fn evaluate(&self, name: &str, order: &[u32]) -> Result<Vec<(String, ArrayRef)>> {
        let values = order
            .iter()
            .map(|&g| self.value(name, g as usize))
            .collect::<Result<Int64Array>>()?;
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
        let what = format!("__{name}__sum");
        let s = state_column(batch, &what, file)?;
        let s = s
            .as_primitive_opt::<Decimal128Type>()
            .ok_or_else(|| Error::corruption(file, format!("{what}: not a decimal column")))?;
        if s.null_count() > 0 {
            return Err(Error::corruption(file, format!("{what}: null state")));
        }
        let n = read_counts(batch, &format!("__{name}__n"), file)?;
        Ok(Box::new(IntSum::<T> {
            sum: s.values().to_vec(),
            n,
            _input: PhantomData,
        }))
    }

    fn fresh(&self) -> Box<dyn GroupsAccumulator> {
        Box::new(Self::default())
    }
    fn write_partial(&self, g: usize, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&self.sum[g].to_le_bytes());
        out.extend_from_slice(&self.n[g].to_le_bytes());
        Ok(())
    }
    fn load_partial(&self, values: &BinaryArray, what: &str) -> Result<Box<dyn GroupsAccumulator>> {
        let parts = read_partials(values, what, |r| Ok((r.u128()? as i128, r.u64()?)))?;
        let (sum, n) = parts.into_iter().unzip();
        Ok(Box::new(IntSum::<T> {
            sum,
            n,
            _input: PhantomData,
        }))
    }
    fn into_served(self: Box<Self>) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(self)
    }
    fn len(&self) -> usize {
        self.n.len()
    }
    fn memory_bytes(&self) -> usize {
        self.sum.capacity() * 16 + self.n.capacity() * 8
    }
}
