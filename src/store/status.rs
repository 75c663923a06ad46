//! `status()`: the store's figures, one struct that the binding converts once (keys as the
//! Python dict spells them, in this order).

use serde::ser::{SerializeMap, Serializer};

use super::{RecomputeReport, Store, ViewStatus};
use crate::error::Result;

/// What a source has delivered, as `status()["sources"]` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceStatus {
    pub source: String,
    pub last_commit: u64,
    /// Files delivered (a directory source).
    pub files: usize,
    /// Partition -> next offset (a Kafka source).
    pub offsets: std::collections::BTreeMap<u32, i64>,
    pub rejected: u64,
    pub ignored_fields: std::collections::BTreeMap<String, u64>,
}

/// `(name, batch, speed)` bytes per group of each metric, as a map of name to
/// `{"batch": .., "speed": ..}` in plan order.
pub fn metric_bytes<S: Serializer>(
    v: &[(String, f64, f64)],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    #[derive(serde::Serialize)]
    struct LayerBytes {
        batch: f64,
        speed: f64,
    }
    let mut m = s.serialize_map(Some(v.len()))?;
    for (name, batch, speed) in v {
        m.serialize_entry(
            name,
            &LayerBytes {
                batch: *batch,
                speed: *speed,
            },
        )?;
    }
    m.end()
}

/// `(phase, seconds)` pairs as a map in their order.
pub fn phases<S: Serializer>(v: &[(String, f64)], s: S) -> std::result::Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(v.len()))?;
    for (k, x) in v {
        m.serialize_entry(k, x)?;
    }
    m.end()
}

/// Everything `status()` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreStatus {
    pub path: String,
    pub temporary: bool,
    pub read_only: bool,
    pub latest_commit: u64,
    pub rows: u64,
    pub quarantined_rows: u64,
    pub segments: usize,
    pub sources: Vec<SourceStatus>,
    pub segment_bytes: u64,
    pub manifest_version: u64,
    pub retired_files: Vec<String>,
    pub time_column: Option<String>,
    pub views: Vec<ViewStatus>,
    pub last_recompute: Option<RecomputeReport>,
}

impl Store {
    /// The store's figures, read in one step.
    pub fn status_report(&self) -> Result<StoreStatus> {
        let (state, views) = self.status()?;
        Ok(StoreStatus {
            path: self.root().display().to_string(),
            temporary: self.is_temporary(),
            read_only: self.is_read_only(),
            latest_commit: state.last_commit(),
            rows: state.total_rows(),
            quarantined_rows: state.commits.iter().map(|c| c.quarantined).sum(),
            segments: state.segments.len(),
            sources: state
                .sources
                .iter()
                .map(|(id, s)| SourceStatus {
                    source: id.clone(),
                    last_commit: s.last_commit,
                    files: s.files.len(),
                    offsets: s.offsets.clone(),
                    rejected: s.rejected,
                    ignored_fields: s.ignored.clone(),
                })
                .collect(),
            segment_bytes: state.segments.iter().map(|s| s.file.bytes).sum(),
            manifest_version: state.version,
            retired_files: self.retired_files(),
            time_column: state.schema.as_ref().map(|s| s.time_column.clone()),
            views,
            last_recompute: self.last_recompute(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_serialize_as_a_map_in_their_order() {
        let r = RecomputeReport {
            phases: vec![("b".to_string(), 1.0), ("a".to_string(), 2.0)],
            ..RecomputeReport::default()
        };
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.ends_with(r#""phases":{"b":1.0,"a":2.0}}"#), "{text}");
    }
}
