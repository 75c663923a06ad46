"""The partial-state protocol: a view's state over some of the rows, as an Arrow table that any
engine can ship between processes, merge in any order, and finalize into the view's answer.

The batch layer uses it to recompute on a cluster (``Store.recompute(executor=...)``); the same
three functions let other engines run a lamina view: compute partial states per partition
(Spark ``mapInArrow``, Ray ``map_batches``, a dask task), merge them, finalize once.

A partial table has one row per group: ``bucket``, the view's dimensions, then one binary column
per metric state holding that group's whole state (every distinct key, every value for
quantiles, every count for top-k, the exact sum), so merged partial states finalize to exactly
the single-pass answer. The schema's ``lamina.partial`` metadata carries the protocol version, the
view definition and the stored types of its columns: a partial table describes itself. Each
state column's ``lamina.state`` metadata names its aggregate and layout version (``"sum/1"``);
the byte layouts are documented in the README ("Partial states").

>>> import pyarrow as pa, lamina
>>> view = lamina.View("v", time="ts", grain="1h", metrics={"n": lamina.count()})
>>> data = pa.table({"ts": pa.array([0, 1], pa.timestamp("us"))})
>>> parts = [lamina.partial_states(view, data.slice(i, 1)) for i in range(2)]
>>> lamina.finalize_partial_states(lamina.merge_partial_states(parts))["n"].to_pylist()
[2]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from lamina import _core
from lamina._convert import to_arrow
from lamina.errors import InvalidArgumentError
from lamina.view import View


def partial_states(view: View, data: Any) -> pa.Table:
    """The partial state of ``view`` over ``data`` (anything ``Store.append`` takes), exact and
    lossless. Only the columns the view reads are used; their types are checked as an append
    would check them."""
    if not isinstance(view, View):
        raise InvalidArgumentError(f"expected a lamina.View, got {type(view).__name__}")
    return _core.partial_states(view.to_json(), to_arrow(data))


def merge_partial_states(parts: Iterable[Any]) -> pa.Table:
    """Merge partial tables of one view (from ``partial_states`` or an earlier merge) into one.
    The merge is associative and commutative: any tree, any order, the same answer."""
    one_table = hasattr(parts, "__arrow_c_stream__")
    if isinstance(parts, str | bytes) or not isinstance(parts, Iterable) or one_table:
        raise InvalidArgumentError(
            f"merge_partial_states takes a list of partial tables, not {type(parts).__name__}"
        )
    parts = list(parts)
    if not parts:
        raise InvalidArgumentError("merge_partial_states needs at least one partial table")
    for i, p in enumerate(parts):
        if not hasattr(p, "__arrow_c_stream__"):
            raise InvalidArgumentError(
                f"part {i}: expected a partial table (pyarrow.Table), not {type(p).__name__}"
            )
    return _core.merge_partial_states(parts)


def finalize_partial_states(part: Any) -> pa.Table:
    """The view's answer from a (merged) partial table: the columns ``Store.query`` returns for
    a batch view, sorted by bucket then dimensions."""
    if not hasattr(part, "__arrow_c_stream__") and not hasattr(part, "__arrow_c_array__"):
        raise InvalidArgumentError(f"expected a partial table (pyarrow.Table), not {type(part).__name__}")
    return _core.finalize_partial_states(part)
