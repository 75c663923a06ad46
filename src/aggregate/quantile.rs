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
//! The exact-then-sketch rules are `hybrid`'s; this file gives the values, the sketch and the
//! answers.
//!
//! Partial-state layout (v1), by the first byte: 0, no value; 1, every value (u64 count, then
//! the values sorted, f64 each); 2, a sketch (one byte, 1 if exact answers follow as a u64
//! count and f64 each, then the sketch's own codec).

use crate::aggregate::sketch::codec::ByteWriter;
use std::path::Path;
use std::sync::Arc;

use crate::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, RecordBatch};
use crate::arrow::datatypes::Float64Type;

use super::groups::Aggregate;
use super::hybrid::{serve_all, Hybrid, HybridKind, Mode};
use super::runs::GroupRuns;
use super::sketch::kll::{exact_quantile, KllSketch};
use super::{binary_column, need, state_column, ByteReader, SketchError};
use crate::error::{Error, Result};

/// The quantile state of one group.
pub type QuantileState = Hybrid<Values>;

/// The quantile kind of [`Hybrid`]: every value, KLL sketches, and the exact answer of each
/// `q` as a served sketch's tag.
#[derive(Debug, Clone)]
pub struct Values {
    qs: Vec<f64>,
}

/// One output's answer: `(value, exact, lower, upper)`.
type Answer = (Option<f64>, bool, Option<f64>, Option<f64>);
/// One group's answers, one per output.
type Answers = Vec<Answer>;
/// Per `q`: `(estimate, lower, upper)`, None for no values.
pub type Estimates = Vec<Option<(f64, f64, f64)>>;

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    v
}

fn write_floats(out: &mut Vec<u8>, v: &[f64]) {
    out.put(v.len() as u64);
    for x in v {
        out.put(x);
    }
}

fn read_floats(r: &mut ByteReader<'_>) -> std::result::Result<Vec<f64>, SketchError> {
    let n = r.count(8)?;
    (0..n).map(|_| r.f64()).collect()
}

impl HybridKind for Values {
    type Exact = Vec<f64>;
    type Sketch = KllSketch;
    type Tag = Arc<[f64]>;
    const SKETCH_TAG: u8 = 2;

    fn exact_is_empty(e: &Vec<f64>) -> bool {
        e.is_empty()
    }
    fn sketch_is_empty(s: &KllSketch, _: Option<&Arc<[f64]>>) -> bool {
        s.is_empty()
    }
    fn union(&self, a: &mut Vec<f64>, b: &Vec<f64>) {
        a.extend_from_slice(b)
    }
    fn sketch_of(&self, e: Option<&Vec<f64>>) -> Result<KllSketch> {
        Ok(match e {
            Some(v) => KllSketch::from_sorted_default(&sorted(v)),
            None => KllSketch::default(),
        })
    }
    fn merge_sketch(&self, a: &mut KllSketch, b: &KllSketch) -> Result<()> {
        a.merge(b).map_err(Error::from)
    }
    fn serve(&self, v: Vec<f64>) -> Result<(KllSketch, Arc<[f64]>)> {
        let v = sorted(&v);
        let exact: Vec<f64> = self
            .qs
            .iter()
            .map(|&q| exact_quantile(&v, q).unwrap_or(f64::NAN))
            .collect();
        Ok((KllSketch::from_sorted_default(&v), exact.into()))
    }
    fn exact_bytes(e: &Vec<f64>) -> usize {
        e.capacity() * 8
    }
    fn sketch_bytes(s: &KllSketch, tag: Option<&Arc<[f64]>>) -> usize {
        s.memory_bytes() + tag.map_or(0, |e| e.len() * 8)
    }
    fn write_exact(e: &Vec<f64>, out: &mut Vec<u8>) {
        out.push(1);
        write_floats(out, &sorted(e));
    }
    fn read_exact(
        &self,
        tag: u8,
        r: &mut ByteReader<'_>,
    ) -> Option<std::result::Result<Vec<f64>, SketchError>> {
        (tag == 1).then(|| read_floats(r))
    }
    fn write_tag(t: &Arc<[f64]>, out: &mut Vec<u8>) {
        write_floats(out, t)
    }
    fn read_tag(r: &mut ByteReader<'_>) -> std::result::Result<Arc<[f64]>, SketchError> {
        Ok(read_floats(r)?.into())
    }
    fn write_sketch(s: &KllSketch, out: &mut Vec<u8>) {
        s.write_bytes(out)
    }
    fn read_sketch(&self, bytes: &[u8]) -> std::result::Result<KllSketch, SketchError> {
        KllSketch::from_bytes(bytes)
    }
}

/// Every output's answer for one group.
fn answers(st: &QuantileState, qs: &[f64]) -> Answers {
    let exact_all = |vals: &[f64]| -> Answers {
        qs.iter()
            .map(|&q| {
                let v = exact_quantile(vals, q);
                (v, true, v, v)
            })
            .collect()
    };
    match st {
        Hybrid::Empty => vec![(None, true, None, None); qs.len()],
        Hybrid::Exact(v) => exact_all(&sorted(v)),
        Hybrid::Sketch {
            exact: Some(vals), ..
        } if vals.len() == qs.len() => vals
            .iter()
            .map(|&v| (Some(v), true, Some(v), Some(v)))
            .collect(),
        Hybrid::Sketch { sketch, .. } => {
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

/// The quantiles of one column: every value or sketches, by mode.
#[derive(Debug, Clone)]
pub struct Quantile {
    /// `(metric name, q)` of every quantile sharing this state.
    outputs: Vec<(String, f64)>,
    kind: Values,
    mode: Mode,
}

impl Quantile {
    pub fn new(mode: Mode, outputs: Vec<(String, f64)>) -> Self {
        let qs = outputs.iter().map(|(_, q)| *q).collect();
        Quantile {
            outputs,
            kind: Values { qs },
            mode,
        }
    }

    fn in_mode(&self, mode: Mode) -> Self {
        Quantile {
            mode,
            ..self.clone()
        }
    }

    /// The public columns of every output for the groups in `order`.
    fn columns(&self, slots: &[QuantileState], order: &[u32]) -> Vec<(String, ArrayRef)> {
        let qs = &self.kind.qs;
        let answers: Vec<Answers> = order
            .iter()
            .map(|&g| answers(&slots[g as usize], qs))
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

impl Aggregate for Quantile {
    type Slot = QuantileState;
    const MERGE_ORDER_MATTERS: bool = true;

    fn update(
        &self,
        slots: &mut [QuantileState],
        gids: &[u32],
        input: Option<&ArrayRef>,
        runs: &mut GroupRuns,
    ) -> Result<()> {
        let values = super::float64_values(need(input)?)?;
        let v = values.values();
        if self.mode == Mode::Sketch {
            // Each group's run of values goes into its sketch at once: one state check and one
            // copy-on-write check per group and batch. Rows keep their order within a group,
            // so each sketch sees what a row-by-row fold shows it.
            let nulls = values.nulls();
            runs.build(gids, slots.len(), |row| {
                nulls.is_none_or(|n| n.is_valid(row))
            });
            for (g, rows) in runs.runs() {
                let sketch = slots[g].sketch_mut(&self.kind)?;
                for &r in rows {
                    sketch.update(v[r as usize]);
                }
            }
            return Ok(());
        }
        let mut failed = None;
        super::for_each_valid(gids, v, values.nulls(), |g, x| {
            let st = &mut slots[g];
            match st {
                Hybrid::Exact(vals) => vals.push(x),
                Hybrid::Empty => *st = Hybrid::Exact(vec![x]),
                Hybrid::Sketch { .. } => match st.sketch_mut(&self.kind) {
                    Ok(sketch) => sketch.update(x),
                    Err(e) => failed = Some(e),
                },
            }
        });
        failed.map_or(Ok(()), Err)
    }

    fn merge(&self, dst: &mut QuantileState, src: &QuantileState) -> Result<()> {
        dst.merge(src, &self.kind)
    }

    fn evaluate(
        &self,
        _name: &str,
        slots: &[QuantileState],
        order: &[u32],
    ) -> Result<Vec<(String, ArrayRef)>> {
        Ok(self.columns(slots, order))
    }

    fn state(
        &self,
        name: &str,
        slots: &[QuantileState],
        order: &[u32],
    ) -> Result<Vec<(String, ArrayRef)>> {
        let mut cols = self.columns(slots, order);
        let sketches = binary_column(order.len(), |i, out| {
            // A served state's sketch is written where it is, never copied first.
            slots[order[i] as usize]
                .sketch_ref(&self.kind)?
                .write_bytes(out);
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
    ) -> Result<(Self, Vec<QuantileState>)> {
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
        let mut slots = Vec::with_capacity(sk.len());
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
            slots.push(Hybrid::Sketch {
                sketch: Arc::new(sketch),
                exact: answers,
            });
        }
        Ok((self.in_mode(Mode::Sketch), slots))
    }

    fn write_slot(&self, st: &QuantileState, out: &mut Vec<u8>) {
        st.write(out)
    }

    fn read_slot(&self, r: &mut ByteReader<'_>) -> std::result::Result<QuantileState, SketchError> {
        Hybrid::read(&self.kind, r)
    }

    fn serve(&self, slots: Vec<QuantileState>) -> Result<(Self, Vec<QuantileState>)> {
        Ok((self.in_mode(Mode::Sketch), serve_all(&self.kind, slots)?))
    }

    fn heap_bytes(&self, slots: &[QuantileState]) -> usize {
        slots.iter().map(|s| s.heap_bytes()).sum()
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
    let mut all = KllSketch::new(k).map_err(Error::from)?;
    for (i, piece) in v.values().chunks(chunk).enumerate() {
        let mut s = KllSketch::new(k).map_err(Error::from)?;
        for (j, &x) in piece.iter().enumerate() {
            if v.is_valid(i * chunk + j) {
                s.update(x);
            }
        }
        all.merge(&s).map_err(Error::from)?;
    }
    Ok((all.quantiles(qs), all.to_bytes().len()))
}
