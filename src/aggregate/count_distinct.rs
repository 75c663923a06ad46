//! `count_distinct`: exact in the batch layer (the set of keys of each group), a HyperLogLog
//! sketch in the speed layer. Served and persisted batch states are sketches tagged with their
//! exact count, so a group that only the batch layer saw stays exact, and any merge with speed
//! data goes through the sketch and is marked approximate with its bounds.
//!
//! Partial-state layout (v1), by the first byte: 0, no key; 1, exact 64-bit keys (u64 count,
//! then the sorted distinct keys, u64 each); 2, exact 128-bit keys (u64 count, then u128 each);
//! 3, a sketch (one byte, 1 if an exact count follows as u64, then the sketch's own codec).

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use crate::arrow::array::{Array, ArrayRef, BinaryArray, BooleanArray, Int64Array, RecordBatch};

use super::input::{distinct_keys, int64_values, Keys};
use super::runs::GroupRuns;
use super::sketch::{key_hash, HllSketch};
use super::{
    binary_column, downcast, need, read_partials, state_column, ByteReader, BytesError,
    GroupsAccumulator, Layer, NO_GROUP,
};
use crate::error::{Error, Result};

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
    fn distinct(&self) -> Cow<'_, [T]> {
        if self.clean == self.keys.len() {
            Cow::Borrowed(&self.keys)
        } else {
            let mut v = self.keys.clone();
            v.sort_unstable();
            v.dedup();
            Cow::Owned(v)
        }
    }
}

impl<T: Ord + Copy> KeyVec<T> {
    /// Keys read from a partial state: taken as sorted and distinct only if they are.
    fn from_keys(keys: Vec<T>) -> Self {
        let clean = if keys.windows(2).all(|w| w[0] < w[1]) {
            keys.len()
        } else {
            0
        };
        KeyVec { keys, clean }
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

/// The distinct-count state of one group.
#[derive(Debug, Clone, Default)]
pub enum DistinctState {
    #[default]
    Empty,
    /// Every distinct key (batch layer).
    Exact(KeySet),
    /// A sketch; `exact` is the true count when the sketch stands for one exact batch group.
    /// Shared (copy on write): a query that passes a group through unmerged does not copy it.
    Sketch {
        sketch: Arc<HllSketch>,
        exact: Option<u64>,
    },
}

impl DistinctState {
    fn memory_bytes(&self) -> usize {
        std::mem::size_of::<DistinctState>()
            + match self {
                DistinctState::Empty => 0,
                DistinctState::Exact(s) => s.memory_bytes(),
                DistinctState::Sketch { sketch, .. } => sketch.memory_bytes(),
            }
    }

    /// (value, exact, lower, upper).
    fn value(&self) -> (Option<i64>, bool, Option<i64>, Option<i64>) {
        match self {
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
                let (est, lo, hi) = sketch.estimate_with_bounds();
                (
                    Some(est.round() as i64),
                    false,
                    Some(lo.floor() as i64),
                    Some(hi.ceil() as i64),
                )
            }
        }
    }
}

fn new_sketch(precision: u8) -> Result<HllSketch> {
    HllSketch::new(precision).map_err(|e| Error::invalid(e.to_string()))
}

fn as_sketch(st: &DistinctState, precision: u8) -> Result<(HllSketch, Option<u64>)> {
    Ok(match st {
        DistinctState::Empty => (new_sketch(precision)?, Some(0)),
        DistinctState::Exact(set) => (set.sketch(precision)?, Some(set.len() as u64)),
        DistinctState::Sketch { sketch, exact } => (sketch.as_ref().clone(), *exact),
    })
}

impl DistinctState {
    /// No key at all: empty, or a persisted state of a group without keys (an empty sketch
    /// tagged exact 0). Merging it changes nothing, so it must not cost the other side its
    /// exactness.
    fn is_nothing(&self) -> bool {
        matches!(
            self,
            DistinctState::Empty | DistinctState::Sketch { exact: Some(0), .. }
        )
    }
}

fn merge_state(dst: &mut DistinctState, src: &DistinctState, precision: u8) -> Result<()> {
    if src.is_nothing() {
        return Ok(());
    }
    if dst.is_nothing() {
        *dst = src.clone();
        return Ok(());
    }
    match (&mut *dst, src) {
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

#[derive(Debug, Clone)]
pub struct CountDistinct {
    groups: Vec<DistinctState>,
    layer: Layer,
    precision: u8,
    /// Scratch of the speed layer's update (rows in runs by group).
    runs: GroupRuns,
}

impl CountDistinct {
    pub fn new(layer: Layer, precision: u8) -> Self {
        Self::with_groups(layer, precision, Vec::new())
    }

    fn with_groups(layer: Layer, precision: u8, groups: Vec<DistinctState>) -> Self {
        CountDistinct {
            groups,
            layer,
            precision,
            runs: GroupRuns::default(),
        }
    }

    /// The speed layer's update: each group's run of hashes goes into its sketch at once (one
    /// state check and one copy-on-write check per group and batch, not per row).
    fn update_sketches(
        &mut self,
        gids: &[u32],
        hashes: &[u64],
        groups: usize,
        valid: impl Fn(usize) -> bool,
    ) -> Result<()> {
        self.runs.build(gids, groups, valid);
        for (g, rows) in self.runs.runs() {
            let state = &mut self.groups[g];
            if !matches!(state, DistinctState::Sketch { .. }) {
                let (sketch, _) = as_sketch(state, self.precision)?;
                *state = DistinctState::Sketch {
                    sketch: Arc::new(sketch),
                    exact: None,
                };
            }
            if let DistinctState::Sketch { sketch, exact } = state {
                Arc::make_mut(sketch).insert_hashes(rows.iter().map(|&r| hashes[r as usize]));
                *exact = None;
            }
        }
        Ok(())
    }

    fn grow(&mut self, groups: usize) {
        if groups > self.groups.len() {
            self.groups.resize(groups, DistinctState::Empty);
        }
    }

    #[inline]
    fn insert(&mut self, g: usize, key: u128, narrow: bool) -> Result<()> {
        let state = &mut self.groups[g];
        match self.layer {
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
                DistinctState::Sketch { sketch, exact } => {
                    Arc::make_mut(sketch).insert_hash(key_hash(key));
                    *exact = None;
                }
                _ => {
                    let (mut sketch, _) = as_sketch(state, self.precision)?;
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
}

impl GroupsAccumulator for CountDistinct {
    fn update(&mut self, gids: &[u32], input: Option<&ArrayRef>, groups: usize) -> Result<()> {
        self.grow(groups);
        let c = need(input)?;
        let nulls = c.nulls().cloned();
        let valid = |row: usize| nulls.as_ref().is_none_or(|n| n.is_valid(row));
        if self.layer == Layer::Speed {
            let hashes: Vec<u64> = match distinct_keys(c)? {
                Keys::Narrow(keys) => keys.iter().map(|&k| key_hash(k as u128)).collect(),
                Keys::Wide(keys) => keys.iter().map(|&k| key_hash(k)).collect(),
            };
            return self.update_sketches(gids, &hashes, groups, valid);
        }
        match distinct_keys(c)? {
            Keys::Narrow(keys) => {
                for (row, &g) in gids.iter().enumerate() {
                    if g != NO_GROUP && valid(row) {
                        self.insert(g as usize, keys[row] as u128, true)?;
                    }
                }
            }
            Keys::Wide(keys) => {
                for (row, &g) in gids.iter().enumerate() {
                    if g != NO_GROUP && valid(row) {
                        self.insert(g as usize, keys[row], false)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn settle(&mut self) {
        for st in &mut self.groups {
            if let DistinctState::Sketch { sketch, .. } = st {
                if !sketch.is_settled() {
                    Arc::make_mut(sketch).settle();
                }
            }
        }
    }

    fn merge(
        &mut self,
        other: &dyn GroupsAccumulator,
        pairs: &[(u32, u32)],
        groups: usize,
    ) -> Result<()> {
        let o = downcast::<Self>(other)?;
        self.grow(groups);
        for &(d, s) in pairs {
            merge_state(
                &mut self.groups[d as usize],
                &o.groups[s as usize],
                self.precision,
            )?;
        }
        Ok(())
    }

    fn evaluate(&self, name: &str, order: &[u32]) -> Result<Vec<(String, ArrayRef)>> {
        let mut value = Vec::with_capacity(order.len());
        let mut exact = Vec::with_capacity(order.len());
        let mut lower = Vec::with_capacity(order.len());
        let mut upper = Vec::with_capacity(order.len());
        for &g in order {
            let (v, e, lo, hi) = self.groups[g as usize].value();
            value.push(v);
            exact.push(e);
            lower.push(lo);
            upper.push(hi);
        }
        Ok(vec![
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
        ])
    }

    fn state(&self, name: &str, order: &[u32]) -> Result<Vec<(String, ArrayRef)>> {
        let mut values = Vec::with_capacity(order.len());
        let sketches = binary_column(order.len(), |i, out| {
            // Null where the state is a plain sketch: only exact counts are tagged as such.
            let exact = match &self.groups[order[i] as usize] {
                DistinctState::Sketch { sketch, exact } => {
                    sketch.write_bytes(out);
                    *exact
                }
                other => {
                    let (sketch, exact) = as_sketch(other, self.precision)?;
                    sketch.write_bytes(out);
                    exact
                }
            };
            values.push(exact.map(|e| e as i64));
            Ok(())
        })?;
        Ok(vec![
            (name.to_string(), Arc::new(Int64Array::from(values))),
            (format!("__{name}__sketch"), sketches),
        ])
    }

    fn load_state(
        &self,
        name: &str,
        batch: &RecordBatch,
        file: &Path,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let vals = int64_values(&state_column(batch, name, file)?)
            .map_err(|_| Error::corruption(file, format!("{name:?}: not integers")))?;
        let what = format!("__{name}__sketch");
        let sk = super::binary_state_column(batch, &what, file)?;
        let mut groups = Vec::with_capacity(sk.len());
        for i in 0..sk.len() {
            let sketch = HllSketch::from_bytes(sk.value(i))
                .map_err(|e| Error::corruption(file, format!("sketch of {name:?}: {e}")))?;
            let exact = (!vals.is_null(i)).then(|| vals.value(i));
            if exact.is_some_and(|e| e < 0) || sketch.precision() != self.precision {
                return Err(Error::corruption(
                    file,
                    format!("bad distinct state of {name:?} in row {i}"),
                ));
            }
            groups.push(DistinctState::Sketch {
                sketch: Arc::new(sketch),
                exact: exact.map(|e| e as u64),
            });
        }
        Ok(Box::new(CountDistinct::with_groups(
            Layer::Speed,
            self.precision,
            groups,
        )))
    }

    fn fresh(&self) -> Box<dyn GroupsAccumulator> {
        Box::new(Self::new(self.layer, self.precision))
    }

    fn write_partial(&self, g: usize, out: &mut Vec<u8>) -> Result<()> {
        match &self.groups[g] {
            DistinctState::Empty => out.push(0),
            DistinctState::Exact(KeySet::Narrow(s)) => {
                let keys = s.distinct();
                out.push(1);
                out.extend_from_slice(&(keys.len() as u64).to_le_bytes());
                for k in keys.iter() {
                    out.extend_from_slice(&k.to_le_bytes());
                }
            }
            DistinctState::Exact(KeySet::Wide(s)) => {
                let keys = s.distinct();
                out.push(2);
                out.extend_from_slice(&(keys.len() as u64).to_le_bytes());
                for k in keys.iter() {
                    out.extend_from_slice(&k.to_le_bytes());
                }
            }
            DistinctState::Sketch { sketch, exact } => {
                out.push(3);
                match exact {
                    Some(e) => {
                        out.push(1);
                        out.extend_from_slice(&e.to_le_bytes());
                    }
                    None => out.push(0),
                }
                sketch.write_bytes(out);
            }
        }
        Ok(())
    }

    fn load_partial(&self, values: &BinaryArray, what: &str) -> Result<Box<dyn GroupsAccumulator>> {
        let precision = self.precision;
        let read = |r: &mut ByteReader<'_>| -> std::result::Result<DistinctState, BytesError> {
            Ok(match r.u8()? {
                0 => DistinctState::Empty,
                1 => {
                    let n = r.count(8)?;
                    let keys = (0..n)
                        .map(|_| r.u64())
                        .collect::<std::result::Result<_, _>>()?;
                    DistinctState::Exact(KeySet::Narrow(KeyVec::from_keys(keys)))
                }
                2 => {
                    let n = r.count(16)?;
                    let keys = (0..n)
                        .map(|_| r.u128())
                        .collect::<std::result::Result<_, _>>()?;
                    DistinctState::Exact(KeySet::Wide(KeyVec::from_keys(keys)))
                }
                3 => {
                    let exact = match r.u8()? {
                        0 => None,
                        1 => Some(r.u64()?),
                        _ => return Err(r.error("bad exact flag")),
                    };
                    let sketch = HllSketch::from_bytes(r.rest())
                        .map_err(|e| BytesError(format!("sketch: {e}")))?;
                    if sketch.precision() != precision {
                        return Err(BytesError(format!(
                            "sketch precision {} where the view has {precision}",
                            sketch.precision()
                        )));
                    }
                    DistinctState::Sketch {
                        sketch: Arc::new(sketch),
                        exact,
                    }
                }
                _ => return Err(r.error("bad tag")),
            })
        };
        let groups = read_partials(values, what, read)?;
        Ok(Box::new(CountDistinct::with_groups(
            self.layer, precision, groups,
        )))
    }

    fn into_served(self: Box<Self>) -> Result<Box<dyn GroupsAccumulator>> {
        use rayon::prelude::*;
        let precision = self.precision;
        let all = self.groups;
        let groups = crate::parallel::install(|| {
            all.into_par_iter()
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
                .collect::<Result<Vec<_>>>()
        })?;
        Ok(Box::new(CountDistinct::with_groups(
            Layer::Speed,
            precision,
            groups,
        )))
    }

    fn len(&self) -> usize {
        self.groups.len()
    }
    fn memory_bytes(&self) -> usize {
        self.groups.iter().map(|g| g.memory_bytes()).sum::<usize>() + self.runs.memory_bytes()
    }
}
