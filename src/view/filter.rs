//! Filters, evaluated in one place: a view's row filter over master-dataset rows (`row_filter`,
//! before grouping) and a query's filter over group keys (`predicate_matches`, on each group's
//! dimension values). Both compare values the way dimension keys are compared: strings by
//! bytes, uint64 by its bit pattern as int64, dates as days since 1970-01-01; null passes only
//! an `in` list holding null.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use crate::arrow::compute::cast;
use crate::arrow::datatypes::{DataType, Int64Type};
use crate::error::{Error, Result};
use crate::view::def::{Filter, Predicate, Scalar};
use crate::view::group::DimValue;

/// Rows of `batch` passing the view's row filter (None: all rows).
pub fn row_filter(filters: &[Filter], batch: &RecordBatch) -> Result<Option<BooleanArray>> {
    if filters.is_empty() {
        return Ok(None);
    }
    let n = batch.num_rows();
    let mut keep = vec![true; n];
    for f in filters {
        let col = batch
            .column_by_name(&f.column)
            .ok_or_else(|| Error::not_found(format!("filter column {:?}", f.column)))?;
        let col = match col.data_type() {
            DataType::Utf8 | DataType::Boolean | DataType::Int64 => col.clone(),
            DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
                cast(col, &DataType::Utf8)?
            }
            // Bit patterns for uint64 (compared as the dimension keys are), never a lossy cast.
            _ => Arc::new(crate::aggregate::int64_values(col)?),
        };
        for (row, k) in keep.iter_mut().enumerate() {
            if !*k {
                continue;
            }
            let v = if col.is_null(row) {
                DimValue::Null
            } else {
                match col.data_type() {
                    DataType::Utf8 => DimValue::Str(col.as_string::<i32>().value(row)),
                    DataType::Boolean => DimValue::Bool(col.as_boolean().value(row)),
                    _ => DimValue::Int(col.as_primitive::<Int64Type>().value(row)),
                }
            };
            *k = predicate_matches(&f.predicate, v);
        }
    }
    Ok(Some(BooleanArray::from(keep)))
}

/// Does a dimension value pass a predicate?
pub fn predicate_matches(p: &Predicate, v: DimValue<'_>) -> bool {
    match p {
        Predicate::In(values) => values.iter().any(|s| scalar_eq(s, v)),
        Predicate::NotIn(values) => v != DimValue::Null && !values.iter().any(|s| scalar_eq(s, v)),
        Predicate::Range { ge, gt, le, lt } => {
            if v == DimValue::Null {
                return false;
            }
            let test = |bound: &Option<Scalar>, ok: fn(Ordering) -> bool| match bound {
                None => true,
                Some(s) => scalar_cmp(v, s).map(ok).unwrap_or(false),
            };
            test(ge, |o| o != Ordering::Less)
                && test(gt, |o| o == Ordering::Greater)
                && test(le, |o| o != Ordering::Greater)
                && test(lt, |o| o == Ordering::Less)
        }
    }
}

fn scalar_eq(s: &Scalar, v: DimValue<'_>) -> bool {
    match (s, v) {
        (Scalar::Null, DimValue::Null) => true,
        (Scalar::Str(a), DimValue::Str(b)) => a == b,
        (Scalar::Int(a), DimValue::Int(b)) => *a == b,
        (Scalar::Int(a), DimValue::UInt(b)) => *a as i128 == b as i128,
        (Scalar::Int(a), DimValue::Date(b)) => *a == b,
        (Scalar::Bool(a), DimValue::Bool(b)) => *a == b,
        _ => false,
    }
}

fn scalar_cmp(v: DimValue<'_>, s: &Scalar) -> Option<Ordering> {
    match (v, s) {
        (DimValue::Str(a), Scalar::Str(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (DimValue::Int(a), Scalar::Int(b)) => Some(a.cmp(b)),
        (DimValue::UInt(a), Scalar::Int(b)) => Some((a as i128).cmp(&(*b as i128))),
        (DimValue::Date(a), Scalar::Int(b)) => Some(a.cmp(b)),
        (DimValue::Bool(a), Scalar::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}
