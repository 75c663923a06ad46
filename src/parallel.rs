//! The worker threads every parallel step of the core runs on.
//!
//! rayon's global pool does not survive `fork()`: the child inherits a pool whose threads were
//! not copied, and the first parallel step waits for them forever (a `multiprocessing` worker
//! that queries a store it inherited would hang). So every call into the core from outside runs
//! inside [`install`], on a pool that belongs to the current process: a forked child builds its
//! own at its first call, and parallel iterators inside the call use it.
//!
//! The pool of a parent is never dropped in the child (its threads do not exist there; dropping
//! it would signal them).

use std::sync::{Arc, Mutex};

use rayon::ThreadPool;

static POOL: Mutex<Option<(u32, Arc<ThreadPool>)>> = Mutex::new(None);

/// This process's pool (one thread per core), built at the first call of each process; None
/// if no thread could be started.
pub fn shared() -> Option<Arc<ThreadPool>> {
    let pid = std::process::id();
    let mut slot = POOL.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((owner, pool)) = slot.as_ref() {
        if *owner == pid {
            return Some(pool.clone());
        }
    }
    // A forked child: the parent's pool has no threads here. Keep it alive, never use it.
    if let Some(old) = slot.take() {
        std::mem::forget(old);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("lamina-{i}"))
        .build()
        .ok()
        .map(Arc::new)?;
    *slot = Some((pid, pool.clone()));
    Some(pool)
}

/// Run `f` with this process's pool as the pool of every parallel step inside it.
pub fn install<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    match shared() {
        Some(pool) => pool.install(f),
        None => f(),
    }
}
