"""Quantile and top-k aggregates (README "Quantile and top-k sketches") against independent oracles.

Oracles: DuckDB (``quantile_cont``; ``count(*) GROUP BY value ORDER BY count DESC, value``) over the
same generated events, numpy for ranks. Data: seeded numpy RNG, with nulls, ties, negative values,
zipf skew, late events into buckets the batch view covers, unicode keys, int64/uint64/float columns.

How a served quantile is judged:

When must an answer be exact? Always in a batch view and in served groups with no speed data
(README "Quantile and top-k sketches"). Elsewhere (speed data, roll-ups) the answer comes from
merged states; a merged state
that still holds every value (a small KLL sketch, an unbounded or small frequent-items summary)
may truthfully say ``exact`` -- then it is held to the exact standard below. Each test checks that
its lossy path really ran (a minimum number of approximate answers).

* exact (``<m>_exact`` true): the value
  equals DuckDB's ``quantile_cont`` and ``lower == value == upper``. The comparison allows
  ``1e-12 * max(|a|, |b|)`` where ``a <= truth <= b`` are the two order statistics the linear
  interpolation runs between. Why not bit equality: the contract names DuckDB's ``quantile_cont``
  and numpy's default as *the* exact value, yet the two differ in the last bit in about one case in
  five (``a + (b - a) * t`` against numpy's two-sided lerp). Any correct linear interpolation lands
  within a few ulps of ``max(|a|, |b|)``; a wrong rank, a nearest-rank method or a ``n * q``
  position misses by a fraction of ``b - a``, far more than 1e-12 of the bracket (unless a == b,
  where every method gives the same value anyway). q = 0 and q = 1 have no interpolation at all.
* approximate: ``lower <= value <= upper``, the truth within the bounds in at least 95% of the
  cases (checked with a binomial allowance of three standard deviations, so that a sketch that is
  right 95% of the time does not fail half of the runs; the measured coverage is printed), and the
  estimate within 5% of rank of the truth (so that a wild estimate fails) and, for large groups,
  bounds spanning at most 10% of rank at the median (so that [-inf, inf] bounds fail).

Top-k: exact lists equal DuckDB's; approximate lists must hold the true count of *every* listed item
between ``lower`` and ``upper`` (deterministic, no allowance), be sorted by count descending then
value ascending, and list the true top value first whenever its lead over the runner-up exceeds
n / (k + 1) (any counter sketch keeping at least k counters guarantees that).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import lamina

T0 = dt.datetime(2026, 3, 2)  # a Monday
HOUR = 3_600_000_000
DAY = 24 * HOUR
GRAIN_US = {"1h": HOUR, "6h": 6 * HOUR, "1d": DAY}

CITIES = ["Zürich", "東京", "😀", "São Paulo", "Zurich", "", "ｱ"]
# Pages drawn with zipf skew: the first few dominate, the tail is long; unicode in the names.
PAGES = ["/", "/cart", "/東京/駅", "/straße", "/😀", "/search", "/ｱ"] + [f"/p{i}" for i in range(40)]

QS = {"p0": 0.0, "p1": 0.01, "p50": 0.5, "p95": 0.95, "p100": 1.0}
# metric -> (column, q) and metric -> (column, k) of the main view.
QM = {f"lat_{name}": ("lat", q) for name, q in QS.items()} | {
    "qty_p50": ("qty", 0.5),
    "qty_p95": ("qty", 0.95),
}
TM = {"top_pages": ("page", 5), "top_codes": ("code", 3), "top_ok": ("ok", 2)}


# ---------------------------------------------------------------- data


def make_events(
    n: int,
    seed: int,
    *,
    start: dt.datetime = T0,
    hours: float = 6.0,
    cities: list[str | None] | None = None,
    null_rate: float = 0.05,
) -> pa.Table:
    """ts (shuffled), city (unicode, some null), page (zipf strings), lat (float: skewed, both signs,
    ties), qty (int64, heavy ties, negative), code (int64, zipf with negatives), ok (bool)."""
    rng = np.random.default_rng(seed)
    base = np.datetime64(start, "us")
    ts = base + rng.integers(0, int(hours * HOUR), n).astype("timedelta64[us]")

    def mask() -> np.ndarray:
        return rng.random(n) < null_rate

    if cities is None:
        city = pa.array(rng.choice(CITIES, n), mask=mask())
    else:
        idx = rng.integers(0, len(cities), n)
        city = pa.array([cities[i] for i in idx], pa.string())
    ranks = np.minimum(rng.zipf(1.6, n), len(PAGES)) - 1
    page = pa.array(np.array(PAGES, dtype=object)[ranks], pa.string(), mask=mask())
    lat = rng.lognormal(3.0, 1.5, n)
    lat = np.where(rng.random(n) < 0.1, -lat, lat)  # some negative
    lat = np.where(rng.random(n) < 0.3, np.round(lat), lat)  # ties
    lat = pa.array(lat, mask=mask())
    qty = pa.array(rng.integers(-20, 20, n), mask=mask())
    code = pa.array(np.minimum(rng.zipf(1.3, n), 1_000) - 5, mask=mask())
    ok = pa.array(rng.random(n) < 0.7, mask=mask())
    return pa.table({"ts": ts, "city": city, "page": page, "lat": lat, "qty": qty, "code": code, "ok": ok})


def main_view(name: str = "v", by: tuple[str, ...] = ("city",), **kw) -> lamina.View:
    metrics: dict[str, lamina.Aggregate] = {"n": lamina.count()}
    metrics |= {m: lamina.quantile(c, q) for m, (c, q) in QM.items()}
    metrics |= {m: lamina.top_k(c, k) for m, (c, k) in TM.items()}
    return lamina.View(name, time="ts", grain="1h", by=by, metrics=metrics, **kw)


def append_chunks(store: lamina.Store, t: pa.Table, step: int) -> None:
    for i in range(0, t.num_rows, step):
        store.append(t.slice(i, step))


# ---------------------------------------------------------------- oracle


def duck(tables: dict[str, pa.Table], sql: str) -> list[dict]:
    con = duckdb.connect()
    for name, t in tables.items():
        con.register(name, t)
    res = con.sql(sql).arrow()
    if isinstance(res, pa.RecordBatchReader):
        res = res.read_all()
    return res.to_pylist()


class Truth:
    """The view computed by DuckDB: per group (bucket in us, *dims), the exact quantiles, the sorted
    non-null values of each quantile column, the value counts and the ordered top list of each
    top-k column."""

    def __init__(self, events: pa.Table, grain: str, by: list[str], qm=QM, tm=TM) -> None:
        g = GRAIN_US[grain]
        self.by = list(by)
        dims = "".join(f", {d}" for d in by)
        order = "".join(f", {d} NULLS LAST" for d in by)
        qcols = ", ".join(f'quantile_cont({c}, {q!r}) AS "{m}"' for m, (c, q) in qm.items())
        vcols = ", ".join(
            f'list({c} ORDER BY {c}) FILTER (WHERE {c} IS NOT NULL) AS "{c}@vals"'
            for c in sorted({c for c, _ in qm.values()})
        )
        rows = duck(
            {"ev": events},
            f"SELECT (epoch_us(ts) // {g}) * {g} AS bucket{dims}, count(*) AS n, {qcols}, {vcols} "
            f"FROM ev GROUP BY ALL ORDER BY bucket{order}",
        )
        self.keys = [self.key(r) for r in rows]
        self.n = {self.key(r): r["n"] for r in rows}
        self.q = {m: {self.key(r): r[m] for r in rows} for m in qm}
        self.vals = {
            c: {self.key(r): np.array(r[f"{c}@vals"] or [], dtype=np.float64) for r in rows}
            for c in {c for c, _ in qm.values()}
        }
        self.counts: dict[str, dict[tuple, dict]] = {}
        self.top: dict[str, dict[tuple, list]] = {}
        for c in sorted({c for c, _ in tm.values()}):
            counts: dict[tuple, dict] = defaultdict(dict)
            top: dict[tuple, list] = defaultdict(list)
            ranked = duck(
                {"ev": events},
                f"WITH c AS (SELECT (epoch_us(ts) // {g}) * {g} AS bucket{dims}, {c} AS value, "
                f"count(*) AS c FROM ev WHERE {c} IS NOT NULL GROUP BY ALL) "
                f"SELECT *, row_number() OVER (PARTITION BY bucket{dims} ORDER BY c DESC, value) AS rn "
                f"FROM c ORDER BY bucket{order}, rn",
            )
            for r in ranked:
                counts[self.key(r)][r["value"]] = r["c"]
                top[self.key(r)].append((r["value"], r["c"]))
            self.counts[c], self.top[c] = counts, top

    def key(self, r: dict) -> tuple:
        return (r["bucket"], *(r[d] for d in self.by))


def served_rows(table: pa.Table, by: list[str]) -> dict[tuple, dict]:
    """Rows of a lamina result keyed like Truth (bucket as integer microseconds), checking that the
    table is sorted by bucket then dimensions."""
    i = table.schema.get_field_index("bucket")
    assert pa.types.is_timestamp(table.schema.field("bucket").type)
    table = table.set_column(i, "bucket", table["bucket"].cast(pa.int64()))
    out = {}
    for r in table.to_pylist():
        k = (r["bucket"], *(r[d] for d in by))
        assert k not in out, f"group {k} twice"
        out[k] = r
    return out


def interp_bracket(vals: np.ndarray, q: float) -> tuple[float, float]:
    h = (len(vals) - 1) * q
    return float(vals[math.floor(h)]), float(vals[math.ceil(h)])


def tolerance(vals: np.ndarray, q: float) -> float:
    a, b = interp_bracket(vals, q)
    return 1e-12 * max(abs(a), abs(b))


def rank_error(vals: np.ndarray, x: float, q: float) -> float:
    """How far (in normalized rank) x is from the exact q quantile, in the interpolation's terms:
    x stands for the positions of the sorted values it equals, or, between two neighbouring
    values, for the open interval of positions between them; the distance from the position
    (n - 1) * q that quantile_cont interpolates at, divided by n - 1."""
    n = len(vals)
    h = (n - 1) * q
    left = int(np.searchsorted(vals, x, "left"))
    right = int(np.searchsorted(vals, x, "right"))
    a, b = (left, right - 1) if right > left else (left - 1, left)
    return max(0.0, a - h, h - b) / max(n - 1, 1)


class Coverage:
    """Counts how often approximate bounds hold the truth, per metric."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = defaultdict(int)
        self.total: dict[str, int] = defaultdict(int)
        self.rank_errors: list[float] = []

    def add(self, metric: str, hit: bool) -> None:
        self.hits[metric] += hit
        self.total[metric] += 1

    def check(self, label: str, at_least: int = 1) -> float:
        hits, total = sum(self.hits.values()), sum(self.total.values())
        assert total >= at_least, f"{label}: only {total} approximate quantiles were checked"
        if total == 0:
            return 1.0
        rate = hits / total
        per = {m: f"{self.hits[m]}/{self.total[m]}" for m in sorted(self.total)}
        worst = max(self.rank_errors, default=0.0)
        print(f"\n{label}: coverage {hits}/{total} = {rate:.4f}; max rank error {worst:.4f}; {per}")
        slack = 3 * math.sqrt(0.95 * 0.05 / total)
        assert rate >= 0.95 - slack, (
            f"{label}: quantile bounds hold the truth in {rate:.3f} of {total} cases ({per}), "
            f"below 0.95 - {slack:.3f}"
        )
        return rate


def describe(row: dict) -> str:
    return f"{row.get('bucket')} {[v for c, v in row.items() if c in ('city', 'ok', 'g')]}"


def check_quantile(
    row: dict, m: str, q: float, vals: np.ndarray, want: float | None, must_exact: bool | None, cov
) -> None:
    v, ex, lo, hi = row[m], row[f"{m}_exact"], row[f"{m}_lower"], row[f"{m}_upper"]
    where = f"{m} (q={q}) of group {describe(row)}"
    if len(vals) == 0:
        assert want is None
        assert v is None and lo is None and hi is None, f"{where}: only nulls must give null"
        return
    assert v is not None and lo is not None and hi is not None, f"{where}: null for {len(vals)} values"
    assert ex in (True, False), where
    if must_exact is not None:
        assert ex is must_exact, f"{where}: exact is {ex}, expected {must_exact}"
    tol = tolerance(vals, q)
    if ex:
        assert abs(v - want) <= tol, f"{where}: {v!r} != quantile_cont {want!r}"
        assert lo == v == hi, f"{where}: exact but bounds [{lo!r}, {hi!r}] differ from {v!r}"
    else:
        assert lo <= v <= hi, f"{where}: estimate {v} outside its own bounds [{lo}, {hi}]"
        cov.add(m, lo - tol <= want <= hi + tol)
        err = rank_error(vals, v, q)
        cov.rank_errors.append(err)
        assert err <= 0.05, f"{where}: estimate {v} is {err:.3f} of rank away from q={q} (n={len(vals)})"


def check_topk(row: dict, m: str, k: int, counts: dict, top: list, must_exact: bool | None) -> None:
    items, ex = row[m], row[f"{m}_exact"]
    where = f"{m} (k={k}) of group {describe(row)}"
    assert items is not None, f"{where}: null list (an empty list is the answer for no values)"
    assert ex in (True, False), where
    if must_exact is not None:
        assert ex is must_exact, f"{where}: exact is {ex}, expected {must_exact}"
    if not counts:
        assert items == [], f"{where}: only nulls must give an empty list, got {items}"
        return
    assert 1 <= len(items) <= k, f"{where}: {len(items)} items"
    assert set(items[0]) == {"value", "count", "lower", "upper"}, items[0]
    order = [(-it["count"], it["value"]) for it in items]
    assert order == sorted(order), f"{where}: not sorted by count desc then value: {items}"
    assert len({it["value"] for it in items}) == len(items), f"{where}: a value twice: {items}"
    if ex:
        got = [(it["value"], it["count"]) for it in items]
        assert got == top[:k], f"{where}: {got} != DuckDB {top[:k]}"
        for it in items:
            assert it["lower"] == it["count"] == it["upper"], f"{where}: exact but {it}"
        return
    n = sum(counts.values())
    for it in items:
        true = counts.get(it["value"], 0)
        assert it["lower"] <= it["count"] <= it["upper"], f"{where}: {it}"
        assert it["lower"] <= true <= it["upper"], f"{where}: true count {true} outside {it}"
    lead = top[0][1] - (top[1][1] if len(top) > 1 else 0)
    if lead > n / (k + 1):
        assert items[0]["value"] == top[0][0], (
            f"{where}: the true top {top[0]} (lead {lead} of {n}) is not listed first: {items}"
        )


def check_table(
    table: pa.Table,
    truth: Truth,
    *,
    exact=lambda key, kind, column: None,
    cov: Coverage | None = None,
    qm=QM,
    tm=TM,
) -> dict[tuple, dict]:
    """Every group of the result against the oracle. ``exact(key, kind, column)`` says whether the
    group must be exact (True), must not be (False) or may be either (None)."""
    cov = cov if cov is not None else Coverage()
    rows = served_rows(table, truth.by)
    assert list(rows) == truth.keys, "groups (or their order) differ from the oracle"
    for key, row in rows.items():
        assert row["n"] == truth.n[key], f"{key}: count {row['n']} != {truth.n[key]}"
        for m, (c, q) in qm.items():
            vals = truth.vals[c][key]
            check_quantile(row, m, q, vals, truth.q[m][key], exact(key, "quantile", c), cov)
        for m, (c, k) in tm.items():
            counts = truth.counts[c].get(key, {})
            check_topk(row, m, k, counts, truth.top[c].get(key, []), exact(key, "top_k", c))
    return rows


def all_exact(key, kind, column) -> bool:
    return True


def sanity_check_oracle(truth: Truth) -> None:
    """The oracle itself: DuckDB's quantile_cont agrees with numpy's default (linear)."""
    for m, (c, q) in QM.items():
        for key, vals in truth.vals[c].items():
            if len(vals):
                assert abs(np.quantile(vals, q) - truth.q[m][key]) <= tolerance(vals, q)


def keys_with_values(events: pa.Table, grain: str, by: list[str], column: str) -> set[tuple]:
    g = GRAIN_US[grain]
    dims = "".join(f", {d}" for d in by)
    rows = duck(
        {"ev": events},
        f"SELECT DISTINCT (epoch_us(ts) // {g}) * {g} AS bucket{dims} FROM ev WHERE {column} IS NOT NULL",
    )
    return {(r["bucket"], *(r[d] for d in by)) for r in rows}


def keys_with_rows(events: pa.Table, grain: str, by: list[str]) -> set[tuple]:
    return keys_with_values(events, grain, by, "TRUE")


# ---------------------------------------------------------------- 1. batch: exact


@pytest.mark.parametrize("by", [["city"], ["city", "ok"]], ids=["city", "city-ok"])
def test_batch_quantiles_and_top_k_equal_duckdb(by):
    ev = make_events(24_000, seed=1)
    with lamina.Store() as store:
        append_chunks(store, ev, 5_000)  # several segments
        store.define(main_view(by=tuple(by)))
        store.recompute(progress=False)
        truth = Truth(ev, "1h", by)
        sanity_check_oracle(truth)
        for table in (store.batch_view("v"), store.query("v"), store.query("v", grain="1h", by=by)):
            check_table(table, truth, exact=all_exact)
        assert store.speed_view("v").num_rows == 0
        # A filter and a time range select groups without merging them: still exact.
        start, end = T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=4)
        got = served_rows(store.query("v", start=start, end=end, where={"city": ["東京", "😀"]}), by)
        t0 = int(np.datetime64(T0, "us").astype(np.int64))
        want = [k for k in truth.keys if k[1] in ("東京", "😀") and t0 + HOUR <= k[0] < t0 + 4 * HOUR]
        assert list(got) == want and len(want) >= 6
        for key, row in got.items():
            for m, (c, q) in QM.items():
                check_quantile(row, m, q, truth.vals[c][key], truth.q[m][key], True, None)


def test_result_schema():
    ev = make_events(100, seed=2)
    with lamina.Store() as store:
        store.append(ev)
        store.define(main_view(where={"city": "nowhere"}))
        store.define(main_view("all"))
        empty = store.query("v")
        assert empty.num_rows == 0
        for t in (empty, store.query("all")):
            s = t.schema
            for m in QM:
                assert s.field(m).type == pa.float64(), (m, s.field(m).type)
                assert s.field(f"{m}_exact").type == pa.bool_()
                assert s.field(f"{m}_lower").type == pa.float64()
                assert s.field(f"{m}_upper").type == pa.float64()
            for m, (c, _k) in TM.items():
                typ = s.field(m).type
                assert pa.types.is_list(typ) or pa.types.is_large_list(typ), (m, typ)
                st = typ.value_type
                assert pa.types.is_struct(st), (m, typ)
                assert [st.field(i).name for i in range(st.num_fields)] == [
                    "value",
                    "count",
                    "lower",
                    "upper",
                ], typ
                value_type = st.field("value").type
                col_type = ev.schema.field(c).type
                assert value_type == col_type or (
                    pa.types.is_string(col_type) and pa.types.is_large_string(value_type)
                ), (m, value_type, col_type)
                for f in ("count", "lower", "upper"):
                    assert pa.types.is_integer(st.field(f).type), (m, f, st.field(f).type)
                assert s.field(f"{m}_exact").type == pa.bool_()
        store.recompute(progress=False)
        assert store.batch_view("v").schema.equals(empty.schema)


def test_batch_is_identical_across_threads_and_layout():
    ev = make_events(15_000, seed=3)
    answers = []
    for threads, step in [(1, 15_000), (2, 2_222)]:
        with lamina.Store(auto_compact=False) as s:
            append_chunks(s, ev, step)
            s.define(main_view())
            s.recompute(threads=threads, progress=False)
            answers.append(s.batch_view("v"))
    assert answers[0].equals(answers[1])


def test_changing_q_or_k_changes_the_definition():
    ev = make_events(3_000, seed=4)
    with lamina.Store() as store:
        store.append(ev)

        def view(q: float, k: int) -> lamina.View:
            metrics = {"n": lamina.count(), "p": lamina.quantile("lat", q), "t": lamina.top_k("page", k)}
            return lamina.View("w", time="ts", grain="1h", metrics=metrics)

        assert store.define(view(0.95, 3))
        store.recompute(progress=False)
        assert not store.define(view(0.95, 3))
        for q, k in [(0.9, 3), (0.9, 4)]:
            assert store.define(view(q, k)), f"redefining with q={q}, k={k} was ignored"
            assert store.views()["w"] == view(q, k)
            assert store.batch_view("w").num_rows == 0, "the old batch view is still served"
            store.recompute(progress=False)
            truth = Truth(ev, "1h", [], qm={"p": ("lat", q)}, tm={"t": ("page", k)})
            check_table(store.query("w"), truth, exact=all_exact, qm={"p": ("lat", q)}, tm={"t": ("page", k)})


# ---------------------------------------------------------------- 2/3. served with speed data


def test_served_with_late_events_in_the_speed_layer():
    by = ["city"]
    first = make_events(20_000, seed=11)
    # Late events: into the first three hours the batch view covers, for three cities only.
    late1 = make_events(2_000, seed=12, hours=3, cities=["Zürich", "東京", None])
    late2 = make_events(1_500, seed=13, hours=3, cities=["Zürich", "東京", None])
    # New events: hours 6..8, every city.
    new = make_events(2_000, seed=14, start=T0 + dt.timedelta(hours=6), hours=2)
    with lamina.Store() as store:
        append_chunks(store, first, 7_000)
        store.define(main_view())
        store.recompute(progress=False)
        for t in (late1, late2, new):
            store.append(t)
        speed = pa.concat_tables([late1, late2, new])
        everything = store.snapshot()
        assert everything.num_rows == first.num_rows + speed.num_rows
        truth = Truth(everything, "1h", by)
        speed_rows = keys_with_rows(speed, "1h", by)
        speed_values = {c: keys_with_values(speed, "1h", by, c) for c in ("lat", "qty", "page", "code", "ok")}

        def exact(key, kind, column):
            # Only the batch layer holds this group: exact. Otherwise the answer comes from merged
            # sketches; one that still holds every value may say exact (then it must be right).
            return True if key not in speed_rows else None

        cov = Coverage()
        rows = check_table(store.query("v"), truth, exact=exact, cov=cov)
        cov.check("served quantiles with late events", at_least=50)
        # The test means something: both kinds of groups exist, late ones into old buckets.
        t0 = int(np.datetime64(T0, "us").astype(np.int64))
        touched_old = [k for k in speed_rows if k[0] < t0 + 3 * HOUR]
        assert len(touched_old) >= 6 and len(rows) - len(speed_rows) >= 20
        approx = [k for k in speed_values["lat"] if not rows[k]["lat_p50_exact"]]
        assert len(approx) >= 6, "no late group was served from a lossy sketch: the test tests nothing"

        # The speed part alone answers for the appended rows only.
        cov_speed = Coverage()
        check_table(store.speed_view("v"), Truth(speed, "1h", by), cov=cov_speed)
        cov_speed.check("speed view quantiles")

        # A recompute absorbs everything: exact again.
        store.recompute(progress=False)
        assert store.speed_view("v").num_rows == 0
        check_table(store.query("v"), truth, exact=all_exact)


def _coverage_dataset(seed: int, groups: int, exact_groups: int):
    """One day bucket, `groups` groups g with different distributions and sizes. Returns the batch
    table and three speed tables (the speed part of groups < exact_groups is empty)."""
    rng = np.random.default_rng(seed)
    base = int(np.datetime64(T0, "us").astype(np.int64))
    parts: list[list[pa.Table]] = [[], [], [], []]
    for g in range(groups):
        kind = g % 6
        n_batch = int(rng.integers(150, 2_500))
        n_speed = 0 if g < exact_groups else int(rng.integers(150, 2_500))
        n = n_batch + n_speed
        if kind == 0:
            x = rng.normal(rng.uniform(-100, 100), rng.uniform(0.1, 50), n)
        elif kind == 1:
            x = rng.lognormal(0, 2, n)  # skewed
        elif kind == 2:
            x = rng.integers(-5, 6, n).astype(np.float64)  # heavy ties
        elif kind == 3:
            x = -rng.pareto(1.5, n) * 1e6  # heavy tail, negative
        elif kind == 4:
            x = np.where(rng.random(n) < 0.3, rng.normal(-1e3, 1, n), rng.normal(1e3, 1, n))  # bimodal
        else:
            x = rng.uniform(0, 1, n) * 10.0 ** rng.uniform(-3, 9, n)  # wide magnitudes
        if g % 2 and n_speed:
            x[n_batch:] += np.std(x[:n_batch]) * 0.5  # the speed part drifts
        item = np.minimum(rng.zipf(rng.uniform(1.1, 2.0), n), 1_000_000) * (1 if g % 3 else -1)
        mask = rng.random(n) < 0.05
        t = pa.table(
            {
                "ts": pa.array(base + rng.integers(0, DAY, n), pa.timestamp("us")),
                "g": pa.array(np.full(n, g, dtype=np.int64)),
                "x": pa.array(x, mask=mask),
                "item": pa.array(item.astype(np.int64), mask=rng.random(n) < 0.05),
            }
        )
        parts[0].append(t.slice(0, n_batch))
        cut = np.sort(rng.integers(0, n_speed + 1, 2)) + n_batch if n_speed else [n, n]
        parts[1].append(t.slice(n_batch, cut[0] - n_batch))
        parts[2].append(t.slice(cut[0], cut[1] - cut[0]))
        parts[3].append(t.slice(cut[1]))
    tables = [pa.concat_tables(p).combine_chunks() for p in parts]
    # Shuffle rows within each commit: the groups arrive interleaved.
    return [t.take(rng.permutation(t.num_rows)) for t in tables]


COV_QM = {"x_p1": ("x", 0.01), "x_p50": ("x", 0.5), "x_p95": ("x", 0.95), "x_p99": ("x", 0.99)}
COV_TM = {"top_items": ("item", 5)}


def test_quantile_bounds_cover_the_truth_over_200_groups():
    groups, exact_groups = 220, 20
    batch, *speed = _coverage_dataset(seed=21, groups=groups, exact_groups=exact_groups)
    metrics = {"n": lamina.count()}
    metrics |= {m: lamina.quantile(c, q) for m, (c, q) in COV_QM.items()}
    metrics |= {m: lamina.top_k(c, k) for m, (c, k) in COV_TM.items()}
    with lamina.Store() as store:
        store.append(batch)
        store.define(lamina.View("cov", time="ts", grain="1d", by=["g"], metrics=metrics))
        store.recompute(progress=False)
        for t in speed:
            store.append(t)
        truth = Truth(store.snapshot(), "1d", ["g"], qm=COV_QM, tm=COV_TM)
        cov = Coverage()

        def exact(key, kind, column):
            if key[1] < exact_groups:
                return True
            return False if kind == "quantile" else None

        rows = check_table(store.query("cov"), truth, exact=exact, cov=cov, qm=COV_QM, tm=COV_TM)
        assert len(rows) == groups
        # Every group with speed data holds >= 285 values, more than a k=200 sketch keeps whole:
        # all 800 answers come from lossy merged sketches.
        rate = cov.check(f"{groups - exact_groups} groups x {len(COV_QM)} quantiles", at_least=800)
        approx_top = sum(not r["top_items_exact"] for r in rows.values())
        print(f"{approx_top} approximate top-k lists (bounds checked for every item)")
        assert approx_top >= 100, approx_top
        # Bounds that are useful, not [-inf, inf]: narrow in rank for large groups.
        widths = []
        for key, row in rows.items():
            vals = truth.vals["x"][key]
            if key[1] < exact_groups or len(vals) < 1_000:
                continue
            for m in COV_QM:
                lo, hi = row[f"{m}_lower"], row[f"{m}_upper"]
                w = (np.searchsorted(vals, hi, "right") - np.searchsorted(vals, lo, "left")) / len(vals)
                widths.append(w)
        print(f"median bound width in rank {np.median(widths):.4f}, max {max(widths):.4f}; coverage {rate}")
        assert np.median(widths) <= 0.10 and max(widths) <= 0.25, (np.median(widths), max(widths))


# ---------------------------------------------------------------- 3. top-k ties and values


def test_top_k_ties_are_broken_by_value_ascending():
    s_vals = (
        ["b"] * 3 + ["a"] * 3 + ["Zürich"] * 3 + ["東京"] * 2 + ["😀"] * 2 + ["ｱ"] * 2 + ["c"] + [None] * 5
    )
    i_vals = [-1, -1, 5, 5, -7, -7, 10, 10, 9, 9, 3, None, None, 4, 4, 4, 4, 4, 4, 4, 4]
    b_vals = [True, True, False, False, None, None]
    n = max(len(s_vals), len(i_vals), len(b_vals))

    def pad(v: list) -> list:
        return v + [None] * (n - len(v))

    t = pa.table(
        {
            "ts": pa.array([T0 + dt.timedelta(minutes=i) for i in range(n)], pa.timestamp("us")),
            "s": pa.array(pad(s_vals), pa.string()),
            "i": pa.array(pad(i_vals), pa.int64()),
            "b": pa.array(pad(b_vals), pa.bool_()),
        }
    )
    view = lamina.View(
        "t",
        time="ts",
        grain="1h",
        metrics={
            "ts5": lamina.top_k("s", 5),
            "ti4": lamina.top_k("i", 4),
            "tb1": lamina.top_k("b", 1),
            "tb9": lamina.top_k("b", 9),
            "ts_all": lamina.top_k("s", 100),
        },
    )
    # Codepoint (UTF-8 byte) order: "Zürich" < "a" < "b"; "東京" (U+6771) < "ｱ" (U+FF71) < "😀".
    # (UTF-16 order would put "😀" before "ｱ"; numeric order puts -7 < -1 and 9 < 10.)
    want = {
        "ts5": [("Zürich", 3), ("a", 3), ("b", 3), ("東京", 2), ("ｱ", 2)],
        "ti4": [(4, 8), (-7, 2), (-1, 2), (5, 2)],
        "tb1": [(False, 2)],
        "tb9": [(False, 2), (True, 2)],
        "ts_all": [("Zürich", 3), ("a", 3), ("b", 3), ("東京", 2), ("ｱ", 2), ("😀", 2), ("c", 1)],
    }
    # The oracle agrees with the hand-written answer.
    for m, col, k in [("ts5", "s", 5), ("ti4", "i", 4), ("tb9", "b", 9)]:
        got = duck(
            {"t": t},
            f"SELECT {col} AS v, count(*) AS c FROM t WHERE {col} IS NOT NULL "
            f"GROUP BY {col} ORDER BY c DESC, v LIMIT {k}",
        )
        assert [(r["v"], r["c"]) for r in got] == want[m]
    with lamina.Store() as store:
        store.append(t)
        store.define(view)
        # Speed layer only (small data): sorted the same way; exact if it says so.
        row = store.query("t").to_pylist()[0]
        for m, w in want.items():
            items = row[m]
            order = [(-it["count"], it["value"]) for it in items]
            assert order == sorted(order), (m, items)
            if row[f"{m}_exact"]:
                assert [(it["value"], it["count"]) for it in items] == w, (m, items)
        store.recompute(progress=False)
        for table in (store.batch_view("t"), store.query("t")):
            row = table.to_pylist()[0]
            for m, w in want.items():
                assert row[f"{m}_exact"] is True, m
                assert [(it["value"], it["count"]) for it in row[m]] == w, (m, row[m])
                assert all(it["lower"] == it["count"] == it["upper"] for it in row[m]), row[m]


def test_uint64_quantile_and_top_k():
    rng = np.random.default_rng(31)
    n = 6_000
    big = np.uint64(2**63)
    u = np.where(
        rng.random(n) < 0.5,
        big + rng.integers(0, 1_000, n).astype(np.uint64),
        rng.integers(0, 50, n).astype(np.uint64),
    )
    base = int(np.datetime64(T0, "us").astype(np.int64))
    t = pa.table(
        {
            "ts": pa.array(base + rng.integers(0, 3 * HOUR, n), pa.timestamp("us")),
            "u": pa.array(u, pa.uint64(), mask=rng.random(n) < 0.05),
        }
    )
    qm = {"u_p50": ("u", 0.5), "u_p95": ("u", 0.95), "u_p0": ("u", 0.0), "u_p100": ("u", 1.0)}
    tm = {"top_u": ("u", 4)}
    metrics = {"n": lamina.count()} | {m: lamina.quantile(c, q) for m, (c, q) in qm.items()}
    metrics |= {m: lamina.top_k(c, k) for m, (c, k) in tm.items()}
    with lamina.Store() as store:
        store.append(t.slice(0, 4_000))
        store.define(lamina.View("u", time="ts", grain="1h", metrics=metrics))
        store.recompute(progress=False)
        truth = Truth(t.slice(0, 4_000), "1h", [], qm=qm, tm=tm)
        rows = check_table(store.batch_view("u"), truth, exact=all_exact, qm=qm, tm=tm)
        for row in rows.values():
            assert row["u_p100"] >= 2.0**63 and row["u_p0"] < 50, row
            assert row["top_u"][0]["value"] < 50 and isinstance(row["top_u"][0]["value"], int), row
        store.append(t.slice(4_000))
        cov = Coverage()
        truth = Truth(t, "1h", [], qm=qm, tm=tm)
        check_table(store.query("u"), truth, cov=cov, qm=qm, tm=tm)
        cov.check("uint64 quantiles")


# ---------------------------------------------------------------- 4. roll-ups


@pytest.mark.parametrize("with_speed", [False, True], ids=["batch-only", "with-speed"])
@pytest.mark.parametrize(
    "grain, by", [("1d", []), ("6h", ["city"]), ("1h", [])], ids=["1d-all", "6h-city", "1h-all"]
)
def test_rollups_are_approximate_and_bounded(grain, by, with_speed):
    ev = make_events(12_000, seed=41, hours=30)
    extra = make_events(2_000, seed=42, hours=30, cities=["Zürich", "😀"])
    with lamina.Store() as store:
        store.append(ev)
        store.define(main_view())
        store.recompute(progress=False)
        everything = ev
        if with_speed:
            store.append(extra)
            everything = pa.concat_tables([ev, extra])
        truth = Truth(everything, grain, by)
        # How many groups of the view (1h x city) with values each roll-up group merges.
        gc = GRAIN_US[grain]
        sources: dict[str, dict[tuple, int]] = {}
        for c in ("lat", "qty", "page", "code", "ok"):
            per: dict[tuple, int] = defaultdict(int)
            for key in keys_with_values(everything, "1h", ["city"], c):
                per[(key[0] // gc * gc, *([key[1]] if by else []))] += 1
            sources[c] = per

        # A roll-up merging several groups comes from merged states: exact only if they are
        # lossless, and then it must equal DuckDB; otherwise bounded.
        cov = Coverage()
        rows = check_table(store.query("v", grain=grain, by=by), truth, cov=cov)
        merged = [k for k in rows if sources["lat"].get(k, 0) >= 2]
        assert merged
        approximate = [k for k in merged if not rows[k]["lat_p50_exact"]]
        print(f"\n{len(approximate)} of {len(merged)} merged roll-up groups approximate (lat_p50)")
        cov.check(f"roll-up {grain} by {by} ({'speed' if with_speed else 'batch only'})", at_least=7)


# ---------------------------------------------------------------- 5. nulls only


def test_groups_with_only_nulls():
    ev = make_events(6_000, seed=51)
    # Every measured column is null for Zürich; a new bucket (speed only) has only nulls too.
    zurich = pc.fill_null(pc.equal(ev["city"], "Zürich"), False)
    for c in ("lat", "qty", "page", "code", "ok"):
        col = ev[c]
        ev = ev.set_column(
            ev.schema.get_field_index(c), c, pc.if_else(zurich, pa.nulls(len(col), col.type), col)
        )
    late_nulls = make_events(300, seed=52, start=T0 + dt.timedelta(hours=8), hours=1, cities=["東京"])
    for c in ("lat", "qty", "page", "code", "ok"):
        col = late_nulls[c]
        late_nulls = late_nulls.set_column(
            late_nulls.schema.get_field_index(c), c, pa.nulls(len(col), col.type)
        )
    with lamina.Store() as store:
        store.append(ev)
        store.define(main_view())
        store.recompute(progress=False)
        store.append(late_nulls)
        everything = pa.concat_tables([ev, late_nulls])
        truth = Truth(everything, "1h", ["city"])
        speed = store.speed_view("v")
        for table in (store.batch_view("v"), store.query("v"), speed):
            rows = served_rows(table, ["city"])
            nulls = [r for k, r in rows.items() if k[1] == "Zürich" or k[0] >= truth.keys[-1][0]]
            assert len(nulls) >= (1 if table is speed else 6)
            for r in nulls:
                for m in QM:
                    assert r[m] is None and r[f"{m}_lower"] is None and r[f"{m}_upper"] is None, (m, r)
                for m in TM:
                    assert r[m] == [], (m, r[m])
        check_table(store.query("v"), truth)
        # Roll-ups over null-only groups and groups with values.
        by_city = store.query("v", grain="1d", by=["city"])
        for r in by_city.to_pylist():
            if r["city"] == "Zürich":
                assert r["lat_p50"] is None and r["top_pages"] == [], r


# ---------------------------------------------------------------- 6. reopen


def test_reopen_keeps_answers(tmp_path):
    ev = make_events(8_000, seed=61)
    late = make_events(2_000, seed=62, hours=4)
    path = tmp_path / "w"
    queries = [{}, {"grain": "1d", "by": []}, {"grain": "6h"}, {"where": {"city": "東京"}}]
    with lamina.Store(path) as s:
        append_chunks(s, ev, 3_000)
        s.define(main_view())
        s.recompute(progress=False)
        s.append(late)
        before = [s.query("v", **kw) for kw in queries] + [s.batch_view("v"), s.speed_view("v")]
    labels = [f"query({kw})" for kw in queries] + ["batch_view", "speed_view"]
    with lamina.Store(path) as s:
        assert s.views()["v"] == main_view(), "the definition (q, k) did not survive reopening"
        after = [s.query("v", **kw) for kw in queries] + [s.batch_view("v"), s.speed_view("v")]
        changed = [label for label, a, b in zip(labels, after, before, strict=True) if not a.equals(b)]
        everything = s.snapshot()
        # Whatever else, the reopened answers still hold the truth within their bounds.
        cov = Coverage()
        check_table(after[0], Truth(everything, "1h", ["city"]), cov=cov)
        check_table(after[1], Truth(everything, "1d", []), cov=cov)
        cov.check("after reopen")
    assert not changed, f"answers changed on reopen: {changed}"
    # And once more after the store was reopened twice (speed state saved, then reloaded).
    with lamina.Store(path) as s:
        assert s.query("v").equals(before[0])
        s.recompute(progress=False)
        check_table(s.query("v"), Truth(everything, "1h", ["city"]), exact=all_exact)
    with lamina.Store(path) as s:
        check_table(s.query("v"), Truth(everything, "1h", ["city"]), exact=all_exact)


# ---------------------------------------------------------------- 7. sketch level


def _arrays(rng: np.random.Generator, trials: int):
    for i in range(trials):
        n = int(rng.choice([1, 2, 3, 10, 100, 199, 200, 201, 1_000, 5_000, 20_000, 60_000]))
        kind = i % 5
        if kind == 0:
            x = rng.normal(0, 1, n)
        elif kind == 1:
            x = rng.lognormal(0, 3, n)
        elif kind == 2:
            x = rng.integers(-3, 4, n).astype(np.float64)
        elif kind == 3:
            x = np.sort(rng.normal(0, 1, n))  # sorted input: an adversarial order for compactors
        else:
            x = -rng.pareto(1.2, n)
        yield x


SKETCH_QS = [0.0, 0.01, 0.25, 0.5, 0.9, 0.99, 1.0]


def test_quantile_sketch_bounds_and_rank_error():
    """Many random arrays, sketched whole or in parts merged at the end."""
    from lamina import _core

    rng = np.random.default_rng(71)
    hits = total = 0
    worst = 0.0
    for i, x in enumerate(_arrays(rng, 250)):
        parts = [1, 2, 7, 40][i % 4]
        r = _core.quantile_sketch(pa.array(x), SKETCH_QS, parts=parts)
        est, lo, hi = r["estimate"], r["lower"], r["upper"]
        assert len(est) == len(lo) == len(hi) == len(SKETCH_QS)
        assert isinstance(r["bytes"], int) and r["bytes"] > 0
        s = np.sort(x)
        assert est == sorted(est), f"estimates not monotone in q: {est}"
        for q, e, a, b in zip(SKETCH_QS, est, lo, hi, strict=True):
            truth = float(np.quantile(s, q))
            tol = tolerance(s, q)
            where = f"n={len(x)} parts={parts} q={q}"
            assert a <= e <= b, (where, a, e, b)
            total += 1
            hits += a - tol <= truth <= b + tol
            err = rank_error(s, e, q)
            worst = max(worst, err)
            assert err <= 0.05, f"{where}: estimate {e} is {err:.3f} of rank off"
            if len(x) <= 200:  # the sketch still holds every value: bounds hold the truth, always
                assert a - tol <= truth <= b + tol, f"{where}: {truth} outside [{a}, {b}]"
    rate = hits / total
    print(f"\nquantile_sketch: coverage {hits}/{total} = {rate:.4f}; max rank error {worst:.4f}")
    assert rate >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / total), rate


def test_quantile_sketch_accuracy_grows_with_k_and_size_stays_bounded():
    from lamina import _core

    rng = np.random.default_rng(72)
    qs = [i / 20 for i in range(1, 20)]
    errs: dict[int, list[float]] = {50: [], 400: []}
    for _ in range(10):
        x = rng.normal(0, 1, 50_000)
        s = np.sort(x)
        for k in errs:
            r = _core.quantile_sketch(pa.array(x), qs, k=k)
            errs[k] += [rank_error(s, e, q) for q, e in zip(qs, r["estimate"], strict=True)]
    mean50, mean400 = np.mean(errs[50]), np.mean(errs[400])
    print(f"\nmean rank error k=50 {mean50:.5f}, k=400 {mean400:.5f}")
    assert mean400 < mean50
    x = rng.normal(0, 1, 1_000_000)
    small = _core.quantile_sketch(pa.array(x[:100_000]), [0.5])["bytes"]
    large = _core.quantile_sketch(pa.array(x), [0.5])["bytes"]
    merged = _core.quantile_sketch(pa.array(x), [0.5], parts=100)["bytes"]
    print(f"quantile_sketch bytes: 1e5 values {small}, 1e6 values {large}, 1e6 in 100 parts {merged}")
    assert 0 < large <= 2 * small and large < 100_000 and merged < 100_000, (small, large, merged)
    # Nulls are skipped; integers work.
    ints = pa.array([5, None, -3, 7, None, 7], pa.int64())
    r = _core.quantile_sketch(ints, [0.0, 0.5, 1.0])
    assert r["estimate"][0] == -3 and r["estimate"][2] == 7, r
    assert r["lower"][1] <= 6.0 <= r["upper"][1], r
    big = pa.array([2**64 - 1, 0, 2**63], pa.uint64())
    r = _core.quantile_sketch(big, [0.0, 1.0])
    assert r["estimate"] == [0.0, float(2**64 - 1)], r


def test_quantile_sketch_of_only_nulls():
    from lamina import _core

    r = _core.quantile_sketch(pa.array([None, None], pa.float64()), [0.5, 0.9])
    assert all(v is None for key in ("estimate", "lower", "upper") for v in r[key]), r


def _zipf_keys(rng: np.random.Generator, n: int, kind: int) -> tuple[pa.Array, list]:
    vals = rng.zipf(rng.uniform(1.05, 2.5), n) % 100_000
    if kind == 0:
        keys = (vals.astype(np.int64) - 50).tolist()
        typ = pa.int64()
    elif kind == 1:
        keys = [f"k{v}ü" if v % 3 else f"東京{v}😀" for v in vals]
        typ = pa.string()
    elif kind == 2:
        keys = (vals % 2 == 0).tolist()
        typ = pa.bool_()
    else:
        keys = (vals.astype(np.uint64) + np.uint64(2**63)).tolist()
        typ = pa.uint64()
    nulls = rng.random(n) < 0.05
    return pa.array(keys, typ, mask=nulls), [k for k, null in zip(keys, nulls, strict=True) if not null]


def test_top_k_sketch_bounds_always_hold_on_zipf():
    """Far more distinct values than any summary keeps; bounds are guarantees: no miss allowed."""
    from lamina import _core

    rng = np.random.default_rng(73)
    checked = approximate = 0
    for trial in range(80):
        n = int(rng.integers(1_000, 40_000))
        arr, keys = _zipf_keys(rng, n, trial % 4)
        counts: dict = defaultdict(int)
        for key in keys:
            counts[key] += 1
        k = int(rng.integers(1, 12))
        parts = [1, 3, 16, 64][(trial // 4) % 4]  # the key kind is trial % 4
        r = _core.top_k_sketch(arr, k, parts=parts)
        items = r["items"]
        where = f"trial {trial}: n={n} distinct={len(counts)} k={k} parts={parts}"
        assert 0 < r["bytes"]
        assert 1 <= len(items) <= k, where
        order = [(-c, v) for v, c, _lo, _hi in items]
        assert order == sorted(order), (where, items)
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if r["exact"]:
            assert [(v, c) for v, c, _lo, _hi in items] == top[:k], (where, items, top[:k])
            assert all(lo == c == hi for _v, c, lo, hi in items), (where, items)
            continue
        approximate += 1
        for v, c, lo, hi in items:
            assert lo <= c <= hi, (where, v, c, lo, hi)
            true = counts.get(v, 0)
            assert lo <= true <= hi, f"{where}: {v!r}: true count {true} outside [{lo}, {hi}]"
            checked += 1
        total = sum(counts.values())
        lead = top[0][1] - (top[1][1] if len(top) > 1 else 0)
        if lead > total / (k + 1):
            v, _c, lo, hi = items[0]
            assert v == top[0][0], (where, top[:3], items[:3])
            # Useful bounds, not [0, n]: the top value is known within half its count.
            assert hi - lo <= top[0][1] / 2, (where, top[0], items[0])
    print(f"\ntop_k_sketch: {approximate} approximate summaries, {checked} listed items checked")
    assert approximate >= 30 and checked > 150


def test_top_k_sketch_small_domains_are_exact_and_size_is_bounded():
    from lamina import _core

    rng = np.random.default_rng(74)
    few = pa.array(rng.integers(-10, 10, 10_000))
    counts = defaultdict(int)
    for v in few.to_pylist():
        counts[v] += 1
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    for parts in (1, 4, 100):
        r = _core.top_k_sketch(few, 5, parts=parts)
        assert r["exact"] is True, parts
        assert [(v, c) for v, c, _lo, _hi in r["items"]] == top, (parts, r["items"])
    # Size follows k, not the number of distinct values.
    some = _core.top_k_sketch(pa.array(rng.integers(0, 10**9, 20_000)), 5)
    many = _core.top_k_sketch(pa.array(rng.integers(0, 10**9, 200_000)), 5)
    print(f"\ntop_k_sketch bytes (k=5): 2e4 distinct {some['bytes']}, 2e5 distinct {many['bytes']}")
    assert some["exact"] is False and many["exact"] is False
    assert many["bytes"] <= 2 * some["bytes"] and many["bytes"] < 20_000, (some["bytes"], many["bytes"])


# ---------------------------------------------------------------- 8. bad definitions


def _store_with_data() -> lamina.Store:
    s = lamina.Store()
    s.append(make_events(50, seed=81))
    s.define(main_view())
    return s


def _refused(store: lamina.Store, kind: type[BaseException], make, *mentions: str) -> BaseException:
    views = store.views()
    with pytest.raises(lamina.LaminaError) as info:
        store.define(make())
    assert isinstance(info.value, kind), f"expected {kind.__name__}, got {type(info.value).__name__}"
    for m in mentions:
        assert m in str(info.value), f"message does not mention {m!r}: {info.value}"
    assert store.views() == views
    return info.value


def test_quantile_on_a_string_column_is_a_schema_error():
    with _store_with_data() as s:
        _refused(
            s,
            lamina.SchemaError,
            lambda: lamina.View("w", time="ts", metrics={"x": lamina.quantile("city", 0.5)}),
            "city",
        )


def test_unknown_column_is_not_found():
    with _store_with_data() as s:
        _refused(
            s,
            lamina.NotFoundError,
            lambda: lamina.View("w", time="ts", metrics={"x": lamina.quantile("nope", 0.5)}),
            "nope",
        )
        _refused(
            s,
            lamina.NotFoundError,
            lambda: lamina.View("w", time="ts", metrics={"x": lamina.top_k("nope", 3)}),
            "nope",
        )


@pytest.mark.parametrize("q", [-0.01, 1.01, float("nan"), float("inf"), -1.0, 2.0])
def test_q_outside_unit_interval_is_refused(q):
    with _store_with_data() as s:
        _refused(
            s,
            lamina.LaminaError,
            lambda: lamina.View("w", time="ts", metrics={"x": lamina.quantile("lat", q)}),
        )


@pytest.mark.parametrize("k", [0, -1, -100])
def test_k_below_one_is_refused(k):
    with _store_with_data() as s:
        _refused(
            s, lamina.LaminaError, lambda: lamina.View("w", time="ts", metrics={"x": lamina.top_k("page", k)})
        )


@pytest.mark.parametrize(
    "metrics",
    [
        {"p": "quantile", "p_exact": "count"},
        {"p": "quantile", "p_upper": "count"},
        {"t": "top_k", "t_exact": "count"},
    ],
    ids=["p_exact", "p_upper", "t_exact"],
)
def test_result_column_clash_is_refused(metrics):
    make = {
        "quantile": lambda: lamina.quantile("lat", 0.5),
        "top_k": lambda: lamina.top_k("page", 2),
        "count": lamina.count,
    }
    with _store_with_data() as s:
        _refused(
            s,
            lamina.LaminaError,
            lambda: lamina.View("w", time="ts", metrics={m: make[a]() for m, a in metrics.items()}),
        )


def test_definition_before_data_is_checked_at_the_first_append():
    with lamina.Store() as s:
        s.define(lamina.View("w", time="ts", grain="1h", metrics={"x": lamina.quantile("city", 0.5)}))
        with pytest.raises(lamina.SchemaError, match="city"):
            s.append(make_events(10, seed=82))
        assert s.commits().num_rows == 0
