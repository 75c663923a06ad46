//! A recompute split across processes: the job a writer resolves (the snapshot's segments, the
//! views, the schema) as a plain JSON spec, and the task a worker process runs over some of its
//! segments, giving one partial state per view (see `partial`).
//!
//! A worker needs only the spec and read access to the store's directory: it opens no store,
//! takes no lock and writes nothing. Segments are read with their recorded size and checksum,
//! so a worker that sees another file than the writer committed fails instead of counting it.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::partial::Partial;
use super::recompute;
use crate::control::{pool, Control};
use crate::error::{Error, Result};
use crate::master::commits::SegmentSlice;
use crate::master::schema::StoreSchema;
use crate::view::def::ViewDef;
use crate::view::table::ViewPlan;

/// The version of the spec layout.
pub const JOB_FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobSpec {
    pub format: u32,
    /// The store's directory, as the workers see it.
    pub root: PathBuf,
    /// The last commit the recompute covers.
    pub snapshot: u64,
    pub schema: StoreSchema,
    pub views: Vec<ViewDef>,
    /// The snapshot's segments (whole: a recompute reads every commit from the first).
    pub segments: Vec<SegmentSlice>,
}

impl JobSpec {
    pub fn from_json(text: &str) -> Result<JobSpec> {
        let spec: JobSpec = serde_json::from_str(text)
            .map_err(|e| Error::invalid(format!("not a lamina recompute job: {e}")))?;
        if spec.format != JOB_FORMAT {
            return Err(Error::invalid(format!(
                "recompute job of format {} cannot be run by this lamina (format {JOB_FORMAT})",
                spec.format
            )));
        }
        for s in &spec.segments {
            let rel = Path::new(&s.file.file);
            if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
                return Err(Error::invalid(format!(
                    "segment path {:?} leaves the store's directory",
                    s.file.file
                )));
            }
        }
        Ok(spec)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn plans(&self) -> Result<Vec<ViewPlan>> {
        self.views
            .iter()
            .map(|v| ViewPlan::new(v.clone(), &self.schema))
            .collect()
    }

    pub fn rows(&self, segments: &[usize]) -> u64 {
        segments
            .iter()
            .filter_map(|&i| self.segments.get(i))
            .map(|s| s.rows)
            .sum()
    }

    /// Split the segments into at most `tasks` groups of consecutive segments with similar row
    /// counts (a segment is never split): a segment goes to the task its middle row falls in.
    pub fn split(&self, tasks: usize) -> Vec<Vec<usize>> {
        let tasks = tasks.max(1) as u128;
        let total: u128 = self
            .segments
            .iter()
            .map(|s| s.rows as u128)
            .sum::<u128>()
            .max(1);
        let mut out: Vec<Vec<usize>> = Vec::new();
        let mut before = 0u128;
        let mut last = None;
        for (i, s) in self.segments.iter().enumerate() {
            let task = ((before + s.rows as u128 / 2) * tasks / total).min(tasks - 1);
            before += s.rows as u128;
            if last != Some(task) {
                out.push(Vec::new());
                last = Some(task);
            }
            if let Some(t) = out.last_mut() {
                t.push(i);
            }
        }
        out
    }
}

/// Run one task: the partial state of every view of `spec` over the segments numbered
/// `segments`, computed with `threads` threads (None: one per core).
pub fn run_task(
    spec: &JobSpec,
    segments: &[usize],
    threads: Option<usize>,
    ctl: &Control,
) -> Result<Vec<Partial>> {
    let plans = spec.plans()?;
    let slices: Vec<SegmentSlice> = segments
        .iter()
        .map(|&i| {
            spec.segments
                .get(i)
                .cloned()
                .ok_or_else(|| Error::invalid(format!("the job has no segment {i}")))
        })
        .collect::<Result<_>>()?;
    let target = spec.schema.arrow()?;
    let tables = recompute(
        &spec.root,
        &slices,
        &plans,
        Some(&target),
        &pool(threads)?,
        ctl,
    )?;
    let covers: std::collections::BTreeSet<String> =
        slices.iter().map(|s| s.file.file.clone()).collect();
    plans
        .iter()
        .zip(tables)
        .map(|(plan, table)| {
            let mut p = Partial::of_table(plan, &spec.schema, table)?;
            p.covers = Some(covers.clone());
            Ok(p)
        })
        .collect()
}

/// Check that partial states of one view cover the job's segments exactly once (each merge
/// already refused overlap): a task's result missing or given twice would publish a wrong view.
pub fn check_coverage(
    spec_segments: &[SegmentSlice],
    view: &str,
    covers: Option<&std::collections::BTreeSet<String>>,
) -> Result<()> {
    let Some(covers) = covers else {
        return Err(Error::invalid(format!(
            "a partial state given for view {view:?} does not say which segments it covers: \
             publish takes the partial states of this job's tasks (run_recompute_task)"
        )));
    };
    let want: std::collections::BTreeSet<&str> =
        spec_segments.iter().map(|s| s.file.file.as_str()).collect();
    if let Some(extra) = covers.iter().find(|c| !want.contains(c.as_str())) {
        return Err(Error::invalid(format!(
            "the partial states of view {view:?} cover segment {extra:?}, which is not in the job's snapshot"
        )));
    }
    if let Some(missing) = want.iter().find(|w| !covers.contains(**w)) {
        return Err(Error::invalid(format!(
            "the partial states of view {view:?} do not cover segment {missing:?}: a task's result is missing"
        )));
    }
    Ok(())
}
