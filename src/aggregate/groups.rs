//! The one container every aggregate's state lives in: a flat vector with one slot per group.
//!
//! An aggregate writes only its per-group logic, as an [`Aggregate`]: the type of one group's
//! slot, how a batch folds into the slots, how two slots merge, what the slots evaluate to, and
//! how a slot is written to and read from its partial-state layout. [`Groups`] implements
//! [`GroupsAccumulator`] once on top of that: growing to new groups, merging by pairs, the
//! partial-state protocol, loading, serving, memory accounting and the scratch space of the
//! speed layer's updates (rows in runs by group, [`GroupRuns`]).
//!
//! Invariants (kept by the container, so no aggregate can break them): a container holds exactly
//! `len()` slots, every slot a group id below `len()` names; a slot is `Default` until its group
//! sees a row or a merge; merging reads the source slots without changing them.

use std::fmt::Debug;
use std::path::Path;

use crate::arrow::array::{ArrayRef, BinaryArray, RecordBatch};

use super::runs::GroupRuns;
use super::{downcast, read_partials, ByteReader, GroupsAccumulator, SketchError};
use crate::error::Result;

/// The per-group logic of one aggregate (see the module header).
pub trait Aggregate: Clone + Debug + Send + Sync + 'static {
    /// The state of one group.
    type Slot: Clone + Debug + Default + Send + Sync + 'static;

    /// Whether merging several groups into one gives a state that depends on their order
    /// (sketches that compact: quantiles, top-k). Such groups merge in key order.
    const MERGE_ORDER_MATTERS: bool = false;

    /// Fold one batch: `gids[i]` is the group of row `i` (`NO_GROUP` skips it), `input` the
    /// metric's column (None for `count()`). `slots` already holds every group of `gids`;
    /// `runs` is scratch for aggregates that fold a group's rows at once.
    fn update(
        &self,
        slots: &mut [Self::Slot],
        gids: &[u32],
        input: Option<&ArrayRef>,
        runs: &mut GroupRuns,
    ) -> Result<()>;

    /// Merge the state `src` into `dst`.
    fn merge(&self, dst: &mut Self::Slot, src: &Self::Slot) -> Result<()>;

    /// The user-visible columns of metric `name` for the groups in `order`.
    fn evaluate(
        &self,
        name: &str,
        slots: &[Self::Slot],
        order: &[u32],
    ) -> Result<Vec<(String, ArrayRef)>>;

    /// The persisted columns: the public value plus hidden `__{name}__*` state columns.
    fn state(
        &self,
        name: &str,
        slots: &[Self::Slot],
        order: &[u32],
    ) -> Result<Vec<(String, ArrayRef)>> {
        self.evaluate(name, slots, order)
    }

    /// The aggregate and its slots (one per row) of a persisted `batch`, which `state` wrote.
    fn load_state(
        &self,
        name: &str,
        batch: &RecordBatch,
        file: &Path,
    ) -> Result<(Self, Vec<Self::Slot>)>;

    /// Append a slot, lossless, in this aggregate's partial-state layout.
    fn write_slot(&self, slot: &Self::Slot, out: &mut Vec<u8>);

    /// Read a slot that `write_slot` wrote.
    fn read_slot(&self, r: &mut ByteReader<'_>) -> std::result::Result<Self::Slot, SketchError>;

    /// The served form of the slots (exact sets become exact-tagged sketches), with the
    /// aggregate that serves them.
    fn serve(&self, mut slots: Vec<Self::Slot>) -> Result<(Self, Vec<Self::Slot>)> {
        self.settle(&mut slots);
        Ok((self.clone(), slots))
    }

    /// Finish work kept pending for fast updates; never changes the logical state.
    fn settle(&self, _slots: &mut [Self::Slot]) {}

    /// Heap memory the slots own beyond their own size.
    fn heap_bytes(&self, _slots: &[Self::Slot]) -> usize {
        0
    }
}

/// The state of one aggregate for every group of a table: the aggregate's per-group logic and
/// one slot per group.
#[derive(Debug, Clone)]
pub struct Groups<A: Aggregate> {
    agg: A,
    slots: Vec<A::Slot>,
    runs: GroupRuns,
}

impl<A: Aggregate> Groups<A> {
    pub fn new(agg: A) -> Self {
        Self::with_slots(agg, Vec::new())
    }

    pub fn with_slots(agg: A, slots: Vec<A::Slot>) -> Self {
        Groups {
            agg,
            slots,
            runs: GroupRuns::default(),
        }
    }

    pub fn aggregate(&self) -> &A {
        &self.agg
    }

    pub fn slots(&self) -> &[A::Slot] {
        &self.slots
    }

    fn grow(&mut self, groups: usize) {
        if groups > self.slots.len() {
            self.slots.resize(groups, A::Slot::default());
        }
    }
}

impl<A: Aggregate> GroupsAccumulator for Groups<A> {
    fn update(&mut self, gids: &[u32], input: Option<&ArrayRef>, groups: usize) -> Result<()> {
        self.grow(groups);
        self.agg
            .update(&mut self.slots, gids, input, &mut self.runs)
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
            self.agg
                .merge(&mut self.slots[d as usize], &o.slots[s as usize])?;
        }
        Ok(())
    }

    fn evaluate(&self, name: &str, order: &[u32]) -> Result<Vec<(String, ArrayRef)>> {
        self.agg.evaluate(name, &self.slots, order)
    }

    fn state(&self, name: &str, order: &[u32]) -> Result<Vec<(String, ArrayRef)>> {
        self.agg.state(name, &self.slots, order)
    }

    fn load_state(
        &self,
        name: &str,
        batch: &RecordBatch,
        file: &Path,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let (agg, slots) = self.agg.load_state(name, batch, file)?;
        Ok(Box::new(Self::with_slots(agg, slots)))
    }

    fn fresh(&self) -> Box<dyn GroupsAccumulator> {
        Box::new(Self::new(self.agg.clone()))
    }

    fn write_partial(&self, g: usize, out: &mut Vec<u8>) -> Result<()> {
        self.agg.write_slot(&self.slots[g], out);
        Ok(())
    }

    fn load_partial(&self, values: &BinaryArray, what: &str) -> Result<Box<dyn GroupsAccumulator>> {
        let slots = read_partials(values, what, |r| self.agg.read_slot(r))?;
        Ok(Box::new(Self::with_slots(self.agg.clone(), slots)))
    }

    fn into_served(self: Box<Self>) -> Result<Box<dyn GroupsAccumulator>> {
        let (agg, slots) = self.agg.serve(self.slots)?;
        Ok(Box::new(Self::with_slots(agg, slots)))
    }

    fn settle(&mut self) {
        self.agg.settle(&mut self.slots);
    }

    fn merge_order_matters(&self) -> bool {
        A::MERGE_ORDER_MATTERS
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    fn memory_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<A::Slot>()
            + self.agg.heap_bytes(&self.slots)
            + self.runs.memory_bytes()
    }
}
