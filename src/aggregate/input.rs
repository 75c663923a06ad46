//! Input columns as the native values aggregates fold: int64 (narrower integers, timestamps and
//! booleans widened), uint64 (kept unsigned), float64, and distinct keys.

use crate::arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, UInt64Array};
use crate::arrow::datatypes::{DataType, Float64Type, Int64Type, UInt64Type};

use crate::error::{Error, Result};

/// An integer-like column as int64. uint64 values above `i64::MAX` keep their bit pattern: use
/// this for uint64 only where values are compared for equality (distinct keys); sums and min/max
/// of uint64 columns read [`uint64_values`].
pub fn int64_values(col: &ArrayRef) -> Result<Int64Array> {
    Ok(match col.data_type() {
        DataType::Int64 => col.as_primitive::<Int64Type>().clone(),
        DataType::UInt64 => {
            let a = col.as_primitive::<UInt64Type>();
            Int64Array::new(
                a.values().iter().map(|&v| v as i64).collect(),
                a.nulls().cloned(),
            )
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::Timestamp(_, _)
        | DataType::Boolean => crate::arrow::compute::cast(col, &DataType::Int64)?
            .as_primitive::<Int64Type>()
            .clone(),
        // Days since 1970-01-01.
        DataType::Date32 => crate::arrow::compute::cast(
            &crate::arrow::compute::cast(col, &DataType::Int32)?,
            &DataType::Int64,
        )?
        .as_primitive::<Int64Type>()
        .clone(),
        other => {
            return Err(Error::schema(format!(
                "expected an integer column, found {other}"
            )))
        }
    })
}

/// A uint64 column as itself.
pub fn uint64_values(col: &ArrayRef) -> Result<UInt64Array> {
    match col.data_type() {
        DataType::UInt64 => Ok(col.as_primitive::<UInt64Type>().clone()),
        other => Err(Error::schema(format!(
            "expected a uint64 column, found {other}"
        ))),
    }
}

pub fn float64_values(col: &ArrayRef) -> Result<Float64Array> {
    Ok(match col.data_type() {
        DataType::Float64 => col.as_primitive::<Float64Type>().clone(),
        _ => crate::arrow::compute::cast(col, &DataType::Float64)?
            .as_primitive::<Float64Type>()
            .clone(),
    })
}

/// Distinct keys of a column: integers (and bools, timestamps) as themselves, strings as their
/// 128-bit xxh3 hash (a collision needs ~2^64 distinct strings in one group).
pub enum Keys {
    Narrow(Vec<u64>),
    Wide(Vec<u128>),
}

impl Keys {
    /// The key of row `i`, widened.
    pub fn get(&self, i: usize) -> u128 {
        match self {
            Keys::Narrow(k) => k[i] as u128,
            Keys::Wide(k) => k[i],
        }
    }
}

pub fn distinct_keys(col: &ArrayRef) -> Result<Keys> {
    Ok(match col.data_type() {
        DataType::Utf8 => {
            let a = col.as_string::<i32>();
            Keys::Wide(
                (0..a.len())
                    .map(|i| xxhash_rust::xxh3::xxh3_128(a.value(i).as_bytes()))
                    .collect(),
            )
        }
        DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
            let a = crate::arrow::compute::cast(col, &DataType::Utf8)?;
            return distinct_keys(&a);
        }
        _ => {
            let a = int64_values(col)?;
            Keys::Narrow(a.values().iter().map(|&v| v as u64).collect())
        }
    })
}
