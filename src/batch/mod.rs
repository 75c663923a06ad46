//! The batch layer: recompute every view from scratch over one snapshot of the master dataset.
//!
//! Work is split into (segment, row group) units run on a rayon pool; each worker folds its
//! units into private tables (one per view), which are merged at the end. Every aggregate state is
//! exact and its merge is exact, so the result does not depend on the split or the thread count.
//!
//! Beyond one process, `job` splits a recompute into tasks over sets of segments that worker
//! processes run, and `partial` is the protocol their states travel in (Arrow tables of
//! versioned binary states, merged in a tree by the caller, then published by the writer).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use rayon::prelude::*;

use crate::aggregate::Mode;
use crate::error::{Error, Result};
use crate::master::commits::SegmentSlice;
use crate::master::files::read_checked;
use crate::master::parquet_io::ParquetBytes;
use crate::view::table::{AggTable, ViewPlan};

pub mod job;
pub mod partial;
pub mod publish;
pub mod view_file;

use crate::control::Control;

struct Unit {
    segment: usize,
    row_group: usize,
    rows: usize,
}

/// Compute every plan over the rows of a snapshot: the leading `rows` of each slice's segment
/// (a snapshot's slices never skip rows: it reads every commit from the first).
///
/// `target` is the store's schema now: segments written before a schema evolution read as it
/// (added columns null, widened ones cast).
pub fn recompute(
    root: &Path,
    slices: &[SegmentSlice],
    plans: &[ViewPlan],
    target: Option<&crate::arrow::datatypes::Schema>,
    pool: &rayon::ThreadPool,
    ctl: &Control,
) -> Result<Vec<AggTable>> {
    let columns = ViewPlan::input_columns_of(plans);
    if slices.iter().any(|s| s.skip != 0) {
        return Err(Error::internal("a recompute reads whole snapshots"));
    }
    let segs: Vec<&SegmentSlice> = slices.iter().collect();
    let files: Vec<OnceLock<Result<Arc<ParquetBytes>>>> =
        segs.iter().map(|_| OnceLock::new()).collect();
    let paths: Vec<PathBuf> = segs.iter().map(|s| root.join(&s.file.file)).collect();
    let load = |i: usize| -> Result<Arc<ParquetBytes>> {
        files[i]
            .get_or_init(|| {
                let info = &segs[i].file;
                let bytes = ctl
                    .profile
                    .time("read", || read_checked(&paths[i], info.crc32, info.bytes))?;
                Ok(Arc::new(ctl.profile.time("decode", || {
                    ParquetBytes::open_dictionary_strings(&paths[i], bytes)
                })?))
            })
            .clone()
    };

    pool.install(|| {
        // Open footers in parallel to learn the row groups, then plan one unit per row group.
        let opened: Vec<Arc<ParquetBytes>> = (0..segs.len())
            .into_par_iter()
            .map(load)
            .collect::<Result<_>>()?;
        let mut units = Vec::new();
        let mut total = 0u64;
        for (i, pq) in opened.iter().enumerate() {
            let mut left = segs[i].rows;
            for rg in 0..pq.row_groups() {
                if left == 0 {
                    break;
                }
                let rows = pq.row_group_rows(rg).min(left);
                left -= rows;
                total += rows;
                units.push(Unit {
                    segment: i,
                    row_group: rg,
                    rows: rows as usize,
                });
            }
        }
        drop(opened);
        ctl.rows_total.store(total, Ordering::Relaxed);
        let fresh = || {
            plans
                .iter()
                .map(|p| p.new_table(Mode::Exact))
                .collect::<Vec<_>>()
        };
        // One set of tables per worker, units handed out by a shared counter (dynamic load
        // balancing with exactly one partial state per worker, so the merge at the end costs
        // one table per worker, however many units there are).
        let next = AtomicUsize::new(0);
        let workers = rayon::current_num_threads().clamp(1, units.len().max(1));
        let work = |_| -> Result<Vec<AggTable>> {
            let mut tables = fresh();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(u) = units.get(i) else {
                    return Ok(tables);
                };
                ctl.check()?;
                let pq = load(u.segment)?;
                let batches = ctl.profile.time("decode", || match target {
                    Some(t) => pq.read_as(
                        &paths[u.segment],
                        Some(&columns),
                        Some(vec![u.row_group]),
                        Some(u.rows),
                        t,
                    ),
                    None => pq.read(
                        &paths[u.segment],
                        Some(&columns),
                        Some(vec![u.row_group]),
                        Some(u.rows),
                    ),
                })?;
                for b in &batches {
                    for (t, p) in tables.iter_mut().zip(plans) {
                        t.update_profiled(p, b, Some(&ctl.profile))?;
                    }
                }
                ctl.rows_done.fetch_add(u.rows as u64, Ordering::Relaxed);
            }
        };
        let tables = (0..workers)
            .into_par_iter()
            .map(work)
            .try_reduce(fresh, |a, b| {
                ctl.check()?;
                let mut out = Vec::with_capacity(a.len());
                for (x, y) in a.into_iter().zip(b) {
                    // Merge the smaller into the larger: fewer keys to translate.
                    let (mut big, mut small) = if x.keys.len() >= y.keys.len() {
                        (x, y)
                    } else {
                        (y, x)
                    };
                    // Pending fast-path work is finished once per group before the merge
                    // reads it (never changes the state).
                    ctl.profile.time("merge", || small.settle());
                    ctl.profile.time("merge", || big.merge_same(&small))?;
                    out.push(big);
                }
                Ok(out)
            })?;
        Ok(tables)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::AggSpec;
    use crate::arrow::array::{Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
    use crate::arrow::datatypes::{DataType, Field, Schema};
    use crate::control::pool;
    use crate::master::commits::FileRef;
    use crate::master::files::write_atomic;
    use crate::master::parquet_io::encode;
    use crate::master::schema::StoreSchema;

    #[test]
    fn recompute_equals_one_fold_whatever_the_thread_count() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![
            crate::view::testutil::ts_field(),
            Field::new("k", DataType::Int64, true),
            Field::new("x", DataType::Float64, true),
        ]));
        let mut slices = Vec::new();
        let mut all = Vec::new();
        for seg in 0..4i64 {
            let n = 1000 + seg * 17;
            let b = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(TimestampMicrosecondArray::from_iter_values(
                        (0..n).map(|i| i * 7_000_000_000 % 86_400_000_000),
                    )),
                    Arc::new(Int64Array::from_iter(
                        (0..n).map(|i| (i % 5 != 0).then_some(i % 4)),
                    )),
                    Arc::new(Float64Array::from_iter_values(
                        (0..n).map(|i| (i as f64 - 300.0) * 1e-3f64.powi((i % 3) as i32)),
                    )),
                ],
            )
            .unwrap();
            let bytes = encode(&schema, std::slice::from_ref(&b)).unwrap();
            let name = format!("{seg}.parquet");
            write_atomic(&dir.path().join(&name), &bytes, false).unwrap();
            slices.push(SegmentSlice {
                file: FileRef {
                    file: name,
                    bytes: bytes.len() as u64,
                    crc32: crc32fast::hash(&bytes),
                },
                file_rows: n as u64,
                skip: 0,
                rows: n as u64,
            });
            all.push(b);
        }
        let store = StoreSchema::from_first_batch(&schema, None).unwrap();
        let def = crate::view::testutil::hourly_view(vec![
            ("n", AggSpec::Count { column: None }),
            ("s", AggSpec::Sum { column: "x".into() }),
            ("u", AggSpec::CountDistinct { column: "k".into() }),
        ]);
        let plan = ViewPlan::new(def, &store).unwrap();
        let mut one = plan.new_table(Mode::Exact);
        for b in &all {
            one.update(&plan, b).unwrap();
        }
        let want = one.finalize(&plan.def.by, &plan.metrics).unwrap();
        for threads in [1, 2, 3, 7] {
            let got = recompute(
                dir.path(),
                &slices,
                std::slice::from_ref(&plan),
                None,
                &pool(Some(threads)).unwrap(),
                &Control::default(),
            )
            .unwrap();
            let got = got[0].finalize(&plan.def.by, &plan.metrics).unwrap();
            assert_eq!(got, want, "{threads} threads");
        }
        // Split across processes: tasks over sets of segments, their partial tables merged.
        let spec = job::JobSpec {
            format: job::JOB_FORMAT,
            root: dir.path().into(),
            snapshot: 4,
            schema: store.clone(),
            views: vec![plan.def.clone()],
            segments: slices.clone(),
        };
        let spec = job::JobSpec::from_json(&spec.to_json()).unwrap();
        for tasks in [1, 2, 3, 4] {
            let split = spec.split(tasks);
            assert_eq!(split.len(), tasks.min(4));
            let tables: Vec<_> = split
                .iter()
                .rev()
                .map(|segs| {
                    let p = job::run_task(&spec, segs, Some(1), &Control::default())
                        .unwrap()
                        .remove(0);
                    let b = p.to_batches().unwrap();
                    (b[0].schema(), b)
                })
                .collect();
            let merged = partial::merge_all(&tables).unwrap();
            assert_eq!(merged.finalize().unwrap(), want, "{tasks} tasks");
        }
        let mut bad = spec.clone();
        bad.segments[0].file.file = "../0.parquet".into();
        let e = job::JobSpec::from_json(&bad.to_json()).unwrap_err();
        assert!(e.message.contains("leaves the store"), "{}", e.message);

        let ctl = Control::default();
        ctl.cancel.store(true, Ordering::Relaxed);
        let e = recompute(
            dir.path(),
            &slices,
            &[plan],
            None,
            &pool(Some(2)).unwrap(),
            &ctl,
        )
        .unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Interrupted);
    }
}
