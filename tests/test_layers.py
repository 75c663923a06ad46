"""The three layers against independent oracles (DuckDB, math.fsum) on generated data."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import lamina

from conftest import START, assert_same, full_view, make_events, oracle

BY = ["country", "page"]


def test_batch_view_matches_duckdb(store):
    ev = make_events(20_000, seed=1)
    for chunk in range(0, ev.num_rows, 3_000):  # many segments
        store.append(ev.slice(chunk, 3_000))
    store.define(full_view())
    covered = store.recompute(progress=False)
    assert covered == store.commits().num_rows
    batch = store.batch_view("traffic")
    assert_same(batch, oracle(ev, "1h", BY), BY)
    assert all(batch["users_exact"].to_pylist())
    assert batch["users"] == batch["users_lower"] and batch["users"] == batch["users_upper"]


def test_result_is_independent_of_threads_and_layout():
    ev = make_events(30_000, seed=2)
    answers = []
    for threads, step in [(1, 30_000), (2, 1_000), (4, 7_777)]:
        with lamina.Store(auto_compact=False) as s:
            for i in range(0, ev.num_rows, step):
                s.append(ev.slice(i, step))
            s.define(full_view())
            s.recompute(threads=threads, progress=False)
            answers.append(s.batch_view("traffic"))
    assert answers[0].equals(answers[1]) and answers[0].equals(answers[2])


def test_speed_layer_before_any_recompute_is_exact_for_additive(store):
    ev = make_events(5_000, seed=3)
    store.append(ev)
    store.define(full_view())
    served = store.query("traffic")
    expected = oracle(ev, "1h", BY)
    speed = store.speed_view("traffic")
    assert speed.equals(served)
    assert len(served) == len(expected)
    for a, e in zip(served.to_pylist(), expected, strict=True):
        for m in ("events", "units", "low", "high", "amounts", "revenue", "avg"):
            assert a[m] == e[m]
        # Sketch values carry bounds that hold the truth.
        assert a["users_lower"] <= e["users"] <= a["users_upper"]
        # Only a group whose ids are all null (nothing sketched) is exact: zero.
        assert a["users_exact"] == (e["users"] == 0)


def test_served_merge_counts_late_events_once(store):
    first = make_events(10_000, seed=4)
    store.append(first)
    store.define(full_view())
    store.recompute(progress=False)
    # Late events: their times fall in buckets the batch view already covers.
    late = make_events(3_000, seed=5)
    store.append(late)
    store.append(make_events(2_000, seed=6, start=START + dt.timedelta(days=3)))
    everything = store.snapshot()
    assert everything.num_rows == 15_000
    served = store.query("traffic")
    expected = oracle(everything, "1h", BY)
    assert len(served) == len(expected)
    for a, e in zip(served.to_pylist(), expected, strict=True):
        for m in ("events", "units", "low", "high", "amounts", "revenue", "avg", "avg_qty"):
            assert a[m] == e[m], (m, a, e)
        if a["users_exact"]:
            assert a["users"] == e["users"]
        else:
            assert a["users_lower"] <= e["users"] <= a["users_upper"]
    # Groups only the batch layer holds are exact; touched groups are marked approximate.
    speed_keys = {
        (r["bucket"], r["country"], r["page"])
        for r in store.speed_view("traffic").to_pylist()
        if r["users"] > 0
    }
    for r in served.to_pylist():
        assert r["users_exact"] == ((r["bucket"], r["country"], r["page"]) not in speed_keys)
    # A recompute absorbs everything: exact again, speed layer empty.
    store.recompute(progress=False)
    assert store.speed_view("traffic").num_rows == 0
    assert_same(store.query("traffic"), expected, BY)


@pytest.mark.parametrize("grain", ["6h", "1d"])
def test_rollup_grain_and_dims(store, grain):
    ev = make_events(8_000, seed=7)
    store.append(ev.slice(0, 5_000))
    store.define(full_view())
    store.recompute(progress=False)
    store.append(ev.slice(5_000))
    got = store.query("traffic", grain=grain, by=["country"])
    expected = oracle(ev, grain, ["country"])
    assert len(got) == len(expected)
    for a, e in zip(got.to_pylist(), expected, strict=True):
        for m in ("events", "units", "low", "high", "amounts", "revenue", "avg"):
            assert a[m] == e[m], (m, a, e)
        assert a["users_lower"] <= e["users"] <= a["users_upper"]


def test_time_range_and_filters(store):
    ev = make_events(6_000, seed=8)
    store.append(ev)
    store.define(full_view())
    store.recompute(progress=False)
    start, end = START + dt.timedelta(hours=5), START + dt.timedelta(hours=30)
    got = store.query(
        "traffic", start=start, end=end, where={"country": ["DE", "日本"], "page": {">=": "/c"}}
    )
    rows = [
        r
        for r in oracle(ev, "1h", BY)
        if start.replace(tzinfo=dt.UTC) <= r["bucket"] < end.replace(tzinfo=dt.UTC)
        and r["country"] in ("DE", "日本")
        and r["page"] is not None
        and r["page"] >= "/c"
    ]
    assert_same(got, rows, BY)
    assert len(rows) > 10


def test_view_row_filter_and_redefinition(store):
    ev = make_events(6_000, seed=9)
    store.append(ev)
    store.define(full_view(where={"country": ["DE", "FR"]}))
    store.recompute(progress=False)
    assert_same(store.batch_view("traffic"), oracle(ev, "1h", BY, "country IN ('DE', 'FR')"), BY)
    # Fix the "bug": the definition changes, so the old batch view is no longer served.
    before = store.status()["views"][0]["fingerprint"]
    assert store.define(full_view(where={"country": ["DE", "FR", "US"]}))
    assert store.status()["views"][0]["fingerprint"] != before
    assert store.batch_view("traffic").num_rows == 0
    store.recompute(progress=False)
    assert_same(store.query("traffic"), oracle(ev, "1h", BY, "country IN ('DE', 'FR', 'US')"), BY)
    assert not store.define(full_view(where={"country": ["DE", "FR", "US"]}))


def test_persistent_store_reopens_with_views_and_speed_state(tmp_path):
    ev = make_events(4_000, seed=10)
    with lamina.Store(tmp_path / "w") as s:
        s.append(ev.slice(0, 3_000))
        s.define(full_view())
        s.recompute(progress=False)
        s.append(ev.slice(3_000))
        before = s.query("traffic")
    with lamina.Store(tmp_path / "w") as s:
        after = s.query("traffic")
        assert after.equals(before)
        st = s.status()["views"][0]
        assert st["covered_commit"] == 1 and st["pending_commits"] == 1 and st["speed_rows"] == 1_000


def test_empty_view_has_stable_schema(store):
    store.append(make_events(10, seed=11))
    store.define(full_view(where={"country": "nowhere"}))
    t = store.query("traffic")
    assert t.num_rows == 0
    assert t.schema.names[:3] == ["bucket", "country", "page"]
    assert t.schema.field("bucket").type == pa.timestamp("us", tz="UTC")
    assert t.schema.field("users_exact").type == pa.bool_()
    store.recompute(progress=False)
    assert store.batch_view("traffic").schema.equals(t.schema)


def test_integer_sum_overflow_is_an_error(store):
    big = pa.table({"ts": pa.array([START, START], pa.timestamp("us")), "v": pa.array([2**62, 2**62])})
    store.append(big)
    store.define(
        lamina.View("v", time="ts", grain="1h", metrics={"s": lamina.sum("v"), "m": lamina.mean("v")})
    )
    with pytest.raises(lamina.SumOverflowError, match="overflows int64"):
        store.query("v")


def test_outputs_are_arrow_for_polars_and_duckdb(store):
    import duckdb
    import polars as pl

    store.append(pl.from_arrow(make_events(500, seed=12)))
    store.define(full_view())
    t = store.query("traffic")
    assert pl.from_arrow(t).height == t.num_rows
    assert duckdb.sql("select sum(events) from t").fetchall()[0][0] == 500


def test_many_small_appends_are_compacted_and_time_travel_still_works(tmp_path):
    ev = make_events(1_200, seed=13)
    with lamina.Store(tmp_path / "small", durable=False) as s:
        for i in range(0, ev.num_rows, 3):  # 400 commits of 3 rows
            s.append(ev.slice(i, 3))
        st = s.status()
        assert st["latest_commit"] == 400
        # Runs of small segments are rewritten: far fewer files than commits.
        assert st["segments"] <= 40, st["segments"]
        assert s.snapshot().equals(ev.combine_chunks()) or s.snapshot().to_pylist() == ev.to_pylist()
        for k in (1, 17, 250, 399):
            assert s.snapshot(commit=k).to_pylist() == ev.slice(0, 3 * k).to_pylist()
        s.compact()
        assert s.status()["segments"] < st["segments"] or st["segments"] == 1
        assert s.snapshot(commit=123).to_pylist() == ev.slice(0, 369).to_pylist()


def test_repeated_queries_see_every_new_commit(store):
    """Served answers are cached between commits; every append and publish must show at once."""
    store.append(make_events(300, seed=20))
    store.define(full_view())
    total = 300
    for i in range(6):
        for kw in ({}, {"grain": "1d", "by": []}):
            assert pc.sum(store.query("traffic", **kw)["events"]).as_py() == total
        if i % 2:
            store.recompute(progress=False)
        n = 50 + i
        store.append(make_events(n, seed=30 + i))
        total += n
    assert pc.sum(store.query("traffic")["events"]).as_py() == total


# ---------------------------------------------------------------- (from test_performance_v2.py)


performance_BY = ["country", "page"]


EXACT = ("events", "units", "low", "high", "amounts")


def check_served(served: pa.Table, expected: list[dict]) -> None:
    """Every exact metric equal to the oracle; float sums bit-identical to math.fsum; distinct
    counts exact where marked exact, otherwise inside their bounds."""
    got = served.to_pylist()
    assert len(got) == len(expected)
    for a, e in zip(got, expected, strict=True):
        assert [a[k] for k in ("bucket", *performance_BY)] == [e[k] for k in ("bucket", *performance_BY)]
        for m in EXACT:
            assert a[m] == e[m], (m, a, e)
        for m in ("revenue", "avg", "avg_qty"):
            assert a[m] == e[m], (m, a[m], e[m])
        if a["users_exact"]:
            assert a["users"] == e["users"]
        else:
            assert a["users_lower"] <= e["users"] <= a["users_upper"], (a, e)


def test_served_answers_stay_exact_across_small_commits_with_late_events() -> None:
    base = make_events(3_000, seed=11)
    with lamina.Store() as store:
        store.append(base)
        store.define(full_view())
        store.recompute(progress=False)
        store.query("traffic")  # from here on the merged state is kept and folded into
        seen = [base]
        rng = np.random.default_rng(5)
        for i in range(25):
            # Sizes from one row up, and late events: some commits land days before the others.
            n = int(rng.choice([1, 3, 40, 300]))
            late = i % 4 == 0
            batch = make_events(n, seed=100 + i, start=START - dt.timedelta(days=2) if late else START)
            store.append(batch)
            seen.append(batch)
            events = pa.concat_tables(seen)
            check_served(store.query("traffic"), oracle(events, "1h", performance_BY))
            # A narrow query (time range and a filter) selects from the kept merged state.
            lo, hi = START + dt.timedelta(hours=5), START + dt.timedelta(days=1)
            narrow = store.query("traffic", start=lo, end=hi, where={"country": ["日本", ""]})
            mask = pc.and_(
                pc.and_(
                    pc.greater_equal(events["ts"], pa.scalar(lo, pa.timestamp("us"))),
                    pc.less(events["ts"], pa.scalar(hi, pa.timestamp("us"))),
                ),
                pc.is_in(events["country"], pa.array(["日本", ""])),
            )
            check_served(narrow, oracle(events.filter(mask), "1h", performance_BY))
        # After a recompute everything is exact again, and equal to the oracle.
        store.recompute(progress=False)
        assert_same(
            store.query("traffic"), oracle(pa.concat_tables(seen), "1h", performance_BY), performance_BY
        )


def test_a_many_group_recompute_does_not_depend_on_the_thread_count(tmp_path) -> None:
    # Minute buckets over three days: about 100,000 groups, past the size at which metrics are
    # merged, evaluated and persisted in parallel.
    events = make_events(150_000, seed=21)
    view = full_view(grain="1m")
    answers = []
    for threads in (1, 2, 3):
        with lamina.Store(tmp_path / f"t{threads}") as store:
            for part in range(3):  # three segments: partial states of several workers
                store.append(events.slice(part * 50_000, 50_000))
            store.define(view)
            store.recompute(threads=threads, progress=False)
            assert store.status()["views"][0]["batch_groups"] > 50_000
            answers.append(store.batch_view("traffic"))
        # The published file loads back to the same answer.
        with lamina.Store(tmp_path / f"t{threads}") as store:
            assert store.batch_view("traffic").equals(answers[-1])
    assert answers[0].equals(answers[1]) and answers[0].equals(answers[2])
    assert_same(answers[0], oracle(events, "1m", performance_BY), performance_BY)


def test_last_recompute_reports_where_the_time_went() -> None:
    with lamina.Store() as store:
        assert store.status()["last_recompute"] is None
        store.append(make_events(5_000, seed=3))
        store.define(full_view())
        store.define(full_view("daily", grain="1d", by=("country",)))
        store.recompute(progress=False)
        st = store.status()
        last = st["last_recompute"]
        assert last["rows"] == st["rows"] == 5_000
        assert last["views"] == 2
        assert last["snapshot"] == st["latest_commit"]
        assert last["threads"] >= 1 and last["seconds"] > 0
        for phase in ("read", "decode", "group", "fold count", "fold float sum", "fold int sum",
                      "fold float min/max", "fold distinct", "sketch", "sort+state", "state: sort",
                      "state: keys", "state: float sum", "state: distinct", "encode",
                      "write+fsync", "commit"):  # fmt: skip
            assert last["phases"][phase] >= 0, phase
        # The view's mean of amount is its sum of amount's state: folded and persisted once.
        assert "fold mean" not in last["phases"] and "state: mean" not in last["phases"]
        assert "last recompute" in st._repr_html_()


def test_a_reopened_store_loads_its_saved_speed_state_and_matches_the_oracle(tmp_path) -> None:
    """Cold start: a close saves each view's speed state, and the next open loads it instead of
    replaying those commits; commits after it (a crash, another writer) are replayed on top."""
    path = tmp_path / "s"
    parts = [make_events(n, seed=40 + i) for i, n in enumerate((2_000, 700, 1, 350))]
    with lamina.Store(path) as store:
        store.append(parts[0])
        store.define(full_view())
        store.recompute(progress=False)
        for p in parts[1:3]:
            store.append(p)
        assert store.status()["views"][0]["speed_saved"] is None  # saved at close only
    with lamina.Store(path) as store:
        assert store.status()["views"][0]["speed_saved"] == (2, 3)
        check_served(store.query("traffic"), oracle(pa.concat_tables(parts[:3]), "1h", performance_BY))
        store.append(parts[3])
        with lamina.Store(path, read_only=True) as reader:  # loads 2..3, replays 4
            check_served(reader.query("traffic"), oracle(pa.concat_tables(parts), "1h", performance_BY))
        store.recompute(progress=False)  # the batch view now covers it all: nothing is saved
        assert store.status()["views"][0]["speed_saved"] is None
    with lamina.Store(path) as store:
        assert store.status()["views"][0]["speed_saved"] is None
        assert_same(
            store.query("traffic"), oracle(pa.concat_tables(parts), "1h", performance_BY), performance_BY
        )
