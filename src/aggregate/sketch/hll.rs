//! HyperLogLog distinct-count sketch with a canonical sparse/dense representation.
//!
//! # Overview
//!
//! * The sketch consumes pre-hashed `u64` values ([`HllSketch::insert_hash`]). Integer keys
//!   are widened to `u128` and hashed with [`key_hash`]; string keys are hashed elsewhere
//!   with xxh3-128 and then passed through [`key_hash`] as well.
//! * **Dense mode**: `m = 2^p` one-byte registers. The register index is the top `p` bits of
//!   the hash; the register value ("rho") is the number of leading zeros of the remaining
//!   `64 - p` bits plus one, capped at `65 - p`.
//! * **Sparse mode**: a sorted, deduplicated list of `u32` entries at the internal precision
//!   `p' = 25`. Each entry is `(idx' << 6) | rho'` where `idx'` is the top 25 bits of the hash and
//!   `rho'` (1..=40) is the leading-zero count of the remaining 39 bits plus one. Only the
//!   maximum `rho'` per `idx'` is kept. Sparse estimates use linear counting over `2^25`
//!   buckets, which is nearly exact for small cardinalities. Conversion to dense is lossless:
//!   it yields exactly the registers that direct dense insertion of the same hashes gives.
//! * **Canonical state**: the sketch is dense iff the number of distinct sparse entries
//!   (`idx'` values) of the inserted hash set exceeds `m / 4` (i.e. the sparse list would use
//!   more bytes than the dense registers). This depends only on the set of inserted hashes, so
//!   the logical state (as observed through `PartialEq`, [`HllSketch::to_bytes`],
//!   [`HllSketch::estimate`], ...) is independent of insertion order and of how a stream was
//!   split and merged. Sparse inserts are buffered in an unsorted tail that is normalised
//!   lazily; all observers look at the normalised state.
//! * **Estimator**: Otmar Ertl's improved raw estimator ("New cardinality estimation
//!   algorithms for HyperLogLog sketches", 2017) based on the register histogram and the
//!   `sigma`/`tau` functions; no bias-correction tables are needed.
//!
//! # Serialized format (versions 1 and 2)
//!
//! ```text
//! byte 0   magic 0xA7
//! byte 1   format version: 1 (sparse; dense packed) or 2 (dense coded)
//! byte 2   precision p (4..=18)
//! byte 3   mode: 0 = sparse, 1 = dense packed, 2 = dense coded
//! sparse:  varint(n) followed by n varints: first entry, then strictly positive deltas
//!          between consecutive sorted entries (LEB128, minimal encoding required)
//! dense packed (version 1, read only):
//!          m registers packed 6 bits each, 4 registers per 3 bytes (little endian)
//! dense coded (version 2): the m registers, canonical-Huffman coded (see `huffman.rs`):
//!          about 3 bits per register instead of 6
//! ```
//!
//! The encoding is canonical: equal sketches serialize to identical bytes (sparse as version 1,
//! dense as version 2), and [`HllSketch::from_bytes`] rejects every non-canonical or malformed
//! input. Dense sketches written packed by the first landing (version 1) are still read.

use super::codec::{ByteReader, SketchError};
use std::borrow::Cow;
use std::f64::consts::LN_2;

/// Default precision (m = 16384 registers, RSE ~0.81%).
pub const DEFAULT_PRECISION: u8 = 14;
/// Smallest supported precision.
pub const MIN_PRECISION: u8 = 4;
/// Largest supported precision.
pub const MAX_PRECISION: u8 = 18;

/// Internal precision of the sparse representation.
const SPARSE_PRECISION: u32 = 25;
/// Number of bits used for rho' in a sparse entry.
const RHO_BITS: u32 = 6;
const RHO_MASK: u32 = (1 << RHO_BITS) - 1;
/// Largest rho' value in sparse mode (64 - 25 + 1).
const MAX_SPARSE_RHO: u32 = 64 - SPARSE_PRECISION + 1;
/// Minimum number of unsorted entries buffered before a sparse normalisation.
const MIN_BUFFER: usize = 16;
/// z-score of a two-sided 95% interval.
const Z95: f64 = 1.96;
/// The dense bounds' half-width in units of the theoretical RSE: 1.96 for a 95% normal band,
/// times 1.08 (the measured RMS error over the theoretical RSE at p = 14, n = 10^4..10^6), times
/// a 1.06 margin so the measured coverage stays at or above 95% (`benchmarks/bench_sketch.py`).
const DENSE_Z95: f64 = 2.24;

const MAGIC: u8 = 0xA7;
const VERSION: u8 = 1;
const MODE_SPARSE: u8 = 0;
const MODE_DENSE: u8 = 1;
const VERSION_CODED: u8 = 2;
const MODE_DENSE_CODED: u8 = 2;

fn corrupt(msg: &str) -> SketchError {
    SketchError(format!("corrupt HLL sketch bytes: {msg}"))
}

fn bad_precision(p: u8) -> SketchError {
    SketchError(format!(
        "invalid HLL precision {p} (must be in {MIN_PRECISION}..={MAX_PRECISION})"
    ))
}

/// Stable 64-bit mixer for integer keys.
///
/// This is the SplitMix64 output function (Stafford's "Mix13" finalizer applied to
/// `x + 0x9E3779B97F4A7C15`):
///
/// ```text
/// z = x + 0x9E3779B97F4A7C15            (wrapping)
/// z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9  (wrapping)
/// z = (z ^ (z >> 27)) * 0x94D049BB133111EB  (wrapping)
/// return z ^ (z >> 31)
/// ```
///
/// It is a bijection on `u64`, and `mix64(0) != 0`. It must never change between versions
/// or platforms, because serialized sketches depend on it.
#[inline]
pub fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The hash the sketch consumes for a distinct key given as `u128`.
///
/// Integers are widened to `u128`; strings are represented by their xxh3-128 hash
/// (computed elsewhere). Defined as `mix64(lo ^ mix64(hi))` where `lo`/`hi` are the low and
/// high 64-bit halves of `key`. Stable across versions and platforms.
#[inline]
pub fn key_hash(key: u128) -> u64 {
    let lo = key as u64;
    let hi = (key >> 64) as u64;
    mix64(lo ^ mix64(hi))
}

/// HyperLogLog sketch (see module docs).
///
/// `PartialEq` compares the canonical (normalised) state, so two sketches built from the
/// same set of hashes compare equal regardless of insertion order or merge structure.
#[derive(Clone, Debug)]
pub struct HllSketch {
    precision: u8,
    repr: Repr,
}

#[derive(Clone, Debug)]
enum Repr {
    /// `entries[..sorted]` is sorted by entry value with unique `idx'`;
    /// `entries[sorted..]` is an unsorted insert buffer (may contain duplicates).
    /// Invariant: when fully sorted, `entries.len() <= sparse_limit(p)`.
    Sparse { entries: Vec<u32>, sorted: usize },
    /// `2^p` registers, each in `0..=65-p`.
    Dense(Box<[u8]>),
}

/// Normalised read-only view of a sketch.
enum View<'a> {
    Sparse(Cow<'a, [u32]>),
    Dense(Cow<'a, [u8]>),
}

/// Maximum number of sparse entries; above this the sketch is dense.
#[inline]
fn sparse_limit(p: u8) -> usize {
    (1usize << p) / 4
}

/// Encode a hash as a sparse entry `(idx' << 6) | rho'`.
#[inline]
fn encode_sparse(hash: u64) -> u32 {
    let idx = (hash >> (64 - SPARSE_PRECISION)) as u32;
    let w = (hash << SPARSE_PRECISION) | (1u64 << (SPARSE_PRECISION - 1));
    let rho = w.leading_zeros() + 1; // 1..=40
    (idx << RHO_BITS) | rho
}

/// Dense register index and rho for a hash at precision `p`.
#[inline]
fn dense_index_rho(hash: u64, p: u8) -> (usize, u8) {
    let p = u32::from(p);
    let idx = (hash >> (64 - p)) as usize;
    let w = (hash << p) | (1u64 << (p - 1));
    (idx, (w.leading_zeros() + 1) as u8) // 1..=65-p
}

/// Losslessly derive the dense register index and rho (at precision `p`) from a sparse entry.
#[inline]
fn decode_sparse(e: u32, p: u8) -> (usize, u8) {
    let idx_sp = e >> RHO_BITS;
    let rho_sp = e & RHO_MASK;
    let shift = SPARSE_PRECISION - u32::from(p); // 7..=21 bits between p and p'
    let idx = (idx_sp >> shift) as usize;
    let mid = idx_sp & ((1u32 << shift) - 1);
    let rho = if mid != 0 {
        mid.leading_zeros() - (32 - shift) + 1
    } else {
        shift + rho_sp
    };
    (idx, rho as u8)
}

/// Sort entries and keep only the maximum rho' per idx'.
fn sort_dedup(v: &mut Vec<u32>) {
    v.sort_unstable();
    let mut w = 0usize;
    for r in 0..v.len() {
        let x = v[r];
        if w > 0 && (v[w - 1] >> RHO_BITS) == (x >> RHO_BITS) {
            // sorted ascending: x has the larger rho'
            v[w - 1] = x;
        } else {
            v[w] = x;
            w += 1;
        }
    }
    v.truncate(w);
}

/// Merge two sorted, idx'-unique entry lists, keeping the max rho' per idx'.
fn merge_sorted(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0usize, 0usize);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        let (kx, ky) = (x >> RHO_BITS, y >> RHO_BITS);
        if kx < ky {
            out.push(x);
            i += 1;
        } else if ky < kx {
            out.push(y);
            j += 1;
        } else {
            out.push(x.max(y));
            i += 1;
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Apply sparse entries (any order, duplicates allowed) to dense registers.
fn absorb_entries(regs: &mut [u8], entries: &[u32], p: u8) {
    for &e in entries {
        let (idx, rho) = decode_sparse(e, p);
        if let Some(r) = regs.get_mut(idx) {
            if rho > *r {
                *r = rho;
            }
        }
    }
}

fn absorb_dense(regs: &mut [u8], other: &[u8]) {
    for (r, &o) in regs.iter_mut().zip(other.iter()) {
        *r = (*r).max(o);
    }
}

fn entries_to_dense(entries: &[u32], p: u8) -> Box<[u8]> {
    let mut regs = vec![0u8; 1usize << p].into_boxed_slice();
    absorb_entries(&mut regs, entries, p);
    regs
}

/// Ertl's sigma function: sigma(x) = x + sum_{k>=1} x^(2^k) 2^(k-1).
fn sigma(mut x: f64) -> f64 {
    if x >= 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    for _ in 0..200 {
        x *= x;
        let z_old = z;
        z += x * y;
        y += y;
        if z == z_old {
            break;
        }
    }
    z
}

/// Ertl's tau function: tau(x) = (1 - x - sum_{k>=1} (1 - x^(2^-k))^2 2^-k) / 3.
fn tau(mut x: f64) -> f64 {
    if x <= 0.0 || x >= 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    for _ in 0..200 {
        x = x.sqrt();
        let z_old = z;
        y *= 0.5;
        let d = 1.0 - x;
        z -= d * d * y;
        if z == z_old {
            break;
        }
    }
    z / 3.0
}

/// Ertl's improved raw estimator on dense registers.
fn ertl_estimate(regs: &[u8], p: u8) -> f64 {
    let mut hist = [0u32; 256];
    for &r in regs {
        hist[usize::from(r)] += 1;
    }
    let m = regs.len() as f64;
    let q = 64 - usize::from(p);
    let mut z = m * tau(1.0 - f64::from(hist[q + 1]) / m);
    for k in (1..=q).rev() {
        z = 0.5 * (z + f64::from(hist[k]));
    }
    z += m * sigma(f64::from(hist[0]) / m);
    m * m / (2.0 * LN_2 * z)
}

/// Number of sparse buckets (2^p').
const SPARSE_M: f64 = (1u64 << SPARSE_PRECISION) as f64;

/// Linear counting at precision p' given `n` occupied buckets.
/// The smallest k with P(Poisson(lambda) <= k) >= q.
fn poisson_quantile(lambda: f64, q: f64) -> u64 {
    if lambda <= 0.0 {
        return 0;
    }
    let mut pmf = (-lambda).exp();
    let mut cdf = pmf;
    let mut k = 0u64;
    while cdf < q && k < 10_000 {
        k += 1;
        pmf *= lambda / k as f64;
        cdf += pmf;
    }
    k
}

fn linear_counting(n: usize) -> f64 {
    -SPARSE_M * (-(n as f64) / SPARSE_M).ln_1p()
}

/// Registers packed 6 bits each, 4 registers per 3 bytes (little endian).
fn pack_registers(regs: &[u8], out: &mut Vec<u8>) {
    out.reserve(regs.len() / 4 * 3);
    for c in regs.chunks_exact(4) {
        let w = u32::from(c[0] & 63)
            | (u32::from(c[1] & 63) << 6)
            | (u32::from(c[2] & 63) << 12)
            | (u32::from(c[3] & 63) << 18);
        out.extend_from_slice(&w.to_le_bytes()[..3]);
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl HllSketch {
    /// Create an empty sketch with `m = 2^precision` registers.
    pub fn new(precision: u8) -> Result<Self, SketchError> {
        if !(MIN_PRECISION..=MAX_PRECISION).contains(&precision) {
            return Err(bad_precision(precision));
        }
        Ok(HllSketch {
            precision,
            repr: Repr::Sparse {
                entries: Vec::new(),
                sorted: 0,
            },
        })
    }

    /// The precision `p` (number of index bits; `m = 2^p`).
    #[inline]
    pub fn precision(&self) -> u8 {
        self.precision
    }

    /// Insert a pre-hashed value (see [`key_hash`]).
    #[inline]
    pub fn insert_hash(&mut self, hash: u64) {
        if let Repr::Dense(regs) = &mut self.repr {
            let (idx, rho) = dense_index_rho(hash, self.precision);
            if let Some(r) = regs.get_mut(idx) {
                if rho > *r {
                    *r = rho;
                }
            }
        } else {
            self.insert_sparse(hash);
        }
    }

    /// Insert many hashes: the same sketch as inserting them one by one, with one check of the
    /// insert buffer for the whole run instead of one per hash.
    pub fn insert_hashes(&mut self, hashes: impl Iterator<Item = u64>) {
        let Repr::Sparse { entries, sorted } = &mut self.repr else {
            for hash in hashes {
                self.insert_hash(hash);
            }
            return;
        };
        entries.extend(hashes.map(encode_sparse));
        let sorted_len = (*sorted).min(entries.len());
        if entries.len() - sorted_len >= MIN_BUFFER.max(sorted_len / 2) {
            self.normalize();
        }
    }

    /// Build a sketch from many hashes at once: one sort instead of repeated buffer merges.
    /// Equal (bit for bit) to inserting the hashes one by one.
    pub fn from_hashes(
        precision: u8,
        hashes: impl Iterator<Item = u64>,
    ) -> Result<Self, SketchError> {
        let mut s = HllSketch::new(precision)?;
        let mut entries: Vec<u32> = hashes.map(encode_sparse).collect();
        sort_dedup(&mut entries);
        if entries.len() > sparse_limit(precision) {
            s.repr = Repr::Dense(entries_to_dense(&entries, precision));
        } else {
            entries.shrink_to_fit();
            let sorted = entries.len();
            s.repr = Repr::Sparse { entries, sorted };
        }
        Ok(s)
    }

    /// Convenience: `insert_hash(key_hash(key))`.
    #[inline]
    pub fn insert_key(&mut self, key: u128) {
        self.insert_hash(key_hash(key));
    }

    fn insert_sparse(&mut self, hash: u64) {
        self.push_entry(encode_sparse(hash));
    }

    /// Entries held in sparse mode, buffer included (0 when dense).
    fn sparse_len(&self) -> usize {
        match &self.repr {
            Repr::Sparse { entries, .. } => entries.len(),
            Repr::Dense(_) => 0,
        }
    }

    /// Add one sparse entry through the insert buffer.
    #[inline]
    fn push_entry(&mut self, entry: u32) {
        let Repr::Sparse { entries, sorted } = &mut self.repr else {
            return;
        };
        // Append only: duplicates are removed when the buffer is merged into the sorted head,
        // which keeps the hot path to one store and one comparison.
        entries.push(entry);
        let sorted_len = (*sorted).min(entries.len());
        if entries.len() - sorted_len >= MIN_BUFFER.max(sorted_len / 2) {
            self.normalize();
        }
    }

    /// Sort and deduplicate the sparse insert buffer; convert to dense if the
    /// canonical entry count exceeds the sparse limit.
    fn normalize(&mut self) {
        let p = self.precision;
        let Repr::Sparse { entries, sorted } = &mut self.repr else {
            return;
        };
        let head = (*sorted).min(entries.len());
        if head >= entries.len() {
            return;
        }
        // Sort and deduplicate the buffer in place (keeping the max rho' per idx').
        entries[head..].sort_unstable();
        let mut w = head;
        for r in head..entries.len() {
            let x = entries[r];
            if w > head && (entries[w - 1] >> RHO_BITS) == (x >> RHO_BITS) {
                entries[w - 1] = x;
            } else {
                entries[w] = x;
                w += 1;
            }
        }
        entries.truncate(w);
        // Merge head and buffer in place, from the back, so the list is not reallocated on every
        // flush; only the (small) buffer is copied aside.
        let tail: Vec<u32> = entries[head..].to_vec();
        let (mut i, mut j, mut k) = (head, tail.len(), entries.len());
        while j > 0 {
            let t = tail[j - 1];
            if i > 0 && (entries[i - 1] >> RHO_BITS) > (t >> RHO_BITS) {
                entries[k - 1] = entries[i - 1];
                i -= 1;
            } else if i > 0 && (entries[i - 1] >> RHO_BITS) == (t >> RHO_BITS) {
                entries[k - 1] = entries[i - 1].max(t);
                i -= 1;
                j -= 1;
            } else {
                entries[k - 1] = t;
                j -= 1;
            }
            k -= 1;
        }
        if k > i {
            // Duplicates left a gap between the untouched head and the merged part.
            let len = entries.len();
            entries.copy_within(k..len, i);
            entries.truncate(len - (k - i));
        }
        if entries.len() > sparse_limit(p) {
            self.repr = Repr::Dense(entries_to_dense(entries, p));
        } else {
            *sorted = entries.len();
        }
    }

    /// Convert to dense mode (lossless).
    fn densify(&mut self) {
        if let Repr::Sparse { entries, .. } = &self.repr {
            let regs = entries_to_dense(entries, self.precision);
            self.repr = Repr::Dense(regs);
        }
    }

    /// Is the insert buffer empty (so reading the sketch copies nothing)?
    pub fn is_settled(&self) -> bool {
        match &self.repr {
            Repr::Dense(_) => true,
            Repr::Sparse { entries, sorted } => *sorted >= entries.len(),
        }
    }

    /// Fold the insert buffer into the sorted entries, so later reads (`estimate`, `bounds`,
    /// `to_bytes`) do not each merge a copy. Does not change the logical state.
    pub fn settle(&mut self) {
        self.normalize();
    }

    /// Normalise internal buffers and release spare capacity (minimises `memory_bytes`).
    /// Does not change the logical state.
    pub fn compact(&mut self) {
        self.normalize();
        if let Repr::Sparse { entries, .. } = &mut self.repr {
            entries.shrink_to_fit();
        }
    }

    /// Canonical view of the state, normalising a copy of the buffer if necessary.
    fn view(&self) -> View<'_> {
        match &self.repr {
            Repr::Dense(regs) => View::Dense(Cow::Borrowed(regs)),
            Repr::Sparse { entries, sorted } => {
                if *sorted >= entries.len() {
                    return View::Sparse(Cow::Borrowed(entries));
                }
                let mut tail = entries[*sorted..].to_vec();
                sort_dedup(&mut tail);
                let merged = merge_sorted(&entries[..*sorted], &tail);
                if merged.len() > sparse_limit(self.precision) {
                    View::Dense(Cow::Owned(
                        entries_to_dense(&merged, self.precision).into_vec(),
                    ))
                } else {
                    View::Sparse(Cow::Owned(merged))
                }
            }
        }
    }

    /// Merge `other` into `self`. The result equals (bit for bit, via `PartialEq` and
    /// `to_bytes`) the sketch of the union of both input sets.
    pub fn merge(&mut self, other: &HllSketch) -> Result<(), SketchError> {
        if self.precision != other.precision {
            return Err(SketchError(format!(
                "cannot merge HLL sketches with different precisions ({} vs {})",
                self.precision, other.precision
            )));
        }
        let p = self.precision;
        if let Repr::Sparse { .. } = self.repr {
            match other.view() {
                View::Dense(b) => {
                    self.densify();
                    if let Repr::Dense(regs) = &mut self.repr {
                        absorb_dense(regs, &b);
                    }
                    return Ok(());
                }
                View::Sparse(b) if b.len() * 8 <= self.sparse_len() => {
                    // A small sketch (one commit's rows) goes through the insert buffer, like
                    // inserts: no copy of the large sorted list per merge.
                    for (k, &e) in b.iter().enumerate() {
                        if let Repr::Dense(regs) = &mut self.repr {
                            // A buffer flush crossed the sparse limit: the rest go to registers.
                            absorb_entries(regs, &b[k..], p);
                            break;
                        }
                        self.push_entry(e);
                    }
                    return Ok(());
                }
                View::Sparse(b) => {
                    self.normalize();
                    if let Repr::Sparse { entries, sorted } = &mut self.repr {
                        let mut merged = merge_sorted(entries, &b);
                        if merged.len() > sparse_limit(p) {
                            self.repr = Repr::Dense(entries_to_dense(&merged, p));
                        } else {
                            if merged.capacity() - merged.len() > merged.len() / 4 + MIN_BUFFER {
                                merged.shrink_to_fit();
                            }
                            *sorted = merged.len();
                            *entries = merged;
                        }
                        return Ok(());
                    }
                    // self became dense during normalisation: fall through.
                }
            }
        }
        if let Repr::Dense(regs) = &mut self.repr {
            match &other.repr {
                Repr::Dense(b) => absorb_dense(regs, b),
                Repr::Sparse { entries, .. } => absorb_entries(regs, entries, p),
            }
        }
        Ok(())
    }

    /// Estimated number of distinct hashes inserted.
    pub fn estimate(&self) -> f64 {
        match self.view() {
            View::Sparse(entries) => linear_counting(entries.len()),
            View::Dense(regs) => ertl_estimate(&regs, self.precision),
        }
    }

    /// Approximate 95% (z = 1.96) confidence bounds `(lower, upper)` of the true cardinality,
    /// with `0 <= lower <= estimate() <= upper`.
    ///
    /// Dense: `estimate * (1 -/+ 2.24 * RSE)` (see `DENSE_Z95`). Sparse: linear counting at `p' = 25`, whose
    /// standard deviation is `sqrt(M (e^t - t - 1))`, `t = estimate / M`, `M = 2^25`; the
    /// half-width is at least 0.5 and the lower bound is at least the number of distinct
    /// sparse entries (each needs a distinct key).
    pub fn bounds(&self) -> (f64, f64) {
        let (_, lo, hi) = self.estimate_with_bounds();
        (lo, hi)
    }

    /// `(estimate(), bounds().0, bounds().1)` from one read of the registers.
    pub fn estimate_with_bounds(&self) -> (f64, f64, f64) {
        match self.view() {
            View::Sparse(entries) => {
                let n = entries.len();
                if n == 0 {
                    return (0.0, 0.0, 0.0);
                }
                // Every distinct entry is at least one distinct value, so `n` is a hard lower
                // bound. Above it, the values hidden by index collisions are about
                // Poisson(n^2 / 2m'): at small n a Gaussian band around the linear-counting
                // estimate is narrower than one collision, so the upper bound also covers the
                // Poisson 97.5% quantile of the collision count.
                let est = linear_counting(n);
                let t = est / SPARSE_M;
                let var = SPARSE_M * (t.exp_m1() - t);
                let half = Z95 * var.max(0.0).sqrt();
                let lambda = (n as f64) * (n as f64) / (2.0 * SPARSE_M);
                let upper = (est + half).max(n as f64 + poisson_quantile(lambda, 0.975) as f64);
                (est, (est - half).max(n as f64), upper)
            }
            View::Dense(regs) => {
                let est = ertl_estimate(&regs, self.precision);
                let d = DENSE_Z95 * self.relative_standard_error();
                (est, (est * (1.0 - d)).max(0.0), est * (1.0 + d))
            }
        }
    }

    /// Theoretical relative standard error of the dense estimator at this precision:
    /// `sqrt(3 ln 2 - 1) / sqrt(m) ~= 1.039 / sqrt(m)` (Ertl 2017). Sparse mode is far more
    /// accurate than this.
    pub fn relative_standard_error(&self) -> f64 {
        (3.0 * LN_2 - 1.0).sqrt() / ((1u64 << self.precision) as f64).sqrt()
    }

    /// Whether the canonical state is the sparse representation.
    pub fn is_sparse(&self) -> bool {
        matches!(self.view(), View::Sparse(_))
    }

    /// Whether nothing has been inserted.
    pub fn is_empty(&self) -> bool {
        match &self.repr {
            Repr::Sparse { entries, .. } => entries.is_empty(),
            Repr::Dense(regs) => regs.iter().all(|&r| r == 0),
        }
    }

    /// Bytes currently used: the struct itself plus its heap allocation.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + match &self.repr {
                Repr::Sparse { entries, .. } => entries.capacity() * std::mem::size_of::<u32>(),
                Repr::Dense(regs) => regs.len(),
            }
    }

    /// Compact, versioned, canonical serialization (see module docs for the format).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_bytes(&mut out);
        out
    }

    /// Append the serialized form ([`HllSketch::to_bytes`]) to `out`.
    pub fn write_bytes(&self, out: &mut Vec<u8>) {
        match self.view() {
            View::Sparse(entries) => {
                out.extend_from_slice(&[MAGIC, VERSION, self.precision, MODE_SPARSE]);
                out.reserve(5 + entries.len() * 3);
                put_varint(out, entries.len() as u64);
                let mut prev = 0u32;
                for &e in entries.iter() {
                    put_varint(out, u64::from(e.wrapping_sub(prev)));
                    prev = e;
                }
            }
            View::Dense(regs) => {
                let start = out.len();
                out.extend_from_slice(&[MAGIC, VERSION_CODED, self.precision, MODE_DENSE_CODED]);
                super::huffman::encode(&regs, out);
                // At tiny precisions the code table outweighs the saving: packed is smaller.
                if out.len() - start > 4 + regs.len() / 4 * 3 {
                    out.truncate(start);
                    out.extend_from_slice(&[MAGIC, VERSION, self.precision, MODE_DENSE]);
                    pack_registers(&regs, out);
                }
            }
        }
    }

    /// The registers packed 6 bits each (the first landing's dense format, version 1).
    #[cfg(test)]
    fn packed_v1(&self) -> Vec<u8> {
        let mut out = vec![MAGIC, VERSION, self.precision, MODE_DENSE];
        if let View::Dense(regs) = self.view() {
            pack_registers(&regs, &mut out);
        }
        out
    }

    /// Parse bytes produced by [`HllSketch::to_bytes`]. Validates everything and never
    /// panics; malformed or non-canonical input yields an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SketchError> {
        if bytes.len() < 4 {
            return Err(corrupt("truncated header"));
        }
        if bytes[0] != MAGIC {
            return Err(corrupt("bad magic byte"));
        }
        let mode_ok = match bytes[1] {
            VERSION => matches!(bytes[3], MODE_SPARSE | MODE_DENSE),
            VERSION_CODED => bytes[3] == MODE_DENSE_CODED,
            other => {
                return Err(SketchError(format!(
                    "corrupt HLL sketch bytes: unsupported format version {other}"
                )))
            }
        };
        if !mode_ok {
            return Err(corrupt("mode does not match the format version"));
        }
        let p = bytes[2];
        if !(MIN_PRECISION..=MAX_PRECISION).contains(&p) {
            return Err(bad_precision(p));
        }
        let mut rd = ByteReader::new(bytes, "HLL sketch");
        rd.take(4)?;
        match bytes[3] {
            MODE_SPARSE => {
                let n = rd.varint()?;
                if n > sparse_limit(p) as u64 {
                    return Err(corrupt("too many sparse entries"));
                }
                let n = n as usize;
                if n > rd.remaining().len() {
                    return Err(corrupt("truncated sparse entries"));
                }
                let mut entries = Vec::with_capacity(n);
                let mut prev = 0u64;
                for i in 0..n {
                    let delta = rd.varint()?;
                    if i > 0 && delta == 0 {
                        return Err(corrupt("sparse entries not strictly increasing"));
                    }
                    let cur = prev + delta; // both < 2^35: no overflow
                    if cur >= 1u64 << (SPARSE_PRECISION + RHO_BITS) {
                        return Err(corrupt("sparse entry out of range"));
                    }
                    let e = cur as u32;
                    let rho = e & RHO_MASK;
                    if rho == 0 || rho > MAX_SPARSE_RHO {
                        return Err(corrupt("sparse rho out of range"));
                    }
                    if i > 0 && (e >> RHO_BITS) <= ((prev as u32) >> RHO_BITS) {
                        return Err(corrupt("duplicate sparse index"));
                    }
                    entries.push(e);
                    prev = cur;
                }
                if !rd.remaining().is_empty() {
                    return Err(corrupt("trailing bytes"));
                }
                let sorted = entries.len();
                Ok(HllSketch {
                    precision: p,
                    repr: Repr::Sparse { entries, sorted },
                })
            }
            MODE_DENSE => {
                let m = 1usize << p;
                let body = rd.remaining();
                if body.len() != m / 4 * 3 {
                    return Err(corrupt("dense payload has wrong length"));
                }
                let max_rho = 65 - u32::from(p);
                let mut regs = vec![0u8; m].into_boxed_slice();
                let mut any = false;
                for (c, out) in body.chunks_exact(3).zip(regs.chunks_exact_mut(4)) {
                    let w = u32::from(c[0]) | (u32::from(c[1]) << 8) | (u32::from(c[2]) << 16);
                    for (k, r) in out.iter_mut().enumerate() {
                        let v = (w >> (6 * k as u32)) & 63;
                        if v > max_rho {
                            return Err(corrupt("dense register out of range"));
                        }
                        any |= v != 0;
                        *r = v as u8;
                    }
                }
                if !any {
                    return Err(corrupt("dense sketch with no registers set"));
                }
                Ok(HllSketch {
                    precision: p,
                    repr: Repr::Dense(regs),
                })
            }
            MODE_DENSE_CODED => {
                let m = 1usize << p;
                let regs =
                    super::huffman::decode(rd.remaining(), m).map_err(|e| SketchError(e.0))?;
                let max_rho = 65 - p;
                if regs.iter().any(|&r| r > max_rho) {
                    return Err(corrupt("dense register out of range"));
                }
                if regs.iter().all(|&r| r == 0) {
                    return Err(corrupt("dense sketch with no registers set"));
                }
                Ok(HllSketch {
                    precision: p,
                    repr: Repr::Dense(regs.into_boxed_slice()),
                })
            }
            other => Err(SketchError(format!(
                "corrupt HLL sketch bytes: unknown mode {other}"
            ))),
        }
    }
}

impl Default for HllSketch {
    fn default() -> Self {
        HllSketch {
            precision: DEFAULT_PRECISION,
            repr: Repr::Sparse {
                entries: Vec::new(),
                sorted: 0,
            },
        }
    }
}

impl PartialEq for HllSketch {
    fn eq(&self, other: &Self) -> bool {
        if self.precision != other.precision {
            return false;
        }
        match (self.view(), other.view()) {
            (View::Sparse(a), View::Sparse(b)) => a == b,
            (View::Dense(a), View::Dense(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for HllSketch {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::SplitMix64;

    fn dense_empty(p: u8) -> HllSketch {
        HllSketch {
            precision: p,
            repr: Repr::Dense(vec![0u8; 1usize << p].into_boxed_slice()),
        }
    }

    /// Runs of hashes inserted at once give the bytes of inserting them one by one, through
    /// sparse mode, across the switch to dense and in dense mode.
    #[test]
    fn inserting_runs_equals_inserting_one_by_one() {
        let mut rng = SplitMix64(17);
        for p in [4u8, 10, 12] {
            let (mut runs, mut one) = (HllSketch::new(p).unwrap(), HllSketch::new(p).unwrap());
            for round in 0..40 {
                let len = [0usize, 1, 3, 17, 200, 1500][rng.below(6) as usize];
                // Repeats as well as new hashes.
                let hashes: Vec<u64> = (0..len)
                    .map(|_| {
                        if rng.below(4) == 0 {
                            rng.below(64)
                        } else {
                            rng.next()
                        }
                    })
                    .collect();
                runs.insert_hashes(hashes.iter().copied());
                for &h in &hashes {
                    one.insert_hash(h);
                }
                assert_eq!(runs.to_bytes(), one.to_bytes(), "p {p}, round {round}");
            }
            assert!(
                matches!(runs.repr, Repr::Dense(_)),
                "p {p} reached dense mode"
            );
        }
    }

    /// One commit's small sketch merged into a large sparse one goes through the insert
    /// buffer; the result must be the sketch of the union, also when a flush crosses into
    /// dense mode in the middle of a merge.
    #[test]
    fn merging_small_sketches_into_a_large_sparse_one_equals_the_union() {
        let mut r = SplitMix64(99);
        for p in [8u8, 10, 12] {
            let mut all: Vec<u64> = (0..sparse_limit(p) - 40).map(|_| r.next()).collect();
            let mut acc = HllSketch::from_hashes(p, all.iter().copied()).unwrap();
            for step in 0..300 {
                let small: Vec<u64> = (0..1 + step % 9).map(|_| r.next()).collect();
                // Sometimes the same values again: duplicates must not count twice.
                let small = if step % 5 == 0 {
                    all[..3].to_vec()
                } else {
                    small
                };
                acc.merge(&HllSketch::from_hashes(p, small.iter().copied()).unwrap())
                    .unwrap();
                all.extend(small);
                if step % 50 == 0 {
                    let want = HllSketch::from_hashes(p, all.iter().copied()).unwrap();
                    assert_eq!(acc, want, "p={p} step={step}");
                    assert_eq!(acc.to_bytes(), want.to_bytes(), "p={p} step={step}");
                }
            }
            assert!(
                !acc.is_sparse(),
                "p={p}: the merges should have crossed into dense mode"
            );
            let want = HllSketch::from_hashes(p, all.iter().copied()).unwrap();
            assert_eq!(acc.to_bytes(), want.to_bytes());
        }
    }

    fn build(p: u8, hashes: &[u64]) -> HllSketch {
        let mut s = HllSketch::new(p).unwrap();
        for &h in hashes {
            s.insert_hash(h);
        }
        s
    }

    /// Hashes with adversarial bit patterns (zero runs in the middle / tail) plus random ones.
    fn tricky_hashes(rng: &mut SplitMix64, n: usize) -> Vec<u64> {
        let mut v = vec![0u64, u64::MAX, 1, 1 << 63, 1 << 39, 1 << 38, 1 << 40];
        for i in 0..n {
            let h = rng.next();
            let a = (i % 64) as u32;
            let width = ((i / 64) % 45) as u32;
            // mask of `width` bits starting at bit `a` (clipped at 64)
            let run = if width == 0 {
                0
            } else {
                (u64::MAX >> (64 - width)) << a
            };
            v.push(match i % 4 {
                0 => h,
                1 => h & (u64::MAX << a),
                2 => h & !run,
                _ => ((h >> 39) << 39) | (h & ((1u64 << (i % 39)) - 1)),
            });
        }
        v
    }

    #[test]
    fn mix64_is_pinned() {
        assert_eq!(mix64(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(mix64(1), 0x910A_2DEC_8902_5CC1);
        assert_eq!(key_hash(0), mix64(mix64(0)));
        assert_eq!(key_hash(7), mix64(7 ^ mix64(0)));
        assert_eq!(key_hash(5u128 << 64 | 9), mix64(9 ^ mix64(5)));
    }

    #[test]
    fn sparse_to_dense_matches_direct_dense() {
        let mut rng = SplitMix64(42);
        for p in MIN_PRECISION..=MAX_PRECISION {
            let hashes = tricky_hashes(&mut rng, 3000);
            let mut direct = dense_empty(p);
            for &h in &hashes {
                direct.insert_hash(h);
            }
            // Force conversion regardless of the sparse limit.
            let mut sp = HllSketch::new(p).unwrap();
            let mut entries: Vec<u32> = hashes.iter().map(|&h| encode_sparse(h)).collect();
            sort_dedup(&mut entries);
            let expect_sparse = entries.len() <= sparse_limit(p);
            sp.repr = Repr::Sparse {
                sorted: entries.len(),
                entries,
            };
            sp.densify();
            assert_eq!(sp, direct, "p={p}");
            // And through the normal path, the canonical state is dense iff over the limit.
            let mut normal = build(p, &hashes);
            assert_eq!(normal.is_sparse(), expect_sparse, "p={p}");
            normal.normalize();
            normal.densify();
            assert_eq!(normal, direct, "p={p}");
        }
        // Individual decode check.
        for &h in &tricky_hashes(&mut rng, 5000) {
            for p in MIN_PRECISION..=MAX_PRECISION {
                assert_eq!(decode_sparse(encode_sparse(h), p), dense_index_rho(h, p));
            }
        }
    }

    #[test]
    fn canonical_merge() {
        let mut rng = SplitMix64(7);
        for &p in &[4u8, 8, 10, 14] {
            let limit = sparse_limit(p);
            let sizes = [
                0usize,
                1,
                3,
                limit.saturating_sub(2),
                limit,
                limit + 1,
                limit + 5,
                2 * limit,
                3000,
                20_000,
            ];
            for &n in &sizes {
                // draws with repetition from a key space of size ~n
                let space = (n as u64).max(1);
                let stream: Vec<u64> = (0..n + n / 3)
                    .map(|_| key_hash(u128::from(rng.below(space)) + 1000 * u128::from(p)))
                    .collect();
                let whole = build(p, &stream);
                let whole_bytes = whole.to_bytes();
                // reversed order gives the same state
                let mut rev = stream.clone();
                rev.reverse();
                assert_eq!(build(p, &rev), whole);
                assert_eq!(build(p, &rev).to_bytes(), whole_bytes);
                for trial in 0..6 {
                    let k = 2 + (trial % 5);
                    let mut parts: Vec<Vec<u64>> = vec![Vec::new(); k];
                    for &h in &stream {
                        parts[rng.below(k as u64) as usize].push(h);
                    }
                    for part in parts.iter_mut() {
                        rng.shuffle(part);
                    }
                    let mut sketches: Vec<HllSketch> = parts.iter().map(|x| build(p, x)).collect();
                    rng.shuffle(&mut sketches);
                    let merged = if trial % 2 == 0 {
                        // left fold
                        let mut acc = HllSketch::new(p).unwrap();
                        for s in &sketches {
                            acc.merge(s).unwrap();
                        }
                        acc
                    } else {
                        // pairwise tree
                        while sketches.len() > 1 {
                            let b = sketches.pop().unwrap();
                            let mut a = sketches.pop().unwrap();
                            a.merge(&b).unwrap();
                            sketches.insert(0, a);
                        }
                        sketches.pop().unwrap()
                    };
                    assert_eq!(merged, whole, "p={p} n={n} trial={trial}");
                    assert_eq!(merged.is_sparse(), whole.is_sparse());
                    assert_eq!(merged.to_bytes(), whole_bytes, "p={p} n={n} trial={trial}");
                    assert_eq!(merged.estimate(), whole.estimate());
                }
            }
        }
    }

    #[test]
    fn merge_errors_and_bad_precision() {
        assert_eq!(HllSketch::new(3), Err(bad_precision(3)));
        assert!(HllSketch::new(19)
            .unwrap_err()
            .0
            .contains("precision 19 (must be in 4..=18)"));
        let mut a = HllSketch::new(10).unwrap();
        let b = HllSketch::new(12).unwrap();
        let e = a.merge(&b).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot merge HLL sketches with different precisions (10 vs 12)"
        );
    }

    #[test]
    fn from_hashes_equals_inserts() {
        let mut rng = SplitMix64(7);
        for n in [0usize, 1, 10, 1000, 4096, 5000, 100_000] {
            let hashes: Vec<u64> = (0..n).map(|_| rng.next()).collect();
            let bulk = HllSketch::from_hashes(14, hashes.iter().copied()).unwrap();
            let one = build(14, &hashes);
            assert_eq!(bulk, one);
            assert_eq!(bulk.to_bytes(), one.to_bytes());
        }
    }

    #[test]
    fn roundtrip() {
        let mut rng = SplitMix64(99);
        for p in MIN_PRECISION..=MAX_PRECISION {
            for &n in &[0usize, 1, 2, 17, 100, 5000, 100_000] {
                let hashes: Vec<u64> = (0..n).map(|_| rng.next()).collect();
                let s = build(p, &hashes);
                let bytes = s.to_bytes();
                let back = HllSketch::from_bytes(&bytes).unwrap();
                assert_eq!(back, s);
                assert_eq!(back.to_bytes(), bytes);
                assert_eq!(back.estimate(), s.estimate());
                assert_eq!(back.is_sparse(), s.is_sparse());
                assert_eq!(back.is_empty(), n == 0);
                // Dense: coded, well under the 6 bits per register of the packed format,
                // which is still read (stores of the first landing).
                if !s.is_sparse() {
                    assert!(bytes.len() <= 4 + (1usize << p) / 4 * 3, "p={p} n={n}");
                    if p >= 10 {
                        assert!(bytes.len() * 10 < (1usize << p) / 4 * 3 * 7, "p={p} n={n}");
                    }
                    let old = s.packed_v1();
                    assert_eq!(old.len(), 4 + (1usize << p) / 4 * 3);
                    let from_old = HllSketch::from_bytes(&old).unwrap();
                    assert_eq!(from_old, s);
                    assert_eq!(from_old.to_bytes(), bytes);
                    assert_eq!(from_old.estimate(), s.estimate());
                }
            }
        }
        let mut tricky = HllSketch::new(14).unwrap();
        for &h in &tricky_hashes(&mut rng, 100) {
            tricky.insert_hash(h);
        }
        assert_eq!(HllSketch::from_bytes(&tricky.to_bytes()).unwrap(), tricky);
    }

    #[test]
    fn from_bytes_rejects_garbage() {
        let mut rng = SplitMix64(5);
        let mut samples = Vec::new();
        for &(p, n) in &[
            (14u8, 0usize),
            (14, 1),
            (14, 300),
            (14, 50_000),
            (4, 3),
            (4, 1000),
        ] {
            let hashes: Vec<u64> = (0..n).map(|_| rng.next()).collect();
            samples.push(build(p, &hashes).to_bytes());
        }
        for bytes in &samples {
            // every strict prefix fails
            for cut in 0..bytes.len() {
                assert!(HllSketch::from_bytes(&bytes[..cut]).is_err(), "cut {cut}");
            }
            // trailing garbage fails
            let mut ext = bytes.clone();
            ext.push(0);
            assert!(HllSketch::from_bytes(&ext).is_err());
            // random single-byte corruptions never panic; if accepted they are canonical
            for _ in 0..2000 {
                let mut b = bytes.clone();
                let i = rng.below(b.len() as u64) as usize;
                b[i] ^= 1 << rng.below(8);
                if let Ok(s) = HllSketch::from_bytes(&b) {
                    assert_eq!(s.to_bytes(), b);
                }
            }
        }
        // header errors
        assert!(HllSketch::from_bytes(&[]).is_err());
        assert!(HllSketch::from_bytes(&[0, 1, 14, 0, 0]).is_err());
        assert!(HllSketch::from_bytes(&[MAGIC, 2, 14, 0, 0]).is_err());
        assert_eq!(
            HllSketch::from_bytes(&[MAGIC, VERSION, 30, 0, 0]),
            Err(bad_precision(30))
        );
        assert!(HllSketch::from_bytes(&[MAGIC, VERSION, 14, 7, 0]).is_err());
        assert!(HllSketch::from_bytes(&[MAGIC, VERSION, 14, 0, 0]).is_ok());
        // non-minimal varint for the count
        assert!(HllSketch::from_bytes(&[MAGIC, VERSION, 14, 0, 0x80, 0x00]).is_err());
        // rho 0 entry
        assert!(HllSketch::from_bytes(&[MAGIC, VERSION, 14, 0, 1, 0x40]).is_err());
        // valid single entry, then a duplicate index
        assert!(HllSketch::from_bytes(&[MAGIC, VERSION, 14, 0, 1, 0x41]).is_ok());
        assert!(HllSketch::from_bytes(&[MAGIC, VERSION, 14, 0, 2, 0x41, 0x01]).is_err());
        // overlong varint
        assert!(HllSketch::from_bytes(&[
            MAGIC, VERSION, 14, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
        ])
        .is_err());
        // all-zero dense and out-of-range registers
        let mut dense = vec![MAGIC, VERSION, 4, MODE_DENSE];
        dense.extend_from_slice(&[0u8; 12]);
        assert!(HllSketch::from_bytes(&dense).is_err());
        dense[4] = 62; // register 0 = 62 > 65 - 4
        assert!(HllSketch::from_bytes(&dense).is_err());
        dense[4] = 61;
        assert!(HllSketch::from_bytes(&dense).is_ok());
        // pure random input never panics
        for len in 0..200 {
            for _ in 0..50 {
                let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                if len > 3 && rng.below(2) == 0 {
                    b[0] = MAGIC;
                    b[1] = VERSION;
                    b[2] = 4 + rng.below(15) as u8;
                    b[3] = rng.below(2) as u8;
                }
                let _ = HllSketch::from_bytes(&b);
            }
        }
    }

    #[test]
    fn bounds_and_empty() {
        let s = HllSketch::new(14).unwrap();
        assert!(s.is_empty() && s.is_sparse());
        assert_eq!(s.estimate(), 0.0);
        assert_eq!(s.bounds(), (0.0, 0.0));
        let mut rng = SplitMix64(3);
        for &p in &[4u8, 9, 14, 18] {
            let mut s = HllSketch::new(p).unwrap();
            let mut n = 0usize;
            for &target in &[1usize, 5, 50, 500, 5000, 50_000, 300_000] {
                while n < target {
                    s.insert_hash(rng.next());
                    n += 1;
                }
                let e = s.estimate();
                let (lo, hi) = s.bounds();
                assert!(lo >= 0.0 && lo <= e && e <= hi, "p={p} n={n} {lo} {e} {hi}");
                assert!(!s.is_empty());
            }
        }
    }

    #[test]
    fn memory_is_small_when_sparse() {
        let mut rng = SplitMix64(11);
        let mut s = HllSketch::new(14).unwrap();
        let empty = s.memory_bytes();
        for _ in 0..10 {
            s.insert_hash(rng.next());
        }
        s.compact();
        assert!(s.is_sparse());
        assert_eq!(s.memory_bytes(), empty + 40);
        for _ in 0..100_000 {
            s.insert_hash(rng.next());
        }
        assert!(!s.is_sparse());
        assert_eq!(s.memory_bytes(), empty + 16384);
    }

    /// Returns (mean signed relative error, rms relative error, max |rel err|).
    fn measure(p: u8, n: usize, seeds: u64) -> (f64, f64, f64, bool) {
        let (mut sum, mut sq, mut mx) = (0.0, 0.0, 0.0f64);
        let mut sparse = true;
        for seed in 0..seeds {
            let mut s = HllSketch::new(p).unwrap();
            for i in 0..n as u64 {
                s.insert_key((u128::from(seed + 1) << 64) | u128::from(i));
            }
            let rel = s.estimate() / n as f64 - 1.0;
            sparse &= s.is_sparse();
            sum += rel;
            sq += rel * rel;
            mx = mx.max(rel.abs());
        }
        let k = seeds as f64;
        (sum / k, (sq / k).sqrt(), mx, sparse)
    }

    #[test]
    fn accuracy() {
        let p = DEFAULT_PRECISION;
        let seeds = 20u64;
        let rse = HllSketch::new(p).unwrap().relative_standard_error();
        println!(
            "p={p} seeds={seeds} theoretical dense RSE={:.4}%",
            rse * 100.0
        );
        println!(
            "{:>10} {:>7} {:>12} {:>10} {:>10}",
            "card", "mode", "mean rel", "rms rel", "max |rel|"
        );
        for &n in &[1usize, 10, 100, 1000, 10_000, 100_000, 1_000_000] {
            let (mean, rms, mx, sparse) = measure(p, n, seeds);
            println!(
                "{:>10} {:>7} {:>11.4}% {:>9.4}% {:>9.4}%",
                n,
                if sparse { "sparse" } else { "dense" },
                mean * 100.0,
                rms * 100.0,
                mx * 100.0
            );
            if n <= 1000 {
                assert!(sparse);
                assert!(mx <= 0.01, "n={n} max rel err {mx}");
            } else {
                assert!(
                    mean.abs() <= 3.0 * rse / (seeds as f64).sqrt(),
                    "n={n} mean {mean}"
                );
                assert!(rms <= 2.0 * rse, "n={n} rms {rms}");
            }
        }
    }

    #[test]
    fn accuracy_other_precisions() {
        let mut rng = SplitMix64(1234);
        for &p in &[4u8, 6, 8, 10, 12, 16, 18] {
            let s0 = HllSketch::new(p).unwrap();
            let rse = s0.relative_standard_error();
            for &n in &[10usize, 100, 1000, 10_000, 100_000, 400_000] {
                let mut s = HllSketch::new(p).unwrap();
                for _ in 0..n {
                    s.insert_hash(rng.next());
                }
                let rel = (s.estimate() / n as f64 - 1.0).abs();
                let tol = if s.is_sparse() { 0.01 } else { 4.5 * rse };
                assert!(rel <= tol, "p={p} n={n} rel={rel} tol={tol}");
            }
        }
    }
}
