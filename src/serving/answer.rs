//! Answers: merge the batch view (snapshot N) with the speed chunks (commits > N) into one answer
//! shaped by the query: time range, coarser grain, a subset of dimensions, filters.

use crate::arrow::array::RecordBatch;

use crate::aggregate::Mode;
use crate::error::{Error, Result};
use crate::view::def::{check_predicate_types, Filter, Predicate};
use crate::view::filter::predicate_matches;
use crate::view::grain::Grain;
use crate::view::group::GroupKeys;
use crate::view::table::{AggTable, Origin, ViewPlan, FROM_SPEED};

/// Which layers a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Served,
    Batch,
    Speed,
}

#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Half-open range on bucket start, microseconds since the epoch (UTC).
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub grain: Option<String>,
    pub by: Option<Vec<String>>,
    pub filter: Vec<Filter>,
}

/// A query checked against its view: the grain to coarsen to (None: the view's), the result's
/// dimensions and their positions among the view's, and the filters by dimension position.
struct Shape {
    grain: Option<Grain>,
    by: Vec<String>,
    keep: Vec<usize>,
    filters: Vec<(usize, Predicate)>,
}

/// Answer `q` over `batch` and `speed` tables of the view planned by `plan`.
pub fn answer(
    plan: &ViewPlan,
    q: &Query,
    batch: Option<&AggTable>,
    speed: &[&AggTable],
) -> Result<RecordBatch> {
    answer_in(plan, q, batch, speed, Mode::Sketch)
}

/// Answer `q` over one exact (batch-layer, not yet sketched) table: every shape, roll-ups
/// included, merges exact states, so every value is exact (`as_of` answers).
pub fn answer_exact(plan: &ViewPlan, q: &Query, exact: &AggTable) -> Result<RecordBatch> {
    answer_in(plan, q, Some(exact), &[], Mode::Exact)
}

/// `answer`, merging into accumulators of `mode`.
fn answer_in(
    plan: &ViewPlan,
    q: &Query,
    batch: Option<&AggTable>,
    speed: &[&AggTable],
    mode: Mode,
) -> Result<RecordBatch> {
    let Shape {
        grain,
        by,
        keep,
        filters,
    } = shape(plan, q)?;
    let accept = |keys: &GroupKeys, g: u32| selects(q, &filters, keys, g);
    let dims = keep.iter().map(|&i| plan.dims[i]).collect();
    let out = combine(plan, dims, &keep, grain, &accept, batch, speed, mode)?;
    plan.label(out.finalize(&by, &plan.metrics)?)
}

/// Whether group `g` of `keys` lies in `q`'s time range and passes `filters` (by position in
/// `keys`' dimensions).
fn selects(q: &Query, filters: &[(usize, Predicate)], keys: &GroupKeys, g: u32) -> bool {
    let b = keys.bucket(g);
    if q.start.is_some_and(|s| b < s) || q.end.is_some_and(|e| b >= e) {
        return false;
    }
    filters
        .iter()
        .all(|(i, p)| predicate_matches(p, keys.dim(g, *i)))
}

/// The declared roll-up of `plan` that answers `q` exactly: the same grain, the same set of
/// dimensions, filters only on those dimensions. None if there is none (or `q` is the view's
/// own shape, or is malformed: the general path reports that).
pub fn rollup_for(plan: &ViewPlan, q: &Query) -> Option<usize> {
    if plan.rollups.is_empty() {
        return None;
    }
    let grain = match &q.grain {
        None => plan.grain,
        Some(text) => Grain::parse(text).ok()?.with_zone(plan.grain.zone),
    };
    let mut by: Vec<&str> = match &q.by {
        Some(b) => b.iter().map(|s| s.as_str()).collect(),
        None => plan.def.by.iter().map(|s| s.as_str()).collect(),
    };
    by.sort_unstable();
    plan.rollups.iter().position(|r| {
        let mut dims: Vec<&str> = r.plan.def.by.iter().map(|s| s.as_str()).collect();
        dims.sort_unstable();
        r.plan.grain == grain
            && dims == by
            && q.filter.iter().all(|f| r.plan.def.by.contains(&f.column))
    })
}

/// Answer `q` from declared roll-up `index` (its exact batch table `rolled`) and the view's
/// speed tables rolled up at query time.
pub fn answer_rollup(
    plan: &ViewPlan,
    index: usize,
    q: &Query,
    rolled: &AggTable,
    speed: &[&AggTable],
) -> Result<RecordBatch> {
    let r = plan
        .rollups
        .get(index)
        .ok_or_else(|| Error::internal("no such roll-up"))?;
    let Shape {
        grain: _,
        by,
        keep,
        filters,
    } = shape(plan, q)?;
    let position = |view_dim: usize| {
        r.keep
            .iter()
            .position(|&k| k == view_dim)
            .ok_or_else(|| Error::internal("roll-up lacks a dimension it was routed for"))
    };
    let keep_r: Vec<usize> = keep.iter().map(|&i| position(i)).collect::<Result<_>>()?;
    let filters_r: Vec<(usize, Predicate)> = filters
        .iter()
        .map(|(i, p)| Ok((position(*i)?, p.clone())))
        .collect::<Result<_>>()?;
    let mut out = answer_table(
        plan,
        keep.iter().map(|&i| plan.dims[i]).collect(),
        Mode::Sketch,
    );
    out.absorb_marked(
        rolled,
        &keep_r,
        None,
        &|k: &GroupKeys, g| selects(q, &filters_r, k, g),
        0,
    )?;
    let coarser = (r.plan.grain != plan.grain).then_some(r.plan.grain);
    for source in speed {
        out.absorb_marked(
            source,
            &keep,
            coarser,
            &|k: &GroupKeys, g| selects(q, &filters, k, g),
            FROM_SPEED,
        )?;
    }
    plan.label(out.finalize(&by, &plan.metrics)?)
}

/// Check `q` against `plan` (see `Shape`).
fn shape(plan: &ViewPlan, q: &Query) -> Result<Shape> {
    let view = &plan.def.name;
    let grain = match &q.grain {
        None => None,
        Some(text) => {
            // A query's grain follows the view's zone.
            let g = Grain::parse(text)?.with_zone(plan.grain.zone);
            if !plan.grain.nests_in(&g) {
                return Err(Error::invalid(format!(
                    "grain {text:?} is not a multiple of view {view:?}'s grain {:?} (its buckets \
                     would cut the view's)",
                    plan.grain.text()
                )));
            }
            (g != plan.grain).then_some(g)
        }
    };
    // A range that cuts a coarse bucket would answer part of it under the whole bucket's label.
    if let Some(g) = grain {
        for (what, bound) in [("start", q.start), ("end", q.end)] {
            if let Some(t) = bound.filter(|&t| g.floor_micros(t) != t) {
                let before = g.floor_micros(t);
                return Err(Error::invalid(format!(
                    "{what} {} cuts the {} bucket starting {}: the answer would hold part of that \
                     bucket under its whole label. Give a {what} on a {} boundary ({} or {}), or \
                     query at the view's grain",
                    crate::time::format_micros(t),
                    g.text(),
                    crate::time::format_micros(before),
                    g.text(),
                    crate::time::format_micros(before),
                    crate::time::format_micros(g.end_of(before)),
                )));
            }
        }
    }
    let by: Vec<String> = q.by.clone().unwrap_or_else(|| plan.def.by.clone());
    let mut keep = Vec::with_capacity(by.len());
    for d in &by {
        let i = plan.def.by.iter().position(|x| x == d).ok_or_else(|| {
            Error::not_found(format!(
                "{d:?} is not a dimension of view {view:?} (dimensions: {:?})",
                plan.def.by
            ))
        })?;
        if keep.contains(&i) {
            return Err(Error::invalid(format!("dimension {d:?} is named twice")));
        }
        keep.push(i);
    }
    let mut filters = Vec::with_capacity(q.filter.len());
    for f in &q.filter {
        let i = plan
            .def
            .by
            .iter()
            .position(|x| x == &f.column)
            .ok_or_else(|| {
                Error::not_found(format!(
                "cannot filter on {:?}: it is not a dimension of view {view:?} (dimensions: {:?})",
                f.column, plan.def.by
            ))
            })?;
        let class = match plan.dims[i] {
            crate::view::group::DimKind::Str => crate::master::schema::ColumnClass::Str,
            crate::view::group::DimKind::Int | crate::view::group::DimKind::UInt => {
                crate::master::schema::ColumnClass::Int
            }
            crate::view::group::DimKind::Bool => crate::master::schema::ColumnClass::Bool,
            crate::view::group::DimKind::Date => crate::master::schema::ColumnClass::Date,
        };
        let predicate = if class == crate::master::schema::ColumnClass::Date {
            crate::view::def::normalize_dates(view, &f.column, &f.predicate)?
        } else {
            f.predicate.clone()
        };
        check_predicate_types(view, &f.column, class, &predicate)?;
        filters.push((i, predicate));
    }
    if let (Some(s), Some(e)) = (q.start, q.end) {
        if e < s {
            return Err(Error::invalid("query end is before its start"));
        }
    }
    Ok(Shape {
        grain,
        by,
        keep,
        filters,
    })
}

/// An empty table of `plan`'s metrics keyed by `dims`, in accumulators of `mode`, keeping the
/// origin of each group it receives (for `<metric>_source`).
fn answer_table(plan: &ViewPlan, dims: Vec<crate::view::group::DimKind>, mode: Mode) -> AggTable {
    AggTable {
        keys: GroupKeys::new(dims),
        states: plan
            .metrics
            .iter()
            .map(|m| crate::aggregate::new_accumulator(m, mode))
            .collect(),
        origin: Origin::Marked(Vec::new()),
    }
}

/// Merge the groups `accept` selects from `batch` and `speed` into a fresh table keyed by the
/// dimensions `keep` (of kinds `dims`) and buckets coarsened to `grain`, in accumulators of
/// `mode` (`Exact` keeps exact states exact).
#[allow(clippy::too_many_arguments)]
fn combine(
    plan: &ViewPlan,
    dims: Vec<crate::view::group::DimKind>,
    keep: &[usize],
    grain: Option<Grain>,
    accept: &dyn Fn(&GroupKeys, u32) -> bool,
    batch: Option<&AggTable>,
    speed: &[&AggTable],
    mode: Mode,
) -> Result<AggTable> {
    let mut out = answer_table(plan, dims, mode);
    if let Some(b) = batch {
        out.absorb_marked(b, keep, grain, accept, 0)?;
    }
    for source in speed {
        out.absorb_marked(source, keep, grain, accept, FROM_SPEED)?;
    }
    Ok(out)
}

/// Is `q` the view at its own shape: no range, no filter, its grain, all its dimensions?
pub fn is_plain(plan: &ViewPlan, q: &Query) -> bool {
    q.start.is_none()
        && q.end.is_none()
        && q.filter.is_empty()
        && q.by.as_ref().is_none_or(|b| *b == plan.def.by)
        && q.grain.as_ref().is_none_or(|g| {
            Grain::parse(g).is_ok_and(|g| g.with_zone(plan.grain.zone) == plan.grain)
        })
}

/// Batch and speed merged at the view's own shape (the state every served query starts from),
/// settled, since it is read by every query until the next commit.
pub fn merged(plan: &ViewPlan, batch: Option<&AggTable>, speed: &[&AggTable]) -> Result<AggTable> {
    let keep: Vec<usize> = (0..plan.dims.len()).collect();
    let mut m = combine(
        plan,
        plan.dims.clone(),
        &keep,
        None,
        &|_, _| true,
        batch,
        speed,
        Mode::Sketch,
    )?;
    m.settle();
    Ok(m)
}
