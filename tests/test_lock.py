"""One writer process per store, enforced by a lock with a clear error; other processes can read
snapshots (README "The guarantees"). The other process is a real child Python process driven over a pipe."""

from __future__ import annotations

import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from support import batch as core_batch
from support import ids

import lamina

# A child process that runs store commands sent as JSON lines and answers each with one JSON line.
PEER = r"""
import json
import sys

import numpy as np
import pyarrow as pa

import lamina

store = None
T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def reply(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def batch(first, n):
    return pa.table(
        {
            "id": np.arange(first, first + n, dtype=np.int64),
            "ts": pa.array(T0 + np.arange(n, dtype=np.int64) * 60_000_000, pa.timestamp("us")),
            "cat": pa.array(["a", "b", "c"] * (n // 3) + ["a"] * (n % 3)),
        }
    )


reply(ok=True, ready=True)
for line in sys.stdin:
    cmd = json.loads(line)
    op = cmd["op"]
    try:
        if op == "open":
            store = lamina.Store(cmd["path"], read_only=cmd.get("read_only", False))
            reply(ok=True)
        elif op == "append":
            reply(ok=True, commit=store.append(batch(cmd["first"], cmd["n"])))
        elif op == "snapshot":
            t = store.snapshot(cmd.get("commit"))
            reply(ok=True, ids=sorted(t["id"].to_pylist()) if t.num_rows else [])
        elif op == "commits":
            reply(ok=True, commits=store.commits()["commit"].to_pylist())
        elif op == "events":
            t = store.query(cmd["view"])
            reply(ok=True, events=sum(t["events"].to_pylist()))
        elif op == "read_loop":
            # Read snapshots for a while; report every failure (a reader must never fail).
            import time

            errors, reads, end = [], 0, time.monotonic() + cmd["seconds"]
            while time.monotonic() < end and len(errors) < 5:
                try:
                    store.snapshot()
                    reads += 1
                except BaseException as e:
                    errors.append(f"{type(e).__name__}: {e}")
            reply(ok=True, reads=reads, errors=errors)
        elif op == "close":
            store.close()
            reply(ok=True)
        else:
            reply(ok=False, type="BadCommand", message=op)
    except BaseException as e:
        reply(
            ok=False,
            type=type(e).__name__,
            lamina=isinstance(e, lamina.LaminaError),
            message=str(e),
        )
"""


def batch(first: int, n: int) -> pa.Table:
    return pa.table(
        {
            "id": np.arange(first, first + n, dtype=np.int64),
            "ts": pa.array(
                1_767_225_600_000_000 + np.arange(n, dtype=np.int64) * 60_000_000, pa.timestamp("us")
            ),
            "cat": pa.array(["a", "b", "c"] * (n // 3) + ["a"] * (n % 3)),
        }
    )


class Peer:
    """A child process running store commands."""

    def __init__(self, tmp_path: Path) -> None:
        script = tmp_path / "peer.py"
        script.write_text(PEER)
        self.proc = subprocess.Popen(
            [sys.executable, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        assert self._read(60).get("ready"), "peer did not start"

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _read(self, timeout: float) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("peer did not answer in time") from None
        if line is None:
            assert self.proc.stderr is not None
            raise AssertionError(f"peer died (rc={self.proc.wait()}): {self.proc.stderr.read()}")
        return json.loads(line)

    def call(self, op: str, timeout: float = 60, **kw: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        return self._read(timeout)

    def ok(self, op: str, **kw: Any) -> dict[str, Any]:
        r = self.call(op, **kw)
        assert r["ok"], f"peer {op} failed: {r}"
        return r

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def peer(tmp_path: Path):
    p = Peer(tmp_path)
    yield p
    p.stop()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store"


def test_second_writer_process_gets_lock_error(peer: Peer, path: Path) -> None:
    peer.ok("open", path=str(path))
    peer.ok("append", first=0, n=10)
    with pytest.raises(lamina.LockError) as info:
        lamina.Store(path)
    assert isinstance(info.value, lamina.LaminaError)
    msg = str(info.value)
    assert str(path) in msg and "read_only" in msg, f"unclear lock error: {msg}"
    # The refused open changed nothing: the holder goes on writing.
    assert peer.ok("append", first=10, n=5)["commit"] == 2
    assert peer.ok("commits")["commits"] == [1, 2]


def test_writer_in_this_process_locks_out_a_child(peer: Peer, path: Path) -> None:
    with lamina.Store(path) as store:
        store.append(batch(0, 3))
        r = peer.call("open", path=str(path))
        assert not r["ok"] and r["type"] == "LockError" and r["lamina"], r
        assert str(path) in r["message"]
        assert store.append(batch(3, 3)) == 2
    # Closed: now the child can write.
    peer.ok("open", path=str(path))
    assert peer.ok("append", first=6, n=3)["commit"] == 3


def test_second_writer_in_the_same_process_gets_lock_error(path: Path) -> None:
    with lamina.Store(path) as first:
        first.append(batch(0, 3))
        with pytest.raises(lamina.LockError):
            lamina.Store(path)
        assert first.append(batch(3, 3)) == 2
    with lamina.Store(path) as again:
        assert again.commits()["commit"].to_pylist() == [1, 2]


def test_lock_released_when_the_writer_closes(peer: Peer, path: Path) -> None:
    peer.ok("open", path=str(path))
    peer.ok("append", first=0, n=3)
    with pytest.raises(lamina.LockError):
        lamina.Store(path)
    peer.ok("close")
    with lamina.Store(path) as store:
        assert store.append(batch(3, 3)) == 2
        assert sorted(store.snapshot()["id"].to_pylist()) == list(range(6))


def test_lock_released_when_the_writer_is_killed(peer: Peer, path: Path) -> None:
    peer.ok("open", path=str(path))
    peer.ok("append", first=0, n=3)
    with pytest.raises(lamina.LockError):
        lamina.Store(path)
    peer.kill()
    assert peer.proc.returncode == -signal.SIGKILL
    with lamina.Store(path) as store:
        assert store.commits()["commit"].to_pylist() == [1]
        assert store.append(batch(3, 3)) == 2


def test_read_only_reader_in_another_process_sees_new_commits(peer: Peer, path: Path) -> None:
    with lamina.Store(path) as store:
        store.append(batch(0, 10))
        peer.ok("open", path=str(path), read_only=True)  # a reader does not need the lock
        assert peer.ok("snapshot")["ids"] == list(range(10))
        assert peer.ok("commits")["commits"] == [1]

        store.append(batch(10, 5))
        assert peer.ok("commits")["commits"] == [1, 2], "the reader did not pick up commit 2"
        assert peer.ok("snapshot")["ids"] == list(range(15))
        assert peer.ok("snapshot", commit=1)["ids"] == list(range(10)), "time travel in the reader"

        # Views defined, recomputed and fed after the reader opened are served to it too.
        store.define(lamina.View("v", time="ts", grain="1h", by=["cat"], metrics={"events": lamina.count()}))
        store.recompute(progress=False)
        assert peer.ok("events", view="v")["events"] == 15
        store.append(batch(15, 7))
        assert peer.ok("events", view="v")["events"] == 22, "the reader's speed layer missed commit 3"

        # The reader can write nothing.
        r = peer.call("append", first=100, n=1)
        assert not r["ok"] and r["type"] == "LockError", r
        assert store.commits()["commit"].to_pylist() == [1, 2, 3]
        assert store.append(batch(22, 1)) == 4
    assert peer.ok("commits")["commits"] == [1, 2, 3, 4]


def test_read_only_reader_does_not_block_a_writer(peer: Peer, path: Path) -> None:
    with lamina.Store(path) as store:
        store.append(batch(0, 3))
    peer.ok("open", path=str(path), read_only=True)
    with lamina.Store(path) as store:  # the reader holds no lock
        assert store.append(batch(3, 3)) == 2
    assert peer.ok("snapshot")["ids"] == list(range(6))


def test_writing_through_a_read_only_store_raises_lock_error(path: Path) -> None:
    with lamina.Store(path) as store:
        store.append(batch(0, 6))
        store.define(lamina.View("v", time="ts", grain="1h", by=["cat"], metrics={"events": lamina.count()}))
    log_before = sorted(os.listdir(path / "_log"))
    with lamina.Store(path, read_only=True) as ro:
        view = lamina.View("w", time="ts", grain="1d", metrics={"events": lamina.count()})
        attempts = {
            "append": lambda: ro.append(batch(6, 3)),
            "define": lambda: ro.define(view),
            "recompute": lambda: ro.recompute(progress=False),
            "compact": lambda: ro.compact(),
            "drop": lambda: ro.drop("v"),
        }
        for name, attempt in attempts.items():
            with pytest.raises(lamina.LockError) as info:
                attempt()
            assert "read-only" in str(info.value) or "read_only" in str(info.value), (name, str(info.value))
        # Reads work.
        assert sorted(ro.snapshot()["id"].to_pylist()) == list(range(6))
        assert sum(ro.query("v")["events"].to_pylist()) == 6
    assert sorted(os.listdir(path / "_log")) == log_before, "a read-only store wrote to the log"
    with lamina.Store(path) as store:
        assert store.commits()["commit"].to_pylist() == [1]
        assert list(store.views()) == ["v"]


def test_read_only_open_of_a_missing_store_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    with pytest.raises(lamina.LaminaError) as info:
        lamina.Store(missing, read_only=True)
    assert isinstance(info.value, lamina.NotFoundError), type(info.value)
    assert not missing.exists(), "a read-only open created the directory"


def test_lagging_reader_catches_up_after_checkpoints(peer: Peer, path: Path) -> None:
    with lamina.Store(path, durable=False, auto_compact=False) as store:
        store.append(batch(0, 3))
        peer.ok("open", path=str(path), read_only=True)
        assert peer.ok("commits")["commits"] == [1]
        for i in range(1, 250):  # 250 manifest versions: two checkpoints prune the early records
            store.append(batch(3 * i, 3))
        assert peer.ok("commits")["commits"] == list(range(1, 251))
        assert peer.ok("snapshot")["ids"] == list(range(750))


def test_reader_never_fails_while_the_writer_compacts(peer: Peer, path: Path) -> None:
    with lamina.Store(path, durable=False, auto_compact=False) as store:
        store.append(batch(0, 3))
        peer.ok("open", path=str(path), read_only=True)
        result: dict[str, Any] = {}
        t = threading.Thread(target=lambda: result.update(peer.ok("read_loop", seconds=2.5)))
        t.start()
        # Stay under 200 manifest versions so that the lagging-reader bug above cannot interfere:
        # any failure here is the compaction race itself.
        for i in range(1, 90):
            store.append(batch(3 * i, 3))
            assert store.compact() >= 2  # every compaction replaces (and deletes) the segment files
            time.sleep(0.01)
        t.join(60)
        assert store.status()["manifest_version"] < 200
        assert result["reads"] > 0
        assert not result["errors"], f"the reader failed {len(result['errors'])}x: {result['errors'][:2]}"


# ---------------------------------------------------------------- (from test_core_v2.py)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_does_not_inherit_the_writer_lock(tmp_path: Path) -> None:
    path = tmp_path / "s"
    store = lamina.Store(path)
    store.append(core_batch(0, 3))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the outcome of one append through the pipe, then exit at once
        code = b"?"
        try:
            os.close(r)
            try:
                store.append(core_batch(100, 3))
                code = b"appended"
            except lamina.LockError:
                code = b"LockError"
            except BaseException as e:  # noqa: BLE001
                code = f"{type(e).__name__}: {e}".encode()
            os.write(w, code)
        finally:
            os._exit(0)
    os.close(w)
    out, deadline = b"", time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(r, 4096)
            if not chunk:
                break
            out += chunk
    finally:
        os.close(r)
        if os.waitpid(pid, os.WNOHANG) == (0, 0):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    try:
        assert out, "the forked child hung in store.append() (killed after 20 s)"
        assert out == b"LockError", f"the forked child's append must raise lamina.LockError, got: {out!r}"
        # The parent still holds the store and goes on writing.
        assert store.append(core_batch(3, 3)) == 2
        assert store.commits()["commit"].to_pylist() == [1, 2]
    finally:
        store.close()
    with lamina.Store(path) as again:
        assert again.commits()["commit"].to_pylist() == [1, 2]
        assert ids(again.snapshot()) == list(range(6)), "the child's rows reached the store"
