"""Durable append of 65,536-event Arrow batches, and snapshot read throughput.

lamina: ``Store(dir)`` (durable: Parquet segment, fsync, manifest commit, speed update).
peer:   ``pyarrow.parquet.write_table`` of the same batches, one file each, then ``os.fsync``.
Then the whole master dataset is read back: ``store.snapshot()`` vs ``pyarrow.parquet.read_table``
of the peer's files.
"""

from __future__ import annotations

import functools
import shutil
import time

import pyarrow as pa
import pyarrow.parquet as pq
from common import (
    BenchmarkError,
    BenchResult,
    Config,
    Row,
    Timing,
    fmt_int,
    fmt_rate,
    fmt_time,
    fsync_path,
    live_view,
    log,
    make_events,
    md_table,
    measure,
    split,
    target_check,
)

import lamina

NAME = "append"
BATCH = 65_536
TARGET = 5_000_000


def _view() -> lamina.View:
    return live_view("v")


def _lamina_appends(path, batches: list[pa.Table], warm: list[pa.Table], *, view: bool, durable: bool):
    store = lamina.Store(path, durable=durable)
    for b in warm:  # the first append fixes the schema; views need it
        store.append(b)
    if view:
        store.define(_view())
    per = []
    t0 = time.perf_counter()
    for b in batches:
        t = time.perf_counter()
        store.append(b)
        per.append(time.perf_counter() - t)
    total = time.perf_counter() - t0
    return store, total, Timing(per)


def _append_next(store, batches) -> None:
    store.append(next(batches))


def _write_next(dirpath, numbered) -> None:
    i, b = next(numbered)
    p = dirpath / f"{i:06d}.parquet"
    pq.write_table(b, p)
    fsync_path(p)
    fsync_path(dirpath)


def _pyarrow_writes(dirpath, batches: list[pa.Table], warm: list[pa.Table]):
    dirpath.mkdir(parents=True)
    files = []

    def write(i, b):
        p = dirpath / f"part-{i:06d}.parquet"
        pq.write_table(b, p)  # snappy, as lamina's segments
        fsync_path(p)
        files.append(p)

    for i, b in enumerate(warm):
        write(i, b)
    fsync_path(dirpath)
    per = []
    t0 = time.perf_counter()
    for i, b in enumerate(batches, start=len(warm)):
        t = time.perf_counter()
        write(i, b)
        per.append(time.perf_counter() - t)
    fsync_path(dirpath)
    total = time.perf_counter() - t0
    return files, total, Timing(per)


def run(cfg: Config) -> BenchResult:
    res = BenchResult(NAME)
    n_batches = cfg.pick(24, 150)
    n_warm = 2
    log(f"append: generating {n_batches + n_warm} batches of {BATCH:,} events")
    table = make_events((n_batches + n_warm) * BATCH, (cfg.seed, 1))
    all_batches = split(table, BATCH)
    warm, batches = all_batches[:n_warm], all_batches[n_warm:]
    rows = n_batches * BATCH
    root = cfg.workdir / "append"
    root.mkdir(parents=True, exist_ok=True)

    results = {}
    stores = {}
    variants = [
        ("lamina durable, 1 view (count, sum, distinct per 1h x country)", "view", True, True),
        ("lamina durable, no view", "noview", False, True),
        ("lamina durable=False, no view", "nofsync", False, False),
    ]
    for label, key, view, durable in variants:
        log(f"append: {label}")
        store, total, per = _lamina_appends(root / key, batches, warm, view=view, durable=durable)
        results[key] = (label, total, per)
        stores[key] = store

    log("append: pyarrow.parquet.write_table + fsync")
    files, py_total, py_per = _pyarrow_writes(root / "pyarrow", batches, warm)

    for key, (label, total, _per) in results.items():
        rate = rows / total
        res.rows.append(
            Row(
                NAME,
                f"{label}; {BATCH:,}-event batches",
                fmt_rate(rate),
                "pyarrow write_table + fsync",
                fmt_rate(rows / py_total),
                py_total / total,
                target_check(rate >= TARGET, "≥ 5 M ev/s") if key == "view" else "",
            )
        )

    detail = [
        [
            label,
            fmt_int(rows),
            fmt_time(total),
            fmt_rate(rows / total),
            fmt_time(per.median),
            fmt_time(per.pct(99)),
        ]
        for label, total, per in results.values()
    ]
    detail.append(
        [
            "pyarrow write_table + fsync",
            fmt_int(rows),
            fmt_time(py_total),
            fmt_rate(rows / py_total),
            fmt_time(py_per.median),
            fmt_time(py_per.pct(99)),
        ]
    )
    res.details.append(
        f"**append** ({n_batches} batches of {BATCH:,} events after {n_warm} untimed warm-up batches)\n\n"
        + md_table(["writer", "events", "total", "rate", "per batch p50", "per batch p99"], detail)
    )

    # ---------------------------------------------------------------- small commits
    # An ingest loop commits small batches often: commits/s of durable appends of 1, 100 and
    # 1,000 events with one live view, against pyarrow write_table + fsync (file and directory)
    # of the same batches, which is what a hand-written durable loop costs.
    small_rows = []
    for size in (1, 100, 1_000):
        n = cfg.pick(100, 400)
        small = split(make_events(size * (n + 5), (cfg.seed, 3, size)), size)
        log(f"append: {n} durable commits of {size:,} events")
        s = lamina.Store(root / f"small-{size}")
        s.append(small[0])
        s.define(_view())
        t_l = measure(functools.partial(_append_next, s, iter(small[1:])), repeat=n, warmup=2)
        got = s.status()["rows"]
        s.close()
        if got != size * (n + 3):
            raise BenchmarkError(f"small commits: the store holds {got} rows, expected {size * (n + 3)}")
        peer_dir = root / f"small-pyarrow-{size}"
        peer_dir.mkdir()

        t_p = measure(functools.partial(_write_next, peer_dir, iter(enumerate(small))), repeat=n, warmup=2)
        res.rows.append(
            Row(
                NAME,
                f"small durable commits of {size:,} event{'s' if size > 1 else ''}, 1 live view",
                f"{1 / t_l.median:,.0f} commits/s (p50 {fmt_time(t_l.median)}, p99 {fmt_time(t_l.pct(99))})",
                "pyarrow write_table + fsync file + dir",
                f"{1 / t_p.median:,.0f} files/s",
                t_p.median / t_l.median,
            )
        )
        small_rows.append([f"{size:,}", t_l.describe(), t_p.describe()])
    res.details.append(
        "**small durable commits** (one live view; lamina's commit writes the segment and the "
        "manifest record, each fsynced with its directory)\n\n"
        + md_table(["events per commit", "lamina append", "pyarrow write + fsync"], small_rows)
    )

    # ---------------------------------------------------------------- snapshot read
    store = stores["view"]
    expect = (n_batches + n_warm) * BATCH
    log("append: snapshot read vs pyarrow read_table")
    snap = store.snapshot()
    peer = pq.read_table(root / "pyarrow")
    if snap.num_rows != expect or peer.num_rows != expect:
        raise BenchmarkError(
            f"snapshot rows {snap.num_rows} / pyarrow rows {peer.num_rows}, expected {expect}"
        )
    del snap, peer
    reps = cfg.pick(3, 5)
    t_snap = measure(store.snapshot, repeat=reps, warmup=1)
    t_pq = measure(lambda: pq.read_table(root / "pyarrow"), repeat=reps, warmup=1)
    res.rows.append(
        Row(
            NAME,
            f"snapshot read of {expect:,} events ({len(files)} segments)",
            fmt_rate(expect / t_snap.median),
            "pyarrow.parquet.read_table",
            fmt_rate(expect / t_pq.median),
            t_pq.median / t_snap.median,
        )
    )
    res.details.append(
        f"**snapshot read** ({expect:,} events): lamina `store.snapshot()` {t_snap.describe()}; "
        f"pyarrow `read_table(dir)` {t_pq.describe()}"
    )
    st = store.status()
    res.notes.append(
        f"append: lamina store after the run: {st['segments']} segments, "
        f"{st['segment_bytes'] / 2**20:.1f} MiB of segments; pyarrow files: "
        f"{sum(f.stat().st_size for f in files) / 2**20:.1f} MiB"
    )
    for s in stores.values():
        s.close()
    shutil.rmtree(root, ignore_errors=True)
    return res
