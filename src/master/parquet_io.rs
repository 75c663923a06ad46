//! Parquet encoding of segments and views, and checksummed, projected reads.

use std::path::Path;
use std::sync::Arc;

use crate::arrow::array::RecordBatch;
use crate::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};

/// Rows per Parquet row group: the unit of parallelism of a recompute.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Files with at least this many values (rows x columns) encode their columns in parallel (a
/// 65,536-row append of six columns does).
const PARALLEL_VALUES: usize = 1 << 18;

/// Encode batches as one Parquet file in memory.
///
/// Row groups hold [`ROW_GROUP_ROWS`] rows (a batch never shares one with the next). Hidden
/// state columns (`__*`) of binary type hold unique, high-entropy values (sketches, exact-sum
/// partials): they skip the dictionary and the compressor, which would only cost time; every
/// other column, hidden counts and sums included, is dictionary-encoded where that pays and
/// compressed with Snappy. A large file encodes its columns in parallel, each column of a row
/// group on its own task: the bytes are the same as a serial encode.
pub fn encode(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(format!("lamina {}", env!("CARGO_PKG_VERSION")));
    for f in schema.fields() {
        let binary = matches!(
            f.data_type(),
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView
        );
        if f.name().starts_with("__") && binary {
            let path = parquet::schema::types::ColumnPath::from(f.name().as_str());
            props = props
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_compression(path, Compression::UNCOMPRESSED);
        }
    }
    let props = props.build();
    let bad = |what: &str, e: parquet::errors::ParquetError| {
        Error::invalid(format!("parquet {what}: {e}"))
    };
    let mut out = Vec::new();
    let values: usize = batches.iter().map(|b| b.num_rows()).sum::<usize>() * schema.fields().len();
    let w = ArrowWriter::try_new(&mut out, schema.clone(), Some(props))
        .map_err(|e| bad("writer", e))?;
    if values < PARALLEL_VALUES {
        let mut w = w;
        for b in batches {
            w.write(b).map_err(|e| bad("write", e))?;
        }
        w.close().map_err(|e| bad("close", e))?;
        return Ok(out);
    }
    let (mut file, factory) = w.into_serialized_writer().map_err(|e| bad("writer", e))?;
    let mut index = 0;
    for b in batches {
        let mut start = 0;
        while start < b.num_rows() {
            let len = ROW_GROUP_ROWS.min(b.num_rows() - start);
            let part = b.slice(start, len);
            start += len;
            let writers = factory
                .create_column_writers(index)
                .map_err(|e| bad("writer", e))?;
            index += 1;
            // One leaf per column: lamina's schemas are flat.
            let mut leaves = Vec::with_capacity(writers.len());
            for (field, col) in schema.fields().iter().zip(part.columns()) {
                leaves.extend(
                    parquet::arrow::arrow_writer::compute_leaves(field, col)
                        .map_err(|e| bad("write", e))?,
                );
            }
            if leaves.len() != writers.len() {
                return Err(Error::internal(
                    "a nested column in a parallel Parquet encode",
                ));
            }
            use rayon::prelude::*;
            let chunks = crate::control::parallel::install(|| {
                writers
                    .into_par_iter()
                    .zip(leaves.into_par_iter())
                    .map(|(mut w, leaf)| {
                        w.write(&leaf)?;
                        w.close()
                    })
                    .collect::<parquet::errors::Result<Vec<_>>>()
            })
            .map_err(|e| bad("write", e))?;
            let mut rg = file.next_row_group().map_err(|e| bad("write", e))?;
            for c in chunks {
                c.append_to_row_group(&mut rg)
                    .map_err(|e| bad("write", e))?;
            }
            rg.close().map_err(|e| bad("write", e))?;
        }
    }
    file.close().map_err(|e| bad("close", e))?;
    Ok(out)
}

/// Parsed footer of an in-memory Parquet file.
pub struct ParquetBytes {
    pub bytes: bytes::Bytes,
    pub meta: ArrowReaderMetadata,
}

impl ParquetBytes {
    pub fn open(path: &Path, bytes: bytes::Bytes) -> Result<ParquetBytes> {
        let meta = guard(path, || {
            ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::new())
        })?
        .map_err(|e| Error::corruption(path, format!("not a readable Parquet file: {e}")))?;
        Ok(ParquetBytes { bytes, meta })
    }

    /// Rows in the file, from its footer.
    pub fn num_rows(&self) -> u64 {
        self.meta.metadata().file_metadata().num_rows().max(0) as u64
    }

    /// Check the file holds what the manifest says: `rows` rows and the `expected` columns.
    pub fn verify(&self, path: &Path, rows: u64, expected: Option<&Schema>) -> Result<()> {
        if self.num_rows() != rows {
            return Err(Error::corruption(
                path,
                format!("holds {} rows, the manifest says {rows}", self.num_rows()),
            ));
        }
        if let Some(want) = expected {
            // A segment written before a schema evolution lacks the columns added since, and
            // may hold a column in a narrower type than the one it was widened to.
            let have = self.meta.schema();
            let fits = have.fields().iter().all(|a| {
                want.field_with_name(a.name()).is_ok_and(|b| {
                    a.data_type() == b.data_type()
                        || matches!(a.data_type(), DataType::Dictionary(_, _))
                        || crate::master::schema::widens(a.data_type(), b.data_type())
                })
            });
            if !fits {
                return Err(Error::corruption(
                    path,
                    "its columns differ from the store's schema",
                ));
            }
        }
        Ok(())
    }

    /// Like `open`, but string columns decode as dictionaries straight from Parquet's dictionary
    /// pages: grouping then hashes each distinct string once per page instead of once per row.
    pub fn open_dictionary_strings(path: &Path, bytes: bytes::Bytes) -> Result<ParquetBytes> {
        let plain = Self::open(path, bytes)?;
        let fields: Vec<Field> = plain
            .meta
            .schema()
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Utf8 => Field::new(
                    f.name(),
                    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                    f.is_nullable(),
                ),
                _ => f.as_ref().clone(),
            })
            .collect();
        let hint = Arc::new(Schema::new(fields));
        let meta = ArrowReaderMetadata::try_new(
            plain.meta.metadata().clone(),
            ArrowReaderOptions::new().with_schema(hint),
        )
        .map_err(|e| Error::corruption(path, format!("not a readable Parquet file: {e}")))?;
        Ok(ParquetBytes {
            bytes: plain.bytes,
            meta,
        })
    }

    pub fn row_groups(&self) -> usize {
        self.meta.metadata().num_row_groups()
    }

    pub fn row_group_rows(&self, i: usize) -> u64 {
        self.meta.metadata().row_group(i).num_rows() as u64
    }

    /// `read`, as columns of `target` (the store's schema now): a column the file lacks (added
    /// by a schema evolution after the file was written) reads as nulls, a column held in a
    /// narrower type than the one it was widened to is cast. `columns` are names of `target`
    /// (None: all of its columns, in its order).
    pub fn read_as(
        &self,
        path: &Path,
        columns: Option<&[String]>,
        row_groups: Option<Vec<usize>>,
        limit: Option<usize>,
        target: &Schema,
    ) -> Result<Vec<RecordBatch>> {
        let file = self.meta.schema().clone();
        let wanted: Vec<String> = match columns {
            Some(c) => c.to_vec(),
            None => target.fields().iter().map(|f| f.name().clone()).collect(),
        };
        let present: Vec<String> = wanted
            .iter()
            .filter(|c| file.field_with_name(c).is_ok())
            .cloned()
            .collect();
        let same = present.len() == wanted.len()
            && wanted.iter().all(|c| {
                let (Ok(a), Ok(b)) = (file.field_with_name(c), target.field_with_name(c)) else {
                    return true;
                };
                a.data_type() == b.data_type()
                    || matches!(a.data_type(), DataType::Dictionary(_, _))
            });
        let in_order = file.fields().len() == wanted.len()
            && file
                .fields()
                .iter()
                .zip(&wanted)
                .all(|(f, w)| f.name() == w);
        if same && (columns.is_some() || in_order) {
            // A projection by name reads in the file's order: put the columns in `wanted`'s.
            let batches = self.read(path, Some(&wanted), row_groups, limit)?;
            return batches
                .into_iter()
                .map(|b| {
                    let idx: Vec<usize> = wanted
                        .iter()
                        .map(|w| b.schema().index_of(w))
                        .collect::<std::result::Result<_, _>>()?;
                    Ok(b.project(&idx)?)
                })
                .collect();
        }
        let batches = self.read(path, Some(&present), row_groups, limit)?;
        let mut out = Vec::with_capacity(batches.len());
        for b in batches {
            let n = b.num_rows();
            let mut fields = Vec::with_capacity(wanted.len());
            let mut cols = Vec::with_capacity(wanted.len());
            for name in &wanted {
                let want = target
                    .field_with_name(name)
                    .map_err(|_| Error::corruption(path, format!("lacks column {name:?}")))?;
                let col = match b.column_by_name(name) {
                    None => crate::arrow::array::new_null_array(want.data_type(), n),
                    Some(c) if matches!(c.data_type(), DataType::Dictionary(_, _)) => c.clone(),
                    Some(c) if c.data_type() != want.data_type() => {
                        crate::arrow::compute::cast(c, want.data_type())?
                    }
                    Some(c) => c.clone(),
                };
                fields.push(Field::new(name, col.data_type().clone(), true));
                cols.push(col);
            }
            out.push(RecordBatch::try_new_with_options(
                Arc::new(Schema::new(fields)),
                cols,
                &crate::arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
            )?);
        }
        Ok(out)
    }

    /// Read `columns` (None: all) of the given row groups, at most `limit` rows in all.
    pub fn read(
        &self,
        path: &Path,
        columns: Option<&[String]>,
        row_groups: Option<Vec<usize>>,
        limit: Option<usize>,
    ) -> Result<Vec<RecordBatch>> {
        self.read_with(&self.meta, path, columns, row_groups, limit)
    }

    fn read_with(
        &self,
        meta: &ArrowReaderMetadata,
        path: &Path,
        columns: Option<&[String]>,
        row_groups: Option<Vec<usize>>,
        limit: Option<usize>,
    ) -> Result<Vec<RecordBatch>> {
        let mut b =
            ParquetRecordBatchReaderBuilder::new_with_metadata(self.bytes.clone(), meta.clone())
                .with_batch_size(64 * 1024);
        if let Some(cols) = columns {
            let schema = self.meta.schema();
            let mut idx = Vec::new();
            for c in cols {
                let i = schema
                    .index_of(c)
                    .map_err(|_| Error::corruption(path, format!("lacks column {c:?}")))?;
                idx.push(i);
            }
            let mask = ProjectionMask::roots(self.meta.parquet_schema(), idx);
            b = b.with_projection(mask);
        }
        if let Some(rg) = row_groups {
            b = b.with_row_groups(rg);
        }
        if let Some(l) = limit {
            b = b.with_limit(l);
        }
        guard(path, move || {
            let reader = b.build().map_err(|e| Error::corruption(path, e))?;
            let mut out = Vec::new();
            for batch in reader {
                out.push(batch.map_err(|e| Error::corruption(path, e))?);
            }
            Ok(out)
        })?
    }
}

/// Run a decoder on bytes that passed their checksum but may still be malformed (a damaged file
/// re-signed, a bug elsewhere): a panic inside the decoder becomes a CorruptionError naming the file.
fn guard<T>(path: &Path, f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let what = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "decoder failure".into());
        Error::corruption(path, format!("cannot be decoded: {what}"))
    })
}
