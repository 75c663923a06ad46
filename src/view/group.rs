//! Group keys: (time bucket, dimension values) mapped to dense group ids.
//!
//! A key is a fixed-width row of u64 words: `[bucket, null-mask, dim0, dim1, ...]`. Strings are
//! interned per table, so a key never owns a string and comparing keys is comparing words. Tables
//! built by different threads (or layers) are merged by translating interned ids, once per distinct
//! string rather than once per row.

use std::sync::Arc;

use crate::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, StringArray, TimestampMicrosecondArray,
};
use crate::arrow::datatypes::{DataType, Int32Type, Int64Type};
use hashbrown::{HashMap, HashTable};

use crate::aggregate::int64_values;
use crate::error::{Error, Result};
use crate::master::schema::ColumnClass;
use crate::view::grain::Grain;

/// The kind of a dimension column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DimKind {
    Str,
    Int,
    /// uint64: stored as the same 64-bit words, compared and returned unsigned.
    UInt,
    Bool,
    /// date32: days since 1970-01-01, stored as an int64 word.
    Date,
}

impl DimKind {
    pub fn from_class(c: ColumnClass) -> Result<DimKind> {
        match c {
            ColumnClass::Str => Ok(DimKind::Str),
            ColumnClass::Int => Ok(DimKind::Int),
            ColumnClass::Bool => Ok(DimKind::Bool),
            ColumnClass::Date => Ok(DimKind::Date),
            other => Err(Error::schema(format!(
                "{other:?} columns cannot be dimensions"
            ))),
        }
    }
}

/// Strings seen by one table, each stored once.
#[derive(Debug, Default, Clone)]
pub struct Interner {
    ids: HashMap<Arc<str>, u32>,
    strings: Vec<Arc<str>>,
}

impl Interner {
    #[inline]
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.strings.len() as u32;
        let owned: Arc<str> = Arc::from(s);
        self.strings.push(owned.clone());
        self.ids.insert(owned, id);
        id
    }
    pub fn get(&self, id: u32) -> &str {
        self.strings
            .get(id as usize)
            .map(|s| s.as_ref())
            .unwrap_or("")
    }
    pub fn len(&self) -> usize {
        self.strings.len()
    }
    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
    fn memory_bytes(&self) -> usize {
        self.strings.iter().map(|s| s.len() + 16).sum::<usize>() + self.ids.capacity() * 24
    }
}

#[inline]
fn hash_words(words: &[u64]) -> u64 {
    let mut h: u64 = 0x243F_6A88_85A3_08D3;
    for &w in words {
        h = (h ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 29;
    }
    h
}

/// A dimension value decoded from a key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DimValue<'a> {
    Null,
    Str(&'a str),
    Int(i64),
    UInt(u64),
    Bool(bool),
    /// Days since 1970-01-01.
    Date(i64),
}

/// Dense ids for distinct (bucket, dims) keys.
#[derive(Debug, Clone)]
pub struct GroupKeys {
    pub dims: Vec<DimKind>,
    width: usize,
    words: Vec<u64>,
    hashes: Vec<u64>,
    index: HashTable<u32>,
    pub interners: Vec<Interner>,
}

/// Marks a row that belongs to no group (null event time).
pub use crate::aggregate::NO_GROUP;

impl GroupKeys {
    pub fn new(dims: Vec<DimKind>) -> Self {
        let width = 2 + dims.len();
        let interners = vec![Interner::default(); dims.len()];
        GroupKeys {
            dims,
            width,
            words: Vec::new(),
            hashes: Vec::new(),
            index: HashTable::new(),
            interners,
        }
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    #[inline]
    pub fn key(&self, g: u32) -> &[u64] {
        let s = g as usize * self.width;
        &self.words[s..s + self.width]
    }

    pub fn bucket(&self, g: u32) -> i64 {
        self.key(g)[0] as i64
    }

    pub fn dim(&self, g: u32, d: usize) -> DimValue<'_> {
        let k = self.key(g);
        if k[1] & (1 << d) != 0 {
            return DimValue::Null;
        }
        let w = k[2 + d];
        match self.dims[d] {
            DimKind::Str => DimValue::Str(self.interners[d].get(w as u32)),
            DimKind::Int => DimValue::Int(w as i64),
            DimKind::UInt => DimValue::UInt(w),
            DimKind::Bool => DimValue::Bool(w != 0),
            DimKind::Date => DimValue::Date(w as i64),
        }
    }

    /// The id of `key`, inserting it if new.
    #[inline]
    pub fn find_or_insert(&mut self, key: &[u64]) -> u32 {
        self.find_or_insert_hashed(key, hash_words(key))
    }

    /// `find_or_insert` for a key whose hash the caller already has (see `translate_into`).
    #[inline]
    pub fn find_or_insert_hashed(&mut self, key: &[u64], h: u64) -> u32 {
        debug_assert_eq!(h, hash_words(key));
        let words = &self.words;
        let width = self.width;
        let eq = |&g: &u32| {
            let s = g as usize * width;
            words[s..s + width].iter().zip(key).all(|(a, b)| a == b)
        };
        if let Some(&g) = self.index.find(h, eq) {
            return g;
        }
        let g = self.hashes.len() as u32;
        self.words.extend_from_slice(key);
        self.hashes.push(h);
        let hashes = &self.hashes;
        self.index.insert_unique(h, g, |&x| hashes[x as usize]);
        g
    }

    /// Group ids for each row of a batch: `buckets` are bucket starts (micros), `time_valid` says
    /// which rows have an event time, `dims` are the dimension columns in order.
    pub fn encode(
        &mut self,
        buckets: &[i64],
        time_valid: Option<&crate::arrow::buffer::NullBuffer>,
        dims: &[ArrayRef],
        step: i64,
    ) -> Result<Vec<u32>> {
        let n = buckets.len();
        let nd = self.dims.len();
        // Column-wise codes first (one pass per column), then one hash probe per row.
        let mut codes: Vec<Vec<u64>> = Vec::with_capacity(nd);
        let mut nullmask = vec![0u64; n];
        for (d, col) in dims.iter().enumerate() {
            codes.push(self.column_codes(d, col, &mut nullmask)?);
        }
        if let Some(out) = self.encode_direct(buckets, time_valid, &codes, &nullmask, step) {
            return Ok(out);
        }
        let mut out = Vec::with_capacity(n);
        let mut key = vec![0u64; self.width];
        for row in 0..n {
            if let Some(v) = time_valid {
                if v.is_null(row) {
                    out.push(NO_GROUP);
                    continue;
                }
            }
            key[0] = buckets[row] as u64;
            key[1] = nullmask[row];
            for d in 0..nd {
                key[2 + d] = codes[d][row];
            }
            out.push(self.find_or_insert(&key));
        }
        Ok(out)
    }

    fn column_codes(&mut self, d: usize, col: &ArrayRef, nullmask: &mut [u64]) -> Result<Vec<u64>> {
        let n = col.len();
        let bit = 1u64 << d;
        let mut out = vec![0u64; n];
        if let Some(nulls) = col.nulls() {
            for (row, m) in nullmask.iter_mut().enumerate() {
                if nulls.is_null(row) {
                    *m |= bit;
                }
            }
        }
        match (self.dims[d], col.data_type()) {
            (DimKind::Str, DataType::Utf8) => {
                let a = col.as_string::<i32>();
                let interner = &mut self.interners[d];
                for (row, o) in out.iter_mut().enumerate() {
                    if a.is_valid(row) {
                        *o = interner.intern(a.value(row)) as u64;
                    }
                }
            }
            (DimKind::Str, DataType::Dictionary(_, _)) => {
                let a = crate::arrow::compute::cast(
                    col,
                    &DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                )?;
                let dict = a.as_dictionary::<Int32Type>();
                let values = crate::arrow::compute::cast(dict.values(), &DataType::Utf8)?;
                let values = values.as_string::<i32>();
                let interner = &mut self.interners[d];
                let ids: Vec<u64> = (0..values.len())
                    .map(|i| {
                        if values.is_valid(i) {
                            interner.intern(values.value(i)) as u64
                        } else {
                            0
                        }
                    })
                    .collect();
                for (row, o) in out.iter_mut().enumerate() {
                    if dict.is_valid(row) {
                        let k = dict.keys().value(row) as usize;
                        *o = ids.get(k).copied().unwrap_or(0);
                        if !values.is_valid(k.min(values.len().saturating_sub(1))) {
                            nullmask[row] |= bit;
                        }
                    }
                }
            }
            (DimKind::Str, _) => {
                let a = crate::arrow::compute::cast(col, &DataType::Utf8)?;
                return self.column_codes(d, &a, nullmask);
            }
            (DimKind::Int | DimKind::UInt | DimKind::Date, _) => {
                // uint64 values keep their bit pattern: the words are the same, `dims` says how
                // to read them back.
                let a = int64_values(col)?;
                for (row, o) in out.iter_mut().enumerate() {
                    *o = a.value(row) as u64;
                }
            }
            (DimKind::Bool, DataType::Boolean) => {
                let a = col.as_boolean();
                for (row, o) in out.iter_mut().enumerate() {
                    *o = a.value(row) as u64;
                }
            }
            (DimKind::Bool, other) => {
                return Err(Error::schema(format!(
                    "dimension {d} is boolean in the view but {other} in the data"
                )))
            }
        }
        // Null slots must not keep garbage codes: a null key is only its mask bit.
        if let Some(nulls) = col.nulls() {
            for (row, o) in out.iter_mut().enumerate() {
                if nulls.is_null(row) {
                    *o = 0;
                }
            }
        }
        Ok(out)
    }

    /// Translate group `g` of `other` into a key of this table, keeping the dimensions `keep`
    /// (indices into `other.dims`, in this table's order) and coarsening the bucket to `grain`.
    pub fn translate_into(
        &self,
        other: &GroupKeys,
        g: u32,
        keep: &[usize],
        grain: Option<Grain>,
        tr: &mut Translator,
        key: &mut Vec<u64>,
    ) -> u64 {
        let k = other.key(g);
        key.clear();
        let bucket = k[0] as i64;
        key.push(match grain {
            Some(gr) => gr.floor_micros(bucket) as u64,
            None => bucket as u64,
        });
        key.push(0);
        let mut mask = 0u64;
        for (i, &d) in keep.iter().enumerate() {
            if k[1] & (1 << d) != 0 {
                mask |= 1 << i;
                key.push(0);
                continue;
            }
            let w = k[2 + d];
            key.push(match other.dims[d] {
                DimKind::Str => tr.map(i, w as u32) as u64,
                _ => w,
            });
        }
        key[1] = mask;
        hash_words(key)
    }

    /// Prepare string translation from `other` (dims `keep`) to this table.
    pub fn translator(&mut self, other: &GroupKeys, keep: &[usize]) -> Translator {
        let mut maps = Vec::with_capacity(keep.len());
        for (i, &d) in keep.iter().enumerate() {
            if other.dims[d] == DimKind::Str {
                let src = &other.interners[d];
                let dst = &mut self.interners[i];
                maps.push(
                    (0..src.len())
                        .map(|id| dst.intern(src.get(id as u32)))
                        .collect(),
                );
            } else {
                maps.push(Vec::new());
            }
        }
        Translator { maps }
    }

    /// The order of groups by bucket, then each dimension (nulls last, strings by UTF-8 bytes).
    ///
    /// Each group gets a row of order-preserving words first (strings become their rank among
    /// the table's strings, ranked once), so the sort compares integers, never strings.
    pub fn sorted_order(&self) -> Vec<u32> {
        let ranks = self.string_ranks();
        self.sorted_order_packed(&ranks)
            .unwrap_or_else(|| self.sorted_order_rows(&ranks))
    }

    /// The string ranks of `sorted_order`: per string dimension, each interned id's position
    /// among the dimension's strings in byte order (empty for other dimensions).
    fn string_ranks(&self) -> Vec<Vec<u64>> {
        let nd = self.dims.len();
        (0..nd)
            .map(|d| match self.dims[d] {
                DimKind::Str => {
                    let strings = &self.interners[d].strings;
                    let mut ids: Vec<u32> = (0..strings.len() as u32).collect();
                    ids.sort_unstable_by(|&a, &b| {
                        strings[a as usize]
                            .as_bytes()
                            .cmp(strings[b as usize].as_bytes())
                    });
                    let mut rank = vec![0u64; strings.len()];
                    for (r, &id) in ids.iter().enumerate() {
                        rank[id as usize] = r as u64;
                    }
                    rank
                }
                _ => Vec::new(),
            })
            .collect()
    }

    /// Dimension `d` of the non-null key `k` as a word whose unsigned order is the value's order
    /// (a string's rank, an integer with its sign bit flipped).
    #[inline]
    fn order_word(&self, ranks: &[Vec<u64>], d: usize, k: &[u64]) -> u64 {
        match self.dims[d] {
            DimKind::Str => ranks[d].get(k[2 + d] as usize).copied().unwrap_or(0),
            DimKind::Int | DimKind::Date => k[2 + d] ^ (1 << 63),
            DimKind::UInt | DimKind::Bool => k[2 + d],
        }
    }

    /// `sorted_order` by comparing rows of normalized words (any key).
    fn sorted_order_rows(&self, ranks: &[Vec<u64>]) -> Vec<u32> {
        let nd = self.dims.len();
        let w = 1 + 2 * nd;
        let mut norm = vec![0u64; self.len() * w];
        for (g, row) in norm.chunks_exact_mut(w).enumerate() {
            let k = self.key(g as u32);
            row[0] = k[0] ^ (1 << 63);
            for d in 0..nd {
                let null = k[1] & (1 << d) != 0;
                row[1 + 2 * d] = null as u64;
                row[2 + 2 * d] = if null {
                    0
                } else {
                    self.order_word(ranks, d, k)
                };
            }
        }
        let mut order: Vec<u32> = (0..self.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| {
            let (a, b) = (a as usize * w, b as usize * w);
            norm[a..a + w].cmp(&norm[b..b + w])
        });
        order
    }

    /// `sorted_order` for keys whose dimensions pack into one word, in the same order: per
    /// dimension a code (the rank of a string, an integer's offset from the smallest; null
    /// after every value) in just the bits it needs, the first dimension most significant.
    /// Sorting (bucket, word) pairs is several times faster than comparing rows of words.
    /// None when the codes need more than 64 bits.
    fn sorted_order_packed(&self, ranks: &[Vec<u64>]) -> Option<Vec<u32>> {
        let n = self.len();
        let nd = self.dims.len();
        // Per dimension: the value to subtract, the code of null and the bits a code takes.
        let mut base = vec![0u64; nd];
        let mut null_code = vec![0u64; nd];
        let mut width = vec![0u32; nd];
        let mut bits = 0u32;
        for d in 0..nd {
            let (mut lo, mut hi) = (u64::MAX, 0u64);
            for g in 0..n as u32 {
                let k = self.key(g);
                if k[1] & (1 << d) == 0 {
                    let v = self.order_word(ranks, d, k);
                    lo = lo.min(v);
                    hi = hi.max(v);
                }
            }
            if lo > hi {
                lo = 0;
                hi = 0;
            }
            let span = hi - lo;
            if span >= u64::MAX / 2 {
                return None;
            }
            base[d] = lo;
            null_code[d] = span + 1;
            width[d] = 64 - (span + 1).leading_zeros();
            bits += width[d];
            if bits > 64 {
                return None;
            }
        }
        let mut rows: Vec<(u64, u64, u32)> = (0..n as u32)
            .map(|g| {
                let k = self.key(g);
                let mut word = 0u64;
                for d in 0..nd {
                    let code = if k[1] & (1 << d) != 0 {
                        null_code[d]
                    } else {
                        self.order_word(ranks, d, k) - base[d]
                    };
                    word = if width[d] == 64 {
                        code
                    } else {
                        (word << width[d]) | code
                    };
                }
                (k[0] ^ (1 << 63), word, g)
            })
            .collect();
        rows.sort_unstable();
        Some(rows.into_iter().map(|r| r.2).collect())
    }

    /// Dimension `d` (a string) of the groups in `order`: the distinct strings once, then one
    /// gather of their ids (no string lookup per group).
    fn string_column(&self, d: usize, order: &[u32]) -> ArrayRef {
        let strings = &self.interners[d].strings;
        let ids: crate::arrow::array::UInt32Array = order
            .iter()
            .map(|&g| {
                let k = self.key(g);
                (k[1] & (1 << d) == 0).then_some(k[2 + d] as u32)
            })
            .collect();
        let dict = StringArray::from_iter_values(strings.iter().map(|s| s.as_ref()));
        match crate::arrow::compute::take(&dict, &ids, None) {
            Ok(a) => a,
            // Ids always index the interner; should one not, fall back to looking each up.
            Err(_) => Arc::new(
                order
                    .iter()
                    .map(|&g| match self.dim(g, d) {
                        DimValue::Str(s) => Some(s),
                        _ => None,
                    })
                    .collect::<StringArray>(),
            ),
        }
    }

    /// Arrow columns of the keys, in `order`: the bucket column, then one column per dimension.
    pub fn to_arrays(&self, order: &[u32]) -> Vec<ArrayRef> {
        let mut out: Vec<ArrayRef> = Vec::with_capacity(1 + self.dims.len());
        let buckets: TimestampMicrosecondArray =
            order.iter().map(|&g| Some(self.bucket(g))).collect();
        out.push(Arc::new(buckets.with_timezone("UTC")));
        for d in 0..self.dims.len() {
            let arr: ArrayRef = match self.dims[d] {
                DimKind::Str => self.string_column(d, order),
                DimKind::Int => Arc::new(
                    order
                        .iter()
                        .map(|&g| match self.dim(g, d) {
                            DimValue::Int(v) => Some(v),
                            _ => None,
                        })
                        .collect::<Int64Array>(),
                ),
                DimKind::UInt => Arc::new(
                    order
                        .iter()
                        .map(|&g| match self.dim(g, d) {
                            DimValue::UInt(v) => Some(v),
                            _ => None,
                        })
                        .collect::<crate::arrow::array::UInt64Array>(),
                ),
                DimKind::Bool => Arc::new(
                    order
                        .iter()
                        .map(|&g| match self.dim(g, d) {
                            DimValue::Bool(v) => Some(v),
                            _ => None,
                        })
                        .collect::<BooleanArray>(),
                ),
                DimKind::Date => Arc::new(
                    order
                        .iter()
                        .map(|&g| match self.dim(g, d) {
                            DimValue::Date(v) => i32::try_from(v).ok(),
                            _ => None,
                        })
                        .collect::<crate::arrow::array::Date32Array>(),
                ),
            };
            out.push(arr);
        }
        out
    }

    /// Group ids for key columns read back from a persisted view (bucket micros + dims).
    pub fn encode_key_columns(&mut self, bucket: &ArrayRef, dims: &[ArrayRef]) -> Result<Vec<u32>> {
        let raw = crate::arrow::compute::cast(bucket, &DataType::Int64)?;
        let raw = raw.as_primitive::<Int64Type>();
        self.encode(raw.values(), raw.nulls(), dims, 1)
    }

    /// Perfect-hash grouping: when the batch's (bucket, dims) space is small (string and boolean
    /// dims have dense codes, buckets are `step` apart), map each row through a dense lookup
    /// table filled on first sight, probing the hash table once per distinct key instead of once
    /// per row. Returns None when the space is too large or a dimension is an integer.
    fn encode_direct(
        &mut self,
        buckets: &[i64],
        time_valid: Option<&crate::arrow::buffer::NullBuffer>,
        codes: &[Vec<u64>],
        nullmask: &[u64],
        step: i64,
    ) -> Option<Vec<u32>> {
        let n = buckets.len();
        if n < 256 || step <= 0 || time_valid.is_some_and(|v| v.null_count() > 0) {
            return None;
        }
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for &b in buckets {
            lo = lo.min(b);
            hi = hi.max(b);
        }
        let span = (hi.checked_sub(lo)? / step).checked_add(1)? as u64;
        let mut cards = Vec::with_capacity(self.dims.len());
        let mut total = span;
        for (d, kind) in self.dims.iter().enumerate() {
            // One extra slot per dimension for null.
            let card = match kind {
                DimKind::Str => self.interners[d].len() as u64 + 1,
                DimKind::Bool => 3,
                DimKind::Int | DimKind::UInt | DimKind::Date => return None,
            };
            cards.push(card);
            total = total.checked_mul(card)?;
        }
        if total > (4 * n as u64).max(1 << 16) || total > (1 << 22) {
            return None;
        }
        let mut lookup = vec![NO_GROUP; total as usize];
        let mut out = Vec::with_capacity(n);
        let mut key = vec![0u64; self.width];
        for row in 0..n {
            let b = buckets[row];
            let mut idx = ((b - lo) / step) as u64;
            let mask = nullmask[row];
            for (d, &card) in cards.iter().enumerate() {
                let c = if mask & (1 << d) != 0 {
                    card - 1
                } else {
                    codes[d][row]
                };
                idx = idx * card + c;
            }
            let slot = &mut lookup[idx as usize];
            if *slot == NO_GROUP {
                key[0] = b as u64;
                key[1] = mask;
                for d in 0..codes.len() {
                    key[2 + d] = codes[d][row];
                }
                *slot = self.find_or_insert(&key);
            }
            out.push(*slot);
        }
        Some(out)
    }

    pub fn memory_bytes(&self) -> usize {
        self.words.capacity() * 8
            + self.hashes.capacity() * 8
            + self.index.capacity() * 4
            + self
                .interners
                .iter()
                .map(|i| i.memory_bytes())
                .sum::<usize>()
    }
}

/// Maps interned string ids of one table to another's.
pub struct Translator {
    maps: Vec<Vec<u32>>,
}

impl Translator {
    #[inline]
    fn map(&self, i: usize, id: u32) -> u32 {
        self.maps
            .get(i)
            .and_then(|m| m.get(id as usize))
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arrow::array::UInt64Array;
    use std::cmp::Ordering;

    /// The order `sorted_order` must give, compared value by value.
    fn cmp_dim(a: DimValue<'_>, b: DimValue<'_>) -> Ordering {
        use DimValue::*;
        match (a, b) {
            (Null, Null) => Ordering::Equal,
            (Null, _) => Ordering::Greater,
            (_, Null) => Ordering::Less,
            (Str(x), Str(y)) => x.as_bytes().cmp(y.as_bytes()),
            (Int(x), Int(y)) => x.cmp(&y),
            (UInt(x), UInt(y)) => x.cmp(&y),
            (Bool(x), Bool(y)) => x.cmp(&y),
            (Date(x), Date(y)) => x.cmp(&y),
            _ => Ordering::Equal,
        }
    }

    #[test]
    fn sorted_order_equals_comparing_values() {
        // Integers spanning all of int64 take the row path; narrow ones (and every null) pack
        // into one word. Both must give the order of comparing the values.
        let wide = [i64::MIN, -1, 0, 7, i64::MAX];
        let narrow = [-5, -1, 0, 7, 1 << 40];
        for (ints_from, packs) in [(wide, false), (narrow, true)] {
            let mut keys = GroupKeys::new(vec![DimKind::Str, DimKind::Int, DimKind::Bool]);
            let mut x = 0x9E37_79B9_7F4A_7C15u64;
            let mut next = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let words = ["b", "", "é", "a", "ab", "Z", "日本"];
            let n = 3000;
            let mut buckets = Vec::new();
            let (mut strs, mut ints, mut bools) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..n {
                buckets
                    .push([-3_600_000_000i64, 0, 3_600_000_000, i64::MIN / 2][next() as usize % 4]);
                strs.push((next() % 8 != 0).then(|| words[next() as usize % words.len()]));
                ints.push((next() % 8 != 0).then(|| ints_from[next() as usize % 5]));
                bools.push((next() % 4 != 0).then(|| next() % 2 == 0));
            }
            let dims: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(strs)),
                Arc::new(Int64Array::from(ints)),
                Arc::new(BooleanArray::from(bools)),
            ];
            keys.encode(&buckets, None, &dims, 3_600_000_000).unwrap();
            assert!(keys.len() > 100);
            let ranks = keys.string_ranks();
            assert_eq!(keys.sorted_order_packed(&ranks).is_some(), packs);
            let got = keys.sorted_order();
            assert_eq!(got, keys.sorted_order_rows(&ranks));
            let mut want: Vec<u32> = (0..keys.len() as u32).collect();
            want.sort_by(|&a, &b| {
                (keys.bucket(a)).cmp(&keys.bucket(b)).then_with(|| {
                    (0..3)
                        .map(|d| cmp_dim(keys.dim(a, d), keys.dim(b, d)))
                        .find(|o| *o != Ordering::Equal)
                        .unwrap_or(Ordering::Equal)
                })
            });
            assert_eq!(got, want);
            // The string column gathers the same values the keys hold.
            let arrays = keys.to_arrays(&got);
            let strings = arrays[1].as_string::<i32>();
            for (i, &g) in got.iter().enumerate() {
                match keys.dim(g, 0) {
                    DimValue::Str(s) => assert_eq!(strings.value(i), s),
                    _ => assert!(strings.is_null(i)),
                }
            }
        }
    }

    #[test]
    fn uint64_dimensions_round_trip_and_sort_unsigned() {
        let mut keys = GroupKeys::new(vec![DimKind::UInt]);
        let dim: ArrayRef = Arc::new(UInt64Array::from(vec![
            Some(1u64 << 63),
            Some(1),
            None,
            Some(1),
        ]));
        let gids = keys.encode(&[0, 0, 0, 0], None, &[dim], 1).unwrap();
        assert_eq!(gids[1], gids[3]);
        assert_eq!(keys.len(), 3);
        let order = keys.sorted_order();
        let arrays = keys.to_arrays(&order);
        let d = arrays[1].as_any().downcast_ref::<UInt64Array>().unwrap();
        assert_eq!(
            d.iter().collect::<Vec<_>>(),
            vec![Some(1), Some(1u64 << 63), None]
        );
    }
}
