"""Seconds to fit and to score every registered detector at 10k, 100k and 1M points.

Data: a noisy sine (period 50, noise std 0.2, one column; four columns for
MSCRED, which needs several series), fitted on ``n`` rows and scored on
another ``n`` rows. Every detector is built by its registry name with its
defaults (the Keras detectors with the small settings of the conformance
test) and run once on 2,000 rows, untimed, first: numba's compile time and
imports are counted apart. A registered name whose module is not there yet
is skipped with a note.

Sizes: 10k and 100k for all; 1M for the detectors whose cost grows linearly
(``LINEAR``). The issue's bar: scoring 100k points in under 5 s, 30 s for
matrix_profile, lof and knn.

Ratios follow the benchmark convention: where a detector is a thin wrapper
of a library estimator, the same estimator is run bare in the same process
on the same standardised windows (fitted on the same subsample of at most
10,000 windows; timed: scoring all windows, already built, in one call), and
the table gives the detector's score time (validation, windowing in chunks,
placement) over it.

    .venv/bin/python benchmarks/bench_detectors.py [--only pca,knn] [--repeat 1]
    .venv/bin/python benchmarks/bench_detectors.py --quick        # 10k only (make bench)
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from lab.models import DETECTORS, get_detector

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PERIOD, NOISE = 50, 0.2
WARMUP_ROWS = 2_000
#: Detectors whose fit and score grow linearly with the series (1M is measured).
LINEAR = {"pca", "hbos", "iforest", "spectral_residual", "ks_window", "spot", "random",
          "constant"}
#: Keras detectors: training dominates; measured at 10k only, with small settings.
TRAINING = {
    "mscred": dict(windows=(10, 20), step=5, steps=2, epochs=1, filters=(2, 2, 2, 2)),
    "betsi": dict(window_size=20, stride=5, epochs=2, verbose=0),
    "lstm_ae": dict(window=10, stride=10, units=(4,), epochs=1, verbose=0),
}
COLUMNS = {"mscred": 4}
#: Change-point detectors segment each series on its own: benchmarks/bench_changepoints.py
#: times them (ruptures' PELT and bottom-up are not linear); --only still runs them here.
CHANGE_POINT = {"pelt", "binseg", "bottomup", "window", "bocpd"}
#: The issue's bar for scoring 100k points, in seconds.
BAR = {"matrix_profile": 30.0, "lof": 30.0, "knn": 30.0}
DEFAULT_BAR = 5.0


def series(n: int, n_cols: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    phase = rng.uniform(0, 2 * np.pi, n_cols)
    return np.sin(2 * np.pi * t / PERIOD + phase) + NOISE * rng.standard_normal((n, n_cols))


def _windows(det, values: np.ndarray, cap: int | None) -> np.ndarray:
    """The detector's standardised, flattened windows, built here with numpy alone."""
    z = (values - det.mean_) / det.scale_
    w = sliding_window_view(z, det.window_, axis=0)  # (n_windows, d, window)
    if cap is not None and len(w) > cap:
        w = w[np.unique(np.linspace(0, len(w) - 1, cap).round().astype(np.intp))]
    return np.ascontiguousarray(w.transpose(0, 2, 1)).reshape(len(w), -1)


def _reference(name: str) -> Callable | None:
    """Bare library estimator fitted on the detector's fitted windows: a scorer of windows."""
    from pyod.models.hbos import HBOS
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors

    from lab.models._base import MAX_FIT_WINDOWS as cap

    def pca(det, train):
        est = PCA(n_components=0.9, svd_solver="covariance_eigh").fit(_windows(det, train, cap))
        return lambda f: ((f - est.inverse_transform(est.transform(f))) ** 2).sum(axis=1)

    def hbos(det, train):
        return HBOS(n_bins=20).fit(_windows(det, train, cap)).decision_function

    def iforest(det, train):
        est = IsolationForest(n_estimators=200, random_state=0).fit(_windows(det, train, cap))
        return lambda f: -est.score_samples(f)

    def lof(det, train):
        est = LocalOutlierFactor(n_neighbors=50, novelty=True).fit(_windows(det, train, cap))
        return lambda f: -est.score_samples(f)

    def knn(det, train):
        est = NearestNeighbors(n_neighbors=50).fit(_windows(det, train, cap))
        return lambda f: est.kneighbors(f)[0][:, -1]

    return {"pca": pca, "hbos": hbos, "iforest": iforest, "lof": lof, "knn": knn}.get(name)


def _fit(name: str, params: dict, values: np.ndarray):
    return get_detector(name, **params).fit(values)


def _timed(repeat: int, func: Callable, *args):
    best, out = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = func(*args)
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10k points only")
    ap.add_argument("--only", default="", help="comma-separated registry names")
    ap.add_argument("--repeat", type=int, default=1, help="best of this many runs per size")
    ap.add_argument("--no-reference", action="store_true",
                    help="skip the bare-library reference runs")
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or [
        n for n in DETECTORS if n not in CHANGE_POINT]
    print("| detector | window | n | fit (s) | score (s) | bare library score (s) | "
          "score / library | 100k bar |")
    print("|---|---|---|---|---|---|---|---|")
    skipped = []
    for name in names:
        try:
            DETECTORS[name]
        except ImportError as exc:
            skipped.append(f"{name} (module not there yet: {exc})")
            continue
        params = TRAINING.get(name, {})
        d = COLUMNS.get(name, 1)
        try:
            get_detector(name, **params).fit(series(WARMUP_ROWS, d, 0)).score(
                series(WARMUP_ROWS, d, 1))
        except Exception as exc:  # a detector not yet on the interface: say so, go on
            skipped.append(f"{name} ({type(exc).__name__}: {exc})")
            continue
        sizes = [10_000] if args.quick or name in TRAINING else (
            [10_000, 100_000] + ([1_000_000] if name in LINEAR else []))
        reference = None if args.no_reference else _reference(name)
        for n in sizes:
            train, test = series(n, d, 2), series(n, d, 3)
            t_fit, det = _timed(args.repeat, _fit, name, params, train)
            t_score, scores = _timed(args.repeat, det.score, test)
            ref_cell = ratio_cell = "-"
            if reference is not None:
                score_windows = reference(det, train)
                # the bare estimator gets its windows built for it, untimed
                t_ref, ref = _timed(args.repeat, score_windows, _windows(det, test, None))
                w = det.window_
                assert np.allclose(scores.to_numpy()[w - 1:], ref, rtol=1e-6, atol=1e-9), \
                    f"{name}: scores differ from the bare library's"
                ref_cell, ratio_cell = f"{t_ref:.2f}", f"{t_score / t_ref:.2f}x"
            window = getattr(det, "window_", "-")
            bar = (f"< {BAR.get(name, DEFAULT_BAR):g} s" if n == 100_000 else "")
            print(f"| {name} | {window} | {n:,} | {t_fit:.2f} | {t_score:.2f} | {ref_cell} | "
                  f"{ratio_cell} | {bar} |", flush=True)
    if skipped:
        print()
    for note in skipped:
        print(f"skipped: {note}")


if __name__ == "__main__":
    main()
