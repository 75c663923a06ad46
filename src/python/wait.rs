//! The one way a binding call waits for the core: with the GIL released, and, for anything
//! that reads the master dataset or other files (a snapshot, a recompute, an as-of query, explain,
//! verify, the quarantine), on a helper thread while the calling thread honours Ctrl-C and
//! reports progress (`interruptible`). Calls that must not be abandoned half-way (an append, a
//! compaction, a close) and queries of served state use plain `detach`: a served query takes
//! about 10 µs from the answer cache, and a helper thread would cost more than that.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use pyo3::prelude::*;

use crate::control::Control;
use crate::error::Error;

/// Release the GIL around core work (which runs on the calling thread; its parallel steps go
/// to this process's pool, see `crate::control::parallel`).
pub(crate) fn detach<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> T {
    py.detach(f)
}

/// Run heavy work on a helper thread with the GIL released, like polars' `enter_polars`:
/// the calling thread wakes every 100 ms to report progress and to honour Ctrl-C, which cancels
/// the work and raises KeyboardInterrupt.
pub(crate) fn interruptible<T: Send>(
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
                Ok(result) => return result.map_err(PyErr::from),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(PyErr::from(Error::invalid(
                        "internal: worker thread failed",
                    )))
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
