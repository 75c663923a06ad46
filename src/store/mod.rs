//! The store: a thin shell that owns the locks and sequences the stages of every operation over
//! the master dataset (`master`), the batch layer (`batch`), the speed layer (`speed`) and the
//! serving layer (`serving`).
//!
//! Locks, always taken in this order:
//! 1. `writer` (a mutex around the manifest log): every change to the store holds it from its
//!    first check to its last in-memory effect: appends, view definitions and drops, publishes,
//!    compactions. So view changes are ordered with appends, and no commit can fall between a
//!    view's replay of history and its registration. A read-only store holds it while it applies
//!    the writer's new records (its refresh); queries only `try_lock` it and otherwise serve the
//!    state they have.
//! 2. `serving` (a read-write lock): queries hold it for reading while they merge; every change
//!    to the served state takes it for writing once, after the commit is durable, so a query sees
//!    a commit whole or not at all.
//! 3. `committed`: the latest committed manifest state, an immutable `Arc` snapshot that reads of
//!    the master dataset (snapshot, commits) clone without waiting for anything.
//!
//! An append runs as explicit stages (`append.rs`): conform, write segment, commit record, then
//! post-commit hooks (speed fold, compaction, garbage collection).

mod append;
pub mod audit;
mod maintenance;
mod quarantine;
mod reader;
pub mod status;
mod views;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::arrow::array::{ArrayRef, RecordBatch, TimestampMicrosecondArray, UInt64Array};
use crate::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::catalog::{Manifest, ManifestState, Record};
use crate::error::{Error, ErrorKind, Result};
use crate::master::files::read_checked;
use crate::master::lock::WriterLock;
use crate::master::parquet_io::ParquetBytes;
use crate::master::schema::StoreSchema;
use crate::master::segments::read_slices;
use crate::serving::{Part, Query, Serving};

pub use crate::control::{check_threads, MAX_THREADS};
pub use append::AppendOutcome;
pub use maintenance::{COMPACT_RUN, GRACE, SMALL_SEGMENT_ROWS};
pub use status::StoreStatus;
pub use views::{BatchJob, ViewStatus};

#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// None: a temporary store, removed on close.
    pub path: Option<PathBuf>,
    pub read_only: bool,
    /// fsync files and directories (on by default for persistent stores).
    pub durable: bool,
    /// The event-time column (default: the only timestamp column of the first append; with
    /// several, the append is refused until one is named).
    pub time_column: Option<String>,
    /// Compact runs of small segments automatically after appends.
    pub auto_compact: bool,
    /// Fix the schema up front (before any data): views can be defined and checked at once.
    pub schema: Option<Schema>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            path: None,
            read_only: false,
            durable: true,
            time_column: None,
            auto_compact: true,
            schema: None,
        }
    }
}

pub struct Store {
    root: PathBuf,
    temporary: bool,
    read_only: bool,
    durable: bool,
    auto_compact: bool,
    time_column: Option<String>,
    /// The process that opened the store: a forked child neither writes nor cleans up.
    owner_pid: u32,
    lock: Mutex<Option<WriterLock>>,
    writer: Mutex<Manifest>,
    serving: RwLock<Serving>,
    committed: RwLock<Arc<ManifestState>>,
    closed: AtomicBool,
    garbage: maintenance::Garbage,
    /// Reads in flight that may use files a compaction or publish just replaced.
    pins: Arc<AtomicUsize>,
    /// The time split of the last finished recompute (see `control::profile`).
    last_recompute: Mutex<Option<RecomputeReport>>,
}

/// What the last recompute did and where its time went.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RecomputeReport {
    pub snapshot: u64,
    pub rows: u64,
    pub views: usize,
    pub threads: usize,
    pub seconds: f64,
    /// (phase, seconds): parallel phases in CPU-seconds over all workers, the rest wall time.
    #[serde(serialize_with = "status::phases")]
    pub phases: Vec<(String, f64)>,
}

/// Keeps replaced files on disk while a read that may use them runs (owned, so a recompute
/// split into stages can hold it between calls).
pub(crate) struct Pin(Arc<AtomicUsize>);

impl Pin {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Pin(count.clone())
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(crate) fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn temp_root() -> Result<PathBuf> {
    let base = std::env::temp_dir();
    for attempt in 0..100u32 {
        let nonce = xxhash_rust::xxh3::xxh3_64(
            format!("{}-{}-{attempt}", std::process::id(), now_us()).as_bytes(),
        );
        let p = base.join(format!("lamina-{:016x}", nonce));
        if fs::create_dir(&p).is_ok() {
            return Ok(p);
        }
    }
    Err(Error::new(
        ErrorKind::Io,
        "cannot create a temporary store directory",
    ))
}

/// Refuse to open as a store a path that is empty, a file, or a folder that holds other things
/// and is not a store: a store's cleanup must never meet a user's files.
fn check_store_dir(root: &Path) -> Result<()> {
    if root.as_os_str().is_empty() {
        return Err(Error::invalid(
            "the store path is empty: give a directory (or None for a temporary store)",
        ));
    }
    let md = match fs::metadata(root) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(root.display(), e)),
    };
    if !md.is_dir() {
        return Err(Error::invalid(format!(
            "{} is a file, not a directory: a store is a directory",
            root.display()
        )));
    }
    if Manifest::log_dir(root).is_dir() {
        return Ok(());
    }
    let mut foreign = Vec::new();
    for entry in fs::read_dir(root).map_err(|e| Error::io(root.display(), e))? {
        let entry = entry.map_err(|e| Error::io(root.display(), e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        // LOCK alone: a store whose creation was cut short before its log existed.
        if name != "LOCK" {
            foreign.push(name);
        }
    }
    if foreign.is_empty() {
        return Ok(());
    }
    foreign.sort();
    let shown: Vec<String> = foreign.iter().take(3).map(|n| format!("{n:?}")).collect();
    Err(Error::invalid(format!(
        "{} is not a lamina store: it holds {}{} and no _log folder. A store is created in an \
         empty or new directory; pass another path (lamina never writes into a folder of yours)",
        root.display(),
        shown.join(", "),
        if foreign.len() > 3 {
            format!(" and {} more", foreign.len() - 3)
        } else {
            String::new()
        }
    )))
}

impl Store {
    pub fn open(opts: OpenOptions) -> Result<Store> {
        let (root, temporary) = match &opts.path {
            Some(p) => (p.clone(), false),
            None => (temp_root()?, true),
        };
        if opts.read_only {
            if !Manifest::log_dir(&root).is_dir() {
                return Err(Error::not_found(format!(
                    "{} is not a lamina store",
                    root.display()
                )));
            }
        } else {
            check_store_dir(&root)?;
            // The root itself may be a link (`~/data -> /mnt/disk/data`); its folders may not.
            fs::create_dir_all(&root).map_err(|e| Error::io(root.display(), e))?;
        }
        crate::layout::check_no_links(&root)?;
        let lock = if opts.read_only {
            None
        } else {
            Some(WriterLock::acquire(&root)?)
        };
        let durable = opts.durable && !temporary;
        let manifest = Manifest::open(&root, durable, !opts.read_only)?;
        let state = manifest.state();
        let store = Store {
            root,
            temporary,
            read_only: opts.read_only,
            durable,
            auto_compact: opts.auto_compact,
            time_column: opts.time_column.clone(),
            owner_pid: std::process::id(),
            lock: Mutex::new(lock),
            writer: Mutex::new(manifest),
            serving: RwLock::new(Serving::default()),
            committed: RwLock::new(state),
            closed: AtomicBool::new(false),
            garbage: maintenance::Garbage::default(),
            last_recompute: Mutex::new(None),
            pins: Arc::new(AtomicUsize::new(0)),
        };
        if !store.read_only {
            store.clean_leftovers()?;
        }
        if let Some(schema) = &opts.schema {
            store.fix_schema(schema)?;
        }
        {
            let m = store.writer()?;
            store.rebuild_serving(&m)?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::new(ErrorKind::Closed, "the store is closed"));
        }
        Ok(())
    }

    /// The writer lock, for a change to the store: refused on a read-only store, a closed one,
    /// and in a process that inherited the store through `fork()`.
    fn begin_write(&self) -> Result<MutexGuard<'_, Manifest>> {
        self.check_open()?;
        if self.read_only {
            return Err(Error::new(
                ErrorKind::Lock,
                "the store was opened read-only",
            ));
        }
        if let Some(lock) = self.lock.lock()?.as_ref() {
            lock.check_owner(&self.root)?;
        }
        let m = self.writer()?;
        // Closed while we waited for the lock?
        self.check_open()?;
        Ok(m)
    }

    fn writer(&self) -> Result<MutexGuard<'_, Manifest>> {
        Ok(self.writer.lock()?)
    }
    fn serving_read(&self) -> Result<RwLockReadGuard<'_, Serving>> {
        Ok(self.serving.read()?)
    }
    fn serving_write(&self) -> Result<RwLockWriteGuard<'_, Serving>> {
        Ok(self.serving.write()?)
    }

    /// Commit a record and publish the new state to readers of `committed`.
    fn commit(&self, m: &mut Manifest, record: Record) -> Result<Arc<ManifestState>> {
        let state = m.commit(record)?;
        *self.committed.write()? = state.clone();
        Ok(state)
    }

    /// The latest committed state (a reader first picks up the writer's new records).
    pub fn state(&self) -> Result<Arc<ManifestState>> {
        self.check_open()?;
        if self.read_only {
            self.catch_up()?;
        }
        Ok(self.committed.read()?.clone())
    }

    /// `Store(schema=...)`: fix the schema before the first append (or check it is the same).
    fn fix_schema(&self, schema: &Schema) -> Result<()> {
        let wanted = StoreSchema::from_first_batch(schema, self.time_column.as_deref())?;
        let mut m = self.writer()?;
        match &m.state().schema {
            Some(s) if *s == wanted => Ok(()),
            Some(s) => Err(Error::schema(format!(
                "the store's schema is already fixed and differs: it has {}",
                s.columns
                    .iter()
                    .map(|c| format!("{} {}", c.name, c.arrow_type))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            None if self.read_only => Err(Error::new(
                ErrorKind::Lock,
                "a read-only store cannot fix the schema",
            )),
            None => {
                self.commit(&mut m, Record::SetSchema { schema: wanted })?;
                Ok(())
            }
        }
    }

    /// Additive schema evolution: `schema` keeps every column (in its type or a lossless
    /// widening) and may add columns, which older segments read as nulls. A column that a
    /// defined view reads cannot be widened (its batch view holds states of the old type):
    /// refused naming the view. On a store without a schema, this fixes it (as
    /// `Store(schema=...)`). Returns whether anything changed.
    pub fn evolve_schema(&self, schema: &Schema) -> Result<bool> {
        let mut m = self.begin_write()?;
        let state = m.state();
        let Some(old) = &state.schema else {
            drop(m);
            self.fix_schema(schema)?;
            return Ok(true);
        };
        let wanted = StoreSchema::from_first_batch(schema, Some(&old.time_column))?;
        if wanted == *old {
            return Ok(false);
        }
        let widened = old.check_evolution(&wanted)?;
        for entry in state.views.values() {
            let plan = crate::view::table::ViewPlan::new(entry.def.clone(), old)?;
            if let Some(c) = widened.iter().find(|c| plan.input_columns().contains(c)) {
                return Err(Error::schema(format!(
                    "column {c:?} cannot be widened: view {:?} reads it (its batch view holds \
                     states of the old type); drop the view first, or add a new column instead",
                    entry.def.name
                )));
            }
        }
        self.commit(&mut m, Record::EvolveSchema { schema: wanted })?;
        Ok(true)
    }

    // ---------------------------------------------------------------- master dataset

    /// Read the rows of commits in (after, upto] of `state`, only `columns` (None: all).
    pub fn read_rows(
        &self,
        state: &ManifestState,
        after: u64,
        upto: u64,
        columns: Option<&[String]>,
    ) -> Result<Vec<RecordBatch>> {
        self.read_slices_of(state, &state.slices(after, upto), columns)
    }

    /// Read `slices` of `state`'s segments (in order), only `columns` (None: all).
    pub(crate) fn read_slices_of(
        &self,
        state: &ManifestState,
        slices: &[crate::master::commits::SegmentSlice],
        columns: Option<&[String]>,
    ) -> Result<Vec<RecordBatch>> {
        let _pin = Pin::new(&self.pins);
        let expected = match &state.schema {
            Some(s) => Some(s.arrow()?),
            None => None,
        };
        read_slices(&self.root, slices, columns, expected.as_deref())
    }

    /// The master dataset as of `commit` (default: latest), as record batches and their schema.
    pub fn snapshot(&self, commit: Option<u64>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let state = self.state()?;
        let last = state.last_commit();
        let upto = commit.unwrap_or(last);
        if upto > last {
            return Err(Error::not_found(format!(
                "commit {upto} does not exist (the latest is {last})"
            )));
        }
        let schema = match &state.schema {
            Some(s) => s.arrow()?,
            None => Arc::new(Schema::empty()),
        };
        let batches = match self.read_rows(&state, 0, upto, None) {
            // A reader in another process may hold a state whose files the writer has since
            // compacted away (after the grace period): catch up and read again.
            Err(e) if self.read_only && e.kind == ErrorKind::Corruption => {
                let state = self.state()?;
                self.read_rows(&state, 0, upto, None)?
            }
            other => other?,
        };
        Ok((schema, batches))
    }

    /// What `source` has delivered to this store so far (None: nothing yet).
    pub fn source_state(&self, source: &str) -> Result<Option<crate::master::source::SourceState>> {
        Ok(self.state()?.sources.get(source).cloned())
    }

    /// One row per commit: commit, rows, committed_at, quarantined, source (the source position
    /// the commit recorded, as JSON, or null).
    pub fn commits(&self) -> Result<RecordBatch> {
        let state = self.state()?;
        let c = &state.commits;
        let schema = Arc::new(Schema::new(vec![
            Field::new("commit", DataType::UInt64, false),
            Field::new("rows", DataType::UInt64, false),
            Field::new(
                "committed_at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("quarantined", DataType::UInt64, false),
            Field::new("source", DataType::Utf8, true),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from_iter_values(c.iter().map(|x| x.commit))),
            Arc::new(UInt64Array::from_iter_values(c.iter().map(|x| x.rows))),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(c.iter().map(|x| x.committed_at_us))
                    .with_timezone("UTC"),
            ),
            Arc::new(UInt64Array::from_iter_values(
                c.iter().map(|x| x.quarantined),
            )),
            Arc::new(crate::arrow::array::StringArray::from_iter(c.iter().map(
                |x| {
                    x.source
                        .as_ref()
                        .and_then(|m| serde_json::to_string(m).ok())
                },
            ))),
        ];
        Ok(RecordBatch::try_new(schema, cols)?)
    }

    /// Rows refused under the quarantine policy: commit, row, reason, then every column as text.
    pub fn quarantined(&self) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let state = self.state()?;
        let schema = match &state.schema {
            Some(s) => quarantine::quarantine_schema(s.arrow()?.as_ref()),
            None => quarantine::quarantine_schema(&Schema::empty()),
        };
        let _pin = Pin::new(&self.pins);
        let mut out = Vec::new();
        for q in state.quarantine.iter() {
            let path = self.root.join(&q.file.file);
            let bytes = read_checked(&path, q.file.crc32, q.file.bytes)?;
            let pq = ParquetBytes::open(&path, bytes)?;
            // A file written before a schema evolution lacks the columns added since: they read
            // as nulls (every quarantine column is text).
            for b in pq.read_as(&path, None, None, None, &schema)? {
                if b.schema().fields().len() != schema.fields().len()
                    || b.columns()
                        .iter()
                        .zip(schema.fields())
                        .any(|(c, f)| c.data_type() != f.data_type())
                {
                    return Err(Error::corruption(
                        &path,
                        "its columns differ from the quarantine layout",
                    ));
                }
                out.push(RecordBatch::try_new(schema.clone(), b.columns().to_vec())?);
            }
        }
        Ok((schema, out))
    }

    // ---------------------------------------------------------------- serving layer

    pub fn query(&self, name: &str, q: &Query, part: Part) -> Result<RecordBatch> {
        self.check_open()?;
        if self.read_only {
            self.catch_up()?;
        }
        let s = self.serving_read()?;
        match s.views.get(name) {
            Some(v) => v.query(q, part),
            None => Err(self.unknown_view(name, &s)),
        }
    }

    pub fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Wait for a change in flight to finish (it checked `closed` before it started).
        let mut m = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let forked = std::process::id() != self.owner_pid;
        if !self.read_only && !forked && !self.temporary {
            // Derived data only: a failure leaves the next open to replay, as after a crash.
            let _ = self.save_speed_states(&mut m);
        }
        if !self.read_only && !forked {
            // Files replaced less than GRACE ago stay for readers in other processes; the next
            // writer to open the store deletes them once their time is up.
            self.collect_garbage();
        }
        if let Ok(mut s) = self.serving.write() {
            s.views.clear();
        }
        if let Ok(mut l) = self.lock.lock() {
            l.take();
        }
        if self.temporary && !forked {
            let _ = fs::remove_dir_all(&self.root);
        }
        Ok(())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests;
