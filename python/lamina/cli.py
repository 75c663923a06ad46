"""The ``lamina`` command line: ingest files, define views, recompute, query, status, and a demo.

.. code-block:: text

    lamina ingest warehouse/ events-*.parquet        # one commit per file
    lamina define warehouse/ views.toml              # [[view]] tables, see `lamina define -h`
    lamina recompute warehouse/                      # batch layer
    lamina query warehouse/ traffic --by country --where country=DE --output csv
    lamina status warehouse/ --json
    lamina demo                                      # a guided tour in a temporary store

Exit status: 0 on success, 1 when lamina (or the file system) refuses, with ``error: <message>``
on stderr, and 2 for a command-line usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import io
import json
import math
import random
import re
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import pyarrow as pa
import pyarrow.compute as pc

import lamina
from lamina._files import infer_format, parse_types, read_file
from lamina._html import _bytes
from lamina.errors import InvalidArgumentError, LaminaError, LockError, NotFoundError

# ---------------------------------------------------------------------------------------------
# errors


class CommandError(LaminaError):
    """A command cannot go on (unreadable input file, bad spec file): exit status 1."""


class UsageError(Exception):
    """Arguments that parse but do not make sense together: exit status 2."""


# ---------------------------------------------------------------------------------------------
# a small table formatter (no dependencies): aligned columns, wide characters counted twice


def _width(text: str) -> int:
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1
        for c in text
    )


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - _width(text))
    return fill + text if right else text + fill


def _format_time(value: dt.datetime, with_seconds: bool) -> str:
    if value.tzinfo is not None:
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


# ---------------------------------------------------------------------------------------------
# opening stores


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
    """A command that creates a store and fails leaves no new store behind."""
    existed = Path(path).exists()
    try:
        yield
    except BaseException:
        if not existed and Path(path).is_dir():
            import shutil

            shutil.rmtree(path, ignore_errors=True)
        raise


def _store_schema(store: lamina.Store) -> pa.Schema | None:
    if store.status()["latest_commit"] == 0:
        return None
    return store.snapshot(0).schema


# ---------------------------------------------------------------------------------------------
# ingest


def _infer_format(path: Path) -> str:
    fmt = infer_format(path)
    if fmt is None:
        raise UsageError(
            f"cannot tell the format of {path.name} from its extension: pass --format parquet|csv|jsonl"
        )
    return fmt


def cmd_watch(args: argparse.Namespace) -> int:
    """``--watch DIR`` or ``--kafka HOST:PORT --topic T``: a source, exactly once."""
    if args.files:
        raise UsageError("give files, --watch DIR or --kafka HOST:PORT, not several")
    if args.watch is not None and args.kafka is not None:
        raise UsageError("give --watch DIR or --kafka HOST:PORT, not both")
    source: lamina.sources.Source
    if args.kafka is not None:
        if not args.topic:
            raise UsageError("--kafka needs --topic")
        source = lamina.KafkaSource(args.kafka, args.topic)
        where = f"{args.kafka}/{args.topic}"
    else:
        if not Path(args.watch).is_dir():
            raise CommandError(f"no such directory: {args.watch}")
        source = lamina.DirectorySource(args.watch, args.pattern, format=args.format)
        where = str(source.path)
    options: dict[str, Any] = {"time": args.time} if args.time else {}
    with _open(args.store, must_exist=False, **options) as store:
        made = store.ingest(
            source,
            batch_rows=args.batch_rows,
            batch_ms=args.batch_ms,
            idle_ms=args.idle_ms,
            quarantine=args.quarantine or None,
            progress=True,
        )
    print(f"{made} commit{'s' if made != 1 else ''} from {where}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    if args.topic is not None and args.kafka is None:
        raise UsageError("--topic needs --kafka HOST:PORT")
    if args.watch is not None or args.kafka is not None:
        return cmd_watch(args)
    if not args.files:
        raise UsageError("give the files to ingest, or --watch DIR")
    files = [Path(f) for f in args.files]
    formats = [args.format or _infer_format(f) for f in files]
    for f in files:
        if not f.is_file():
            raise CommandError(f"no such file: {f}")
    options: dict[str, Any] = {}
    if args.time:
        options["time"] = args.time
    with _open(args.store, must_exist=False, **options) as store:
        for path, fmt in zip(files, formats, strict=True):
            schema = _store_schema(store)
            time_column = args.time or store.status().get("time_column")
            table = read_file(
                path, fmt, schema, time_column, delimiter=args.delimiter, types=parse_types(args.types)
            )
            if table.num_rows == 0:
                print(f"{path}: no rows; nothing committed")
                continue
            try:
                commit = store.append(table, quarantine=args.quarantine)
            except LaminaError as e:
                hint = ""
                if "no timestamp column" in str(e):
                    hint = " (name it with --time COLUMN)"
                text = _with_line(str(e), fmt)
                tail = "" if "nothing was written" in text else "; nothing was written from this file"
                raise type(e)(f"{path}: {text}{hint}{tail}") from e
            info = store.commits().filter(pc.equal(store.commits().column("commit"), commit))
            rows = info.column("rows")[0].as_py()
            quarantined = info.column("quarantined")[0].as_py()
            line = f"{path}: commit {commit}, {rows:,} rows"
            if quarantined:
                plural = "s" if quarantined != 1 else ""
                line += f", {quarantined:,} row{plural} quarantined (set aside with a reason)"
            print(line)
            if quarantined:
                q = store.quarantined()
                q = q.filter(pc.equal(q.column("commit"), commit))
                for row, reason in list(zip(q["row"].to_pylist(), q["reason"].to_pylist(), strict=True))[:5]:
                    print(f"  {path}:{_line(row, fmt)}: {reason}")
                if quarantined > 5:
                    print(f"  ... see `lamina quarantined {args.store}`")
    return 0


def _line(row: int, fmt: str) -> int:
    """The 1-based line of a file's data row (CSV: after the header line)."""
    return row + (2 if fmt == "csv" else 1)


def _with_line(message: str, fmt: str) -> str:
    """A core error naming a row, with the file's line added (text formats)."""
    if fmt == "parquet":
        return message
    import re

    return re.sub(
        r"at row (\d+)", lambda m: f"at row {m.group(1)} (line {_line(int(m.group(1)), fmt)})", message
    )


# ---------------------------------------------------------------------------------------------
# define

_AGGREGATES: dict[str, Callable[..., lamina.Aggregate]] = {
    "count": lamina.count,
    "sum": lamina.sum,
    "min": lamina.min,
    "max": lamina.max,
    "mean": lamina.mean,
    "avg": lamina.mean,
    "count_distinct": lamina.count_distinct,
    "quantile": lamina.quantile,
    "top_k": lamina.top_k,
}
_CALL = re.compile(r"^\s*([A-Za-z_]+)\s*\(\s*(.*?)\s*\)\s*$")
_VIEW_KEYS = {"name", "time", "grain", "by", "metrics", "where", "precision"}


def parse_aggregate(text: Any, where: str) -> lamina.Aggregate:
    """``"count()"``, ``"sum(amount)"``, ``"count_distinct(user_id)"``, ``"quantile(latency, 0.95)"``,
    ``"top_k(page, 10)"`` (or ``{agg=, column=, q=, k=}``)."""
    if isinstance(text, Mapping):
        agg, column = text.get("agg"), text.get("column")
        params = {p: text[p] for p in ("q", "k") if p in text}
        extra = set(text) - {"agg", "column", "q", "k"}
        if extra or not isinstance(agg, str):
            raise InvalidArgumentError(f"{where}: expected {{agg = ..., column = ...}}, got {dict(text)!r}")
        arg: Any = params.get("q", params.get("k"))
    else:
        m = _CALL.match(text) if isinstance(text, str) else None
        if m is None:
            raise InvalidArgumentError(
                f'{where}: expected an aggregate like "count()", "sum(amount)", '
                f'"count_distinct(user_id)" or "quantile(latency, 0.95)", got {text!r}'
            )
        agg = m.group(1)
        parts = [p.strip().strip("\"'`") for p in m.group(2).split(",")] if m.group(2) else []
        column = parts[0] if parts and parts[0] else None
        arg = parts[1] if len(parts) > 1 else None
        if len(parts) > 2:
            raise InvalidArgumentError(f"{where}: {agg}() takes at most two arguments, got {text!r}")
    if agg not in _AGGREGATES:
        raise InvalidArgumentError(f"{where}: unknown aggregate {agg!r} (use {', '.join(_AGGREGATES)})")
    if agg == "count":
        return lamina.count(None if column in (None, "*") else column)
    if column is None:
        raise InvalidArgumentError(f"{where}: {agg}() needs a column, like {agg}(amount)")
    if agg in ("quantile", "top_k"):
        what = "q, like quantile(latency, 0.95)" if agg == "quantile" else "k, like top_k(page, 10)"
        if arg is None:
            raise InvalidArgumentError(f"{where}: {agg}() needs a column and {what}")
        try:
            value = float(arg) if agg == "quantile" else int(arg)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"{where}: {agg}(): bad {what.split(',')[0]} {arg!r}") from None
        return _AGGREGATES[agg](column, value)
    if arg is not None:
        raise InvalidArgumentError(f"{where}: {agg}() takes one column, got {text!r}")
    return _AGGREGATES[agg](column)


def parse_views(spec: Any, source: str, default_time: str | None) -> list[lamina.View]:
    """View definitions from a parsed TOML/JSON document."""
    if isinstance(spec, Mapping) and ("view" in spec or "views" in spec):
        entries = spec.get("view", spec.get("views"))
    elif isinstance(spec, Mapping) and "name" in spec:
        entries = [spec]
    else:
        entries = spec
    if isinstance(entries, Mapping):
        entries = [entries]
    if not isinstance(entries, list) or not entries:
        raise InvalidArgumentError(
            f"{source}: expected one or more [[view]] tables (or a JSON list of views)"
        )
    views = []
    for i, entry in enumerate(entries):
        where = f"{source}: view {i + 1}"
        if not isinstance(entry, Mapping):
            raise InvalidArgumentError(f"{where}: expected a table, got {entry!r}")
        if "name" in entry:
            where = f"{source}: view {entry['name']!r}"
        unknown = set(entry) - _VIEW_KEYS
        if unknown:
            raise InvalidArgumentError(
                f"{where}: unknown keys {', '.join(sorted(unknown))} (use {', '.join(sorted(_VIEW_KEYS))})"
            )
        for key in ("name", "metrics"):
            if key not in entry:
                raise InvalidArgumentError(f"{where}: missing {key!r}")
        metrics = entry["metrics"]
        if not isinstance(metrics, Mapping) or not metrics:
            raise InvalidArgumentError(f'{where}: metrics must be a table like {{ events = "count()" }}')
        time_column = entry.get("time", default_time)
        if time_column is None:
            raise InvalidArgumentError(f"{where}: missing 'time' (the event-time column)")
        by = entry.get("by", [])
        if isinstance(by, str):
            by = [by]
        options: dict[str, Any] = {}
        if "precision" in entry:
            options["precision"] = entry["precision"]
        views.append(
            lamina.View(
                str(entry["name"]),
                time=time_column,
                grain=entry.get("grain", "1h"),
                by=list(by),
                metrics={str(k): parse_aggregate(v, f"{where}: metric {k!r}") for k, v in metrics.items()},
                where=entry.get("where") or None,
                **options,
            )
        )
    return views


def load_spec(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError as e:
        raise CommandError(f"no such file: {path}") from e
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            return tomllib.loads(raw.decode("utf-8"))
        if suffix == ".json":
            return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        raise CommandError(f"cannot parse {path}: {e}") from e
    raise UsageError(f"{path.name}: view specs are .toml or .json files")


def cmd_define(args: argparse.Namespace) -> int:
    spec = load_spec(Path(args.spec))
    with _open(args.store) as store:
        views = parse_views(spec, args.spec, store.status().get("time_column"))
        before = store.views()
        for view in views:
            changed = store.define(view)
            if not changed:
                state = "unchanged"
            elif view.name in before:
                state = "redefined: the next recompute rebuilds its history (speed layer serves it till then)"
            else:
                state = "defined"
            metrics = ", ".join(f"{k} = {v.agg}({v.column or ''})" for k, v in view.metrics.items())
            dims = f" by {', '.join(view.by)}" if view.by else ""
            print(f"view {view.name} ({view.grain}{dims}; {metrics}): {state}")
    return 0


# ---------------------------------------------------------------------------------------------
# recompute, status


def cmd_recompute(args: argparse.Namespace) -> int:
    with _open(args.store) as store:
        names = args.view or None
        known = store.views()
        for name in names or []:
            if name not in known:
                raise NotFoundError(f"no view named {name!r} (views: {', '.join(known) or 'none'})")
        if not known:
            print("no views defined: nothing to recompute (define some with `lamina define`)")
            return 0
        started = time.perf_counter()
        covered = store.recompute(names, threads=args.threads)
        took = time.perf_counter() - started
        by_name = {v["name"]: v for v in store.status()["views"]}
        for name in names or list(known):
            v = by_name[name]
            print(
                f"view {name}: batch view covers commit {v['covered_commit']}, {v['batch_groups']:,} groups"
            )
        print(f"recomputed in {took:.2f} s; the speed layer now holds only commits after {covered}")
    return 0


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never computed"
    if seconds < 120:
        return f"{seconds:.0f} s old"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min old"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h old"
    return f"{seconds / 86400:.1f} days old"


def format_status(status: Mapping[str, Any], indent: str = "") -> str:
    where = "temporary store" if status["temporary"] else str(status["path"])
    lines = [
        f"store: {where}" + ("" if status.get("read_only") else ""),
        f"master dataset: {status['latest_commit']:,} commits, {status['rows']:,} rows in "
        f"{status['segments']:,} segments ({_bytes(status['segment_bytes'])}), "
        f"event time {status['time_column']}"
        + (f", {status['quarantined_rows']:,} rows quarantined" if status.get("quarantined_rows") else ""),
    ]
    views = status.get("views") or []
    if not views:
        lines.append("views: none defined")
    for v in views:
        lines.append(f"view {v['name']} (fingerprint {v['fingerprint']}):")
        lines.append(
            f"  batch layer: covers commit {v['covered_commit']}, {v['batch_groups']:,} groups, "
            f"{_age(v['batch_age_seconds'])}, {_bytes(v['batch_memory_bytes'])}"
        )
        pending = v["pending_commits"]
        lines.append(
            f"  speed layer: {pending} pending commit{'s' if pending != 1 else ''}, "
            f"{v['speed_rows']:,} rows, "
            f"{v['speed_groups']:,} groups, {_bytes(v['speed_memory_bytes'])}"
        )
    return "\n".join(indent + line for line in lines)


def cmd_status(args: argparse.Namespace) -> int:
    with _open(args.store, read_only=True) as store:
        status = dict(store.status())
    if args.json:
        print(json.dumps(status, indent=2, default=str, ensure_ascii=False))
    else:
        print(format_status(status))
    return 0


# ---------------------------------------------------------------------------------------------
# query

_CONDITION = re.compile(r"^\s*([^=<>!]+?)\s*(>=|<=|==|!=|=|>|<)\s*(.*)$", re.S)
_NOT_IN = re.compile(r"^\s*(.+?)\s+not\s+in\s+(.*)$", re.S | re.I)


def _typed(value: str, column: str, schema: pa.Schema | None) -> Any:
    field_type = schema.field(column).type if schema is not None and column in schema.names else pa.string()
    try:
        if pa.types.is_integer(field_type):
            return int(value)
        if pa.types.is_boolean(field_type):
            low = value.lower()
            if low in ("true", "1", "yes"):
                return True
            if low in ("false", "0", "no"):
                return False
            raise ValueError(value)
    except ValueError as e:
        raise UsageError(f"--where {column}: {value!r} is not a valid {field_type} value") from e
    return value


def parse_where(conditions: Sequence[str], schema: pa.Schema | None) -> dict[str, Any] | None:
    """``["country=DE", "country=FR", "hour>=8"]`` -> ``{"country": ["DE", "FR"], "hour": {">=": 8}}``."""
    where: dict[str, Any] = {}
    excluded: dict[str, list[Any]] = {}
    for text in conditions:
        n = _NOT_IN.match(text)
        if n is not None:
            column = n.group(1).strip()
            excluded.setdefault(column, []).extend(
                _typed(v.strip(), column, schema) for v in n.group(2).split(",")
            )
            continue
        m = _CONDITION.match(text)
        if m is None:
            raise UsageError(
                f"--where {text!r}: expected COLUMN=VALUE (or >=, >, <=, <, !=), or 'COLUMN not in A,B'"
            )
        column, op, raw = m.group(1).strip(), m.group(2), m.group(3)
        value = _typed(raw, column, schema)
        current = where.get(column)
        if op == "!=":
            excluded.setdefault(column, []).append(value)
            continue
        if op in ("=", "=="):
            if isinstance(current, dict):
                raise UsageError(f"--where {column}: cannot mix = with a range")
            where[column] = [value] if current is None else [*current, value]
        else:
            if isinstance(current, list):
                raise UsageError(f"--where {column}: cannot mix = with a range")
            where.setdefault(column, {})[op] = value
    for column, values in excluded.items():
        if column in where:
            raise UsageError(f"--where {column}: cannot mix != or 'not in' with = or a range")
        where[column] = {"not in": values}
    return {k: (v[0] if isinstance(v, list) and len(v) == 1 else v) for k, v in where.items()} or None


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
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


def cmd_query(args: argparse.Namespace) -> int:
    output = args.output
    if output is None:
        output = _OUTPUTS.get(Path(args.out).suffix.lower(), "table") if args.out else "table"
    if output == "parquet" and not args.out:
        raise UsageError("--output parquet needs --out FILE")
    by = None if args.by is None else [d.strip() for d in args.by.split(",") if d.strip()]
    with _open(args.store, read_only=True) as store:
        where = parse_where(args.where, _store_schema(store)) if args.where else None
        table = store.query(args.view, start=args.start, end=args.end, grain=args.grain, by=by, where=where)
    return _write_output(table, output, args)


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


# ---------------------------------------------------------------------------------------------
# demo: a web shop's event stream through the three layers

_COUNTRIES = ["DE", "FR", "US", "JP", "BR", "CI", "NA", None]
_COUNTRY_WEIGHTS = [30, 18, 22, 9, 8, 3, 2, 8]  # None: the geo lookup failed
_PAGES = ["/", "/suche", "/produkt/käse", "/produkt/crème-brûlée", "/カート", "/checkout"]
_PAGE_WEIGHTS = [30, 20, 18, 12, 12, 8]
_DEMO_START = dt.datetime(2026, 3, 2)  # a Monday, UTC


def demo_events(
    n: int,
    start: dt.datetime,
    hours: float,
    rng: random.Random,
    users: int = 5000,
) -> pa.Table:
    """``n`` page views of a web shop, spread over ``hours`` from ``start`` with a daily rhythm.

    Columns: ts (event time, UTC), country (ISO code, null when unknown), page (unicode paths),
    user_id (a few heavy users, a long tail), amount (only on checkouts; null otherwise).
    """
    ts: list[dt.datetime] = []
    span = hours * 3600.0
    while len(ts) < n:
        offset = rng.random() * span
        moment = start + dt.timedelta(seconds=offset)
        hour = moment.hour + moment.minute / 60
        # busy in the (European) evening, quiet at night
        if rng.random() < 0.35 + 0.65 * (0.5 - 0.5 * math.cos((hour - 3) / 24 * 2 * math.pi)):
            ts.append(moment.replace(microsecond=moment.microsecond // 1000 * 1000))
    ts.sort()
    countries = rng.choices(_COUNTRIES, _COUNTRY_WEIGHTS, k=n)
    pages = rng.choices(_PAGES, _PAGE_WEIGHTS, k=n)
    user_ids = [f"u{int(users * rng.random() ** 2):05d}" for _ in range(n)]
    amounts = [
        round(rng.lognormvariate(3.4, 0.6), 2) if page == "/checkout" and rng.random() > 0.05 else None
        for page in pages
    ]
    return pa.table(
        {
            "ts": pa.array(ts, pa.timestamp("us")),
            "country": pa.array(countries, pa.string()),
            "page": pa.array(pages, pa.string()),
            "user_id": pa.array(user_ids, pa.string()),
            "amount": pa.array(amounts, pa.float64()),
        }
    )


def _exact_by_day(snapshot: pa.Table) -> pa.Table:
    """Events and distinct users per day, straight from the master dataset (an independent check)."""
    day = pc.floor_temporal(snapshot.column("ts"), unit="day")
    return (
        pa.table({"day": day, "user_id": snapshot.column("user_id")})
        .group_by("day")
        .aggregate([([], "count_all"), ("user_id", "count_distinct")])
        .rename_columns(["day", "events", "true_users"])
        .sort_by("day")
    )


def cmd_demo(args: argparse.Namespace) -> int:
    n = args.events
    if n < 1000:
        raise UsageError("--events must be at least 1000")
    rng = random.Random(args.seed)
    if args.dir is not None:
        target = Path(args.dir)
        if target.exists() and any(target.iterdir()):
            raise CommandError(f"{target} is not empty: the demo needs a new or empty directory")
        store = lamina.Store(target)
    else:
        store = lamina.Store()
    out = sys.stdout
    ok = True

    def say(text: str = "") -> None:
        out.write(text + "\n")

    def step(number: int, title: str) -> None:
        say()
        say(f"{number}. {title}")
        say("-" * (len(title) + 3))

    def check(passed: bool, text: str) -> None:
        nonlocal ok
        ok = ok and passed
        say(f"   {'✓' if passed else '✗ MISMATCH:'} {text}")

    with store:
        where = "a temporary store (removed at the end)" if store.temporary else str(store.path)
        say("lamina demo: a web shop's page views through the three layers of the Lambda Architecture")
        say(f"store: {where}")

        batch_n = int(n * 0.80)
        live_n = int(n * 0.15)
        late_n = n - batch_n - live_n
        days = 3

        step(1, "Master dataset: append-only, one immutable commit per append")
        per_day = batch_n // days
        for d in range(days):
            count = per_day if d < days - 1 else batch_n - per_day * (days - 1)
            events = demo_events(count, _DEMO_START + dt.timedelta(days=d), 24, rng)
            commit = store.append(events)
            day = (_DEMO_START + dt.timedelta(days=d)).date()
            say(f"   commit {commit}: {events.num_rows:,} page views of {day} (the nightly export)")
        say("   a few events of commit 1 (amount is only set on checkouts; country is null when unknown):")
        sample = store.snapshot(1).slice(0, 5)
        say(format_table(sample, indent="     "))

        step(2, "A view: one definition drives the batch and the speed layer")
        view = lamina.View(
            "shop",
            time="ts",
            grain="1h",
            by=["country", "page"],
            metrics={
                "views": lamina.count(),
                "orders": lamina.count("amount"),
                "revenue": lamina.sum("amount"),
                "basket": lamina.mean("amount"),
                "users": lamina.count_distinct("user_id"),
            },
        )
        store.define(view)
        daily = lamina.View(
            "daily_users",
            time="ts",
            grain="1d",
            metrics={"views": lamina.count(), "users": lamina.count_distinct("user_id")},
        )
        store.define(daily)
        for v in (view, daily):
            dims = f" by {', '.join(v.by)}" if v.by else ""
            say(f"   view {v.name!r}: per {v.grain} of {v.time}{dims}")
            for name, agg in v.metrics.items():
                say(f"     {name:8} = {agg.agg}({agg.column or ''})")

        step(3, "Batch layer: recompute every view from scratch over the latest snapshot")
        started = time.perf_counter()
        covered = store.recompute(progress=False)
        took = time.perf_counter() - started
        status = store.status()
        groups = {v["name"]: v["batch_groups"] for v in status["views"]}
        say(
            f"   batch views cover commit {covered} ({groups['shop']:,} + {groups['daily_users']:,} groups, "
            f"exact, {took * 1000:.0f} ms)"
        )
        say("   revenue per day and country, from the batch view:")
        per_country = store.query("shop", grain="1d", by=["country"], where={"country": ["DE", "FR", "JP"]})
        say(
            format_table(
                per_country.select(["bucket", "country", "views", "orders", "revenue", "basket"]),
                indent="     ",
            )
        )

        step(4, "Speed layer: new events arrive, and some late ones")
        live_start = _DEMO_START + dt.timedelta(days=days)
        live_batches = 3
        for b in range(live_batches):
            count = (
                live_n // live_batches
                if b < live_batches - 1
                else live_n - live_n // live_batches * (live_batches - 1)
            )
            events = demo_events(count, live_start + dt.timedelta(hours=2 * b), 2, rng)
            commit = store.append(events)
            first, last = pc.min_max(events.column("ts")).values()
            say(
                f"   commit {commit}: {count:,} live page views, "
                f"{first.as_py():%Y-%m-%d %H:%M} to {last.as_py():%H:%M}"
            )
        late_day = _DEMO_START + dt.timedelta(days=1)
        late = demo_events(late_n, late_day, 24, rng)
        late_commit = store.append(late)
        say(
            f"   commit {late_commit}: {late_n:,} LATE page views from {late_day.date()}, "
            "synced by a mobile app "
            "that was offline: their hours are already in the batch view"
        )
        try:
            store.append(pa.table({"ts": ["yesterday"], "country": ["DE"]}))
        except lamina.SchemaError as e:
            say(f"   a malformed batch is refused whole, nothing written: SchemaError: {e}")
        v_status = {v["name"]: v for v in store.status()["views"]}["shop"]
        say(
            f"   speed layer of 'shop': {v_status['pending_commits']} commits after "
            f"{v_status['covered_commit']}, "
            f"{v_status['speed_rows']:,} events in {v_status['speed_groups']:,} groups, kept in memory"
        )
        speed = store.speed_view("shop")
        late_rows = speed.filter(
            pc.less(speed.column("bucket"), pa.scalar(live_start, pa.timestamp("us", "UTC")))
        )
        say(
            f"   the speed view holds {late_rows.num_rows:,} groups of {late_day.date()}: "
            "the late events, e.g."
        )
        say(
            format_table(
                late_rows.select(["bucket", "country", "page", "views", "users"]), max_rows=4, indent="     "
            )
        )

        step(5, "Serving layer: batch (commits <= N) merged with speed (commits > N)")
        served = store.query("daily_users")
        truth = _exact_by_day(store.snapshot())
        say(f"   view 'daily_users', served: batch view (commit {covered}) + speed layer (commits after it)")
        say(format_table(served, indent="     "))
        served_total = pc.sum(served.column("views")).as_py()
        check(
            served_total == store.status()["rows"]
            and served.column("views").to_pylist() == truth.column("events").to_pylist(),
            f"{served_total:,} page views served = {store.status()['rows']:,} rows in the master dataset, "
            "day by day: every event counted exactly once",
        )
        batch_day = store.batch_view("daily_users").filter(
            pc.equal(
                store.batch_view("daily_users").column("bucket"),
                pa.scalar(late_day, pa.timestamp("us", "UTC")),
            )
        )
        served_day = served.filter(
            pc.equal(served.column("bucket"), pa.scalar(late_day, pa.timestamp("us", "UTC")))
        )
        bv = batch_day.column("views")[0].as_py()
        sv = served_day.column("views")[0].as_py()
        check(
            sv == bv + late_n,
            f"{late_day.date()}: {bv:,} from the batch view + {late_n:,} late ones "
            f"from the speed layer = {sv:,}",
        )

        step(6, "Distinct users: exact in batch views, HyperLogLog sketches where speed data is merged")
        joined = served.select(
            ["bucket", "users", "users_exact", "users_lower", "users_upper"]
        ).append_column("true_users", truth.column("true_users"))
        say(format_table(joined, indent="     "))
        within = all(
            r["users_lower"] <= r["true_users"] <= r["users_upper"]
            and (not r["users_exact"] or r["users"] == r["true_users"])
            for r in joined.to_pylist()
        )
        check(within, "every true distinct count (from the snapshot) lies within the served 95% bounds")
        say("   days without speed data are exact; days with speed data are sketch estimates with bounds")

        step(7, "Time travel: every commit stays readable")
        say(format_table(store.commits().select(["commit", "rows", "committed_at"]), indent="     "))
        old = store.snapshot(covered)
        say(
            f"   snapshot({covered}) has {old.num_rows:,} rows (what the batch layer read); "
            f"the latest has {store.snapshot().num_rows:,}"
        )

        step(8, "Recompute: the batch layer absorbs the speed layer")
        store.recompute(progress=False)
        again = store.query("daily_users")
        say(format_table(again, indent="     "))
        check(
            again.column("users").to_pylist() == truth.column("true_users").to_pylist()
            and all(again.column("users_exact").to_pylist()),
            "distinct users are exact again, and equal the counts from the snapshot",
        )

        step(9, "Status")
        say(format_status(store.status(), indent="   "))
        say()
        if ok:
            say("Try it on your files: lamina ingest DIR events.parquet; lamina define DIR views.toml; ...")
    if not ok:
        raise CommandError("the demo's checks failed (see ✗ above): this is a bug in lamina")
    return 0


# ---------------------------------------------------------------------------------------------
# the parser

_SPEC_HELP = """\
A view spec is a TOML or JSON file with one or more views:

  [[view]]
  name = "traffic"
  time = "ts"                    # optional: the store's event-time column
  grain = "1h"
  by = ["country", "page"]
  where = { country = ["DE", "FR"] }
  [view.metrics]
  events = "count()"
  revenue = "sum(amount)"
  users = "count_distinct(user_id)"
  p95 = "quantile(latency_ms, 0.95)"
  top_pages = "top_k(page, 10)"

Aggregates: count(), count(col), sum(col), min(col), max(col), mean(col), count_distinct(col),
quantile(col, q), top_k(col, k).
In JSON: {"view": [{"name": "traffic", ..., "metrics": {"events": "count()"}}]}.
"""


# ---------------------------------------------------------------------------------------------
# quarantined, drop, compact, export


def _output_of(args: argparse.Namespace) -> str:
    output = args.output
    if output is None:
        output = _OUTPUTS.get(Path(args.out).suffix.lower(), "table") if args.out else "table"
    if output == "parquet" and not args.out:
        raise UsageError("--output parquet needs --out FILE")
    return output


def cmd_quarantined(args: argparse.Namespace) -> int:
    output = _output_of(args)
    with _open(args.store, read_only=True) as store:
        table = store.quarantined()
    if args.commit is not None:
        table = table.filter(pc.equal(table.column("commit"), args.commit))
    return _write_output(table, output, args)


def cmd_drop(args: argparse.Namespace) -> int:
    with _open(args.store) as store:
        store.drop(args.view)
    print(f"dropped view {args.view!r} (the master dataset is unchanged)")
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    with _open(args.store) as store:
        merged = store.compact()
    print(f"compacted {merged:,} segment{'s' if merged != 1 else ''}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq

    with _open(args.store, read_only=True) as store:
        table = store.snapshot(args.commit)
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.partial")
    pq.write_table(table, tmp)
    tmp.replace(out)  # never a half-written file under the final name
    at = f"commit {args.commit}" if args.commit is not None else "the latest commit"
    print(f"wrote {table.num_rows:,} rows ({at}) to {out}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    with _open(args.store, read_only=True) as store:
        diff = store.verify(args.view)
    if diff.num_rows == 0:
        print("consistent: the served answers equal a fresh recompute (approximate values within bounds)")
        return 0
    print(format_table(diff, max_rows=40))
    print(f"{diff.num_rows} difference(s)", file=sys.stderr)
    return 1


def cmd_explain(args: argparse.Namespace) -> int:
    with _open(args.store, read_only=True) as store:
        where = parse_where(args.where, _store_schema(store)) if args.where else None
        table = store.explain(args.view, args.at, where)
    print(format_table(table, max_rows=0))
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lamina",
        description="The Lambda Architecture in one process: "
        "master dataset, batch, speed and serving layers.",
    )
    parser.add_argument("--version", action="version", version=f"lamina {lamina.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "ingest",
        help="append files to a store (one commit per file), or each new file of a directory",
        description="Append files, one commit per file; or, with --watch DIR, each new file of a "
        "landing directory exactly once (its name and content hash go into the commit, so a run "
        "that is killed and started again ingests nothing twice and misses nothing).",
    )
    p.add_argument("store", metavar="STORE", help="the store directory (created if missing)")
    p.add_argument("files", metavar="FILE", nargs="*", help="Parquet, CSV or JSON Lines files")
    p.add_argument("--watch", metavar="DIR", help="ingest each new file of DIR exactly once")
    p.add_argument("--kafka", metavar="HOST:PORT", help="ingest a Kafka topic exactly once (with --topic)")
    p.add_argument("--topic", help="with --kafka: the topic (JSON objects, all partitions)")
    p.add_argument("--pattern", default="*.parquet", help="with --watch: file names to take (a glob)")
    p.add_argument(
        "--batch-ms", type=int, default=1_000, metavar="MS", help="with --kafka: longest wait for a batch"
    )
    p.add_argument(
        "--idle-ms",
        type=int,
        default=None,
        metavar="MS",
        help="with --watch or --kafka: stop once nothing new came for MS milliseconds (0: drain and stop); "
        "default: run until Ctrl-C",
    )
    p.add_argument(
        "--batch-rows", type=int, default=65_536, metavar="N", help="with --watch: rows per commit (about)"
    )
    p.add_argument("--format", choices=["parquet", "csv", "jsonl"], help="default: from the file extension")
    p.add_argument(
        "--quarantine",
        action="store_true",
        help="keep good rows and set bad ones aside instead of refusing the file",
    )
    p.add_argument("--time", metavar="COLUMN", help="the event-time column (first ingest only)")
    p.add_argument(
        "--delimiter", metavar="CHAR", help="CSV: the field delimiter (default , or a tab for .tsv)"
    )
    p.add_argument(
        "--types",
        metavar="COL=TYPE,...",
        help="CSV: column types instead of inferred ones (pyarrow names: int64, float64, string, "
        "bool, timestamp[us], date32), e.g. --types zip=string,qty=int64",
    )
    _wait_arg(p)
    p.set_defaults(subparser=p, func=cmd_ingest)

    p = sub.add_parser(
        "define",
        help="define views from a TOML or JSON spec",
        description="Define (or redefine) views from a spec file.",
        epilog=_SPEC_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("store", metavar="STORE")
    p.add_argument("spec", metavar="SPEC", help="views.toml or views.json")
    _wait_arg(p)
    p.set_defaults(subparser=p, func=cmd_define)

    p = sub.add_parser("recompute", help="batch layer: recompute views over the latest snapshot")
    p.add_argument("store", metavar="STORE")
    p.add_argument("--view", action="append", metavar="VIEW", help="only this view (repeatable)")
    p.add_argument("--threads", type=int, metavar="N", help="worker threads (default: all cores)")
    _wait_arg(p)
    p.set_defaults(subparser=p, func=cmd_recompute)

    p = sub.add_parser("query", help="the served answer of a view (batch merged with speed)")
    p.add_argument("store", metavar="STORE")
    p.add_argument("view", metavar="VIEW")
    p.add_argument("--start", help="first bucket (ISO date-time, UTC), inclusive")
    p.add_argument("--end", help="end (ISO date-time, UTC), exclusive")
    p.add_argument("--grain", help="a multiple of the view's grain, e.g. 1d")
    p.add_argument("--by", metavar="DIM,...", help="keep these dimensions, roll up the rest ('' for none)")
    p.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="COND",
        help="COLUMN=VALUE (repeat for several values), COLUMN>=VALUE (>, <=, <), COLUMN!=VALUE, "
        "or 'COLUMN not in A,B' (a null never passes != or not in)",
    )
    _output_args(p)
    p.set_defaults(subparser=p, func=cmd_query)

    p = sub.add_parser("quarantined", help="the rows set aside by --quarantine, with their reasons")
    p.add_argument("store", metavar="STORE")
    p.add_argument("--commit", type=int, metavar="N", help="only the rows of commit N")
    _output_args(p)
    p.set_defaults(subparser=p, func=cmd_quarantined)

    p = sub.add_parser("drop", help="drop a view (its batch view files go; the master dataset stays)")
    p.add_argument("store", metavar="STORE")
    p.add_argument("view", metavar="VIEW")
    _wait_arg(p)
    p.set_defaults(subparser=p, func=cmd_drop)

    p = sub.add_parser("compact", help="merge runs of small segments into larger ones")
    p.add_argument("store", metavar="STORE")
    _wait_arg(p)
    p.set_defaults(subparser=p, func=cmd_compact)

    p = sub.add_parser("export", help="write a snapshot of the master dataset as one Parquet file")
    p.add_argument("store", metavar="STORE")
    p.add_argument("out", metavar="FILE", help="the Parquet file to write")
    p.add_argument("--commit", type=int, metavar="N", help="as of commit N (default: the latest)")
    p.set_defaults(subparser=p, func=cmd_export)

    p = sub.add_parser("status", help="commits, rows, and each view's batch and speed layers")
    p.add_argument("store", metavar="STORE")
    p.add_argument("--json", action="store_true", help="machine-readable")
    p.set_defaults(subparser=p, func=cmd_status)

    p = sub.add_parser(
        "verify", help="check the served answers against a fresh recompute (exit 1 on a difference)"
    )
    p.add_argument("store", metavar="STORE")
    p.add_argument("--view", metavar="VIEW", help="only this view")
    p.set_defaults(subparser=p, func=cmd_verify)

    p = sub.add_parser("explain", help="the parts (batch, speed chunks) of one served row")
    p.add_argument("store", metavar="STORE")
    p.add_argument("view", metavar="VIEW")
    p.add_argument("--at", required=True, help="the bucket start (ISO date-time, UTC)")
    p.add_argument("--where", action="append", default=[], metavar="DIM=VALUE", help="one per dimension")
    p.set_defaults(subparser=p, func=cmd_explain)

    p = sub.add_parser("demo", help="a guided tour of the three layers on generated web-shop events")
    p.add_argument("--events", type=int, default=40_000, metavar="N", help="how many events (default 40,000)")
    p.add_argument("--dir", metavar="DIR", help="keep the store in DIR (default: a temporary store)")
    p.add_argument("--seed", type=int, default=7, help=argparse.SUPPRESS)
    p.set_defaults(subparser=p, func=cmd_demo)
    return parser


def _exit_code(code: Any) -> int:
    if code is None:
        return 0
    return code if isinstance(code, int) else 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lamina`` command; returns the exit status (0 ok, 1 refused, 2 usage error)."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:  # unicode keys on a console that cannot show them
            reconfigure(errors="backslashreplace")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error already reported by argparse
        return _exit_code(e.code)
    _WAIT["seconds"] = max(0.0, float(getattr(args, "wait", 0.0) or 0.0))
    try:
        if args.command == "ingest":
            with _new_store_guard(args.store):
                return args.func(args)
        return args.func(args)
    except UsageError as e:
        getattr(args, "subparser", parser).print_usage(sys.stderr)
        print(f"lamina {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `lamina query ... | head`
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (LaminaError, OSError) as e:
        print(f"error: {_message(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _message(error: BaseException) -> str:
    if isinstance(error, OSError) and not isinstance(error, LaminaError) and error.filename:
        return f"{error.filename}: {error.strerror or error}"
    return str(error) or type(error).__name__


if __name__ == "__main__":
    raise SystemExit(main())
