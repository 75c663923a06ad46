//! The Arrow PyCapsule interface, both ways, without a Python-side Arrow dependency in Rust:
//! read any object exporting `__arrow_c_stream__`, `__arrow_c_array__` or `__arrow_c_schema__`
//! (pyarrow, polars, DuckDB, pandas), and hand results to pyarrow as a stream capsule.
//!
//! Ownership follows the protocol: importing moves the C struct out of the producer's capsule
//! (leaving it released), exporting boxes our stream in a capsule whose destructor releases it
//! unless pyarrow moved it out first.

use std::ffi::CStr;
use std::ptr::NonNull;

use crate::arrow::array::{
    make_array, Array, ArrayRef, RecordBatch, RecordBatchIterator, RecordBatchReader, StructArray,
};
use crate::arrow::datatypes::{Schema, SchemaRef};
use crate::arrow::ffi::{from_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use crate::arrow::ffi_stream::{ArrowArrayStreamReader, FFI_ArrowArrayStream};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyCapsuleMethods, PyTuple};

use crate::error::Error;

const STREAM: &CStr = c"arrow_array_stream";
const ARRAY: &CStr = c"arrow_array";
const SCHEMA: &CStr = c"arrow_schema";

fn capsule<'py>(
    obj: Bound<'py, PyAny>,
    name: &CStr,
) -> PyResult<(Bound<'py, PyCapsule>, NonNull<std::ffi::c_void>)> {
    let cap = obj.cast_into::<PyCapsule>().map_err(|_| {
        PyTypeError::new_err(format!(
            "the Arrow PyCapsule interface returned something that is not a capsule (expected {name:?})"
        ))
    })?;
    let ptr = cap.pointer_checked(Some(name))?;
    Ok((cap, ptr))
}

fn schema_error(e: impl std::fmt::Display) -> PyErr {
    PyErr::from(Error::schema(e.to_string()))
}

/// The record batches of a table-like object and their schema, each column validated in full
/// (`master::boundary::check_structure`) before anything reads it: the C data interface hands
/// over buffers unchecked. A panic of the importer on malformed data is a `SchemaError` too.
pub fn read_batches(obj: &Bound<'_, PyAny>) -> PyResult<(SchemaRef, Vec<RecordBatch>)> {
    let (schema, batches) = import_batches(obj)?;
    // A batch without rows is replaced by a fresh empty one: producers hand over zero-length
    // slices whose offsets point past their (empty) buffers, which nothing needs to read.
    let batches: Vec<RecordBatch> = batches
        .into_iter()
        .map(|b| {
            if b.num_rows() == 0 {
                RecordBatch::new_empty(b.schema())
            } else {
                b
            }
        })
        .collect();
    for b in &batches {
        for (f, col) in b.schema().fields().iter().zip(b.columns()) {
            let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                crate::master::boundary::check_structure(&col.to_data())
            }))
            .unwrap_or_else(|_| Err("the importer could not read it".into()));
            if let Err(e) = checked {
                return Err(schema_error(format!(
                    "column {:?}: the Arrow data handed over is malformed ({e})",
                    f.name()
                )));
            }
        }
    }
    Ok((schema, batches))
}

fn import_batches(obj: &Bound<'_, PyAny>) -> PyResult<(SchemaRef, Vec<RecordBatch>)> {
    if obj.hasattr("__arrow_c_stream__")? {
        let (_cap, ptr) = capsule(obj.call_method0("__arrow_c_stream__")?, STREAM)?;
        // SAFETY: the capsule holds a valid FFI_ArrowArrayStream (checked by name); from_raw
        // moves it out and leaves a released struct behind, as the protocol asks.
        let reader = unsafe { ArrowArrayStreamReader::from_raw(ptr.as_ptr().cast()) }
            .map_err(schema_error)?;
        let schema = reader.schema();
        let batches = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            reader.collect::<Result<Vec<_>, _>>()
        }))
        .map_err(|_| schema_error("the Arrow data handed over is malformed"))?
        .map_err(schema_error)?;
        return Ok((schema, batches));
    }
    if obj.hasattr("__arrow_c_array__")? {
        let array = read_array(obj)?;
        let data = array.to_data();
        if !matches!(
            data.data_type(),
            crate::arrow::datatypes::DataType::Struct(_)
        ) {
            return Err(schema_error(format!(
                "expected a table (an Arrow struct array), got one column of type {}",
                data.data_type()
            )));
        }
        if data.null_count() > 0 {
            return Err(schema_error(
                "the struct array has null rows: a table's rows cannot be null (drop them, or \
                 give a table)",
            ));
        }
        let batch = RecordBatch::from(StructArray::from(data));
        return Ok((batch.schema(), vec![batch]));
    }
    Err(PyTypeError::new_err(format!(
        "expected an object with __arrow_c_stream__ or __arrow_c_array__, got {}",
        obj.get_type().name()?
    )))
}

/// One array from an object exporting `__arrow_c_array__`.
pub fn read_array(obj: &Bound<'_, PyAny>) -> PyResult<ArrayRef> {
    let pair = obj.call_method0("__arrow_c_array__")?;
    let pair = pair.cast_into::<PyTuple>().map_err(|_| {
        PyTypeError::new_err("__arrow_c_array__ must return a (schema, array) pair of capsules")
    })?;
    let (_s, sptr) = capsule(pair.get_item(0)?, SCHEMA)?;
    let (_a, aptr) = capsule(pair.get_item(1)?, ARRAY)?;
    // SAFETY: both capsules are checked by name; the array struct is moved out (the schema is
    // only borrowed: its capsule keeps owning it).
    let array = unsafe { FFI_ArrowArray::from_raw(aptr.as_ptr().cast()) };
    let schema = unsafe { &*sptr.as_ptr().cast::<FFI_ArrowSchema>() };
    // SAFETY: as above; a panic of the importer on malformed data is caught.
    let data = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || unsafe {
        from_ffi(array, schema)
    }))
    .map_err(|_| schema_error("the Arrow data handed over is malformed"))?
    .map_err(schema_error)?;
    crate::master::boundary::check_structure(&data)
        .map_err(|e| schema_error(format!("the Arrow data handed over is malformed ({e})")))?;
    Ok(make_array(data))
}

/// The schema of an object exporting `__arrow_c_schema__`.
pub fn read_schema(obj: &Bound<'_, PyAny>) -> PyResult<Schema> {
    let (_cap, ptr) = capsule(obj.call_method0("__arrow_c_schema__")?, SCHEMA)?;
    // SAFETY: checked by name; borrowed, the capsule keeps owning it.
    let ffi = unsafe { &*ptr.as_ptr().cast::<FFI_ArrowSchema>() };
    Schema::try_from(ffi).map_err(schema_error)
}

/// Our stream, movable into a capsule (pyarrow may release it on any thread).
#[repr(transparent)]
struct SendStream(FFI_ArrowArrayStream);
// SAFETY: the stream's private data is a boxed `RecordBatchReader + Send`.
unsafe impl Send for SendStream {}

/// A `pyarrow.Table` of `batches`.
pub fn to_pyarrow(
    py: Python<'_>,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> PyResult<Py<PyAny>> {
    let reader = RecordBatchIterator::new(batches.into_iter().map(Ok), schema);
    let stream = SendStream(FFI_ArrowArrayStream::new(Box::new(reader)));
    let cap = PyCapsule::new_with_value(py, stream, STREAM)?;
    let table = py
        .import("pyarrow")?
        .getattr("RecordBatchReader")?
        .call_method1("_import_from_c_capsule", (cap,))?
        .call_method0("read_all")?;
    Ok(table.unbind())
}

/// A pyarrow table of `batches`.
pub(crate) fn table(
    py: Python<'_>,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> PyResult<Py<PyAny>> {
    to_pyarrow(py, schema, batches)
}

pub(crate) fn batch_table(py: Python<'_>, batch: RecordBatch) -> PyResult<Py<PyAny>> {
    let schema = batch.schema();
    table(py, schema, vec![batch])
}
