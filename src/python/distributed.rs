//! Bindings of the partial-state protocol (`batch::partial`) and of a recompute split across
//! processes (`batch::job`): what `lamina.partial` and `lamina.distributed` call.

use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use rayon::prelude::*;

use super::arrow_ffi;
use super::wait::{detach, interruptible};
use crate::aggregate::Mode;
use crate::batch::job::{run_task, JobSpec};
use crate::batch::partial::{merge_all, partial_of, Partial};
use crate::error::Error;
use crate::store::{BatchJob, Store};
use crate::view::def::ViewDef;

fn partial_table(py: Python<'_>, p: &Partial) -> PyResult<Py<PyAny>> {
    let batches = p.to_batches()?;
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => {
            return Err(PyErr::from(Error::internal(
                "a partial table without batches",
            )))
        }
    };
    arrow_ffi::to_pyarrow(py, schema, batches)
}

fn read_partial(obj: &Bound<'_, PyAny>) -> PyResult<Partial> {
    let (schema, batches) = arrow_ffi::read_batches(obj)?;
    obj.py()
        .detach(|| Partial::from_batches(&schema, &batches))
        .map_err(PyErr::from)
}

/// The partial state of a view (JSON definition) over table-like `data`.
#[pyfunction]
pub fn partial_states(
    py: Python<'_>,
    definition: &str,
    data: Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let def = ViewDef::from_json(definition)?;
    let (schema, batches) = arrow_ffi::read_batches(&data)?;
    let p = detach(py, || partial_of(def, &schema, &batches))?;
    partial_table(py, &p)
}

/// Merge partial tables of one view into one.
#[pyfunction]
pub fn merge_partial_states(py: Python<'_>, parts: Vec<Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
    let parts = parts
        .iter()
        .map(arrow_ffi::read_batches)
        .collect::<PyResult<Vec<_>>>()?;
    let p = detach(py, || merge_all(&parts))?;
    partial_table(py, &p)
}

/// The view's answer from a partial table.
#[pyfunction]
pub fn finalize_partial_states(py: Python<'_>, part: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let p = read_partial(&part)?;
    let b = detach(py, || p.finalize())?;
    arrow_ffi::batch_table(py, b)
}

/// A worker's task: the partial state of each view of the job over the segments numbered
/// `segments`, one table per view in the job's order.
#[pyfunction]
#[pyo3(signature = (spec, segments, threads=None))]
pub fn run_recompute_task(
    py: Python<'_>,
    spec: &str,
    segments: Vec<usize>,
    threads: Option<usize>,
) -> PyResult<Vec<Py<PyAny>>> {
    crate::store::check_threads(threads)?;
    let spec = JobSpec::from_json(spec)?;
    let parts = interruptible(py, None, move |ctl| {
        crate::failpoint::hit("recompute.task")?;
        run_task(&spec, &segments, threads, ctl)
    })?;
    parts.iter().map(|p| partial_table(py, p)).collect()
}

/// A recompute between its stages, held by the Python driver while workers compute.
#[pyclass(frozen, module = "lamina._core")]
pub struct CoreBatchJob {
    store: Arc<Store>,
    job: Mutex<Option<BatchJob>>,
    parsed: Option<JobSpec>,
    spec: Option<String>,
    snapshot: u64,
    views: Vec<String>,
}

#[pymethods]
impl CoreBatchJob {
    /// The job as JSON for the workers, or None when there is nothing to read.
    #[getter]
    fn spec(&self) -> Option<String> {
        self.spec.clone()
    }
    #[getter]
    fn snapshot(&self) -> u64 {
        self.snapshot
    }
    /// The job's segments split into at most `tasks` tasks of similar row counts: a list of
    /// (segment numbers, rows).
    fn split(&self, tasks: usize) -> Vec<(Vec<usize>, u64)> {
        match &self.parsed {
            None => Vec::new(),
            Some(spec) => spec
                .split(tasks)
                .into_iter()
                .map(|s| {
                    let rows = spec.rows(&s);
                    (s, rows)
                })
                .collect(),
        }
    }

    /// Give up the job: release its snapshot pin now (publishing it is then refused).
    fn cancel(&self) {
        if let Ok(mut j) = self.job.lock() {
            j.take();
        }
    }

    /// The views the job recomputes, in the order `publish` takes their partial states.
    #[getter]
    fn views(&self) -> Vec<String> {
        self.views.clone()
    }

    /// Publish the views from their partial tables: per view (in `views` order), a list of
    /// partial tables, merged here (None: the views are empty). Returns the snapshot the new
    /// batch views cover.
    #[pyo3(signature = (partials, threads=None, progress=None))]
    fn publish(
        &self,
        py: Python<'_>,
        partials: Option<Vec<Vec<Bound<'_, PyAny>>>>,
        threads: Option<usize>,
        progress: Option<Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        crate::store::check_threads(threads)?;
        let job = self
            .job
            .lock()
            .map_err(|_| PyErr::from(Error::internal("job lock poisoned")))?
            .take()
            .ok_or_else(|| {
                PyErr::from(Error::invalid("this recompute job was already published"))
            })?;
        let read = match &partials {
            Some(per_view) => Some(
                per_view
                    .iter()
                    .map(|parts| {
                        parts
                            .iter()
                            .map(arrow_ffi::read_batches)
                            .collect::<PyResult<Vec<_>>>()
                    })
                    .collect::<PyResult<Vec<_>>>()?,
            ),
            None => None,
        };
        let store = self.store.clone();
        interruptible(py, progress.as_ref(), move |ctl| {
            let pool = crate::control::pool(threads)?;
            let tables =
                match read {
                    None if !job.slices.is_empty() => return Err(Error::invalid(
                        "this job's snapshot holds rows: publish needs the partial states of its \
                         tasks",
                    )),
                    None => job.plans.iter().map(|p| p.new_table(Mode::Exact)).collect(),
                    Some(read) => {
                        if read.len() != job.plans.len() {
                            return Err(Error::invalid(format!(
                                "the job recomputes {} views; {} partial states were given",
                                job.plans.len(),
                                read.len()
                            )));
                        }
                        let mut tables = Vec::with_capacity(read.len());
                        let schema = job.schema.clone().ok_or_else(|| {
                            Error::invalid("partial states were given for a store without data")
                        })?;
                        for (plan, parts) in job.plans.iter().zip(&read) {
                            let expected = Partial::new(plan.def.clone(), &schema, Mode::Exact)?;
                            let decoded: Vec<Partial> = pool.install(|| {
                                parts
                                    .par_iter()
                                    .map(|(arrow, batches)| Partial::from_batches(arrow, batches))
                                    .collect::<crate::Result<_>>()
                            })?;
                            let mut merged = expected.clone();
                            let mut first = true;
                            for p in decoded {
                                if p.meta != expected.meta {
                                    return Err(Error::invalid(format!(
                                        "a partial state given for view {:?} is not of this job",
                                        plan.def.name
                                    )));
                                }
                                ctl.check()?;
                                if first {
                                    // The empty start covers nothing: take the first state whole.
                                    merged = p;
                                    first = false;
                                } else {
                                    merged.merge(p)?;
                                }
                            }
                            if !job.slices.is_empty() || merged.covers.is_some() {
                                crate::batch::job::check_coverage(
                                    &job.slices,
                                    &plan.def.name,
                                    merged.covers.as_ref(),
                                )?;
                            }
                            tables.push(merged.table);
                        }
                        tables
                    }
                };
            store.finish_recompute(job, tables, &pool, ctl)
        })
    }
}

/// Stage 1 of a recompute whose partial states workers compute (`CoreStore.begin_recompute`):
/// pin the snapshot, seal the speed chunks, and describe the job with the store's directory at
/// `root` (default: as this process sees it).
pub fn begin_recompute(
    py: Python<'_>,
    store: &Arc<Store>,
    views: Option<Vec<String>>,
    root: Option<std::path::PathBuf>,
) -> PyResult<CoreBatchJob> {
    let s = store.clone();
    let job = detach(py, || s.begin_recompute(views.as_deref()))?;
    let root = root.unwrap_or_else(|| store.root().to_path_buf());
    let parsed = job.spec(&root);
    Ok(CoreBatchJob {
        spec: parsed.as_ref().map(|s| s.to_json()),
        parsed,
        snapshot: job.snapshot,
        views: job.plans.iter().map(|p| p.def.name.clone()).collect(),
        store: store.clone(),
        job: Mutex::new(Some(job)),
    })
}
