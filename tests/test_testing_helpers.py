"""lamina.testing: each assertion passes on good data and raises AssertionError on bad data.
The "good" data comes from independent oracles (DuckDB, pyarrow), never from lamina itself."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import lamina
from lamina.testing import (
    assert_every_event_counted,
    assert_matches_oracle,
    assert_tables_equal,
    assert_within_bounds,
)

START = dt.datetime(2026, 3, 2)


def events(n: int, start: dt.datetime, hours: int, seed: int) -> pa.Table:
    rng = random.Random(seed)
    return pa.table(
        {
            "ts": pa.array(
                [start + dt.timedelta(seconds=rng.randrange(hours * 3600)) for _ in range(n)],
                pa.timestamp("us"),
            ),
            "country": pa.array([rng.choice(["DE", "FR", "日本", None]) for _ in range(n)], pa.string()),
            "device": pa.array([rng.choice([1, 2]) for _ in range(n)], pa.int64()),
            "user_id": pa.array([f"u{rng.randrange(300)}" for _ in range(n)], pa.string()),
            "amount": pa.array(
                [rng.choice([None, round(rng.uniform(0, 50), 3)]) for _ in range(n)], pa.float64()
            ),
        }
    )


VIEW = lamina.View(
    "v",
    time="ts",
    grain="1h",
    by=["country", "device"],
    metrics={
        "n": lamina.count(),
        "revenue": lamina.sum("amount"),
        "low": lamina.min("amount"),
        "avg": lamina.mean("amount"),
        "users": lamina.count_distinct("user_id"),
    },
)

ORACLE_SQL = """
    select date_trunc('hour', ts) as bucket, country, device, count(*) as n, sum(amount) as revenue,
           min(amount) as low, avg(amount) as avg, count(distinct user_id) as users
    from events group by all
"""


@pytest.fixture
def data() -> list[pa.Table]:
    return [events(3000, START, 24, 1), events(400, START + dt.timedelta(hours=20), 8, 2)]


@pytest.fixture
def store(data: list[pa.Table]) -> Iterator[lamina.Store]:
    """Batch view over the first part, speed layer over the second (late and new hours)."""
    with lamina.Store() as s:
        s.append(data[0])
        s.define(VIEW)
        s.recompute(progress=False)
        s.append(data[1])
        yield s


def duck(tables: list[pa.Table], sql: str) -> pa.Table:
    con = duckdb.connect()
    con.register("events", pa.concat_tables(tables))
    return con.sql(sql).to_arrow_table()


def bump(table: pa.Table, column: str, row: int, delta: float) -> pa.Table:
    values = table.column(column).to_pylist()
    values[row] = values[row] + delta
    i = table.column_names.index(column)
    return table.set_column(i, column, pa.array(values, table.schema.field(column).type))


# ---------------------------------------------------------------------------------------------
# assert_tables_equal


def test_tables_equal_ignores_row_order_and_types() -> None:
    t = pa.table(
        {
            "k": ["a", "b", None],
            "x": [1, 2, 3],
            "f": [0.5, float("nan"), None],
            "ts": pa.array([dt.datetime(2026, 1, 1, h) for h in range(3)], pa.timestamp("us", tz="UTC")),
        }
    )
    shuffled = t.take([2, 0, 1])
    retyped = pa.table(
        {
            "ts": shuffled.column("ts").cast(pa.timestamp("ns")),  # naive UTC, other unit
            "f": shuffled.column("f"),
            "x": shuffled.column("x").cast(pa.int32()),
            "k": shuffled.column("k").cast(pa.large_string()),
        }
    )
    assert_tables_equal(t, shuffled)
    assert_tables_equal(t, retyped)
    # pandas cannot tell NaN from null, so leave the float column out of its round trip
    assert_tables_equal(t.drop_columns(["f"]), retyped.drop_columns(["f"]).to_pandas())
    with pytest.raises(AssertionError, match="column types differ"):
        assert_tables_equal(t, retyped, check_dtype=True)
    assert_tables_equal(t, shuffled, check_dtype=True, sort_by=["x"])


def test_tables_equal_reports_the_first_mismatching_rows() -> None:
    t = pa.table({"k": ["a", "b", "c"], "v": [1.0, 2.0, 3.0]})
    with pytest.raises(AssertionError) as info:
        assert_tables_equal(t, bump(t, "v", 1, 0.5))
    message = str(info.value)
    assert "differ in 1 of 3 rows" in message
    assert "v: actual 2.0, expected 2.5" in message and "k='b'" in message

    with pytest.raises(AssertionError, match="different row counts: actual 3, expected 2"):
        assert_tables_equal(t, t.slice(1))
    with pytest.raises(AssertionError, match="missing from actual: w"):
        assert_tables_equal(t, t.append_column("w", pa.array([1, 2, 3])))
    with pytest.raises(AssertionError):
        assert_tables_equal(t, t.set_column(1, "v", pa.array([1.0, None, 3.0])))
    with pytest.raises(AssertionError):  # NaN is not 2.0
        assert_tables_equal(t, t.set_column(1, "v", pa.array([1.0, float("nan"), 3.0])))


def test_tables_equal_float_tolerance() -> None:
    t = pa.table({"k": [1, 2], "v": [1.0, 1e12]})
    near = pa.table({"k": [1, 2], "v": [1.0 + 1e-12, 1e12 + 1e-3]})
    with pytest.raises(AssertionError, match="differ in 2 of 2 rows"):
        assert_tables_equal(t, near)
    assert_tables_equal(t, near, float_rtol=1e-9)
    with pytest.raises(AssertionError):
        assert_tables_equal(t, bump(t, "v", 0, 1e-3), float_rtol=1e-9)


def test_tables_equal_shows_at_most_a_few_rows() -> None:
    a = pa.table({"k": list(range(100)), "v": [0] * 100})
    b = pa.table({"k": list(range(100)), "v": [1] * 100})
    with pytest.raises(AssertionError) as info:
        assert_tables_equal(a, b)
    assert "differ in 100 of 100 rows" in str(info.value)
    assert "... and 95 more" in str(info.value)


# ---------------------------------------------------------------------------------------------
# assert_matches_oracle


def test_matches_oracle_passes_against_duckdb(store: lamina.Store, data: list[pa.Table]) -> None:
    oracle = duck(data, ORACLE_SQL)
    assert_matches_oracle(store, "v", oracle)
    # rolled up to country, by day; the oracle may leave metrics out
    daily = duck(
        data,
        "select date_trunc('day', ts) as bucket, country, count(*) as n, sum(amount) as revenue, "
        "count(distinct user_id) as users from events group by all",
    )
    assert_matches_oracle(store, "v", daily, by=["country"], grain="1d")
    assert_matches_oracle(store, "v", daily.select(["bucket", "country", "n"]), by=["country"], grain="1d")
    # a polars oracle works too
    polars = pytest.importorskip("polars")
    assert_matches_oracle(store, "v", polars.from_arrow(oracle))


def test_matches_oracle_fails_on_a_wrong_count(store: lamina.Store, data: list[pa.Table]) -> None:
    oracle = duck(data, ORACLE_SQL + " order by all")
    wrong = bump(oracle, "n", 7, 1)
    with pytest.raises(AssertionError) as info:
        assert_matches_oracle(store, "v", wrong)
    row = oracle.slice(7, 1).to_pylist()[0]
    assert f"n served {row['n']}, oracle {row['n'] + 1}" in str(info.value)
    assert f"country={row['country']!r}" in str(info.value)


def test_matches_oracle_fails_on_a_wrong_sum_or_mean(store: lamina.Store, data: list[pa.Table]) -> None:
    oracle = duck(data, ORACLE_SQL + " order by all")
    row = next(i for i, v in enumerate(oracle.column("revenue").to_pylist()) if v is not None)
    with pytest.raises(AssertionError, match="revenue served"):
        assert_matches_oracle(store, "v", bump(oracle, "revenue", row, 0.01))
    with pytest.raises(AssertionError, match="avg served"):
        assert_matches_oracle(store, "v", bump(oracle, "avg", row, 1e-3))


def test_matches_oracle_fails_on_missing_or_extra_groups(store: lamina.Store, data: list[pa.Table]) -> None:
    oracle = duck(data, ORACLE_SQL)
    with pytest.raises(AssertionError, match="group served but not in the oracle"):
        assert_matches_oracle(store, "v", oracle.slice(1))
    # an oracle that forgot the late events misses nothing but counts too few
    with pytest.raises(AssertionError):
        assert_matches_oracle(store, "v", duck(data[:1], ORACLE_SQL))
    with pytest.raises(AssertionError, match="lacks the key columns device"):
        assert_matches_oracle(store, "v", oracle.drop_columns(["device"]))


def test_matches_oracle_checks_approximate_distinct_counts_against_bounds(
    store: lamina.Store, data: list[pa.Table]
) -> None:
    oracle = duck(data, ORACLE_SQL + " order by all")
    served = store.query("v")
    assert not all(served.column("users_exact").to_pylist())  # there is speed data
    # an exact row must equal the oracle...
    exact_rows = [i for i, r in enumerate(served.to_pylist()) if r["users_exact"]]
    with pytest.raises(AssertionError, match="users served"):
        assert_matches_oracle(store, "v", bump(oracle, "users", exact_rows[0], 1))
    # ...an approximate one must contain it within its bounds
    approx = [i for i, r in enumerate(served.to_pylist()) if not r["users_exact"]][0]
    upper = served.column("users_upper")[approx].as_py()
    truth = oracle.column("users")[approx].as_py()
    with pytest.raises(AssertionError, match="approximate"):
        assert_matches_oracle(store, "v", bump(oracle, "users", approx, upper - truth + 1))


# ---------------------------------------------------------------------------------------------
# assert_within_bounds


def test_within_bounds_against_true_distinct_counts(store: lamina.Store, data: list[pa.Table]) -> None:
    served = store.query("v", by=["country"], grain="1d")
    truth = duck(
        data,
        "select date_trunc('day', ts) as bucket, country, count(distinct user_id) as users "
        "from events group by all order by all",
    )
    assert_within_bounds(served, "users", truth)
    assert_within_bounds(served, "users", truth.rename_columns(["bucket", "country", "true_value"]))
    total = store.query("v", by=[], grain="1w")
    assert total.num_rows == 1
    assert_within_bounds(total, "users", len(set(pa.concat_tables(data).column("user_id").to_pylist())))


def test_within_bounds_fails_outside_and_on_missing_rows(store: lamina.Store, data: list[pa.Table]) -> None:
    served = store.query("v", by=["country"], grain="1d")
    truth = duck(
        data,
        "select date_trunc('day', ts) as bucket, country, count(distinct user_id) as users "
        "from events group by all order by all",
    )
    too_many = bump(truth, "users", 0, 1000)
    with pytest.raises(AssertionError, match="is outside"):
        assert_within_bounds(served, "users", too_many)
    with pytest.raises(AssertionError, match="no true value for the served row"):
        assert_within_bounds(served, "users", truth.slice(1))
    with pytest.raises(AssertionError, match="has no revenue_lower column"):
        assert_within_bounds(served, "revenue", truth)
    # a row marked exact must equal the truth, even when the bounds are wide
    exact = store.query("v")
    exact_truth = duck(data, ORACLE_SQL).select(["bucket", "country", "device", "users"])
    assert_within_bounds(exact, "users", exact_truth)
    first_exact = pc.index(exact.column("users_exact"), True).as_py()
    key = {c: exact.column(c)[first_exact].as_py() for c in ("bucket", "country", "device")}
    mask = [
        r["bucket"] == key["bucket"].replace(tzinfo=None)
        and r["country"] == key["country"]
        and r["device"] == key["device"]
        for r in exact_truth.to_pylist()
    ]
    i = mask.index(True)
    with pytest.raises(AssertionError):
        assert_within_bounds(exact, "users", bump(exact_truth, "users", i, 1))


# ---------------------------------------------------------------------------------------------
# assert_every_event_counted


def test_every_event_counted(store: lamina.Store, data: list[pa.Table]) -> None:
    expected = sum(t.num_rows for t in data)
    assert_every_event_counted(store, "v", "n", expected)
    assert_every_event_counted(store, "v", "n", store.snapshot())
    with pytest.raises(AssertionError, match="1 missing"):
        assert_every_event_counted(store, "v", "n", expected + 1)
    with pytest.raises(AssertionError, match="counted twice"):
        assert_every_event_counted(store, "v", "n", expected - 2)
    with pytest.raises(AssertionError, match="not a count"):
        assert_every_event_counted(store, "v", "revenue", expected)
    store.recompute(progress=False)
    assert_every_event_counted(store, "v", "n", expected)


# ---------------------------------------------------------------- (from test_experience_v2.py)


def test_testing_assertions_hide_their_own_frames() -> None:
    import lamina.testing as t

    for name in t.__all__:
        if name.startswith("assert_"):
            assert "__tracebackhide__" in getattr(t, name).__code__.co_varnames, name
