//! The sparse representation's entries (`(idx' << 6) | rho'` at precision 25), their sorting
//! and merging, and their lossless conversion into dense registers.

use super::*;

/// Maximum number of sparse entries; above this the sketch is dense.
#[inline]
pub(super) fn sparse_limit(p: u8) -> usize {
    (1usize << p) / 4
}

/// Encode a hash as a sparse entry `(idx' << 6) | rho'`.
#[inline]
pub(super) fn encode_sparse(hash: u64) -> u32 {
    let idx = (hash >> (64 - SPARSE_PRECISION)) as u32;
    let w = (hash << SPARSE_PRECISION) | (1u64 << (SPARSE_PRECISION - 1));
    let rho = w.leading_zeros() + 1; // 1..=40
    (idx << RHO_BITS) | rho
}

/// Dense register index and rho for a hash at precision `p`.
#[inline]
pub(super) fn dense_index_rho(hash: u64, p: u8) -> (usize, u8) {
    let p = u32::from(p);
    let idx = (hash >> (64 - p)) as usize;
    let w = (hash << p) | (1u64 << (p - 1));
    (idx, (w.leading_zeros() + 1) as u8) // 1..=65-p
}

/// Losslessly derive the dense register index and rho (at precision `p`) from a sparse entry.
#[inline]
pub(super) fn decode_sparse(e: u32, p: u8) -> (usize, u8) {
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
pub(super) fn sort_dedup(v: &mut Vec<u32>) {
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
pub(super) fn merge_sorted(a: &[u32], b: &[u32]) -> Vec<u32> {
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
pub(super) fn absorb_entries(regs: &mut [u8], entries: &[u32], p: u8) {
    for &e in entries {
        let (idx, rho) = decode_sparse(e, p);
        if let Some(r) = regs.get_mut(idx) {
            if rho > *r {
                *r = rho;
            }
        }
    }
}

pub(super) fn absorb_dense(regs: &mut [u8], other: &[u8]) {
    for (r, &o) in regs.iter_mut().zip(other.iter()) {
        *r = (*r).max(o);
    }
}

pub(super) fn entries_to_dense(entries: &[u32], p: u8) -> Box<[u8]> {
    let mut regs = vec![0u8; 1usize << p].into_boxed_slice();
    absorb_entries(&mut regs, entries, p);
    regs
}
