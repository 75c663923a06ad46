//! Conforming an append to the store's schema: the conform stage of every append (and of a
//! partial state computed from raw rows, which must count what an append would keep).
//!
//! Every check that can refuse a row runs here, before the commit point: a value is either
//! stored as the store's type or reported with its row (refused whole, or quarantined with its
//! reason under the quarantine policy). What is stored can always be read back, bucketed,
//! merged and served:
//!
//! * text whose bytes are not UTF-8 is a row-level error (`boundary::repair_utf8`): a segment
//!   holding it could not be read back by any Parquet reader;
//! * every timestamp and date lies in the years -99,999..=99,999 (`boundary::check_time`), which
//!   every grain buckets without overflow;
//! * a finer time unit cast to a coarser one must not lose a fraction; integers must fit;
//! * a column of type `null` (an all-None pandas column, an empty slice) is a column of nulls of
//!   the stored type; decimals go into float columns (and into integer columns when whole).

use std::sync::Arc;

use crate::arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, RecordBatch, RecordBatchOptions,
};
use crate::arrow::compute::{cast, filter_record_batch};
use crate::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::error::{Error, Result};
use crate::master::boundary::{self, check_time};
use crate::master::schema::{
    check_unique_names, classify, is_event_time, ColumnClass, StoreSchema,
};
use crate::time::units_per_second;

/// The result of conforming one incoming batch: the rows to store, and rows refused with a reason.
pub struct Conformed {
    pub batch: RecordBatch,
    /// (row index in the incoming batch, reason), in row order.
    pub rejected: Vec<(usize, String)>,
    /// The incoming batch with invalid text replaced (U+FFFD): what a quarantine file keeps of
    /// the refused rows.
    pub incoming: RecordBatch,
}

/// Row-level problems found so far (the first reason of each row wins).
struct Marks {
    n: usize,
    bad: Vec<Option<String>>,
}

impl Marks {
    fn mark(&mut self, row: usize, reason: impl FnOnce() -> String) {
        if self.bad.is_empty() {
            self.bad.resize(self.n, None);
        }
        if self.bad[row].is_none() {
            self.bad[row] = Some(reason());
        }
    }
}

/// Replace text that is not UTF-8 in every string column, marking its rows.
fn repair_text(batch: &RecordBatch, marks: &mut Marks) -> Result<RecordBatch> {
    let mut columns: Option<Vec<ArrayRef>> = None;
    for (i, field) in batch.schema().fields().iter().enumerate() {
        let col = batch.column(i);
        let Some(bad) = boundary::repair_utf8(col) else {
            continue;
        };
        for &row in &bad.rows {
            marks.mark(row, || {
                format!(
                    "column {:?}: the text is not valid UTF-8 ({} as read with replacements)",
                    field.name(),
                    boundary::preview(&bad.repaired, row)
                )
            });
        }
        columns.get_or_insert_with(|| batch.columns().to_vec())[i] = bad.repaired;
    }
    match columns {
        None => Ok(batch.clone()),
        Some(cols) => Ok(RecordBatch::try_new_with_options(
            batch.schema(),
            cols,
            &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )?),
    }
}

/// Cast `batch` to the store schema. Column-level problems (missing, extra, incompatible type)
/// always fail. Row-level problems (null event time, value out of range, invalid text, a time
/// outside the range lamina buckets) are collected; with `quarantine == false` the first one
/// fails the whole append.
pub fn conform(
    batch: &RecordBatch,
    schema: &StoreSchema,
    target: &SchemaRef,
    quarantine: bool,
) -> Result<Conformed> {
    let incoming = batch.schema();
    check_unique_names(&incoming)?;
    for f in incoming.fields() {
        if target.field_with_name(f.name()).is_err() {
            return Err(Error::schema(format!(
                "column {:?} is not in the store's schema (columns: {})",
                f.name(),
                target
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let n = batch.num_rows();
    let mut marks = Marks { n, bad: Vec::new() };
    let batch = repair_text(batch, &mut marks)?;
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        let name = field.name();
        let Some(col) = batch.column_by_name(name) else {
            return Err(Error::schema(format!(
                "column {name:?} is missing from the data"
            )));
        };
        let converted = convert_column(name, col, field, &incoming, &mut marks)?;
        check_column(name, &converted, field.data_type(), schema, &mut marks)?;
        columns.push(converted);
    }
    let full = RecordBatch::try_new_with_options(
        target.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(n)),
    )
    .map_err(|e| Error::schema(e.to_string()))?;
    if marks.bad.is_empty() {
        return Ok(Conformed {
            batch: full,
            rejected: Vec::new(),
            incoming: batch,
        });
    }
    let rejected: Vec<(usize, String)> = marks
        .bad
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().map(|r| (i, r.clone())))
        .collect();
    if !quarantine {
        let (row, reason) = &rejected[0];
        return Err(Error::schema(format!(
            "{reason} at row {row} ({} bad rows in all); nothing was written",
            rejected.len()
        )));
    }
    let keep = BooleanArray::from(marks.bad.iter().map(|b| b.is_none()).collect::<Vec<_>>());
    let kept = filter_record_batch(&full, &keep)?;
    Ok(Conformed {
        batch: kept,
        rejected,
        incoming: batch,
    })
}

/// One incoming column as the stored type, marking rows whose values do not survive the cast.
fn convert_column(
    name: &str,
    col: &ArrayRef,
    field: &Field,
    incoming: &Schema,
    marks: &mut Marks,
) -> Result<ArrayRef> {
    let n = col.len();
    let want = field.data_type();
    let have = col.data_type();
    if have == want {
        return Ok(col.clone());
    }
    // An all-None column (pandas object columns, empty slices) has no type of its own.
    if *have == DataType::Null {
        return Ok(new_null_array(want, n));
    }
    let class_have = classify(have);
    let class_want = classify(want);
    // Text read from a file (CSV, JSON lines) for a number or boolean column: each value is
    // parsed, and one that does not parse is a row-level error (quarantined with its row), not a
    // refusal of the whole file. Only columns marked as text by the reader qualify: a string
    // column appended from a frame is still a type error.
    let from_text = class_have == Some(ColumnClass::Str)
        && matches!(
            class_want,
            Some(
                ColumnClass::Int
                    | ColumnClass::Float
                    | ColumnClass::Bool
                    | ColumnClass::Time
                    | ColumnClass::Date
            )
        )
        && incoming
            .field_with_name(name)
            .is_ok_and(|f| f.metadata().contains_key(TEXT_KEY));
    if from_text {
        // Times are read as ISO-8601 / RFC 3339 text (a space for the T, an offset or none,
        // which is UTC), as microseconds, then brought to the stored unit and zone label.
        let micros = DataType::Timestamp(TimeUnit::Microsecond, None);
        let parse_as = if class_want == Some(ColumnClass::Time) {
            &micros
        } else {
            want
        };
        let text = cast(col, &DataType::Utf8)?;
        let parsed = lenient_cast(&text, parse_as)?;
        let shown = |row: usize| -> String {
            text.as_string::<i32>()
                .value(row)
                .chars()
                .take(40)
                .collect()
        };
        for row in 0..n {
            if text.is_valid(row) && parsed.is_null(row) {
                marks.mark(row, || {
                    let what = match class_want {
                        Some(ColumnClass::Time) => "a time (ISO 8601)".to_string(),
                        Some(ColumnClass::Date) => "a date (YYYY-MM-DD)".to_string(),
                        _ => want.to_string(),
                    };
                    format!("column {name:?}: cannot read {:?} as {what}", shown(row))
                });
            }
        }
        if parse_as == want {
            return Ok(parsed);
        }
        check_lossy_unit(&parsed, want, name, marks)?;
        let plain = unit_cast(&parsed, &relabel_type(want, None), name, marks)?;
        return relabel(&plain, zone_name(want));
    }
    let scale = decimal_scale(have);
    if let Some(scale) = scale {
        if class_want == Some(ColumnClass::Float) {
            let floats = cast(col, &DataType::Float64)?;
            return unit_cast(&floats, want, name, marks);
        }
        if class_want == Some(ColumnClass::Int) && scale <= 0 {
            return whole_decimal_to_int(col, want, name, marks);
        }
    }
    let compatible = class_have == class_want
        || (class_want == Some(ColumnClass::Float) && class_have == Some(ColumnClass::Int))
        || (is_event_time(want) && is_event_time(have));
    if !compatible {
        return Err(Error::schema(format!(
            "column {name:?} has type {have}, but the store holds {want}"
        )));
    }
    // A time of another unit that lies beyond the range lamina buckets is refused row by row
    // before the cast (which could not represent it).
    let col = &if is_event_time(have) {
        null_far_times(col, name, marks)?
    } else {
        col.clone()
    };
    let converted =
        if is_event_time(have) && is_event_time(want) && (zone_of(have) || zone_of(want)) {
            // Dates and zoned timestamps: both are instants from the epoch; the zone is a label
            // (Arrow's cast would parse it as a time zone, and convert to its local time).
            let plain = unit_cast(&relabel(col, None)?, &relabel_type(want, None), name, marks)?;
            relabel(&plain, zone_name(want))?
        } else {
            unit_cast(col, want, name, marks)?
        };
    check_lossy_unit(col, want, name, marks)?;
    Ok(converted)
}

/// A finer unit cast to a coarser one truncates: a value with a nonzero remainder would lose its
/// fraction (or, into a date, its time of day) silently, so it is a row-level error (like an
/// integer out of range).
fn check_lossy_unit(col: &ArrayRef, want: &DataType, name: &str, marks: &mut Marks) -> Result<()> {
    let have = col.data_type();
    let step = match (have, want) {
        (DataType::Timestamp(_, _), DataType::Timestamp(_, _)) => Some((
            units_per_second(have) / units_per_second(want),
            format!("a finer fraction of a second than the store's {want} keeps"),
        )),
        (DataType::Timestamp(_, _), DataType::Date32) => Some((
            units_per_second(have) * 86_400,
            "a time of day, but the store's column holds dates".to_string(),
        )),
        _ => None,
    };
    if let Some((step, lost)) = step.filter(|(step, _)| *step > 1) {
        let raw = cast(&relabel(col, None)?, &DataType::Int64)?;
        let raw = raw.as_primitive::<crate::arrow::datatypes::Int64Type>();
        for (row, v) in raw.iter().enumerate() {
            if v.is_some_and(|v| v % step != 0) {
                marks.mark(row, || format!("column {name:?}: the value has {lost}"));
            }
        }
    }
    Ok(())
}

/// The scale of a decimal type (None: not a decimal).
fn decimal_scale(dt: &DataType) -> Option<i8> {
    match dt {
        DataType::Decimal32(_, s)
        | DataType::Decimal64(_, s)
        | DataType::Decimal128(_, s)
        | DataType::Decimal256(_, s) => Some(*s),
        _ => None,
    }
}

/// Whole decimals (scale 0 or less) into an integer column, exactly: a value beyond the
/// column's type is a row-level error, never wrapped.
fn whole_decimal_to_int(
    col: &ArrayRef,
    want: &DataType,
    name: &str,
    marks: &mut Marks,
) -> Result<ArrayRef> {
    use crate::arrow::array::{Int64Array, UInt64Array};
    use crate::arrow::datatypes::Decimal128Type;
    // 38 digits hold every int64 and uint64; a wider value reads as null and is refused.
    let wide = lenient_cast(col, &DataType::Decimal128(38, 0))?;
    let wide = wide.as_primitive::<Decimal128Type>();
    let mut out_of_range = |row: usize| {
        marks.mark(row, || {
            format!("column {name:?}: value out of range for {want}")
        })
    };
    for row in 0..col.len() {
        if col.is_valid(row) && wide.is_null(row) {
            out_of_range(row);
        }
    }
    // Each value in the widest integer type of the column's sign, or refused.
    fn fit<T: TryFrom<i128>>(
        wide: &crate::arrow::array::Decimal128Array,
        refuse: &mut impl FnMut(usize),
    ) -> Vec<Option<T>> {
        (0..wide.len())
            .map(|i| {
                let v = wide.is_valid(i).then(|| wide.value(i))?;
                let got = T::try_from(v).ok();
                if got.is_none() {
                    refuse(i);
                }
                got
            })
            .collect()
    }
    let ints: ArrayRef = if *want == DataType::UInt64 {
        Arc::new(UInt64Array::from(fit::<u64>(wide, &mut out_of_range)))
    } else {
        Arc::new(Int64Array::from(fit::<i64>(wide, &mut out_of_range)))
    };
    unit_cast(&ints, want, name, marks)
}

/// A time column with the values beyond the years lamina buckets nulled and their rows marked
/// (a cast to another unit could not represent them, and would fail the whole column).
fn null_far_times(col: &ArrayRef, name: &str, marks: &mut Marks) -> Result<ArrayRef> {
    let scale: i128 = match col.data_type() {
        DataType::Date32 => 86_400_000_000,
        DataType::Timestamp(TimeUnit::Nanosecond, _) => return Ok(col.clone()),
        dt => 1_000_000 / units_per_second(dt) as i128,
    };
    let raw = cast(&relabel(col, None)?, &DataType::Int64)?;
    let raw = raw.as_primitive::<crate::arrow::datatypes::Int64Type>();
    let far: Vec<usize> = (0..raw.len())
        .filter(|&i| raw.is_valid(i) && !check_time(raw.value(i) as i128 * scale))
        .collect();
    if far.is_empty() {
        return Ok(col.clone());
    }
    let mut drop = vec![false; col.len()];
    for &row in &far {
        drop[row] = true;
        marks.mark(row, || {
            format!(
                "column {name:?}: time {} is outside the years -99,999..99,999 that lamina buckets",
                raw.value(row)
            )
        });
    }
    Ok(crate::arrow::compute::nullif(
        col.as_ref(),
        &BooleanArray::from(drop),
    )?)
}

/// Cast, marking the rows whose values do not survive it (out of range): those rows are refused,
/// so their cast value never matters.
fn unit_cast(col: &ArrayRef, want: &DataType, name: &str, marks: &mut Marks) -> Result<ArrayRef> {
    if let Ok(a) = cast_checked(col, want) {
        return Ok(a);
    }
    let lenient = lenient_cast(col, want)?;
    for row in 0..col.len() {
        if col.is_valid(row) && lenient.is_null(row) {
            marks.mark(row, || {
                format!("column {name:?}: value out of range for {want}")
            });
        }
    }
    Ok(lenient)
}

fn lenient_cast(col: &ArrayRef, want: &DataType) -> Result<ArrayRef> {
    Ok(crate::arrow::compute::cast_with_options(
        col,
        want,
        &crate::arrow::compute::CastOptions {
            safe: true,
            ..Default::default()
        },
    )?)
}

/// Checks of a converted column that can refuse rows: null event times, and times outside the
/// range every layer can bucket.
fn check_column(
    name: &str,
    converted: &ArrayRef,
    want: &DataType,
    schema: &StoreSchema,
    marks: &mut Marks,
) -> Result<()> {
    if name == schema.time_column && converted.null_count() > 0 {
        for row in 0..converted.len() {
            if converted.is_null(row) {
                marks.mark(row, || format!("column {name:?}: null event time"));
            }
        }
    }
    let scale: Option<i128> = match want {
        DataType::Timestamp(_, _) => {
            let per_s = units_per_second(want) as i128;
            Some(1_000_000 / per_s.min(1_000_000)).filter(|_| per_s <= 1_000_000)
        }
        DataType::Date32 => Some(86_400_000_000),
        _ => None,
    };
    let is_ns = matches!(want, DataType::Timestamp(TimeUnit::Nanosecond, _));
    if scale.is_none() && !is_ns {
        return Ok(());
    }
    if is_ns {
        return Ok(()); // int64 nanoseconds span 1677..2262: always in range
    }
    let scale = scale.unwrap_or(1);
    let raw = cast(&relabel(converted, None)?, &DataType::Int64)?;
    let raw = raw.as_primitive::<crate::arrow::datatypes::Int64Type>();
    let what = if name == schema.time_column {
        "event time"
    } else {
        "time"
    };
    for (row, v) in raw.iter().enumerate() {
        if v.is_some_and(|v| !check_time(v as i128 * scale)) {
            marks.mark(row, || {
                format!(
                    "column {name:?}: {what} {} is outside the years -99,999..99,999 that lamina buckets",
                    raw.value(row)
                )
            });
        }
    }
    Ok(())
}

/// Field metadata a file reader sets on a text column whose values are to be parsed into the
/// store's number or boolean type row by row (see `conform`).
pub const TEXT_KEY: &str = "lamina.text";

/// Cast that fails instead of turning out-of-range values into nulls.
fn cast_checked(col: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    if let DataType::Dictionary(_, _) = col.data_type() {
        let values = cast(col, &DataType::Utf8)?;
        return Ok(values);
    }
    let out = crate::arrow::compute::cast_with_options(
        col,
        to,
        &crate::arrow::compute::CastOptions {
            safe: false,
            ..Default::default()
        },
    )?;
    Ok(out)
}

/// Whether a timestamp type carries a zone label.
fn zone_of(dt: &DataType) -> bool {
    matches!(dt, DataType::Timestamp(_, Some(_)))
}

fn zone_name(dt: &DataType) -> Option<Arc<str>> {
    match dt {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    }
}

/// A timestamp type with its zone label replaced (other types unchanged).
fn relabel_type(dt: &DataType, tz: Option<Arc<str>>) -> DataType {
    match dt {
        DataType::Timestamp(unit, _) => DataType::Timestamp(*unit, tz),
        other => other.clone(),
    }
}

/// A timestamp column with its zone label replaced, values untouched (other columns as they are).
fn relabel(col: &ArrayRef, tz: Option<Arc<str>>) -> Result<ArrayRef> {
    use crate::arrow::datatypes::{
        TimestampMicrosecondType as Us, TimestampMillisecondType as Ms,
        TimestampNanosecondType as Ns, TimestampSecondType as S,
    };
    Ok(match col.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            Arc::new(col.as_primitive::<S>().clone().with_timezone_opt(tz))
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            Arc::new(col.as_primitive::<Ms>().clone().with_timezone_opt(tz))
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Arc::new(col.as_primitive::<Us>().clone().with_timezone_opt(tz))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            Arc::new(col.as_primitive::<Ns>().clone().with_timezone_opt(tz))
        }
        _ => col.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arrow::datatypes::{Field, Schema, TimeUnit};

    #[test]
    fn a_finer_time_unit_that_would_lose_a_fraction_is_a_row_error() {
        use crate::arrow::array::{TimestampMillisecondArray, TimestampSecondArray};
        let held = Schema::new(vec![Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Second, None),
            false,
        )]);
        let st = StoreSchema::from_first_batch(&held, None).unwrap();
        let target = st.arrow().unwrap();
        let ms: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![
            Some(5_000),
            Some(7_250), // 7.250 s: would become 7 s
            Some(-3_000),
            Some(-1_500), // -1.5 s
        ]));
        let batch = RecordBatch::try_from_iter(vec![("ts", ms)]).unwrap();
        let Err(refused) = conform(&batch, &st, &target, false) else {
            panic!("a lossy time cast must be refused");
        };
        assert!(
            refused.message.contains("at row 1 (2 bad rows"),
            "{}",
            refused.message
        );
        let kept = conform(&batch, &st, &target, true).unwrap();
        assert_eq!(
            kept.rejected.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![1, 3]
        );
        let got = kept.batch.column(0);
        let got = got.as_any().downcast_ref::<TimestampSecondArray>().unwrap();
        assert_eq!(got.values().to_vec(), vec![5, -3]);
    }
}
