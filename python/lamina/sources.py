"""Sources: data that flows into a store by itself, each piece exactly once across crashes.

A source has a stable identity (:attr:`Source.id`) and reads what lies after the position the
store holds for it. :meth:`lamina.Store.ingest` appends what it read together with the new
position, in one commit: if the process dies before the commit, nothing was recorded and the next
run reads the same data again; if it dies after, the next run starts after it. No offsets or
"done" files live outside the store.

* :class:`DirectorySource`: each new file of a landing directory (Parquet, CSV, JSON lines), by
  name and content hash.
* :class:`KafkaSource`: every message of every partition of a Kafka topic, by offset. The
  partitions are assigned by lamina from the offsets in the store (no consumer-group commits).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lamina import _args, _core, _json
from lamina._files import fit_columns, infer_format, read_input
from lamina.errors import InputFileError, InvalidArgumentError, LaminaError

__all__ = ["DirectorySource", "KafkaSource", "Source", "Delivery"]


@dataclass
class Delivery:
    """What a source read: rows to append and the position they take the source to."""

    table: pa.Table
    progress: dict[str, Any]
    description: str = ""
    files: list[str] = field(default_factory=list)
    #: Row of ``table`` -> where it came from (``"file.csv:17"``), for error messages.
    locate: Any = None


class Source:
    """Base of the sources :meth:`lamina.Store.ingest` reads."""

    @property
    def id(self) -> str:  # pragma: no cover - every source overrides it
        raise NotImplementedError

    #: Whether rows that do not fit the store's schema are quarantined by default (a stream
    #: must not stop on one bad event) rather than refusing the delivery.
    quarantine_by_default = False
    #: Whether :meth:`read` itself waits up to ``max_ms`` for data (no extra poll interval).
    waits_for_data = False

    def read(
        self,
        state: dict[str, Any],
        schema: pa.Schema | None,
        time_column: str | None,
        max_rows: int,
        max_ms: int,
    ) -> Iterator[Delivery]:  # pragma: no cover
        """What lies after ``state`` (the store's record of this source), in deliveries of about
        ``max_rows`` rows or ``max_ms`` milliseconds; empty when nothing new is there."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections (a source may be read again after)."""

    def lag(self, state: dict[str, Any]) -> dict[str, Any]:  # pragma: no cover
        return {}


class DirectorySource(Source):
    """Each new file of a landing directory, exactly once.

    ``pattern`` is a glob matched against file names (``"*.parquet"``, ``"*.csv"``,
    ``"events-*.jsonl.gz"``); the format comes from the extension unless ``format`` says.
    A file is identified by its name and the hash of its content: a file is ingested once, and a
    file later replaced by different content under the same name is a new file.

    **Write a file under a temporary name and rename it when complete.** Files whose names start
    with ``.`` or ``_`` are ignored, so a writer can write ``_part.csv`` and rename it to
    ``part.csv`` (one atomic step): a file still being written under its final name could be read
    half-written. What can be detected is: a file whose size or modification time changes while
    it is read is left for the next poll, and a file that grew after it was ingested (its new
    content starts with what was ingested: it was written in place) is not ingested again; it is
    set aside in the commit's ``rejected`` list, so its rows are never counted twice.
    Sub-directories are not read.

    Each file is an outcome of its own, never a stop of the ingest: a file that cannot be read (a
    corrupt archive, an empty or broken Parquet file, malformed CSV) is taken with no rows and
    listed with its error in the ``rejected`` list of the commit that passes it
    (``Store.commits()["source"]``; counted in ``status()["sources"]``); lines of a JSON lines
    file that are not one JSON object are listed there too. A file of 0 bytes has no rows. A
    file that cannot be opened (permissions) is tried again at the next poll. Rows that do not
    fit the store's schema are refused or quarantined as for :meth:`lamina.Store.append`
    (``quarantine=``); a refusal names the file and its line.
    """

    def __init__(
        self,
        path: str | Path,
        pattern: str = "*.parquet",
        *,
        format: str | None = None,  # noqa: A002
        name: str | None = None,
    ) -> None:
        if not isinstance(pattern, str) or not pattern:
            raise InvalidArgumentError(f"pattern must be a glob like '*.parquet', not {pattern!r}")
        if format is not None and format not in ("parquet", "csv", "jsonl"):
            raise InvalidArgumentError(f"format must be 'parquet', 'csv' or 'jsonl', not {format!r}")
        _args.text(name, "name", optional=True)
        self.path = Path(_args.path(path, "path")).resolve()
        self.pattern = pattern
        self.format = format
        self.name = name
        # Files this process has hashed: name -> ((size, mtime_ns, ctime_ns, inode), hash). An
        # unchanged file is not read again on every poll; a file replaced by another (a rename
        # over it: a new inode; a rewrite: a new ctime) is, even with the same size and mtime.
        self._hashed: dict[str, tuple[tuple[int, int, int, int], str]] = {}

    @property
    def id(self) -> str:
        """``dir:<path>:<pattern>``, or ``dir:<name>`` when named (a named source keeps its
        identity when the directory moves)."""
        return f"dir:{self.name}" if self.name else f"dir:{self.path}:{self.pattern}"

    def __repr__(self) -> str:
        return f"lamina.DirectorySource({str(self.path)!r}, pattern={self.pattern!r})"

    def _candidates(self) -> list[Path]:
        if not self.path.is_dir():
            raise InputFileError(f"{self.path}: no such directory")
        out = []
        for p in self.path.iterdir():
            name = p.name
            if name.startswith((".", "_")) or not fnmatch.fnmatchcase(name, self.pattern):
                continue
            try:
                if p.is_file():
                    out.append(p)
            except OSError:
                continue  # vanished, or a name the system cannot stat
        return sorted(out, key=_file_name)

    def _format(self, p: Path) -> str:
        fmt = self.format or infer_format(p)
        if fmt is None:
            raise InputFileError(f"{p}: cannot tell its format from the extension (pass format=)")
        return fmt

    def read(
        self,
        state: dict[str, Any],
        schema: pa.Schema | None,
        time_column: str | None,
        max_rows: int,
        max_ms: int = 0,
    ) -> Iterator[Delivery]:
        seen: dict[str, list[Any]] = state.get("files", {})
        pending = _Pending()
        for p in self._candidates():
            name = _file_name(p)
            known = seen.get(name)
            try:
                st = p.stat()
                key = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
                cached = self._hashed.get(name)
                if known is not None and cached is not None and cached[0] == key and cached[1] == known[1]:
                    continue  # hashed before, unchanged since, and ingested
                data = p.read_bytes()
                after = p.stat()
            except FileNotFoundError:
                continue  # gone since the listing (a cleanup job): nothing to ingest
            except OSError as e:
                _warn_once(self, name, f"{p}: cannot read it ({e}); it is tried again at the next poll")
                continue
            if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns) or len(data) != st.st_size:
                continue  # being written right now: read it once it stands still
            digest = hashlib.blake2b(data, digest_size=16).hexdigest()
            self._hashed[name] = (key, digest)
            if known is not None and known[1] == digest and known[0] == len(data):
                continue
            mark = {"name": name, "size": len(data), "hash": digest}
            if known is not None and 0 < known[0] < len(data):
                if hashlib.blake2b(data[: known[0]], digest_size=16).hexdigest() == known[1]:
                    pending.reject(
                        mark,
                        f"the file grew after commit {known[2]} ingested its first {known[0]} bytes: "
                        "it was written in place, and is not ingested again (write files under a "
                        "temporary name, then rename them)",
                    )
                    continue
            try:
                fmt = self._format(p)
                read = read_input(p, fmt, schema, time_column, data=data)
            except InputFileError as e:
                pending.reject(mark, str(e))
                continue
            lines = [
                {
                    "file": name,
                    "line": line,
                    "error": _json.clean(why[:200]),
                    "value": _json.shown(value, KafkaSource.KEEP_BYTES),
                }
                for line, value, why in read.rejected
            ]
            # Fields the store has no column for are set aside and counted, as for a stream;
            # columns a file lacks are null.
            table, keep, ignored = _fit_stream(read.table, schema)
            if keep is not None:
                gone = [i for i, k in enumerate(keep) if not k]
                lines += [
                    {
                        "file": name,
                        "line": read.line_of(i, fmt),
                        "error": "a nested value where the store holds a scalar",
                    }
                    for i in gone
                ]
                table = table.filter(pa.array(keep, pa.bool_()))
                if read.lines is not None:
                    read.lines = [line for line, k in zip(read.lines, keep, strict=True) if k]
            read.table = fit_columns(table, schema, time_column)
            pending.add(read, mark, fmt, lines, ignored)
            if pending.rows >= max_rows:
                yield from pending.deliver()
                pending = _Pending()
        yield from pending.deliver()

    def lag(self, state: dict[str, Any]) -> dict[str, Any]:
        seen = state.get("files", {})
        waiting = [p for p in self._candidates() if _file_name(p) not in seen]
        return {"files_waiting": len(waiting)}


def _file_name(p: Path) -> str:
    """A file's name as recorded in the store: a name that is not UTF-8 (bytes the system keeps
    as they are) is recorded with those bytes escaped (``\\xff``), the same every time."""
    return p.name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _warn_once(source: Any, name: str, message: str) -> None:
    import warnings

    warned = source.__dict__.setdefault("_warned", set())
    if name not in warned:
        warned.add(name)
        warnings.warn(message, stacklevel=3)


class _Pending:
    """Files read for one delivery: their tables, marks, what each set aside, and where each
    row came from. A file's rejected lines and ignored fields ride in the commit that takes it."""

    def __init__(self) -> None:
        self.tables: list[pa.Table] = []
        self.marks: list[dict[str, Any]] = []
        self.reads: list[tuple[str, Any, str]] = []
        #: Per file name: its rejected entries, and the fields it held that the store lacks.
        self.rejected: dict[str, list[dict[str, Any]]] = {}
        self.ignored: dict[str, dict[str, int]] = {}
        self.rows = 0

    def add(
        self,
        read: Any,
        mark: dict[str, Any],
        fmt: str,
        rejected: list[dict[str, Any]],
        ignored: dict[str, int],
    ) -> None:
        self.marks.append(mark)
        if rejected:
            self.rejected[mark["name"]] = rejected
        if ignored:
            self.ignored[mark["name"]] = ignored
        if read.table.num_rows:
            self.tables.append(read.table)
            self.reads.append((mark["name"], read, fmt))
            self.rows += read.table.num_rows

    def reject(self, mark: dict[str, Any], why: str) -> None:
        """A file taken with no rows: unreadable, or not to be counted twice."""
        self.marks.append(mark)
        self.rejected[mark["name"]] = [{"file": mark["name"], "error": _json.clean(why[:500])}]

    def _progress(self, marks: list[dict[str, Any]]) -> dict[str, Any]:
        progress: dict[str, Any] = {"kind": "files", "files": marks}
        rejected = [r for m in marks for r in self.rejected.get(m["name"], [])]
        if rejected:
            progress["rejected"] = rejected
        ignored: dict[str, int] = {}
        for m in marks:
            for field_name, n in self.ignored.get(m["name"], {}).items():
                ignored[field_name] = ignored.get(field_name, 0) + n
        if ignored:
            progress["ignored"] = ignored
        return progress

    def deliver(self) -> Iterator[Delivery]:
        if not self.marks:
            return
        names = [m["name"] for m in self.marks]
        what = names[0] if len(names) == 1 else f"{len(names)} files ({names[0]} .. {names[-1]})"
        try:
            table = (
                pa.concat_tables(self.tables, promote_options="permissive") if self.tables else pa.table({})
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            table = None
        if table is not None:
            yield Delivery(table, self._progress(self.marks), what, names, locate=_locator(self.reads))
            return
        # Files that do not concatenate go in one commit each; the files without rows ride
        # with the first.
        with_rows = {r[0] for r in self.reads}
        extra = [m for m in self.marks if m["name"] not in with_rows]
        for i, (t, (name, read, fmt)) in enumerate(zip(self.tables, self.reads, strict=True)):
            marks = [m for m in self.marks if m["name"] == name]
            part = self._progress((extra + marks) if i == 0 else marks)
            yield Delivery(t, part, name, [name], locate=_locator([(name, read, fmt)]))


def _locator(reads: list[tuple[str, Any, str]]) -> Any:
    """Row of a delivery -> ``file:line``, for messages naming where a refused row came from."""

    def locate(row: int) -> str:
        for name, read, fmt in reads:
            n = read.table.num_rows
            if row < n:
                return f"{name}:{read.line_of(row, fmt)}"
            row -= n
        return f"row {row}"

    return locate


def ck_eof() -> int:
    """librdkafka's end-of-partition event code (not an error)."""
    return _kafka().KafkaError._PARTITION_EOF


def _kafka() -> Any:
    try:
        import confluent_kafka
    except ImportError:
        raise LaminaError(
            "KafkaSource needs the confluent-kafka package: pip install 'lamina[kafka]'"
        ) from None
    return confluent_kafka


class KafkaSource(Source):
    """Every message of a Kafka topic (all its partitions), exactly once.

    ``format="json"``: each message value is one JSON object; event times are ISO-8601 strings
    or integer microseconds since the epoch. ``schema``: the Arrow schema to decode into (default:
    the store's). Each commit records the next offset of every partition it read, and a restarted
    ingest assigns the partitions itself at those offsets: Kafka's consumer-group offsets are
    neither read nor written. A message that is not a JSON object is kept in the commit that
    passes it (partition, offset, error and the start of its value, see
    :meth:`lamina.Store.commits`), never dropped and never fatal; rows that do not fit the
    schema are quarantined (:meth:`lamina.Store.quarantined`). Needs ``lamina[kafka]``.
    """

    quarantine_by_default = True
    waits_for_data = True
    #: How much of a bad message's value a commit keeps.
    KEEP_BYTES = 1024

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        schema: pa.Schema | None = None,
        format: str = "json",  # noqa: A002
        config: dict[str, Any] | None = None,
        *,
        name: str | None = None,
    ) -> None:
        if format != "json":
            raise InvalidArgumentError(f"KafkaSource supports format='json', not {format!r}")
        if not isinstance(topic, str) or not topic:
            raise InvalidArgumentError(f"topic must be a non-empty string, not {topic!r}")
        _args.text(bootstrap, "bootstrap")
        _args.mapping(config, "config", optional=True)
        _args.text(name, "name", optional=True)
        if schema is not None and not isinstance(schema, pa.Schema):
            raise InvalidArgumentError(f"schema must be a pyarrow.Schema, not {type(schema).__name__}")
        _kafka()
        self.bootstrap = bootstrap
        self.topic = topic
        self.schema = schema
        self.config = dict(config or {})
        self.name = name
        self._consumer: Any = None
        self._positions: dict[int, int] = {}
        self._partition_list: tuple[float, list[int]] | None = None

    @property
    def id(self) -> str:
        """``kafka:<topic>`` (or ``kafka:<name>``): not the bootstrap address, so the same topic
        reached through another address or broker list resumes where it was."""
        return f"kafka:{self.name or self.topic}"

    def __repr__(self) -> str:
        return f"lamina.KafkaSource({self.bootstrap!r}, {self.topic!r})"

    def _partitions(self, consumer: Any) -> list[int]:
        import time as _time

        cached = self._partition_list
        if cached is not None and _time.monotonic() - cached[0] < 10:
            return cached[1]
        md = consumer.list_topics(self.topic, timeout=10)
        topic = md.topics.get(self.topic)
        if topic is None or topic.error is not None:
            raise LaminaError(f"Kafka topic {self.topic!r} at {self.bootstrap}: {topic and topic.error}")
        parts = sorted(topic.partitions)
        self._partition_list = (_time.monotonic(), parts)
        return parts

    def _assign(self, state: dict[str, Any]) -> Any:
        ck = _kafka()
        if self._consumer is None:
            conf = {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"lamina-{self.topic}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                # Short fetch waits: a message reaches the store within a batch_ms window, not
                # after librdkafka's default 500 ms long poll.
                "fetch.wait.max.ms": 50,
                # A recorded offset the broker no longer holds (retention): restart at the
                # earliest message kept, never skip to the end.
                "auto.offset.reset": "earliest",
                **self.config,
            }
            self._consumer = ck.Consumer(conf)
            self._positions = {}
        committed = {int(p): int(o) for p, o in state.get("offsets", {}).items()}
        wanted = {p: committed.get(p, ck.OFFSET_BEGINNING) for p in self._partitions(self._consumer)}
        if wanted != self._positions:
            self._consumer.assign([ck.TopicPartition(self.topic, p, o) for p, o in wanted.items()])
            self._positions = dict(wanted)
        return self._consumer

    def read(
        self,
        state: dict[str, Any],
        schema: pa.Schema | None,
        time_column: str | None,
        max_rows: int,
        max_ms: int = 1_000,
    ) -> Iterator[Delivery]:
        import time as _time

        consumer = self._assign(state)
        deadline = _time.monotonic() + max_ms / 1000
        messages: list[Any] = []
        while len(messages) < max_rows:
            left = deadline - _time.monotonic()
            if left <= 0:
                break
            got = consumer.consume(min(max_rows - len(messages), 10_000), timeout=min(left, 0.2))
            for m in got:
                err = m.error()
                if err is not None and err.code() != ck_eof():
                    raise LaminaError(f"Kafka topic {self.topic!r} at {self.bootstrap}: {err}")
            messages.extend(m for m in got if m.error() is None)
            if not got and messages:
                break  # the topic is drained for now
        if not messages:
            return
        # Where this read started, per partition: the core refuses a commit whose start lies
        # before the recorded position (a second reader of the same topic: duplicates).
        start: dict[int, int] = {}
        for m in messages:
            if m.partition() not in start:
                start[m.partition()] = m.offset()
                if len(start) == len(self._positions):
                    break
        # Messages of a partition arrive in offset order: its last message gives its position.
        offsets: dict[int, int] = {}
        assigned = len(self._positions)
        for m in reversed(messages):
            if m.partition() not in offsets:
                offsets[m.partition()] = m.offset() + 1
                if len(offsets) == assigned:
                    break
        table, rejected, ignored = self._decode(messages, schema or self.schema, time_column)
        # The consumer now stands after these messages: that is what the commit will record.
        self._positions.update(offsets)
        progress: dict[str, Any] = {
            "kind": "offsets",
            "offsets": {str(p): o for p, o in sorted(offsets.items())},
            "start": {str(p): o for p, o in sorted(start.items())},
        }
        if rejected:
            progress["rejected"] = rejected
        if ignored:
            progress["ignored"] = ignored
        parts = ", ".join(f"{p}:{o}" for p, o in sorted(offsets.items()))
        yield Delivery(table, progress, f"{self.topic} (next offsets {parts})")

    def _decode(
        self, messages: list[Any], schema: pa.Schema | None, time_column: str | None
    ) -> tuple[pa.Table, list[dict[str, Any]], dict[str, int]]:
        """The messages' JSON objects as one table, decoded in bulk, with every odd message an
        outcome of its own, never a stop of the stream:

        * a message that is not one JSON object (``null``, a number, broken JSON) is set aside
          in ``rejected`` with its partition and offset (screened in the core before pyarrow's
          reader sees it: that reader crashes the process on a top-level ``null``);
        * a field the store has no column for (a producer added one), or whose name no column
          may have (empty, control characters), is dropped and counted in ``ignored``;
        * a value of another type than its column's (a float in an integer column) is handed to
          the core as text, which parses it or quarantines its row with the reason;
        * a nested value (an object or a list) where the store holds a scalar is set aside in
          ``rejected``.
        """
        values = [m.value() or b"" for m in messages]
        rejected: list[dict[str, Any]] = []

        def reject(m: Any, v: bytes, why: str) -> None:
            rejected.append(
                {
                    "partition": m.partition(),
                    "offset": m.offset(),
                    "error": why[:200],
                    "value": v[: self.KEEP_BYTES].decode("utf-8", "replace"),
                }
            )

        not_objects = _core.json_non_objects(values)
        if not_objects:
            odd = set(not_objects)
            for i in not_objects:
                reject(messages[i], values[i], "not one JSON object")
            messages = [m for i, m in enumerate(messages) if i not in odd]
            values = [v for i, v in enumerate(values) if i not in odd]
        table, rows, failed = _json.decode(values, time_column, schema)
        for i, why in failed:
            reject(messages[i], values[i], why)
        messages = [messages[i] for i in rows]
        if table is None:
            if schema is None:
                raise LaminaError(
                    f"Kafka topic {self.topic!r}: no message of the first batch is a JSON object, and "
                    "the store has no schema yet: give KafkaSource(schema=...) or fix the topic"
                )
            table = schema.empty_table()
        table, keep, ignored = _fit_stream(table, schema)
        if keep is not None:
            for i in range(len(messages)):
                if not keep[i]:
                    why = "a nested value where the store holds a scalar"
                    reject(messages[i], messages[i].value() or b"", why)
            table = table.filter(pa.array(keep, pa.bool_()))
        table = fit_columns(table, schema, time_column)
        if time_column in table.column_names:
            t = table.column(time_column).type
            if pa.types.is_timestamp(t) and t.unit == "s":
                # JSON readers infer whole-second ISO strings as seconds: the store keeps
                # microseconds, so a later event with a fraction is not refused as lossy.
                i = table.column_names.index(time_column)
                table = table.set_column(i, time_column, table.column(i).cast(pa.timestamp("us", t.tz)))
        return table, rejected, ignored

    def lag(self, state: dict[str, Any]) -> dict[str, Any]:
        """Messages per partition after the store's recorded offsets (from the broker's high
        watermarks, which some brokers report late)."""
        ck = _kafka()
        consumer = ck.Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"lamina-{self.topic}-lag"})
        try:
            committed = {int(p): int(o) for p, o in state.get("offsets", {}).items()}
            out: dict[Any, Any] = {}  # partition (int) -> messages
            for p in self._partitions(consumer):
                _low, high = consumer.get_watermark_offsets(ck.TopicPartition(self.topic, p), timeout=5)
                out[p] = max(high - committed.get(p, 0), 0)
            return out
        finally:
            consumer.close()

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
            self._positions = {}


def source_state(core: Any, source: Source) -> dict[str, Any]:
    text = core.source_state(source.id)
    return {} if text is None else json.loads(text)


def _valid_name(name: str) -> bool:
    return bool(name) and not name.startswith("__") and not any(ord(c) < 32 or ord(c) == 127 for c in name)


def _fit_stream(
    table: pa.Table, schema: pa.Schema | None
) -> tuple[pa.Table, list[bool] | None, dict[str, int]]:
    """A stream's decoded table against the store's schema, so that one odd message is an
    outcome of its own: fields the store has no column for (or that no column may be named) are
    dropped and counted; values of another scalar type become text for the core to parse row
    by row; rows holding a nested value where the store holds a scalar are marked to be set
    aside (the second result: which rows to keep, None for all)."""
    ignored: dict[str, int] = {}
    keep: pa.Array | None = None
    names = [] if schema is None else schema.names
    columns, fields = [], []
    for f, column in zip(table.schema, table.columns, strict=True):
        if not _valid_name(f.name) or (schema is not None and f.name not in names):
            count = len(column) - column.null_count
            if count:
                ignored[f.name] = ignored.get(f.name, 0) + count
            continue
        target = None if schema is None else schema.field(f.name).type
        if target is not None and column.type != target and not pa.types.is_null(column.type):
            nested = pa.types.is_nested(column.type)
            if nested:
                absent = pc.is_null(column)
                keep = absent if keep is None else pc.and_(keep, absent)
                column = pa.nulls(len(column), target)
            elif not pa.types.is_string(column.type) and not _castable(column.type, target):
                column = column.cast(pa.string())
        columns.append(column)
        fields.append(pa.field(f.name, column.type))
    # A field no message of this batch held is null in every row (a null event time is then
    # quarantined row by row by the core, never a refusal of the batch).
    for f in schema or []:
        if f.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, f.type))
            fields.append(pa.field(f.name, f.type))
    out = pa.Table.from_arrays(columns, schema=pa.schema(fields)) if fields else table
    return out, None if keep is None else keep.to_pylist(), ignored


def _castable(have: pa.DataType, want: pa.DataType) -> bool:
    """Whether the core takes ``have`` into a ``want`` column as it is (wider or narrower
    integers, integers into floats, other timestamp units, string flavours)."""
    integer = pa.types.is_integer
    if integer(have) and (integer(want) or pa.types.is_floating(want)):
        return True
    if pa.types.is_floating(have) and pa.types.is_floating(want):
        return True
    times = (pa.types.is_timestamp, pa.types.is_date)
    return any(t(have) for t in times) and any(t(want) for t in times)
