//! What crosses the store's boundary is checked before anything else looks at it.
//!
//! Arrow data handed over the C data interface (pyarrow, polars, DuckDB, any PyCapsule producer)
//! is imported without validation: its buffers may be shorter than its offsets claim, its
//! dictionary keys may point past their values, its `utf8` bytes may not be UTF-8. Every kernel
//! lamina runs (concatenation, casts, hashing, the Parquet writer) assumes valid data, and a
//! segment holding invalid UTF-8 cannot be read back by any Parquet reader. So:
//!
//! * [`check_structure`] validates imported data fully (offsets, buffer sizes, dictionary keys,
//!   null counts, recursively) before an array is built from it; a failure is a column-level
//!   error naming the column;
//! * [`repair_utf8`] finds the rows of string columns whose bytes are not UTF-8 (a row-level
//!   problem, which the quarantine policy can set aside) and gives a copy of the column in which
//!   those values are replaced lossily, so that no later step ever sees invalid text;
//! * [`check_time`] holds the range of times every layer can bucket, checked at append for
//!   every timestamp and date column (a view may take any of them as its time).

use std::sync::Arc;

use crate::arrow::array::{
    Array, ArrayData, ArrayRef, AsArray, BinaryViewArray, GenericStringArray, GenericStringBuilder,
    OffsetSizeTrait, StringViewBuilder,
};
use crate::arrow::datatypes::{DataType, Field, FieldRef};

/// Is `dt` one of the string types whose bytes must be UTF-8?
fn is_text(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// `dt` with every string type replaced by the binary type of the same layout.
fn as_binary_type(dt: &DataType) -> DataType {
    let field = |f: &FieldRef| -> FieldRef {
        Arc::new(Field::new(
            f.name(),
            as_binary_type(f.data_type()),
            f.is_nullable(),
        ))
    };
    match dt {
        DataType::Utf8 => DataType::Binary,
        DataType::LargeUtf8 => DataType::LargeBinary,
        DataType::Utf8View => DataType::BinaryView,
        DataType::Dictionary(k, v) => DataType::Dictionary(k.clone(), Box::new(as_binary_type(v))),
        DataType::List(f) => DataType::List(field(f)),
        DataType::LargeList(f) => DataType::LargeList(field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(field(f), *n),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(field).collect()),
        other => other.clone(),
    }
}

/// `data` retyped by `as_binary_type`, buffers untouched (the layouts are the same).
fn as_binary_data(data: &ArrayData) -> ArrayData {
    let children = data.child_data().iter().map(as_binary_data).collect();
    let builder = data
        .clone()
        .into_builder()
        .data_type(as_binary_type(data.data_type()))
        .child_data(children);
    // SAFETY: only the type changes, to one with the same physical layout (utf8 -> binary);
    // nothing reads the data before `check_structure` validates it in full.
    unsafe { builder.build_unchecked() }
}

/// Validate imported data in full (buffer sizes, offsets, dictionary keys, null counts, every
/// child), except that text need not be UTF-8 here: `repair_utf8` deals with that row by row.
pub fn check_structure(data: &ArrayData) -> std::result::Result<(), String> {
    let retyped = as_binary_data(data);
    retyped.validate_full().map_err(|e| e.to_string())
}

/// A string column with invalid UTF-8 in some rows: those rows, and the column with their
/// values replaced lossily (U+FFFD), everything else unchanged.
pub struct BadText {
    pub rows: Vec<usize>,
    pub repaired: ArrayRef,
}

/// The rows of a string column (any flavour, or a dictionary of strings) whose bytes are not
/// UTF-8; None when there are none (the common case costs one pass over the bytes).
pub fn repair_utf8(col: &ArrayRef) -> Option<BadText> {
    match col.data_type() {
        DataType::Utf8 => offsets_text::<i32>(col.as_string::<i32>()),
        DataType::LargeUtf8 => offsets_text::<i64>(col.as_string::<i64>()),
        DataType::Utf8View => view_text(col),
        DataType::Dictionary(_, v) if is_text(v) => {
            let dict = col.as_any_dictionary();
            let bad = repair_utf8(dict.values())?;
            let mut bad_value = vec![false; dict.values().len()];
            for &i in &bad.rows {
                bad_value[i] = true;
            }
            let keys = dict.normalized_keys();
            let rows = (0..col.len())
                .filter(|&i| col.is_valid(i) && keys.get(i).is_some_and(|&k| bad_value[k]))
                .collect();
            Some(BadText {
                rows,
                repaired: dict.with_values(bad.repaired),
            })
        }
        _ => None,
    }
}

fn offsets_text<O: OffsetSizeTrait>(a: &GenericStringArray<O>) -> Option<BadText> {
    let bytes = a.value_data();
    let offsets = a.value_offsets();
    let (lo, hi) = (offsets[0].as_usize(), offsets[offsets.len() - 1].as_usize());
    let boundary = |o: usize| o >= hi || (bytes[o] as i8) >= -0x40; // not a continuation byte
    if std::str::from_utf8(&bytes[lo..hi]).is_ok() && offsets.iter().all(|o| boundary(o.as_usize()))
    {
        return None;
    }
    let value = |i: usize| &bytes[offsets[i].as_usize()..offsets[i + 1].as_usize()];
    let rows: Vec<usize> = (0..a.len())
        .filter(|&i| a.is_valid(i) && std::str::from_utf8(value(i)).is_err())
        .collect();
    if rows.is_empty() {
        return None; // only null slots held stray bytes
    }
    let mut b = GenericStringBuilder::<O>::with_capacity(a.len(), hi - lo);
    for i in 0..a.len() {
        if a.is_valid(i) {
            b.append_value(String::from_utf8_lossy(value(i)));
        } else {
            b.append_null();
        }
    }
    Some(BadText {
        rows,
        repaired: Arc::new(b.finish()),
    })
}

fn view_text(col: &ArrayRef) -> Option<BadText> {
    let data = as_binary_data(&col.to_data());
    let a = BinaryViewArray::from(data);
    let rows: Vec<usize> = (0..a.len())
        .filter(|&i| a.is_valid(i) && std::str::from_utf8(a.value(i)).is_err())
        .collect();
    if rows.is_empty() {
        return None;
    }
    let mut b = StringViewBuilder::with_capacity(a.len());
    for i in 0..a.len() {
        if a.is_valid(i) {
            b.append_value(String::from_utf8_lossy(a.value(i)));
        } else {
            b.append_null();
        }
    }
    Some(BadText {
        rows,
        repaired: Arc::new(b.finish()),
    })
}

/// The first bytes of a value with invalid UTF-8, for a message (`"ab\xff"`).
pub fn preview(col: &ArrayRef, row: usize) -> String {
    let bytes: Vec<u8> = match col.data_type() {
        DataType::Utf8 => col.as_string::<i32>().value(row).as_bytes().to_vec(),
        DataType::LargeUtf8 => col.as_string::<i64>().value(row).as_bytes().to_vec(),
        DataType::Utf8View => col.as_string_view().value(row).as_bytes().to_vec(),
        _ => return String::new(),
    };
    let text: String = String::from_utf8_lossy(&bytes).chars().take(40).collect();
    format!("{text:?}")
}

/// The earliest and latest instants (microseconds since 1970) lamina accepts in a timestamp or
/// date column: 99,999 BC (proleptic Gregorian year -99,999) to the end of the year 99,999.
/// Every grain a view may be defined with (at most 10,000 years) buckets every time in this
/// range without leaving int64 microseconds, so what an append accepts the batch, speed and
/// serving layers can always bucket.
pub use crate::time::{MAX_TIME_US, MIN_TIME_US};

/// Whether a time in microseconds (i128, so any unit's value converts exactly) lies in range.
#[inline]
pub fn check_time(micros: i128) -> bool {
    (MIN_TIME_US as i128..=MAX_TIME_US as i128).contains(&micros)
}

/// How deeply a JSON value may nest: pyarrow's reader overflows its stack (and kills the
/// process) on values nested some thousands of levels deep; lamina stores scalars only.
pub const MAX_JSON_DEPTH: usize = 64;

/// Whether a JSON text is one object: its first byte after white space is `{`, the object it
/// opens closes at its last byte before white space (so `{..} {..}` is not one), and nothing in
/// it nests deeper than `MAX_JSON_DEPTH`. Checked before a JSON reader sees a message or line:
/// pyarrow's reader crashes the process on a top-level `null` or deep nesting, and reads other
/// values wrongly. (The rest of the syntax is the reader's to check.)
pub fn is_json_object(v: &[u8]) -> bool {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let (Some(first), Some(last)) = (
        v.iter().position(|b| !ws(b)),
        v.iter().rposition(|b| !ws(b)),
    ) else {
        return false;
    };
    if v[first] != b'{' || v[last] != b'}' {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in v.iter().enumerate().take(last + 1).skip(first) {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return false;
                }
            }
            b'}' | b']' => {
                depth = match depth.checked_sub(1) {
                    Some(d) => d,
                    None => return false,
                };
                // The outer object closed before the end: more than one value.
                if depth == 0 && i != last {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0 && !in_string
}

/// A JSON-lines text screened line by line: the lines that are one JSON object (joined by
/// newlines, for the reader), the 1-based line number of each, and the lines that are not
/// (line number, bytes). Blank lines are neither.
pub struct JsonLines {
    pub objects: Vec<u8>,
    pub lines: Vec<u64>,
    pub rejected: Vec<(u64, Vec<u8>)>,
}

pub fn screen_json_lines(data: &[u8]) -> JsonLines {
    let mut out = JsonLines {
        objects: Vec::with_capacity(data.len()),
        lines: Vec::new(),
        rejected: Vec::new(),
    };
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
            continue;
        }
        if is_json_object(line) {
            out.objects.extend_from_slice(line);
            out.objects.push(b'\n');
            out.lines.push(i as u64 + 1);
        } else {
            out.rejected.push((i as u64 + 1, line.to_vec()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arrow::array::{
        BinaryArray, DictionaryArray, Int32Array, StringArray, StringViewArray,
    };
    use crate::arrow::datatypes::Int32Type;

    fn utf8_of(bin: BinaryArray) -> ArrayRef {
        let data = bin.to_data().into_builder().data_type(DataType::Utf8);
        // SAFETY: test data; exactly what an FFI import of such bytes produces.
        Arc::new(StringArray::from(unsafe { data.build_unchecked() }))
    }

    #[test]
    fn invalid_utf8_is_found_row_by_row_and_repaired() {
        let col = utf8_of(BinaryArray::from(vec![
            Some(b"ok".as_ref()),
            Some(b"\xff"),
            None,
            Some("é".as_bytes()),
            Some(b"a\xc3"),
        ]));
        let bad = repair_utf8(&col).expect("rows 1 and 4 are not UTF-8");
        assert_eq!(bad.rows, vec![1, 4]);
        let fixed = bad.repaired.as_string::<i32>();
        assert_eq!(fixed.value(0), "ok");
        assert_eq!(fixed.value(1), "\u{fffd}");
        assert!(fixed.is_null(2));
        assert_eq!(fixed.value(3), "é");
        assert!(fixed.to_data().validate_full().is_ok());
        let good: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), None, Some("ü")]));
        assert!(repair_utf8(&good).is_none());
    }

    #[test]
    fn a_value_cut_inside_a_character_is_invalid_even_if_the_buffer_is_valid() {
        // "é" split between two values: the whole buffer is UTF-8, each half is not.
        let col = utf8_of(BinaryArray::from(vec![&b"\xc3"[..], &b"\xa9"[..]]));
        assert_eq!(repair_utf8(&col).unwrap().rows, vec![0, 1]);
    }

    #[test]
    fn views_and_dictionaries_are_checked_too() {
        let bin = BinaryViewArray::from(vec![
            &b"fine, and long enough to be out of line"[..],
            b"\xfe",
        ]);
        let data = bin.to_data().into_builder().data_type(DataType::Utf8View);
        let col: ArrayRef = Arc::new(StringViewArray::from(unsafe { data.build_unchecked() }));
        assert_eq!(repair_utf8(&col).unwrap().rows, vec![1]);

        let values = utf8_of(BinaryArray::from(vec![&b"x"[..], b"\xff"]));
        let keys = Int32Array::from(vec![Some(1), Some(0), None, Some(1)]);
        let dict: ArrayRef = Arc::new(DictionaryArray::<Int32Type>::try_new(keys, values).unwrap());
        let bad = repair_utf8(&dict).unwrap();
        assert_eq!(bad.rows, vec![0, 3]);
        assert!(bad.repaired.to_data().validate_full().is_ok());
    }

    #[test]
    fn malformed_structure_is_refused_but_bad_text_is_left_to_the_rows() {
        let col = utf8_of(BinaryArray::from(vec![&b"\xff"[..]]));
        assert!(check_structure(&col.to_data()).is_ok());
        // Offsets that run past the values buffer.
        let data = StringArray::from(vec!["abc"]).to_data();
        let short = data.into_builder().buffers(vec![
            crate::arrow::buffer::Buffer::from_slice_ref([0i32, 10]),
            crate::arrow::buffer::Buffer::from_slice_ref(b"abc"),
        ]);
        let bad = unsafe { short.build_unchecked() };
        assert!(check_structure(&bad).is_err());
        // Dictionary keys past their values.
        let dict = DictionaryArray::<Int32Type>::try_new(
            Int32Array::from(vec![0]),
            Arc::new(StringArray::from(vec!["a"])),
        )
        .unwrap()
        .to_data();
        let keys = Int32Array::from(vec![5]).to_data();
        let broken = dict.into_builder().buffers(keys.buffers().to_vec());
        assert!(check_structure(&unsafe { broken.build_unchecked() }).is_err());
    }

    #[test]
    fn only_json_objects_pass_the_screen() {
        for ok in [&b"{}"[..], b" {\"a\": null} ", b"{\"a\":[1,{}]}\r"] {
            assert!(is_json_object(ok), "{ok:?}");
        }
        for bad in [
            &b"null"[..],
            b"",
            b"  ",
            b"1",
            b"\"x\"",
            b"[{}]",
            b"true",
            b"{\"a\":1",
            b"x{}",
        ] {
            assert!(!is_json_object(bad), "{bad:?}");
        }
        // Two objects on one line, and deep nesting (which crashes pyarrow's reader).
        assert!(!is_json_object(b"{\"a\":1} {\"a\":2}"));
        assert!(!is_json_object(b"{\"a\":1}{\"a\":2}"));
        assert!(
            is_json_object(b"{\"a\":\"} {\"}"),
            "braces inside strings do not count"
        );
        assert!(
            is_json_object(b"{\"a\":\"\\\" }\"}"),
            "an escaped quote stays in the string"
        );
        let deep = |n: usize| [b"{\"a\":".repeat(n), b"1".to_vec(), b"}".repeat(n)].concat();
        assert!(is_json_object(&deep(MAX_JSON_DEPTH)));
        assert!(!is_json_object(&deep(MAX_JSON_DEPTH + 1)));
        assert!(!is_json_object(&deep(100_000)));
        let s = screen_json_lines(b"null\n{\"a\":1}\n\n 7 \n{\"a\":2}");
        assert_eq!(s.objects, b"{\"a\":1}\n{\"a\":2}\n".to_vec());
        assert_eq!(s.lines, vec![2, 5]);
        assert_eq!(
            s.rejected,
            vec![(1, b"null".to_vec()), (4, b" 7 ".to_vec())]
        );
    }

    #[test]
    fn the_time_range_is_the_years_minus_99999_to_99999() {
        assert!(check_time(0));
        assert!(check_time(MIN_TIME_US as i128) && check_time(MAX_TIME_US as i128));
        assert!(!check_time(MIN_TIME_US as i128 - 1));
        assert!(!check_time(MAX_TIME_US as i128 + 1));
        assert!(!check_time(i64::MIN as i128) && !check_time(i64::MAX as i128));
    }
}
