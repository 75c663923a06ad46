"""Serving: query latency over a week of hourly groups, and freshness.

A persistent store holds a week of events (168 hourly buckets x ~50 countries), recomputed, then a
few more appends so the served answer merges a batch part and a speed part. ``store.query("v")``
latency (p50/p99 over 200 calls) at the view's grain and at ``grain="1d"`` is compared with DuckDB
answering the same question from the raw Parquet segments.

Freshness: append 1,000 events, then query at once and check they are counted; the time from
append returning to the query returning, p50/p99, for a query of the hour the events fall in and
for the whole view.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time

import duckdb
import numpy as np
import pyarrow as pa
from bench_batch import duckdb_sql, view_def
from common import (
    HOUR_US,
    WEEK_START,
    WEEK_US,
    BenchmarkError,
    BenchResult,
    Config,
    Row,
    Timing,
    fmt_bytes,
    fmt_int,
    fmt_time,
    log,
    make_events,
    md_table,
    measure,
    target_check,
)

import lamina

NAME = "serving"
CALLS = 200


def _lat(t: Timing) -> str:
    return f"p50 {fmt_time(t.median)} / p99 {fmt_time(t.pct(99))}"


def _check_against_duckdb(served: pa.Table, duck: pa.Table, what: str) -> None:
    a = served.select(["events", "qty"])
    b = duck.select(["events", "qty"])
    if served.num_rows != duck.num_rows:
        raise BenchmarkError(f"serving ({what}): lamina {served.num_rows} groups, DuckDB {duck.num_rows}")
    for c in ("events", "qty"):
        if a.column(c).to_pylist() != b.column(c).to_pylist():
            raise BenchmarkError(f"serving ({what}): lamina and DuckDB disagree on {c}")
    lam_b = served.column("bucket").cast(pa.timestamp("us", "UTC")).cast(pa.int64()).to_pylist()
    duck_b = duck.column("bucket").cast(pa.timestamp("us")).cast(pa.int64()).to_pylist()
    if lam_b != duck_b or served.column("country").to_pylist() != duck.column("country").to_pylist():
        raise BenchmarkError(f"serving ({what}): lamina and DuckDB disagree on the groups")


def run(cfg: Config) -> BenchResult:
    res = BenchResult(NAME)
    total = cfg.pick(500_000, 2_000_000)
    chunk = 1_000_000
    root = cfg.workdir / "serving"
    store_dir = root / "store"
    log(f"serving: store of {total:,} events over a week, recompute, then 10 x 1,000-event appends")
    store = lamina.Store(store_dir)
    for i, lo in enumerate(range(0, total, chunk)):
        store.append(make_events(min(chunk, total - lo), (cfg.seed, 5, i)))
    store.define(view_def())
    store.recompute(progress=False)
    for i in range(10):
        store.append(make_events(1_000, (cfg.seed, 5, 1000 + i)))
    st = store.status()["views"][0]
    glob = str(store_dir / "segments" / "*.parquet")

    con = duckdb.connect()
    con.execute("SET threads = 2")
    sql_h = duckdb_sql(glob)
    sql_d = duckdb_sql(glob, grain="1d")
    served_h = store.query("v")
    served_d = store.query("v", grain="1d")
    _check_against_duckdb(served_h, con.sql(sql_h).to_arrow_table(), "1h")
    _check_against_duckdb(served_d, con.sql(sql_d).to_arrow_table(), "1d")
    approx = served_h.num_rows - sum(served_h.column("users_exact").to_pylist())

    log(f"serving: {CALLS} query calls per grain")
    q_h = measure(lambda: store.query("v"), repeat=CALLS, warmup=20)
    q_d = measure(lambda: store.query("v", grain="1d"), repeat=CALLS, warmup=20)
    duck_calls = cfg.pick(10, 20)
    log(f"serving: {duck_calls} DuckDB calls per grain")
    d_h = measure(lambda: con.sql(sql_h).to_arrow_table(), repeat=duck_calls, warmup=2)
    d_d = measure(lambda: con.sql(sql_d).to_arrow_table(), repeat=duck_calls, warmup=2)
    sql_ha = duckdb_sql(glob, distinct="approx_count_distinct(user_id)")
    d_ha = measure(lambda: con.sql(sql_ha).to_arrow_table(), repeat=duck_calls, warmup=1)
    con.close()

    for label, lam_t, duck_t, n_groups in (
        ("1h", q_h, d_h, served_h.num_rows),
        ("1d (rolled up from 1h)", q_d, d_d, served_d.num_rows),
    ):
        res.rows.append(
            Row(
                NAME,
                f'query("v") grain {label}: {n_groups:,} groups, batch + speed parts',
                _lat(lam_t),
                "DuckDB over raw segments (exact distinct)",
                _lat(duck_t),
                duck_t.median / lam_t.median,
                target_check(lam_t.pct(99) < 0.005, "< 5 ms (p99)") if label == "1h" else "",
            )
        )
    res.rows.append(
        Row(
            NAME,
            'query("v") grain 1h vs DuckDB with approx_count_distinct',
            _lat(q_h),
            "DuckDB over raw segments (approx distinct)",
            _lat(d_ha),
            d_ha.median / q_h.median,
        )
    )

    # ---------------------------------------------------------------- freshness
    iters = CALLS
    last_hour_us = WEEK_US - HOUR_US
    hour_start = (WEEK_START + np.timedelta64(last_hour_us, "us")).astype(dt.datetime).replace(tzinfo=dt.UTC)
    hour_end = hour_start + dt.timedelta(hours=1)
    log(f"serving: freshness, {iters} x (append 1,000 events, query)")
    fresh = make_events(1_000 * iters * 2, (cfg.seed, 5, 9999), start_us=last_hour_us, span_us=HOUR_US)
    fresh_batches = [fresh.slice(i * 1_000, 1_000) for i in range(iters * 2)]

    def hour_events() -> int:
        return sum(store.query("v", start=hour_start, end=hour_end).column("events").to_pylist())

    def all_events() -> int:
        return sum(store.query("v").column("events").to_pylist())

    out = {}
    app_times = []
    for mode, probe, batches in (
        ("hour", hour_events, fresh_batches[:iters]),
        ("all", all_events, fresh_batches[iters:]),
    ):
        before = probe()
        lat = []
        for b in batches:
            t_a = time.perf_counter()
            store.append(b)
            t0 = time.perf_counter()
            got = probe()
            t1 = time.perf_counter()
            app_times.append(t0 - t_a)
            lat.append(t1 - t0)
            before += 1_000
            if got != before:
                raise BenchmarkError(f"serving freshness: query saw {got} events, expected {before}")
        out[mode] = Timing(lat)
    app = Timing(app_times)
    # peer for the small durable append: pyarrow write_table + fsync of the same 1,000 events
    import pyarrow.parquet as pq
    from common import fsync_path

    peer_dir = root / "pyarrow-small"
    peer_dir.mkdir()

    def peer_write(i=[0]):  # noqa: B006 - a counter
        p = peer_dir / f"{i[0]:06d}.parquet"
        i[0] += 1
        pq.write_table(fresh_batches[i[0] % len(fresh_batches)], p)
        fsync_path(p)
        fsync_path(peer_dir)

    t_peer = measure(peer_write, repeat=100, warmup=5)
    slow = sum(t > 0.1 for t in app_times)
    res.rows.append(
        Row(
            NAME,
            "freshness: append of 1,000 events returns -> query of that hour returns",
            _lat(out["hour"]),
            target=target_check(out["hour"].median < 0.001, "< 1 ms (p50)")
            + f", p99 {'met' if out['hour'].pct(99) < 0.001 else 'missed'}",
        )
    )
    res.rows.append(
        Row(
            NAME,
            'freshness: append of 1,000 events returns -> full query("v") returns',
            _lat(out["all"]),
        )
    )
    res.rows.append(
        Row(
            NAME,
            "durable append of 1,000 events (latency)",
            _lat(app),
            "pyarrow write_table + fsync file + dir",
            _lat(t_peer),
            t_peer.median / app.median,
        )
    )
    k = 20

    def avg(t: Timing, sl: slice) -> str:
        return fmt_time(float(np.mean(t.times[sl])))

    res.notes.append(
        f"serving: freshness hour-query latency grows as the hot hour's speed state grows: mean "
        f"{avg(out['hour'], slice(None, k))} over the first {k} iterations, "
        f"{avg(out['hour'], slice(-k, None))} over the last {k}; full query first {k} "
        f"{avg(out['all'], slice(None, k))}, last {k} {avg(out['all'], slice(-k, None))}. "
        f"{slow} of {len(app_times)} small appends took > 100 ms (max {fmt_time(max(app_times))})"
    )
    st2 = store.status()["views"][0]
    res.details.append(
        f"**serving** ({total:,} events + 10 x 1,000 speed events; {served_h.num_rows:,} hourly groups, "
        f"{approx:,} of them with an approximate distinct (speed data present))\n\n"
        + md_table(
            ["measure", "p50", "p99", "mean", "calls"],
            [
                ['lamina query("v")', fmt_time(q_h.median), fmt_time(q_h.pct(99)), fmt_time(q_h.mean), CALLS],
                [
                    'lamina query("v", grain="1d")',
                    fmt_time(q_d.median),
                    fmt_time(q_d.pct(99)),
                    fmt_time(q_d.mean),
                    CALLS,
                ],
                [
                    "DuckDB 1h, exact distinct",
                    fmt_time(d_h.median),
                    fmt_time(d_h.pct(99)),
                    fmt_time(d_h.mean),
                    duck_calls,
                ],
                [
                    "DuckDB 1d, exact distinct",
                    fmt_time(d_d.median),
                    fmt_time(d_d.pct(99)),
                    fmt_time(d_d.mean),
                    duck_calls,
                ],
                [
                    "DuckDB 1h, approx distinct",
                    fmt_time(d_ha.median),
                    fmt_time(d_ha.pct(99)),
                    fmt_time(d_ha.mean),
                    duck_calls,
                ],
                [
                    "freshness, hour query",
                    fmt_time(out["hour"].median),
                    fmt_time(out["hour"].pct(99)),
                    fmt_time(out["hour"].mean),
                    iters,
                ],
                [
                    "freshness, full query",
                    fmt_time(out["all"].median),
                    fmt_time(out["all"].pct(99)),
                    fmt_time(out["all"].mean),
                    iters,
                ],
                [
                    "append 1,000 events",
                    fmt_time(app.median),
                    fmt_time(app.pct(99)),
                    fmt_time(app.mean),
                    2 * iters,
                ],
            ],
        )
        + f"\n\nView status before freshness: {fmt_int(st['batch_groups'])} batch groups "
        f"({fmt_bytes(st['batch_memory_bytes'])}), {fmt_int(st['speed_groups'])} speed groups "
        f"({fmt_bytes(st['speed_memory_bytes'])}); after: {fmt_int(st2['speed_groups'])} speed groups "
        f"({fmt_bytes(st2['speed_memory_bytes'])}), {st2['pending_commits']} pending commits."
    )
    store.close()
    shutil.rmtree(root, ignore_errors=True)
    return res
