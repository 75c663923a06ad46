"""View definitions: one definition drives the batch, speed and serving layers."""

from __future__ import annotations

import datetime as _dt
import json
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lamina import _args, _core
from lamina.errors import InvalidArgumentError


@dataclass(frozen=True)
class Aggregate:
    """One aggregate of a view. Build it with :func:`count`, :func:`sum`, :func:`min`,
    :func:`max`, :func:`mean`, :func:`count_distinct`, :func:`quantile` or :func:`top_k`."""

    agg: str
    column: str | None = None
    #: ``{"q": 0.95}`` for a quantile, ``{"k": 10}`` for top-k.
    params: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        _args.text(self.agg, "Aggregate(agg)")
        _args.text(self.column, f"{self.agg}(column)", optional=True)
        params = self.params.items() if isinstance(self.params, Mapping) else self.params
        checked = []
        for item in params or ():
            if not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[0], str):
                raise InvalidArgumentError(
                    f"{self.agg}: parameters must be (name, value) pairs, not {item!r}"
                )
            value = _args.number(item[1], f"{self.agg}({item[0]})")
            try:
                value = operator.index(value)  # int, numpy integers
            except TypeError:
                value = float(value)
            checked.append((item[0], value))
        object.__setattr__(self, "params", tuple(checked))

    def to_json(self) -> dict[str, Any]:
        return {"agg": self.agg, "column": self.column, **dict(self.params)}

    @property
    def approximate_when_merged(self) -> bool:
        """Whether served values may come from a sketch (with ``_exact`` and bounds)."""
        return self.agg in ("count_distinct", "quantile", "top_k")

    def __repr__(self) -> str:
        args = [repr(self.column)] if self.column else []
        args += [repr(v) for _, v in self.params]
        return f"lamina.{self.agg}({', '.join(args)})"


def count(column: str | None = None) -> Aggregate:
    """Rows in the group (or, given a column, its non-null values). Exact in every layer."""
    return Aggregate("count", _args.text(column, "count(column)", optional=True))


def sum(column: str) -> Aggregate:  # noqa: A001 - the public name mirrors SQL
    """Sum of a numeric column. Integer sums are exact and checked for overflow; float sums are
    correctly rounded, so they do not depend on order, partitioning or thread count."""
    return Aggregate("sum", _args.text(column, "sum(column)"))


def min(column: str) -> Aggregate:  # noqa: A001
    """Smallest value of a numeric column (NaN sorts above +inf, as in DuckDB)."""
    return Aggregate("min", _args.text(column, "min(column)"))


def max(column: str) -> Aggregate:  # noqa: A001
    """Largest value of a numeric column (NaN sorts above +inf, as in DuckDB)."""
    return Aggregate("max", _args.text(column, "max(column)"))


def mean(column: str) -> Aggregate:
    """Mean of a numeric column, from its exact sum and count."""
    return Aggregate("mean", _args.text(column, "mean(column)"))


def count_distinct(column: str) -> Aggregate:
    """Distinct values of a column: exact in batch views, a HyperLogLog sketch in the speed layer.
    Served results carry ``<name>_exact``, ``<name>_lower`` and ``<name>_upper``."""
    return Aggregate("count_distinct", _args.text(column, "count_distinct(column)"))


def quantile(column: str, q: float) -> Aggregate:
    """The ``q`` quantile (0 <= q <= 1) of a numeric column, interpolated linearly between the
    two nearest values as DuckDB ``quantile_cont`` and numpy's default do. Exact in batch views
    and in groups with no speed data; otherwise a KLL sketch estimate whose ``<name>_lower`` and
    ``<name>_upper`` contain the exact value at least 95% of the time. Result columns:
    ``<name>`` (float64), ``<name>_exact``, ``<name>_lower``, ``<name>_upper``. Several quantiles
    of one column in one view share one state."""
    _args.text(column, "quantile(column)")
    if isinstance(q, bool) or not isinstance(q, int | float) or not 0.0 <= float(q) <= 1.0:
        raise InvalidArgumentError(f"quantile({column!r}, q): q must be a number in [0, 1], not {q!r}")
    return Aggregate("quantile", column, (("q", float(q)),))


def top_k(column: str, k: int) -> Aggregate:
    """The ``k`` most frequent values of a string, integer or boolean column: a list of
    ``{value, count, lower, upper}`` sorted by count descending then value, plus
    ``<name>_exact``. Exact in batch views and in groups with no speed data; otherwise merged
    from frequent-item summaries whose ``lower``/``upper`` bounds are guaranteed."""
    _args.text(column, "top_k(column)")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidArgumentError(f"top_k({column!r}, k): k must be a positive integer, not {k!r}")
    return Aggregate("top_k", column, (("k", int(k)),))


def _aggregate_from_json(v: Mapping[str, Any]) -> Aggregate:
    """An aggregate from its canonical JSON form (as the core writes it)."""
    params = tuple((p, v[p]) for p in ("q", "k") if p in v)
    return Aggregate(v["agg"], v.get("column"), params)


def parse_aggregate(text: str | Mapping[str, Any], where: str) -> Aggregate:
    """An aggregate from the call form of view files (``"sum(amount)"``, ``"quantile(latency,
    0.95)"``; ``avg`` is ``mean``) or from a mapping ``{"agg": ..., "column": ..., "q"/"k": ...}``,
    parsed by the core; ``where`` names it in messages."""
    if isinstance(text, Mapping):
        text = json.dumps(dict(text))
    elif not isinstance(text, str):
        raise InvalidArgumentError(f'{where}: expected an aggregate like "sum(amount)", got {text!r}')
    return _aggregate_from_json(json.loads(_core.parse_aggregate(text, where)))


def aggregate_names() -> list[str]:
    """The aggregates there are (the core's table)."""
    return [name for name, _params, _optional in _core.aggregates()]


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
        return value.isoformat()  # a date column's filter value, compared as a day
    if hasattr(value, "item"):  # numpy scalars
        return _scalar(value.item())
    raise InvalidArgumentError(
        f"filter values must be strings, integers, booleans, dates or None, not {value!r}"
    )


_RANGE_OPS = {">=": "ge", ">": "gt", "<=": "le", "<": "lt", "ge": "ge", "gt": "gt", "le": "le", "lt": "lt"}
_RANGE_SYMBOLS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def filters_to_json(where: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """``{"country": "DE"}``, ``{"country": ["DE", "FR"]}``, ``{"age": {">=": 18, "<": 65}}``,
    ``{"country": {"!=": "DE"}}`` or ``{"country": {"not in": ["DE", "FR"]}}`` (as in SQL, a null
    never passes ``!=`` or ``not in``)."""
    if not where:
        return []
    if not isinstance(where, Mapping):
        raise InvalidArgumentError(f"where must be a dict of column -> value(s), not {type(where).__name__}")
    out = []
    for column, cond in where.items():
        if isinstance(cond, Mapping) and any(op in ("!=", "not in") for op in cond):
            if len(cond) != 1:
                raise InvalidArgumentError(
                    f"where[{column!r}]: != and 'not in' cannot be combined with other tests"
                )
            ((op, v),) = cond.items()
            values = v if op == "not in" and isinstance(v, list | tuple | set | frozenset) else [v]
            out.append({"column": column, "predicate": {"not_in": [_scalar(x) for x in values]}})
        elif isinstance(cond, Mapping):
            bounds = {}
            for op, v in cond.items():
                if op not in _RANGE_OPS:
                    raise InvalidArgumentError(
                        f"where[{column!r}]: unknown comparison {op!r} (use >=, >, <=, <, != or 'not in')"
                    )
                bounds[_RANGE_OPS[op]] = _scalar(v)
            out.append({"column": column, "predicate": {"range": bounds}})
        elif isinstance(cond, list | tuple | set | frozenset):
            values = [_scalar(v) for v in cond]
            if isinstance(cond, set | frozenset):
                values.sort(key=lambda v: (v is None, str(type(v)), v if v is not None else 0))
            out.append({"column": column, "predicate": {"in": values}})
        else:
            out.append({"column": column, "predicate": {"in": [_scalar(cond)]}})
    return out


@dataclass(frozen=True)
class View:
    """A view: a name, an event-time grain, group-by dimensions, an optional row filter and named
    aggregates. One definition drives both layers: the batch layer recomputes it exactly, the
    speed layer keeps it fresh, and ``Store.query`` serves their merge.

    Arguments:

    * ``name``: the view's name (any text up to 128 characters).
    * ``time``: the timestamp (or ``date32``) column that decides each row's bucket (usually the
      store's event time; another such column works too, its null rows are skipped). A date is
      the instant its day starts (in ``tz`` if given, else UTC).
    * ``grain``: the bucket width, ``"<n>s|m|h|d|w"``: ``"15m"``, ``"1h"``, ``"1d"``, ``"1w"``,
      or a calendar grain ``"1mo"``, ``"1q"``, ``"1y"``. Buckets are aligned to the epoch in UTC;
      weeks start on Monday; months follow the calendar.
    * ``tz``: an IANA time zone (``"Europe/Berlin"``): days, weeks, months, quarters and years
      start at that zone's midnights, with its daylight-saving rules (a day can last 23 or 25
      hours); grains below a day follow each event's local clock. As DuckDB's
      ``time_bucket(width, ts, tz)``. Buckets stay instants; results label them with the zone.
      The zone rules are built into lamina (the same on every machine).
    * ``by``: the dimension columns (strings, integers, booleans, dates) to group by.
    * ``rollups``: coarser shapes to keep exact, as ``(grain, [dimensions])`` pairs:
      ``[("1d", []), ("1d", ["country"])]``. The batch layer computes each in the same pass
      over the data, and a query of that grain and those dimensions (filters on them allowed)
      is answered from it: exact where only the batch layer has data. Without a declared
      roll-up, a query that merges several groups of a distinct count, quantile or top-k is
      approximate (``<metric>_source`` is ``"rollup"``).
    * ``metrics``: ``{"name": aggregate}`` with ``lamina.count()``, ``count(col)``, ``sum``,
      ``min``, ``max``, ``mean``, ``count_distinct``, ``quantile(col, q)``, ``top_k(col, k)``.
    * ``where``: a row filter on columns, as ``Store.query``'s ``where`` (``{"country": "DE"}``,
      lists, ranges, ``!=``, ``not in``).
    * ``precision``: HyperLogLog precision of the speed layer's distinct-count sketches (4..18;
      14 gives about 0.8% relative error in 16 KiB per group at most).

    Result columns (``Store.query``): ``bucket``, the dimensions, then per metric its value. A
    ``count_distinct`` or ``quantile`` metric ``m`` adds ``m_exact``, ``m_lower``, ``m_upper``; a
    ``top_k`` metric is a list of ``{value, count, lower, upper}`` plus ``m_exact``. Values are
    exact where only the batch view holds a group, and in every group of exact aggregates
    (counts, sums, min, max, mean); distinct counts, quantiles and top-k merged with speed-layer
    sketches, or rolled up by a query, are approximate with 95% bounds.

    >>> import lamina
    >>> v = lamina.View("traffic", time="ts", grain="1h", by=["country"],
    ...                 metrics={"events": lamina.count(), "users": lamina.count_distinct("user")})
    >>> v.name, v.grain
    ('traffic', '1h')
    """

    name: str
    time: str
    grain: str = "1h"
    by: Sequence[str] = field(default_factory=tuple)
    metrics: Mapping[str, Aggregate] = field(default_factory=dict)
    where: Mapping[str, Any] | None = None
    precision: int = 14
    tz: str | None = None
    rollups: Sequence[tuple[str, Sequence[str]]] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        _args.text(self.name, "View(name)")
        _args.text(self.time, f"view {self.name!r}: time")
        _args.text(self.grain, f"view {self.name!r}: grain")
        object.__setattr__(self, "precision", _args.integer(self.precision, f"view {self.name!r}: precision"))
        object.__setattr__(self, "by", tuple(_args.names(self.by, f"view {self.name!r}: by")))
        if self.where is not None and not isinstance(self.where, Mapping):
            raise InvalidArgumentError(
                f"view {self.name!r}: where must be a dict of column -> value(s), not {self.where!r}"
            )
        if isinstance(self.rollups, str | bytes | Mapping) or not isinstance(self.rollups, Iterable):
            raise InvalidArgumentError(
                f"view {self.name!r}: rollups must be a list of (grain, [dimensions]) pairs, "
                f"not {self.rollups!r}"
            )
        if self.tz is not None and not isinstance(self.tz, str):
            tz_name = getattr(self.tz, "key", None) or getattr(self.tz, "zone", None)
            if not isinstance(tz_name, str):
                raise InvalidArgumentError(
                    f"view {self.name!r}: tz must be an IANA zone name such as 'Europe/Berlin', "
                    f"not {self.tz!r}"
                )
            object.__setattr__(self, "tz", tz_name)  # a zoneinfo.ZoneInfo or pytz zone
        rollups = []
        for r in self.rollups or ():
            if isinstance(r, str):
                grain, dims = r, ()
            elif isinstance(r, Mapping) and set(r) <= {"grain", "by"}:
                grain, dims = r.get("grain"), r.get("by", ())
            elif isinstance(r, Sequence) and len(r) == 2:
                grain, dims = r
            else:
                grain, dims = None, None
            if not isinstance(grain, str) or isinstance(dims, str) or dims is None:
                raise InvalidArgumentError(
                    f"view {self.name!r}: each roll-up is (grain, [dimensions]), "
                    f"like ('1d', ['country']), not {r!r}"
                )
            rollups.append((grain, tuple(dims)))
        object.__setattr__(self, "rollups", tuple(rollups))
        if not isinstance(self.metrics, Mapping) or not self.metrics:
            raise InvalidArgumentError(
                f"view {self.name!r} needs metrics: a dict of name -> lamina aggregate"
            )
        for name, agg in self.metrics.items():
            if not isinstance(name, str) or not name:
                raise InvalidArgumentError(
                    f"view {self.name!r}: metric names must be non-empty strings, not {name!r}"
                )
            if not isinstance(agg, Aggregate):
                raise InvalidArgumentError(
                    f"view {self.name!r}: metric {name!r} must be a lamina aggregate "
                    f"(lamina.count(), lamina.sum(col), ...), not {agg!r}"
                )

    def to_json(self) -> str:
        """The definition in its canonical JSON form, as the core parses and stores it."""
        return _core.view_definition(self._raw_json())

    @property
    def result_columns(self) -> list[str]:
        """The columns of ``Store.query``'s answer, in order: ``bucket``, the dimensions, then
        each metric and the columns it adds (``m_exact``, ``m_source``, ``m_lower``, ``m_upper``
        for distinct counts and quantiles; ``m_exact``, ``m_source`` for top-k)."""
        return list(_core.result_columns(self.to_json()))

    def _raw_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "time": self.time,
                "grain": self.grain,
                "by": list(self.by),
                "metrics": [[k, v.to_json()] for k, v in self.metrics.items()],
                "where": filters_to_json(self.where),
                "precision": self.precision,
                **({"tz": self.tz} if self.tz is not None else {}),
                **(
                    {"rollups": [{"grain": g, "by": list(d)} for g, d in self.rollups]}
                    if self.rollups
                    else {}
                ),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> View:
        """A view from its JSON definition (parsed by the core: the inverse of ``to_json``)."""
        d = json.loads(_core.view_definition(text))
        where: dict[str, Any] = {}
        for f in d.get("where", []):
            pred = f["predicate"]
            if "in" in pred:
                vals = pred["in"]
                where[f["column"]] = vals[0] if len(vals) == 1 else list(vals)
            elif "not_in" in pred:
                where[f["column"]] = {"not in": list(pred["not_in"])}
            else:  # the core's canonical form has no other kind
                where[f["column"]] = {_RANGE_SYMBOLS[k]: v for k, v in pred["range"].items() if v is not None}
        return cls(
            name=d["name"],
            time=d["time"],
            grain=d["grain"],
            by=tuple(d["by"]),
            metrics={k: _aggregate_from_json(v) for k, v in d["metrics"]},
            where=where or None,
            precision=d["precision"],
            tz=d.get("tz"),
            rollups=tuple((r["grain"], tuple(r.get("by", []))) for r in d.get("rollups", [])),
        )

    def _repr_html_(self) -> str:
        from lamina._html import view_html

        return view_html(self)


def metric_names(views: Iterable[View]) -> list[str]:
    return [m for v in views for m in v.metrics]
