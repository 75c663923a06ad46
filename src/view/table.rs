//! An aggregation table: group keys plus one `States` per metric. The batch layer builds one per
//! partition and merges them; the speed layer keeps one per commit range; serving merges both into
//! a fresh one shaped by the query.

use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use crate::arrow::array::{Array, ArrayRef, RecordBatch};
use crate::arrow::datatypes::{DataType, Field, Schema, TimeUnit};

use crate::aggregate::AggSpec;
use crate::aggregate::{metric_phase, state_phase};
use crate::aggregate::{new_accumulator, AggPlan, GroupsAccumulator, Mode};
use crate::control::profile::{timed, Profile};
use crate::error::{Error, Result};
use crate::master::schema::{ColumnClass, StoreSchema};
use crate::view::def::{normalize_dates, ViewDef};
use crate::view::filter::row_filter;
use crate::view::grain::{bucket_column, Grain};
use crate::view::group::{DimKind, GroupKeys};

/// Tables with at least this many groups merge, evaluate and persist their metrics in parallel
/// (one rayon task per metric); smaller ones stay on the caller's thread.
const PARALLEL_GROUPS: usize = 50_000;

/// A view definition resolved against the store schema.
#[derive(Debug, Clone)]
pub struct ViewPlan {
    pub def: ViewDef,
    pub fingerprint: String,
    pub grain: Grain,
    pub dims: Vec<DimKind>,
    pub metrics: Vec<AggPlan>,
    /// The declared roll-ups, each planned as a view of its own shape (same metrics, filter and
    /// zone), in declaration order.
    pub rollups: Vec<RollupPlan>,
}

/// A declared roll-up of a view.
#[derive(Debug, Clone)]
pub struct RollupPlan {
    /// The view at the roll-up's shape.
    pub plan: ViewPlan,
    /// For each of the roll-up's dimensions, its position among the view's.
    pub keep: Vec<usize>,
}

impl ViewPlan {
    pub fn new(def: ViewDef, schema: &StoreSchema) -> Result<ViewPlan> {
        def.validate(schema)?;
        let grain = def.grain()?;
        let mut dims = Vec::new();
        for d in &def.by {
            let class = schema
                .column_class(d)
                .ok_or_else(|| Error::not_found(format!("column {d:?}")))?;
            let kind = DimKind::from_class(class)?;
            let unsigned = schema.column_type(d).is_some_and(|t| t == DataType::UInt64);
            dims.push(if unsigned { DimKind::UInt } else { kind });
        }
        // Quantiles of one column share one state: the first such metric's plan carries all.
        let mut metrics: Vec<AggPlan> = Vec::new();
        for (position, (name, spec)) in def.metrics.iter().enumerate() {
            if let AggSpec::Quantile { column, q } = spec {
                let shared = metrics.iter_mut().find(
                    |m| matches!(&m.spec, AggSpec::Quantile { column: c, .. } if c == column),
                );
                if let Some(m) = shared {
                    m.quantiles.push((name.clone(), *q));
                    m.positions.push(position);
                    continue;
                }
            }
            // A mean and a sum of one column share the sum's state (see `aggregate::mean`).
            if let AggSpec::Mean { column } = spec {
                let sum = metrics.iter_mut().find(|m| {
                    m.mean.is_none() && matches!(&m.spec, AggSpec::Sum { column: c } if c == column)
                });
                if let Some(m) = sum {
                    m.mean = Some((name.clone(), position));
                    continue;
                }
            }
            if let AggSpec::Sum { column } = spec {
                let mean = metrics
                    .iter()
                    .position(|m| matches!(&m.spec, AggSpec::Mean { column: c } if c == column));
                if let Some(i) = mean {
                    // The mean came first: its plan becomes the sum's, carrying the mean.
                    let m = metrics.remove(i);
                    let at = m.positions.first().copied().unwrap_or(usize::MAX);
                    metrics.insert(
                        i,
                        AggPlan {
                            name: name.clone(),
                            spec: spec.clone(),
                            input: m.input,
                            precision: def.precision,
                            quantiles: Vec::new(),
                            positions: vec![position],
                            mean: Some((m.name, at)),
                        },
                    );
                    continue;
                }
            }
            metrics.push(AggPlan {
                name: name.clone(),
                spec: spec.clone(),
                input: spec.column().and_then(|c| schema.column_type(c)),
                precision: def.precision,
                quantiles: match spec {
                    AggSpec::Quantile { q, .. } => vec![(name.clone(), *q)],
                    _ => Vec::new(),
                },
                positions: vec![position],
                mean: None,
            });
        }
        let fingerprint = def.fingerprint();
        // Dates in filters are compared as days (the fingerprint keeps the text the user gave).
        let mut def = def;
        for f in def.filter.iter_mut() {
            if schema.column_class(&f.column) == Some(ColumnClass::Date) {
                f.predicate = normalize_dates(&def.name, &f.column, &f.predicate)?;
            }
        }
        let mut rollups = Vec::with_capacity(def.rollups.len());
        for r in &def.rollups {
            let mut shape = def.clone();
            shape.grain = r.grain.clone();
            shape.by = r.by.clone();
            shape.rollups = Vec::new();
            let keep =
                r.by.iter()
                    .filter_map(|d| def.by.iter().position(|x| x == d))
                    .collect();
            rollups.push(RollupPlan {
                plan: ViewPlan::new(shape, schema)?,
                keep,
            });
        }
        Ok(ViewPlan {
            def,
            fingerprint,
            grain,
            dims,
            metrics,
            rollups,
        })
    }

    /// A result with its `bucket` column labelled with the view's time zone (the instants are
    /// unchanged; pyarrow, pandas and polars show them on that zone's clock).
    pub fn label(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let Some(tz) = &self.def.tz else {
            return Ok(batch);
        };
        let schema = batch.schema();
        let Ok(i) = schema.index_of("bucket") else {
            return Ok(batch);
        };
        let zoned = DataType::Timestamp(TimeUnit::Microsecond, Some(tz.as_str().into()));
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields[i] = fields[i].clone().with_data_type(zoned.clone());
        let mut columns = batch.columns().to_vec();
        columns[i] = crate::arrow::compute::cast(&columns[i], &zoned)?;
        let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
        Ok(RecordBatch::try_new(std::sync::Arc::new(schema), columns)?)
    }

    /// Whether folding rows into a merged state equals merging them as a separate state: false
    /// for sketches that compact (quantile, top-k), whose estimates depend on the path.
    pub fn fold_equals_merge(&self) -> bool {
        !self
            .metrics
            .iter()
            .any(|m| matches!(m.spec, AggSpec::Quantile { .. } | AggSpec::TopK { .. }))
    }

    /// The columns of the master dataset a recompute needs to read.
    pub fn input_columns(&self) -> Vec<String> {
        let mut cols = vec![self.def.time.clone()];
        let mut add = |c: &str| {
            if !cols.iter().any(|x| x == c) {
                cols.push(c.to_string());
            }
        };
        for d in &self.def.by {
            add(d);
        }
        for m in &self.metrics {
            if let Some(c) = m.spec.column() {
                add(c);
            }
        }
        for f in &self.def.filter {
            add(&f.column);
        }
        cols
    }

    /// The columns any of `plans` reads, each once, in first-seen order.
    pub fn input_columns_of<'a>(plans: impl IntoIterator<Item = &'a ViewPlan>) -> Vec<String> {
        let mut cols: Vec<String> = Vec::new();
        for p in plans {
            for c in p.input_columns() {
                if !cols.contains(&c) {
                    cols.push(c);
                }
            }
        }
        cols
    }

    pub fn new_table(&self, mode: Mode) -> AggTable {
        AggTable {
            keys: GroupKeys::new(self.dims.clone()),
            states: self
                .metrics
                .iter()
                .map(|m| new_accumulator(m, mode))
                .collect(),
            origin: Origin::Plain,
        }
    }
}

/// The position of metric `name` in the definition the plans were built from.
fn metric_order(plans: &[AggPlan], name: &str) -> usize {
    plans
        .iter()
        .flat_map(|p| p.outputs())
        .find(|(n, _)| *n == name)
        .map(|(_, at)| at)
        .unwrap_or(usize::MAX)
}

#[derive(Debug, Clone)]
pub struct AggTable {
    pub keys: GroupKeys,
    pub states: Vec<Box<dyn GroupsAccumulator>>,
    /// Where each group's data came from, for the `<metric>_source` result columns.
    pub origin: Origin,
}

/// A group holds speed-layer data.
pub const FROM_SPEED: u8 = 1;
/// A group was merged from several groups at query time (a roll-up not declared by the view).
pub const ROLLED_UP: u8 = 2;

/// Where the groups of a table came from: why an approximate value is approximate.
#[derive(Debug, Clone, Default)]
pub enum Origin {
    /// Every group is one group of a layer's table (a batch view, a speed table).
    #[default]
    Plain,
    /// Per group, `FROM_SPEED | ROLLED_UP` bits (a table built by serving). Groups the
    /// vector does not reach have none.
    Marked(Vec<u8>),
}

impl Origin {
    pub fn of(&self, g: u32) -> u8 {
        match self {
            Origin::Plain => 0,
            Origin::Marked(m) => m.get(g as usize).copied().unwrap_or(0),
        }
    }

    fn mark(&mut self, g: u32, bits: u8) {
        if let Origin::Marked(m) = self {
            let g = g as usize;
            if m.len() <= g {
                m.resize(g + 1, 0);
            }
            m[g] |= bits;
        }
    }
}

impl AggTable {
    /// Fold one batch of master-dataset rows into the table.
    pub fn update(&mut self, plan: &ViewPlan, batch: &RecordBatch) -> Result<()> {
        self.update_profiled(plan, batch, None)
    }

    /// `update`, adding the time of grouping and of each metric's fold to `profile`.
    pub fn update_profiled(
        &mut self,
        plan: &ViewPlan,
        batch: &RecordBatch,
        profile: Option<&Profile>,
    ) -> Result<()> {
        let clock = |t0: Option<Instant>, phase: &'static str| {
            if let (Some(p), Some(t0)) = (profile, t0) {
                p.add(phase, t0.elapsed());
            }
        };
        let now = || profile.map(|_| Instant::now());
        let t0 = now();
        let filtered;
        let batch = match row_filter(&plan.def.filter, batch)? {
            Some(mask) => {
                filtered = crate::arrow::compute::filter_record_batch(batch, &mask)?;
                &filtered
            }
            None => batch,
        };
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .cloned()
                .ok_or_else(|| Error::not_found(format!("column {name:?} is not in the data")))
        };
        let time = col(&plan.def.time)?;
        let buckets = bucket_column(&time, plan.grain)?;
        let dims: Vec<ArrayRef> = plan.def.by.iter().map(|d| col(d)).collect::<Result<_>>()?;
        let gids = self
            .keys
            .encode(&buckets, time.nulls(), &dims, plan.grain.min_step_micros())?;
        if let Origin::Marked(_) = self.origin {
            // Rows folded into a served table come from commits the batch view does not cover.
            for &g in &gids {
                if g != crate::aggregate::NO_GROUP {
                    self.origin.mark(g, FROM_SPEED);
                }
            }
        }
        clock(t0, "group");
        let groups = self.keys.len();
        for (m, states) in plan.metrics.iter().zip(self.states.iter_mut()) {
            let t0 = now();
            let input = match m.spec.column() {
                Some(c) => Some(col(c)?),
                None => None,
            };
            states.update(&gids, input.as_ref(), groups)?;
            clock(t0, metric_phase(m));
        }
        Ok(())
    }

    /// Merge `other` into this table. `keep` picks (and orders) the dimensions of `other` that
    /// this table groups by, `grain` coarsens buckets, `accept` selects groups of `other`.
    pub fn absorb(
        &mut self,
        other: &AggTable,
        keep: &[usize],
        grain: Option<Grain>,
        accept: &dyn Fn(&GroupKeys, u32) -> bool,
    ) -> Result<()> {
        self.absorb_marked(other, keep, grain, accept, 0)
    }

    /// `absorb`, marking the groups it reaches with `other`'s origin plus `bits`, and with
    /// `ROLLED_UP` where a roll-up merges several of `other`'s groups (or groups of several
    /// sources) into one. Only a `Marked` table keeps marks.
    pub fn absorb_marked(
        &mut self,
        other: &AggTable,
        keep: &[usize],
        grain: Option<Grain>,
        accept: &dyn Fn(&GroupKeys, u32) -> bool,
        bits: u8,
    ) -> Result<()> {
        let tr = self.keys.translator(&other.keys, keep);
        let mut tr = tr;
        let mut key = Vec::new();
        let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(other.keys.len());
        // A roll-up merges several groups into one. Where the result depends on the merge order
        // (quantile and top-k sketches), groups merge in key order, so an answer does not
        // depend on the order groups happened to be created in (before or after a reopen).
        let rollup = grain.is_some() || keep.len() < other.keys.dims.len();
        let order: Vec<u32> = if rollup && other.states.iter().any(|s| s.merge_order_matters()) {
            other.keys.sorted_order()
        } else {
            (0..other.keys.len() as u32).collect()
        };
        let marking = matches!(self.origin, Origin::Marked(_));
        for g in order {
            if !accept(&other.keys, g) {
                continue;
            }
            let h = self
                .keys
                .translate_into(&other.keys, g, keep, grain, &mut tr, &mut key);
            let before = self.keys.len();
            let dst = self.keys.find_or_insert_hashed(&key, h);
            pairs.push((dst, g));
            if marking {
                let mut b = bits | other.origin.of(g);
                if rollup && (dst as usize) < before {
                    b |= ROLLED_UP;
                }
                self.origin.mark(dst, b);
            }
        }
        let groups = self.keys.len();
        // Metrics merge independently: large merges (the end of a recompute) use every core.
        if pairs.len() >= PARALLEL_GROUPS {
            crate::control::parallel::install(|| {
                self.states
                    .par_iter_mut()
                    .zip(other.states.par_iter())
                    .try_for_each(|(states, ostates)| {
                        states.merge(ostates.as_ref(), &pairs, groups)
                    })
            })?;
        } else {
            for (states, ostates) in self.states.iter_mut().zip(other.states.iter()) {
                states.merge(ostates.as_ref(), &pairs, groups)?;
            }
        }
        Ok(())
    }

    /// Merge a table of the same shape (same dims, same grain).
    pub fn merge_same(&mut self, other: &AggTable) -> Result<()> {
        let keep: Vec<usize> = (0..other.keys.dims.len()).collect();
        self.absorb(other, &keep, None, &|_, _| true)
    }

    /// Result schema fields for the key part.
    pub(crate) fn key_fields(names: &[String], dims: &[DimKind]) -> Vec<Field> {
        let mut fields = vec![Field::new(
            "bucket",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        )];
        for (n, k) in names.iter().zip(dims) {
            let dt = match k {
                DimKind::Str => DataType::Utf8,
                DimKind::Int => DataType::Int64,
                DimKind::UInt => DataType::UInt64,
                DimKind::Bool => DataType::Boolean,
                DimKind::Date => DataType::Date32,
            };
            fields.push(Field::new(n, dt, true));
        }
        fields
    }

    /// The user-visible result: bucket, dims, metrics (sorted by bucket then dims).
    pub fn finalize(&self, dim_names: &[String], metrics: &[AggPlan]) -> Result<RecordBatch> {
        self.to_batch(dim_names, metrics, false, None)
    }

    /// The persisted form: public columns plus the hidden state columns.
    pub fn state_batch(&self, dim_names: &[String], metrics: &[AggPlan]) -> Result<RecordBatch> {
        self.to_batch(dim_names, metrics, true, None)
    }

    /// `state_batch`, adding the time of sorting, of the key columns and of each metric family's
    /// state columns to `profile`.
    pub fn state_batch_profiled(
        &self,
        dim_names: &[String],
        metrics: &[AggPlan],
        profile: &Profile,
    ) -> Result<RecordBatch> {
        self.to_batch(dim_names, metrics, true, Some(profile))
    }

    fn to_batch(
        &self,
        dim_names: &[String],
        metrics: &[AggPlan],
        with_state: bool,
        profile: Option<&Profile>,
    ) -> Result<RecordBatch> {
        let order = timed(profile, "state: sort", || self.keys.sorted_order());
        let mut fields = Self::key_fields(dim_names, &self.keys.dims);
        let metric_columns = |(m, states): (&AggPlan, &dyn GroupsAccumulator)| {
            timed(profile, state_phase(m), || {
                if with_state {
                    states.state(&m.name, &order)
                } else {
                    states.evaluate(&m.name, &order)
                }
            })
        };
        let key_arrays = || timed(profile, "state: keys", || self.keys.to_arrays(&order));
        let (mut columns, metric_cols) = if order.len() >= PARALLEL_GROUPS {
            crate::control::parallel::install(|| {
                rayon::join(key_arrays, || {
                    metrics
                        .par_iter()
                        .zip(self.states.par_iter())
                        .map(|(m, s)| metric_columns((m, s.as_ref())))
                        .collect::<Result<Vec<_>>>()
                })
            })
        } else {
            (
                key_arrays(),
                metrics
                    .iter()
                    .zip(self.states.iter())
                    .map(|(m, s)| metric_columns((m, s.as_ref())))
                    .collect::<Result<Vec<_>>>(),
            )
        };
        // Metric columns in definition order: a shared quantile state gives the columns of
        // several metrics, which go back to their places.
        let mut tagged: Vec<(usize, String, ArrayRef)> = Vec::new();
        for (plan, cols) in metrics.iter().zip(metric_cols?) {
            let mut at = metric_order(metrics, &plan.name);
            let mut current = plan.name.clone();
            for (name, arr) in cols {
                // A plan giving several metrics (quantiles of one column, a sum and its mean)
                // lists each metric's columns after its value column.
                if name != plan.name && plan.outputs().iter().any(|(n, _)| *n == name) {
                    at = metric_order(metrics, &name);
                    current = name.clone();
                }
                let source = (!with_state && name == format!("{current}_exact"))
                    .then(|| self.source_column(&arr, &order))
                    .flatten();
                tagged.push((at, name, arr));
                if let Some(source) = source {
                    tagged.push((at, format!("{current}_source"), source));
                }
            }
        }
        tagged.sort_by_key(|t| t.0);
        for (_, name, arr) in tagged {
            fields.push(Field::new(name, arr.data_type().clone(), true));
            columns.push(arr);
        }
        let schema = Arc::new(Schema::new(fields));
        Ok(RecordBatch::try_new_with_options(
            schema,
            columns,
            &crate::arrow::array::RecordBatchOptions::new().with_row_count(Some(order.len())),
        )?)
    }

    /// `<metric>_source`: "speed" where the group holds speed-layer data (even if its value is
    /// still exact), else "batch" where the value is exact (a batch view's group, a declared
    /// roll-up's), else "rollup" (groups merged at query time).
    fn source_column(&self, exact: &ArrayRef, order: &[u32]) -> Option<ArrayRef> {
        use crate::arrow::array::AsArray;
        let exact = exact.as_boolean_opt()?;
        let values: crate::arrow::array::StringArray = order
            .iter()
            .enumerate()
            .map(|(i, &g)| {
                let origin = self.origin.of(g);
                Some(if origin & FROM_SPEED != 0 {
                    "speed"
                } else if exact.is_valid(i) && exact.value(i) {
                    "batch"
                } else if origin & ROLLED_UP != 0 {
                    "rollup"
                } else {
                    "speed"
                })
            })
            .collect();
        Some(Arc::new(values))
    }

    /// Rebuild a table from persisted state batches (see `state_batch`).
    ///
    /// A batch view with declared roll-ups persists them in the same file: the roll-ups' rows
    /// follow the view's, each row tagged in the `__rollup` column (0: the view, i: roll-up i),
    /// with null in the dimensions a roll-up drops. One file keeps the view and its roll-ups one
    /// atomic publish (see `batch::view_file`).
    pub fn from_state_batches(
        plan: &ViewPlan,
        batches: &[RecordBatch],
        file: &std::path::Path,
    ) -> Result<AggTable> {
        let mut t = plan.new_table(Mode::Sketch);
        for b in batches {
            let bucket = b
                .column_by_name("bucket")
                .cloned()
                .ok_or_else(|| Error::corruption(file, "batch view lacks the bucket column"))?;
            let dims: Vec<ArrayRef> = plan
                .def
                .by
                .iter()
                .map(|d| {
                    b.column_by_name(d).cloned().ok_or_else(|| {
                        Error::corruption(file, format!("batch view lacks column {d:?}"))
                    })
                })
                .collect::<Result<_>>()?;
            let gids = t.keys.encode_key_columns(&bucket, &dims)?;
            // Row i of the file is group i of a loaded state, merged like any other state.
            let pairs: Vec<(u32, u32)> = gids
                .iter()
                .enumerate()
                .map(|(row, &g)| (g, row as u32))
                .collect();
            let groups = t.keys.len();
            for (m, states) in plan.metrics.iter().zip(t.states.iter_mut()) {
                let loaded = states.load_state(&m.name, b, file)?;
                if loaded.len() != b.num_rows() {
                    return Err(Error::corruption(
                        file,
                        format!("state of {:?} has the wrong length", m.name),
                    ));
                }
                states.merge(loaded.as_ref(), &pairs, groups)?;
            }
        }
        Ok(t)
    }

    /// The served form of a batch-layer table (exact distinct sets become exact-tagged sketches).
    pub fn into_served(self) -> Result<AggTable> {
        let states = if self.keys.len() >= PARALLEL_GROUPS {
            let states = self.states;
            crate::control::parallel::install(|| {
                states
                    .into_par_iter()
                    .map(|s| s.into_served())
                    .collect::<Result<_>>()
            })?
        } else {
            self.states
                .into_iter()
                .map(|s| s.into_served())
                .collect::<Result<_>>()?
        };
        Ok(AggTable {
            keys: self.keys,
            states,
            origin: self.origin,
        })
    }

    /// Settle every metric's pending work (see `GroupsAccumulator::settle`).
    pub fn settle(&mut self) {
        for s in &mut self.states {
            s.settle();
        }
    }

    pub fn memory_bytes(&self) -> usize {
        self.keys.memory_bytes() + self.states.iter().map(|s| s.memory_bytes()).sum::<usize>()
    }

    /// Bytes each metric's state holds (in plan order).
    pub fn metric_memory(&self) -> Vec<usize> {
        self.states.iter().map(|s| s.memory_bytes()).collect()
    }
}

#[cfg(test)]
mod shared_sum_tests {
    use super::*;
    use crate::arrow::array::{Float64Array, Int64Array, TimestampMicrosecondArray};

    /// The plans of the layout before sums and means shared a state: every sum and every mean
    /// its own plan.
    fn unshared(plans: &[AggPlan]) -> Vec<AggPlan> {
        let mut out = Vec::new();
        for p in plans {
            let mut sum = p.clone();
            sum.mean = None;
            out.push(sum);
            if let (Some((name, at)), AggSpec::Sum { column }) = (&p.mean, &p.spec) {
                out.push(AggPlan {
                    name: name.clone(),
                    spec: AggSpec::Mean {
                        column: column.clone(),
                    },
                    input: p.input.clone(),
                    precision: p.precision,
                    quantiles: Vec::new(),
                    positions: vec![*at],
                    mean: None,
                });
            }
        }
        out
    }

    #[test]
    fn a_sum_and_a_mean_of_one_column_share_a_state_and_old_files_still_load() {
        let schema = Arc::new(Schema::new(vec![
            crate::view::testutil::ts_field(),
            Field::new("k", DataType::Int64, true),
            Field::new("x", DataType::Float64, true),
            Field::new("y", DataType::Int64, true),
        ]));
        let n = 5000i64;
        let mut rng = crate::testutil::SplitMix64(11);
        let data = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    (0..n).map(|i| i * 3_700_000_000 % (7 * 86_400_000_000)),
                )),
                Arc::new(Int64Array::from_iter(
                    (0..n).map(|i| (i % 7 != 0).then_some(i % 5)),
                )),
                Arc::new(Float64Array::from_iter((0..n).map(|_| {
                    let r = rng.next();
                    (r % 9 != 0).then_some((r >> 11) as f64 * 1e-9 - 4e6)
                }))),
                Arc::new(Int64Array::from_iter(
                    (0..n).map(|i| (i % 3 != 0).then_some(i * 7)),
                )),
            ],
        )
        .unwrap();
        let store = StoreSchema::from_first_batch(&schema, None).unwrap();
        let def = crate::view::testutil::hourly_view(vec![
            // A mean before its sum, a sum before its mean, and a second mean on its own.
            ("avg_x", AggSpec::Mean { column: "x".into() }),
            ("n", AggSpec::Count { column: None }),
            ("sum_x", AggSpec::Sum { column: "x".into() }),
            ("sum_y", AggSpec::Sum { column: "y".into() }),
            ("avg_y", AggSpec::Mean { column: "y".into() }),
            ("avg_x2", AggSpec::Mean { column: "x".into() }),
        ]);
        let plan = ViewPlan::new(def, &store).unwrap();
        let names: Vec<_> = plan.metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["sum_x", "n", "sum_y", "avg_x2"]);
        let mut old = plan.clone();
        old.metrics = unshared(&plan.metrics);
        assert_eq!(old.metrics.len(), 6);

        let (mut a, mut b) = (plan.new_table(Mode::Exact), old.new_table(Mode::Exact));
        for part in [data.slice(0, 1234), data.slice(1234, (n - 1234) as usize)] {
            a.update(&plan, &part).unwrap();
            b.update(&old, &part).unwrap();
        }
        let want = b.finalize(&old.def.by, &old.metrics).unwrap();
        let got = a.finalize(&plan.def.by, &plan.metrics).unwrap();
        assert_eq!(got, want);
        let cols: Vec<String> = got
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            &cols[2..],
            ["avg_x", "n", "sum_x", "sum_y", "avg_y", "avg_x2"]
        );

        // The new layout persists one state per shared pair.
        let new_file = a
            .into_served()
            .unwrap()
            .state_batch(&plan.def.by, &plan.metrics)
            .unwrap();
        assert!(new_file.column_by_name("__avg_x__state").is_none());
        assert!(new_file.column_by_name("__avg_x2__state").is_some());
        // A file of the old layout loads into the shared plans with the same answers, and so
        // does a file of the new one.
        let old_file = b
            .into_served()
            .unwrap()
            .state_batch(&old.def.by, &old.metrics)
            .unwrap();
        assert!(old_file.column_by_name("__avg_x__state").is_some());
        let path = std::path::Path::new("v.parquet");
        for file in [old_file, new_file] {
            let t = AggTable::from_state_batches(&plan, &[file], path).unwrap();
            assert_eq!(t.finalize(&plan.def.by, &plan.metrics).unwrap(), want);
        }
    }
}
