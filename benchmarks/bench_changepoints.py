"""Time of every change-point detector at 1,000, 10,000 and 100,000 rows.

The series is one column of unit Gaussian noise whose mean jumps every 500
rows. Each detector is built with its defaults, fitted and asked for its
change points (``lab.cp_evaluation.detect_change_points``); the time is the
wall clock of that call (one run, in a child process after a warm-up on 300 rows: the larger sizes
take seconds), with the CPU seconds of that process beside it: on a shared
machine the wall clock counts the other jobs' time too, and every detector
here runs on one core. A run that passes ``--budget`` seconds is stopped and shown as
``> budget``; the detector's larger sizes are then left out.
BOCPD is also timed against its loop twin (``tests/naive.py``) at 1,000 rows,
in the same process. Bar: BOCPD scores 100,000 rows in under 10 s.

    .venv/bin/python benchmarks/bench_changepoints.py [--sizes 1000 10000 100000]
        [--budget 120] [--detectors bocpd binseg ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DETECTORS = ("bocpd", "binseg", "pelt", "bottomup", "window", "ks_window", "betsi")
#: Rows between mean jumps.
SEGMENT = 500


def series(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    levels = np.repeat(rng.normal(scale=2.0, size=n // SEGMENT + 1), SEGMENT)[:n]
    return (levels + rng.normal(size=n))[:, None]


def time_one(name: str, n: int) -> tuple[float, int, float]:
    """Wall seconds to fit ``name`` and find the change points of ``series(n)`` (after a
    warm-up), the number found, and the CPU seconds of this process meanwhile."""
    from lab.cp_evaluation import detect_change_points
    from lab.models import get_detector

    settings = {"betsi": {"verbose": 0}}.get(name, {})
    detect_change_points(get_detector(name, **settings), series(300))  # imports, first calls
    x = series(n)
    det = get_detector(name, **settings)
    t0, c0 = time.perf_counter(), time.process_time()
    cps = detect_change_points(det, x)
    return time.perf_counter() - t0, len(cps), time.process_time() - c0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    ap.add_argument("--budget", type=float, default=120.0,
                    help="seconds one detector may take at one size before it is stopped")
    ap.add_argument("--detectors", nargs="+", default=list(DETECTORS))
    ap.add_argument("--one", nargs=2, metavar=("NAME", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))
    if args.one:  # a child process: one detector at one size
        seconds, count, cpu = time_one(args.one[0], int(args.one[1]))
        print(f"RESULT {seconds} {count} {cpu}")
        return 0

    print("| detector | " + " | ".join(f"{n:,} rows: wall / CPU s" for n in args.sizes) + " |")
    print("|---|" + "---|" * len(args.sizes))
    results = {}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root), os.environ.get("PYTHONPATH", "")])}
    for name in args.detectors:
        cells, stopped = [], False
        for n in args.sizes:
            if stopped:
                cells.append("-")
                continue
            try:  # a child per run: a run past the budget is stopped, the rest go on
                out = subprocess.run([sys.executable, __file__, "--one", name, str(n)],
                                     capture_output=True, text=True, timeout=args.budget,
                                     env=env, check=True).stdout
            except subprocess.TimeoutExpired:
                cells.append(f"> {args.budget:.0f}")
                stopped = True
                continue
            line = [w for w in out.splitlines() if w.startswith("RESULT ")][-1].split()
            seconds, count, cpu = float(line[1]), int(line[2]), float(line[3])
            results[name, n] = cpu
            cells.append(f"{seconds:.2f} / {cpu:.2f} ({count} cps)")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)

    if "bocpd" in args.detectors:
        from lab.models import get_detector
        from lab.models.bocpd import standardize
        from tests import naive

        x = series(1_000)
        t0 = time.perf_counter()
        naive.bocpd_map(standardize(x), 100, 0.0, 1.0, 1.0, 1.0, 1e-4)
        t_loop = time.perf_counter() - t0
        t0 = time.perf_counter()
        get_detector("bocpd").fit(x).change_points(x)
        t_fast = time.perf_counter() - t0
        print(f"\nBOCPD at 1,000 rows: loop twin {t_loop:.2f} s, vectorised {t_fast:.3f} s "
              f"({t_loop / t_fast:.0f}x).")
        if ("bocpd", 100_000) in results:
            ok = results["bocpd", 100_000] < 10
            print(f"BOCPD at 100,000 rows: {results['bocpd', 100_000]:.1f} CPU s "
                  f"({'meets' if ok else 'misses'} the 10 s bar).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
