//! The serialized format of a HyperLogLog sketch (versions 1 and 2).
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

use super::*;
use crate::aggregate::sketch::codec::ByteReader;

pub(super) const MAGIC: u8 = 0xA7;
pub(super) const VERSION: u8 = 1;
pub(super) const MODE_SPARSE: u8 = 0;
pub(super) const MODE_DENSE: u8 = 1;
pub(super) const VERSION_CODED: u8 = 2;
pub(super) const MODE_DENSE_CODED: u8 = 2;

pub(super) fn corrupt(msg: &str) -> SketchError {
    SketchError(format!("corrupt HLL sketch bytes: {msg}"))
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
                crate::aggregate::sketch::huffman::encode(&regs, out);
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
    pub(super) fn packed_v1(&self) -> Vec<u8> {
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
                let regs = crate::aggregate::sketch::huffman::decode(rd.remaining(), m)
                    .map_err(|e| SketchError(e.0))?;
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
