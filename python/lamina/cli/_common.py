"""What every command shares: errors, the table formatter, opening stores (with --wait), output."""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import io
import json
import math
import sys
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import pyarrow as pa

import lamina
from lamina.errors import LaminaError, LockError, NotFoundError


class CommandError(LaminaError):
    """A command cannot go on (unreadable input file, bad spec file): exit status 1."""


class UsageError(Exception):
    """Arguments that parse but do not make sense together: exit status 2."""


def _width(text: str) -> int:
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1
        for c in text
    )


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - _width(text))
    return fill + text if right else text + fill


def _zoned(value: dt.datetime) -> bool:
    """Whether a time is labelled with a zone other than UTC (a zoned view's bucket)."""
    return value.tzinfo is not None and getattr(value.tzinfo, "key", "UTC") not in ("UTC", "Etc/UTC")


def _format_time(value: dt.datetime, with_seconds: bool) -> str:
    """UTC times as naive text; a zoned view's times on its clock, with their offset."""
    if value.tzinfo is not None and not _zoned(value):
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    text = value.isoformat(sep=" ", timespec="seconds" if with_seconds else "minutes")
    return text


def _format_float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0 or 0.01 <= abs(value) < 1e15:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _cells(column: pa.ChunkedArray) -> tuple[list[str], bool]:
    """A column as display strings, and whether to right-align it."""
    values = column.to_pylist()
    t = column.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        with_seconds = any(
            v is not None and isinstance(v, dt.datetime) and (v.second or v.microsecond) for v in values
        )
        out = [
            "null"
            if v is None
            else _format_time(v, with_seconds)
            if isinstance(v, dt.datetime)
            else v.isoformat()
            for v in values
        ]
        return out, False
    if pa.types.is_floating(t):
        return ["null" if v is None else _format_float(v) for v in values], True
    if pa.types.is_integer(t):
        return ["null" if v is None else str(v) for v in values], True
    if pa.types.is_boolean(t):
        return ["null" if v is None else ("true" if v else "false") for v in values], False
    return ["null" if v is None else str(v) for v in values], False


def format_table(table: pa.Table, max_rows: int | None = 20, indent: str = "") -> str:
    """``table`` as aligned text. With more than ``max_rows`` rows, the first and last ones are
    shown around a ``…`` line. ``max_rows=None`` or 0 shows every row."""
    n = table.num_rows
    if max_rows and n > max_rows:
        head = max(1, max_rows - max_rows // 4)
        tail = max_rows - head
        shown = (
            pa.concat_tables([table.slice(0, head), table.slice(n - tail, tail)])
            if tail
            else table.slice(0, head)
        )
        gap_at: int | None = head
    else:
        shown, gap_at = table, None
    names = table.column_names
    columns = [_cells(shown.column(i)) for i in range(shown.num_columns)]
    widths = [
        max([_width(name)] + [_width(c) for c in cells])
        for name, (cells, _) in zip(names, columns, strict=True)
    ]
    lines = [
        "  ".join(
            _pad(name, w, right) for name, w, (_, right) in zip(names, widths, columns, strict=True)
        ).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    for r in range(shown.num_rows):
        if r == gap_at:
            lines.append(
                "  ".join(_pad("…", w, right) for w, (_, right) in zip(widths, columns, strict=True)).rstrip()
            )
        lines.append(
            "  ".join(
                _pad(cells[r], w, right) for w, (cells, right) in zip(widths, columns, strict=True)
            ).rstrip()
        )
    if n == 0:
        lines.append("(no rows)")
    elif gap_at is not None:
        lines.append(f"({n:,} rows, {shown.num_rows} shown)")
    return "\n".join(indent + line for line in lines)


#: Seconds a writing command waits for a store's writer lock held by another process (--wait).
_WAIT = {"seconds": 0.0}


def _open(path: str, *, read_only: bool = False, must_exist: bool = True, **options: Any) -> lamina.Store:
    if must_exist and not Path(path).is_dir():
        raise NotFoundError(f"{path} is not a lamina store (no such directory)")
    deadline = time.monotonic() + _WAIT["seconds"]
    while True:
        try:
            return lamina.Store(path, read_only=read_only, **options)
        except LockError:
            # Overlapping cron runs queue instead of failing: wait for the lock, up to --wait.
            if time.monotonic() >= deadline:
                raise
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


@contextlib.contextmanager
def _new_store_guard(path: str) -> Iterator[None]:
    """A command that creates a store and fails before it commits anything leaves no new store
    behind. Once a commit was made (and reported), the store stays, whatever fails after:
    acknowledged commits are never deleted (a SIGKILL keeps them too)."""
    existed = Path(path).exists()
    try:
        yield
    except BaseException:
        if not existed and Path(path).is_dir() and _holds_nothing(path):
            import shutil

            shutil.rmtree(path, ignore_errors=True)
        raise


def _holds_nothing(path: str) -> bool:
    """Whether a store directory holds no record at all (no commit, no view, no schema)."""
    if not (Path(path) / "_log").is_dir():
        return True  # cut short before its log existed
    try:
        with lamina.Store(path, read_only=True) as store:
            status = store.status()
            return status["latest_commit"] == 0 and not status["views"] and not store.schema.names
    except LaminaError:
        return False


def _store_schema(store: lamina.Store) -> pa.Schema | None:
    """The store's schema once fixed (by the first commit or up front), else None."""
    schema = store.schema
    return schema if schema.names else None


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None and not _zoned(value):
            value = value.astimezone(dt.UTC)
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or infinities
    return value


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date):
        return _json_value(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_csv(table: pa.Table, out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in table.to_pylist():
        writer.writerow([_csv_value(v) for v in row.values()])


def write_json(table: pa.Table, out: TextIO) -> None:
    rows = [{k: _json_value(v) for k, v in row.items()} for row in table.to_pylist()]
    json.dump(rows, out, ensure_ascii=False, indent=1)
    out.write("\n")


_OUTPUTS = {".csv": "csv", ".json": "json", ".parquet": "parquet", ".pq": "parquet", ".txt": "table"}


def _write_output(table: pa.Table, output: str, args: argparse.Namespace) -> int:
    """Write a result table as --output/--out ask (a table on stdout by default)."""
    if output == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, args.out)
        print(f"wrote {table.num_rows:,} rows to {args.out}", file=sys.stderr)
        return 0
    buffer = io.StringIO()
    if output == "csv":
        write_csv(table, buffer)
    elif output == "json":
        write_json(table, buffer)
    else:
        buffer.write(format_table(table, max_rows=args.max_rows) + "\n")
    if args.out:
        Path(args.out).write_text(buffer.getvalue(), encoding="utf-8")
        print(f"wrote {table.num_rows:,} rows to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(buffer.getvalue())
    return 0


def _output_of(args: argparse.Namespace) -> str:
    output = args.output
    if output is None:
        output = _OUTPUTS.get(Path(args.out).suffix.lower(), "table") if args.out else "table"
    if output == "parquet" and not args.out:
        raise UsageError("--output parquet needs --out FILE")
    return output


def _wait_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="if another process holds the store's writer lock, wait for it up to SECONDS "
        "(overlapping cron runs queue instead of failing)",
    )


def _output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--output", choices=["table", "csv", "json", "parquet"], help="default: table, or from --out"
    )
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--max-rows", type=int, default=40, metavar="N", help="rows shown as a table (0: all)")


def _message(error: BaseException) -> str:
    if isinstance(error, OSError) and not isinstance(error, LaminaError) and error.filename:
        return f"{error.filename}: {error.strerror or error}"
    return str(error) or type(error).__name__
