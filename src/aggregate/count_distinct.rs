//! `count_distinct`: exact in the batch layer (the set of keys of each group), a HyperLogLog
//! sketch in the speed layer. Served and persisted batch states are sketches tagged with their
//! exact count, so a group that only the batch layer saw stays exact, and any merge with speed
//! data goes through the sketch and is marked approximate with its bounds.
//!
//! The exact-then-sketch rules are `hybrid`'s; this file gives the key sets, the sketch and the
//! answer.
//!
//! Partial-state layout (v1), by the first byte: 0, no key; 1, exact 64-bit keys (u64 count,
//! then the sorted distinct keys, u64 each); 2, exact 128-bit keys (u64 count, then u128 each);
//! 3, a sketch (one byte, 1 if an exact count follows as u64, then the sketch's own codec).

use crate::aggregate::sketch::codec::ByteWriter;
use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use crate::arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch};

use super::groups::Aggregate;
use super::hybrid::{serve_all, Hybrid, HybridKind, Mode};
use super::input::{distinct_keys, int64_values, Keys};
use super::runs::GroupRuns;
use super::sketch::{key_hash, HllSketch};
use super::{binary_column, need, state_column, ByteReader, SketchError, NO_GROUP};
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
        match self {
            KeySet::Narrow(s) => s.keys.is_empty(),
            KeySet::Wide(s) => s.keys.is_empty(),
        }
    }
    fn normalize(&mut self) {
        match self {
            KeySet::Narrow(s) => s.normalize(),
            KeySet::Wide(s) => s.normalize(),
        }
    }
    fn heap_bytes(&self) -> usize {
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
    /// Add one key (128-bit keys widen the set).
    #[inline]
    fn push(&mut self, key: u128, narrow: bool) {
        match self {
            KeySet::Narrow(set) if narrow => set.push(key as u64),
            KeySet::Wide(set) => set.push(key),
            KeySet::Narrow(_) => {
                let mut wide = KeySet::new(false);
                wide.union(self);
                wide.push(key, false);
                *self = wide;
            }
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            KeySet::Narrow(s) => {
                let keys = s.distinct();
                out.push(1);
                out.put(keys.len() as u64);
                for k in keys.iter() {
                    out.put(k);
                }
            }
            KeySet::Wide(s) => {
                let keys = s.distinct();
                out.push(2);
                out.put(keys.len() as u64);
                for k in keys.iter() {
                    out.put(k);
                }
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
        s.map_err(Error::from)
    }
}

/// The distinct-count state of one group.
pub type DistinctState = Hybrid<Distinct>;

/// The distinct-count kind of [`Hybrid`]: key sets, HyperLogLog sketches of `precision`, and
/// the exact count as a served sketch's tag.
#[derive(Debug, Clone)]
pub struct Distinct {
    precision: u8,
}

impl HybridKind for Distinct {
    type Exact = KeySet;
    type Sketch = HllSketch;
    type Tag = u64;
    const SKETCH_TAG: u8 = 3;

    fn exact_is_empty(e: &KeySet) -> bool {
        e.is_empty()
    }
    /// A persisted group without keys is an empty sketch tagged exact 0.
    fn sketch_is_empty(_: &HllSketch, tag: Option<&u64>) -> bool {
        tag == Some(&0)
    }
    fn union(&self, a: &mut KeySet, b: &KeySet) {
        a.union(b)
    }
    fn sketch_of(&self, e: Option<&KeySet>) -> Result<HllSketch> {
        match e {
            Some(set) => set.sketch(self.precision),
            None => HllSketch::new(self.precision).map_err(Error::from),
        }
    }
    fn merge_sketch(&self, a: &mut HllSketch, b: &HllSketch) -> Result<()> {
        a.merge(b).map_err(Error::from)
    }
    fn serve(&self, mut set: KeySet) -> Result<(HllSketch, u64)> {
        set.normalize();
        Ok((set.sketch(self.precision)?, set.len() as u64))
    }
    fn exact_bytes(e: &KeySet) -> usize {
        e.heap_bytes()
    }
    fn sketch_bytes(s: &HllSketch, _: Option<&u64>) -> usize {
        s.memory_bytes()
    }
    fn write_exact(e: &KeySet, out: &mut Vec<u8>) {
        e.write(out)
    }
    fn read_exact(
        &self,
        tag: u8,
        r: &mut ByteReader<'_>,
    ) -> Option<std::result::Result<KeySet, SketchError>> {
        let read = |r: &mut ByteReader<'_>| -> std::result::Result<KeySet, SketchError> {
            Ok(if tag == 1 {
                let n = r.count(8)?;
                let keys = (0..n)
                    .map(|_| r.u64())
                    .collect::<std::result::Result<_, _>>()?;
                KeySet::Narrow(KeyVec::from_keys(keys))
            } else {
                let n = r.count(16)?;
                let keys = (0..n)
                    .map(|_| r.u128())
                    .collect::<std::result::Result<_, _>>()?;
                KeySet::Wide(KeyVec::from_keys(keys))
            })
        };
        matches!(tag, 1 | 2).then(|| read(r))
    }
    fn write_tag(t: &u64, out: &mut Vec<u8>) {
        out.put(t);
    }
    fn read_tag(r: &mut ByteReader<'_>) -> std::result::Result<u64, SketchError> {
        r.u64()
    }
    fn write_sketch(s: &HllSketch, out: &mut Vec<u8>) {
        s.write_bytes(out)
    }
    fn read_sketch(&self, bytes: &[u8]) -> std::result::Result<HllSketch, SketchError> {
        let sketch =
            HllSketch::from_bytes(bytes).map_err(|e| SketchError(format!("sketch: {e}")))?;
        if sketch.precision() != self.precision {
            return Err(SketchError(format!(
                "sketch precision {} where the view has {}",
                sketch.precision(),
                self.precision
            )));
        }
        Ok(sketch)
    }
}

/// (value, exact, lower, upper) of one group.
fn value(st: &DistinctState) -> (Option<i64>, bool, Option<i64>, Option<i64>) {
    match st {
        Hybrid::Empty => (Some(0), true, Some(0), Some(0)),
        Hybrid::Exact(set) => {
            let n = set.len() as i64;
            (Some(n), true, Some(n), Some(n))
        }
        Hybrid::Sketch { exact: Some(n), .. } => {
            let n = *n as i64;
            (Some(n), true, Some(n), Some(n))
        }
        Hybrid::Sketch {
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

/// `count_distinct` of one column: exact key sets or sketches, by mode.
#[derive(Debug, Clone)]
pub struct CountDistinct {
    kind: Distinct,
    mode: Mode,
}

impl CountDistinct {
    pub fn new(mode: Mode, precision: u8) -> Self {
        CountDistinct {
            kind: Distinct { precision },
            mode,
        }
    }

    /// The speed layer's update: each group's run of hashes goes into its sketch at once (one
    /// state check and one copy-on-write check per group and batch, not per row).
    fn update_sketches(
        &self,
        slots: &mut [DistinctState],
        gids: &[u32],
        hashes: &[u64],
        runs: &mut GroupRuns,
        valid: impl Fn(usize) -> bool,
    ) -> Result<()> {
        runs.build(gids, slots.len(), valid);
        for (g, rows) in runs.runs() {
            let sketch = slots[g].sketch_mut(&self.kind)?;
            sketch.insert_hashes(rows.iter().map(|&r| hashes[r as usize]));
        }
        Ok(())
    }
}

/// The batch layer's fold of one key into its group's exact set.
#[inline]
fn insert_exact(st: &mut DistinctState, kind: &Distinct, key: u128, narrow: bool) -> Result<()> {
    match st {
        Hybrid::Exact(set) => set.push(key, narrow),
        Hybrid::Empty => {
            let mut set = KeySet::new(narrow);
            set.push(key, narrow);
            *st = Hybrid::Exact(set);
        }
        Hybrid::Sketch { .. } => st.sketch_mut(kind)?.insert_hash(key_hash(key)),
    }
    Ok(())
}

impl Aggregate for CountDistinct {
    type Slot = DistinctState;

    fn update(
        &self,
        slots: &mut [DistinctState],
        gids: &[u32],
        input: Option<&ArrayRef>,
        runs: &mut GroupRuns,
    ) -> Result<()> {
        let c = need(input)?;
        let nulls = c.nulls().cloned();
        let valid = |row: usize| nulls.as_ref().is_none_or(|n| n.is_valid(row));
        if self.mode == Mode::Sketch {
            let hashes: Vec<u64> = match distinct_keys(c)? {
                Keys::Narrow(keys) => keys.iter().map(|&k| key_hash(k as u128)).collect(),
                Keys::Wide(keys) => keys.iter().map(|&k| key_hash(k)).collect(),
            };
            return self.update_sketches(slots, gids, &hashes, runs, valid);
        }
        match distinct_keys(c)? {
            Keys::Narrow(keys) => {
                for (row, &g) in gids.iter().enumerate() {
                    if g != NO_GROUP && valid(row) {
                        insert_exact(&mut slots[g as usize], &self.kind, keys[row] as u128, true)?;
                    }
                }
            }
            Keys::Wide(keys) => {
                for (row, &g) in gids.iter().enumerate() {
                    if g != NO_GROUP && valid(row) {
                        insert_exact(&mut slots[g as usize], &self.kind, keys[row], false)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn settle(&self, slots: &mut [DistinctState]) {
        for st in slots {
            if let Hybrid::Sketch { sketch, .. } = st {
                if !sketch.is_settled() {
                    Arc::make_mut(sketch).settle();
                }
            }
        }
    }

    fn merge(&self, dst: &mut DistinctState, src: &DistinctState) -> Result<()> {
        dst.merge(src, &self.kind)
    }

    fn evaluate(
        &self,
        name: &str,
        slots: &[DistinctState],
        order: &[u32],
    ) -> Result<Vec<(String, ArrayRef)>> {
        let mut value_col = Vec::with_capacity(order.len());
        let mut exact = Vec::with_capacity(order.len());
        let mut lower = Vec::with_capacity(order.len());
        let mut upper = Vec::with_capacity(order.len());
        for &g in order {
            let (v, e, lo, hi) = value(&slots[g as usize]);
            value_col.push(v);
            exact.push(e);
            lower.push(lo);
            upper.push(hi);
        }
        Ok(vec![
            (
                name.to_string(),
                Arc::new(Int64Array::from(value_col)) as ArrayRef,
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

    fn state(
        &self,
        name: &str,
        slots: &[DistinctState],
        order: &[u32],
    ) -> Result<Vec<(String, ArrayRef)>> {
        let mut values = Vec::with_capacity(order.len());
        let sketches = binary_column(order.len(), |i, out| {
            // Null where the state is a plain sketch: only exact counts are tagged as such.
            let st = &slots[order[i] as usize];
            st.sketch_ref(&self.kind)?.write_bytes(out);
            let exact = match st {
                Hybrid::Sketch { exact, .. } => *exact,
                // Empty and exact states are exact: their count is the tag.
                other => value(other).0.map(|n| n as u64),
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
    ) -> Result<(Self, Vec<DistinctState>)> {
        let vals = int64_values(&state_column(batch, name, file)?)
            .map_err(|_| Error::corruption(file, format!("{name:?}: not integers")))?;
        let what = format!("__{name}__sketch");
        let sk = super::binary_state_column(batch, &what, file)?;
        let precision = self.kind.precision;
        let mut slots = Vec::with_capacity(sk.len());
        for i in 0..sk.len() {
            let sketch = HllSketch::from_bytes(sk.value(i))
                .map_err(|e| Error::corruption(file, format!("sketch of {name:?}: {e}")))?;
            let exact = (!vals.is_null(i)).then(|| vals.value(i));
            if exact.is_some_and(|e| e < 0) || sketch.precision() != precision {
                return Err(Error::corruption(
                    file,
                    format!("bad distinct state of {name:?} in row {i}"),
                ));
            }
            slots.push(Hybrid::Sketch {
                sketch: Arc::new(sketch),
                exact: exact.map(|e| e as u64),
            });
        }
        Ok((Self::new(Mode::Sketch, precision), slots))
    }

    fn write_slot(&self, st: &DistinctState, out: &mut Vec<u8>) {
        st.write(out)
    }

    fn read_slot(&self, r: &mut ByteReader<'_>) -> std::result::Result<DistinctState, SketchError> {
        Hybrid::read(&self.kind, r)
    }

    fn serve(&self, slots: Vec<DistinctState>) -> Result<(Self, Vec<DistinctState>)> {
        Ok((
            Self::new(Mode::Sketch, self.kind.precision),
            serve_all(&self.kind, slots)?,
        ))
    }

    fn heap_bytes(&self, slots: &[DistinctState]) -> usize {
        slots.iter().map(|s| s.heap_bytes()).sum()
    }
}
