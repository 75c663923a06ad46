"""`lamina define`: views from a TOML or JSON spec file."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import lamina
from lamina.cli._common import CommandError, UsageError, _open
from lamina.errors import InvalidArgumentError

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


_VIEW_KEYS = {"name", "time", "grain", "by", "metrics", "where", "precision", "tz", "rollups"}


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

Aggregates: count(), count(col), sum(col), min(col), max(col), mean(col), count_distinct(col),
quantile(col, q), top_k(col, k).
In JSON: {"view": [{"name": "traffic", ..., "metrics": {"events": "count()"}}]}.
"""
