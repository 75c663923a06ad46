//! Debugging the layers: where a served number comes from (`explain`), an answer as it stood
//! after a commit computed exactly from the master dataset (`query_as_of`, which `verify`
//! compares with the served answer), and a test hook that plants a double count.
//!
//! Nothing here changes the store's state (except the test hook): every part is read from the
//! states the layers hold, or computed through the batch path without publishing.

use std::sync::Arc;

use super::{Pin, Store};
use crate::arrow::array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use crate::arrow::datatypes::{DataType, Field, Schema};
use crate::batch;
use crate::control::{self, Control};
use crate::error::{Error, Result};
use crate::serving::answer::{answer, answer_exact, Part, Query};
use crate::view::def::Filter;
use crate::view::table::AggTable;

/// One part of a served row (see `Store::explain`).
pub struct ExplainPart {
    pub part: &'static str,
    pub first_commit: u64,
    pub last_commit: u64,
    /// Rows of the master dataset the part covers (all groups).
    pub rows: u64,
    pub note: String,
    /// The part's row for the group (metric columns as `query()` gives them).
    pub row: RecordBatch,
}

impl Store {
    /// The answer to `q` of view `name` as it stood after `commit`, computed exactly from the
    /// master dataset's snapshot at that commit through the batch path (nothing is published).
    /// The view's current definition is used.
    pub fn query_as_of(
        &self,
        name: &str,
        q: &Query,
        commit: u64,
        threads: Option<usize>,
        ctl: &Control,
    ) -> Result<RecordBatch> {
        self.check_open()?;
        if self.is_read_only() {
            self.catch_up()?;
        }
        let state = self.state()?;
        if commit > state.last_commit() {
            return Err(Error::invalid(format!(
                "as_of commit {commit} is after the latest commit ({})",
                state.last_commit()
            )));
        }
        let plan = {
            let s = self.serving_read()?;
            match s.views.get(name) {
                Some(v) => v.plan.clone(),
                None => return Err(self.unknown_view(name, &s)),
            }
        };
        self.exact_answer(&plan, q, commit, threads, ctl)
    }

    /// `verify`'s two answers of one view, from one definition: the served answer to `q` with
    /// the commit it stands at and the view's plan, read in one step, then the exact answer of
    /// that same plan at that commit. A `define()` in between cannot pair an answer of one
    /// definition with a recompute of another.
    pub fn verify_answers(
        &self,
        name: &str,
        q: &Query,
        threads: Option<usize>,
        ctl: &Control,
    ) -> Result<(RecordBatch, RecordBatch, crate::view::def::ViewDef)> {
        self.check_open()?;
        if self.is_read_only() {
            self.catch_up()?;
        }
        let (served, commit, plan) = {
            let s = self.serving_read()?;
            match s.views.get(name) {
                Some(v) => (v.query(q, Part::Served)?, s.visible, v.plan.clone()),
                None => return Err(self.unknown_view(name, &s)),
            }
        };
        crate::failpoint::hit("verify.after_served")?;
        let fresh = self.exact_answer(&plan, q, commit, threads, ctl)?;
        Ok((served, fresh, plan.def.clone()))
    }

    /// The exact answer of `plan` to `q` at `commit`, through the batch path.
    fn exact_answer(
        &self,
        plan: &crate::view::table::ViewPlan,
        q: &Query,
        commit: u64,
        threads: Option<usize>,
        ctl: &Control,
    ) -> Result<RecordBatch> {
        let state = self.state()?;
        let _pin = Pin::new(&self.pins);
        let slices = state.slices(0, commit);
        let pool = control::pool(threads)?;
        let target = state.schema.as_ref().map(|s| s.arrow()).transpose()?;
        let table = batch::recompute(
            &self.root,
            &slices,
            std::slice::from_ref(plan),
            target.as_deref(),
            &pool,
            ctl,
        )?
        .pop()
        .ok_or_else(|| Error::internal("a recompute without its table"))?;
        // Every shape (a roll-up too) merges the exact states: every value is exact.
        pool.install(|| answer_exact(plan, q, &table))
    }

    /// The served answer to `q` and the last commit it covers, read in one step.
    pub fn query_with_commit(&self, name: &str, q: &Query) -> Result<(RecordBatch, u64)> {
        self.check_open()?;
        if self.is_read_only() {
            self.catch_up()?;
        }
        let s = self.serving_read()?;
        match s.views.get(name) {
            Some(v) => Ok((v.query(q, Part::Served)?, s.visible)),
            None => Err(self.unknown_view(name, &s)),
        }
    }

    /// The parts of one served row of view `name`: the group at bucket `at` (its start, in
    /// microseconds) with every dimension given by `filter` (one value each). Parts: the batch
    /// view (if it holds the group), each speed chunk that holds it, then the served row.
    pub fn explain(&self, name: &str, at: i64, filter: Vec<Filter>) -> Result<Vec<ExplainPart>> {
        self.check_open()?;
        if self.is_read_only() {
            self.catch_up()?;
        }
        let s = self.serving_read()?;
        let v = match s.views.get(name) {
            Some(v) => v,
            None => return Err(self.unknown_view(name, &s)),
        };
        let plan = &v.plan;
        let missing: Vec<&String> = plan
            .def
            .by
            .iter()
            .filter(|d| !filter.iter().any(|f| &f.column == *d))
            .collect();
        if !missing.is_empty() {
            return Err(Error::invalid(format!(
                "explain needs one value for every dimension of view {name:?}; missing: {}",
                missing
                    .iter()
                    .map(|d| format!("{d:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        for f in &filter {
            let one = matches!(&f.predicate, crate::view::def::Predicate::In(v) if v.len() == 1);
            if !one {
                return Err(Error::invalid(format!(
                    "explain: {:?} must be one value, not a list or a range",
                    f.column
                )));
            }
        }
        if plan.grain.floor_micros(at) != at {
            return Err(Error::invalid(format!(
                "explain: {} is not the start of a {} bucket of view {name:?} (that bucket starts at {})",
                crate::time::format_micros(at),
                plan.grain.text(),
                crate::time::format_micros(plan.grain.floor_micros(at))
            )));
        }
        let q = Query {
            start: Some(at),
            end: Some(plan.grain.end_of(at)),
            grain: None,
            by: None,
            filter,
        };
        let mut parts = Vec::new();
        let state = self.state()?;
        if let Some(b) = &v.batch {
            let row = answer(plan, &q, Some(&b.table), &[])?;
            if row.num_rows() > 0 {
                parts.push(ExplainPart {
                    part: "batch",
                    first_commit: 1,
                    last_commit: b.snapshot,
                    rows: state.end_row(b.snapshot),
                    note: format!("exact: recomputed over commits 1..{}", b.snapshot),
                    row,
                });
            }
        }
        for c in &v.speed.chunks {
            let tables: Vec<&AggTable> = c.tables().collect();
            let row = answer(plan, &q, None, &tables)?;
            if row.num_rows() > 0 {
                parts.push(ExplainPart {
                    part: "speed",
                    first_commit: c.first,
                    last_commit: c.last,
                    rows: c.rows,
                    note: "folded incrementally; distinct counts, quantiles and top-k as sketches"
                        .into(),
                    row,
                });
            }
        }
        let served = v.query(&q, Part::Served)?;
        if served.num_rows() == 0 {
            return Err(Error::not_found(format!(
                "view {name:?} has no group at {} with those dimension values",
                crate::time::format_micros(at)
            )));
        }
        let approx: Vec<String> = served
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                let m = f.name().strip_suffix("_exact")?;
                let col = served.column(i);
                use crate::arrow::array::{Array, AsArray};
                let exact = col.as_boolean_opt()?;
                (exact.is_valid(0) && !exact.value(0)).then(|| m.to_string())
            })
            .collect();
        let note = if approx.is_empty() {
            "exact".to_string()
        } else {
            format!(
                "approximate ({}): batch and speed states merged through their sketches; bounds \
                 in the _lower/_upper columns",
                approx.join(", ")
            )
        };
        parts.push(ExplainPart {
            part: "served",
            first_commit: 1,
            last_commit: s.visible,
            rows: state.end_row(s.visible),
            note,
            row: served,
        });
        Ok(parts)
    }

    /// Test hook: fold the rows of the latest commit into view `name`'s speed layer a second
    /// time (a planted double count, for `verify` to find).
    #[doc(hidden)]
    pub fn plant_double_count(&self, name: &str) -> Result<()> {
        let state = self.state()?;
        let last = state.last_commit();
        if last == 0 {
            return Err(Error::invalid("no commit to fold twice"));
        }
        let rows = self.read_rows(&state, last - 1, last, None)?;
        let mut s = self.serving_write()?;
        let v = s
            .views
            .get_mut(name)
            .ok_or_else(|| Error::not_found(format!("view {name:?}")))?;
        for b in &rows {
            v.fold(last, b)?;
        }
        v.invalidate();
        Ok(())
    }
}

/// The parts as one table: `part`, `first_commit`, `last_commit`, `rows`, `note`, then the
/// metric columns (the bucket and dimension columns are those of the group asked for).
pub fn explain_table(parts: &[ExplainPart], dims: usize) -> Result<RecordBatch> {
    let first = parts
        .first()
        .ok_or_else(|| Error::internal("explain without parts"))?;
    let schema = first.row.schema();
    let metric_fields: Vec<Field> = schema.fields()[1 + dims..]
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let rows: Vec<RecordBatch> = parts.iter().map(|p| p.row.clone()).collect();
    let all = crate::arrow::compute::concat_batches(&schema, &rows)?;
    let mut fields = vec![
        Field::new("part", DataType::Utf8, false),
        Field::new("first_commit", DataType::UInt64, false),
        Field::new("last_commit", DataType::UInt64, false),
        Field::new("rows", DataType::UInt64, false),
        Field::new("note", DataType::Utf8, false),
    ];
    fields.extend(metric_fields);
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(parts.iter().map(|p| p.part))),
        Arc::new(UInt64Array::from_iter_values(
            parts.iter().map(|p| p.first_commit),
        )),
        Arc::new(UInt64Array::from_iter_values(
            parts.iter().map(|p| p.last_commit),
        )),
        Arc::new(UInt64Array::from_iter_values(parts.iter().map(|p| p.rows))),
        Arc::new(StringArray::from_iter_values(
            parts.iter().map(|p| p.note.as_str()),
        )),
    ];
    columns.extend(all.columns()[1 + dims..].iter().cloned());
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
