//! Aggregate states: one monoid per aggregate, shared by the batch, speed and serving layers.
//!
//! Each `States` holds the state of one metric for every group of a table, column-wise, so the
//! update loop is a tight pass over a column. The three operations are the same everywhere:
//! `update` (fold rows into group states), `merge_group` (combine two states of the same metric:
//! partitions in a recompute, batch + speed when serving, groups rolled up by a query) and
//! `finalize` (the user-visible value). A state can also be written to and read from Arrow columns,
//! which is how batch views persist exactly what serving needs to merge later.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Decimal128Array, Float64Array, Int64Array,
    RecordBatch,
};
use arrow::datatypes::{DataType, Float64Type, Int64Type};

use crate::error::{Error, ErrorKind, Result};
use crate::exact_sum::ExactSum;
use crate::group::{int64_values, NO_GROUP};
use crate::schema::ColumnClass;
use crate::sketch::{key_hash, HllSketch};
use crate::view::AggSpec;

/// Which layer builds a state: the batch layer keeps exact distinct sets, the speed layer sketches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Batch,
    Speed,
}

/// A metric bound to its input column's class.
#[derive(Debug, Clone)]
pub struct AggPlan {
    pub name: String,
    pub spec: AggSpec,
    pub input: Option<ColumnClass>,
    pub precision: u8,
}

/// The distinct-count state of one group.
#[derive(Debug, Clone, Default)]
pub enum DistinctState {
    #[default]
    Empty,
    /// Every distinct key (batch layer). Integers are kept as themselves, strings as a 128-bit hash.
    Exact(KeySet),
    /// A sketch; `exact` is the true count when the sketch stands for one exact batch group.
    /// Shared (copy on write): a query that passes a group through unmerged does not copy it.
    Sketch {
        sketch: Arc<HllSketch>,
        exact: Option<u64>,
    },
}

/// Keys in a vector whose prefix `keys[..clean]` is sorted and unique. Pushing is a plain
/// append; the vector is sorted and deduplicated whenever it has doubled since the last time, so
/// memory stays within a small factor of the distinct count. Sorting per group is cache friendly,
/// which makes this several times faster than a hash set per group for the batch layer.
#[derive(Debug, Clone, Default)]
pub struct KeyVec<T> {
    keys: Vec<T>,
    clean: usize,
}

impl<T: Ord + Copy> KeyVec<T> {
    #[inline]
    fn push(&mut self, k: T) {
        self.keys.push(k);
        if self.keys.len() >= 2 * self.clean + 1024 {
            self.normalize();
        }
    }
    fn normalize(&mut self) {
        if self.clean < self.keys.len() {
            self.keys.sort_unstable();
            self.keys.dedup();
            self.clean = self.keys.len();
        }
    }
    fn extend(&mut self, other: &KeyVec<T>) {
        self.keys.extend_from_slice(&other.keys);
        if self.keys.len() >= 2 * self.clean + 1024 {
            self.normalize();
        }
    }
    /// The sorted distinct keys.
    fn distinct(&self) -> std::borrow::Cow<'_, [T]> {
        if self.clean == self.keys.len() {
            std::borrow::Cow::Borrowed(&self.keys)
        } else {
            let mut v = self.keys.clone();
            v.sort_unstable();
            v.dedup();
            std::borrow::Cow::Owned(v)
        }
    }
}

/// The exact distinct keys of one group: 64-bit for integer-like columns, 128-bit for strings.
#[derive(Debug, Clone)]
pub enum KeySet {
    Narrow(KeyVec<u64>),
    Wide(KeyVec<u128>),
}

impl KeySet {
    fn new(narrow: bool) -> KeySet {
        if narrow {
            KeySet::Narrow(KeyVec::default())
        } else {
            KeySet::Wide(KeyVec::default())
        }
    }
    pub fn len(&self) -> usize {
        match self {
            KeySet::Narrow(s) => s.distinct().len(),
            KeySet::Wide(s) => s.distinct().len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn normalize(&mut self) {
        match self {
            KeySet::Narrow(s) => s.normalize(),
            KeySet::Wide(s) => s.normalize(),
        }
    }
    fn memory_bytes(&self) -> usize {
        match self {
            KeySet::Narrow(s) => s.keys.capacity() * 8,
            KeySet::Wide(s) => s.keys.capacity() * 16,
        }
    }
    fn union(&mut self, other: &KeySet) {
        match (&mut *self, other) {
            (KeySet::Narrow(a), KeySet::Narrow(b)) => a.extend(b),
            (KeySet::Wide(a), KeySet::Wide(b)) => a.extend(b),
            (KeySet::Wide(a), KeySet::Narrow(b)) => {
                for &k in b.keys.iter() {
                    a.push(k as u128);
                }
            }
            (KeySet::Narrow(a), KeySet::Wide(b)) => {
                let mut wide = KeyVec::default();
                for &k in a.keys.iter() {
                    wide.push(k as u128);
                }
                wide.extend(b);
                *self = KeySet::Wide(wide);
            }
        }
    }
    fn sketch(&self, precision: u8) -> Result<HllSketch> {
        let s = match self {
            KeySet::Narrow(s) => {
                HllSketch::from_hashes(precision, s.distinct().iter().map(|&k| key_hash(k as u128)))
            }
            KeySet::Wide(s) => {
                HllSketch::from_hashes(precision, s.distinct().iter().map(|&k| key_hash(k)))
            }
        };
        s.map_err(|e| Error::invalid(e.to_string()))
    }
}

#[inline]
fn distinct_insert(
    state: &mut DistinctState,
    layer: Layer,
    precision: u8,
    key: u128,
    narrow: bool,
) -> Result<()> {
    match layer {
        Layer::Batch => match state {
            DistinctState::Exact(KeySet::Narrow(set)) if narrow => set.push(key as u64),
            DistinctState::Exact(KeySet::Wide(set)) => set.push(key),
            _ => {
                let mut fresh = KeySet::new(narrow);
                if let DistinctState::Exact(old) = state {
                    fresh.union(old);
                }
                match &mut fresh {
                    KeySet::Narrow(s) => s.push(key as u64),
                    KeySet::Wide(s) => s.push(key),
                }
                *state = DistinctState::Exact(fresh);
            }
        },
        Layer::Speed => match state {
            DistinctState::Sketch { sketch, .. } => {
                Arc::make_mut(sketch).insert_hash(key_hash(key))
            }
            _ => {
                let mut sketch = new_sketch(precision)?;
                sketch.insert_hash(key_hash(key));
                *state = DistinctState::Sketch {
                    sketch: Arc::new(sketch),
                    exact: None,
                };
            }
        },
    }
    Ok(())
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

/// The states of one metric for all groups of a table.
#[derive(Debug, Clone)]
pub enum States {
    Count {
        n: Vec<u64>,
    },
    SumInt {
        sum: Vec<i128>,
        n: Vec<u64>,
    },
    SumFloat {
        sum: Vec<ExactSum>,
        n: Vec<u64>,
    },
    MinMaxInt {
        v: Vec<i64>,
        has: Vec<bool>,
        max: bool,
    },
    MinMaxFloat {
        v: Vec<f64>,
        has: Vec<bool>,
        max: bool,
    },
    Distinct {
        groups: Vec<DistinctState>,
        layer: Layer,
        precision: u8,
    },
}

/// A canonical NaN, so that every NaN compares the same way (above +inf, as in DuckDB).
#[inline]
fn canon(x: f64) -> f64 {
    if x.is_nan() {
        f64::NAN
    } else {
        x
    }
}

impl States {
    pub fn new(plan: &AggPlan, layer: Layer) -> States {
        let float = plan.input == Some(ColumnClass::Float);
        match &plan.spec {
            AggSpec::Count { .. } => States::Count { n: Vec::new() },
            AggSpec::Sum { .. } | AggSpec::Mean { .. } => {
                if float {
                    States::SumFloat {
                        sum: Vec::new(),
                        n: Vec::new(),
                    }
                } else {
                    States::SumInt {
                        sum: Vec::new(),
                        n: Vec::new(),
                    }
                }
            }
            AggSpec::Min { .. } | AggSpec::Max { .. } => {
                let max = matches!(plan.spec, AggSpec::Max { .. });
                if float {
                    States::MinMaxFloat {
                        v: Vec::new(),
                        has: Vec::new(),
                        max,
                    }
                } else {
                    States::MinMaxInt {
                        v: Vec::new(),
                        has: Vec::new(),
                        max,
                    }
                }
            }
            AggSpec::CountDistinct { .. } => States::Distinct {
                groups: Vec::new(),
                layer,
                precision: plan.precision,
            },
        }
    }

    /// Make room for `groups` groups (new ones start empty).
    pub fn resize(&mut self, groups: usize) {
        match self {
            States::Count { n } => n.resize(groups, 0),
            States::SumInt { sum, n } => {
                sum.resize(groups, 0);
                n.resize(groups, 0);
            }
            States::SumFloat { sum, n } => {
                sum.resize(groups, ExactSum::new());
                n.resize(groups, 0);
            }
            States::MinMaxInt { v, has, .. } => {
                v.resize(groups, 0);
                has.resize(groups, false);
            }
            States::MinMaxFloat { v, has, .. } => {
                v.resize(groups, 0.0);
                has.resize(groups, false);
            }
            States::Distinct { groups: g, .. } => g.resize(groups, DistinctState::Empty),
        }
    }

    /// Fold the rows of one batch into their groups. `gids[i]` is the group of row `i`
    /// (`NO_GROUP` skips it); `col` is the metric's input column (None for `count()`).
    pub fn update(&mut self, gids: &[u32], col: Option<&ArrayRef>) -> Result<()> {
        match self {
            States::Count { n } => match col {
                Some(c) if c.null_count() > 0 => {
                    for (row, &g) in gids.iter().enumerate() {
                        if g != NO_GROUP && c.is_valid(row) {
                            n[g as usize] += 1;
                        }
                    }
                }
                _ => {
                    for &g in gids {
                        if g != NO_GROUP {
                            n[g as usize] += 1;
                        }
                    }
                }
            },
            States::SumInt { sum, n } => {
                let a = int64_values(need(col)?)?;
                for_each_valid(gids, &a, |g, v| {
                    sum[g] += v as i128;
                    n[g] += 1;
                });
            }
            States::SumFloat { sum, n } => {
                let a = float64_values(need(col)?)?;
                for_each_valid(gids, &a, |g, v| {
                    sum[g].add(v);
                    n[g] += 1;
                });
            }
            States::MinMaxInt { v, has, max } => {
                let a = int64_values(need(col)?)?;
                let max = *max;
                for_each_valid(gids, &a, |g, x| {
                    if !has[g] || (max && x > v[g]) || (!max && x < v[g]) {
                        v[g] = x;
                        has[g] = true;
                    }
                });
            }
            States::MinMaxFloat { v, has, max } => {
                let a = float64_values(need(col)?)?;
                let max = *max;
                for_each_valid(gids, &a, |g, x| {
                    let x = canon(x);
                    let better = match x.total_cmp(&v[g]) {
                        std::cmp::Ordering::Greater => max,
                        std::cmp::Ordering::Less => !max,
                        std::cmp::Ordering::Equal => false,
                    };
                    if !has[g] || better {
                        v[g] = x;
                        has[g] = true;
                    }
                });
            }
            States::Distinct {
                groups,
                layer,
                precision,
            } => {
                let c = need(col)?;
                let (layer, precision) = (*layer, *precision);
                let nulls = c.nulls();
                let valid = |row: usize| nulls.is_none_or(|n| n.is_valid(row));
                match distinct_keys(c)? {
                    Keys::Narrow(keys) => {
                        for (row, &g) in gids.iter().enumerate() {
                            if g != NO_GROUP && valid(row) {
                                distinct_insert(
                                    &mut groups[g as usize],
                                    layer,
                                    precision,
                                    keys[row] as u128,
                                    true,
                                )?;
                            }
                        }
                    }
                    Keys::Wide(keys) => {
                        for (row, &g) in gids.iter().enumerate() {
                            if g != NO_GROUP && valid(row) {
                                distinct_insert(
                                    &mut groups[g as usize],
                                    layer,
                                    precision,
                                    keys[row],
                                    false,
                                )?;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Merge group `src` of `other` (the same metric) into group `dst` of `self`.
    pub fn merge_group(&mut self, dst: u32, other: &States, src: u32) -> Result<()> {
        let (d, s) = (dst as usize, src as usize);
        match (self, other) {
            (States::Count { n }, States::Count { n: o }) => n[d] += o[s],
            (States::SumInt { sum, n }, States::SumInt { sum: os, n: on }) => {
                sum[d] += os[s];
                n[d] += on[s];
            }
            (States::SumFloat { sum, n }, States::SumFloat { sum: os, n: on }) => {
                sum[d].merge(&os[s]);
                n[d] += on[s];
            }
            (States::MinMaxInt { v, has, max }, States::MinMaxInt { v: ov, has: oh, .. }) => {
                if oh[s] && (!has[d] || (*max && ov[s] > v[d]) || (!*max && ov[s] < v[d])) {
                    v[d] = ov[s];
                    has[d] = true;
                }
            }
            (States::MinMaxFloat { v, has, max }, States::MinMaxFloat { v: ov, has: oh, .. }) => {
                if oh[s] {
                    let better = match ov[s].total_cmp(&v[d]) {
                        std::cmp::Ordering::Greater => *max,
                        std::cmp::Ordering::Less => !*max,
                        std::cmp::Ordering::Equal => false,
                    };
                    if !has[d] || better {
                        v[d] = ov[s];
                        has[d] = true;
                    }
                }
            }
            (
                States::Distinct {
                    groups, precision, ..
                },
                States::Distinct { groups: og, .. },
            ) => {
                merge_distinct(&mut groups[d], &og[s], *precision)?;
            }
            _ => {
                return Err(Error::invalid(
                    "internal: merging states of different aggregates",
                ))
            }
        }
        Ok(())
    }

    /// Did group `g` see any input at all? (Used to tell which groups the speed layer touches.)
    pub fn memory_bytes(&self) -> usize {
        match self {
            States::Count { n } => n.capacity() * 8,
            States::SumInt { sum, n } => sum.capacity() * 16 + n.capacity() * 8,
            States::SumFloat { sum, n } => {
                sum.iter().map(|s| s.memory_bytes()).sum::<usize>() + n.capacity() * 8
            }
            States::MinMaxInt { v, has, .. } => v.capacity() * 8 + has.capacity(),
            States::MinMaxFloat { v, has, .. } => v.capacity() * 8 + has.capacity(),
            States::Distinct { groups, .. } => groups
                .iter()
                .map(|g| {
                    std::mem::size_of::<DistinctState>()
                        + match g {
                            DistinctState::Empty => 0,
                            DistinctState::Exact(s) => s.memory_bytes(),
                            DistinctState::Sketch { sketch, .. } => sketch.memory_bytes(),
                        }
                })
                .sum(),
        }
    }

    /// The user-visible columns of this metric for the groups in `order`.
    pub fn finalize(
        &self,
        name: &str,
        spec: &AggSpec,
        order: &[u32],
    ) -> Result<Vec<(String, ArrayRef)>> {
        let is_mean = matches!(spec, AggSpec::Mean { .. });
        let col: ArrayRef = match self {
            States::Count { n } => Arc::new(
                order
                    .iter()
                    .map(|&g| Some(n[g as usize] as i64))
                    .collect::<Int64Array>(),
            ),
            States::SumInt { sum, n } => {
                if is_mean {
                    Arc::new(
                        order
                            .iter()
                            .map(|&g| {
                                let g = g as usize;
                                (n[g] > 0).then(|| sum[g] as f64 / n[g] as f64)
                            })
                            .collect::<Float64Array>(),
                    )
                } else {
                    let mut out = Vec::with_capacity(order.len());
                    for &g in order {
                        let g = g as usize;
                        if n[g] == 0 {
                            out.push(None);
                        } else {
                            let v = i64::try_from(sum[g]).map_err(|_| {
                                Error::new(
                                    ErrorKind::Overflow,
                                    format!(
                                        "sum {name:?} overflows int64 (exact value {})",
                                        sum[g]
                                    ),
                                )
                            })?;
                            out.push(Some(v));
                        }
                    }
                    Arc::new(Int64Array::from(out))
                }
            }
            States::SumFloat { sum, n } => Arc::new(
                order
                    .iter()
                    .map(|&g| {
                        let g = g as usize;
                        (n[g] > 0).then(|| {
                            let total = sum[g].finalize();
                            if is_mean {
                                total / n[g] as f64
                            } else {
                                total
                            }
                        })
                    })
                    .collect::<Float64Array>(),
            ),
            States::MinMaxInt { v, has, .. } => Arc::new(
                order
                    .iter()
                    .map(|&g| has[g as usize].then(|| v[g as usize]))
                    .collect::<Int64Array>(),
            ),
            States::MinMaxFloat { v, has, .. } => Arc::new(
                order
                    .iter()
                    .map(|&g| has[g as usize].then(|| v[g as usize]))
                    .collect::<Float64Array>(),
            ),
            States::Distinct { groups, .. } => {
                let mut value = Vec::with_capacity(order.len());
                let mut exact = Vec::with_capacity(order.len());
                let mut lower = Vec::with_capacity(order.len());
                let mut upper = Vec::with_capacity(order.len());
                for &g in order {
                    let (v, e, lo, hi) = distinct_value(&groups[g as usize]);
                    value.push(v);
                    exact.push(e);
                    lower.push(lo);
                    upper.push(hi);
                }
                return Ok(vec![
                    (
                        name.to_string(),
                        Arc::new(Int64Array::from(value)) as ArrayRef,
                    ),
                    (
                        format!("{name}_exact"),
                        Arc::new(BooleanArray::from(exact)) as ArrayRef,
                    ),
                    (
                        format!("{name}_lower"),
                        Arc::new(Int64Array::from(lower)) as ArrayRef,
                    ),
                    (
                        format!("{name}_upper"),
                        Arc::new(Int64Array::from(upper)) as ArrayRef,
                    ),
                ]);
            }
        };
        Ok(vec![(name.to_string(), col)])
    }

    /// Columns that persist the exact state (for batch views): the public value plus hidden
    /// `__{name}__*` columns holding what a later merge needs.
    pub fn state_columns(
        &self,
        name: &str,
        spec: &AggSpec,
        order: &[u32],
    ) -> Result<Vec<(String, ArrayRef)>> {
        let mut cols = match self {
            States::Distinct { .. } => Vec::new(),
            _ => self.finalize(name, spec, order)?,
        };
        match self {
            States::Count { .. } | States::MinMaxInt { .. } | States::MinMaxFloat { .. } => {}
            States::SumInt { sum, n } => {
                let s = Decimal128Array::from(
                    order.iter().map(|&g| sum[g as usize]).collect::<Vec<_>>(),
                )
                .with_precision_and_scale(38, 0)?;
                cols.push((format!("__{name}__sum"), Arc::new(s)));
                cols.push((format!("__{name}__n"), counts(n, order)));
            }
            States::SumFloat { sum, n } => {
                let bytes: Vec<Vec<u8>> =
                    order.iter().map(|&g| sum[g as usize].to_bytes()).collect();
                let arr = BinaryArray::from_iter_values(bytes.iter());
                cols.push((format!("__{name}__state"), Arc::new(arr)));
                cols.push((format!("__{name}__n"), counts(n, order)));
            }
            States::Distinct {
                groups, precision, ..
            } => {
                let mut values = Vec::with_capacity(order.len());
                let mut sketches: Vec<Vec<u8>> = Vec::with_capacity(order.len());
                for &g in order {
                    let st = &groups[g as usize];
                    let (sketch, exact) = as_sketch(st, *precision)?;
                    values.push(
                        exact
                            .map(|e| e as i64)
                            .unwrap_or_else(|| sketch.estimate().round() as i64),
                    );
                    sketches.push(sketch.to_bytes());
                }
                cols.push((name.to_string(), Arc::new(Int64Array::from(values))));
                cols.push((
                    format!("__{name}__sketch"),
                    Arc::new(BinaryArray::from_iter_values(sketches.iter())),
                ));
            }
        }
        Ok(cols)
    }

    /// Rebuild states from the columns `state_columns` wrote; row `i` goes to group `gids[i]`
    /// (distinct rows become exact-tagged sketches).
    pub fn load_state_columns(
        &mut self,
        name: &str,
        batch: &RecordBatch,
        gids: &[u32],
        file: &std::path::Path,
    ) -> Result<()> {
        let get = |col: &str| {
            batch
                .column_by_name(col)
                .cloned()
                .ok_or_else(|| Error::corruption(file, format!("batch view lacks column {col:?}")))
        };
        let max_gid = gids
            .iter()
            .copied()
            .filter(|&g| g != NO_GROUP)
            .max()
            .map(|g| g as usize + 1)
            .unwrap_or(0);
        let needed = max_gid.max(self.len());
        self.resize(needed);
        match self {
            States::Count { n } => {
                let a = get(name)?;
                let a = int64_values(&a)?;
                for (i, &g) in gids.iter().enumerate() {
                    n[g as usize] += a.value(i) as u64;
                }
            }
            States::SumInt { sum, n } => {
                let s = get(&format!("__{name}__sum"))?;
                let s = s.as_primitive::<arrow::datatypes::Decimal128Type>();
                let c = get(&format!("__{name}__n"))?;
                let c = c.as_primitive::<Int64Type>();
                for (i, &g) in gids.iter().enumerate() {
                    sum[g as usize] += s.value(i);
                    n[g as usize] += c.value(i) as u64;
                }
            }
            States::SumFloat { sum, n } => {
                let s = get(&format!("__{name}__state"))?;
                let s = s.as_binary::<i32>();
                let c = get(&format!("__{name}__n"))?;
                let c = c.as_primitive::<Int64Type>();
                for (i, &g) in gids.iter().enumerate() {
                    let st = ExactSum::from_bytes(s.value(i)).ok_or_else(|| {
                        Error::corruption(file, format!("bad float-sum state in {name:?}"))
                    })?;
                    sum[g as usize].merge(&st);
                    n[g as usize] += c.value(i) as u64;
                }
            }
            States::MinMaxInt { v, has, max } => {
                let a = get(name)?;
                let a = int64_values(&a)?;
                for (i, &g) in gids.iter().enumerate() {
                    let g = g as usize;
                    if a.is_valid(i) {
                        let x = a.value(i);
                        if !has[g] || (*max && x > v[g]) || (!*max && x < v[g]) {
                            v[g] = x;
                            has[g] = true;
                        }
                    }
                }
            }
            States::MinMaxFloat { v, has, .. } => {
                let a = get(name)?;
                let a = a.as_primitive::<Float64Type>();
                for (i, &g) in gids.iter().enumerate() {
                    let g = g as usize;
                    if a.is_valid(i) {
                        v[g] = a.value(i);
                        has[g] = true;
                    }
                }
            }
            States::Distinct {
                groups, precision, ..
            } => {
                let vals = get(name)?;
                let vals = vals.as_primitive::<Int64Type>();
                let sk = get(&format!("__{name}__sketch"))?;
                let sk = sk.as_binary::<i32>();
                for (i, &g) in gids.iter().enumerate() {
                    let sketch = HllSketch::from_bytes(sk.value(i))
                        .map_err(|e| Error::corruption(file, format!("sketch of {name:?}: {e}")))?;
                    let st = DistinctState::Sketch {
                        sketch: Arc::new(sketch),
                        exact: Some(vals.value(i) as u64),
                    };
                    merge_distinct(&mut groups[g as usize], &st, *precision)?;
                }
            }
        }
        Ok(())
    }

    /// Turn exact distinct sets into exact-tagged sketches: the form serving merges and batch
    /// views persist. Other states are unchanged.
    pub fn into_served(self) -> Result<States> {
        match self {
            States::Distinct {
                groups, precision, ..
            } => {
                use rayon::prelude::*;
                let groups = groups
                    .into_par_iter()
                    .map(|st| match st {
                        DistinctState::Exact(mut set) => {
                            set.normalize();
                            Ok(DistinctState::Sketch {
                                sketch: Arc::new(set.sketch(precision)?),
                                exact: Some(set.len() as u64),
                            })
                        }
                        other => Ok(other),
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(States::Distinct {
                    groups,
                    layer: Layer::Speed,
                    precision,
                })
            }
            other => Ok(other),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            States::Count { n } => n.len(),
            States::SumInt { n, .. } | States::SumFloat { n, .. } => n.len(),
            States::MinMaxInt { has, .. } | States::MinMaxFloat { has, .. } => has.len(),
            States::Distinct { groups, .. } => groups.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn counts(n: &[u64], order: &[u32]) -> ArrayRef {
    Arc::new(
        order
            .iter()
            .map(|&g| Some(n[g as usize] as i64))
            .collect::<Int64Array>(),
    )
}

fn need(col: Option<&ArrayRef>) -> Result<&ArrayRef> {
    col.ok_or_else(|| Error::invalid("internal: aggregate without its input column"))
}

fn new_sketch(precision: u8) -> Result<HllSketch> {
    HllSketch::new(precision).map_err(|e| Error::invalid(e.to_string()))
}

/// Call `f(group, value)` for each row with a group and a non-null value.
#[inline]
fn for_each_valid<P: arrow::datatypes::ArrowPrimitiveType>(
    gids: &[u32],
    a: &arrow::array::PrimitiveArray<P>,
    mut f: impl FnMut(usize, P::Native),
) {
    let values = a.values();
    match a.nulls() {
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

pub fn float64_values(col: &ArrayRef) -> Result<Float64Array> {
    Ok(match col.data_type() {
        DataType::Float64 => col.as_primitive::<Float64Type>().clone(),
        _ => arrow::compute::cast(col, &DataType::Float64)?
            .as_primitive::<Float64Type>()
            .clone(),
    })
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
            let a = arrow::compute::cast(col, &DataType::Utf8)?;
            return distinct_keys(&a);
        }
        _ => {
            let a = int64_values(col)?;
            Keys::Narrow(a.values().iter().map(|&v| v as u64).collect())
        }
    })
}

fn as_sketch(st: &DistinctState, precision: u8) -> Result<(HllSketch, Option<u64>)> {
    Ok(match st {
        DistinctState::Empty => (new_sketch(precision)?, Some(0)),
        DistinctState::Exact(set) => (set.sketch(precision)?, Some(set.len() as u64)),
        DistinctState::Sketch { sketch, exact } => (sketch.as_ref().clone(), *exact),
    })
}

fn merge_distinct(dst: &mut DistinctState, src: &DistinctState, precision: u8) -> Result<()> {
    match (&mut *dst, src) {
        (_, DistinctState::Empty) => {}
        (DistinctState::Empty, s) => *dst = s.clone(),
        (DistinctState::Exact(a), DistinctState::Exact(b)) => a.union(b),
        (DistinctState::Sketch { sketch: a, exact }, DistinctState::Sketch { sketch: b, .. }) => {
            Arc::make_mut(a)
                .merge(b)
                .map_err(|e| Error::invalid(e.to_string()))?;
            *exact = None;
        }
        _ => {
            let (mut a, _) = as_sketch(dst, precision)?;
            let (b, _) = as_sketch(src, precision)?;
            a.merge(&b).map_err(|e| Error::invalid(e.to_string()))?;
            *dst = DistinctState::Sketch {
                sketch: Arc::new(a),
                exact: None,
            };
        }
    }
    Ok(())
}

/// (value, exact, lower, upper) of a distinct state.
fn distinct_value(st: &DistinctState) -> (Option<i64>, bool, Option<i64>, Option<i64>) {
    match st {
        DistinctState::Empty => (Some(0), true, Some(0), Some(0)),
        DistinctState::Exact(set) => {
            let n = set.len() as i64;
            (Some(n), true, Some(n), Some(n))
        }
        DistinctState::Sketch { exact: Some(n), .. } => {
            let n = *n as i64;
            (Some(n), true, Some(n), Some(n))
        }
        DistinctState::Sketch {
            sketch,
            exact: None,
        } => {
            let est = sketch.estimate();
            let (lo, hi) = sketch.bounds();
            (
                Some(est.round() as i64),
                false,
                Some(lo.floor() as i64),
                Some(hi.ceil() as i64),
            )
        }
    }
}
