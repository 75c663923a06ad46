//! Quarantined rows: refused rows of an append kept as text with their commit, row and reason.

use std::sync::Arc;

use crate::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use crate::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::{Error, Result};
/// The layout of quarantined rows: commit, row and reason, then every store column as text (in
/// the store's order, whatever order the refused append had), so all appends' rows stack.
pub fn quarantine_schema(store: &Schema) -> SchemaRef {
    let mut fields = vec![
        Field::new("commit", DataType::Int64, false),
        Field::new("row", DataType::Int64, false),
        Field::new("reason", DataType::Utf8, false),
    ];
    fields.extend(
        store
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), DataType::Utf8, true)),
    );
    Arc::new(Schema::new(fields))
}

/// Rejected rows as text, with commit, row and reason: readable whatever their original types.
pub fn quarantine_batch(
    incoming: &RecordBatch,
    rejected: &[(usize, String)],
    commit: u64,
    store: &Schema,
) -> Result<RecordBatch> {
    let idx =
        crate::arrow::array::UInt32Array::from_iter_values(rejected.iter().map(|(r, _)| *r as u32));
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![commit as i64; rejected.len()])),
        Arc::new(Int64Array::from_iter_values(
            rejected.iter().map(|(r, _)| *r as i64),
        )),
        Arc::new(StringArray::from_iter_values(
            rejected.iter().map(|(_, why)| why.as_str()),
        )),
    ];
    for f in store.fields() {
        // `conform` accepted the append column-wise, so every store column is present.
        let c = incoming.column_by_name(f.name()).ok_or_else(|| {
            Error::schema(format!("column {:?} is missing from the data", f.name()))
        })?;
        let taken = crate::arrow::compute::take(c.as_ref(), &idx, None)?;
        let text = crate::arrow::compute::cast(&taken, &DataType::Utf8)
            .unwrap_or_else(|_| Arc::new(StringArray::from(vec![None::<&str>; rejected.len()])));
        cols.push(text);
    }
    Ok(RecordBatch::try_new(quarantine_schema(store), cols)?)
}
