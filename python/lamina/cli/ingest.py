"""`lamina ingest`: files, a watched directory or a Kafka topic into a store."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

import lamina
from lamina._files import FileRead, infer_format, parse_types, read_input
from lamina.cli._common import CommandError, UsageError, _open, _store_schema
from lamina.errors import LaminaError


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
            read = read_input(
                path, fmt, schema, time_column, delimiter=args.delimiter, types=parse_types(args.types)
            )
            table = read.table
            if read.rejected:
                line, value, why = read.rejected[0]
                shown = value[:60].decode("utf-8", "replace")
                if not args.quarantine:
                    raise CommandError(
                        f"{path}:{line}: {why} ({shown!r}); {len(read.rejected)} such line(s); "
                        "nothing was written from this file (--quarantine skips them)"
                    )
                for line, value, why in read.rejected[:5]:
                    text = value[:60].decode("utf-8", "replace")
                    print(f"  {path}:{line}: {why} ({text!r}); skipped")
            if table.num_rows == 0:
                print(f"{path}: no rows; nothing committed")
                continue
            try:
                commit = store.append(table, quarantine=args.quarantine)
            except LaminaError as e:
                hint = ""
                if "no timestamp column" in str(e):
                    hint = " (name it with --time COLUMN)"
                text = _with_line(str(e), read, fmt)
                tail = "" if "nothing was written" in text else "; nothing was written from this file"
                raise type(e)(f"{path}: {text}{hint}{tail}") from e
            info = store.commits().filter(pc.equal(store.commits().column("commit"), commit))
            rows = info.column("rows")[0].as_py()
            quarantined = info.column("quarantined")[0].as_py()
            said = f"{path}: commit {commit}, {rows:,} rows"
            if quarantined:
                plural = "s" if quarantined != 1 else ""
                said += f", {quarantined:,} row{plural} quarantined (set aside with a reason)"
            print(said)
            if quarantined:
                q = store.quarantined()
                q = q.filter(pc.equal(q.column("commit"), commit))
                for row, reason in list(zip(q["row"].to_pylist(), q["reason"].to_pylist(), strict=True))[:5]:
                    print(f"  {path}:{read.line_of(row, fmt)}: {reason}")
                if quarantined > 5:
                    print(f"  ... see `lamina quarantined {args.store}`")
    return 0


def _with_line(message: str, read: FileRead, fmt: str) -> str:
    """A core error naming a row, with the file's line added (text formats)."""
    if fmt == "parquet":
        return message

    return re.sub(
        r"at row (\d+)", lambda m: f"at row {m.group(1)} (line {read.line_of(int(m.group(1)), fmt)})", message
    )
