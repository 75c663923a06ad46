"""Compaction and cleanup: replaced files outlive the readers that use them, and cleanup never
reaches outside the store."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from support import (
    Worker,
    assert_matches_oracle,
    batch,
    failpoint,
    ids,
    view,
    within,
)

import lamina

# ---------------------------------------------------------------- (from test_core_v2.py)


def test_reader_snapshot_survives_compaction_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s"
    writer = lamina.Store(path, durable=False, auto_compact=False)
    writer2 = reader = None
    try:
        for i in range(6):
            writer.append(batch(10 * i, 10))
        reader = lamina.Store(path, read_only=True)
        assert reader.commits().num_rows == 6
        old_segments = sorted(p.name for p in (path / "segments").iterdir())
        with failpoint("read.before_file", "pause") as core:
            snap = Worker(lambda: ids(reader.snapshot()), "reader snapshot")
            assert core._failpoint_wait("read.before_file", 10), "snapshot() never reached the hook"

            def replace_files() -> lamina.Store:
                assert writer.compact() >= 2
                writer.close()
                return lamina.Store(path)

            writer2 = within(replace_files, "compact + close + open a new writer")
            gone = [n for n in old_segments if not (path / "segments" / n).exists()]
            assert not gone, f"replaced segments deleted within the grace period: {gone}"
        assert snap.get() == list(range(60)), "the reader's snapshot read the wrong rows"
    finally:
        for s in (reader, writer2, writer):
            if s is not None:
                s.close()


def test_replaced_files_survive_close_and_the_next_open(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with lamina.Store(path, durable=False, auto_compact=False) as writer:
        for i in range(5):
            writer.append(batch(10 * i, 10))
        writer.define(view())
        writer.recompute(progress=False)
        first_view = sorted((path / "views").rglob("*.parquet"))
        assert len(first_view) == 1, first_view
        writer.append(batch(50, 10))
        writer.recompute(progress=False)  # a second batch view replaces the first
        segments = sorted((path / "segments").glob("*.parquet"))
        assert writer.compact() >= 2  # a compacted segment replaces the small ones
        replaced = [*first_view, *segments]
    with lamina.Store(path) as again:  # the next writer's open
        gone = [str(p.relative_to(path)) for p in replaced if not p.exists()]
        assert not gone, f"files deleted before readers had their 60 s grace period: {gone}"
        # A reader that resolved the old state can still read them, whole.
        rows = sum(pq.read_table(p).num_rows for p in segments)
        assert rows == 60
        assert pq.read_table(first_view[0]).num_rows > 0
        assert_matches_oracle(again)


def test_opening_a_writer_never_deletes_through_symlinks(tmp_path: Path) -> None:
    path = tmp_path / "s"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.parquet").write_bytes(b"precious")
    (outside / "notes.txt").write_text("precious too")
    lone = tmp_path / "lone.parquet"
    lone.write_bytes(b"a file of its own")
    with lamina.Store(path) as store:
        store.append(batch(0, 30))
        store.define(view())
        store.recompute(progress=False)
    for sub in ("segments", "views"):
        (path / sub / "linked-dir").symlink_to(outside, target_is_directory=True)
        (path / sub / "linked-file.parquet").symlink_to(lone)
    with lamina.Store(path) as store:
        assert store.commits().num_rows == 1
        assert_matches_oracle(store)
    survivors = {p.name: p.read_bytes() for p in outside.iterdir()}
    assert survivors == {"keep.parquet": b"precious", "notes.txt": b"precious too"}, (
        f"opening a writer deleted or changed files outside the store: {sorted(survivors)}"
    )
    assert lone.exists() and lone.read_bytes() == b"a file of its own"
