//! `CoreStore`, the class behind `lamina.Store` (which wraps it with a friendlier signature):
//! each method converts its arguments, waits for the core (see `wait`), and converts the result.

use std::sync::Arc;

use pyo3::prelude::*;

use super::arrow_ffi::{self, batch_table, table};
use super::distributed;
use super::wait::{detach, interruptible};
use crate::arrow::array::RecordBatch;
use crate::error::Error;
use crate::serving::{Part, Query};
use crate::store::{OpenOptions, Store};
use crate::view::def::{Filter, ViewDef};

/// Filters given as a JSON list (see `lamina.view.filters_to_json`).
fn parse_filters(filters: Option<&str>) -> PyResult<Vec<Filter>> {
    match filters {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| PyErr::from(Error::invalid(format!("bad filter: {e}")))),
        None => Ok(Vec::new()),
    }
}

/// The core of `lamina.Store`; the Python class wraps it with a friendlier signature.
#[pyclass(frozen, module = "lamina._core")]
pub(crate) struct CoreStore {
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
        let store = detach(py, || Store::open(opts))?;
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
            .transpose()?;
        let (schema, batches) = arrow_ffi::read_batches(&data)?;
        let batches = if batches.is_empty() {
            vec![RecordBatch::new_empty(schema)]
        } else {
            batches
        };
        let store = &self.inner;
        let out = detach(py, || store.append_from(&batches, quarantine, mark))?;
        Ok((out.commit, out.rows, out.quarantined))
    }

    /// Additive schema evolution (see `Store::evolve_schema`); True if anything changed.
    fn evolve_schema(&self, py: Python<'_>, schema: Bound<'_, PyAny>) -> PyResult<bool> {
        let schema = arrow_ffi::read_schema(&schema)?;
        detach(py, || self.inner.evolve_schema(&schema)).map_err(PyErr::from)
    }

    /// What a source has delivered so far, as JSON (`files`: name -> [size, hash, commit],
    /// `offsets`: partition -> next offset, `last_commit`), or None.
    fn source_state(&self, source: &str) -> PyResult<Option<String>> {
        let s = self.inner.source_state(source)?;
        Ok(s.and_then(|s| serde_json::to_string(&s).ok()))
    }

    #[pyo3(signature = (commit=None))]
    fn snapshot(&self, py: Python<'_>, commit: Option<u64>) -> PyResult<Py<PyAny>> {
        let store = self.inner.clone();
        let (schema, batches) = interruptible(py, None, move |_| store.snapshot(commit))?;
        table(py, schema, batches)
    }

    fn commits(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let b = detach(py, || self.inner.commits())?;
        batch_table(py, b)
    }

    fn quarantined(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let store = &self.inner;
        let (schema, batches) = interruptible(py, None, |_| store.quarantined())?;
        table(py, schema, batches)
    }

    fn compact(&self, py: Python<'_>) -> PyResult<usize> {
        detach(py, || self.inner.compact()).map_err(PyErr::from)
    }

    /// Define a view from its JSON definition; returns False if it was already defined so.
    fn define(&self, py: Python<'_>, definition: &str) -> PyResult<bool> {
        let def = ViewDef::from_json(definition)?;
        let store = self.inner.clone();
        interruptible(py, None, move |_| store.define(def))
    }

    fn drop_view(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        detach(py, || self.inner.drop_view(name)).map_err(PyErr::from)
    }

    /// The JSON definitions of the views.
    fn views(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let defs = detach(py, || self.inner.view_defs())?;
        Ok(defs.iter().map(|d| d.to_json()).collect())
    }

    fn view_zone(&self, name: &str) -> PyResult<Option<String>> {
        self.inner.view_zone(name).map_err(PyErr::from)
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
        interruptible(py, progress.as_ref(), move |ctl| {
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
        crate::store::check_threads(threads)?;
        let q = Query {
            start,
            end,
            grain,
            by,
            filter: parse_filters(filters)?,
        };
        let store = self.inner.clone();
        let view = view.to_string();
        let b = interruptible(py, progress.as_ref(), move |ctl| {
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
        let (served, fresh, def) = interruptible(py, None, move |ctl| {
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
        let (b, commit) = detach(py, || self.inner.query_with_commit(view, &q))?;
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
        let b = interruptible(py, None, |_| -> crate::Result<_> {
            let dims = store
                .view_defs()?
                .iter()
                .find(|d| d.name == view)
                .map(|d| d.by.len())
                .unwrap_or(0);
            let parts = store.explain(view, at, filter)?;
            crate::store::audit::explain_table(&parts, dims)
        })?;
        batch_table(py, b)
    }

    /// Test hook: fold the latest commit into a view's speed layer a second time.
    fn _plant_double_count(&self, py: Python<'_>, view: &str) -> PyResult<()> {
        detach(py, || self.inner.plant_double_count(view)).map_err(PyErr::from)
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
            other => {
                return Err(PyErr::from(Error::invalid(format!(
                    "unknown part {other:?}"
                ))))
            }
        };
        let q = Query {
            start,
            end,
            grain,
            by,
            filter,
        };
        let b = detach(py, || self.inner.query(view, &q, part))?;
        batch_table(py, b)
    }

    /// Store status: a dict with the store's figures and one dict per view (the core's
    /// `StoreStatus`, converted once).
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let report = detach(py, || self.inner.status_report())?;
        Ok(pythonize::pythonize(py, &report)?)
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        detach(py, || self.inner.close()).map_err(PyErr::from)
    }
}
