"""Turning user inputs (data frames, times) into what the core takes.

Bad user data never escapes as a foreign exception (pyarrow's, pandas', numpy's, TypeError): it is
a :class:`lamina.SchemaError` naming the column and, where one can be found, the first bad row.
Arrow PyCapsule producers are passed through untouched (zero-copy); the conversions of other
inputs run column by column inside pyarrow, and only a failed conversion is looked into further.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa

from lamina.errors import InvalidArgumentError, LaminaError, SchemaError

# What converting user data can raise: pyarrow's ArrowInvalid / ArrowTypeError /
# ArrowNotImplementedError / ArrowIndexError / ArrowKeyError derive from these, as do numpy's and
# pandas' conversion errors. MemoryError and OSError are not data problems and pass through.
_DATA_ERRORS = (TypeError, ValueError, OverflowError, LookupError, AttributeError, NotImplementedError)

_ACCEPTED = (
    "pass a pyarrow Table/RecordBatch/RecordBatchReader, a polars or pandas DataFrame, a DuckDB "
    "relation, any Arrow PyCapsule producer, a dict of columns or a list of dicts (one per row)"
)


def to_arrow(data: Any) -> Any:
    """Anything table-like, as an object the core can read through the Arrow PyCapsule interface."""
    out = _to_arrow(data)
    # The Arrow C interface carries names as C strings: a NUL would cut a name short silently.
    for source in (data, out):
        for name in _column_names(source):
            if isinstance(name, str) and any(ord(c) < 32 or ord(c) == 127 for c in name):
                raise SchemaError(
                    f"column {name!r}: names must hold no control characters (NUL, newline, tab)"
                )
    return out


def _column_names(data: Any) -> list[Any]:
    """The column names an object says it has (pyarrow, polars, pandas, DuckDB), without reading it."""
    schema = getattr(data, "schema", None)
    names = getattr(schema, "names", None)
    if isinstance(names, list):
        return names
    try:
        columns = getattr(data, "columns", None)
        if isinstance(columns, list) or hasattr(columns, "tolist"):
            return list(columns)  # type: ignore[arg-type]
        return []
    except Exception:  # a foreign object's property: no names to check
        return []


def _to_arrow(data: Any) -> Any:
    # pandas DataFrames have __arrow_c_stream__ (pandas >= 2.2), but it exports the index as a
    # column "__index_level_0__" unless it is a RangeIndex: handle them before the capsule path.
    if _is_instance(data, "pandas", "DataFrame"):
        return _from_pandas(data)
    _refuse_single_column(data)
    if hasattr(data, "__arrow_c_stream__") or hasattr(data, "__arrow_c_array__"):
        return data  # zero-copy: the core reads it through the Arrow PyCapsule interface
    if isinstance(data, Mapping):
        return _from_columns(data)
    if isinstance(data, list | tuple) and data and isinstance(data[0], Mapping):
        return _from_rows(data)
    if type(data).__module__ == "numpy" and getattr(getattr(data, "dtype", None), "names", None):
        return _from_structured(data)
    for method in ("to_arrow", "arrow"):  # older polars / duckdb relations
        if callable(getattr(data, method, None)):
            try:
                out = getattr(data, method)()
            except _DATA_ERRORS as e:
                raise SchemaError(f"cannot convert a {type(data).__name__} to Arrow: {_why(e)}") from e
            if hasattr(out, "__arrow_c_stream__") or hasattr(out, "__arrow_c_array__"):
                _refuse_single_column(out)
                return out
    raise SchemaError(f"cannot append a {type(data).__name__}: {_ACCEPTED}")


def _is_instance(data: Any, module: str, name: str) -> bool:
    """isinstance(data, module.name), without importing the module (if it is not imported, data
    cannot be one of its objects)."""
    cls = getattr(sys.modules.get(module), name, None)
    return isinstance(cls, type) and isinstance(data, cls)


def _refuse_single_column(data: Any) -> None:
    """A series or a non-struct array has the capsule interface too, but is one column, not a table."""
    if isinstance(data, pa.Array | pa.ChunkedArray) and not pa.types.is_struct(data.type):
        raise SchemaError(
            f"cannot append a single {type(data).__name__} of type {data.type}: it has no column names; "
            "pass a table, e.g. pa.table({'ts': ..., 'x': ...})"
        )
    for module in ("pandas", "polars"):
        if _is_instance(data, module, "Series"):
            raise SchemaError(
                f"cannot append a {module} Series ({data.name!r}): it is one column; "
                "pass a DataFrame, e.g. series.to_frame()"
            )


def _why(e: BaseException) -> str:
    """pyarrow's reason, without the tuple pandas conversions wrap it in."""
    if len(e.args) > 1 and isinstance(e.args[0], str):
        return e.args[0]
    return str(e)


def _where(name: Any, row: int | None) -> str:
    return f'column "{name}"' + ("" if row is None else f", row {row}")


def _first_bad_row(convert: Callable[[int], object], n: int) -> int | None:
    """The first row i such that rows 0..i do not convert together, found by bisection with
    ``convert(k)`` (converts the first k rows) on the error path: O(log n) conversions, all in
    pyarrow. None if even no rows fail or all n rows convert."""
    try:
        convert(0)
    except _DATA_ERRORS:
        return None
    try:
        convert(n)
        return None
    except _DATA_ERRORS:
        pass
    good, bad = 0, n
    while bad - good > 1:
        mid = (good + bad) // 2
        try:
            convert(mid)
            good = mid
        except _DATA_ERRORS:
            bad = mid
    return bad - 1


# ---------------------------------------------------------------- pandas


def _from_pandas(df: Any) -> pa.Table:
    """A pandas DataFrame as a table: named index levels become columns, unnamed ones are dropped
    (a RangeIndex, or the shuffled index left by sort_values / concat, is not data)."""
    named = [level for level in df.index.names if level is not None]
    if named:
        clash = [level for level in named if level in df.columns]
        if clash:
            raise SchemaError(
                f'column "{clash[0]}" is both an index level and a column of the DataFrame: '
                "rename one, or drop the index with df.reset_index(drop=True)"
            )
        try:
            df = df.reset_index(level=named)
        except _DATA_ERRORS as e:  # e.g. two index levels of the same name
            raise SchemaError(f"cannot turn the index levels {named} into columns: {_why(e)}") from e
    try:
        return pa.Table.from_pandas(df, preserve_index=False)
    except _DATA_ERRORS as e:
        raise _pandas_error(df, e) from e


def _pandas_error(df: Any, error: BaseException) -> SchemaError:
    """Which column of a DataFrame pyarrow cannot convert (one conversion per column, and a
    bisection for the first bad row of that column)."""
    duplicated = df.columns[df.columns.duplicated()]
    if len(duplicated):
        return SchemaError(f'column "{duplicated[0]}" appears more than once in the DataFrame')
    for i, name in enumerate(df.columns):
        column = df.iloc[:, [i]]
        try:
            pa.Table.from_pandas(column, preserve_index=False)
        except _DATA_ERRORS as e:

            def convert(k: int, column: Any = column) -> object:
                return pa.Table.from_pandas(column.iloc[:k], preserve_index=False)

            row = _first_bad_row(convert, len(column))
            return SchemaError(
                f"{_where(name, row)}: cannot convert the {column.dtypes.iloc[0]} column to Arrow: {_why(e)}"
            )
    return SchemaError(f"cannot convert the DataFrame to Arrow: {_why(error)}")


# ---------------------------------------------------------------- dicts, rows, numpy


def _from_columns(data: Mapping[Any, Any]) -> pa.Table:
    """A dict of columns (lists, numpy arrays, pandas series, Arrow arrays) as a table."""
    for name, values in data.items():
        if not isinstance(name, str):
            raise SchemaError(f"column names must be strings, not {name!r}")
        if isinstance(values, str | bytes | Mapping) or not hasattr(values, "__len__"):
            raise SchemaError(
                f'column "{name}" must be a list or array of values (got {type(values).__name__})'
            )
    columns = dict(data)
    try:
        return pa.table(columns)
    except _DATA_ERRORS as e:
        raise _columns_error(columns, e) from e


def _columns_error(columns: dict[str, Any], error: BaseException) -> SchemaError:
    """Which column pyarrow cannot convert, or which one has a different length from the first."""
    lengths: dict[str, int] = {}
    for name, values in columns.items():
        try:
            lengths[name] = pa.table({name: values}).num_rows
        except _DATA_ERRORS as e:
            row = None
            if hasattr(values, "__getitem__"):
                part = values.iloc if hasattr(values, "iloc") else values

                def convert(k: int, v: Any = part, n: str = name) -> object:
                    return pa.table({n: v[:k]})

                row = _first_bad_row(convert, len(values))
            return SchemaError(f"{_where(name, row)}: cannot convert to Arrow: {_why(e)}")
    first = next(iter(lengths), "")
    for name, n in lengths.items():
        if n != lengths[first]:
            return SchemaError(
                f'column "{name}" has {n} rows, but column "{first}" has {lengths[first]}: '
                "every column needs one value per row"
            )
    return SchemaError(f"cannot convert the columns to Arrow: {_why(error)}")


def _from_rows(rows: list[Any] | tuple[Any, ...]) -> pa.Table:
    """A list of dicts, one per row, as a table. The columns are every key of any row, in order
    of first appearance (a key missing from a row is null there): nothing is dropped."""
    try:
        array = pa.array(rows)
    except _DATA_ERRORS as e:
        raise _rows_error(rows, e) from e
    if not pa.types.is_struct(array.type) or array.null_count:
        raise _rows_error(rows, None)
    return pa.Table.from_struct_array(array)


def _rows_error(rows: list[Any] | tuple[Any, ...], error: BaseException | None) -> SchemaError:
    """What is wrong with a list of rows that pyarrow refused (the error path; rows are looked at
    one by one here only)."""
    names: dict[str, None] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            return SchemaError(f"row {i} is not a dict ({type(row).__name__}): pass one dict per row")
        for key in row:
            if not isinstance(key, str):
                return SchemaError(f"row {i}: column names must be strings, not {key!r}")
        names.update(dict.fromkeys(row))
    columns = {name: [row.get(name) for row in rows] for name in names}
    return _columns_error(columns, error or ValueError("not a list of dicts"))


def _from_structured(array: Any) -> pa.Table:
    """A one-dimensional numpy structured array: one column per field."""
    if array.ndim != 1:
        raise SchemaError(f"cannot append a {array.ndim}-dimensional structured array: pass a 1-D one")
    return _from_columns({name: array[name] for name in array.dtype.names})


# ---------------------------------------------------------------- times

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _is_naive(value: Any) -> bool:
    """Whether a time bound names a wall-clock time without a zone."""
    if isinstance(value, pa.Scalar):
        t = value.type
        return pa.types.is_date(t) or (pa.types.is_timestamp(t) and t.tz is None)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return False
    if hasattr(value, "to_pydatetime") and type(value).__name__ != "NaTType":
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        return value.tzinfo is None
    if isinstance(value, dt.date):
        return True
    return type(value).__module__ == "numpy" and getattr(getattr(value, "dtype", None), "kind", None) == "M"


#: Microseconds per unit of numpy's fixed-width datetime units (None: finer than a microsecond,
#: divided instead).
_NUMPY_UNITS = {
    "W": 604_800_000_000,
    "D": 86_400_000_000,
    "h": 3_600_000_000,
    "m": 60_000_000,
    "s": 1_000_000,
    "ms": 1_000,
    "us": 1,
}
_NUMPY_FINER = {"ns": 1_000, "ps": 1_000_000, "fs": 1_000_000_000, "as": 1_000_000_000_000}
_MICROS = (-(1 << 63), (1 << 63) - 1)


def _numpy_micros(value: Any, name: str) -> int:
    """A numpy.datetime64 as microseconds, exactly (in Python integers): a value beyond int64
    microseconds is refused, never wrapped (numpy's own unit casts wrap silently)."""
    import numpy as np

    unit, count = np.datetime_data(value.dtype)
    if unit in ("Y", "M"):  # calendar units: numpy converts them to days exactly, or wraps
        days = value.astype("datetime64[D]")
        if days.astype(value.dtype) != value:
            raise InvalidArgumentError(f"{name}: {value!r} is beyond the times lamina takes")
        value, unit, count = days, "D", 1
    raw = int(value.astype("int64")) * count
    # Finer than a microsecond: rounded up, which keeps half-open ranges exact (a bucket start,
    # a whole microsecond, is >= t exactly when it is >= ceil(t), and < t when < ceil(t)).
    micros = raw * _NUMPY_UNITS[unit] if unit in _NUMPY_UNITS else -(-raw // _NUMPY_FINER[unit])
    if not _MICROS[0] <= micros <= _MICROS[1]:
        raise InvalidArgumentError(
            f"{name}: {value!r} is beyond the times lamina takes (int64 microseconds, about "
            "292,000 years either side of 1970)"
        )
    return micros


def to_micros(value: Any, name: str, tz: str | None = None) -> int | None:
    """A time bound as microseconds since the epoch, UTC. A naive datetime, a date or an ISO
    string without an offset is a wall-clock time in ``tz`` (a zoned view's zone), else UTC."""
    if value is None:
        return None
    if tz is not None and _is_naive(value):
        from lamina import _core

        local = to_micros(value, name)
        assert local is not None
        try:
            return _core.zone_instant(tz, local)
        except LaminaError as e:
            raise InvalidArgumentError(f"{name}: {e}") from None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError as e:
            raise InvalidArgumentError(f"{name}: cannot parse {value!r} as an ISO date-time") from e
    if isinstance(value, pa.Scalar):
        if not value.is_valid:
            raise InvalidArgumentError(f"{name} is a null {value.type} scalar, not a time")
        try:
            value = value.as_py()
        except _DATA_ERRORS as e:
            raise InvalidArgumentError(f"{name}: cannot read the {value.type} scalar: {e}") from e
    if type(value).__module__ == "numpy":
        if getattr(getattr(value, "dtype", None), "kind", None) == "M":  # numpy.datetime64, any unit
            if value != value:
                raise InvalidArgumentError(f"{name} is NaT, not a time")
            return _numpy_micros(value, name)
        raise InvalidArgumentError(f"{name} must be a datetime, date or ISO string, not {value!r}")
    if type(value).__name__ == "NaTType":  # pandas.NaT, a datetime subclass
        raise InvalidArgumentError(f"{name} is NaT, not a time")
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(value, dt.date):
        return to_micros(dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC), name)
    raise InvalidArgumentError(f"{name} must be a datetime, date or ISO string, not {value!r}")
