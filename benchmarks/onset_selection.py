"""The stream detectors' Onset setting, chosen on generated data, then NAB scored once with it.

Notebook 08's ``Onset(length=200, cap=5)`` was picked on NAB itself, so its NAB scores are tuned
on the data they report. This script picks the setting on data that is not NAB, by a rule fixed
before NAB is scored with what it picks (this file was committed before that run):

- **Selection corpus** (generated, ground truth known, no NAB file read):
  ``make_labelled_benchmark(n_series=8, n_rows=n, random_state=s)`` (spike, level shift, noise
  burst, frequency change, NAB's 10% windows) and ``make_generated_corpus(n_series=6, n=n,
  random_state=s)`` (daily cycle; spike, lasting level shift, noise burst), for ``n`` in 2000,
  5000 and 10000 and ``s`` in 1 and 2: 84 series, 476,000 points.
- **Grid**: lengths 1, 50, 200 and 500 by caps 2, 5 and none, the grid the NAB setting came
  from.
- **Detectors**: ``spot``, ``dspot``, ``hst`` and ``retrain`` of
  :data:`lab.stream.pipeline.NAB_DETECTORS`, their raw scores in 1000-point batches.
- **Rule**: the ``(length, cap)`` with the highest mean NAB standard score (NAB's corpus
  threshold optimisation) over the four detectors on the selection corpus, one setting for
  all of them as notebook 08 uses; a tie goes to the first in grid order.
- **Then**: all 58 NAB series, that one setting, every profile, every detector.

    .venv/bin/python benchmarks/onset_selection.py              # select, then NAB once
    .venv/bin/python benchmarks/onset_selection.py --select     # the selection only
    .venv/bin/python benchmarks/onset_selection.py --nab-grid   # also NAB under every setting
                                                                #   (tuned on NAB: for the record)
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import pandas as pd

from lab.datasets import load_nab
from lab.datasets.labelled_synthetic import make_labelled_benchmark
from lab.stream.evaluate import NAB_PUBLISHED, onset_grid, score_frames
from lab.stream.pipeline import NAB_ONSET, make_generated_corpus, nab_detectors

LENGTHS = (1, 50, 200, 500)
CAPS = (2.0, 5.0, math.inf)
DETECTORS = ("spot", "dspot", "hst", "retrain")
SIZES = (2000, 5000, 10000)
SEEDS = (1, 2)


def selection_corpus() -> dict[str, pd.DataFrame]:
    """The generated corpus the setting is chosen on (no NAB file is read)."""
    out = {}
    for n in SIZES:
        for seed in SEEDS:
            for key, frame in make_labelled_benchmark(8, n, random_state=seed).items():
                out[f"{n}/{seed}/{key}"] = frame
            for key, frame in make_generated_corpus(6, n, random_state=seed).items():
                out[f"{n}/{seed}/{key}"] = frame
    return out


def raw_scores(frames: dict[str, pd.DataFrame]) -> dict[str, dict[str, pd.Series]]:
    """Each detector's own scores (no Onset) on every series, with the time each took."""
    makers = nab_detectors(DETECTORS, onset=None)
    out = {}
    for name in DETECTORS:
        start = time.perf_counter()
        out[name] = score_frames(frames, makers[name][0])
        print(f"  {name}: {time.perf_counter() - start:.1f} s", flush=True)
    return out


def grid_table(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    windows = {k: f.attrs["windows"] for k, f in frames.items()}
    return onset_grid(raw_scores(frames), windows, LENGTHS, CAPS)


def choose(grid: pd.DataFrame) -> tuple[int, float]:
    """The rule: highest mean standard score over the detectors; ties to the first in grid order."""
    mean = grid["standard"].groupby(level=["length", "cap"], sort=False).mean()
    return mean.idxmax()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--select", action="store_true", help="the selection only; NAB is not read")
    parser.add_argument("--nab-grid", action="store_true",
                        help="also score NAB under every setting of the grid (tuned on NAB)")
    args = parser.parse_args(argv)
    pd.set_option("display.width", 160)

    frames = selection_corpus()
    print(f"selection corpus: {len(frames)} generated series, "
          f"{sum(map(len, frames.values())):,} points")
    grid = grid_table(frames)
    print(grid["standard"].unstack("detector").assign(
        mean=grid["standard"].groupby(level=["length", "cap"], sort=False).mean()).round(2))
    length, cap = choose(grid)
    print(f"chosen on the generated corpus: Onset(length={length}, cap={cap}); "
          f"lab.stream.pipeline.NAB_ONSET is {NAB_ONSET}"
          + ("" if (length, cap) == NAB_ONSET else ": THEY DIFFER"), flush=True)
    if args.select:
        return 0

    nab = load_nab()
    print(f"NAB: {len(nab)} series, {sum(map(len, nab.values())):,} points")
    windows = {k: f.attrs["windows"] for k, f in nab.items()}
    raw = raw_scores(nab)
    chosen = onset_grid(raw, windows, [length], [cap])
    print(f"NAB with the chosen Onset(length={length}, cap={cap}):")
    print(chosen.droplevel(["length", "cap"]).round(2))
    best = chosen["standard"].idxmax()[2]
    print(f"best: {best} {chosen['standard'].max():.2f} against Windowed Gaussian "
          f"{NAB_PUBLISHED['Windowed Gaussian']} and Numenta HTM {NAB_PUBLISHED['Numenta HTM']}")
    if args.nab_grid:
        every = onset_grid(raw, windows, LENGTHS, CAPS, profiles=["standard"])
        print("NAB under every setting (standard; tuned on NAB, for the record):")
        print(every["standard"].unstack("detector").round(2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
