"""ks_2samp_columns against a scipy.stats.ks_2samp loop over columns, same data, same process.

Each configuration draws a baseline sample ``a`` and a focus sample ``b``
(normal, half the columns shifted), checks that the statistics are equal and
the p-values agree to 1e-12, then times both alternately and reports the
ratio of the best times (min of repeats, the least disturbed by other load).
The floor column times the sort alone: both samples of every column sorted
(transposed to rows, as the function sorts them), spread over every core;
``/ floor`` says how close to it the whole function runs. The load average
is printed because other processes on the machine share the cores.

    .venv/bin/python benchmarks/bench_ks.py [--repeat 5] [--quick]
"""

from __future__ import annotations

import argparse
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import stats

from lab.signal_utility import ks_2samp_columns
from lab.timing import best_of

# (columns, baseline rows, focus rows, issue target for method="asymp")
CONFIGS = [(500, 800, 200, 20.0), (1000, 8000, 2000, 8.0)]


def scipy_loop(a: np.ndarray, b: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    stat = np.empty(a.shape[1])
    pval = np.empty(a.shape[1])
    for j in range(a.shape[1]):
        res = stats.ks_2samp(a[:, j], b[:, j], method=method)
        stat[j], pval[j] = res.statistic, res.pvalue
    return stat, pval


def sort_floor(a: np.ndarray, b: np.ndarray) -> None:
    """Sort both samples of every column, one block of columns per core."""
    workers = len(os.sched_getaffinity(0))
    p = a.shape[1]
    block = -(-p // workers)

    def run(lo: int) -> None:
        for x in (a, b):
            np.ascontiguousarray(x[:, lo:lo + block].T).sort(axis=1)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, range(0, p, block)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true",
                    help="2 repeats; method=auto on the large configuration with 100 columns")
    args = ap.parse_args()
    repeat = 2 if args.quick else args.repeat
    rng = np.random.default_rng(0)
    print(f"cores: {len(os.sched_getaffinity(0))}, load average before: "
          f"{os.getloadavg()[0]:.2f}")
    print("| columns | rows (a / b) | method | scipy loop (s) | ks_2samp_columns (s) | speed-up "
          "| target | sort floor (s) | / floor |")
    print("|---|---|---|---|---|---|---|---|---|")
    for cols, n1, n2, target in CONFIGS:
        for method in ("asymp", "auto"):
            use = cols
            if args.quick and method == "auto" and n1 > 1000:
                use = 100  # scipy's exact p-values take ~15 ms per column here
            a = rng.normal(size=(n1, use))
            b = rng.normal(size=(n2, use)) + np.where(np.arange(use) % 2, 0.1, 0.0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                ref_stat, ref_p = scipy_loop(a, b, method)
                stat, p = ks_2samp_columns(a, b, method=method)
                assert np.array_equal(stat, ref_stat), "statistics differ from scipy"
                assert np.allclose(p, ref_p, rtol=1e-12, atol=0), "p-values differ from scipy"
                t_fast = t_ref = t_floor = np.inf
                run_ref = lambda a=a, b=b, m=method: scipy_loop(a, b, m)  # noqa: E731
                run_fast = lambda a=a, b=b, m=method: ks_2samp_columns(a, b, method=m)  # noqa: E731
                for _ in range(repeat):  # alternate, so both see the same load
                    t_ref = min(t_ref, best_of(run_ref, 1))
                    t_fast = min(t_fast, best_of(run_fast, 1))
                    t_floor = min(t_floor, best_of(lambda a=a, b=b: sort_floor(a, b), 1))
            goal = f">= {target:g}x" if method == "asymp" else "reported"
            print(f"| {use} | {n1} / {n2} | {method} | {t_ref:.3f} | {t_fast:.4f} | "
                  f"{t_ref / t_fast:.1f}x | {goal} | {t_floor:.4f} | {t_fast / t_floor:.1f}x |")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
