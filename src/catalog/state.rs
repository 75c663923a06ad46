//! The committed state of a store: the fold of the catalog's records. `check` says whether a
//! record would apply before it is written, so applying a written record never fails.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::records::{Record, ViewEntry};
use crate::master::chunked::ChunkedVec;
use crate::master::commits::{CommitInfo, QuarantineInfo, SegmentInfo, SegmentSlice};
use crate::master::schema::StoreSchema;

/// The committed state of a store: the fold of its manifest records. Cheap to clone (the long
/// lists are chunked and shared), so readers hold an `Arc` of it and never wait on the writer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ManifestState {
    pub version: u64,
    pub schema: Option<StoreSchema>,
    pub commits: ChunkedVec<CommitInfo>,
    pub segments: ChunkedVec<SegmentInfo>,
    pub quarantine: ChunkedVec<QuarantineInfo>,
    pub views: BTreeMap<String, ViewEntry>,
    /// Per source, what it has delivered (derived from the commits' marks, not persisted).
    #[serde(skip)]
    pub sources: BTreeMap<String, crate::master::source::SourceState>,
}

impl ManifestState {
    pub fn last_commit(&self) -> u64 {
        self.commits.last().map(|c| c.commit).unwrap_or(0)
    }

    /// Rows of commits 1..=commit.
    pub fn end_row(&self, commit: u64) -> u64 {
        let c = commit.min(self.last_commit());
        if c == 0 {
            return 0;
        }
        self.commits
            .get(c as usize - 1)
            .map(|x| x.end_row)
            .unwrap_or(0)
    }

    pub fn total_rows(&self) -> u64 {
        self.end_row(self.last_commit())
    }

    /// The parts of segments holding the rows of commits in (after, upto], in commit order.
    pub fn slices(&self, after: u64, upto: u64) -> Vec<SegmentSlice> {
        if upto <= after {
            return Vec::new();
        }
        let start = self.segments.partition_point(|s| s.last <= after);
        let mut out = Vec::new();
        for seg in self.segments.iter().skip(start) {
            if seg.first > upto {
                break;
            }
            let base = self.end_row(seg.first.saturating_sub(1));
            let skip = self.end_row(after.max(seg.first - 1)) - base;
            let end = self.end_row(upto.min(seg.last)) - base;
            if end > skip {
                out.push(SegmentSlice {
                    file: seg.file.clone(),
                    file_rows: seg.rows,
                    skip,
                    rows: end - skip,
                });
            }
        }
        out
    }

    /// Every file the state references (relative paths).
    pub fn live_files(&self) -> HashSet<String> {
        let mut out: HashSet<String> = self.segments.iter().map(|s| s.file.file.clone()).collect();
        out.extend(self.quarantine.iter().map(|q| q.file.file.clone()));
        out.extend(
            self.views
                .values()
                .filter_map(|v| v.published.as_ref().map(|p| p.file.file.clone())),
        );
        out.extend(
            self.views
                .values()
                .filter_map(|v| v.saved_speed.as_ref().map(|p| p.file.file.clone())),
        );
        out
    }

    /// Derived fields after loading a checkpoint (and old layouts brought up to date).
    pub(crate) fn after_load(&mut self) -> std::result::Result<(), String> {
        let mut fixed = ChunkedVec::default();
        let mut total = 0u64;
        self.sources.clear();
        for (i, c) in self.commits.iter().enumerate() {
            if c.commit != i as u64 + 1 {
                return Err(format!("commit {} at position {}", c.commit, i + 1));
            }
            total += c.rows;
            let mut c = c.clone();
            c.end_row = total;
            if let Some(mark) = &c.source {
                self.sources
                    .entry(mark.source.clone())
                    .or_default()
                    .apply(&mark.progress, c.commit);
            }
            fixed.push(c);
        }
        self.commits = fixed;
        if self.segments.iter().any(|s| !s.commits.is_empty()) {
            self.segments = self
                .segments
                .iter()
                .map(|s| {
                    let mut s = s.clone();
                    s.normalize();
                    s
                })
                .collect();
        }
        Ok(())
    }

    /// Would `record` apply? Checked before it is written, so that applying cannot fail after.
    pub(crate) fn check(&self, record: &Record) -> std::result::Result<(), String> {
        match record {
            Record::Append { commit, schema, .. } => {
                if commit.commit != self.last_commit() + 1 {
                    return Err(format!(
                        "commit {} follows {}",
                        commit.commit,
                        self.last_commit()
                    ));
                }
                if schema.is_some() && self.schema.is_some() && schema != &self.schema {
                    return Err("the schema is already fixed".into());
                }
                if let Some(mark) = &commit.source {
                    let state = self.sources.get(&mark.source).cloned().unwrap_or_default();
                    if let Some(why) = state.check(&mark.progress) {
                        return Err(format!("source {:?}: {why}", mark.source));
                    }
                }
            }
            Record::SetSchema { .. } => {
                if self.schema.is_some() {
                    return Err("the schema is already fixed".into());
                }
            }
            Record::EvolveSchema { schema } => match &self.schema {
                Some(old) => {
                    old.check_evolution(schema).map_err(|e| e.message)?;
                }
                None => return Err("a schema evolution of a store without a schema".into()),
            },
            Record::Compact { removed, .. } => {
                let live: HashSet<&str> =
                    self.segments.iter().map(|s| s.file.file.as_str()).collect();
                if removed.is_empty() || removed.iter().any(|r| !live.contains(r.as_str())) {
                    return Err("compaction of unknown segments".into());
                }
            }
            Record::Publish { name, .. } | Record::SaveSpeed { name, .. } => {
                if !self.views.contains_key(name) {
                    return Err("publish of an unknown view".into());
                }
            }
            Record::Define { .. } | Record::Drop { .. } => {}
        }
        Ok(())
    }

    pub(crate) fn apply(&mut self, record: &Record) -> std::result::Result<(), String> {
        self.check(record)?;
        match record {
            Record::Append {
                commit,
                schema,
                segment,
                quarantine,
            } => {
                if let Some(s) = schema {
                    self.schema = Some(s.clone());
                }
                let mut c = commit.clone();
                c.end_row = self.total_rows() + c.rows;
                if let Some(mark) = &c.source {
                    self.sources
                        .entry(mark.source.clone())
                        .or_default()
                        .apply(&mark.progress, c.commit);
                }
                self.commits.push(c);
                if let Some(seg) = segment {
                    let mut seg = seg.clone();
                    seg.normalize();
                    self.segments.push(seg);
                }
                if let Some(q) = quarantine {
                    self.quarantine.push(q.clone());
                }
            }
            Record::SetSchema { schema } | Record::EvolveSchema { schema } => {
                self.schema = Some(schema.clone())
            }
            Record::Compact { removed, added } => {
                let mut added = added.clone();
                added.normalize();
                let n = removed.len();
                let tail_matches = self.segments.len() >= n
                    && self
                        .segments
                        .iter()
                        .rev()
                        .take(n)
                        .all(|s| removed.contains(&s.file.file));
                if tail_matches {
                    // The usual case (after an append): the run is the tail.
                    self.segments.pop_tail(n);
                    self.segments.push(added);
                } else {
                    let mut out = ChunkedVec::default();
                    let mut placed = false;
                    for s in self.segments.iter() {
                        if removed.contains(&s.file.file) {
                            if !placed {
                                out.push(added.clone());
                                placed = true;
                            }
                        } else {
                            out.push(s.clone());
                        }
                    }
                    self.segments = out;
                }
            }
            Record::Define { view } => {
                let fingerprint = view.fingerprint();
                let old = self.views.get(&view.name);
                let published = old
                    .and_then(|v| v.published.clone())
                    .filter(|p| p.fingerprint == fingerprint);
                let saved_speed = old
                    .and_then(|v| v.saved_speed.clone())
                    .filter(|p| p.fingerprint == fingerprint);
                self.views.insert(
                    view.name.clone(),
                    ViewEntry {
                        def: view.clone(),
                        fingerprint,
                        published,
                        saved_speed,
                    },
                );
            }
            Record::Drop { name } => {
                self.views.remove(name);
            }
            Record::Publish { name, published } => {
                if let Some(v) = self.views.get_mut(name) {
                    v.published = Some(published.clone());
                    // A saved speed state starts after the batch view it was saved against.
                    v.saved_speed = None;
                }
            }
            Record::SaveSpeed { name, saved } => {
                if let Some(v) = self.views.get_mut(name) {
                    v.saved_speed = saved.clone();
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
    use crate::master::commits::FileRef;

    #[test]
    fn slices_give_the_rows_of_a_commit_range_across_compacted_segments() {
        let mut s = ManifestState::default();
        for c in 1..=6 {
            s.apply(&append(c, if c == 3 { 0 } else { c })).unwrap();
        }
        // Compact commits 1..=4 (1 + 2 + 0 + 4 rows) into one segment.
        let removed = ["1", "2", "4"]
            .map(|c| format!("segments/{c}.parquet"))
            .to_vec();
        s.apply(&Record::Compact {
            removed,
            added: SegmentInfo::new(
                FileRef {
                    file: "segments/c.parquet".into(),
                    bytes: 1,
                    crc32: 0,
                },
                1,
                4,
                7,
            ),
        })
        .unwrap();
        assert_eq!(s.segments.len(), 3);
        let sl = s.slices(1, 5);
        let got: Vec<(String, u64, u64)> = sl
            .iter()
            .map(|x| (x.file.file.clone(), x.skip, x.rows))
            .collect();
        assert_eq!(
            got,
            vec![
                ("segments/c.parquet".to_string(), 1, 6),
                ("segments/5.parquet".to_string(), 0, 5)
            ]
        );
        assert!(s.slices(2, 3).is_empty(), "commit 3 has no rows");
        assert_eq!(s.total_rows(), 1 + 2 + 4 + 5 + 6);
    }
}
