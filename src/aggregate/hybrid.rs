//! The exact-then-sketch state of one group, for the aggregates that are exact in the batch
//! layer and sketched in the speed layer (`count_distinct`, `quantile`).
//!
//! [`Mode::Exact`] folds rows into an exact state (every distinct key, every value);
//! [`Mode::Sketch`] folds them into a sketch. Serving turns an exact state into a sketch tagged
//! with its exact answer, so a group only the batch layer saw stays exact; any merge that
//! involves a sketch goes through the sketches and drops the tag (approximate, with bounds).
//! An empty state ("nothing": no key, no value) merges as the identity on either side, so it
//! never costs the other side its exactness.
//!
//! The rules live here once; a [`HybridKind`] gives only what differs: the exact and sketch
//! types, how each merges, how an exact state becomes a sketch, and their codecs.
//!
//! Partial-state layout, by the first byte: 0, nothing; the kind's exact tags (`write_exact`);
//! `SKETCH_TAG`, a sketch (one byte, 1 if the exact answer follows in the kind's tag codec,
//! then the sketch's own codec).

use std::borrow::Cow;
use std::fmt::Debug;
use std::sync::Arc;

use super::{ByteReader, SketchError};
use crate::error::{Error, Result};

/// How a state folds rows: exactly (the batch layer) or into sketches (the speed layer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Exact,
    Sketch,
}

/// What one exact-then-sketch aggregate keeps (see the module header).
pub trait HybridKind: Clone + Debug + Send + Sync + 'static {
    /// Every key or value of a group.
    type Exact: Clone + Debug + Send + Sync + 'static;
    type Sketch: Clone + Debug + Send + Sync + 'static;
    /// The exact answer a served sketch carries.
    type Tag: Clone + Debug + Send + Sync + 'static;
    /// The first byte of a sketch in the partial layout.
    const SKETCH_TAG: u8;

    fn exact_is_empty(e: &Self::Exact) -> bool;
    fn sketch_is_empty(s: &Self::Sketch, tag: Option<&Self::Tag>) -> bool;
    fn union(&self, a: &mut Self::Exact, b: &Self::Exact);
    /// The sketch of an exact state (None: of nothing).
    fn sketch_of(&self, e: Option<&Self::Exact>) -> Result<Self::Sketch>;
    fn merge_sketch(&self, a: &mut Self::Sketch, b: &Self::Sketch) -> Result<()>;
    /// The served form of an exact state: its sketch and its exact answer.
    fn serve(&self, e: Self::Exact) -> Result<(Self::Sketch, Self::Tag)>;

    fn exact_bytes(e: &Self::Exact) -> usize;
    fn sketch_bytes(s: &Self::Sketch, tag: Option<&Self::Tag>) -> usize;

    /// Write an exact state, its first byte included (neither 0 nor `SKETCH_TAG`).
    fn write_exact(e: &Self::Exact, out: &mut Vec<u8>);
    /// Read the exact state whose first byte was `tag`; None if `tag` is no exact tag.
    fn read_exact(
        &self,
        tag: u8,
        r: &mut ByteReader<'_>,
    ) -> Option<std::result::Result<Self::Exact, SketchError>>;
    fn write_tag(t: &Self::Tag, out: &mut Vec<u8>);
    fn read_tag(r: &mut ByteReader<'_>) -> std::result::Result<Self::Tag, SketchError>;
    fn write_sketch(s: &Self::Sketch, out: &mut Vec<u8>);
    fn read_sketch(&self, bytes: &[u8]) -> std::result::Result<Self::Sketch, SketchError>;
}

/// One group's state.
#[derive(Debug, Clone, Default)]
pub enum Hybrid<K: HybridKind> {
    #[default]
    Empty,
    Exact(K::Exact),
    /// A sketch; `exact` is the exact answer when the sketch stands for one exact batch group.
    /// Shared (copy on write): a query that passes a group through unmerged does not copy it.
    Sketch {
        sketch: Arc<K::Sketch>,
        exact: Option<K::Tag>,
    },
}

impl<K: HybridKind> Hybrid<K> {
    /// No key or value at all: merging it changes nothing.
    pub fn is_nothing(&self) -> bool {
        match self {
            Hybrid::Empty => true,
            Hybrid::Exact(e) => K::exact_is_empty(e),
            Hybrid::Sketch { sketch, exact } => K::sketch_is_empty(sketch, exact.as_ref()),
        }
    }

    /// The state as a sketch: a sketch state's own, borrowed; any other state's, built.
    pub fn sketch_ref(&self, kind: &K) -> Result<Cow<'_, K::Sketch>> {
        Ok(match self {
            Hybrid::Empty => Cow::Owned(kind.sketch_of(None)?),
            Hybrid::Exact(e) => Cow::Owned(kind.sketch_of(Some(e))?),
            Hybrid::Sketch { sketch, .. } => Cow::Borrowed(sketch.as_ref()),
        })
    }

    /// The state as a sketch of its own (before a merge that changes the kind).
    pub fn to_sketch(&self, kind: &K) -> Result<K::Sketch> {
        Ok(self.sketch_ref(kind)?.into_owned())
    }

    /// The sketch to fold more rows into: an exact state becomes its sketch first, and the
    /// exact tag is dropped (the state no longer stands for one batch group). One state check
    /// and one copy-on-write check per call, so the speed layer calls it once per run.
    pub fn sketch_mut(&mut self, kind: &K) -> Result<&mut K::Sketch> {
        if !matches!(self, Hybrid::Sketch { .. }) {
            *self = Hybrid::Sketch {
                sketch: Arc::new(self.to_sketch(kind)?),
                exact: None,
            };
        }
        if let Hybrid::Sketch { sketch, exact } = self {
            *exact = None;
            return Ok(Arc::make_mut(sketch));
        }
        Err(Error::internal("a hybrid state that is not a sketch"))
    }

    /// Merge `src` into this state.
    pub fn merge(&mut self, src: &Self, kind: &K) -> Result<()> {
        if src.is_nothing() {
            return Ok(());
        }
        if self.is_nothing() {
            *self = src.clone();
            return Ok(());
        }
        match (&mut *self, src) {
            (Hybrid::Exact(a), Hybrid::Exact(b)) => kind.union(a, b),
            (Hybrid::Sketch { sketch: a, exact }, src) => {
                kind.merge_sketch(Arc::make_mut(a), src.sketch_ref(kind)?.as_ref())?;
                *exact = None;
            }
            (dst, src) => {
                let mut a = dst.to_sketch(kind)?;
                kind.merge_sketch(&mut a, src.sketch_ref(kind)?.as_ref())?;
                *dst = Hybrid::Sketch {
                    sketch: Arc::new(a),
                    exact: None,
                };
            }
        }
        Ok(())
    }

    /// The served form: an exact state becomes its tagged sketch.
    pub fn served(self, kind: &K) -> Result<Self> {
        Ok(match self {
            Hybrid::Exact(e) => {
                let (sketch, tag) = kind.serve(e)?;
                Hybrid::Sketch {
                    sketch: Arc::new(sketch),
                    exact: Some(tag),
                }
            }
            other => other,
        })
    }

    /// Heap memory the state owns.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Hybrid::Empty => 0,
            Hybrid::Exact(e) => K::exact_bytes(e),
            Hybrid::Sketch { sketch, exact } => K::sketch_bytes(sketch, exact.as_ref()),
        }
    }

    /// Append the state in the partial layout of the module header.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Hybrid::Empty => out.push(0),
            Hybrid::Exact(e) => K::write_exact(e, out),
            Hybrid::Sketch { sketch, exact } => {
                out.push(K::SKETCH_TAG);
                match exact {
                    Some(t) => {
                        out.push(1);
                        K::write_tag(t, out);
                    }
                    None => out.push(0),
                }
                K::write_sketch(sketch, out);
            }
        }
    }

    /// Read a state that `write` wrote.
    pub fn read(kind: &K, r: &mut ByteReader<'_>) -> std::result::Result<Self, SketchError> {
        let tag = r.u8()?;
        if tag == 0 {
            return Ok(Hybrid::Empty);
        }
        if tag == K::SKETCH_TAG {
            let exact = match r.u8()? {
                0 => None,
                1 => Some(K::read_tag(r)?),
                _ => return Err(r.error("bad exact flag")),
            };
            let sketch = kind.read_sketch(r.rest())?;
            return Ok(Hybrid::Sketch {
                sketch: Arc::new(sketch),
                exact,
            });
        }
        match kind.read_exact(tag, r) {
            Some(e) => Ok(Hybrid::Exact(e?)),
            None => Err(r.error("bad tag")),
        }
    }
}

/// Serve every state, in parallel (exact states are sketched one group at a time).
pub fn serve_all<K: HybridKind>(kind: &K, all: Vec<Hybrid<K>>) -> Result<Vec<Hybrid<K>>> {
    use rayon::prelude::*;
    crate::control::parallel::install(|| {
        all.into_par_iter()
            .map(|st| st.served(kind))
            .collect::<Result<Vec<_>>>()
    })
}
