//! Where a recompute spends its time, phase by phase, for `status()` and the benchmarks.
//!
//! Parallel phases (reading, decoding, grouping, each metric's fold, merging) add up the time of
//! every worker, so they are CPU-seconds and may exceed the wall time; serial phases (sketch
//! building, sorting, encoding, writing) are wall time. Timing costs two clock reads per batch
//! and phase (batches hold thousands of rows), never one per row.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Accumulated time per phase, in first-seen order.
#[derive(Debug, Default)]
pub struct Profile {
    phases: Mutex<Vec<(&'static str, Duration)>>,
}

impl Profile {
    pub fn add(&self, phase: &'static str, d: Duration) {
        let mut p = self.phases.lock().unwrap_or_else(|e| e.into_inner());
        match p.iter_mut().find(|(n, _)| *n == phase) {
            Some((_, t)) => *t += d,
            None => p.push((phase, d)),
        }
    }

    /// Run `f`, adding its time to `phase`.
    pub fn time<T>(&self, phase: &'static str, f: impl FnOnce() -> T) -> T {
        let t0 = Instant::now();
        let out = f();
        self.add(phase, t0.elapsed());
        out
    }

    /// (phase, seconds), in first-seen order.
    pub fn seconds(&self) -> Vec<(String, f64)> {
        let p = self.phases.lock().unwrap_or_else(|e| e.into_inner());
        p.iter()
            .map(|(n, d)| (n.to_string(), d.as_secs_f64()))
            .collect()
    }
}

/// `f`, its time added to `phase` of `profile` when there is one.
pub fn timed<T>(profile: Option<&Profile>, phase: &'static str, f: impl FnOnce() -> T) -> T {
    match profile {
        Some(p) => p.time(phase, f),
        None => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_add_up_in_first_seen_order() {
        let p = Profile::default();
        p.add("b", Duration::from_millis(2));
        p.add("a", Duration::from_millis(1));
        p.add("b", Duration::from_millis(3));
        let s = p.seconds();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].0, "b");
        assert!((s[0].1 - 0.005).abs() < 1e-9);
        assert_eq!(s[1].0, "a");
    }
}
