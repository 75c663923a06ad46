//! Aggregates: one trait, one file per aggregate, shared by the batch, speed and serving layers.
//!
//! A [`GroupsAccumulator`] holds the state of one metric for every group of a table, column-wise,
//! in the spirit of DataFusion's `GroupsAccumulator`: it works on whole batches (an array of group
//! ids in, no per-row dispatch), so a metric costs one tight loop over its input column.
//!
//! * `update`: fold the rows of a batch into their groups;
//! * `merge`: combine groups of another accumulator of the same aggregate (partitions of a
//!   recompute, batch + speed when serving, groups rolled up by a query);
//! * `state` / `load_state`: the state as Arrow columns (what batch views persist); a persisted
//!   state loads as an accumulator with one group per row and joins through `merge`, the same path
//!   every other merge takes;
//! * `evaluate`: the user-visible columns;
//! * `write_partial` / `load_partial`: the whole state of a group, lossless, as one binary value
//!   (the partial-state protocol of `batch::partial`, which distributed recomputes ship between
//!   processes). Unlike `state`, which keeps what serving needs (sketches for distinct counts and
//!   quantiles), a partial state keeps every distinct key, value and count, so merged partial
//!   states finalize to exactly the single-pass answer. Each aggregate's file documents its
//!   layout; all integers are little-endian.
//!
//! Every accumulator is a [`Groups`] container (one slot per group, in one flat vector) over an
//! [`Aggregate`], which holds only the per-group logic; the aggregates that are exact in the
//! batch layer and sketched in the speed layer keep [`hybrid::Hybrid`] slots, which hold the
//! exact-then-sketch rules once.
//!
//! Invariants: `merge` is associative and commutative, and `update` over any split of the rows,
//! merged in any order, gives the same state as one `update` over all of them (tested in
//! `tests` below for every aggregate). Adding an aggregate is one new file implementing
//! [`Aggregate`] and one arm in [`new_accumulator`].

use std::any::Any;
use std::fmt::Debug;
use std::path::Path;

use crate::arrow::array::{Array, ArrayRef, BinaryArray, RecordBatch};
use crate::arrow::datatypes::DataType;

use crate::error::{Error, Result};

pub mod count;
pub mod count_distinct;
pub mod exact_sum;
pub mod groups;
pub mod hybrid;
pub mod input;
pub mod mean;
pub mod min_max;
pub mod quantile;
pub mod runs;
pub mod sketch;
pub mod spec;
pub mod sum;
pub mod sum_float;
pub mod top_k;

pub use groups::{Aggregate, Groups};
pub use hybrid::Mode;
pub use input::{distinct_keys, float64_values, int64_values, Keys};
pub(crate) use sketch::codec::{ByteReader, SketchError};
pub use spec::{metric_phase, result_suffixes, state_phase, AggSpec, AGGREGATES, MAX_TOP_K};

/// A metric bound to its input column's stored type.
#[derive(Debug, Clone)]
pub struct AggPlan {
    pub name: String,
    pub spec: AggSpec,
    /// The stored Arrow type of the input column (None for `count()`).
    pub input: Option<DataType>,
    pub precision: u8,
    /// For a `quantile` plan: every `(metric name, q)` of the view on the same column. They share
    /// one state; the plan is named after the first.
    pub quantiles: Vec<(String, f64)>,
    /// The definition-order positions of the metrics this plan gives (one, or one per quantile):
    /// result columns keep the order of the definition.
    pub positions: Vec<usize>,
    /// For a `sum` plan: the `mean` of the same column in the view, if any, as (metric name,
    /// definition position). Both come from the sum's one state (see `mean`).
    pub mean: Option<(String, usize)>,
}

impl AggPlan {
    /// The metrics this plan gives, each with its definition position.
    pub fn outputs(&self) -> Vec<(&str, usize)> {
        let mut out: Vec<(&str, usize)> = if self.quantiles.is_empty() {
            vec![(
                self.name.as_str(),
                self.positions.first().copied().unwrap_or(usize::MAX),
            )]
        } else {
            self.quantiles
                .iter()
                .zip(&self.positions)
                .map(|((n, _), &p)| (n.as_str(), p))
                .collect()
        };
        if let Some((n, p)) = &self.mean {
            out.push((n.as_str(), *p));
        }
        out
    }
}

/// Group id of a row that belongs to no group (filtered out, null time).
pub const NO_GROUP: u32 = u32::MAX;

/// Cloning and downcasting, implemented once for every accumulator.
pub trait AccumulatorAny {
    fn box_clone(&self) -> Box<dyn GroupsAccumulator>;
    fn as_any(&self) -> &dyn Any;
}

impl<T: GroupsAccumulator + Clone + 'static> AccumulatorAny for T {
    fn box_clone(&self) -> Box<dyn GroupsAccumulator> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The state of one aggregate for every group of a table.
pub trait GroupsAccumulator: AccumulatorAny + Debug + Send + Sync {
    /// Fold one batch: `gids[i]` is the group of row `i` (`NO_GROUP` skips it), `input` the
    /// metric's column (None for `count()`). Groups up to `groups` may appear.
    fn update(&mut self, gids: &[u32], input: Option<&ArrayRef>, groups: usize) -> Result<()>;

    /// Merge group `src` of `other` (the same aggregate) into group `dst`, for each pair.
    fn merge(
        &mut self,
        other: &dyn GroupsAccumulator,
        pairs: &[(u32, u32)],
        groups: usize,
    ) -> Result<()>;

    /// The user-visible columns of metric `name` for the groups in `order`.
    fn evaluate(&self, name: &str, order: &[u32]) -> Result<Vec<(String, ArrayRef)>>;

    /// The persisted columns: the public value plus hidden `__{name}__*` state columns.
    fn state(&self, name: &str, order: &[u32]) -> Result<Vec<(String, ArrayRef)>>;

    /// An accumulator of the same aggregate with one group per row of a persisted `batch`.
    fn load_state(
        &self,
        name: &str,
        batch: &RecordBatch,
        file: &Path,
    ) -> Result<Box<dyn GroupsAccumulator>>;

    /// An empty accumulator of the same aggregate.
    fn fresh(&self) -> Box<dyn GroupsAccumulator>;

    /// Append group `g`'s whole state to `out`, lossless, in this aggregate's partial-state
    /// layout (see the module header).
    fn write_partial(&self, g: usize, out: &mut Vec<u8>) -> Result<()>;

    /// An accumulator of the same aggregate with one group per value of `values`, each written
    /// by `write_partial`. A malformed value is an error naming `what` and its row.
    fn load_partial(&self, values: &BinaryArray, what: &str) -> Result<Box<dyn GroupsAccumulator>>;

    /// The served form of a batch-layer state (exact distinct sets become exact-tagged sketches).
    fn into_served(self: Box<Self>) -> Result<Box<dyn GroupsAccumulator>>;

    /// Finish work kept pending for fast updates (sketch insert buffers), so a state that is
    /// read many times between updates is not normalised again on every read. Never changes
    /// the logical state.
    fn settle(&mut self) {}

    /// Whether merging several groups into one gives a state that depends on their order
    /// (sketches that compact: quantiles, top-k). Such groups merge in key order.
    fn merge_order_matters(&self) -> bool {
        false
    }

    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn memory_bytes(&self) -> usize;
}

impl Clone for Box<dyn GroupsAccumulator> {
    fn clone(&self) -> Self {
        self.box_clone()
    }
}

/// The accumulator of `other`, or an internal error (two different aggregates never merge).
pub fn downcast<T: 'static>(other: &dyn GroupsAccumulator) -> Result<&T> {
    other
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| Error::internal("merging states of different aggregates"))
}

/// The registry: the accumulator for a metric plan, folding rows in `mode`.
pub fn new_accumulator(plan: &AggPlan, mode: Mode) -> Box<dyn GroupsAccumulator> {
    fn boxed<A: Aggregate>(agg: A) -> Box<dyn GroupsAccumulator> {
        Box::new(Groups::new(agg))
    }
    let float = matches!(
        plan.input,
        Some(DataType::Float16 | DataType::Float32 | DataType::Float64)
    );
    let unsigned = matches!(plan.input, Some(DataType::UInt64));
    match &plan.spec {
        AggSpec::Count { .. } => boxed(count::Count),
        AggSpec::Sum { .. } | AggSpec::Mean { .. } if float => {
            sum_or_mean(plan, sum_float::FloatSum)
        }
        AggSpec::Sum { .. } | AggSpec::Mean { .. } if unsigned => {
            sum_or_mean(plan, sum::IntSum::<u64>::default())
        }
        AggSpec::Sum { .. } | AggSpec::Mean { .. } => {
            sum_or_mean(plan, sum::IntSum::<i64>::default())
        }
        AggSpec::Min { .. } | AggSpec::Max { .. } => {
            let max = matches!(plan.spec, AggSpec::Max { .. });
            if float {
                boxed(min_max::MinMax::<f64>::new(max))
            } else if unsigned {
                boxed(min_max::MinMax::<u64>::new(max))
            } else {
                boxed(min_max::MinMax::<i64>::new(max))
            }
        }
        AggSpec::CountDistinct { .. } => {
            boxed(count_distinct::CountDistinct::new(mode, plan.precision))
        }
        AggSpec::Quantile { q, .. } => {
            let outputs = if plan.quantiles.is_empty() {
                vec![(plan.name.clone(), *q)]
            } else {
                plan.quantiles.clone()
            };
            boxed(quantile::Quantile::new(mode, outputs))
        }
        AggSpec::TopK { k, .. } => top_k::new_top_k(plan.input.as_ref(), mode, *k as usize),
    }
}

/// The accumulator of a `sum` or `mean` plan over the sum `sum` of its column's type: a sum
/// alone, a sum that also gives its column's mean, or a mean.
fn sum_or_mean<S: mean::SumState>(plan: &AggPlan, sum: S) -> Box<dyn GroupsAccumulator> {
    match (&plan.spec, &plan.mean) {
        (AggSpec::Mean { .. }, _) => Box::new(Groups::new(mean::Mean::new(sum))),
        (_, Some((m, _))) => Box::new(Groups::new(mean::Mean::shared(sum, m.clone()))),
        (_, None) => Box::new(Groups::new(sum)),
    }
}

/// The input column, or an internal error for an aggregate that needs one.
pub(crate) fn need(col: Option<&ArrayRef>) -> Result<&ArrayRef> {
    col.ok_or_else(|| Error::internal("aggregate without its input column"))
}

/// A hidden state column of a persisted batch, or corruption naming the file.
pub(crate) fn state_column(batch: &RecordBatch, col: &str, file: &Path) -> Result<ArrayRef> {
    batch
        .column_by_name(col)
        .cloned()
        .ok_or_else(|| Error::corruption(file, format!("batch view lacks column {col:?}")))
}

/// A hidden binary state column (serialized sketches and accumulators), or corruption naming
/// the file.
pub(crate) fn binary_state_column(
    batch: &RecordBatch,
    col: &str,
    file: &Path,
) -> Result<crate::arrow::array::BinaryArray> {
    use crate::arrow::array::AsArray;
    state_column(batch, col, file)?
        .as_binary_opt::<i32>()
        .cloned()
        .ok_or_else(|| Error::corruption(file, format!("{col}: not a binary column")))
}

/// Decode every value of a partial-state column with `read` (one group per value); a null or
/// malformed value is an error naming the column and the row.
pub(crate) fn read_partials<T>(
    values: &BinaryArray,
    what: &str,
    mut read: impl FnMut(&mut ByteReader<'_>) -> std::result::Result<T, SketchError>,
) -> Result<Vec<T>> {
    let bad = |row: usize, msg: &str| {
        Error::new(
            crate::error::ErrorKind::Corruption,
            format!("partial state {what:?}, row {row}: {msg}"),
        )
    };
    let mut out = Vec::with_capacity(values.len());
    for row in 0..values.len() {
        if values.is_null(row) {
            return Err(bad(row, "null value"));
        }
        let mut r = ByteReader::new(values.value(row), "partial state");
        let v = read(&mut r).map_err(|e| bad(row, &e.0))?;
        r.finish().map_err(|e| bad(row, &e.0))?;
        out.push(v);
    }
    Ok(out)
}

/// Call `f(group, value)` for each row with a group and a non-null value.
#[inline]
pub(crate) fn for_each_valid<T: Copy>(
    gids: &[u32],
    values: &[T],
    nulls: Option<&crate::arrow::buffer::NullBuffer>,
    mut f: impl FnMut(usize, T),
) {
    match nulls {
        None => {
            for (&g, &v) in gids.iter().zip(values.iter()) {
                if g != NO_GROUP {
                    f(g as usize, v);
                }
            }
        }
        Some(nulls) => {
            for (row, (&g, &v)) in gids.iter().zip(values.iter()).enumerate() {
                if g != NO_GROUP && nulls.is_valid(row) {
                    f(g as usize, v);
                }
            }
        }
    }
}

/// Non-null counts per group as an int64 column in `order`.
pub(crate) fn counts_column(order: &[u32], count: impl Fn(usize) -> u64) -> ArrayRef {
    std::sync::Arc::new(crate::arrow::array::Int64Array::from_iter_values(
        order.iter().map(|&g| count(g as usize) as i64),
    ))
}

/// The non-negative count column `column` of a persisted state.
pub(crate) fn read_counts(batch: &RecordBatch, column: &str, file: &Path) -> Result<Vec<u64>> {
    let a = int64_values(&state_column(batch, column, file)?)
        .map_err(|_| Error::corruption(file, format!("{column}: not integers")))?;
    a.iter()
        .map(|v| match v {
            Some(v) if v >= 0 => Ok(v as u64),
            _ => Err(Error::corruption(file, format!("{column}: bad count"))),
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests;

/// A binary column of `n` values, value `i` written by `write(i, buffer)`: one buffer for the
/// whole column, no allocation per value (persisted states have one value per group).
pub(crate) fn binary_column(
    n: usize,
    mut write: impl FnMut(usize, &mut Vec<u8>) -> Result<()>,
) -> Result<ArrayRef> {
    use crate::arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
    let mut values = Vec::new();
    let mut offsets = Vec::with_capacity(n + 1);
    offsets.push(0i32);
    for i in 0..n {
        write(i, &mut values)?;
        let end = i32::try_from(values.len()).map_err(|_| {
            Error::invalid("a persisted state column exceeds 2 GiB; use a coarser grain")
        })?;
        offsets.push(end);
    }
    let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
    Ok(std::sync::Arc::new(crate::arrow::array::BinaryArray::new(
        offsets,
        Buffer::from_vec(values),
        None,
    )))
}
