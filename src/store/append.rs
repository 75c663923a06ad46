//! An append, as explicit stages (the shape of delta-rs's commit: prepare, commit, post-commit):
//!
//! 1. **conform**: cast the incoming batches to the store's schema (the first append fixes it and
//!    checks every view declared before data against it); refuse or quarantine bad rows;
//! 2. **write**: the segment (and quarantine) files, each written, fsynced and renamed;
//! 3. **commit**: the manifest record, the commit point; after it the append is acknowledged;
//! 4. **post-commit hooks**: fold the rows into every view's speed state (one step under the
//!    serving lock), compact a run of small segments, collect garbage. A hook that fails never
//!    undoes the commit: a view whose fold failed is rebuilt from the master dataset.
//!
//! All stages run under the writer lock, so commits are totally ordered with view changes.

use crate::arrow::array::RecordBatch;
use crate::arrow::compute::concat_batches;

use super::{now_us, quarantine, Store};
use crate::catalog::{Manifest, Record};
use crate::error::{Error, Result};
use crate::master::commits::{CommitInfo, QuarantineInfo, SegmentInfo};
use crate::master::conform::{conform, Conformed};
use crate::master::parquet_io;
use crate::master::schema::StoreSchema;
use crate::master::source::SourceMark;
use crate::view::table::ViewPlan;

/// What an append did.
#[derive(Debug, Clone)]
pub struct AppendOutcome {
    pub commit: u64,
    pub rows: u64,
    pub quarantined: u64,
}

/// The output of the conform stage.
struct Prepared {
    conformed: Conformed,
    /// The schema this append fixes (the first append only).
    new_schema: Option<StoreSchema>,
    target: crate::arrow::datatypes::SchemaRef,
}

impl Store {
    /// Append batches as one commit. All-or-nothing: either every row (or, with `quarantine`,
    /// every good row plus the rejected rows with reasons) is committed, or nothing is.
    pub fn append(&self, batches: &[RecordBatch], quarantine: bool) -> Result<AppendOutcome> {
        self.append_from(batches, quarantine, None)
    }

    /// `append`, recording `source` (what the rows consumed from a source) in the same commit:
    /// the rows and the position become durable together, or neither does.
    pub fn append_from(
        &self,
        batches: &[RecordBatch],
        quarantine: bool,
        source: Option<SourceMark>,
    ) -> Result<AppendOutcome> {
        let mut m = self.begin_write()?;
        if let Some(mark) = &source {
            let state = m.state();
            let known = state.sources.get(&mark.source).cloned().unwrap_or_default();
            if let Some(why) = known.check(&mark.progress) {
                return Err(Error::invalid(format!("source {:?}: {why}", mark.source)));
            }
        }
        let position_only = source.is_some()
            && batches
                .iter()
                .all(|b| b.num_columns() == 0 && b.num_rows() == 0);
        let prepared = if position_only {
            // A source's delivery without rows (unreadable files, odd messages only): its
            // position is committed, so the same input is never read again.
            self.empty_stage(&m)?
        } else {
            self.conform_stage(&m, batches, quarantine)?
        };
        let commit = m.state().last_commit() + 1;
        let mut record = self.write_stage(&prepared, commit)?;
        if let Record::Append { commit: info, .. } = &mut record {
            info.source = source;
        }
        self.commit(&mut m, record)?;
        // Acknowledged: the commit is durable. Now the post-commit hooks, which never fail the
        // append: a caller told of an error would retry it and store its rows twice.
        self.hook_speed(
            &m,
            commit,
            &prepared.conformed.batch,
            prepared.new_schema.is_some(),
        );
        if self.auto_compact {
            // Compaction never changes content; a failure leaves the store as it was.
            let _ = self.compact_locked(&mut m, false);
        }
        self.collect_garbage();
        Ok(AppendOutcome {
            commit,
            rows: prepared.conformed.batch.num_rows() as u64,
            quarantined: prepared.conformed.rejected.len() as u64,
        })
    }

    fn empty_stage(&self, m: &Manifest) -> Result<Prepared> {
        let target = match &m.state().schema {
            Some(s) => s.arrow()?,
            None => std::sync::Arc::new(crate::arrow::datatypes::Schema::empty()),
        };
        let batch = RecordBatch::new_empty(target.clone());
        Ok(Prepared {
            conformed: Conformed {
                batch: batch.clone(),
                rejected: Vec::new(),
                incoming: batch,
            },
            new_schema: None,
            target,
        })
    }

    fn conform_stage(
        &self,
        m: &Manifest,
        batches: &[RecordBatch],
        quarantine: bool,
    ) -> Result<Prepared> {
        let incoming_schema = match batches.first() {
            Some(b) => b.schema(),
            None => return Err(Error::schema("nothing to append: the data has no batches")),
        };
        let incoming = concat_batches(&incoming_schema, batches)
            .map_err(|e| Error::schema(format!("batches disagree on their schema: {e}")))?;
        let state = m.state();
        let (schema, new_schema) = match &state.schema {
            Some(s) => (s.clone(), None),
            None => {
                let s =
                    StoreSchema::from_first_batch(&incoming_schema, self.time_column.as_deref())?;
                // Views declared before data must fit the schema this append fixes.
                for entry in state.views.values() {
                    ViewPlan::new(entry.def.clone(), &s).map_err(|e| {
                        Error::schema(format!(
                            "view {:?} does not fit this data: {}",
                            entry.def.name, e.message
                        ))
                    })?;
                }
                (s.clone(), Some(s))
            }
        };
        let target = schema.arrow()?;
        let conformed = conform(&incoming, &schema, &target, quarantine)?;
        Ok(Prepared {
            conformed,
            new_schema,
            target,
        })
    }

    fn write_stage(&self, p: &Prepared, commit: u64) -> Result<Record> {
        let rows = p.conformed.batch.num_rows() as u64;
        let segment = if rows > 0 {
            let bytes = parquet_io::encode(&p.target, std::slice::from_ref(&p.conformed.batch))?;
            let file = self.write_file(&format!("segments/{commit:020}.parquet"), &bytes)?;
            Some(SegmentInfo::new(file, commit, commit, rows))
        } else {
            None
        };
        let quarantine_info = if p.conformed.rejected.is_empty() {
            None
        } else {
            let q = quarantine::quarantine_batch(
                &p.conformed.incoming,
                &p.conformed.rejected,
                commit,
                &p.target,
            )?;
            let bytes = parquet_io::encode(&q.schema(), std::slice::from_ref(&q))?;
            let file = self.write_file(&format!("quarantine/{commit:020}.parquet"), &bytes)?;
            Some(QuarantineInfo {
                commit,
                file,
                rows: p.conformed.rejected.len() as u64,
            })
        };
        Ok(Record::Append {
            commit: CommitInfo {
                commit,
                rows,
                committed_at_us: now_us(),
                quarantined: p.conformed.rejected.len() as u64,
                source: None,
                end_row: 0,
            },
            schema: p.new_schema.clone(),
            segment,
            quarantine: quarantine_info,
        })
    }

    /// Post-commit hook: make the commit visible to queries, in one step for every view. A view
    /// whose fold failed is rebuilt from the master dataset (we hold the writer lock, so no
    /// commit can land meanwhile); if even that fails it is marked broken, never silently
    /// short. Nothing here can fail the append: its commit is already durable.
    fn hook_speed(&self, m: &Manifest, commit: u64, batch: &RecordBatch, schema_fixed: bool) {
        let state = m.state();
        if schema_fixed {
            // The first append: views declared before data get their plans now.
            if let Err(e) = self.rebuild_serving(m) {
                self.mark_all_broken(&state, &e);
            }
            return;
        }
        let failed = match self.serving_write() {
            Ok(mut s) => s.fold(commit, batch),
            Err(e) => {
                self.mark_all_broken(&state, &e);
                return;
            }
        };
        for (name, why) in failed {
            if let Err(e) = self.repair_view(&state, &name, &why) {
                self.mark_all_broken(&state, &e);
            }
        }
    }
}
