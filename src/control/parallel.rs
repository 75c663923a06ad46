//! The worker threads every parallel step of the core runs on.
//!
//! rayon's global pool does not survive `fork()`: the child inherits a pool whose threads were
//! not copied, and the first parallel step waits for them forever (a `multiprocessing` worker
//! that queries a store it inherited would hang). So the core never uses the global pool: every
//! parallel step (a `par_iter`, a `join`) runs inside [`install`], on a pool that belongs to the
//! current process, which a forked child builds anew at its first parallel step.
//!
//! Only those steps go to the pool, never a whole call: a call keeps its locks on the caller's
//! thread, and a pool thread waiting inside a step only ever picks up other lock-free steps (a
//! whole call run on the pool could be picked up by a thread that holds the lock it needs).
//! A step inside a pool already (a recompute's own pool) runs there.
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

/// Run the parallel step `f` on this process's pool (on the current pool when called from
/// inside one). `f` must not take a lock a caller of the core may hold.
pub fn install<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    match shared() {
        Some(pool) => pool.install(f),
        None => f(),
    }
}

/// Threads of the pool a parallel step would run on.
pub fn threads() -> usize {
    if rayon::current_thread_index().is_some() {
        return rayon::current_num_threads();
    }
    shared().map(|p| p.current_num_threads()).unwrap_or(1)
}
