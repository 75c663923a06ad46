"""Shared pieces of the benchmark suite: data generation, timing, memory and reporting.

Every benchmark module exposes ``NAME`` and ``run(cfg) -> BenchResult``. Figures are gathered as
:class:`Row` objects (one line of the summary table) plus free-form Markdown detail blocks.
"""

from __future__ import annotations

import functools
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

# --------------------------------------------------------------------------------------------- config


@dataclass
class Config:
    quick: bool
    workdir: Path
    seed: int = 20260105

    def pick(self, quick, full):
        """The quick-mode or the full-mode value of a size."""
        return quick if self.quick else full


# ----------------------------------------------------------------------------------------------- data

WEEK_START = np.datetime64("2026-01-05T00:00:00", "us")
HOUR_US = 3_600 * 1_000_000
WEEK_US = 7 * 24 * HOUR_US
N_USERS = 1_000_000

COUNTRIES = [chr(65 + i // 26) + chr(65 + i % 26) for i in range(50)]  # AA, AB, ... BX
PAGES = [f"/section-{i % 12:02d}/page-{i:03d}" for i in range(200)]


def _weights(n: int, skew: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** skew
    return w / w.sum()


_COUNTRY_P = _weights(len(COUNTRIES), 0.8)  # a few big countries, a long tail
_PAGE_P = _weights(len(PAGES), 1.0)
_COUNTRY_ARR = pa.array(COUNTRIES, pa.string())
_PAGE_ARR = pa.array(PAGES, pa.string())

SCHEMA = pa.schema(
    [
        ("ts", pa.timestamp("us")),
        ("country", pa.string()),
        ("page", pa.string()),
        ("user_id", pa.int64()),
        ("amount", pa.float64()),
        ("qty", pa.int64()),
    ]
)


def make_events(
    n: int,
    seed: int | tuple[int, ...],
    *,
    start_us: int = 0,
    span_us: int = WEEK_US,
    null_fraction: float = 0.03,
    n_pages: int = len(PAGES),
    n_users: int = N_USERS,
) -> pa.Table:
    """``n`` events with event times uniform in ``[WEEK_START + start_us, + span_us)``.

    Deterministic for a given seed. Columns: ts (timestamp[us]), country (~50 values, skewed),
    page (``n_pages`` values, at most 200, skewed), user_id (int64 out of ``n_users``), amount
    (float64, some nulls), qty (int64).
    """
    rng = np.random.default_rng(seed)
    offs = rng.integers(start_us, start_us + span_us, n, dtype=np.int64)
    ts = (WEEK_START + offs.astype("timedelta64[us]")).astype("datetime64[us]")
    country = _COUNTRY_ARR.take(pa.array(rng.choice(len(COUNTRIES), n, p=_COUNTRY_P).astype(np.int32)))
    n_pages = max(1, min(n_pages, len(PAGES)))
    page_p = _PAGE_P[:n_pages] / _PAGE_P[:n_pages].sum()
    page = _PAGE_ARR.take(pa.array(rng.choice(n_pages, n, p=page_p).astype(np.int32)))
    user_id = rng.integers(0, n_users, n, dtype=np.int64)
    amount = np.round(rng.lognormal(3.0, 1.0, n), 2)
    mask = rng.random(n) < null_fraction
    qty = rng.integers(1, 10, n, dtype=np.int64)
    return pa.table(
        [
            pa.array(ts, pa.timestamp("us")),
            country,
            page,
            pa.array(user_id),
            pa.array(amount, pa.float64(), mask=mask),
            pa.array(qty),
        ],
        schema=SCHEMA,
    )


def make_chunks(total: int, chunk: int, seed: int, **kw) -> list[pa.Table]:
    """``total`` events as tables of ``chunk`` rows (the last may be shorter), seeded per chunk."""
    out = []
    for i, lo in enumerate(range(0, total, chunk)):
        out.append(make_events(min(chunk, total - lo), (seed, i), **kw))
    return out


def split(table: pa.Table, rows: int) -> list[pa.Table]:
    """Zero-copy slices of ``rows`` rows each (the last may be shorter)."""
    table = table.combine_chunks()
    return [table.slice(i, rows) for i in range(0, table.num_rows, rows)]


# -------------------------------------------------------------------------------------------- timing


@dataclass
class Timing:
    times: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.times)

    def pct(self, q: float) -> float:
        """The q-th percentile (0..100), linear interpolation."""
        return float(np.percentile(np.asarray(self.times), q))

    def describe(self) -> str:
        return f"median {fmt_time(self.median)}, best {fmt_time(self.best)} (n={len(self.times)})"


def measure(fn: Callable[[], object], *, repeat: int, warmup: int = 1) -> Timing:
    """Run ``fn`` ``warmup`` times untimed, then ``repeat`` times timed with perf_counter."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return Timing(times)


# ------------------------------------------------------------------------------------------- memory


def proc_status(field_name: str) -> int:
    """A ``/proc/self/status`` figure (VmHWM, VmRSS) in bytes; 0 where unavailable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def peak_rss() -> int:
    v = proc_status("VmHWM")
    if v:
        return v
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss() -> int:
    return proc_status("VmRSS")


@functools.cache
def core_built() -> str:
    """Build time of the lamina extension as loaded by this process (taken at the first call,
    which should follow the import closely)."""
    return core_file_mtime()


def core_file_mtime() -> str:
    """Modification time of the lamina extension file on disk, now."""
    import datetime as dt

    try:
        import lamina._core as core

        return dt.datetime.fromtimestamp(os.stat(core.__file__).st_mtime).isoformat(timespec="seconds")
    except Exception:
        return "?"


def fsync_path(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------- formatting


def fmt_time(s: float) -> str:
    if s is None or math.isnan(s):
        return "n/a"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms" if s < 0.1 else f"{s * 1e3:.0f} ms"
    return f"{s:.2f} s"


def fmt_rate(per_s: float, unit: str = "ev/s") -> str:
    if per_s >= 1e9:
        return f"{per_s / 1e9:.2f} G {unit}"
    if per_s >= 1e6:
        return f"{per_s / 1e6:.2f} M {unit}"
    if per_s >= 1e3:
        return f"{per_s / 1e3:.1f} k {unit}"
    return f"{per_s:.0f} {unit}"


def fmt_bytes(b: float) -> str:
    for unit, k in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if b >= k:
            return f"{b / k:.1f} {unit}"
    return f"{b:.0f} B"


def fmt_ratio(r: float | None) -> str:
    if r is None or (isinstance(r, float) and (math.isnan(r) or math.isinf(r))):
        return "n/a"
    return f"{r:.2f}x" if r < 100 else f"{r:.0f}x"


def fmt_int(n: int) -> str:
    return f"{n:,}"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------ results


@dataclass
class Row:
    """One line of the summary table. ``ratio`` is peer_time / lamina_time (>1: lamina faster)."""

    bench: str
    case: str
    lamina: str
    peer: str = ""
    peer_value: str = ""
    ratio: float | None = None
    target: str = ""


@dataclass
class BenchResult:
    name: str
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    load: float = 0.0
    error: str | None = None


def target_check(ok: bool, text: str) -> str:
    return f"{text}: {'met' if ok else '**missed**'}"


class BenchmarkError(RuntimeError):
    """Raised when a benchmark cannot produce a valid comparison (e.g. engines disagree)."""


def log(msg: str) -> None:
    """Progress lines go to stderr so stdout carries only the report."""
    import sys

    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def live_view(name: str = "v"):
    """The live view the append and speed benchmarks feed: count, sum and sketch distinct per
    hour x country."""
    import lamina

    return lamina.View(
        name,
        time="ts",
        grain="1h",
        by=["country"],
        metrics={
            "events": lamina.count(),
            "qty": lamina.sum("qty"),
            "users": lamina.count_distinct("user_id"),
        },
    )
