"""``store.sql``: SQL over the served views, against DuckDB on the raw rows."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest
from support import ts

import lamina

# ---------------------------------------------------------------- (from test_experience_v2.py)


def test_sql_over_served_views_matches_duckdb_on_the_raw_rows(tmp_path) -> None:
    import numpy as np

    rng = np.random.default_rng(4)
    t = pa.table(
        {
            "ts": ts(*rng.uniform(0, 72, 5_000)),
            "country": pa.array(rng.choice(["DE", "日本", ""], 5_000), mask=rng.random(5_000) < 0.05),
            "amount": rng.normal(10, 3, 5_000),
        }
    )
    s = lamina.Store(str(tmp_path / "s"))
    s.define(
        lamina.View(
            "traffic",
            time="ts",
            grain="1h",
            by=["country"],
            metrics={"events": lamina.count(), "amount": lamina.sum("amount")},
        )
    )
    s.define(lamina.View("other view", time="ts", grain="1d", metrics={"n": lamina.count()}))
    s.append(t.slice(0, 2_500))
    s.recompute(progress=False)
    s.append(t.slice(2_500))  # served = batch + speed
    got = s.sql(
        "select country, sum(events) as n, sum(amount) as a from traffic group by country order by country"
    )
    con = duckdb.connect()
    con.register("t", t)
    want = con.sql(
        "select country, count(*), sum(amount) from t group by country order by country"
    ).fetchall()
    assert [(r["country"], r["n"]) for r in got.to_pylist()] == [(w[0], w[1]) for w in want]
    for r, w in zip(got.to_pylist(), want, strict=True):
        assert r["a"] == pytest.approx(w[2], rel=1e-12)
    assert s.sql('select sum(n) as n from "other view"')["n"].to_pylist() == [5_000]
    with pytest.raises(lamina.InvalidArgumentError, match="nosuch"):
        s.sql("select * from nosuch")
    s.close()
