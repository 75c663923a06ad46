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

from lamina._files import fit_columns, infer_format, read_file
from lamina.errors import InputFileError, InvalidArgumentError, LaminaError

__all__ = ["DirectorySource", "KafkaSource", "Source", "Delivery"]


@dataclass
class Delivery:
    """What a source read: rows to append and the position they take the source to."""

    table: pa.Table
    progress: dict[str, Any]
    description: str = ""
    files: list[str] = field(default_factory=list)


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
    file later replaced by different content under the same name is a new file. Files whose names
    start with ``.`` or ``_`` are ignored, so a writer can write ``_part.csv`` or ``.part.csv``
    and rename it when complete (the landing-zone convention; a file still being written under
    its final name could be read half-written). Sub-directories are not read.

    A file that cannot be read raises :class:`lamina.InputFileError` naming it, and nothing of it
    is written; rows that do not fit the store's schema are refused or quarantined as for
    :meth:`lamina.Store.append` (``quarantine=``).
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
        self.path = Path(path).resolve()
        self.pattern = pattern
        self.format = format
        self.name = name
        # Files this process has hashed: name -> (size, mtime_ns, hash). An unchanged file is
        # not read again on every poll.
        self._hashed: dict[str, tuple[int, int, str]] = {}

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
            if p.is_file():
                out.append(p)
        return sorted(out, key=lambda p: p.name)

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
        tables: list[pa.Table] = []
        marks: list[dict[str, Any]] = []
        rows = 0
        for p in self._candidates():
            known = seen.get(p.name)
            try:
                st = p.stat()
                cached = self._hashed.get(p.name)
                if known is not None and cached is not None and cached[:2] == (st.st_size, st.st_mtime_ns):
                    if cached[2] == known[1]:
                        continue  # hashed before, unchanged since, and ingested
                data = p.read_bytes()
            except FileNotFoundError:
                continue  # gone since the listing (a cleanup job): nothing to ingest
            digest = hashlib.blake2b(data, digest_size=16).hexdigest()
            self._hashed[p.name] = (len(data), st.st_mtime_ns, digest)
            if known is not None and known[1] == digest and known[0] == len(data):
                continue
            try:
                table = read_file(p, self._format(p), schema, time_column, data=data)
            except InputFileError:
                # The files read before it still go in; this one is read again next time.
                if marks:
                    yield from self._deliver(tables, marks)
                raise
            tables.append(table)
            marks.append({"name": p.name, "size": len(data), "hash": digest})
            rows += table.num_rows
            if rows >= max_rows:
                yield from self._deliver(tables, marks)
                tables, marks, rows = [], [], 0
        if marks:
            yield from self._deliver(tables, marks)

    def _deliver(self, tables: list[pa.Table], marks: list[dict[str, Any]]) -> Iterator[Delivery]:
        names = [m["name"] for m in marks]
        try:
            table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            # Files that do not concatenate go in one commit each.
            for t, m in zip(tables, marks, strict=True):
                yield Delivery(t, {"kind": "files", "files": [m]}, m["name"], [m["name"]])
            return
        what = names[0] if len(names) == 1 else f"{len(names)} files ({names[0]} .. {names[-1]})"
        yield Delivery(table, {"kind": "files", "files": marks}, what, names)

    def lag(self, state: dict[str, Any]) -> dict[str, Any]:
        seen = state.get("files", {})
        waiting = [p.name for p in self._candidates() if p.name not in seen]
        return {"files_waiting": len(waiting)}


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
        table, rejected = self._decode(messages, schema or self.schema, time_column)
        # The consumer now stands after these messages: that is what the commit will record.
        self._positions.update(offsets)
        progress = {
            "kind": "offsets",
            "offsets": {str(p): o for p, o in sorted(offsets.items())},
            "start": {str(p): o for p, o in sorted(start.items())},
        }
        if rejected:
            progress["rejected"] = rejected
        parts = ", ".join(f"{p}:{o}" for p, o in sorted(offsets.items()))
        yield Delivery(table, progress, f"{self.topic} (next offsets {parts})")

    def _decode(
        self, messages: list[Any], schema: pa.Schema | None, time_column: str | None
    ) -> tuple[pa.Table, list[dict[str, Any]]]:
        """The messages' JSON objects as one table, decoded in bulk; messages that are not one
        JSON object, or that cannot join the others in one table, are set aside with their
        partition and offset."""
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

        table: pa.Table | None = None
        if all(values):
            try:
                table = self._parse(values, time_column)
                if table.num_rows != len(values):
                    table = None  # a message holds several objects (or none): find it below
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                table = None
        if table is None:
            # Rare: decode message by message, keep what fits together, set the rest aside.
            singles: list[tuple[Any, bytes, pa.Table | None, str]] = []
            for m, v in zip(messages, values, strict=True):
                try:
                    one = self._parse([v], time_column) if v else None
                    why = "" if one is not None and one.num_rows == 1 else "not one JSON object"
                except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
                    one, why = None, str(e)
                singles.append((m, v, one if not why else None, why))
            # The shape most messages share is the reference; a message whose fields clash with
            # it (a number where the others hold text) is set aside, whatever its position.
            shapes: dict[pa.Schema, int] = {}
            for _m, _v, one, _why in singles:
                if one is not None:
                    shapes[one.schema] = shapes.get(one.schema, 0) + 1
            reference = max(shapes, key=lambda k: shapes[k]) if shapes else None
            parts: list[pa.Table] = []
            for m, v, one, why in singles:
                if one is None:
                    reject(m, v, why)
                    continue
                try:
                    unified = pa.unify_schemas([reference, one.schema], promote_options="permissive")
                    if any(unified.field(f.name).type != f.type for f in reference):
                        raise pa.ArrowTypeError("its fields clash with the other messages'")
                    parts.append(one)
                except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
                    reject(m, v, str(e))
            if parts:
                table = pa.concat_tables(parts, promote_options="permissive")
        if table is None:
            if schema is None:
                raise LaminaError(
                    f"Kafka topic {self.topic!r}: no message of the first batch is a JSON object, and "
                    "the store has no schema yet: give KafkaSource(schema=...) or fix the topic"
                )
            table = schema.empty_table()
        table = fit_columns(table, schema, time_column, lenient=True)
        if time_column in table.column_names:
            t = table.column(time_column).type
            if pa.types.is_timestamp(t) and t.unit == "s":
                # JSON readers infer whole-second ISO strings as seconds: the store keeps
                # microseconds, so a later event with a fraction is not refused as lossy.
                i = table.column_names.index(time_column)
                table = table.set_column(i, time_column, table.column(i).cast(pa.timestamp("us", t.tz)))
        return table, rejected

    @staticmethod
    def _parse(values: list[bytes], time_column: str | None = None) -> pa.Table:
        """One JSON object per line (a pretty-printed message's newlines become spaces), read in
        blocks large enough for the largest message. The event time is read as text (parsed
        after): a reader's inference would make whole seconds timestamps and fractions text."""
        import pyarrow.json as pjson

        joined = b"\n".join(values)
        if joined.count(b"\n") != len(values) - 1:
            joined = b"\n".join(v.replace(b"\n", b" ") for v in values)
        block = max(1 << 20, 2 * max(map(len, values), default=0) + 16)
        parse = None
        if time_column is not None:
            parse = pjson.ParseOptions(
                explicit_schema=pa.schema([(time_column, pa.string())]), unexpected_field_behavior="infer"
            )
        return pjson.read_json(
            pa.BufferReader(joined), read_options=pjson.ReadOptions(block_size=block), parse_options=parse
        )

    def lag(self, state: dict[str, Any]) -> dict[str, Any]:
        """Messages per partition after the store's recorded offsets (from the broker's high
        watermarks, which some brokers report late)."""
        ck = _kafka()
        consumer = ck.Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"lamina-{self.topic}-lag"})
        try:
            committed = {int(p): int(o) for p, o in state.get("offsets", {}).items()}
            out = {}
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
