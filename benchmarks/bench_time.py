"""Zoned buckets and declared roll-ups: what they cost, side by side with DuckDB.

One store (4M events; quick: 600k) over a week of random-order event times, with four views of
the same metrics (events, exact distinct users) by country x page:

* ``utc``: 1h buckets in UTC;
* ``berlin``: 1h buckets in Europe/Berlin (each row's offset looked up);
* ``berlin_1d``: 1d buckets in Europe/Berlin (each row's local midnight);
* ``rollups``: ``berlin`` plus the declared roll-ups ``("1d", [])`` and ``("1d", ["country"])``.

Each view is recomputed alone (``recompute([name])``) after a 1,000-event commit, so every run
reads the snapshot and publishes (as a user meets it). DuckDB runs the same aggregation
(``time_bucket(width, ts, 'Europe/Berlin')`` with ``count(DISTINCT user_id)``) over the same
rows as an Arrow table in memory (it reads no files, so it has less to do). Ratios are
DuckDB / lamina (above 1: lamina is faster); the zone's own cost is each engine's zoned time
over its UTC time.

Then the query a dashboard asks of a roll-up: ``grain="1d", by=["country"]``, answered from the
declared roll-up (exact) and, on ``berlin``, by merging the hourly sketches at query time.
"""

from __future__ import annotations

import time

from common import BenchResult, Config, Row, fmt_time, log, make_chunks, md_table

import lamina

NAME = "time"
ZONE = "Europe/Berlin"


def _view(name: str, grain: str, tz: str | None, rollups=()) -> lamina.View:
    return lamina.View(
        name,
        time="ts",
        grain=grain,
        by=["country", "page"],
        tz=tz,
        rollups=rollups,
        metrics={"events": lamina.count(), "users": lamina.count_distinct("user_id")},
    )


def _median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def run(cfg: Config) -> BenchResult:
    import duckdb
    import pyarrow as pa

    res = BenchResult(NAME)
    total = cfg.pick(600_000, 4_000_000)
    repeat = cfg.pick(2, 3)
    store = lamina.Store(str(cfg.workdir / "time"))
    views = {
        "utc": _view("utc", "1h", None),
        "berlin": _view("berlin", "1h", ZONE),
        "berlin_1d": _view("berlin_1d", "1d", ZONE),
        "rollups": _view("rollups", "1h", ZONE, [("1d", []), ("1d", ["country"])]),
    }
    for v in views.values():
        store.define(v)
    chunks = make_chunks(total, 250_000, cfg.seed)
    for t in chunks:
        store.append(t)
    extra = make_chunks(1_000 * (4 * repeat + 4), 1_000, cfg.seed + 1)
    store.recompute(progress=False)  # warm the page cache; every view published once
    k = 0
    lamina_times: dict[str, float] = {}
    for name in views:
        times = []
        for _ in range(repeat):
            store.append(extra[k % len(extra)])
            k += 1
            t0 = time.perf_counter()
            store.recompute([name], progress=False)
            times.append(time.perf_counter() - t0)
        lamina_times[name] = _median(times)
        log(f"time: recompute {name}: {fmt_time(lamina_times[name])}")
    rows = store.status()["rows"]
    counted = sum(store.query("berlin_1d")["events"].to_pylist())
    if counted != rows:
        raise AssertionError(f"berlin_1d counted {counted} of {rows} events")

    data = pa.concat_tables(chunks + extra[:k])
    con = duckdb.connect()
    con.sql("SET TimeZone = 'UTC'")
    con.register("t", data)
    sqls = {
        "utc": "time_bucket(INTERVAL '1 hour', ts)",
        "berlin": f"time_bucket(INTERVAL '1 hour', ts::TIMESTAMPTZ, '{ZONE}')",
        "berlin_1d": f"time_bucket(INTERVAL '1 day', ts::TIMESTAMPTZ, '{ZONE}')",
    }
    duck_times: dict[str, float] = {}
    for name, bucket in sqls.items():
        q = f"SELECT {bucket} AS b, country, page, count(*), count(DISTINCT user_id) FROM t GROUP BY ALL"
        con.sql(q).fetchall()  # warm
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            con.sql(q).fetchall()
            times.append(time.perf_counter() - t0)
        duck_times[name] = _median(times)
    table = []
    for name in views:
        peer = duck_times.get(name if name != "rollups" else "berlin")
        table.append(
            [
                name,
                fmt_time(lamina_times[name]),
                f"{lamina_times[name] / lamina_times['utc']:.2f}x",
                fmt_time(peer) if peer else "",
                f"{peer / duck_times['utc']:.2f}x" if peer else "",
                f"{peer / lamina_times[name]:.2f}x" if peer else "",
            ]
        )
    for name in ("berlin", "berlin_1d"):
        res.rows.append(
            Row(
                NAME,
                f"recompute + publish of a zoned view ({name}, {rows:,} rows, exact distinct users; "
                "ratio DuckDB in-memory / lamina)",
                fmt_time(lamina_times[name]),
                "DuckDB time_bucket(.., 'Europe/Berlin')",
                fmt_time(duck_times[name]),
                duck_times[name] / lamina_times[name],
                "reported",
            )
        )
    res.rows.append(
        Row(
            NAME,
            "declared roll-ups (1d, 1d x country) added to a recompute (ratio: without / with)",
            fmt_time(lamina_times["rollups"]),
            "the same view without roll-ups",
            fmt_time(lamina_times["berlin"]),
            lamina_times["berlin"] / lamina_times["rollups"],
            "reported",
        )
    )
    # The dashboard query: day x country.
    qt = {}
    for name in ("rollups", "berlin"):
        store.query(name, grain="1d", by=["country"])
        times = []
        for i in range(repeat * 3):
            t0 = time.perf_counter()
            r = store.query(name, grain="1d", by=["country"], where={"country": {"!=": f"none{i}"}})
            times.append(time.perf_counter() - t0)
        qt[name] = (_median(times), r)
    exact = sum(qt["rollups"][1]["users_exact"].to_pylist())
    res.rows.append(
        Row(
            NAME,
            f"query 1d x country: from the declared roll-up ({exact} of {qt['rollups'][1].num_rows} "
            "rows exact) vs merging hourly sketches (ratio: sketches / roll-up)",
            fmt_time(qt["rollups"][0]),
            "merging the hourly groups at query time",
            fmt_time(qt["berlin"][0]),
            qt["berlin"][0] / qt["rollups"][0],
            "reported",
        )
    )
    res.details.append(
        f"**zoned buckets** ({rows:,} rows, random-order times over a week; median of {repeat}; "
        "the zone's cost is zoned / UTC within each engine)\n\n"
        + md_table(
            ["view", "lamina recompute", "lamina / utc", "DuckDB", "DuckDB / utc", "DuckDB / lamina"],
            table,
        )
    )
    store.close()
    return res
