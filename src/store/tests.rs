//! Tests of the store shell: every stage and guarantee, through the public Rust API.

use super::*;
use crate::batch::Control;
use crate::view::def::ViewDef;
use arrow::array::{Int64Array, StringArray};
use crate::view::def::AggSpec;
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
