"""The assertions of :mod:`lamina.testing` (see there)."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from lamina.store import Store

__all__ = [
    "assert_tables_equal",
    "assert_matches_oracle",
    "assert_within_bounds",
    "assert_every_event_counted",
    "assert_consistent",
]

MAX_SHOWN = 5  # mismatches spelled out in a message


# ---------------------------------------------------------------------------------------------
# normalizing values so that tables from different engines compare


def _as_table(data: Any, what: str) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pa.RecordBatchReader):
        return data.read_all()
    from lamina._convert import to_arrow

    try:
        converted = to_arrow(data)
    except Exception as e:
        raise TypeError(
            f"{what}: expected a table (pyarrow, pandas, polars, ...), got {type(data).__name__}"
        ) from e
    if isinstance(converted, pa.Table):
        return converted
    return pa.table(converted)


def _normalize(column: pa.ChunkedArray | pa.Array) -> list[Any]:
    """Python values that compare across engines: timestamps as naive UTC datetimes, dictionary
    columns decoded."""
    t = column.type
    if pa.types.is_dictionary(t):
        column = column.cast(t.value_type)
        t = column.type
    if pa.types.is_timestamp(t):
        if t.tz is not None:
            column = column.cast(pa.timestamp(t.unit))  # the stored values are UTC already
        if t.unit == "ns":
            try:
                column = column.cast(pa.timestamp("us"))  # safe: fails if nanoseconds would be lost
            except pa.ArrowInvalid:
                return column.cast(pa.int64()).to_pylist()
    values = column.to_pylist()
    if pa.types.is_date(t):
        return [None if v is None else dt.datetime(v.year, v.month, v.day) for v in values]
    return values


def _is_nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _values_equal(a: Any, b: Any, rtol: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, bool) or isinstance(b, bool):
            return a == b
        try:
            fa, fb = float(a), float(b)
        except (TypeError, ValueError):
            return False
        if math.isnan(fa) or math.isnan(fb):
            return math.isnan(fa) and math.isnan(fb)
        return fa == fb or (rtol > 0 and math.isclose(fa, fb, rel_tol=rtol, abs_tol=0.0))
    return bool(a == b)


def _sort_key(row: Sequence[Any]) -> tuple[Any, ...]:
    """Orders rows with None, NaN and mixed int/float values without raising."""
    key: list[tuple[Any, ...]] = []
    for v in row:
        if v is None:
            key.append((2, 0, ""))
        elif _is_nan(v):
            key.append((1, 0, ""))
        elif isinstance(v, bool | int | float):
            key.append((0, 0, float(v)))
        elif isinstance(v, dt.datetime):
            key.append((0, 1, v.isoformat()))
        else:
            key.append((0, 2, str(v)))
    return tuple(key)


def _show(v: Any) -> str:
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ")
    return repr(v)


def _row_text(names: Sequence[str], row: Sequence[Any]) -> str:
    return "{" + ", ".join(f"{n}={_show(v)}" for n, v in zip(names, row, strict=True)) + "}"


def _fail(headline: str, details: Iterable[str], total: int | None = None) -> None:
    lines = list(details)
    shown = lines[:MAX_SHOWN]
    text = headline + "".join(f"\n  {line}" for line in shown)
    count = len(lines) if total is None else total
    if count > len(shown):
        text += f"\n  ... and {count - len(shown)} more"
    raise AssertionError(text)


def _rows(table: pa.Table, names: Sequence[str]) -> list[tuple[Any, ...]]:
    columns = [_normalize(table.column(n)) for n in names]
    return list(zip(*columns, strict=True)) if columns else [() for _ in range(table.num_rows)]


# ---------------------------------------------------------------------------------------------
# assert_tables_equal


def assert_tables_equal(
    actual: Any,
    expected: Any,
    *,
    sort_by: Sequence[str] | str | None = None,
    check_dtype: bool = False,
    float_rtol: float = 0.0,
) -> None:
    """Assert two tables hold the same rows, in any order.

    Both tables must have the same column names (in any order). Rows are sorted by ``sort_by``
    (default: every column, floats last) and compared cell by cell. ``check_dtype`` also compares
    the Arrow types; without it, 3 equals 3.0, a ``large_string`` equals a ``string`` and
    timestamps compare as instants whatever their unit or time zone. Floats are equal within
    ``float_rtol`` (relative; 0 means bit-equal, and NaN equals NaN). Nulls equal only nulls.
    """
    __tracebackhide__ = True
    actual = _as_table(actual, "actual")
    expected = _as_table(expected, "expected")
    names = list(actual.column_names)
    missing = [n for n in expected.column_names if n not in names]
    extra = [n for n in names if n not in expected.column_names]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing from actual: {', '.join(missing)}")
        if extra:
            parts.append(f"not expected: {', '.join(extra)}")
        raise AssertionError(
            f"tables have different columns ({'; '.join(parts)})\n"
            f"  actual:   {', '.join(names)}\n  expected: {', '.join(expected.column_names)}"
        )
    if check_dtype:
        wrong = [
            f"{n}: actual {actual.schema.field(n).type}, expected {expected.schema.field(n).type}"
            for n in names
            if actual.schema.field(n).type != expected.schema.field(n).type
        ]
        if wrong:
            _fail(f"column types differ ({len(wrong)} of {len(names)} columns):", wrong)

    if isinstance(sort_by, str):
        sort_by = [sort_by]
    if sort_by is None:
        floats = [n for n in names if pa.types.is_floating(actual.schema.field(n).type)]
        order = [n for n in names if n not in floats] + floats
    else:
        unknown = [n for n in sort_by if n not in names]
        if unknown:
            raise KeyError(
                f"sort_by: no column {', '.join(map(repr, unknown))} (columns: {', '.join(names)})"
            )
        order = list(sort_by) + [n for n in names if n not in sort_by]
    a_rows = sorted(_rows(actual, order), key=_sort_key)
    e_rows = sorted(_rows(expected, order), key=_sort_key)

    if len(a_rows) != len(e_rows):
        a_count, e_count = Counter(map(_hashable, a_rows)), Counter(map(_hashable, e_rows))
        only_a = list((a_count - e_count).elements())
        only_e = list((e_count - a_count).elements())
        details = [f"only in actual:   {_row_text(order, _unhash(r))}" for r in only_a[:MAX_SHOWN]]
        details += [f"only in expected: {_row_text(order, _unhash(r))}" for r in only_e[:MAX_SHOWN]]
        raise AssertionError(
            f"tables have different row counts: actual {len(a_rows)}, expected {len(e_rows)}"
            + "".join(f"\n  {d}" for d in details)
        )

    mismatches = []
    for i, (ra, re_) in enumerate(zip(a_rows, e_rows, strict=True)):
        cols = [n for n, va, ve in zip(order, ra, re_, strict=True) if not _values_equal(va, ve, float_rtol)]
        if cols:
            diff = "; ".join(
                f"{n}: actual {_show(ra[order.index(n)])}, expected {_show(re_[order.index(n)])}"
                for n in cols
            )
            mismatches.append(
                f"row {i}: {diff}\n    actual   {_row_text(order, ra)}\n    expected {_row_text(order, re_)}"
            )
    if mismatches:
        rtol = f", float_rtol={float_rtol}" if float_rtol else ""
        _fail(
            f"tables differ in {len(mismatches)} of {len(a_rows)} rows (sorted by {', '.join(order)}{rtol}):",
            mismatches,
        )


def _hashable(row: tuple[Any, ...]) -> tuple[Any, ...]:
    # NaN != NaN would make Counter treat equal rows as different
    return tuple(("__nan__",) if _is_nan(v) else v for v in row)


def _unhash(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(float("nan") if v == ("__nan__",) else v for v in row)


# ---------------------------------------------------------------------------------------------
# comparing served answers


def _keyed(table: pa.Table, keys: Sequence[str], what: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Rows by key; fails when the key columns do not identify the rows."""
    names = table.column_names
    columns = {n: _normalize(table.column(n)) for n in names}
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for i in range(table.num_rows):
        row = {n: columns[n][i] for n in names}
        key = tuple(row[k] for k in keys)
        if key in out:
            raise AssertionError(
                f"{what}: several rows for {_row_text(keys, key)}: the columns {', '.join(keys)} "
                "must identify the rows (aggregate the table first)"
            )
        out[key] = row
    return out


def _distinct_metrics(store: Store, view: str) -> set[str]:
    definition = store.views().get(view)
    if definition is None:
        from lamina.errors import NotFoundError

        raise NotFoundError(f"no view named {view!r}")
    return {name for name, agg in definition.metrics.items() if agg.agg in ("count_distinct", "quantile")}


def _top_k_metrics(store: Store, view: str) -> set[str]:
    return {name for name, agg in store.views()[view].metrics.items() if agg.agg == "top_k"}


def _top_k_problems(where: str, m: str, row: Mapping[str, Any], expected: Any) -> list[str]:
    """A served top-k list against the oracle's (a list of ``{value, count}``): equal when the row
    is exact; otherwise every oracle value the row lists has its true count within its bounds."""
    served = row[m] or []
    truth = [(e["value"], e["count"]) for e in (expected or [])]
    if row.get(f"{m}_exact", True):
        got = [(e["value"], e["count"]) for e in served]
        return [] if got == truth else [f"{where}: {m} served {got}, oracle {truth}"]
    true_count = dict(truth)
    return [
        f"{where}: {m} lists {e['value']!r} with bounds [{e['lower']}, {e['upper']}], "
        f"but the oracle counts {true_count[e['value']]}"
        for e in served
        if e["value"] in true_count and not e["lower"] <= true_count[e["value"]] <= e["upper"]
    ]


def assert_matches_oracle(
    store: Store,
    view: str,
    oracle_table: Any,
    *,
    by: Sequence[str] | None = None,
    grain: str | None = None,
    start: Any = None,
    end: Any = None,
    where: Mapping[str, Any] | None = None,
    float_rtol: float = 1e-9,
) -> None:
    """Assert the served answer of ``view`` agrees with ``oracle_table``, computed another way.

    The oracle has a ``bucket`` column (bucket start, as a timestamp with or without time zone,
    or a date), one column per group-by dimension (``by``, default: all the view's dimensions),
    and a column per metric to check, named like the view's metrics; metrics it leaves out are
    not checked. Groups must match one to one. Exact metrics must be equal (floats within
    ``float_rtol``: lamina's float sums are correctly rounded, an oracle's usually are not).
    A ``count_distinct`` or ``quantile`` metric must equal the oracle where the served row says it
    is exact, and the oracle's value must lie within ``<metric>_lower`` and ``<metric>_upper``
    where it is not. A ``top_k`` metric's oracle column is a list of ``{value, count}`` (the true
    top k, count descending then value): equal where exact; otherwise each value both list must
    have its true count within the served ``lower`` and ``upper``.
    ``grain``, ``start``, ``end`` and ``where`` are passed to :meth:`lamina.Store.query`.
    """
    __tracebackhide__ = True
    oracle = _as_table(oracle_table, "oracle_table")
    distinct = _distinct_metrics(store, view)
    top_k = _top_k_metrics(store, view)
    dims = list(store.views()[view].by) if by is None else ([by] if isinstance(by, str) else list(by))
    served = store.query(view, start=start, end=end, grain=grain, by=dims, where=where)
    keys = ["bucket", *dims]
    absent = [k for k in keys if k not in oracle.column_names]
    if absent:
        raise AssertionError(
            f"the oracle table lacks the key columns {', '.join(absent)} "
            f"(it needs {', '.join(keys)}; it has {', '.join(oracle.column_names)})"
        )
    metrics = [c for c in oracle.column_names if c not in keys]
    unknown = [m for m in metrics if m not in served.column_names]
    if unknown:
        raise AssertionError(
            f"the oracle's columns {', '.join(unknown)} are not in the served answer of {view!r} "
            f"(columns: {', '.join(served.column_names)})"
        )
    if not metrics:
        raise AssertionError("the oracle table has no metric column to compare")

    got = _keyed(served, keys, f"served answer of {view!r}")
    want = _keyed(oracle, keys, "oracle table")
    problems: list[str] = []
    for key in sorted(want.keys() - got.keys(), key=_sort_key):
        problems.append(f"group missing from the served answer: {_row_text(keys, key)} (oracle: {want[key]})")
    for key in sorted(got.keys() - want.keys(), key=_sort_key):
        shown = {m: got[key][m] for m in metrics}
        problems.append(f"group served but not in the oracle: {_row_text(keys, key)} (served: {shown})")
    compared = 0
    for key in sorted(got.keys() & want.keys(), key=_sort_key):
        row, truth = got[key], want[key]
        compared += 1
        for m in metrics:
            value, expected = row[m], truth[m]
            if m in top_k:
                problems.extend(_top_k_problems(_row_text(keys, key), m, row, expected))
            elif m in distinct and not row.get(f"{m}_exact", True):
                lo, hi = row[f"{m}_lower"], row[f"{m}_upper"]
                if expected is None or lo is None or hi is None or not lo <= expected <= hi:
                    problems.append(
                        f"{_row_text(keys, key)}: {m} (approximate) = {value} with bounds [{lo}, {hi}], "
                        f"but the oracle says {_show(expected)}"
                    )
            elif not _values_equal(value, expected, float_rtol):
                problems.append(
                    f"{_row_text(keys, key)}: {m} served {_show(value)}, oracle {_show(expected)}"
                )
    if problems:
        _fail(
            f"the served answer of {view!r} (by {', '.join(dims) or 'nothing'}"
            f"{', grain ' + grain if grain else ''}) disagrees with the oracle in {len(problems)} places "
            f"({len(got)} groups served, {len(want)} in the oracle):",
            problems,
        )


def assert_within_bounds(table: Any, metric: str, truth: Any) -> None:
    """Assert ``<metric>_lower <= truth <= <metric>_upper`` on every row of a served ``table``.

    ``truth`` is a table with the true values: the key columns it shares with ``table`` (for
    example ``bucket`` and the dimensions) and one value column, named ``metric`` or the only
    other column. Rows are matched on the key columns; every served row needs a true value and
    every true value a served row. Rows marked exact (``<metric>_exact``) must equal the truth.
    A plain number is accepted as ``truth`` when ``table`` has a single row.
    """
    __tracebackhide__ = True
    table = _as_table(table, "table")
    for suffix in ("_lower", "_upper"):
        if f"{metric}{suffix}" not in table.column_names:
            raise AssertionError(
                f"the table has no {metric}{suffix} column: is {metric!r} a count_distinct or quantile "
                "metric? "
                f"(columns: {', '.join(table.column_names)})"
            )
    if isinstance(truth, int | float) and not isinstance(truth, bool):
        if table.num_rows != 1:
            raise AssertionError(f"a single true value needs a one-row table, not {table.num_rows} rows")
        truth = pa.table({"__truth__": [truth]})
        value_column, keys = "__truth__", []
    else:
        truth = _as_table(truth, "truth")
        if metric in truth.column_names:
            value_column = metric
        else:
            others = [c for c in truth.column_names if c not in table.column_names]
            if len(others) != 1:
                raise AssertionError(
                    f"cannot tell the value column of the truth table: name it {metric!r} "
                    f"(its columns: {', '.join(truth.column_names)})"
                )
            value_column = others[0]
        keys = [c for c in truth.column_names if c != value_column]
        stray = [k for k in keys if k not in table.column_names]
        if stray:
            raise AssertionError(f"the truth table's key columns {', '.join(stray)} are not in the table")
    got = _keyed(table, keys, "table")
    want = _keyed(truth, keys, "truth")
    exact_column = f"{metric}_exact" if f"{metric}_exact" in table.column_names else None
    problems: list[str] = []
    for key in sorted(got.keys() - want.keys(), key=_sort_key):
        problems.append(f"no true value for the served row {_row_text(keys, key)}")
    for key in sorted(want.keys() - got.keys(), key=_sort_key):
        problems.append(f"no served row for {_row_text(keys, key)} (true value {want[key][value_column]})")
    inside = 0
    for key in sorted(got.keys() & want.keys(), key=_sort_key):
        row = got[key]
        true = want[key][value_column]
        lo, hi, est = row[f"{metric}_lower"], row[f"{metric}_upper"], row.get(metric)
        where = _row_text(keys, key) if keys else "the row"
        if true is None or lo is None or hi is None or not lo <= true <= hi:
            problems.append(f"{where}: true {metric} = {true} is outside [{lo}, {hi}] (estimate {est})")
        elif exact_column is not None and row[exact_column] and est != true:
            problems.append(f"{where}: {metric} = {est} is marked exact, but the true value is {true}")
        else:
            inside += 1
    if problems:
        _fail(
            f"{metric}: {len(problems)} problems, {inside} of {len(got)} served rows within their bounds:",
            problems,
        )


def assert_consistent(store: Store, view: str | None = None) -> None:
    """Fail unless ``store.verify(view)`` finds no difference: a fresh recompute of the snapshot
    the served answer stands at gives the same exact values, and approximate values inside
    their bounds. The message lists the first differences."""
    __tracebackhide__ = True
    diff = store.verify(view)
    if diff.num_rows:
        rows = diff.to_pylist()
        _fail(
            f"{diff.num_rows} difference(s) between the served answer and a fresh recompute",
            (
                f"{r['view']} {r['bucket']} {r['group']} {r['metric']}: served {r['served']}, "
                f"fresh {r['fresh']} ({r['problem']})"
                for r in rows
            ),
            diff.num_rows,
        )


def assert_every_event_counted(store: Store, view: str, count_metric: str, expected_rows: Any) -> None:
    """Assert the served ``count_metric`` (a ``lamina.count()`` metric of ``view``) adds up to
    ``expected_rows`` (a number, or a table whose rows are the events the view should count),
    and that the batch part plus the speed part add up to the served answer: no event is
    missed and none is counted twice. Call it while no other thread appends to the store.
    """
    __tracebackhide__ = True
    definition = store.views().get(view)
    if definition is None:
        from lamina.errors import NotFoundError

        raise NotFoundError(f"no view named {view!r}")
    agg = definition.metrics.get(count_metric)
    if agg is None or agg.agg != "count":
        raise AssertionError(
            f"{count_metric!r} is not a count() metric of view {view!r} "
            f"(metrics: {', '.join(f'{k}={v!r}' for k, v in definition.metrics.items())})"
        )
    if not isinstance(expected_rows, int):
        if hasattr(expected_rows, "num_rows"):
            expected_rows = expected_rows.num_rows
        else:
            expected_rows = len(expected_rows)

    def total(table: pa.Table) -> int:
        return sum(v for v in table.column(count_metric).to_pylist() if v is not None)

    served = total(store.query(view))
    batch = total(store.batch_view(view))
    speed = total(store.speed_view(view))
    problems = []
    if served != expected_rows:
        gap = served - expected_rows
        how = f"{gap:,} counted twice or invented" if gap > 0 else f"{-gap:,} missing"
        problems.append(f"served {count_metric} adds up to {served:,}, expected {expected_rows:,}: {how}")
    if batch + speed != served:
        problems.append(
            f"batch view ({batch:,}) + speed layer ({speed:,}) = {batch + speed:,}, "
            f"but the served answer adds up to {served:,}"
        )
    if problems:
        raise AssertionError(
            f"view {view!r}: not every event counted exactly once:\n  " + "\n  ".join(problems)
        )
