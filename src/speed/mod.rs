//! The speed layer: incremental views of the commits the published batch view does not cover.
//!
//! State is kept in chunks, each covering a contiguous range of commits. A recompute seals the
//! open chunk at the snapshot it reads, so that when its batch view is published, the chunks it
//! covers are dropped whole and the rest stay: every event is in exactly one of the two layers.
//!
//! Invariants: chunks are ordered and never overlap; `replay` over the master dataset's rows of
//! (after, last] gives the same state as folding those commits one by one. The speed layer owns
//! these transitions; the store only decides when they happen (under its writer lock).

use crate::aggregate::Mode;
use crate::error::Result;
use crate::view::table::{AggTable, ViewPlan};

pub mod saved;

#[derive(Debug, Clone)]
pub struct SpeedChunk {
    /// First and last commit folded into this chunk.
    pub first: u64,
    pub last: u64,
    pub rows: u64,
    pub sealed: bool,
    /// The chunk's state. Large batches are split across several tables updated in parallel
    /// (one per worker thread); queries merge them all, so a group may live in several.
    pub table: AggTable,
    pub extra: Vec<AggTable>,
}

/// Batches at least this large are split across threads.
const PARALLEL_ROWS: usize = 16 * 1024;

impl SpeedChunk {
    pub fn tables(&self) -> impl Iterator<Item = &AggTable> {
        std::iter::once(&self.table).chain(self.extra.iter())
    }
}

#[derive(Debug, Clone, Default)]
pub struct SpeedView {
    pub chunks: Vec<SpeedChunk>,
}

impl SpeedView {
    /// Start a new chunk at `commit` unless the last one is still open.
    fn open_chunk(&mut self, plan: &ViewPlan, commit: u64) {
        let open = matches!(self.chunks.last(), Some(c) if !c.sealed);
        if !open {
            self.chunks.push(SpeedChunk {
                first: commit,
                last: commit,
                rows: 0,
                sealed: false,
                table: plan.new_table(Mode::Sketch),
                extra: Vec::new(),
            });
        }
    }

    /// Fold the rows of one commit straight into the open chunk.
    pub fn update(
        &mut self,
        plan: &ViewPlan,
        commit: u64,
        batch: &crate::arrow::array::RecordBatch,
    ) -> Result<()> {
        self.open_chunk(plan, commit);
        if let Some(c) = self.chunks.last_mut() {
            let workers = crate::control::parallel::threads().clamp(1, 8);
            let n = batch.num_rows();
            if workers > 1 && n >= PARALLEL_ROWS {
                use rayon::prelude::*;
                while c.extra.len() + 1 < workers {
                    c.extra.push(plan.new_table(Mode::Sketch));
                }
                let step = n.div_ceil(workers);
                let mut tables: Vec<&mut AggTable> = std::iter::once(&mut c.table)
                    .chain(c.extra.iter_mut())
                    .collect();
                crate::control::parallel::install(|| {
                    tables.par_iter_mut().enumerate().try_for_each(|(i, t)| {
                        let start = (i * step).min(n);
                        let len = step.min(n - start);
                        if len == 0 {
                            return Ok(());
                        }
                        t.update(plan, &batch.slice(start, len))
                    })
                })?;
            } else {
                c.table.update(plan, batch)?;
            }
            c.last = commit;
            c.rows += batch.num_rows() as u64;
        }
        Ok(())
    }

    /// Fold the rows of commits `first..=last` (in commit order) into one new chunk.
    pub fn update_range(
        &mut self,
        plan: &ViewPlan,
        first: u64,
        last: u64,
        batches: &[crate::arrow::array::RecordBatch],
    ) -> Result<()> {
        self.seal();
        self.open_chunk(plan, first);
        for b in batches {
            self.update(plan, first, b)?;
        }
        if let Some(c) = self.chunks.last_mut() {
            c.first = first;
            c.last = last;
        }
        Ok(())
    }

    /// A speed view holding one sealed chunk: a saved state of commits `first..=last`.
    pub fn saved(first: u64, last: u64, rows: u64, table: AggTable) -> SpeedView {
        SpeedView {
            chunks: vec![SpeedChunk {
                first,
                last,
                rows,
                sealed: true,
                table,
                extra: Vec::new(),
            }],
        }
    }

    /// The speed state of commits in (after, last], from their rows in commit order.
    pub fn replay(
        plan: &ViewPlan,
        after: u64,
        last: u64,
        batches: &[crate::arrow::array::RecordBatch],
    ) -> Result<SpeedView> {
        let mut speed = SpeedView::default();
        if last > after {
            speed.update_range(plan, after + 1, last, batches)?;
        }
        Ok(speed)
    }

    /// Does a chunk hold commits on both sides of `snapshot`?
    pub fn straddles(&self, snapshot: u64) -> bool {
        self.chunks
            .iter()
            .any(|c| c.first <= snapshot && c.last > snapshot)
    }

    /// Close the open chunk: later commits go to a new one.
    pub fn seal(&mut self) {
        if let Some(c) = self.chunks.last_mut() {
            c.sealed = true;
        }
    }

    /// Forget the state of commits <= `snapshot`. Returns false if a chunk straddles the
    /// boundary (the caller then rebuilds the speed view from the master dataset).
    pub fn drop_upto(&mut self, snapshot: u64) -> bool {
        if self.straddles(snapshot) {
            return false;
        }
        self.chunks.retain(|c| c.first > snapshot);
        true
    }

    pub fn rows(&self) -> u64 {
        self.chunks.iter().map(|c| c.rows).sum()
    }

    pub fn memory_bytes(&self) -> usize {
        self.chunks
            .iter()
            .flat_map(|c| c.tables())
            .map(|t| t.memory_bytes())
            .sum()
    }

    /// Bytes each metric's state holds across the speed tables (in plan order).
    pub fn metric_memory(&self) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        for t in self.chunks.iter().flat_map(|c| c.tables()) {
            let m = t.metric_memory();
            out.resize(out.len().max(m.len()), 0);
            for (o, b) in out.iter_mut().zip(m) {
                *o += b;
            }
        }
        out
    }

    pub fn groups(&self) -> usize {
        self.chunks
            .iter()
            .flat_map(|c| c.tables())
            .map(|t| t.keys.len())
            .sum()
    }
}

/// Fold `batches` into a fresh speed view of `def`, in memory, and report (seconds, groups,
/// memory bytes). This is the speed layer alone, without the segment write of an append: what
/// the benchmarks compare with other engines' in-memory aggregation.
pub fn ingest_in_memory(
    def: crate::view::def::ViewDef,
    batches: &[crate::arrow::array::RecordBatch],
) -> Result<(f64, usize, usize)> {
    let first = batches
        .first()
        .ok_or_else(|| crate::error::Error::invalid("no batches"))?;
    let schema =
        crate::master::schema::StoreSchema::from_first_batch(&first.schema(), Some(&def.time))?;
    let plan = ViewPlan::new(def, &schema)?;
    let mut view = SpeedView::default();
    let start = std::time::Instant::now();
    for (i, b) in batches.iter().enumerate() {
        view.update(&plan, i as u64 + 1, b)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok((seconds, view.groups(), view.memory_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_and_batch(n: i64) -> (ViewPlan, crate::arrow::array::RecordBatch) {
        crate::view::testutil::count_view(&(0..n).map(|i| i % 3).collect::<Vec<_>>())
    }

    #[test]
    fn sealed_chunks_drop_whole_at_a_publish_and_replay_equals_folding() {
        let (plan, b) = plan_and_batch(10);
        let mut v = SpeedView::default();
        v.update(&plan, 1, &b).unwrap();
        v.update(&plan, 2, &b).unwrap();
        v.seal(); // a recompute at snapshot 2
        v.update(&plan, 3, &b).unwrap();
        assert!(!v.straddles(2));
        assert!(v.straddles(1));
        assert_eq!(v.rows(), 30);
        v.drop_upto(2);
        assert_eq!(v.rows(), 10);
        let r = SpeedView::replay(&plan, 2, 3, std::slice::from_ref(&b)).unwrap();
        assert_eq!(r.rows(), v.rows());
        assert_eq!((r.chunks[0].first, r.chunks[0].last), (3, 3));
    }
}
