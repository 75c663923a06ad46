"""Explain, verify and as-of (issue 15): a served number's parts, proof that the layers agree,
and answers as they stood after a commit."""

from __future__ import annotations

import datetime as dt
import math

import pyarrow as pa
import pytest

import lamina
from lamina.testing import assert_consistent

from conftest import make_events, run_cli


def every_kind() -> lamina.View:
    return lamina.View(
        "v",
        time="ts",
        grain="1h",
        by=["country"],
        metrics={
            "n": lamina.count(),
            "with_amount": lamina.count("amount"),
            "with_qty": lamina.count("qty"),
            "qty": lamina.sum("qty"),
            "amount": lamina.sum("amount"),
            "avg": lamina.mean("qty"),
            "lo": lamina.min("amount"),
            "hi": lamina.max("qty"),
            "users": lamina.count_distinct("user_id"),
            "p50": lamina.quantile("qty", 0.5),
            "top": lamina.top_k("page", 2),
        },
    )


def late(t: pa.Table, hours: float) -> pa.Table:
    """The same events moved `hours` back: late events for buckets the batch view holds."""
    shifted = pa.compute.subtract(t["ts"], pa.scalar(dt.timedelta(hours=hours)))
    return t.set_column(0, "ts", shifted)


@pytest.fixture
def store(tmp_path):
    s = lamina.Store(str(tmp_path / "s"))
    s.define(every_kind())
    yield s
    s.close()


def busiest(s: lamina.Store) -> dict:
    rows = s.query("v").to_pylist()
    return max((r for r in rows if r["country"] is not None), key=lambda r: r["n"])


def check_parts_add_up(s: lamina.Store) -> None:
    row = busiest(s)
    parts = s.explain("v", row["bucket"], {"country": row["country"]})
    kinds = parts["part"].to_pylist()
    assert kinds[-1] == "served" and set(kinds[:-1]) <= {"batch", "speed"}
    served = parts.slice(len(parts) - 1).to_pylist()[0]
    # The served row is query()'s row.
    for k, v in row.items():
        if k not in ("bucket", "country"):
            assert served[k] == v or (isinstance(v, float) and math.isnan(v) and math.isnan(served[k])), k
    pieces = parts.slice(0, len(parts) - 1).to_pylist()
    assert pieces, "no part holds the row"
    assert served["n"] == sum(p["n"] for p in pieces)
    assert served["with_amount"] == sum(p["with_amount"] for p in pieces)
    assert served["qty"] == sum(p["qty"] for p in pieces if p["qty"] is not None)
    assert served["amount"] == pytest.approx(
        math.fsum(p["amount"] for p in pieces if p["amount"] is not None)
    )
    assert served["hi"] == max(p["hi"] for p in pieces if p["hi"] is not None)
    assert served["lo"] == min(p["lo"] for p in pieces if p["lo"] is not None)
    assert served["with_qty"] == sum(p["with_qty"] for p in pieces)
    assert served["avg"] == pytest.approx(served["qty"] / served["with_qty"], rel=1e-12)
    # Distinct counts: the union is at least the largest part and at most their sum.
    assert max(p["users"] for p in pieces) - 1 <= served["users_upper"]
    assert served["users_lower"] <= sum(p["users"] for p in pieces)
    # Quantiles lie within the parts' ranges; top-k counts add up for values every part lists.
    assert min(p["p50_lower"] for p in pieces) <= served["p50"] <= max(p["p50_upper"] for p in pieces)
    total_top = {}
    for p in pieces:
        for e in p["top"]:
            total_top[e["value"]] = total_top.get(e["value"], 0) + e["count"]
    for e in served["top"]:
        if all(any(x["value"] == e["value"] for x in p["top"]) for p in pieces):
            assert e["lower"] <= total_top[e["value"]] <= e["upper"]
    exact = all(served[f"{m}_exact"] for m in ("users", "p50", "top"))
    assert ("approximate" in served["note"]) == (not exact)
    if kinds == ["batch", "served"]:
        assert exact


def test_explain_parts_add_up_before_and_after_a_recompute_with_late_events(store) -> None:
    store.append(make_events(3_000, seed=1, days=0.5))
    check_parts_add_up(store)  # speed only
    store.recompute(progress=False)
    check_parts_add_up(store)  # batch only
    store.append(late(make_events(1_500, seed=2, days=0.5), 0.0))
    store.append(late(make_events(500, seed=3, days=0.5), 0.0))
    check_parts_add_up(store)  # batch and a speed chunk
    store.recompute(background=True).result()
    store.append(make_events(700, seed=4, days=0.5))
    check_parts_add_up(store)
    parts = store.explain("v", busiest(store)["bucket"], {"country": busiest(store)["country"]})
    speed = [p for p in parts.to_pylist() if p["part"] == "speed"]
    assert speed and speed[-1]["last_commit"] == 4


def test_explain_refuses_what_is_not_one_row(store) -> None:
    store.append(make_events(500, seed=1, days=0.2))
    row = busiest(store)
    with pytest.raises(lamina.InvalidArgumentError, match="country"):
        store.explain("v", row["bucket"], {})
    with pytest.raises(lamina.InvalidArgumentError, match="not the start"):
        store.explain("v", row["bucket"] + dt.timedelta(minutes=5), {"country": row["country"]})
    with pytest.raises(lamina.NotFoundError):
        store.explain("v", dt.datetime(1999, 1, 1), {"country": "nowhere"})
    with pytest.raises(lamina.NotFoundError):
        store.explain("nosuch", row["bucket"], {})


def test_verify_finds_a_planted_double_count_and_nothing_otherwise(store) -> None:
    store.append(make_events(2_000, seed=1, days=0.5))
    store.recompute(progress=False)
    store.append(late(make_events(800, seed=2, days=0.5), 0.0))
    assert store.verify().num_rows == 0
    assert_consistent(store, "v")
    store._core._plant_double_count("v")
    diff = store.verify("v")
    assert diff.num_rows > 0
    assert set(diff["problem"].to_pylist()) <= {
        "exact value differs",
        "exact value far outside the served bounds",
    }
    assert "n" in set(diff["metric"].to_pylist())
    with pytest.raises(AssertionError, match="difference"):
        assert_consistent(store)
    # A recompute repairs it: the double count was only in the speed layer.
    store.recompute(progress=False)
    assert store.verify().num_rows == 0


def test_as_of_equals_the_answers_seen_at_those_commits(store) -> None:
    exact = lamina.View(
        "exact",
        time="ts",
        grain="1h",
        by=["country", "page"],
        metrics={
            "n": lamina.count(),
            "qty": lamina.sum("qty"),
            "amount": lamina.sum("amount"),
            "avg": lamina.mean("amount"),
            "lo": lamina.min("amount"),
            "hi": lamina.max("qty"),
        },
    )
    store.define(exact)
    seen = {}
    for i in range(6):
        store.append(late(make_events(400, seed=10 + i, days=0.3), hours=i % 3))
        if i in (2, 4):
            store.recompute(progress=False)
        # The served answers right after each commit (batch + speed: every metric is exact).
        seen[i + 1] = (store.query("exact"), store.query("v"))
    for commit, (want, _) in seen.items():
        assert store.query("exact", as_of=commit).to_pylist() == want.to_pylist(), commit
    # Right after a recompute, every metric of the all-kinds view was exact too.
    for commit in (3, 5):
        assert store.query("v", as_of=commit).to_pylist() == seen[commit][1].to_pylist(), commit
    # A timestamp picks the last commit at or before it.
    at = store.commits()["committed_at"][3].as_py()
    assert store.query("exact", as_of=at).equals(store.query("exact", as_of=4))
    assert store.query("exact", as_of=dt.datetime(2000, 1, 1)).num_rows == 0
    assert store.query("exact", as_of=0).num_rows == 0
    with pytest.raises(lamina.InvalidArgumentError, match="after the latest"):
        store.query("exact", as_of=99)
    # Other query arguments apply too.
    by_day = store.query("exact", as_of=4, grain="1d", by=[], where={"country": {"!=": "DE"}})
    want = store.query("exact", as_of=4, grain="1d", by=[], where={"country": {"not in": ["DE"]}})
    assert by_day.equals(want)
    assert sum(store.query("exact", as_of=4, grain="1d", by=[])["n"].to_pylist()) == 1_600


def test_explain_names_the_source_positions_of_each_part(tmp_path) -> None:
    import json

    import pyarrow.parquet as pq

    land = tmp_path / "landing"
    land.mkdir()
    s = lamina.Store(str(tmp_path / "s"))
    s.define(lamina.View("v", time="ts", grain="1d", metrics={"n": lamina.count()}))
    src = lamina.DirectorySource(str(land), pattern="*.parquet")
    pq.write_table(make_events(300, seed=1, days=0.5), land / "a.parquet")
    s.ingest(src, idle_ms=0)
    s.recompute(progress=False)
    pq.write_table(make_events(200, seed=2, days=0.5), land / "b.parquet")
    s.ingest(src, idle_ms=0)
    row = s.query("v").to_pylist()[0]
    parts = s.explain("v", row["bucket"]).to_pylist()
    by_part = {p["part"]: json.loads(p["sources"]) for p in parts}
    (sid,) = by_part["batch"]
    assert by_part["batch"][sid]["files"] == ["a.parquet"]
    assert by_part["speed"][sid]["files"] == ["b.parquet"]
    assert sorted(by_part["served"][sid]["files"]) == ["a.parquet", "b.parquet"]
    s.close()


def test_cli_verify_and_explain(tmp_path) -> None:

    def run(*args):
        return run_cli(*args, cwd=tmp_path)

    s = lamina.Store(str(tmp_path / "st"))
    s.define(every_kind())
    s.append(make_events(1_000, seed=1, days=0.3))
    s.recompute(progress=False)
    s.append(make_events(300, seed=2, days=0.3))
    row = busiest(s)
    s.close()
    r = run("verify", "st")
    assert r.returncode == 0 and "consistent" in r.stdout, r.stderr
    at = row["bucket"].strftime("%Y-%m-%dT%H:%M:%S")
    r = run("explain", "st", "v", "--at", at, "--where", f"country={row['country']}")
    assert r.returncode == 0, r.stderr
    assert "batch" in r.stdout and "speed" in r.stdout and "served" in r.stdout
    r = run("explain", "st", "v", "--at", at)
    assert r.returncode == 1 and "country" in r.stderr


def test_results_show_as_html_in_notebooks_and_other_tables_are_left_alone(store) -> None:
    from lamina._html import result_html

    store.append(make_events(500, seed=1, days=0.2))
    q = store.query("v")
    html = result_html(q)
    assert html is not None and "served answer" in html and "<table>" in html
    row = busiest(store)
    e = result_html(store.explain("v", row["bucket"], {"country": row["country"]}))
    assert e is not None and "approximate" in e or "exact" in e
    v = result_html(store.verify())
    assert v is not None and "consistent" in v
    store._core._plant_double_count("v")
    assert "difference(s) in v" in result_html(store.verify())
    assert result_html(pa.table({"a": [1]})) is None  # not a lamina result: IPython's own repr
