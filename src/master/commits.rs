//! What the master dataset records in the catalog: each commit, each segment file (the rows of
//! a run of commits), the slice of a segment a read needs, and each quarantine file, all naming
//! their files by [`FileRef`] (a path relative to the store root, its size and CRC-32).

use serde::{Deserialize, Serialize};

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
    /// The source position this commit recorded (an ingest from a source), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::master::source::SourceMark>,
    /// Rows of commits 1..=commit (derived, not persisted): row offsets of time travel.
    #[serde(skip)]
    pub end_row: u64,
}

/// A Parquet file of events: the rows of commits `first..=last`, in commit order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentInfo {
    pub file: FileRef,
    #[serde(default)]
    pub first: u64,
    #[serde(default)]
    pub last: u64,
    #[serde(default)]
    pub rows: u64,
    /// The first landing's layout: one (commit, rows) entry per commit. Read, never written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commits: Vec<(u64, u64)>,
}

impl SegmentInfo {
    pub fn new(file: FileRef, first: u64, last: u64, rows: u64) -> Self {
        SegmentInfo {
            file,
            first,
            last,
            rows,
            commits: Vec::new(),
        }
    }
    /// The first landing's per-commit layout as the first/last/rows it implies.
    pub(crate) fn normalize(&mut self) {
        if !self.commits.is_empty() {
            self.first = self.commits[0].0;
            self.last = self.commits[self.commits.len() - 1].0;
            self.rows = self.commits.iter().map(|c| c.1).sum();
            self.commits = Vec::new();
        }
    }
}

/// The rows of one segment that a read needs: skip `skip` rows, then take `rows`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentSlice {
    pub file: FileRef,
    /// All rows of the file (checked against its footer).
    pub file_rows: u64,
    pub skip: u64,
    pub rows: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QuarantineInfo {
    pub commit: u64,
    pub file: FileRef,
    pub rows: u64,
}
