//! Source positions: where a commit's rows came from, recorded in the commit's own manifest
//! record, so that the rows and the position become durable together.
//!
//! An ingest from a source (a landing directory, a Kafka topic) reads the position the store
//! holds for it, reads what lies after, and appends those rows with the new position in one
//! commit. A crash before the commit loses neither (nothing was recorded, the next run reads
//! the same data again); a crash after it repeats nothing (the next run starts after the
//! recorded position). That is exactly once, with no bookkeeping outside the store.
//!
//! Invariants (checked before a record is written): a file is recorded at most once per
//! source (by name and content hash), and a partition's offset never moves backwards.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One file ingested by a commit: its name (relative to the source's directory), size in bytes
/// and content hash (hex).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileMark {
    pub name: String,
    pub size: u64,
    pub hash: String,
}

/// What a commit consumed from its source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Progress {
    /// The files this commit took. A file that could not be read (a corrupt archive, an empty
    /// Parquet file) is taken too, with no rows, and listed in `rejected` with its error, so it
    /// never blocks the files after it; a new version of it (other content) is read again.
    Files {
        files: Vec<FileMark>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        rejected: Vec<serde_json::Value>,
        /// Field -> values set aside because the store has no such column.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        ignored: BTreeMap<String, u64>,
    },
    /// The next offset to read, per partition, after this commit (partitions it did not read
    /// keep their earlier offsets), and the messages it could not decode (partition, offset,
    /// error, the start of the value): kept here, in the commit, never dropped.
    Offsets {
        /// Partition (decimal, as JSON object keys are strings) -> next offset.
        offsets: BTreeMap<String, i64>,
        /// Partition -> the offset of the first message this commit holds: it may not lie
        /// before the recorded next offset (that would be a second copy of messages).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        start: BTreeMap<String, i64>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        rejected: Vec<serde_json::Value>,
        /// Field -> how many messages held it, set aside because the store has no such column
        /// (a producer added a field: `Store.evolve_schema` keeps it from then on).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        ignored: BTreeMap<String, u64>,
    },
}

/// The source position a commit records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SourceMark {
    /// A stable identity of the source, chosen by it (`dir:<path>:<pattern>`,
    /// `kafka:<bootstrap>/<topic>`).
    pub source: String,
    #[serde(flatten)]
    pub progress: Progress,
}

/// Everything a source has delivered so far: the fold of its marks.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SourceState {
    /// File name -> (size, hash, commit).
    pub files: BTreeMap<String, (u64, String, u64)>,
    /// Partition -> next offset.
    pub offsets: BTreeMap<u32, i64>,
    /// The last commit that recorded this source.
    pub last_commit: u64,
    /// Messages, lines or files set aside as unreadable, over every commit.
    #[serde(default)]
    pub rejected: u64,
    /// Field -> values set aside because the store had no such column, over every commit.
    #[serde(default)]
    pub ignored: BTreeMap<String, u64>,
}

impl SourceState {
    /// Why `progress` cannot follow this state, if it cannot.
    pub fn check(&self, progress: &Progress) -> Option<String> {
        match progress {
            Progress::Files { files, .. } => {
                let mut seen = std::collections::HashSet::new();
                for f in files {
                    if !seen.insert(f.name.as_str()) {
                        return Some(format!("file {:?} twice in one commit", f.name));
                    }
                    if let Some((size, hash, commit)) = self.files.get(&f.name) {
                        if *size == f.size && *hash == f.hash {
                            return Some(format!(
                                "file {:?} was already ingested by commit {commit}",
                                f.name
                            ));
                        }
                    }
                }
                None
            }
            Progress::Offsets { offsets, start, .. } => {
                let part = |p: &String| {
                    p.parse::<u32>()
                        .map_err(|_| format!("partition {p:?} is not a partition number"))
                };
                for (p, &o) in offsets {
                    let before = match part(p) {
                        Ok(n) => self.offsets.get(&n).copied().unwrap_or(i64::MIN),
                        Err(e) => return Some(e),
                    };
                    if o < before {
                        return Some(format!("partition {p}: offset {o} is before {before}"));
                    }
                }
                for (p, &first) in start {
                    let recorded = match part(p) {
                        Ok(n) => self.offsets.get(&n).copied(),
                        Err(e) => return Some(e),
                    };
                    if let Some(next) = recorded.filter(|&next| first < next) {
                        return Some(format!(
                            "partition {p}: this commit starts at offset {first}, but offsets up \
                             to {next} are already in the store (two readers of one source?)"
                        ));
                    }
                }
                None
            }
        }
    }

    pub fn apply(&mut self, progress: &Progress, commit: u64) {
        let (rejected, ignored) = match progress {
            Progress::Files {
                files,
                rejected,
                ignored,
            } => {
                for f in files {
                    self.files
                        .insert(f.name.clone(), (f.size, f.hash.clone(), commit));
                }
                (rejected, ignored)
            }
            Progress::Offsets {
                offsets,
                rejected,
                ignored,
                ..
            } => {
                self.offsets.extend(
                    offsets
                        .iter()
                        .filter_map(|(p, o)| p.parse::<u32>().ok().map(|p| (p, *o))),
                );
                (rejected, ignored)
            }
        };
        self.rejected += rejected.len() as u64;
        for (field, n) in ignored {
            *self.ignored.entry(field.clone()).or_default() += n;
        }
        self.last_commit = commit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_once_and_offsets_forward() {
        let mut s = SourceState::default();
        let f = |name: &str, hash: &str| FileMark {
            name: name.into(),
            size: 10,
            hash: hash.into(),
        };
        let p = Progress::Files {
            files: vec![f("a.csv", "h1")],
            rejected: Vec::new(),
            ignored: [("extra".to_string(), 3)].into(),
        };
        assert!(s.check(&p).is_none());
        s.apply(&p, 1);
        assert!(s.check(&p).unwrap().contains("commit 1"));
        // The same name with other content is a new file.
        assert!(s
            .check(&Progress::Files {
                files: vec![f("a.csv", "h2")],
                rejected: Vec::new(),
                ignored: BTreeMap::new(),
            })
            .is_none());
        let o = |pairs: &[(u32, i64)]| Progress::Offsets {
            offsets: pairs.iter().map(|(p, o)| (p.to_string(), *o)).collect(),
            start: BTreeMap::new(),
            rejected: Vec::new(),
            ignored: BTreeMap::new(),
        };
        s.apply(&o(&[(0, 5), (1, 7)]), 2);
        assert_eq!(s.ignored, [("extra".to_string(), 3)].into());
        assert!(s.check(&o(&[(0, 4)])).is_some());
        assert!(s.check(&o(&[(0, 5), (2, 0)])).is_none());
        // A commit that starts before the recorded position would hold messages twice.
        let from = |first: i64, next: i64| Progress::Offsets {
            offsets: [("0".to_string(), next)].into(),
            start: [("0".to_string(), first)].into(),
            rejected: Vec::new(),
            ignored: BTreeMap::new(),
        };
        assert!(s.check(&from(3, 9)).unwrap().contains("two readers"));
        assert!(s.check(&from(5, 9)).is_none());
        assert!(
            s.check(&from(7, 9)).is_none(),
            "a gap (compaction, markers) is allowed"
        );
        let parsed: SourceMark =
            serde_json::from_str(r#"{"source":"k","kind":"offsets","offsets":{"2":7}}"#).unwrap();
        assert_eq!(parsed.progress, o(&[(2, 7)]));
        let json = serde_json::to_string(&SourceMark {
            source: "dir:x".into(),
            progress: o(&[(3, 9)]),
        })
        .unwrap();
        assert_eq!(
            json,
            r#"{"source":"dir:x","kind":"offsets","offsets":{"3":9}}"#
        );
    }
}
