"""Accuracy of the HyperLogLog sketch against its theoretical standard error, and lossless merges."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import lamina
from lamina import _core

from conftest import START

P = 14
RSE = math.sqrt(3 * math.log(2) - 1) / math.sqrt(2**P)  # ~1.04 / sqrt(m)


def _errors(cardinality: int, trials: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    errs = []
    for _ in range(trials):
        # Distinct random 63-bit ids (collisions are negligible at these sizes).
        ids = pa.array(rng.integers(0, 2**62, cardinality, dtype=np.int64))
        est, lo, hi, _size, _mem = _core.sketch_estimate(ids, P)
        errs.append(est / cardinality - 1.0)
    return np.array(errs)


@pytest.mark.parametrize("cardinality", [1, 10, 100, 1_000, 4_000])
def test_small_cardinalities_are_nearly_exact(cardinality):
    errs = _errors(cardinality, trials=20, seed=cardinality)
    assert np.max(np.abs(errs)) < 0.01, errs


@pytest.mark.parametrize("cardinality", [100_000, 300_000])
def test_dense_error_matches_theory(cardinality):
    errs = _errors(cardinality, trials=300, seed=cardinality)
    rms = float(np.sqrt(np.mean(errs**2)))
    # Within 10% of the theoretical relative standard error (deterministic seeds).
    assert abs(rms / RSE - 1) < 0.10, (rms, RSE)
    assert abs(float(np.mean(errs))) < 3 * RSE / math.sqrt(len(errs)) + 1e-4


@pytest.mark.slow
@pytest.mark.parametrize(("cardinality", "trials"), [(1_000_000, 200), (10_000_000, 30)])
def test_dense_error_matches_theory_large(cardinality, trials):
    errs = _errors(cardinality, trials=trials, seed=cardinality)
    rms = float(np.sqrt(np.mean(errs**2)))
    tolerance = 0.10 if trials >= 200 else 0.35  # fewer trials: a wider band for the RMS itself
    assert abs(rms / RSE - 1) < tolerance, (rms, RSE)


def test_bounds_hold_the_truth_95_percent_of_the_time():
    rng = np.random.default_rng(5)
    inside = 0
    trials = 400
    widths = []
    for _ in range(trials):
        n = int(rng.integers(5_000, 50_000))
        ids = pa.array(rng.integers(0, 2**62, n, dtype=np.int64))
        est, lo, hi, _size, _mem = _core.sketch_estimate(ids, P)
        inside += lo <= n <= hi
        widths.append((hi - lo) / 2 / est)
    # At least 95% (with room for the sampling error of 400 trials), and bounds that are not
    # absurdly wide to get there: half-widths within 2.5 theoretical standard errors.
    assert inside / trials >= 0.93, inside / trials
    assert float(np.mean(widths)) <= 2.5 * RSE, (np.mean(widths), RSE)


def test_memory_is_small_for_small_groups():
    ids = pa.array(np.arange(50, dtype=np.int64))
    _est, _lo, _hi, size, mem = _core.sketch_estimate(ids, P)
    assert size < 400 and mem < 1_000
    big = pa.array(np.arange(200_000, dtype=np.int64))
    _est, _lo, _hi, size, mem = _core.sketch_estimate(big, P)
    assert size <= 0.75 * 2**P + 16 and mem <= 2**P + 128


def test_split_streams_merge_to_the_whole_stream_sketch():
    """The speed layer's sketch of a stream split over many appends equals that of one append."""
    rng = np.random.default_rng(9)
    n = 60_000
    ts = np.datetime64(START, "us") + rng.integers(0, 3 * 3_600_000_000, n).astype("timedelta64[us]")
    table = pa.table({"ts": ts, "k": rng.choice(["a", "b"], n), "u": rng.integers(0, 30_000, n)})
    view = lamina.View("v", time="ts", grain="1h", by=["k"], metrics={"users": lamina.count_distinct("u")})
    results = []
    for pieces in (1, 7, 31):
        with lamina.Store() as s:
            order = rng.permutation(n)  # a different order each time, too
            shuffled = table.take(pa.array(order))
            bounds = np.linspace(0, n, pieces + 1).astype(int)
            for a, b in zip(bounds[:-1], bounds[1:], strict=True):
                s.append(shuffled.slice(a, b - a))
            s.define(view)
            results.append(s.speed_view("v"))
    assert results[0].equals(results[1]) and results[0].equals(results[2])
    # And the estimates hold the exact answer within their bounds.
    exact = table.group_by(["k"]).aggregate([("u", "count_distinct")])
    assert pc.sum(exact["u_count_distinct"]).as_py() > 0


def test_stubs_match_the_native_module():
    """mypy.stubtest checks _core.pyi against the compiled module."""
    root = Path(__file__).resolve().parent.parent
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy.stubtest",
            "lamina._core",
            "--mypy-config-file",
            str(root / "pyproject.toml"),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("cardinality", [1_000, 3_000])
def test_sparse_bounds_cover_index_collisions(cardinality):
    """In sparse mode the true count hides behind rare index collisions: the 95% bounds must
    still hold it about 95% of the time (or more)."""
    rng = np.random.default_rng(cardinality + 1)
    trials = 400
    inside = 0
    for _ in range(trials):
        ids = pa.array(rng.integers(0, 2**62, cardinality, dtype=np.int64))
        _est, lo, hi, _size, _mem = _core.sketch_estimate(ids, P)
        inside += lo <= cardinality <= hi
    assert inside / trials >= 0.95, inside / trials
