"""The user-facing Store: the master dataset plus the batch, speed and serving layers."""

from __future__ import annotations

import concurrent.futures
import json
import operator
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lamina import _args, _core
from lamina._convert import to_arrow, to_micros
from lamina._html import tag_result
from lamina._progress import Progress, callback
from lamina.errors import InvalidArgumentError, NotFoundError
from lamina.view import View, filters_to_json

if TYPE_CHECKING:
    from lamina._scheduler import Scheduler
    from lamina.sources import Source


class Status(dict):
    """``store.status()``: a dict of figures, with one dict per view under ``"views"``."""

    def _repr_html_(self) -> str:
        from lamina._html import status_html

        return status_html(self)


class Store:
    """A lamina store.

    ``Store()`` is a temporary store, removed when closed: the default for notebooks and tests.
    ``Store("warehouse/")`` is a persistent store in a directory (created if missing). Only one
    process may write to a directory at a time (others get :class:`lamina.LockError`); open with
    ``read_only=True`` to read snapshots while another process writes.

    Arguments: ``path`` (None: temporary); ``read_only``; ``durable`` (fsync every commit; off:
    faster, a machine crash may lose the last commits); ``time`` (the event-time column; needed
    when the first data has several timestamp columns); ``quarantine`` (the default policy for
    bad rows: set them aside with a reason instead of refusing the append); ``auto_compact``
    (merge runs of small segments after appends); ``schema`` (fix the schema before any data,
    so views can be defined and checked at once).

    The layers: ``append``/``ingest`` write the master dataset (immutable commits; ``snapshot``
    and ``commits`` read it back), ``define`` adds views, ``recompute`` runs the batch layer
    (locally or on a cluster with ``executor=``), ``query`` serves batch merged with speed;
    ``explain``, ``verify`` and ``query(as_of=...)`` debug them; ``sql`` queries views with DuckDB.

    >>> import lamina, pyarrow as pa, datetime as dt
    >>> with lamina.Store() as store:
    ...     store.append(pa.table({"ts": [dt.datetime(2026, 1, 1)], "n": [1]}))
    1
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        read_only: bool = False,
        durable: bool = True,
        time: str | None = None,
        quarantine: bool = False,
        auto_compact: bool = True,
        schema: pa.Schema | None = None,
    ) -> None:
        if schema is not None and not isinstance(schema, pa.Schema):
            raise InvalidArgumentError(f"schema must be a pyarrow.Schema, not {type(schema).__name__}")
        self._core = _core.CoreStore(
            None if path is None else _args.path(path, "path"),
            read_only=_args.flag(read_only, "read_only"),
            durable=_args.flag(durable, "durable"),
            time=_args.text(time, "time", optional=True),
            auto_compact=_args.flag(auto_compact, "auto_compact"),
            schema=schema,
        )
        self.quarantine_policy = _args.flag(quarantine, "quarantine")
        self._time_option = time
        # Sources ingested by this process, by id: status() asks them for their lag.
        self._sources: dict[str, Any] = {}
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._scheduler: Scheduler | None = None
        # Errors of background recomputes: shown in status(), the first raised by close().
        self._scheduler_errors: list[Exception] = []
        self._scheduler_lock = threading.Lock()

    # ------------------------------------------------------------------ master dataset
    @property
    def path(self) -> Path:
        return Path(self._core.path)

    @property
    def temporary(self) -> bool:
        return self._core.temporary

    @property
    def schema(self) -> pa.Schema:
        """The schema the first append fixed (empty before it)."""
        return self._core.snapshot(0).schema

    def append(self, data: Any, *, quarantine: bool | None = None) -> int:
        """Append events as one commit and return its number (the first commit is 1).

        ``data`` is a pyarrow Table/RecordBatch/RecordBatchReader, a polars or pandas DataFrame, a
        DuckDB relation, or any Arrow PyCapsule producer. The first append fixes the schema.
        Rows that do not fit (null event time, value out of range) refuse the whole append with a
        :class:`lamina.SchemaError`, unless ``quarantine=True``: then good rows are committed and
        the rest are kept, with a reason, in :meth:`quarantined`.
        """
        q = self.quarantine_policy if quarantine is None else _args.flag(quarantine, "quarantine")
        commit, _rows, _quarantined = self._core.append(to_arrow(data), quarantine=q)
        if self._scheduler is not None:
            self._scheduler.note_commit()
        return commit

    def evolve_schema(self, schema: pa.Schema) -> None:
        """Additive schema evolution: ``schema`` keeps every column of the store's schema (in
        its type, or a lossless widening: int32 to int64, float32 to float64, seconds to
        microseconds) and may add columns, in any order. Older segments read the new columns as
        nulls; appends from then on may hold them. Anything else (a column dropped or renamed,
        a type narrowed or changed, another event time) is refused with a
        :class:`lamina.SchemaError` naming the field, and so is widening a column a defined view
        reads. A stream whose producers added a field keeps it from then on: until then
        ``ingest`` sets it aside and counts it (``status()["sources"][i]["ignored_fields"]``)."""
        if not isinstance(schema, pa.Schema):
            raise InvalidArgumentError(f"schema must be a pyarrow.Schema, not {type(schema).__name__}")
        self._core.evolve_schema(schema)

    def ingest(
        self,
        source: Source,
        *,
        batch_rows: int = 65_536,
        batch_ms: int = 1_000,
        idle_ms: int | None = None,
        quarantine: bool | None = None,
        progress: bool | None = None,
    ) -> int:
        """Append what ``source`` delivers, exactly once, and return the number of commits made.

        Each commit holds up to about ``batch_rows`` rows (a file is never split) together with
        the source position after them, so a run that is killed and started again goes on exactly
        after the last commit: nothing twice, nothing lost. When nothing new is there, the source
        is polled again every ``batch_ms`` milliseconds. ``idle_ms``: return once nothing new came
        for that long (``0``: drain what is there and return); None: run until interrupted.
        Ctrl-C (SIGINT) stops after the current commit. ``progress``: print a line per commit
        (None: when interactive). ``quarantine`` as for :meth:`append` (default: the store's
        policy; always on for streams such as Kafka, which must not stop on one bad event).
        """
        from lamina._ingest import ingest

        return ingest(self, source, batch_rows, batch_ms, idle_ms, quarantine, progress)

    def snapshot(self, commit: int | None = None) -> pa.Table:
        """The master dataset as of ``commit`` (default: the latest): time travel."""
        if commit is not None:
            boolean = isinstance(commit, bool) or getattr(getattr(commit, "dtype", None), "kind", "") == "b"
            try:
                number = None if boolean else operator.index(commit)  # int, numpy ints; not float, str
            except TypeError:
                number = None
            if number is None:
                raise InvalidArgumentError(f"commit must be a commit number (an int), not {commit!r}")
            if number < 0:
                raise InvalidArgumentError(
                    f"commit {number} does not exist: commits start at 1 "
                    "(0 is the empty snapshot before the first commit)"
                )
            if number >= 1 << 64:
                raise NotFoundError(f"commit {number} does not exist")
            commit = number
        return self._core.snapshot(commit)

    def commits(self) -> pa.Table:
        """One row per commit: commit, rows, committed_at, quarantined, and source: the source
        position the commit recorded (JSON: the source's id, and the files it ingested or the
        offsets it reached), null for plain appends."""
        return self._core.commits()

    def quarantined(self) -> pa.Table:
        """Rows refused under the quarantine policy: commit, row, reason, and the row as text."""
        return self._core.quarantined()

    def compact(self) -> int:
        """Rewrite runs of small segments into larger ones (content and commits unchanged)."""
        return self._core.compact()

    # ------------------------------------------------------------------ views
    def define(self, view: View) -> bool:
        """Define a view, or change its definition (its batch view is then recomputed from scratch
        at the next :meth:`recompute`; until then the speed layer serves its whole history).
        Returns False when the view was already defined exactly so."""
        if not isinstance(view, View):
            raise InvalidArgumentError(f"define() takes a lamina.View, not {type(view).__name__}")
        return self._core.define(view.to_json())

    def drop(self, name: str) -> None:
        """Forget a view and its batch view."""
        self._core.drop_view(_args.text(name, "name"))

    def sql(self, query: str, *, external_access: bool = False) -> pa.Table:
        """SQL over the served views, through DuckDB (``pip install 'lamina[sql]'``): each view
        is a table holding its served answer (``query(view)``: batch merged with speed, with the
        ``_exact``/``_lower``/``_upper`` columns of approximate metrics). Only the views the query
        names are computed. Returns a ``pyarrow.Table``.

        The query sees the served views and nothing else: DuckDB runs with external access off
        and its configuration locked (no files read or written, no ``ATTACH``, no extensions, no
        Python variables by name), so SQL from a user of a shared notebook or a service cannot
        reach the machine. ``external_access=True`` gives DuckDB its full access (files, network
        extensions): only for SQL you would run in DuckDB yourself. A view is named by its exact
        spelling (quoted if it holds spaces or quotes); see ``lamina._sql`` for the rules on case.

        >>> store.sql("select country, sum(events) from traffic group by country")  # doctest: +SKIP
        """
        from lamina import _sql

        _args.text(query, "query", empty=True)
        return _sql.run(query, list(self.views()), self.query, _args.flag(external_access, "external_access"))

    def views(self) -> dict[str, View]:
        """The defined views by name."""
        return {v.name: v for v in (View.from_json(t) for t in self._core.views())}

    def recompute(
        self,
        views: Sequence[str] | None = None,
        *,
        background: bool = False,
        threads: int | None = None,
        progress: bool | Callable[[int, int], None] | None = None,
        executor: Any = None,
    ) -> Any:
        """Batch layer: recompute every view (or those named) from scratch over the latest
        snapshot, in parallel, and publish the new batch views atomically. Returns the commit the
        new batch views cover; with ``background=True``, a ``concurrent.futures.Future`` of it,
        while appends and queries go on.

        ``progress``: None shows a bar when interactive, True/False force it, or a callable
        ``f(rows_done, rows_total)``.

        ``executor``: a ``dask.distributed.Client`` (or any ``concurrent.futures.Executor``)
        whose workers compute the partial states of sets of segments; they are merged in a tree
        and published here. The workers need lamina installed and this store's directory at the
        same path. The result is identical, bit for bit, to the local recompute.
        ``threads`` then bounds the publish only.
        """
        names = _args.names(views, "views", optional=True)
        threads = _args.integer(threads, "threads", minimum=1, optional=True)
        if _args.flag(background, "background"):
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lamina-batch")
            quiet = progress if callable(progress) else False
            return self._executor.submit(self._recompute, names, threads, quiet, executor)
        return self._recompute(names, threads, progress, executor)

    def _recompute(
        self, names: list[str] | None, threads: int | None, progress: Any, executor: Any = None
    ) -> int:
        cb = callback(progress, "recompute")
        try:
            if executor is not None:
                from lamina.distributed import recompute_on

                return recompute_on(self._core, executor, names, threads=threads, progress=cb)
            return self._core.recompute(names, threads=threads, progress=cb)
        finally:
            if isinstance(cb, Progress):
                cb.close()

    def schedule(self, *, every_seconds: float | None = None, every_commits: int | None = None) -> None:
        """Recompute in the background every N seconds and/or every N commits (None stops it)."""
        _args.number(every_seconds, "every_seconds", positive=True, optional=True)
        _args.integer(every_commits, "every_commits", minimum=1, optional=True)
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler = None
        if every_seconds is None and every_commits is None:
            return
        from lamina._scheduler import Scheduler

        self._scheduler = Scheduler(self, every_seconds, every_commits)

    # ------------------------------------------------------------------ serving layer
    def query(
        self,
        view: str,
        start: Any = None,
        end: Any = None,
        grain: str | None = None,
        by: Iterable[str] | None = None,
        where: Mapping[str, Any] | None = None,
        as_of: Any = None,
    ) -> pa.Table:
        """The served answer: batch view (snapshot N) merged with the speed layer (commits > N).

        ``view``: the view's name. ``start``/``end``: half-open range on bucket start (datetime,
        date or ISO string; naive means UTC, or the view's ``tz`` clock in a zoned view).
        ``grain``: a multiple of the view's grain (a fixed width, or
        ``"1mo"``, ``"1q"``, ``"1y"`` over views whose buckets tile a day). ``by``: a
        subset of the view's dimensions (the rest are rolled up). ``where``: ``{"dim": value}``,
        ``{"dim": [values]}``, ``{"dim": {">=": lo, "<": hi}}``, ``{"dim": {"!=": v}}`` or
        ``{"dim": {"not in": [..]}}``.
        Sorted by bucket, then dimensions.

        Result columns: ``bucket`` (start; UTC, or the view's ``tz``), the dimensions, then per
        metric its value; a ``count_distinct`` or ``quantile`` metric ``m`` adds ``m_exact``,
        ``m_source``, ``m_lower`` and ``m_upper`` (95% bounds, equal to ``m`` when exact); a
        ``top_k`` metric is a list of ``{value, count, lower, upper}`` plus ``m_exact`` and
        ``m_source``. Values are exact where the batch view (or a declared roll-up of the query's
        shape) alone holds the group. ``m_source`` says why a value is what it is: ``"batch"``
        (exact), ``"speed"`` (merged with speed-layer sketches) or ``"rollup"`` (several groups
        merged at query time: declare the roll-up in the ``View`` to make it exact).

        ``as_of``: a commit number, or a timestamp (the last commit at or before it): the answer
        as it stood after that commit, computed exactly from the snapshot (the view's current
        definition; every value exact). For audits: "what did the dashboard show at 9:00?".
        """
        if as_of is not None:
            commit = self._commit_at(as_of)  # a timestamp reads commits() once
            t = self._query(view, start, end, grain, by, where, "served", as_of=commit)
            return tag_result(t, "query", f"{view}: as of commit {commit} (exact)")
        t = self._query(view, start, end, grain, by, where, "served")
        return tag_result(t, "query", f"{view}: served answer (batch + speed)")

    def _commit_at(self, as_of: Any) -> int:
        """A commit number, or the last commit at or before a timestamp."""
        if isinstance(as_of, bool) or getattr(getattr(as_of, "dtype", None), "kind", "") == "b":
            raise InvalidArgumentError(
                f"as_of must be a commit number (an int) or a timestamp, not {as_of!r}"
            )
        try:
            number = operator.index(as_of)  # int, numpy integers
        except TypeError:
            number = None
        if number is not None:
            if number < 0:
                raise InvalidArgumentError(f"as_of commit must be >= 0, not {number}")
            if number >= 1 << 64:
                raise NotFoundError(f"commit {number} does not exist (as_of)")
            return number
        try:
            micros = to_micros(as_of, "as_of")
        except InvalidArgumentError as e:
            raise InvalidArgumentError(f"{e} (as_of takes a commit number or a timestamp)") from None
        import pyarrow.compute as pc

        commits = self.commits()
        times = commits.column("committed_at").cast(pa.int64())
        before = commits.column("commit").filter(pc.less_equal(times, micros))
        return int(pc.max(before).as_py() or 0) if len(before) else 0

    def explain(self, view: str, at: Any, where: Mapping[str, Any] | None = None) -> pa.Table:
        """Where one served number comes from: the parts of the row of ``view`` at bucket ``at``
        (its start) with ``where`` giving every dimension one value.

        One row per part: ``"batch"`` (the published batch view, commits 1..N), each ``"speed"``
        chunk (its commit range), then ``"served"`` (their merge, equal to ``query()``'s row).
        Columns: ``part``, ``first_commit``, ``last_commit``, ``rows`` (master-dataset rows the
        part covers, all groups), ``note`` (why a value is exact or approximate), ``sources``
        (JSON: the source positions its commits hold, per source the files or the offsets
        ``[first, next)`` per partition; null for plain appends), then the metric columns.
        """
        import json

        _args.text(view, "view")
        tz = self._core.view_zone(view)
        micros = to_micros(at, "at", tz)
        if micros is None:
            raise InvalidArgumentError("explain needs the bucket: at=...")
        filters = filters_to_json(where)
        parts = self._core.explain(view, micros, json.dumps(filters) if filters else None)
        parts = parts.add_column(5, "sources", pa.array(self._sources_of(parts), pa.string()))
        return tag_result(parts, "explain", f"{view}: {parts['note'][-1].as_py()}")

    def _sources_of(self, parts: pa.Table) -> list[str | None]:
        """Per part, the source positions its commits hold (JSON, None without sources): per
        source, the files, or per partition the offsets ``[first, next)``."""
        import json

        commits = self.commits().select(["commit", "source"]).to_pylist()
        marks = [(c["commit"], json.loads(c["source"])) for c in commits if c["source"]]
        out: list[str | None] = []
        for first, last in zip(
            parts["first_commit"].to_pylist(), parts["last_commit"].to_pylist(), strict=True
        ):
            held: dict[str, Any] = {}
            for commit, mark in marks:
                if not first <= commit <= last:
                    continue
                entry = held.setdefault(mark["source"], {})
                if mark.get("kind") == "files":
                    entry.setdefault("files", []).extend(f["name"] for f in mark.get("files", []))
                else:
                    offsets = entry.setdefault("offsets", {})
                    for partition, nxt in mark.get("offsets", {}).items():
                        start = mark.get("start", {}).get(partition, nxt)
                        lo, hi = offsets.get(partition, [start, nxt])
                        offsets[partition] = [min(lo, start), max(hi, nxt)]
            out.append(json.dumps(held, ensure_ascii=False) if held else None)
        return out

    def verify(self, view: str | None = None) -> pa.Table:
        """Recompute ``view`` (default: every view) from scratch over the snapshot the served
        answer stands at, through the batch path, without publishing, and compare: exact values
        must be identical, approximate ones inside their bounds. A view's declared roll-ups are
        compared too (their rows name the roll-up in ``view``). Returns the differences (one
        row per group and metric: ``view``, ``bucket``, ``group``, ``metric``, ``served``,
        ``fresh``, ``problem``); empty when the layers agree."""
        from lamina._verify import compare

        _args.text(view, "view", optional=True)
        names = [view] if view is not None else list(self.views())
        tables = []
        for name in names:
            # The served answer, the commit it stands at and the definition are read in one
            # step, and the recompute uses that definition: a define() meanwhile cannot pair
            # answers of two definitions.
            try:
                served, fresh, text = self._core.verify_answers(name)
            except NotFoundError:
                if view is not None:
                    raise
                continue  # dropped since the list was read: nothing left to verify
            v = View.from_json(text)
            tables.append(compare(name, served, fresh, len(v.by)))
            # Each declared roll-up is served from its own table: checked against the same
            # snapshot's exact answer at its shape.
            for grain, by in v.rollups:
                try:
                    served, fresh, again = self._core.verify_answers(name, grain=grain, by=list(by))
                except NotFoundError:
                    break
                if again != text:
                    continue  # redefined between the two reads: its answers were compared above
                label = f"{name} (roll-up {grain} by {', '.join(by) or 'nothing'})"
                tables.append(compare(label, served, fresh, len(by)))
        from lamina._verify import empty

        diff = pa.concat_tables(tables) if tables else empty()
        checked = ", ".join(names) or "no views"
        summary = (
            f"consistent: {checked} equal a fresh recompute"
            if diff.num_rows == 0
            else f"{diff.num_rows} difference(s) in {', '.join(sorted(set(diff['view'].to_pylist())))}"
        )
        return tag_result(diff, "verify", summary)

    def _query(
        self,
        view: str,
        start: Any,
        end: Any,
        grain: Any,
        by: Any,
        where: Any,
        part: str,
        as_of: int | None = None,
    ) -> pa.Table:
        """One argument check for every query; ``as_of``: computed exactly at that commit."""
        import json

        if not isinstance(view, str):
            raise InvalidArgumentError(f"view must be a view name (a str), not {view!r}")
        if grain is not None and not isinstance(grain, str):
            raise InvalidArgumentError(f"grain must be a string such as '1h' or '1d', not {grain!r}")
        if isinstance(by, str):
            by = [by]
        elif by is not None:
            if isinstance(by, Mapping) or not isinstance(by, Iterable):
                raise InvalidArgumentError(f"by must be a list of dimension names, not {by!r}")
            by = list(by)
            for b in by:
                if not isinstance(b, str):
                    raise InvalidArgumentError(f"by must be a list of dimension names (str), not {b!r}")
        if where is not None:
            if not isinstance(where, Mapping):
                raise InvalidArgumentError(
                    f"where must be a dict of column -> value(s), not {type(where).__name__}"
                )
            for column in where:
                if not isinstance(column, str):
                    raise InvalidArgumentError(f"where: column names must be strings, not {column!r}")
        try:
            filters = filters_to_json(where)
            text = json.dumps(filters, allow_nan=False) if filters else None
        except (TypeError, ValueError, AttributeError) as e:
            if isinstance(e, InvalidArgumentError):
                raise
            raise InvalidArgumentError(f"where: {e}") from e
        # In a zoned view, a bound without a zone is a time on that zone's clock.
        tz = None
        if (start is not None or end is not None) and isinstance(view, str):
            tz = self._core.view_zone(view)
        start, end = to_micros(start, "start", tz), to_micros(end, "end", tz)
        if as_of is not None:
            return self._core.query_as_of(
                view,
                as_of,
                start=start,
                end=end,
                grain=grain,
                by=by,
                filters=text,
            )
        return self._core.query(
            view,
            start=start,
            end=end,
            grain=grain,
            by=by,
            filters=text,
            part=part,
        )

    def batch_view(
        self,
        view: str,
        start: Any = None,
        end: Any = None,
        grain: str | None = None,
        by: Iterable[str] | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> pa.Table:
        """The published batch view (empty before the first recompute); same arguments as
        :meth:`query`."""
        return self._query(view, start, end, grain, by, where, "batch")

    def speed_view(
        self,
        view: str,
        start: Any = None,
        end: Any = None,
        grain: str | None = None,
        by: Iterable[str] | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> pa.Table:
        """The speed part only: events of the commits the batch view does not cover; same
        arguments as :meth:`query`."""
        return self._query(view, start, end, grain, by, where, "speed")

    def status(self) -> Status:
        """Covered snapshot, pending commits, rows per layer, batch-view age and memory, per view;
        ``warning`` per view when it is served from less than it should be (a damaged batch view);
        ``speed_saved`` per view: the commits (first, last) of the speed state saved at the last
        close, which the next open loads instead of replaying them (None if none is kept);
        ``scheduler_errors``: what background recomputes of :meth:`schedule` raised;
        ``sources``: per source the store has ingested from (:meth:`ingest`), its last commit,
        files taken and partition offsets, and, for sources ingested by this process, ``lag``
        (Kafka: messages per partition after the recorded offsets; directories: files waiting);
        ``last_recompute``: the last finished recompute of this process (None before one): its
        snapshot, rows, views, threads, wall ``seconds`` and ``phases``, seconds per phase
        (read, decode, group, one fold per metric family, merge, sketch, sort+state, encode,
        write+fsync, commit; parallel phases are summed over the workers)."""
        s = Status(self._core.status())
        with self._scheduler_lock:
            s["scheduler_errors"] = [f"{type(e).__name__}: {e}" for e in self._scheduler_errors]
        for entry in s.get("sources", []):
            source = self._sources.get(entry["source"])
            if source is not None:
                try:
                    entry["lag"] = source.lag(json.loads(self._core.source_state(entry["source"]) or "{}"))
                except Exception as e:  # a broker that does not answer must not break status()
                    entry["lag"] = f"unknown ({type(e).__name__}: {e})"
        return s

    def plot(self, view: str, metric: str, **kwargs: Any) -> Any:
        """Draw a metric over time (needs ``pip install lamina[plot]``). See :func:`lamina.plot.plot`."""
        from lamina.plot import plot

        return plot(self, _args.text(view, "view"), _args.text(metric, "metric"), **kwargs)

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the store (a temporary store is deleted). Safe to call twice.

        If a background recompute of :meth:`schedule` failed, the store is closed all the same and
        the first such error is raised (the others are in ``status()["scheduler_errors"]``)."""
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler = None
        with self._scheduler_lock:
            errors, self._scheduler_errors = self._scheduler_errors, []
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._core.close()
        if errors:
            raise errors[0]

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        try:
            s = self.status()
        except Exception:
            return "<lamina.Store (closed)>"
        kind = "temporary" if s["temporary"] else str(s["path"])
        return (
            f"<lamina.Store {kind}: {s['latest_commit']} commits, {s['rows']} rows, {len(s['views'])} views>"
        )

    def _repr_html_(self) -> str:
        from lamina._html import store_html

        return store_html(self)

    def __getitem__(self, view: str) -> pa.Table:
        _args.text(view, "view")
        if view not in self.views():
            raise NotFoundError(f"no view named {view!r}")
        return self.query(view)
