"""Sources: a landing directory ingested exactly once, across reruns, replaced files and SIGKILLs
of the ingesting process. The oracle is the set of files written (each row has a unique id)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

import lamina

START = np.datetime64("2026-03-02T00:00:00", "us")


def rows(first_id: int, n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "ts": pa.array(START + rng.integers(0, 6 * 3_600_000_000, n).astype("timedelta64[us]")),
            "id": pa.array(np.arange(first_id, first_id + n, dtype=np.int64)),
            "city": pa.array(rng.choice(["Zürich", "東京", "Paris"], n)),
        }
    )


def land(directory: Path, name: str, table: pa.Table, fmt: str = "parquet") -> None:
    """Write a file the landing-zone way: under a hidden name, then renamed."""
    tmp = directory / f"_{name}.part"
    if fmt == "parquet":
        pq.write_table(table, tmp)
    elif fmt == "csv":
        pcsv.write_csv(table, tmp)
    elif fmt == "jsonl.gz":
        lines = [json.dumps({**r, "ts": r["ts"].isoformat()}) for r in table.to_pylist()]
        tmp.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    os.replace(tmp, directory / name)


def ids(store: lamina.Store) -> list[int]:
    return sorted(store.snapshot().column("id").to_pylist())


def test_each_file_once_across_reruns_and_replacements(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    land(landing, "a.parquet", rows(0, 100, 1))
    land(landing, "b.parquet", rows(100, 50, 2))
    (landing / ".hidden.parquet").write_bytes(b"not parquet")
    (landing / "_writing.parquet").write_bytes(b"not parquet either")
    (landing / "notes.txt").write_text("ignored: does not match the pattern")
    src = lamina.DirectorySource(landing, "*.parquet")
    with lamina.Store(tmp_path / "s") as store:
        assert store.ingest(src, idle_ms=0) == 1  # both files fit one commit
        assert ids(store) == list(range(150))
        assert store.ingest(src, idle_ms=0) == 0, "nothing new: nothing committed"
        land(landing, "c.parquet", rows(150, 10, 3))
        assert store.ingest(src, idle_ms=0, batch_rows=1) == 1
        assert ids(store) == list(range(160))
        # A file replaced by other content under the same name is a new file.
        land(landing, "a.parquet", rows(1000, 5, 4))
        assert store.ingest(src, idle_ms=0) == 1
        assert ids(store) == [*range(160), *range(1000, 1005)]
        # The commits say where their rows came from: name, size and content hash.
        marks = [json.loads(s) for s in store.commits().column("source").to_pylist()]
        assert all(m["source"] == src.id and m["kind"] == "files" for m in marks)
        last = marks[-1]["files"]
        data = (landing / "a.parquet").read_bytes()
        digest = hashlib.blake2b(data, digest_size=16).hexdigest()
        assert last == [{"name": "a.parquet", "size": len(data), "hash": digest}]
        assert [f["name"] for f in marks[0]["files"]] == ["a.parquet", "b.parquet"]
        (entry,) = store.status()["sources"]
        assert entry["source"] == src.id and entry["files"] == 3 and entry["lag"] == {"files_waiting": 0}
        land(landing, "d.parquet", rows(2000, 1, 6))
        assert store.status()["sources"][0]["lag"] == {"files_waiting": 1}
    # Reopened: the record is in the store, so nothing is read twice.
    with lamina.Store(tmp_path / "s") as store:
        assert store.ingest(src, idle_ms=0) == 1  # d.parquet only
        plain = store.append(rows(5000, 1, 5))
        assert store.commits().column("source")[plain - 1].as_py() is None


def test_csv_and_gzipped_json_lines_with_batching(tmp_path: Path) -> None:
    landing = tmp_path / "in"
    landing.mkdir()
    expected = []
    for i in range(6):
        t = rows(i * 20, 20, 10 + i)
        expected.append(t)
        land(landing, f"part-{i}.csv", t, "csv")
        land(landing, f"part-{i}.jsonl.gz", rows(10_000 + i * 20, 20, 20 + i), "jsonl.gz")
    with lamina.Store(None) as store:
        assert store.ingest(lamina.DirectorySource(landing, "*.csv"), idle_ms=0, batch_rows=40) == 3
        made = store.ingest(lamina.DirectorySource(landing, "part-*.jsonl.gz"), idle_ms=0, batch_rows=1)
        assert made == 6
        want = sorted(pa.concat_tables(expected)["id"].to_pylist() + [10_000 + k for k in range(120)])
        assert ids(store) == want
        # Event times survived both text formats.
        got = store.snapshot().sort_by("id")
        assert got["ts"].to_pylist()[:20] == expected[0].sort_by("id")["ts"].to_pylist()


def test_bad_files_are_set_aside_and_bad_arguments_raise_typed_errors(tmp_path: Path) -> None:
    landing = tmp_path / "in"
    landing.mkdir()
    land(landing, "a.parquet", rows(0, 10, 1))
    (landing / "b.parquet").write_bytes(b"PAR1 but not really")
    land(landing, "c.parquet", rows(10, 5, 1))
    with lamina.Store(None) as store:
        # b.parquet cannot be read: it is taken with no rows and its error kept in the commit;
        # the files around it go in.
        store.ingest(lamina.DirectorySource(landing), idle_ms=0)
        assert ids(store) == list(range(15))
        (rejected,) = json.loads(store.commits().column("source")[0].as_py())["rejected"]
        assert rejected["file"] == "b.parquet" and "b.parquet" in rejected["error"]
        assert store.ingest(lamina.DirectorySource(landing), idle_ms=0) == 0
        with pytest.raises(lamina.InputFileError, match="no such directory"):
            store.ingest(lamina.DirectorySource(tmp_path / "missing"), idle_ms=0)
        for bad in ({"batch_rows": 0}, {"idle_ms": -1}, {"batch_ms": True}):
            with pytest.raises(lamina.InvalidArgumentError):
                store.ingest(lamina.DirectorySource(landing), **bad)
        with pytest.raises(lamina.InvalidArgumentError):
            store.ingest("landing/")  # type: ignore[arg-type]
        # The core refuses to record a file twice, even if asked directly.
        mark = json.loads(store.commits().column("source")[0].as_py())
        with pytest.raises(lamina.LaminaError, match="already ingested"):
            store._core.append(rows(0, 1, 1), source=json.dumps(mark))
        assert ids(store) == list(range(15))


INGEST = """
import sys
import lamina
store, landing = sys.argv[1], sys.argv[2]
with lamina.Store(store) as s:
    s.ingest(lamina.DirectorySource(landing, "*.parquet"), batch_rows=1, batch_ms=5)
"""


def test_exactly_once_across_sigkills(tmp_path: Path) -> None:
    """A producer lands files while the ingesting process is SIGKILLed at random moments, many
    times; after a final draining run every row is in the store exactly once."""
    seed = int(os.environ.get("LAMINA_CRASH_SEED", random.randrange(2**32)))
    print(f"seed {seed} (rerun with LAMINA_CRASH_SEED={seed})")
    rnd = random.Random(seed)
    landing = tmp_path / "landing"
    landing.mkdir()
    store_dir = tmp_path / "store"
    script = tmp_path / "ingest.py"
    script.write_text(INGEST)
    written = 0
    files = 0
    kills = 0
    for _round in range(12):
        child = subprocess.Popen([sys.executable, str(script), str(store_dir), str(landing)])
        deadline = time.monotonic() + rnd.uniform(0.3, 1.2)
        while time.monotonic() < deadline:
            n = rnd.randint(1, 40)
            land(landing, f"f{files:05d}.parquet", rows(written, n, files))
            written += n
            files += 1
            time.sleep(rnd.uniform(0.0, 0.03))
        child.send_signal(signal.SIGKILL)
        child.wait()
        kills += 1
    with lamina.Store(store_dir) as store:
        # The killed processes did commit (the kills hit a running ingest, not only start-up).
        assert store.commits().num_rows >= 3, store.commits().num_rows
        store.ingest(lamina.DirectorySource(landing, "*.parquet"), idle_ms=0)
        got = store.snapshot().column("id")
        assert got.length() == written, f"{got.length()} rows for {written} written ({files} files)"
        assert pc.count_distinct(got).as_py() == written, "a row was ingested twice"
        assert ids(store) == list(range(written))
        # Every file is recorded exactly once.
        recorded = [
            f["name"]
            for s in store.commits().column("source").to_pylist()
            if s is not None
            for f in json.loads(s)["files"]
        ]
        assert sorted(recorded) == sorted(p.name for p in landing.glob("*.parquet"))
    assert kills == 12


def test_cli_watch_drains_and_stops(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    for i in range(3):
        land(landing, f"e{i}.parquet", rows(i * 10, 10, i))
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    cmd = [sys.executable, "-m", "lamina.cli", "ingest", str(tmp_path / "s"), "--watch", str(landing)]
    r = subprocess.run([*cmd, "--idle-ms", "0"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "1 commit" in r.stdout
    r = subprocess.run([*cmd, "--idle-ms", "0"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and "0 commits" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([*cmd, "x.parquet"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2, r.stderr
    with lamina.Store(tmp_path / "s", read_only=True) as store:
        assert ids(store) == list(range(30))


def test_ctrl_c_stops_after_the_current_commit(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    land(landing, "a.parquet", rows(0, 5, 1))
    child = subprocess.Popen(
        [sys.executable, "-m", "lamina.cli", "ingest", str(tmp_path / "s"), "--watch", str(landing)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()  # the first commit's progress line: the loop is running
    assert "commit 1" in line, line
    child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0, out
    assert "1 commit" in out


def test_a_file_gone_between_listing_and_reading_is_skipped(tmp_path: Path) -> None:
    landing = tmp_path / "in"
    landing.mkdir()
    land(landing, "a.parquet", rows(0, 3, 1))
    src = lamina.DirectorySource(landing, name="landing")
    listed = src._candidates()
    src._candidates = lambda: [landing / "gone.parquet", *listed]  # type: ignore[method-assign]
    with lamina.Store(None) as store:
        assert store.ingest(src, idle_ms=0) == 1
        assert ids(store) == [0, 1, 2]
        assert src.id == "dir:landing"


def test_an_empty_object_beside_an_unreadable_line_is_never_dropped_silently(tmp_path: Path) -> None:
    """Found by the slow fuzz run: a JSON lines file of `{}` and a line pyarrow cannot read
    (`{\\x00}`) committed no row and listed only the bad line, so the `{}` event vanished."""
    land_dir = tmp_path / "land"
    land_dir.mkdir()
    (land_dir / "a.jsonl").write_bytes(b"{}\n{\x00}")
    with lamina.Store(tmp_path / "fresh") as store:
        store.ingest(lamina.DirectorySource(land_dir, pattern="*.jsonl"), idle_ms=0, progress=False)
        (commit,) = store.commits().to_pylist()
        rejected = json.loads(commit["source"])["rejected"]
        # No schema can hold a row without fields: the whole file is set aside, saying why.
        assert commit["rows"] == 0 and [r for r in rejected if "line" not in r], rejected
        assert "no fields" in rejected[0]["error"]
    (land_dir / "b.jsonl").write_bytes(b'{"ts": "2026-03-02T10:00:00", "k": 1}\n')
    with lamina.Store(tmp_path / "typed") as store:
        store.ingest(lamina.DirectorySource(land_dir, pattern="b.jsonl"), idle_ms=0, progress=False)
        (land_dir / "c.jsonl").write_bytes(b"{}\n{\x00}")
        store.ingest(
            lamina.DirectorySource(land_dir, pattern="c.jsonl"), idle_ms=0, quarantine=True, progress=False
        )
        last = store.commits().to_pylist()[-1]
        # With a schema the `{}` row is a row of nulls: quarantined (no event time), never lost.
        assert last["rows"] + last["quarantined"] == 1, last
        assert [r["line"] for r in json.loads(last["source"])["rejected"] if "line" in r] == [2]
