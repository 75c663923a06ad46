//! Module-level helpers the Python package calls: the local clock of a time zone, and the
//! screening of JSON lines and messages before pyarrow's reader sees them.

use pyo3::prelude::*;

use super::wait::detach;

/// The instant (microseconds since the epoch) of the wall-clock time `local` in zone `tz`:
/// the earlier one where the clock shows it twice, the one the clock jumps to where it skips it.
#[pyfunction]
pub(crate) fn zone_instant(tz: &str, local: i64) -> PyResult<i64> {
    let zone = crate::time::zone::ZoneId::get(tz)?.zone().ok_or_else(|| {
        PyErr::from(crate::error::Error::invalid(
            "UTC has no local clock to resolve",
        ))
    })?;
    zone.instant_of_local(local).map_err(PyErr::from)
}

/// The indexes of the messages that are not one JSON object (see `boundary::is_json_object`).
#[pyfunction]
pub(crate) fn json_non_objects(values: Vec<pyo3::Bound<'_, pyo3::types::PyBytes>>) -> Vec<usize> {
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
pub(crate) fn screen_json_lines<'py>(
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

/// A view definition (JSON) in its canonical form, parsed and checked by the core (the checks
/// that need no schema). The one parser of a definition: `lamina.View` goes through it both ways.
#[pyfunction]
pub(crate) fn view_definition(text: &str) -> PyResult<String> {
    let def = crate::view::def::ViewDef::from_json(text)?;
    def.check_name()?;
    Ok(def.to_json())
}

/// An aggregate in its canonical JSON form, from the call form of view files (`"sum(amount)"`)
/// or from JSON (`{"agg": "sum", "column": "amount"}`); `where_` names it in messages.
#[pyfunction]
pub(crate) fn parse_aggregate(text: &str, where_: &str) -> PyResult<String> {
    use crate::aggregate::AggSpec;
    let spec = if text.trim_start().starts_with('{') {
        serde_json::from_str::<AggSpec>(text)
            .map_err(|e| crate::Error::invalid(format!("{where_}: bad aggregate {text}: {e}")))?
    } else {
        AggSpec::parse_call(text, where_)?
    };
    Ok(serde_json::to_string(&spec).map_err(crate::Error::from)?)
}

/// Every aggregate: (name, its arguments after the column, whether the column is optional).
#[pyfunction]
pub(crate) fn aggregates() -> Vec<(&'static str, Vec<&'static str>, bool)> {
    crate::aggregate::AGGREGATES
        .iter()
        .map(|(n, p, o)| (*n, p.to_vec(), *o))
        .collect()
}

/// The columns of a query's result for a view definition (JSON), in order.
#[pyfunction]
pub(crate) fn result_columns(definition: &str) -> PyResult<Vec<String>> {
    Ok(crate::view::def::ViewDef::from_json(definition)?.result_columns())
}
