//! The serving layer: per view, the published batch view (snapshot N) and the speed state
//! (commits > N), merged into one answer shaped by the query (`answer`).
//!
//! Serving owns the view states and their answer cache. Every change to them (a commit folded in,
//! a batch view swapped in, a view installed or dropped) is made by the store while it holds its
//! writer lock (a reader store: its refresh lock), under the serving write lock, in one step: a
//! query sees the state before a commit or after it, never a mix, and never a view that vanished
//! and came back.

pub mod answer;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::arrow::array::RecordBatch;

pub use answer::{Part, Query};

use crate::error::{Error, Result};
use crate::speed::SpeedView;
use crate::view::table::{AggTable, ViewPlan};

/// The published batch view of one view, loaded for serving.
pub struct BatchView {
    pub snapshot: u64,
    pub fingerprint: String,
    pub published_at_us: i64,
    pub table: AggTable,
    /// The declared roll-ups' exact tables (`plan.rollups` order; empty for views without).
    pub rollups: Vec<AggTable>,
}

/// One view as served: its plan, batch part, speed part and cache.
pub struct ServedView {
    pub plan: ViewPlan,
    pub batch: Option<Arc<BatchView>>,
    pub speed: SpeedView,
    /// Why the view is served from less than it should be (a damaged batch view file: the speed
    /// layer serves the whole history until the next recompute). Shown in `status()`.
    pub warning: Option<String>,
    /// Set when the view's speed state could not be kept in step with the master dataset: its
    /// answers would be wrong, so queries fail with this message until a recompute repairs it.
    pub broken: Option<String>,
    /// The kind of error queries of a broken view raise (a damaged segment: corruption).
    pub broken_kind: crate::error::ErrorKind,
    /// Why the last recompute could not publish this view (its other views were published);
    /// the view keeps serving its previous batch view and the speed layer. Shown in `status()`.
    pub batch_error: Option<String>,
    cache: Mutex<ServedCache>,
}

#[derive(Default)]
struct ServedCache {
    merged: Option<Arc<AggTable>>,
    plain: Option<RecordBatch>,
    /// Answers to whole-view rollups (other grains or dimensions), by query.
    rollups: Vec<(String, RecordBatch)>,
    /// Rows of commits not folded into `merged` yet (shared with the commit, not copied): they
    /// are folded in at the next read, so an ingest loop that queries rarely pays for one fold
    /// per commit (the speed layer's), not two.
    pending: Vec<RecordBatch>,
}

impl ServedCache {
    /// The kept merged state with every pending commit folded in and settled. A fold that
    /// fails drops the kept state (the caller merges afresh from the layers).
    fn current_merged(&mut self, plan: &ViewPlan) -> Option<Arc<AggTable>> {
        let pending = std::mem::take(&mut self.pending);
        if !pending.is_empty() {
            if let Some(m) = &mut self.merged {
                let table = Arc::make_mut(m);
                if pending.iter().all(|b| table.update(plan, b).is_ok()) {
                    table.settle();
                } else {
                    self.merged = None;
                }
            }
        }
        self.merged.clone()
    }
}

/// How many rollup answers a view keeps between commits.
const ROLLUP_CACHE: usize = 16;

impl ServedView {
    pub fn new(plan: ViewPlan, batch: Option<Arc<BatchView>>, speed: SpeedView) -> ServedView {
        ServedView {
            plan,
            batch,
            speed,
            warning: None,
            broken: None,
            broken_kind: crate::error::ErrorKind::Internal,
            batch_error: None,
            cache: Mutex::new(ServedCache::default()),
        }
    }

    /// A view that could not be loaded (a damaged segment its replay needs): kept, so that the
    /// store opens and every other view is served, but its queries raise `why` until a
    /// recompute (or a repaired file) rebuilds it.
    pub fn unavailable(plan: ViewPlan, why: &Error) -> ServedView {
        let mut v = ServedView::new(plan, None, SpeedView::default());
        v.broken = Some(format!("it could not be loaded ({})", why.message));
        v.broken_kind = why.kind;
        v
    }

    pub fn invalidate(&self) {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        *c = ServedCache::default();
    }

    /// The commit the batch part covers (0: none).
    pub fn covered(&self) -> u64 {
        self.batch.as_ref().map(|b| b.snapshot).unwrap_or(0)
    }

    pub(crate) fn speed_tables(&self) -> Vec<&AggTable> {
        self.speed.chunks.iter().flat_map(|c| c.tables()).collect()
    }

    /// One layer, or the served merge of both (through the cache).
    pub fn query(&self, q: &Query, part: Part) -> Result<RecordBatch> {
        if let Some(why) = &self.broken {
            let message = format!(
                "view {:?} cannot be served: {why}; recompute() rebuilds it",
                self.plan.def.name
            );
            return Err(match self.broken_kind {
                crate::error::ErrorKind::Internal => Error::internal(message),
                kind => Error::new(kind, message),
            });
        }
        match part {
            Part::Served => self.served(q),
            Part::Batch => {
                let rolled = answer::rollup_for(&self.plan, q)
                    .and_then(|i| Some((i, self.batch.as_ref()?.rollups.get(i)?)));
                match rolled {
                    Some((i, table)) => answer::answer_rollup(&self.plan, i, q, table, &[]),
                    None => {
                        answer::answer(&self.plan, q, self.batch.as_ref().map(|b| &b.table), &[])
                    }
                }
            }
            Part::Speed => answer::answer(&self.plan, q, None, &self.speed_tables()),
        }
    }

    fn served(&self, q: &Query) -> Result<RecordBatch> {
        // A declared roll-up answers its shape exactly where only the batch layer has data.
        if let Some(i) = answer::rollup_for(&self.plan, q) {
            if let Some(rolled) = self.batch.as_ref().and_then(|b| b.rollups.get(i)) {
                return answer::answer_rollup(&self.plan, i, q, rolled, &self.speed_tables());
            }
        }
        let plain = answer::is_plain(&self.plan, q);
        let whole = q.start.is_none() && q.end.is_none() && q.filter.is_empty();
        let batch = self.batch.as_ref().map(|b| &b.table);
        if !plain && !whole {
            // A narrow query (time range, filter) selects from the merged state when one is
            // kept; otherwise it merges only the groups it selects (and builds nothing).
            let merged = {
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                cache.current_merged(&self.plan)
            };
            return match merged {
                Some(m) => answer::answer(&self.plan, q, Some(&m), &[]),
                None => answer::answer(&self.plan, q, batch, &self.speed_tables()),
            };
        }
        let key = format!("{q:?}");
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if plain {
            if let Some(b) = &cache.plain {
                return Ok(b.clone());
            }
        } else if let Some((_, b)) = cache.rollups.iter().find(|(k, _)| *k == key) {
            return Ok(b.clone());
        }
        let merged = match cache.current_merged(&self.plan) {
            Some(m) => m,
            None => {
                let m = Arc::new(answer::merged(&self.plan, batch, &self.speed_tables())?);
                cache.merged = Some(m.clone());
                m
            }
        };
        // The view at its own shape is the merged state itself: no copy into a fresh table.
        let result = if plain {
            self.plan
                .label(merged.finalize(&self.plan.def.by, &self.plan.metrics)?)?
        } else {
            answer::answer(&self.plan, q, Some(&merged), &[])?
        };
        if plain {
            cache.plain = Some(result.clone());
        } else {
            if cache.rollups.len() >= ROLLUP_CACHE {
                cache.rollups.remove(0);
            }
            cache.rollups.push((key, result.clone()));
        }
        Ok(result)
    }

    /// Fold a new commit into the speed layer. The merged state (batch + speed) is kept and
    /// the commit's rows are folded into it at the next read, so the first query after a
    /// commit costs the rows of the commits since the last read, one settle pass and the
    /// evaluation, not a merge of every group: folding rows
    /// into the merged state gives the same state as merging their speed chunk into it (every
    /// merge is exact or, for sketches, the union), and any failure drops it for a rebuild.
    /// Quantile and top-k sketches compact, so for them folding rows and merging a chunk give
    /// different (equally bounded) estimates: such views merge afresh, so an answer is the
    /// same before and after a reopen.
    pub fn fold(&mut self, commit: u64, batch: &RecordBatch) -> Result<()> {
        let (merged, mut pending) = {
            let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            let kept = std::mem::take(&mut *c);
            (kept.merged, kept.pending)
        };
        crate::failpoint::hit("speed.fold")?;
        self.speed.update(&self.plan, commit, batch)?;
        // Many rows cost less to merge afresh at the next query (which may never come) than
        // to fold twice.
        pending.push(batch.clone());
        let rows: usize = pending.iter().map(|b| b.num_rows()).sum();
        let foldable = self.plan.fold_equals_merge();
        if let Some(m) = merged.filter(|m| foldable && rows <= (4 * m.keys.len()).max(4096)) {
            let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            c.merged = Some(m);
            c.pending = pending;
        }
        Ok(())
    }

    /// Swap in a batch view at `snapshot`: the speed state of commits <= snapshot goes, in the
    /// same step. `speed` replaces the speed part when the caller had to rebuild it.
    pub fn swap_batch(&mut self, batch: Arc<BatchView>, speed: Option<SpeedView>) {
        let snapshot = batch.snapshot;
        self.batch = Some(batch);
        self.warning = None;
        self.broken = None;
        self.broken_kind = crate::error::ErrorKind::Internal;
        self.batch_error = None;
        match speed {
            Some(s) => self.speed = s,
            // The caller checked `straddles` under the writer lock; should a chunk still
            // straddle, serving it beside the batch view would count its events twice.
            None if !self.speed.drop_upto(snapshot) => {
                self.broken = Some(format!(
                    "a speed chunk straddles the published snapshot {snapshot}"
                ));
            }
            None => {}
        }
        self.invalidate();
    }
}

/// Every served view, and the last commit their states include.
#[derive(Default)]
pub struct Serving {
    /// The last commit whose events the views include.
    pub visible: u64,
    /// The manifest version this state reflects (readers: what their refresh applied).
    pub version: u64,
    pub views: BTreeMap<String, ServedView>,
}

impl Serving {
    /// Fold one commit into every view, in parallel. Returns the views whose fold failed (their
    /// state is now behind: the caller rebuilds them from the master dataset).
    pub fn fold(&mut self, commit: u64, batch: &RecordBatch) -> Vec<(String, Error)> {
        use rayon::prelude::*;
        let mut views: Vec<(&String, &mut ServedView)> = self.views.iter_mut().collect();
        let fold = |(name, v): &mut (&String, &mut ServedView)| {
            v.fold(commit, batch).err().map(|e| ((*name).clone(), e))
        };
        // Handing a small commit to the thread pool costs more than folding it here.
        let failed = if views.len() > 1 && batch.num_rows() >= 4096 {
            crate::control::parallel::install(|| views.par_iter_mut().filter_map(fold).collect())
        } else {
            views.iter_mut().filter_map(fold).collect()
        };
        self.visible = commit;
        failed
    }

    pub fn names(&self) -> Vec<String> {
        self.views.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Mode;
    use crate::arrow::array::AsArray;
    use crate::arrow::datatypes::Int64Type;

    fn setup() -> (ViewPlan, RecordBatch) {
        crate::view::testutil::count_view(&[1, 2, 1, 2, 1, 3])
    }

    fn total(b: &RecordBatch) -> i64 {
        b.column_by_name("n")
            .unwrap()
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .sum()
    }

    /// A view with every metric family over (ts, k, x float with nulls, u), and `n` random rows.
    fn rich_rows(seed: u64, n: usize) -> (ViewPlan, RecordBatch) {
        use crate::arrow::array::{Float64Array, Int64Array, TimestampMicrosecondArray};
        use crate::arrow::datatypes::{DataType, Field, Schema};
        let mut r = crate::testutil::SplitMix64(seed);
        let schema = Arc::new(Schema::new(vec![
            crate::view::testutil::ts_field(),
            Field::new("k", DataType::Int64, true),
            Field::new("x", DataType::Float64, true),
            Field::new("u", DataType::Int64, true),
        ]));
        let hour = 3_600_000_000i64;
        let ts: Vec<i64> = (0..n).map(|_| (r.below(6) as i64) * hour + 17).collect();
        let k: Vec<Option<i64>> = (0..n)
            .map(|_| (r.below(9) != 0).then(|| r.below(5) as i64))
            .collect();
        let x: Vec<Option<f64>> = (0..n)
            .map(|_| (r.below(7) != 0).then(|| (r.below(100_000) as f64) * 0.01 - 300.0))
            .collect();
        let u: Vec<Option<i64>> = (0..n).map(|_| Some(r.below(5_000) as i64)).collect();
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(TimestampMicrosecondArray::from(ts)),
                Arc::new(Int64Array::from(k)),
                Arc::new(Float64Array::from(x)),
                Arc::new(Int64Array::from(u)),
            ],
        )
        .unwrap();
        let store = crate::master::schema::StoreSchema::from_first_batch(&schema, None).unwrap();
        use crate::aggregate::AggSpec;
        let col = |c: &str| c.to_string();
        let def = crate::view::testutil::hourly_view(vec![
            ("n", AggSpec::Count { column: None }),
            ("s", AggSpec::Sum { column: col("x") }),
            ("lo", AggSpec::Min { column: col("x") }),
            ("avg", AggSpec::Mean { column: col("x") }),
            ("d", AggSpec::CountDistinct { column: col("u") }),
        ]);
        (ViewPlan::new(def, &store).unwrap(), b)
    }

    /// The merged state kept across commits (folded into, not rebuilt) answers exactly what a
    /// rebuild from the batch view and the speed chunks answers, after every commit.
    #[test]
    fn the_kept_merged_state_equals_a_rebuild_after_every_commit() {
        let (plan, first) = rich_rows(1, 3000);
        let mut t = plan.new_table(Mode::Exact);
        t.update(&plan, &first).unwrap();
        let batch = |t: AggTable| {
            Arc::new(BatchView {
                snapshot: 1,
                fingerprint: plan.fingerprint.clone(),
                published_at_us: 0,
                table: t.into_served().unwrap(),
                rollups: Vec::new(),
            })
        };
        let mut kept = ServedView::new(plan.clone(), Some(batch(t.clone())), SpeedView::default());
        let mut rebuilt = ServedView::new(plan.clone(), Some(batch(t)), SpeedView::default());
        let q = Query::default();
        kept.query(&q, Part::Served).unwrap(); // the merged state exists from here on
        for commit in 2..40u64 {
            let rows = [1, 7, 50, 400][commit as usize % 4];
            let (_, b) = rich_rows(commit, rows);
            kept.fold(commit, &b).unwrap();
            rebuilt.fold(commit, &b).unwrap();
            rebuilt.invalidate();
            let got = kept.query(&q, Part::Served).unwrap();
            assert!(
                kept.cache.lock().unwrap().merged.is_some(),
                "commit {commit}"
            );
            assert_eq!(
                got,
                rebuilt.query(&q, Part::Served).unwrap(),
                "commit {commit}"
            );
            // Narrow queries select from the kept state; the rebuilt view (cache dropped)
            // answers them from the batch and speed parts directly.
            let hour = 3_600_000_000i64;
            let narrow = [
                Query {
                    start: Some(hour),
                    end: Some(4 * hour),
                    ..Query::default()
                },
                Query {
                    grain: Some("2h".into()),
                    ..Query::default()
                },
            ];
            for nq in &narrow {
                rebuilt.invalidate();
                let want = rebuilt.query(nq, Part::Served).unwrap();
                assert_eq!(kept.query(nq, Part::Served).unwrap(), want, "{nq:?}");
            }
        }
        // Commits without a query between them wait as pending rows (not folded twice at
        // commit time) and are folded in at the next read, in order.
        for commit in 40..52u64 {
            let (_, b) = rich_rows(commit, [3, 90, 1][commit as usize % 3]);
            kept.fold(commit, &b).unwrap();
            rebuilt.fold(commit, &b).unwrap();
        }
        assert_eq!(kept.cache.lock().unwrap().pending.len(), 12);
        rebuilt.invalidate();
        assert_eq!(
            kept.query(&q, Part::Served).unwrap(),
            rebuilt.query(&q, Part::Served).unwrap()
        );
        assert!(kept.cache.lock().unwrap().pending.is_empty());
        assert!(kept.cache.lock().unwrap().merged.is_some());
    }

    #[test]
    fn a_swap_replaces_the_covered_speed_state_in_one_step() {
        let (plan, b) = setup();
        let mut v = ServedView::new(plan.clone(), None, SpeedView::default());
        v.fold(1, &b).unwrap();
        v.fold(2, &b).unwrap();
        v.speed.seal(); // a recompute at snapshot 2
        v.fold(3, &b).unwrap();
        assert_eq!(
            total(&v.query(&Query::default(), Part::Served).unwrap()),
            18
        );
        let mut t = plan.new_table(Mode::Exact);
        t.update(&plan, &b).unwrap();
        t.update(&plan, &b).unwrap();
        let batch = BatchView {
            snapshot: 2,
            fingerprint: plan.fingerprint.clone(),
            published_at_us: 0,
            table: t.into_served().unwrap(),
            rollups: Vec::new(),
        };
        v.swap_batch(Arc::new(batch), None);
        assert_eq!(
            total(&v.query(&Query::default(), Part::Served).unwrap()),
            18
        );
        assert_eq!(total(&v.query(&Query::default(), Part::Batch).unwrap()), 12);
        assert_eq!(total(&v.query(&Query::default(), Part::Speed).unwrap()), 6);
    }

    #[test]
    fn a_broken_view_refuses_to_answer() {
        let (plan, _) = setup();
        let mut v = ServedView::new(plan, None, SpeedView::default());
        v.broken = Some("test".into());
        let e = v.query(&Query::default(), Part::Served).unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Internal);
    }
}
