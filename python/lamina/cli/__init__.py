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
import sys
from collections.abc import Sequence
from typing import Any

import lamina
from lamina.cli._common import (
    _WAIT,
    UsageError,
    _message,
    _new_store_guard,
    _output_args,
    _wait_arg,
    format_table,  # noqa: F401
)
from lamina.cli.batch import cmd_recompute, cmd_status
from lamina.cli.define import _SPEC_HELP, cmd_define, parse_aggregate, parse_views  # noqa: F401 - the public helpers
from lamina.cli.demo import cmd_demo
from lamina.cli.ingest import cmd_ingest
from lamina.cli.query import (
    cmd_query,
    parse_where,  # noqa: F401
)
from lamina.cli.tools import cmd_compact, cmd_drop, cmd_explain, cmd_export, cmd_quarantined, cmd_verify
from lamina.errors import LaminaError


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
