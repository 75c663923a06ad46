"""Experience v2 (issue 14): no silently wrong answer, the time semantics users expect, and the
tools around them. Each test names the item it covers."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
import pytest

import lamina


def ts(*hours: float) -> pa.Array:
    base = dt.datetime(2026, 3, 2)
    return pa.array([base + dt.timedelta(hours=h) for h in hours], pa.timestamp("us"))


# ------------------------------------------------------------------ item 4: one failing view


def test_an_overflowing_sum_does_not_block_the_other_views(tmp_path) -> None:
    s = lamina.Store(str(tmp_path / "s"))
    s.define(lamina.View("sums", time="ts", grain="1h", metrics={"total": lamina.sum("qty")}))
    s.define(lamina.View("counts", time="ts", grain="1h", metrics={"n": lamina.count()}))
    s.append(pa.table({"ts": ts(0, 1), "qty": pa.array([5, 6], pa.int64())}))
    assert s.recompute(progress=False) == 1
    # Two rows of 2**62 in one hour: that bucket's sum overflows int64.
    s.append(pa.table({"ts": ts(2, 2), "qty": pa.array([2**62, 2**62], pa.int64())}))
    with pytest.raises(lamina.SumOverflowError, match=r'view "sums" was not recomputed.*1 other view'):
        s.recompute(progress=False)
    views = {v["name"]: v for v in s.status()["views"]}
    assert views["counts"]["covered_commit"] == 2 and views["counts"]["batch_error"] is None
    assert views["sums"]["covered_commit"] == 1
    assert "overflows int64" in views["sums"]["batch_error"]
    # The failing view keeps serving what it can: the buckets that do not overflow.
    assert s.query("sums", end=dt.datetime(2026, 3, 2, 2))["total"].to_pylist() == [5, 6]
    assert sum(s.query("counts")["n"].to_pylist()) == 4
    # The next recompute after the data is fixed... cannot be: data is immutable. A view over
    # other columns still publishes on every run, and the error stays visible until it passes.
    s.append(pa.table({"ts": ts(5), "qty": pa.array([1], pa.int64())}))
    with pytest.raises(lamina.SumOverflowError):
        s.recompute(progress=False)
    assert {v["name"]: v["covered_commit"] for v in s.status()["views"]} == {"counts": 3, "sums": 1}
    # Redefining the view (a float sum does not overflow) clears the error.
    s.define(
        lamina.View(
            "sums", time="ts", grain="1h", metrics={"total": lamina.sum("qty")}, where={"qty": {"<": 2**40}}
        )
    )
    assert s.recompute(progress=False) == 3
    assert all(v["batch_error"] is None for v in s.status()["views"])
    s.close()


# ------------------------------------------------------------------ item 6: row-level CSV values


def run_cli(*args, cwd):
    import os
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "lamina.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        env=dict(os.environ, PYTHONIOENCODING="utf-8"),
    )


def test_cli_quarantines_a_bad_value_with_its_line_not_the_whole_file(tmp_path) -> None:
    (tmp_path / "first.csv").write_text("ts,country,qty,ok\n2026-03-02T09:00:00,DE,7,true\n")
    (tmp_path / "b.csv").write_text(
        "ts,country,qty,ok\n"
        "2026-03-02T10:00:00,DE,1,true\n"
        "2026-03-02T11:00:00,日本,two,false\n"
        "2026-03-02T12:00:00,US,3,maybe\n"
        "2026-03-02T13:00:00,FR,4,\n"
    )
    r = run_cli("ingest", "st", "first.csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # Without --quarantine: refused whole, naming the column, the value and the line.
    r = run_cli("ingest", "st", "b.csv", cwd=tmp_path)
    assert r.returncode != 0
    assert 'column "qty": cannot read "two"' in r.stderr and "line 3" in r.stderr, r.stderr
    # With it: the good rows land, the bad ones are quarantined with their file lines.
    r = run_cli("ingest", "st", "b.csv", "--quarantine", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "2 rows quarantined" in r.stdout
    assert 'b.csv:3: column "qty"' in r.stdout and 'b.csv:4: column "ok"' in r.stdout, r.stdout
    s = lamina.Store(str(tmp_path / "st"), read_only=True)
    snap = s.snapshot()
    assert snap["qty"].to_pylist() == [7, 1, 4] and snap["ok"].to_pylist() == [True, True, None]
    q = s.quarantined()
    assert q["row"].to_pylist() == [1, 2] and q["qty"].to_pylist() == ["two", "3"]
    s.close()


def test_a_string_column_from_a_frame_is_still_a_type_error(tmp_path) -> None:
    s = lamina.Store(str(tmp_path / "s"))
    s.append(pa.table({"ts": ts(0), "qty": pa.array([1], pa.int64())}))
    with pytest.raises(lamina.SchemaError, match="qty"):
        s.append(pa.table({"ts": ts(1), "qty": pa.array(["2"])}), quarantine=True)
    s.close()


# ------------------------------------------------------------------ ISO weeks start on Monday


@pytest.mark.parametrize("grain,interval", [("1w", "1 week"), ("2w", "2 weeks")])
def test_weekly_buckets_start_on_monday_as_in_duckdb(grain, interval) -> None:
    import numpy as np

    rng = np.random.default_rng(3)
    base = np.datetime64("1969-12-01T00:00:00", "us")
    t = pa.table(
        {
            "ts": pa.array(base + rng.integers(0, 60 * 86_400 * 10**6, 2_000).astype("timedelta64[us]")),
            "k": pa.array(rng.choice(["a", "ß", None], 2_000)),
        }
    )
    s = lamina.Store()
    s.define(lamina.View("w", time="ts", grain=grain, by=["k"], metrics={"n": lamina.count()}))
    s.append(t.slice(0, 1_000))
    s.recompute(progress=False)
    s.append(t.slice(1_000))  # half in the batch view, half in the speed layer
    got = s.query("w")
    want = duckdb.sql(
        f"select time_bucket(interval {interval}, ts) as b, k, count(*) as n from t group by all "
        "order by b, k nulls last"
    ).fetchall()
    rows = [(r["bucket"].replace(tzinfo=None), r["k"], r["n"]) for r in got.to_pylist()]
    assert rows == want
    assert all(b.weekday() == 0 for b, _, _ in rows)
    # Days roll up into the same Monday weeks.
    s.define(lamina.View("d", time="ts", grain="1d", metrics={"n": lamina.count()}))
    weekly = s.query("d", grain=grain)
    assert [r["bucket"].weekday() for r in weekly.to_pylist()] == [0] * weekly.num_rows
    assert sum(weekly["n"].to_pylist()) == 2_000
    s.close()
