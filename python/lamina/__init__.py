"""lamina: the Lambda Architecture in one process.

An immutable master dataset on disk (atomic commits, snapshots, time travel), a batch layer that
recomputes views exactly and in parallel, a speed layer that keeps them fresh between recomputes
with HyperLogLog sketches where exactness would cost unbounded memory, and a serving layer that
merges the two so every event is counted once. Everything comes back as Arrow tables.

>>> import lamina
>>> store = lamina.Store()
>>> store.close()
"""

from lamina import _html, sources  # noqa: F401 - lamina.sources.Source, for type hints
from lamina._core import __version__
from lamina.errors import (
    CorruptionError,
    InputFileError,
    InvalidArgumentError,
    LaminaError,
    LaminaFileNotFoundError,
    LaminaIOError,
    LaminaPermissionError,
    LockError,
    NotFoundError,
    SchemaError,
    StoreClosedError,
    SumOverflowError,
)
from lamina.partial import finalize_partial_states, merge_partial_states, partial_states
from lamina.sources import DirectorySource, KafkaSource
from lamina.store import Status, Store
from lamina.view import Aggregate, View, count, count_distinct, max, mean, min, quantile, sum, top_k

_html.register_notebook_repr()

__all__ = [
    "__version__",
    "Store",
    "Status",
    "DirectorySource",
    "KafkaSource",
    "View",
    "Aggregate",
    "count",
    "sum",
    "min",
    "max",
    "mean",
    "count_distinct",
    "quantile",
    "top_k",
    "partial_states",
    "merge_partial_states",
    "finalize_partial_states",
    "LaminaError",
    "SchemaError",
    "LockError",
    "CorruptionError",
    "NotFoundError",
    "InvalidArgumentError",
    "SumOverflowError",
    "StoreClosedError",
    "LaminaIOError",
    "LaminaFileNotFoundError",
    "LaminaPermissionError",
    "InputFileError",
]
