"""`lamina query`: a served answer, with --where conditions, as a table, CSV, JSON or Parquet."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from lamina.cli._common import UsageError, _open, _output_of, _store_schema, _write_output

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


def cmd_query(args: argparse.Namespace) -> int:
    output = _output_of(args)
    by = None if args.by is None else [d.strip() for d in args.by.split(",") if d.strip()]
    with _open(args.store, read_only=True) as store:
        where = parse_where(args.where, _store_schema(store)) if args.where else None
        table = store.query(args.view, start=args.start, end=args.end, grain=args.grain, by=by, where=where)
    return _write_output(table, output, args)
