"""Does a commit cost more as history grows? 100,000 tiny appends (one row each) to one store.

Core v2's target: the median commit cost of the last thousand appends is within 1.3x of the first
thousand, and the largest checkpoint and the reopen time stay bounded. Appends are not durable
here (no fsync), so the figures show what lamina's own bookkeeping costs, which is what could grow
with history; an fsync costs the same at any length of history. A peer is not needed: the ratio
is lamina against itself, early against late. On a disk the file system adds noise of its own;
`--workdir` on a tmpfs (/dev/shm) isolates lamina's bookkeeping.
"""

from __future__ import annotations

import statistics
import time

import pyarrow as pa
from common import BenchResult, Config, Row, fmt_time, log, md_table, target_check

import lamina

NAME = "history"


def run(cfg: Config) -> BenchResult:
    res = BenchResult(NAME)
    n = cfg.pick(20_000, 100_000)
    window = 1_000
    path = cfg.workdir / "history"
    base = 1_767_225_600_000_000

    def row(i: int) -> pa.Table:
        # Made one at a time: holding 100,000 tables would make Python's own GC slower as the
        # run goes on, and that is not what this measures.
        return pa.table({"ts": pa.array([base + i * 1_000_000], pa.timestamp("us")), "k": [i % 7]})

    per: list[float] = []
    with lamina.Store(path, durable=False) as store:
        store.append(row(0))
        store.define(lamina.View("v", time="ts", grain="1h", by=["k"], metrics={"n": lamina.count()}))
        t0 = time.perf_counter()
        for i in range(1, n):
            t = row(i)
            s = time.perf_counter()
            store.append(t)
            per.append(time.perf_counter() - s)
            if i % 10_000 == 0:
                log(f"  {i} appends, {time.perf_counter() - t0:.1f} s")
    first = statistics.median(per[:window])
    last = statistics.median(per[-window:])
    log_dir = path / "_log"
    checkpoints = sorted(log_dir.glob("*.checkpoint.json"), key=lambda p: p.stat().st_size)
    biggest = checkpoints[-1].stat().st_size if checkpoints else 0
    t = time.perf_counter()
    with lamina.Store(path, read_only=True) as reader:
        total = sum(reader.query("v")["n"].to_pylist())
        reopen = time.perf_counter() - t
        assert total == n, (total, n)
        # A reader following a writer: the first query after each new commit.
        follow: list[float] = []
        with lamina.Store(path, durable=False) as store:
            for i in range(n, n + 200):
                store.append(row(i))
                s = time.perf_counter()
                answer = reader.query("v")
                follow.append(time.perf_counter() - s)
        assert sum(answer["n"].to_pylist()) == n + 200
    ratio = first / last
    res.rows.append(
        Row(
            NAME,
            f"{n:,} one-row appends: median commit, last {window:,} vs first {window:,}",
            f"{fmt_time(last)} vs {fmt_time(first)}",
            ratio=ratio,
            target=target_check(last <= 1.3 * first, "last within 1.3x of first"),
        )
    )
    res.rows.append(Row(NAME, f"largest checkpoint after {n:,} commits", f"{biggest / 1e6:.2f} MB"))
    res.rows.append(Row(NAME, f"reopen (read-only) and first query after {n:,} commits", fmt_time(reopen)))
    res.rows.append(
        Row(
            NAME,
            f"read-only reader: first query after each new commit, at {n:,} commits",
            f"p50 {fmt_time(statistics.median(follow))} / p99 {fmt_time(sorted(follow)[197])}",
        )
    )
    res.details.append(
        md_table(
            ["appends", "median", "p99"],
            [
                [
                    f"{lo:,}-{lo + window:,}",
                    fmt_time(statistics.median(per[lo : lo + window])),
                    fmt_time(sorted(per[lo : lo + window])[int(0.99 * window)]),
                ]
                for lo in range(0, len(per) - window + 1, max(window, len(per) // 10))
            ],
        )
    )
    return res
