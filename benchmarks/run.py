"""lamina benchmark suite: lamina side by side with its peers, on the same generated data.

    /path/to/python benchmarks/run.py [--quick] [--only NAME]

Prints a Markdown report (summary table, then details) to stdout and writes it to
benchmarks/results/latest.md. Progress goes to stderr. Ratios are peer_time / lamina_time
(equivalently lamina_rate / peer_rate): above 1 means lamina is faster.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import BenchResult, Config, core_built, core_file_mtime, fmt_ratio, log, md_table  # noqa: E402

BENCHES = [
    "append",
    "batch",
    "speed",
    "sketch",
    "quantiles",
    "serving",
    "sources",
    "distributed",
    "time",
    "history",
    "build",
]


def _versions() -> str:
    from importlib import metadata

    out = []
    for mod in ("lamina", "duckdb", "polars", "pyarrow", "numpy", "datasketches"):
        try:
            importlib.import_module(mod)
            out.append(f"{mod} {metadata.version(mod)}")
        except Exception as e:  # a missing peer is reported, not hidden
            out.append(f"{mod} unavailable ({e})")
    return ", ".join(out)


def _build() -> str:
    """The lamina core under test: its git commit and the build time of the extension."""
    import subprocess

    built = core_built()
    try:
        rev = subprocess.run(
            ["git", "-C", str(HERE.parent), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except Exception:
        rev = "?"
    return f"lamina git {rev or '?'}, _core built {built}"


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def report(results: list[BenchResult], args: argparse.Namespace, elapsed: float) -> str:
    head = [
        f"# lamina benchmarks ({'quick' if args.quick else 'full'} run)",
        "",
        f"{dt.datetime.now().isoformat(timespec='seconds')}; {_cpu()}, {os.cpu_count()} cores; "
        f"Python {platform.python_version()}; {_versions()}; {args.build_start}. Total {elapsed:.0f} s.",
        f"Load average (1 min) at start {args.load_start:.2f}, at end {os.getloadavg()[0]:.2f} "
        "(other work on the machine skews timings; compare ratios from the same run).",
        "",
        *(
            [
                f"Note: the lamina extension file was rebuilt during the run (now {core_file_mtime()}); "
                "this process keeps the build loaded at start, and subprocess workers check theirs.",
                "",
            ]
            if core_file_mtime() != args.core_start
            else []
        ),
        "Ratio = peer_time / lamina_time on the same work (for rates: lamina_rate / peer_rate; for "
        "memory: peer / lamina). Above 1 means lamina is faster (or smaller).",
        "",
    ]
    rows = []
    for r in results:
        for row in r.rows:
            rows.append(
                [row.bench, row.case, row.lamina, row.peer, row.peer_value, fmt_ratio(row.ratio), row.target]
            )
        if r.error:
            rows.append([r.name, "**FAILED**", r.error.strip().splitlines()[-1], "", "", "", ""])
    body = [md_table(["bench", "case", "lamina", "peer", "peer result", "ratio", "target"], rows), ""]
    notes = [n for r in results for n in r.notes]
    if notes:
        body += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    body += ["## Details", ""]
    for r in results:
        body.append(f"### {r.name} ({r.seconds:.0f} s; load average at its end {r.load:.2f})")
        body.append("")
        for d in r.details:
            body += [d, ""]
        if r.error:
            body += ["```", r.error.strip(), "```", ""]
    return "\n".join(head + body)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    ap.add_argument("--only", action="append", choices=BENCHES, metavar="NAME", help=f"one of {BENCHES}")
    ap.add_argument("--workdir", type=Path, default=None, help="scratch directory (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "latest.md")
    args = ap.parse_args(argv)
    args.load_start = os.getloadavg()[0]
    args.build_start = _build()
    args.core_start = core_built()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="lamina-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = Config(quick=args.quick, workdir=workdir)
    names = args.only or BENCHES
    results = []
    t_all = time.perf_counter()
    try:
        for name in names:
            mod = importlib.import_module(f"bench_{name}")
            log(f"=== {name}")
            t0 = time.perf_counter()
            try:
                res = mod.run(cfg)
            except Exception:
                res = BenchResult(name, error=traceback.format_exc())
                log(f"{name} FAILED:\n{res.error}")
            res.seconds = time.perf_counter() - t0
            res.load = os.getloadavg()[0]
            log(f"=== {name} done in {res.seconds:.1f} s")
            results.append(res)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    text = report(results, args, time.perf_counter() - t_all)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    log(f"report written to {args.out}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
