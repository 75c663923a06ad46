//! The Python binding: the one place that knows about pyo3, split by concept:
//!
//! * `errors`: core errors as `lamina.errors` exceptions (`From<Error> for PyErr`, so `?`
//!   works on core results);
//! * `wait`: the one way a call waits for the core (GIL released; Ctrl-C and progress for long
//!   calls);
//! * `store`: `CoreStore`, the class behind `lamina.Store`;
//! * `distributed`: partial states and the staged recompute of `recompute(executor=...)`;
//! * `functions`: module-level helpers of the package (time zones, JSON screening);
//! * `hooks`: benchmark and test hooks;
//! * `arrow_ffi`: Arrow in and out through the PyCapsule interface.

use pyo3::prelude::*;

mod arrow_ffi;
mod distributed;
mod errors;
mod functions;
mod hooks;
mod store;
mod wait;

#[pymodule]
mod _core {
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
    use super::functions::aggregates;
    #[pymodule_export]
    use super::functions::json_non_objects;
    #[pymodule_export]
    use super::functions::parse_aggregate;
    #[pymodule_export]
    use super::functions::result_columns;
    #[pymodule_export]
    use super::functions::screen_json_lines;
    #[pymodule_export]
    use super::functions::view_definition;
    #[pymodule_export]
    use super::functions::zone_instant;
    #[pymodule_export]
    use super::hooks::_failpoint;
    #[pymodule_export]
    use super::hooks::_failpoint_release;
    #[pymodule_export]
    use super::hooks::_failpoint_wait;
    #[pymodule_export]
    use super::hooks::quantile_sketch;
    #[pymodule_export]
    use super::hooks::sketch_estimate;
    #[pymodule_export]
    use super::hooks::speed_ingest;
    #[pymodule_export]
    use super::hooks::top_k_sketch;
    #[pymodule_export]
    use super::store::CoreStore;

    #[pymodule_init]
    fn init(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        use pyo3::types::PyModuleMethods;
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        Ok(())
    }
}
