"""The `lamina` command line, run as real subprocesses; DuckDB over the same input files is the oracle."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

import lamina

from conftest import run_cli

PAGES = ["/", "/suche", "/produkt/käse", "/produkt/crème-brûlée", "/カート", "/checkout"]
COUNTRIES = ["DE", "FR", "NA", "JP", None]  # "NA" is Namibia, not a null
START = dt.datetime(2026, 3, 2)


run = run_cli


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    assert "Traceback" not in result.stderr
    return result.stdout


def events(n: int, start: dt.datetime, hours: int, seed: int) -> pa.Table:
    rng = random.Random(seed)
    ts = sorted(
        start + dt.timedelta(seconds=rng.randrange(hours * 3600), milliseconds=rng.randrange(1000))
        for _ in range(n)
    )
    pages = [rng.choice(PAGES) for _ in range(n)]
    return pa.table(
        {
            "ts": pa.array(ts, pa.timestamp("us")),
            "country": pa.array([rng.choice(COUNTRIES) for _ in range(n)], pa.string()),
            "page": pa.array(pages, pa.string()),
            "user_id": pa.array([f"u{rng.randrange(400):04d}" for _ in range(n)], pa.string()),
            "amount": pa.array(
                [
                    round(rng.uniform(1, 200), 2) if p == "/checkout" and rng.random() > 0.1 else None
                    for p in pages
                ],
                pa.float64(),
            ),
        }
    )


def write_jsonl(table: pa.Table, path: Path) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in table.to_pylist():
            row["ts"] = row["ts"].isoformat()
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


TOML_SPEC = """
[[view]]
name = "traffic"
time = "ts"
grain = "1h"
by = ["country", "page"]
[view.metrics]
events = "count()"
orders = "count(amount)"
revenue = "sum(amount)"
low = "min(amount)"
high = "max(amount)"
avg = "mean(amount)"
users = "count_distinct(user_id)"
"""

JSON_SPEC = {
    "view": [
        {
            "name": "daily",
            "grain": "1d",
            "by": ["country"],
            "where": {"country": ["DE", "NA"]},
            "metrics": {"events": "count(*)", "revenue": "sum(amount)", "users": "count_distinct(user_id)"},
        }
    ]
}

# DuckDB reads the very files the CLI ingested; explicit casts keep its type inference out of it.
ORACLE_SOURCE = """
    select ts::timestamp as ts, country::varchar as country, page::varchar as page,
           user_id::varchar as user_id, amount::double as amount from read_parquet('{parquet}')
    union all
    select ts::timestamp, country::varchar, page::varchar, user_id::varchar, amount::double
    from read_csv('{csv}', header = true, all_varchar = true)
    union all
    select ts::timestamp, country::varchar, page::varchar, user_id::varchar, amount::double
    from read_json('{jsonl}', format = 'newline_delimited', columns = {{
        ts: 'VARCHAR', country: 'VARCHAR', page: 'VARCHAR', user_id: 'VARCHAR', amount: 'DOUBLE'}})
    {late}
"""


def make_workspace(tmp_path: Path) -> dict[str, Any]:
    """Three input files (one per format), a late file, and both spec files."""
    parts = {
        "parquet": events(1500, START, 24, 1),
        "csv": events(800, START + dt.timedelta(days=1), 24, 2),
        "jsonl": events(700, START + dt.timedelta(days=2), 12, 3),
        "late": events(300, START, 24, 4),  # arrives after the first recompute, for day one
    }
    files = {
        "parquet": tmp_path / "day1.parquet",
        "csv": tmp_path / "day2.csv",
        "jsonl": tmp_path / "day3.jsonl",
        "late": tmp_path / "late.parquet",
    }
    pq.write_table(parts["parquet"], files["parquet"])
    pcsv.write_csv(parts["csv"], files["csv"])
    write_jsonl(parts["jsonl"], files["jsonl"])
    pq.write_table(parts["late"], files["late"])
    (tmp_path / "views.toml").write_text(TOML_SPEC, encoding="utf-8")
    (tmp_path / "views.json").write_text(json.dumps(JSON_SPEC), encoding="utf-8")
    return {"dir": tmp_path, "files": files, "parts": parts}


@pytest.fixture
def workspace(tmp_path: Path) -> dict[str, Any]:
    return make_workspace(tmp_path)


def oracle(ws: dict[str, Any], sql: str, *, late: bool) -> list[dict[str, Any]]:
    f = ws["files"]
    late_sql = f"union all select * from read_parquet('{f['late']}')" if late else ""
    source = ORACLE_SOURCE.format(parquet=f["parquet"], csv=f["csv"], jsonl=f["jsonl"], late=late_sql)
    con = duckdb.connect()
    con.execute(f"create view events as {source}")
    return con.sql(sql).to_arrow_table().to_pylist()


TRAFFIC_SQL = """
    select date_trunc('hour', ts) as bucket, country, page, count(*) as events, count(amount) as orders,
           sum(amount) as revenue, min(amount) as low, max(amount) as high, avg(amount) as avg,
           count(distinct user_id) as users
    from events group by all
"""


def key_of(row: dict[str, Any], dims: list[str]) -> tuple[Any, ...]:
    bucket = row["bucket"]
    if isinstance(bucket, str):
        bucket = dt.datetime.fromisoformat(bucket)
    if bucket.tzinfo is not None:
        bucket = bucket.astimezone(dt.UTC).replace(tzinfo=None)
    return (bucket, *(row[d] for d in dims))


def close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) <= 1e-9 * max(abs(float(a)), abs(float(b)), 1.0)
    return a == b


def assert_served(
    rows: list[dict[str, Any]], expected: list[dict[str, Any]], dims: list[str], metrics: list[str]
) -> None:
    """Served rows against oracle rows: groups one to one, exact metrics equal, distinct counts
    equal where exact and within their bounds where not."""
    got = {key_of(r, dims): r for r in rows}
    want = {key_of(r, dims): r for r in expected}
    assert len(got) == len(rows), "duplicate groups in the output"
    assert got.keys() == want.keys(), (
        f"groups differ: missing {sorted(want.keys() - got.keys(), key=str)[:3]}, "
        f"extra {sorted(got.keys() - want.keys(), key=str)[:3]}"
    )
    approximate = 0
    for key, row in got.items():
        truth = want[key]
        for m in metrics:
            if m == "users" and row["users_exact"] in (False, "false"):
                approximate += 1
                assert int(row["users_lower"]) <= truth["users"] <= int(row["users_upper"]), (key, row, truth)
            else:
                assert close(row[m], truth[m]), (key, m, row[m], truth[m])
    if "users" in metrics:
        rows_with_users = len(got)
        assert 0 <= approximate <= rows_with_users


def parse_csv(text: str) -> list[dict[str, Any]]:
    def convert(name: str, value: str) -> Any:
        if value == "":
            return None
        if name in ("events", "orders", "users", "users_lower", "users_upper"):
            return int(value)
        if name in ("revenue", "low", "high", "avg"):
            return float(value)
        if name == "users_exact":
            return value == "true"
        return value

    return [{k: convert(k, v) for k, v in row.items()} for row in csv.DictReader(io.StringIO(text))]


def parse_table(text: str) -> list[dict[str, str]]:
    """The `table` output: columns separated by two or more spaces, a dashed rule under the header."""
    lines = text.rstrip("\n").split("\n")
    header = re.split(r"\s{2,}", lines[0].strip())
    assert set(lines[1].replace(" ", "")) == {"-"}
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[2:]]
    assert all(len(r) == len(header) for r in rows), rows[:3]
    return [dict(zip(header, r, strict=True)) for r in rows]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with the three files ingested, both specs defined, recomputed, then a late file.
    Built once; each test gets its own copy (see `loaded`)."""
    ws = make_workspace(tmp_path_factory.mktemp("prepared"))
    d, f = ws["dir"], ws["files"]
    out = ok(run("ingest", "store", f["parquet"], f["csv"], f["jsonl"], cwd=d))
    assert "commit 1, 1,500 rows" in out and "commit 2, 800 rows" in out and "commit 3, 700 rows" in out
    out = ok(run("define", "store", "views.toml", cwd=d))
    assert "view traffic" in out and "defined" in out
    out = ok(run("define", "store", "views.json", cwd=d))
    assert "view daily" in out
    out = ok(run("recompute", "store", cwd=d))
    assert "covers commit 3" in out
    out = ok(run("ingest", "store", f["late"], cwd=d))
    assert "commit 4" in out
    return d


@pytest.fixture
def loaded(prepared: Path, tmp_path: Path) -> dict[str, Any]:
    d = tmp_path / "ws"
    shutil.copytree(prepared, d)
    files = {
        "parquet": d / "day1.parquet",
        "csv": d / "day2.csv",
        "jsonl": d / "day3.jsonl",
        "late": d / "late.parquet",
    }
    return {"dir": d, "files": files}


def test_ingest_each_format_matches_duckdb(workspace: dict[str, Any]) -> None:
    d, f = workspace["dir"], workspace["files"]
    for i, name in enumerate(["parquet", "csv", "jsonl"], start=1):
        out = ok(run("ingest", "store", f[name], cwd=d))
        assert f"commit {i}" in out
    import lamina

    with lamina.Store(d / "store", read_only=True) as store:
        snapshot = store.snapshot()
        assert store.commits().column("rows").to_pylist() == [1500, 800, 700]
    f_late = dict(workspace)
    expected = oracle(f_late, "select * from events", late=False)
    con = duckdb.connect()
    con.register("snapshot", snapshot)
    con.register("expected", pa.Table.from_pylist(expected))
    for a, b in (("snapshot", "expected"), ("expected", "snapshot")):
        diff = con.sql(f"select count(*) from (select * from {a} except all select * from {b})").fetchall()
        assert diff == [(0,)], f"rows in {a} but not in {b}"
    assert snapshot.num_rows == 3000
    # "NA" stays Namibia, empty CSV fields become nulls
    assert "NA" in snapshot.column("country").to_pylist()
    assert snapshot.column("amount").null_count == sum(r["amount"] is None for r in expected)


def test_query_outputs_match_duckdb(loaded: dict[str, Any]) -> None:
    d = loaded["dir"]
    expected = oracle(loaded, TRAFFIC_SQL, late=True)
    metrics = ["events", "orders", "revenue", "low", "high", "avg", "users"]
    dims = ["country", "page"]

    rows = parse_csv(ok(run("query", "store", "traffic", "--output", "csv", cwd=d)))
    assert_served(rows, expected, dims, metrics)
    # the late events are in the speed layer: some distinct counts are sketch estimates
    assert any(r["users_exact"] is False for r in rows) and any(r["users_exact"] for r in rows)

    rows = json.loads(ok(run("query", "store", "traffic", "--output", "json", cwd=d)))
    assert_served(rows, expected, dims, metrics)

    ok(run("query", "store", "traffic", "--out", "served.parquet", cwd=d))
    table = pq.read_table(d / "served.parquet")
    assert table.schema.field("bucket").type == pa.timestamp("us", tz="UTC")
    assert_served(table.to_pylist(), expected, dims, metrics)

    text = ok(run("query", "store", "traffic", "--output", "table", "--max-rows", "0", cwd=d))
    shown = parse_table(text)
    assert len(shown) == len(expected)
    got = {(r["bucket"], r["country"], r["page"]): r for r in shown}
    for e in expected:
        key = (e["bucket"].strftime("%Y-%m-%d %H:%M"), e["country"] or "null", e["page"])
        assert int(got[key]["events"]) == e["events"]
        assert int(got[key]["orders"]) == e["orders"]


def test_query_rollup_filter_and_range(loaded: dict[str, Any]) -> None:
    d = loaded["dir"]
    args = ["--grain", "1d", "--by", "country", "--where", "country=DE", "--where", "country=NA"]
    rows = parse_csv(
        ok(
            run(
                "query",
                "store",
                "traffic",
                *args,
                "--start",
                "2026-03-03",
                "--end",
                "2026-03-05",
                "--output",
                "csv",
                cwd=d,
            )
        )
    )
    expected = oracle(
        loaded,
        """select date_trunc('day', ts) as bucket, country, count(*) as events, sum(amount) as revenue,
                  count(distinct user_id) as users
           from events where country in ('DE', 'NA') and ts >= '2026-03-03' and ts < '2026-03-05'
           group by all""",
        late=True,
    )
    assert {r["country"] for r in rows} == {"DE", "NA"}
    assert_served(rows, expected, ["country"], ["events", "revenue", "users"])

    # the JSON-defined view, with its own filter, by day
    rows = json.loads(ok(run("query", "store", "daily", "--output", "json", cwd=d)))
    expected = oracle(
        loaded,
        """select date_trunc('day', ts) as bucket, country, count(*) as events, sum(amount) as revenue,
                  count(distinct user_id) as users
           from events where country in ('DE', 'NA') group by all""",
        late=True,
    )
    assert_served(rows, expected, ["country"], ["events", "revenue", "users"])

    # everything rolled up: one row per hour
    rows = parse_csv(ok(run("query", "store", "traffic", "--by", "", "--output", "csv", cwd=d)))
    expected = oracle(
        loaded,
        "select date_trunc('hour', ts) as bucket, count(*) as events from events group by all",
        late=True,
    )
    assert_served(rows, expected, [], ["events"])


def test_recompute_absorbs_speed_layer_and_status_json(loaded: dict[str, Any]) -> None:
    d = loaded["dir"]
    status = json.loads(ok(run("status", "store", "--json", cwd=d)))
    total = oracle(loaded, "select count(*) as n from events", late=True)[0]["n"]
    assert status["latest_commit"] == 4
    assert status["rows"] == total
    views = {v["name"]: v for v in status["views"]}
    assert set(views) == {"traffic", "daily"}
    assert views["traffic"]["covered_commit"] == 3 and views["traffic"]["pending_commits"] == 1
    assert views["traffic"]["speed_rows"] == 300

    out = ok(run("recompute", "store", "--view", "traffic", cwd=d))
    assert "view traffic: batch view covers commit 4" in out
    status = json.loads(ok(run("status", "store", "--json", cwd=d)))
    views = {v["name"]: v for v in status["views"]}
    assert views["traffic"]["pending_commits"] == 0 and views["traffic"]["speed_rows"] == 0
    assert views["daily"]["pending_commits"] == 1  # not recomputed

    rows = parse_csv(ok(run("query", "store", "traffic", "--output", "csv", cwd=d)))
    assert all(r["users_exact"] for r in rows)
    assert_served(rows, oracle(loaded, TRAFFIC_SQL, late=True), ["country", "page"], ["events", "users"])

    text = ok(run("status", "store", cwd=d))
    assert "master dataset: 4 commits" in text and f"{total:,} rows" in text
    assert "view traffic" in text and "covers commit 4" in text


def test_define_reports_unchanged_and_redefined(loaded: dict[str, Any]) -> None:
    d = loaded["dir"]
    assert "unchanged" in ok(run("define", "store", "views.toml", cwd=d))
    (d / "v2.toml").write_text(TOML_SPEC.replace('grain = "1h"', 'grain = "2h"'), encoding="utf-8")
    assert "redefined" in ok(run("define", "store", "v2.toml", cwd=d))


def test_demo_runs_and_checks_itself(tmp_path: Path) -> None:
    result = run("demo", cwd=tmp_path, timeout=60)
    out = ok(result)
    for line in (
        "1. Master dataset",
        "3. Batch layer",
        "4. Speed layer",
        "LATE page views",
        "5. Serving layer",
        "every event counted exactly once",
        "within the served 95% bounds",
        "7. Time travel",
        "9. Status",
    ):
        assert line in out, line
    assert "✗" not in out
    assert out.count("✓") >= 4
    assert "/カート" in out or "käse" in out
    assert list(tmp_path.iterdir()) == []  # the temporary store is gone


def test_demo_in_a_directory_keeps_the_store(tmp_path: Path) -> None:
    ok(run("demo", "--events", "5000", "--dir", "kept", cwd=tmp_path, timeout=60))
    status = json.loads(ok(run("status", "kept", "--json", cwd=tmp_path)))
    assert status["rows"] == 5000
    rows = json.loads(ok(run("query", "kept", "daily_users", "--output", "json", cwd=tmp_path)))
    assert sum(r["views"] for r in rows) == 5000
    import lamina

    with lamina.Store(tmp_path / "kept", read_only=True) as store:
        snap = store.snapshot()
    con = duckdb.connect()
    con.register("snap", snap)
    truth = dict(
        con.sql("select date_trunc('day', ts), count(distinct user_id) from snap group by all").fetchall()
    )
    for r in rows:
        day = dt.datetime.fromisoformat(r["bucket"]).replace(tzinfo=None)
        assert r["users"] == truth[day] and r["users_exact"] is True
    # a second demo refuses to reuse the directory
    result = run("demo", "--dir", "kept", cwd=tmp_path)
    assert result.returncode == 1 and "not empty" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["query", "store", "nope"], 'no view named "nope"'),
        (["query", "missing", "traffic"], "missing is not a lamina store"),
        (["query", "store", "traffic", "--grain", "7m"], "not a multiple"),
        (["query", "store", "traffic", "--start", "yesterday"], "cannot parse 'yesterday'"),
        (["ingest", "store", "nosuchfile.csv"], "no such file: nosuchfile.csv"),
        (["ingest", "store", "bad_columns.csv"], 'column "x" is not in the store\'s schema'),
        (["ingest", "store", "garbage.parquet"], "cannot read garbage.parquet as parquet"),
        (["define", "store", "unknown_agg.toml"], "unknown aggregate 'median'"),
        (["define", "store", "broken.toml"], "cannot parse broken.toml"),
        (["define", "store", "no_metrics.json"], "missing 'metrics'"),
        (["recompute", "store", "--view", "nope"], "no view named 'nope'"),
        (["status", "missing"], "missing is not a lamina store"),
    ],
)
def test_bad_input_exits_1_with_a_clear_message(
    loaded: dict[str, Any], args: list[str], message: str
) -> None:
    d = loaded["dir"]
    (d / "bad_columns.csv").write_text("x,y\n1,2\n", encoding="utf-8")
    (d / "garbage.parquet").write_bytes(b"this is not parquet")
    (d / "unknown_agg.toml").write_text('[[view]]\nname = "x"\n[view.metrics]\nm = "median(amount)"\n')
    (d / "broken.toml").write_text("[[view\n")
    (d / "no_metrics.json").write_text('[{"name": "x"}]')
    writes = args[0] == "ingest"
    before = json.loads(ok(run("status", "store", "--json", cwd=d))) if writes else None
    result = run(*args, cwd=d)
    assert result.returncode == 1, result
    assert result.stderr.startswith("error: "), result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    if before is not None:  # a refused ingest writes nothing
        after = json.loads(ok(run("status", "store", "--json", cwd=d)))
        assert after["latest_commit"] == before["latest_commit"] and after["rows"] == before["rows"]


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["query", "store"],
        ["query", "store", "traffic", "--bogus"],
        ["query", "store", "traffic", "--output", "xml"],
        ["query", "store", "traffic", "--output", "parquet"],  # parquet needs --out
        ["query", "store", "traffic", "--where", "country"],
        ["ingest", "store", "views.toml"],  # cannot tell the format
        ["demo", "--events", "ten"],
    ],
)
def test_usage_errors_exit_2(loaded: dict[str, Any], args: list[str]) -> None:
    result = run(*args, cwd=loaded["dir"])
    assert result.returncode == 2, result
    assert "usage:" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_and_version(tmp_path: Path) -> None:
    out = ok(run("--help", cwd=tmp_path))
    for command in ("ingest", "define", "recompute", "query", "status", "demo"):
        assert command in out
    assert "[[view]]" in ok(run("define", "--help", cwd=tmp_path))
    import lamina

    assert lamina.__version__ in ok(run("--version", cwd=tmp_path))


def test_main_returns_exit_codes_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lamina.cli import main

    assert main(["status", str(tmp_path / "none")]) == 1
    assert capsys.readouterr().err.startswith("error: ")
    assert main(["query"]) == 2


def test_ingest_quarantine_sets_bad_rows_aside(tmp_path: Path) -> None:
    first = pa.table(
        {"ts": pa.array([START], pa.timestamp("us")), "sku": ["a"], "qty": pa.array([1], pa.int8())}
    )
    pq.write_table(first, tmp_path / "first.parquet")
    ok(run("ingest", "store", "first.parquet", cwd=tmp_path))
    (tmp_path / "more.csv").write_text(
        "ts,sku,qty\n2026-03-02 01:00:00,b,5\n2026-03-02 02:00:00,c,1000\n2026-03-02 03:00:00,d,-7\n",
        encoding="utf-8",
    )
    refused = run("ingest", "store", "more.csv", cwd=tmp_path)
    assert refused.returncode == 1
    assert 'column "qty"' in refused.stderr and "row 1" in refused.stderr
    assert "nothing was written" in refused.stderr
    out = ok(run("ingest", "store", "more.csv", "--quarantine", cwd=tmp_path))
    assert "commit 2, 2 rows, 1 row quarantined" in out
    import lamina

    with lamina.Store(tmp_path / "store", read_only=True) as store:
        assert sorted(store.snapshot().column("sku").to_pylist()) == ["a", "b", "d"]
        kept = store.quarantined().to_pylist()
    assert len(kept) == 1 and kept[0]["row"] == 1 and kept[0]["qty"] == "1000" and "qty" in kept[0]["reason"]


def test_ingest_quarantines_null_event_times(workspace: dict[str, Any]) -> None:
    d, f = workspace["dir"], workspace["files"]
    ok(run("ingest", "store", f["parquet"], cwd=d))
    (d / "nullts.csv").write_text(
        "ts,country,page,user_id,amount\n2026-03-02 01:00:00,DE,/,u1,1.5\n,FR,/,u2,2.5\n", encoding="utf-8"
    )
    refused = run("ingest", "store", "nullts.csv", cwd=d)
    assert refused.returncode == 1 and "null event time at row 1" in refused.stderr
    out = ok(run("ingest", "store", "nullts.csv", "--quarantine", cwd=d))
    assert "1 row quarantined" in out
    status = json.loads(ok(run("status", "store", "--json", cwd=d)))
    assert status["rows"] == 1501 and status["quarantined_rows"] == 1


def test_where_values_take_the_column_type(tmp_path: Path) -> None:
    rng = random.Random(5)
    n = 500
    table = pa.table(
        {
            "ts": pa.array([START + dt.timedelta(minutes=rng.randrange(3 * 24 * 60)) for _ in range(n)]),
            "device": pa.array([rng.choice([1, 2, 3]) for _ in range(n)], pa.int64()),
            "mobile": pa.array([rng.choice([True, False, None]) for _ in range(n)], pa.bool_()),
        }
    )
    pq.write_table(table, tmp_path / "e.parquet")
    (tmp_path / "v.json").write_text(
        json.dumps([{"name": "v", "grain": "1d", "by": ["device", "mobile"], "metrics": {"n": "count()"}}])
    )
    ok(run("ingest", "store", "e.parquet", cwd=tmp_path))
    ok(run("define", "store", "v.json", cwd=tmp_path))
    con = duckdb.connect()
    con.register("events", table)
    cases = [
        (["--where", "device=2"], "device = 2"),
        (["--where", "mobile=false"], "mobile = false"),
        (["--where", "device>=2", "--where", "device<3", "--where", "mobile=true"], "device = 2 and mobile"),
        (["--where", "device=1", "--where", "device=3"], "device in (1, 3)"),
    ]
    for args, predicate in cases:
        rows = json.loads(ok(run("query", "store", "v", *args, "--output", "json", cwd=tmp_path)))
        expected = con.sql(
            f"select date_trunc('day', ts) as bucket, device, mobile, count(*) as n from events "
            f"where {predicate} group by all"
        ).to_arrow_table()
        assert_served(rows, expected.to_pylist(), ["device", "mobile"], ["n"])
    bad = run("query", "store", "v", "--where", "device=two", cwd=tmp_path)
    assert bad.returncode == 2 and "not a valid int64 value" in bad.stderr


def test_ingest_of_a_file_without_rows_makes_no_commit(tmp_path: Path) -> None:
    """A zero-row input (a header-only CSV, an empty Parquet file) makes no commit."""
    first = pa.table({"ts": pa.array([START], pa.timestamp("us")), "sku": ["a"]})
    pq.write_table(first, tmp_path / "first.parquet")
    pq.write_table(first.slice(0, 0), tmp_path / "empty.parquet")
    (tmp_path / "empty.csv").write_text("ts,sku\n", encoding="utf-8")
    ok(run("ingest", "store", "first.parquet", cwd=tmp_path))
    out = ok(run("ingest", "store", "empty.parquet", "empty.csv", cwd=tmp_path))
    assert out.count("no rows; nothing committed") == 2, out
    import lamina

    with lamina.Store(tmp_path / "store", read_only=True) as store:
        assert store.commits().num_rows == 1
        assert store.snapshot().num_rows == 1


# ---------------------------------------------------------------- (from test_experience_v2.py)


def test_cli_quarantines_a_bad_value_with_its_line_not_the_whole_file(tmp_path) -> None:
    (tmp_path / "first.csv").write_text("ts,country,qty,ok\n2026-03-02T09:00:00,DE,7,true\n")
    (tmp_path / "b.csv").write_text(
        "ts,country,qty,ok\n"
        "2026-03-02T10:00:00,DE,1,true\n"
        "2026-03-02T11:00:00,日本,two,false\n"
        "2026-03-02T12:00:00,US,3,maybe\n"
        "2026-03-02T13:00:00,FR,4,\n"
    )
    r = run_cli("ingest", "st", "first.csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # Without --quarantine: refused whole, naming the column, the value and the line.
    r = run_cli("ingest", "st", "b.csv", cwd=tmp_path)
    assert r.returncode != 0
    assert 'column "qty": cannot read "two"' in r.stderr and "line 3" in r.stderr, r.stderr
    # With it: the good rows land, the bad ones are quarantined with their file lines.
    r = run_cli("ingest", "st", "b.csv", "--quarantine", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "2 rows quarantined" in r.stdout
    assert 'b.csv:3: column "qty"' in r.stdout and 'b.csv:4: column "ok"' in r.stdout, r.stdout
    s = lamina.Store(str(tmp_path / "st"), read_only=True)
    snap = s.snapshot()
    assert snap["qty"].to_pylist() == [7, 1, 4] and snap["ok"].to_pylist() == [True, True, None]
    q = s.quarantined()
    assert q["row"].to_pylist() == [1, 2] and q["qty"].to_pylist() == ["two", "3"]
    s.close()


def test_cli_quarantined_drop_compact_export_and_no_store_left_by_a_failure(tmp_path) -> None:
    import pyarrow.parquet as pq

    (tmp_path / "bad.csv").write_text("x\n1\n")
    r = run_cli("ingest", "new", "bad.csv", cwd=tmp_path)
    assert r.returncode == 1 and "no timestamp or date column" in r.stderr
    assert not (tmp_path / "new").exists(), "a failed first ingest left a store behind"

    (tmp_path / "a.csv").write_text("ts,qty\n2026-03-02T10:00:00,1\n")
    (tmp_path / "b.csv").write_text("ts,qty\n2026-03-02T11:00:00,x\n2026-03-02T12:00:00,3\n")
    assert run_cli("ingest", "st", "a.csv", cwd=tmp_path).returncode == 0
    assert run_cli("ingest", "st", "b.csv", "--quarantine", cwd=tmp_path).returncode == 0
    # A failure in an existing store leaves it as it was.
    r = run_cli("ingest", "st", "bad.csv", cwd=tmp_path)
    assert r.returncode == 1 and (tmp_path / "st").is_dir()

    r = run_cli("quarantined", "st", "--output", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    import json

    rows = json.loads(r.stdout)
    assert [(q["commit"], q["row"], q["qty"]) for q in rows] == [(2, 0, "x")]

    r = run_cli("export", "st", "snap.parquet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert pq.read_table(tmp_path / "snap.parquet")["qty"].to_pylist() == [1, 3]
    r = run_cli("export", "st", "first.parquet", "--commit", "1", cwd=tmp_path)
    assert pq.read_table(tmp_path / "first.parquet").num_rows == 1

    (tmp_path / "v.toml").write_text(
        '[[view]]\nname = "v"\ntime = "ts"\ngrain = "1h"\nmetrics = { n = "count()" }\n'
    )
    assert run_cli("define", "st", "v.toml", cwd=tmp_path).returncode == 0
    r = run_cli("drop", "st", "v", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run_cli("query", "st", "v", cwd=tmp_path)
    assert r.returncode == 1 and "v" in r.stderr
    r = run_cli("compact", "st", cwd=tmp_path)
    assert r.returncode == 0 and "compacted" in r.stdout, r.stderr
    r = run_cli("export", "st", "after.parquet", cwd=tmp_path)
    assert pq.read_table(tmp_path / "after.parquet")["qty"].to_pylist() == [1, 3]


def test_cli_wait_queues_behind_a_held_writer_lock(tmp_path) -> None:
    import threading

    (tmp_path / "a.csv").write_text("ts,qty\n2026-03-02T10:00:00,1\n")
    assert run_cli("ingest", "st", "a.csv", cwd=tmp_path).returncode == 0
    holder = lamina.Store(str(tmp_path / "st"))  # this process holds the writer lock
    r = run_cli("ingest", "st", "a.csv", cwd=tmp_path)
    assert r.returncode == 1 and "lock" in r.stderr.lower()
    # With --wait, the command waits; the holder closes once the command has started waiting
    # (it prints nothing until it has the lock, so release after a first failed attempt shows).
    result = {}

    def run():
        result["r"] = run_cli("ingest", "st", "a.csv", "--wait", "60", cwd=tmp_path)

    th = threading.Thread(target=run)
    th.start()
    th.join(timeout=3)  # still waiting: the lock is held
    assert th.is_alive()
    holder.close()
    th.join(timeout=60)
    assert result["r"].returncode == 0, result["r"].stderr
    s = lamina.Store(str(tmp_path / "st"), read_only=True)
    assert s.snapshot().num_rows == 2
    s.close()


def test_cli_delimiter_and_types_for_csv(tmp_path) -> None:
    (tmp_path / "a.csv").write_text("ts;zip;qty\n2026-03-02T10:00:00;01234;1\n2026-03-02T11:00:00;99999;2\n")
    r = run_cli("ingest", "st", "a.csv", "--delimiter", ";", "--types", "zip=string,qty=int32", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    s = lamina.Store(str(tmp_path / "st"), read_only=True)
    snap = s.snapshot()
    # Without --types, the zip code would be read as an integer and lose its leading zero.
    assert snap["zip"].to_pylist() == ["01234", "99999"]
    assert snap["qty"].to_pylist() == [1, 2]
    s.close()
    r = run_cli("ingest", "st2", "a.csv", "--delimiter", ";", "--types", "zip=nosuchtype", cwd=tmp_path)
    assert r.returncode == 1 and "nosuchtype" in r.stderr
    assert not (tmp_path / "st2").exists()


def test_help_explains_every_argument() -> None:
    import inspect

    for obj, method in ((lamina.View, None), (lamina.Store, None), (lamina.Store, "query")):
        target = getattr(obj, method) if method else obj
        doc = inspect.getdoc(target) or ""
        params = inspect.signature(target if method else obj.__init__).parameters
        for name in params:
            if name in ("self", "args", "kwargs"):
                continue
            assert f"``{name}``" in doc, (
                f"{obj.__name__}{'.' + method if method else ''}: {name} undocumented"
            )
    assert "_exact" in inspect.getdoc(lamina.Store.query) and "approximate" in inspect.getdoc(lamina.View)
