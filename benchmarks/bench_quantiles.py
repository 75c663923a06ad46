"""Quantile and top-k sketches: lamina's speed-layer sketches against their peers, one run.

* **Quantiles**: lamina's KLL (k = 200) against datasketches ``kll_doubles_sketch(200)``, which
  serializes to about the same size (the bytes are reported). Per n and trial, n values from one
  of three distributions (uniform, normal, Pareto) are sketched whole and, for lamina, also in 8
  pieces merged at the end (how the speed layer's chunks meet). Reported: the normalized rank error
  of the estimates (mean and 95th percentile, over q in 1%..99%), bytes, and the share of lamina's
  bounds that contain the exact value (``numpy.quantile``, the same definition as DuckDB
  ``quantile_cont``). Ratio: datasketches' p95 rank error / lamina's (>1: lamina more accurate).
* **Top-k**: lamina's frequent-items summary (``top_k(column, 10)``, 80 items) against DuckDB
  ``approx_top_k(column, 10)``, on Zipf-distributed values (exponents 1.1 and 1.5). Reported:
  recall of the exact top 10 (DuckDB ``count(*) ... group by``), lamina's mean relative count
  error and the share of listed items whose guaranteed bounds hold (must be 100%).
* **Memory per group**: ``status()["views"][i]["metric_bytes_per_group"]`` of a view with both
  metrics, in the batch view and in the speed layer.
"""

from __future__ import annotations

import time

import datasketches
import duckdb
import numpy as np
import pyarrow as pa
from common import BenchResult, Config, Row, fmt_int, log, md_table, target_check

import lamina
from lamina import _core

NAME = "quantiles"
QS = [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99]
K = 200


def _data(rng: np.random.Generator, n: int, kind: int) -> np.ndarray:
    if kind == 0:
        return rng.random(n)
    if kind == 1:
        return rng.normal(100.0, 15.0, n)
    return rng.pareto(1.5, n)


def _rank_errors(sorted_x: np.ndarray, estimates: list[float]) -> list[float]:
    n = len(sorted_x)
    out = []
    for q, e in zip(QS, estimates, strict=True):
        lo = np.searchsorted(sorted_x, e, side="left") / n
        hi = np.searchsorted(sorted_x, e, side="right") / n
        # The estimate's rank is anywhere in [lo, hi] when it equals stored values (ties).
        out.append(0.0 if lo <= q <= hi else min(abs(lo - q), abs(hi - q)))
    return out


def _quantiles(cfg: Config, res: BenchResult) -> None:
    rng = np.random.default_rng((cfg.seed, 11))
    sizes = cfg.pick([1_000, 100_000], [1_000, 10_000, 100_000, 1_000_000])
    table = []
    worst_cov = 1.0
    for n in sizes:
        trials = cfg.pick(12, 60 if n <= 100_000 else 15)
        log(f"quantiles: n={n:,} x {trials} trials")
        err = {"lamina": [], "lamina, 8 merged pieces": [], "datasketches KLL": []}
        size = {k: [] for k in err}
        secs = dict.fromkeys(err, 0.0)
        covered = total = 0
        for t in range(trials):
            x = _data(rng, n, t % 3)
            sx = np.sort(x)
            exact = np.quantile(x, QS)
            arr = pa.array(x)
            for name, parts in (("lamina", 1), ("lamina, 8 merged pieces", 8)):
                t0 = time.perf_counter()
                r = _core.quantile_sketch(arr, QS, k=K, parts=parts)
                secs[name] += time.perf_counter() - t0
                err[name] += _rank_errors(sx, r["estimate"])
                size[name].append(r["bytes"])
                for lo, hi, want in zip(r["lower"], r["upper"], exact, strict=True):
                    covered += lo <= want <= hi
                    total += 1
            t0 = time.perf_counter()
            ds = datasketches.kll_doubles_sketch(K)
            ds.update(x)
            est = [ds.get_quantile(q) for q in QS]
            secs["datasketches KLL"] += time.perf_counter() - t0
            err["datasketches KLL"] += _rank_errors(sx, est)
            size["datasketches KLL"].append(len(ds.serialize()))
        cov = covered / total
        worst_cov = min(worst_cov, cov)
        p95 = {k: float(np.quantile(v, 0.95)) for k, v in err.items()}
        for name in err:
            table.append(
                [
                    fmt_int(n),
                    name,
                    str(trials),
                    f"{np.mean(err[name]) * 100:.3f}%",
                    f"{p95[name] * 100:.3f}%",
                    fmt_int(round(float(np.mean(size[name])))),
                    f"{cov * 100:.1f}%" if name.startswith("lamina") else "",
                    f"{secs[name]:.2f}",
                ]
            )
        res.rows.append(
            Row(
                NAME,
                f"KLL n={n:,}: p95 normalized rank error / bytes (ratio: peer error / lamina's)",
                f"{p95['lamina'] * 100:.3f}% / {fmt_int(round(float(np.mean(size['lamina']))))} B",
                "datasketches kll_doubles_sketch(200)",
                f"{p95['datasketches KLL'] * 100:.3f}% / "
                f"{fmt_int(round(float(np.mean(size['datasketches KLL']))))} B",
                p95["datasketches KLL"] / max(p95["lamina"], 1e-12),
                target_check(cov >= 0.95, f"bounds cover the exact value in >= 95% ({cov * 100:.1f}%)"),
            )
        )
    res.notes.append(f"quantiles: lowest coverage of lamina's bounds over all n: {worst_cov * 100:.1f}%")
    res.details.append(
        "**quantile sketches** (normalized rank error over q in 1%..99%; coverage: share of lamina's "
        "bounds containing numpy's exact quantile)\n\n"
        + md_table(
            ["n", "sketch", "trials", "mean rank err", "p95 rank err", "bytes", "coverage", "seconds"],
            table,
        )
    )


def _top_k(cfg: Config, res: BenchResult) -> None:
    rng = np.random.default_rng((cfg.seed, 12))
    n = cfg.pick(100_000, 1_000_000)
    k = 10
    table = []
    con = duckdb.connect()
    for a in (1.1, 1.5):
        trials = cfg.pick(3, 10)
        log(f"top-k: zipf({a}), n={n:,} x {trials} trials")
        recall = {"lamina": [], "duckdb": []}
        rel_err = []
        held = listed = 0
        size = []
        for t in range(trials):
            values = pa.array((rng.zipf(a, n) * 7919 + t) % 1_000_003, pa.int64())
            tbl = pa.table({"v": values})  # noqa: F841 - read by duckdb below
            truth = con.sql(
                "select v, count(*) as c from tbl group by v order by c desc, v limit 10"
            ).fetchall()
            true_counts = dict(con.sql("select v, count(*) from tbl group by v").fetchall())
            top = {v for v, _ in truth}
            approx = con.sql(f"select approx_top_k(v, {k}) from tbl").fetchall()[0][0]
            r = _core.top_k_sketch(values, k, parts=8)
            got = [item[0] for item in r["items"]]
            recall["lamina"].append(len(top & set(got)) / k)
            recall["duckdb"].append(len(top & set(approx)) / k)
            size.append(r["bytes"])
            for value, count, lo, hi in r["items"]:
                want = true_counts[value]
                listed += 1
                held += lo <= want <= hi
                rel_err.append(abs(count - want) / want)
        table.append(
            [
                f"zipf({a})",
                fmt_int(n),
                str(trials),
                f"{np.mean(recall['lamina']) * 100:.0f}%",
                f"{np.mean(recall['duckdb']) * 100:.0f}%",
                f"{np.mean(rel_err) * 100:.2f}%",
                f"{held}/{listed}",
                fmt_int(round(float(np.mean(size)))),
            ]
        )
        ratio = np.mean(recall["lamina"]) / max(np.mean(recall["duckdb"]), 1e-12)
        res.rows.append(
            Row(
                NAME,
                f"top-10 of zipf({a}), n={n:,}, 8 merged pieces: recall (ratio: lamina / DuckDB)",
                f"{np.mean(recall['lamina']) * 100:.0f}%",
                "DuckDB approx_top_k",
                f"{np.mean(recall['duckdb']) * 100:.0f}%",
                ratio,
                target_check(held == listed, "every listed item's bounds hold"),
            )
        )
    res.details.append(
        "**top-k summaries** (recall of the exact top 10; count error of lamina's listed counts; "
        "bounds: listed items whose true count lies in [lower, upper])\n\n"
        + md_table(
            ["data", "n", "trials", "lamina recall", "DuckDB recall", "lamina count err", "bounds", "bytes"],
            table,
        )
    )


def _memory(cfg: Config, res: BenchResult) -> None:
    rng = np.random.default_rng((cfg.seed, 13))
    n = cfg.pick(200_000, 2_000_000)
    ts = np.datetime64("2026-01-05T00:00:00", "us") + rng.integers(0, 7 * 86_400_000_000, n).astype(
        "timedelta64[us]"
    )
    events = pa.table(
        {
            "ts": pa.array(ts),
            "country": pa.array(rng.choice(["DE", "FR", "IT", "ES", "PL"], n)),
            "latency_ms": rng.lognormal(3.0, 1.0, n),
            "page": pa.array([f"/p/{i}" for i in rng.zipf(1.3, n) % 5_000]),
        }
    )
    with lamina.Store(None) as store:
        store.append(events)
        store.define(
            lamina.View(
                "v",
                time="ts",
                grain="1h",
                by=["country"],
                metrics={
                    "p50": lamina.quantile("latency_ms", 0.5),
                    "p99": lamina.quantile("latency_ms", 0.99),
                    "top_pages": lamina.top_k("page", 10),
                },
            )
        )
        store.recompute(progress=False)
        store.append(events.slice(0, n // 10))
        v = store.status()["views"][0]
    per = v["metric_bytes_per_group"]
    for metric, d in per.items():
        res.rows.append(
            Row(
                NAME,
                f"memory per group of {metric} ({n:,} events, 1h x 5 countries; batch view / speed layer)",
                f"{fmt_int(round(d['batch']))} B / {fmt_int(round(d['speed']))} B",
            )
        )


def run(cfg: Config) -> BenchResult:
    res = BenchResult(NAME)
    _quantiles(cfg, res)
    _top_k(cfg, res)
    _memory(cfg, res)
    return res
