//! Monoid laws for every aggregate: any split of the rows, updated separately and merged in any
//! order (through the persisted state too), gives the same result as one pass over all rows.

use std::path::Path;
use std::sync::Arc;

use crate::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, UInt64Array,
};
use crate::arrow::datatypes::{DataType, Field, Schema};

use super::*;
use crate::testutil::SplitMix64 as Rng;

fn column(kind: &DataType, rng: &mut Rng, n: usize) -> ArrayRef {
    let null = |rng: &mut Rng| rng.below(10) == 0;
    match kind {
        DataType::Int64 => Arc::new(
            (0..n)
                .map(|_| (!null(rng)).then(|| rng.next() as i64 >> rng.below(60)))
                .collect::<Int64Array>(),
        ),
        DataType::Int32 => Arc::new(
            (0..n)
                .map(|_| (!null(rng)).then(|| rng.next() as i32))
                .collect::<Int32Array>(),
        ),
        DataType::UInt64 => Arc::new(
            (0..n)
                .map(|_| (!null(rng)).then(|| rng.next() >> rng.below(4)))
                .collect::<UInt64Array>(),
        ),
        DataType::Float64 => Arc::new(
            (0..n)
                .map(|_| {
                    (!null(rng)).then(|| {
                        let m = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                        let special = rng.below(50);
                        match special {
                            0 => f64::NAN,
                            1 => -0.0,
                            _ => m * 10f64.powi(rng.below(40) as i32 - 20),
                        }
                    })
                })
                .collect::<Float64Array>(),
        ),
        _ => Arc::new(
            (0..n)
                .map(|_| (!null(rng)).then(|| ["a", "ß", "日本", "", "🙂"][rng.below(5) as usize]))
                .map(|s| s.map(|s| format!("{s}{}", s.len())))
                .collect::<StringArray>(),
        ),
    }
}

/// The plan of one metric "m" (precision 10) over an input of type `input`.
fn plan_of(spec: AggSpec, input: Option<DataType>) -> AggPlan {
    AggPlan {
        name: "m".into(),
        spec,
        input,
        precision: 10,
        quantiles: Vec::new(),
        positions: vec![0],
        mean: None,
    }
}

fn plans() -> Vec<(AggPlan, DataType)> {
    let mut out = Vec::new();
    out.push((
        plan_of(AggSpec::Count { column: None }, None),
        DataType::Int64,
    ));
    for t in [
        DataType::Int64,
        DataType::Int32,
        DataType::UInt64,
        DataType::Float64,
    ] {
        let c = || "x".to_string();
        // Int sums of random 64-bit values overflow int64; sums are checked on the i128 state.
        out.push((
            plan_of(AggSpec::Sum { column: c() }, Some(t.clone())),
            t.clone(),
        ));
        out.push((
            plan_of(AggSpec::Mean { column: c() }, Some(t.clone())),
            t.clone(),
        ));
        // A sum that also gives the mean of its column (one shared state).
        let mut shared = plan_of(AggSpec::Sum { column: c() }, Some(t.clone()));
        shared.mean = Some(("avg".into(), 1));
        out.push((shared, t.clone()));
        out.push((
            plan_of(AggSpec::Min { column: c() }, Some(t.clone())),
            t.clone(),
        ));
        out.push((
            plan_of(AggSpec::Max { column: c() }, Some(t.clone())),
            t.clone(),
        ));
        if t != DataType::Float64 {
            // Views refuse distinct counts of floats.
            out.push((
                plan_of(AggSpec::CountDistinct { column: c() }, Some(t.clone())),
                t.clone(),
            ));
        }
        out.push((
            plan_of(
                AggSpec::Quantile {
                    column: c(),
                    q: 0.9,
                },
                Some(t.clone()),
            ),
            t.clone(),
        ));
        if t != DataType::Float64 {
            out.push((
                plan_of(AggSpec::TopK { column: c(), k: 3 }, Some(t.clone())),
                t.clone(),
            ));
        }
        out.push((
            plan_of(AggSpec::Count { column: Some(c()) }, Some(t.clone())),
            t,
        ));
    }
    out.push((
        plan_of(
            AggSpec::TopK {
                column: "x".into(),
                k: 5,
            },
            Some(DataType::Utf8),
        ),
        DataType::Utf8,
    ));
    out.push((
        plan_of(
            AggSpec::CountDistinct { column: "x".into() },
            Some(DataType::Utf8),
        ),
        DataType::Utf8,
    ));
    out
}

/// A random column of `kind` and a group (or `NO_GROUP`) per row: up to `max_rows` rows in up
/// to `max_groups` groups. Quantile and top-k sketches are lossless (and so split-invariant)
/// only while they hold every value, so their sketch-mode inputs stay below 200 values and 128
/// distinct per group.
fn random_rows(
    plan: &AggPlan,
    kind: &DataType,
    mode: Mode,
    rng: &mut Rng,
    max_rows: u64,
    max_groups: u64,
) -> (ArrayRef, Vec<u32>, usize) {
    let sketchy = matches!(plan.spec, AggSpec::Quantile { .. } | AggSpec::TopK { .. });
    let n = if sketchy && mode == Mode::Sketch {
        1 + rng.below(120) as usize
    } else {
        1 + rng.below(max_rows) as usize
    };
    let groups = 1 + rng.below(max_groups) as usize;
    let col = column(kind, rng, n);
    let gids = (0..n)
        .map(|_| {
            if rng.below(20) == 0 {
                NO_GROUP
            } else {
                rng.below(groups as u64) as u32
            }
        })
        .collect();
    (col, gids, groups)
}

/// What two states must agree on: the persisted state columns (which carry the exact i128
/// and float sums and the sketches) when they can be written, else the evaluated ones.
fn fingerprint(acc: &dyn GroupsAccumulator, groups: usize) -> Vec<(String, ArrayRef)> {
    let order: Vec<u32> = (0..groups as u32).collect();
    let mut cols = acc.evaluate("m", &order).unwrap_or_default();
    if let Ok(state) = acc.state("m", &order) {
        // Float sums persist canonical partials: the same bytes for any split.
        cols.extend(state);
    }
    cols
}

#[test]
fn any_split_merged_in_any_order_equals_one_pass() {
    let tmp = Path::new("memory");
    for (plan, kind) in plans() {
        for layer in [Mode::Exact, Mode::Sketch] {
            for seed in 0..12u64 {
                let mut rng = Rng(seed * 7919 + 1);
                let (col, gids, groups) = random_rows(&plan, &kind, layer, &mut rng, 400, 9);
                let n = gids.len();
                let input = plan.spec.column().map(|_| &col);

                let mut one = new_accumulator(&plan, layer);
                one.update(&gids, input, groups).unwrap();
                let one = one.into_served().unwrap();

                // Random contiguous pieces, updated separately.
                let parts = 1 + rng.below(5) as usize;
                let mut cuts: Vec<usize> = (0..parts - 1)
                    .map(|_| rng.below(n as u64 + 1) as usize)
                    .collect();
                cuts.push(0);
                cuts.push(n);
                cuts.sort_unstable();
                let mut pieces: Vec<Box<dyn GroupsAccumulator>> = cuts
                    .windows(2)
                    .map(|w| {
                        let mut a = new_accumulator(&plan, layer);
                        let slice = col.slice(w[0], w[1] - w[0]);
                        let inp = plan.spec.column().map(|_| &slice);
                        a.update(&gids[w[0]..w[1]], inp, groups).unwrap();
                        a
                    })
                    .collect();
                // Merge them in a random order, some through the persisted state.
                let identity: Vec<(u32, u32)> = (0..groups as u32).map(|g| (g, g)).collect();
                let mut acc = new_accumulator(&plan, layer);
                while !pieces.is_empty() {
                    let i = rng.below(pieces.len() as u64) as usize;
                    let piece = pieces.swap_remove(i);
                    let order: Vec<u32> = (0..groups as u32).collect();
                    // Persisted distinct states are sketches: loading two exact batch states
                    // and merging them is approximate by design, so only the speed layer's
                    // (already sketched) distinct states go through the state here.
                    let exact_sets = layer == Mode::Exact
                        && matches!(
                            plan.spec,
                            AggSpec::CountDistinct { .. }
                                | AggSpec::Quantile { .. }
                                | AggSpec::TopK { .. }
                        );
                    let way = rng.below(3);
                    if way == 2 {
                        // Through the partial-state protocol: lossless in every layer.
                        let values =
                            binary_column(groups, |g, out| piece.write_partial(g, out)).unwrap();
                        let loaded = acc.load_partial(values.as_binary::<i32>(), "m").unwrap();
                        assert_eq!(loaded.len(), groups);
                        acc.merge(loaded.as_ref(), &identity, groups).unwrap();
                        continue;
                    }
                    let via_state = !exact_sets && way == 1;
                    match piece.state("m", &order) {
                        Ok(cols) if via_state => {
                            let fields: Vec<Field> = cols
                                .iter()
                                .map(|(n, a)| Field::new(n, a.data_type().clone(), true))
                                .collect();
                            let batch = RecordBatch::try_new(
                                Arc::new(Schema::new(fields)),
                                cols.into_iter().map(|(_, a)| a).collect(),
                            )
                            .unwrap();
                            let loaded = acc.load_state("m", &batch, tmp).unwrap();
                            acc.merge(loaded.as_ref(), &identity, groups).unwrap();
                        }
                        _ => acc.merge(piece.as_ref(), &identity, groups).unwrap(),
                    }
                }
                let acc = acc.into_served().unwrap();
                let (a, b) = (
                    fingerprint(one.as_ref(), groups),
                    fingerprint(acc.as_ref(), groups),
                );
                assert_eq!(
                    a.len(),
                    b.len(),
                    "{:?} {layer:?} seed {seed}: columns differ",
                    plan.spec
                );
                for ((na, ca), (nb, cb)) in a.iter().zip(&b) {
                    assert_eq!(na, nb);
                    assert_eq!(
                        ca.to_data(),
                        cb.to_data(),
                        "{:?} on {kind} {layer:?} seed {seed}: column {na} differs",
                        plan.spec
                    );
                }
            }
        }
    }
}

#[test]
fn uint64_above_int64_is_summed_and_compared_unsigned() {
    let col: ArrayRef = Arc::new(UInt64Array::from(vec![1u64 << 63, 1]));
    let gids = [0u32, 0];
    let plan = |spec| plan_of(spec, Some(DataType::UInt64));
    let x = || "x".to_string();
    let mut sum = new_accumulator(&plan(AggSpec::Sum { column: x() }), Mode::Exact);
    sum.update(&gids, Some(&col), 1).unwrap();
    let err = sum.evaluate("m", &[0]).unwrap_err();
    assert_eq!(err.kind, crate::error::ErrorKind::Overflow);
    let mut max = new_accumulator(&plan(AggSpec::Max { column: x() }), Mode::Exact);
    max.update(&gids, Some(&col), 1).unwrap();
    let v = max.evaluate("m", &[0]).unwrap();
    let v = v[0].1.as_any().downcast_ref::<UInt64Array>().unwrap();
    assert_eq!(v.value(0), 1u64 << 63);
    let mut min = new_accumulator(&plan(AggSpec::Min { column: x() }), Mode::Exact);
    min.update(&gids, Some(&col), 1).unwrap();
    let v = min.evaluate("m", &[0]).unwrap();
    let v = v[0].1.as_any().downcast_ref::<UInt64Array>().unwrap();
    assert_eq!(v.value(0), 1);
}

#[test]
fn a_state_file_with_wrong_column_types_is_corruption() {
    let plan = plan_of(AggSpec::Sum { column: "x".into() }, Some(DataType::Int64));
    let acc = new_accumulator(&plan, Mode::Exact);
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("m", DataType::Utf8, true),
            Field::new("__m__sum", DataType::Utf8, true),
            Field::new("__m__n", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(StringArray::from(vec!["1"])),
            Arc::new(StringArray::from(vec!["1"])),
            Arc::new(StringArray::from(vec!["1"])),
        ],
    )
    .unwrap();
    let err = acc
        .load_state("m", &batch, Path::new("v.parquet"))
        .unwrap_err();
    assert_eq!(err.kind, crate::error::ErrorKind::Corruption);
    assert!(err.message.contains("v.parquet"), "{}", err.message);
}

#[test]
fn malformed_partial_states_are_errors_never_panics() {
    for (plan, kind) in plans() {
        for layer in [Mode::Exact, Mode::Sketch] {
            let mut rng = Rng(99);
            let n = 300;
            let col = column(&kind, &mut rng, n);
            let gids: Vec<u32> = (0..n).map(|i| (i % 3) as u32).collect();
            let mut acc = new_accumulator(&plan, layer);
            acc.update(&gids, plan.spec.column().map(|_| &col), 3)
                .unwrap();
            let mut good = Vec::new();
            for g in 0..3 {
                let mut v = Vec::new();
                acc.write_partial(g, &mut v).unwrap();
                good.push(v);
            }
            let load = |v: &[u8]| {
                let arr = BinaryArray::from_iter_values([v]);
                acc.load_partial(&arr, "m")
            };
            for v in &good {
                let e = load(&[]).unwrap_err();
                assert_eq!(
                    e.kind,
                    crate::error::ErrorKind::Corruption,
                    "{:?}",
                    plan.spec
                );
                assert!(e.message.contains("\"m\", row 0"), "{}", e.message);
                // Every truncation and many corruptions: an error or a state, never a panic.
                for cut in 0..v.len() {
                    let _ = load(&v[..cut]);
                }
                for _ in 0..200 {
                    let mut w = v.clone();
                    let i = rng.below(w.len() as u64) as usize;
                    w[i] ^= 1 << rng.below(8);
                    let _ = load(&w);
                }
                let loaded = load(v).unwrap();
                assert_eq!(loaded.len(), 1);
            }
            let nulls = BinaryArray::from(vec![Some(&good[0][..]), None]);
            let e = acc.load_partial(&nulls, "m").unwrap_err();
            assert!(e.message.contains("row 1"), "{}", e.message);
        }
    }
}

/// Rows scattered over `parts` partitions (a group's rows land in several), each partition
/// numbering its groups in its own order, merged into one table by `(global, local)` pairs in
/// a random order: the state one pass over all rows gives.
fn scattered_merge(plan: &AggPlan, kind: &DataType, mode: Mode, seed: u64, parts: usize) {
    let mut rng = Rng(seed * 104_729 + parts as u64);
    let (col, gids, groups) = random_rows(plan, kind, mode, &mut rng, 600, 40);
    let n = gids.len();
    let input = plan.spec.column().map(|_| &col);
    let mut one = new_accumulator(plan, mode);
    one.update(&gids, input, groups).unwrap();

    // Each partition: its rows (in order), its local ids in order of first appearance.
    let part_of: Vec<usize> = (0..n).map(|_| rng.below(parts as u64) as usize).collect();
    let mut pieces = Vec::new();
    for p in 0..parts {
        let rows: Vec<u32> = (0..n as u32)
            .filter(|&r| part_of[r as usize] == p)
            .collect();
        let mut local_of = vec![u32::MAX; groups];
        let mut global_of = Vec::new();
        let local: Vec<u32> = rows
            .iter()
            .map(|&r| match gids[r as usize] {
                NO_GROUP => NO_GROUP,
                g => {
                    if local_of[g as usize] == u32::MAX {
                        local_of[g as usize] = global_of.len() as u32;
                        global_of.push(g);
                    }
                    local_of[g as usize]
                }
            })
            .collect();
        let taken = crate::arrow::compute::take(
            &col,
            &crate::arrow::array::UInt32Array::from(rows.clone()),
            None,
        )
        .unwrap();
        let mut acc = new_accumulator(plan, mode);
        acc.update(&local, plan.spec.column().map(|_| &taken), global_of.len())
            .unwrap();
        pieces.push((acc, global_of));
    }
    let mut merged = new_accumulator(plan, mode);
    while !pieces.is_empty() {
        let i = rng.below(pieces.len() as u64) as usize;
        let (piece, global_of) = pieces.swap_remove(i);
        let pairs: Vec<(u32, u32)> = global_of
            .iter()
            .enumerate()
            .map(|(l, &g)| (g, l as u32))
            .collect();
        merged.merge(piece.as_ref(), &pairs, groups).unwrap();
    }
    // Merge order within a group may differ from row order: only states that do not depend
    // on it are compared (order-dependent sketches are compared while they are lossless).
    let (one, merged) = (one.into_served().unwrap(), merged.into_served().unwrap());
    let (a, b) = (
        fingerprint(one.as_ref(), groups),
        fingerprint(merged.as_ref(), groups),
    );
    assert_eq!(a.len(), b.len());
    for ((na, ca), (_, cb)) in a.iter().zip(&b) {
        assert_eq!(
            ca.to_data(),
            cb.to_data(),
            "{:?} on {kind} {mode:?}, {parts} partitions, seed {seed}: column {na} differs",
            plan.spec
        );
    }
}

#[test]
fn scattered_partitions_merged_by_pairs_equal_one_pass() {
    for (plan, kind) in plans() {
        for mode in [Mode::Exact, Mode::Sketch] {
            for parts in [1, 2, 3, 7] {
                for seed in 0..4 {
                    scattered_merge(&plan, &kind, mode, seed, parts);
                }
            }
        }
    }
}

/// Two million groups, a few rows each, split in two and merged by pairs: the container grows
/// and merges without a per-group object (a count and a sum per group, checked row by row).
#[test]
fn millions_of_groups_merge_to_one_pass() {
    let groups = 2_000_000usize;
    let n = 3 * groups;
    let gids: Vec<u32> = (0..n).map(|i| ((i * 7_919) % groups) as u32).collect();
    let col: ArrayRef = Arc::new(Int64Array::from_iter_values((0..n).map(|i| i as i64)));
    let plan = |spec| plan_of(spec, Some(DataType::Int64));
    for spec in [
        AggSpec::Count { column: None },
        AggSpec::Sum { column: "x".into() },
        AggSpec::Max { column: "x".into() },
    ] {
        let plan = plan(spec);
        let mut one = new_accumulator(&plan, Mode::Exact);
        one.update(&gids, Some(&col), groups).unwrap();
        let half = n / 2;
        let mut a = new_accumulator(&plan, Mode::Exact);
        a.update(&gids[..half], Some(&col.slice(0, half)), groups)
            .unwrap();
        let mut b = new_accumulator(&plan, Mode::Exact);
        b.update(&gids[half..], Some(&col.slice(half, n - half)), groups)
            .unwrap();
        let pairs: Vec<(u32, u32)> = (0..groups as u32).map(|g| (g, g)).collect();
        a.merge(b.as_ref(), &pairs, groups).unwrap();
        assert_eq!(a.len(), groups);
        let order: Vec<u32> = (0..groups as u32).collect();
        let (x, y) = (
            a.evaluate("m", &order).unwrap(),
            one.evaluate("m", &order).unwrap(),
        );
        assert_eq!(x[0].1.to_data(), y[0].1.to_data(), "{:?}", plan.spec);
    }
}

/// The partial-state layouts the README documents, written here by hand from that table: the
/// kernel writes exactly these bytes, and reads them back to the same answers. A change of
/// layout fails here (it needs a new layout version, with the old one still read).
#[test]
fn documented_partial_layouts_are_what_the_kernel_writes_and_reads() {
    fn le(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }
    let x = || "x".to_string();
    // Group 0: 5, -7, null; group 1: 3; group 2: only a null.
    let ints: ArrayRef = Arc::new(Int64Array::from(vec![
        Some(5),
        Some(-7),
        None,
        Some(3),
        Some(5),
        None,
    ]));
    let gids = [0u32, 0, 0, 1, NO_GROUP, 2];
    let floats: ArrayRef = Arc::new(Float64Array::from(vec![
        Some(0.5),
        Some(0.25),
        None,
        Some(2.0),
        Some(9.0),
        None,
    ]));
    let exact_sum = |v: f64| le(&[&[1, 0], &1u16.to_le_bytes(), &v.to_le_bytes()]);
    let cases: Vec<(AggPlan, &ArrayRef, [Vec<u8>; 3])> = vec![
        (
            plan_of(AggSpec::Count { column: None }, None),
            &ints,
            [
                3u64.to_le_bytes().to_vec(),
                1u64.to_le_bytes().to_vec(),
                1u64.to_le_bytes().to_vec(),
            ],
        ),
        (
            plan_of(AggSpec::Sum { column: x() }, Some(DataType::Int64)),
            &ints,
            [
                le(&[&(-2i128).to_le_bytes(), &2u64.to_le_bytes()]),
                le(&[&3i128.to_le_bytes(), &1u64.to_le_bytes()]),
                le(&[&0i128.to_le_bytes(), &0u64.to_le_bytes()]),
            ],
        ),
        (
            plan_of(AggSpec::Max { column: x() }, Some(DataType::Int64)),
            &ints,
            [
                le(&[&[1], &5i64.to_le_bytes()]),
                le(&[&[1], &3i64.to_le_bytes()]),
                vec![0],
            ],
        ),
        (
            plan_of(AggSpec::Sum { column: x() }, Some(DataType::Float64)),
            &floats,
            [
                le(&[&2u64.to_le_bytes(), &exact_sum(0.75)]),
                le(&[&1u64.to_le_bytes(), &exact_sum(2.0)]),
                le(&[&0u64.to_le_bytes(), &[1, 0], &0u16.to_le_bytes()]),
            ],
        ),
        (
            plan_of(
                AggSpec::CountDistinct { column: x() },
                Some(DataType::Int64),
            ),
            &ints,
            [
                le(&[
                    &[1],
                    &2u64.to_le_bytes(),
                    &5u64.to_le_bytes(),
                    &(-7i64 as u64).to_le_bytes(),
                ]),
                le(&[&[1], &1u64.to_le_bytes(), &3u64.to_le_bytes()]),
                vec![0],
            ],
        ),
        (
            plan_of(
                AggSpec::Quantile {
                    column: x(),
                    q: 0.5,
                },
                Some(DataType::Float64),
            ),
            &floats,
            [
                le(&[
                    &[1],
                    &2u64.to_le_bytes(),
                    &0.25f64.to_le_bytes(),
                    &0.5f64.to_le_bytes(),
                ]),
                le(&[&[1], &1u64.to_le_bytes(), &2.0f64.to_le_bytes()]),
                vec![0],
            ],
        ),
    ];
    for (plan, col, want) in cases {
        let mut acc = new_accumulator(&plan, Mode::Exact);
        let input = plan.spec.column().map(|_| col);
        acc.update(&gids, input, 3).unwrap();
        for (g, want) in want.iter().enumerate() {
            let mut got = Vec::new();
            acc.write_partial(g, &mut got).unwrap();
            assert_eq!(&got, want, "{:?}, group {g}", plan.spec);
        }
        // The hand-written bytes load to the answers of the accumulator that wrote them.
        let values = BinaryArray::from_iter_values(want.iter());
        let loaded = acc.load_partial(&values, "m").unwrap();
        let order = [0u32, 1, 2];
        let (a, b) = (
            acc.evaluate("m", &order).unwrap(),
            loaded.evaluate("m", &order).unwrap(),
        );
        for ((n, x), (_, y)) in a.iter().zip(&b) {
            assert_eq!(x.to_data(), y.to_data(), "{:?}: column {n}", plan.spec);
        }
    }
}
