"""Which synthetic changes betsi finds, by the aspect of behaviour that changed.

For each seed, ``make_behaviour_changes`` with its defaults is fitted and
scored by ``BehaviourDetector`` with its defaults; every boundary that
changes one aspect only (``df.attrs["changed"]``) is matched with the nearest
detection. Prints the mean F1 (margin 5) and, per aspect, the share of
boundaries with a detection within 5 rows and the median distance.

If ``ruptures`` is importable (it is not a dependency of the lab:
``pip install ruptures``), binary segmentation with a Gaussian cost, *given
the true number of changes*, is scored on the same z-scored data beside it.

    .venv/bin/python benchmarks/betsi_aspects.py [--seeds 8] [--span 1 8]

``--span`` scores the same fitted detector with each given ``span`` (windows
compared on each side of a boundary; 1 is the default).
"""

from __future__ import annotations

import argparse
import os
from collections import defaultdict

import numpy as np

#: Boundaries with a detection this close count as found (TCPD's margin).
MARGIN = 5
#: Binary segmentation: shortest segment in rows.
BINSEG_MIN_SIZE = 20


def nearest(truth: np.ndarray, found: list[int]) -> np.ndarray:
    """Distance from every true change point to the nearest detection (inf if none)."""
    if not found:
        return np.full(len(truth), np.inf)
    return np.abs(truth[:, None] - np.asarray(found)[None, :]).min(axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=8, help="seeds 0 .. N-1 of the generator")
    ap.add_argument("--span", type=int, nargs="+", default=[1],
                    help="BehaviourDetector span values to score (one fit per seed)")
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    from lab.datasets import make_behaviour_changes
    from lab.metrics import f1_margin
    from lab.models.betsi import BehaviourDetector

    current: dict[str, BehaviourDetector] = {}  # the detector fitted on this seed's data

    def betsi(span):
        def detect(df, X, k):
            det = current["det"]
            det.span = span  # scoring only: the fit does not depend on span
            return det.change_points(df).tolist()
        return detect

    detectors = {("betsi" if span == 1 else f"betsi span {span}"): betsi(span)
                 for span in args.span}
    try:
        import ruptures as rpt

        detectors["binseg (true K)"] = lambda df, X, k: rpt.Binseg(
            model="normal", min_size=BINSEG_MIN_SIZE, jump=1).fit(X).predict(n_bkps=k)[:-1]
    except ImportError:
        print("ruptures is not installed: the binseg column is left out\n")

    f1 = defaultdict(list)
    dist = defaultdict(list)  # (detector, aspect) -> distances
    for seed in range(args.seeds):
        df, truth = make_behaviour_changes(random_state=seed)
        X = ((df - df.mean()) / df.std()).to_numpy()
        current["det"] = BehaviourDetector(verbose=0).fit(df)
        for name, detect in detectors.items():
            found = [int(c) for c in detect(df, X, len(truth))]
            f1[name].append(f1_margin({"truth": truth.tolist()}, found, len(df), MARGIN))
            for d, aspects in zip(nearest(truth, found), df.attrs["changed"], strict=True):
                if len(aspects) == 1:
                    dist[name, aspects[0]].append(d)

    names = list(detectors)
    for name in names:
        print(f"{name}: mean F1 (margin {MARGIN}) {np.mean(f1[name]):.3f} over seeds "
              f"0-{args.seeds - 1}: {' '.join(f'{v:.2f}' for v in f1[name])}")
    print()
    head = " | ".join(f"{n} within {MARGIN} | {n} median distance" for n in names)
    print(f"| aspect changed (alone) | boundaries | {head} |")
    print("|---|---|" + "---|---|" * len(names))
    aspects = sorted({a for _, a in dist})
    for aspect in aspects:
        cells = []
        for name in names:
            d = np.asarray(dist[name, aspect])
            cells.append(f"{np.mean(d <= MARGIN):.2f} | {np.median(d):.0f}")
        print(f"| {aspect} | {len(dist[names[0], aspect])} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
