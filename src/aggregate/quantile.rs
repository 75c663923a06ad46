//! `quantile`: exact in the batch layer (every value of the group), a KLL sketch in the speed
//! layer. Several quantiles of one column in a view share one state (one accumulator gives the
//! columns of each).
//!
//! Served and persisted batch states are sketches built from the exact values
//! ([`KllSketch::from_sorted`]) and tagged with the exact answers, so a group only the batch
//! layer saw stays exact; a merge with speed data or with other groups (a roll-up) goes through
//! the sketches and is marked approximate with its rank-error bounds. A sketch that never had
//! to compact holds every value, so its answers are exact too.
//!
//! Persisted columns, per quantile metric `p`: `p`, `p_exact`, `p_lower`, `p_upper` (as the
//! result has them), plus one hidden `__{first}__kll` column with the serialized sketch.
//!
//! Partial-state layout (v1), by the first byte: 0, no value; 1, every value (u64 count, then
//! the values sorted, f64 each); 2, a sketch (one byte, 1 if exact answers follow as a u64
//! count and f64 each, then the sketch's own codec).

use std::path::Path;
use std::sync::Arc;

use crate::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Float64Array, RecordBatch,
};
use crate::arrow::datatypes::Float64Type;

use super::runs::GroupRuns;
use super::sketch::kll::{exact_quantile, KllSketch};
use super::{
    binary_column, downcast, need, read_partials, state_column, ByteReader, BytesError,
    GroupsAccumulator, Layer,
};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Default)]
pub enum QuantileState {
    #[default]
    Empty,
    /// Every value (batch layer).
    Values(Vec<f64>),
    /// A sketch; `exact` holds the exact answers (one per output) when the sketch stands for
    /// one exact batch group. Shared: passing a group through a query does not copy it.
    Sketch {
        sketch: Arc<KllSketch>,
        exact: Option<Arc<[f64]>>,
    },
}

/// One output's answer: `(value, exact, lower, upper)`.
type Answer = (Option<f64>, bool, Option<f64>, Option<f64>);
/// One group's answers, one per output.
type Answers = Vec<Answer>;
/// Per `q`: `(estimate, lower, upper)`, None for no values.
pub type Estimates = Vec<Option<(f64, f64, f64)>>;

fn sketch_error(e: impl std::fmt::Display) -> Error {
    Error::invalid(e.to_string())
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    v
}

impl QuantileState {
    fn is_nothing(&self) -> bool {
        match self {
            QuantileState::Empty => true,
            QuantileState::Values(v) => v.is_empty(),
            QuantileState::Sketch { sketch, .. } => sketch.is_empty(),
        }
    }

    fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + match self {
                QuantileState::Empty => 0,
                QuantileState::Values(v) => v.capacity() * 8,
                QuantileState::Sketch { sketch, exact } => {
                    sketch.memory_bytes() + exact.as_ref().map_or(0, |e| e.len() * 8)
                }
            }
    }

    fn to_sketch(&self) -> Result<KllSketch> {
        match self {
            QuantileState::Empty => Ok(KllSketch::default()),
            QuantileState::Values(v) => Ok(KllSketch::from_sorted_default(&sorted(v))),
            QuantileState::Sketch { sketch, .. } => Ok(sketch.as_ref().clone()),
        }
    }

    fn answers(&self, qs: &[f64]) -> Answers {
        let exact_all = |vals: &[f64]| -> Answers {
            qs.iter()
                .map(|&q| {
                    let v = exact_quantile(vals, q);
                    (v, true, v, v)
                })
                .collect()
        };
        match self {
            QuantileState::Empty => vec![(None, true, None, None); qs.len()],
            QuantileState::Values(v) => exact_all(&sorted(v)),
            QuantileState::Sketch {
                exact: Some(vals), ..
            } if vals.len() == qs.len() => vals
                .iter()
                .map(|&v| (Some(v), true, Some(v), Some(v)))
                .collect(),
            QuantileState::Sketch { sketch, .. } => {
                let exact = sketch.is_exact();
                sketch
                    .quantiles(qs)
                    .into_iter()
                    .map(|a| match a {
                        None => (None, true, None, None),
                        Some((v, lo, hi)) => (Some(v), exact, Some(lo), Some(hi)),
                    })
                    .collect()
            }
        }
    }
}

fn merge_state(dst: &mut QuantileState, src: &QuantileState) -> Result<()> {
    if src.is_nothing() {
        return Ok(());
    }
    if dst.is_nothing() {
        *dst = src.clone();
        return Ok(());
    }
    match (&mut *dst, src) {
        (QuantileState::Values(a), QuantileState::Values(b)) => a.extend_from_slice(b),
        (QuantileState::Sketch { sketch, exact }, other) => {
            let b = match other {
                QuantileState::Sketch { sketch: b, .. } => std::borrow::Cow::Borrowed(b.as_ref()),
                other => std::borrow::Cow::Owned(other.to_sketch()?),
            };
            Arc::make_mut(sketch).merge(&b).map_err(sketch_error)?;
            *exact = None;
        }
        (values, other) => {
            let mut a = values.to_sketch()?;
            match other {
                QuantileState::Sketch { sketch: b, .. } => a.merge(b),
                other => a.merge(&other.to_sketch()?),
            }
            .map_err(sketch_error)?;
            *dst = QuantileState::Sketch {
                sketch: Arc::new(a),
                exact: None,
            };
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct Quantile {
    /// `(metric name, q)` of every quantile sharing this state.
    outputs: Vec<(String, f64)>,
    layer: Layer,
    groups: Vec<QuantileState>,
    /// Scratch of the speed layer's update (rows in runs by group).
    runs: GroupRuns,
}

impl Quantile {
    pub fn new(layer: Layer, outputs: Vec<(String, f64)>) -> Self {
        Self::with_groups(layer, outputs, Vec::new())
    }

    fn with_groups(layer: Layer, outputs: Vec<(String, f64)>, groups: Vec<QuantileState>) -> Self {
        Quantile {
            outputs,
            layer,
            groups,
            runs: GroupRuns::default(),
        }
    }

    fn qs(&self) -> Vec<f64> {
        self.outputs.iter().map(|(_, q)| *q).collect()
    }

    fn grow(&mut self, groups: usize) {
        if groups > self.groups.len() {
            self.groups.resize(groups, QuantileState::Empty);
        }
    }

    /// The public columns of every output for the groups in `order`.
    fn columns(&self, order: &[u32]) -> Vec<(String, ArrayRef)> {
        let qs = self.qs();
        let answers: Vec<Answers> = order
            .iter()
            .map(|&g| self.groups[g as usize].answers(&qs))
            .collect();
        let mut out = Vec::with_capacity(4 * qs.len());
        for (i, (name, _)) in self.outputs.iter().enumerate() {
            let col = |f: &dyn Fn(&Answer) -> Option<f64>| {
                Arc::new(Float64Array::from_iter(answers.iter().map(|a| f(&a[i])))) as ArrayRef
            };
            out.push((name.clone(), col(&|a| a.0)));
            out.push((
                format!("{name}_exact"),
                Arc::new(BooleanArray::from_iter(
                    answers.iter().map(|a| Some(a[i].1)),
                )) as ArrayRef,
            ));
            out.push((format!("{name}_lower"), col(&|a| a.2)));
            out.push((format!("{name}_upper"), col(&|a| a.3)));
        }
        out
    }
}

impl GroupsAccumulator for Quantile {
    fn update(&mut self, gids: &[u32], input: Option<&ArrayRef>, groups: usize) -> Result<()> {
        self.grow(groups);
        let c = need(input)?;
        let values = super::float64_values(c)?;
        if self.layer == Layer::Speed {
            // Each group's run of values goes into its sketch at once: one state check and one
            // copy-on-write check per group and batch. Rows keep their order within a group,
            // so each sketch sees what a row-by-row fold shows it.
            let nulls = values.nulls();
            self.runs
                .build(gids, groups, |row| nulls.is_none_or(|n| n.is_valid(row)));
            let v = values.values();
            for (g, rows) in self.runs.runs() {
                let st = &mut self.groups[g];
                if !matches!(st, QuantileState::Sketch { .. }) {
                    *st = QuantileState::Sketch {
                        sketch: Arc::new(st.to_sketch()?),
                        exact: None,
                    };
                }
                if let QuantileState::Sketch { sketch, exact } = st {
                    let sketch = Arc::make_mut(sketch);
                    for &r in rows {
                        sketch.update(v[r as usize]);
                    }
                    *exact = None;
                }
            }
            return Ok(());
        }
        let layer = self.layer;
        let groups = &mut self.groups;
        super::for_each_valid(gids, values.values(), values.nulls(), |g, v| {
            let st = &mut groups[g];
            match (layer, &mut *st) {
                (Layer::Batch, QuantileState::Values(vals)) => vals.push(v),
                (Layer::Batch, QuantileState::Empty) => *st = QuantileState::Values(vec![v]),
                (Layer::Speed, QuantileState::Sketch { sketch, exact }) => {
                    Arc::make_mut(sketch).update(v);
                    *exact = None;
                }
                _ => {
                    let mut sketch = match st {
                        QuantileState::Sketch { sketch, .. } => sketch.as_ref().clone(),
                        QuantileState::Values(vals) => {
                            KllSketch::from_sorted_default(&sorted(vals))
                        }
                        QuantileState::Empty => KllSketch::default(),
                    };
                    sketch.update(v);
                    *st = QuantileState::Sketch {
                        sketch: Arc::new(sketch),
                        exact: None,
                    };
                }
            }
        });
        Ok(())
    }

    fn merge(
        &mut self,
        other: &dyn GroupsAccumulator,
        pairs: &[(u32, u32)],
        groups: usize,
    ) -> Result<()> {
        let o = downcast::<Self>(other)?;
        self.grow(groups);
        for &(d, s) in pairs {
            merge_state(&mut self.groups[d as usize], &o.groups[s as usize])?;
        }
        Ok(())
    }

    fn evaluate(&self, _name: &str, order: &[u32]) -> Result<Vec<(String, ArrayRef)>> {
        Ok(self.columns(order))
    }

    fn state(&self, name: &str, order: &[u32]) -> Result<Vec<(String, ArrayRef)>> {
        let mut cols = self.columns(order);
        let sketches = binary_column(order.len(), |i, out| {
            match &self.groups[order[i] as usize] {
                // A served state's sketch is written where it is, never copied first.
                QuantileState::Sketch { sketch, .. } => sketch.write_bytes(out),
                other => other.to_sketch()?.write_bytes(out),
            }
            Ok(())
        })?;
        cols.push((format!("__{name}__kll"), sketches));
        Ok(cols)
    }

    fn load_state(
        &self,
        name: &str,
        batch: &RecordBatch,
        file: &Path,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let what = format!("__{name}__kll");
        let sk = super::binary_state_column(batch, &what, file)?;
        let mut values = Vec::with_capacity(self.outputs.len());
        let mut exact = Vec::with_capacity(self.outputs.len());
        for (out, _) in &self.outputs {
            let v = state_column(batch, out, file)?;
            let v = v
                .as_primitive_opt::<Float64Type>()
                .ok_or_else(|| Error::corruption(file, format!("{out:?}: not float64")))?
                .clone();
            let e = state_column(batch, &format!("{out}_exact"), file)?;
            let e = e
                .as_boolean_opt()
                .ok_or_else(|| Error::corruption(file, format!("{out}_exact: not boolean")))?
                .clone();
            values.push(v);
            exact.push(e);
        }
        let mut groups = Vec::with_capacity(sk.len());
        for i in 0..sk.len() {
            let sketch = KllSketch::from_bytes(sk.value(i))
                .map_err(|e| Error::corruption(file, format!("sketch of {name:?}: {e}")))?;
            let tagged = sketch.n() > 0
                && !sketch.is_exact()
                && exact.iter().all(|e| e.is_valid(i) && e.value(i));
            let answers = tagged.then(|| {
                values
                    .iter()
                    .map(|v| v.value(i))
                    .collect::<Vec<f64>>()
                    .into()
            });
            groups.push(QuantileState::Sketch {
                sketch: Arc::new(sketch),
                exact: answers,
            });
        }
        Ok(Box::new(Quantile::with_groups(
            Layer::Speed,
            self.outputs.clone(),
            groups,
        )))
    }

    fn fresh(&self) -> Box<dyn GroupsAccumulator> {
        Box::new(Self::new(self.layer, self.outputs.clone()))
    }

    fn write_partial(&self, g: usize, out: &mut Vec<u8>) -> Result<()> {
        let floats = |out: &mut Vec<u8>, v: &[f64]| {
            out.extend_from_slice(&(v.len() as u64).to_le_bytes());
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
        match &self.groups[g] {
            QuantileState::Empty => out.push(0),
            QuantileState::Values(v) => {
                out.push(1);
                floats(out, &sorted(v));
            }
            QuantileState::Sketch { sketch, exact } => {
                out.push(2);
                match exact {
                    Some(e) => {
                        out.push(1);
                        floats(out, e);
                    }
                    None => out.push(0),
                }
                sketch.write_bytes(out);
            }
        }
        Ok(())
    }

    fn load_partial(&self, values: &BinaryArray, what: &str) -> Result<Box<dyn GroupsAccumulator>> {
        let floats = |r: &mut ByteReader<'_>| -> std::result::Result<Vec<f64>, BytesError> {
            let n = r.count(8)?;
            (0..n).map(|_| r.f64()).collect()
        };
        let read = |r: &mut ByteReader<'_>| -> std::result::Result<QuantileState, BytesError> {
            Ok(match r.u8()? {
                0 => QuantileState::Empty,
                1 => QuantileState::Values(floats(r)?),
                2 => {
                    let exact = match r.u8()? {
                        0 => None,
                        1 => Some(floats(r)?.into()),
                        _ => return Err(r.error("bad exact flag")),
                    };
                    let sketch = KllSketch::from_bytes(r.rest())?;
                    QuantileState::Sketch {
                        sketch: Arc::new(sketch),
                        exact,
                    }
                }
                _ => return Err(r.error("bad tag")),
            })
        };
        let groups = read_partials(values, what, read)?;
        Ok(Box::new(Quantile::with_groups(
            self.layer,
            self.outputs.clone(),
            groups,
        )))
    }

    fn into_served(self: Box<Self>) -> Result<Box<dyn GroupsAccumulator>> {
        use rayon::prelude::*;
        let qs = self.qs();
        let outputs = self.outputs;
        let all = self.groups;
        let groups = crate::parallel::install(|| {
            all.into_par_iter()
                .map(|st| match st {
                    QuantileState::Values(v) => {
                        let v = sorted(&v);
                        let exact: Vec<f64> = qs
                            .iter()
                            .map(|&q| exact_quantile(&v, q).unwrap_or(f64::NAN))
                            .collect();
                        Ok(QuantileState::Sketch {
                            sketch: Arc::new(KllSketch::from_sorted_default(&v)),
                            exact: Some(exact.into()),
                        })
                    }
                    other => Ok(other),
                })
                .collect::<Result<Vec<_>>>()
        })?;
        Ok(Box::new(Quantile::with_groups(
            Layer::Speed,
            outputs,
            groups,
        )))
    }

    fn merge_order_matters(&self) -> bool {
        true
    }

    fn len(&self) -> usize {
        self.groups.len()
    }
    fn memory_bytes(&self) -> usize {
        self.groups.iter().map(|g| g.memory_bytes()).sum::<usize>() + self.runs.memory_bytes()
    }
}

/// Sketch `values` as the speed layer does, in `parts` contiguous pieces merged at the end (for
/// tests and benchmarks): per `q`, `(estimate, lower, upper)`, and the serialized bytes.
pub fn sketch_array(
    values: &ArrayRef,
    qs: &[f64],
    k: u16,
    parts: usize,
) -> Result<(Estimates, usize)> {
    let v = super::float64_values(values)?;
    let parts = parts.max(1);
    let chunk = v.len().div_ceil(parts).max(1);
    let mut all = KllSketch::new(k).map_err(sketch_error)?;
    for (i, piece) in v.values().chunks(chunk).enumerate() {
        let mut s = KllSketch::new(k).map_err(sketch_error)?;
        for (j, &x) in piece.iter().enumerate() {
            if v.is_valid(i * chunk + j) {
                s.update(x);
            }
        }
        all.merge(&s).map_err(sketch_error)?;
    }
    Ok((all.quantiles(qs), all.to_bytes().len()))
}
