//! The control of a long operation, below every layer that runs one: cancellation and progress
//! shared with the caller's thread (`Control`), the thread limits and worker pool of a recompute,
//! where its time goes (`profile`), and the per-process pool every parallel step runs on
//! (`parallel`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::{Error, Result};

pub mod parallel;
pub mod profile;

use profile::Profile;

/// The most threads a recompute may ask for.
pub const MAX_THREADS: usize = 1024;

/// A thread count a recompute accepts (None: one per core).
pub fn check_threads(threads: Option<usize>) -> Result<()> {
    match threads {
        Some(t) if t == 0 || t > MAX_THREADS => Err(Error::invalid(format!(
            "threads must be between 1 and {MAX_THREADS}, not {t}"
        ))),
        _ => Ok(()),
    }
}

/// Cancellation and progress of a long operation, shared with the caller's thread.
#[derive(Debug, Default)]
pub struct Control {
    pub cancel: AtomicBool,
    pub rows_done: AtomicU64,
    pub rows_total: AtomicU64,
    /// Where the time went (see `profile`).
    pub profile: Profile,
}

impl Control {
    pub fn check(&self) -> Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(Error::interrupted())
        } else {
            Ok(())
        }
    }
}

/// The worker pool of one recompute: `threads` workers (default: one per core). The publish
/// that follows runs in it too, so `threads` bounds the whole operation.
pub fn pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    let mut b = rayon::ThreadPoolBuilder::new();
    if let Some(t) = threads {
        b = b.num_threads(t.clamp(1, MAX_THREADS));
    }
    b.build()
        .map_err(|e| Error::invalid(format!("thread pool: {e}")))
}
