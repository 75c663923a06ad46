//! The Python binding: the one place that knows about pyo3. Every method converts arguments,
//! releases the GIL around the core call, and maps core errors to the `lamina.errors` classes.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use crate::arrow::array::RecordBatch;
use crate::arrow::datatypes::SchemaRef;
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::control::Control;
use crate::error::{Error, ErrorKind};
use crate::serving::{Part, Query};
use crate::store::{OpenOptions, Store};
use crate::view::def::{Filter, ViewDef};

mod arrow_ffi;
mod distributed;

/// Raise the `lamina.errors` class matching the core error.
fn to_py(err: Error) -> PyErr {
    if err.kind == ErrorKind::Interrupted {
        return PyKeyboardInterrupt::new_err("interrupted");
    }
    let class = match err.kind {
        ErrorKind::Schema => "SchemaError",
        ErrorKind::Lock => "LockError",
        ErrorKind::Corruption => "CorruptionError",
        ErrorKind::NotFound => "NotFoundError",
        ErrorKind::InvalidArgument => "InvalidArgumentError",
        ErrorKind::Overflow => "SumOverflowError",
        ErrorKind::Closed => "StoreClosedError",
        ErrorKind::Io | ErrorKind::Interrupted => "LaminaIOError",
        ErrorKind::Internal => "LaminaError",
    };
    Python::attach(|py| {
        let made = py
            .import("lamina.errors")
            .and_then(|m| m.getattr(class))
            .and_then(|c| c.call1((err.message.clone(),)));
        match made {
            Ok(exc) => PyErr::from_value(exc),
            Err(e) => e,
        }
    })
}

/// Release the GIL around core work (which runs on the calling thread; its parallel steps go
/// to this process's pool, see `crate::control::parallel`).
pub(crate) fn detach<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> T {
    py.detach(f)
}

fn table(py: Python<'_>, schema: SchemaRef, batches: Vec<RecordBatch>) -> PyResult<Py<PyAny>> {
    arrow_ffi::to_pyarrow(py, schema, batches)
}

fn batch_table(py: Python<'_>, batch: RecordBatch) -> PyResult<Py<PyAny>> {
    let schema = batch.schema();
    table(py, schema, vec![batch])
}

/// Run heavy work on a helper thread with the GIL released, like polars' `enter_polars`:
/// the calling thread wakes every 100 ms to report progress and to honour Ctrl-C, which cancels
/// the work and raises KeyboardInterrupt.
fn run_interruptible<T: Send>(
    py: Python<'_>,
    progress: Option<&Bound<'_, PyAny>>,
    work: impl FnOnce(&Control) -> crate::Result<T> + Send,
) -> PyResult<T> {
    let ctl = Control::default();
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        let ctl_ref = &ctl;
        scope.spawn(move || {
            let _ = tx.send(work(ctl_ref));
        });
        // A Mutex makes the receiver shareable with the GIL-free closure.
        let rx = std::sync::Mutex::new(rx);
        let wait = |timeout: Duration| match rx.lock() {
            Ok(r) => r.recv_timeout(timeout),
            Err(_) => Err(mpsc::RecvTimeoutError::Disconnected),
        };
        loop {
            let got = py.detach(|| wait(Duration::from_millis(100)));
            match got {
                Ok(result) => return result.map_err(to_py),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(to_py(Error::invalid("internal: worker thread failed")))
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            let report = progress.map(|cb| {
                cb.call1((
                    ctl.rows_done.load(Ordering::Relaxed),
                    ctl.rows_total.load(Ordering::Relaxed),
                ))
            });
            if let Err(e) = py
                .check_signals()
                .and(report.unwrap_or(Ok(py.None().into_bound(py))).map(|_| ()))
            {
                ctl.cancel.store(true, Ordering::Relaxed);
                let _ = py.detach(|| wait(Duration::from_secs(3600)));
                return Err(e);
            }
        }
    })
}

/// Filters given as a JSON list (see `lamina.view.filters_to_json`).
fn parse_filters(filters: Option<&str>) -> PyResult<Vec<Filter>> {
    match filters {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| to_py(Error::invalid(format!("bad filter: {e}")))),
        None => Ok(Vec::new()),
    }
}

/// The core of `lamina.Store`; the Python class wraps it with a friendlier signature.
#[pyclass(frozen, module = "lamina._core")]
struct CoreStore {
    inner: Arc<Store>,
}

#[pymethods]
impl CoreStore {
    #[new]
    #[pyo3(signature = (path=None, read_only=false, durable=true, time=None, auto_compact=true, schema=None))]
    fn new(
        py: Python<'_>,
        path: Option<std::path::PathBuf>,
        read_only: bool,
        durable: bool,
        time: Option<String>,
        auto_compact: bool,
        schema: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let schema = schema.map(|s| arrow_ffi::read_schema(&s)).transpose()?;
        let opts = OpenOptions {
            path,
            read_only,
            durable,
            time_column: time,
            auto_compact,
            schema,
        };
        let store = detach(py, || Store::open(opts)).map_err(to_py)?;
        Ok(CoreStore {
            inner: Arc::new(store),
        })
    }

    #[getter]
    fn path(&self) -> String {
        self.inner.root().display().to_string()
    }
    #[getter]
    fn temporary(&self) -> bool {
        self.inner.is_temporary()
    }
    #[getter]
    fn read_only(&self) -> bool {
        self.inner.is_read_only()
    }

    /// Append data as one commit; returns (commit, rows, quarantined). `source`: the source
    /// position (JSON) to record in the same commit.
    #[pyo3(signature = (data, quarantine=false, source=None))]
    fn append(
        &self,
        py: Python<'_>,
        data: Bound<'_, PyAny>,
        quarantine: bool,
        source: Option<&str>,
    ) -> PyResult<(u64, u64, u64)> {
        let mark = source
            .map(|s| {
                serde_json::from_str::<crate::master::source::SourceMark>(s)
                    .map_err(|e| Error::invalid(format!("bad source position: {e}")))
            })
            .transpose()
            .map_err(to_py)?;
        let (schema, batches) = arrow_ffi::read_batches(&data)?;
        let batches = if batches.is_empty() {
            vec![RecordBatch::new_empty(schema)]
        } else {
            batches
        };
        let store = &self.inner;
        let out = detach(py, || store.append_from(&batches, quarantine, mark)).map_err(to_py)?;
        Ok((out.commit, out.rows, out.quarantined))
    }

    /// Additive schema evolution (see `Store::evolve_schema`); True if anything changed.
    fn evolve_schema(&self, py: Python<'_>, schema: Bound<'_, PyAny>) -> PyResult<bool> {
        let schema = arrow_ffi::read_schema(&schema)?;
        detach(py, || self.inner.evolve_schema(&schema)).map_err(to_py)
    }

    /// What a source has delivered so far, as JSON (`files`: name -> [size, hash, commit],
    /// `offsets`: partition -> next offset, `last_commit`), or None.
    fn source_state(&self, source: &str) -> PyResult<Option<String>> {
        let s = self.inner.source_state(source).map_err(to_py)?;
        Ok(s.and_then(|s| serde_json::to_string(&s).ok()))
    }

    #[pyo3(signature = (commit=None))]
    fn snapshot(&self, py: Python<'_>, commit: Option<u64>) -> PyResult<Py<PyAny>> {
        let store = self.inner.clone();
        let (schema, batches) = run_interruptible(py, None, move |_| store.snapshot(commit))?;
        table(py, schema, batches)
    }

    fn commits(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let b = detach(py, || self.inner.commits()).map_err(to_py)?;
        batch_table(py, b)
    }

    fn quarantined(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let (schema, batches) = detach(py, || self.inner.quarantined()).map_err(to_py)?;
        table(py, schema, batches)
    }

    fn compact(&self, py: Python<'_>) -> PyResult<usize> {
        detach(py, || self.inner.compact()).map_err(to_py)
    }

    /// Define a view from its JSON definition; returns False if it was already defined so.
    fn define(&self, py: Python<'_>, definition: &str) -> PyResult<bool> {
        let def = ViewDef::from_json(definition).map_err(to_py)?;
        let store = self.inner.clone();
        run_interruptible(py, None, move |_| store.define(def))
    }

    fn drop_view(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        detach(py, || self.inner.drop_view(name)).map_err(to_py)
    }

    /// The JSON definitions of the views.
    fn views(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let defs = detach(py, || self.inner.view_defs()).map_err(to_py)?;
        Ok(defs.iter().map(|d| d.to_json()).collect())
    }

    fn view_zone(&self, name: &str) -> PyResult<Option<String>> {
        self.inner.view_zone(name).map_err(to_py)
    }

    #[pyo3(signature = (views=None, threads=None, progress=None))]
    fn recompute(
        &self,
        py: Python<'_>,
        views: Option<Vec<String>>,
        threads: Option<usize>,
        progress: Option<Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let store = self.inner.clone();
        run_interruptible(py, progress.as_ref(), move |ctl| {
            store.recompute(views.as_deref(), threads, ctl)
        })
    }

    /// Stage 1 of a recompute whose partial states workers compute (see `distributed.rs`).
    #[pyo3(signature = (views=None, root=None))]
    fn begin_recompute(
        &self,
        py: Python<'_>,
        views: Option<Vec<String>>,
        root: Option<std::path::PathBuf>,
    ) -> PyResult<distributed::CoreBatchJob> {
        distributed::begin_recompute(py, &self.inner, views, root)
    }

    /// The answer as it stood after `commit`, computed exactly from the snapshot.
    #[pyo3(signature = (view, commit, start=None, end=None, grain=None, by=None, filters=None, threads=None, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn query_as_of(
        &self,
        py: Python<'_>,
        view: &str,
        commit: u64,
        start: Option<i64>,
        end: Option<i64>,
        grain: Option<String>,
        by: Option<Vec<String>>,
        filters: Option<&str>,
        threads: Option<usize>,
        progress: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        crate::store::check_threads(threads).map_err(to_py)?;
        let q = Query {
            start,
            end,
            grain,
            by,
            filter: parse_filters(filters)?,
        };
        let store = self.inner.clone();
        let view = view.to_string();
        let b = run_interruptible(py, progress.as_ref(), move |ctl| {
            store.query_as_of(&view, &q, commit, threads, ctl)
        })?;
        batch_table(py, b)
    }

    /// `verify`'s answers of one view from one definition: (served, fresh, the definition's
    /// JSON), at `grain` over `by` if given.
    #[pyo3(signature = (view, grain=None, by=None))]
    fn verify_answers(
        &self,
        py: Python<'_>,
        view: &str,
        grain: Option<String>,
        by: Option<Vec<String>>,
    ) -> PyResult<(Py<PyAny>, Py<PyAny>, String)> {
        let q = Query {
            grain,
            by,
            ..Query::default()
        };
        let store = self.inner.clone();
        let view = view.to_string();
        let (served, fresh, def) = run_interruptible(py, None, move |ctl| {
            store.verify_answers(&view, &q, None, ctl)
        })?;
        Ok((
            batch_table(py, served)?,
            batch_table(py, fresh)?,
            def.to_json(),
        ))
    }

    /// The served answer of a whole view (at `grain` over `by`, if given) and the last commit it
    /// covers, read in one step.
    #[pyo3(signature = (view, grain=None, by=None))]
    fn query_with_commit(
        &self,
        py: Python<'_>,
        view: &str,
        grain: Option<String>,
        by: Option<Vec<String>>,
    ) -> PyResult<(Py<PyAny>, u64)> {
        let q = Query {
            grain,
            by,
            ..Query::default()
        };
        let (b, commit) = detach(py, || self.inner.query_with_commit(view, &q)).map_err(to_py)?;
        Ok((batch_table(py, b)?, commit))
    }

    /// The parts of one served row (see `store::audit`): `at` is the bucket start in
    /// microseconds, `filters` a JSON list giving every dimension one value.
    #[pyo3(signature = (view, at, filters=None))]
    fn explain(
        &self,
        py: Python<'_>,
        view: &str,
        at: i64,
        filters: Option<&str>,
    ) -> PyResult<Py<PyAny>> {
        let filter = parse_filters(filters)?;
        let store = &self.inner;
        let b = detach(py, || -> crate::Result<_> {
            let dims = store
                .view_defs()?
                .iter()
                .find(|d| d.name == view)
                .map(|d| d.by.len())
                .unwrap_or(0);
            let parts = store.explain(view, at, filter)?;
            crate::store::audit::explain_table(&parts, dims)
        })
        .map_err(to_py)?;
        batch_table(py, b)
    }

    /// Test hook: fold the latest commit into a view's speed layer a second time.
    fn _plant_double_count(&self, py: Python<'_>, view: &str) -> PyResult<()> {
        detach(py, || self.inner.plant_double_count(view)).map_err(to_py)
    }

    /// `part` is "served", "batch" or "speed"; `filters` is a JSON list of filters.
    #[pyo3(signature = (view, start=None, end=None, grain=None, by=None, filters=None, part="served"))]
    #[allow(clippy::too_many_arguments)]
    fn query(
        &self,
        py: Python<'_>,
        view: &str,
        start: Option<i64>,
        end: Option<i64>,
        grain: Option<String>,
        by: Option<Vec<String>>,
        filters: Option<&str>,
        part: &str,
    ) -> PyResult<Py<PyAny>> {
        let filter = parse_filters(filters)?;
        let part = match part {
            "served" => Part::Served,
            "batch" => Part::Batch,
            "speed" => Part::Speed,
            other => return Err(to_py(Error::invalid(format!("unknown part {other:?}")))),
        };
        let q = Query {
            start,
            end,
            grain,
            by,
            filter,
        };
        let b = detach(py, || self.inner.query(view, &q, part)).map_err(to_py)?;
        batch_table(py, b)
    }

    /// Store status: a dict with the store's figures and one dict per view.
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (state, views) = detach(py, || self.inner.status()).map_err(to_py)?;
        let d = PyDict::new(py);
        d.set_item("path", self.path())?;
        d.set_item("temporary", self.inner.is_temporary())?;
        d.set_item("read_only", self.inner.is_read_only())?;
        d.set_item("latest_commit", state.last_commit())?;
        d.set_item("rows", state.total_rows())?;
        d.set_item(
            "quarantined_rows",
            state.commits.iter().map(|c| c.quarantined).sum::<u64>(),
        )?;
        d.set_item("segments", state.segments.len())?;
        let sources = pyo3::types::PyList::empty(py);
        for (id, src) in &state.sources {
            let sd = PyDict::new(py);
            sd.set_item("source", id)?;
            sd.set_item("last_commit", src.last_commit)?;
            sd.set_item("files", src.files.len())?;
            sd.set_item("offsets", src.offsets.clone())?;
            sd.set_item("rejected", src.rejected)?;
            sd.set_item("ignored_fields", src.ignored.clone())?;
            sources.append(sd)?;
        }
        d.set_item("sources", sources)?;
        d.set_item(
            "segment_bytes",
            state.segments.iter().map(|s| s.file.bytes).sum::<u64>(),
        )?;
        d.set_item("manifest_version", state.version)?;
        d.set_item("retired_files", self.inner.retired_files())?;
        d.set_item(
            "time_column",
            state.schema.as_ref().map(|s| s.time_column.clone()),
        )?;
        let list = pyo3::types::PyList::empty(py);
        for v in views {
            let vd = PyDict::new(py);
            vd.set_item("name", v.name)?;
            vd.set_item("fingerprint", v.fingerprint)?;
            vd.set_item("covered_commit", v.covered)?;
            vd.set_item("pending_commits", v.pending_commits)?;
            vd.set_item("batch_groups", v.batch_groups)?;
            vd.set_item("rollup_groups", v.rollup_groups)?;
            vd.set_item("speed_rows", v.speed_rows)?;
            vd.set_item("speed_groups", v.speed_groups)?;
            vd.set_item("batch_age_seconds", v.batch_age_s)?;
            vd.set_item("batch_memory_bytes", v.batch_memory_bytes)?;
            vd.set_item("speed_memory_bytes", v.speed_memory_bytes)?;
            let per = pyo3::types::PyDict::new(py);
            for (name, batch, speed) in &v.metric_bytes_per_group {
                let d = pyo3::types::PyDict::new(py);
                d.set_item("batch", *batch)?;
                d.set_item("speed", *speed)?;
                per.set_item(name, d)?;
            }
            vd.set_item("metric_bytes_per_group", per)?;
            vd.set_item("speed_saved", v.speed_saved)?;
            vd.set_item("warning", v.warning)?;
            vd.set_item("batch_error", v.batch_error)?;
            list.append(vd)?;
        }
        d.set_item("views", list)?;
        let last = match self.inner.last_recompute() {
            Some(r) => {
                let rd = PyDict::new(py);
                rd.set_item("snapshot", r.snapshot)?;
                rd.set_item("rows", r.rows)?;
                rd.set_item("views", r.views)?;
                rd.set_item("threads", r.threads)?;
                rd.set_item("seconds", r.seconds)?;
                let phases = PyDict::new(py);
                for (k, v) in r.phases {
                    phases.set_item(k, v)?;
                }
                rd.set_item("phases", phases)?;
                Some(rd)
            }
            None => None,
        };
        d.set_item("last_recompute", last)?;
        Ok(d)
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        detach(py, || self.inner.close()).map_err(to_py)
    }
}

/// Estimate the distinct count of an Arrow array with a lamina sketch (for tests and benchmarks):
/// returns (estimate, lower, upper, serialized bytes, memory bytes).
#[pyfunction]
#[pyo3(signature = (data, precision=14))]
fn sketch_estimate(
    py: Python<'_>,
    data: Bound<'_, PyAny>,
    precision: u8,
) -> PyResult<(f64, f64, f64, usize, usize)> {
    let array = arrow_ffi::read_array(&data)?;
    detach(py, || -> crate::Result<_> {
        let keys = crate::aggregate::distinct_keys(&array)?;
        let mut s = crate::aggregate::sketch::HllSketch::new(precision)
            .map_err(|e| Error::invalid(e.to_string()))?;
        for i in 0..array.len() {
            if crate::arrow::array::Array::is_valid(&array, i) {
                s.insert_hash(crate::aggregate::sketch::key_hash(keys.get(i)));
            }
        }
        let (est, lo, hi) = s.estimate_with_bounds();
        Ok((est, lo, hi, s.to_bytes().len(), s.memory_bytes()))
    })
    .map_err(to_py)
}

/// Sketch a numeric Arrow array with the speed layer's quantile sketch (for tests and
/// benchmarks), in `parts` pieces merged at the end: a dict of `estimate`, `lower`, `upper` (one
/// per q) and `bytes`.
#[pyfunction]
#[pyo3(signature = (data, qs, k=200, parts=1))]
fn quantile_sketch<'py>(
    py: Python<'py>,
    data: Bound<'py, PyAny>,
    qs: Vec<f64>,
    k: u16,
    parts: usize,
) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    let array = arrow_ffi::read_array(&data)?;
    let (answers, bytes) = detach(py, || {
        crate::aggregate::quantile::sketch_array(&array, &qs, k, parts)
    })
    .map_err(to_py)?;
    let d = pyo3::types::PyDict::new(py);
    let pick = |i: usize| -> Vec<Option<f64>> {
        answers
            .iter()
            .map(|a| a.map(|t| [t.0, t.1, t.2][i]))
            .collect()
    };
    d.set_item("estimate", pick(0))?;
    d.set_item("lower", pick(1))?;
    d.set_item("upper", pick(2))?;
    d.set_item("bytes", bytes)?;
    Ok(d)
}

/// Summarize an Arrow array with the speed layer's top-k summary (for tests and benchmarks), in
/// `parts` pieces merged at the end: a dict of `items` (`(value, count, lower, upper)` tuples),
/// `exact` and `bytes`.
#[pyfunction]
#[pyo3(signature = (data, k, parts=1))]
fn top_k_sketch<'py>(
    py: Python<'py>,
    data: Bound<'py, PyAny>,
    k: usize,
    parts: usize,
) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    let array = arrow_ffi::read_array(&data)?;
    let (cols, bytes) = detach(py, || {
        crate::aggregate::top_k::sketch_array(&array, k, parts)
    })
    .map_err(to_py)?;
    let fields: Vec<crate::arrow::datatypes::Field> = cols
        .iter()
        .map(|(n, a)| crate::arrow::datatypes::Field::new(n, a.data_type().clone(), true))
        .collect();
    let schema = std::sync::Arc::new(crate::arrow::datatypes::Schema::new(fields));
    let batch = crate::arrow::array::RecordBatch::try_new(
        schema.clone(),
        cols.into_iter().map(|(_, a)| a).collect(),
    )
    .map_err(|e| to_py(Error::from(e)))?;
    let table = arrow_ffi::to_pyarrow(py, schema, vec![batch])?;
    let rows = table.bind(py).call_method0("to_pylist")?;
    let row = rows.get_item(0)?;
    let items = pyo3::types::PyList::empty(py);
    for entry in row.get_item("top")?.try_iter()? {
        let e = entry?;
        items.append((
            e.get_item("value")?,
            e.get_item("count")?,
            e.get_item("lower")?,
            e.get_item("upper")?,
        ))?;
    }
    let d = pyo3::types::PyDict::new(py);
    d.set_item("items", items)?;
    d.set_item("exact", row.get_item("top_exact")?)?;
    d.set_item("bytes", bytes)?;
    Ok(d)
}

/// Benchmark hook: fold Arrow batches into a speed view of `definition` (JSON), in memory,
/// with the GIL released; returns (seconds, groups, memory bytes).
#[pyfunction]
fn speed_ingest(
    py: Python<'_>,
    definition: &str,
    data: Bound<'_, PyAny>,
) -> PyResult<(f64, usize, usize)> {
    let def = ViewDef::from_json(definition).map_err(to_py)?;
    let (_schema, batches) = arrow_ffi::read_batches(&data)?;
    detach(py, || crate::speed::ingest_in_memory(def, &batches)).map_err(to_py)
}

/// Test hook: arm (`"pause"`, `"error"`) or disarm (None) a named failpoint of the core.
#[pyfunction]
#[pyo3(signature = (name, action=None))]
fn _failpoint(name: &str, action: Option<&str>) -> PyResult<()> {
    use crate::failpoint::{arm, Action};
    let action = match action {
        None => None,
        Some("pause") => Some(Action::Pause),
        Some("error") => Some(Action::Error),
        Some(other) => {
            return Err(to_py(Error::invalid(format!(
                "failpoint action must be \"pause\", \"error\" or None, not {other:?}"
            ))))
        }
    };
    arm(name, action);
    Ok(())
}

/// Test hook: wait (GIL released) until a thread is paused at `name`; False on timeout.
#[pyfunction]
fn _failpoint_wait(py: Python<'_>, name: &str, timeout: f64) -> bool {
    let t = Duration::from_secs_f64(timeout.clamp(0.0, 3600.0));
    py.detach(|| crate::failpoint::wait_paused(name, t))
}

/// Test hook: let threads paused at `name` go on, and disarm it.
#[pyfunction]
fn _failpoint_release(name: &str) {
    crate::failpoint::release(name)
}

/// The instant (microseconds since the epoch) of the wall-clock time `local` in zone `tz`:
/// the earlier one where the clock shows it twice, the one the clock jumps to where it skips it.
#[pyfunction]
fn zone_instant(tz: &str, local: i64) -> PyResult<i64> {
    let zone = crate::time::zone::ZoneId::get(tz)
        .map_err(to_py)?
        .zone()
        .ok_or_else(|| {
            to_py(crate::error::Error::invalid(
                "UTC has no local clock to resolve",
            ))
        })?;
    zone.instant_of_local(local).map_err(to_py)
}

/// The indexes of the messages that are not one JSON object (see `boundary::is_json_object`).
#[pyfunction]
fn json_non_objects(values: Vec<pyo3::Bound<'_, pyo3::types::PyBytes>>) -> Vec<usize> {
    use pyo3::types::PyBytesMethods;
    values
        .iter()
        .enumerate()
        .filter(|(_, v)| !crate::master::boundary::is_json_object(v.as_bytes()))
        .map(|(i, _)| i)
        .collect()
}

/// Bytes handed to Python.
type PyBytesOf<'py> = pyo3::Bound<'py, pyo3::types::PyBytes>;

/// A JSON-lines text screened: (the object lines, their line numbers, [(line, bytes)] of the
/// lines that are not one JSON object).
#[pyfunction]
fn screen_json_lines<'py>(
    py: Python<'py>,
    data: &[u8],
) -> (PyBytesOf<'py>, Vec<u64>, Vec<(u64, PyBytesOf<'py>)>) {
    let s = detach(py, || crate::master::boundary::screen_json_lines(data));
    let rejected = s
        .rejected
        .into_iter()
        .map(|(line, v)| (line, pyo3::types::PyBytes::new(py, &v)))
        .collect();
    (pyo3::types::PyBytes::new(py, &s.objects), s.lines, rejected)
}

#[pymodule]
mod _core {
    #[pymodule_export]
    use super::_failpoint;
    #[pymodule_export]
    use super::_failpoint_release;
    #[pymodule_export]
    use super::_failpoint_wait;
    #[pymodule_export]
    use super::distributed::finalize_partial_states;
    #[pymodule_export]
    use super::distributed::merge_partial_states;
    #[pymodule_export]
    use super::distributed::partial_states;
    #[pymodule_export]
    use super::distributed::run_recompute_task;
    #[pymodule_export]
    use super::distributed::CoreBatchJob;
    #[pymodule_export]
    use super::json_non_objects;
    #[pymodule_export]
    use super::quantile_sketch;
    #[pymodule_export]
    use super::screen_json_lines;
    #[pymodule_export]
    use super::sketch_estimate;
    #[pymodule_export]
    use super::speed_ingest;
    #[pymodule_export]
    use super::top_k_sketch;
    #[pymodule_export]
    use super::zone_instant;
    #[pymodule_export]
    use super::CoreStore;

    #[pymodule_init]
    fn init(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        use pyo3::types::PyModuleMethods;
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        Ok(())
    }
}
