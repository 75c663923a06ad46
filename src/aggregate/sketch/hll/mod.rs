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
//! * **Sparse mode** (`sparse`, with the lossless conversion to dense): a sorted, deduplicated
//!   list of `u32` entries at the internal precision `p' = 25`. Each entry is `(idx' << 6) | rho'` where `idx'` is the top 25 bits of the hash and
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
//! * **Estimator** (`estimator`): Otmar Ertl's improved raw estimator ("New cardinality
//!   estimation algorithms for HyperLogLog sketches", 2017) based on the register histogram and the
//!   `sigma`/`tau` functions; no bias-correction tables are needed.
//! * **Codec** (`codec`): the serialized format, canonical and versioned.
//!
//! The sketch (this file) owns the representation, inserts, normalisation and merges; `tests`
//! holds the tests of all four parts.

use std::borrow::Cow;

use super::codec::SketchError;

mod codec;
mod estimator;
mod sparse;
#[cfg(test)]
mod tests;

use sparse::*;

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
