"""The batch layer on dask.distributed: a local recompute against the same recompute run by a
``LocalCluster`` of 1 and of 2 worker processes on this machine, and the cost of the partial-state
protocol that carries the work between them.

One durable store of ~250k-row segments (4M rows; quick: 600k) with one view, hour x country x
page (7 pages, about 55,000 groups), every metric family (count, int and float sums, mean, min,
exact distinct users, p95, top-3 pages). Before every timed recompute a commit of 1,000 new
events is appended (not timed), so every run publishes. Each cluster's batch view is checked to
count every stored row before its time is used (bit-identity with the local recompute is tested
in tests/test_distributed.py). Ratios are local time / cluster time (above 1: the cluster is
faster).

Protocol overhead, on the same view's partial table over all rows: bytes per group (what a task
ships), the time to write it from the aggregation state and to read it back (a merge of one
table does both), and its pickled size (what dask moves between processes).
"""

from __future__ import annotations

import pickle
import time

from common import BenchResult, Config, Row, fmt_int, fmt_time, log, make_chunks, md_table

import lamina

NAME = "distributed"


def _view() -> lamina.View:
    return lamina.View(
        "traffic",
        time="ts",
        grain="1h",
        by=["country", "page"],
        metrics={
            "events": lamina.count(),
            "qty": lamina.sum("qty"),
            "revenue": lamina.sum("amount"),
            "avg": lamina.mean("amount"),
            "low": lamina.min("amount"),
            "users": lamina.count_distinct("user_id"),
            "p95": lamina.quantile("amount", 0.95),
            "pages": lamina.top_k("page", 3),
        },
    )


def _timed(store: lamina.Store, extra, repeat: int, **kw) -> list[float]:
    times = []
    for i in range(repeat):
        store.append(extra[i % len(extra)])
        t0 = time.perf_counter()
        store.recompute(progress=False, **kw)
        times.append(time.perf_counter() - t0)
    return times


def run(cfg: Config) -> BenchResult:
    from distributed import Client, LocalCluster

    res = BenchResult(NAME)
    total = cfg.pick(600_000, 4_000_000)
    repeat = cfg.pick(2, 3)
    store = lamina.Store(str(cfg.workdir / "distributed"))
    store.define(_view())
    for t in make_chunks(total, 250_000, cfg.seed, n_pages=7):
        store.append(t)
    extra = make_chunks(1_000 * (repeat + 1), 1_000, cfg.seed + 1, n_pages=7)
    _timed(store, extra, 1)  # warm the page cache
    local = _timed(store, extra, repeat)
    want = store.batch_view("traffic")
    groups = want.num_rows
    table = []
    results = {}
    for workers, threads in ((1, 2), (2, 1)):
        log(f"distributed: LocalCluster of {workers} worker(s) x {threads} thread(s)")
        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=threads,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=50,
            ) as cluster,
            Client(cluster) as client,
        ):
            _timed(store, extra, 1, executor=client)  # warm the workers (imports)
            # Every row counted once (tests/test_distributed.py checks bit-identity).
            rows = store.status()["rows"]
            counted = sum(store.batch_view("traffic")["events"].to_pylist())
            if counted != rows:
                raise AssertionError(f"{workers} workers: {counted} events counted of {rows}")
            times = _timed(store, extra, repeat, executor=client)
        med = sorted(times)[len(times) // 2]
        results[workers] = med
        table.append(
            [f"{workers} x {threads}", fmt_time(med), f"{sorted(local)[len(local) // 2] / med:.2f}x"]
        )
    local_med = sorted(local)[len(local) // 2]
    for workers, med in results.items():
        res.rows.append(
            Row(
                NAME,
                f"recompute on a LocalCluster of {workers} worker process(es), {total:,} rows, "
                f"{groups:,} groups (ratio: local / cluster)",
                fmt_time(med),
                "local recompute (2 threads)",
                fmt_time(local_med),
                local_med / med,
                "reported",
            )
        )
    # The protocol, on the whole snapshot's partial state.
    snap = store.snapshot()
    t0 = time.perf_counter()
    part = lamina.partial_states(_view(), snap)
    compute = time.perf_counter() - t0
    t0 = time.perf_counter()
    lamina.merge_partial_states([part])
    roundtrip = time.perf_counter() - t0
    state_bytes = sum(
        part.column(i).nbytes
        for i, f in enumerate(part.schema)
        if f.metadata and b"lamina.state" in f.metadata
    )
    pickled = len(pickle.dumps(part, protocol=5))
    per_metric = {
        f.name: part.column(i).nbytes / max(1, part.num_rows)
        for i, f in enumerate(part.schema)
        if f.metadata and b"lamina.state" in f.metadata
    }
    res.rows.append(
        Row(
            NAME,
            f"partial-state protocol: bytes per group ({part.num_rows:,} groups, {snap.num_rows:,} rows); "
            "read + write time per group",
            f"{state_bytes / max(1, part.num_rows):,.0f} B; {roundtrip / max(1, part.num_rows) * 1e6:.2f} µs",
            "",
            "",
            None,
            "reported",
        )
    )
    res.details.append(
        f"**distributed recompute** ({total:,} rows, {groups:,} groups; local median "
        f"{fmt_time(local_med)})\n\n" + md_table(["workers x threads", "median", "local / cluster"], table)
    )
    res.details.append(
        "**partial-state protocol** over the whole snapshot: computing the partial table took "
        f"{fmt_time(compute)}; writing and reading it back (a merge of one table) "
        f"{fmt_time(roundtrip)}; state columns {fmt_int(state_bytes)} B, pickled table "
        f"{fmt_int(pickled)} B. Bytes per group by metric state:\n\n"
        + md_table(["state", "bytes per group"], [[k, f"{v:,.0f}"] for k, v in per_metric.items()])
    )
    store.close()
    return res
