"""The whole anomaly leaderboard, headless: what ``lab run leaderboard-full`` computes.

Every detector of the detector layer (``lab.benchmark.LEADERBOARD_DETECTORS``) with its
default configuration on all of NAB (but MSCRED and betsi, ``lab.benchmark.NAB_EXCLUDED``)
and on all 34 SKAB experiments, on a dask LocalCluster with one thread per worker, without the
cache (every task is computed). Prints the wall time, the time per detector
(the sum of its tasks' fit and score seconds), the failed tasks, the NAB
scoreboard beside the published one, SKAB's pooled F1 and its change-point score; writes
``benchmarks/results/leaderboard-<workers>w.json`` (git-ignored).

    .venv/bin/python benchmarks/leaderboard.py [--workers 2] [--only iforest,hbos]
    .venv/bin/python benchmarks/leaderboard.py --scaling       # 1 worker, then 2: the speedup
    .venv/bin/python benchmarks/leaderboard.py --machine       # the cores' own 2-process speedup
    .venv/bin/python benchmarks/leaderboard.py --smoke         # a few short series
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np

from lab.benchmark import (
    _ONE_THREAD_ENV,
    LEADERBOARD_DETECTORS,
    NAB_EXCLUDED,
    NAB_PUBLISHED,
    SKAB_PUBLISHED_NAB,
    SKAB_PUBLISHED_NAB_RULE,
    leaderboard_data,
    run_benchmark,
    skab_scores,
    with_published,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
RESULTS = Path(__file__).parent / "results"


def run(detectors: list[str], data: dict, workers: int, timeout: float) -> dict:
    start = time.perf_counter()
    res = run_benchmark(detectors, data, workers=workers, cache=False, timeout=timeout,
                        exclude={"nab": NAB_EXCLUDED})
    wall = time.perf_counter() - start
    t = res.table
    per = t.assign(task_s=t["fit_s"] + t["score_s"]).groupby("detector", sort=False)
    out = {"workers": workers, "wall_s": wall, "tasks": len(t),
           "seconds_per_detector": per["task_s"].sum().round(2).to_dict(),
           "failed": res.failed(),
           "vus_pr": res.leaderboard("vus_pr")["all"].round(4).to_dict()}
    if "nab" in data:
        out["nab_scores"] = res.nab_scores().round(2).to_dict("index")
    if "skab" in data:
        out["skab"] = skab_scores(t).round(4).to_dict("index")
        out["skab_nab"] = res.skab_nab().round(2).to_dict("index")
        out["skab_nab_raw"] = res.skab_nab(smooth=1, cp_rows=1).round(2).to_dict("index")
    return out


def _unit(seed: int) -> float:
    """One unit of a leaderboard task's kind of work, on one thread: an Isolation Forest."""
    from lab.models import get_detector

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4000, 3))
    det = get_detector("iforest").fit(x[:750])
    return float(np.asarray(det.score(x)).sum())


def machine_speedup(units: int = 16) -> dict:
    """The same units of work in 1 process, then in 2 at once: what 2 workers can gain here.

    Every process runs BLAS and OpenMP on one thread, as the benchmark's workers do, and
    imports and warms up before the clock starts.
    """
    walls = {}
    ctx = multiprocessing.get_context("spawn")
    for procs in (1, 2):
        with ctx.Pool(procs) as pool:
            pool.map(_unit, range(procs))             # imports and warm-up
            start = time.perf_counter()
            pool.map(_unit, range(units), chunksize=1)
            walls[procs] = time.perf_counter() - start
    return {"units": units, "wall_1": walls[1], "wall_2": walls[2],
            "speedup": walls[1] / walls[2]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated detectors")
    parser.add_argument("--smoke", action="store_true", help="two short series per data set")
    parser.add_argument("--scaling", action="store_true",
                        help="run with 1 worker, then 2, and report the speedup")
    parser.add_argument("--machine", action="store_true",
                        help="only the machine's own speedup of 2 processes over 1")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--datasets", default="nab,skab")
    args = parser.parse_args()
    if args.machine:
        for key, value in _ONE_THREAD_ENV.items():
            os.environ[key] = value                       # inherited by the pool's processes
        m = machine_speedup()
        print(f"{m['units']} Isolation Forest units: 1 process {m['wall_1']:.1f} s, "
              f"2 processes {m['wall_2']:.1f} s, speedup {m['speedup']:.2f}x")
        return
    detectors = args.only.split(",") if args.only else list(LEADERBOARD_DETECTORS)
    data, note = leaderboard_data(args.datasets.split(","), max_series=2 if args.smoke else 0)
    print(note)
    RESULTS.mkdir(exist_ok=True)
    runs = [1, 2] if args.scaling else [args.workers]
    outs = []
    for w in runs:
        out = run(detectors, data, w, args.timeout)
        outs.append(out)
        (RESULTS / f"leaderboard-{w}w.json").write_text(json.dumps(out, indent=1, default=str))
        print(f"\n{w} worker(s): {out['tasks']} tasks in {out['wall_s']:.1f} s")
        print("seconds per detector (fit + score, summed over its tasks):")
        for d, s in sorted(out["seconds_per_detector"].items(), key=lambda kv: -kv[1]):
            print(f"  {d:<18} {s:8.1f}")
        print(f"failed: {len(out['failed'])}")
        for f in out["failed"]:
            print(f"  {f['detector']} on {f['dataset']}/{f['series']}: {f['error'][:160]}")
        if "nab_scores" in out:
            lab_nab = {d: v["standard"] for d, v in out["nab_scores"].items()}
            print(with_published(lab_nab, NAB_PUBLISHED, "nab_standard").to_string())
        if "skab" in out:
            print(json.dumps(out["skab"], indent=1))
            for key, rule, what in (("skab_nab", "iforest", "Isolation Forest's rule"),
                                    ("skab_nab_raw", "raw", "MSCRED's and Conv-AE's rule")):
                lab_cp = {d: v["standard"] for d, v in out[key].items()}
                published = {k: v for k, v in SKAB_PUBLISHED_NAB.items()
                             if SKAB_PUBLISHED_NAB_RULE[k] == rule}
                print(f"SKAB change points, NAB standard (tsad's variant), {what}:")
                print(with_published(lab_cp, published, "nab_standard").to_string())
    if args.scaling:
        print(f"\nspeedup, 2 workers over 1: {outs[0]['wall_s'] / outs[1]['wall_s']:.2f}x")


if __name__ == "__main__":
    main()
