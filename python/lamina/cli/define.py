"""`lamina define`: views from a TOML or JSON spec file."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lamina
from lamina import _core
from lamina.cli._common import CommandError, UsageError, _open
from lamina.errors import InvalidArgumentError
from lamina.view import parse_aggregate as _parse_aggregate

_VIEW_KEYS = {"name", "time", "grain", "by", "metrics", "where", "precision", "tz", "rollups"}


def parse_aggregate(text: Any, where: str) -> lamina.Aggregate:
    """``"count()"``, ``"sum(amount)"``, ``"count_distinct(user_id)"``, ``"quantile(latency, 0.95)"``,
    ``"top_k(page, 10)"`` (or ``{agg=, column=, q=, k=}``), parsed by the core."""
    return _parse_aggregate(text, where)


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
        for key in ("precision", "tz", "rollups"):
            if key in entry:
                options[key] = entry[key]
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


_SPEC_HELP = """\
A view spec is a TOML or JSON file with one or more views:

  [[view]]
  name = "traffic"
  time = "ts"                    # optional: the store's event-time column
  grain = "1h"
  by = ["country", "page"]
  where = { country = ["DE", "FR"] }
  tz = "Europe/Berlin"           # optional: days and months on this zone's clock
  rollups = [["1d", []], ["1d", ["country"]]]   # optional: shapes kept exact
  [view.metrics]
  events = "count()"
  revenue = "sum(amount)"
  users = "count_distinct(user_id)"
  p95 = "quantile(latency_ms, 0.95)"
  top_pages = "top_k(page, 10)"

Aggregates: AGGREGATES (avg is mean).
In JSON: {"view": [{"name": "traffic", ..., "metrics": {"events": "count()"}}]}.
"""


def _aggregate_calls() -> str:
    """The aggregates as calls, from the core's table: ``count(), count(col), sum(col), ...``."""
    calls = []
    for name, params, optional in _core.aggregates():
        if optional:
            calls.append(f"{name}()")
        calls.append(f"{name}({', '.join(['col', *params])})")
    return ", ".join(calls)


_SPEC_HELP = _SPEC_HELP.replace("AGGREGATES", _aggregate_calls())
