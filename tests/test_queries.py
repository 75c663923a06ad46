"""Queries: a time range that cuts a coarse bucket is refused, never answered as a partial bucket
under the whole bucket's label; aligned ranges are exact against DuckDB; filters (``!=`` and
``not in`` too) behave as in SQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import duckdb
import pyarrow as pa
import pytest
from support import ts

import lamina

from conftest import run_cli


@pytest.fixture()
def store() -> Iterator[lamina.Store]:
    ts = [dt.datetime(2026, 1, 1, h, 30) for h in range(6)] + [dt.datetime(2026, 1, 2, 1)]
    s = lamina.Store(None)
    s.append(pa.table({"ts": ts, "n": list(range(7))}))
    metrics = {"events": lamina.count(), "s": lamina.sum("n")}
    s.define(lamina.View("v", time="ts", grain="1h", metrics=metrics))
    yield s
    s.close()


def test_a_range_cutting_a_coarse_bucket_is_refused(store: lamina.Store) -> None:
    with pytest.raises(lamina.InvalidArgumentError, match=r"start 2026-01-01 03:00:00 cuts the 1d bucket"):
        store.query("v", grain="1d", start="2026-01-01 03:00")
    with pytest.raises(lamina.InvalidArgumentError, match=r"2026-01-01 00:00:00 or 2026-01-02 00:00:00"):
        store.query("v", grain="1d", end="2026-01-01 12:00")
    # At the view's own grain the same range is fine: whole hours.
    assert store.query("v", start="2026-01-01 03:00")["events"].to_pylist() == [1, 1, 1, 1]


def test_aligned_ranges_equal_duckdb(store: lamina.Store) -> None:
    snap = store.snapshot()  # noqa: F841 - read by duckdb
    got = store.query("v", grain="1d", start="2026-01-01", end="2026-01-03")
    want = duckdb.sql(
        "select time_bucket(interval 1 day, ts) as bucket, count(*) as events, sum(n) as s "
        "from snap group by all order by all"
    ).fetchall()
    assert [(r["events"], r["s"]) for r in got.to_pylist()] == [(w[1], w[2]) for w in want]
    store.recompute(progress=False)
    with pytest.raises(lamina.InvalidArgumentError, match="cuts the 2h bucket"):
        store.batch_view("v", grain="2h", start="2026-01-01 01:00")


# ---------------------------------------------------------------- (from test_experience_v2.py)


def test_not_equal_and_not_in_filter_like_sql(tmp_path) -> None:
    import numpy as np

    rng = np.random.default_rng(9)
    t = pa.table(
        {
            "ts": ts(*rng.uniform(0, 48, 3_000)),
            "country": pa.array(
                rng.choice(["DE", "FR", "日本", "", "US"], 3_000), mask=rng.random(3_000) < 0.1
            ),
        }
    )
    s = lamina.Store(str(tmp_path / "s"))
    s.define(lamina.View("v", time="ts", grain="1d", by=["country"], metrics={"n": lamina.count()}))
    s.append(t)

    def total(where):
        return sum(s.query("v", by=[], where=where)["n"].to_pylist())

    con = duckdb.connect()
    con.register("t", t)
    assert (
        total({"country": {"!=": "DE"}})
        == con.sql("select count(*) from t where country <> 'DE'").fetchall()[0][0]
    )
    assert (
        total({"country": {"not in": ["DE", "日本"]}})
        == con.sql("select count(*) from t where country not in ('DE', '日本')").fetchall()[0][0]
    )
    # A view can filter with it too.
    s.define(
        lamina.View(
            "w",
            time="ts",
            grain="1d",
            metrics={"n": lamina.count()},
            where={"country": {"not in": ["", "US"]}},
        )
    )
    assert (
        sum(s.query("w")["n"].to_pylist())
        == con.sql("select count(*) from t where country not in ('', 'US')").fetchall()[0][0]
    )
    with pytest.raises(lamina.InvalidArgumentError, match="cannot be combined"):
        s.query("v", where={"country": {"!=": "DE", ">": "A"}})
    s.close()
    # The command line: COLUMN!=VALUE and 'COLUMN not in A,B'.
    r = run_cli(
        "query",
        "s",
        "v",
        "--by",
        "",
        "--where",
        "country!=DE",
        "--where",
        "country!=FR",
        "--output",
        "csv",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    got = sum(int(line.split(",")[-1]) for line in r.stdout.splitlines()[1:])
    assert got == con.sql("select count(*) from t where country not in ('DE', 'FR')").fetchall()[0][0]
    r = run_cli(
        "query", "s", "v", "--by", "", "--where", "country not in DE,日本", "--output", "csv", cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    got = sum(int(line.split(",")[-1]) for line in r.stdout.splitlines()[1:])
    assert got == con.sql("select count(*) from t where country not in ('DE', '日本')").fetchall()[0][0]
