//! Reading the master dataset: the rows of a range of commits, from the segments that hold them.

use std::path::Path;

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;

use crate::error::Result;
use crate::master::files::read_checked;
use crate::master::manifest::SegmentSlice;
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
    let parts: Vec<Result<Vec<RecordBatch>>> = slices
        .par_iter()
        .map(|s| {
            let path = root.join(&s.file.file);
            let bytes = read_checked(&path, s.file.crc32, s.file.bytes)?;
            let pq = ParquetBytes::open(&path, bytes)?;
            pq.verify(&path, s.file_rows, expected)?;
            let (skip, end) = (s.skip as usize, (s.skip + s.rows) as usize);
            let batches = pq.read(&path, columns, None, Some(end))?;
            Ok(slice_batches(batches, skip, end))
        })
        .collect();
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
