"""HTML reprs for Jupyter: Store, View and status."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lamina.store import Store
    from lamina.view import View

_STYLE = (
    "<style>.lamina table{border-collapse:collapse;font-size:12px}"
    ".lamina td,.lamina th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}"
    ".lamina .layer{display:inline-block;padding:1px 6px;border-radius:3px;margin-right:4px}"
    ".lamina .b{background:#dbeafe}.lamina .s{background:#fde68a}.lamina .m{background:#e5e7eb}</style>"
)


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min ago"
    return f"{seconds / 3600:.1f}h ago"


def status_html(status: dict[str, Any]) -> str:
    e = html.escape
    where = "temporary store" if status["temporary"] else e(str(status["path"]))
    head = (
        f"<div class='lamina'>{_STYLE}<b>lamina.Store</b> &mdash; {where}<br>"
        f"<span class='layer m'>master dataset</span> {status['latest_commit']} commits, "
        f"{status['rows']:,} rows in {status['segments']} segments ({_bytes(status['segment_bytes'])})"
    )
    if status.get("quarantined_rows"):
        head += f", {status['quarantined_rows']:,} rows quarantined"
    rows = []
    for v in status["views"]:
        rows.append(
            "<tr>"
            f"<td><b>{e(v['name'])}</b></td>"
            f"<td><span class='layer b'>batch</span>commit {v['covered_commit']}, "
            f"{v['batch_groups']:,} groups, "
            f"{_age(v['batch_age_seconds'])}, {_bytes(v['batch_memory_bytes'])}</td>"
            f"<td><span class='layer s'>speed</span>{v['pending_commits']} pending commits, "
            f"{v['speed_rows']:,} rows, {v['speed_groups']:,} groups, {_bytes(v['speed_memory_bytes'])}</td>"
            "</tr>"
        )
    table = (
        "<table><tr><th>view</th><th>batch layer</th><th>speed layer</th></tr>" + "".join(rows) + "</table>"
        if rows
        else "<br><i>no views defined</i>"
    )
    return head + table + _recompute_html(status.get("last_recompute")) + "</div>"


def _recompute_html(last: dict[str, Any] | None) -> str:
    """The last recompute of this process: its wall time and where it went, largest first."""
    if not last:
        return ""
    phases = sorted(last["phases"].items(), key=lambda kv: -kv[1])
    parts = ", ".join(f"{html.escape(k)} {v * 1000:,.0f} ms" for k, v in phases[:6])
    return (
        f"<br><span class='layer b'>last recompute</span> commit {last['snapshot']}, "
        f"{last['rows']:,} rows, {last['views']} view(s), {last['seconds']:.2f} s on "
        f"{last['threads']} threads; largest phases: {parts}"
    )


def store_html(store: Store) -> str:
    try:
        return status_html(store.status())
    except Exception as exc:  # a closed store still renders
        return f"<div class='lamina'><b>lamina.Store</b> ({html.escape(str(exc))})</div>"


def view_html(view: View) -> str:
    e = html.escape
    metrics = "".join(
        f"<tr><td>{e(name)}</td><td>{e(agg.agg)}({e(agg.column or '')})</td></tr>"
        for name, agg in view.metrics.items()
    )
    where = f"<br>where {e(str(dict(view.where)))}" if view.where else ""
    return (
        f"<div class='lamina'>{_STYLE}<b>lamina.View</b> {e(view.name)}: per {e(view.grain)} of "
        f"{e(view.time)}"
        + (f" by {e(', '.join(view.by))}" if view.by else "")
        + where
        + f"<table><tr><th>metric</th><th>aggregate</th></tr>{metrics}</table></div>"
    )


#: Schema metadata that marks a table lamina returned (``query``, ``explain``, ``verify``, ``sql``)
#: and its one-line summary: the key the notebook formatter looks for.
RESULT_KEY = b"lamina.result"
SUMMARY_KEY = b"lamina.summary"
MAX_HTML_ROWS = 20


def tag_result(table: Any, kind: str, summary: str) -> Any:
    """Mark a result table (zero-copy: schema metadata only) for its notebook repr."""
    meta = dict(table.schema.metadata or {})
    meta[RESULT_KEY] = kind.encode()
    meta[SUMMARY_KEY] = summary.encode()
    return table.replace_schema_metadata(meta)


def result_html(table: Any) -> str | None:
    """The notebook repr of a table lamina returned; None for any other table (IPython then
    shows its usual repr), so other pyarrow tables in the session are left alone."""
    meta = table.schema.metadata or {}
    if RESULT_KEY not in meta:
        return None
    summary = meta.get(SUMMARY_KEY, b"").decode()
    head = "".join(f"<th>{html.escape(n)}</th>" for n in table.column_names)
    rows = []
    for row in table.slice(0, MAX_HTML_ROWS).to_pylist():
        cells = "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row.values())
        rows.append(f"<tr>{cells}</tr>")
    more = (
        f"<p>... {table.num_rows - MAX_HTML_ROWS:,} more rows</p>" if table.num_rows > MAX_HTML_ROWS else ""
    )
    return (
        f'<div class="lamina">{_STYLE}<p><b>{html.escape(summary)}</b> '
        f"({table.num_rows:,} rows x {table.num_columns} columns)</p>"
        f"<table><tr>{head}</tr>{''.join(rows)}</table>{more}</div>"
    )


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list):
        return ", ".join(
            _cell(x) if not isinstance(x, dict) else f"{x.get('value')}: {x.get('count')}" for x in v[:10]
        )
    return "null" if v is None else str(v)


def register_notebook_repr() -> None:
    """In IPython, show tables lamina returned as HTML (tagged ones only)."""
    import sys

    ipython = sys.modules.get("IPython")
    if ipython is None:
        return
    try:
        shell = ipython.get_ipython()
        if shell is None:
            return
        import pyarrow as pa

        shell.display_formatter.formatters["text/html"].for_type(pa.Table, result_html)
    except Exception:  # noqa: BLE001 - a repr must never break an import
        return
