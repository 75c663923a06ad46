//! A store: the master dataset on disk plus the batch, speed and serving layers of its views.
//!
//! Locking: `writer` serialises everything that commits to the manifest (appends, definitions,
//! publishes, compactions); `serving` guards what queries read. A query holds the serving read
//! lock only while merging, and an append or publish changes the serving state under its write
//! lock in one step, so a query sees either the state before or after a commit, never a mix.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt64Array,
};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::batch::{self, Control};
use crate::error::{Error, ErrorKind, IoContext, Result};
use crate::schema::{conform, StoreSchema};
use crate::serve::{self, Part, Query};
use crate::speed::SpeedView;
use crate::storage::files::{ensure_dir, read_checked, write_atomic, TMP_PREFIX};
use crate::storage::lock::WriterLock;
use crate::storage::manifest::{
    CommitInfo, FileRef, Manifest, ManifestState, Published, QuarantineInfo, Record, SegmentInfo,
};
use crate::storage::parquet_io::{self, ParquetBytes};
use crate::table::{AggTable, ViewPlan};
use crate::view::ViewDef;

/// Segments with fewer rows than this are "small"; a run of `COMPACT_RUN` of them is rewritten
/// into one segment after an append, so many tiny appends do not mean many tiny files. Appends
/// of this size or more are left alone: rewriting them would cost the append path more than
/// reading them costs snapshots.
pub const SMALL_SEGMENT_ROWS: u64 = 16 * 1024;
pub const COMPACT_RUN: usize = 32;

#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// None: a temporary store, removed on close.
    pub path: Option<PathBuf>,
    pub read_only: bool,
    /// fsync files and directories (on by default for persistent stores).
    pub durable: bool,
    /// The event-time column (default: the first timestamp column of the first append).
    pub time_column: Option<String>,
    /// Compact runs of small segments automatically after appends.
    pub auto_compact: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            path: None,
            read_only: false,
            durable: true,
            time_column: None,
            auto_compact: true,
        }
    }
}

/// The published batch view of one view, loaded for serving.
pub struct BatchView {
    pub snapshot: u64,
    pub fingerprint: String,
    pub published_at_us: i64,
    pub table: AggTable,
}

pub struct ViewState {
    pub plan: ViewPlan,
    pub batch: Option<Arc<BatchView>>,
    pub speed: SpeedView,
    /// The merge of batch and speed at the view's own shape, and the finalized plain answer,
    /// kept until the next commit or publish: repeated queries do not redo sketch merges.
    cache: Mutex<ServedCache>,
}

#[derive(Default)]
struct ServedCache {
    merged: Option<Arc<AggTable>>,
    plain: Option<RecordBatch>,
    /// Answers to whole-view rollups (other grains or dimensions), by query.
    rollups: Vec<(String, RecordBatch)>,
}

/// How many rollup answers a view keeps between commits.
const ROLLUP_CACHE: usize = 16;

impl ViewState {
    fn new(plan: ViewPlan, batch: Option<Arc<BatchView>>, speed: SpeedView) -> ViewState {
        ViewState {
            plan,
            batch,
            speed,
            cache: Mutex::new(ServedCache::default()),
        }
    }

    fn invalidate(&self) {
        if let Ok(mut c) = self.cache.lock() {
            *c = ServedCache::default();
        }
    }

    /// The served answer, through the cache.
    fn served(&self, q: &Query) -> Result<RecordBatch> {
        let plain = serve::is_plain(&self.plan, q);
        let whole = q.start.is_none() && q.end.is_none() && q.filter.is_empty();
        let mut cache = self.cache.lock().map_err(|_| lock_poisoned())?;
        if plain {
            if let Some(b) = &cache.plain {
                return Ok(b.clone());
            }
        } else if whole {
            let key = format!("{q:?}");
            if let Some((_, b)) = cache.rollups.iter().find(|(k, _)| *k == key) {
                return Ok(b.clone());
            }
        }
        if cache.merged.is_none() && (plain || whole) {
            let speed: Vec<&AggTable> = self.speed.chunks.iter().flat_map(|c| c.tables()).collect();
            let merged = serve::merged(&self.plan, self.batch.as_ref().map(|b| &b.table), &speed)?;
            cache.merged = Some(Arc::new(merged));
        }
        let answer = match &cache.merged {
            Some(m) => serve::answer(&self.plan, q, Some(m), &[])?,
            None => {
                // A narrow query (time range, filter) merges only the groups it selects.
                drop(cache);
                let speed: Vec<&AggTable> =
                    self.speed.chunks.iter().flat_map(|c| c.tables()).collect();
                return serve::answer(&self.plan, q, self.batch.as_ref().map(|b| &b.table), &speed);
            }
        };
        if plain {
            cache.plain = Some(answer.clone());
        } else if whole {
            if cache.rollups.len() >= ROLLUP_CACHE {
                cache.rollups.remove(0);
            }
            cache.rollups.push((format!("{q:?}"), answer.clone()));
        }
        Ok(answer)
    }

    fn covered(&self) -> u64 {
        self.batch.as_ref().map(|b| b.snapshot).unwrap_or(0)
    }
}

#[derive(Default)]
struct Serving {
    /// The last commit whose events the views include.
    visible: u64,
    views: BTreeMap<String, ViewState>,
}

/// What an append did.
#[derive(Debug, Clone)]
pub struct AppendOutcome {
    pub commit: u64,
    pub rows: u64,
    pub quarantined: u64,
}

pub struct Store {
    root: PathBuf,
    temporary: bool,
    read_only: bool,
    durable: bool,
    auto_compact: bool,
    time_column: Option<String>,
    lock: Mutex<Option<WriterLock>>,
    writer: Mutex<Manifest>,
    serving: RwLock<Serving>,
    closed: AtomicBool,
    /// Files replaced by compaction or a newer batch view. They are deleted only once no read
    /// of this process can still use them (`pins`) and other processes' readers had `GRACE` to
    /// move on.
    garbage: Mutex<Vec<(PathBuf, Instant)>>,
    pins: AtomicUsize,
}

/// How long a replaced file stays for readers in other processes.
const GRACE: Duration = Duration::from_secs(60);

/// Keeps replaced files on disk while a read that may use them runs.
struct Pin<'a>(&'a AtomicUsize);

impl<'a> Pin<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Pin(count)
    }
}

impl Drop for Pin<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn now_us() -> i64 {
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

fn lock_poisoned() -> Error {
    Error::invalid("internal: a lock was poisoned by a panic in another thread")
}

impl Store {
    pub fn open(opts: OpenOptions) -> Result<Store> {
        let (root, temporary) = match &opts.path {
            Some(p) => (p.clone(), false),
            None => (temp_root()?, true),
        };
        if opts.read_only {
            if !Manifest::log_dir(&root).exists() {
                return Err(Error::not_found(format!(
                    "{} is not a lamina store",
                    root.display()
                )));
            }
        } else {
            ensure_dir(&root)?;
        }
        let lock = if opts.read_only {
            None
        } else {
            Some(WriterLock::acquire(&root)?)
        };
        let durable = opts.durable && !temporary;
        let manifest = Manifest::open(&root, durable, !opts.read_only)?;
        let store = Store {
            root,
            temporary,
            read_only: opts.read_only,
            durable,
            auto_compact: opts.auto_compact,
            time_column: opts.time_column.clone(),
            lock: Mutex::new(lock),
            writer: Mutex::new(manifest),
            serving: RwLock::new(Serving::default()),
            closed: AtomicBool::new(false),
            garbage: Mutex::new(Vec::new()),
            pins: AtomicUsize::new(0),
        };
        if !store.read_only {
            store.clean_leftovers()?;
        }
        store.rebuild_serving()?;
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

    fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        if self.read_only {
            return Err(Error::new(
                ErrorKind::Lock,
                "the store was opened read-only",
            ));
        }
        Ok(())
    }

    fn writer(&self) -> Result<MutexGuard<'_, Manifest>> {
        self.writer.lock().map_err(|_| lock_poisoned())
    }
    fn serving_read(&self) -> Result<RwLockReadGuard<'_, Serving>> {
        self.serving.read().map_err(|_| lock_poisoned())
    }
    fn serving_write(&self) -> Result<RwLockWriteGuard<'_, Serving>> {
        self.serving.write().map_err(|_| lock_poisoned())
    }

    /// A consistent copy of the manifest state (for readers, picking up new commits first).
    pub fn state(&self) -> Result<ManifestState> {
        self.check_open()?;
        let mut m = self.writer()?;
        if self.read_only && m.refresh()? {
            drop(m);
            self.rebuild_serving()?;
            return Ok(self.writer()?.state.clone());
        }
        Ok(m.state.clone())
    }

    /// Remove files no committed record references (crash leftovers) and temporary files.
    fn clean_leftovers(&self) -> Result<()> {
        let m = self.writer()?;
        let live: std::collections::HashSet<PathBuf> = m
            .state
            .live_files()
            .iter()
            .map(|f| self.root.join(f))
            .collect();
        for dir in ["segments", "quarantine", "views"] {
            let d = self.root.join(dir);
            if !d.exists() {
                continue;
            }
            let mut stack = vec![d];
            while let Some(d) = stack.pop() {
                for entry in fs::read_dir(&d).at(&d)?.flatten() {
                    let p = entry.path();
                    if p.is_dir() {
                        stack.push(p);
                        continue;
                    }
                    let name = entry.file_name().to_string_lossy().to_string();
                    if name.starts_with(TMP_PREFIX) || !live.contains(&p) {
                        let _ = fs::remove_file(&p);
                    }
                }
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- master dataset

    /// Append batches as one commit. All-or-nothing: either every row (or, with `quarantine`,
    /// every good row plus the rejected rows with reasons) is committed, or nothing is.
    pub fn append(&self, batches: &[RecordBatch], quarantine: bool) -> Result<AppendOutcome> {
        self.check_writable()?;
        let mut m = self.writer()?;
        let incoming_schema = match batches.first() {
            Some(b) => b.schema(),
            None => return Err(Error::schema("nothing to append: the data has no batches")),
        };
        let incoming = concat_batches(&incoming_schema, batches)
            .map_err(|e| Error::schema(format!("batches disagree on their schema: {e}")))?;
        let (schema, new_schema) = match &m.state.schema {
            Some(s) => (s.clone(), None),
            None => {
                let s =
                    StoreSchema::from_first_batch(&incoming_schema, self.time_column.as_deref())?;
                (s.clone(), Some(s))
            }
        };
        let target = schema.arrow()?;
        let conformed = conform(&incoming, &schema, &target, quarantine)?;
        let commit = m.state.last_commit() + 1;
        let rows = conformed.batch.num_rows() as u64;

        let segment = if rows > 0 {
            let bytes = parquet_io::encode(&target, std::slice::from_ref(&conformed.batch))?;
            let rel = format!("segments/{commit:020}.parquet");
            let file = self.write_file(&rel, &bytes)?;
            Some(SegmentInfo {
                file,
                commits: vec![(commit, rows)],
            })
        } else {
            None
        };
        let quarantine_info = if conformed.rejected.is_empty() {
            None
        } else {
            let q = quarantine_batch(&incoming, &conformed.rejected, commit, &target)?;
            let bytes = parquet_io::encode(&q.schema(), std::slice::from_ref(&q))?;
            let rel = format!("quarantine/{commit:020}.parquet");
            let file = self.write_file(&rel, &bytes)?;
            Some(QuarantineInfo {
                commit,
                file,
                rows: conformed.rejected.len() as u64,
            })
        };
        let info = CommitInfo {
            commit,
            rows,
            committed_at_us: now_us(),
            quarantined: conformed.rejected.len() as u64,
        };
        m.commit(Record::Append {
            commit: info,
            schema: new_schema,
            segment,
            quarantine: quarantine_info,
        })?;
        // Acknowledged: the commit is durable. Now make it visible to queries.
        self.speed_apply(commit, &conformed.batch);
        if self.auto_compact {
            // Compaction never changes content; a failure here leaves the store as it was.
            let _ = self.compact_locked(&mut m, false);
        }
        self.collect_garbage(false);
        Ok(AppendOutcome {
            commit,
            rows,
            quarantined: conformed.rejected.len() as u64,
        })
    }

    /// A file no committed state references any more: delete it later (see `garbage`).
    fn retire(&self, rel: &str) {
        if let Ok(mut g) = self.garbage.lock() {
            g.push((self.root.join(rel), Instant::now()));
        }
    }

    /// Delete retired files nobody can still read. `all`: regardless of age (on close).
    fn collect_garbage(&self, all: bool) {
        if self.pins.load(Ordering::Acquire) > 0 {
            return;
        }
        if let Ok(mut g) = self.garbage.lock() {
            g.retain(|(path, since)| {
                if all || since.elapsed() >= GRACE {
                    let _ = fs::remove_file(path);
                    false
                } else {
                    true
                }
            });
        }
    }

    fn write_file(&self, rel: &str, bytes: &[u8]) -> Result<FileRef> {
        let path = self.root.join(rel);
        if let Some(dir) = path.parent() {
            ensure_dir(dir)?;
        }
        write_atomic(&path, bytes, self.durable)?;
        Ok(FileRef {
            file: rel.to_string(),
            bytes: bytes.len() as u64,
            crc32: crc32fast::hash(bytes),
        })
    }

    /// Fold one commit into every view's speed state and make it visible, in one step under the
    /// serving lock: a query sees all of a commit or none of it. Views update in parallel.
    fn speed_apply(&self, commit: u64, batch: &RecordBatch) {
        use rayon::prelude::*;
        let Ok(mut s) = self.serving_write() else {
            return;
        };
        let mut views: Vec<(&String, &mut ViewState)> = s.views.iter_mut().collect();
        let broken: Vec<String> = views
            .par_iter_mut()
            .filter_map(|(name, v)| {
                v.invalidate();
                let ViewState { plan, speed, .. } = &mut **v;
                speed
                    .update(plan, commit, batch)
                    .err()
                    .map(|_| (*name).clone())
            })
            .collect();
        s.visible = commit;
        drop(s);
        for name in broken {
            // Should never happen; if it does, rebuild from the master dataset so nothing is lost.
            let _ = self.rebuild_speed(&name);
        }
    }

    /// Read the rows of commits in (after, upto], only `columns` (None: all), in commit order.
    pub fn read_rows(
        &self,
        state: &ManifestState,
        after: u64,
        upto: u64,
        columns: Option<&[String]>,
    ) -> Result<Vec<RecordBatch>> {
        let _pin = Pin::new(&self.pins);
        let mut out = Vec::new();
        let expected = match &state.schema {
            Some(s) => Some(s.arrow()?),
            None => None,
        };
        let segs: Vec<&SegmentInfo> = state
            .segments
            .iter()
            .filter(|s| s.last_commit() > after && s.first_commit() <= upto)
            .collect();
        let results: Vec<Result<Vec<RecordBatch>>> = {
            use rayon::prelude::*;
            segs.par_iter()
                .map(|seg| {
                    let path = self.root.join(&seg.file.file);
                    let bytes = read_checked(&path, seg.file.crc32, seg.file.bytes)?;
                    let pq = ParquetBytes::open(&path, bytes)?;
                    pq.verify(&path, seg.rows(), expected.as_deref())?;
                    let skip = seg.rows_upto(after) as usize;
                    let end = seg.rows_upto(upto) as usize;
                    let batches = pq.read(&path, columns, None, Some(end))?;
                    Ok(slice_batches(batches, skip, end))
                })
                .collect()
        };
        for r in results {
            out.extend(r?);
        }
        Ok(out)
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
            // compacted away: catch up with the manifest and read again.
            Err(e) if self.read_only && e.kind == ErrorKind::Corruption => {
                let state = self.state()?;
                self.read_rows(&state, 0, upto, None)?
            }
            other => other?,
        };
        Ok((schema, batches))
    }

    /// One row per commit: commit, rows, committed_at, quarantined.
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
        ];
        Ok(RecordBatch::try_new(schema, cols)?)
    }

    /// Rows refused under the quarantine policy: commit, row, reason, then every incoming column as text.
    pub fn quarantined(&self) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let state = self.state()?;
        let schema = match &state.schema {
            Some(s) => quarantine_schema(s.arrow()?.as_ref()),
            None => quarantine_schema(&Schema::empty()),
        };
        let mut out = Vec::new();
        for q in &state.quarantine {
            let path = self.root.join(&q.file.file);
            let bytes = read_checked(&path, q.file.crc32, q.file.bytes)?;
            let pq = ParquetBytes::open(&path, bytes)?;
            for b in pq.read(&path, None, None, None)? {
                if b.schema().fields() != schema.fields() {
                    return Err(Error::corruption(
                        &path,
                        "its columns differ from the quarantine layout",
                    ));
                }
                out.push(b);
            }
        }
        Ok((schema, out))
    }

    /// Rewrite runs of small segments into larger ones. Content and commit numbers are unchanged,
    /// so snapshots (time travel) read the same rows. Returns how many segments were merged away.
    pub fn compact(&self) -> Result<usize> {
        self.check_writable()?;
        let mut m = self.writer()?;
        let merged = self.compact_locked(&mut m, true)?;
        self.collect_garbage(false);
        Ok(merged)
    }

    fn compact_locked(&self, m: &mut Manifest, all: bool) -> Result<usize> {
        let segs = &m.state.segments;
        // Find the runs of consecutive small segments.
        let mut runs: Vec<(usize, usize)> = Vec::new();
        let mut i = 0;
        while i < segs.len() {
            if segs[i].rows() >= SMALL_SEGMENT_ROWS {
                i += 1;
                continue;
            }
            let start = i;
            let mut rows = 0;
            while i < segs.len()
                && segs[i].rows() < SMALL_SEGMENT_ROWS
                && rows < 4 * SMALL_SEGMENT_ROWS
            {
                rows += segs[i].rows();
                i += 1;
            }
            if i - start >= 2 {
                runs.push((start, i));
            }
        }
        if !all {
            // After an append: only the trailing run, once it is long enough or holds as many
            // rows as one compacted segment may (a run is cut there).
            runs.retain(|&(s, e)| {
                let rows: u64 = segs[s..e].iter().map(|x| x.rows()).sum();
                e == segs.len() && (e - s >= COMPACT_RUN || rows >= 4 * SMALL_SEGMENT_ROWS)
            });
        }
        let mut merged = 0;
        for (s, e) in runs.into_iter().rev() {
            let group: Vec<SegmentInfo> = m.state.segments[s..e].to_vec();
            let schema = m
                .state
                .schema
                .as_ref()
                .ok_or_else(|| Error::invalid("no schema"))?
                .arrow()?;
            let mut batches = Vec::new();
            let mut commits = Vec::new();
            for seg in &group {
                let path = self.root.join(&seg.file.file);
                let bytes = read_checked(&path, seg.file.crc32, seg.file.bytes)?;
                batches.extend(ParquetBytes::open(&path, bytes)?.read(&path, None, None, None)?);
                commits.extend(seg.commits.iter().copied());
            }
            let bytes = parquet_io::encode(&schema, &batches)?;
            let rel = format!(
                "segments/{:020}-{:020}.parquet",
                group[0].first_commit(),
                group[group.len() - 1].last_commit()
            );
            let file = self.write_file(&rel, &bytes)?;
            let removed: Vec<String> = group.iter().map(|g| g.file.file.clone()).collect();
            m.commit(Record::Compact {
                removed: removed.clone(),
                added: SegmentInfo { file, commits },
            })?;
            for r in removed {
                self.retire(&r);
            }
            merged += e - s;
        }
        Ok(merged)
    }

    // ---------------------------------------------------------------- views

    /// Define (or redefine) a view. A changed definition invalidates its batch view: until the
    /// next recompute the speed layer serves the whole history.
    pub fn define(&self, def: ViewDef) -> Result<bool> {
        self.check_writable()?;
        let mut m = self.writer()?;
        let schema = m.state.schema.clone().ok_or_else(|| {
            Error::schema("append data before defining views: the first append fixes the schema")
        })?;
        let plan = ViewPlan::new(def.clone(), &schema)?;
        if let Some(v) = m.state.views.get(&def.name) {
            if v.fingerprint == plan.fingerprint && v.def == def {
                return Ok(false);
            }
        }
        m.commit(Record::Define { view: def.clone() })?;
        drop(m);
        self.load_view(&def.name)?;
        Ok(true)
    }

    pub fn drop_view(&self, name: &str) -> Result<()> {
        self.check_writable()?;
        let mut m = self.writer()?;
        let entry = m
            .state
            .views
            .get(name)
            .cloned()
            .ok_or_else(|| self.unknown_view(name, &m.state))?;
        m.commit(Record::Drop {
            name: name.to_string(),
        })?;
        self.serving_write()?.views.remove(name);
        if let Some(p) = entry.published {
            self.retire(&p.file.file);
        }
        Ok(())
    }

    fn unknown_view(&self, name: &str, state: &ManifestState) -> Error {
        Error::not_found(format!(
            "no view named {name:?} (views: {})",
            if state.views.is_empty() {
                "none defined".to_string()
            } else {
                state.views.keys().cloned().collect::<Vec<_>>().join(", ")
            }
        ))
    }

    pub fn view_defs(&self) -> Result<Vec<ViewDef>> {
        Ok(self
            .state()?
            .views
            .values()
            .map(|v| v.def.clone())
            .collect())
    }

    /// Load the published batch view and replay later commits into the speed layer.
    fn load_view(&self, name: &str) -> Result<()> {
        let state = self.writer()?.state.clone();
        let entry = state
            .views
            .get(name)
            .ok_or_else(|| self.unknown_view(name, &state))?;
        let schema = state
            .schema
            .clone()
            .ok_or_else(|| Error::schema("no schema"))?;
        let plan = ViewPlan::new(entry.def.clone(), &schema)?;
        let batch = match &entry.published {
            Some(p) if p.fingerprint == plan.fingerprint => {
                Some(Arc::new(self.load_batch_view(&plan, p)?))
            }
            _ => None,
        };
        let covered = batch.as_ref().map(|b| b.snapshot).unwrap_or(0);
        let speed = self.replay(&plan, &state, covered)?;
        let mut s = self.serving_write()?;
        s.visible = state.last_commit();
        s.views
            .insert(name.to_string(), ViewState::new(plan, batch, speed));
        Ok(())
    }

    fn load_batch_view(&self, plan: &ViewPlan, p: &Published) -> Result<BatchView> {
        let path = self.root.join(&p.file.file);
        let bytes = read_checked(&path, p.file.crc32, p.file.bytes)?;
        let pq = ParquetBytes::open(&path, bytes)?;
        let batches = pq.read(&path, None, None, None)?;
        let table = AggTable::from_state_batches(plan, &batches, &path)?;
        Ok(BatchView {
            snapshot: p.snapshot,
            fingerprint: p.fingerprint.clone(),
            published_at_us: p.published_at_us,
            table,
        })
    }

    /// The speed state of commits in (after, latest], rebuilt from the master dataset.
    fn replay(&self, plan: &ViewPlan, state: &ManifestState, after: u64) -> Result<SpeedView> {
        let mut speed = SpeedView::default();
        let last = state.last_commit();
        if last <= after {
            return Ok(speed);
        }
        let cols = plan.input_columns();
        let batches = self.read_rows(state, after, last, Some(&cols))?;
        // One chunk for the whole replayed range, filled like live appends fill it.
        for b in &batches {
            speed.update(plan, after + 1, b)?;
        }
        if let Some(c) = speed.chunks.last_mut() {
            c.last = last;
        }
        Ok(speed)
    }

    fn rebuild_speed(&self, name: &str) -> Result<()> {
        let writer = self.writer()?; // no commit may land while replaying
        let state = writer.state.clone();
        let (plan, covered) = {
            let s = self.serving_read()?;
            let v = s
                .views
                .get(name)
                .ok_or_else(|| self.unknown_view(name, &state))?;
            (v.plan.clone(), v.covered())
        };
        let speed = self.replay(&plan, &state, covered)?;
        let mut s = self.serving_write()?;
        if let Some(v) = s.views.get_mut(name) {
            v.speed = speed;
            v.invalidate();
        }
        Ok(())
    }

    /// Rebuild every view's serving state from disk (on open, and for readers after a refresh).
    fn rebuild_serving(&self) -> Result<()> {
        let names: Vec<String> = self.writer()?.state.views.keys().cloned().collect();
        self.serving_write()?.views.clear();
        for n in names {
            self.load_view(&n)?;
        }
        let last = self.writer()?.state.last_commit();
        self.serving_write()?.visible = last;
        Ok(())
    }

    // ---------------------------------------------------------------- batch layer

    /// Recompute every view (or those named) from scratch over the latest snapshot and publish
    /// the results atomically. Returns the snapshot the new batch views cover.
    pub fn recompute(
        &self,
        views: Option<&[String]>,
        threads: Option<usize>,
        ctl: &Control,
    ) -> Result<u64> {
        self.check_writable()?;
        // 1. Pin a snapshot and seal the speed chunks at it, in one step with respect to appends.
        let (state, plans) = {
            let m = self.writer()?;
            let state = m.state.clone();
            let mut s = self.serving_write()?;
            let mut plans = Vec::new();
            for (name, v) in s.views.iter_mut() {
                if views.is_none_or(|w| w.contains(name)) {
                    v.speed.seal();
                    plans.push(v.plan.clone());
                }
            }
            if let Some(w) = views {
                for name in w {
                    if !s.views.contains_key(name) {
                        return Err(self.unknown_view(name, &state));
                    }
                }
            }
            (state, plans)
        };
        let snapshot = state.last_commit();
        if plans.is_empty() {
            return Ok(snapshot);
        }
        // 2. Compute, holding no lock: appends and queries go on. The pin keeps the snapshot's
        // segments on disk even if an append compacts them meanwhile.
        let _pin = Pin::new(&self.pins);
        let tables = batch::recompute(&self.root, &state.segments, snapshot, &plans, threads, ctl)?;
        // 3. Persist and publish each view.
        for (plan, table) in plans.iter().zip(tables) {
            ctl.check()?;
            self.publish(plan, snapshot, table)?;
        }
        Ok(snapshot)
    }

    /// Is a result for (`plan`, `snapshot`) already superseded (view redefined, dropped, or a
    /// batch view at this snapshot or later already published)?
    fn is_stale(&self, plan: &ViewPlan, snapshot: u64) -> Result<bool> {
        let m = self.writer()?;
        Ok(match m.state.views.get(&plan.def.name) {
            Some(v) if v.fingerprint == plan.fingerprint => v
                .published
                .as_ref()
                .is_some_and(|p| p.snapshot >= snapshot && p.fingerprint == plan.fingerprint),
            _ => true,
        })
    }

    fn publish(&self, plan: &ViewPlan, snapshot: u64, table: AggTable) -> Result<()> {
        let name = &plan.def.name;
        if self.is_stale(plan, snapshot)? {
            return Ok(()); // checked again under the lock below: publishing may race
        }
        // Serving holds exactly what is persisted (and what a restart loads): exact-tagged sketches.
        let served = table.into_served()?;
        let state_batch = served.state_batch(&plan.def.by, &plan.metrics)?;
        let bytes = parquet_io::encode(&state_batch.schema(), std::slice::from_ref(&state_batch))?;
        let mut m = self.writer()?;
        let current = match m.state.views.get(name) {
            Some(v) if v.fingerprint == plan.fingerprint => v.published.clone(),
            _ => return Ok(()), // redefined or dropped meanwhile: this result is stale
        };
        if current
            .as_ref()
            .is_some_and(|p| p.snapshot >= snapshot && p.fingerprint == plan.fingerprint)
        {
            return Ok(()); // a newer recompute already published
        }
        let rel = format!(
            "views/{}/{snapshot:020}-{}.parquet",
            sanitize(name),
            plan.fingerprint
        );
        let file = self.write_file(&rel, &bytes)?;
        let published = Published {
            snapshot,
            fingerprint: plan.fingerprint.clone(),
            file,
            rows: state_batch.num_rows() as u64,
            published_at_us: now_us(),
        };
        m.commit(Record::Publish {
            name: name.clone(),
            published: published.clone(),
        })?;
        let state = m.state.clone();
        // Swap: the batch view at `snapshot` replaces the speed state of commits <= snapshot.
        {
            let mut s = self.serving_write()?;
            if let Some(v) = s.views.get_mut(name) {
                v.batch = Some(Arc::new(BatchView {
                    snapshot,
                    fingerprint: plan.fingerprint.clone(),
                    published_at_us: published.published_at_us,
                    table: served,
                }));
                v.invalidate();
                if !v.speed.drop_upto(snapshot) {
                    v.speed = self.replay(plan, &state, snapshot)?;
                }
            }
        }
        if let Some(old) = current {
            if old.file.file != rel {
                self.retire(&old.file.file);
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- serving layer

    pub fn query(&self, name: &str, q: &Query, part: Part) -> Result<RecordBatch> {
        self.check_open()?;
        if self.read_only {
            self.state()?; // pick up new commits
        }
        let s = self.serving_read()?;
        let v = match s.views.get(name) {
            Some(v) => v,
            None => {
                drop(s);
                let state = self.writer()?.state.clone();
                return Err(self.unknown_view(name, &state));
            }
        };
        if part == Part::Served {
            return v.served(q);
        }
        let batch = if part == Part::Speed {
            None
        } else {
            v.batch.as_ref().map(|b| &b.table)
        };
        let speed: Vec<&AggTable> = if part == Part::Batch {
            Vec::new()
        } else {
            v.speed.chunks.iter().flat_map(|c| c.tables()).collect()
        };
        serve::answer(&v.plan, q, batch, &speed)
    }

    /// Per-view status rows.
    pub fn status(&self) -> Result<(ManifestState, Vec<ViewStatus>)> {
        let state = self.state()?;
        let s = self.serving_read()?;
        let now = now_us();
        let views = s
            .views
            .iter()
            .map(|(name, v)| ViewStatus {
                name: name.clone(),
                fingerprint: v.plan.fingerprint.clone(),
                covered: v.covered(),
                pending_commits: s.visible.saturating_sub(v.covered()),
                batch_groups: v
                    .batch
                    .as_ref()
                    .map(|b| b.table.keys.len() as u64)
                    .unwrap_or(0),
                speed_rows: v.speed.rows(),
                speed_groups: v.speed.groups() as u64,
                batch_age_s: v
                    .batch
                    .as_ref()
                    .map(|b| (now - b.published_at_us) as f64 / 1e6),
                batch_memory_bytes: v
                    .batch
                    .as_ref()
                    .map(|b| b.table.memory_bytes() as u64)
                    .unwrap_or(0),
                speed_memory_bytes: v.speed.memory_bytes() as u64,
            })
            .collect();
        Ok((state, views))
    }

    pub fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        if !self.read_only {
            self.collect_garbage(true);
        }
        if let Ok(mut s) = self.serving.write() {
            s.views.clear();
        }
        if let Ok(mut l) = self.lock.lock() {
            l.take();
        }
        if self.temporary {
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

#[derive(Debug, Clone)]
pub struct ViewStatus {
    pub name: String,
    pub fingerprint: String,
    pub covered: u64,
    pub pending_commits: u64,
    pub batch_groups: u64,
    pub speed_rows: u64,
    pub speed_groups: u64,
    pub batch_age_s: Option<f64>,
    pub batch_memory_bytes: u64,
    pub speed_memory_bytes: u64,
}

fn sanitize(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{clean}-{:08x}",
        xxhash_rust::xxh3::xxh3_64(name.as_bytes()) as u32
    )
}

/// Keep rows [skip, end) of a sequence of batches.
fn slice_batches(batches: Vec<RecordBatch>, skip: usize, end: usize) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    for b in batches {
        let n = b.num_rows();
        let (s, e) = (skip.max(pos), end.min(pos + n));
        if s < e {
            out.push(if s == pos && e == pos + n {
                b
            } else {
                b.slice(s - pos, e - s)
            });
        }
        pos += n;
    }
    out
}

/// The layout of quarantined rows: commit, row and reason, then every store column as text (in
/// the store's order, whatever order the refused append had), so all appends' rows stack.
fn quarantine_schema(store: &Schema) -> SchemaRef {
    let mut fields = vec![
        Field::new("commit", DataType::Int64, false),
        Field::new("row", DataType::Int64, false),
        Field::new("reason", DataType::Utf8, false),
    ];
    fields.extend(
        store
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), DataType::Utf8, true)),
    );
    Arc::new(Schema::new(fields))
}

/// Rejected rows as text, with commit, row and reason: readable whatever their original types.
fn quarantine_batch(
    incoming: &RecordBatch,
    rejected: &[(usize, String)],
    commit: u64,
    store: &Schema,
) -> Result<RecordBatch> {
    let idx = arrow::array::UInt32Array::from_iter_values(rejected.iter().map(|(r, _)| *r as u32));
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![commit as i64; rejected.len()])),
        Arc::new(Int64Array::from_iter_values(
            rejected.iter().map(|(r, _)| *r as i64),
        )),
        Arc::new(StringArray::from_iter_values(
            rejected.iter().map(|(_, why)| why.as_str()),
        )),
    ];
    for f in store.fields() {
        // `conform` accepted the append column-wise, so every store column is present.
        let c = incoming.column_by_name(f.name()).ok_or_else(|| {
            Error::schema(format!("column {:?} is missing from the data", f.name()))
        })?;
        let taken = arrow::compute::take(c.as_ref(), &idx, None)?;
        let text = arrow::compute::cast(&taken, &DataType::Utf8)
            .unwrap_or_else(|_| Arc::new(StringArray::from(vec![None::<&str>; rejected.len()])));
        cols.push(text);
    }
    Ok(RecordBatch::try_new(quarantine_schema(store), cols)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::AggSpec;
    use arrow::array::{AsArray, Float64Array, TimestampMicrosecondArray};
    use arrow::datatypes::Int64Type;

    fn events(n: usize, offset: i64) -> RecordBatch {
        let hour = 3_600_000_000i64;
        let ts: TimestampMicrosecondArray = (0..n as i64)
            .map(|i| Some(offset + (i * 7919 % 48) * hour))
            .collect();
        let country: StringArray = (0..n).map(|i| Some(["DE", "FR", "日本"][i % 3])).collect();
        let user: Int64Array = (0..n as i64)
            .map(|i| if i % 10 == 0 { None } else { Some(i % 97) })
            .collect();
        let amount: Float64Array = (0..n).map(|i| Some(i as f64 * 0.1)).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
            Field::new("country", DataType::Utf8, true),
            Field::new("user", DataType::Int64, true),
            Field::new("amount", DataType::Float64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(ts),
                Arc::new(country),
                Arc::new(user),
                Arc::new(amount),
            ],
        )
        .unwrap()
    }

    fn view() -> ViewDef {
        ViewDef {
            name: "v".into(),
            time: "ts".into(),
            grain: "1h".into(),
            by: vec!["country".into()],
            metrics: vec![
                ("n".into(), AggSpec::Count { column: None }),
                (
                    "s".into(),
                    AggSpec::Sum {
                        column: "amount".into(),
                    },
                ),
                (
                    "u".into(),
                    AggSpec::CountDistinct {
                        column: "user".into(),
                    },
                ),
            ],
            filter: vec![],
            precision: 12,
        }
    }

    fn total(b: &RecordBatch, col: &str) -> i64 {
        b.column_by_name(col)
            .unwrap()
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .sum()
    }

    #[test]
    fn append_snapshot_time_travel_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let opts = OpenOptions {
            path: Some(dir.path().join("s")),
            ..Default::default()
        };
        {
            let s = Store::open(opts.clone()).unwrap();
            assert_eq!(s.append(&[events(100, 0)], false).unwrap().commit, 1);
            assert_eq!(s.append(&[events(50, 0)], false).unwrap().commit, 2);
            let (_, b) = s.snapshot(Some(1)).unwrap();
            assert_eq!(b.iter().map(|b| b.num_rows()).sum::<usize>(), 100);
            assert!(s.snapshot(Some(3)).is_err());
        }
        let s = Store::open(opts.clone()).unwrap();
        let (_, b) = s.snapshot(None).unwrap();
        assert_eq!(b.iter().map(|b| b.num_rows()).sum::<usize>(), 150);
        // A second writer in the same process is refused by the lock.
        assert_eq!(
            Store::open(opts).err().map(|e| e.kind),
            Some(ErrorKind::Lock)
        );
    }

    #[test]
    fn served_equals_batch_after_recompute_and_counts_each_event_once() {
        let s = Store::open(OpenOptions::default()).unwrap();
        s.append(&[events(1000, 0)], false).unwrap();
        s.define(view()).unwrap();
        let q = Query::default();
        let speed_only = s.query("v", &q, Part::Served).unwrap();
        assert_eq!(total(&speed_only, "n"), 1000);
        s.recompute(None, Some(2), &Control::default()).unwrap();
        assert_eq!(s.query("v", &q, Part::Speed).unwrap().num_rows(), 0);
        s.append(&[events(10, 0)], false).unwrap();
        let served = s.query("v", &q, Part::Served).unwrap();
        assert_eq!(total(&served, "n"), 1010);
        let exact = served
            .column_by_name("u_exact")
            .unwrap()
            .as_boolean()
            .clone();
        assert!(
            exact.iter().any(|e| e == Some(false)),
            "groups touched by the speed layer are approximate"
        );
        s.recompute(None, Some(1), &Control::default()).unwrap();
        let again = s.query("v", &q, Part::Served).unwrap();
        assert_eq!(total(&again, "n"), 1010);
        assert!(again
            .column_by_name("u_exact")
            .unwrap()
            .as_boolean()
            .iter()
            .all(|e| e == Some(true)));
    }

    #[test]
    fn bad_appends_write_nothing() {
        let s = Store::open(OpenOptions::default()).unwrap();
        s.append(&[events(10, 0)], false).unwrap();
        let other = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)])),
            vec![Arc::new(Int64Array::from(vec![1]))],
        )
        .unwrap();
        let err = s.append(&[other], false).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Schema);
        assert!(err.message.contains("\"x\""), "{}", err.message);
        assert_eq!(s.commits().unwrap().num_rows(), 1);
    }

    #[test]
    fn cancelled_recompute_publishes_nothing() {
        let s = Store::open(OpenOptions::default()).unwrap();
        s.append(&[events(100, 0)], false).unwrap();
        s.define(view()).unwrap();
        let ctl = Control::default();
        ctl.cancel.store(true, Ordering::Relaxed);
        assert_eq!(
            s.recompute(None, None, &ctl).unwrap_err().kind,
            ErrorKind::Interrupted
        );
        assert_eq!(
            s.query("v", &Query::default(), Part::Batch)
                .unwrap()
                .num_rows(),
            0
        );
        assert_eq!(
            total(&s.query("v", &Query::default(), Part::Served).unwrap(), "n"),
            100
        );
    }
}
