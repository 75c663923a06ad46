//! Core errors as Python exceptions. One `From<Error> for PyErr`, so binding code uses `?` on
//! core results; the `lamina.errors` classes are looked up once per process. An I/O error keeps
//! its system error number, so a missing file is also a `FileNotFoundError` and a refused
//! permission a `PermissionError` (see `lamina.errors.io_error`); Ctrl-C is `KeyboardInterrupt`.

use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::error::{Error, ErrorKind};

/// The class of each kind (in `ErrorKind` order), and `lamina.errors.io_error`.
struct Classes {
    by_kind: Vec<Py<PyAny>>,
    io_error: Py<PyAny>,
}

const KINDS: [(ErrorKind, &str); 10] = [
    (ErrorKind::Schema, "SchemaError"),
    (ErrorKind::Lock, "LockError"),
    (ErrorKind::Corruption, "CorruptionError"),
    (ErrorKind::NotFound, "NotFoundError"),
    (ErrorKind::InvalidArgument, "InvalidArgumentError"),
    (ErrorKind::Overflow, "SumOverflowError"),
    (ErrorKind::Closed, "StoreClosedError"),
    (ErrorKind::Interrupted, "LaminaIOError"),
    (ErrorKind::Io, "LaminaIOError"),
    (ErrorKind::Internal, "LaminaError"),
];

static CLASSES: PyOnceLock<Classes> = PyOnceLock::new();

fn classes(py: Python<'_>) -> PyResult<&Classes> {
    CLASSES.get_or_try_init(py, || {
        let m = py.import("lamina.errors")?;
        let by_kind = KINDS
            .iter()
            .map(|(_, name)| m.getattr(*name).map(Bound::unbind))
            .collect::<PyResult<_>>()?;
        Ok(Classes {
            by_kind,
            io_error: m.getattr("io_error")?.unbind(),
        })
    })
}

fn exception<'py>(py: Python<'py>, err: &Error) -> PyResult<Bound<'py, PyAny>> {
    let c = classes(py)?;
    if let (ErrorKind::Io, Some(errno)) = (err.kind, err.errno) {
        return c.io_error.bind(py).call1((err.message.as_str(), errno));
    }
    let i = KINDS
        .iter()
        .position(|(k, _)| *k == err.kind)
        .unwrap_or(KINDS.len() - 1);
    c.by_kind[i].bind(py).call1((err.message.as_str(),))
}

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        if err.kind == ErrorKind::Interrupted {
            return PyKeyboardInterrupt::new_err("interrupted");
        }
        Python::attach(|py| match exception(py, &err) {
            Ok(exc) => PyErr::from_value(exc),
            Err(e) => e,
        })
    }
}
