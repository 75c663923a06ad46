//! The sketch's tests: canonical state, merges, the codec, accuracy.

use super::codec::*;
use super::*;
use crate::testutil::SplitMix64;

fn dense_empty(p: u8) -> HllSketch {
    HllSketch {
        precision: p,
        repr: Repr::Dense(vec![0u8; 1usize << p].into_boxed_slice()),
    }
}

/// Runs of hashes inserted at once give the bytes of inserting them one by one, through
/// sparse mode, across the switch to dense and in dense mode.
#[test]
fn inserting_runs_equals_inserting_one_by_one() {
    let mut rng = SplitMix64(17);
    for p in [4u8, 10, 12] {
        let (mut runs, mut one) = (HllSketch::new(p).unwrap(), HllSketch::new(p).unwrap());
        for round in 0..40 {
            let len = [0usize, 1, 3, 17, 200, 1500][rng.below(6) as usize];
            // Repeats as well as new hashes.
            let hashes: Vec<u64> = (0..len)
                .map(|_| {
                    if rng.below(4) == 0 {
                        rng.below(64)
                    } else {
                        rng.next()
                    }
                })
                .collect();
            runs.insert_hashes(hashes.iter().copied());
            for &h in &hashes {
                one.insert_hash(h);
            }
            assert_eq!(runs.to_bytes(), one.to_bytes(), "p {p}, round {round}");
        }
        assert!(
            matches!(runs.repr, Repr::Dense(_)),
            "p {p} reached dense mode"
        );
    }
}

/// One commit's small sketch merged into a large sparse one goes through the insert
/// buffer; the result must be the sketch of the union, also when a flush crosses into
/// dense mode in the middle of a merge.
#[test]
fn merging_small_sketches_into_a_large_sparse_one_equals_the_union() {
    let mut r = SplitMix64(99);
    for p in [8u8, 10, 12] {
        let mut all: Vec<u64> = (0..sparse_limit(p) - 40).map(|_| r.next()).collect();
        let mut acc = HllSketch::from_hashes(p, all.iter().copied()).unwrap();
        for step in 0..300 {
            let small: Vec<u64> = (0..1 + step % 9).map(|_| r.next()).collect();
            // Sometimes the same values again: duplicates must not count twice.
            let small = if step % 5 == 0 {
                all[..3].to_vec()
            } else {
                small
            };
            acc.merge(&HllSketch::from_hashes(p, small.iter().copied()).unwrap())
                .unwrap();
            all.extend(small);
            if step % 50 == 0 {
                let want = HllSketch::from_hashes(p, all.iter().copied()).unwrap();
                assert_eq!(acc, want, "p={p} step={step}");
                assert_eq!(acc.to_bytes(), want.to_bytes(), "p={p} step={step}");
            }
        }
        assert!(
            !acc.is_sparse(),
            "p={p}: the merges should have crossed into dense mode"
        );
        let want = HllSketch::from_hashes(p, all.iter().copied()).unwrap();
        assert_eq!(acc.to_bytes(), want.to_bytes());
    }
}

fn build(p: u8, hashes: &[u64]) -> HllSketch {
    let mut s = HllSketch::new(p).unwrap();
    for &h in hashes {
        s.insert_hash(h);
    }
    s
}

/// Hashes with adversarial bit patterns (zero runs in the middle / tail) plus random ones.
fn tricky_hashes(rng: &mut SplitMix64, n: usize) -> Vec<u64> {
    let mut v = vec![0u64, u64::MAX, 1, 1 << 63, 1 << 39, 1 << 38, 1 << 40];
    for i in 0..n {
        let h = rng.next();
        let a = (i % 64) as u32;
        let width = ((i / 64) % 45) as u32;
        // mask of `width` bits starting at bit `a` (clipped at 64)
        let run = if width == 0 {
            0
        } else {
            (u64::MAX >> (64 - width)) << a
        };
        v.push(match i % 4 {
            0 => h,
            1 => h & (u64::MAX << a),
            2 => h & !run,
            _ => ((h >> 39) << 39) | (h & ((1u64 << (i % 39)) - 1)),
        });
    }
    v
}

#[test]
fn mix64_is_pinned() {
    assert_eq!(mix64(0), 0xE220_A839_7B1D_CDAF);
    assert_eq!(mix64(1), 0x910A_2DEC_8902_5CC1);
    assert_eq!(key_hash(0), mix64(mix64(0)));
    assert_eq!(key_hash(7), mix64(7 ^ mix64(0)));
    assert_eq!(key_hash(5u128 << 64 | 9), mix64(9 ^ mix64(5)));
}

#[test]
fn sparse_to_dense_matches_direct_dense() {
    let mut rng = SplitMix64(42);
    for p in MIN_PRECISION..=MAX_PRECISION {
        let hashes = tricky_hashes(&mut rng, 3000);
        let mut direct = dense_empty(p);
        for &h in &hashes {
            direct.insert_hash(h);
        }
        // Force conversion regardless of the sparse limit.
        let mut sp = HllSketch::new(p).unwrap();
        let mut entries: Vec<u32> = hashes.iter().map(|&h| encode_sparse(h)).collect();
        sort_dedup(&mut entries);
        let expect_sparse = entries.len() <= sparse_limit(p);
        sp.repr = Repr::Sparse {
            sorted: entries.len(),
            entries,
        };
        sp.densify();
        assert_eq!(sp, direct, "p={p}");
        // And through the normal path, the canonical state is dense iff over the limit.
        let mut normal = build(p, &hashes);
        assert_eq!(normal.is_sparse(), expect_sparse, "p={p}");
        normal.normalize();
        normal.densify();
        assert_eq!(normal, direct, "p={p}");
    }
    // Individual decode check.
    for &h in &tricky_hashes(&mut rng, 5000) {
        for p in MIN_PRECISION..=MAX_PRECISION {
            assert_eq!(decode_sparse(encode_sparse(h), p), dense_index_rho(h, p));
        }
    }
}

#[test]
fn canonical_merge() {
    let mut rng = SplitMix64(7);
    for &p in &[4u8, 8, 10, 14] {
        let limit = sparse_limit(p);
        let sizes = [
            0usize,
            1,
            3,
            limit.saturating_sub(2),
            limit,
            limit + 1,
            limit + 5,
            2 * limit,
            3000,
            20_000,
        ];
        for &n in &sizes {
            // draws with repetition from a key space of size ~n
            let space = (n as u64).max(1);
            let stream: Vec<u64> = (0..n + n / 3)
                .map(|_| key_hash(u128::from(rng.below(space)) + 1000 * u128::from(p)))
                .collect();
            let whole = build(p, &stream);
            let whole_bytes = whole.to_bytes();
            // reversed order gives the same state
            let mut rev = stream.clone();
            rev.reverse();
            assert_eq!(build(p, &rev), whole);
            assert_eq!(build(p, &rev).to_bytes(), whole_bytes);
            for trial in 0..6 {
                let k = 2 + (trial % 5);
                let mut parts: Vec<Vec<u64>> = vec![Vec::new(); k];
                for &h in &stream {
                    parts[rng.below(k as u64) as usize].push(h);
                }
                for part in parts.iter_mut() {
                    rng.shuffle(part);
                }
                let mut sketches: Vec<HllSketch> = parts.iter().map(|x| build(p, x)).collect();
                rng.shuffle(&mut sketches);
                let merged = if trial % 2 == 0 {
                    // left fold
                    let mut acc = HllSketch::new(p).unwrap();
                    for s in &sketches {
                        acc.merge(s).unwrap();
                    }
                    acc
                } else {
                    // pairwise tree
                    while sketches.len() > 1 {
                        let b = sketches.pop().unwrap();
                        let mut a = sketches.pop().unwrap();
                        a.merge(&b).unwrap();
                        sketches.insert(0, a);
                    }
                    sketches.pop().unwrap()
                };
                assert_eq!(merged, whole, "p={p} n={n} trial={trial}");
                assert_eq!(merged.is_sparse(), whole.is_sparse());
                assert_eq!(merged.to_bytes(), whole_bytes, "p={p} n={n} trial={trial}");
                assert_eq!(merged.estimate(), whole.estimate());
            }
        }
    }
}

#[test]
fn merge_errors_and_bad_precision() {
    assert_eq!(HllSketch::new(3), Err(bad_precision(3)));
    assert!(HllSketch::new(19)
        .unwrap_err()
        .0
        .contains("precision 19 (must be in 4..=18)"));
    let mut a = HllSketch::new(10).unwrap();
    let b = HllSketch::new(12).unwrap();
    let e = a.merge(&b).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot merge HLL sketches with different precisions (10 vs 12)"
    );
}

#[test]
fn from_hashes_equals_inserts() {
    let mut rng = SplitMix64(7);
    for n in [0usize, 1, 10, 1000, 4096, 5000, 100_000] {
        let hashes: Vec<u64> = (0..n).map(|_| rng.next()).collect();
        let bulk = HllSketch::from_hashes(14, hashes.iter().copied()).unwrap();
        let one = build(14, &hashes);
        assert_eq!(bulk, one);
        assert_eq!(bulk.to_bytes(), one.to_bytes());
    }
}

#[test]
fn roundtrip() {
    let mut rng = SplitMix64(99);
    for p in MIN_PRECISION..=MAX_PRECISION {
        for &n in &[0usize, 1, 2, 17, 100, 5000, 100_000] {
            let hashes: Vec<u64> = (0..n).map(|_| rng.next()).collect();
            let s = build(p, &hashes);
            let bytes = s.to_bytes();
            let back = HllSketch::from_bytes(&bytes).unwrap();
            assert_eq!(back, s);
            assert_eq!(back.to_bytes(), bytes);
            assert_eq!(back.estimate(), s.estimate());
            assert_eq!(back.is_sparse(), s.is_sparse());
            assert_eq!(back.is_empty(), n == 0);
            // Dense: coded, well under the 6 bits per register of the packed format,
            // which is still read (stores of the first landing).
            if !s.is_sparse() {
                assert!(bytes.len() <= 4 + (1usize << p) / 4 * 3, "p={p} n={n}");
                if p >= 10 {
                    assert!(bytes.len() * 10 < (1usize << p) / 4 * 3 * 7, "p={p} n={n}");
                }
                let old = s.packed_v1();
                assert_eq!(old.len(), 4 + (1usize << p) / 4 * 3);
                let from_old = HllSketch::from_bytes(&old).unwrap();
                assert_eq!(from_old, s);
                assert_eq!(from_old.to_bytes(), bytes);
                assert_eq!(from_old.estimate(), s.estimate());
            }
        }
    }
    let mut tricky = HllSketch::new(14).unwrap();
    for &h in &tricky_hashes(&mut rng, 100) {
        tricky.insert_hash(h);
    }
    assert_eq!(HllSketch::from_bytes(&tricky.to_bytes()).unwrap(), tricky);
}

#[test]
fn from_bytes_rejects_garbage() {
    let mut rng = SplitMix64(5);
    let mut samples = Vec::new();
    for &(p, n) in &[
        (14u8, 0usize),
        (14, 1),
        (14, 300),
        (14, 50_000),
        (4, 3),
        (4, 1000),
    ] {
        let hashes: Vec<u64> = (0..n).map(|_| rng.next()).collect();
        samples.push(build(p, &hashes).to_bytes());
    }
    for bytes in &samples {
        // every strict prefix fails
        for cut in 0..bytes.len() {
            assert!(HllSketch::from_bytes(&bytes[..cut]).is_err(), "cut {cut}");
        }
        // trailing garbage fails
        let mut ext = bytes.clone();
        ext.push(0);
        assert!(HllSketch::from_bytes(&ext).is_err());
        // random single-byte corruptions never panic; if accepted they are canonical
        for _ in 0..2000 {
            let mut b = bytes.clone();
            let i = rng.below(b.len() as u64) as usize;
            b[i] ^= 1 << rng.below(8);
            if let Ok(s) = HllSketch::from_bytes(&b) {
                assert_eq!(s.to_bytes(), b);
            }
        }
    }
    // header errors
    assert!(HllSketch::from_bytes(&[]).is_err());
    assert!(HllSketch::from_bytes(&[0, 1, 14, 0, 0]).is_err());
    assert!(HllSketch::from_bytes(&[MAGIC, 2, 14, 0, 0]).is_err());
    assert_eq!(
        HllSketch::from_bytes(&[MAGIC, VERSION, 30, 0, 0]),
        Err(bad_precision(30))
    );
    assert!(HllSketch::from_bytes(&[MAGIC, VERSION, 14, 7, 0]).is_err());
    assert!(HllSketch::from_bytes(&[MAGIC, VERSION, 14, 0, 0]).is_ok());
    // non-minimal varint for the count
    assert!(HllSketch::from_bytes(&[MAGIC, VERSION, 14, 0, 0x80, 0x00]).is_err());
    // rho 0 entry
    assert!(HllSketch::from_bytes(&[MAGIC, VERSION, 14, 0, 1, 0x40]).is_err());
    // valid single entry, then a duplicate index
    assert!(HllSketch::from_bytes(&[MAGIC, VERSION, 14, 0, 1, 0x41]).is_ok());
    assert!(HllSketch::from_bytes(&[MAGIC, VERSION, 14, 0, 2, 0x41, 0x01]).is_err());
    // overlong varint
    assert!(
        HllSketch::from_bytes(&[MAGIC, VERSION, 14, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])
            .is_err()
    );
    // all-zero dense and out-of-range registers
    let mut dense = vec![MAGIC, VERSION, 4, MODE_DENSE];
    dense.extend_from_slice(&[0u8; 12]);
    assert!(HllSketch::from_bytes(&dense).is_err());
    dense[4] = 62; // register 0 = 62 > 65 - 4
    assert!(HllSketch::from_bytes(&dense).is_err());
    dense[4] = 61;
    assert!(HllSketch::from_bytes(&dense).is_ok());
    // pure random input never panics
    for len in 0..200 {
        for _ in 0..50 {
            let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if len > 3 && rng.below(2) == 0 {
                b[0] = MAGIC;
                b[1] = VERSION;
                b[2] = 4 + rng.below(15) as u8;
                b[3] = rng.below(2) as u8;
            }
            let _ = HllSketch::from_bytes(&b);
        }
    }
}

#[test]
fn bounds_and_empty() {
    let s = HllSketch::new(14).unwrap();
    assert!(s.is_empty() && s.is_sparse());
    assert_eq!(s.estimate(), 0.0);
    assert_eq!(s.bounds(), (0.0, 0.0));
    let mut rng = SplitMix64(3);
    for &p in &[4u8, 9, 14, 18] {
        let mut s = HllSketch::new(p).unwrap();
        let mut n = 0usize;
        for &target in &[1usize, 5, 50, 500, 5000, 50_000, 300_000] {
            while n < target {
                s.insert_hash(rng.next());
                n += 1;
            }
            let e = s.estimate();
            let (lo, hi) = s.bounds();
            assert!(lo >= 0.0 && lo <= e && e <= hi, "p={p} n={n} {lo} {e} {hi}");
            assert!(!s.is_empty());
        }
    }
}

#[test]
fn memory_is_small_when_sparse() {
    let mut rng = SplitMix64(11);
    let mut s = HllSketch::new(14).unwrap();
    let empty = s.memory_bytes();
    for _ in 0..10 {
        s.insert_hash(rng.next());
    }
    s.compact();
    assert!(s.is_sparse());
    assert_eq!(s.memory_bytes(), empty + 40);
    for _ in 0..100_000 {
        s.insert_hash(rng.next());
    }
    assert!(!s.is_sparse());
    assert_eq!(s.memory_bytes(), empty + 16384);
}

/// Returns (mean signed relative error, rms relative error, max |rel err|).
fn measure(p: u8, n: usize, seeds: u64) -> (f64, f64, f64, bool) {
    let (mut sum, mut sq, mut mx) = (0.0, 0.0, 0.0f64);
    let mut sparse = true;
    for seed in 0..seeds {
        let mut s = HllSketch::new(p).unwrap();
        for i in 0..n as u64 {
            s.insert_key((u128::from(seed + 1) << 64) | u128::from(i));
        }
        let rel = s.estimate() / n as f64 - 1.0;
        sparse &= s.is_sparse();
        sum += rel;
        sq += rel * rel;
        mx = mx.max(rel.abs());
    }
    let k = seeds as f64;
    (sum / k, (sq / k).sqrt(), mx, sparse)
}

#[test]
fn accuracy() {
    let p = DEFAULT_PRECISION;
    let seeds = 20u64;
    let rse = HllSketch::new(p).unwrap().relative_standard_error();
    println!(
        "p={p} seeds={seeds} theoretical dense RSE={:.4}%",
        rse * 100.0
    );
    println!(
        "{:>10} {:>7} {:>12} {:>10} {:>10}",
        "card", "mode", "mean rel", "rms rel", "max |rel|"
    );
    for &n in &[1usize, 10, 100, 1000, 10_000, 100_000, 1_000_000] {
        let (mean, rms, mx, sparse) = measure(p, n, seeds);
        println!(
            "{:>10} {:>7} {:>11.4}% {:>9.4}% {:>9.4}%",
            n,
            if sparse { "sparse" } else { "dense" },
            mean * 100.0,
            rms * 100.0,
            mx * 100.0
        );
        if n <= 1000 {
            assert!(sparse);
            assert!(mx <= 0.01, "n={n} max rel err {mx}");
        } else {
            assert!(
                mean.abs() <= 3.0 * rse / (seeds as f64).sqrt(),
                "n={n} mean {mean}"
            );
            assert!(rms <= 2.0 * rse, "n={n} rms {rms}");
        }
    }
}

#[test]
fn accuracy_other_precisions() {
    let mut rng = SplitMix64(1234);
    for &p in &[4u8, 6, 8, 10, 12, 16, 18] {
        let s0 = HllSketch::new(p).unwrap();
        let rse = s0.relative_standard_error();
        for &n in &[10usize, 100, 1000, 10_000, 100_000, 400_000] {
            let mut s = HllSketch::new(p).unwrap();
            for _ in 0..n {
                s.insert_hash(rng.next());
            }
            let rel = (s.estimate() / n as f64 - 1.0).abs();
            let tol = if s.is_sparse() { 0.01 } else { 4.5 * rse };
            assert!(rel <= tol, "p={p} n={n} rel={rel} tol={tol}");
        }
    }
}
