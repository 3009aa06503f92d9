"""NAB's threshold optimisation: ``nab_threshold`` against the threshold-by-threshold loop.

The corpus is NAB's published Windowed Gaussian and Numenta HTM outputs (all 58 series, read
from ``../shared/data/nab/results``) when present, else 58 generated series of NAB's lengths
with random windows. For each profile, ``lab.metrics.nab_threshold`` (one sort per series
gives the raw score at every candidate threshold, ``_nab_raw_curve``) is timed beside the
loop it replaced (the same candidates, the raw score of ``score >= t`` computed series by
series for each ``t``), in this process, alternately, best of the repeats. Both must return
the same threshold and score.

    .venv/bin/python benchmarks/bench_nab.py [--repeat 3] [--quick]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import pandas as pd

from lab.benchmark_metrics import (
    NAB_PROFILES,
    NAB_THRESHOLDS,
    _nab_candidates,
    _nab_probation,
    _nab_raw,
    _nab_refinement,
    _nab_windows,
    nab_threshold,
)
from lab.datasets import find_data, load_nab_results


def loop_threshold(scores: dict, windows: dict, profile: str,
                   n_thresholds: int = NAB_THRESHOLDS) -> tuple[float, float]:
    """The previous ``nab_threshold``: the same candidates, one raw score per threshold."""
    cost = NAB_PROFILES[profile]
    series, pooled, n_windows = [], [], 0
    for key, s in scores.items():
        values = s.to_numpy(np.float64)
        left, right = _nab_windows(windows[key], s.index, key)
        series.append((values, left, right))
        pooled.append(values[math.ceil(_nab_probation(len(values))):])
        n_windows += len(left)
    pooled = np.concatenate(pooled)
    candidates = _nab_candidates(pooled, n_thresholds)
    null = sum(_nab_raw(np.zeros(len(v), bool), lo, hi, cost) for v, lo, hi in series)
    perfect = n_windows * cost["tpWeight"]

    def corpus(threshold: float) -> float:
        raw = sum(_nab_raw(v >= threshold, lo, hi, cost) for v, lo, hi in series)
        return 100.0 * (raw - null) / (perfect - null)

    values = [corpus(t) for t in candidates]
    i = int(np.argmax(values))
    inner = _nab_refinement(pooled, candidates, i, n_thresholds)
    best = (values[i], float(candidates[i]))
    for threshold in inner:
        value = corpus(threshold)
        if value > best[0]:
            best = (value, float(threshold))
    return best[1], float(best[0])


def corpora() -> dict[str, tuple[dict, dict]]:
    """``{name: (scores, windows)}``: NAB's published outputs, or a generated corpus."""
    try:
        root = find_data("nab")
    except FileNotFoundError:
        root = None
    if root is not None and (root / "results").is_dir():
        return {f"NAB published {detector}": load_nab_results(detector, root)
                for detector in ("windowedGaussian", "numenta")}
    rng = np.random.default_rng(0)
    scores, windows = {}, {}
    for k in range(58):
        n = int(rng.integers(1127, 22695))
        t = pd.date_range("2024-01-01", periods=n, freq="5min")
        scores[f"s{k}"] = pd.Series(rng.random(n), index=t)
        starts = np.sort(rng.choice(np.arange(n // 5, n - n // 10), 2, replace=False))
        windows[f"s{k}"] = [(t[a], t[min(a + n // 20, n - 1)]) for a in starts
                            if a + n // 20 < starts[-1] or a == starts[-1]]
    return {"generated (58 series, NAB's lengths)": (scores, windows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1 repeat, the standard profile only")
    args = ap.parse_args()
    repeat = 1 if args.quick else args.repeat
    profiles = ["standard"] if args.quick else list(NAB_PROFILES)
    print("| corpus | profile | loop s | nab_threshold s | speedup | threshold | score |")
    print("|---|---|---|---|---|---|---|")
    for name, (scores, windows) in corpora().items():
        for profile in profiles:
            best = [math.inf, math.inf]
            for _ in range(repeat):
                for j, fn in enumerate((loop_threshold, nab_threshold)):
                    start = time.perf_counter()
                    got = fn(scores, windows, profile)
                    best[j] = min(best[j], time.perf_counter() - start)
                    if j == 0:
                        want = got
                    elif got[0] != want[0] or abs(got[1] - want[1]) > 1e-9:
                        raise SystemExit(f"{name} {profile}: {got} differs from the loop's {want}")
            print(f"| {name} | {profile} | {best[0]:.2f} | {best[1]:.3f} | "
                  f"{best[0] / best[1]:.0f}x | {want[0]:.4g} | {want[1]:.2f} |")


if __name__ == "__main__":
    main()
