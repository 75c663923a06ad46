//! A read-only store follows the writer process: it applies the writer's new manifest records
//! incrementally (work proportional to the new commits, not to history), builds the changes
//! outside the serving lock, and swaps them in in one step. Refreshes are serialized by the
//! writer mutex (a reader never writes); a query that finds a refresh running serves the state
//! it has rather than wait, so totals never go backwards and a view never vanishes.

use std::collections::{BTreeMap, BTreeSet};

use super::Store;
use crate::catalog::{Record, Refresh};
use crate::error::Result;
use crate::serving::ServedView;
use crate::view::table::ViewPlan;

impl Store {
    /// Pick up the writer's new commits (read-only stores).
    pub(crate) fn catch_up(&self) -> Result<()> {
        let mut m = match self.writer.try_lock() {
            Ok(m) => m,
            Err(std::sync::TryLockError::WouldBlock) => return Ok(()),
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        };
        let before = m.state();
        let records = match m.refresh()? {
            Refresh::Unchanged => return Ok(()),
            Refresh::Reloaded => return self.rebuild_serving(&m),
            Refresh::Records(r) => r,
        };
        let state = m.state();
        // Views to load whole (defined, redefined or published anew) and views dropped.
        let mut reload = BTreeSet::new();
        let mut dropped = BTreeSet::new();
        let mut schema_fixed = before.schema.is_none() && state.schema.is_some();
        for r in &records {
            match r {
                Record::Define { view } => {
                    reload.insert(view.name.clone());
                    dropped.remove(&view.name);
                }
                Record::Publish { name, .. } => {
                    reload.insert(name.clone());
                }
                Record::Drop { name } => {
                    reload.remove(name);
                    dropped.insert(name.clone());
                }
                Record::SetSchema { .. } => schema_fixed = true,
                // Added or widened columns no served view reads (views reading a widened
                // column refuse the evolution): nothing to reload.
                Record::EvolveSchema { .. } => {}
                // A saved speed state changes nothing a running reader serves.
                Record::Append { .. } | Record::Compact { .. } | Record::SaveSpeed { .. } => {}
            }
        }
        if schema_fixed {
            return self.rebuild_serving(&m);
        }
        let mut loaded: BTreeMap<String, ServedView> = BTreeMap::new();
        // Views declared before data have nothing to serve until the first append.
        let reload: BTreeSet<String> = if state.schema.is_some() {
            reload
        } else {
            BTreeSet::new()
        };
        for name in &reload {
            if let (Some(entry), Some(schema)) = (state.views.get(name), &state.schema) {
                let view = match self.load_view(&state, entry) {
                    Ok(v) => v,
                    Err(e) => ServedView::unavailable(
                        crate::view::table::ViewPlan::new(entry.def.clone(), schema)?,
                        &e,
                    ),
                };
                loaded.insert(name.clone(), view);
            }
        }
        // The new commits' rows, once, for the views that are only folded.
        let (first, last) = (before.last_commit() + 1, state.last_commit());
        let (folded, cols): (Vec<String>, Vec<String>) = {
            let s = self.serving_read()?;
            let folded: Vec<String> = s
                .views
                .keys()
                .filter(|n| !reload.contains(*n) && !dropped.contains(*n))
                .cloned()
                .collect();
            let cols = ViewPlan::input_columns_of(
                folded
                    .iter()
                    .filter_map(|n| s.views.get(n).map(|v| &v.plan)),
            );
            (folded, cols)
        };
        let rows = if last >= first && !folded.is_empty() {
            self.read_rows(&state, first - 1, last, Some(&cols))?
        } else {
            Vec::new()
        };
        crate::failpoint::hit("reader.before_swap")?;
        let mut s = self.serving_write()?;
        for name in &dropped {
            s.views.remove(name);
        }
        if last >= first {
            for name in &folded {
                if let Some(v) = s.views.get_mut(name) {
                    v.invalidate();
                    if let Err(e) = v.speed.update_range(&v.plan, first, last, &rows) {
                        v.broken = Some(format!(
                            "its speed state could not follow the writer: {}",
                            e.message
                        ));
                    }
                }
            }
        }
        for (name, v) in loaded {
            s.views.insert(name, v);
        }
        s.visible = last;
        s.version = state.version;
        drop(s);
        *self.committed.write()? = state;
        Ok(())
    }
}
