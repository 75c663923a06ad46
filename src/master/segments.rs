//! Reading the master dataset: the rows of a range of commits, from the segments that hold them.

use std::path::Path;

use crate::arrow::array::RecordBatch;
use crate::arrow::datatypes::Schema;

use crate::error::Result;
use crate::master::commits::SegmentSlice;
use crate::master::files::read_checked;
use crate::master::parquet_io::ParquetBytes;

/// Read `slices` (only `columns`; None: all), checking each file's checksum, row count and
/// schema, in commit order. Segments are read in parallel.
pub fn read_slices(
    root: &Path,
    slices: &[SegmentSlice],
    columns: Option<&[String]>,
    expected: Option<&Schema>,
) -> Result<Vec<RecordBatch>> {
    use rayon::prelude::*;
    let parts: Vec<Result<Vec<RecordBatch>>> = crate::control::parallel::install(|| {
        slices
            .par_iter()
            .map(|s| {
                let path = root.join(&s.file.file);
                let bytes = read_checked(&path, s.file.crc32, s.file.bytes)?;
                let pq = ParquetBytes::open(&path, bytes)?;
                pq.verify(&path, s.file_rows, expected)?;
                let (skip, end) = (s.skip as usize, (s.skip + s.rows) as usize);
                let batches = match expected {
                    Some(target) => pq.read_as(&path, columns, None, Some(end), target)?,
                    None => pq.read(&path, columns, None, Some(end))?,
                };
                Ok(slice_batches(batches, skip, end))
            })
            .collect()
    });
    let mut out = Vec::new();
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}

/// Keep rows [skip, end) of a sequence of batches.
fn slice_batches(batches: Vec<RecordBatch>, skip: usize, end: usize) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    for b in batches {
        let n = b.num_rows();
        let (s, e) = (skip.max(pos), end.min(pos + n));
        if s < e {
            out.push(if s == pos && e == pos + n {
                b
            } else {
                b.slice(s - pos, e - s)
            });
        }
        pos += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arrow::array::{AsArray, Int64Array};
    use crate::arrow::datatypes::{DataType, Field, Int64Type};
    use crate::master::commits::FileRef;
    use crate::master::files::write_atomic;
    use crate::master::parquet_io::encode;
    use std::sync::Arc;

    #[test]
    fn a_slice_reads_exactly_its_rows_and_checks_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from_iter_values(0..100))],
        )
        .unwrap();
        let bytes = encode(&schema, &[b]).unwrap();
        write_atomic(&dir.path().join("s.parquet"), &bytes, false).unwrap();
        let file = FileRef {
            file: "s.parquet".into(),
            bytes: bytes.len() as u64,
            crc32: crc32fast::hash(&bytes),
        };
        let slice = SegmentSlice {
            file: file.clone(),
            file_rows: 100,
            skip: 10,
            rows: 5,
        };
        let got = read_slices(dir.path(), &[slice], None, Some(&schema)).unwrap();
        let values: Vec<i64> = got
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(values, vec![10, 11, 12, 13, 14]);
        // The manifest says another row count: corruption naming the file.
        let wrong = SegmentSlice {
            file,
            file_rows: 99,
            skip: 0,
            rows: 1,
        };
        let e = read_slices(dir.path(), &[wrong], None, Some(&schema)).unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Corruption);
        assert!(e.message.contains("s.parquet"), "{}", e.message);
    }
}
