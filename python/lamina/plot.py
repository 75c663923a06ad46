"""Plot a metric of a view over time: ``store.plot("traffic", "events", by=["country"])``.

Needs matplotlib (``pip install "lamina[plot]"``), imported only when a plot is drawn.

The chart shows what the serving layer answers and where the answer comes from:

* one line per group (``by`` dimensions; by default everything is rolled up into one line),
* a shaded band over the buckets that hold speed-layer data (events of commits the batch view
  does not cover yet, late events included),
* for ``count_distinct`` and ``quantile`` metrics, an error band from ``<metric>_lower`` to
  ``<metric>_upper`` wherever the answer is a sketch estimate (``<metric>_exact`` is false),
* for a ``top_k`` metric, one line per listed value (its count in each bucket where it is in the
  top k), with its guaranteed count bounds as a band where they are not exact.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from lamina.errors import InvalidArgumentError, LaminaError, NotFoundError

if TYPE_CHECKING:
    from lamina.store import Store

__all__ = ["MissingExtraError", "plot"]

SPEED_COLOR = "#f59e0b"
SPEED_ALPHA = 0.15
BAND_ALPHA = 0.25


class MissingExtraError(LaminaError, ImportError):
    """An optional dependency is not installed; the message says which extra to install."""


def _matplotlib() -> tuple[Any, Any, Any]:
    try:
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError as e:
        raise MissingExtraError(
            'lamina plots need matplotlib, which is not installed: pip install "lamina[plot]"'
        ) from e
    return plt, mdates, Patch


_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_MONTHS = {"mo": 1, "q": 3, "y": 12}


def _parse_grain(grain: str) -> tuple[int, str]:
    text = grain.strip()
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(number) :]
    if (unit not in _UNITS and unit not in _MONTHS) or not (number == "" or number.isdigit()):
        raise InvalidArgumentError(f"bad grain {grain!r}: use e.g. 30s, 15m, 1h, 1d, 1w, 1mo, 1q or 1y")
    return int(number or 1), unit


def _bucket_end(start: dt.datetime, grain: str) -> dt.datetime:
    """The end of the bucket starting at ``start`` (the grammar of the core's grains; months,
    quarters and years follow the calendar). Sizes the shaded speed buckets and centres points."""
    n, unit = _parse_grain(grain)
    if unit in _MONTHS:
        months = start.year * 12 + start.month - 1 + n * _MONTHS[unit]
        return start.replace(year=months // 12, month=months % 12 + 1)
    return start + dt.timedelta(seconds=n * _UNITS[unit])


def _colors(plt: Any, n: int) -> list[Any]:
    """``n`` distinct colours: matplotlib's default cycle up to 10 series, tab20 up to 20, then
    evenly spaced hues of a perceptual colormap (the default cycle would repeat colours)."""
    if n <= 10:
        cycle = plt.rcParams["axes.prop_cycle"].by_key().get("color", [])
        if len(cycle) >= n:
            return list(cycle[:n])
    if n <= 20:
        cmap = plt.get_cmap("tab20")
        return [cmap(i) for i in range(n)]
    cmap = plt.get_cmap("turbo")
    return [cmap(i / max(1, n - 1)) for i in range(n)]


def _naive_utc(values: Iterable[Any]) -> list[dt.datetime]:
    """Bucket starts as naive UTC datetimes (what matplotlib's date axis expects)."""
    out = []
    for v in values:
        if v.tzinfo is not None:
            v = v.astimezone(dt.UTC).replace(tzinfo=None)
        out.append(v)
    return out


def _floats(column: pa.ChunkedArray) -> list[float]:
    return [float("nan") if v is None else float(v) for v in column.to_pylist()]


def _label(key: tuple[Any, ...]) -> str:
    return " / ".join("(null)" if v is None else str(v) for v in key)


def _speed_runs(
    store: Store, view: str, start: Any, end: Any, grain: str, where: Mapping[str, Any] | None
) -> list[tuple[Any, Any]]:
    """Contiguous runs [start, end) of buckets (at the plotted grain) holding speed-layer data."""
    # The speed part of the plotted query: same range, grain and filter, rolled up to buckets.
    speed = store.speed_view(view, start, end, grain, [], where)
    if speed.num_rows == 0:
        return []
    buckets = sorted(set(_naive_utc(speed.column("bucket").to_pylist())))
    runs: list[tuple[Any, Any]] = []
    for b in buckets:
        if runs and runs[-1][1] == b:
            runs[-1] = (runs[-1][0], _bucket_end(b, grain))
        else:
            runs.append((b, _bucket_end(b, grain)))
    return runs


def _explode_top_k(table: pa.Table, metric: str, dims: list[str]) -> tuple[pa.Table, list[str]]:
    """One row per (bucket, group, listed value) with the value's count and bounds: a top-k metric
    plots as one line per value."""
    lists = table.column(metric)
    parents = pc.list_parent_indices(lists)
    flat = pc.list_flatten(lists)
    rows = table.select(["bucket", *dims]).take(parents)
    value_name = "value" if "value" not in dims else f"{metric}_value"
    exact = table.column(f"{metric}_exact").take(parents)
    out = rows.append_column(value_name, pc.struct_field(flat, "value"))
    for field in ("count", "lower", "upper"):
        name = metric if field == "count" else f"{metric}_{field}"
        out = out.append_column(name, pc.struct_field(flat, field))
    out = out.append_column(f"{metric}_exact", exact)
    return out, [*dims, value_name]


def plot(
    store: Store,
    view: str,
    metric: str,
    *,
    start: Any = None,
    end: Any = None,
    grain: str | None = None,
    by: Sequence[str] | str | None = None,
    where: Mapping[str, Any] | None = None,
    ax: Any = None,
) -> Any:
    """Draw ``metric`` of ``view`` over time from the served answer; returns the matplotlib Axes.

    ``start``, ``end``, ``grain`` and ``where`` are those of :meth:`lamina.Store.query`. ``by``
    lists the dimensions to draw one line each for (default: none, one rolled-up line). Buckets
    with speed-layer data are shaded; approximate distinct counts get a band between their 95%
    bounds. ``ax``: draw into these Axes instead of a new figure.
    """
    plt, mdates, Patch = _matplotlib()
    definition = store.views().get(view)
    if definition is None:
        raise NotFoundError(f"no view named {view!r} (views: {', '.join(store.views()) or 'none'})")
    if metric not in definition.metrics:
        raise NotFoundError(
            f"view {view!r} has no metric {metric!r} (metrics: {', '.join(definition.metrics)})"
        )
    dims = [by] if isinstance(by, str) else list(by or [])
    table = store.query(view, start=start, end=end, grain=grain, by=dims, where=where)

    if ax is None:
        _fig, ax = plt.subplots(figsize=(9, 4))

    agg = definition.metrics[metric].agg
    approximate = agg in ("count_distinct", "quantile", "top_k")
    banded = False
    groups: dict[tuple[Any, ...], list[int]] = {}
    if agg == "top_k":
        table, dims = _explode_top_k(table, metric, dims)
    keys = list(zip(*(table.column(d).to_pylist() for d in dims), strict=True)) if dims else None
    for i in range(table.num_rows):
        groups.setdefault(keys[i] if keys is not None else (), []).append(i)

    # Each point stands for a whole bucket: drawn at the bucket's centre, so a line and the
    # shaded speed span [start, end) of the same bucket line up.
    plotted = grain or definition.grain
    colors = _colors(plt, len(groups))
    for (key, rows), color in zip(groups.items(), colors, strict=True):
        part = table.take(pa.array(rows, pa.int64()))
        x = [b + (_bucket_end(b, plotted) - b) / 2 for b in _naive_utc(part.column("bucket").to_pylist())]
        y = _floats(part.column(metric))
        (line,) = ax.plot(
            x, y, marker="o" if len(x) < 60 else None, markersize=3, label=_label(key) or metric, color=color
        )
        if approximate:
            inexact = pc.invert(pc.fill_null(part.column(f"{metric}_exact"), True)).to_pylist()
            if any(inexact):
                # Exact rows have lower == upper == value, so the band narrows to the line there.
                lower = _floats(part.column(f"{metric}_lower"))
                upper = _floats(part.column(f"{metric}_upper"))
                ax.fill_between(x, lower, upper, color=line.get_color(), alpha=BAND_ALPHA, linewidth=0)
                banded = True

    shaded = False
    for lo, hi in _speed_runs(store, view, start, end, grain or definition.grain, where):
        ax.axvspan(
            lo,
            hi,
            color=SPEED_COLOR,
            alpha=SPEED_ALPHA,
            linewidth=0,
            label=None if shaded else "speed layer (not yet in the batch view)",
        )
        shaded = True

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("time (UTC); each point at its bucket's centre")
    ax.set_ylabel(metric)
    title = f"{view}: {metric} per {grain or definition.grain}"
    if dims:
        title += f" by {', '.join(dims)}"
    ax.set_title(title)
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
    ax.grid(True, alpha=0.3)
    if table.num_rows == 0:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="grey")
    elif len(groups) > 1 or shaded or banded:
        handles, labels = ax.get_legend_handles_labels()
        if banded:
            handles.append(Patch(color="grey", alpha=BAND_ALPHA, linewidth=0))
            labels.append("95% bounds (sketch estimate)")
        ax.legend(handles, labels, fontsize="small", loc="best")
    return ax
