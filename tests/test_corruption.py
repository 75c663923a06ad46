"""Corrupt or truncated files are detected (checksums) and reported with the file's name (README
"The guarantees"), as lamina.CorruptionError, and never as a Rust panic (pyo3_runtime.PanicException)."""

from __future__ import annotations

import base64
import json
import shutil
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import assert_matches_oracle, ids, served_groups, total, view
from support import batch as core_batch

import lamina

T0_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def batch(first: int, n: int) -> pa.Table:
    return pa.table(
        {
            "id": np.arange(first, first + n, dtype=np.int64),
            "ts": pa.array(T0_US + np.arange(n, dtype=np.int64) * 60_000_000, pa.timestamp("us")),
            "cat": pa.array(["a", "b", "c"] * (n // 3) + ["a"] * (n % 3)),
            "v": np.arange(n, dtype=np.int64),
        }
    )


VIEW = lamina.View(
    "v",
    time="ts",
    grain="1h",
    by=["cat"],
    metrics={"events": lamina.count(), "tot": lamina.sum("v"), "users": lamina.count_distinct("id")},
)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Commits 1 and 2 covered by a published batch view, commit 3 in the speed layer."""
    root = tmp_path_factory.mktemp("pristine") / "store"
    with lamina.Store(root) as s:
        s.append(batch(0, 1000))
        s.append(batch(1000, 500))
        s.define(VIEW)
        assert s.recompute(progress=False) == 2
        s.append(batch(1500, 10))
    return root


@pytest.fixture
def store_dir(pristine: Path, tmp_path: Path) -> Path:
    root = tmp_path / "store"
    shutil.copytree(pristine, root)
    return root


@pytest.fixture
def plain_dir(tmp_path: Path) -> Path:
    """A store without views: opening it reads no segment."""
    root = tmp_path / "plain"
    with lamina.Store(root) as s:
        s.append(batch(0, 1000))
        s.append(batch(1000, 500))
        s.append(batch(1500, 10))
    return root


def segment(root: Path, commit: int) -> Path:
    p = root / "segments" / f"{commit:020}.parquet"
    assert p.exists(), sorted(x.name for x in (root / "segments").iterdir())
    return p


def view_file(root: Path) -> Path:
    """The batch view's file (a close also saves the speed state beside it, as ``speed-*``)."""
    files = [p for p in (root / "views").rglob("*.parquet") if not p.name.startswith("speed-")]
    assert len(files) == 1, files
    return files[0]


def record(root: Path, version: int) -> Path:
    p = root / "_log" / f"{version:020}.json"
    assert p.exists(), sorted(x.name for x in (root / "_log").iterdir())
    return p


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0x5A
    path.write_bytes(bytes(data))


def expect_corruption(action: Callable[[], object], path: Path) -> lamina.CorruptionError:
    """`action` must raise lamina.CorruptionError naming `path`, and nothing else (no panic)."""
    try:
        action()
    except BaseException as e:  # noqa: BLE001 - a PanicException derives from BaseException
        kind = f"{type(e).__module__}.{type(e).__name__}"
        assert "PanicException" not in kind, f"lamina panicked instead of reporting corruption: {e}"
        assert isinstance(e, lamina.CorruptionError), f"expected CorruptionError, got {kind}: {e}"
        assert isinstance(e, lamina.LaminaError)
        assert path.name in str(e), f"the error does not name {path.name}: {e}"
        return e
    raise AssertionError(f"damage to {path} went unnoticed")


def open_and_read(root: Path) -> None:
    with lamina.Store(root) as s:
        s.snapshot()


def reopen(root: Path) -> None:
    lamina.Store(root).close()


# ---------------------------------------------------------------- segments


@pytest.mark.parametrize("where", ["magic", "middle", "footer"])
@pytest.mark.parametrize("commit", [1, 3])
def test_flipped_byte_in_a_segment(plain_dir: Path, where: str, commit: int) -> None:
    seg = segment(plain_dir, commit)
    size = seg.stat().st_size
    flip(seg, {"magic": 1, "middle": size // 2, "footer": size - 12}[where])
    with lamina.Store(plain_dir) as s:  # no view: opening reads no segment
        expect_corruption(s.snapshot, seg)
        # Snapshots that do not need the damaged segment still read.
        if commit == 3:
            assert s.snapshot(commit=2).num_rows == 1500


def test_flipped_byte_in_a_segment_of_a_store_with_views(store_dir: Path) -> None:
    seg = segment(store_dir, 1)  # covered by the batch view: not read at open
    flip(seg, seg.stat().st_size // 3)
    with lamina.Store(store_dir) as s:
        expect_corruption(s.snapshot, seg)
        expect_corruption(lambda: s.recompute(progress=False), seg)
        # The batch view is still served.
        assert sum(s.query("v")["events"].to_pylist()) == 1510


def expect_openable_with_a_broken_view(root: Path, seg: Path, *, replayed: bool = True) -> None:
    """One damaged segment never makes the whole store unopenable: it opens, the snapshots
    before the segment still read, and a view whose replay needs the segment raises
    CorruptionError naming it (never a short answer), as status() says. (A view whose speed
    state was saved at the last close needs no replay of a segment of the same size.)"""
    with lamina.Store(root) as s:
        expect_corruption(s.snapshot, seg)
        assert s.snapshot(commit=2).num_rows > 0
        if replayed:
            expect_corruption(lambda: s.query("v"), seg)
            (v,) = [v for v in s.status()["views"] if v["name"] == "v"]
            assert seg.name in (v["warning"] or ""), v


def test_flipped_byte_in_a_replayed_segment_leaves_the_store_openable(store_dir: Path) -> None:
    seg = segment(store_dir, 3)  # replayed into the speed layer at open
    flip(seg, seg.stat().st_size // 2)
    expect_corruption(lambda: open_and_read(store_dir), seg)
    expect_openable_with_a_broken_view(store_dir, seg, replayed=False)
    for saved in (store_dir / "views").rglob("speed-*.parquet"):
        saved.unlink()  # now the open must replay the damaged segment
    expect_openable_with_a_broken_view(store_dir, seg)


@pytest.mark.parametrize("keep", [0, 4, 0.5, -1])
def test_truncated_segment(plain_dir: Path, keep: float) -> None:
    seg = segment(plain_dir, 2)
    data = seg.read_bytes()
    n = {0: 0, 4: 4, 0.5: len(data) // 2, -1: len(data) - 1}[keep]
    seg.write_bytes(data[:n])
    e = expect_corruption(lambda: open_and_read(plain_dir), seg)
    if n:
        assert "truncated" in str(e) or "size" in str(e), str(e)


def test_missing_segment(plain_dir: Path) -> None:
    seg = segment(plain_dir, 2)
    seg.unlink()
    e = expect_corruption(lambda: open_and_read(plain_dir), seg)
    assert "missing" in str(e)


def test_missing_replayed_segment_leaves_the_store_openable(store_dir: Path) -> None:
    seg = segment(store_dir, 3)
    seg.unlink()
    reopen(store_dir)
    expect_openable_with_a_broken_view(store_dir, seg)


def test_appended_garbage_after_a_segment(plain_dir: Path) -> None:
    seg = segment(plain_dir, 1)
    with seg.open("ab") as f:
        f.write(b"\0" * 17)
    expect_corruption(lambda: open_and_read(plain_dir), seg)


# ---------------------------------------------------------------- manifest log


def damage_record(path: Path, how: str) -> None:
    text = path.read_bytes()
    body, crc = text.split(b"\n")[:2]
    if how == "digit":  # a plausible-looking change: a row count
        i = body.index(b'"rows":') + len(b'"rows":')
        body = body[:i] + bytes([(body[i] - 48 + 1) % 10 + 48]) + body[i + 1 :]
        path.write_bytes(body + b"\n" + crc + b"\n")
    elif how == "checksum":
        path.write_bytes(body + b"\n" + (b"0" if crc[:1] != b"0" else b"1") + crc[1:] + b"\n")
    elif how == "truncated":
        path.write_bytes(text[: len(text) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "binary":  # a byte that is not UTF-8
        path.write_bytes(body[:10] + b"\xff" + body[11:] + b"\n" + crc + b"\n")
    elif how == "valid-checksum-bad-json":
        bad = body[: len(body) // 2]
        path.write_bytes(bad + b"\n" + f"{zlib.crc32(bad):08x}".encode() + b"\n")
    elif how == "valid-checksum-wrong-commit":
        j = json.loads(body)
        j["commit"]["commit"] += 5
        bad = json.dumps(j, separators=(",", ":")).encode()
        path.write_bytes(bad + b"\n" + f"{zlib.crc32(bad):08x}".encode() + b"\n")
    else:
        raise AssertionError(how)


MANIFEST_DAMAGE = [
    "digit",
    "checksum",
    "truncated",
    "empty",
    "valid-checksum-bad-json",
    "valid-checksum-wrong-commit",
]


@pytest.mark.parametrize("how", MANIFEST_DAMAGE)
@pytest.mark.parametrize("version", [2, 5])  # a record in the middle of the log, and the last one
def test_damaged_manifest_record(store_dir: Path, how: str, version: int) -> None:
    rec = record(store_dir, version)  # records 2 and 5 are the appends of commits 2 and 3
    damage_record(rec, how)
    expect_corruption(lambda: reopen(store_dir), rec)
    # A read-only open reports it too.
    expect_corruption(lambda: lamina.Store(store_dir, read_only=True).close(), rec)


def test_manifest_record_with_a_non_utf8_byte(store_dir: Path) -> None:
    rec = record(store_dir, 2)
    damage_record(rec, "binary")
    expect_corruption(lambda: reopen(store_dir), rec)


def test_missing_manifest_record_in_the_middle(store_dir: Path) -> None:
    record(store_dir, 3).unlink()
    expect_corruption(lambda: reopen(store_dir), record(store_dir, 4))


@pytest.mark.parametrize("how", ["digit", "truncated", "empty"])
def test_damaged_checkpoint(tmp_path: Path, how: str) -> None:
    root = tmp_path / "store"
    with lamina.Store(root, durable=False, auto_compact=False) as s:
        for i in range(105):  # a checkpoint every 100 manifest versions
            s.append(batch(3 * i, 3))
    checkpoints = sorted((root / "_log").glob("*.checkpoint.json"))
    assert checkpoints, sorted(p.name for p in (root / "_log").iterdir())
    damage_record(checkpoints[-1], how)
    # A checkpoint is derived from the records, which are still there: the store opens whole.
    with lamina.Store(root, read_only=True) as s:
        assert s.commits().num_rows == 105
        assert sorted(s.snapshot()["id"].to_pylist()) == list(range(315))
    with lamina.Store(root) as s:
        assert s.append(batch(315, 3)) == 106


# ---------------------------------------------------------------- batch views


# A batch view is derived data: when its file is damaged or missing, the store still opens, the
# view is served from the speed layer replaying its whole history (so answers stay exact), its
# status names the file, and the next recompute publishes a new one.


def expect_rebuilt(root: Path, vf: Path) -> None:
    with lamina.Store(root) as s:
        (v,) = s.status()["views"]
        assert v["warning"] and vf.name in v["warning"], v
        assert v["covered_commit"] == 0
        served = s.query("v")
        assert sum(served["events"].to_pylist()) == 1510
        every = pa.concat_tables([batch(0, 1000), batch(1000, 500), batch(1500, 10)])
        assert sum(served["tot"].to_pylist()) == sum(every["v"].to_pylist())
        assert s.batch_view("v").num_rows == 0
        assert s.recompute(progress=False) == 3
        (v,) = s.status()["views"]
        assert not v["warning"] and v["covered_commit"] == 3
        assert sum(s.batch_view("v")["events"].to_pylist()) == 1510
    with lamina.Store(root) as s:  # the repair is durable
        (v,) = s.status()["views"]
        assert not v["warning"] and v["covered_commit"] == 3


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_flipped_byte_in_a_published_batch_view(store_dir: Path, where: str) -> None:
    vf = view_file(store_dir)
    size = vf.stat().st_size
    flip(vf, {"start": 2, "middle": size // 2, "end": size - 6}[where])
    expect_rebuilt(store_dir, vf)


def test_truncated_batch_view(store_dir: Path) -> None:
    vf = view_file(store_dir)
    vf.write_bytes(vf.read_bytes()[:-100])
    expect_rebuilt(store_dir, vf)


def test_missing_batch_view(store_dir: Path) -> None:
    vf = view_file(store_dir)
    vf.unlink()
    expect_rebuilt(store_dir, vf)


def test_undamaged_copy_still_opens(store_dir: Path) -> None:
    """Control: the fixtures themselves are healthy, so the damage is what the tests detect."""
    with lamina.Store(store_dir) as s:
        assert sorted(s.snapshot()["id"].to_pylist()) == list(range(1510))
        assert sum(s.query("v")["events"].to_pylist()) == 1510


# ---------------------------------------------------------------- damage the checksum cannot see
# A file whose bytes are wrong but whose checksum matches (the damage happened before the checksum
# was taken, a CRC-32 collision, or a writer bug). Checksums cannot catch it; the decoder must still
# report it as corruption, never panic and never serve silently wrong rows.


def forge(root: Path, rel: str, data: bytes) -> None:
    """Replace the file `rel` with `data` and re-sign every manifest record that references it."""
    (root / rel).write_bytes(data)
    found = False

    def fix(o: object) -> None:
        nonlocal found
        if isinstance(o, dict):
            if o.get("file") == rel:
                o["bytes"], o["crc32"] = len(data), zlib.crc32(data)
                found = True
            for v in o.values():
                fix(v)
        elif isinstance(o, list):
            for v in o:
                fix(v)

    for rec in sorted((root / "_log").glob("*.json")):
        body, _crc = rec.read_bytes().split(b"\n")[:2]
        j = json.loads(body)
        fix(j)
        new = json.dumps(j, separators=(",", ":")).encode()
        rec.write_bytes(new + b"\n" + f"{zlib.crc32(new):08x}".encode() + b"\n")
    assert found, f"no manifest record references {rel}"


def with_bad_arrow_schema(path: Path) -> bytes:
    """The Parquet file at `path` with the bit width of an int64 in its embedded Arrow schema set
    to 63: the same length, a valid footer, but an Arrow type that does not exist."""
    raw = path.read_bytes()
    b64 = pq.read_metadata(path).metadata[b"ARROW:schema"]
    assert raw.count(b64) == 1
    ipc = base64.b64decode(b64)
    for i in range(len(ipc) - 3):
        if ipc[i : i + 4] == b"\x40\x00\x00\x00":  # 64, little-endian
            patched = ipc[:i] + b"\x3f" + ipc[i + 1 :]
            try:
                pa.ipc.read_schema(pa.py_buffer(patched))
            except Exception:  # pyarrow refuses it: we hit a bit width
                new = base64.b64encode(patched)
                assert len(new) == len(b64)
                return raw.replace(b64, new)
    raise AssertionError("no int64 bit width found in the embedded Arrow schema")


def test_damage_behind_a_valid_checksum_never_panics(plain_dir: Path) -> None:
    seg = segment(plain_dir, 1)
    forge(plain_dir, f"segments/{seg.name}", with_bad_arrow_schema(seg))
    expect_corruption(lambda: open_and_read(plain_dir), seg)


def test_segment_with_fewer_rows_than_the_manifest_says(plain_dir: Path) -> None:
    seg1, seg3 = segment(plain_dir, 1), segment(plain_dir, 3)
    forge(plain_dir, f"segments/{seg1.name}", seg3.read_bytes())  # 10 rows where 1000 belong
    expect_corruption(lambda: open_and_read(plain_dir), seg1)


def test_segment_with_a_foreign_schema(store_dir: Path) -> None:
    seg1 = segment(store_dir, 1)
    forge(store_dir, f"segments/{seg1.name}", view_file(store_dir).read_bytes())
    expect_corruption(lambda: open_and_read(store_dir), seg1)


def test_batch_view_with_a_foreign_schema(store_dir: Path) -> None:
    vf = view_file(store_dir)
    rel = str(vf.relative_to(store_dir))
    forge(store_dir, rel, segment(store_dir, 1).read_bytes())
    expect_rebuilt(store_dir, vf)


# ---------------------------------------------------------------- (from test_core_v2.py)


def view_status(store: lamina.Store, name: str) -> dict:
    found = [v for v in store.status()["views"] if v["name"] == name]
    assert len(found) == 1, store.status()["views"]
    return found[0]


def test_missing_batch_view_is_served_from_the_speed_layer_and_repaired(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with lamina.Store(path) as store:
        store.append(core_batch(0, 100))
        store.append(core_batch(100, 50))
        store.define(view())
        store.recompute(progress=False)
        store.append(core_batch(150, 10))
        before = served_groups(store.query("v"))
        assert not view_status(store, "v").get("warning")
    # The batch view's file (the close also saved the speed state of commit 3 beside it).
    files = [f for f in (path / "views").rglob("*.parquet") if not f.name.startswith("speed-")]
    assert len(files) == 1, files
    files[0].unlink()
    with lamina.Store(path) as store:  # must open
        assert served_groups(store.query("v")) == before, "served answers changed with the batch view gone"
        assert_matches_oracle(store, what="served without the batch view")
        assert total(store.speed_view("v")) == 160, "the speed layer must replay the whole history"
        warning = view_status(store, "v").get("warning")
        assert isinstance(warning, str) and warning, f"status() must warn about the view: {warning!r}"
        store.recompute(progress=False)
        assert not view_status(store, "v").get("warning"), "recompute() must repair the view"
        assert total(store.batch_view("v")) == 160
        assert_matches_oracle(store, what="served after the repair")
    assert len(list((path / "views").rglob("*.parquet"))) >= 1
    with lamina.Store(path) as store:
        assert not view_status(store, "v").get("warning")
        assert served_groups(store.query("v")) == before


def test_damaged_newest_checkpoint_falls_back_to_the_records(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with lamina.Store(path, durable=False, auto_compact=False) as store:
        for i in range(150):
            assert store.append(core_batch(3 * i, 3)) == i + 1
    log = path / "_log"

    def version(p: Path) -> int:
        return int(p.name.split(".")[0])

    checkpoints = sorted(log.glob("*.checkpoint.json"), key=version)
    records = {version(p) for p in log.glob("*.json") if not p.name.endswith(".checkpoint.json")}
    assert checkpoints, f"no checkpoint after 150 commits: {sorted(p.name for p in log.iterdir())}"
    previous = version(checkpoints[-2]) if len(checkpoints) > 1 else 0
    assert set(range(previous + 1, max(records) + 1)) <= records, (
        "the records after the previous checkpoint must still be there"
    )
    data = bytearray(checkpoints[-1].read_bytes())
    data[len(data) // 3] ^= 0x01
    checkpoints[-1].write_bytes(bytes(data))
    with lamina.Store(path) as store:
        assert store.commits()["commit"].to_pylist() == list(range(1, 151))
        assert ids(store.snapshot()) == list(range(450))
        assert ids(store.snapshot(commit=100)) == list(range(300))
        assert store.append(core_batch(450, 3)) == 151
    with lamina.Store(path, read_only=True) as reader:
        assert reader.commits().num_rows == 151
