"""Input files as Arrow tables: Parquet, CSV (and TSV) and JSON lines, compressed or not.

Shared by the command line (``lamina ingest``) and :class:`lamina.DirectorySource`. Text formats
cannot say everything a store needs, so a few repairs are made against the store's schema
(all-null columns, numbers read where the store holds strings, event times given as ISO-8601
strings); the core checks everything else.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
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


def _looks_like_time(column: pa.ChunkedArray) -> bool:
    """Whether a text column's first value reads as an ISO-8601 date-time (one value looked at)."""
    for chunk in column.chunks:
        valid = chunk.drop_null()
        if len(valid):
            try:
                dt.datetime.fromisoformat(valid[0].as_py())
                return True
            except (ValueError, TypeError):
                return False
    return False


def fit_columns(
    table: pa.Table,
    schema: pa.Schema | None,
    time_column: str | None,
    lenient: bool = False,
    *,
    from_text: bool = True,
) -> pa.Table:
    """Small repairs of what text formats cannot say, before the core checks every value.

    Text where the store holds numbers, booleans, times or dates is marked (field metadata
    ``lamina.text``) for the core to parse value by value: a value that does not parse is a
    row-level error naming its row (quarantined under the quarantine policy), never a refusal of
    the whole file. On a new store, the event time given as text (``time_column``, or the one
    text column whose values read as ISO-8601 times) is marked to be stored as ``timestamp[us]``,
    and times a reader inferred in whole seconds or milliseconds become ``timestamp[us]`` too, so
    a later event with a finer fraction is not refused (``from_text``: the table was read from
    CSV or JSON, where the reader guessed the unit). All-null columns take the store's type;
    integers and booleans read where the store holds strings become strings. ``lenient`` is
    accepted for compatibility (row-level problems are always per row now)."""
    del lenient
    marks: dict[str, str] = {}
    if schema is None and time_column is None:
        typed = any(pa.types.is_timestamp(f.type) or pa.types.is_date(f.type) for f in table.schema)
        if not typed:
            texts = [
                f.name for f in table.schema if pa.types.is_string(f.type) and _looks_like_time(table[f.name])
            ]
            if len(texts) == 1:
                time_column = texts[0]
    for i, name in enumerate(table.column_names):
        column = table.column(i)
        target = schema.field(name).type if schema is not None and name in schema.names else None
        text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
        if name == time_column and pa.types.is_integer(column.type):
            column = column.cast(pa.int64()).cast(pa.timestamp("us"))  # microseconds since the epoch
        elif name == time_column and text and target is None:
            marks[name] = "timestamp[us]"
            continue
        elif (
            schema is None
            and from_text
            and pa.types.is_timestamp(column.type)
            and column.type.unit in ("s", "ms")
        ):
            column = column.cast(pa.timestamp("us", column.type.tz))
        elif target is not None and pa.types.is_null(column.type):
            column = column.cast(target)
        elif target is not None and pa.types.is_string(target) and not text:
            if pa.types.is_integer(column.type) or pa.types.is_boolean(column.type):
                column = column.cast(pa.string())
            else:
                continue
        elif target is not None and text and not pa.types.is_string(target):
            marks[name] = "1"
            continue
        else:
            continue
        table = table.set_column(i, name, column)
    if marks:
        fields = [f.with_metadata({TEXT_KEY: marks[f.name]}) if f.name in marks else f for f in table.schema]
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


@dataclass
class FileRead:
    """One input file read: its rows, the lines of a JSON lines file set aside (``(line, bytes,
    reason)``: not one JSON object, or unreadable on its own), and for JSON lines the file line
    of each row (None: a row's line follows from its index)."""

    table: pa.Table
    rejected: list[tuple[int, bytes, str]] = field(default_factory=list)
    lines: list[int] | None = None

    def line_of(self, row: int, fmt: str) -> int:
        """The 1-based file line of a row (CSV: after the header line)."""
        if self.lines is not None and 0 <= row < len(self.lines):
            return self.lines[row]
        return row + (2 if fmt == "csv" else 1)


#: The reason given for a line of a JSON lines file that the core's screen sets aside.
NOT_AN_OBJECT = "not one JSON object"

#: What reading a file can raise besides pyarrow's own errors: a corrupt archive (OSError from
#: the decompressor), values a converter cannot hold (OverflowError, ValueError).
_READ_ERRORS = (pa.ArrowException, OSError, ValueError, OverflowError, LookupError)


def read_input(
    path: Path,
    fmt: str,
    schema: pa.Schema | None,
    time_column: str | None,
    data: Any = None,
    *,
    delimiter: str | None = None,
    types: dict[str, pa.DataType] | None = None,
) -> FileRead:
    """Read one input file (from ``data``, its bytes, when given). For CSV, ``delimiter``
    overrides the one the extension implies (``,``, or a tab for ``.tsv``) and ``types`` fixes
    column types instead of inferring them. A file of 0 bytes has no rows. Anything that makes
    the file unreadable (a corrupt archive, broken Parquet, malformed CSV) is an
    :class:`lamina.InputFileError` naming it; lines of a JSON lines file that are not one JSON
    object are screened out (``rejected``) before pyarrow's reader, which crashes the process
    on a top-level ``null``, sees them."""
    from lamina import _core

    try:
        if data is None:
            data = path.read_bytes()
        codec = _CODECS.get(path.suffix.lower())
        if codec is not None and len(data):
            data = pa.CompressedInputStream(pa.BufferReader(data), codec).read()
        if len(data) == 0:
            empty = schema.empty_table() if schema is not None else pa.table({})
            return FileRead(empty)
        rejected: list[tuple[int, bytes, str]] = []
        lines: list[int] | None = None
        if fmt == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(pa.BufferReader(data))
        elif fmt == "csv":
            import pyarrow.csv as pcsv

            tsv = ".tsv" in [s.lower() for s in path.suffixes]
            strings = {} if schema is None else {f.name: f.type for f in schema if pa.types.is_string(f.type)}
            strings.update(types or {})
            table = pcsv.read_csv(
                pa.BufferReader(data),
                parse_options=pcsv.ParseOptions(delimiter=delimiter or ("\t" if tsv else ",")),
                # Only empty fields are null: "NA" is Namibia and "null" may be a page name.
                convert_options=pcsv.ConvertOptions(
                    column_types=strings, null_values=[""], strings_can_be_null=True
                ),
            )
        elif fmt == "jsonl":
            from lamina import _json

            objects, all_lines, odd = _core.screen_json_lines(bytes(data))
            rejected = [(line, value, NOT_AN_OBJECT) for line, value in odd]
            values = objects.split(b"\n")[:-1] if objects else []
            decoded, rows, failed = _json.decode(values, time_column, schema)
            rejected += [(all_lines[i], values[i], why) for i, why in failed]
            rejected.sort()
            lines = [all_lines[i] for i in rows]
            if decoded is None:
                decoded = schema.empty_table() if schema is not None else pa.table({})
            table = decoded
        else:
            raise InputFileError(f"{path}: unknown format {fmt!r} (parquet, csv or jsonl)")
    except InputFileError:
        raise
    except _READ_ERRORS as e:
        raise InputFileError(f"cannot read {path} as {fmt}: {e}") from e
    held = table.num_rows
    if lines is not None and not table.num_columns:
        # A table without columns may drop its rows (JSON lines decoded one by one): the lines
        # decoded are the rows.
        held = len(lines)
    if held and not table.num_columns:
        # Rows without a field (`{}` lines): rows of nulls, which the core refuses or
        # quarantines (no event time) like any other row; without a schema, nothing can hold them.
        if schema is None:
            raise InputFileError(f"{path}: its {held} rows have no fields")
        table = pa.table({f.name: pa.nulls(held, f.type) for f in schema})
    return FileRead(fit_columns(table, schema, time_column, from_text=fmt != "parquet"), rejected, lines)
