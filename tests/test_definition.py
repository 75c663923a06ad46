"""A view definition has one parser, the core's: ``View.to_json``/``View.from_json``, the CLI's
view files and the aggregate table all go through it, and a view's result columns are described
once (``View.result_columns``), by the core that makes them."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lamina
from lamina import _core
from lamina.cli.define import parse_aggregate as cli_aggregate
from lamina.cli.define import parse_views

from conftest import make_events

COLUMNS = {"country": "str", "page": "str", "user_id": "int", "qty": "int", "flag": "bool"}

names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12).filter(
    lambda s: not s.startswith("__")
)

aggregates = st.one_of(
    st.just(lamina.count()),
    st.sampled_from(["amount", "qty"]).map(lamina.count),
    st.sampled_from(["amount", "qty"]).map(lamina.sum),
    st.sampled_from(["amount", "qty"]).map(lamina.min),
    st.sampled_from(["amount", "qty"]).map(lamina.max),
    st.sampled_from(["amount", "qty"]).map(lamina.mean),
    st.sampled_from(["user_id", "country", "flag"]).map(lamina.count_distinct),
    st.builds(lamina.quantile, st.sampled_from(["amount", "qty"]), st.floats(0, 1)),
    st.builds(lamina.top_k, st.sampled_from(["country", "page", "qty"]), st.integers(1, 10_000)),
)

str_values = st.text(max_size=6)
int_values = st.integers(-(2**63), 2**63 - 1)


def conditions(kind: str) -> st.SearchStrategy:
    value = {"str": str_values, "int": int_values, "bool": st.booleans()}[kind]
    scalar_or_null = st.one_of(value, st.none())
    ranged = st.dictionaries(st.sampled_from([">=", ">", "<=", "<"]), value, min_size=1)
    return st.one_of(
        value,
        st.lists(scalar_or_null, min_size=2, max_size=4),
        ranged,
        value.map(lambda v: {"!=": v}),
        st.lists(value, min_size=1, max_size=3).map(lambda v: {"not in": v}),
    )


wheres = st.dictionaries(st.sampled_from(sorted(COLUMNS)), st.none()).flatmap(
    lambda cols: st.fixed_dictionaries({c: conditions(COLUMNS[c]) for c in cols})
)


@st.composite
def views(draw: st.DrawFn) -> lamina.View:
    by = draw(st.lists(st.sampled_from(["country", "page", "flag"]), unique=True, max_size=3))
    rollups = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["1d", "1w"]),
                st.lists(st.sampled_from(by), unique=True) if by else st.just([]),
            ),
            max_size=2,
            unique_by=lambda r: (r[0], tuple(r[1])),
        )
    )
    return lamina.View(
        draw(names),
        time="ts",
        grain=draw(st.sampled_from(["1m", "15m", "1h", "1d", "1w", "1mo", "1q", "1y"])),
        by=by,
        metrics=draw(st.dictionaries(names, aggregates, min_size=1, max_size=5)),
        where=draw(wheres) or None,
        precision=draw(st.integers(4, 18)),
        tz=draw(st.sampled_from([None, "Europe/Berlin", "America/New_York"])),
        rollups=rollups,
    )


@settings(max_examples=150, deadline=None)
@given(views())
def test_every_metric_and_filter_kind_round_trips_through_the_core(view: lamina.View) -> None:
    text = view.to_json()
    back = lamina.View.from_json(text)
    # The canonical form is a fixed point, and nothing of the definition is lost on the way.
    assert back.to_json() == text
    assert _core.view_definition(text) == text
    assert back.name == view.name and back.grain == view.grain and back.tz == view.tz
    assert tuple(back.by) == tuple(view.by) and back.precision == view.precision
    assert back.metrics == view.metrics
    assert back.rollups == view.rollups
    assert lamina.View.from_json(json.dumps(json.loads(text), indent=2)).to_json() == text


def test_a_view_read_back_from_a_store_has_every_filter_kind(tmp_path) -> None:
    where = {
        "country": {"!=": "DE"},
        "page": {"not in": ["/", "/cart"]},
        "qty": {">=": -500, "<": 500},
        "flag": [True, None],
    }
    view = lamina.View("v", time="ts", grain="1h", by=["country"], metrics={"n": lamina.count()}, where=where)
    with lamina.Store(tmp_path / "s") as store:
        store.append(make_events(200, seed=3))
        store.define(view)
        back = store.views()["v"]
    assert back.to_json() == view.to_json()
    assert back.where == {**where, "country": {"not in": ["DE"]}}


def test_the_result_columns_are_the_columns_a_query_returns(tmp_path) -> None:
    view = lamina.View(
        "v",
        time="ts",
        grain="1h",
        by=["country", "flag"],
        metrics={
            "n": lamina.count(),
            "revenue": lamina.sum("amount"),
            "users": lamina.count_distinct("user_id"),
            "p50": lamina.quantile("amount", 0.5),
            "top": lamina.top_k("page", 3),
            "avg": lamina.mean("qty"),
        },
    )
    with lamina.Store(tmp_path / "s") as store:
        store.append(make_events(500, seed=4))
        store.define(view)
        speed = store.query("v")
        store.recompute()
        store.append(make_events(50, seed=5))
        served = store.query("v")
    assert speed.column_names == served.column_names == view.result_columns
    assert view.result_columns[:3] == ["bucket", "country", "flag"]
    assert "users_source" in view.result_columns and "top_source" in view.result_columns


def test_the_call_form_of_view_files_is_the_core_parser() -> None:
    # Every aggregate of the core's table parses in the call form, to what the Python
    # constructor of the same name builds.
    for name, params, optional in _core.aggregates():
        args = ["c", *(["0.5"] if params == ["q"] else ["7"] if params == ["k"] else [])]
        got = cli_aggregate(f"{name}({', '.join(args)})", "m")
        constructor = getattr(lamina, name)
        want = (
            constructor("c", float(args[1]) if params == ["q"] else int(args[1]))
            if params
            else constructor("c")
        )
        assert got == want, name
        if optional:
            assert cli_aggregate(f"{name}()", "m") == constructor()
    assert cli_aggregate("avg(x)", "m") == lamina.mean("x")
    assert cli_aggregate({"agg": "top_k", "column": "p", "k": 3}, "m") == lamina.top_k("p", 3)
    with pytest.raises(lamina.InvalidArgumentError, match="metric m: unknown aggregate 'median'.*top_k"):
        cli_aggregate("median(x)", "view 'v': metric m")
    with pytest.raises(lamina.InvalidArgumentError, match="needs a column and q"):
        cli_aggregate("quantile(x)", "m")
    with pytest.raises(lamina.InvalidArgumentError, match="bad aggregate"):
        cli_aggregate({"agg": "median", "column": "x"}, "m")


def test_a_view_file_and_the_python_api_give_one_definition() -> None:
    spec = {
        "view": [
            {
                "name": "traffic",
                "grain": "1d",
                "by": "country",
                "where": {"page": {"not in": ["/"]}, "qty": {">": 0}},
                "tz": "Europe/Berlin",
                "rollups": [["1w", []]],
                "metrics": {"n": "count()", "p": "quantile(amount, 0.9)", "a": "avg(qty)"},
            }
        ]
    }
    (from_file,) = parse_views(spec, "views.toml", "ts")
    by_hand = lamina.View(
        "traffic",
        time="ts",
        grain="1d",
        by=["country"],
        where={"page": {"not in": ["/"]}, "qty": {">": 0}},
        tz="Europe/Berlin",
        rollups=[("1w", [])],
        metrics={"n": lamina.count(), "p": lamina.quantile("amount", 0.9), "a": lamina.mean("qty")},
    )
    assert from_file.to_json() == by_hand.to_json()


def test_a_definition_the_core_refuses_is_refused_when_built() -> None:
    with pytest.raises(lamina.InvalidArgumentError, match="grain"):
        lamina.View("v", time="ts", grain="5 parsecs", metrics={"n": lamina.count()}).to_json()
    with pytest.raises(lamina.InvalidArgumentError, match="bad view definition"):
        lamina.View.from_json('{"name": "v"}')
