"""Input files as Arrow tables: Parquet, CSV (and TSV) and JSON lines, compressed or not.

Shared by the command line (``lamina ingest``) and :class:`lamina.DirectorySource`. Text formats
cannot say everything a store needs, so a few repairs are made against the store's schema
(all-null columns, numbers read where the store holds strings, event times given as ISO-8601
strings); the core checks everything else.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa

from lamina.errors import InputFileError

FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")
_CODECS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}
#: Field metadata marking text the core parses into the store's number or boolean type.
TEXT_KEY = "lamina.text"


def infer_format(path: Path) -> str | None:
    """The format of ``path`` from its extension (None if unknown)."""
    suffixes = [s.lower() for s in path.suffixes]
    while suffixes and suffixes[-1] in COMPRESSED:
        suffixes.pop()
    if suffixes and suffixes[-1] in FORMATS:
        return FORMATS[suffixes[-1]]
    return None


def _parse_times(column: pa.ChunkedArray | pa.Array, lenient: bool = False) -> pa.Array:
    """ISO-8601 strings as timestamps (UTC). Offsets are honoured; naive times are taken as UTC.
    An unreadable time is an error, or with ``lenient`` a null (the core then quarantines the
    row, with its reason)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    for target in (pa.timestamp("us"), pa.timestamp("us", tz="UTC")):
        try:
            return array.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    out: list[dt.datetime | None] = []
    for i, text in enumerate(array.to_pylist()):
        if text is None or text == "":
            out.append(None)
            continue
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError as e:
            if lenient:
                out.append(None)
                continue
            raise InputFileError(f"row {i}: cannot read {text!r} as a date-time") from e
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        out.append(value)
    return pa.array(out, pa.timestamp("us"))


def fit_columns(
    table: pa.Table, schema: pa.Schema | None, time_column: str | None, lenient: bool = False
) -> pa.Table:
    """Small repairs of what text formats cannot say: all-null columns, numbers read from text
    where the store holds strings, event times left as strings. Text where the store holds
    numbers or booleans is marked (field metadata ``lamina.text``) for the core to parse value by
    value: a value that does not parse is a row-level error (quarantined with its row), not a
    refusal of the whole file. The core checks the rest."""
    text_columns = []
    for i, name in enumerate(table.column_names):
        column = table.column(i)
        target = schema.field(name).type if schema is not None and name in schema.names else None
        if name == time_column and pa.types.is_string(column.type):
            column = _parse_times(column, lenient)
        elif name == time_column and pa.types.is_integer(column.type):
            column = column.cast(pa.int64()).cast(pa.timestamp("us"))  # microseconds since the epoch
        elif target is not None and pa.types.is_null(column.type):
            column = column.cast(target)
        elif target is not None and pa.types.is_string(target) and not pa.types.is_string(column.type):
            if pa.types.is_integer(column.type) or pa.types.is_boolean(column.type):
                column = column.cast(pa.string())
        elif (
            target is not None
            and pa.types.is_string(column.type)
            and (pa.types.is_integer(target) or pa.types.is_floating(target) or pa.types.is_boolean(target))
        ):
            text_columns.append(name)
            continue
        else:
            continue
        table = table.set_column(i, name, column)
    if text_columns:
        fields = [f.with_metadata({TEXT_KEY: "1"}) if f.name in text_columns else f for f in table.schema]
        table = pa.Table.from_arrays(table.columns, schema=pa.schema(fields))
    return table


def parse_types(text: str | None) -> dict[str, pa.DataType]:
    """``"qty=int64,price=float64,day=date32"`` -> column types (pyarrow type names)."""
    out: dict[str, pa.DataType] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, type_name = item.partition("=")
        if not sep or not name.strip():
            raise InputFileError(f"--types: expected COLUMN=TYPE, got {item.strip()!r}")
        try:
            out[name.strip()] = pa.type_for_alias(type_name.strip())
        except (ValueError, KeyError):
            raise InputFileError(
                f"--types {name.strip()}: unknown type {type_name.strip()!r} "
                "(use pyarrow names: int64, float64, string, bool, timestamp[us], date32)"
            ) from None
    return out


def read_file(
    path: Path,
    fmt: str,
    schema: pa.Schema | None,
    time_column: str | None,
    data: Any = None,
    *,
    delimiter: str | None = None,
    types: dict[str, pa.DataType] | None = None,
) -> pa.Table:
    """Read one input file as an Arrow table (from ``data``, its bytes, when given). For CSV,
    ``delimiter`` overrides the one the extension implies (``,``, or a tab for ``.tsv``) and
    ``types`` fixes column types instead of inferring them."""
    source: Any = path
    if data is not None:
        source = pa.BufferReader(data)
        codec = _CODECS.get(path.suffix.lower())
        if codec is not None:
            source = pa.CompressedInputStream(source, codec)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(source)
        elif fmt == "csv":
            import pyarrow.csv as pcsv

            tsv = ".tsv" in [s.lower() for s in path.suffixes]
            strings = {} if schema is None else {f.name: f.type for f in schema if pa.types.is_string(f.type)}
            strings.update(types or {})
            table = pcsv.read_csv(
                source,
                parse_options=pcsv.ParseOptions(delimiter=delimiter or ("\t" if tsv else ",")),
                # Only empty fields are null: "NA" is Namibia and "null" may be a page name.
                convert_options=pcsv.ConvertOptions(
                    column_types=strings, null_values=[""], strings_can_be_null=True
                ),
            )
        elif fmt == "jsonl":
            import pyarrow.json as pjson

            table = pjson.read_json(source)
        else:
            raise InputFileError(f"{path}: unknown format {fmt!r} (parquet, csv or jsonl)")
    except pa.ArrowException as e:
        raise InputFileError(f"cannot read {path} as {fmt}: {e}") from e
    try:
        return fit_columns(table, schema, time_column)
    except InputFileError as e:
        raise InputFileError(f"{path}: column {time_column!r}: {e}") from e
