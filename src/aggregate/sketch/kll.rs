//! KLL quantile sketch (Karnin, Lang, Liberty 2016) over `f64`, with a rank-error guarantee.
//!
//! # Structure
//!
//! * Items live in levels; an item of level `h` stands for `2^h` input values. Level `h` of a
//!   sketch with `L` levels holds up to `max(8, ceil(k * (2/3)^(L-1-h)))` items, so the top level
//!   holds `k` and the whole sketch about `3k`.
//! * When the sketch holds more items than its levels' capacities add up to, the lowest full
//!   level is *compacted*: sorted, one item kept if the count is odd, and every other item
//!   (starting at a coin-flipped offset) promoted to the level above with twice the weight.
//!   The coin is a hash of the sketch's shape at that moment (`n`, level, items held), so a
//!   sketch is a pure function of its inputs and their order, and equal sketches serialize to
//!   equal bytes (levels are written sorted).
//! * The exact minimum and maximum are kept beside the levels: `q = 0` and `q = 1` are exact.
//! * A sketch in which no compaction ever happened holds every value with weight 1: its answers
//!   are exact ([`KllSketch::is_exact`]), and merging such sketches is lossless.
//! * [`KllSketch::from_sorted`] builds the sketch of a fully known (sorted) set of values
//!   directly: blocks of `2^h` consecutive values, each represented by its middle value. Its rank
//!   error is at most half a block, far below a streamed sketch's, and it costs one pass. The
//!   batch layer uses it for the sketch it persists beside an exact quantile.
//!
//! # Estimates and bounds
//!
//! [`KllSketch::quantile`] interpolates linearly between the values at ranks `floor((n-1) q)` and
//! `ceil((n-1) q)`, the definition of DuckDB's `quantile_cont` and numpy's default, so an exact
//! sketch gives exactly the exact answer. The bounds are the values at those ranks moved down and
//! up by the normalized rank error `eps(k) * n` ([`rank_error`]), measured to contain the true
//! value in at least 95% of trials at every `n` (see `benchmarks/bench_sketch.py`).
//!
//! # Serialized format (version 1, little endian)
//!
//! ```text
//! byte 0      magic 0xA8
//! byte 1      format version (1)
//! bytes 2-3   k (u16)
//! byte 4      number of levels L (1..=60)
//! u64 n, f64 min, f64 max
//! L x u32     items per level, level 0 first
//! f64 items   level 0 first
//! ```
//!
//! Decoding checks that the weights add up to `n`, that the item count fits the capacity, and
//! that no byte is left over.

use super::codec::ByteWriter;
use std::cmp::Ordering;

use super::codec::{ByteReader, SketchError};

/// Default `k`: about 1.3% normalized rank error at 95% confidence, 4-5 KiB at large `n`.
pub const DEFAULT_K: u16 = 200;
pub const MIN_K: u16 = 8;
const MIN_LEVEL_CAP: usize = 8;
const MAX_LEVELS: usize = 60;
const MAGIC: u8 = 0xA8;
const VERSION: u8 = 1;
const SEED: u64 = 0x6C61_6D69_6E61_4B4C;

/// The normalized rank error the bounds allow for a sketch with parameter `k`: at k = 200,
/// 0.95%, above the largest `|estimated rank - true rank| / n` measured over 1,500 random
/// streams and merges of 10^3..10^6 values (0.9%; the 99th percentile was 0.7%). The shape
/// `c / k^0.9433` is the one datasketches uses for KLL; `benchmarks/bench_sketch.py` reports
/// the coverage it gives.
pub fn rank_error(k: u16) -> f64 {
    1.4 / (k as f64).powf(0.9433)
}

fn level_capacity(k: u16, levels: usize, h: usize) -> usize {
    let depth = (levels - 1 - h) as i32;
    let cap = (k as f64 * (2.0f64 / 3.0).powi(depth)).ceil() as usize;
    cap.max(MIN_LEVEL_CAP)
}

fn total_capacity(k: u16, levels: usize) -> usize {
    (0..levels).map(|h| level_capacity(k, levels, h)).sum()
}

/// The exact `quantile_cont` of sorted values (None when empty).
pub fn exact_quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let pos = (n - 1) as f64 * q;
    let lo = pos.floor();
    let hi = pos.ceil();
    let a = sorted[(lo as usize).min(n - 1)];
    if lo == hi {
        return Some(a);
    }
    let b = sorted[(hi as usize).min(n - 1)];
    Some(a + (pos - lo) * (b - a))
}

#[derive(Debug, Clone)]
pub struct KllSketch {
    k: u16,
    n: u64,
    min: f64,
    max: f64,
    /// `levels[h]`: items of weight `2^h`, in no particular order.
    levels: Vec<Vec<f64>>,
    retained: usize,
    capacity: usize,
}

impl PartialEq for KllSketch {
    /// Equal inputs summarized alike: the same bytes.
    fn eq(&self, other: &Self) -> bool {
        self.to_bytes() == other.to_bytes()
    }
}

impl Default for KllSketch {
    /// An empty sketch with [`DEFAULT_K`].
    fn default() -> Self {
        KllSketch {
            k: DEFAULT_K,
            n: 0,
            min: 0.0,
            max: 0.0,
            levels: vec![Vec::new()],
            retained: 0,
            capacity: total_capacity(DEFAULT_K, 1),
        }
    }
}

impl KllSketch {
    pub fn new(k: u16) -> Result<KllSketch, SketchError> {
        if k < MIN_K {
            return Err(SketchError(format!(
                "KLL k must be at least {MIN_K}, got {k}"
            )));
        }
        Ok(KllSketch {
            k,
            capacity: total_capacity(k, 1),
            ..KllSketch::default()
        })
    }

    /// [`KllSketch::from_sorted`] with the default `k`.
    pub fn from_sorted_default(sorted: &[f64]) -> KllSketch {
        Self::build_sorted(sorted, Self::default())
    }

    /// The sketch of values given in ascending order (`f64::total_cmp`).
    pub fn from_sorted(sorted: &[f64], k: u16) -> Result<KllSketch, SketchError> {
        Ok(Self::build_sorted(sorted, KllSketch::new(k)?))
    }

    fn build_sorted(sorted: &[f64], mut s: KllSketch) -> KllSketch {
        let k = s.k;
        let n = sorted.len();
        if n == 0 {
            return s;
        }
        let mut h = 0usize;
        while (n >> h) > k as usize {
            h += 1;
        }
        let w = 1usize << h;
        let blocks = n >> h;
        s.levels = vec![Vec::new(); h + 1];
        s.levels[h] = (0..blocks).map(|b| sorted[b * w + w / 2]).collect();
        let mut start = blocks * w;
        for j in (0..h).rev() {
            if (n - blocks * w) & (1 << j) != 0 {
                s.levels[j].push(sorted[start + (1 << j) / 2]);
                start += 1 << j;
            }
        }
        s.n = n as u64;
        s.min = sorted[0];
        s.max = sorted[n - 1];
        s.refresh();
        s
    }

    fn refresh(&mut self) {
        self.retained = self.levels.iter().map(Vec::len).sum();
        self.capacity = total_capacity(self.k, self.levels.len());
    }

    pub fn k(&self) -> u16 {
        self.k
    }
    pub fn n(&self) -> u64 {
        self.n
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    /// Items held (each stands for `2^level` values).
    pub fn retained(&self) -> usize {
        self.retained
    }
    /// Every value is held with weight 1: answers are exact.
    pub fn is_exact(&self) -> bool {
        self.levels[1..].iter().all(Vec::is_empty)
    }
    pub fn min(&self) -> Option<f64> {
        (self.n > 0).then_some(self.min)
    }
    pub fn max(&self) -> Option<f64> {
        (self.n > 0).then_some(self.max)
    }

    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self
                .levels
                .iter()
                .map(|l| l.capacity() * 8 + std::mem::size_of::<Vec<f64>>())
                .sum::<usize>()
    }

    fn see(&mut self, x: f64) {
        if self.n == 0 {
            self.min = x;
            self.max = x;
        } else {
            if x.total_cmp(&self.min) == Ordering::Less {
                self.min = x;
            }
            if x.total_cmp(&self.max) == Ordering::Greater {
                self.max = x;
            }
        }
    }

    pub fn update(&mut self, x: f64) {
        self.see(x);
        self.n += 1;
        self.levels[0].push(x);
        self.retained += 1;
        if self.retained > self.capacity {
            self.compress();
        }
    }

    /// Merge `other` into this sketch (both must have the same `k`).
    pub fn merge(&mut self, other: &KllSketch) -> Result<(), SketchError> {
        if other.k != self.k {
            return Err(SketchError(format!(
                "cannot merge KLL sketches with k = {} and k = {}",
                self.k, other.k
            )));
        }
        if other.n == 0 {
            return Ok(());
        }
        if self.n == 0 {
            *self = other.clone();
            return Ok(());
        }
        self.see(other.min);
        self.see(other.max);
        self.n += other.n;
        if other.levels.len() > self.levels.len() {
            self.levels.resize(other.levels.len(), Vec::new());
        }
        for (mine, theirs) in self.levels.iter_mut().zip(&other.levels) {
            mine.extend_from_slice(theirs);
        }
        self.refresh();
        self.compress();
        Ok(())
    }

    fn compress(&mut self) {
        while self.retained > self.capacity {
            let levels = self.levels.len();
            let h = (0..levels)
                .find(|&h| self.levels[h].len() >= level_capacity(self.k, levels, h))
                .unwrap_or(levels - 1);
            if h + 1 == levels {
                if levels >= MAX_LEVELS {
                    return;
                }
                self.levels.push(Vec::new());
            }
            let mut items = std::mem::take(&mut self.levels[h]);
            let coin = super::hll::mix64(
                SEED ^ self.n ^ ((h as u64) << 56) ^ (self.retained as u64).rotate_left(29),
            );
            // Sorted first, so a compaction depends on the level's values, not on their storage
            // order (a sketch read back from bytes compacts as the original would). With an odd
            // count, an item at a position picked by the coin stays behind (keeping the
            // smallest or the largest would skew the tails).
            items.sort_unstable_by(f64::total_cmp);
            let keep = if items.len() % 2 == 1 {
                let i = ((coin >> 1) % items.len() as u64) as usize;
                Some(items.remove(i))
            } else {
                None
            };
            let offset = (coin & 1) as usize;
            let pairs = &items[..];
            let promoted: Vec<f64> = pairs.iter().skip(offset).step_by(2).copied().collect();
            self.levels[h + 1].extend_from_slice(&promoted);
            self.levels[h] = keep.into_iter().collect();
            self.refresh();
        }
    }

    /// Items sorted by value, with cumulative weights (`cum[i]` = weight of items `0..=i`).
    fn sorted_view(&self) -> (Vec<f64>, Vec<u64>) {
        let mut items: Vec<(f64, u64)> = Vec::with_capacity(self.retained);
        for (h, level) in self.levels.iter().enumerate() {
            items.extend(level.iter().map(|&v| (v, 1u64 << h)));
        }
        items.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let mut cum = Vec::with_capacity(items.len());
        let mut total = 0u64;
        for &(_, w) in &items {
            total += w;
            cum.push(total);
        }
        (items.into_iter().map(|(v, _)| v).collect(), cum)
    }

    /// Estimates of the `qs` quantiles with their bounds: `(estimate, lower, upper)` each, or
    /// None for an empty sketch.
    pub fn quantiles(&self, qs: &[f64]) -> Vec<Option<(f64, f64, f64)>> {
        if self.n == 0 {
            return vec![None; qs.len()];
        }
        let (values, cum) = self.sorted_view();
        let n = self.n;
        let at = |rank: f64| -> f64 {
            let r = rank.clamp(0.0, (n - 1) as f64) as u64;
            if r == 0 {
                return self.min;
            }
            if r == n - 1 {
                return self.max;
            }
            let i = cum.partition_point(|&c| c <= r);
            values[i.min(values.len() - 1)]
        };
        let slack = if self.is_exact() {
            0.0
        } else {
            rank_error(self.k) * n as f64
        };
        qs.iter()
            .map(|&q| {
                let pos = (n - 1) as f64 * q;
                let (lo, hi) = (pos.floor(), pos.ceil());
                let a = at(lo);
                let est = if lo == hi {
                    a
                } else {
                    a + (pos - lo) * (at(hi) - a)
                };
                if slack == 0.0 {
                    return Some((est, est, est));
                }
                let lower = at((lo - slack).floor());
                let upper = at((hi + slack).ceil());
                Some((est, lower.min(est), upper.max(est)))
            })
            .collect()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_bytes(&mut out);
        out
    }

    pub fn write_bytes(&self, out: &mut Vec<u8>) {
        out.push(MAGIC);
        out.push(VERSION);
        out.put(self.k);
        out.push(self.levels.len() as u8);
        out.put(self.n);
        out.put(self.min);
        out.put(self.max);
        for l in &self.levels {
            out.put(l.len() as u32);
        }
        for l in &self.levels {
            let mut sorted = l.clone();
            sorted.sort_unstable_by(f64::total_cmp);
            for v in sorted {
                out.put(v);
            }
        }
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<KllSketch, SketchError> {
        let mut r = ByteReader::new(bytes, "KLL sketch");
        if r.u8()? != MAGIC {
            return Err(r.error("bad magic byte"));
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(r.error(&format!("unknown format version {version}")));
        }
        let k = r.u16()?;
        let mut s = KllSketch::new(k).map_err(|e| r.error(&e.0))?;
        let levels = r.u8()? as usize;
        if levels == 0 || levels > MAX_LEVELS {
            return Err(r.error("bad level count"));
        }
        let n = r.u64()?;
        let (min, max) = (r.f64()?, r.f64()?);
        let mut lens = Vec::with_capacity(levels);
        for _ in 0..levels {
            lens.push(r.u32()? as usize);
        }
        let retained: usize = lens.iter().sum();
        if retained > total_capacity(k, levels) || (n == 0) != (retained == 0) {
            return Err(r.error("item count does not fit the sketch"));
        }
        let mut weight: u64 = 0;
        s.levels = Vec::with_capacity(levels);
        for (h, &len) in lens.iter().enumerate() {
            let mut l = Vec::with_capacity(len);
            for _ in 0..len {
                l.push(r.f64()?);
            }
            weight = (len as u64)
                .checked_shl(h as u32)
                .and_then(|w| weight.checked_add(w))
                .ok_or_else(|| r.error("weights overflow"))?;
            s.levels.push(l);
        }
        r.finish()?;
        if weight != n {
            return Err(r.error("weights do not add up to n"));
        }
        if n > 0 && min.total_cmp(&max) == Ordering::Greater {
            return Err(r.error("min above max"));
        }
        s.n = n;
        s.min = min;
        s.max = max;
        s.refresh();
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn small_sketches_are_exact_and_match_quantile_cont() {
        let values = [3.0, -1.0, 7.5, 7.5, 0.0, 2.0];
        let mut s = KllSketch::new(DEFAULT_K).unwrap();
        for v in values {
            s.update(v);
        }
        assert!(s.is_exact());
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        for q in [0.0, 0.1, 0.25, 0.5, 0.9, 1.0] {
            let (est, lo, hi) = s.quantiles(&[q])[0].unwrap();
            let want = exact_quantile(&sorted, q).unwrap();
            assert_eq!(est, want, "q = {q}");
            assert_eq!((lo, hi), (est, est));
        }
    }

    #[test]
    fn bounds_contain_the_truth_and_bytes_round_trip() {
        let mut covered = 0;
        let mut trials = 0;
        for seed in 0..40u64 {
            let mut next = lcg(seed);
            let n = 1000 + (seed as usize) * 997;
            let values: Vec<f64> = (0..n).map(|_| next() * 1000.0).collect();
            // Two halves sketched apart and merged, as the speed layer does.
            let mut a = KllSketch::new(DEFAULT_K).unwrap();
            let mut b = KllSketch::new(DEFAULT_K).unwrap();
            for (i, &v) in values.iter().enumerate() {
                if i % 3 == 0 {
                    a.update(v)
                } else {
                    b.update(v)
                }
            }
            a.merge(&b).unwrap();
            assert_eq!(a.n(), n as u64);
            assert!(!a.is_exact());
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            for q in [0.01, 0.5, 0.95, 0.99] {
                let (_, lo, hi) = a.quantiles(&[q])[0].unwrap();
                let want = exact_quantile(&sorted, q).unwrap();
                covered += (lo <= want && want <= hi) as usize;
                trials += 1;
            }
            let back = KllSketch::from_bytes(&a.to_bytes()).unwrap();
            assert_eq!(back, a);
        }
        assert!(covered * 100 >= trials * 95, "{covered}/{trials}");
    }

    #[test]
    fn from_sorted_is_close_and_valid() {
        let mut next = lcg(7);
        let mut values: Vec<f64> = (0..100_003).map(|_| next()).collect();
        values.sort_by(f64::total_cmp);
        let s = KllSketch::from_sorted(&values, DEFAULT_K).unwrap();
        assert_eq!(s.n(), values.len() as u64);
        assert!(s.retained() <= DEFAULT_K as usize + 20);
        let back = KllSketch::from_bytes(&s.to_bytes()).unwrap();
        assert_eq!(back, s);
        for q in [0.0, 0.3, 0.5, 0.999, 1.0] {
            let (est, lo, hi) = s.quantiles(&[q])[0].unwrap();
            let want = exact_quantile(&values, q).unwrap();
            assert!((est - want).abs() < 0.01, "q = {q}: {est} vs {want}");
            assert!(lo <= want && want <= hi);
        }
        let small = KllSketch::from_sorted(&values[..50], DEFAULT_K).unwrap();
        assert!(small.is_exact());
    }

    #[test]
    fn bad_bytes_are_errors_not_panics() {
        let mut s = KllSketch::new(DEFAULT_K).unwrap();
        for i in 0..5000 {
            s.update(i as f64);
        }
        let bytes = s.to_bytes();
        for cut in 0..bytes.len() {
            assert!(KllSketch::from_bytes(&bytes[..cut]).is_err());
        }
        let mut bad = bytes.clone();
        bad[5] ^= 1; // n
        assert!(KllSketch::from_bytes(&bad).is_err());
        bad = bytes.clone();
        bad.push(0);
        assert!(KllSketch::from_bytes(&bad).is_err());
    }
}
