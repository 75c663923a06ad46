//! `min` and `max`, generic over the input's native type: int64 (narrower integers and
//! timestamps widened), uint64 (compared unsigned) and float64 (NaN above +inf, as in DuckDB).
//!
//! Partial-state layout (v1): one byte, 0 for a group without values, or 1 followed by the value
//! (8 bytes: the integer, or the float's IEEE 754 bits).

use std::cmp::Ordering;
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use crate::arrow::array::{
    Array, ArrayRef, BinaryArray, Float64Array, Int64Array, RecordBatch, UInt64Array,
};
use crate::arrow::buffer::{NullBuffer, ScalarBuffer};
use crate::arrow::datatypes::DataType;

use super::input::{float64_values, int64_values, uint64_values};
use super::{downcast, for_each_valid, need, read_partials, state_column, GroupsAccumulator};
use crate::error::{Error, Result};

/// A native type with a total order that min/max fold.
pub trait Extremum:
    crate::arrow::datatypes::ArrowNativeType + Debug + Default + Send + Sync + 'static
{
    /// The values and validity of an input column (shared with the column, not copied).
    fn column(col: &ArrayRef) -> Result<(ScalarBuffer<Self>, Option<NullBuffer>)>;
    fn order(a: Self, b: Self) -> Ordering;
    /// Every NaN the same (floats only).
    fn canon(self) -> Self {
        self
    }
    fn array(values: Vec<Option<Self>>) -> ArrayRef;
    fn to_bits(self) -> u64;
    fn from_bits(bits: u64) -> Self;
}

impl Extremum for i64 {
    fn column(col: &ArrayRef) -> Result<(ScalarBuffer<Self>, Option<NullBuffer>)> {
        let a = int64_values(col)?;
        Ok((a.values().clone(), a.nulls().cloned()))
    }
    fn order(a: Self, b: Self) -> Ordering {
        a.cmp(&b)
    }
    fn array(values: Vec<Option<Self>>) -> ArrayRef {
        Arc::new(Int64Array::from(values))
    }
    fn to_bits(self) -> u64 {
        self as u64
    }
    fn from_bits(bits: u64) -> Self {
        bits as i64
    }
}

impl Extremum for u64 {
    fn column(col: &ArrayRef) -> Result<(ScalarBuffer<Self>, Option<NullBuffer>)> {
        let a = uint64_values(col)?;
        Ok((a.values().clone(), a.nulls().cloned()))
    }
    fn order(a: Self, b: Self) -> Ordering {
        a.cmp(&b)
    }
    fn array(values: Vec<Option<Self>>) -> ArrayRef {
        Arc::new(UInt64Array::from(values))
    }
    fn to_bits(self) -> u64 {
        self
    }
    fn from_bits(bits: u64) -> Self {
        bits
    }
}

impl Extremum for f64 {
    fn column(col: &ArrayRef) -> Result<(ScalarBuffer<Self>, Option<NullBuffer>)> {
        let a = float64_values(col)?;
        Ok((a.values().clone(), a.nulls().cloned()))
    }
    fn order(a: Self, b: Self) -> Ordering {
        a.total_cmp(&b)
    }
    fn canon(self) -> Self {
        if self.is_nan() {
            f64::NAN
        } else {
            self
        }
    }
    fn array(values: Vec<Option<Self>>) -> ArrayRef {
        Arc::new(Float64Array::from(values))
    }
    fn to_bits(self) -> u64 {
        f64::to_bits(self)
    }
    fn from_bits(bits: u64) -> Self {
        f64::from_bits(bits)
    }
}

#[derive(Debug, Clone)]
pub struct MinMax<T: Extremum> {
    v: Vec<T>,
    has: Vec<bool>,
    max: bool,
}

impl<T: Extremum> MinMax<T> {
    pub fn new(max: bool) -> Self {
        MinMax {
            v: Vec::new(),
            has: Vec::new(),
            max,
        }
    }

    fn grow(&mut self, groups: usize) {
        if groups > self.has.len() {
            self.v.resize(groups, T::default());
            self.has.resize(groups, false);
        }
    }

    #[inline]
    fn offer(v: &mut [T], has: &mut [bool], max: bool, g: usize, x: T) {
        let better = match T::order(x, v[g]) {
            Ordering::Greater => max,
            Ordering::Less => !max,
            Ordering::Equal => false,
        };
        if !has[g] || better {
            v[g] = x;
            has[g] = true;
        }
    }
}

impl<T: Extremum> GroupsAccumulator for MinMax<T> {
    fn update(&mut self, gids: &[u32], input: Option<&ArrayRef>, groups: usize) -> Result<()> {
        self.grow(groups);
        let (values, nulls) = T::column(need(input)?)?;
        let (v, has, max) = (&mut self.v, &mut self.has, self.max);
        for_each_valid(gids, &values, nulls.as_ref(), |g, x| {
            Self::offer(v, has, max, g, x.canon())
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
            if o.has[s as usize] {
                Self::offer(
                    &mut self.v,
                    &mut self.has,
                    self.max,
                    d as usize,
                    o.v[s as usize],
                );
            }
        }
        Ok(())
    }

    fn evaluate(&self, name: &str, order: &[u32]) -> Result<Vec<(String, ArrayRef)>> {
        let values = order
            .iter()
            .map(|&g| self.has[g as usize].then(|| self.v[g as usize]))
            .collect();
        Ok(vec![(name.to_string(), T::array(values))])
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
        let col = state_column(batch, name, file)?;
        let expected = T::array(vec![]).data_type().clone();
        if col.data_type() != &expected && !matches!(col.data_type(), DataType::Null) {
            return Err(Error::corruption(
                file,
                format!(
                    "column {name:?} has type {}, expected {expected}",
                    col.data_type()
                ),
            ));
        }
        let (v, nulls) = T::column(&col)?;
        let has = (0..v.len())
            .map(|i| nulls.as_ref().is_none_or(|n| n.is_valid(i)))
            .collect();
        Ok(Box::new(MinMax {
            v: v.to_vec(),
            has,
            max: self.max,
        }))
    }

    fn fresh(&self) -> Box<dyn GroupsAccumulator> {
        Box::new(Self::new(self.max))
    }
    fn write_partial(&self, g: usize, out: &mut Vec<u8>) -> Result<()> {
        if self.has[g] {
            out.push(1);
            out.extend_from_slice(&self.v[g].to_bits().to_le_bytes());
        } else {
            out.push(0);
        }
        Ok(())
    }
    fn load_partial(&self, values: &BinaryArray, what: &str) -> Result<Box<dyn GroupsAccumulator>> {
        let parts = read_partials(values, what, |r| match r.u8()? {
            0 => Ok((T::default(), false)),
            1 => Ok((T::from_bits(r.u64()?).canon(), true)),
            _ => Err(r.error("bad tag")),
        })?;
        let (v, has) = parts.into_iter().unzip();
        Ok(Box::new(MinMax {
            v,
            has,
            max: self.max,
        }))
    }
    fn into_served(self: Box<Self>) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(self)
    }
    fn len(&self) -> usize {
        self.has.len()
    }
    fn memory_bytes(&self) -> usize {
        self.v.capacity() * std::mem::size_of::<T>() + self.has.capacity()
    }
}
