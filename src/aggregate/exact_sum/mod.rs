//! Exact, order-independent floating-point summation.
//!
//! [`ExactSum`] accumulates `f64` values without ever losing a bit: the state
//! always represents the *exact* mathematical sum of everything added (plus
//! flags for non-finite inputs), and [`ExactSum::finalize`] returns that exact
//! sum correctly rounded to the nearest `f64` (ties to even). Because the
//! result depends only on the multiset of inputs, it is bit-identical for any
//! order, partitioning, merge tree or thread count, and it equals Python's
//! `math.fsum` on the same values wherever `fsum` returns a value.
//!
//! # Representation
//!
//! * A list of Shewchuk "partials" (as in CPython's `fsum`): non-zero,
//!   non-overlapping doubles sorted by increasing magnitude whose exact sum is
//!   the finite part of the total. Up to [`INLINE`] partials live inline in the
//!   struct (typical groups need 1-3), longer lists spill to the heap.
//! * A rarely used integer carry `big` counting multiples of `2^1000`. Every
//!   partial is kept below `2^1000` in magnitude; any input or intermediate
//!   result at or above that bound has its high part (an exact integer
//!   multiple of `2^1000`) moved into `big`. This makes intermediate overflow
//!   impossible, so e.g. `[1e308, 1e308, -1e308]` sums to exactly `1e308`.
//!   `big` lives in the (normally absent) heap extension.
//! * Flags for NaN, `+inf` and `-inf` inputs.
//!
//! # Special values (compared with `math.fsum`)
//!
//! * any NaN input, or both `+inf` and `-inf` → NaN (`fsum` returns NaN for a
//!   NaN input and raises `ValueError` for `inf + -inf`);
//! * only `+inf` (resp. `-inf`) among the non-finite inputs → `+inf` (`-inf`);
//! * a finite exact sum whose rounding overflows → `±inf` (`fsum` raises
//!   `OverflowError` instead);
//! * intermediate overflow never happens here: the exact sum is returned
//!   whenever it is representable (`fsum` raises `OverflowError`);
//! * an exact sum of zero (including the empty sum and sums of `-0.0`)
//!   is `+0.0`, as with `fsum` on Python 3.11.
//!
//! # Fast path
//!
//! [`ExactSum::add_slice`] processes blocks of up to 1024 values: if all
//! values are finite and below `2^1000`, every value whose exponent lies
//! within 63 binades of the block maximum is accumulated exactly into an
//! `i128` fixed-point integer (53 + 63 + 10 bits < 127), and only values
//! outside that window go through the partials. The integer is converted back
//! into at most three exact doubles per block.
//!
//! # Files
//!
//! This file holds the sum itself (partials, carry, flags, add, merge, finalize); `fixed` the
//! fixed-point front a group's slot keeps (`FixedSum`); `wide` the exact rounding when the
//! carry is not zero; `codec` the canonical binary form; `tests` the tests of all of them.

use std::mem::size_of;

mod codec;
mod fixed;
#[cfg(test)]
mod tests;
mod wide;

pub use fixed::FixedSum;

/// Number of partials stored inline before spilling to the heap.
const INLINE: usize = 4;

/// Flag bits (the low three bits are also the serialized special flags).
const FLAG_NAN: u8 = 1;
const FLAG_POS_INF: u8 = 2;
const FLAG_NEG_INF: u8 = 4;
const SPECIAL_MASK: u8 = FLAG_NAN | FLAG_POS_INF | FLAG_NEG_INF;
/// Internal only: partials live in `ext.partials` instead of `inline`.
const FLAG_SPILLED: u8 = 0x80;

/// Serialization.
const SER_VERSION: u8 = 1;
const SER_HAS_BIG: u8 = 8;
const SER_KNOWN_FLAGS: u8 = SPECIAL_MASK | SER_HAS_BIG;
/// Largest `|big|` accepted by `from_bytes` (real states never get close).
const SER_MAX_BIG: u128 = 1 << 100;

/// `2^1000`: partials are kept strictly below this magnitude.
const BIG_UNIT: f64 = f64::from_bits((1023 + 1000) << 52);
/// `2^-1000`.
const INV_BIG_UNIT: f64 = f64::from_bits((1023 - 1000) << 52);

const FRAC_MASK: u64 = (1 << 52) - 1;
const IMPLICIT_BIT: u64 = 1 << 52;

/// `add_slice` block size and exponent window (53 + 63 + log2(1024) < 127).
const BLOCK: usize = 1024;
const WINDOW: u64 = 63;
/// Blocks whose largest biased exponent reaches this (`|x| >= 2^1000`, or
/// non-finite) take the scalar path.
const FAST_MAX_EXP_FIELD: u64 = 1023 + 1000;

#[derive(Clone, Debug, Default)]
struct Ext {
    /// Partials when `FLAG_SPILLED` is set.
    partials: Vec<f64>,
    /// Exact integer multiple of `2^1000` belonging to the sum.
    big: i128,
}

/// Exact floating-point sum accumulator; see the module documentation.
#[derive(Clone, Debug, Default)]
pub struct ExactSum {
    inline: [f64; INLINE],
    len: u8,
    flags: u8,
    ext: Option<Box<Ext>>,
}

/// Shewchuk's grow-expansion on `p` (non-overlapping, increasing magnitude):
/// the exact sum `x + sum(p)` becomes `sum(p[..i]) + hi`. Returns `(i, hi)`.
#[inline(always)]
fn grow_slice(p: &mut [f64], mut x: f64) -> (usize, f64) {
    let mut i = 0;
    for j in 0..p.len() {
        let mut y = p[j];
        if x.abs() < y.abs() {
            std::mem::swap(&mut x, &mut y);
        }
        let hi = x + y;
        let lo = y - (hi - x);
        if lo != 0.0 {
            p[i] = lo;
            i += 1;
        }
        x = hi;
    }
    (i, x)
}

/// Correctly rounded sum of non-overlapping partials sorted by increasing
/// magnitude (the final step of CPython's `fsum`, including its half-even
/// correction across partials).
fn round_partials(p: &[f64]) -> f64 {
    let mut n = p.len();
    if n == 0 {
        return 0.0;
    }
    n -= 1;
    let mut hi = p[n];
    let mut lo = 0.0;
    while n > 0 {
        let x = hi;
        n -= 1;
        let y = p[n];
        hi = x + y;
        let yr = hi - x;
        lo = y - yr;
        if lo != 0.0 {
            break;
        }
    }
    if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
        let y = lo * 2.0;
        let x = hi + y;
        let yr = x - hi;
        if y == yr {
            hi = x;
        }
    }
    hi
}

/// Value of the lowest set bit of a finite non-zero `x` (as a positive f64).
fn low_bit(x: f64) -> f64 {
    let b = x.to_bits();
    let e = ((b >> 52) & 0x7ff) as i32;
    let m = (b & FRAC_MASK) | if e != 0 { IMPLICIT_BIT } else { 0 };
    let exp = e.max(1) - 1075 + m.trailing_zeros() as i32; // >= -1074
    if exp >= -1022 {
        f64::from_bits(((exp + 1023) as u64) << 52)
    } else {
        f64::from_bits(1u64 << (exp + 1074))
    }
}

/// `m * 2^e` for an integer `m < 2^53` when the result is representable
/// (then the computation is exact).
fn scale_exact(m: u64, e: i32) -> f64 {
    let mut v = m as f64;
    let mut e = e;
    while e > 1023 {
        v *= f64::from_bits(2046 << 52); // 2^1023
        e -= 1023;
    }
    if e < -1022 {
        v *= f64::from_bits(1 << 52); // 2^-1022, stays normal since m >= 1
        e += 1022;
    }
    // e is now in [-1022, 1023] (inputs satisfy e >= -1074).
    v * f64::from_bits(((e + 1023) as u64) << 52)
}

impl ExactSum {
    /// An empty accumulator (finalizes to `0.0`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one value.
    #[inline]
    pub fn add(&mut self, x: f64) {
        if x.is_finite() {
            if x != 0.0 {
                self.add_finite(x);
            }
        } else {
            self.add_special(x);
        }
    }

    /// Adds every value of `xs`; faster than repeated [`add`](Self::add).
    pub fn add_slice(&mut self, xs: &[f64]) {
        for block in xs.chunks(BLOCK) {
            self.add_block(block);
        }
    }

    /// Adds the exact contents of `other` (its sum and special flags).
    pub fn merge(&mut self, other: &ExactSum) {
        if self.partials().is_empty() && self.big() == 0 {
            let f = self.flags & SPECIAL_MASK;
            *self = other.clone();
            self.flags |= f;
            return;
        }
        self.flags |= other.flags & SPECIAL_MASK;
        for &p in other.partials() {
            self.add_finite(p);
        }
        let ob = other.big();
        if ob != 0 {
            self.add_big(ob);
        }
    }

    /// The exact sum correctly rounded to `f64` (round half to even).
    /// See the module documentation for non-finite and overflow rules.
    pub fn finalize(&self) -> f64 {
        let f = self.flags;
        if f & FLAG_NAN != 0 || (f & FLAG_POS_INF != 0 && f & FLAG_NEG_INF != 0) {
            return f64::NAN;
        }
        if f & FLAG_POS_INF != 0 {
            return f64::INFINITY;
        }
        if f & FLAG_NEG_INF != 0 {
            return f64::NEG_INFINITY;
        }
        let big = self.big();
        if big == 0 {
            round_partials(self.partials())
        } else {
            self.finalize_wide(big)
        }
    }

    /// True when nothing but zeros has been added: the exact finite sum is
    /// zero and no NaN or infinity has been seen.
    pub fn is_zero_state(&self) -> bool {
        self.partials().is_empty() && self.big() == 0 && self.flags & SPECIAL_MASK == 0
    }

    /// Heap plus inline memory used by this accumulator.
    pub fn memory_bytes(&self) -> usize {
        size_of::<Self>()
            + self.ext.as_ref().map_or(0, |e| {
                size_of::<Ext>() + e.partials.capacity() * size_of::<f64>()
            })
    }

    /// The same exact sum (and flags) with canonical partials: the greedy expansion whose
    /// largest term is the sum correctly rounded, the next the remainder correctly rounded, and
    /// so on. It depends only on the exact value, so equal sums serialize to equal bytes
    /// whatever order their values were added in. (Sums at or above `2^1000`, which carry an
    /// integer multiple of it, are returned as they are.)
    pub fn canonical(&self) -> ExactSum {
        if self.big() != 0 || self.partials().len() <= 1 {
            return self.clone();
        }
        // Two partials whose larger is their sum correctly rounded (a floating-point add rounds
        // the exact sum to nearest, ties to even, as the general path does) are canonical
        // already: the larger is the first term and the smaller, exact, the remainder.
        if let [lo, hi] = *self.partials() {
            if self.flags & FLAG_SPILLED == 0 && hi + lo == hi {
                return self.clone();
            }
        }
        self.canonical_general()
    }

    /// `canonical` by rounding the partials term by term (any state).
    fn canonical_general(&self) -> ExactSum {
        if self.big() != 0 || self.partials().len() <= 1 {
            return self.clone();
        }
        let mut rest = ExactSum::new();
        for &p in self.partials() {
            rest.add_finite(p);
        }
        if rest.big() != 0 {
            // Partials whose sum reaches 2^1000 (only crafted bytes hold such a list): kept as
            // they are, never rounded into another value.
            return self.clone();
        }
        // Terms, largest first: inline while they fit (no allocation for a typical group).
        let mut inline = [0.0f64; INLINE];
        let mut n = 0;
        let mut spilled: Vec<f64> = Vec::new();
        loop {
            let r = round_partials(rest.partials());
            if r == 0.0 {
                break;
            }
            if n < INLINE {
                inline[n] = r;
            } else {
                if spilled.is_empty() {
                    spilled.extend_from_slice(&inline);
                }
                spilled.push(r);
            }
            n += 1;
            rest.add_finite(-r);
        }
        let mut out = Self {
            flags: self.flags & SPECIAL_MASK,
            ..Self::default()
        };
        if n <= INLINE {
            inline[..n].reverse();
            out.inline[..n].copy_from_slice(&inline[..n]);
            out.len = n as u8;
        } else {
            spilled.reverse();
            out.ext_mut().partials = spilled;
            out.flags |= FLAG_SPILLED;
        }
        out
    }

    // ----------------------------------------------------------------------
    // internals

    #[inline]
    fn partials(&self) -> &[f64] {
        if self.flags & FLAG_SPILLED == 0 {
            &self.inline[..self.len as usize]
        } else {
            self.ext.as_ref().map_or(&[], |e| &e.partials[..])
        }
    }

    #[inline]
    fn big(&self) -> i128 {
        self.ext.as_ref().map_or(0, |e| e.big)
    }

    fn ext_mut(&mut self) -> &mut Ext {
        self.ext.get_or_insert_with(Box::default)
    }

    fn add_big(&mut self, q: i128) {
        let e = self.ext_mut();
        e.big = e.big.wrapping_add(q);
    }

    #[cold]
    fn add_special(&mut self, x: f64) {
        self.flags |= if x.is_nan() {
            FLAG_NAN
        } else if x > 0.0 {
            FLAG_POS_INF
        } else {
            FLAG_NEG_INF
        };
    }

    /// Moves the integer multiple of `2^1000` of `x` (`2^1000 <= |x| < 2^1024`)
    /// into `big` and returns the exact remainder (same sign, `< 2^1000`).
    #[cold]
    fn take_big(&mut self, x: f64) -> f64 {
        let s = x * INV_BIG_UNIT; // exact: power-of-two scaling in normal range
        let q = s.trunc(); // |q| < 2^24
        let r = (s - q) * BIG_UNIT; // exact
        self.add_big(q as i128);
        r
    }

    /// Grow-expansion on the stored partials; returns the new top which the
    /// caller must push (if non-zero) or process.
    #[inline]
    fn grow(&mut self, x: f64) -> f64 {
        if self.flags & FLAG_SPILLED == 0 {
            let n = self.len as usize;
            let (i, hi) = grow_slice(&mut self.inline[..n], x);
            self.len = i as u8;
            hi
        } else {
            let v = &mut self.ext_mut().partials;
            let (i, hi) = grow_slice(v, x);
            v.truncate(i);
            hi
        }
    }

    #[inline]
    fn push(&mut self, x: f64) {
        if self.flags & FLAG_SPILLED == 0 {
            let n = self.len as usize;
            if n < INLINE {
                self.inline[n] = x;
                self.len += 1;
            } else {
                self.spill_push(x);
            }
        } else {
            self.ext_mut().partials.push(x);
        }
    }

    #[cold]
    fn spill_push(&mut self, x: f64) {
        let n = self.len as usize;
        let mut v = Vec::with_capacity(2 * INLINE + 4);
        v.extend_from_slice(&self.inline[..n]);
        v.push(x);
        self.ext_mut().partials = v;
        self.flags |= FLAG_SPILLED;
        self.len = 0;
    }

    /// Adds a finite non-zero value exactly.
    #[inline]
    fn add_finite(&mut self, x: f64) {
        let mut x = x;
        if x.abs() >= BIG_UNIT {
            x = self.take_big(x);
            if x == 0.0 {
                return;
            }
        }
        // Invariant: all partials < 2^1000 and |sum(partials)| < 2^1001, so
        // no intermediate of the grow step can overflow.
        loop {
            let hi = self.grow(x);
            if hi.abs() < BIG_UNIT {
                if hi != 0.0 {
                    self.push(hi);
                }
                return;
            }
            // The remaining partials are below lowbit(hi); re-adding the
            // remainder keeps the list a valid non-overlapping expansion.
            x = self.take_big(hi);
            if x == 0.0 {
                return;
            }
        }
    }

    fn add_block(&mut self, xs: &[f64]) {
        if xs.len() < 16 {
            for &x in xs {
                self.add(x);
            }
            return;
        }
        // Pass 1: largest biased exponent (0x7ff for inf/nan).
        let mut max_abs = 0u64;
        for &x in xs {
            max_abs = max_abs.max(x.to_bits() & !(1u64 << 63));
        }
        let max_e = max_abs >> 52;
        if max_e >= FAST_MAX_EXP_FIELD {
            for &x in xs {
                self.add(x);
            }
            return;
        }
        // Values with effective exponent field in [lo_e, lo_e + WINDOW] are
        // accumulated as integers in units of 2^(lo_e - 1075).
        let lo_e = max_e.max(1).saturating_sub(WINDOW).max(1);
        let mut acc: i128 = 0;
        for &x in xs {
            let b = x.to_bits();
            let e = (b >> 52) & 0x7ff;
            let m = (b & FRAC_MASK) | (((e != 0) as u64) << 52);
            let ee = e.max(1);
            if ee >= lo_e {
                let v = (m as i128) << (ee - lo_e);
                let s = ((b as i64) >> 63) as i128; // 0 or -1
                acc += (v ^ s) - s;
            } else if m != 0 {
                self.add_finite(x);
            }
        }
        self.add_fixed(acc, lo_e);
    }

    /// Adds `acc * 2^(lo_e - 1075)` exactly, for `|acc| < 2^127` and an exponent field
    /// `lo_e >= 1` (the unit of the fixed-point integers of `add_block` and `FixedSum`).
    pub(crate) fn add_fixed(&mut self, acc: i128, lo_e: u64) {
        if acc != 0 {
            let neg = acc < 0;
            let mag = acc.unsigned_abs();
            let base = lo_e as i32 - 1075;
            for k in 0..3 {
                let chunk = ((mag >> (52 * k)) as u64) & FRAC_MASK;
                if chunk != 0 {
                    let v = scale_exact(chunk, base + 52 * k);
                    self.add_finite(if neg { -v } else { v });
                }
            }
        }
    }
}
