"""`lamina demo`: a web shop's event stream through the three layers."""

from __future__ import annotations

import argparse
import datetime as dt
import math
import random
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

import lamina
from lamina.cli._common import CommandError, UsageError, format_table
from lamina.cli.batch import format_status

_COUNTRIES = ["DE", "FR", "US", "JP", "BR", "CI", "NA", None]


_COUNTRY_WEIGHTS = [30, 18, 22, 9, 8, 3, 2, 8]  # None: the geo lookup failed


_PAGES = ["/", "/suche", "/produkt/käse", "/produkt/crème-brûlée", "/カート", "/checkout"]


_PAGE_WEIGHTS = [30, 20, 18, 12, 12, 8]


_DEMO_START = dt.datetime(2026, 3, 2)  # a Monday, UTC


def demo_events(
    n: int,
    start: dt.datetime,
    hours: float,
    rng: random.Random,
    users: int = 5000,
) -> pa.Table:
    """``n`` page views of a web shop, spread over ``hours`` from ``start`` with a daily rhythm.

    Columns: ts (event time, UTC), country (ISO code, null when unknown), page (unicode paths),
    user_id (a few heavy users, a long tail), amount (only on checkouts; null otherwise).
    """
    ts: list[dt.datetime] = []
    span = hours * 3600.0
    while len(ts) < n:
        offset = rng.random() * span
        moment = start + dt.timedelta(seconds=offset)
        hour = moment.hour + moment.minute / 60
        # busy in the (European) evening, quiet at night
        if rng.random() < 0.35 + 0.65 * (0.5 - 0.5 * math.cos((hour - 3) / 24 * 2 * math.pi)):
            ts.append(moment.replace(microsecond=moment.microsecond // 1000 * 1000))
    ts.sort()
    countries = rng.choices(_COUNTRIES, _COUNTRY_WEIGHTS, k=n)
    pages = rng.choices(_PAGES, _PAGE_WEIGHTS, k=n)
    user_ids = [f"u{int(users * rng.random() ** 2):05d}" for _ in range(n)]
    amounts = [
        round(rng.lognormvariate(3.4, 0.6), 2) if page == "/checkout" and rng.random() > 0.05 else None
        for page in pages
    ]
    return pa.table(
        {
            "ts": pa.array(ts, pa.timestamp("us")),
            "country": pa.array(countries, pa.string()),
            "page": pa.array(pages, pa.string()),
            "user_id": pa.array(user_ids, pa.string()),
            "amount": pa.array(amounts, pa.float64()),
        }
    )


def _exact_by_day(snapshot: pa.Table) -> pa.Table:
    """Events and distinct users per day, straight from the master dataset (an independent check)."""
    day = pc.floor_temporal(snapshot.column("ts"), unit="day")
    return (
        pa.table({"day": day, "user_id": snapshot.column("user_id")})
        .group_by("day")
        .aggregate([([], "count_all"), ("user_id", "count_distinct")])
        .rename_columns(["day", "events", "true_users"])
        .sort_by("day")
    )


def cmd_demo(args: argparse.Namespace) -> int:
    n = args.events
    if n < 1000:
        raise UsageError("--events must be at least 1000")
    rng = random.Random(args.seed)
    if args.dir is not None:
        target = Path(args.dir)
        if target.exists() and any(target.iterdir()):
            raise CommandError(f"{target} is not empty: the demo needs a new or empty directory")
        store = lamina.Store(target)
    else:
        store = lamina.Store()
    out = sys.stdout
    ok = True

    def say(text: str = "") -> None:
        out.write(text + "\n")

    def step(number: int, title: str) -> None:
        say()
        say(f"{number}. {title}")
        say("-" * (len(title) + 3))

    def check(passed: bool, text: str) -> None:
        nonlocal ok
        ok = ok and passed
        say(f"   {'✓' if passed else '✗ MISMATCH:'} {text}")

    with store:
        where = "a temporary store (removed at the end)" if store.temporary else str(store.path)
        say("lamina demo: a web shop's page views through the three layers of the Lambda Architecture")
        say(f"store: {where}")

        batch_n = int(n * 0.80)
        live_n = int(n * 0.15)
        late_n = n - batch_n - live_n
        days = 3

        step(1, "Master dataset: append-only, one immutable commit per append")
        per_day = batch_n // days
        for d in range(days):
            count = per_day if d < days - 1 else batch_n - per_day * (days - 1)
            events = demo_events(count, _DEMO_START + dt.timedelta(days=d), 24, rng)
            commit = store.append(events)
            day = (_DEMO_START + dt.timedelta(days=d)).date()
            say(f"   commit {commit}: {events.num_rows:,} page views of {day} (the nightly export)")
        say("   a few events of commit 1 (amount is only set on checkouts; country is null when unknown):")
        sample = store.snapshot(1).slice(0, 5)
        say(format_table(sample, indent="     "))

        step(2, "A view: one definition drives the batch and the speed layer")
        view = lamina.View(
            "shop",
            time="ts",
            grain="1h",
            by=["country", "page"],
            metrics={
                "views": lamina.count(),
                "orders": lamina.count("amount"),
                "revenue": lamina.sum("amount"),
                "basket": lamina.mean("amount"),
                "users": lamina.count_distinct("user_id"),
            },
        )
        store.define(view)
        daily = lamina.View(
            "daily_users",
            time="ts",
            grain="1d",
            metrics={"views": lamina.count(), "users": lamina.count_distinct("user_id")},
        )
        store.define(daily)
        for v in (view, daily):
            dims = f" by {', '.join(v.by)}" if v.by else ""
            say(f"   view {v.name!r}: per {v.grain} of {v.time}{dims}")
            for name, agg in v.metrics.items():
                say(f"     {name:8} = {agg.agg}({agg.column or ''})")

        step(3, "Batch layer: recompute every view from scratch over the latest snapshot")
        started = time.perf_counter()
        covered = store.recompute(progress=False)
        took = time.perf_counter() - started
        status = store.status()
        groups = {v["name"]: v["batch_groups"] for v in status["views"]}
        say(
            f"   batch views cover commit {covered} ({groups['shop']:,} + {groups['daily_users']:,} groups, "
            f"exact, {took * 1000:.0f} ms)"
        )
        say("   revenue per day and country, from the batch view:")
        per_country = store.query("shop", grain="1d", by=["country"], where={"country": ["DE", "FR", "JP"]})
        say(
            format_table(
                per_country.select(["bucket", "country", "views", "orders", "revenue", "basket"]),
                indent="     ",
            )
        )

        step(4, "Speed layer: new events arrive, and some late ones")
        live_start = _DEMO_START + dt.timedelta(days=days)
        live_batches = 3
        for b in range(live_batches):
            count = (
                live_n // live_batches
                if b < live_batches - 1
                else live_n - live_n // live_batches * (live_batches - 1)
            )
            events = demo_events(count, live_start + dt.timedelta(hours=2 * b), 2, rng)
            commit = store.append(events)
            first, last = pc.min_max(events.column("ts")).values()
            say(
                f"   commit {commit}: {count:,} live page views, "
                f"{first.as_py():%Y-%m-%d %H:%M} to {last.as_py():%H:%M}"
            )
        late_day = _DEMO_START + dt.timedelta(days=1)
        late = demo_events(late_n, late_day, 24, rng)
        late_commit = store.append(late)
        say(
            f"   commit {late_commit}: {late_n:,} LATE page views from {late_day.date()}, "
            "synced by a mobile app "
            "that was offline: their hours are already in the batch view"
        )
        try:
            store.append(pa.table({"ts": ["yesterday"], "country": ["DE"]}))
        except lamina.SchemaError as e:
            say(f"   a malformed batch is refused whole, nothing written: SchemaError: {e}")
        v_status = {v["name"]: v for v in store.status()["views"]}["shop"]
        say(
            f"   speed layer of 'shop': {v_status['pending_commits']} commits after "
            f"{v_status['covered_commit']}, "
            f"{v_status['speed_rows']:,} events in {v_status['speed_groups']:,} groups, kept in memory"
        )
        speed = store.speed_view("shop")
        late_rows = speed.filter(
            pc.less(speed.column("bucket"), pa.scalar(live_start, pa.timestamp("us", "UTC")))
        )
        say(
            f"   the speed view holds {late_rows.num_rows:,} groups of {late_day.date()}: "
            "the late events, e.g."
        )
        say(
            format_table(
                late_rows.select(["bucket", "country", "page", "views", "users"]), max_rows=4, indent="     "
            )
        )

        step(5, "Serving layer: batch (commits <= N) merged with speed (commits > N)")
        served = store.query("daily_users")
        truth = _exact_by_day(store.snapshot())
        say(f"   view 'daily_users', served: batch view (commit {covered}) + speed layer (commits after it)")
        say(format_table(served, indent="     "))
        served_total = pc.sum(served.column("views")).as_py()
        check(
            served_total == store.status()["rows"]
            and served.column("views").to_pylist() == truth.column("events").to_pylist(),
            f"{served_total:,} page views served = {store.status()['rows']:,} rows in the master dataset, "
            "day by day: every event counted exactly once",
        )
        batch_day = store.batch_view("daily_users").filter(
            pc.equal(
                store.batch_view("daily_users").column("bucket"),
                pa.scalar(late_day, pa.timestamp("us", "UTC")),
            )
        )
        served_day = served.filter(
            pc.equal(served.column("bucket"), pa.scalar(late_day, pa.timestamp("us", "UTC")))
        )
        bv = batch_day.column("views")[0].as_py()
        sv = served_day.column("views")[0].as_py()
        check(
            sv == bv + late_n,
            f"{late_day.date()}: {bv:,} from the batch view + {late_n:,} late ones "
            f"from the speed layer = {sv:,}",
        )

        step(6, "Distinct users: exact in batch views, HyperLogLog sketches where speed data is merged")
        joined = served.select(
            ["bucket", "users", "users_exact", "users_lower", "users_upper"]
        ).append_column("true_users", truth.column("true_users"))
        say(format_table(joined, indent="     "))
        within = all(
            r["users_lower"] <= r["true_users"] <= r["users_upper"]
            and (not r["users_exact"] or r["users"] == r["true_users"])
            for r in joined.to_pylist()
        )
        check(within, "every true distinct count (from the snapshot) lies within the served 95% bounds")
        say("   days without speed data are exact; days with speed data are sketch estimates with bounds")

        step(7, "Time travel: every commit stays readable")
        say(format_table(store.commits().select(["commit", "rows", "committed_at"]), indent="     "))
        old = store.snapshot(covered)
        say(
            f"   snapshot({covered}) has {old.num_rows:,} rows (what the batch layer read); "
            f"the latest has {store.snapshot().num_rows:,}"
        )

        step(8, "Recompute: the batch layer absorbs the speed layer")
        store.recompute(progress=False)
        again = store.query("daily_users")
        say(format_table(again, indent="     "))
        check(
            again.column("users").to_pylist() == truth.column("true_users").to_pylist()
            and all(again.column("users_exact").to_pylist()),
            "distinct users are exact again, and equal the counts from the snapshot",
        )

        step(9, "Status")
        say(format_status(store.status(), indent="   "))
        say()
        if ok:
            say("Try it on your files: lamina ingest DIR events.parquet; lamina define DIR views.toml; ...")
    if not ok:
        raise CommandError("the demo's checks failed (see ✗ above): this is a bug in lamina")
    return 0
