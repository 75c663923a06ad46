"""Performance v2 changed how answers are built, never what they are. These tests check the new
paths against independent oracles (DuckDB, math.fsum):

* the serving layer keeps the merged state (batch + speed) across small commits and folds each
  commit's rows into it, and narrow queries select from it;
* a recompute with many groups merges, evaluates and persists its metrics in parallel, with one
  partial state per worker, and must not depend on the thread count;
* ``status()["last_recompute"]`` reports where a recompute's time went.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import lamina

from conftest import START, assert_same, full_view, make_events, oracle

BY = ["country", "page"]
EXACT = ("events", "units", "low", "high", "amounts")


def check_served(served: pa.Table, expected: list[dict]) -> None:
    """Every exact metric equal to the oracle; float sums bit-identical to math.fsum; distinct
    counts exact where marked exact, otherwise inside their bounds."""
    got = served.to_pylist()
    assert len(got) == len(expected)
    for a, e in zip(got, expected, strict=True):
        assert [a[k] for k in ("bucket", *BY)] == [e[k] for k in ("bucket", *BY)]
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
            check_served(store.query("traffic"), oracle(events, "1h", BY))
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
            check_served(narrow, oracle(events.filter(mask), "1h", BY))
        # After a recompute everything is exact again, and equal to the oracle.
        store.recompute(progress=False)
        assert_same(store.query("traffic"), oracle(pa.concat_tables(seen), "1h", BY), BY)


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
    assert_same(answers[0], oracle(events, "1m", BY), BY)


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
        check_served(store.query("traffic"), oracle(pa.concat_tables(parts[:3]), "1h", BY))
        store.append(parts[3])
        with lamina.Store(path, read_only=True) as reader:  # loads 2..3, replays 4
            check_served(reader.query("traffic"), oracle(pa.concat_tables(parts), "1h", BY))
        store.recompute(progress=False)  # the batch view now covers it all: nothing is saved
        assert store.status()["views"][0]["speed_saved"] is None
    with lamina.Store(path) as store:
        assert store.status()["views"][0]["speed_saved"] is None
        assert_same(store.query("traffic"), oracle(pa.concat_tables(parts), "1h", BY), BY)
