"""The tools around quantile and top_k: CLI view files, lamina.testing assertions and plots,
each checked against DuckDB over the same events."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lamina
from lamina.cli import parse_aggregate
from lamina.errors import InvalidArgumentError
from lamina.testing import assert_matches_oracle

START = np.datetime64("2026-03-02T00:00:00", "us")
PAGES = ["/", "/käse", "/カート", "/😀", "/checkout"]


def events(n: int, seed: int, hours: int = 6) -> pa.Table:
    rng = np.random.default_rng(seed)
    latency = rng.lognormal(3.0, 1.0, n)
    latency[rng.random(n) < 0.05] = np.nan  # becomes null below
    return pa.table(
        {
            "ts": pa.array(START + rng.integers(0, hours * 3_600_000_000, n).astype("timedelta64[us]")),
            "country": pa.array(rng.choice(["DE", "FR", "JP"], n)),
            "page": pa.array([PAGES[i] for i in rng.zipf(1.6, n) % len(PAGES)]),
            "latency_ms": pa.array(latency, mask=np.isnan(latency)),
        }
    )


def _arrow(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    """A DuckDB result as a table (newer DuckDB returns a reader from ``.arrow()``)."""
    out = relation.arrow()
    return out.read_all() if hasattr(out, "read_all") else out


def oracle(con: duckdb.DuckDBPyConnection, tbl: pa.Table) -> pa.Table:
    """Per hour and country: quantile_cont of latency and the exact top 3 pages."""
    return _arrow(
        con.sql(
            """
        with q as (
          select time_bucket(interval 1 hour, ts) as bucket, country,
                 quantile_cont(latency_ms, 0.5) as p50, quantile_cont(latency_ms, 0.9) as p90
          from tbl group by all),
        c as (
          select time_bucket(interval 1 hour, ts) as bucket, country, page as value, count(*) as count
          from tbl group by all),
        r as (
          select *, row_number() over (partition by bucket, country order by count desc, value) as rn
          from c),
        t as (
          select bucket, country, list({'value': value, 'count': count} order by rn) as top_pages
          from r where rn <= 3 group by all)
        select q.*, t.top_pages from q join t using (bucket, country)
        """
        )
    )


def test_testing_helper_checks_quantiles_and_top_k_both_ways() -> None:
    tbl = events(20_000, seed=1)
    con = duckdb.connect()
    with lamina.Store(None) as store:
        store.append(tbl)
        store.define(
            lamina.View(
                "v",
                time="ts",
                grain="1h",
                by=["country"],
                metrics={
                    "p50": lamina.quantile("latency_ms", 0.5),
                    "p90": lamina.quantile("latency_ms", 0.9),
                    "top_pages": lamina.top_k("page", 3),
                },
            )
        )
        store.recompute(progress=False)
        assert_matches_oracle(store, "v", oracle(con, tbl))
        # Late events: served from merged sketches; the helper checks the bounds instead.
        late = events(3_000, seed=2)
        store.append(late)
        both = pa.concat_tables([tbl, late])
        assert_matches_oracle(store, "v", oracle(con, both))
        # A wrong oracle fails: shift every p50 far outside the bounds, and swap top counts.
        bad = oracle(con, both)
        bad = bad.set_column(bad.schema.get_field_index("p50"), "p50", pa.compute.add(bad["p50"], 1e6))
        with pytest.raises(AssertionError, match="p50"):
            assert_matches_oracle(store, "v", bad.select(["bucket", "country", "p50"]))
        store.recompute(progress=False)
        good = oracle(con, both)
        rows = good.to_pylist()
        rows[0]["top_pages"] = [{"value": e["value"], "count": e["count"] + 1} for e in rows[0]["top_pages"]]
        wrong = pa.Table.from_pylist(rows, schema=good.schema)
        with pytest.raises(AssertionError, match="top_pages"):
            assert_matches_oracle(store, "v", wrong.select(["bucket", "country", "top_pages"]))


def test_cli_parses_quantile_and_top_k() -> None:
    assert parse_aggregate("quantile(latency_ms, 0.95)", "m") == lamina.quantile("latency_ms", 0.95)
    assert parse_aggregate("top_k(page, 10)", "m") == lamina.top_k("page", 10)
    assert parse_aggregate({"agg": "quantile", "column": "x", "q": 0.5}, "m") == lamina.quantile("x", 0.5)
    for bad in ("quantile(x)", "quantile(x, half)", "top_k(page, 1.5)", "top_k(page, 0)", "sum(x, 2)"):
        with pytest.raises(InvalidArgumentError):
            parse_aggregate(bad, "m")


def test_cli_view_file_with_quantile_and_top_k(tmp_path: Path) -> None:
    tbl = events(5_000, seed=3)
    pq.write_table(tbl, tmp_path / "events.parquet")
    (tmp_path / "views.toml").write_text(
        '[[view]]\nname = "lat"\ngrain = "1h"\nby = ["country"]\n'
        '[view.metrics]\np90 = "quantile(latency_ms, 0.9)"\ntop = "top_k(page, 2)"\n',
        encoding="utf-8",
    )
    env = dict(os.environ, PYTHONIOENCODING="utf-8")

    def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lamina.cli", *map(str, args)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=120,
            env=env,
        )

    for args in (
        ("ingest", "store", "events.parquet"),
        ("define", "store", "views.toml"),
        ("recompute", "store"),
    ):
        r = cli(*args)
        assert r.returncode == 0, r.stderr
    for output in ("table", "json", "csv"):
        r = cli("query", "store", "lat", "--output", output)
        assert r.returncode == 0, (output, r.stderr)
        assert "/käse" in r.stdout or "/" in r.stdout
    with lamina.Store(tmp_path / "store", read_only=True) as store:
        served = store.query("lat")
    con = duckdb.connect()
    want = _arrow(
        con.sql(
            "select time_bucket(interval 1 hour, ts) as bucket, country, "
            "quantile_cont(latency_ms, 0.9) as p90 from tbl group by all order by all"
        )
    )
    got = served.select(["p90"]).to_pylist()
    assert len(got) == want.num_rows
    for g, w in zip(got, want.to_pylist(), strict=True):
        assert g["p90"] == pytest.approx(w["p90"], rel=1e-12)
    assert all(served["p90_exact"].to_pylist()) and all(served["top_exact"].to_pylist())


def test_plot_draws_one_line_per_top_value_and_a_band_for_quantiles() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib.collections import PolyCollection

    tbl = events(8_000, seed=4)
    with lamina.Store(None) as store:
        store.define(
            lamina.View(
                "v",
                time="ts",
                grain="1h",
                metrics={"p50": lamina.quantile("latency_ms", 0.5), "top": lamina.top_k("page", 2)},
            )
        )
        store.append(tbl)
        # Speed data only: the quantile is a sketch estimate, so it gets a band.
        ax = store.plot("v", "p50")
        assert any(isinstance(c, PolyCollection) for c in ax.collections)
        ax = store.plot("v", "top")
        labels = {line.get_label() for line in ax.get_lines()}
        served = store.query("v")
        listed = {e["value"] for row in served["top"].to_pylist() for e in row}
        assert labels == listed and len(labels) >= 2
        for line in ax.get_lines():
            want = [
                e["count"] for row in served["top"].to_pylist() for e in row if e["value"] == line.get_label()
            ]
            assert list(line.get_ydata()) == want, line.get_label()
