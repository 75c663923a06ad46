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

    def __init__(self, path: str | Path, pattern: str = "*.parquet", *, format: str | None = None) -> None:  # noqa: A002
        if not isinstance(pattern, str) or not pattern:
            raise InvalidArgumentError(f"pattern must be a glob like '*.parquet', not {pattern!r}")
        if format is not None and format not in ("parquet", "csv", "jsonl"):
            raise InvalidArgumentError(f"format must be 'parquet', 'csv' or 'jsonl', not {format!r}")
        self.path = Path(path).resolve()
        self.pattern = pattern
        self.format = format

    @property
    def id(self) -> str:
        return f"dir:{self.path}:{self.pattern}"

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
                size = p.stat().st_size
            except FileNotFoundError:
                continue  # gone since the listing
            if known is not None and known[0] == size:
                # Same name and size: hash to be sure it is the same content.
                data = p.read_bytes()
                digest = hashlib.blake2b(data, digest_size=16).hexdigest()
                if digest == known[1]:
                    continue
            else:
                data = p.read_bytes()
                digest = hashlib.blake2b(data, digest_size=16).hexdigest()
            table = read_file(p, self._format(p), schema, time_column, data=data)
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
        self._consumer: Any = None
        self._positions: dict[int, int] = {}

    @property
    def id(self) -> str:
        return f"kafka:{self.bootstrap}/{self.topic}"

    def __repr__(self) -> str:
        return f"lamina.KafkaSource({self.bootstrap!r}, {self.topic!r})"

    def _partitions(self, consumer: Any) -> list[int]:
        md = consumer.list_topics(self.topic, timeout=10)
        topic = md.topics.get(self.topic)
        if topic is None or topic.error is not None:
            raise LaminaError(f"Kafka topic {self.topic!r} at {self.bootstrap}: {topic and topic.error}")
        return sorted(topic.partitions)

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
            messages.extend(m for m in got if m.error() is None)
            if not got and messages:
                break  # the topic is drained for now
        if not messages:
            return
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
        progress = {"kind": "offsets", "offsets": {str(p): o for p, o in sorted(offsets.items())}}
        if rejected:
            progress["rejected"] = rejected
        parts = ", ".join(f"{p}:{o}" for p, o in sorted(offsets.items()))
        yield Delivery(table, progress, f"{self.topic} (next offsets {parts})")

    def _decode(
        self, messages: list[Any], schema: pa.Schema | None, time_column: str | None
    ) -> tuple[pa.Table, list[dict[str, Any]]]:
        """The messages' JSON objects as one table, decoded in bulk; messages that are not JSON
        objects are set aside with their partition and offset."""

        values = [m.value() or b"" for m in messages]
        rejected: list[dict[str, Any]] = []
        good = values
        try:
            table = self._parse(self._lines(values), schema)
            if table.num_rows != len(values):
                raise pa.ArrowInvalid("a message is not one JSON object")
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            # Rare: find the bad messages one by one, decode the rest in bulk.
            good = []
            for m, v in zip(messages, values, strict=True):
                try:
                    one = json.loads(v)
                    if not isinstance(one, dict):
                        raise ValueError("not a JSON object")
                    good.append(v)
                except ValueError as e:
                    rejected.append(
                        {
                            "partition": m.partition(),
                            "offset": m.offset(),
                            "error": str(e)[:200],
                            "value": v[: self.KEEP_BYTES].decode("utf-8", "replace"),
                        }
                    )
            table = self._parse(self._lines(good), schema) if good else None
        if table is None:
            table = pa.table({}) if schema is None else schema.empty_table()
        table = fit_columns(table, schema, time_column)
        if time_column in table.column_names:
            t = table.column(time_column).type
            if pa.types.is_timestamp(t) and t.unit == "s":
                # JSON readers infer whole-second ISO strings as seconds: the store keeps
                # microseconds, so a later event with a fraction is not refused as lossy.
                i = table.column_names.index(time_column)
                table = table.set_column(i, time_column, table.column(i).cast(pa.timestamp("us", t.tz)))
        return table, rejected

    @staticmethod
    def _lines(values: list[bytes]) -> bytes:
        """One JSON object per line (a pretty-printed message's newlines become spaces)."""
        joined = b"\n".join(values)
        if joined.count(b"\n") == len(values) - 1:
            return joined
        return b"\n".join(v.replace(b"\n", b" ") for v in values)

    @staticmethod
    def _parse(payload: bytes, schema: pa.Schema | None) -> pa.Table:
        import pyarrow.json as pjson

        if not payload:
            return pa.table({}) if schema is None else schema.empty_table()
        return pjson.read_json(pa.BufferReader(payload))

    def lag(self, state: dict[str, Any]) -> dict[str, Any]:
        """Messages per partition after the store's recorded offsets (from the broker's high
        watermarks, which some brokers report late)."""
        ck = _kafka()
        consumer = self._assign(state)
        out = {}
        committed = {int(p): int(o) for p, o in state.get("offsets", {}).items()}
        for p in self._partitions(consumer):
            _low, high = consumer.get_watermark_offsets(ck.TopicPartition(self.topic, p), timeout=10)
            out[p] = max(high - committed.get(p, 0), 0)
        return out

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
            self._positions = {}


def source_state(core: Any, source: Source) -> dict[str, Any]:
    text = core.source_state(source.id)
    return {} if text is None else json.loads(text)
