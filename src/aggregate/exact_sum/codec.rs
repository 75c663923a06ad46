//! The lossless binary form of an exact sum (its partials, flags and carry), canonical: equal
//! sums serialize to identical bytes, and every malformed input is refused.

use super::*;
use crate::aggregate::sketch::codec::ByteWriter;

impl ExactSum {
    /// Serializes the state: `[version=1, flags, (big: i128 LE if flags&8),
    /// n: u16 LE, n partials as f64 LE]`. Typical size is `4 + 8 * n` bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 16 + 8 * self.partials().len());
        self.write_bytes(&mut out);
        out
    }

    /// Append the serialized form ([`ExactSum::to_bytes`]) to `out`.
    pub fn write_bytes(&self, out: &mut Vec<u8>) {
        let p = self.partials();
        let big = self.big();
        out.push(SER_VERSION);
        let mut fl = self.flags & SPECIAL_MASK;
        if big != 0 {
            fl |= SER_HAS_BIG;
        }
        out.push(fl);
        if big != 0 {
            out.put(big);
        }
        // Non-overlapping partials of a value below 2^1030 number < 2200.
        out.put(p.len() as u16);
        for &x in p {
            out.put(x);
        }
    }

    /// Parses [`to_bytes`](Self::to_bytes) output; `None` for anything
    /// malformed (unknown version or flags, wrong length, partials that are
    /// not finite, non-zero, below `2^1000`, non-overlapping and increasing).
    /// Never panics; a round trip reproduces the state exactly.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (&ver, rest) = bytes.split_first()?;
        if ver != SER_VERSION {
            return None;
        }
        let (&fl, mut rest) = rest.split_first()?;
        if fl & !SER_KNOWN_FLAGS != 0 {
            return None;
        }
        let mut big = 0i128;
        if fl & SER_HAS_BIG != 0 {
            let (h, r) = rest.split_at_checked(16)?;
            rest = r;
            big = i128::from_le_bytes(h.try_into().ok()?);
            if big == 0 || big.unsigned_abs() > SER_MAX_BIG {
                return None;
            }
        }
        let (h, r) = rest.split_at_checked(2)?;
        let n = u16::from_le_bytes([h[0], h[1]]) as usize;
        if r.len() != n * 8 {
            return None;
        }
        let mut p = Vec::with_capacity(n);
        for c in r.chunks_exact(8) {
            let x = f64::from_le_bytes(c.try_into().ok()?);
            // finite, non-zero, below 2^1000; then non-overlapping and
            // increasing with respect to the previous partial
            if x.is_nan() || x == 0.0 || x.abs() >= BIG_UNIT {
                return None;
            }
            if p.last().is_some_and(|&prev: &f64| prev.abs() >= low_bit(x)) {
                return None;
            }
            p.push(x);
        }
        let mut s = Self {
            flags: fl & SPECIAL_MASK,
            ..Self::default()
        };
        if n <= INLINE {
            s.inline[..n].copy_from_slice(&p);
            s.len = n as u8;
        } else {
            s.ext_mut().partials = p;
            s.flags |= FLAG_SPILLED;
        }
        if big != 0 {
            s.add_big(big);
        }
        Some(s)
    }
}
