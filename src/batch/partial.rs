//! The partial-state protocol: the state of a view over some rows, as an Arrow table that any
//! engine can ship, merge and finalize (a dask task, a Spark `mapInArrow` partition, a Ray
//! `map_batches` block).
//!
//! A partial table has one row per group: `bucket` (timestamp[us, UTC]), the view's dimensions,
//! then one binary column per metric state (quantiles of one column share one, named after the
//! first), each value the group's whole state in its aggregate's versioned layout (documented
//! in each file of `aggregate`). Field metadata `lamina.state` names the aggregate and layout
//! version (`"sum/1"`); schema metadata `lamina.partial` holds the protocol version, the layer,
//! the view definition and the stored types of the columns it reads, so a partial table is
//! self-describing: merging or finalizing needs nothing else.
//!
//! Invariants: merge is associative and commutative; partial states of any split of the rows,
//! merged in any order, finalize to exactly the single-pass answer (batch-layer states are
//! lossless: every distinct key, value and count). Rows are sorted by group key, so equal
//! states give equal tables. A state column is cut into record batches of at most
//! `CHUNK_BYTES`, so no binary column overflows its 32-bit offsets.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::aggregate::Mode;
use crate::arrow::array::{Array, ArrayRef, AsArray, BinaryArray, RecordBatch, RecordBatchOptions};
use crate::arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use crate::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use crate::error::{Error, ErrorKind, Result};
use crate::master::conform::conform;
use crate::master::schema::{ColumnSpec, StoreSchema};
use crate::view::def::ViewDef;
use crate::view::table::{AggTable, ViewPlan};

/// The protocol version written in `lamina.partial`.
pub const FORMAT: u32 = 1;
/// Schema metadata key of a partial table.
pub const META_KEY: &str = "lamina.partial";
/// Schema metadata key of the segments a partial table covers (a JSON list of file names),
/// written by the batch layer's tasks: a publish checks they cover the snapshot exactly once.
pub const COVERS_KEY: &str = "lamina.covers";
/// Field metadata key of a state column.
pub const STATE_KEY: &str = "lamina.state";
/// The largest state column of one record batch.
const CHUNK_BYTES: usize = 1 << 30;

fn bad(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Corruption, msg.into())
}

/// What a partial table says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartialMeta {
    pub format: u32,
    /// "batch" (exact, lossless) or "speed" (sketches).
    pub layer: String,
    pub view: ViewDef,
    /// The stored types of the columns the view reads.
    pub columns: Vec<ColumnSpec>,
}

/// A view's aggregation table with everything needed to merge and finalize it.
#[derive(Debug, Clone)]
pub struct Partial {
    pub plan: ViewPlan,
    pub meta: PartialMeta,
    pub table: AggTable,
    /// The segments of the master dataset the state covers, when the batch layer computed it
    /// (None: rows from elsewhere, `partial_states`). Merges keep the union and refuse overlap.
    pub covers: Option<BTreeSet<String>>,
}

/// The layer a partial state's mode is named after in its metadata.
fn layer_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Exact => "batch",
        Mode::Sketch => "speed",
    }
}

impl Partial {
    /// An empty partial state of `view` over data of `schema`.
    pub fn new(view: ViewDef, schema: &StoreSchema, mode: Mode) -> Result<Partial> {
        let plan = ViewPlan::new(view, schema)?;
        let columns = plan
            .input_columns()
            .iter()
            .filter_map(|c| schema.columns.iter().find(|s| &s.name == c).cloned())
            .collect();
        let meta = PartialMeta {
            format: FORMAT,
            layer: layer_name(mode).into(),
            view: plan.def.clone(),
            columns,
        };
        let table = plan.new_table(mode);
        Ok(Partial {
            plan,
            meta,
            table,
            covers: None,
        })
    }

    /// A partial state computed elsewhere (the batch layer, a worker).
    pub fn of_table(plan: &ViewPlan, schema: &StoreSchema, table: AggTable) -> Result<Partial> {
        let mut p = Partial::new(plan.def.clone(), schema, Mode::Exact)?;
        p.table = table;
        Ok(p)
    }

    /// Fold rows given in any Arrow types the store accepts: conformed to the stored types
    /// first, as an append would (a row the store would refuse is an error naming it).
    pub fn update_raw(&mut self, schema: &StoreSchema, batch: &RecordBatch) -> Result<()> {
        let target = schema.arrow()?;
        // Only the columns the view reads (other columns may hold types the store refuses).
        let wanted = self.plan.input_columns();
        let keep: Vec<usize> = batch
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| wanted.contains(f.name()))
            .map(|(i, _)| i)
            .collect();
        let batch = batch.project(&keep)?;
        let target = Arc::new(
            target.project(
                &target
                    .fields()
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| wanted.contains(f.name()))
                    .map(|(i, _)| i)
                    .collect::<Vec<_>>(),
            )?,
        );
        let conformed = conform(&batch, schema, &target, false)?;
        self.table.update(&self.plan, &conformed.batch)
    }

    /// Merge another partial state of the same view into this one.
    pub fn merge(&mut self, mut other: Partial) -> Result<()> {
        if other.meta != self.meta {
            return Err(Error::invalid(format!(
                "partial states of different views or data types cannot merge ({:?} over {:?} \
                 against {:?} over {:?})",
                self.meta.view.name, self.meta.columns, other.meta.view.name, other.meta.columns
            )));
        }
        self.covers = match (self.covers.take(), other.covers.take()) {
            (Some(mut a), Some(b)) => {
                if let Some(twice) = b.iter().find(|s| a.contains(*s)) {
                    return Err(Error::invalid(format!(
                        "partial states of view {:?} overlap: both cover segment {twice:?} (did an \
                         executor return a task's result twice?); merging them would count its \
                         rows twice",
                        self.meta.view.name
                    )));
                }
                a.extend(b);
                Some(a)
            }
            _ => None,
        };
        // Merge the smaller into the larger: fewer keys to translate.
        if other.table.keys.len() > self.table.keys.len() {
            std::mem::swap(&mut self.table, &mut other.table);
        }
        if !other.table.keys.is_empty() {
            self.table.merge_same(&other.table)?;
        }
        Ok(())
    }

    /// The view's answer over every row folded in: the columns `query()` returns.
    pub fn finalize(&self) -> Result<RecordBatch> {
        self.plan
            .label(self.table.finalize(&self.plan.def.by, &self.plan.metrics)?)
    }

    /// The schema of the partial table.
    fn schema(&self, key_fields: &[Field]) -> Result<SchemaRef> {
        let mut fields: Vec<Field> = key_fields.to_vec();
        for m in &self.plan.metrics {
            let tag = format!("{}/{FORMAT}", m.spec.name());
            fields.push(
                Field::new(&m.name, DataType::Binary, false)
                    .with_metadata(HashMap::from([(STATE_KEY.to_string(), tag)])),
            );
        }
        let meta = serde_json::to_string(&self.meta)
            .map_err(|e| Error::internal(format!("partial metadata: {e}")))?;
        let mut metadata = HashMap::from([(META_KEY.to_string(), meta)]);
        if let Some(covers) = &self.covers {
            metadata.insert(COVERS_KEY.to_string(), serde_json::to_string(covers)?);
        }
        Ok(Arc::new(Schema::new_with_metadata(fields, metadata)))
    }

    /// The partial table: sorted by group key, cut so that no state column of a record batch
    /// exceeds `CHUNK_BYTES`. Always at least one batch (an empty state gives zero rows).
    pub fn to_batches(&self) -> Result<Vec<RecordBatch>> {
        let order = self.table.keys.sorted_order();
        let keys = self.table.keys.to_arrays(&order);
        // The key columns' fields as the result has them (bucket, then dimensions).
        let key_fields = AggTable::key_fields(&self.plan.def.by, &self.table.keys.dims);
        let schema = self.schema(&key_fields)?;
        let states = &self.table.states;
        let mut batches = Vec::new();
        let mut start = 0usize;
        loop {
            // One chunk: groups from `start` until a state column passes CHUNK_BYTES.
            let mut values: Vec<Vec<u8>> = vec![Vec::new(); states.len()];
            let mut offsets: Vec<Vec<i32>> = vec![vec![0]; states.len()];
            let mut end = start;
            while end < order.len() {
                let g = order[end] as usize;
                for (m, s) in states.iter().enumerate() {
                    s.write_partial(g, &mut values[m])?;
                    let at = i32::try_from(values[m].len())
                        .map_err(|_| Error::invalid("one group's partial state exceeds 2 GiB"))?;
                    offsets[m].push(at);
                }
                end += 1;
                if values.iter().any(|v| v.len() >= CHUNK_BYTES) {
                    break;
                }
            }
            let mut columns: Vec<ArrayRef> =
                keys.iter().map(|k| k.slice(start, end - start)).collect();
            for (v, o) in values.into_iter().zip(offsets) {
                columns.push(Arc::new(BinaryArray::new(
                    OffsetBuffer::new(ScalarBuffer::from(o)),
                    Buffer::from_vec(v),
                    None,
                )));
            }
            batches.push(RecordBatch::try_new_with_options(
                schema.clone(),
                columns,
                &RecordBatchOptions::new().with_row_count(Some(end - start)),
            )?);
            start = end;
            if start >= order.len() {
                return Ok(batches);
            }
        }
    }

    /// Read a partial table (`to_batches`, possibly from another process or engine).
    pub fn from_batches(schema: &Schema, batches: &[RecordBatch]) -> Result<Partial> {
        let text = schema.metadata().get(META_KEY).ok_or_else(|| {
            Error::invalid(format!(
                "not a lamina partial-state table (no {META_KEY:?} schema metadata)"
            ))
        })?;
        let meta: PartialMeta =
            serde_json::from_str(text).map_err(|e| bad(format!("{META_KEY}: {e}")))?;
        if meta.format != FORMAT {
            return Err(Error::invalid(format!(
                "partial states of format {} cannot be read by this lamina (format {FORMAT})",
                meta.format
            )));
        }
        let layer = match meta.layer.as_str() {
            "batch" => Mode::Exact,
            "speed" => Mode::Sketch,
            other => return Err(bad(format!("{META_KEY}: unknown layer {other:?}"))),
        };
        let store = StoreSchema {
            time_column: meta.view.time.clone(),
            columns: meta.columns.clone(),
        };
        let mut p = Partial::new(meta.view.clone(), &store, layer)?;
        if let Some(text) = schema.metadata().get(COVERS_KEY) {
            p.covers =
                Some(serde_json::from_str(text).map_err(|e| bad(format!("{COVERS_KEY}: {e}")))?);
        }
        if p.meta != meta {
            return Err(bad(format!(
                "{META_KEY}: the view's columns do not match its definition"
            )));
        }
        for m in &p.plan.metrics {
            let f = schema
                .field_with_name(&m.name)
                .map_err(|_| bad(format!("partial state column {:?} is missing", m.name)))?;
            let want = format!("{}/{FORMAT}", m.spec.name());
            if f.metadata().get(STATE_KEY) != Some(&want) {
                return Err(bad(format!(
                    "partial state column {:?}: expected layout {want:?}, found {:?}",
                    m.name,
                    f.metadata().get(STATE_KEY)
                )));
            }
        }
        for b in batches {
            let col = |name: &str| {
                b.column_by_name(name)
                    .cloned()
                    .ok_or_else(|| bad(format!("partial table lacks column {name:?}")))
            };
            let bucket = col("bucket")?;
            check_buckets(&bucket, p.plan.grain)?;
            let dims: Vec<ArrayRef> = p
                .plan
                .def
                .by
                .iter()
                .map(|d| col(d))
                .collect::<Result<_>>()?;
            let t = &mut p.table;
            let gids = t.keys.encode_key_columns(&bucket, &dims)?;
            let pairs: Vec<(u32, u32)> = gids
                .iter()
                .enumerate()
                .map(|(row, &g)| (g, row as u32))
                .collect();
            let groups = t.keys.len();
            for (m, states) in p.plan.metrics.iter().zip(t.states.iter_mut()) {
                let c = col(&m.name)?;
                let values = c.as_binary_opt::<i32>().ok_or_else(|| {
                    bad(format!("partial state column {:?} is not binary", m.name))
                })?;
                let loaded = states.load_partial(values, &m.name)?;
                if loaded.len() != b.num_rows() {
                    return Err(bad(format!(
                        "partial state column {:?}: wrong length",
                        m.name
                    )));
                }
                states.merge(loaded.as_ref(), &pairs, groups)?;
            }
        }
        Ok(p)
    }
}

/// A partial table's `bucket` column: timestamp[us], no nulls, every value a bucket start of
/// the view's grain (anything else would be read as other buckets, or none).
fn check_buckets(bucket: &ArrayRef, grain: crate::view::grain::Grain) -> Result<()> {
    use crate::arrow::datatypes::{TimeUnit, TimestampMicrosecondType};
    if !matches!(
        bucket.data_type(),
        DataType::Timestamp(TimeUnit::Microsecond, _)
    ) {
        return Err(bad(format!(
            "partial table column \"bucket\" has type {}, not timestamp[us]",
            bucket.data_type()
        )));
    }
    if let Some(row) = (0..bucket.len()).find(|&i| bucket.is_null(i)) {
        return Err(bad(format!(
            "partial table column \"bucket\", row {row}: null"
        )));
    }
    let values = bucket.as_primitive::<TimestampMicrosecondType>();
    if let Some((row, b)) = values
        .values()
        .iter()
        .enumerate()
        .find(|(_, &b)| grain.floor_micros(b) != b)
    {
        return Err(bad(format!(
            "partial table column \"bucket\", row {row}: {} is not the start of a {} bucket",
            crate::time::format_micros(*b),
            grain.text()
        )));
    }
    Ok(())
}

/// The partial state of `view` over `batches` (any Arrow types the store accepts; the event
/// time is the view's `time` column).
pub fn partial_of(view: ViewDef, schema: &Schema, batches: &[RecordBatch]) -> Result<Partial> {
    // The schema of the columns the view reads (the others may hold any type).
    let mut wanted: Vec<&str> = vec![&view.time];
    wanted.extend(view.by.iter().map(|s| s.as_str()));
    wanted.extend(view.metrics.iter().filter_map(|(_, m)| m.column()));
    wanted.extend(view.filter.iter().map(|f| f.column.as_str()));
    for w in &wanted {
        if schema.field_with_name(w).is_err() {
            return Err(Error::not_found(format!(
                "column {w:?} of view {:?} is not in the data",
                view.name
            )));
        }
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .filter(|f| wanted.contains(&f.name().as_str()))
        .map(|f| f.as_ref().clone())
        .collect();
    let store = StoreSchema::from_first_batch(&Schema::new(fields), Some(&view.time))?;
    let mut p = Partial::new(view, &store, Mode::Exact)?;
    for b in batches {
        p.update_raw(&store, b)?;
    }
    Ok(p)
}

/// Merge partial tables of one view (each given as its schema and batches).
pub fn merge_all(parts: &[(SchemaRef, Vec<RecordBatch>)]) -> Result<Partial> {
    let mut out: Option<Partial> = None;
    for (schema, batches) in parts {
        let p = Partial::from_batches(schema, batches)?;
        match &mut out {
            None => out = Some(p),
            Some(acc) => acc.merge(p)?,
        }
    }
    out.ok_or_else(|| Error::invalid("no partial states to merge"))
}

/// The number of rows of a binary state column over all batches, and its bytes (for reports).
pub fn state_bytes(batches: &[RecordBatch]) -> usize {
    batches
        .iter()
        .flat_map(|b| b.columns().iter())
        .filter_map(|c| c.as_binary_opt::<i32>())
        .map(|c| c.value_data().len() + 4 * c.len())
        .sum()
}
