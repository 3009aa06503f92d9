"""Time of every change-point detector at 1,000, 10,000 and 100,000 rows.

The series is one column of unit Gaussian noise whose mean jumps every 1,000
rows. Each detector is built with its defaults, fitted and asked for its
change points (``lab.cp_evaluation.detect_change_points``); the time is the
wall clock of that call (one run: the larger sizes take seconds). A size is
skipped when the detector's time at the previous size, grown linearly
(quadratically for PELT and bottom-up, their worst case), would pass
``--budget`` seconds. Each detector is warmed up on 300 rows first.
BOCPD is also timed against its loop twin (``tests/naive.py``) at 1,000 rows,
in the same process. Bar: BOCPD scores 100,000 rows in under 10 s.

    .venv/bin/python benchmarks/bench_changepoints.py [--sizes 1000 10000 100000]
        [--budget 120] [--detectors bocpd binseg ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

DETECTORS = ("bocpd", "binseg", "pelt", "bottomup", "window", "ks_window", "betsi")
#: Detectors whose time may grow with the square of the length (PELT without pruning,
#: bottom-up's merges): their next size is skipped on a quadratic estimate, others linear.
QUADRATIC = ("pelt", "bottomup")
#: Rows between mean jumps.
SEGMENT = 1_000


def series(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    levels = np.repeat(rng.normal(scale=2.0, size=n // SEGMENT + 1), SEGMENT)[:n]
    return (levels + rng.normal(size=n))[:, None]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    ap.add_argument("--budget", type=float, default=120.0,
                    help="skip a size whose estimated time passes this (s)")
    ap.add_argument("--detectors", nargs="+", default=list(DETECTORS))
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

    from lab.cp_evaluation import detect_change_points
    from lab.models import get_detector

    settings = {"betsi": {"verbose": 0}}
    print("| detector | " + " | ".join(f"{n:,} rows (s)" for n in args.sizes) + " |")
    print("|---|" + "---|" * len(args.sizes))
    results = {}
    for name in args.detectors:
        cells, last = [], None
        for n in args.sizes:
            power = 2 if name in QUADRATIC else 1
            if last is not None and last[1] * (n / last[0]) ** power > args.budget:
                cells.append(f"skipped (> {args.budget:.0f} s est.)")
                continue
            x = series(n)
            det = get_detector(name, **settings.get(name, {}))
            if last is None:  # warm-up: imports and first-call costs stay out of the timing
                detect_change_points(get_detector(name, **settings.get(name, {})), series(300))
            t0 = time.perf_counter()
            cps = detect_change_points(det, x)
            seconds = time.perf_counter() - t0
            last = (n, seconds)
            results[name, n] = seconds
            cells.append(f"{seconds:.2f} ({len(cps)} cps)")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)

    if "bocpd" in args.detectors:
        from tests import naive

        x = series(1_000)
        from lab.models.bocpd import standardize

        z = standardize(x)
        t0 = time.perf_counter()
        naive.bocpd_map(z, 100, 0.0, 1.0, 1.0, 1.0, 1e-4)
        t_loop = time.perf_counter() - t0
        t0 = time.perf_counter()
        get_detector("bocpd").fit(x).change_points(x)
        t_fast = time.perf_counter() - t0
        print(f"\nBOCPD at 1,000 rows: loop twin {t_loop:.2f} s, vectorised {t_fast:.3f} s "
              f"({t_loop / t_fast:.0f}x).")
        if ("bocpd", 100_000) in results:
            ok = results["bocpd", 100_000] < 10
            print(f"BOCPD at 100,000 rows: {results['bocpd', 100_000]:.1f} s "
                  f"({'meets' if ok else 'misses'} the 10 s bar).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
