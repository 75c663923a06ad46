//! The store's schema (`conform` casts incoming batches to it).
//!
//! The first append fixes the schema. Strings of every Arrow flavour (utf8, large_utf8, utf8_view,
//! dictionary of strings) are stored as `utf8`; every other column keeps the type of the first
//! append. Later appends may bring narrower or wider integers, other timestamp units or string
//! flavours: they are cast, and a value that does not fit is reported with its row.

use std::sync::Arc;

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
            let dt = declared_type(f);
            if dt == DataType::Null {
                return Err(Error::schema(format!(
                    "column {:?} holds only nulls (type null), so its type cannot be told: give it \
                     a type (pa.array(values, pa.string()), df.astype(...)) or fix the schema up \
                     front with Store(path, schema=...)",
                    f.name()
                )));
            }
            if classify(&dt).is_none() {
                return Err(Error::schema(format!(
                    "column {:?} has unsupported type {}; lamina stores timestamps, dates, integers, floats, booleans and strings",
                    f.name(),
                    dt
                )));
            }
            columns.push(ColumnSpec {
                name: f.name().clone(),
                arrow_type: type_to_str(&stored_type(&dt)),
            });
        }
        let declared: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), declared_type(f), true))
            .collect();
        let schema = &Schema::new(declared);
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

/// Two columns with one name would make one of them unreachable: refuse.
pub(crate) fn check_unique_names(schema: &Schema) -> Result<()> {
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

/// The type a first append fixes for a column: its own, or for text a file reader marked with
/// the type its values are to be read as (`TEXT_KEY` = `"timestamp[us]"`), that type.
fn declared_type(f: &Field) -> DataType {
    f.metadata()
        .get(crate::master::conform::TEXT_KEY)
        .and_then(|t| type_from_str(t))
        .filter(|_| classify(f.data_type()) == Some(ColumnClass::Str))
        .unwrap_or_else(|| f.data_type().clone())
}

/// Whether every value of `from` converts to `to` exactly (a widening a schema evolution may
/// make): narrower to wider integers (unsigned into a wider signed one too), integers of up to
/// 32 bits and float32 into float64, and seconds or milliseconds into microseconds (every time
/// lamina accepts fits microseconds).
pub fn widens(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let bits = |t: &DataType| match t {
        Int8 | UInt8 => 8,
        Int16 | UInt16 => 16,
        Int32 | UInt32 => 32,
        Int64 | UInt64 => 64,
        _ => 0,
    };
    let signed = |t: &DataType| matches!(t, Int8 | Int16 | Int32 | Int64);
    let unsigned = |t: &DataType| matches!(t, UInt8 | UInt16 | UInt32 | UInt64);
    match (from, to) {
        (a, b) if signed(a) && signed(b) => bits(a) < bits(b),
        (a, b) if unsigned(a) && unsigned(b) => bits(a) < bits(b),
        (a, b) if unsigned(a) && signed(b) => bits(a) < bits(b),
        (a, Float64) if (signed(a) || unsigned(a)) && bits(a) <= 32 => true,
        (Float32, Float64) => true,
        (
            Timestamp(TimeUnit::Second | TimeUnit::Millisecond, a),
            Timestamp(TimeUnit::Microsecond, b),
        ) => a == b,
        (Timestamp(TimeUnit::Second, a), Timestamp(TimeUnit::Millisecond, b)) => a == b,
        _ => false,
    }
}

impl StoreSchema {
    /// Check that `new` is an additive evolution of this schema: the same event time, every
    /// column kept (in its type or a lossless widening, see `widens`), and new columns. Returns
    /// the names of the widened columns.
    pub fn check_evolution(&self, new: &StoreSchema) -> Result<Vec<String>> {
        if new.time_column != self.time_column {
            return Err(Error::schema(format!(
                "the event-time column is {:?}; a schema evolution cannot change it to {:?}",
                self.time_column, new.time_column
            )));
        }
        let mut widened = Vec::new();
        for old in &self.columns {
            let Some(now) = new.columns.iter().find(|c| c.name == old.name) else {
                return Err(Error::schema(format!(
                    "column {:?} is missing from the new schema: a schema evolution only adds \
                     columns (old segments keep every column)",
                    old.name
                )));
            };
            if now.arrow_type != old.arrow_type {
                let (Some(a), Some(b)) = (
                    type_from_str(&old.arrow_type),
                    type_from_str(&now.arrow_type),
                ) else {
                    return Err(Error::schema(format!(
                        "column {:?}: unknown type",
                        old.name
                    )));
                };
                if !widens(&a, &b) {
                    return Err(Error::schema(format!(
                        "column {:?}: {} cannot become {}: a schema evolution only widens types \
                         losslessly (int32 to int64, float32 to float64, ...)",
                        old.name, old.arrow_type, now.arrow_type
                    )));
                }
                widened.push(old.name.clone());
            }
        }
        Ok(widened)
    }
}

/// Whether a column of this type can be the event time (a timestamp of any unit, or a date).
pub fn is_event_time(dt: &DataType) -> bool {
    matches!(dt, DataType::Timestamp(_, _) | DataType::Date32)
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
}
