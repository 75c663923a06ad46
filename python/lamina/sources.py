"""Sources: data that flows into a store by itself, each piece exactly once across crashes.

A source has a stable identity (:attr:`Source.id`) and reads what lies after the position the
store holds for it. :meth:`lamina.Store.ingest` appends what it read together with the new
position, in one commit: if the process dies before the commit, nothing was recorded and the next
run reads the same data again; if it dies after, the next run starts after it. No offsets or
"done" files live outside the store.

* :class:`DirectorySource`: each new file of a landing directory (Parquet, CSV, JSON lines), by
  name and content hash.
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

from lamina._files import infer_format, read_file
from lamina.errors import InputFileError, InvalidArgumentError

__all__ = ["DirectorySource", "Source", "Delivery"]


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

    def read(
        self, state: dict[str, Any], schema: pa.Schema | None, time_column: str | None, max_rows: int
    ) -> Iterator[Delivery]:  # pragma: no cover
        """What lies after ``state`` (the store's record of this source), in deliveries of about
        ``max_rows`` rows; empty when nothing new is there."""
        raise NotImplementedError

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
        self, state: dict[str, Any], schema: pa.Schema | None, time_column: str | None, max_rows: int
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


def source_state(core: Any, source: Source) -> dict[str, Any]:
    text = core.source_state(source.id)
    return {} if text is None else json.loads(text)
