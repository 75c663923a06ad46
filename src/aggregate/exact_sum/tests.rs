//! Tests of the exact sum against `math.fsum`, a fixed-point reference and its own invariants.

use super::wide::wide_round;
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
