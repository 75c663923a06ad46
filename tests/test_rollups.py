"""Declared exact roll-ups, and why a value is approximate
(``<metric>_source``: ``batch``, ``speed`` or ``rollup``). Checked against DuckDB on the same
rows."""

from __future__ import annotations

import datetime as dt
import random

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import lamina

from conftest import run_cli, zoned_counts


def events(n: int, seed: int, days: int = 6) -> pa.Table:
    rnd = random.Random(seed)
    base = dt.datetime(2026, 3, 1)
    return pa.table(
        {
            "ts": pa.array(
                [base + dt.timedelta(seconds=rnd.randrange(days * 86_400)) for _ in range(n)],
                pa.timestamp("us"),
            ),
            "country": [rnd.choice(["DE", "FR", "日本", None]) for _ in range(n)],
            "page": [rnd.choice(["/", "/ä", "/cart"]) for _ in range(n)],
            "user": pa.array(
                [None if rnd.random() < 0.03 else rnd.randrange(5000) for _ in range(n)], pa.int64()
            ),
            "ms": [rnd.expovariate(0.01) for _ in range(n)],
        }
    )


def view(**kw) -> lamina.View:
    return lamina.View(
        "traffic",
        time="ts",
        grain="1h",
        by=["country", "page"],
        metrics={
            "events": lamina.count(),
            "users": lamina.count_distinct("user"),
            "p90": lamina.quantile("ms", 0.9),
            "pages": lamina.top_k("page", 2),
        },
        **kw,
    )


def truth(t: pa.Table, by: list[str], where: str = "TRUE") -> list[tuple]:
    con = duckdb.connect()
    con.register("t", t)
    keys = "".join(f", {b}" for b in by)
    return con.sql(
        f"SELECT date_trunc('day', ts){keys}, count(*), count(DISTINCT user), "
        f"quantile_cont(ms, 0.9) FROM t WHERE {where} GROUP BY ALL ORDER BY ALL"
    ).fetchall()


def mine(result: pa.Table, by: list[str]) -> list[tuple]:
    d = result.to_pydict()
    return [
        (
            d["bucket"][i].replace(tzinfo=None),
            *(d[b][i] for b in by),
            d["events"][i],
            d["users"][i],
            d["p90"][i],
        )
        for i in range(result.num_rows)
    ]


def same(a: list[tuple], b: list[tuple]) -> bool:
    def key(r: tuple) -> tuple:
        return tuple((x is None, "" if x is None else str(x)) for x in r[:-3])

    a, b = sorted(a, key=key), sorted(b, key=key)
    return len(a) == len(b) and all(
        x[:-1] == y[:-1] and abs(x[-1] - y[-1]) <= 1e-9 * max(1.0, abs(y[-1]))
        for x, y in zip(a, b, strict=True)
    )


def test_declared_rollups_are_exact_after_a_recompute_and_undeclared_ones_say_rollup(tmp_path) -> None:
    t = events(12_000, 1)
    s = lamina.Store(str(tmp_path / "s"))
    s.append(t)
    s.define(view(rollups=[("1d", []), ("1d", ["country"])]))
    s.recompute(progress=False)
    for by in ([], ["country"]):
        got = s.query("traffic", grain="1d", by=by)
        assert same(mine(got, by), truth(t, by)), by
        for m in ("users", "p90", "pages"):
            assert got[f"{m}_exact"].to_pylist() == [True] * got.num_rows, (by, m)
            assert set(got[f"{m}_source"].to_pylist()) == {"batch"}
    # Dimension order does not matter; filters on the roll-up's dimensions are allowed.
    got = s.query("traffic", grain="1d", by=["country"], where={"country": ["DE", "日本"]})
    assert same(mine(got, ["country"]), truth(t, ["country"], "country IN ('DE', '日本')"))
    assert all(got["users_exact"].to_pylist())
    # An undeclared shape merges sketches at query time: approximate, within its bounds, "rollup".
    got = s.query("traffic", grain="1d", by=["page"])
    assert set(got["users_source"].to_pylist()) == {"rollup"}
    assert not any(got["users_exact"].to_pylist())
    for row, want in zip(got.to_pylist(), truth(t, ["page"]), strict=True):
        assert row["users_lower"] <= want[3] <= row["users_upper"]
    # The view's own shape is exact and "batch".
    assert set(s.query("traffic")["users_source"].to_pylist()) == {"batch"}


def test_rollups_merge_with_the_speed_layer_and_survive_a_reopen(tmp_path) -> None:
    old, new = events(8_000, 2), events(500, 3, days=2)
    s = lamina.Store(str(tmp_path / "s"))
    s.define(view(rollups=[("1d", ["country"])]))
    s.append(old)
    s.recompute(progress=False)
    s.append(new)  # the first two days get speed data
    both = pa.concat_tables([old, new])
    got = s.query("traffic", grain="1d", by=["country"])
    rows = got.to_pylist()
    want = {(r[0], r[1]): r for r in truth(both, ["country"])}
    assert len(rows) == len(want)
    for r in rows:
        w = want[(r["bucket"].replace(tzinfo=None), r["country"])]
        assert r["events"] == w[2]  # counts stay exact
        speed_day = r["bucket"].replace(tzinfo=None) < dt.datetime(2026, 3, 3)
        assert r["users_source"] == ("speed" if speed_day else "batch"), r
        assert r["users_exact"] is (not speed_day)
        assert r["users_lower"] <= w[3] <= r["users_upper"]
    s.close()
    s = lamina.Store(str(tmp_path / "s"))
    assert s.query("traffic", grain="1d", by=["country"]).to_pylist() == rows
    s.recompute(progress=False)
    got = s.query("traffic", grain="1d", by=["country"])
    assert same(mine(got, ["country"]), truth(both, ["country"]))
    assert set(got["users_source"].to_pylist()) == {"batch"}
    # The batch layer alone answers from the roll-up too.
    assert all(s.batch_view("traffic", grain="1d", by=["country"])["users_exact"].to_pylist())


def test_rollups_are_checked_when_defined(tmp_path) -> None:
    s = lamina.Store(str(tmp_path / "s"))
    s.append(events(10, 4))
    bad = [
        ([("90m", [])], "not a multiple"),
        ([("1d", ["user"])], "not a dimension"),
        ([("1d", []), ("1d", [])], "declared twice"),
        ([("1h", ["page", "country"])], "own shape"),
        ([("1d", ["page", "page"])], "appears twice"),
        ([("soon", [])], "bad grain"),
    ]
    for rollups, message in bad:
        with pytest.raises(lamina.InvalidArgumentError, match=message):
            s.define(view(rollups=rollups))
    with pytest.raises(lamina.InvalidArgumentError, match="each roll-up is"):
        view(rollups=[42])
    assert s.views() == {}
    v = view(rollups=[("1w", ["page"]), "1mo"])
    s.define(v)
    assert s.views()["traffic"].rollups == (("1w", ("page",)), ("1mo", ()))


def test_a_zoned_view_rolls_up_in_its_zone(tmp_path) -> None:
    t = events(3_000, 5, days=40)
    s = lamina.Store(str(tmp_path / "s"))
    s.append(t)
    s.define(view(tz="Europe/Berlin", rollups=[("1mo", [])]))
    s.recompute(progress=False)
    got = s.query("traffic", grain="1mo", by=[])
    mine = [
        (b.timestamp(), n, u)
        for b, n, u in zip(
            got["bucket"].to_pylist(), got["events"].to_pylist(), got["users"].to_pylist(), strict=True
        )
    ]
    assert mine == zoned_counts(t, "1 month", "Europe/Berlin")
    assert all(got["users_exact"].to_pylist())


def test_cli_defines_zoned_views_with_rollups_and_queries_them(tmp_path) -> None:
    import csv

    t = events(2_000, 6)
    with open(tmp_path / "e.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(t.column_names)
        for r in t.to_pylist():
            w.writerow(
                [
                    "" if v is None else (v.isoformat() if isinstance(v, dt.datetime) else v)
                    for v in r.values()
                ]
            )
    (tmp_path / "views.toml").write_text(
        '[[view]]\nname = "traffic"\ntime = "ts"\ngrain = "1h"\nby = ["country", "page"]\n'
        'tz = "Asia/Kolkata"\nrollups = [["1d", ["country"]], { grain = "1d", by = [] }]\n'
        '[view.metrics]\nevents = "count()"\nusers = "count_distinct(user)"\n',
        encoding="utf-8",
    )
    for args in (("ingest", "s", "e.csv"), ("define", "s", "views.toml"), ("recompute", "s")):
        r = run_cli(*args, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    r = run_cli("query", "s", "traffic", "--grain", "1d", "--by", "", "--output", "csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = list(csv.DictReader(r.stdout.splitlines()))
    want = [r[1:] for r in zoned_counts(t, "1 day", "Asia/Kolkata")]
    got = sorted((int(x["events"]), int(x["users"])) for x in lines)
    assert got == sorted(want)
    assert {x["users_source"] for x in lines} == {"batch"}
    assert all(x["bucket"].endswith("+05:30") for x in lines), lines[0]["bucket"]


def test_as_of_answers_every_shape_exactly_and_speed_groups_say_speed(tmp_path) -> None:
    t = events(3_000, 8)
    s = lamina.Store(str(tmp_path / "s"))
    s.define(view(rollups=[("1d", ["country"])]))
    s.append(t)
    # No recompute yet: every group is the speed layer's, exact or not.
    got = s.query("traffic")
    assert set(got["users_source"].to_pylist()) == {"speed"}
    assert set(got["pages_source"].to_pylist()) == {"speed"}
    s.append(events(10, 9))
    for by in (["country"], ["page"], []):
        old = s.query("traffic", grain="1d", by=by, as_of=1)
        assert same(mine(old, by), truth(t, by)), by
        assert all(old["users_exact"].to_pylist()) and set(old["users_source"].to_pylist()) == {"batch"}


def test_verify_checks_declared_rollups_too(tmp_path) -> None:
    s = lamina.Store(str(tmp_path / "s"))
    s.define(view(rollups=[("1d", ["country"])]))
    first = events(3_000, 10)
    s.append(first)
    assert s.status()["views"][0]["rollup_groups"] == []  # none published yet
    s.recompute(progress=False)
    assert s.status()["views"][0]["rollup_groups"] == [len(truth(first, ["country"]))]
    s.append(events(200, 11))
    assert s.verify().num_rows == 0
    s._core._plant_double_count("traffic")  # the last commit folded twice into the speed layer
    diff = s.verify()
    views = set(diff["view"].to_pylist())
    assert views == {"traffic", "traffic (roll-up 1d by country)"}, views
    assert (
        "events"
        in diff.filter(pc.equal(diff["view"], "traffic (roll-up 1d by country)"))["metric"].to_pylist()
    )
