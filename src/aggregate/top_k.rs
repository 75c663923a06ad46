//! `top_k`: the `k` most frequent values of a string, integer or boolean column. Exact in the
//! batch layer (an unbounded count per value), a bounded frequent-items summary in the speed
//! layer ([`FrequentItems`], `capacity(k)` items) whose per-item bounds are guarantees.
//!
//! Served and persisted batch states keep the `capacity(k)` most frequent values with exact
//! counts (and, as the summary's `offset`, a bound on every other value's count), tagged exact:
//! a group only the batch layer saw lists its exact top `k`. A merge with speed data or other
//! groups adds counts item by item and is exact only if nothing was ever dropped; otherwise each
//! listed item carries its guaranteed `lower` and `upper` counts.
//!
//! Result columns for metric `top`: `top`, a list of `{value, count, lower, upper}` sorted by
//! count descending then value, and `top_exact`. Persisted: the same two columns plus the hidden
//! `__top__freq` (the serialized summary).
//!
//! Partial-state layout (v1), by the first byte: 0, no value; 1, a summary (one byte, 1 if it
//! is tagged exact, then every item in the summary's own codec: a batch-layer summary is never
//! reduced, so it holds every value with its exact count).

use std::path::Path;
use std::sync::Arc;

use crate::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, ListArray, RecordBatch, StringArray,
    StructArray, UInt64Array,
};
use crate::arrow::buffer::{OffsetBuffer, ScalarBuffer};
use crate::arrow::datatypes::{DataType, Field, Fields, UInt64Type};

use super::groups::{Aggregate, Groups};
use super::hybrid::Mode;
use super::runs::GroupRuns;
use super::sketch::frequent::{Counter, FreqKey, FrequentItems};
use super::{
    binary_column, need, state_column, ByteReader, GroupsAccumulator, SketchError, NO_GROUP,
};
use crate::error::{Error, Result};

/// Items a bounded summary keeps for a `top_k(k)` metric.
pub fn capacity(k: usize) -> usize {
    (8 * k).max(64)
}

/// A key type with its Arrow column codec.
pub trait TopKey: FreqKey + std::borrow::Borrow<Self::Row> {
    /// A value as a row of the input column holds it (`str` for strings).
    type Row: ?Sized + std::hash::Hash + Eq;
    fn data_type() -> DataType;
    fn array(values: &[&Self]) -> ArrayRef;
    /// Call `add(group, value)` for every valid row of `col` that has a group.
    fn fold(col: &ArrayRef, gids: &[u32], add: &mut dyn FnMut(usize, &Self::Row)) -> Result<()>;
    fn own(row: &Self::Row) -> Self;
}

fn valid_rows<'a>(
    col: &'a dyn Array,
    gids: &'a [u32],
) -> impl Iterator<Item = (usize, usize)> + 'a {
    let nulls = col.nulls().cloned();
    gids.iter().enumerate().filter_map(move |(row, &g)| {
        (g != NO_GROUP && nulls.as_ref().is_none_or(|n| n.is_valid(row)))
            .then_some((row, g as usize))
    })
}

impl TopKey for Arc<str> {
    type Row = str;
    fn data_type() -> DataType {
        DataType::Utf8
    }
    fn array(values: &[&Self]) -> ArrayRef {
        Arc::new(StringArray::from_iter_values(values.iter().map(|v| &***v)))
    }
    fn fold(col: &ArrayRef, gids: &[u32], add: &mut dyn FnMut(usize, &str)) -> Result<()> {
        let owned;
        let col = match col.data_type() {
            DataType::Utf8 => col,
            _ => {
                owned = crate::arrow::compute::cast(col, &DataType::Utf8)?;
                &owned
            }
        };
        let a = col.as_string::<i32>();
        for (row, g) in valid_rows(a, gids) {
            add(g, a.value(row));
        }
        Ok(())
    }
    fn own(row: &str) -> Self {
        Arc::from(row)
    }
}

impl TopKey for i64 {
    type Row = i64;
    fn data_type() -> DataType {
        DataType::Int64
    }
    fn array(values: &[&Self]) -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(values.iter().map(|v| **v)))
    }
    fn fold(col: &ArrayRef, gids: &[u32], add: &mut dyn FnMut(usize, &i64)) -> Result<()> {
        let a = super::int64_values(col)?;
        for (row, g) in valid_rows(&a, gids) {
            add(g, &a.value(row));
        }
        Ok(())
    }
    fn own(row: &i64) -> Self {
        *row
    }
}

impl TopKey for u64 {
    type Row = u64;
    fn data_type() -> DataType {
        DataType::UInt64
    }
    fn array(values: &[&Self]) -> ArrayRef {
        Arc::new(UInt64Array::from_iter_values(values.iter().map(|v| **v)))
    }
    fn fold(col: &ArrayRef, gids: &[u32], add: &mut dyn FnMut(usize, &u64)) -> Result<()> {
        let a = col
            .as_primitive_opt::<UInt64Type>()
            .ok_or_else(|| Error::schema(format!("expected uint64, found {}", col.data_type())))?;
        for (row, g) in valid_rows(a, gids) {
            add(g, &a.value(row));
        }
        Ok(())
    }
    fn own(row: &u64) -> Self {
        *row
    }
}

impl TopKey for bool {
    type Row = bool;
    fn data_type() -> DataType {
        DataType::Boolean
    }
    fn array(values: &[&Self]) -> ArrayRef {
        Arc::new(BooleanArray::from_iter(values.iter().map(|v| Some(**v))))
    }
    fn fold(col: &ArrayRef, gids: &[u32], add: &mut dyn FnMut(usize, &bool)) -> Result<()> {
        let a = col
            .as_boolean_opt()
            .ok_or_else(|| Error::schema(format!("expected boolean, found {}", col.data_type())))?;
        for (row, g) in valid_rows(a, gids) {
            add(g, &a.value(row));
        }
        Ok(())
    }
    fn own(row: &bool) -> Self {
        *row
    }
}

/// One group's state. `exact` tags a (possibly truncated) summary of one exact batch group:
/// its top `k` are exact even where other values were dropped.
#[derive(Debug, Clone, Default)]
pub enum TopState<K: FreqKey> {
    #[default]
    Empty,
    Summary {
        items: Arc<FrequentItems<K>>,
        exact: bool,
    },
}

impl<K: FreqKey> TopState<K> {
    fn is_nothing(&self) -> bool {
        match self {
            TopState::Empty => true,
            TopState::Summary { items, .. } => items.is_empty(),
        }
    }
}

/// `top_k` of one column: unbounded counts or bounded summaries, by mode.
#[derive(Debug, Clone)]
pub struct TopK<K: TopKey> {
    k: usize,
    mode: Mode,
    _key: std::marker::PhantomData<K>,
}

pub fn new_top_k(input: Option<&DataType>, mode: Mode, k: usize) -> Box<dyn GroupsAccumulator> {
    fn boxed<K: TopKey>(mode: Mode, k: usize) -> Box<dyn GroupsAccumulator> {
        Box::new(Groups::new(TopK::<K>::new(mode, k)))
    }
    match input {
        Some(DataType::UInt64) => boxed::<u64>(mode, k),
        Some(DataType::Boolean) => boxed::<bool>(mode, k),
        Some(
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _),
        ) => boxed::<Arc<str>>(mode, k),
        _ => boxed::<i64>(mode, k),
    }
}

impl<K: TopKey> TopK<K> {
    pub fn new(mode: Mode, k: usize) -> Self {
        TopK {
            k,
            mode,
            _key: std::marker::PhantomData,
        }
    }

    fn cap(&self) -> usize {
        capacity(self.k)
    }

    /// The bound a summary is kept within (speed layer only).
    fn bound(&self) -> Option<usize> {
        (self.mode == Mode::Sketch).then(|| self.cap())
    }

    /// The summary to persist for a group: at most `cap` items.
    fn bounded<'a>(&self, st: &'a TopState<K>) -> (std::borrow::Cow<'a, FrequentItems<K>>, bool) {
        match st {
            TopState::Empty => (std::borrow::Cow::Owned(FrequentItems::default()), true),
            TopState::Summary { items, exact } => {
                let exact = *exact || items.is_exact();
                if items.len() <= self.cap() {
                    (std::borrow::Cow::Borrowed(items.as_ref()), exact)
                } else {
                    let mut s = items.as_ref().clone();
                    s.reduce(self.cap());
                    (std::borrow::Cow::Owned(s), exact)
                }
            }
        }
    }

    /// The list column and the exact column for the groups in `order`.
    fn columns(
        &self,
        name: &str,
        slots: &[TopState<K>],
        order: &[u32],
    ) -> Result<Vec<(String, ArrayRef)>> {
        let mut offsets: Vec<i32> = Vec::with_capacity(order.len() + 1);
        offsets.push(0);
        let mut values: Vec<&K> = Vec::new();
        let (mut counts, mut lowers, mut uppers) = (Vec::new(), Vec::new(), Vec::new());
        let mut exacts = Vec::with_capacity(order.len());
        for &g in order {
            let (top, exact): (Vec<(&K, Counter)>, bool) = match &slots[g as usize] {
                TopState::Empty => (Vec::new(), true),
                TopState::Summary { items, exact } => {
                    (items.top(self.k), *exact || items.is_exact())
                }
            };
            for (v, c) in top {
                values.push(v);
                let (count, lo, hi) = if exact {
                    (c.lower, c.lower, c.lower)
                } else {
                    (c.estimate(), c.lower, c.upper())
                };
                counts.push(count as i64);
                lowers.push(lo as i64);
                uppers.push(hi.min(i64::MAX as u64) as i64);
            }
            exacts.push(Some(exact));
            let end = i32::try_from(values.len())
                .map_err(|_| Error::invalid("a top_k result exceeds 2^31 entries"))?;
            offsets.push(end);
        }
        let fields = Fields::from(vec![
            Field::new("value", K::data_type(), true),
            Field::new("count", DataType::Int64, false),
            Field::new("lower", DataType::Int64, false),
            Field::new("upper", DataType::Int64, false),
        ]);
        let entries = StructArray::try_new(
            fields.clone(),
            vec![
                K::array(&values),
                Arc::new(Int64Array::from(counts)),
                Arc::new(Int64Array::from(lowers)),
                Arc::new(Int64Array::from(uppers)),
            ],
            None,
        )?;
        let list = ListArray::try_new(
            Arc::new(Field::new("item", DataType::Struct(fields), true)),
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            Arc::new(entries),
            None,
        )?;
        Ok(vec![
            (name.to_string(), Arc::new(list) as ArrayRef),
            (
                format!("{name}_exact"),
                Arc::new(BooleanArray::from(exacts)) as ArrayRef,
            ),
        ])
    }
}

impl<K: TopKey> Aggregate for TopK<K> {
    type Slot = TopState<K>;
    const MERGE_ORDER_MATTERS: bool = true;

    fn update(
        &self,
        slots: &mut [TopState<K>],
        gids: &[u32],
        input: Option<&ArrayRef>,
        _: &mut GroupRuns,
    ) -> Result<()> {
        let bound = self.bound();
        K::fold(need(input)?, gids, &mut |g, row| {
            let st = &mut slots[g];
            if let TopState::Empty = st {
                *st = TopState::Summary {
                    items: Arc::new(FrequentItems::default()),
                    exact: false,
                };
            }
            if let TopState::Summary { items, exact } = st {
                let s = Arc::make_mut(items);
                s.add(row, K::own);
                *exact = false;
                if let Some(cap) = bound {
                    if s.len() > 2 * cap {
                        s.reduce(cap);
                    }
                }
            }
        })
    }

    fn merge(&self, dst: &mut TopState<K>, src: &TopState<K>) -> Result<()> {
        if src.is_nothing() {
            return Ok(());
        }
        if dst.is_nothing() {
            *dst = src.clone();
            return Ok(());
        }
        if let (TopState::Summary { items, exact }, TopState::Summary { items: b, .. }) = (dst, src)
        {
            let a = Arc::make_mut(items);
            a.merge(b);
            *exact = false;
            if let Some(cap) = self.bound() {
                if a.len() > 2 * cap {
                    a.reduce(cap);
                }
            }
        }
        Ok(())
    }

    fn evaluate(
        &self,
        name: &str,
        slots: &[TopState<K>],
        order: &[u32],
    ) -> Result<Vec<(String, ArrayRef)>> {
        self.columns(name, slots, order)
    }

    fn state(
        &self,
        name: &str,
        slots: &[TopState<K>],
        order: &[u32],
    ) -> Result<Vec<(String, ArrayRef)>> {
        let mut cols = self.columns(name, slots, order)?;
        let summaries = binary_column(order.len(), |i, out| {
            self.bounded(&slots[order[i] as usize]).0.write_bytes(out);
            Ok(())
        })?;
        cols.push((format!("__{name}__freq"), summaries));
        Ok(cols)
    }

    fn load_state(
        &self,
        name: &str,
        batch: &RecordBatch,
        file: &Path,
    ) -> Result<(Self, Vec<TopState<K>>)> {
        let what = format!("__{name}__freq");
        let bin = super::binary_state_column(batch, &what, file)?;
        let ex = state_column(batch, &format!("{name}_exact"), file)?;
        let ex = ex
            .as_boolean_opt()
            .ok_or_else(|| Error::corruption(file, format!("{name}_exact: not boolean")))?;
        let mut slots = Vec::with_capacity(bin.len());
        for i in 0..bin.len() {
            let items = FrequentItems::<K>::from_bytes(bin.value(i))
                .map_err(|e| Error::corruption(file, format!("summary of {name:?}: {e}")))?;
            let exact = ex.is_valid(i) && ex.value(i);
            slots.push(if items.is_empty() {
                TopState::Empty
            } else {
                TopState::Summary {
                    items: Arc::new(items),
                    exact,
                }
            });
        }
        Ok((Self::new(Mode::Sketch, self.k), slots))
    }

    fn write_slot(&self, st: &TopState<K>, out: &mut Vec<u8>) {
        match st {
            TopState::Empty => out.push(0),
            TopState::Summary { items, exact } => {
                out.push(1);
                out.push(u8::from(*exact));
                items.write_bytes(out);
            }
        }
    }

    fn read_slot(&self, r: &mut ByteReader<'_>) -> std::result::Result<TopState<K>, SketchError> {
        Ok(match r.u8()? {
            0 => TopState::Empty,
            1 => {
                let exact = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(r.error("bad exact flag")),
                };
                TopState::Summary {
                    items: Arc::new(FrequentItems::<K>::from_bytes(r.rest())?),
                    exact,
                }
            }
            _ => return Err(r.error("bad tag")),
        })
    }

    fn serve(&self, slots: Vec<TopState<K>>) -> Result<(Self, Vec<TopState<K>>)> {
        let cap = self.cap();
        let slots = slots
            .into_iter()
            .map(|st| match st {
                TopState::Summary { mut items, .. } => {
                    let exact = items.is_exact();
                    if items.len() > cap {
                        Arc::make_mut(&mut items).reduce(cap);
                    }
                    TopState::Summary { items, exact }
                }
                other => other,
            })
            .collect();
        Ok((Self::new(Mode::Sketch, self.k), slots))
    }

    fn heap_bytes(&self, slots: &[TopState<K>]) -> usize {
        slots
            .iter()
            .map(|g| match g {
                TopState::Empty => 0,
                TopState::Summary { items, .. } => items.memory_bytes(),
            })
            .sum()
    }
}

/// Summarize `values` as the speed layer does, in `parts` contiguous pieces merged at the end
/// (for tests and benchmarks): the evaluated `top` and `top_exact` columns of the one group, and
/// the serialized bytes of its summary.
pub fn sketch_array(
    values: &ArrayRef,
    k: usize,
    parts: usize,
) -> Result<(Vec<(String, ArrayRef)>, usize)> {
    let mut all = new_top_k(Some(values.data_type()), Mode::Sketch, k);
    let parts = parts.max(1);
    let chunk = values.len().div_ceil(parts).max(1);
    let mut start = 0;
    while start < values.len() {
        let len = chunk.min(values.len() - start);
        let mut piece = all.fresh();
        piece.update(&vec![0u32; len], Some(&values.slice(start, len)), 1)?;
        all.merge(piece.as_ref(), &[(0, 0)], 1)?;
        start += len;
    }
    if all.is_empty() {
        all.update(&[], Some(&values.slice(0, 0)), 1)?;
    }
    let state = all.state("top", &[0])?;
    let bytes = state
        .iter()
        .find(|(n, _)| n == "__top__freq")
        .and_then(|(_, a)| a.as_binary_opt::<i32>().map(|b| b.value(0).len()))
        .unwrap_or(0);
    Ok((all.evaluate("top", &[0])?, bytes))
}
