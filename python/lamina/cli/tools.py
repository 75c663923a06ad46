"""`lamina quarantined`, `drop`, `compact`, `export`, `verify` and `explain`: the tools around a store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyarrow.compute as pc

from lamina.cli._common import _open, _output_of, _store_schema, _write_output, format_table
from lamina.cli.query import parse_where


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
