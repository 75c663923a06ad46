"""``Store.sql``: SQL over the served views, through DuckDB, seeing only those views.

Each view a query names is registered as a table holding its served answer. DuckDB runs with
external access disabled and its configuration locked (no files read or written, no
``ATTACH``, no extension installed or loaded, no Python variables found by name), so a query
passed in by a user of a notebook or a service sees the served views and nothing else of the
machine. ``external_access=True`` restores DuckDB's full access, for a trusted caller only.

Names: DuckDB matches identifiers without regard to case, even quoted ones, so a query names a
view by its exact spelling (bare, or quoted with inner quotes doubled: ``"a""b"``), or by
another case when only one view has that name; two views whose names differ only in case cannot be used in one
query, and such a query is refused rather than answered from the wrong view.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pyarrow as pa

from lamina.errors import InvalidArgumentError

#: Settings of a connection that sees only what lamina registers.
_LOCKED = {
    "enable_external_access": "false",
    "autoinstall_known_extensions": "false",
    "autoload_known_extensions": "false",
    "allow_community_extensions": "false",
    "python_enable_replacements": "false",
}


def _identifiers(query: str) -> Iterable[tuple[str, bool]]:
    """The identifiers of a SQL text, as (name, quoted), skipping string literals and comments."""
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c == "'":  # a string literal ('' escapes a quote)
            i += 1
            while i < n and not (query[i] == "'" and not query.startswith("''", i)):
                i += 2 if query.startswith("''", i) else 1
            i += 1
        elif query.startswith("--", i):
            end = query.find("\n", i)
            i = n if end < 0 else end + 1
        elif query.startswith("/*", i):
            end = query.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif c == '"':
            j, out = i + 1, []
            while j < n:
                if query[j] == '"':
                    if query.startswith('""', j):
                        out.append('"')
                        j += 2
                        continue
                    break
                out.append(query[j])
                j += 1
            yield "".join(out), True
            i = j + 1
        elif c.isalpha() or c == "_":
            j = i
            while j < n and (query[j].isalnum() or query[j] in "_$"):
                j += 1
            yield query[i:j], False
            i = j
        else:
            i += 1


def named_views(query: str, names: Iterable[str]) -> list[str]:
    """The views a query names (see the module's rules on case)."""
    names = list(names)
    by_fold: dict[str, list[str]] = {}
    for name in names:
        by_fold.setdefault(name.casefold(), []).append(name)
    exact = set(names)
    chosen: dict[str, str] = {}
    for word, _quoted in _identifiers(query):
        if word in exact:
            hit = word
        else:
            candidates = by_fold.get(word.casefold(), [])
            if not candidates:
                continue
            if len(candidates) > 1:
                listed = ", ".join(map(repr, sorted(candidates)))
                raise InvalidArgumentError(
                    f"store.sql: {word!r} may name the views {listed}, which differ only in case "
                    "(DuckDB does not tell them apart): spell the view's name exactly"
                )
            hit = candidates[0]
        other = chosen.get(hit.casefold())
        if other is not None and other != hit:
            raise InvalidArgumentError(
                f"store.sql: the views {other!r} and {hit!r} differ only in case, and DuckDB cannot "
                "tell them apart in one query: query them one at a time, or rename one"
            )
        chosen[hit.casefold()] = hit
    return list(chosen.values())


def run(query: str, names: list[str], served: Callable[[str], pa.Table], external_access: bool) -> pa.Table:
    """Run ``query`` over the served answers of the views it names."""
    try:
        import duckdb
    except ImportError as e:
        raise InvalidArgumentError("store.sql needs DuckDB: pip install 'lamina[sql]'") from e
    wanted = named_views(query, names)
    con: Any = duckdb.connect() if external_access else duckdb.connect(config=dict(_LOCKED))
    try:
        for name in wanted:
            con.register(name, served(name))
        if not external_access:
            con.execute("SET lock_configuration = true")
        try:
            relation = con.sql(query)
            if relation is None:  # a statement without a result (SET, CREATE, ...)
                return pa.table({})
            fetch = getattr(relation, "to_arrow_table", None)
            if fetch is not None:
                return fetch()
            out = relation.arrow()  # DuckDB 1.x: a Table (or a reader in some versions)
            return out.read_all() if isinstance(out, pa.RecordBatchReader) else out
        except duckdb.Error as e:
            hint = ""
            if isinstance(e, duckdb.PermissionException):
                hint = " (store.sql sees only the served views; external_access=True lifts this)"
            raise InvalidArgumentError(f"store.sql: {e}{hint} (views: {', '.join(names) or 'none'})") from e
    finally:
        con.close()
