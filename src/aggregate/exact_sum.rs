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

use crate::aggregate::sketch::codec::ByteWriter;
use std::mem::size_of;

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
const FIXED_BELOW: u64 = 40;

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

impl ExactSum {
    /// Exact rounding through a wide two's-complement integer in units of
    /// `2^-1074`; used only when `big != 0`.
    #[cold]
    fn finalize_wide(&self, big: i128) -> f64 {
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
fn wide_round(partials: &[f64], big: i128) -> f64 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::SplitMix64 as SplitMix;

    fn pow2(e: i32) -> f64 {
        scale_exact(1, e)
    }

    fn sum_add(xs: &[f64]) -> ExactSum {
        let mut s = ExactSum::new();
        for &x in xs {
            s.add(x);
        }
        s
    }

    fn fsum(xs: &[f64]) -> f64 {
        sum_add(xs).finalize()
    }

    /// Checks the partials invariants: non-zero, < 2^1000, non-overlapping and
    /// increasing in magnitude.
    fn check_invariants(s: &ExactSum) {
        let p = s.partials();
        for w in p.windows(2) {
            let (a, b) = (w[0], w[1]);
            assert!(a.abs() < b.abs(), "{p:?}");
            // highest bit of a below lowest bit of b
            let bb = b.to_bits();
            let eb = ((bb >> 52) & 0x7ff).max(1) as i32;
            let mb = (bb & FRAC_MASK)
                | if (bb >> 52) & 0x7ff != 0 {
                    IMPLICIT_BIT
                } else {
                    0
                };
            let lowbit_b = pow2(eb - 1075 + mb.trailing_zeros() as i32);
            assert!(a.abs() < lowbit_b, "overlap {a:e} {b:e}");
        }
        for &x in p {
            assert!(x != 0.0 && x.is_finite() && x.abs() < BIG_UNIT);
        }
    }

    #[test]
    fn canonical_bytes_depend_only_on_the_exact_sum() {
        let mut rng = SplitMix(7);
        for case in 0..300 {
            let n = 1 + rng.below(40) as usize;
            let xs: Vec<f64> = (0..n)
                .map(|_| {
                    let m = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                    m * 10f64.powi(rng.below(60) as i32 - 30)
                })
                .collect();
            let mut ys = xs.clone();
            // Another order, and the same values split and merged.
            for i in (1..ys.len()).rev() {
                ys.swap(i, rng.below(i as u64 + 1) as usize);
            }
            let a = sum_add(&xs);
            let mut b = sum_add(&ys[..n / 2]);
            b.merge(&sum_add(&ys[n / 2..]));
            let (ca, cb) = (a.canonical(), b.canonical());
            check_invariants(&ca);
            // The fast path for two partials gives what rounding term by term gives.
            assert_eq!(
                ca.to_bytes(),
                a.canonical_general().to_bytes(),
                "case {case}"
            );
            assert_eq!(ca.to_bytes(), cb.to_bytes(), "case {case}");
            assert_eq!(ca.finalize().to_bits(), a.finalize().to_bits());
            let back = ExactSum::from_bytes(&ca.to_bytes()).unwrap();
            assert_eq!(back.to_bytes(), ca.to_bytes());
        }
        // Two partials at a tie, and pairs whose larger is not their rounded sum.
        for (lo, hi) in [
            (pow2(-53), 1.0),
            (-pow2(-53), 1.0),
            (pow2(-53), 1.0 + pow2(-52)),
            (pow2(-52) + pow2(-80), 3.0),
            (-(pow2(-52) + pow2(-80)), -3.0),
        ] {
            let mut bytes = vec![1u8, 0, 2, 0];
            bytes.extend_from_slice(&lo.to_le_bytes());
            bytes.extend_from_slice(&hi.to_le_bytes());
            let Some(s) = ExactSum::from_bytes(&bytes) else {
                continue; // overlapping: not a state
            };
            assert_eq!(
                s.canonical().to_bytes(),
                s.canonical_general().to_bytes(),
                "{lo:e} {hi:e}"
            );
        }
        // Partials whose sum reaches 2^1000 (crafted bytes): canonical() keeps the value.
        let mut bytes = vec![1u8, 0, 2, 0];
        bytes.extend_from_slice(&(1.5 * pow2(946)).to_le_bytes());
        bytes.extend_from_slice(&(pow2(1000) - pow2(947)).to_le_bytes());
        let crafted = ExactSum::from_bytes(&bytes).unwrap();
        assert_eq!(
            crafted.canonical().finalize().to_bits(),
            crafted.finalize().to_bits()
        );
        let mut c = sum_add(&[1e16, 1.0, -1e16, f64::INFINITY]);
        c = c.canonical();
        assert_eq!(c.finalize(), f64::INFINITY);
    }

    /// Reference: exact i128 fixed-point sum in units of 2^unit, rounded half-even.
    fn ref_round(s: i128, unit: i32) -> f64 {
        if s == 0 {
            return 0.0;
        }
        let neg = s < 0;
        let v = s.unsigned_abs();
        let h = 127 - v.leading_zeros() as i32;
        let r = if h <= 52 {
            scale_exact(v as u64, unit)
        } else {
            let sh = (h - 52) as u32;
            let mut mant = (v >> sh) as u64;
            let rem = v & ((1u128 << sh) - 1);
            let half = 1u128 << (sh - 1);
            if rem > half || (rem == half && mant & 1 == 1) {
                mant += 1;
            }
            scale_exact(mant, unit + sh as i32)
        };
        if neg {
            -r
        } else {
            r
        }
    }

    fn to_fixed(x: f64, unit: i32) -> i128 {
        let b = x.to_bits();
        let e = ((b >> 52) & 0x7ff) as i32;
        let m = ((b & FRAC_MASK) | if e != 0 { IMPLICIT_BIT } else { 0 }) as i128;
        if m == 0 {
            return 0;
        }
        let tz = m.trailing_zeros() as i32;
        let m = m >> tz;
        let sh = e.max(1) - 1075 - unit + tz;
        assert!(sh >= 0);
        let v = m << sh;
        if b >> 63 != 0 {
            -v
        } else {
            v
        }
    }

    /// The per-group fast path gives the same exact sum as adding each value to an
    /// `ExactSum`, across window edges, flushes, specials and wide ranges.
    #[test]
    fn fixed_sum_fast_path_is_exact() {
        let mut r = SplitMix(7);
        for it in 0..600 {
            let n = 1 + r.below(if it % 5 == 0 { 5000 } else { 300 }) as usize;
            let xs: Vec<f64> = (0..n)
                .map(|_| match (it % 4, r.below(50)) {
                    (_, 0) => 0.0,
                    (_, 1) if it % 7 == 0 => f64::INFINITY,
                    (_, 2) if it % 11 == 0 => f64::NAN,
                    (0, _) => rand_wide(&mut r),
                    (1, _) => rand_val(&mut r, -60, 60),
                    (2, _) => (r.below(100_000) as f64) * 0.01 - 300.0,
                    _ => rand_val(&mut r, -5, 5),
                })
                .collect();
            let want = sum_add(&xs);
            let (mut exact, mut fixed) = (ExactSum::new(), FixedSum::default());
            for &x in &xs {
                fixed.add(&mut exact, x);
            }
            fixed.flush(&mut exact);
            check_invariants(&exact);
            assert_eq!(
                exact.finalize().to_bits(),
                want.finalize().to_bits(),
                "it {it}"
            );
        }
    }

    fn rand_val(r: &mut SplitMix, emin: i32, emax: i32) -> f64 {
        let m = r.next() >> 11; // 53 bits
        let e = emin + r.below((emax - emin + 1) as u64) as i32;
        let v = scale_exact(m, e);
        if r.next() & 1 == 1 {
            -v
        } else {
            v
        }
    }

    /// Random finite value over (almost) the whole range, biased to
    /// interesting cases.
    fn rand_wide(r: &mut SplitMix) -> f64 {
        match r.below(8) {
            0 => rand_val(r, -1074, -1000),
            1 => rand_val(r, 900, 971),
            2 => f64::from_bits(r.next() & !(0x7ffu64 << 52) | ((r.below(2046) + 1) << 52)),
            3 => (r.below(1000) as f64) * 0.1 - 50.0,
            _ => rand_val(r, -80, 40),
        }
    }

    #[test]
    fn known_fsum_cases() {
        assert_eq!(fsum(&[1e308, 1e308, -1e308]), 1e308);
        assert_eq!(fsum(&[1.0, 1e100, 1.0, -1e100]), 2.0);
        assert_eq!(fsum(&[0.1; 10]), 1.0);
        assert_eq!(fsum(&[]).to_bits(), 0.0f64.to_bits());
        assert_eq!(fsum(&[-0.0]).to_bits(), 0.0f64.to_bits());
        assert_eq!(fsum(&[1.0, -1.0]).to_bits(), 0.0f64.to_bits());
        assert_eq!(fsum(&[1e-16, 1.0, 1e16]), 1.0000000000000002e16);
        // CPython test_math cases
        assert_eq!(fsum(&[1.0, 1e-16, 1e-16]), 1.0000000000000002);
        let big = 2f64.powi(53);
        assert_eq!(fsum(&[big, -0.5, -2.0f64.powi(-54)]), big - 1.0);
        assert_eq!(fsum(&[big, 1.0, 2.0f64.powi(-100)]), big + 2.0);
        assert_eq!(fsum(&[big + 2.0, 1.0, -2.0f64.powi(-100)]), big + 2.0);
        assert_eq!(fsum(&[big + 2.0, 1.0]), big + 4.0); // tie to even
        assert_eq!(fsum(&[big, 1.0]), big); // tie to even
                                            // MAX + half an ulp ties to even (2^1024): fsum raises OverflowError.
        assert_eq!(
            fsum(&[1.7976931348623157e308, 9.9792015476736e291]),
            f64::INFINITY
        );
        assert_eq!(
            fsum(&[1.7976931348623157e308, 9.979201547673598e291]),
            f64::MAX
        );
        let xs: Vec<f64> = (1..=1000).map(|i| 1.0 / i as f64).collect();
        let mut ys = xs.clone();
        ys.extend(xs.iter().map(|x| -x));
        assert_eq!(fsum(&ys), 0.0);
        // Cancellation: many terms that cancel down to a tiny remainder.
        let mut zs = vec![1e300, -1e300, 1e-300, 3.0, -3.0, 1e200, -1e200];
        zs.extend((0..100).map(|i| (i as f64) * 1e10));
        zs.extend((0..100).map(|i| -(i as f64) * 1e10));
        assert_eq!(fsum(&zs), 1e-300);
    }

    #[test]
    fn specials_and_overflow() {
        let inf = f64::INFINITY;
        assert!(fsum(&[1.0, f64::NAN]).is_nan());
        assert!(fsum(&[inf, -inf]).is_nan());
        assert!(fsum(&[inf, f64::NAN]).is_nan());
        assert_eq!(fsum(&[inf, 1.0, inf]), inf);
        assert_eq!(fsum(&[-inf, 1e308, 1e308]), -inf);
        assert_eq!(fsum(&[1e308, 1e308]), inf);
        assert_eq!(fsum(&[-1e308, -1e308, -1e308]), -inf);
        let max = f64::MAX;
        assert_eq!(fsum(&[max, max, -max]), max);
        assert_eq!(fsum(&[max, pow2(970)]), inf); // tie, MAX is odd -> up
        assert_eq!(fsum(&[max, pow2(969)]), max);
        assert_eq!(fsum(&[max, pow2(970), -pow2(-1074)]), max);
        assert_eq!(fsum(&[-max, -pow2(970)]), -inf);
        // Many huge values cancelling, result tiny.
        let mut v = vec![max; 1000];
        v.extend(vec![-max; 1000]);
        v.push(5e-324);
        let mut r = SplitMix(7);
        r.shuffle(&mut v);
        assert_eq!(fsum(&v), 5e-324);
        let mut s = ExactSum::new();
        s.add_slice(&v);
        assert_eq!(s.finalize(), 5e-324);
        // Specials via add_slice and merge.
        let mut a = ExactSum::new();
        a.add_slice(&[1.0; 100]);
        let mut b = ExactSum::new();
        let mut xs = vec![2.0; 100];
        xs[50] = -inf;
        b.add_slice(&xs);
        assert_eq!(b.finalize(), -inf);
        a.merge(&b);
        assert_eq!(a.finalize(), -inf);
        let mut c = ExactSum::new();
        c.add(inf);
        a.merge(&c);
        assert!(a.finalize().is_nan());
        assert!(!a.is_zero_state());
    }

    #[test]
    fn subnormals() {
        let tiny = 5e-324;
        assert_eq!(fsum(&[tiny, tiny, tiny]), 3.0 * tiny);
        assert_eq!(fsum(&[f64::MIN_POSITIVE, -tiny]), f64::MIN_POSITIVE - tiny);
        let mut r = SplitMix(11);
        for _ in 0..200 {
            let n = 1 + r.below(300) as usize;
            let xs: Vec<f64> = (0..n).map(|_| rand_val(&mut r, -1074, -1014)).collect();
            let exact: i128 = xs.iter().map(|&x| to_fixed(x, -1074)).sum();
            let want = ref_round(exact, -1074);
            let mut s = ExactSum::new();
            s.add_slice(&xs);
            assert_eq!(s.finalize().to_bits(), want.to_bits());
            assert_eq!(fsum(&xs).to_bits(), want.to_bits());
        }
    }

    #[test]
    fn random_against_fixed_point_reference() {
        let mut r = SplitMix(42);
        for it in 0..2000 {
            let n = 1 + r.below(if it % 10 == 0 { 5000 } else { 60 }) as usize;
            let (emin, emax) = match it % 3 {
                0 => (-55, 0),
                1 => (-30, -20),
                _ => (-10, 10),
            };
            let mut xs: Vec<f64> = (0..n).map(|_| rand_val(&mut r, emin, emax)).collect();
            if it % 4 == 0 {
                // heavy cancellation: append negations of most values
                let neg: Vec<f64> = xs.iter().take(n * 9 / 10).map(|x| -x).collect();
                xs.extend(neg);
                r.shuffle(&mut xs);
            }
            let unit = emin; // < 2^(53 + 55 + 14) units
            let exact: i128 = xs.iter().map(|&x| to_fixed(x, unit)).sum();
            let want = ref_round(exact, unit);
            let s = sum_add(&xs);
            check_invariants(&s);
            assert_eq!(s.finalize().to_bits(), want.to_bits(), "it {it}");
            let mut t = ExactSum::new();
            t.add_slice(&xs);
            check_invariants(&t);
            assert_eq!(t.finalize().to_bits(), want.to_bits(), "slice it {it}");
            // wide path agrees too
            assert_eq!(wide_round(s.partials(), 0).to_bits(), want.to_bits());
        }
    }

    fn tree_merge(r: &mut SplitMix, xs: &[f64]) -> ExactSum {
        if xs.len() <= 3 || r.below(4) == 0 {
            let mut s = ExactSum::new();
            if r.below(2) == 0 {
                s.add_slice(xs);
            } else {
                for &x in xs {
                    s.add(x);
                }
            }
            return s;
        }
        let cut = r.below(xs.len() as u64) as usize;
        let mut a = tree_merge(r, &xs[..cut]);
        let b = tree_merge(r, &xs[cut..]);
        if r.below(2) == 0 {
            a.merge(&b);
            a
        } else {
            let mut b = b;
            b.merge(&a);
            b
        }
    }

    #[test]
    fn order_independence_wide_range() {
        let mut r = SplitMix(2024);
        for it in 0..300 {
            let n = 1 + r.below(if it % 10 == 0 { 4000 } else { 200 }) as usize;
            let mut xs: Vec<f64> = (0..n).map(|_| rand_wide(&mut r)).collect();
            if it % 2 == 0 {
                let neg: Vec<f64> = xs.iter().take(n / 2).map(|x| -x).collect();
                xs.extend(neg);
            }
            let s0 = sum_add(&xs);
            check_invariants(&s0);
            let want = s0.finalize();
            // Independent exact rounding of the same state.
            let b = s0.big();
            let wide = if b.unsigned_abs() > 1 << 30 {
                if b > 0 {
                    f64::INFINITY
                } else {
                    f64::NEG_INFINITY
                }
            } else {
                wide_round(s0.partials(), b)
            };
            assert_eq!(want.to_bits(), wide.to_bits(), "it {it}");
            for _ in 0..4 {
                r.shuffle(&mut xs);
                let t = tree_merge(&mut r, &xs);
                check_invariants(&t);
                assert_eq!(t.finalize().to_bits(), want.to_bits(), "it {it}");
                let mut u = ExactSum::new();
                u.add_slice(&xs);
                assert_eq!(u.finalize().to_bits(), want.to_bits(), "it {it}");
            }
        }
    }

    #[test]
    fn fast_path_windows() {
        // Blocks mixing in-window values and far outliers.
        let mut r = SplitMix(5);
        for it in 0..200 {
            let n = 16 + r.below(3000) as usize;
            let xs: Vec<f64> = (0..n)
                .map(|i| {
                    if i % 97 == 0 {
                        rand_val(&mut r, -1074, 999)
                    } else if i % 13 == 0 {
                        0.0
                    } else {
                        rand_val(&mut r, -20, 50)
                    }
                })
                .collect();
            let a = sum_add(&xs);
            let mut b = ExactSum::new();
            b.add_slice(&xs);
            check_invariants(&b);
            assert_eq!(a.finalize().to_bits(), b.finalize().to_bits(), "it {it}");
        }
    }

    #[test]
    fn bytes_round_trip_and_garbage() {
        let mut r = SplitMix(99);
        for it in 0..300 {
            let n = r.below(300) as usize;
            let mut xs: Vec<f64> = (0..n).map(|_| rand_wide(&mut r)).collect();
            if it % 7 == 0 {
                xs.push(f64::INFINITY);
            }
            if it % 11 == 0 {
                xs.extend([f64::MAX; 40]);
            }
            let s = sum_add(&xs);
            let bytes = s.to_bytes();
            let t = ExactSum::from_bytes(&bytes).expect("round trip");
            check_invariants(&t);
            assert_eq!(t.finalize().to_bits(), s.finalize().to_bits());
            assert_eq!(t.to_bytes(), bytes);
            assert_eq!(t.is_zero_state(), s.is_zero_state());
            // truncations are rejected
            for cut in 0..bytes.len() {
                assert!(ExactSum::from_bytes(&bytes[..cut]).is_none());
            }
            // random corruption never panics
            let mut g = bytes.clone();
            let pos = r.below(g.len() as u64) as usize;
            g[pos] ^= 1 << r.below(8);
            if let Some(u) = ExactSum::from_bytes(&g) {
                let _ = u.finalize();
                check_invariants(&u);
            }
        }
        for _ in 0..2000 {
            let len = r.below(64) as usize;
            let g: Vec<u8> = (0..len).map(|_| r.next() as u8).collect();
            if let Some(u) = ExactSum::from_bytes(&g) {
                let _ = u.finalize();
            }
        }
        assert!(ExactSum::from_bytes(&[]).is_none());
        assert!(ExactSum::from_bytes(&[2, 0, 0, 0]).is_none());
        assert!(ExactSum::from_bytes(&[1, 0x40, 0, 0]).is_none());
        let mut nanp = vec![1, 0, 1, 0];
        nanp.extend(f64::NAN.to_le_bytes());
        assert!(ExactSum::from_bytes(&nanp).is_none());
        let e = ExactSum::from_bytes(&ExactSum::new().to_bytes()).unwrap();
        assert!(e.is_zero_state());
        assert_eq!(e.finalize().to_bits(), 0);
    }

    #[test]
    fn state_size_and_zero_state() {
        let mut s = ExactSum::new();
        assert!(s.is_zero_state());
        s.add(0.0);
        s.add(-0.0);
        assert!(s.is_zero_state());
        s.add(1.5);
        s.add(0.25);
        assert!(!s.is_zero_state());
        assert_eq!(s.memory_bytes(), size_of::<ExactSum>());
        assert!(size_of::<ExactSum>() <= 48);
        s.add(-1.75);
        assert!(s.is_zero_state());
        assert_eq!(s.to_bytes().len(), 4);
    }

    /// Writes random cases for a cross-check against Python's math.fsum:
    /// `cargo test -- --ignored dump_python_cases`.
    #[test]
    #[ignore]
    fn dump_python_cases() {
        use std::fmt::Write;
        let mut r = SplitMix(31337);
        let mut out = String::new();
        for it in 0..3000 {
            let n = 1 + r.below(100) as usize;
            let mut xs: Vec<f64> = (0..n)
                .map(|_| {
                    let v = rand_wide(&mut r);
                    if v.abs() > 1e300 {
                        v * 1e-10
                    } else {
                        v
                    }
                })
                .collect();
            if it % 2 == 0 {
                let neg: Vec<f64> = xs.iter().take(n / 2).map(|x| -x * 1.0000001).collect();
                xs.extend(neg);
            }
            let mut s = ExactSum::new();
            s.add_slice(&xs);
            for x in &xs {
                write!(out, "{:016x} ", x.to_bits()).unwrap();
            }
            writeln!(out, "= {:016x}", s.finalize().to_bits()).unwrap();
        }
        std::fs::write("/tmp/exsum_py_cases.txt", out).unwrap();
    }

    #[test]
    #[ignore]
    fn bench_add_slice() {
        use std::time::Instant;
        let mut r = SplitMix(1);
        let n = 1 << 20;
        let xs: Vec<f64> = (0..n)
            .map(|_| (r.below(10_000_000) as f64) * 0.01)
            .collect();
        let reps = 50;
        let t = Instant::now();
        let mut plain = 0.0;
        for _ in 0..reps {
            let mut s = 0.0;
            for &x in std::hint::black_box(&xs) {
                s += x;
            }
            plain += s;
        }
        let dt_plain = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut ex = 0.0;
        for _ in 0..reps {
            let mut s = ExactSum::new();
            s.add_slice(std::hint::black_box(&xs));
            ex += s.finalize();
        }
        let dt_slice = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut ex2 = 0.0;
        for _ in 0..reps / 5 {
            let mut s = ExactSum::new();
            for &x in std::hint::black_box(&xs) {
                s.add(x);
            }
            ex2 += s.finalize();
        }
        let dt_add = t.elapsed().as_secs_f64() * 5.0;
        let tot = (n * reps) as f64;
        println!(
            "plain f64: {:.0} M/s, add_slice: {:.0} M/s, add loop: {:.0} M/s ({plain} {ex} {ex2})",
            tot / dt_plain / 1e6,
            tot / dt_slice / 1e6,
            tot / dt_add / 1e6
        );
    }
}
