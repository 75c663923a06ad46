//! Upkeep of the store's files: compaction of small segments, and garbage collection of files no
//! committed state references (replaced by a compaction or a newer batch view, or left by a
//! crash).
//!
//! Invariants: a file is deleted only when (1) no committed state references it, (2) no read of
//! this process that may use it is in flight (`pins`), and (3) it was retired at least `GRACE`
//! ago, so readers in other processes that resolved an older state can still read it. The time
//! of retirement is the file's mtime (set when it is retired), so the grace period survives a
//! close and a reopen. Nothing behind a symbolic link is ever followed or deleted.

use std::collections::VecDeque;
use std::fs;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::Store;
use crate::catalog::{Manifest, Record};
use crate::error::{IoContext, Result};
use crate::layout;
use crate::master::commits::{FileRef, SegmentInfo};
use crate::master::files::{ensure_dir, read_checked, write_atomic};
use crate::master::parquet_io::{self, ParquetBytes};

/// Segments with fewer rows than this are "small"; a run of `COMPACT_RUN` of them is rewritten
/// into one segment after an append, so many tiny appends do not mean many tiny files. Appends
/// of this size or more are left alone: rewriting them would cost the append path more than
/// reading them costs snapshots.
pub const SMALL_SEGMENT_ROWS: u64 = 16 * 1024;
pub const COMPACT_RUN: usize = 32;

/// How long a replaced file stays for readers in other processes.
pub const GRACE: Duration = Duration::from_secs(60);

/// Files waiting out their grace period, oldest first, so checking whether any is due costs one
/// look at the front whatever the length of the queue. A fast writer can retire a hundred
/// thousand files in one grace period: their relative paths share one buffer, so the backlog
/// costs no allocation per file (which made commits slower as it grew).
#[derive(Default)]
pub(crate) struct Garbage(Mutex<GarbageQueue>);

#[derive(Default)]
pub(crate) struct GarbageQueue {
    /// The relative paths, back to back.
    names: String,
    /// Absolute offset of `names[0]` (offsets only grow, so entries stay valid across drains).
    base: usize,
    /// (retired at, offset, length), oldest first.
    entries: VecDeque<(SystemTime, usize, usize)>,
}

impl GarbageQueue {
    fn push(&mut self, rel: &str, since: SystemTime) {
        self.entries
            .push_back((since, self.base + self.names.len(), rel.len()));
        self.names.push_str(rel);
    }
    fn front(&self) -> Option<(SystemTime, &str)> {
        let &(since, at, len) = self.entries.front()?;
        Some((since, &self.names[at - self.base..at - self.base + len]))
    }
    fn pop_front(&mut self) {
        self.entries.pop_front();
        match self.entries.front() {
            None => {
                self.base += self.names.len();
                self.names.clear();
            }
            Some(&(_, at, _)) if at - self.base > self.names.len() / 2 => {
                self.names.drain(..at - self.base);
                self.base = at;
            }
            Some(_) => {}
        }
    }
    fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries
            .iter()
            .map(|&(_, at, len)| &self.names[at - self.base..at - self.base + len])
    }
    /// Order the entries by retirement time. The buffer is rebuilt in the new order: `pop_front`
    /// drains the buffer up to the next entry, which is only right while offsets grow along the
    /// queue.
    fn sort_by_time(&mut self) {
        let mut entries: Vec<(SystemTime, &str)> = self
            .entries
            .iter()
            .map(|&(since, at, len)| (since, &self.names[at - self.base..at - self.base + len]))
            .collect();
        entries.sort_by_key(|e| e.0);
        let mut sorted = GarbageQueue {
            base: self.base + self.names.len(),
            ..GarbageQueue::default()
        };
        for (since, rel) in entries {
            sorted.push(rel, since);
        }
        *self = sorted;
    }
}

impl Store {
    pub(crate) fn write_file(&self, rel: &str, bytes: &[u8]) -> Result<FileRef> {
        let path = self.root.join(rel);
        if let Some(dir) = path.parent() {
            ensure_dir(dir)?;
        }
        write_atomic(&path, bytes, self.durable)?;
        Ok(FileRef {
            file: rel.to_string(),
            bytes: bytes.len() as u64,
            crc32: crc32fast::hash(bytes),
        })
    }

    /// A file no committed state references any more: delete it once its grace period is over.
    pub(crate) fn retire(&self, rel: &str) {
        let now = SystemTime::now();
        // The retirement time lives in the mtime, so a reopened writer honours it too.
        if let Ok(f) = fs::OpenOptions::new().write(true).open(self.root.join(rel)) {
            let _ = f.set_modified(now);
        }
        let mut g = self.garbage.0.lock().unwrap_or_else(|p| p.into_inner());
        g.push(rel, now);
    }

    /// Files no committed state references that wait out their grace period (relative paths).
    pub fn retired_files(&self) -> Vec<String> {
        let g = self.garbage.0.lock().unwrap_or_else(|p| p.into_inner());
        g.iter()
            .filter(|r| self.root.join(r).exists())
            .map(str::to_string)
            .collect()
    }

    /// Delete retired files whose grace period is over and that nothing uses.
    pub(crate) fn collect_garbage(&self) {
        if self.pins.load(Ordering::Acquire) > 0 {
            return;
        }
        let mut g = self.garbage.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = SystemTime::now();
        let due = |since: SystemTime| now.duration_since(since).is_ok_and(|d| d >= GRACE);
        if !g.front().is_some_and(|(since, _)| due(since)) {
            return;
        }
        let live = match self.committed.read() {
            Ok(c) => c.live_files(),
            Err(_) => return,
        };
        while let Some((since, rel)) = g.front() {
            if !due(since) {
                break;
            }
            if !live.contains(rel) {
                let _ = fs::remove_file(self.root.join(rel));
            }
            g.pop_front();
        }
    }

    /// At a writer's open: delete lamina's own files that no committed record references:
    /// at once when their name says they were never committed (a crashed write), else once
    /// their grace period is over (younger ones wait in `garbage`). Only names `layout`
    /// recognises, in lamina's own folders, are looked at: a user's file is never touched.
    pub(crate) fn clean_leftovers(&self) -> Result<()> {
        let state = self.committed.read()?.clone();
        let live = state.live_files();
        let now = SystemTime::now();
        let mut g = self.garbage.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut folders: Vec<String> = vec!["segments".into(), "quarantine".into()];
        let views = self.root.join("views");
        if fs::symlink_metadata(&views).is_ok_and(|m| m.is_dir()) {
            for entry in fs::read_dir(&views).at(&views)?.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if layout::is_view_folder(name) && entry.file_type().is_ok_and(|t| t.is_dir()) {
                    folders.push(format!("views/{name}"));
                }
            }
        }
        for dir in folders {
            let path = self.root.join(&dir);
            // symlink_metadata: a store folder that is a link is not ours to clean.
            if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            for entry in fs::read_dir(&path).at(&path)?.flatten() {
                // Only regular files: never a link, a folder or anything else.
                if !entry.file_type().is_ok_and(|t| t.is_file()) {
                    continue;
                }
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let rel = format!("{dir}/{name}");
                let Some(own) = layout::own_file(&rel) else {
                    continue;
                };
                if live.contains(&rel) {
                    continue;
                }
                if own.never_committed(state.last_commit(), state.version) {
                    let _ = fs::remove_file(entry.path());
                    continue;
                }
                let since = entry.metadata().and_then(|m| m.modified()).unwrap_or(now);
                if now.duration_since(since).is_ok_and(|d| d >= GRACE) {
                    let _ = fs::remove_file(entry.path());
                } else {
                    g.push(&rel, since);
                }
            }
        }
        g.sort_by_time();
        Ok(())
    }

    /// Rewrite runs of small segments into larger ones. Content and commit numbers are unchanged,
    /// so snapshots (time travel) read the same rows. Returns how many segments were merged away.
    pub fn compact(&self) -> Result<usize> {
        let mut m = self.begin_write()?;
        let merged = self.compact_locked(&mut m, true)?;
        self.collect_garbage();
        Ok(merged)
    }

    /// Runs of consecutive small segments, as (start, end) indexes; after an append (`all` off)
    /// only the trailing run, once it is long enough or holds as many rows as one compacted
    /// segment may.
    fn compaction_runs(segs: &[&SegmentInfo], all: bool) -> Vec<(usize, usize)> {
        let mut runs: Vec<(usize, usize)> = Vec::new();
        let mut i = 0;
        while i < segs.len() {
            if segs[i].rows >= SMALL_SEGMENT_ROWS {
                i += 1;
                continue;
            }
            let start = i;
            let mut rows = 0;
            while i < segs.len()
                && segs[i].rows < SMALL_SEGMENT_ROWS
                && rows < 4 * SMALL_SEGMENT_ROWS
            {
                rows += segs[i].rows;
                i += 1;
            }
            if i - start >= 2 {
                runs.push((start, i));
            }
        }
        if !all {
            runs.retain(|&(s, e)| {
                let rows: u64 = segs[s..e].iter().map(|x| x.rows).sum();
                e == segs.len() && (e - s >= COMPACT_RUN || rows >= 4 * SMALL_SEGMENT_ROWS)
            });
        }
        runs
    }

    pub(crate) fn compact_locked(&self, m: &mut Manifest, all: bool) -> Result<usize> {
        let state = m.state();
        // After an append only the tail can form a new run: look at the last segments only, so
        // the cost does not grow with history.
        let total = state.segments.len();
        let from = if all {
            0
        } else {
            total.saturating_sub(COMPACT_RUN * 4)
        };
        let segs: Vec<&SegmentInfo> = state.segments.iter().skip(from).collect();
        let runs = Self::compaction_runs(&segs, all);
        let schema = match &state.schema {
            Some(s) => s.arrow()?,
            None => return Ok(0),
        };
        let mut merged = 0;
        for (s, e) in runs.into_iter().rev() {
            let group: Vec<SegmentInfo> = segs[s..e].iter().map(|x| (*x).clone()).collect();
            let mut batches = Vec::new();
            for seg in &group {
                let path = self.root.join(&seg.file.file);
                let bytes = read_checked(&path, seg.file.crc32, seg.file.bytes)?;
                let pq = ParquetBytes::open(&path, bytes)?;
                batches.extend(pq.read_as(&path, None, None, None, &schema)?);
            }
            let bytes = parquet_io::encode(&schema, &batches)?;
            let (first, last) = (group[0].first, group[group.len() - 1].last);
            let rows = group.iter().map(|g| g.rows).sum();
            let rel = layout::compacted(first, last, m.state().version + 1);
            let file = self.write_file(&rel, &bytes)?;
            let removed: Vec<String> = group.iter().map(|g| g.file.file.clone()).collect();
            self.commit(
                m,
                Record::Compact {
                    removed: removed.clone(),
                    added: SegmentInfo::new(file, first, last, rows),
                },
            )?;
            for r in removed {
                self.retire(&r);
            }
            merged += e - s;
        }
        Ok(merged)
    }
}

#[cfg(test)]
mod tests {
    use super::GarbageQueue;
    use std::time::{Duration, SystemTime};

    #[test]
    fn the_garbage_queue_keeps_paths_in_order_across_drains() {
        let mut q = GarbageQueue::default();
        let t0 = SystemTime::UNIX_EPOCH;
        for i in 0..100u64 {
            q.push(
                &format!("segments/{i}.parquet"),
                t0 + Duration::from_secs(i),
            );
        }
        for i in 0..60u64 {
            let (since, rel) = q.front().unwrap();
            assert_eq!(
                (since, rel),
                (
                    t0 + Duration::from_secs(i),
                    format!("segments/{i}.parquet").as_str()
                )
            );
            q.pop_front();
        }
        q.push("views/x.parquet", t0);
        assert_eq!(q.iter().count(), 41);
        assert_eq!(q.iter().last(), Some("views/x.parquet"));
        q.sort_by_time();
        assert_eq!(q.front().unwrap().1, "views/x.parquet");
        while q.front().is_some() {
            q.pop_front();
        }
        assert!(q.names.is_empty());
    }

    /// Found by the long crash test: after a sort put a late-pushed path first, popping it
    /// drained the buffer past the paths pushed before it, and the next look panicked.
    #[test]
    fn popping_after_a_sort_never_loses_a_path() {
        let mut q = GarbageQueue::default();
        let t0 = SystemTime::UNIX_EPOCH;
        let names: Vec<String> = (0..50)
            .map(|i| format!("segments/{i:03}.parquet"))
            .collect();
        // Pushed newest first (a directory scan finds files in any order).
        for (i, n) in names.iter().enumerate() {
            q.push(n, t0 + Duration::from_secs(1000 - i as u64));
        }
        q.sort_by_time();
        for n in names.iter().rev() {
            let (_, rel) = q.front().unwrap();
            assert_eq!(rel, n.as_str());
            assert!(q.iter().all(|r| r.starts_with("segments/")));
            q.pop_front();
        }
        assert!(q.front().is_none());
    }
}
