//! `min` and `max`, generic over the input's native type: int64 (narrower integers and
//! timestamps widened), uint64 (compared unsigned) and float64 (NaN above +inf, as in DuckDB).
//!
//! Partial-state layout (v1): one byte, 0 for a group without values, or 1 followed by the value
//! (8 bytes: the integer, or the float's IEEE 754 bits).

use crate::aggregate::sketch::codec::ByteWriter;
use std::cmp::Ordering;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;

use crate::arrow::array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, UInt64Array};
use crate::arrow::buffer::{NullBuffer, ScalarBuffer};
use crate::arrow::datatypes::DataType;

use super::groups::Aggregate;
use super::input::{float64_values, int64_values, uint64_values};
use super::runs::GroupRuns;
use super::{for_each_valid, need, state_column, ByteReader, SketchError};
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

/// `min` (or `max`); a group's slot is its extreme value, None before its first value.
#[derive(Debug, Clone)]
pub struct MinMax<T: Extremum> {
    max: bool,
    _input: PhantomData<T>,
}

impl<T: Extremum> MinMax<T> {
    pub fn new(max: bool) -> Self {
        MinMax {
            max,
            _input: PhantomData,
        }
    }

    #[inline]
    fn offer(&self, slot: &mut Option<T>, x: T) {
        match slot {
            None => *slot = Some(x),
            Some(v) => {
                let better = match T::order(x, *v) {
                    Ordering::Greater => self.max,
                    Ordering::Less => !self.max,
                    Ordering::Equal => false,
                };
                if better {
                    *v = x;
                }
            }
        }
    }
}

impl<T: Extremum> Aggregate for MinMax<T> {
    type Slot = Option<T>;

    fn update(
        &self,
        slots: &mut [Option<T>],
        gids: &[u32],
        input: Option<&ArrayRef>,
        _: &mut GroupRuns,
    ) -> Result<()> {
        let (values, nulls) = T::column(need(input)?)?;
        for_each_valid(gids, &values, nulls.as_ref(), |g, x| {
            self.offer(&mut slots[g], x.canon())
        });
        Ok(())
    }

    fn merge(&self, dst: &mut Option<T>, src: &Option<T>) -> Result<()> {
        if let Some(x) = *src {
            self.offer(dst, x);
        }
        Ok(())
    }

    fn evaluate(
        &self,
        name: &str,
        slots: &[Option<T>],
        order: &[u32],
    ) -> Result<Vec<(String, ArrayRef)>> {
        let values = order.iter().map(|&g| slots[g as usize]).collect();
        Ok(vec![(name.to_string(), T::array(values))])
    }

    fn load_state(
        &self,
        name: &str,
        batch: &RecordBatch,
        file: &Path,
    ) -> Result<(Self, Vec<Option<T>>)> {
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
        let slots = v
            .iter()
            .enumerate()
            .map(|(i, &x)| nulls.as_ref().is_none_or(|n| n.is_valid(i)).then_some(x))
            .collect();
        Ok((self.clone(), slots))
    }

    fn write_slot(&self, slot: &Option<T>, out: &mut Vec<u8>) {
        match slot {
            Some(v) => {
                out.push(1);
                out.put(v.to_bits());
            }
            None => out.push(0),
        }
    }

    fn read_slot(&self, r: &mut ByteReader<'_>) -> std::result::Result<Option<T>, SketchError> {
        match r.u8()? {
            0 => Ok(None),
            1 => Ok(Some(T::from_bits(r.u64()?).canon())),
            _ => Err(r.error("bad tag")),
        }
    }
}
