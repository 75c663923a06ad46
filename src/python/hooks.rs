//! Hooks for the benchmarks (the sketches and the speed layer's fold on raw Arrow arrays) and
//! for the tests (failpoints). Not part of the public API: `lamina` re-exports none of them.

use std::time::Duration;

use pyo3::prelude::*;

use super::arrow_ffi;
use super::wait::detach;
use crate::error::Error;
use crate::view::def::ViewDef;

/// Estimate the distinct count of an Arrow array with a lamina sketch (for tests and benchmarks):
/// returns (estimate, lower, upper, serialized bytes, memory bytes).
#[pyfunction]
#[pyo3(signature = (data, precision=14))]
pub(crate) fn sketch_estimate(
    py: Python<'_>,
    data: Bound<'_, PyAny>,
    precision: u8,
) -> PyResult<(f64, f64, f64, usize, usize)> {
    let array = arrow_ffi::read_array(&data)?;
    detach(py, || -> crate::Result<_> {
        let keys = crate::aggregate::distinct_keys(&array)?;
        let mut s = crate::aggregate::sketch::HllSketch::new(precision)?;
        for i in 0..array.len() {
            if crate::arrow::array::Array::is_valid(&array, i) {
                s.insert_hash(crate::aggregate::sketch::key_hash(keys.get(i)));
            }
        }
        let (est, lo, hi) = s.estimate_with_bounds();
        Ok((est, lo, hi, s.to_bytes().len(), s.memory_bytes()))
    })
    .map_err(PyErr::from)
}

/// Sketch a numeric Arrow array with the speed layer's quantile sketch (for tests and
/// benchmarks), in `parts` pieces merged at the end: a dict of `estimate`, `lower`, `upper` (one
/// per q) and `bytes`.
#[pyfunction]
#[pyo3(signature = (data, qs, k=200, parts=1))]
pub(crate) fn quantile_sketch<'py>(
    py: Python<'py>,
    data: Bound<'py, PyAny>,
    qs: Vec<f64>,
    k: u16,
    parts: usize,
) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    let array = arrow_ffi::read_array(&data)?;
    let (answers, bytes) = detach(py, || {
        crate::aggregate::quantile::sketch_array(&array, &qs, k, parts)
    })?;
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
pub(crate) fn top_k_sketch<'py>(
    py: Python<'py>,
    data: Bound<'py, PyAny>,
    k: usize,
    parts: usize,
) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    let array = arrow_ffi::read_array(&data)?;
    let (cols, bytes) = detach(py, || {
        crate::aggregate::top_k::sketch_array(&array, k, parts)
    })?;
    let fields: Vec<crate::arrow::datatypes::Field> = cols
        .iter()
        .map(|(n, a)| crate::arrow::datatypes::Field::new(n, a.data_type().clone(), true))
        .collect();
    let schema = std::sync::Arc::new(crate::arrow::datatypes::Schema::new(fields));
    let batch = crate::arrow::array::RecordBatch::try_new(
        schema.clone(),
        cols.into_iter().map(|(_, a)| a).collect(),
    )
    .map_err(|e| PyErr::from(Error::from(e)))?;
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
pub(crate) fn speed_ingest(
    py: Python<'_>,
    definition: &str,
    data: Bound<'_, PyAny>,
) -> PyResult<(f64, usize, usize)> {
    let def = ViewDef::from_json(definition)?;
    let (_schema, batches) = arrow_ffi::read_batches(&data)?;
    detach(py, || crate::speed::ingest_in_memory(def, &batches)).map_err(PyErr::from)
}

/// Test hook: arm (`"pause"`, `"error"`) or disarm (None) a named failpoint of the core.
#[pyfunction]
#[pyo3(signature = (name, action=None))]
pub(crate) fn _failpoint(name: &str, action: Option<&str>) -> PyResult<()> {
    use crate::failpoint::{arm, Action};
    let action = match action {
        None => None,
        Some("pause") => Some(Action::Pause),
        Some("error") => Some(Action::Error),
        Some(other) => {
            return Err(PyErr::from(Error::invalid(format!(
                "failpoint action must be \"pause\", \"error\" or None, not {other:?}"
            ))))
        }
    };
    arm(name, action);
    Ok(())
}

/// Test hook: wait (GIL released) until a thread is paused at `name`; False on timeout.
#[pyfunction]
pub(crate) fn _failpoint_wait(py: Python<'_>, name: &str, timeout: f64) -> bool {
    let t = Duration::from_secs_f64(timeout.clamp(0.0, 3600.0));
    detach(py, || crate::failpoint::wait_paused(name, t))
}

/// Test hook: let threads paused at `name` go on, and disarm it.
#[pyfunction]
pub(crate) fn _failpoint_release(name: &str) {
    crate::failpoint::release(name)
}
