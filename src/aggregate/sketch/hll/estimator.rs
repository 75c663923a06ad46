//! The estimates and their bounds: linear counting over the sparse entries (nearly exact for
//! small sets) and Otmar Ertl's improved raw estimator over the dense registers.

use std::f64::consts::LN_2;

use super::*;

/// z-score of a two-sided 95% interval.
const Z95: f64 = 1.96;
/// The dense bounds' half-width in units of the theoretical RSE: 1.96 for a 95% normal band,
/// times 1.08 (the measured RMS error over the theoretical RSE at p = 14, n = 10^4..10^6), times
/// a 1.06 margin so the measured coverage stays at or above 95% (`benchmarks/bench_sketch.py`).
const DENSE_Z95: f64 = 2.24;

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

impl HllSketch {
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
}
