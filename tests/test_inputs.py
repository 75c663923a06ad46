"""Python-side input handling: every bad input is a typed lamina error (never a pyarrow, pandas,
numpy or built-in exception escaping) and writes nothing; pandas frames with any index, and every
supported source, append the rows the oracle (pyarrow on the same values) expects."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import lamina
from lamina._convert import to_arrow, to_micros

from conftest import as_duckdb, as_polars

T0 = dt.datetime(2026, 1, 1)


def ts(i: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=7 * i)


def events(n: int = 5, first: int = 0) -> pa.Table:
    """ts, an int64 id, a float fare, a string city."""
    rows = range(first, first + n)
    return pa.table(
        {
            "ts": pa.array([ts(i) for i in rows], pa.timestamp("us")),
            "id": pa.array(list(rows), pa.int64()),
            "fare": pa.array([(i * 37 % 11) + 0.5 for i in rows], pa.float64()),
            "city": pa.array(["abc"[i % 3] for i in rows], pa.string()),
        }
    )


@pytest.fixture
def store() -> Iterator[lamina.Store]:
    s = lamina.Store()
    assert s.append(events()) == 1
    yield s
    s.close()


@pytest.fixture
def empty() -> Iterator[lamina.Store]:
    s = lamina.Store()
    yield s
    s.close()


def raises(kind: type[BaseException], action: Callable[[], object], *mentions: str) -> BaseException:
    """`action` raises a `kind` that derives from LaminaError and mentions every string given."""
    try:
        action()
    except BaseException as e:  # noqa: BLE001 - catch foreign exceptions to report them
        name = f"{type(e).__module__}.{type(e).__name__}"
        assert isinstance(e, kind), f"expected lamina.{kind.__name__}, got {name}: {e}"
        assert isinstance(e, lamina.LaminaError), f"{name} does not derive from LaminaError"
        for m in mentions:
            assert m in str(e), f"{kind.__name__} message does not mention {m!r}: {e}"
        return e
    raise AssertionError(f"no {kind.__name__} raised")


def refused(s: lamina.Store, data: object, *mentions: str, **kw: object) -> BaseException:
    """The append is refused with a SchemaError and nothing is written."""
    commits, snapshot = s.commits().num_rows, s.snapshot()
    e = raises(lamina.SchemaError, lambda: s.append(data, **kw), *mentions)
    assert s.commits().num_rows == commits, "a refused append wrote a commit"
    assert s.snapshot().equals(snapshot)
    return e


def appended(s: lamina.Store, data: object, expected: pa.Table) -> pa.Table:
    """The append is one commit whose rows equal `expected` (cast to the store's schema)."""
    before = s.snapshot().num_rows
    commits = s.commits().num_rows
    s.append(data)
    assert s.commits().num_rows == commits + 1
    got = s.snapshot().slice(before)
    want = expected.select(got.column_names).cast(got.schema)
    assert got.equals(want), f"appended rows differ from the oracle:\n{got}\n!=\n{want}"
    return got


# ---------------------------------------------------------------- 1. foreign exceptions -> lamina errors


@pytest.mark.parametrize("first_append", [False, True])
def test_list_of_dicts_with_mixed_types_names_column_and_row(
    store: lamina.Store, empty: lamina.Store, first_append: bool
) -> None:
    s = empty if first_append else store
    rows = [{"ts": ts(0), "id": 1}, {"ts": ts(1), "id": 2}, {"ts": ts(2), "id": "x"}, {"ts": ts(3), "id": 4}]
    refused(s, rows, '"id"', "row 2")
    refused(s, [{"ts": ts(0), "city": "a"}, {"ts": ts(1), "city": 5}], '"city"', "row 1")


def test_list_with_a_row_that_is_not_a_dict(store: lamina.Store) -> None:
    refused(store, [{"ts": ts(0), "id": 1}, 5], "row 1")
    refused(store, [{"ts": ts(0), "id": 1}, {"ts": ts(1), "id": 2}, None], "row 2")
    refused(store, [{"ts": ts(0), 3: 1}], "3")


def test_ragged_dict_of_lists_names_the_column(store: lamina.Store, empty: lamina.Store) -> None:
    for s in (store, empty):
        refused(s, {"ts": [ts(0), ts(1)], "id": [1, 2], "city": ["a"]}, '"city"')


@pytest.mark.parametrize(
    "column, value, mention",
    [
        ("id", 5, "int"),
        ("city", "ab", "str"),  # a string is iterable: it must not become the rows "a", "b"
        ("city", b"ab", "bytes"),
        ("id", {"x": 1}, "dict"),
        ("id", [1, "x"], "row 1"),
    ],
    ids=["scalar", "str", "bytes", "dict", "mixed"],
)
def test_dict_with_a_value_that_is_not_a_column(
    store: lamina.Store, column: str, value: object, mention: str
) -> None:
    refused(store, {"ts": [ts(0), ts(1)], column: value}, f'"{column}"', mention)


def test_dict_with_a_non_string_column_name(empty: lamina.Store) -> None:
    refused(empty, {"ts": [ts(0)], 7: [1]}, "7")


@pytest.mark.parametrize("order", ["int-first", "str-first"])
def test_pandas_object_column_mixing_ints_and_strings(store: lamina.Store, order: str) -> None:
    values = [1, 2, "x", 4] if order == "int-first" else ["x", "y", 3, "z"]
    df = pd.DataFrame({"ts": [ts(i) for i in range(4)], "city": pd.Series(values, dtype=object)})
    refused(store, df, '"city"', "row 2")


def test_pandas_duplicate_column_names(store: lamina.Store) -> None:
    df = events().to_pandas()
    df.insert(2, "fare2", df["fare"])
    df.columns = ["ts", "id", "fare", "fare", "city"]
    refused(store, df, '"fare"')


def test_numpy_structured_arrays(store: lamina.Store) -> None:
    n = 4
    good = np.zeros(n, dtype=[("ts", "M8[us]"), ("id", "i8"), ("fare", "f8"), ("city", "U1")])
    oracle = events(n, 10)
    for name in good.dtype.names:
        good[name] = oracle[name].to_numpy()
    appended(store, good, oracle)
    bad = np.zeros(2, dtype=[("ts", "M8[us]"), ("id", "i8", (2,))])
    refused(store, bad, '"id"')
    refused(store, np.zeros((2, 2), dtype=[("ts", "M8[us]")]), "structured")


@pytest.mark.parametrize(
    "make",
    [
        lambda: pa.array([1, 2]),
        lambda: pa.chunked_array([[1], [2]]),
        lambda: pd.Series([1, 2], name="id"),
        lambda: __import__("polars").Series("id", [1, 2]),
        lambda: np.arange(3),
    ],
    ids=["array", "chunked-array", "pandas-series", "polars-series", "ndarray"],
)
def test_a_single_column_is_not_a_table(store: lamina.Store, make: Callable[[], object]) -> None:
    refused(store, make())


def test_quarantine_flag_must_be_a_bool(store: lamina.Store) -> None:
    commits = store.commits().num_rows
    raises(lamina.InvalidArgumentError, lambda: store.append(events(2, 5), quarantine="yes"), "quarantine")
    assert store.commits().num_rows == commits
    assert store.append(events(2, 5), quarantine=np.bool_(False)) == 2


@pytest.fixture
def with_view(store: lamina.Store) -> lamina.Store:
    store.define(lamina.View("v", time="ts", grain="1h", by=["city"], metrics={"n": lamina.count()}))
    return store


@pytest.mark.parametrize(
    "kwargs, mention",
    [
        ({"grain": 5}, "grain"),
        ({"grain": b"1h"}, "grain"),
        ({"by": 5}, "by"),
        ({"by": [5]}, "by"),
        ({"by": {"city": 1}}, "by"),
        ({"where": 5}, "where"),
        ({"where": 0}, "where"),
        ({"where": [("city", "a")]}, "where"),
        ({"where": {5: "a"}}, "5"),
        ({"where": {"city": np.array(["a", "b"])}}, "where"),
        ({"start": object()}, "start"),
        ({"start": pd.NaT}, "start"),
        ({"end": np.datetime64("NaT")}, "end"),
        ({"end": pa.scalar(None, pa.timestamp("us"))}, "end"),
        ({"start": 1.5}, "start"),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_query_arguments_of_the_wrong_type(with_view: lamina.Store, kwargs: dict, mention: str) -> None:
    for call in (with_view.query, with_view.batch_view, with_view.speed_view):
        raises(lamina.InvalidArgumentError, lambda call=call: call("v", **kwargs), mention)


def test_query_view_name_of_the_wrong_type(with_view: lamina.Store) -> None:
    raises(lamina.InvalidArgumentError, lambda: with_view.query(5), "view")


def test_query_time_bounds_of_every_kind_agree(with_view: lamina.Store) -> None:
    """datetime, ISO string, pandas Timestamp, numpy datetime64 (any unit) and Arrow scalars name
    the same instant; the oracle is pyarrow's own cast to microseconds."""
    t = dt.datetime(2026, 1, 1, 0, 14)
    want = pa.scalar(t, pa.timestamp("us")).cast(pa.int64()).as_py()
    for value in (
        t,
        t.isoformat(),
        pd.Timestamp(t),
        np.datetime64(t, "us"),
        np.datetime64(t, "ns"),
        np.datetime64(t, "m"),
        pa.scalar(t, pa.timestamp("ms")),
    ):
        assert to_micros(value, "start") == want, value
    got = with_view.query("v", start=np.datetime64("2026-01-01T00:00"), end="2026-01-01T01:00", by=[])
    assert got["n"].to_pylist() == [events().num_rows]


@pytest.mark.parametrize(
    "commit, mention",
    [(-1, "commits start at 1"), ("x", "'x'"), (1.5, "1.5"), (True, "True"), (np.bool_(True), "True")],
    ids=["negative", "str", "float", "bool", "numpy-bool"],
)
def test_snapshot_commit_of_the_wrong_kind(store: lamina.Store, commit: object, mention: str) -> None:
    raises(lamina.InvalidArgumentError, lambda: store.snapshot(commit=commit), mention)


def test_snapshot_commit_numbers(store: lamina.Store) -> None:
    raises(lamina.NotFoundError, lambda: store.snapshot(commit=2**64), str(2**64))
    raises(lamina.NotFoundError, lambda: store.snapshot(commit=2), "2")
    assert store.snapshot(commit=0).num_rows == 0  # the empty snapshot before the first commit
    assert store.snapshot(commit=np.int64(1)).equals(store.snapshot())


# ---------------------------------------------------------------- 2. pandas frames with any index


def frame(n: int = 6, first: int = 0) -> pd.DataFrame:
    return events(n, first).to_pandas()


@pytest.mark.parametrize(
    "make",
    [
        lambda df: df.sort_values("fare"),
        lambda df: pd.concat([df.iloc[:3].reset_index(drop=True), df.iloc[3:].reset_index(drop=True)]),
        lambda df: pd.concat([df.iloc[3:], df.iloc[:3]]),
        lambda df: df.set_axis([f"r{i}" for i in range(len(df))]),
        lambda df: df.set_axis(pd.MultiIndex.from_arrays([df["id"].to_numpy() * 2, df["id"].to_numpy() % 2])),
        lambda df: df.iloc[::2],
        lambda df: df[df["fare"] > 3],
    ],
    ids=["sort_values", "concat", "concat-reordered", "string-index", "unnamed-multiindex", "step", "mask"],
)
def test_pandas_unnamed_index_is_dropped(store: lamina.Store, make: Callable[[pd.DataFrame], object]) -> None:
    df = make(frame(6, 100))
    oracle = pa.Table.from_pandas(df, preserve_index=False)  # the same rows, in the same order
    got = appended(store, df, oracle)
    assert got.column_names == store.snapshot().column_names
    assert pc.sum(got["fare"]).as_py() == pytest.approx(float(df["fare"].sum()))


def test_pandas_named_index_is_kept_as_a_column(empty: lamina.Store) -> None:
    oracle = events(6, 200)
    df = oracle.to_pandas().set_index("id").sort_values("fare")
    got = appended(empty, df, oracle.take(pc.sort_indices(oracle["fare"])))
    assert sorted(got.column_names) == sorted(oracle.column_names)
    # A time index named "ts" is the event time.
    by_time = oracle.to_pandas().set_index("ts")
    appended(empty, by_time, oracle)
    assert pc.count_distinct(empty.snapshot()["id"]).as_py() == 6


def test_pandas_partly_named_multiindex_keeps_the_named_levels(empty: lamina.Store) -> None:
    oracle = events(4, 300)
    df = oracle.to_pandas()
    df = df.set_index([df["id"].rename(None) * 10, "ts"])  # unnamed level, then "ts"
    got = appended(empty, df, oracle)
    assert sorted(got.column_names) == sorted(oracle.column_names)


def test_pandas_index_names_that_clash_are_refused(store: lamina.Store) -> None:
    df = frame(3, 400)
    df.index = pd.Index(df["id"].to_numpy(), name="id")
    refused(store, df, '"id"')
    df.index = pd.MultiIndex.from_arrays([df["id"].to_numpy(), df["id"].to_numpy()], names=["k", "k"])
    refused(store, df, "'k'")


# ---------------------------------------------------------------- 3. every source still works


SOURCES: dict[str, Callable[[pa.Table], object]] = {
    "table": lambda t: t,
    "record-batch": lambda t: t.combine_chunks().to_batches()[0],
    "reader": lambda t: pa.RecordBatchReader.from_batches(t.schema, t.to_batches(max_chunksize=2)),
    "struct-array": lambda t: t.combine_chunks().to_struct_array(),
    "polars": as_polars,
    "duckdb": as_duckdb,
    "pandas": lambda t: t.to_pandas(),
    "dict-of-lists": lambda t: t.to_pydict(),
    "dict-of-numpy": lambda t: {c: t[c].to_numpy() for c in t.column_names},
    "list-of-dicts": lambda t: t.to_pylist(),
}


@pytest.mark.parametrize("source", list(SOURCES))
def test_sources_append_the_oracle_rows(store: lamina.Store, empty: lamina.Store, source: str) -> None:
    data = events(7, 500)
    appended(store, SOURCES[source](data), data)  # after the schema is fixed
    appended(empty, SOURCES[source](data), data)  # fixing the schema


@pytest.mark.parametrize("source", ["table", "record-batch", "reader", "polars", "duckdb"])
def test_capsule_producers_are_passed_through_untouched(source: str) -> None:
    data = SOURCES[source](events())
    assert to_arrow(data) is data  # zero-copy: the core reads the producer itself


def test_list_of_dicts_keeps_keys_missing_from_the_first_row(empty: lamina.Store) -> None:
    rows = [{"ts": ts(0), "id": 1}, {"ts": ts(1), "id": 2, "city": "b"}, {"ts": ts(2), "city": "c"}]
    got = appended(
        empty, rows, pa.table({"ts": [ts(0), ts(1), ts(2)], "id": [1, 2, None], "city": [None, "b", "c"]})
    )
    assert got.column_names == ["ts", "id", "city"]
    assert pc.count(got["city"]).as_py() == 2 and pc.sum(got["id"]).as_py() == 3


def test_a_time_with_a_fraction_the_store_cannot_keep_is_a_row_error(tmp_path) -> None:
    """A store that holds timestamp[s] (a first CSV with whole seconds)
    must not truncate a later .250 silently; the row is refused, or quarantined with a reason."""
    base = 1_767_225_600  # 2026-01-01 00:00:00 UTC, in seconds
    first = pa.table({"ts": pa.array([base, base + 1], pa.timestamp("s")), "n": [1, 2]})
    later = pa.table(
        {"ts": pa.array([(base + 2) * 1000, (base + 3) * 1000 + 250], pa.timestamp("ms")), "n": [3, 4]}
    )
    with lamina.Store(tmp_path / "s") as store:
        store.append(first)
        with pytest.raises(lamina.SchemaError, match=r"fraction of a second.*at row 1"):
            store.append(later)
        assert store.snapshot().num_rows == 2, "a refused append writes nothing"
        store.append(later, quarantine=True)
        assert store.snapshot()["n"].to_pylist() == [1, 2, 3]
        q = store.quarantined()
        assert q.num_rows == 1 and "fraction of a second" in q.column("reason")[0].as_py()
