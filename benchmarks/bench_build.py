"""Build: the README's demo command from a fresh clone, as a new user meets it.

    python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/lamina demo

Timed from the clone to the first line the demo prints, for this checkout (HEAD) and for a
baseline revision (default ``d030217``: Core v2 as it landed, before the build was trimmed), one
after the other in the same run. Both clones use the machine's pip and cargo caches, so the
figures are compile time plus installing cached wheels, not download time. Skipped in ``--quick``
runs (each build takes minutes on 2 cores).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from common import BenchResult, Config, Row, fmt_time, log, md_table, target_check

NAME = "build"
BASELINE = os.environ.get("LAMINA_BUILD_BASELINE", "d030217")
REPO = Path(__file__).resolve().parent.parent


def _git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def _crates(clone: Path) -> int:
    """How many crates the extension compiles (from the lock file, for the python feature)."""
    out = subprocess.run(
        ["cargo", "tree", "--features", "python", "-e", "normal", "--prefix", "none"],
        cwd=clone,
        capture_output=True,
        text=True,
    ).stdout
    return len({line.split(" (")[0] for line in out.splitlines() if line.strip()})


def measure(rev: str, where: Path) -> dict:
    """Clone, set up and run the demo; seconds to the first demo line and to its end."""
    clone = where / rev
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    _git("checkout", "-q", rev, cwd=clone)
    t0 = time.perf_counter()
    subprocess.run(["python3", "-m", "venv", ".venv"], cwd=clone, check=True)
    p = subprocess.run([".venv/bin/pip", "install", "-q", "."], cwd=clone, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"pip install failed at {rev}:\n{p.stderr[-2000:]}")
    installed = time.perf_counter() - t0
    demo = subprocess.Popen(
        [".venv/bin/lamina", "demo"], cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    first = None
    assert demo.stdout is not None
    for line in demo.stdout:
        if first is None and line.strip():
            first = time.perf_counter() - t0
    if demo.wait() != 0:
        raise RuntimeError(f"lamina demo failed at {rev}")
    return {
        "rev": _git("rev-parse", "--short", rev, cwd=clone),
        "install_s": installed,
        "first_output_s": first if first is not None else float("nan"),
        "total_s": time.perf_counter() - t0,
        "crates": _crates(clone),
    }


def run(cfg: Config) -> BenchResult:
    res = BenchResult(NAME)
    if cfg.quick:
        res.details.append("Skipped in a quick run (two fresh builds take 10-20 minutes on 2 cores).")
        return res
    where = cfg.workdir / "build"
    where.mkdir(parents=True, exist_ok=True)
    got = {}
    for label, rev in (("baseline", BASELINE), ("this checkout", "HEAD")):
        log(f"build: fresh clone of {rev}, venv, pip install ., lamina demo")
        got[label] = measure(rev, where)
    base, head = got["baseline"], got["this checkout"]
    ratio = base["first_output_s"] / head["first_output_s"]
    res.rows.append(
        Row(
            NAME,
            "README demo command from a fresh clone: time to the demo's first output",
            fmt_time(head["first_output_s"]),
            f"before ({base['rev']})",
            fmt_time(base["first_output_s"]),
            ratio,
            target_check(ratio > 1.0, "shorter than before"),
        )
    )
    rows = [
        [k, v["rev"], *(fmt_time(v[t]) for t in ("install_s", "first_output_s", "total_s")), v["crates"]]
        for k, v in got.items()
    ]
    res.details.append(
        "Fresh clone, `python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/lamina demo`, one "
        "build after the other (pip and cargo caches warm, so no downloads are timed):\n\n"
        + md_table(["build", "git", "venv + pip install", "first demo output", "demo done", "crates"], rows)
    )
    return res
