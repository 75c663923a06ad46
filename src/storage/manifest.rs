//! The manifest log: every change to a store is one record, committed by writing a new file
//! `_log/<version>.json` (write, fsync, rename, fsync the directory). The store's state is the fold
//! of the records; a checkpoint of that state every `CHECKPOINT_EVERY` versions keeps opening fast.
//! Each file carries a CRC-32 of its body, so a damaged record is reported, not misread.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::schema::StoreSchema;
use crate::storage::files::{write_atomic, TMP_PREFIX};
use crate::view::ViewDef;

pub const CHECKPOINT_EVERY: u64 = 100;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileRef {
    /// Path relative to the store root.
    pub file: String,
    pub bytes: u64,
    pub crc32: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CommitInfo {
    pub commit: u64,
    pub rows: u64,
    pub committed_at_us: i64,
    #[serde(default)]
    pub quarantined: u64,
}

/// A Parquet file of events; its rows are ordered by commit, `commits` gives (commit, rows).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentInfo {
    pub file: FileRef,
    pub commits: Vec<(u64, u64)>,
}

impl SegmentInfo {
    pub fn first_commit(&self) -> u64 {
        self.commits.first().map(|c| c.0).unwrap_or(0)
    }
    pub fn last_commit(&self) -> u64 {
        self.commits.last().map(|c| c.0).unwrap_or(0)
    }
    pub fn rows(&self) -> u64 {
        self.commits.iter().map(|c| c.1).sum()
    }
    /// How many leading rows belong to commits <= `snapshot`.
    pub fn rows_upto(&self, snapshot: u64) -> u64 {
        self.commits
            .iter()
            .take_while(|c| c.0 <= snapshot)
            .map(|c| c.1)
            .sum()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QuarantineInfo {
    pub commit: u64,
    pub file: FileRef,
    pub rows: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Published {
    pub snapshot: u64,
    pub fingerprint: String,
    pub file: FileRef,
    pub rows: u64,
    pub published_at_us: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ViewEntry {
    pub def: ViewDef,
    pub fingerprint: String,
    pub published: Option<Published>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ManifestState {
    pub version: u64,
    pub schema: Option<StoreSchema>,
    pub commits: Vec<CommitInfo>,
    pub segments: Vec<SegmentInfo>,
    pub quarantine: Vec<QuarantineInfo>,
    pub views: BTreeMap<String, ViewEntry>,
}

impl ManifestState {
    pub fn last_commit(&self) -> u64 {
        self.commits.last().map(|c| c.commit).unwrap_or(0)
    }

    /// Every file the state references (relative paths).
    pub fn live_files(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.segments.iter().map(|s| s.file.file.as_str()).collect();
        out.extend(self.quarantine.iter().map(|q| q.file.file.as_str()));
        out.extend(
            self.views
                .values()
                .filter_map(|v| v.published.as_ref().map(|p| p.file.file.as_str())),
        );
        out
    }

    fn apply(&mut self, record: &Record) -> std::result::Result<(), String> {
        match record {
            Record::Append {
                commit,
                schema,
                segment,
                quarantine,
            } => {
                if commit.commit != self.last_commit() + 1 {
                    return Err(format!(
                        "commit {} follows {}",
                        commit.commit,
                        self.last_commit()
                    ));
                }
                if let Some(s) = schema {
                    self.schema = Some(s.clone());
                }
                self.commits.push(commit.clone());
                if let Some(seg) = segment {
                    self.segments.push(seg.clone());
                }
                if let Some(q) = quarantine {
                    self.quarantine.push(q.clone());
                }
            }
            Record::Compact { removed, added } => {
                let pos = self
                    .segments
                    .iter()
                    .position(|s| removed.contains(&s.file.file))
                    .ok_or("compaction of unknown segments")?;
                self.segments.retain(|s| !removed.contains(&s.file.file));
                self.segments
                    .insert(pos.min(self.segments.len()), added.clone());
            }
            Record::Define { view } => {
                let fingerprint = view.fingerprint();
                let published = self
                    .views
                    .get(&view.name)
                    .and_then(|v| v.published.clone())
                    .filter(|p| p.fingerprint == fingerprint);
                self.views.insert(
                    view.name.clone(),
                    ViewEntry {
                        def: view.clone(),
                        fingerprint,
                        published,
                    },
                );
            }
            Record::Drop { name } => {
                self.views.remove(name);
            }
            Record::Publish { name, published } => {
                let v = self
                    .views
                    .get_mut(name)
                    .ok_or("publish of an unknown view")?;
                v.published = Some(published.clone());
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Record {
    Append {
        commit: CommitInfo,
        #[serde(default)]
        schema: Option<StoreSchema>,
        segment: Option<SegmentInfo>,
        #[serde(default)]
        quarantine: Option<QuarantineInfo>,
    },
    Compact {
        removed: Vec<String>,
        added: SegmentInfo,
    },
    Define {
        view: ViewDef,
    },
    Drop {
        name: String,
    },
    Publish {
        name: String,
        published: Published,
    },
}

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

/// The manifest log of one store.
pub struct Manifest {
    dir: PathBuf,
    durable: bool,
    pub state: ManifestState,
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
            state: ManifestState::default(),
        };
        m.state = m.load(clean)?;
        Ok(m)
    }

    fn load(&self, clean: bool) -> Result<ManifestState> {
        let mut records = Vec::new();
        let mut checkpoints = Vec::new();
        for entry in fs::read_dir(&self.dir).at(&self.dir)? {
            let entry = entry.at(&self.dir)?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with(TMP_PREFIX) {
                if clean {
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
        let mut state = ManifestState::default();
        if let Some(&cp) = checkpoints.last() {
            let path = self.dir.join(format!("{cp:020}.checkpoint.json"));
            let body = read_record(&path)?;
            state = serde_json::from_str(&body).map_err(|e| Error::corruption(&path, e))?;
        }
        let base = state.version;
        for v in records.into_iter().filter(|&v| v > base) {
            let path = self.record_path(v);
            if v != state.version + 1 {
                return Err(Error::corruption(
                    &path,
                    format!("manifest log jumps from version {} to {v}", state.version),
                ));
            }
            let body = read_record(&path)?;
            let record: Record =
                serde_json::from_str(&body).map_err(|e| Error::corruption(&path, e))?;
            state
                .apply(&record)
                .map_err(|e| Error::corruption(&path, e))?;
            state.version = v;
        }
        Ok(state)
    }

    /// Pick up records committed by the writer process since this reader loaded.
    pub fn refresh(&mut self) -> Result<bool> {
        // The next record may already be folded into a checkpoint (and deleted) when the reader
        // fell far behind, so look for any newer record or checkpoint.
        let current = self.state.version;
        let newer = fs::read_dir(&self.dir).at(&self.dir)?.flatten().any(|e| {
            match parse_name(&e.file_name().to_string_lossy()) {
                Some(LogFile::Record(v)) | Some(LogFile::Checkpoint(v)) => v > current,
                None => false,
            }
        });
        if !newer {
            return Ok(false);
        }
        self.state = self.load(false)?;
        Ok(true)
    }

    fn record_path(&self, v: u64) -> PathBuf {
        self.dir.join(format!("{v:020}.json"))
    }

    /// Commit one record: after this returns, the change is durable and visible.
    pub fn commit(&mut self, record: Record) -> Result<()> {
        let mut next = self.state.clone();
        next.apply(&record).map_err(Error::invalid)?;
        next.version += 1;
        let body = serde_json::to_string(&record).map_err(|e| Error::invalid(e.to_string()))?;
        write_atomic(
            &self.record_path(next.version),
            encode(&body).as_bytes(),
            self.durable,
        )?;
        self.state = next;
        if self.state.version % CHECKPOINT_EVERY == 0 {
            // A failed checkpoint is harmless: the records alone still give the state.
            let _ = self.checkpoint();
        }
        Ok(())
    }

    fn checkpoint(&self) -> Result<()> {
        let v = self.state.version;
        let body = serde_json::to_string(&self.state).map_err(|e| Error::invalid(e.to_string()))?;
        let path = self.dir.join(format!("{v:020}.checkpoint.json"));
        write_atomic(&path, encode(&body).as_bytes(), self.durable)?;
        // Keep the previous checkpoint and everything after it; older files are no longer needed.
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
