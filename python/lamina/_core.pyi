"""Type stubs of the native module (``src/python/``). Checked by ``mypy.stubtest`` in the tests."""

from collections.abc import Callable
from typing import Any, final

import pyarrow as pa

__all__ = [
    "sketch_estimate",
    "quantile_sketch",
    "top_k_sketch",
    "speed_ingest",
    "zone_instant",
    "partial_states",
    "merge_partial_states",
    "finalize_partial_states",
    "run_recompute_task",
    "CoreStore",
    "CoreBatchJob",
    "__version__",
    "_failpoint",
    "_failpoint_wait",
    "_failpoint_release",
]
__version__: str

@final
class CoreStore:
    """The core of :class:`lamina.Store`.

    Result tables of ``query`` have the columns: ``bucket`` (timestamp[us, tz=UTC], or the view's
    zone, bucket start), the group-by dimensions (string, int64, uint64, bool or date32), then per
    metric: ``count`` -> int64, ``sum`` -> int64 (integer input) or float64, ``min``/``max`` ->
    int64, uint64 or float64, ``mean`` -> float64, ``count_distinct`` -> int64 plus
    ``<name>_exact`` (bool), ``<name>_source`` (string: batch, speed or rollup), ``<name>_lower``
    and ``<name>_upper`` (int64, 95% bounds), ``quantile`` -> float64 plus ``<name>_exact``,
    ``<name>_source``, ``<name>_lower``, ``<name>_upper`` (float64, 95% bounds), ``top_k`` -> a
    list of ``{value, count, lower, upper}`` structs plus ``<name>_exact``, ``<name>_source``.
    """

    def __new__(
        cls,
        path: str | None = None,
        read_only: bool = False,
        durable: bool = True,
        time: str | None = None,
        auto_compact: bool = True,
        schema: pa.Schema | None = None,
    ) -> CoreStore: ...
    @property
    def path(self) -> str: ...
    @property
    def temporary(self) -> bool: ...
    @property
    def read_only(self) -> bool: ...
    def append(
        self, data: Any, quarantine: bool = False, source: str | None = None
    ) -> tuple[int, int, int]: ...
    def source_state(self, source: str) -> str | None: ...
    def snapshot(self, commit: int | None = None) -> pa.Table: ...
    def commits(self) -> pa.Table: ...
    def quarantined(self) -> pa.Table: ...
    def compact(self) -> int: ...
    def define(self, definition: str) -> bool: ...
    def drop_view(self, name: str) -> None: ...
    def view_zone(self, name: str) -> str | None: ...
    def views(self) -> list[str]: ...
    def recompute(
        self,
        views: list[str] | None = None,
        threads: int | None = None,
        progress: Callable[[int, int], Any] | None = None,
    ) -> int: ...
    def begin_recompute(self, views: list[str] | None = None, root: str | None = None) -> CoreBatchJob: ...
    def query_as_of(
        self,
        view: str,
        commit: int,
        start: int | None = None,
        end: int | None = None,
        grain: str | None = None,
        by: list[str] | None = None,
        filters: str | None = None,
        threads: int | None = None,
        progress: Callable[[int, int], Any] | None = None,
    ) -> pa.Table: ...
    def query_with_commit(
        self, view: str, grain: str | None = None, by: list[str] | None = None
    ) -> tuple[pa.Table, int]: ...
    def explain(self, view: str, at: int, filters: str | None = None) -> pa.Table: ...
    def _plant_double_count(self, view: str) -> None: ...
    def query(
        self,
        view: str,
        start: int | None = None,
        end: int | None = None,
        grain: str | None = None,
        by: list[str] | None = None,
        filters: str | None = None,
        part: str = "served",
    ) -> pa.Table: ...
    def status(self) -> dict[str, Any]: ...
    def close(self) -> None: ...

@final
class CoreBatchJob:
    """A recompute between its stages: the snapshot is pinned and the speed chunks sealed; workers
    compute partial states from ``spec``; ``publish`` takes one merged partial table per view."""

    @property
    def spec(self) -> str | None: ...
    @property
    def snapshot(self) -> int: ...
    @property
    def views(self) -> list[str]: ...
    def split(self, tasks: int) -> list[tuple[list[int], int]]: ...
    def cancel(self) -> None: ...
    def publish(
        self,
        partials: list[Any] | None,
        threads: int | None = None,
        progress: Callable[[int, int], Any] | None = None,
    ) -> int: ...

def partial_states(definition: str, data: Any) -> pa.Table: ...
def merge_partial_states(parts: list[Any]) -> pa.Table: ...
def finalize_partial_states(part: Any) -> pa.Table: ...
def run_recompute_task(spec: str, segments: list[int], threads: int | None = None) -> list[pa.Table]: ...
def sketch_estimate(data: Any, precision: int = 14) -> tuple[float, float, float, int, int]: ...
def quantile_sketch(data: Any, qs: list[float], k: int = 200, parts: int = 1) -> dict[str, Any]: ...
def top_k_sketch(data: Any, k: int, parts: int = 1) -> dict[str, Any]: ...
def speed_ingest(definition: str, data: Any) -> tuple[float, int, int]: ...
def zone_instant(tz: str, local: int) -> int: ...

# Test hooks (failpoints): force an interleaving or a failure at a named place of the core.
def _failpoint(name: str, action: str | None = None) -> None: ...
def _failpoint_wait(name: str, timeout: float) -> bool: ...
def _failpoint_release(name: str) -> None: ...
