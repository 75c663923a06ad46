"""``Store.verify``: compare a served answer with a fresh recompute of the same snapshot.

Exact values must be identical (floats bit for bit: exact sums are correctly rounded, so the two
paths give the same double); approximate values (``m_exact`` false) must lie within their bounds:
for distinct counts and quantiles, whose bounds are 95% intervals, within twice their half-widths
of the estimate (about four standard errors); for top-k, whose bounds are guarantees, every value
both lists hold within its served ``[lower, upper]``. Groups present on one
side only are differences too. This runs per group in Python: verify is a debugging and audit
tool, not a query path.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pyarrow as pa

SCHEMA = pa.schema(
    [
        ("view", pa.string()),
        ("bucket", pa.timestamp("us", tz="UTC")),
        ("group", pa.string()),
        ("metric", pa.string()),
        ("served", pa.string()),
        ("fresh", pa.string()),
        ("problem", pa.string()),
    ]
)
_SUFFIXES = ("_exact", "_source", "_lower", "_upper")
#: Whole values of tolerance added to twice the half-widths of approximate values (see compare).
SLACK = 4


def empty() -> pa.Table:
    return SCHEMA.empty_table()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return a == b


def _show(v: Any) -> str:
    return json.dumps(v, default=str, ensure_ascii=False)


def _plain(t: pa.Table) -> pa.Table:
    """Times and dates as integers: Python's datetime holds only the years 1..9999, and a store
    holds times far beyond (compared as values, they need not be datetimes)."""
    cols = []
    for col in t.columns:
        if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
            whole = pa.int32() if pa.types.is_date32(col.type) else pa.int64()
            col = col.cast(whole)
        cols.append(col)
    return pa.Table.from_arrays(cols, names=t.column_names)


def compare(view: str, served: pa.Table, fresh: pa.Table, dims: int) -> pa.Table:
    served, fresh = _plain(served), _plain(fresh)
    keys = fresh.column_names[: 1 + dims]
    metrics = [
        c
        for c in fresh.column_names[1 + dims :]
        if not (c.endswith(_SUFFIXES) and c[: -len(c.split("_")[-1]) - 1] in fresh.column_names)
    ]
    s_rows = {tuple(r[k] for k in keys): r for r in served.to_pylist()}
    f_rows = {tuple(r[k] for k in keys): r for r in fresh.to_pylist()}
    out: list[dict[str, Any]] = []

    def add(key: tuple, metric: str, s: Any, f: Any, problem: str) -> None:
        out.append(
            {
                "view": view,
                "bucket": key[0],
                "group": _show(dict(zip(keys[1:], key[1:], strict=True))),
                "metric": metric,
                "served": _show(s),
                "fresh": _show(f),
                "problem": problem,
            }
        )

    for key in sorted(set(s_rows) | set(f_rows), key=lambda k: tuple((v is None, str(v)) for v in k)):
        s, f = s_rows.get(key), f_rows.get(key)
        if s is None or f is None:
            add(
                key,
                "*",
                None if s is None else "row",
                None if f is None else "row",
                "group missing from the served answer" if s is None else "group not in the recompute",
            )
            continue
        for m in metrics:
            exact = s.get(f"{m}_exact", True)
            if exact is not False:
                if not _same(s[m], f[m]):
                    add(key, m, s[m], f[m], "exact value differs")
                continue
            if isinstance(f[m], list):  # top_k: each value both lists hold, within its bounds
                fresh_counts = {e["value"]: e["count"] for e in f[m]}
                for e in s[m]:
                    c = fresh_counts.get(e["value"])
                    if c is not None and not (e["lower"] <= c <= e["upper"]):
                        add(key, m, e, c, "exact count outside the served bounds")
                continue
            lo, hi = s.get(f"{m}_lower"), s.get(f"{m}_upper")
            if f[m] is None or lo is None or hi is None:
                add(key, m, [s[m], lo, hi], f[m], "exact value outside the served bounds")
                continue
            # The bounds are 95% intervals, so 1 value in 20 lies outside them by design: a
            # difference is only a value outside twice their half-widths (about four standard
            # errors), widened by SLACK values: a small sparse sketch's error is a whole number
            # of hidden collisions, Poisson with a mean below one, so a half-width under one
            # value would otherwise flag two collisions (once in a few hundred groups).
            est = s[m]
            slack = SLACK if isinstance(f[m], int) else 0  # counts only, never quantile values
            if not (est - 2 * (est - lo) - slack <= f[m] <= est + 2 * (hi - est) + slack):
                add(key, m, [est, lo, hi], f[m], "exact value far outside the served bounds")
    # Bucket starts are microseconds since 1970 (UTC), whatever zone labels them.
    buckets = pa.array([r.pop("bucket") for r in out], pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    rows = pa.Table.from_pylist(out, schema=SCHEMA.remove(1))
    return rows.add_column(1, SCHEMA.field(1), buckets)
