//! The store's schema, and conforming incoming batches to it.
//!
//! The first append fixes the schema. Strings of every Arrow flavour (utf8, large_utf8, utf8_view,
//! dictionary of strings) are stored as `utf8`; every other column keeps the type of the first
//! append. Later appends may bring narrower or wider integers, other timestamp units or string
//! flavours: they are cast, and a value that does not fit is reported with its row.

use std::sync::Arc;

use crate::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use crate::arrow::compute::{cast, filter_record_batch};
use crate::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a column can be used by views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnClass {
    Time,
    /// Calendar dates (`date32`): usable as event time (a day starts at midnight UTC) and as a
    /// dimension.
    Date,
    Int,
    Float,
    Bool,
    Str,
}

pub fn classify(dt: &DataType) -> Option<ColumnClass> {
    use DataType::*;
    Some(match dt {
        Timestamp(_, _) => ColumnClass::Time,
        Date32 => ColumnClass::Date,
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => ColumnClass::Int,
        Float16 | Float32 | Float64 => ColumnClass::Float,
        Boolean => ColumnClass::Bool,
        Utf8 | LargeUtf8 | Utf8View => ColumnClass::Str,
        Dictionary(_, v) if matches!(v.as_ref(), Utf8 | LargeUtf8 | Utf8View) => ColumnClass::Str,
        _ => return None,
    })
}

/// The stored type for an incoming column type (strings normalised to utf8).
fn stored_type(dt: &DataType) -> DataType {
    match classify(dt) {
        Some(ColumnClass::Str) => DataType::Utf8,
        Some(ColumnClass::Float) if *dt == DataType::Float16 => DataType::Float32,
        _ => dt.clone(),
    }
}

/// The persisted description of the store's columns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoreSchema {
    pub time_column: String,
    pub columns: Vec<ColumnSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnSpec {
    pub name: String,
    /// Arrow type, as a short string (see `type_to_str`).
    pub arrow_type: String,
}

pub fn type_to_str(dt: &DataType) -> String {
    match dt {
        DataType::Timestamp(unit, tz) => {
            let u = match unit {
                TimeUnit::Second => "s",
                TimeUnit::Millisecond => "ms",
                TimeUnit::Microsecond => "us",
                TimeUnit::Nanosecond => "ns",
            };
            match tz {
                Some(tz) => format!("timestamp[{u}, tz={tz}]"),
                None => format!("timestamp[{u}]"),
            }
        }
        other => format!("{other}").to_lowercase(),
    }
}

fn type_from_str(s: &str) -> Option<DataType> {
    use DataType::*;
    Some(match s {
        "int8" => Int8,
        "int16" => Int16,
        "int32" => Int32,
        "int64" => Int64,
        "uint8" => UInt8,
        "uint16" => UInt16,
        "uint32" => UInt32,
        "uint64" => UInt64,
        "float32" => Float32,
        "float64" => Float64,
        "boolean" => Boolean,
        "utf8" => Utf8,
        "date32" => Date32,
        _ => {
            let inner = s.strip_prefix("timestamp[")?.strip_suffix(']')?;
            let (unit, tz) = match inner.split_once(", tz=") {
                Some((u, tz)) => (u, Some(Arc::<str>::from(tz))),
                None => (inner, None),
            };
            let unit = match unit {
                "s" => TimeUnit::Second,
                "ms" => TimeUnit::Millisecond,
                "us" => TimeUnit::Microsecond,
                "ns" => TimeUnit::Nanosecond,
                _ => return None,
            };
            Timestamp(unit, tz)
        }
    })
}

impl StoreSchema {
    /// Fix the schema from the first append. `time_column` picks the event-time column; by default
    /// the first timestamp column.
    pub fn from_first_batch(schema: &Schema, time_column: Option<&str>) -> Result<Self> {
        check_unique_names(schema)?;
        let mut columns = Vec::new();
        for f in schema.fields() {
            if f.name().is_empty() || f.name().chars().any(|c| c.is_control()) {
                return Err(Error::schema(format!(
                    "column {:?}: names must be non-empty and hold no control characters (NUL, newline)",
                    f.name()
                )));
            }
            if f.name().starts_with("__") {
                return Err(Error::schema(format!(
                    "column {:?}: names starting with '__' are reserved for lamina",
                    f.name()
                )));
            }
            if classify(f.data_type()).is_none() {
                return Err(Error::schema(format!(
                    "column {:?} has unsupported type {}; lamina stores timestamps, dates, integers, floats, booleans and strings",
                    f.name(),
                    f.data_type()
                )));
            }
            columns.push(ColumnSpec {
                name: f.name().clone(),
                arrow_type: type_to_str(&stored_type(f.data_type())),
            });
        }
        let time_column = match time_column {
            Some(t) => {
                let f = schema
                    .field_with_name(t)
                    .map_err(|_| Error::schema(format!("time column {t:?} is not in the data")))?;
                if !is_event_time(f.data_type()) {
                    return Err(Error::schema(format!(
                        "time column {t:?} must be a timestamp or a date, not {}",
                        f.data_type()
                    )));
                }
                t.to_string()
            }
            None => {
                let times: Vec<&String> = schema
                    .fields()
                    .iter()
                    .filter(|f| classify(f.data_type()) == Some(ColumnClass::Time))
                    .map(|f| f.name())
                    .collect();
                // Without a timestamp, a single date column is the event time.
                let kind = if times.is_empty() {
                    "date"
                } else {
                    "timestamp"
                };
                let times = if times.is_empty() {
                    schema
                        .fields()
                        .iter()
                        .filter(|f| is_event_time(f.data_type()))
                        .map(|f| f.name())
                        .collect()
                } else {
                    times
                };
                match times.as_slice() {
                    [] => {
                        return Err(Error::schema(
                            "the data has no timestamp or date column to use as event time",
                        ))
                    }
                    [one] => (*one).clone(),
                    // Never a silent pick among several: the event time decides every bucket.
                    many => {
                        return Err(Error::schema(format!(
                            "the data has {} {kind} columns ({}): name the event time, e.g. \
                             Store(path, time={:?}) or `lamina ingest --time {}`",
                            many.len(),
                            many.iter()
                                .map(|n| format!("{n:?}"))
                                .collect::<Vec<_>>()
                                .join(", "),
                            many[0],
                            many[0]
                        )))
                    }
                }
            }
        };
        let s = StoreSchema {
            time_column,
            columns,
        };
        s.arrow()?; // validates the round trip of every type string
        Ok(s)
    }

    pub fn arrow(&self) -> Result<SchemaRef> {
        let mut fields = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            let dt = type_from_str(&c.arrow_type).ok_or_else(|| {
                Error::schema(format!(
                    "column {:?}: unknown stored type {}",
                    c.name, c.arrow_type
                ))
            })?;
            // Every field is nullable in Arrow terms; null event times are refused by `conform`
            // row by row, so that the quarantine policy can keep the other rows.
            fields.push(Field::new(&c.name, dt, true));
        }
        Ok(Arc::new(Schema::new(fields)))
    }

    /// The stored Arrow type of a column.
    pub fn column_type(&self, name: &str) -> Option<DataType> {
        let c = self.columns.iter().find(|c| c.name == name)?;
        type_from_str(&c.arrow_type)
    }

    pub fn column_class(&self, name: &str) -> Option<ColumnClass> {
        let c = self.columns.iter().find(|c| c.name == name)?;
        classify(&type_from_str(&c.arrow_type)?)
    }
}

/// The result of conforming one incoming batch: the rows to store, and rows refused with a reason.
pub struct Conformed {
    pub batch: RecordBatch,
    /// (row index in the incoming batch, reason), in row order.
    pub rejected: Vec<(usize, String)>,
}

/// Cast `batch` to the store schema. Column-level problems (missing, extra, incompatible type)
/// always fail. Row-level problems (null event time, value out of range) are collected; with
/// `quarantine == false` the first one fails the whole append.
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
    let mut bad: Vec<Option<String>> = Vec::new();
    let mark = |row: usize, reason: String, bad: &mut Vec<Option<String>>| {
        if bad.is_empty() {
            bad.resize(n, None);
        }
        if bad[row].is_none() {
            bad[row] = Some(reason);
        }
    };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        let name = field.name();
        let Some(col) = batch.column_by_name(name) else {
            return Err(Error::schema(format!(
                "column {name:?} is missing from the data"
            )));
        };
        let want = field.data_type();
        let have = col.data_type();
        let class_have = classify(have);
        let class_want = classify(want);
        // Text read from a file (CSV, JSON lines) for a number or boolean column: each value is
        // parsed, and one that does not parse is a row-level error (quarantined with its row),
        // not a refusal of the whole file. Only columns marked as text by the reader qualify:
        // a string column appended from a frame is still a type error.
        let from_text = matches!(
            have,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) && matches!(
            class_want,
            Some(ColumnClass::Int | ColumnClass::Float | ColumnClass::Bool)
        ) && incoming
            .field_with_name(name)
            .is_ok_and(|f| f.metadata().contains_key(TEXT_KEY));
        if from_text {
            let parsed = crate::arrow::compute::cast_with_options(
                col,
                want,
                &crate::arrow::compute::CastOptions {
                    safe: true,
                    ..Default::default()
                },
            )?;
            let text = cast(col, &DataType::Utf8)?;
            let text = text.as_string::<i32>();
            for row in 0..n {
                if col.is_valid(row) && parsed.is_null(row) {
                    let v: String = text.value(row).chars().take(40).collect();
                    mark(
                        row,
                        format!("column {name:?}: cannot read {v:?} as {want}"),
                        &mut bad,
                    );
                }
            }
            columns.push(parsed);
            continue;
        }
        let compatible = class_have == class_want
            || (class_want == Some(ColumnClass::Float) && class_have == Some(ColumnClass::Int))
            || (is_event_time(want) && is_event_time(have));
        if !compatible {
            return Err(Error::schema(format!(
                "column {name:?} has type {have}, but the store holds {want}"
            )));
        }
        let converted = if have == want {
            col.clone()
        } else if is_event_time(have) && is_event_time(want) && (zone_of(have) || zone_of(want)) {
            // Dates and zoned timestamps: both are instants from the epoch; the zone is a label
            // (Arrow's cast would parse it as a time zone, and convert to its local time).
            let plain = cast(&relabel(col, None)?, &relabel_type(want, None))?;
            relabel(&plain, zone_name(want))?
        } else {
            // Find rows whose values would not survive the cast (out of range), then cast
            // leniently: refused rows are dropped below, so their cast value never matters.
            let strict = cast_checked(col, want);
            match strict {
                Ok(a) => a,
                Err(_) => {
                    let lenient = crate::arrow::compute::cast_with_options(
                        col,
                        want,
                        &crate::arrow::compute::CastOptions {
                            safe: true,
                            ..Default::default()
                        },
                    )?;
                    for row in 0..n {
                        if col.is_valid(row) && lenient.is_null(row) {
                            mark(
                                row,
                                format!("column {name:?}: value out of range for {want}"),
                                &mut bad,
                            );
                        }
                    }
                    lenient
                }
            }
        };
        // A finer unit cast to a coarser one truncates: a value with a nonzero remainder would
        // lose its fraction (or, into a date, its time of day) silently, so it is a row-level
        // error (like an integer out of range).
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
            let raw = cast(col, &DataType::Int64)?;
            let raw = raw.as_primitive::<crate::arrow::datatypes::Int64Type>();
            for (row, v) in raw.iter().enumerate() {
                if v.is_some_and(|v| v % step != 0) {
                    mark(
                        row,
                        format!("column {name:?}: the value has {lost}"),
                        &mut bad,
                    );
                }
            }
        }
        if name == &schema.time_column && converted.null_count() > 0 {
            for row in 0..n {
                if converted.is_null(row) {
                    mark(row, format!("column {name:?}: null event time"), &mut bad);
                }
            }
        }
        if name == &schema.time_column && *want == DataType::Date32 {
            let days = converted.as_primitive::<crate::arrow::datatypes::Date32Type>();
            for (row, d) in days.iter().enumerate() {
                if d.is_some_and(|d| (d as i64).abs() > crate::view::grain::MAX_DATE_DAYS) {
                    mark(
                        row,
                        format!("column {name:?}: event date out of range"),
                        &mut bad,
                    );
                }
            }
        }
        if name == &schema.time_column {
            // Buckets are reported in microseconds: a time in seconds or milliseconds beyond
            // what int64 microseconds hold (about 290,000 years from 1970) cannot be bucketed.
            let per_s = units_per_second(want);
            if per_s < 1_000_000 {
                let limit = i64::MAX / (1_000_000 / per_s);
                let raw = cast(&converted, &DataType::Int64)?;
                let raw = raw.as_primitive::<crate::arrow::datatypes::Int64Type>();
                for (row, v) in raw.iter().enumerate() {
                    if v.is_some_and(|v| v.unsigned_abs() > limit as u64) {
                        mark(
                            row,
                            format!("column {name:?}: event time out of range"),
                            &mut bad,
                        );
                    }
                }
            }
        }
        columns.push(converted);
    }
    let full = RecordBatch::try_new(
        target.clone(),
        columns.into_iter().map(|c| c as ArrayRef).collect(),
    )
    .map_err(|e| Error::schema(e.to_string()))?;
    if bad.is_empty() {
        return Ok(Conformed {
            batch: full,
            rejected: Vec::new(),
        });
    }
    let rejected: Vec<(usize, String)> = bad
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
    let keep = BooleanArray::from(bad.iter().map(|b| b.is_none()).collect::<Vec<_>>());
    let batch = filter_record_batch(&full, &keep)?;
    Ok(Conformed { batch, rejected })
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

/// Two columns with one name would make one of them unreachable: refuse.
fn check_unique_names(schema: &Schema) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for f in schema.fields() {
        if !seen.insert(f.name().as_str()) {
            return Err(Error::schema(format!(
                "column {:?} appears more than once in the data",
                f.name()
            )));
        }
    }
    Ok(())
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

/// Whether a column of this type can be the event time (a timestamp of any unit, or a date).
pub fn is_event_time(dt: &DataType) -> bool {
    matches!(dt, DataType::Timestamp(_, _) | DataType::Date32)
}

/// Units per second of a timestamp type.
pub fn units_per_second(dt: &DataType) -> i64 {
    match dt {
        DataType::Timestamp(TimeUnit::Second, _) => 1,
        DataType::Timestamp(TimeUnit::Millisecond, _) => 1_000,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1_000_000,
        _ => 1_000_000_000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_column_names_are_refused() {
        let s = Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
            Field::new("a\0b", DataType::Int64, true),
        ]);
        let e = StoreSchema::from_first_batch(&s, None).unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Schema);
        assert!(e.message.contains("a\\0b"), "{}", e.message);
    }

    #[test]
    fn uint64_keeps_its_type() {
        let s = Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
            Field::new("id", DataType::UInt64, true),
        ]);
        let st = StoreSchema::from_first_batch(&s, None).unwrap();
        assert_eq!(st.column_type("id"), Some(DataType::UInt64));
        assert_eq!(st.column_class("id"), Some(ColumnClass::Int));
    }

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
