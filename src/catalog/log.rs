//! The log's files: every change is one record, committed by writing a new file
//! `_log/<version>.json` (write, fsync, rename, fsync the directory). A checkpoint of the state
//! every `CHECKPOINT_EVERY` versions keeps opening fast. Each file carries a CRC-32 of its body,
//! so a damaged record is reported, not misread; a damaged checkpoint is passed over.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::records::{Record, ViewEntry};
use super::state::ManifestState;
use crate::error::{Error, IoContext, Result};
use crate::layout::is_temporary;
use crate::master::chunked::{ChunkedVec, CHUNK};
use crate::master::commits::{CommitInfo, FileRef, QuarantineInfo, SegmentInfo};
use crate::master::files::{read_checked, write_atomic};
use crate::master::schema::StoreSchema;

pub const CHECKPOINT_EVERY: u64 = 100;

fn encode(body: &str) -> String {
    format!("{body}\n{:08x}\n", crc32fast::hash(body.as_bytes()))
}

/// Read a log file and check its checksum before anything else looks at its bytes.
fn read_record(path: &Path) -> Result<String> {
    let bytes = fs::read(path).at(path)?;
    match String::from_utf8(bytes) {
        Ok(text) => decode(path, &text),
        Err(_) => Err(Error::corruption(
            path,
            "manifest record is not valid UTF-8 (damaged)",
        )),
    }
}

fn decode(path: &Path, text: &str) -> Result<String> {
    let mut lines = text.splitn(3, '\n');
    let body = lines.next().unwrap_or("");
    let crc = lines.next().unwrap_or("");
    let want = u32::from_str_radix(crc.trim(), 16)
        .map_err(|_| Error::corruption(path, "manifest record has no checksum (truncated?)"))?;
    if crc32fast::hash(body.as_bytes()) != want {
        return Err(Error::corruption(path, "manifest record checksum mismatch"));
    }
    Ok(body.to_string())
}

/// What a checkpoint file holds: the state, with the commit history in sealed files of
/// `CHUNK` commits each (written once, shared by every later checkpoint) plus the open tail, so
/// a checkpoint's size does not grow with one entry per commit ever made. A checkpoint of the
/// first landing (all commits inline, no `commit_files`) reads the same way.
#[derive(Serialize, Deserialize)]
struct Checkpoint {
    version: u64,
    schema: Option<StoreSchema>,
    #[serde(default)]
    commit_files: Vec<FileRef>,
    commits: Vec<CommitInfo>,
    segments: ChunkedVec<SegmentInfo>,
    quarantine: ChunkedVec<QuarantineInfo>,
    views: BTreeMap<String, ViewEntry>,
}

/// The manifest log of one store.
pub struct Manifest {
    dir: PathBuf,
    durable: bool,
    state: Arc<ManifestState>,
    /// Sealed commit-history files already written, by chunk index.
    sealed: Vec<FileRef>,
    /// Problems met while loading that did not stop it (a damaged checkpoint passed over).
    pub warnings: Vec<String>,
}

enum LogFile {
    Record(u64),
    Checkpoint(u64),
}

fn parse_name(name: &str) -> Option<LogFile> {
    if let Some(v) = name.strip_suffix(".checkpoint.json") {
        return v.parse().ok().map(LogFile::Checkpoint);
    }
    name.strip_suffix(".json")?
        .parse()
        .ok()
        .map(LogFile::Record)
}

/// What a reader's refresh found.
pub enum Refresh {
    /// Nothing new.
    Unchanged,
    /// These records, applied in order (the incremental case).
    Records(Vec<Record>),
    /// The reader fell behind past a checkpoint: the whole state was reloaded.
    Reloaded,
}

impl Manifest {
    pub fn log_dir(root: &Path) -> PathBuf {
        root.join("_log")
    }

    /// Load the state from `root/_log` (empty if there is none). `clean` removes temporary
    /// leftovers of a crashed writer (only the lock holder may do that).
    pub fn open(root: &Path, durable: bool, clean: bool) -> Result<Manifest> {
        let dir = Self::log_dir(root);
        if !dir.exists() {
            fs::create_dir_all(&dir).at(&dir)?;
        }
        let mut m = Manifest {
            dir,
            durable,
            state: Arc::new(ManifestState::default()),
            sealed: Vec::new(),
            warnings: Vec::new(),
        };
        let (state, sealed, warnings) = m.load(clean)?;
        m.state = Arc::new(state);
        m.sealed = sealed;
        m.warnings = warnings;
        Ok(m)
    }

    /// The committed state (shared, immutable).
    pub fn state(&self) -> Arc<ManifestState> {
        self.state.clone()
    }

    fn list(&self, clean: bool) -> Result<(Vec<u64>, Vec<u64>)> {
        let mut records = Vec::new();
        let mut checkpoints = Vec::new();
        for entry in fs::read_dir(&self.dir).at(&self.dir)? {
            let entry = entry.at(&self.dir)?;
            let name = entry.file_name().to_string_lossy().to_string();
            if is_temporary(&name) {
                if clean && entry.file_type().is_ok_and(|t| t.is_file()) {
                    let _ = fs::remove_file(entry.path());
                }
                continue;
            }
            match parse_name(&name) {
                Some(LogFile::Record(v)) => records.push(v),
                Some(LogFile::Checkpoint(v)) => checkpoints.push(v),
                None => {}
            }
        }
        records.sort_unstable();
        checkpoints.sort_unstable();
        Ok((records, checkpoints))
    }

    fn read_checkpoint(&self, v: u64) -> Result<(ManifestState, Vec<FileRef>)> {
        let path = self.dir.join(format!("{v:020}.checkpoint.json"));
        let body = read_record(&path)?;
        let cp: Checkpoint =
            serde_json::from_str(&body).map_err(|e| Error::corruption(&path, e))?;
        let mut commits = ChunkedVec::default();
        for f in &cp.commit_files {
            let file = self.dir.join(&f.file);
            let bytes = read_checked(&file, f.crc32, f.bytes)?;
            let chunk: Vec<CommitInfo> =
                serde_json::from_slice(&bytes).map_err(|e| Error::corruption(&file, e))?;
            if chunk.len() != CHUNK || commits.len() % CHUNK != 0 {
                return Err(Error::corruption(
                    &file,
                    "a sealed commit file must hold a whole chunk",
                ));
            }
            commits.push_chunk(Arc::new(chunk));
        }
        for c in cp.commits {
            commits.push(c);
        }
        let mut state = ManifestState {
            version: cp.version,
            schema: cp.schema,
            commits,
            segments: cp.segments,
            quarantine: cp.quarantine,
            views: cp.views,
            sources: BTreeMap::new(),
        };
        state
            .after_load()
            .map_err(|e| Error::corruption(&path, e))?;
        if state.version != v {
            return Err(Error::corruption(&path, "checkpoint version mismatch"));
        }
        Ok((state, cp.commit_files))
    }

    /// The newest readable checkpoint whose later records are all present, then those records.
    /// A damaged checkpoint is derived data: an older one (or the records alone) rebuild it.
    fn load(&self, clean: bool) -> Result<(ManifestState, Vec<FileRef>, Vec<String>)> {
        let (records, checkpoints) = self.list(clean)?;
        let mut warnings = Vec::new();
        let mut first_error = None;
        let bases = checkpoints.iter().rev().map(|&v| Some(v)).chain([None]);
        for base in bases {
            let (state, sealed) = match base {
                Some(v) => match self.read_checkpoint(v) {
                    Ok(s) => s,
                    Err(e) => {
                        warnings.push(format!("passed over a damaged checkpoint: {e}"));
                        first_error.get_or_insert(e);
                        continue;
                    }
                },
                None => (ManifestState::default(), Vec::new()),
            };
            match self.replay_records(state, &records) {
                Ok(s) => return Ok((s, sealed, warnings)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| Error::corruption(&self.dir, "no usable manifest")))
    }

    fn replay_records(&self, mut state: ManifestState, records: &[u64]) -> Result<ManifestState> {
        let base = state.version;
        for &v in records.iter().filter(|&&v| v > base) {
            let path = self.record_path(v);
            if v != state.version + 1 {
                return Err(Error::corruption(
                    &path,
                    format!("manifest log jumps from version {} to {v}", state.version),
                ));
            }
            let record = self.read_one(v)?;
            state
                .apply(&record)
                .map_err(|e| Error::corruption(&path, e))?;
            state.version = v;
        }
        Ok(state)
    }

    fn read_one(&self, v: u64) -> Result<Record> {
        let path = self.record_path(v);
        let body = read_record(&path)?;
        serde_json::from_str(&body).map_err(|e| Error::corruption(&path, e))
    }

    /// Pick up records committed by the writer process since this reader loaded: incrementally
    /// when every newer record is still there, else (fallen behind past a checkpoint) by reload.
    pub fn refresh(&mut self) -> Result<Refresh> {
        let current = self.state.version;
        let (records, checkpoints) = self.list(false)?;
        let newer: Vec<u64> = records.into_iter().filter(|&v| v > current).collect();
        if newer.is_empty() && checkpoints.iter().all(|&v| v <= current) {
            return Ok(Refresh::Unchanged);
        }
        let contiguous =
            newer.first() == Some(&(current + 1)) && newer.windows(2).all(|w| w[1] == w[0] + 1);
        if contiguous {
            let mut applied = Vec::with_capacity(newer.len());
            let mut next = (*self.state).clone();
            for &v in &newer {
                let record = match self.read_one(v) {
                    Ok(r) => r,
                    // Deleted by a checkpoint meanwhile: reload below.
                    Err(_) => break,
                };
                next.apply(&record)
                    .map_err(|e| Error::corruption(&self.record_path(v), e))?;
                next.version = v;
                applied.push(record);
            }
            if applied.len() == newer.len() {
                self.state = Arc::new(next);
                return Ok(Refresh::Records(applied));
            }
        }
        let (state, sealed, warnings) = self.load(false)?;
        self.state = Arc::new(state);
        self.sealed = sealed;
        self.warnings = warnings;
        Ok(Refresh::Reloaded)
    }

    fn record_path(&self, v: u64) -> PathBuf {
        self.dir.join(format!("{v:020}.json"))
    }

    /// Commit one record: after this returns, the change is durable and visible. The record is
    /// checked first and written second, so the in-memory state changes only once it is on disk.
    pub fn commit(&mut self, record: Record) -> Result<Arc<ManifestState>> {
        self.state.check(&record).map_err(Error::internal)?;
        let version = self.state.version + 1;
        let body = serde_json::to_string(&record)?;
        write_atomic(
            &self.record_path(version),
            encode(&body).as_bytes(),
            self.durable,
        )?;
        let state = Arc::make_mut(&mut self.state);
        state.apply(&record).map_err(Error::internal)?;
        state.version = version;
        if version % CHECKPOINT_EVERY == 0 {
            // A failed checkpoint is harmless: the records alone still give the state.
            let _ = self.checkpoint();
        }
        Ok(self.state.clone())
    }

    fn checkpoint(&mut self) -> Result<()> {
        let v = self.state.version;
        // Seal the full chunks of commit history not sealed yet (each is written once).
        let chunks = self.state.commits.chunks();
        let full = if self.state.commits.len() % CHUNK == 0 {
            chunks.len()
        } else {
            chunks.len() - 1
        };
        for chunk in &chunks[self.sealed.len().min(full)..full] {
            let (first, last) = match (chunk.first(), chunk.last()) {
                (Some(a), Some(b)) => (a.commit, b.commit),
                _ => break,
            };
            let rel = format!("commits-{first:020}-{last:020}.json");
            let bytes = serde_json::to_vec(chunk.as_ref())?;
            write_atomic(&self.dir.join(&rel), &bytes, self.durable)?;
            self.sealed.push(FileRef {
                file: rel,
                bytes: bytes.len() as u64,
                crc32: crc32fast::hash(&bytes),
            });
        }
        let sealed = self.sealed.len().min(full);
        let cp = Checkpoint {
            version: v,
            schema: self.state.schema.clone(),
            commit_files: self.sealed[..sealed].to_vec(),
            commits: self.state.commits.chunks()[sealed..]
                .iter()
                .flat_map(|c| c.iter().cloned())
                .collect(),
            segments: self.state.segments.clone(),
            quarantine: self.state.quarantine.clone(),
            views: self.state.views.clone(),
        };
        let body = serde_json::to_string(&cp)?;
        let path = self.dir.join(format!("{v:020}.checkpoint.json"));
        write_atomic(&path, encode(&body).as_bytes(), self.durable)?;
        // Keep the previous checkpoint and everything after it (the fallback if the newest one
        // is damaged); older files are no longer needed.
        let keep_from = v.saturating_sub(CHECKPOINT_EVERY);
        if let Ok(entries) = fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                let old = match parse_name(&name) {
                    Some(LogFile::Record(x)) => x <= keep_from,
                    Some(LogFile::Checkpoint(x)) => x < keep_from,
                    None => false,
                };
                if old {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::records::test_append as append;

    #[test]
    fn a_damaged_checkpoint_falls_back_to_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Manifest::open(dir.path(), false, true).unwrap();
        for c in 1..=CHECKPOINT_EVERY + 5 {
            m.commit(append(c, 1)).unwrap();
        }
        let cp =
            Manifest::log_dir(dir.path()).join(format!("{CHECKPOINT_EVERY:020}.checkpoint.json"));
        let mut bytes = fs::read(&cp).unwrap();
        bytes[10] ^= 0x55;
        fs::write(&cp, bytes).unwrap();
        let m2 = Manifest::open(dir.path(), false, false).unwrap();
        assert_eq!(m2.state().last_commit(), CHECKPOINT_EVERY + 5);
        assert_eq!(*m2.state(), *m.state());
        assert!(!m2.warnings.is_empty());
    }

    #[test]
    fn checkpoints_keep_commit_history_in_sealed_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Manifest::open(dir.path(), false, true).unwrap();
        let n = 3 * CHUNK as u64 + 7 * CHECKPOINT_EVERY;
        for c in 1..=n {
            m.commit(append(c, c % 3)).unwrap();
        }
        let log = Manifest::log_dir(dir.path());
        let sealed = fs::read_dir(&log)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("commits-"))
            .count();
        assert_eq!(sealed, (n as usize) / CHUNK);
        let newest = log.join(format!(
            "{:020}.checkpoint.json",
            n / CHECKPOINT_EVERY * CHECKPOINT_EVERY
        ));
        let body = read_record(&newest).unwrap();
        let cp: Checkpoint = serde_json::from_str(&body).unwrap();
        assert_eq!(cp.commit_files.len(), n as usize / CHUNK);
        assert!(
            cp.commits.len() < CHUNK,
            "the checkpoint holds only the open tail"
        );
        let m2 = Manifest::open(dir.path(), false, false).unwrap();
        assert_eq!(*m2.state(), *m.state());
        assert!(m2.warnings.is_empty());
    }

    #[test]
    fn a_reader_applies_new_records_incrementally() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Manifest::open(dir.path(), false, true).unwrap();
        w.commit(append(1, 1)).unwrap();
        let mut r = Manifest::open(dir.path(), false, false).unwrap();
        assert!(matches!(r.refresh().unwrap(), Refresh::Unchanged));
        w.commit(append(2, 1)).unwrap();
        w.commit(append(3, 1)).unwrap();
        match r.refresh().unwrap() {
            Refresh::Records(recs) => assert_eq!(recs.len(), 2),
            _ => panic!("expected an incremental refresh"),
        }
        assert_eq!(*r.state(), *w.state());
    }
}
