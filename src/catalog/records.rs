//! The records of the catalog's log: one per change to a store. The master dataset's records
//! (appends, schemas, compactions) and the views' (definitions, publishes, saved speed states).

use serde::{Deserialize, Serialize};

use crate::master::commits::{CommitInfo, FileRef, QuarantineInfo, SegmentInfo};
use crate::master::schema::StoreSchema;
use crate::view::def::ViewDef;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Published {
    pub snapshot: u64,
    pub fingerprint: String,
    pub file: FileRef,
    pub rows: u64,
    pub published_at_us: i64,
}

/// A view's speed state saved when its writer closed: the fold of commits `first..=last` (the
/// commits after the batch view it was saved against). Derived data, like a batch view: a
/// reopening store loads it instead of replaying those commits, and replays them if the file is
/// damaged or no longer fits (another batch view, another definition).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SavedSpeed {
    pub fingerprint: String,
    pub first: u64,
    pub last: u64,
    pub rows: u64,
    pub file: FileRef,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ViewEntry {
    pub def: ViewDef,
    pub fingerprint: String,
    pub published: Option<Published>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_speed: Option<SavedSpeed>,
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
    /// `Store(schema=...)`: the schema fixed before the first append.
    SetSchema {
        schema: StoreSchema,
    },
    /// `store.evolve_schema(...)`: columns added (older segments read them as nulls) or
    /// widened losslessly.
    EvolveSchema {
        schema: StoreSchema,
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
    /// The speed state of a view saved at close (None: forget the saved one).
    SaveSpeed {
        name: String,
        saved: Option<SavedSpeed>,
    },
}

/// An append of `rows` rows as commit `commit` (no segment when there are none).
#[cfg(test)]
pub(crate) fn test_append(commit: u64, rows: u64) -> Record {
    Record::Append {
        commit: CommitInfo {
            commit,
            rows,
            committed_at_us: 0,
            quarantined: 0,
            source: None,
            end_row: 0,
        },
        schema: None,
        segment: (rows > 0).then(|| {
            SegmentInfo::new(
                FileRef {
                    file: format!("segments/{commit}.parquet"),
                    bytes: 1,
                    crc32: 0,
                },
                commit,
                commit,
                rows,
            )
        }),
        quarantine: None,
    }
}
