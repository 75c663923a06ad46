"""``Store.ingest``: the loop that appends what a source delivers, exactly once (each commit
records the source's position after its rows, so a run killed and started again goes on after
the last commit), and stops at a safe point on Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lamina import _args
from lamina._convert import to_arrow
from lamina._progress import interactive
from lamina.errors import InvalidArgumentError, SchemaError

if TYPE_CHECKING:
    from lamina.sources import Source
    from lamina.store import Store


def ingest(
    store: Store,
    source: Source,
    batch_rows: int,
    batch_ms: int,
    idle_ms: int | None,
    quarantine: bool | None,
    progress: bool | None,
) -> int:
    """See :meth:`lamina.Store.ingest`."""
    from lamina.sources import Source as _Source
    from lamina.sources import source_state

    if not isinstance(source, _Source):
        raise InvalidArgumentError(
            f"source must be a lamina source (lamina.DirectorySource, ...), not {source!r}"
        )
    for name, value, low in (("batch_rows", batch_rows, 1), ("batch_ms", batch_ms, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidArgumentError(f"{name} must be a positive integer, not {value!r}")
    if idle_ms is not None and (isinstance(idle_ms, bool) or not isinstance(idle_ms, int) or idle_ms < 0):
        raise InvalidArgumentError(f"idle_ms must be None or an integer >= 0, not {idle_ms!r}")
    if quarantine is None:
        q = store.quarantine_policy or source.quarantine_by_default
    else:
        q = _args.flag(quarantine, "quarantine")
    show = interactive() if progress is None else _args.flag(progress, "progress")
    store._sources[source.id] = source
    commits = 0
    try:
        with _Interrupt() as stop:
            quiet_since = time.monotonic()
            fixed: tuple[pa.Schema, str | None] | None = None
            while not stop.requested:
                state = source_state(store._core, source)
                # The schema as it stands (fixed by the first commit or up front, evolved by
                # evolve_schema since): read again each round, it costs no rows.
                schema_now = store.schema
                if schema_now.names and (fixed is None or fixed[0] != schema_now):
                    status = store._core.status()
                    fixed = (schema_now, status.get("time_column") or store._time_option)
                schema, time_column = fixed if fixed is not None else (None, store._time_option)
                delivered = False
                for d in source.read(state, schema, time_column, batch_rows, batch_ms):
                    mark = json.dumps({"source": source.id, **d.progress})
                    # A delivery without rows (unreadable files, odd messages only) still
                    # commits its position, so it is never read again.
                    data = to_arrow(d.table) if d.table.num_rows else pa.table({})
                    try:
                        commit, rows, quarantined = store._core.append(data, quarantine=q, source=mark)
                    except SchemaError as e:
                        raise _located(e, d) from e
                    commits += 1
                    delivered = True
                    if store._scheduler is not None:
                        store._scheduler.note_commit()
                    if show:
                        extra = f", {quarantined:,} quarantined" if quarantined else ""
                        print(f"ingest: commit {commit}: {rows:,} rows{extra} from {d.description}")
                    if stop.requested:
                        break
                if delivered:
                    quiet_since = time.monotonic()
                    continue
                quiet_ms = (time.monotonic() - quiet_since) * 1000
                if idle_ms is not None and quiet_ms >= idle_ms:
                    break
                wait = batch_ms if idle_ms is None else min(batch_ms, max(idle_ms - quiet_ms, 1))
                if not source.waits_for_data:
                    stop.sleep(wait / 1000)

    finally:
        source.close()
    return commits


def _located(error: SchemaError, delivery: Any) -> SchemaError:
    """A refusal of a source's delivery, naming the file and line of its first bad row."""
    text = str(error)
    # The core's own mark is the last one (a quoted value may hold the same words).
    marks = list(re.finditer(r" at row (\d+)(?= \(\d+ bad rows in all\))", text))
    found = marks[-1] if marks else None
    if found is None or delivery.locate is None:
        return SchemaError(f"{delivery.description}: {text}")
    where = delivery.locate(int(found.group(1)))
    return SchemaError(f"{where}: {text[: found.start()]}{text[found.end() :]}")


class _Interrupt:
    """Ctrl-C (SIGINT) asks a loop to stop at its next safe point instead of raising at any
    instant. Only in the main thread (elsewhere signals cannot be caught; the loop is stopped by
    its own conditions)."""

    def __init__(self) -> None:
        self.requested = False
        self._event = threading.Event()
        self._previous: Any = None

    def __enter__(self) -> _Interrupt:
        if threading.current_thread() is threading.main_thread():

            def handler(_signum: int, _frame: Any) -> None:
                self.requested = True
                self._event.set()

            self._previous = signal.signal(signal.SIGINT, handler)
        return self

    def sleep(self, seconds: float) -> None:
        self._event.wait(seconds)

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
