//! Frequent items with guaranteed count bounds: a Misra-Gries summary that keeps, per item, the
//! count it has seen and the most it may have missed.
//!
//! # Invariants
//!
//! * Every held item has a `lower` count (occurrences counted since it was last admitted, so
//!   never above its true count) and an `err` (the most occurrences it may have lost before
//!   that): `lower <= true count <= lower + err`. Both bounds are guarantees, not probabilities.
//! * `offset` bounds the true count of any item *not* held.
//! * An unbounded summary (the batch layer) never drops an item: `offset` and every `err` stay
//!   0, and counts are exact. A bounded summary ([`FrequentItems::reduce`]) keeps the `cap`
//!   items with the largest `lower` (ties: larger upper bound, then smaller value) and raises
//!   `offset` to the largest upper bound it dropped. Item admitted later start with
//!   `err = offset`.
//! * Merging adds counts and errors item by item; an item missing on one side takes that side's
//!   `offset` as error. Merges of exact summaries are exact (lossless); all merges keep the
//!   invariants above, in any order.
//!
//! # Serialized format (version 1, little endian)
//!
//! ```text
//! byte 0   magic 0xA9
//! byte 1   format version (1)
//! byte 2   key kind: 0 = utf-8 string, 1 = int64, 2 = uint64, 3 = bool
//! u64 n (values summarized), u64 offset, u32 item count
//! items, ascending by key: key (string: u32 length + bytes; int64/uint64: 8 bytes; bool: 1
//! byte), u64 lower, u64 err
//! ```

use super::codec::ByteWriter;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use super::codec::{ByteReader, SketchError};

const MAGIC: u8 = 0xA9;
const VERSION: u8 = 1;

/// A value a summary can count, with its codec.
pub trait FreqKey: Hash + Eq + Ord + Clone + Debug + Send + Sync + 'static {
    const KIND: u8;
    fn write(&self, out: &mut Vec<u8>);
    fn read(r: &mut ByteReader<'_>) -> Result<Self, SketchError>;
    fn heap_bytes(&self) -> usize {
        0
    }
}

impl FreqKey for Arc<str> {
    const KIND: u8 = 0;
    fn write(&self, out: &mut Vec<u8>) {
        out.put(self.len() as u32);
        out.extend_from_slice(self.as_bytes());
    }
    fn read(r: &mut ByteReader<'_>) -> Result<Self, SketchError> {
        let len = r.u32()? as usize;
        let bytes = r.take(len)?;
        let s = std::str::from_utf8(bytes).map_err(|_| r.error("a key is not utf-8"))?;
        Ok(Arc::from(s))
    }
    fn heap_bytes(&self) -> usize {
        self.len() + 16
    }
}

impl FreqKey for i64 {
    const KIND: u8 = 1;
    fn write(&self, out: &mut Vec<u8>) {
        out.put(*self);
    }
    fn read(r: &mut ByteReader<'_>) -> Result<Self, SketchError> {
        Ok(r.u64()? as i64)
    }
}

impl FreqKey for u64 {
    const KIND: u8 = 2;
    fn write(&self, out: &mut Vec<u8>) {
        out.put(*self);
    }
    fn read(r: &mut ByteReader<'_>) -> Result<Self, SketchError> {
        r.u64()
    }
}

impl FreqKey for bool {
    const KIND: u8 = 3;
    fn write(&self, out: &mut Vec<u8>) {
        out.push(*self as u8);
    }
    fn read(r: &mut ByteReader<'_>) -> Result<Self, SketchError> {
        match r.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(r.error("a boolean key is neither 0 nor 1")),
        }
    }
}

/// The count bounds of one item: `lower <= true count <= lower + err`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counter {
    pub lower: u64,
    pub err: u64,
}

impl Counter {
    pub fn upper(&self) -> u64 {
        self.lower.saturating_add(self.err)
    }
    /// The point estimate: the middle of the bounds.
    pub fn estimate(&self) -> u64 {
        self.lower.saturating_add(self.err / 2)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrequentItems<K: FreqKey> {
    items: HashMap<K, Counter>,
    offset: u64,
    n: u64,
}

impl<K: FreqKey> Default for FrequentItems<K> {
    fn default() -> Self {
        FrequentItems {
            items: HashMap::new(),
            offset: 0,
            n: 0,
        }
    }
}

impl<K: FreqKey> FrequentItems<K> {
    pub fn n(&self) -> u64 {
        self.n
    }
    pub fn offset(&self) -> u64 {
        self.offset
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    /// Every count is exact: nothing was ever dropped.
    pub fn is_exact(&self) -> bool {
        self.offset == 0 && self.items.values().all(|c| c.err == 0)
    }

    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.items.capacity() * (std::mem::size_of::<(K, Counter)>() + 1)
            + self.items.keys().map(FreqKey::heap_bytes).sum::<usize>()
    }

    /// Count one occurrence of `key`; `make` builds the owned key when the item is new.
    #[inline]
    pub fn add<Q>(&mut self, key: &Q, make: impl FnOnce(&Q) -> K)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.n = self.n.saturating_add(1);
        if let Some(c) = self.items.get_mut(key) {
            c.lower = c.lower.saturating_add(1);
        } else {
            self.items.insert(
                make(key),
                Counter {
                    lower: 1,
                    err: self.offset,
                },
            );
        }
    }

    /// Merge `other` into this summary (see the module invariants).
    pub fn merge(&mut self, other: &FrequentItems<K>) {
        if other.n == 0 {
            return;
        }
        if other.offset > 0 {
            for (k, c) in self.items.iter_mut() {
                if !other.items.contains_key(k) {
                    c.err = c.err.saturating_add(other.offset);
                }
            }
        }
        for (k, c) in &other.items {
            match self.items.get_mut(k) {
                Some(mine) => {
                    mine.lower = mine.lower.saturating_add(c.lower);
                    mine.err = mine.err.saturating_add(c.err);
                }
                None => {
                    self.items.insert(
                        k.clone(),
                        Counter {
                            lower: c.lower,
                            err: c.err.saturating_add(self.offset),
                        },
                    );
                }
            }
        }
        self.offset = self.offset.saturating_add(other.offset);
        self.n = self.n.saturating_add(other.n);
    }

    /// The order `reduce` keeps items in: the order `top` lists them, so a reduced summary
    /// lists the same top items as the full one.
    fn rank(a: &(K, Counter), b: &(K, Counter)) -> std::cmp::Ordering {
        b.1.estimate()
            .cmp(&a.1.estimate())
            .then(b.1.lower.cmp(&a.1.lower))
            .then(a.0.cmp(&b.0))
    }

    /// Keep at most `cap` items (see the module invariants).
    pub fn reduce(&mut self, cap: usize) {
        if self.items.len() <= cap {
            return;
        }
        let mut all: Vec<(K, Counter)> = self.items.drain().collect();
        if cap > 0 {
            all.select_nth_unstable_by(cap - 1, Self::rank);
        }
        let dropped = all.split_off(cap);
        let worst = dropped.iter().map(|(_, c)| c.upper()).max().unwrap_or(0);
        self.offset = self.offset.max(worst);
        self.items = all.into_iter().collect();
    }

    /// The `k` items with the largest estimates (ties: smaller value first), with their bounds.
    /// When the summary is exact, estimates are exact counts.
    pub fn top(&self, k: usize) -> Vec<(&K, Counter)> {
        let mut all: Vec<(&K, Counter)> = self.items.iter().map(|(k, c)| (k, *c)).collect();
        let by = |a: &(&K, Counter), b: &(&K, Counter)| {
            b.1.estimate()
                .cmp(&a.1.estimate())
                .then(b.1.lower.cmp(&a.1.lower))
                .then(a.0.cmp(b.0))
        };
        if all.len() > k && k > 0 {
            all.select_nth_unstable_by(k - 1, by);
        }
        all.truncate(k);
        all.sort_unstable_by(by);
        all
    }

    pub fn write_bytes(&self, out: &mut Vec<u8>) {
        out.push(MAGIC);
        out.push(VERSION);
        out.push(K::KIND);
        out.put(self.n);
        out.put(self.offset);
        out.put(self.items.len() as u32);
        let mut items: Vec<(&K, &Counter)> = self.items.iter().collect();
        items.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (k, c) in items {
            k.write(out);
            out.put(c.lower);
            out.put(c.err);
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_bytes(&mut out);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SketchError> {
        let mut r = ByteReader::new(bytes, "frequent-items summary");
        if r.u8()? != MAGIC {
            return Err(r.error("bad magic byte"));
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(r.error(&format!("unknown format version {version}")));
        }
        if r.u8()? != K::KIND {
            return Err(r.error("the key type does not match the column"));
        }
        let n = r.u64()?;
        let offset = r.u64()?;
        let count = r.u32()? as usize;
        let mut items = HashMap::with_capacity(count.min(bytes.len() / 17));
        let mut total: u64 = 0;
        let mut last: Option<K> = None;
        for _ in 0..count {
            let k = K::read(&mut r)?;
            let c = Counter {
                lower: r.u64()?,
                err: r.u64()?,
            };
            if last.as_ref().is_some_and(|l| *l >= k) {
                return Err(r.error("keys are not strictly ascending"));
            }
            if c.lower == 0 {
                return Err(r.error("an item with a zero count"));
            }
            total = total
                .checked_add(c.lower)
                .ok_or_else(|| r.error("counts overflow"))?;
            last = Some(k.clone());
            items.insert(k, c);
        }
        r.finish()?;
        if total > n {
            return Err(r.error("counts add up to more than n"));
        }
        // No count or error can exceed the values summarized: keeps every sum far from u64::MAX.
        if n > 1 << 62 || offset > n || items.values().any(|c: &Counter| c.err > n) {
            return Err(r.error("a count bound exceeds the values summarized"));
        }
        Ok(FrequentItems { items, offset, n })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zipf_stream(seed: u64, len: usize, distinct: u64) -> Vec<i64> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = ((s >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
                // Heavy head: value ~ distinct^u - 1 gives a log-uniform (zipf-like) spread.
                ((distinct as f64).powf(u) - 1.0) as i64
            })
            .collect()
    }

    fn truth(values: &[i64]) -> HashMap<i64, u64> {
        let mut t = HashMap::new();
        for v in values {
            *t.entry(*v).or_insert(0) += 1;
        }
        t
    }

    #[test]
    fn bounds_always_hold_across_reductions_and_merges() {
        for seed in 0..20 {
            let values = zipf_stream(seed, 20_000, 5_000);
            let t = truth(&values);
            let mut parts: Vec<FrequentItems<i64>> = Vec::new();
            for chunk in values.chunks(3_001) {
                let mut f = FrequentItems::default();
                for v in chunk {
                    f.add(v, |v| *v);
                    if f.len() > 128 {
                        f.reduce(64);
                    }
                }
                parts.push(f);
            }
            let mut all = FrequentItems::default();
            for p in parts.iter().rev() {
                all.merge(p);
                all.reduce(64);
            }
            assert_eq!(all.n(), values.len() as u64);
            for (k, c) in &all.items {
                let want = t[k];
                assert!(c.lower <= want && want <= c.upper(), "{k}: {c:?} vs {want}");
            }
            for (k, want) in &t {
                if !all.items.contains_key(k) {
                    assert!(
                        *want <= all.offset(),
                        "{k}: {want} > offset {}",
                        all.offset()
                    );
                }
            }
            let top = all.top(5);
            let mut best: Vec<(i64, u64)> = t.iter().map(|(k, c)| (*k, *c)).collect();
            best.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            assert_eq!(*top[0].0, best[0].0, "the heaviest item is found");
            let back = FrequentItems::<i64>::from_bytes(&all.to_bytes()).unwrap();
            assert_eq!(back, all);
        }
    }

    #[test]
    fn unbounded_summaries_are_exact_and_merge_losslessly() {
        let values = zipf_stream(3, 5_000, 300);
        let mut one = FrequentItems::default();
        for v in &values {
            one.add(v, |v| *v);
        }
        let mut a = FrequentItems::default();
        let mut b = FrequentItems::default();
        for (i, v) in values.iter().enumerate() {
            if i % 2 == 0 { &mut a } else { &mut b }.add(v, |v| *v);
        }
        b.merge(&a);
        assert_eq!(b, one);
        assert!(one.is_exact());
        let t = truth(&values);
        for (k, c) in one.top(10) {
            assert_eq!((c.lower, c.err), (t[k], 0));
        }
    }

    #[test]
    fn string_keys_round_trip_and_bad_bytes_fail() {
        let mut f: FrequentItems<Arc<str>> = FrequentItems::default();
        for s in ["Zürich", "東京", "😀", "Zürich", ""] {
            f.add(s, |s: &str| Arc::from(s));
        }
        let bytes = f.to_bytes();
        assert_eq!(FrequentItems::<Arc<str>>::from_bytes(&bytes).unwrap(), f);
        for cut in 0..bytes.len() {
            assert!(FrequentItems::<Arc<str>>::from_bytes(&bytes[..cut]).is_err());
        }
        assert!(
            FrequentItems::<i64>::from_bytes(&bytes).is_err(),
            "kind checked"
        );
    }
}
