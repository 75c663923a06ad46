"""Batch recompute as the user meets it: new data arrives, then ``store.recompute()``, publish
included (sketch building, Parquet encoding, fsync, the manifest commit).

Four shapes, each its own store of ~1M-row Parquet segments. The first three have one view with
every metric family (count, int sum, float sum, float min/max, mean, exact distinct):

* ``hour x country``: about 8,400 groups (20M rows; quick: 2M);
* ``hour x country x page``: 7 pages, about 55,000 groups, 2M distinct users (8M; quick: 1M);
* ``minute x country x page``: 20 pages over one day, about 1.2M groups (8M; quick: 1M).

The fourth has a view of exact quantiles and an exact distinct count:

* ``quantiles: minute x country x page``: 5 pages over one day, a few hundred thousand groups;
  count, p50/p95/p99 of amount (DuckDB ``quantile_cont``, Polars linear interpolation: the same
  definition) and exact distinct users (8M; quick: 1M).

Before every timed lamina run a commit of 1,000 new events is appended (not timed), so every
recompute publishes a new batch view. DuckDB (threads=2) and Polars (default threads) compute the
same aggregates over the SAME segment files afterwards, new data included. Each engine runs in its
own subprocess so its peak RSS (VmHWM) is its own; the answers are written out and compared
(exactly; float sums and means to 1e-9 relative, since the peers do not sum exactly) before any
figure is used. lamina's time split (``status()["last_recompute"]``) is reported per shape.

Run as a script (``python bench_batch.py --engine ...``) it is the per-engine worker.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

from common import (
    HOUR_US,
    BenchmarkError,
    BenchResult,
    Config,
    Row,
    core_built,
    current_rss,
    fmt_bytes,
    fmt_rate,
    fmt_time,
    log,
    make_events,
    md_table,
    peak_rss,
    target_check,
)

NAME = "batch"
CHUNK = 1_000_000
NEW_ROWS = 1_000
ENGINES = ("lamina", "duckdb", "polars")
METRICS = ["events", "qty", "amt", "low", "high", "avg", "users"]
QUANTILE_METRICS = ["events", "p50", "p95", "p99", "users"]
# The peers' float sums are not exact, and interpolated quantiles may round differently:
# compared to 1e-9 relative.
FLOAT_APPROX = {"amt", "avg", "p50", "p95", "p99"}
QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}

# name -> (grain, dims, data keywords, full rows, quick rows)
SHAPES = {
    "hour x country": ("1h", ["country"], {}, 20_000_000, 2_000_000),
    "hour x country x page": (
        "1h",
        ["country", "page"],
        {"n_pages": 7, "n_users": 2_000_000},
        8_000_000,
        1_000_000,
    ),
    "minute x country x page": (
        "1m",
        ["country", "page"],
        {"n_pages": 20, "span_us": 24 * HOUR_US},
        8_000_000,
        1_000_000,
    ),
    "quantiles: minute x country x page": (
        "1m",
        ["country", "page"],
        {"n_pages": 5, "span_us": 24 * HOUR_US},
        8_000_000,
        1_000_000,
    ),
}


def metrics_of(shape: str) -> list[str]:
    """The metric columns a shape's view gives."""
    return QUANTILE_METRICS if shape.startswith("quantiles") else METRICS


SQL_UNIT = {"1h": "1 hour", "1m": "1 minute", "1d": "1 day"}


def view_def(grain: str = "1h", dims: list[str] | tuple[str, ...] = ("country",), quantiles: bool = False):
    import lamina

    if quantiles:
        metrics = {
            "events": lamina.count(),
            **{name: lamina.quantile("amount", q) for name, q in QUANTILES.items()},
            "users": lamina.count_distinct("user_id"),
        }
    else:
        metrics = {
            "events": lamina.count(),
            "qty": lamina.sum("qty"),
            "amt": lamina.sum("amount"),
            "low": lamina.min("amount"),
            "high": lamina.max("amount"),
            "avg": lamina.mean("amount"),
            "users": lamina.count_distinct("user_id"),
        }
    return lamina.View("v", time="ts", grain=grain, by=list(dims), metrics=metrics)


def duckdb_sql(
    glob: str,
    grain: str = "1h",
    dims: list[str] | tuple[str, ...] = ("country",),
    distinct: str = "count(DISTINCT user_id)",
    quantiles: bool = False,
) -> str:
    """The view of ``view_def`` in SQL (``distinct``: the distinct-count expression)."""
    if quantiles:
        qs = ", ".join(f"quantile_cont(amount, {q}) AS {name}" for name, q in QUANTILES.items())
        return f"""
        SELECT time_bucket(INTERVAL '{SQL_UNIT[grain]}', ts) AS bucket, {", ".join(dims)},
               count(*) AS events, {qs}, {distinct} AS users
        FROM read_parquet('{glob}')
        GROUP BY ALL ORDER BY ALL
    """
    return f"""
        SELECT time_bucket(INTERVAL '{SQL_UNIT[grain]}', ts) AS bucket, {", ".join(dims)},
               count(*) AS events, sum(qty) AS qty, sum(amount) AS amt, min(amount) AS low,
               max(amount) AS high, avg(amount) AS avg, {distinct} AS users
        FROM read_parquet('{glob}')
        GROUP BY ALL ORDER BY ALL
    """


# ------------------------------------------------------------------------------------------ worker


def worker(args: argparse.Namespace) -> None:
    rss_start = current_rss()
    store_dir = Path(args.store)
    glob = str(store_dir / "segments" / "*.parquet")
    grain, dims, data_kw, _, _ = SHAPES[args.shape]
    quantiles = args.shape.startswith("quantiles")
    info: dict = {"engine": args.engine}
    if args.engine == "lamina":
        import lamina

        # Cold start: the store has no batch view yet. After a crash (the process that defined
        # the view died without closing the store) the open replays the whole history into the
        # speed layer; a clean close saves the speed state, which the next open loads.
        t0 = time.perf_counter()
        store = lamina.Store(store_dir)
        store.query("v")
        info["cold_crash_s"] = time.perf_counter() - t0
        saved_before = store.status()["views"][0].get("speed_saved")
        store.close()
        t0 = time.perf_counter()
        store = lamina.Store(store_dir)
        info["open_s"] = time.perf_counter() - t0
        store.query("v")
        info["cold_s"] = time.perf_counter() - t0
        info["speed_saved"] = [saved_before, store.status()["views"][0].get("speed_saved")]
        fresh = [make_events(NEW_ROWS, (args.seed, 9, i), **data_kw) for i in range(args.runs + 1)]

        def before():
            store.append(fresh.pop())  # new data: the recompute that follows must publish

        def once():
            return store.recompute(progress=False)

        def result():
            return store.query("v")
    elif args.engine == "duckdb":
        import duckdb

        con = duckdb.connect()
        con.execute("SET threads = 2")
        sql = duckdb_sql(glob, grain, dims, quantiles=quantiles)

        def once():
            return con.sql(sql).to_arrow_table()

        before, result = None, once
    elif args.engine == "polars":
        import polars as pl

        if quantiles:
            aggs = {
                "events": pl.len(),
                **{
                    name: pl.col("amount").quantile(q, interpolation="linear")
                    for name, q in QUANTILES.items()
                },
                "users": pl.col("user_id").n_unique(),
            }
        else:
            aggs = dict(
                events=pl.len(),
                qty=pl.col("qty").sum(),
                # SQL semantics: the sum of no values is null (Polars says 0.0).
                amt=pl.when(pl.col("amount").count() > 0).then(pl.col("amount").sum()),
                low=pl.col("amount").min(),
                high=pl.col("amount").max(),
                avg=pl.col("amount").mean(),
                users=pl.col("user_id").n_unique(),
            )
        lf = (
            pl.scan_parquet(glob)
            .group_by(pl.col("ts").dt.truncate(grain).alias("bucket"), *dims)
            .agg(**aggs)
            .sort("bucket", *dims)
        )

        def once():
            return lf.collect()

        before, result = None, once
    else:
        raise SystemExit(f"unknown engine {args.engine}")

    info["core_built"] = core_built()
    info["rss_ready"] = current_rss()
    info["rss_start"] = rss_start
    times, splits = [], []
    for i in range(args.runs + 1):  # the first run is a warm-up
        if before is not None:
            before()
        t0 = time.perf_counter()
        once()
        elapsed = time.perf_counter() - t0
        if i == 0:
            info["first_s"] = elapsed
            continue
        times.append(elapsed)
        if args.engine == "lamina":
            last = store.status().get("last_recompute")  # None in builds before Performance v2
            if last:
                splits.append(last)
    info["times"] = times
    info["splits"] = splits
    info["peak_rss"] = peak_rss()
    out = result()
    if args.engine == "polars":
        out.write_parquet(args.out)
    else:
        import pyarrow.parquet as pq

        pq.write_table(out, args.out)
    if args.engine == "lamina":
        users_exact = out.column("users_exact").to_pylist()
        info["all_exact"] = bool(users_exact) and all(users_exact)
        st = store.status()
        info["rows"] = st["rows"]
        info["view_status"] = st["views"][0]
        store.close()
    print(json.dumps(info, default=str))


# -------------------------------------------------------------------------------------------- main


def _normalize(path: Path, dims: list[str], metrics: list[str]):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    cols_wanted = ["bucket", *dims, *metrics]
    t = pq.read_table(path).select(cols_wanted)
    b = t.column("bucket")
    if pa.types.is_timestamp(b.type):
        b = pc.cast(b.cast(pa.timestamp("us", b.type.tz)), pa.int64())
    t = t.set_column(0, "bucket", b)
    floats = ("amt", "low", "high", "avg", *QUANTILES)
    types = {d: pa.string() for d in dims} | {m: pa.float64() for m in floats}
    cols = {c: t.column(c).cast(types.get(c, pa.int64())).combine_chunks() for c in cols_wanted}
    return pa.table(cols).sort_by([("bucket", "ascending")] + [(d, "ascending") for d in dims])


def _same(a, b, approx: bool) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if approx:
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def verify(paths: dict[str, Path], dims: list[str], total_rows: int, metrics: list[str] = METRICS) -> str:
    """Agreement of all engines' answers; returns a one-line summary."""
    tables = {k: _normalize(p, dims, metrics) for k, p in paths.items()}
    ref_name, ref = "duckdb", tables["duckdb"]
    counted = sum(ref.column("events").to_pylist())
    if counted != total_rows:
        raise BenchmarkError(f"duckdb counted {counted} rows, the store holds {total_rows}")
    for name, t in tables.items():
        if t.num_rows != ref.num_rows:
            raise BenchmarkError(f"batch: {name} gives {t.num_rows} groups, {ref_name} {ref.num_rows}")
        for c in ["bucket", *dims, *metrics]:
            a, b = t.column(c).to_pylist(), ref.column(c).to_pylist()
            approx = c in FLOAT_APPROX
            if a != b and not all(_same(x, y, approx) for x, y in zip(a, b, strict=True)):
                i = next(i for i in range(len(a)) if not _same(a[i], b[i], approx))
                raise BenchmarkError(
                    f"batch: {name} and {ref_name} disagree on {c!r} at group {i}: {a[i]!r} != {b[i]!r}"
                )
    return f"{ref.num_rows:,} groups; every metric agrees in all engines"


def _spawn(engine: str, shape: str, store_dir: Path, runs: int, out: Path, seed: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--engine", engine, "--shape", shape]
    cmd += ["--store", str(store_dir), "--runs", str(runs), "--out", str(out), "--seed", str(seed)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        raise BenchmarkError(f"batch: {engine} worker failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def _split_table(splits: list[dict]) -> str:
    """The median run's time split, phase by phase."""
    if not splits:
        return ""
    mid = sorted(splits, key=lambda s: s["seconds"])[len(splits) // 2]
    rows = [[k, f"{v * 1000:.0f} ms"] for k, v in mid["phases"].items()]
    rows.append(["wall time of the recompute (in the core)", f"{mid['seconds'] * 1000:.0f} ms"])
    return (
        f"lamina's time split (median run, {mid['threads']} threads; parallel phases in CPU time "
        "summed over workers, so they may add up to more than the wall time):\n\n"
        + md_table(["phase", "time"], rows)
    )


def run_shape(cfg: Config, res: BenchResult, shape: str, runs: int) -> None:
    import lamina

    grain, dims, data_kw, full, quick = SHAPES[shape]
    total = cfg.pick(quick, full)
    root = cfg.workdir / "batch" / shape.replace(" ", "").replace(":", "")
    store_dir = root / "store"
    log(f"batch [{shape}]: building a store of {total:,} events in appends of {CHUNK:,}")
    store = lamina.Store(store_dir)
    t_app = 0.0
    for i, lo in enumerate(range(0, total, CHUNK)):
        t = make_events(min(CHUNK, total - lo), (cfg.seed, 2, i), **data_kw)
        t0 = time.perf_counter()
        store.append(t)
        t_app += time.perf_counter() - t0
    store.close()
    # The view is defined by a process that then dies without closing the store (like a crash),
    # so the first open must replay the whole history; that open's close saves the speed state,
    # which the next open loads (see the worker).
    view = view_def(grain, dims, shape.startswith("quantiles"))
    crash = (
        "import os, sys, lamina; s = lamina.Store(sys.argv[1]); "
        "s.define(lamina.View.from_json(sys.argv[2])); os._exit(0)"
    )
    subprocess.run(
        [sys.executable, "-c", crash, str(store_dir), view.to_json()],
        check=True,
        timeout=1800,
    )

    infos, outs = {}, {}
    for engine in ENGINES:
        log(f"batch [{shape}]: {engine} worker ({runs} timed runs after a warm-up)")
        outs[engine] = root / f"result-{engine}.parquet"
        infos[engine] = _spawn(engine, shape, store_dir, runs, outs[engine], cfg.seed)
    lam_info = infos["lamina"]
    if lam_info["core_built"] != core_built():
        res.notes.append(
            f"**batch: warning**: the lamina worker loaded a different build ({lam_info['core_built']})"
        )
    summary = verify(outs, dims, lam_info["rows"], metrics_of(shape))
    if not lam_info.get("all_exact"):
        raise BenchmarkError(f"batch [{shape}]: served distinct counts are not all exact after recompute")

    med = {e: sorted(i["times"])[len(i["times"]) // 2] for e, i in infos.items()}
    lam = med["lamina"]
    faster = min(("duckdb", "polars"), key=lambda e: med[e])
    groups = lam_info["view_status"]["batch_groups"]
    case = f"recompute after new data, publish incl.: {shape} ({groups:,} groups), {total / 1e6:.0f}M rows"
    r = med[faster] / lam
    res.rows.append(
        Row(
            NAME,
            case,
            f"{fmt_time(lam)} ({fmt_rate(total / lam, 'rows/s')})",
            f"{'DuckDB' if faster == 'duckdb' else 'Polars'} (the faster peer)",
            fmt_time(med[faster]),
            r,
            target_check(r >= 1.5, "1.5x the faster peer"),
        )
    )
    if shape == "hour x country":
        res.rows.append(
            Row(
                NAME,
                f"cold start: open a store of {total / 1e6:.0f}M rows with no batch view, first query",
                fmt_time(lam_info["cold_s"]),
                target=target_check(lam_info["cold_s"] < 1.0, "< 1 s"),
            )
        )
        res.rows.append(
            Row(
                NAME,
                f"cold start after a crash (no saved speed state: replays {total / 1e6:.0f}M rows)",
                fmt_time(lam_info["cold_crash_s"]),
            )
        )
    lower_peer = min(infos["duckdb"]["peak_rss"], infos["polars"]["peak_rss"])
    res.rows.append(
        Row(
            NAME,
            f"peak RSS, {shape}",
            fmt_bytes(lam_info["peak_rss"]),
            "the lower peer",
            fmt_bytes(lower_peer),
            lower_peer / lam_info["peak_rss"],
            target_check(lam_info["peak_rss"] <= lower_peer, "no higher than the lower peer"),
        )
    )
    rows = [
        [
            e,
            fmt_time(med[e]),
            fmt_time(min(i["times"])),
            fmt_time(i["first_s"]),
            fmt_bytes(i["rss_ready"]),
            fmt_bytes(i["peak_rss"]),
        ]
        for e, i in infos.items()
    ]
    res.details.append(
        f"**batch: {shape}** ({total:,} rows in ~{CHUNK:,}-row segments, +{NEW_ROWS:,} new rows "
        f"before each lamina run; {runs} timed runs per engine after a warm-up, each engine in its "
        f"own process; appended at {fmt_rate(total / t_app)}). Verified: {summary}.\n\n"
        + md_table(["engine", "median", "best", "warm-up run", "RSS when ready", "peak RSS"], rows)
        + f"\n\nlamina cold start (no batch view yet): open {fmt_time(lam_info['open_s'])}, open and "
        f"first query {fmt_time(lam_info['cold_s'])} (saved speed state "
        f"{lam_info.get('speed_saved', [None, None])[1]}); after a crash, with no saved state "
        f"(replay of the whole history), open and first query {fmt_time(lam_info['cold_crash_s'])}."
        + "\n\n"
        + _split_table(lam_info["splits"])
    )


def run(cfg: Config) -> BenchResult:
    res = BenchResult(NAME)
    runs = cfg.pick(2, 3)
    for shape in SHAPES:
        run_shape(cfg, res, shape, runs)
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", required=True, choices=ENGINES)
    ap.add_argument("--shape", required=True, choices=list(SHAPES))
    ap.add_argument("--store", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    worker(ap.parse_args())
