"""The store's schema: fixed by the first append or up front, the event-time column, uint64
values, and views declared before any data."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from support import (
    T0_US,
    assert_matches_oracle,
    batch,
    total,
    ts,
    view,
)

import lamina

# ---------------------------------------------------------------- (from test_core_v2.py)


FITS = lamina.View(
    "good", time="ts", grain="1h", by=["cat"], metrics={"events": lamina.count(), "tot": lamina.sum("v")}
)


MISFITS = {
    "a missing column": (
        lamina.View("misfit_view", time="ts", grain="1h", metrics={"n": lamina.sum("no_such_col")}),
        "no_such_col",
        lambda t: t.append_column("no_such_col", pa.array(range(t.num_rows), pa.int64())),
    ),
    "a sum of a string column": (
        lamina.View("strsum_view", time="ts", grain="1h", metrics={"s": lamina.sum("cat")}),
        "cat",
        lambda t: t.set_column(2, "cat", pc.cast(t["v"], pa.int64())),
    ),
}


SCHEMA = pa.schema([("id", pa.int64()), ("ts", pa.timestamp("us")), ("cat", pa.string()), ("v", pa.int64())])


def assert_schema(store: lamina.Store) -> None:
    got = store.schema
    assert [(f.name, f.type) for f in got] == [(f.name, f.type) for f in SCHEMA], f"schema {got}"


def test_uint64_values_above_int64(tmp_path: Path) -> None:
    big = 2**63
    data = pa.table(
        {
            "ts": pa.array([T0_US, T0_US + 60_000_000], pa.timestamp("us")),
            "u": pa.array([big, 1], pa.uint64()),
        }
    )
    with lamina.Store(tmp_path / "s") as store:
        store.append(data)
        snap = store.snapshot()
        col = snap["u"]
        assert col.type == pa.uint64() and col.to_pylist() == [big, 1], "the master dataset changed u"
        # The oracle, from pyarrow over the snapshot.
        want_values = sorted(pc.unique(col).to_pylist())
        want_max, want_min = pc.max(col).as_py(), pc.min(col).as_py()
        want_distinct = pc.count_distinct(col).as_py()
        assert (want_values, want_max, want_min, want_distinct) == ([1, big], big, 1, 2)
        assert sum(col.to_pylist()) > 2**63 - 1  # an int sum leaves int64

        store.define(lamina.View("dims", time="ts", grain="1h", by=["u"], metrics={"events": lamina.count()}))
        store.define(
            lamina.View(
                "aggs",
                time="ts",
                grain="1h",
                metrics={"hi": lamina.max("u"), "lo": lamina.min("u"), "n": lamina.count_distinct("u")},
            )
        )
        store.define(lamina.View("sums", time="ts", grain="1h", metrics={"s": lamina.sum("u")}))

        def check(layer: str) -> None:
            dims = store.query("dims")
            assert dims.schema.field("u").type == pa.uint64(), f"{layer}: dimension u is {dims['u'].type}"
            assert dims["u"].to_pylist() == want_values, f"{layer}: dimension values {dims['u'].to_pylist()}"
            assert dims["events"].to_pylist() == [1, 1], f"{layer}: {dims.to_pylist()}"
            aggs = store.query("aggs").to_pylist()
            assert len(aggs) == 1, f"{layer}: {aggs}"
            assert aggs[0]["hi"] == want_max, f"{layer}: max {aggs[0]['hi']!r}, want {want_max}"
            assert aggs[0]["lo"] == want_min, f"{layer}: min {aggs[0]['lo']!r}, want {want_min}"
            assert aggs[0]["n"] == want_distinct, f"{layer}: count_distinct {aggs[0]['n']!r}"
            with pytest.raises(lamina.SumOverflowError):
                store.query("sums")

        check("speed layer")
        store.recompute(["dims", "aggs"], progress=False)
        assert store.speed_view("dims").num_rows == 0, "after recompute the batch layer serves dims"
        assert store.batch_view("dims")["u"].to_pylist() == want_values, "batch view of dims"
        check("batch layer")
        with pytest.raises(lamina.SumOverflowError):
            store.recompute(["sums"], progress=False)
    with lamina.Store(tmp_path / "s") as again:  # the batch views read back from Parquet
        assert again.query("dims")["u"].to_pylist() == want_values
        assert again.query("aggs").to_pylist()[0]["hi"] == want_max


@pytest.mark.parametrize("case", list(MISFITS))
def test_views_defined_before_data_validate_the_first_append(tmp_path: Path, case: str) -> None:
    misfit, column, make_fit = MISFITS[case]
    with lamina.Store(tmp_path / "s") as store:
        assert store.define(FITS) is True
        assert store.define(misfit) is True
        assert set(store.views()) == {"good", misfit.name}
        with pytest.raises(lamina.SchemaError) as info:
            store.append(batch(0, 30))
        msg = str(info.value)
        assert misfit.name in msg and column in msg, f"the error must name the view and the column: {msg}"
        assert store.commits().num_rows == 0 and store.snapshot().num_rows == 0, "a refused append wrote"
        # The schema is still open: data that fits every view is the first commit.
        fitting = make_fit(batch(0, 30))
        assert store.append(fitting) == 1
        snap = store.snapshot()
        got = store.query("good")
        assert total(got) == 30 and total(got, "tot") == pc.sum(snap["v"]).as_py()
        assert total(store.query(misfit.name), next(iter(misfit.metrics))) == pc.sum(snap[column]).as_py()


def test_views_defined_before_a_fitting_first_append_serve_it_at_once(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with lamina.Store(path) as store:
        assert store.define(view()) is True
    with lamina.Store(path) as store:  # the definition survives a reopen before any data
        assert list(store.views()) == ["v"]
        assert store.append(batch(0, 40)) == 1
        assert_matches_oracle(store, what="served right after the first append")
        store.recompute(progress=False)
        assert_matches_oracle(store, what="served after recompute")


def test_a_reader_follows_views_declared_before_data(tmp_path: Path) -> None:
    """A reader that sees a definition before any data serves nothing yet (and says so), then
    follows the writer's first append and later ones incrementally."""
    path = tmp_path / "s"
    with lamina.Store(path) as writer:
        writer.define(view())
        with lamina.Store(path, read_only=True) as reader:
            with pytest.raises(lamina.NotFoundError, match="no data yet"):
                reader.query("v")
            writer.define(view("w", tot=False))
            with pytest.raises(lamina.NotFoundError, match="no data yet"):
                reader.query("w")
            writer.append(batch(0, 30))
            assert total(reader.query("v")) == 30
            assert total(reader.query("w")) == 30
            writer.append(batch(30, 12))
            assert total(reader.query("v")) == 42
            writer.recompute(progress=False)
            writer.append(batch(42, 5))
            assert total(reader.query("v")) == 47
            assert total(reader.batch_view("v")) == 42


def test_store_with_a_schema_up_front(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with lamina.Store(path, schema=SCHEMA) as store:
        assert_schema(store)
        assert store.define(view()) is True
    with lamina.Store(path) as store:  # views and schema survive a reopen before any data
        assert_schema(store)
        assert list(store.views()) == ["v"]
        with pytest.raises(lamina.SchemaError):
            store.append(batch(0, 10).drop_columns(["v"]))
        with pytest.raises(lamina.SchemaError):
            store.append(batch(0, 10).set_column(3, "v", pa.array(["x"] * 10)))
        assert store.commits().num_rows == 0
        with pytest.raises(lamina.SchemaError) as info:  # a view that does not fit the fixed schema
            store.define(lamina.View("bad", time="ts", grain="1h", metrics={"s": lamina.sum("cat")}))
        assert "cat" in str(info.value)
        assert store.append(batch(0, 40)) == 1
        assert_matches_oracle(store, what="served right after the first append")
    with lamina.Store(path) as store:
        assert_schema(store)
        assert list(store.views()) == ["v"]
        assert_matches_oracle(store, what="served after reopening")


# ---------------------------------------------------------------- (from test_experience_v2.py)


def test_several_timestamp_columns_need_an_explicit_event_time(tmp_path) -> None:
    t = pa.table({"created": ts(0, 1), "shipped": ts(30, 50), "n": [1, 2]})
    s = lamina.Store(str(tmp_path / "a"))
    with pytest.raises(lamina.SchemaError, match=r'2 timestamp columns \("created", "shipped"\).*time='):
        s.append(t)
    assert s.status()["latest_commit"] == 0
    s.close()
    s = lamina.Store(str(tmp_path / "b"), time="shipped")
    s.append(t)
    assert s.status()["time_column"] == "shipped"
    # A view may still bucket by the other one.
    s.define(lamina.View("by_created", time="created", grain="1d", metrics={"n": lamina.count()}))
    assert s.query("by_created")["n"].to_pylist() == [2]
    s.close()
