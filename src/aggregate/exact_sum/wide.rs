//! Exact rounding of a sum whose carry (multiples of 2^1000) is not zero, through a wide
//! two's-complement integer in units of 2^-1074. Rare (only sums near the f64 range need it).

use super::*;

impl ExactSum {
    /// Exact rounding through a wide two's-complement integer in units of
    /// `2^-1074`; used only when `big != 0`.
    #[cold]
    pub(super) fn finalize_wide(&self, big: i128) -> f64 {
        // |sum(partials)| < 2^1001, so |big| > 2^30 always overflows.
        if big.unsigned_abs() > 1 << 30 {
            return if big > 0 {
                f64::INFINITY
            } else {
                f64::NEG_INFINITY
            };
        }
        wide_round(self.partials(), big)
    }
}

const LIMBS: usize = 36;

/// Adds `(-1)^neg * mag * 2^shift` to a two's-complement integer.
fn wide_add(w: &mut [u64; LIMBS], mag: u128, shift: usize, neg: bool) {
    let idx = shift / 64;
    let off = (shift % 64) as u32;
    let lo = mag as u64;
    let hi = (mag >> 64) as u64;
    let words = if off == 0 {
        [lo, hi, 0]
    } else {
        [
            lo << off,
            (hi << off) | (lo >> (64 - off)),
            hi >> (64 - off),
        ]
    };
    let mut carry = 0u64;
    for (k, limb) in w.iter_mut().enumerate().skip(idx) {
        let add = if k - idx < 3 { words[k - idx] } else { 0 };
        if neg {
            let (a, b1) = limb.overflowing_sub(add);
            let (a, b2) = a.overflowing_sub(carry);
            *limb = a;
            carry = (b1 | b2) as u64;
        } else {
            let (a, c1) = limb.overflowing_add(add);
            let (a, c2) = a.overflowing_add(carry);
            *limb = a;
            carry = (c1 | c2) as u64;
        }
        if k - idx >= 2 && carry == 0 {
            break;
        }
    }
}

/// Correctly rounded `big * 2^1000 + sum(partials)` (`|big| <= 2^30`).
pub(super) fn wide_round(partials: &[f64], big: i128) -> f64 {
    let mut w = [0u64; LIMBS];
    for &x in partials {
        let b = x.to_bits();
        let e = (b >> 52) & 0x7ff;
        let m = (b & FRAC_MASK) | (((e != 0) as u64) << 52);
        let shift = e.max(1) as usize - 1;
        wide_add(&mut w, m as u128, shift, (b >> 63) != 0);
    }
    if big != 0 {
        wide_add(&mut w, big.unsigned_abs(), 2074, big < 0);
    }
    let neg = w[LIMBS - 1] >> 63 != 0;
    if neg {
        let mut carry = 1u64;
        for limb in w.iter_mut() {
            let (a, c) = (!*limb).overflowing_add(carry);
            *limb = a;
            carry = c as u64;
        }
    }
    let top = match w.iter().rposition(|&l| l != 0) {
        None => return 0.0,
        Some(t) => t,
    };
    let h = top * 64 + 63 - w[top].leading_zeros() as usize;
    let sign = if neg { 1u64 << 63 } else { 0 };
    if h < 53 {
        // Exactly representable (subnormal or smallest binade).
        return f64::from_bits(sign | w[0]);
    }
    let get_bit = |pos: usize| (w[pos / 64] >> (pos % 64)) & 1;
    let start = h - 52;
    let (idx, off) = (start / 64, start % 64);
    let mut mant = w[idx] >> off;
    if off > 0 && idx + 1 < LIMBS {
        mant |= w[idx + 1] << (64 - off);
    }
    mant &= (1u64 << 53) - 1;
    let round = get_bit(start - 1);
    let rpos = start - 1;
    let sticky =
        w[..rpos / 64].iter().any(|&l| l != 0) || (w[rpos / 64] & ((1u64 << (rpos % 64)) - 1)) != 0;
    let mut exp_field = (h - 51) as u64;
    if round == 1 && (sticky || mant & 1 == 1) {
        mant += 1;
        if mant == 1 << 53 {
            mant >>= 1;
            exp_field += 1;
        }
    }
    if exp_field >= 2047 {
        return f64::from_bits(sign | (0x7ff << 52));
    }
    f64::from_bits(sign | (exp_field << 52) | (mant & FRAC_MASK))
}
