//! Named failpoints: test hooks that force an interleaving or a failure at one place of the core.
//!
//! Tests arm a point with [`arm`] ("pause": the next thread reaching it blocks until [`release`];
//! "error": the next pass fails once). Unarmed points cost one relaxed atomic load, so they stay in
//! release builds, where the Python tests use them to test races deterministically.
//!
//! Invariant: a paused thread holds whatever locks its caller holds; tests must always release.
//! A point armed as `name#thread` fires only in the thread of that name, so Rust tests running in
//! parallel in one process do not trip over each other's points.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pause,
    Error,
}

#[derive(Default)]
struct Registry {
    armed: HashMap<String, Action>,
    paused: HashMap<String, usize>,
    released: HashMap<String, u64>,
}

static ANY_ARMED: AtomicBool = AtomicBool::new(false);

fn registry() -> &'static (Mutex<Registry>, Condvar) {
    static R: OnceLock<(Mutex<Registry>, Condvar)> = OnceLock::new();
    R.get_or_init(|| (Mutex::new(Registry::default()), Condvar::new()))
}

fn lock() -> std::sync::MutexGuard<'static, Registry> {
    registry().0.lock().unwrap_or_else(|p| p.into_inner())
}

/// Arm (`Some`) or disarm (`None`) the point `name`.
pub fn arm(name: &str, action: Option<Action>) {
    let mut r = lock();
    match action {
        Some(a) => {
            r.armed.insert(name.to_string(), a);
        }
        None => {
            r.armed.remove(name);
        }
    }
    ANY_ARMED.store(!r.armed.is_empty(), Ordering::Release);
    registry().1.notify_all();
}

/// Wait until a thread is paused at `name`; false on timeout.
pub fn wait_paused(name: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut r = lock();
    loop {
        if r.paused.get(name).copied().unwrap_or(0) > 0 {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        r = registry()
            .1
            .wait_timeout(r, left)
            .map(|(g, _)| g)
            .unwrap_or_else(|p| p.into_inner().0);
    }
}

/// Let the threads paused at `name` go on, and disarm it.
pub fn release(name: &str) {
    let mut r = lock();
    r.armed.remove(name);
    *r.released.entry(name.to_string()).or_default() += 1;
    ANY_ARMED.store(!r.armed.is_empty(), Ordering::Release);
    registry().1.notify_all();
}

/// The hook itself: a no-op unless `name` is armed.
#[inline]
pub fn hit(name: &str) -> Result<()> {
    if !ANY_ARMED.load(Ordering::Acquire) {
        return Ok(());
    }
    hit_slow(name)
}

#[cold]
fn hit_slow(name: &str) -> Result<()> {
    let mut r = lock();
    // A point armed as `name#thread` fires only in the thread of that name (for tests that run
    // in parallel in one process).
    let scoped = std::thread::current()
        .name()
        .map(|t| format!("{name}#{t}"))
        .filter(|k| r.armed.contains_key(k));
    let key = scoped.unwrap_or_else(|| name.to_string());
    let name = key.as_str();
    match r.armed.get(name).copied() {
        None => Ok(()),
        Some(Action::Error) => {
            r.armed.remove(name);
            ANY_ARMED.store(!r.armed.is_empty(), Ordering::Release);
            Err(Error::internal(format!("failpoint {name:?} fired")))
        }
        Some(Action::Pause) => {
            // One thread pauses per arming; others pass.
            r.armed.remove(name);
            ANY_ARMED.store(!r.armed.is_empty(), Ordering::Release);
            let epoch = r.released.get(name).copied().unwrap_or(0);
            *r.paused.entry(name.to_string()).or_default() += 1;
            registry().1.notify_all();
            while r.released.get(name).copied().unwrap_or(0) == epoch {
                r = registry().1.wait(r).unwrap_or_else(|p| p.into_inner());
            }
            if let Some(n) = r.paused.get_mut(name) {
                *n -= 1;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_blocks_until_release_and_error_fires_once() {
        arm("t.pause#fp-test", Some(Action::Pause));
        assert!(hit("t.pause").is_ok(), "another thread passes");
        let h = std::thread::Builder::new()
            .name("fp-test".into())
            .spawn(|| hit("t.pause"))
            .unwrap();
        assert!(wait_paused("t.pause#fp-test", Duration::from_secs(10)));
        assert!(!h.is_finished());
        release("t.pause#fp-test");
        assert!(h.join().unwrap().is_ok());
        arm("t.err", Some(Action::Error));
        assert!(hit("t.err").is_err());
        assert!(hit("t.err").is_ok());
    }
}
