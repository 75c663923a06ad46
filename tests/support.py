"""Helpers shared by several test modules: batches of events with ids and their oracle, and the
core's failpoint hooks with threads that fail instead of hanging."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import lamina

# ---------------------------------------------------------------- (from test_core_v2.py)


T0_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


HOUR_US = 3_600_000_000


JOIN = 30.0  # seconds: the longest any test waits for a thread


def batch(first: int, n: int) -> pa.Table:
    """Events `first` .. `first + n - 1`: id, ts (spread over 48 hours, out of order), cat, v."""
    ids = np.arange(first, first + n, dtype=np.int64)
    ts = T0_US + (ids * 7_919) % 48 * HOUR_US + ids % 3_600 * 1_000_000
    return pa.table(
        {
            "id": ids,
            "ts": pa.array(ts, pa.timestamp("us")),
            "cat": pa.array(np.array(["a", "b", "c"])[(ids * 13 + ids // 5) % 3].tolist(), pa.string()),
            "v": (ids * 37) % 1_001 - 500,
        }
    )


def view(name: str = "v", *, tot: bool = True) -> lamina.View:
    metrics = {"events": lamina.count()}
    if tot:
        metrics["tot"] = lamina.sum("v")
    return lamina.View(name, time="ts", grain="1h", by=["cat"], metrics=metrics)


def oracle_groups(snap: pa.Table) -> dict[tuple[int, str], tuple[int, int]]:
    """(hour bucket in us, cat) -> (count, sum of v), computed from the raw events."""
    ts = snap["ts"].cast(pa.int64()).to_pylist()
    out: dict[tuple[int, str], tuple[int, int]] = {}
    for t, c, v in zip(ts, snap["cat"].to_pylist(), snap["v"].to_pylist(), strict=True):
        key = (t // HOUR_US * HOUR_US, c)
        n, s = out.get(key, (0, 0))
        out[key] = (n + 1, s + v)
    return out


def served_groups(t: pa.Table) -> dict[tuple[int, str], tuple[int, int]]:
    buckets = t["bucket"].cast(pa.int64()).to_pylist()
    rows = zip(buckets, t["cat"].to_pylist(), t["events"].to_pylist(), t["tot"].to_pylist(), strict=True)
    return {(b, c): (n, s) for b, c, n, s in rows}


def assert_matches_oracle(store: lamina.Store, name: str = "v", what: str = "served") -> None:
    """The served answer of `name` equals the oracle over the latest snapshot, group by group."""
    snap = store.snapshot()
    got = served_groups(store.query(name))
    want = oracle_groups(snap)
    assert sum(n for n, _ in got.values()) == snap.num_rows, (
        f"{what}: {name} counts {sum(n for n, _ in got.values())} events, the snapshot has {snap.num_rows}"
    )
    diff = {k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)}
    assert not diff, (
        f"{what}: {len(diff)} groups differ from the oracle (served, oracle): {list(diff.items())[:5]}"
    )


def total(t: pa.Table, metric: str = "events") -> int:
    return pc.sum(t[metric]).as_py() or 0


def ids(t: pa.Table) -> list[int]:
    return sorted(t["id"].to_pylist())


def hooks() -> Any:
    """The core's test hooks (new in core v2)."""
    from lamina import _core

    missing = [f for f in ("_failpoint", "_failpoint_wait", "_failpoint_release") if not hasattr(_core, f)]
    if missing:
        pytest.fail(f"the core has no test hooks {missing}: the fixed core exposes them")
    return _core


@contextlib.contextmanager
def failpoint(name: str, action: str) -> Iterator[Any]:
    """Arm hook `name` with `action`; always release and disarm on the way out."""
    core = hooks()
    core._failpoint(name, action)
    try:
        yield core
    finally:
        core._failpoint_release(name)
        core._failpoint(name, None)


class Worker:
    """A daemon thread running `fn`, keeping its result or exception."""

    def __init__(self, fn: Callable[[], Any], name: str) -> None:
        self.fn, self.result, self.error = fn, None, None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as e:  # noqa: BLE001 - reported by get()
            self.error = e
        finally:
            self.done.set()

    def get(self, timeout: float = JOIN) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"{self.thread.name} did not finish within {timeout} s (deadlock?)"
        if self.error is not None:
            raise self.error
        return self.result


def within(fn: Callable[[], Any], what: str, timeout: float = JOIN) -> Any:
    """Run `fn` on a helper thread and fail (instead of hanging) if it blocks."""
    return Worker(fn, what).get(timeout)


# ---------------------------------------------------------------- (from test_experience_v2.py)


def ts(*hours: float) -> pa.Array:
    base = dt.datetime(2026, 3, 2)
    return pa.array([base + dt.timedelta(hours=h) for h in hours], pa.timestamp("us"))
