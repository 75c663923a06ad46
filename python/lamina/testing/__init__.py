"""Assertions for metric test suites.

Test the numbers a lamina view serves against numbers computed some other way (an oracle such
as DuckDB, Polars or plain pyarrow), without caring about row order:

.. code-block:: python

    from lamina.testing import assert_matches_oracle, assert_within_bounds

    oracle = duckdb.sql(
        "select time_bucket(interval 1 hour, ts) as bucket, country, count(*) as events, "
        "sum(amount) as revenue from events group by all"
    ).arrow()
    assert_matches_oracle(store, "traffic", oracle, by=["country"])

Every helper raises :class:`AssertionError` with the first mismatching rows spelled out.
Tables may be pyarrow Tables or RecordBatches, pandas or polars DataFrames, or any Arrow
PyCapsule producer.
"""

from lamina.testing.assertions import (
    assert_consistent,
    assert_every_event_counted,
    assert_matches_oracle,
    assert_tables_equal,
    assert_within_bounds,
)
from lamina.testing.kafka import local_kafka_broker

__all__ = [
    "local_kafka_broker",
    "assert_tables_equal",
    "assert_matches_oracle",
    "assert_within_bounds",
    "assert_every_event_counted",
    "assert_consistent",
]
