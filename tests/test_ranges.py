"""A time range that cuts a coarse bucket is refused, never answered as a partial bucket under the
whole bucket's label (Experience v2, item 2); aligned ranges are exact against DuckDB."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import duckdb
import pyarrow as pa
import pytest

import lamina


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
