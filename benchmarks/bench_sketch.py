"""Sketch accuracy and size: lamina's HLL (precision 14) vs datasketches hll_sketch(lg_k=14).

For each cardinality n and trial, n distinct random int64 values are sketched by
``lamina._core.sketch_estimate(array, 14)`` and by datasketches HLL_8 and HLL_4 sketches (fed
per item, the package's only interface). Reported: mean |relative error|, RMS relative error, bias,
RMS / theoretical RSE (1.04 / sqrt(2^14)), coverage of the 95% bounds, serialized bytes
(datasketches: ``serialize_compact()``), and accuracy per byte as variance x bytes (lower is better;
ratio = peer / lamina, >1 means lamina gives more accuracy per byte).
"""

from __future__ import annotations

import math
import time

import datasketches
import numpy as np
import pyarrow as pa
from common import BenchResult, Config, Row, fmt_int, log, md_table, target_check

from lamina import _core

NAME = "sketch"
P = 14
RSE = 1.04 / math.sqrt(2**P)
CARDINALITIES = [100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000]


def _trials(cfg: Config, n: int) -> int:
    if cfg.quick:
        return 30 if n <= 100_000 else 8
    return 400 if n <= 100_000 else (150 if n <= 300_000 else 80)


class Acc:
    def __init__(self) -> None:
        self.err: list[float] = []
        self.covered = 0
        self.bytes: list[int] = []
        self.mem: list[int] = []
        self.seconds = 0.0

    def add(self, n: int, est: float, lo: float, hi: float, nbytes: int, mem: int = 0) -> None:
        self.err.append((est - n) / n)
        self.covered += lo <= n <= hi
        self.bytes.append(nbytes)
        self.mem.append(mem)

    @property
    def mean_abs(self) -> float:
        return float(np.mean(np.abs(self.err)))

    @property
    def rms(self) -> float:
        return float(np.sqrt(np.mean(np.square(self.err))))

    @property
    def bias(self) -> float:
        return float(np.mean(self.err))

    @property
    def avg_bytes(self) -> float:
        return float(np.mean(self.bytes))

    @property
    def var_bytes(self) -> float:
        """Accuracy per byte: mean squared error x bytes (lower is better)."""
        return self.rms**2 * self.avg_bytes


def _ds(values: list[int], kind) -> tuple[float, float, float, int]:
    s = datasketches.hll_sketch(P, kind)
    upd = s.update
    for x in values:
        upd(x)
    return s.get_estimate(), s.get_lower_bound(2), s.get_upper_bound(2), len(s.serialize_compact())


def run(cfg: Config) -> BenchResult:
    res = BenchResult(NAME)
    rng = np.random.default_rng((cfg.seed, 4))
    table = []
    summary = {}
    for n in CARDINALITIES:
        trials = _trials(cfg, n)
        log(f"sketch: n={n:,} x {trials} trials")
        acc = {"lamina": Acc(), "HLL_8": Acc(), "HLL_4": Acc()}
        for _ in range(trials):
            vals = rng.integers(-(2**62), 2**62, n, dtype=np.int64)
            vals = np.unique(vals)
            while len(vals) < n:  # practically never
                vals = np.unique(np.concatenate([vals, rng.integers(-(2**62), 2**62, n - len(vals))]))
            # (np.unique sorts; order does not matter to hash-based sketches)
            t0 = time.perf_counter()
            est, lo, hi, nbytes, mem = _core.sketch_estimate(pa.array(vals), P)
            acc["lamina"].seconds += time.perf_counter() - t0
            acc["lamina"].add(n, est, lo, hi, nbytes, mem)
            lst = vals.tolist()
            for kind_name, kind in (("HLL_8", datasketches.HLL_8), ("HLL_4", datasketches.HLL_4)):
                t0 = time.perf_counter()
                e, lo2, hi2, b = _ds(lst, kind)
                acc[kind_name].seconds += time.perf_counter() - t0
                acc[kind_name].add(n, e, lo2, hi2, b)
        summary[n] = acc
        for name, a in acc.items():
            table.append(
                [
                    fmt_int(n),
                    name if name == "lamina" else f"datasketches {name}",
                    str(trials),
                    f"{a.mean_abs * 100:.3f}%",
                    f"{a.rms * 100:.3f}%",
                    f"{a.bias * 100:+.3f}%",
                    f"{a.rms / RSE:.2f}",
                    f"{a.covered / trials * 100:.0f}%",
                    fmt_int(round(a.avg_bytes)),
                    fmt_int(round(np.mean(a.mem))) if name == "lamina" else "",
                    f"{a.var_bytes:.3g}",
                ]
            )

    # Summary rows: sparse (exactness), and dense (accuracy vs RSE and per byte)
    small = summary[CARDINALITIES[0]]["lamina"]
    res.rows.append(
        Row(
            NAME,
            f"n={CARDINALITIES[0]}: max |rel err| (sparse mode, should be ~exact)",
            f"{max(abs(e) for e in small.err) * 100:.2f}%",
            "datasketches HLL_8",
            f"{max(abs(e) for e in summary[CARDINALITIES[0]]['HLL_8'].err) * 100:.2f}%",
            None,
            target_check(max(abs(e) for e in small.err) < 0.01, "nearly exact (<1%)"),
        )
    )
    for n in (100_000, 1_000_000):
        a = summary[n]
        lam = a["lamina"]
        for peer in ("HLL_8", "HLL_4"):
            p = a[peer]
            res.rows.append(
                Row(
                    NAME,
                    f"n={n:,}: RMS rel err / bytes (ratio: accuracy per byte, peer var x bytes / lamina's)",
                    f"{lam.rms * 100:.3f}% / {fmt_int(round(lam.avg_bytes))} B",
                    f"datasketches {peer}",
                    f"{p.rms * 100:.3f}% / {fmt_int(round(p.avg_bytes))} B",
                    p.var_bytes / lam.var_bytes,
                    target_check(lam.rms <= 1.10 * RSE, f"RMS <= 1.1 x RSE ({RSE * 100:.3f}%)")
                    if peer == "HLL_8"
                    else "",
                )
            )
    cov = {n: a["lamina"].covered / len(a["lamina"].err) for n, a in summary.items()}
    worst_n = min(cov, key=cov.get)
    res.rows.append(
        Row(
            NAME,
            "95% bounds: lowest coverage over all n (share of trials containing the truth)",
            f"{cov[worst_n] * 100:.1f}% at n={worst_n:,}",
            "datasketches HLL_8 (same n)",
            f"{summary[worst_n]['HLL_8'].covered / len(summary[worst_n]['HLL_8'].err) * 100:.1f}%",
            None,
            target_check(cov[worst_n] >= 0.95, "at least 95% at every n"),
        )
    )
    dense = [n for n in CARDINALITIES if n >= 30_000]

    def secs(name: str) -> float:
        return sum(s[name].seconds for s in summary.values())

    worst = max(summary[n]["lamina"].rms / RSE for n in dense)
    res.notes.append(
        f"sketch: theoretical RSE at precision {P}: {RSE * 100:.4f}%; worst lamina RMS/RSE over "
        f"n >= 30,000: {worst:.2f}; lamina sketch time {secs('lamina'):.2f} s "
        f"vs datasketches HLL_8 loop {secs('HLL_8'):.2f} s over the same trials"
    )
    res.details.append(
        "**sketch accuracy** (distinct random int64 values per trial; coverage = share of trials whose "
        "95% bounds contain the truth; memory = lamina's in-memory sketch size)\n\n"
        + md_table(
            [
                "n",
                "sketch",
                "trials",
                "mean abs err",
                "RMS err",
                "bias",
                "RMS/RSE",
                "95% coverage",
                "bytes",
                "memory",
                "err² x bytes",
            ],
            table,
        )
    )
    return res
