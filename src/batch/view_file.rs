//! The file of a published batch view: one Parquet file holding the view's state batch (see
//! `AggTable::state_batch`), followed by its declared roll-ups' state batches, each row tagged in
//! the `__rollup` column (0: the view, i: roll-up i) with null in the dimensions a roll-up drops.
//! One file keeps the view and its roll-ups one atomic publish. A view without roll-ups writes
//! its state batch unchanged (no `__rollup` column), which is also the layout of a saved speed
//! state (`speed::saved`).

use std::path::Path;
use std::sync::Arc;

use crate::arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt16Array,
};
use crate::arrow::compute::cast;
use crate::arrow::datatypes::{DataType, Field, Schema};
use crate::error::{Error, Result};
use crate::master::parquet_io::{self, ParquetBytes};
use crate::view::table::{AggTable, ViewPlan};

/// The column tagging the rows of a persisted batch view with the roll-up they belong to.
pub const ROLLUP_COLUMN: &str = "__rollup";

/// A batch view's state batch followed by its roll-ups' (see `AggTable::from_state_batches`),
/// all in the view's schema plus `__rollup`. Without roll-ups, the view's batch unchanged.
pub fn with_rollups(view: RecordBatch, rollups: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
    if rollups.is_empty() {
        return Ok(vec![view]);
    }
    let base = view.schema();
    // A roll-up's rows hold null in the dimensions it drops.
    let mut fields: Vec<Field> = base
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    fields.push(Field::new(ROLLUP_COLUMN, DataType::UInt16, false));
    let schema = Arc::new(Schema::new_with_metadata(fields, base.metadata().clone()));
    let mut out = Vec::with_capacity(1 + rollups.len());
    for (tag, b) in std::iter::once(view).chain(rollups).enumerate() {
        let n = b.num_rows();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for f in base.fields() {
            columns.push(match b.column_by_name(f.name()) {
                Some(c) if c.data_type() == f.data_type() => c.clone(),
                Some(c) => cast(c, f.data_type())?,
                None => new_null_array(f.data_type(), n),
            });
        }
        columns.push(Arc::new(UInt16Array::from(vec![tag as u16; n])));
        out.push(RecordBatch::try_new(schema.clone(), columns)?);
    }
    Ok(out)
}

/// The rows of persisted state batches for the view (`[0]`) and for each of its `rollups`
/// roll-ups (`[i]`, roll-up i - 1). Files without the `__rollup` column hold only the view.
pub fn split_rollups(
    batches: &[RecordBatch],
    rollups: usize,
    file: &std::path::Path,
) -> Result<Vec<Vec<RecordBatch>>> {
    let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); 1 + rollups];
    for b in batches {
        let Some(tags) = b.column_by_name(ROLLUP_COLUMN) else {
            parts[0].push(b.clone());
            continue;
        };
        let tags = tags
            .as_primitive_opt::<crate::arrow::datatypes::UInt16Type>()
            .filter(|t| t.null_count() == 0)
            .ok_or_else(|| Error::corruption(file, "the __rollup column is not a uint16 tag"))?;
        if let Some(bad) = tags.values().iter().find(|&&t| t as usize > rollups) {
            return Err(Error::corruption(
                file,
                format!("row tagged for roll-up {bad}; the view declares {rollups}"),
            ));
        }
        for (tag, part) in parts.iter_mut().enumerate() {
            let mask = BooleanArray::from(
                tags.values()
                    .iter()
                    .map(|&t| t as usize == tag)
                    .collect::<Vec<_>>(),
            );
            if mask.true_count() > 0 {
                part.push(crate::arrow::compute::filter_record_batch(b, &mask)?);
            }
        }
    }
    Ok(parts)
}

/// The file of a view's state batch and its roll-ups' (in declaration order), and its rows.
pub fn encode(view: RecordBatch, rollups: Vec<RecordBatch>) -> Result<(Vec<u8>, u64)> {
    let batches = with_rollups(view, rollups)?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    Ok((
        parquet_io::encode(&batches[0].schema(), &batches)?,
        rows as u64,
    ))
}

/// A view file's tables: the view's and each declared roll-up's. `rows`: how many rows the
/// catalog says the file holds (checked). Damage is a `CorruptionError` naming `path`.
pub fn decode(
    plan: &ViewPlan,
    path: &Path,
    bytes: bytes::Bytes,
    rows: Option<u64>,
) -> Result<(AggTable, Vec<AggTable>)> {
    let pq = ParquetBytes::open(path, bytes)?;
    let batches = pq.read(path, None, None, None)?;
    let got: usize = batches.iter().map(|b| b.num_rows()).sum();
    if let Some(want) = rows.filter(|&want| want != got as u64) {
        return Err(Error::corruption(
            path,
            format!("{got} rows, the manifest says {want}"),
        ));
    }
    let parts = split_rollups(&batches, plan.rollups.len(), path)?;
    let table = AggTable::from_state_batches(plan, &parts[0], path)?;
    let rollups = plan
        .rollups
        .iter()
        .zip(&parts[1..])
        .map(|(r, part)| AggTable::from_state_batches(&r.plan, part, path))
        .collect::<Result<_>>()?;
    Ok((table, rollups))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arrow::array::{Int64Array, StringArray};

    fn batch(cols: &[(&str, ArrayRef)]) -> RecordBatch {
        RecordBatch::try_from_iter(cols.iter().map(|(n, a)| (*n, a.clone()))).unwrap()
    }

    #[test]
    fn rollup_rows_share_the_view_file_and_split_back() {
        let view = batch(&[
            (
                "country",
                Arc::new(StringArray::from(vec!["DE", "FR"])) as ArrayRef,
            ),
            ("n", Arc::new(Int64Array::from(vec![1, 2]))),
        ]);
        let rolled = batch(&[("n", Arc::new(Int64Array::from(vec![3])) as ArrayRef)]);
        // Without roll-ups the file is the view's batch, unchanged.
        assert_eq!(
            with_rollups(view.clone(), vec![]).unwrap(),
            vec![view.clone()]
        );
        let all = with_rollups(view.clone(), vec![rolled]).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].column_by_name("country").unwrap().null_count(), 1);
        let path = std::path::Path::new("v.parquet");
        let parts = split_rollups(&all, 1, path).unwrap();
        assert_eq!(parts[0][0].num_rows(), 2);
        assert_eq!(parts[1][0].num_rows(), 1);
        // A tag beyond the declared roll-ups is damage, named with the file.
        let e = split_rollups(&all, 0, path).unwrap_err();
        assert!(e.to_string().contains("v.parquet"), "{e}");
        let bad = batch(&[
            ("n", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
            (
                ROLLUP_COLUMN,
                Arc::new(UInt16Array::from(vec![None::<u16>])) as ArrayRef,
            ),
        ]);
        assert!(split_rollups(&[bad], 1, path).is_err());
    }
}
