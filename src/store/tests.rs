//! Tests of the store shell: every stage and guarantee, through the public Rust API.

use super::*;
use crate::aggregate::AggSpec;
use crate::arrow::array::{AsArray, Float64Array, TimestampMicrosecondArray};
use crate::arrow::array::{Int64Array, StringArray};
use crate::arrow::datatypes::Int64Type;
use crate::control::Control;
use crate::view::def::ViewDef;

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
        crate::view::testutil::ts_field(),
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
        tz: None,
        rollups: vec![],
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

fn opts(dir: &std::path::Path) -> OpenOptions {
    OpenOptions {
        path: Some(dir.to_path_buf()),
        durable: false,
        ..Default::default()
    }
}

#[test]
fn views_defined_before_data_are_checked_by_the_first_append() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(opts(&dir.path().join("s"))).unwrap();
    assert!(s.define(view()).unwrap());
    let mut bad = view();
    bad.name = "bad".into();
    bad.by = vec!["nope".into()];
    assert!(s.define(bad).unwrap());
    let err = s.append(&[events(10, 0)], false).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Schema);
    assert!(
        err.message.contains("\"bad\"") && err.message.contains("nope"),
        "{}",
        err.message
    );
    assert_eq!(s.commits().unwrap().num_rows(), 0, "nothing was written");
    s.drop_view("bad").unwrap();
    s.append(&[events(10, 0)], false).unwrap();
    assert_eq!(
        total(&s.query("v", &Query::default(), Part::Served).unwrap(), "n"),
        10
    );
}

#[test]
fn a_schema_fixed_up_front_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let o = OpenOptions {
        schema: Some(events(1, 0).schema().as_ref().clone()),
        ..opts(&dir.path().join("s"))
    };
    {
        let s = Store::open(o.clone()).unwrap();
        s.define(view()).unwrap();
        assert_eq!(
            s.query("v", &Query::default(), Part::Served)
                .unwrap()
                .num_rows(),
            0
        );
    }
    let s = Store::open(opts(&dir.path().join("s"))).unwrap();
    assert!(s.state().unwrap().schema.is_some());
    s.append(&[events(5, 0)], false).unwrap();
    assert_eq!(
        total(&s.query("v", &Query::default(), Part::Served).unwrap(), "n"),
        5
    );
}

#[test]
fn compaction_keeps_time_travel_and_replaced_files_wait_out_their_grace() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s");
    let o = OpenOptions {
        auto_compact: false,
        ..opts(&root)
    };
    {
        let s = Store::open(o.clone()).unwrap();
        for i in 0..10 {
            s.append(&[events(3 + i, 0)], false).unwrap();
        }
        assert_eq!(s.compact().unwrap(), 10);
        for c in 0..=10u64 {
            let (_, b) = s.snapshot(Some(c)).unwrap();
            let want: usize = (0..c as usize).map(|i| 3 + i).sum();
            assert_eq!(
                b.iter().map(|b| b.num_rows()).sum::<usize>(),
                want,
                "commit {c}"
            );
        }
    }
    // Replaced segments were retired less than GRACE ago: close and reopen keep them.
    let s = Store::open(o).unwrap();
    let files = std::fs::read_dir(root.join("segments")).unwrap().count();
    assert_eq!(files, 11, "10 replaced segments and the compacted one");
    drop(s);
}

#[test]
fn opening_a_writer_never_touches_files_behind_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("precious.parquet"), b"keep me").unwrap();
    {
        let s = Store::open(opts(&root)).unwrap();
        s.append(&[events(3, 0)], false).unwrap();
    }
    std::os::unix::fs::symlink(&outside, root.join("segments").join("link")).unwrap();
    std::os::unix::fs::symlink(
        outside.join("precious.parquet"),
        root.join("segments").join("file-link.parquet"),
    )
    .unwrap();
    let s = Store::open(opts(&root)).unwrap();
    assert!(outside.join("precious.parquet").exists());
    assert_eq!(s.commits().unwrap().num_rows(), 1);
}

#[test]
fn define_holds_the_writer_lock_until_the_view_is_installed() {
    let s = Arc::new(Store::open(OpenOptions::default()).unwrap());
    s.append(&[events(10, 0)], false).unwrap();
    let point = "define.before_install#define-race";
    crate::failpoint::arm(point, Some(crate::failpoint::Action::Pause));
    let d = {
        let s = s.clone();
        std::thread::Builder::new()
            .name("define-race".into())
            .spawn(move || s.define(view()))
            .unwrap()
    };
    assert!(crate::failpoint::wait_paused(
        point,
        std::time::Duration::from_secs(30)
    ));
    let a = {
        let s = s.clone();
        std::thread::spawn(move || {
            for _ in 0..5 {
                s.append(&[events(10, 0)], false).unwrap();
            }
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(!a.is_finished(), "appends wait for the define in progress");
    crate::failpoint::release(point);
    d.join().unwrap().unwrap();
    a.join().unwrap();
    assert_eq!(
        total(&s.query("v", &Query::default(), Part::Served).unwrap(), "n"),
        60
    );
}

#[test]
fn absurd_thread_counts_are_refused() {
    let s = Store::open(OpenOptions::default()).unwrap();
    s.append(&[events(10, 0)], false).unwrap();
    s.define(view()).unwrap();
    for t in [0, MAX_THREADS + 1, 100_000] {
        let e = s.recompute(None, Some(t), &Control::default()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
    }
}

/// Every view's answer, for each part.
fn answers(s: &Store) -> Vec<RecordBatch> {
    [Part::Served, Part::Speed, Part::Batch]
        .into_iter()
        .map(|p| s.query("v", &Query::default(), p).unwrap())
        .collect()
}

#[test]
fn a_reopened_store_loads_the_saved_speed_state_and_answers_as_a_replay_would() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let s = Store::open(opts(&path)).unwrap();
    s.define(view()).unwrap();
    for i in 0..4 {
        s.append(&[events(700, i * 1_000_000)], false).unwrap();
    }
    s.recompute(None, Some(2), &Control::default()).unwrap();
    for i in 4..9 {
        s.append(&[events(900, i * 1_000_000)], false).unwrap();
    }
    let before = answers(&s);
    s.close().unwrap();

    // The close saved commits 5..=9 (after the batch view's snapshot 4).
    let s = Store::open(opts(&path)).unwrap();
    let state = s.state().unwrap();
    let saved = state.views["v"]
        .saved_speed
        .clone()
        .expect("saved at close");
    assert_eq!((saved.first, saved.last, saved.rows), (5, 9, 4500));
    assert_eq!(
        answers(&s),
        before,
        "the loaded state answers as the folded one did"
    );
    // New commits after the saved range are replayed on top of it.
    s.append(&[events(50, 77)], false).unwrap();
    let grown = answers(&s);
    let reader = Store::open(OpenOptions {
        read_only: true,
        ..opts(&path)
    })
    .unwrap();
    assert_eq!(
        answers(&reader),
        grown,
        "saved 5..=9, then commit 10 replayed"
    );
    drop(reader);
    s.close().unwrap();
    let s = Store::open(opts(&path)).unwrap();
    assert_eq!(answers(&s), grown);
    // A recompute at a snapshot inside the saved range, then more data: each event once.
    s.recompute(None, Some(1), &Control::default()).unwrap();
    s.append(&[events(5, 3)], false).unwrap();
    let served = s.query("v", &Query::default(), Part::Served).unwrap();
    assert_eq!(total(&served, "n"), 4 * 700 + 5 * 900 + 50 + 5);
    let after = answers(&s);
    s.close().unwrap();

    // A damaged saved state is derived data: the next open replays instead, same answers.
    let s = Store::open(opts(&path)).unwrap();
    let saved = s.state().unwrap().views["v"].saved_speed.clone().unwrap();
    s.close().unwrap();
    let file = path.join(&saved.file.file);
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let s = Store::open(opts(&path)).unwrap();
    assert_eq!(answers(&s), after);
}
