"""Fit time and ARI of each clustering model on many server metrics.

Data: ``make_server_metrics(n_metrics=700, n_rows=300)`` (8 groups), counters turned into
rates, z-normalised (``norm="meanvar"``), 8 clusters, ``max_iter=10``, ``n_init=2``,
``random_state=0``. Every model is fitted once on the same data, in one process, after a
tiny warm-up fit that pays numba's compilation, so the seconds are the work of one call
(preprocessing, well under a second, plus the fit). The DTW rows show the levers that
make DTW k-means usable, side by side with tslearn's default call (no band, one job): a
Sakoe-Chiba band of 10% of the length, ``n_jobs``, and a warm start from the euclidean
k-means centres (``warm_start=True``).

The ``dtw, band`` row is ``cluster_metrics(model="dtw")`` with its defaults, run by
:class:`lab.models.dtw_kmeans.DTWKMeans` (tslearn's algorithm and result, compiled and
pruned); the issue's bar is 10x tslearn's default call at an ARI no lower.
``--scaling`` times that default alone (seconds only) as the number of series and the
length grow, up to 2,000 x 1,000, where tslearn's default call would take hours.

    .venv/bin/python benchmarks/bench_clustering.py            # 700 x 300 (tens of minutes)
    .venv/bin/python benchmarks/bench_clustering.py --quick    # 150 x 100 (a few minutes)
    .venv/bin/python benchmarks/bench_clustering.py --scaling  # lab's dtw alone, up to 2000 x 1000
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score
from tslearn.clustering import TimeSeriesKMeans

from lab.datasets import counters_to_rates, make_server_metrics
from lab.models.clustering import _to_tslearn, cluster_metrics, preprocess_metrics

N_CLUSTERS = 8
SETTINGS = {"max_iter": 10, "n_init": 2, "random_state": 0}
#: The issue's bar for euclidean k-means on 700 x 300, in seconds.
KMEANS_BAR_SECONDS = 10.0
#: The issue's bar for cluster_metrics(model="dtw") against tslearn's default call.
DTW_BAR_SPEEDUP = 10.0
#: (n_metrics, n_rows) of the --scaling table: length, then series, then the largest.
SCALING = [(700, 150), (700, 300), (700, 600), (350, 300), (1400, 300), (2000, 1000)]


def _rows(n_timepoints: int):
    """(name, settings, fit function) for each row of the table."""
    radius = int(np.ceil(0.1 * n_timepoints))

    def wrapper(model, **kw):
        def fit(df):
            return cluster_metrics(df, N_CLUSTERS, model=model, norm="meanvar", **SETTINGS,
                                   **kw).labels
        return fit

    def tslearn_default_dtw(df):
        pre, _ = preprocess_metrics(df, norm="meanvar")
        est = TimeSeriesKMeans(N_CLUSTERS, metric="dtw", **SETTINGS)
        return pd.Series(est.fit(_to_tslearn(pre)).labels_, index=pre.columns)

    return [
        ("kmeans", "euclidean", wrapper("kmeans")),
        ("dtw, tslearn default", "no band, 1 job", tslearn_default_dtw),
        ("dtw, band", f"radius {radius}, 1 job (cluster_metrics default)", wrapper("dtw")),
        ("dtw, band + n_jobs", f"radius {radius}, n_jobs=-1", wrapper("dtw", n_jobs=-1)),
        ("dtw, band + n_jobs + warm start", f"radius {radius}, n_jobs=-1, from k-means centres",
         wrapper("dtw", n_jobs=-1, warm_start=True)),
        ("kshape", "", wrapper("kshape")),
        ("kernelkmeans", "GAK, sigma auto, n_jobs=-1", wrapper("kernelkmeans", n_jobs=-1)),
    ]


def scaling() -> None:
    """Seconds of cluster_metrics(model="dtw") (defaults) as series and length grow."""
    warnings.simplefilter("ignore", UserWarning)
    raw, _ = make_server_metrics(n_metrics=40, n_rows=60, n_groups=N_CLUSTERS)
    cluster_metrics(counters_to_rates(raw), N_CLUSTERS, model="dtw", norm="meanvar")  # compile
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}\n")
    print("| series | length | band radius | seconds | ARI |")
    print("|---|---|---|---|---|")
    for n_metrics, n_rows in SCALING:
        raw, truth = make_server_metrics(n_metrics=n_metrics, n_rows=n_rows, n_groups=N_CLUSTERS)
        df = counters_to_rates(raw)
        start = time.perf_counter()
        labels = cluster_metrics(df, N_CLUSTERS, model="dtw", norm="meanvar", **SETTINGS).labels
        seconds = time.perf_counter() - start
        ari = adjusted_rand_score(truth["group"][labels.index], labels)
        print(f"| {n_metrics} | {n_rows} | {int(np.ceil(0.1 * n_rows))} | {seconds:.1f} | "
              f"{ari:.3f} |", flush=True)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="150 metrics x 100 points")
    ap.add_argument("--scaling", action="store_true",
                    help="lab's dtw alone (seconds, ARI) from 350 x 300 to 2000 x 1000")
    ap.add_argument("--n-metrics", type=int, default=700)
    ap.add_argument("--n-rows", type=int, default=300)
    ap.add_argument("--skip", nargs="*", default=[], help="row names to leave out")
    args = ap.parse_args()
    if args.scaling:
        scaling()
        return
    n_metrics, n_rows = (150, 100) if args.quick else (args.n_metrics, args.n_rows)
    warnings.simplefilter("ignore", UserWarning)

    raw, truth = make_server_metrics(n_metrics=n_metrics, n_rows=n_rows, n_groups=N_CLUSTERS)
    df = counters_to_rates(raw)
    rows = [r for r in _rows(n_rows) if r[0] not in args.skip]
    for _, _, fit in rows:  # numba compiles tslearn's kernels on first use: not fit work
        fit(df.iloc[:20, :40])

    results = []
    for name, detail, fit in rows:
        start = time.perf_counter()
        labels = fit(df)
        seconds = time.perf_counter() - start
        ari = adjusted_rand_score(truth["group"][labels.index], labels)
        results.append((name, detail, seconds, ari))
        print(f"  {name}: {seconds:.1f} s", flush=True)

    seconds = {name: s for name, _, s, _ in results}
    print(f"\n{n_metrics} metrics x {n_rows} points, {N_CLUSTERS} clusters, "
          f"max_iter={SETTINGS['max_iter']}, n_init={SETTINGS['n_init']}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}\n")
    print("| model | settings | seconds | vs kmeans | ARI |")
    print("|---|---|---|---|---|")
    for name, detail, s, ari in results:
        ratio = f"{s / seconds['kmeans']:.1f}x" if "kmeans" in seconds else ""
        print(f"| {name} | {detail} | {s:.2f} | {ratio} | {ari:.3f} |")
    print()
    if "kmeans" in seconds:
        verdict = "under" if seconds["kmeans"] < KMEANS_BAR_SECONDS else "NOT under"
        print(f"- euclidean k-means: {seconds['kmeans']:.2f} s, {verdict} the "
              f"{KMEANS_BAR_SECONDS:.0f} s bar")
    ref = seconds.get("dtw, tslearn default")
    if ref:
        for name in ("dtw, band", "dtw, band + n_jobs", "dtw, band + n_jobs + warm start"):
            if name in seconds:
                print(f"- {name}: {ref / seconds[name]:.1f}x faster than tslearn's default "
                      "DTW call")
        if "dtw, band" in seconds:
            ari = {name: a for name, _, _, a in results}
            met = (ref / seconds["dtw, band"] >= DTW_BAR_SPEEDUP
                   and ari["dtw, band"] >= ari["dtw, tslearn default"])
            print(f"- bar (cluster_metrics(model='dtw') >= {DTW_BAR_SPEEDUP:g}x tslearn's "
                  f"default at an ARI no lower): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
