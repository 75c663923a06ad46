//! Test views over generated events, shared by the unit tests of the layers above `view`.

use std::sync::Arc;

use crate::arrow::array::{Int64Array, RecordBatch, TimestampMicrosecondArray};
use crate::arrow::datatypes::{DataType, Field, Schema, TimeUnit};

use crate::aggregate::AggSpec;
use crate::master::schema::StoreSchema;
use crate::view::def::ViewDef;
use crate::view::table::ViewPlan;

/// The event-time column of test data: microseconds, no time zone, never null.
pub fn ts_field() -> Field {
    Field::new(
        "ts",
        DataType::Timestamp(TimeUnit::Microsecond, None),
        false,
    )
}

/// A view counting rows per hour and `k`, and a batch of `keys.len()` events (one microsecond
/// apart from 1970) with those `k` values.
pub fn count_view(keys: &[i64]) -> (ViewPlan, RecordBatch) {
    let schema = Arc::new(Schema::new(vec![
        ts_field(),
        Field::new("k", DataType::Int64, true),
    ]));
    let b = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(TimestampMicrosecondArray::from_iter_values(
                0..keys.len() as i64,
            )),
            Arc::new(Int64Array::from_iter_values(keys.iter().copied())),
        ],
    )
    .expect("a valid batch");
    let store = StoreSchema::from_first_batch(&schema, None).expect("a valid schema");
    let def = hourly_view(vec![("n", AggSpec::Count { column: None })]);
    (ViewPlan::new(def, &store).expect("a valid view"), b)
}

/// A view "v" of `metrics` per hour of `ts` and `k`, with no filter or roll-up.
pub fn hourly_view(metrics: Vec<(&str, AggSpec)>) -> ViewDef {
    ViewDef {
        name: "v".into(),
        time: "ts".into(),
        grain: "1h".into(),
        by: vec!["k".into()],
        metrics: metrics
            .into_iter()
            .map(|(n, spec)| (n.to_string(), spec))
            .collect(),
        filter: vec![],
        precision: 12,
        tz: None,
        rollups: vec![],
    }
}
