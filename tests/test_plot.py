"""lamina.plot: lines per group, the speed-layer shading and the distinct-count error band,
checked against DuckDB over the same events."""

from __future__ import annotations

import datetime as dt
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from support import ts  # noqa: E402

import lamina  # noqa: E402
from lamina.plot import MissingExtraError  # noqa: E402

START = dt.datetime(2026, 3, 2)
COUNTRIES = ["DE", "FR", "ü-land", None]


def events(n: int, start: dt.datetime, hours: int, seed: int, users: int = 500) -> pa.Table:
    rng = random.Random(seed)
    return pa.table(
        {
            "ts": pa.array(
                [start + dt.timedelta(seconds=rng.randrange(hours * 3600)) for _ in range(n)],
                pa.timestamp("us"),
            ),
            "country": pa.array([rng.choice(COUNTRIES) for _ in range(n)], pa.string()),
            "user_id": pa.array([f"u{rng.randrange(users)}" for _ in range(n)], pa.string()),
            "amount": pa.array([rng.choice([None, rng.uniform(1, 99)]) for _ in range(n)], pa.float64()),
        }
    )


VIEW = lamina.View(
    "traffic",
    time="ts",
    grain="1h",
    by=["country"],
    metrics={
        "events": lamina.count(),
        "revenue": lamina.sum("amount"),
        "users": lamina.count_distinct("user_id"),
    },
)


@pytest.fixture
def parts() -> dict[str, pa.Table]:
    return {
        "batch": events(4000, START, 36, 1),
        "live": events(600, START + dt.timedelta(hours=36), 5, 2),  # new hours
        "late": events(150, START + dt.timedelta(hours=10), 3, 3),  # hours 10-12, already in the batch view
    }


@pytest.fixture
def store(parts: dict[str, pa.Table]) -> Iterator[lamina.Store]:
    with lamina.Store() as s:
        s.append(parts["batch"])
        s.define(VIEW)
        s.recompute(progress=False)
        s.append(parts["live"])
        s.append(parts["late"])
        yield s
    plt.close("all")


def oracle(tables: list[pa.Table], sql: str) -> list[tuple]:
    con = duckdb.connect()
    con.register("events", pa.concat_tables(tables))
    return con.sql(sql).fetchall()


def as_naive(x: float) -> dt.datetime:
    return mdates.num2date(x).replace(tzinfo=None)


def speed_rectangles(ax) -> list[tuple[dt.datetime, dt.datetime]]:
    """The shaded spans (axvspan rectangles), in data coordinates."""
    return sorted((as_naive(p.get_x()), as_naive(p.get_x() + p.get_width())) for p in ax.patches)


def covered(spans: list[tuple[dt.datetime, dt.datetime]], moment: dt.datetime) -> bool:
    slack = dt.timedelta(seconds=1)  # float rounding of matplotlib's date numbers
    return any(lo - slack <= moment and moment + dt.timedelta(hours=1) <= hi + slack for lo, hi in spans)


def test_lines_per_group_match_duckdb(
    store: lamina.Store, parts: dict[str, pa.Table], tmp_path: Path
) -> None:
    ax = store.plot("traffic", "events", by=["country"])
    rows = oracle(
        list(parts.values()), "select country, date_trunc('hour', ts), count(*) from events group by all"
    )
    expected: dict[str, dict[dt.datetime, int]] = {}
    for country, bucket, n in rows:
        expected.setdefault("(null)" if country is None else country, {})[bucket] = n
    lines = ax.get_lines()
    assert len(lines) == len(expected) == len(COUNTRIES)
    for line in lines:
        want = expected[line.get_label()]
        got = {
            # points sit at bucket centres
            as_naive(x) - dt.timedelta(minutes=30): y
            for x, y in zip(mdates.date2num(line.get_xdata()), line.get_ydata(), strict=True)
        }
        assert got == want, line.get_label()

    path = tmp_path / "events.png"
    ax.figure.savefig(path, dpi=60)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100


def test_speed_layer_is_shaded(store: lamina.Store, parts: dict[str, pa.Table]) -> None:
    ax = store.plot("traffic", "events")
    assert len(ax.get_lines()) == 1  # by=None rolls every group up
    spans = speed_rectangles(ax)
    assert spans, "no shaded speed-layer span"
    speed_hours = {
        b
        for (b,) in oracle(
            [parts["live"], parts["late"]], "select distinct date_trunc('hour', ts) from events"
        )
    }
    batch_only = {
        b for (b,) in oracle([parts["batch"]], "select distinct date_trunc('hour', ts) from events")
    }
    for hour in speed_hours:
        assert covered(spans, hour), f"speed hour {hour} is not shaded: {spans}"
    for hour in batch_only - speed_hours:
        assert not covered(spans, hour), f"batch-only hour {hour} is shaded"
    shaded_hours = sum((hi - lo).total_seconds() for lo, hi in spans) / 3600
    assert shaded_hours == pytest.approx(len(speed_hours), abs=0.1)
    labels = [p.get_label() for p in ax.patches]
    assert any("speed layer" in label for label in labels)
    legend = ax.get_legend()
    assert legend is not None and any("speed layer" in t.get_text() for t in legend.get_texts())


def test_distinct_counts_get_an_error_band(store: lamina.Store, parts: dict[str, pa.Table]) -> None:
    ax = store.plot("traffic", "users", by=["country"], where={"country": ["DE", "FR"]})
    assert len(ax.get_lines()) == 2
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert bands, "no error band"
    served = store.query("traffic", by=["country"], where={"country": ["DE", "FR"]})
    inexact = served.filter(pc.invert(served.column("users_exact")))
    assert inexact.num_rows > 0
    top = max(max(p.vertices[:, 1]) for band in bands for p in band.get_paths())
    assert top == pytest.approx(max(inexact.column("users_upper").to_pylist()))
    # every true distinct count lies inside the drawn band's bounds: DuckDB over all the events
    truth = {
        (c, b): n
        for c, b, n in oracle(
            list(parts.values()),
            "select country, date_trunc('hour', ts), count(distinct user_id) from events "
            "where country in ('DE', 'FR') group by all",
        )
    }
    for row in served.to_pylist():
        key = (row["country"], row["bucket"].replace(tzinfo=None))
        assert row["users_lower"] <= truth[key] <= row["users_upper"]


def test_no_band_and_no_shading_after_recompute(store: lamina.Store) -> None:
    store.recompute(progress=False)
    # at the view's own grain and dimensions the batch view answers distinct counts exactly
    ax = store.plot("traffic", "users", by=["country"])
    assert not ax.patches
    assert not [c for c in ax.collections if isinstance(c, PolyCollection)]
    _fig, own = plt.subplots()
    assert store.plot("traffic", "users", by=["country"], ax=own) is own


def test_coarser_grain_and_time_range(store: lamina.Store, parts: dict[str, pa.Table]) -> None:
    ax = store.plot("traffic", "revenue", grain="6h", start=START, end=START + dt.timedelta(days=1))
    (line,) = ax.get_lines()
    rows = oracle(
        list(parts.values()),
        "select time_bucket(interval 6 hour, ts, timestamp '2026-03-02') as b, sum(amount) from events "
        "where ts < timestamp '2026-03-03' group by all order by b",
    )
    xs = [as_naive(x) - dt.timedelta(hours=3) for x in mdates.date2num(line.get_xdata())]  # centres
    assert xs == [b for b, _ in rows]
    assert list(line.get_ydata()) == pytest.approx([v for _, v in rows], rel=1e-12)
    # the late events fall in the second 6h bucket: shaded at the plotted grain
    spans = speed_rectangles(ax)
    assert any(
        lo <= START + dt.timedelta(hours=6) and hi >= START + dt.timedelta(hours=12) for lo, hi in spans
    )


def test_unknown_view_or_metric(store: lamina.Store) -> None:
    with pytest.raises(lamina.NotFoundError, match="no metric 'nope'"):
        store.plot("traffic", "nope")
    with pytest.raises(lamina.NotFoundError, match="no view named"):
        store.plot("missing", "events")


def test_missing_matplotlib_says_which_extra(store: lamina.Store, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.setitem(sys.modules, name, None)  # makes `import matplotlib...` raise ImportError
    with pytest.raises(MissingExtraError) as info:
        store.plot("traffic", "events")
    assert 'pip install "lamina[plot]"' in str(info.value)
    assert isinstance(info.value, ImportError) and isinstance(info.value, lamina.LaminaError)


# ---------------------------------------------------------------- (from test_experience_v2.py)


def test_plot_gives_many_series_distinct_colours_at_bucket_centres() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib.colors import to_hex

    s = lamina.Store()
    s.define(lamina.View("v", time="ts", grain="1h", by=["k"], metrics={"n": lamina.count()}))
    keys = [f"k{i:02d}" for i in range(25)]
    s.append(pa.table({"ts": ts(*([0.5] * 25)), "k": keys}))
    ax = s.plot("v", "n", by=["k"])
    lines = ax.get_lines()
    assert len(lines) == 25
    assert len({to_hex(line.get_color()) for line in lines}) == 25
    x = matplotlib.dates.num2date(matplotlib.dates.date2num(lines[0].get_xdata())[0])
    assert (x.hour, x.minute) == (0, 30)  # the 00:00 bucket, drawn at its centre
    s.close()
