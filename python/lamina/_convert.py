"""Turning user inputs (data frames, times) into what the core takes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

from lamina.errors import InvalidArgumentError, SchemaError


def to_arrow(data: Any) -> Any:
    """Anything table-like, as an object the core can read through the Arrow PyCapsule interface."""
    if hasattr(data, "__arrow_c_stream__") or hasattr(data, "__arrow_c_array__"):
        return data
    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        return pa.Table.from_pandas(data, preserve_index=False)
    for method in ("to_arrow", "arrow"):  # older polars / duckdb relations
        if hasattr(data, method):
            return getattr(data, method)()
    if isinstance(data, dict):
        return pa.table(data)
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return pa.Table.from_pylist(data)
    raise SchemaError(
        f"cannot append a {type(data).__name__}: pass a pyarrow Table/RecordBatch/RecordBatchReader, "
        "a polars or pandas DataFrame, a DuckDB relation, or any Arrow PyCapsule producer"
    )


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def to_micros(value: Any, name: str) -> int | None:
    """A time bound as microseconds since the epoch, UTC. Naive datetimes are taken as UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError as e:
            raise InvalidArgumentError(f"{name}: cannot parse {value!r} as an ISO date-time") from e
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        value = value.to_pydatetime()
    if type(value).__module__ == "numpy":
        value = pa.scalar(value).as_py()
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(value, dt.date):
        return to_micros(dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC), name)
    if isinstance(value, pa.TimestampScalar):
        return to_micros(value.as_py(), name)
    raise InvalidArgumentError(f"{name} must be a datetime, date or ISO string, not {value!r}")
