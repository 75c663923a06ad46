"""Batch recompute: count, sum, min, max and exact distinct per hour x country over Parquet.

A persistent store gets the generated events in appends of ~1M rows (one Parquet segment each),
and one view is defined. lamina times ``store.recompute()``; DuckDB (threads=2) and Polars
(default threads) compute the same aggregates over the SAME segment files
(``<store>/segments/*.parquet``). Each engine runs in its own subprocess so its peak RSS
(VmHWM) is its own; the answers are written out and compared exactly before any figure is used.

Run as a script (``python bench_batch.py --engine ...``) it is the per-engine worker.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import (
    BenchmarkError,
    BenchResult,
    Config,
    Row,
    core_built,
    current_rss,
    fmt_bytes,
    fmt_int,
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
ENGINES = ("lamina", "duckdb", "polars")
COLUMNS = ["bucket", "country", "events", "qty", "low", "high", "users"]


def view_def():
    import lamina

    return lamina.View(
        "v",
        time="ts",
        grain="1h",
        by=["country"],
        metrics={
            "events": lamina.count(),
            "qty": lamina.sum("qty"),
            "low": lamina.min("amount"),
            "high": lamina.max("amount"),
            "users": lamina.count_distinct("user_id"),
        },
    )


def duckdb_sql(glob: str, distinct: str = "count(DISTINCT user_id)", bucket: str = "1 hour") -> str:
    return f"""
        SELECT time_bucket(INTERVAL '{bucket}', ts) AS bucket, country,
               count(*) AS events, sum(qty) AS qty, min(amount) AS low, max(amount) AS high,
               {distinct} AS users
        FROM read_parquet('{glob}')
        GROUP BY ALL ORDER BY bucket, country
    """


# ------------------------------------------------------------------------------------------ worker


def worker(args: argparse.Namespace) -> None:
    rss_start = current_rss()
    store_dir = Path(args.store)
    glob = str(store_dir / "segments" / "*.parquet")
    info: dict = {"engine": args.engine}
    if args.engine == "lamina":
        import lamina

        t0 = time.perf_counter()
        store = lamina.Store(store_dir)
        info["open_s"] = time.perf_counter() - t0

        def once():
            return store.recompute(progress=False)

        def result():
            return store.query("v")
    elif args.engine == "duckdb":
        import duckdb

        con = duckdb.connect()
        con.execute("SET threads = 2")
        sql = duckdb_sql(glob)

        def once():
            return con.sql(sql).to_arrow_table()

        result = once
    elif args.engine == "polars":
        import polars as pl

        lf = (
            pl.scan_parquet(glob)
            .group_by(pl.col("ts").dt.truncate("1h").alias("bucket"), "country")
            .agg(
                events=pl.len(),
                qty=pl.col("qty").sum(),
                low=pl.col("amount").min(),
                high=pl.col("amount").max(),
                users=pl.col("user_id").n_unique(),
            )
            .sort("bucket", "country")
        )

        def once():
            return lf.collect()

        result = once
    else:
        raise SystemExit(f"unknown engine {args.engine}")

    info["core_built"] = core_built()
    info["rss_ready"] = current_rss()
    info["rss_start"] = rss_start
    t0 = time.perf_counter()
    once()  # warm-up (for lamina: the first recompute also publishes the batch view)
    info["first_s"] = time.perf_counter() - t0
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    info["times"] = times
    info["peak_rss"] = peak_rss()
    out = result()
    if args.engine == "polars":
        out.write_parquet(args.out)
    else:
        import pyarrow.parquet as pq

        pq.write_table(out, args.out)
    if args.engine == "lamina":
        info["all_exact"] = bool(
            out.column("users_exact").to_pylist() and all(out.column("users_exact").to_pylist())
        )
        info["status"] = {k: v for k, v in store.status().items() if k != "views"}
        info["view_status"] = store.status()["views"][0]
        store.close()
    print(json.dumps(info, default=str))


# -------------------------------------------------------------------------------------------- main


def _normalize(path: Path):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    t = pq.read_table(path).select(COLUMNS)
    b = t.column("bucket")
    if pa.types.is_timestamp(b.type):
        b = pc.cast(b.cast(pa.timestamp("us", b.type.tz)), pa.int64())
    t = t.set_column(0, "bucket", b)
    types = {"country": pa.string(), "low": pa.float64(), "high": pa.float64()}
    cols = {}
    for c in COLUMNS:
        col = t.column(c)
        cols[c] = col.cast(types.get(c, pa.int64())).combine_chunks()
    return pa.table(cols).sort_by([("bucket", "ascending"), ("country", "ascending")])


def verify(paths: dict[str, Path], total_rows: int) -> str:
    """Exact agreement of all engines' answers; returns a one-line summary."""
    tables = {k: _normalize(p) for k, p in paths.items()}
    ref_name, ref = "duckdb", tables["duckdb"]
    if sum(ref.column("events").to_pylist()) != total_rows:
        raise BenchmarkError(
            f"duckdb counted {sum(ref.column('events').to_pylist())} rows, expected {total_rows}"
        )
    for name, t in tables.items():
        if t.num_rows != ref.num_rows:
            raise BenchmarkError(f"batch: {name} gives {t.num_rows} groups, {ref_name} {ref.num_rows}")
        for c in COLUMNS:
            a, b = t.column(c).to_pylist(), ref.column(c).to_pylist()
            if a != b:
                i = next(i for i in range(len(a)) if a[i] != b[i])
                raise BenchmarkError(
                    f"batch: {name} and {ref_name} disagree on {c!r} at group {i}: {a[i]!r} != {b[i]!r}"
                )
    return f"{ref.num_rows:,} groups; count, sum, min, max and exact distinct identical in all engines"


def _spawn(engine: str, store_dir: Path, runs: int, out: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--engine", engine]
    cmd += ["--store", str(store_dir), "--runs", str(runs), "--out", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    if p.returncode != 0:
        raise BenchmarkError(f"batch: {engine} worker failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def run(cfg: Config) -> BenchResult:
    import lamina

    res = BenchResult(NAME)
    total = cfg.pick(2_000_000, 20_000_000)
    runs = cfg.pick(3, 5)
    root = cfg.workdir / "batch"
    store_dir = root / "store"
    log(f"batch: building a store of {total:,} events in appends of {CHUNK:,}")
    store = lamina.Store(store_dir)
    t_app = 0.0
    for i, lo in enumerate(range(0, total, CHUNK)):
        t = make_events(min(CHUNK, total - lo), (cfg.seed, 2, i))
        t0 = time.perf_counter()
        store.append(t)
        t_app += time.perf_counter() - t0
    t0 = time.perf_counter()
    store.define(view_def())
    t_define = time.perf_counter() - t0
    st = store.status()
    store.close()
    segs = sorted((store_dir / "segments").glob("*.parquet"))
    res.notes.append(
        f"batch: {total:,} events in {len(segs)} segments ({st['segment_bytes'] / 2**20:.0f} MiB), "
        f"appended at {fmt_rate(total / t_app)} (1M-event appends, no view yet); define() over the "
        f"existing data (speed layer builds the whole history) took {fmt_time(t_define)}"
    )

    infos = {}
    outs = {}
    for engine in ENGINES:
        log(f"batch: {engine} worker ({runs} timed runs after a warm-up)")
        outs[engine] = root / f"result-{engine}.parquet"
        infos[engine] = _spawn(engine, store_dir, runs, outs[engine])
    if infos["lamina"]["core_built"] != core_built():
        res.notes.append(
            f"**batch: warning**: the lamina worker loaded a different build "
            f"({infos['lamina']['core_built']}) than the main process ({core_built()})"
        )
    summary = verify(outs, total)
    if not infos["lamina"].get("all_exact"):
        raise BenchmarkError("batch: lamina's served distinct counts are not all exact after recompute")
    res.notes.append(f"batch: verified: {summary}")

    med = {e: sorted(i["times"])[len(i["times"]) // 2] for e, i in infos.items()}
    lam = med["lamina"]
    faster_peer = min(med["duckdb"], med["polars"])
    for peer, label in (("duckdb", "DuckDB (threads=2)"), ("polars", "Polars (default threads)")):
        tgt = ""
        if med[peer] == faster_peer:
            r = faster_peer / lam
            tgt = f"{target_check(r > 1, 'faster than both')}; {target_check(r >= 1.5, 'aim 1.5x')}"
        res.rows.append(
            Row(
                NAME,
                f"recompute {total / 1e6:.0f}M rows: count,sum,min,max,exact distinct per 1h x country",
                f"{fmt_time(lam)} ({fmt_rate(total / lam, 'rows/s')})",
                label,
                f"{fmt_time(med[peer])} ({fmt_rate(total / med[peer], 'rows/s')})",
                med[peer] / lam,
                tgt,
            )
        )
    for peer, label in (("duckdb", "DuckDB"), ("polars", "Polars")):
        res.rows.append(
            Row(
                NAME,
                "peak RSS of the process (ratio: peer / lamina)",
                fmt_bytes(infos["lamina"]["peak_rss"]),
                label,
                fmt_bytes(infos[peer]["peak_rss"]),
                infos[peer]["peak_rss"] / infos["lamina"]["peak_rss"],
            )
        )
    rows = []
    for e, i in infos.items():
        rows.append(
            [
                e,
                fmt_time(med[e]),
                fmt_time(min(i["times"])),
                fmt_time(i["first_s"]),
                fmt_bytes(i["rss_ready"]),
                fmt_bytes(i["peak_rss"]),
                fmt_bytes(i["peak_rss"] - i["rss_ready"]),
            ]
        )
    res.details.append(
        f"**batch** ({total:,} rows, {len(segs)} Parquet segments, {runs} timed runs per engine, "
        "each engine in its own process)\n\n"
        + md_table(
            ["engine", "median", "best", "first run", "RSS when ready", "peak RSS", "peak - ready"],
            rows,
        )
        + "\n\nlamina's first run also publishes the batch view; later runs at the same snapshot "
        "recompute fully but skip the (already published) write. "
        f"lamina store open (replays the speed layer: no batch view yet) took "
        f"{fmt_time(infos['lamina']['open_s'])}; lamina view status after: "
        f"batch_memory {fmt_bytes(infos['lamina']['view_status']['batch_memory_bytes'])}, "
        f"{fmt_int(infos['lamina']['view_status']['batch_groups'])} groups."
    )
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", required=True, choices=ENGINES)
    ap.add_argument("--store", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", required=True)
    worker(ap.parse_args())
