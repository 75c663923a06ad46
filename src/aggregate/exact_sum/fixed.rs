//! The fixed-point front of a sum: values near the group's first value accumulate exactly into
//! a 128-bit integer, which is flushed into the exact sum.

use super::*;

/// A per-group fast path in front of an [`ExactSum`]: values whose exponent lies in a window
/// fixed by the group's first value are added as integers (one shift and one add), and flushed
/// into the exact sum every `BLOCK` values. Values outside the window (and zeros, subnormals,
/// non-finite values) go straight to the exact sum, so the total is always exact.
///
/// Bound: a mantissa (< 2^53) shifted by at most `WINDOW` bits is below 2^116, and at most
/// `BLOCK` (2^10) of them are pending, so the integer stays below 2^126.
#[derive(Clone, Copy, Debug, Default)]
pub struct FixedSum {
    /// The pending integer as two words (no 16-byte alignment: a group's slot stays 32 bytes).
    acc_lo: u64,
    acc_hi: i64,
    /// Values added through this front (non-zero or not, in the window or not).
    pub count: u64,
    /// Exponent field of the integer's unit (0: no value yet).
    lo_e: u16,
    pending: u16,
}

/// How many binades below the group's first value the window reaches.
pub(super) const FIXED_BELOW: u64 = 40;

impl FixedSum {
    /// Nothing pending, `count` values already in the exact sum (a loaded state).
    pub fn with_count(count: u64) -> Self {
        FixedSum {
            count,
            ..FixedSum::default()
        }
    }

    #[inline(always)]
    fn acc(&self) -> i128 {
        ((self.acc_hi as i128) << 64) | self.acc_lo as i128
    }

    /// Adds `x` to this pending integer or, outside the window, to `exact`.
    #[inline(always)]
    pub fn add(&mut self, exact: &mut ExactSum, x: f64) {
        self.count += 1;
        let b = x.to_bits();
        let e = (b >> 52) & 0x7ff;
        if e == 0 || e >= FAST_MAX_EXP_FIELD {
            exact.add(x); // zero, subnormal, huge or non-finite
            return;
        }
        if self.lo_e == 0 {
            self.lo_e = e.saturating_sub(FIXED_BELOW).max(1) as u16;
        }
        let lo = self.lo_e as u64;
        if e < lo || e > lo + WINDOW {
            exact.add_finite(x);
            return;
        }
        let v = (((b & FRAC_MASK) | IMPLICIT_BIT) as i128) << (e - lo);
        let sign = ((b as i64) >> 63) as i128; // 0 or -1
        let acc = self.acc() + ((v ^ sign) - sign);
        self.acc_lo = acc as u64;
        self.acc_hi = (acc >> 64) as i64;
        self.pending += 1;
        if self.pending as usize >= BLOCK {
            self.flush(exact);
        }
    }

    /// Move the pending integer into `exact`.
    #[inline]
    pub fn flush(&mut self, exact: &mut ExactSum) {
        if self.pending > 0 {
            exact.add_fixed(self.acc(), self.lo_e as u64);
            self.acc_lo = 0;
            self.acc_hi = 0;
            self.pending = 0;
        }
    }

    /// Nothing pending (every value added so far is in the exact sum).
    pub fn is_flushed(&self) -> bool {
        self.pending == 0
    }
}
