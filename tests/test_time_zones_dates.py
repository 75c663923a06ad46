"""Time semantics: grains (weeks from Monday, calendar months, quarters, years), buckets in a
time zone (checked against DuckDB's ``time_bucket(width, ts, zone)`` on the same rows) and
``date32`` columns as event time and as dimensions."""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from support import ts as hours_after

import lamina

from conftest import zoned_counts

GRAINS = [
    ("30m", "30 minutes"),
    ("1h", "1 hour"),
    ("1d", "1 day"),
    ("1w", "1 week"),
    ("1mo", "1 month"),
    ("1q", "3 months"),
    ("1y", "1 year"),
]
ZONES = ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney"]


def events(n: int = 6000, seed: int = 7) -> pa.Table:
    """Times over two years (every DST change in between), plus the instants around Berlin's
    and New York's 2026 transitions, nulls in the user column, unicode pages."""
    rnd = random.Random(seed)
    base = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    times = [base + dt.timedelta(seconds=rnd.randrange(0, 730 * 86_400)) for _ in range(n)]
    edges = [
        dt.datetime(2026, 3, 29, 0, 59, 59, tzinfo=dt.UTC),  # Berlin: last second of CET
        dt.datetime(2026, 3, 29, 1, 0, tzinfo=dt.UTC),  # first of CEST
        dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC),  # 02:30 CEST
        dt.datetime(2026, 10, 25, 1, 30, tzinfo=dt.UTC),  # 02:30 CET, the hour again
        dt.datetime(2026, 3, 8, 7, 0, tzinfo=dt.UTC),  # New York: 03:00 EDT
        dt.datetime(2026, 11, 1, 5, 30, tzinfo=dt.UTC),  # 01:30 EDT
        dt.datetime(2026, 11, 1, 6, 30, tzinfo=dt.UTC),  # 01:30 EST
        dt.datetime(2025, 12, 31, 23, 30, tzinfo=dt.UTC),  # new year in Berlin, not in UTC
    ]
    times += edges
    users = [None if rnd.random() < 0.05 else rnd.randrange(300) for _ in times]
    pages = [rnd.choice(["/ä", "/日本", "/home"]) for _ in times]
    return pa.table(
        {
            "ts": pa.array(times, pa.timestamp("us", tz="UTC")),
            "user": pa.array(users, pa.int64()),
            "page": pages,
        }
    )


def rows(result: pa.Table, *columns: str) -> list[tuple]:
    d = result.to_pydict()
    return sorted((d["bucket"][i].timestamp(), *(d[c][i] for c in columns)) for i in range(result.num_rows))


@pytest.mark.parametrize("zone", ZONES)
def test_zoned_buckets_match_duckdb_for_every_grain(tmp_path, zone: str) -> None:
    t = events()
    s = lamina.Store(str(tmp_path / "s"))
    s.append(t.slice(0, 3000))
    for grain, _ in GRAINS:
        s.define(
            lamina.View(
                grain,
                time="ts",
                grain=grain,
                tz=zone,
                by=["page"],
                metrics={"n": lamina.count(), "users": lamina.count_distinct("user")},
            )
        )
    s.recompute(progress=False)
    s.append(t.slice(3000))  # batch and speed layers both hold part of the rows
    for grain, interval in GRAINS:
        got = s.query(grain)
        assert got.schema.field("bucket").type == pa.timestamp("us", tz=zone)
        # Counts are exact in both layers; the distinct counts agree where exact.
        assert rows(got, "page", "n") == [r[:3] for r in zoned_counts(t, interval, zone, "page")], grain
    s.recompute(progress=False)
    for grain, interval in GRAINS:
        assert rows(s.query(grain), "page", "n", "users") == zoned_counts(t, interval, zone, "page"), grain
    # Roll-ups stay in the zone: hours into days, months and years.
    for grain, interval in [("1d", "1 day"), ("1mo", "1 month"), ("1y", "1 year")]:
        got = s.query("1h", grain=grain, by=[])
        assert rows(got, "n") == [r[:2] for r in zoned_counts(t, interval, zone)], grain


def test_berlin_days_last_23_and_25_hours_and_the_doubled_hour_stays_two_buckets(tmp_path) -> None:
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    s = lamina.Store(str(tmp_path / "s"))
    s.append(events())
    s.define(lamina.View("d", time="ts", grain="1d", tz="Europe/Berlin", metrics={"n": lamina.count()}))
    s.define(lamina.View("h", time="ts", grain="1h", tz="Europe/Berlin", metrics={"n": lamina.count()}))
    days = s.query("d", start="2026-03-29", end="2026-03-31")["bucket"].to_pylist()
    assert days == [dt.datetime(2026, 3, 29, tzinfo=berlin), dt.datetime(2026, 3, 30, tzinfo=berlin)]
    assert days[1].timestamp() - days[0].timestamp() == 23 * 3600  # spring forward
    oct25 = s.query("d", start="2026-10-25", end="2026-10-27")["bucket"].to_pylist()
    assert oct25[1].timestamp() - oct25[0].timestamp() == 25 * 3600  # fall back
    # 02:30 CEST and 02:30 CET are an hour apart: two buckets, as in DuckDB.
    hours = s.query(
        "h",
        start=dt.datetime(2026, 10, 25, 0, tzinfo=dt.UTC),
        end=dt.datetime(2026, 10, 25, 2, tzinfo=dt.UTC),
    )
    assert [b.timestamp() for b in hours["bucket"].to_pylist()] == [
        dt.datetime(2026, 10, 25, 0, tzinfo=dt.UTC).timestamp(),
        dt.datetime(2026, 10, 25, 1, tzinfo=dt.UTC).timestamp(),
    ]
    # A naive bound is a time on the view's clock; one that cuts a local day is refused.
    with pytest.raises(lamina.InvalidArgumentError, match="cuts the 1d bucket"):
        s.query("h", grain="1d", start="2026-03-29 12:00")
    assert s.query("h", grain="1d", start="2026-03-29", end="2026-03-30")["n"].to_pylist() == [
        sum(1 for x in events()["ts"].to_pylist() if x.astimezone(berlin).date() == dt.date(2026, 3, 29))
    ]


def test_zone_errors_are_typed_and_zones_do_not_mix(tmp_path) -> None:
    s = lamina.Store(str(tmp_path / "s"))
    s.append(events(100))
    with pytest.raises(lamina.InvalidArgumentError, match="unknown time zone 'Mars/Olympus'|Mars/Olympus"):
        s.define(lamina.View("x", time="ts", grain="1d", tz="Mars/Olympus", metrics={"n": lamina.count()}))
    assert "x" not in s.views()
    with pytest.raises(lamina.InvalidArgumentError, match="tz must be"):
        lamina.View("x", time="ts", grain="1d", tz=5, metrics={"n": lamina.count()})  # type: ignore[arg-type]
    # A ZoneInfo is taken by its name; the definition round-trips with its zone.
    v = lamina.View(
        "z", time="ts", grain="1d", tz=zoneinfo.ZoneInfo("Asia/Tokyo"), metrics={"n": lamina.count()}
    )
    s.define(v)
    assert s.views()["z"].tz == "Asia/Tokyo"
    # A UTC view and a zoned view of the same grain are different views (different fingerprints).
    s.define(lamina.View("u", time="ts", grain="1d", metrics={"n": lamina.count()}))
    assert s.views()["u"].tz is None
    assert s.query("u")["bucket"].type == pa.timestamp("us", tz="UTC")
    assert s.query("z")["bucket"].type == pa.timestamp("us", tz="Asia/Tokyo")


# ------------------------------------------------------------------ date32


def date_events() -> pa.Table:
    rnd = random.Random(3)
    days = [dt.date(2025, 12, 1) + dt.timedelta(days=rnd.randrange(90)) for _ in range(2000)]
    ship = [None if rnd.random() < 0.1 else d + dt.timedelta(days=rnd.randrange(5)) for d in days]
    return pa.table(
        {
            "day": pa.array(days, pa.date32()),
            "ship": pa.array(ship, pa.date32()),
            "qty": pa.array([rnd.randrange(-5, 50) for _ in days], pa.int64()),
            "city": [rnd.choice(["Zürich", "東京", "Lyon"]) for _ in days],
        }
    )


def test_date32_event_time_and_dimension_match_duckdb(tmp_path) -> None:
    t = date_events()
    s = lamina.Store(str(tmp_path / "s"), time="day")
    s.append(t.slice(0, 1000))
    s.define(
        lamina.View(
            "d",
            time="day",
            grain="1d",
            by=["ship", "city"],
            metrics={"n": lamina.count(), "q": lamina.sum("qty"), "ships": lamina.count_distinct("ship")},
        )
    )
    s.define(
        lamina.View(
            "m",
            time="day",
            grain="1mo",
            metrics={"n": lamina.count()},
            where={"ship": {">=": dt.date(2026, 1, 1)}},
        )
    )
    s.recompute(progress=False)
    s.append(t.slice(1000))
    got = s.query("d")
    assert got.schema.field("ship").type == pa.date32()
    con = duckdb.connect()
    con.register("t", t)
    want = con.sql(
        "SELECT day::TIMESTAMP, ship, city, count(*), sum(qty) FROM t GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    d = got.to_pydict()
    mine = [
        (d["bucket"][i].replace(tzinfo=None), d["ship"][i], d["city"][i], d["n"][i], d["q"][i])
        for i in range(got.num_rows)
    ]

    def key(r: tuple) -> tuple:
        return (r[0], r[1] is None, r[1] or dt.date.min, r[2])

    assert sorted(mine, key=key) == sorted(want, key=key)
    # Filters on a date dimension take dates (or ISO text); a null never passes a range.
    jan = s.query(
        "d", where={"ship": {">=": dt.date(2026, 1, 1), "<": "2026-02-01"}}, by=["ship"], grain="1mo"
    )
    want_jan = con.sql(
        "SELECT date_trunc('month', day)::TIMESTAMP, ship, count(*) FROM t "
        "WHERE ship >= DATE '2026-01-01' AND ship < DATE '2026-02-01' GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    j = jan.to_pydict()
    assert [
        (b.replace(tzinfo=None), sh, n) for b, sh, n in zip(j["bucket"], j["ship"], j["n"], strict=True)
    ] == want_jan
    month = s.query("m").to_pydict()
    want_m = con.sql(
        "SELECT date_trunc('month', day)::TIMESTAMP, count(*) FROM t WHERE ship >= DATE '2026-01-01' "
        "GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert [(b.replace(tzinfo=None), n) for b, n in zip(month["bucket"], month["n"], strict=True)] == want_m
    with pytest.raises(lamina.InvalidArgumentError, match="2026-02-30.*not a date"):
        s.query("d", where={"ship": "2026-02-30"})


def test_times_into_a_date_column_keep_midnights_and_quarantine_the_rest(tmp_path) -> None:
    s = lamina.Store(str(tmp_path / "s"), time="day")
    s.append(pa.table({"day": pa.array([dt.date(2026, 1, 1)], pa.date32()), "v": [1]}))
    with pytest.raises(lamina.SchemaError, match="time of day.*row 1"):
        s.append(
            pa.table(
                {
                    "day": pa.array(
                        [dt.datetime(2026, 1, 2), dt.datetime(2026, 1, 2, 10)], pa.timestamp("us")
                    ),
                    "v": [2, 3],
                }
            )
        )
    assert s.snapshot().num_rows == 1  # nothing half-written
    s.append(pa.table({"day": pa.array([dt.datetime(2026, 1, 2)], pa.timestamp("s")), "v": [2]}))
    assert s.snapshot()["day"].to_pylist() == [dt.date(2026, 1, 1), dt.date(2026, 1, 2)]


def test_a_date_event_time_in_a_zoned_view_is_that_local_day(tmp_path) -> None:
    s = lamina.Store(str(tmp_path / "s"), time="day")
    s.append(
        pa.table(
            {"day": pa.array([dt.date(2026, 7, 1), dt.date(2026, 7, 1), dt.date(2026, 7, 2)], pa.date32())}
        )
    )
    s.define(lamina.View("ny", time="day", grain="1d", tz="America/New_York", metrics={"n": lamina.count()}))
    ny = zoneinfo.ZoneInfo("America/New_York")
    got = s.query("ny")
    assert got["bucket"].to_pylist() == [
        dt.datetime(2026, 7, 1, tzinfo=ny),
        dt.datetime(2026, 7, 2, tzinfo=ny),
    ]
    assert got["n"].to_pylist() == [2, 1]


# ------------------------------------------------------------------ review findings


def test_a_time_beyond_the_zone_rules_years_is_bucketed_in_utc_and_the_store_reopens(tmp_path) -> None:
    s = lamina.Store(str(tmp_path / "s"))
    s.append(pa.table({"ts": pa.array([1_700_000_000_000_000], pa.timestamp("us", tz="UTC"))}))
    s.define(lamina.View("z", time="ts", grain="1h", tz="America/New_York", metrics={"n": lamina.count()}))
    s.define(lamina.View("d", time="ts", grain="1d", tz="America/New_York", metrics={"n": lamina.count()}))
    far = -400_000_000_000_000_000  # about 10,700 BC: outside the years -9999..=9999
    s.append(pa.table({"ts": pa.array([far], pa.timestamp("us", tz="UTC"))}))
    assert sum(s.query("z")["n"].to_pylist()) == 2
    s.recompute(progress=False)
    s.close()
    s = lamina.Store(str(tmp_path / "s"))
    for name, width in (("z", 3_600_000_000), ("d", 86_400_000_000)):
        got = s.query(name)
        assert sum(got["n"].to_pylist()) == 2
        first = got["bucket"].cast(pa.int64())[0].as_py()
        assert first == far // width * width  # the UTC bucket


def test_far_event_dates_are_refused_row_by_row(tmp_path) -> None:
    s = lamina.Store(str(tmp_path / "s"), time="day", quarantine=True)
    s.append(pa.table({"day": pa.array([0, 2**31 - 1, -200_000_000, 20_000], pa.date32())}))
    assert s.snapshot()["day"].cast(pa.int32()).to_pylist() == [0, 20_000]
    assert s.quarantined().num_rows == 2
    s.define(lamina.View("d", time="day", grain="1y", metrics={"n": lamina.count()}))
    assert s.query("d")["n"].to_pylist() == [1, 1]


def test_zoned_timestamps_and_dates_convert_both_ways(tmp_path) -> None:
    s = lamina.Store(str(tmp_path / "d"), time="day")
    s.append(pa.table({"day": pa.array([dt.date(2026, 1, 1)], pa.date32())}))
    s.append(
        pa.table({"day": pa.array([dt.datetime(2026, 1, 2, tzinfo=dt.UTC)], pa.timestamp("ms", tz="UTC"))})
    )
    with pytest.raises(lamina.SchemaError, match="time of day"):
        s.append(
            pa.table(
                {
                    "day": pa.array(
                        [dt.datetime(2026, 1, 3, 5, tzinfo=dt.UTC)], pa.timestamp("us", tz="Europe/Berlin")
                    )
                }
            )
        )
    assert s.snapshot()["day"].to_pylist() == [dt.date(2026, 1, 1), dt.date(2026, 1, 2)]
    t = lamina.Store(str(tmp_path / "t"))
    t.append(
        pa.table(
            {
                "ts": pa.array(
                    [dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)], pa.timestamp("us", tz="Europe/Berlin")
                )
            }
        )
    )
    t.append(pa.table({"ts": pa.array([dt.date(2026, 1, 2)], pa.date32())}))
    t.append(
        pa.table(
            {"ts": pa.array([dt.datetime(2026, 1, 3, tzinfo=dt.UTC)], pa.timestamp("s", tz="Asia/Tokyo"))}
        )
    )
    got = t.snapshot()["ts"]
    assert got.type == pa.timestamp("us", tz="Europe/Berlin")
    assert [v.timestamp() for v in got.to_pylist()] == [
        dt.datetime(2026, 1, d, h, tzinfo=dt.UTC).timestamp() for d, h in ((1, 12), (2, 0), (3, 0))
    ]


def test_sub_day_buckets_follow_the_local_clock(tmp_path) -> None:
    """3h buckets in Berlin start at local 00:00, 03:00, ... on every ordinary day (DuckDB counts
    fixed widths from one origin instant instead, so in summer its 3h buckets start an hour off:
    the README lists this difference), and a fall-back night splits its repeated hour."""
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    t = events(4000, 11)
    s = lamina.Store(str(tmp_path / "s"))
    s.append(t)
    s.define(lamina.View("h3", time="ts", grain="3h", tz="Europe/Berlin", metrics={"n": lamina.count()}))
    got = {
        b.timestamp(): n
        for b, n in zip(s.query("h3")["bucket"].to_pylist(), s.query("h3")["n"].to_pylist(), strict=True)
    }
    want: dict[float, int] = {}
    changes = {dt.date(y, m, d) for y, m, d in ((2025, 3, 30), (2025, 10, 26), (2026, 3, 29), (2026, 10, 25))}
    for ts in t["ts"].to_pylist():
        local = ts.astimezone(berlin)
        if local.date() in changes:
            continue
        start = local.replace(hour=local.hour // 3 * 3, minute=0, second=0, microsecond=0)
        want[start.timestamp()] = want.get(start.timestamp(), 0) + 1
    for k, n in want.items():
        assert got.get(k) == n, dt.datetime.fromtimestamp(k, berlin)
    # 2026-10-25: the 3h bucket 00:00-03:00 holds 02:00-03:00 twice (four real hours); its
    # start happened once. A 2h bucket starting at 02:00 starts twice: it splits.
    night = s.query(
        "h3",
        start=dt.datetime(2026, 10, 24, 21, tzinfo=dt.UTC),
        end=dt.datetime(2026, 10, 25, 3, tzinfo=dt.UTC),
    )
    assert [b.timestamp() for b in night["bucket"].to_pylist()] == [
        dt.datetime(2026, 10, 24, 22, tzinfo=dt.UTC).timestamp()
    ]
    real = [
        x
        for x in t["ts"].to_pylist()
        if dt.datetime(2026, 10, 24, 22, tzinfo=dt.UTC) <= x < dt.datetime(2026, 10, 25, 2, tzinfo=dt.UTC)
    ]
    assert night["n"].to_pylist() == [len(real)]
    s.define(lamina.View("h2", time="ts", grain="2h", tz="Europe/Berlin", metrics={"n": lamina.count()}))
    night = s.query(
        "h2",
        start=dt.datetime(2026, 10, 25, 0, tzinfo=dt.UTC),
        end=dt.datetime(2026, 10, 25, 2, tzinfo=dt.UTC),
    )
    assert [b.astimezone(dt.UTC).hour for b in night["bucket"].to_pylist()] == [0, 1]


def test_zone_names_must_be_spelled_as_the_database_does(tmp_path) -> None:
    s = lamina.Store(str(tmp_path / "s"))
    s.append(events(10))
    with pytest.raises(lamina.InvalidArgumentError, match='spelled "Europe/Berlin"'):
        s.define(lamina.View("x", time="ts", grain="1d", tz="europe/berlin", metrics={"n": lamina.count()}))


def test_naive_pyarrow_scalars_are_local_times_in_a_zoned_view(tmp_path) -> None:
    s = lamina.Store(str(tmp_path / "s"))
    s.append(events())
    s.define(lamina.View("d", time="ts", grain="1d", tz="Asia/Tokyo", metrics={"n": lamina.count()}))
    by_datetime = s.query("d", start=dt.datetime(2026, 1, 5), end=dt.datetime(2026, 1, 7))
    for start, end in (
        (
            pa.scalar(dt.datetime(2026, 1, 5), pa.timestamp("us")),
            pa.scalar(dt.datetime(2026, 1, 7), pa.timestamp("us")),
        ),
        (pa.scalar(dt.date(2026, 1, 5), pa.date32()), pa.scalar(dt.date(2026, 1, 7), pa.date32())),
    ):
        assert s.query("d", start=start, end=end).equals(by_datetime)
    assert by_datetime.num_rows == 2


# ---------------------------------------------------------------- (from test_core_v2.py)


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


MONDAY = dt.datetime(1970, 1, 5, tzinfo=dt.UTC)


def floor_time(t: dt.datetime, seconds: int, origin: dt.datetime = EPOCH) -> dt.datetime:
    """Start of the `seconds`-wide bucket holding `t`, buckets aligned to `origin` (exact integers)."""
    us, g = (t - origin) // dt.timedelta(microseconds=1), seconds * 1_000_000
    return origin + dt.timedelta(microseconds=us // g * g)


def test_event_times_at_the_limits_of_int64_nanoseconds(tmp_path: Path) -> None:
    # timestamp[ns] covers 1677-09-21T00:12:43.145 .. 2262-04-11T23:47:16.854. Buckets of the first
    # events start before that range (the 1677 day and week buckets), which int64 nanoseconds
    # cannot hold; they must come out in 1677 all the same, never wrapped around to 2262.
    text = [
        "1677-09-21T01:00:00",
        "1677-09-22T05:30:15",
        "2026-01-01T10:10:10",
        "2262-04-11T20:30:45",
        "2262-04-11T23:47:00",
    ]
    data = pa.table(
        {"ts": pa.array(np.array(text, dtype="datetime64[ns]"), pa.timestamp("ns")), "x": [1, 2, 3, 4, 5]}
    )
    events = [(dt.datetime.fromisoformat(t).replace(tzinfo=dt.UTC), x) for x, t in enumerate(text, 1)]
    grains = {"h": ("1h", 3_600), "d": ("1d", 86_400), "w": ("1w", 7 * 86_400)}

    def expected(seconds: int, origin: dt.datetime) -> list[tuple[dt.datetime, int, int]]:
        out: dict[dt.datetime, tuple[int, int]] = {}
        for t, x in events:
            b = floor_time(t, seconds, origin)
            n, s = out.get(b, (0, 0))
            out[b] = (n + 1, s + x)
        return [(b, n, s) for b, (n, s) in sorted(out.items())]

    with lamina.Store(tmp_path / "s") as store:
        store.append(data)
        assert store.snapshot()["ts"].to_pylist() == data["ts"].to_pylist()
        for name, (grain, _) in grains.items():
            metrics = {"n": lamina.count(), "x": lamina.sum("x")}
            store.define(lamina.View(name, time="ts", grain=grain, metrics=metrics))
        for layer in ("speed layer", "batch layer"):
            if layer == "batch layer":
                store.recompute(progress=False)
            for name, (grain, seconds) in grains.items():
                t = store.query(name)
                got = list(zip(t["bucket"].to_pylist(), t["n"].to_pylist(), t["x"].to_pylist(), strict=True))
                years = [b.year for b, _, _ in got]
                assert years[:1] == [1677] and years[-1:] == [2262], f"{layer}, {grain}: bucket years {years}"
                # Weeks may start on Thursday (epoch-aligned) or on Monday (ISO).
                allowed = [expected(seconds, EPOCH)] + ([expected(seconds, MONDAY)] if name == "w" else [])
                assert got in allowed, f"{layer}, {grain}: {got}, want {allowed[0]}"
            daily = store.query("h", grain="1d")
            want = expected(86_400, EPOCH)
            assert [(r["bucket"], r["n"], r["x"]) for r in daily.to_pylist()] == want, f"{layer}: rollup"


# ---------------------------------------------------------------- (from test_experience_v2.py)


@pytest.mark.parametrize("grain,interval", [("1w", "1 week"), ("2w", "2 weeks")])
def test_weekly_buckets_start_on_monday_as_in_duckdb(grain, interval) -> None:
    import numpy as np

    rng = np.random.default_rng(3)
    base = np.datetime64("1969-12-01T00:00:00", "us")
    t = pa.table(
        {
            "ts": pa.array(base + rng.integers(0, 60 * 86_400 * 10**6, 2_000).astype("timedelta64[us]")),
            "k": pa.array(rng.choice(["a", "ß", None], 2_000)),
        }
    )
    s = lamina.Store()
    s.define(lamina.View("w", time="ts", grain=grain, by=["k"], metrics={"n": lamina.count()}))
    s.append(t.slice(0, 1_000))
    s.recompute(progress=False)
    s.append(t.slice(1_000))  # half in the batch view, half in the speed layer
    got = s.query("w")
    want = duckdb.sql(
        f"select time_bucket(interval {interval}, ts) as b, k, count(*) as n from t group by all "
        "order by b, k nulls last"
    ).fetchall()
    rows = [(r["bucket"].replace(tzinfo=None), r["k"], r["n"]) for r in got.to_pylist()]
    assert rows == want
    assert all(b.weekday() == 0 for b, _, _ in rows)
    # Weeks roll up into 2-week and 4-week buckets (both Monday-aligned).
    assert sum(s.query("w", grain="4w")["n"].to_pylist()) == 2_000
    # Days roll up into the same Monday weeks.
    s.define(lamina.View("d", time="ts", grain="1d", metrics={"n": lamina.count()}))
    weekly = s.query("d", grain=grain)
    assert [r["bucket"].weekday() for r in weekly.to_pylist()] == [0] * weekly.num_rows
    assert sum(weekly["n"].to_pylist()) == 2_000
    s.close()


@pytest.mark.parametrize(
    "grain,interval", [("1mo", "1 month"), ("1q", "3 months"), ("1y", "1 year"), ("2mo", "2 months")]
)
def test_calendar_grains_match_duckdb(grain, interval) -> None:
    import numpy as np

    rng = np.random.default_rng(5)
    base = np.datetime64("1969-06-01T00:00:00", "us")
    n = 4_000
    t = pa.table(
        {
            "ts": pa.array(base + rng.integers(0, 3 * 366 * 86_400 * 10**6, n).astype("timedelta64[us]")),
            "k": pa.array(rng.choice(["a", "日本", None], n)),
            "x": rng.normal(size=n),
        }
    )
    # Leap days and month edges, to the microsecond.
    edges = pa.array(
        [
            dt.datetime(1970, 2, 28, 23, 59, 59, 999_999),
            dt.datetime(1970, 3, 1),
            dt.datetime(1968, 2, 29, 12),
        ],
        pa.timestamp("us"),
    )
    t = pa.concat_tables([t, pa.table({"ts": edges, "k": ["a", "a", None], "x": [1.0, 2.0, 3.0]})])
    s = lamina.Store()
    s.define(
        lamina.View(
            "c", time="ts", grain=grain, by=["k"], metrics={"n": lamina.count(), "x": lamina.sum("x")}
        )
    )
    s.define(lamina.View("d", time="ts", grain="1d", by=["k"], metrics={"n": lamina.count()}))
    s.append(t.slice(0, 2_000))
    s.recompute(progress=False)
    s.append(t.slice(2_000))
    con = duckdb.connect()
    con.register("t", t)
    want = con.sql(
        f"select time_bucket(interval {interval}, ts) as b, k, count(*), sum(x) from t group by all "
        "order by b, k nulls last"
    ).fetchall()
    got = s.query("c").to_pylist()
    assert [(r["bucket"].replace(tzinfo=None), r["k"], r["n"]) for r in got] == [
        (w[0], w[1], w[2]) for w in want
    ]
    for r, w in zip(got, want, strict=True):
        assert r["x"] == pytest.approx(w[3], rel=1e-9, abs=1e-9)
    # A daily view rolls up into the same calendar buckets.
    rolled = s.query("d", grain=grain)
    assert [(r["bucket"].replace(tzinfo=None), r["k"], r["n"]) for r in rolled.to_pylist()] == [
        (w[0], w[1], w[2]) for w in want
    ]
    s.close()


def test_calendar_grain_refusals() -> None:
    s = lamina.Store()
    s.define(lamina.View("w", time="ts", grain="1w", metrics={"n": lamina.count()}))
    s.define(lamina.View("m", time="ts", grain="1mo", metrics={"n": lamina.count()}))
    s.append(pa.table({"ts": hours_after(0, 24 * 40)}))
    with pytest.raises(lamina.InvalidArgumentError, match="not a multiple"):
        s.query("w", grain="1mo")  # weeks straddle months
    with pytest.raises(lamina.InvalidArgumentError, match="not a multiple"):
        s.query("m", grain="1d")
    s.define(lamina.View("d", time="ts", grain="1d", metrics={"n": lamina.count()}))
    with pytest.raises(lamina.InvalidArgumentError, match="cuts the 1mo bucket starting 2026-03-01"):
        s.query("d", grain="1mo", start=dt.datetime(2026, 3, 15))
    assert sum(s.query("d", grain="1mo", start=dt.datetime(2026, 4, 1))["n"].to_pylist()) == 1
    assert sum(s.query("m", grain="1y")["n"].to_pylist()) == 2
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    ax = s.plot("m", "n")
    x = matplotlib.dates.num2date(ax.get_lines()[0].get_xdata(orig=False)[0])
    assert (x.month, x.day) == (3, 16)  # the centre of March 2026
    s.close()
