//! Views through the store: define, redefine and drop (ordered with appends under the writer
//! lock), load and repair their served state, and the batch layer's recompute and publish.

use std::sync::Arc;

use super::{now_us, Pin, RecomputeReport, Store};
use crate::batch;
use crate::catalog::{Manifest, ManifestState, Published, Record, SavedSpeed, ViewEntry};
use crate::control::{self, Control};
use crate::error::{Error, ErrorKind, Result};
use crate::layout;
use crate::master::commits::FileRef;
use crate::master::files::read_checked;

use crate::serving::{BatchView, ServedView, Serving};
use crate::speed::SpeedView;
use crate::view::def::ViewDef;
use crate::view::table::{AggTable, ViewPlan};

/// A recompute between its stages (see `Store::begin_recompute`): the snapshot it covers,
/// pinned on disk until the job is finished or dropped, and the views it recomputes.
pub struct BatchJob {
    pub snapshot: u64,
    pub plans: Vec<ViewPlan>,
    pub slices: Vec<crate::master::commits::SegmentSlice>,
    pub schema: Option<crate::master::schema::StoreSchema>,
    started: std::time::Instant,
    _pin: Pin,
}

impl BatchJob {
    /// The job as worker processes run it, with the store's directory at `root` (as they see
    /// it). None when there is nothing to read (no schema yet).
    pub fn spec(&self, root: &std::path::Path) -> Option<batch::job::JobSpec> {
        Some(batch::job::JobSpec {
            format: batch::job::JOB_FORMAT,
            root: root.to_path_buf(),
            snapshot: self.snapshot,
            schema: self.schema.clone()?,
            views: self.plans.iter().map(|p| p.def.clone()).collect(),
            segments: self.slices.clone(),
        })
    }
}

/// One view's figures in `status()` (serialized with the Python dict's keys).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ViewStatus {
    pub name: String,
    pub fingerprint: String,
    #[serde(rename = "covered_commit")]
    pub covered: u64,
    pub pending_commits: u64,
    pub batch_groups: u64,
    /// Groups of each declared roll-up's exact table (declaration order; empty before a
    /// recompute publishes them).
    pub rollup_groups: Vec<u64>,
    pub speed_rows: u64,
    pub speed_groups: u64,
    #[serde(rename = "batch_age_seconds")]
    pub batch_age_s: Option<f64>,
    pub batch_memory_bytes: u64,
    pub speed_memory_bytes: u64,
    /// Per metric state (quantiles of one column share one, named `p50+p95`, as do a sum and a
    /// mean of one column, `amount+avg`): bytes per group
    /// in the batch view and in the speed layer (0 without groups).
    #[serde(serialize_with = "super::status::metric_bytes")]
    pub metric_bytes_per_group: Vec<(String, f64, f64)>,
    /// The commits (first, last) of the speed state saved at the last close, if one is kept.
    pub speed_saved: Option<(u64, u64)>,
    /// Why the view is served from less than it should be, if it is.
    pub warning: Option<String>,
    /// Why the last recompute could not publish the view, if it could not.
    pub batch_error: Option<String>,
}

impl Store {
    /// Define (or redefine) a view. A changed definition invalidates its batch view: until the
    /// next recompute the speed layer serves the whole history. Before the first append (and
    /// without `schema=`), the definition is kept and checked by the append that fixes the schema.
    pub fn define(&self, def: ViewDef) -> Result<bool> {
        let mut m = self.begin_write()?;
        let state = m.state();
        def.check_name()?;
        def.grain()?.check_width(&def.grain)?;
        for r in &def.rollups {
            crate::view::grain::Grain::parse(&r.grain)?.check_width(&r.grain)?;
        }
        let plan = match &state.schema {
            Some(schema) => Some(ViewPlan::new(def.clone(), schema)?),
            None => {
                def.check_name()?;
                None
            }
        };
        if let Some(v) = state.views.get(&def.name) {
            if v.fingerprint == def.fingerprint() && v.def == def {
                return Ok(false);
            }
        }
        // Build the served state from history while holding the writer lock: no commit can land
        // between the replay and the registration below.
        let served = match plan {
            Some(plan) => {
                let entry = ViewEntry {
                    fingerprint: plan.fingerprint.clone(),
                    published: state
                        .views
                        .get(&def.name)
                        .and_then(|v| v.published.clone())
                        .filter(|p| p.fingerprint == plan.fingerprint),
                    saved_speed: state
                        .views
                        .get(&def.name)
                        .and_then(|v| v.saved_speed.clone())
                        .filter(|p| p.fingerprint == plan.fingerprint),
                    def: def.clone(),
                };
                Some(self.load_view(&state, &entry)?)
            }
            None => None,
        };
        crate::failpoint::hit("define.before_install")?;
        let state = self.commit(&mut m, Record::Define { view: def.clone() })?;
        let mut s = self.serving_write()?;
        if let Some(v) = served {
            s.views.insert(def.name.clone(), v);
        }
        s.version = state.version;
        Ok(true)
    }

    pub fn drop_view(&self, name: &str) -> Result<()> {
        let mut m = self.begin_write()?;
        let state = m.state();
        let entry = state
            .views
            .get(name)
            .cloned()
            .ok_or_else(|| no_such_view(name, state.views.keys()))?;
        let state = self.commit(
            &mut m,
            Record::Drop {
                name: name.to_string(),
            },
        )?;
        {
            let mut s = self.serving_write()?;
            s.views.remove(name);
            s.version = state.version;
        }
        if let Some(p) = entry.published {
            self.retire(&p.file.file);
        }
        if let Some(p) = entry.saved_speed {
            self.retire(&p.file.file);
        }
        Ok(())
    }

    pub(crate) fn unknown_view(&self, name: &str, s: &Serving) -> Error {
        let committed = self.committed.read().map(|c| c.clone()).ok();
        if let Some(state) = &committed {
            if state.views.contains_key(name) && state.schema.is_none() {
                return Error::not_found(format!(
                    "view {name:?} has no data yet: the first append fixes the schema"
                ));
            }
        }
        no_such_view(name, s.views.keys())
    }

    /// The time zone of view `name`'s buckets (None: UTC, or no such view).
    pub fn view_zone(&self, name: &str) -> Result<Option<String>> {
        Ok(self.state()?.views.get(name).and_then(|v| v.def.tz.clone()))
    }

    pub fn view_defs(&self) -> Result<Vec<ViewDef>> {
        Ok(self
            .state()?
            .views
            .values()
            .map(|v| v.def.clone())
            .collect())
    }

    /// A view's served state at `state`: its published batch view, and the speed state of the
    /// commits after it replayed from the master dataset. A batch view file that is missing or
    /// damaged is derived data: the view is served from the speed layer (its whole history)
    /// with a warning, until the next recompute publishes a new one.
    pub(crate) fn load_view(&self, state: &ManifestState, entry: &ViewEntry) -> Result<ServedView> {
        let schema = state
            .schema
            .as_ref()
            .ok_or_else(|| Error::internal("a view loaded before the schema was fixed"))?;
        let plan = ViewPlan::new(entry.def.clone(), schema)?;
        let (batch, warning) = match &entry.published {
            Some(p) if p.fingerprint == plan.fingerprint => match self.load_batch_view(&plan, p) {
                Ok(b) => (Some(Arc::new(b)), None),
                Err(e) if matches!(e.kind, ErrorKind::Corruption | ErrorKind::Io) => (
                    None,
                    Some(format!(
                        "its batch view could not be loaded ({}); the speed layer serves its whole history until the next recompute",
                        e.message
                    )),
                ),
                Err(e) => return Err(e),
            },
            _ => (None, None),
        };
        let covered = batch.as_ref().map(|b| b.snapshot).unwrap_or(0);
        let saved = entry.saved_speed.as_ref().filter(|s| {
            s.fingerprint == plan.fingerprint
                && s.first == covered + 1
                && s.last <= state.last_commit()
        });
        // A saved speed state is derived data: if it cannot be read, replay the commits instead.
        let speed = match saved.map(|s| self.load_saved_speed(&plan, state, s)) {
            Some(Ok(speed)) => speed,
            _ => self.replay(&plan, state, covered)?,
        };
        let mut v = ServedView::new(plan, batch, speed);
        v.warning = warning;
        Ok(v)
    }

    /// The bytes of a file the catalog references, checked against its size and CRC-32 (the
    /// file pinned against cleanup while it is read).
    fn read_referenced(&self, file: &FileRef) -> Result<(std::path::PathBuf, bytes::Bytes)> {
        let _pin = Pin::new(&self.pins);
        let path = self.root.join(&file.file);
        let bytes = read_checked(&path, file.crc32, file.bytes)?;
        Ok((path, bytes))
    }

    fn load_batch_view(&self, plan: &ViewPlan, p: &Published) -> Result<BatchView> {
        let (path, bytes) = self.read_referenced(&p.file)?;
        let (table, rollups) = batch::view_file::decode(plan, &path, bytes, Some(p.rows))?;
        Ok(BatchView {
            snapshot: p.snapshot,
            fingerprint: p.fingerprint.clone(),
            published_at_us: p.published_at_us,
            table,
            rollups,
        })
    }

    /// The speed state saved at the last close, plus a replay of the commits after it.
    fn load_saved_speed(
        &self,
        plan: &ViewPlan,
        state: &ManifestState,
        saved: &SavedSpeed,
    ) -> Result<SpeedView> {
        // The saved state stands for these segments: a missing or resized one is found now
        // (by the replay this error falls back to), not at the next recompute.
        for slice in state.slices(saved.first - 1, saved.last) {
            let path = self.root.join(&slice.file.file);
            match std::fs::metadata(&path) {
                Ok(md) if md.len() == slice.file.bytes => {}
                _ => return Err(Error::corruption(&path, "segment missing or resized")),
            }
        }
        let (path, bytes) = self.read_referenced(&saved.file)?;
        let commits = (saved.first, saved.last, saved.rows);
        let mut speed = crate::speed::saved::decode(plan, &path, bytes, commits)?;
        self.fold_commits(plan, state, saved.last, &mut speed)?;
        Ok(speed)
    }

    /// At close: save each view's speed state (the commits its batch view does not cover), so
    /// that the next open loads it instead of replaying those commits. Views whose saved state
    /// is already current are skipped; a saved state that no longer fits is forgotten.
    pub(crate) fn save_speed_states(&self, m: &mut Manifest) -> Result<()> {
        let state = m.state();
        let mut work = Vec::new();
        {
            let s = self.serving_read()?;
            for (name, v) in &s.views {
                let entry = match state.views.get(name) {
                    Some(e) if e.fingerprint == v.plan.fingerprint => e,
                    _ => continue,
                };
                let (first, last) = (v.covered() + 1, s.visible);
                let current = entry.saved_speed.as_ref().is_some_and(|p| {
                    p.fingerprint == v.plan.fingerprint && p.first == first && p.last == last
                });
                if current {
                    continue;
                }
                if v.broken.is_some() {
                    // Served from less than it should be (or not at all): its saved state, if
                    // any, is left as it is for the next open to judge.
                    continue;
                }
                let useful = v.speed.rows() > 0 && last >= first;
                if !useful {
                    if entry.saved_speed.is_some() {
                        work.push((name.clone(), None, entry.saved_speed.clone()));
                    }
                    continue;
                }
                let bytes = crate::speed::saved::encode(&v.plan, &v.speed)?;
                // Committed in `work` order, one version each.
                let version = state.version + 1 + work.len() as u64;
                let rel = layout::saved_speed(name, first, last, &v.plan.fingerprint, version);
                let file = self.write_file(&rel, &bytes)?;
                let saved = SavedSpeed {
                    fingerprint: v.plan.fingerprint.clone(),
                    first,
                    last,
                    rows: v.speed.rows(),
                    file,
                };
                work.push((name.clone(), Some(saved), entry.saved_speed.clone()));
            }
        }
        for (name, saved, old) in work {
            let new_file = saved.as_ref().map(|p| p.file.file.clone());
            self.commit(m, Record::SaveSpeed { name, saved })?;
            if let Some(old) = old {
                if Some(&old.file.file) != new_file.as_ref() {
                    self.retire(&old.file.file);
                }
            }
        }
        Ok(())
    }

    /// The speed state of commits in (after, latest of `state`], from the master dataset.
    pub(crate) fn replay(
        &self,
        plan: &ViewPlan,
        state: &ManifestState,
        after: u64,
    ) -> Result<SpeedView> {
        let mut speed = SpeedView::default();
        self.fold_commits(plan, state, after, &mut speed)?;
        Ok(speed)
    }

    /// Fold the commits in (after, latest of `state`] into `speed`, as one new chunk. A few
    /// segments at a time (decoded in parallel), folded and dropped: a long history is held
    /// in memory a window at a time, not all of it.
    fn fold_commits(
        &self,
        plan: &ViewPlan,
        state: &ManifestState,
        after: u64,
        speed: &mut SpeedView,
    ) -> Result<()> {
        let last = state.last_commit();
        if last <= after {
            return Ok(());
        }
        let cols = plan.input_columns();
        let window = 2 * rayon::current_num_threads().max(1);
        speed.update_range(plan, after + 1, last, &[])?;
        for slices in state.slices(after, last).chunks(window) {
            for b in self.read_slices_of(state, slices, Some(&cols))? {
                speed.update(plan, last, &b)?;
            }
        }
        Ok(())
    }

    /// Rebuild every view's served state from `m`'s state and swap it in whole (on open, after
    /// the first append, and for a reader that fell behind a checkpoint).
    pub(crate) fn rebuild_serving(&self, m: &Manifest) -> Result<()> {
        let state = m.state();
        let mut fresh = Serving {
            visible: state.last_commit(),
            version: state.version,
            ..Default::default()
        };
        if let Some(schema) = &state.schema {
            for (name, entry) in &state.views {
                // One view that cannot be loaded (a damaged segment its replay reads) never
                // stops the store from opening: it is kept, and its queries raise the error.
                let view = match self.load_view(&state, entry) {
                    Ok(v) => v,
                    Err(e) => {
                        ServedView::unavailable(ViewPlan::new(entry.def.clone(), schema)?, &e)
                    }
                };
                fresh.views.insert(name.clone(), view);
            }
        }
        crate::failpoint::hit("reader.before_swap")?;
        *self.serving_write()? = fresh;
        *self.committed.write()? = state;
        Ok(())
    }

    /// A post-commit step failed in a way no single view explains: every view is marked broken
    /// (its queries raise `why`) rather than served short. The commit stands.
    pub(crate) fn mark_all_broken(&self, _state: &ManifestState, why: &Error) {
        if let Ok(mut s) = self.serving.write() {
            for v in s.views.values_mut() {
                v.broken = Some(format!(
                    "the last commit could not be folded in ({})",
                    why.message
                ));
                v.broken_kind = why.kind;
                v.invalidate();
            }
        }
    }

    /// A view whose speed fold failed: replay it from the master dataset at `state` (the caller
    /// holds the writer lock). If that fails too, the view is marked broken.
    pub(crate) fn repair_view(&self, state: &ManifestState, name: &str, why: &Error) -> Result<()> {
        let (plan, covered) = {
            let s = self.serving_read()?;
            match s.views.get(name) {
                Some(v) => (v.plan.clone(), v.covered()),
                None => return Ok(()),
            }
        };
        let rebuilt = self.replay(&plan, state, covered);
        let mut s = self.serving_write()?;
        if let Some(v) = s.views.get_mut(name) {
            match rebuilt {
                Ok(speed) => {
                    v.speed = speed;
                    v.broken = None;
                }
                Err(e) => {
                    v.broken = Some(format!(
                        "its speed state fell behind ({}) and could not be rebuilt ({})",
                        why.message, e.message
                    ))
                }
            }
            v.invalidate();
        }
        Ok(())
    }

    // ---------------------------------------------------------------- batch layer

    /// Recompute every view (or those named) from scratch over the latest snapshot and publish
    /// the results atomically. Returns the snapshot the new batch views cover.
    pub fn recompute(
        &self,
        views: Option<&[String]>,
        threads: Option<usize>,
        ctl: &Control,
    ) -> Result<u64> {
        control::check_threads(threads)?;
        let job = self.begin_recompute(views)?;
        if job.plans.is_empty() {
            return Ok(job.snapshot);
        }
        // 2. Compute, holding no lock: appends and queries go on. The job's pin keeps the
        // snapshot's segments on disk even if an append compacts them meanwhile.
        let pool = control::pool(threads)?;
        let target = job.schema.as_ref().map(|s| s.arrow()).transpose()?;
        let tables = batch::recompute(
            &self.root,
            &job.slices,
            &job.plans,
            target.as_deref(),
            &pool,
            ctl,
        )?;
        self.finish_recompute(job, tables, &pool, ctl)
    }

    /// Stage 1 of a recompute: pin a snapshot and seal the views' speed chunks at it, in one
    /// step with respect to appends. The job's tables can then be computed anywhere (here, or
    /// by worker processes from `BatchJob::spec`) and handed to `finish_recompute`.
    pub fn begin_recompute(&self, views: Option<&[String]>) -> Result<BatchJob> {
        let (state, plans) = {
            let m = self.begin_write()?;
            let state = m.state();
            let mut s = self.serving_write()?;
            if let Some(w) = views {
                for name in w {
                    if !s.views.contains_key(name) {
                        return Err(self.unknown_view(name, &s));
                    }
                }
            }
            let mut plans = Vec::new();
            for (name, v) in s.views.iter_mut() {
                if views.is_none_or(|w| w.contains(name)) {
                    v.speed.seal();
                    plans.push(v.plan.clone());
                }
            }
            (state, plans)
        };
        let snapshot = state.last_commit();
        Ok(BatchJob {
            snapshot,
            slices: state.slices(0, snapshot),
            schema: state.schema.clone(),
            plans,
            started: std::time::Instant::now(),
            _pin: Pin::new(&self.pins),
        })
    }

    /// Stage 3 of a recompute: persist and publish each view's table (one per plan of the job,
    /// in order), with `pool`'s threads.
    pub fn finish_recompute(
        &self,
        job: BatchJob,
        tables: Vec<AggTable>,
        pool: &rayon::ThreadPool,
        ctl: &Control,
    ) -> Result<u64> {
        if tables.len() != job.plans.len() {
            return Err(Error::internal("a recompute needs one table per view"));
        }
        let snapshot = job.snapshot;
        // A view that cannot be published (an integer sum that overflows) does not block the
        // others: its error is kept for `status()` and raised once the others are published.
        let mut failed: Vec<(String, String, Error)> = Vec::new();
        pool.install(|| {
            for (plan, table) in job.plans.iter().zip(tables) {
                ctl.check()?;
                match self.publish(plan, snapshot, table, ctl) {
                    Ok(()) => {}
                    Err(e) if matches!(e.kind, ErrorKind::Interrupted | ErrorKind::Closed) => {
                        return Err(e)
                    }
                    Err(e) => failed.push((plan.def.name.clone(), plan.fingerprint.clone(), e)),
                }
            }
            Ok::<_, Error>(())
        })?;
        if !failed.is_empty() {
            let mut s = self.serving_write()?;
            // A view redefined or dropped meanwhile is not blamed: its stale result is dropped.
            failed.retain(|(name, fp, _)| {
                s.views.get(name).is_some_and(|v| &v.plan.fingerprint == fp)
            });
            for (name, _, e) in &failed {
                if let Some(v) = s.views.get_mut(name) {
                    v.batch_error = Some(format!("recompute at commit {snapshot}: {}", e.message));
                }
            }
        }
        let report = RecomputeReport {
            snapshot,
            rows: job.slices.iter().map(|s| s.rows).sum(),
            views: job.plans.len(),
            threads: pool.current_num_threads(),
            seconds: job.started.elapsed().as_secs_f64(),
            phases: ctl.profile.seconds(),
        };
        *self
            .last_recompute
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(report);
        let published = job.plans.len() - failed.len();
        if let Some((name, _, e)) = failed.into_iter().next() {
            return Err(Error::new(
                e.kind,
                format!(
                    "view {name:?} was not recomputed ({}); it keeps serving its previous batch \
                     view and the speed layer; {published} other view(s) were published",
                    e.message
                ),
            ));
        }
        Ok(snapshot)
    }

    /// The time split of the last finished recompute of this process.
    pub fn last_recompute(&self) -> Option<RecomputeReport> {
        self.last_recompute
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Publish a recomputed batch view: write its file, then under the writer lock prepare
    /// everything that can fail, commit the record, and swap it in with the speed state of
    /// commits <= snapshot dropped, in one step.
    fn publish(
        &self,
        plan: &ViewPlan,
        snapshot: u64,
        table: AggTable,
        ctl: &Control,
    ) -> Result<()> {
        let name = &plan.def.name;
        let prof = &ctl.profile;
        let built = batch::publish::build(plan, table, prof)?;
        let mut m = self.begin_write()?;
        let state = m.state();
        let (current, saved) = match state.views.get(name) {
            Some(v) if v.fingerprint == plan.fingerprint => {
                (v.published.clone(), v.saved_speed.clone())
            }
            _ => return Ok(()), // redefined or dropped meanwhile: this result is stale
        };
        let (loaded_covers, straddles) = {
            let s = self.serving_read()?;
            match s.views.get(name) {
                Some(v) => (
                    v.batch.as_ref().is_some_and(|b| b.snapshot >= snapshot),
                    v.speed.straddles(snapshot),
                ),
                None => return Ok(()),
            }
        };
        if loaded_covers
            && current
                .as_ref()
                .is_some_and(|p| p.snapshot >= snapshot && p.fingerprint == plan.fingerprint)
        {
            return Ok(()); // a newer recompute already published (and it is served)
        }
        let rel = layout::batch_view(name, snapshot, &plan.fingerprint, state.version + 1);
        let file = prof.time("write+fsync", || self.write_file(&rel, &built.bytes))?;
        // Everything that can fail happens before the commit: a speed chunk that straddles the
        // snapshot (the view was loaded by a replay meanwhile) is rebuilt now.
        let speed = if straddles {
            Some(self.replay(plan, &state, snapshot)?)
        } else {
            None
        };
        let published = Published {
            snapshot,
            fingerprint: plan.fingerprint.clone(),
            file,
            rows: built.rows,
            published_at_us: now_us(),
        };
        if let Err(e) = crate::failpoint::hit("publish.before_commit") {
            self.retire(&rel);
            return Err(e);
        }
        let state = prof.time("commit", || {
            self.commit(
                &mut m,
                Record::Publish {
                    name: name.clone(),
                    published: published.clone(),
                },
            )
        })?;
        {
            let mut s = self.serving_write()?;
            if let Some(v) = s.views.get_mut(name) {
                v.swap_batch(
                    Arc::new(BatchView {
                        snapshot,
                        fingerprint: plan.fingerprint.clone(),
                        published_at_us: published.published_at_us,
                        table: built.table,
                        rollups: built.rollups,
                    }),
                    speed,
                );
            }
            s.version = state.version;
        }
        if let Some(old) = current {
            if old.file.file != rel {
                self.retire(&old.file.file);
            }
        }
        if let Some(saved) = saved {
            self.retire(&saved.file.file);
        }
        Ok(())
    }

    /// Per-view status rows.
    pub fn status(&self) -> Result<(Arc<ManifestState>, Vec<ViewStatus>)> {
        let state = self.state()?;
        let s = self.serving_read()?;
        let now = now_us();
        let views = s
            .views
            .iter()
            .map(|(name, v)| ViewStatus {
                name: name.clone(),
                fingerprint: v.plan.fingerprint.clone(),
                covered: v.covered(),
                pending_commits: s.visible.saturating_sub(v.covered()),
                batch_groups: v
                    .batch
                    .as_ref()
                    .map(|b| b.table.keys.len() as u64)
                    .unwrap_or(0),
                rollup_groups: v
                    .batch
                    .as_ref()
                    .map(|b| b.rollups.iter().map(|t| t.keys.len() as u64).collect())
                    .unwrap_or_default(),
                speed_rows: v.speed.rows(),
                speed_groups: v.speed.groups() as u64,
                batch_age_s: v
                    .batch
                    .as_ref()
                    .map(|b| (now - b.published_at_us) as f64 / 1e6),
                batch_memory_bytes: v
                    .batch
                    .as_ref()
                    .map(|b| {
                        (b.table.memory_bytes()
                            + b.rollups.iter().map(|t| t.memory_bytes()).sum::<usize>())
                            as u64
                    })
                    .unwrap_or(0),
                speed_memory_bytes: v.speed.memory_bytes() as u64,
                metric_bytes_per_group: {
                    let per = |bytes: Vec<usize>, groups: usize| -> Vec<f64> {
                        bytes
                            .into_iter()
                            .map(|b| {
                                if groups == 0 {
                                    0.0
                                } else {
                                    b as f64 / groups as f64
                                }
                            })
                            .collect()
                    };
                    let batch = v
                        .batch
                        .as_ref()
                        .map(|b| per(b.table.metric_memory(), b.table.keys.len()))
                        .unwrap_or_default();
                    let speed = per(v.speed.metric_memory(), v.speed.groups());
                    v.plan
                        .metrics
                        .iter()
                        .enumerate()
                        .map(|(i, m)| {
                            let outputs = m.outputs();
                            let name = outputs
                                .iter()
                                .map(|(n, _)| *n)
                                .collect::<Vec<_>>()
                                .join("+");
                            let at = |v: &Vec<f64>| v.get(i).copied().unwrap_or(0.0);
                            (name, at(&batch), at(&speed))
                        })
                        .collect()
                },
                speed_saved: state
                    .views
                    .get(name)
                    .and_then(|e| e.saved_speed.as_ref())
                    .map(|p| (p.first, p.last)),
                warning: v.broken.clone().or_else(|| v.warning.clone()),
                batch_error: v.batch_error.clone(),
            })
            .collect();
        Ok((state, views))
    }
}

/// NotFound for `name`, listing the views there are.
fn no_such_view<'a>(name: &str, names: impl Iterator<Item = &'a String>) -> Error {
    let names: Vec<&str> = names.map(|s| s.as_str()).collect();
    Error::not_found(format!(
        "no view named {name:?} (views: {})",
        if names.is_empty() {
            "none defined".to_string()
        } else {
            names.join(", ")
        }
    ))
}
