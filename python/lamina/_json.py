"""JSON objects (Kafka messages, lines of JSON lines files) as one Arrow table, with every odd
one an outcome of its own.

The values handed here were screened by the core first (``_core.json_non_objects``,
``_core.screen_json_lines``: one JSON object each, nested at most 64 levels), since pyarrow's
reader crashes the process on a top-level ``null`` or deep nesting. They are decoded in bulk;
only when that fails, or gives other rows than objects, or reads a column in a type that loses
values (integers read as floats because one message holds a fraction), are they decoded one by
one (the rare path, a loop per value):

* a value pyarrow cannot read is rejected with its error;
* a column that some value holds in a type the store cannot take as it is (a float, a boolean or
  text in an integer column), or that values hold in different types, is handed to the core as
  exact text in every value, so the core parses each one or quarantines its row with the
  reason: the outcome of a value never depends on the values decoded with it;
* a value whose fields clash with the others' (a number where they hold text) is rejected.
"""

from __future__ import annotations

import pyarrow as pa

_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, pa.ArrowIndexError)


def _read(blob: bytes, block: int, time_column: str | None, as_text: bool) -> pa.Table:
    import pyarrow.json as pjson

    parse = None
    if time_column is not None and as_text:
        # The event time as text, parsed by the core: the reader's inference would make whole
        # seconds timestamps and fractions text.
        parse = pjson.ParseOptions(
            explicit_schema=pa.schema([(time_column, pa.string())]), unexpected_field_behavior="infer"
        )
    table = pjson.read_json(
        pa.BufferReader(blob), read_options=pjson.ReadOptions(block_size=block), parse_options=parse
    )
    # The reader can build invalid arrays (a list starting with null). Text that is not UTF-8 is
    # left to the core (a row-level error there), so the check is of the structure only.
    table.validate()
    return table


def read_objects(values: list[bytes], time_column: str | None) -> pa.Table:
    """The values (one JSON object each) as one table, one row each; raises a pyarrow error."""
    joined = b"\n".join(values)
    if joined.count(b"\n") != len(values) - 1:
        joined = b"\n".join(v.replace(b"\n", b" ") for v in values)
    block = min(max(1 << 20, 2 * max(map(len, values), default=0) + 16), 1 << 30)
    try:
        table = _read(joined, block, time_column, True)
    except _ERRORS:
        # Event times given as integer microseconds: read as the reader infers them.
        table = _read(joined, block, time_column, False)
    if table.num_rows != len(values):
        raise pa.ArrowInvalid(f"{len(values)} JSON objects gave {table.num_rows} rows")
    return table


def _takes(have: pa.DataType, want: pa.DataType) -> bool:
    """Whether the core takes a column of type ``have`` into a ``want`` column as it is, exactly
    (text it parses value by value counts as taken)."""
    integer, floating = pa.types.is_integer, pa.types.is_floating
    if pa.types.is_null(have) or have == want or pa.types.is_string(have):
        return True
    if integer(have):
        return integer(want) or floating(want) or pa.types.is_string(want)
    if floating(have):
        return floating(want)
    if pa.types.is_boolean(have):
        return pa.types.is_boolean(want) or pa.types.is_string(want)
    times = (pa.types.is_timestamp, pa.types.is_date)
    return any(t(have) for t in times) and any(t(want) for t in times)


def _lossy(table: pa.Table, schema: pa.Schema | None) -> list[str]:
    """Columns the bulk decoding read in a type the store cannot take as it is."""
    if schema is None:
        return []
    return [
        f.name
        for f in table.schema
        if f.name in schema.names
        and not pa.types.is_nested(f.type)
        and not _takes(f.type, schema.field(f.name).type)
    ]


def decode(
    values: list[bytes], time_column: str | None, schema: pa.Schema | None
) -> tuple[pa.Table | None, list[int], list[tuple[int, str]]]:
    """The values as one table: (table or None if no value could be read, the index of the
    value of each row, [(index, reason)] of the values set aside)."""
    if not values:
        return None, [], []
    try:
        table = read_objects(values, time_column)
        if not _lossy(table, schema):
            return table, list(range(len(values))), []
    except _ERRORS:
        pass
    return _decode_singly(values, time_column, schema)


def _decode_singly(
    values: list[bytes], time_column: str | None, schema: pa.Schema | None
) -> tuple[pa.Table | None, list[int], list[tuple[int, str]]]:
    rejected: list[tuple[int, str]] = []
    singles: dict[int, pa.Table] = {}
    for i, v in enumerate(values):
        try:
            singles[i] = read_objects([v], time_column)
        except _ERRORS as e:
            rejected.append((i, str(e)))
    # A column some value holds in a type the store cannot take, or that values hold in types
    # of their own (text in one, a number in another), goes to the core as exact text, in every
    # value alike (each single value was read exactly): the core parses each or quarantines it.
    texted: set[str] = set()
    seen: dict[str, set[pa.DataType]] = {}
    for t in singles.values():
        texted.update(_lossy(t, schema))
        for f in t.schema:
            if not pa.types.is_null(f.type):
                seen.setdefault(f.name, set()).add(f.type)
    if schema is not None:
        texted.update(n for n, types in seen.items() if len(types) > 1 and n in schema.names)
    if texted:
        for i, t in singles.items():
            for name in texted & set(t.column_names):
                col = t.column(name)
                if not pa.types.is_string(col.type) and not pa.types.is_nested(col.type):
                    try:
                        t = t.set_column(t.column_names.index(name), name, col.cast(pa.string()))
                    except _ERRORS:
                        pass
            singles[i] = t
    # The most common shape first, so a value clashing with the majority is the one set aside.
    counts: dict[pa.Schema, int] = {}
    for t in singles.values():
        counts[t.schema] = counts.get(t.schema, 0) + 1
    order = sorted(singles, key=lambda i: (-counts[singles[i].schema], i))
    running: pa.Schema | None = None
    kept: list[int] = []
    for i in order:
        t = singles[i]
        if running is None:
            running = t.schema
            kept.append(i)
            continue
        try:
            unified = pa.unify_schemas([running, t.schema], promote_options="permissive")
            if not _keeps(unified, running) or not _keeps(unified, t.schema):
                raise pa.ArrowTypeError("its fields clash with the other messages'")
        except _ERRORS as e:
            rejected.append((i, str(e)))
            continue
        running = unified
        kept.append(i)
    if not kept:
        return None, [], sorted(rejected)
    kept.sort()
    try:
        table = pa.concat_tables([singles[i] for i in kept], promote_options="permissive")
    except _ERRORS as e:  # cannot happen after the checks above; never a stop of the stream
        return None, [], sorted(rejected + [(i, str(e)) for i in kept])
    return table, kept, sorted(rejected)


def _keeps(unified: pa.Schema, part: pa.Schema) -> bool:
    """Whether unifying kept every field of ``part`` in its type (a null column may take one)."""
    for f in part:
        u = unified.field(f.name).type
        if u != f.type and not pa.types.is_null(f.type):
            return False
    return True


def shown(value: bytes, keep: int) -> str:
    """A value for a record: its first ``keep`` bytes as text (bad bytes replaced)."""
    return value[:keep].decode("utf-8", "replace")


def clean(text: str) -> str:
    """Text that JSON can carry: surrogates (file names that are not UTF-8) escaped."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")
