"""Shared test data: generated events with nulls, unicode keys, late and out-of-order times; and
the `lamina` command run as a real subprocess."""

from __future__ import annotations

import datetime as dt
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import lamina

START = dt.datetime(2026, 3, 1)
COUNTRIES = ["DE", "FR", "US", "日本", "Ελλάδα", "", "ü", "🙂"]
PAGES = ["/", "/cart", "/checkout", "/produkt/äöü", "/search"]


def make_events(
    n: int, seed: int, *, days: float = 3.0, start: dt.datetime = START, null_rate: float = 0.05
) -> pa.Table:
    """n events: ts (us, shuffled: out of order), country/page (unicode, some null), user_id (int,
    some null), amount (float, some null, wide magnitudes), qty (int), flag (bool)."""
    rng = np.random.default_rng(seed)
    base = np.datetime64(start, "us")
    offsets = rng.integers(0, int(days * 86_400e6), n).astype("timedelta64[us]")
    ts = base + offsets

    def nulls() -> np.ndarray:
        return rng.random(n) < null_rate

    country = pa.array(rng.choice(COUNTRIES, n), mask=nulls())
    page = pa.array(rng.choice(PAGES, n), mask=nulls())
    user = pa.array(rng.integers(0, max(10, n // 5), n), mask=nulls())
    # Magnitudes from 1e-3 to 1e6 and both signs: naive float summation would depend on order.
    amount = rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-3, 6, n)
    amount = pa.array(amount, mask=nulls())
    qty = pa.array(rng.integers(-1000, 1000, n), mask=nulls())
    flag = pa.array(rng.random(n) < 0.5, mask=nulls())
    return pa.table(
        {
            "ts": ts,
            "country": country,
            "page": page,
            "user_id": user,
            "amount": amount,
            "qty": qty,
            "flag": flag,
        }
    )


def full_view(
    name: str = "traffic", grain: str = "1h", by: tuple[str, ...] = ("country", "page"), **kw
) -> lamina.View:
    return lamina.View(
        name,
        time="ts",
        grain=grain,
        by=by,
        metrics={
            "events": lamina.count(),
            "revenue": lamina.sum("amount"),
            "units": lamina.sum("qty"),
            "low": lamina.min("amount"),
            "high": lamina.max("qty"),
            "avg": lamina.mean("amount"),
            "avg_qty": lamina.mean("qty"),
            "users": lamina.count_distinct("user_id"),
            "amounts": lamina.count("amount"),
        },
        **kw,
    )


GRAIN_US = {
    "1m": 60_000_000,
    "15m": 900_000_000,
    "1h": 3_600_000_000,
    "6h": 21_600_000_000,
    "1d": 86_400_000_000,
}


def oracle(events: pa.Table, grain: str, by: list[str], where_sql: str = "TRUE") -> pa.Table:
    """The same view computed by DuckDB (and math.fsum for float sums), sorted like lamina."""
    import duckdb

    g = GRAIN_US[grain]
    con = duckdb.connect()
    con.register("ev", events)
    dims = "".join(f", {d}" for d in by)
    sql = f"""
        SELECT make_timestamp((epoch_us(ts) // {g}) * {g}) AS bucket{dims},
               count(*) AS events, list(amount) FILTER (WHERE amount IS NOT NULL) AS amount_list,
               sum(qty)::BIGINT AS units, min(amount) AS low, max(qty) AS high,
               count(qty) AS n_qty, count(DISTINCT user_id) AS users, count(amount) AS amounts
        FROM ev WHERE {where_sql}
        GROUP BY ALL ORDER BY bucket{"".join(f", {d} NULLS LAST" for d in by)}
    """
    t = con.sql(sql).arrow()
    if isinstance(t, pa.RecordBatchReader):
        t = t.read_all()
    rows = t.to_pylist()
    for r in rows:
        vals = r.pop("amount_list") or []
        r["revenue"] = math.fsum(vals) if vals else None
        r["avg"] = math.fsum(vals) / len(vals) if vals else None
        r["avg_qty"] = float(r["units"]) / r["n_qty"] if r["n_qty"] else None
        r.pop("n_qty")
        r["bucket"] = r["bucket"].replace(tzinfo=dt.UTC)
    return rows


def lamina_rows(table: pa.Table) -> list[dict]:
    return table.to_pylist()


def assert_same(actual: pa.Table, expected: list[dict], by: list[str]) -> None:
    got = actual.to_pylist()
    assert len(got) == len(expected), f"{len(got)} groups, oracle has {len(expected)}"
    keys = ["bucket", *by]
    for i, (a, e) in enumerate(zip(got, expected, strict=True)):
        for k in keys:
            assert a[k] == e[k], f"row {i}: key {k}: {a[k]!r} != {e[k]!r}"
        for m in ("events", "units", "low", "high", "users", "amounts"):
            assert a[m] == e[m], f"row {i} {[a[k] for k in keys]}: {m}: lamina {a[m]!r} != oracle {e[m]!r}"
        # Float sums: bit-identical to math.fsum (correct rounding), means derived from them.
        for m in ("revenue", "avg", "avg_qty"):
            assert a[m] == e[m] or (a[m] != a[m] and e[m] != e[m]), f"row {i}: {m}: {a[m]!r} != {e[m]!r}"


@pytest.fixture
def store():
    s = lamina.Store()
    yield s
    s.close()


def as_polars(t: pa.Table) -> object:
    """The same rows as a polars DataFrame (an Arrow PyCapsule producer)."""
    import polars as pl

    return pl.from_arrow(t)


def as_duckdb(t: pa.Table) -> object:
    """The same rows as a DuckDB relation, ordered by ``id``."""
    import duckdb

    con = duckdb.connect()
    con.register("t", t)
    return con.sql("SELECT * FROM t ORDER BY id")


def run_cli(*args: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``lamina ARGS...`` in a subprocess (``python -m lamina.cli``), output captured as UTF-8."""
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "lamina.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        env=env,
    )


def zoned_counts(t: pa.Table, interval: str, zone: str, by: str = "") -> list[tuple]:
    """DuckDB's answer for events ``t`` (columns ``ts`` and ``user``) bucketed by
    ``time_bucket(INTERVAL interval, ts, zone)``: (bucket start as a POSIX timestamp, the ``by``
    columns, count, distinct users), sorted. Naive ``ts`` is taken as UTC."""
    import duckdb

    con = duckdb.connect()
    con.sql("SET TimeZone = 'UTC'")
    con.register("t", t)
    keys = f", {by}" if by else ""
    rows = con.sql(
        f"SELECT time_bucket(INTERVAL '{interval}', ts::TIMESTAMPTZ, '{zone}') AS b{keys}, count(*), "
        f"count(DISTINCT user) FROM t GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    return [(r[0].timestamp(), *r[1:]) for r in rows]
