"""The batch layer beyond one process: the partial-state protocol and `recompute(executor=...)` on
a real dask.distributed LocalCluster (2 worker processes, loopback only) and on
concurrent.futures executors. The oracle is the local recompute of a twin store fed the same
commits: the published batch view files must be identical, hidden state columns included."""

from __future__ import annotations

import concurrent.futures as cf
import math
import random
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lamina
import lamina.distributed
from lamina.distributed import KILL_ONCE_ENV

from conftest import make_events

distributed = pytest.importorskip("distributed")


def every_metric_view(name: str = "v") -> lamina.View:
    return lamina.View(
        name,
        time="ts",
        grain="1h",
        by=["country"],
        metrics={
            "events": lamina.count(),
            "with_amount": lamina.count("amount"),
            "amount": lamina.sum("amount"),
            "qty": lamina.sum("qty"),
            "avg": lamina.mean("amount"),
            "lo": lamina.min("amount"),
            "hi": lamina.max("big"),
            "users": lamina.count_distinct("user_id"),
            "pages": lamina.count_distinct("page"),
            "p50": lamina.quantile("amount", 0.5),
            "p99": lamina.quantile("amount", 0.99),
            "top_pages": lamina.top_k("page", 3),
        },
    )


def commits(n_commits: int = 6, rows: int = 4_000) -> list[pa.Table]:
    """Commits with nulls, unicode keys, out-of-order and late events, uint64 values above 2**63
    and float sums that cancel (naive summation in another order gives another answer)."""
    out = []
    for i in range(n_commits):
        t = make_events(rows, seed=100 + i, days=2.0)
        rng = np.random.default_rng(i)
        big = pa.array(rng.integers(2**63, 2**64 - 1, len(t), dtype=np.uint64), mask=rng.random(len(t)) < 0.1)
        t = t.append_column("big", big)
        # Late events: the last commit revisits the first hours.
        if i == n_commits - 1:
            t = t.set_column(0, "ts", pa.compute.subtract(t["ts"], pa.scalar(np.timedelta64(3600, "s"))))
        amount = t["amount"].to_pylist()
        amount[:3] = [1e16, 1.0, -1e16]
        t = t.set_column(t.schema.get_field_index("amount"), "amount", pa.array(amount, pa.float64()))
        out.append(t)
    return out


def fill(path: Path, data: list[pa.Table], view: lamina.View) -> lamina.Store:
    s = lamina.Store(str(path))
    s.define(view)
    for t in data:
        s.append(t)
    return s


def view_files(store: lamina.Store) -> list[Path]:
    """The published batch view files (public and hidden state columns), by view."""
    return sorted(Path(store.path, "views").rglob("*.parquet"), key=lambda p: p.parent.name)


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=50,
    )
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def uint_view() -> lamina.View:
    # uint64 sums overflow int64 with values above 2**63, so the sum view reads small values.
    return lamina.View(
        "u",
        time="ts",
        grain="1d",
        by=["flag"],
        metrics={
            "n": lamina.count(),
            "hi": lamina.max("big"),
            "lo": lamina.min("big"),
            "ids": lamina.count_distinct("big"),
        },
    )


@pytest.fixture(scope="module")
def data():
    return commits()


def test_dask_recompute_is_identical_to_the_local_one(tmp_path, client, data):
    view = every_metric_view()
    local = fill(tmp_path / "local", data, view)
    remote = fill(tmp_path / "remote", data, view)
    local.define(uint_view())
    remote.define(uint_view())
    assert local.recompute(progress=False) == remote.recompute(executor=client, progress=False) == len(data)
    for name in ("v", "u"):
        assert local.batch_view(name).equals(remote.batch_view(name)), name
    # Bit for bit: the published files, hidden state columns (exact sums, sketches) included.
    a_files, b_files = view_files(local), view_files(remote)
    assert len(a_files) == len(b_files) == 2
    for fa, fb in zip(a_files, b_files, strict=True):
        ta, tb = pq.read_table(fa), pq.read_table(fb)
        assert any(n.startswith("__") for n in ta.schema.names)
        assert ta.equals(tb), fa.name
        assert fa.read_bytes() == fb.read_bytes(), fa.name
    # And against an independent oracle: DuckDB over all rows.
    con = duckdb.connect()
    rows = pa.concat_tables(data)
    con.register("t", rows)
    want = con.sql("select count(*) as n, sum(qty) as q, count(distinct user_id) as u from t").fetchall()[0]
    got = remote.batch_view("v")
    assert sum(got["events"].to_pylist()) == want[0]
    assert sum(x or 0 for x in got["qty"].to_pylist()) == want[1]
    whole = remote.query("v", by=[], grain="1h")
    assert len(whole) > 0
    local.close()
    remote.close()


def test_a_worker_killed_mid_recompute_still_gives_the_exact_answer(tmp_path, client, data):
    view = lamina.View(
        "v",
        time="ts",
        grain="1h",
        by=["country"],
        metrics={
            "n": lamina.count(),
            "amount": lamina.sum("amount"),
            "users": lamina.count_distinct("user_id"),
            "p90": lamina.quantile("amount", 0.9),
        },
    )
    local = fill(tmp_path / "local", data, view)
    remote = fill(tmp_path / "remote", data, view)
    local.recompute(progress=False)
    marker = tmp_path / "killed"
    # exec runs in the worker process itself (a bound method of os.environ would be pickled
    # and set a copy).
    client.run(exec, f"import os; os.environ[{KILL_ONCE_ENV!r}] = {str(marker)!r}")
    try:
        before = set(client.scheduler_info()["workers"])
        remote.recompute(executor=client, progress=False)
    finally:
        client.run(exec, f"import os; os.environ.pop({KILL_ONCE_ENV!r}, None)")
    assert marker.exists(), "no worker was killed"
    client.wait_for_workers(2, timeout=60)
    # The nanny restarted the killed worker: a new worker address joined.
    assert set(client.scheduler_info()["workers"]) != before
    assert local.batch_view("v").equals(remote.batch_view("v"))
    local.close()
    remote.close()


@pytest.mark.parametrize("kind", ["threads", "processes"])
def test_concurrent_futures_executors_give_the_same_answer(tmp_path, data, kind):
    view = every_metric_view()
    view = lamina.View("v", time="ts", grain="1h", by=["country", "page"], metrics=view.metrics)
    local = fill(tmp_path / "local", data, view)
    remote = fill(tmp_path / "remote", data, view)
    local.recompute(progress=False)
    pool = cf.ThreadPoolExecutor(3) if kind == "threads" else cf.ProcessPoolExecutor(2)
    seen = []
    with pool:
        remote.recompute(executor=pool, progress=lambda done, total: seen.append((done, total)))
    assert local.batch_view("v").equals(remote.batch_view("v"))
    assert seen and seen[-1][0] == seen[-1][1] == sum(len(t) for t in data)
    local.close()
    remote.close()


def test_an_interrupted_distributed_recompute_publishes_nothing(tmp_path, data):
    s = fill(tmp_path / "s", data[:2], every_metric_view())
    s.recompute(progress=False)
    s.append(data[2])

    def interrupt(done, total):
        raise KeyboardInterrupt

    with cf.ThreadPoolExecutor(2) as pool, pytest.raises(KeyboardInterrupt):
        s.recompute(executor=pool, progress=interrupt)
    assert s.status()["views"][0]["covered_commit"] == 2
    # The next recompute publishes as usual.
    with cf.ThreadPoolExecutor(2) as pool:
        assert s.recompute(executor=pool, progress=False) == 3
    assert s.status()["views"][0]["covered_commit"] == 3
    s.close()


def test_a_damaged_segment_fails_the_distributed_recompute_and_names_the_file(tmp_path, data):
    s = fill(tmp_path / "s", data[:2], every_metric_view())
    seg = sorted(Path(s.path).rglob("*.parquet"))[0]
    raw = bytearray(seg.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    seg.write_bytes(bytes(raw))
    with cf.ThreadPoolExecutor(2) as pool, pytest.raises(lamina.CorruptionError, match=seg.name):
        s.recompute(executor=pool, progress=False)
    assert s.status()["views"][0]["covered_commit"] == 0
    s.close()


def test_empty_store_and_bad_executor(tmp_path):
    s = lamina.Store(str(tmp_path / "s"))
    s.define(every_metric_view())
    with cf.ThreadPoolExecutor(1) as pool:
        assert s.recompute(executor=pool, progress=False) == 0
    with pytest.raises(lamina.InvalidArgumentError, match="executor"):
        s.recompute(executor=object(), progress=False)
    s.close()


# ------------------------------------------------------------------ the protocol, any engine


def oracle_view() -> lamina.View:
    return lamina.View(
        "p",
        time="ts",
        grain="1d",
        by=["country"],
        metrics={
            "n": lamina.count(),
            "amount": lamina.sum("amount"),
            "qty": lamina.sum("qty"),
            "users": lamina.count_distinct("user_id"),
            "lo": lamina.min("amount"),
            "p50": lamina.quantile("amount", 0.5),
            "top": lamina.top_k("page", 2),
        },
    )


def test_partial_states_finalize_to_the_duckdb_answer():
    t = make_events(3_000, seed=5)
    part = lamina.partial_states(oracle_view(), t)
    assert part.schema.metadata[b"lamina.partial"]
    assert part.schema.field("users").metadata[b"lamina.state"] == b"count_distinct/1"
    got = lamina.finalize_partial_states(part)
    con = duckdb.connect()
    con.register("t", t)
    want = con.sql(
        """select time_bucket(interval 1 day, ts, timestamp '1970-01-01') as b, country,
                  count(*) n, sum(qty) q, count(distinct user_id) u, min(amount) lo,
                  quantile_cont(amount, 0.5) p50, sum(amount) a
           from t group by all order by b, country nulls last"""
    ).fetchall()
    rows = sorted(got.to_pylist(), key=lambda r: (r["bucket"], r["country"] is None, r["country"] or ""))
    assert len(rows) == len(want)
    for r, w in zip(rows, want, strict=True):
        assert (r["n"], r["qty"], r["users"], r["lo"]) == (w[1 + 1], w[3], w[4], w[5])
        assert r["p50"] == pytest.approx(w[6], rel=1e-12, abs=1e-12)
        vals = (
            t.filter(
                pa.compute.and_(
                    pa.compute.equal(
                        pa.compute.floor_temporal(t["ts"], unit="day"), pa.scalar(w[0], pa.timestamp("us"))
                    ),
                    pa.compute.equal(t["country"], w[1])
                    if w[1] is not None
                    else pa.compute.is_null(t["country"]),
                )
            )["amount"]
            .drop_null()
            .to_pylist()
        )
        assert r["amount"] == math.fsum(vals)
        assert r["users_exact"] and r["p50_exact"] and r["top_exact"]


def test_partial_state_errors_are_typed_and_name_the_problem():
    t = make_events(100, seed=1)
    view = oracle_view()
    with pytest.raises(lamina.NotFoundError, match="user_id"):
        lamina.partial_states(view, t.drop_columns(["user_id"]))
    part = lamina.partial_states(view, t)
    other = lamina.partial_states(lamina.View("q", time="ts", grain="1d", metrics={"n": lamina.count()}), t)
    with pytest.raises(lamina.InvalidArgumentError, match="different views"):
        lamina.merge_partial_states([part, other])
    with pytest.raises(lamina.InvalidArgumentError, match="not a lamina partial"):
        lamina.finalize_partial_states(t)
    with pytest.raises(lamina.InvalidArgumentError):
        lamina.merge_partial_states([])
    # A damaged state value: a CorruptionError naming the column and the row, never a panic.
    col = part.column("users").combine_chunks()
    damaged = pa.array([v[: len(v) // 2] for v in col.to_pylist()], pa.binary())
    i = part.schema.get_field_index("users")
    bad = part.set_column(i, part.schema.field(i), damaged)
    with pytest.raises(lamina.CorruptionError, match=r'"users", row 0'):
        lamina.finalize_partial_states(bad)
    # Key columns that are not bucket starts of the view's grain: refused, never misread.
    i = part.schema.get_field_index("bucket")
    for bucket, match in [
        (pa.array([None] * part.num_rows, pa.timestamp("us", tz="UTC")), "null"),
        (part.column("bucket").cast(pa.timestamp("ns", tz="UTC")), "not timestamp"),
        (pa.compute.add(part.column("bucket"), pa.scalar(1_000_000, pa.duration("us"))), "not the start"),
    ]:
        field = part.schema.field(i).with_type(bucket.type).with_nullable(True)
        with pytest.raises(lamina.CorruptionError, match=match):
            lamina.finalize_partial_states(part.set_column(i, field, bucket))
    with pytest.raises(lamina.InvalidArgumentError, match="part 0"):
        lamina.merge_partial_states([5])
    # Unknown protocol versions are refused, not misread.
    meta = dict(part.schema.metadata)
    meta[b"lamina.partial"] = meta[b"lamina.partial"].replace(b'"format":1', b'"format":99')
    with pytest.raises(lamina.InvalidArgumentError, match="format 99"):
        lamina.finalize_partial_states(part.replace_schema_metadata(meta))


row = st.tuples(
    st.integers(0, 3 * 86_400 * 10**6),
    st.one_of(st.none(), st.sampled_from(["DE", "日本", "", "🙂", "ü"])),
    st.one_of(st.none(), st.floats(width=64), st.sampled_from([1e16, -1e16, 1.0, -0.0])),
    st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    st.one_of(st.none(), st.sampled_from(["/", "/a", "ß", "/a"])),
    st.one_of(st.none(), st.integers(-1000, 1000)),
)


def rows_table(rows: list[tuple]) -> pa.Table:
    cols = list(zip(*rows, strict=True)) if rows else [[]] * 6
    return pa.table(
        {
            "ts": pa.array(cols[0], pa.timestamp("us")),
            "country": pa.array(cols[1], pa.string()),
            "amount": pa.array(cols[2], pa.float64()),
            "user_id": pa.array(cols[3], pa.int64()),
            "page": pa.array(cols[4], pa.string()),
            "qty": pa.array(cols[5], pa.int64()),
        }
    )


@given(
    rows=st.lists(row, max_size=150),
    cuts=st.lists(st.integers(0, 150), max_size=6),
    seed=st.integers(0, 2**32),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_merged_partial_states_equal_the_single_pass_state(rows, cuts, seed):
    """Any split of the rows, partial states merged in a random tree, finalizes to exactly
    what one pass over all rows gives (floats with cancellation, NaN, -0.0, nulls, unicode)."""
    view = oracle_view()
    view = lamina.View(
        "p",
        time="ts",
        grain="1h",
        by=["country"],
        metrics={
            **view.metrics,
            "hi": lamina.max("amount"),
            "avg": lamina.mean("amount"),
            "p9": lamina.quantile("amount", 0.9),
        },
    )
    t = rows_table(rows)
    whole = lamina.finalize_partial_states(lamina.partial_states(view, t))
    bounds = sorted({0, len(rows), *(min(c, len(rows)) for c in cuts)})
    parts = [lamina.partial_states(view, t.slice(a, b - a)) for a, b in zip(bounds, bounds[1:], strict=False)]
    if not parts:
        parts = [lamina.partial_states(view, t)]
    rng = random.Random(seed)
    rng.shuffle(parts)
    while len(parts) > 1:
        i = rng.randrange(len(parts) - 1)
        k = rng.randint(2, 3)
        parts[i : i + k] = [lamina.merge_partial_states(parts[i : i + k])]
    got = lamina.finalize_partial_states(parts[0])
    # repr: NaN equals NaN, and -0.0 differs from 0.0 (bit for bit).
    assert got.schema == whole.schema
    assert repr(got.to_pylist()) == repr(whole.to_pylist())


def test_a_view_redefined_during_a_staged_recompute_is_not_blamed_for_the_stale_result(tmp_path) -> None:
    """The stale plan's result (here: an integer sum that overflows) is dropped, not recorded
    as the redefined view's error."""
    s = lamina.Store(str(tmp_path / "s"))
    s.define(lamina.View("v", time="ts", grain="1d", metrics={"s": lamina.sum("qty")}))
    s.append(pa.table({"ts": pa.array([0, 1], pa.timestamp("us")), "qty": pa.array([2**62, 2**62])}))
    job = s._core.begin_recompute(None, None)
    parts = lamina.distributed.run_task(job.spec, [0])
    s.define(lamina.View("v", time="ts", grain="1d", metrics={"n": lamina.count()}))
    assert job.publish([parts]) == 1  # no error: the stale view's result is dropped
    (v,) = s.status()["views"]
    assert v["batch_error"] is None and v["covered_commit"] == 0
    assert s.query("v")["n"].to_pylist() == [2]
    s.close()
