"""`lamina recompute` and `lamina status`: the batch layer and the store's state."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping
from typing import Any

from lamina._html import _bytes
from lamina.cli._common import _open
from lamina.errors import NotFoundError


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
