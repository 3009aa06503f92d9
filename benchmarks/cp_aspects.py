"""Which synthetic changes each change-point detector finds, by the aspect of behaviour that changed.

For each seed, ``make_behaviour_changes`` with its defaults is given to every
change-point detector of the lab with its defaults (betsi, the ruptures
detectors, BOCPD, the KS window); each boundary that changes one aspect only
(``df.attrs["changed"]``: amplitude, noise, correlation, frequency, trend) is
matched with the nearest detection. Prints the mean F1 (margin 5) per
detector, then per aspect the share of boundaries with a detection within 5
rows and within one window (betsi's ``window_size_`` on that seed), and the
median distance.

Oracle rows: binary segmentation with the Gaussian cost given the true number
of changes (on the z-scored data), and a perfect detector of each aspect
(exactly the boundaries where that aspect changed, nothing else).

    .venv/bin/python benchmarks/cp_aspects.py [--seeds 8] [--detectors betsi bocpd ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

#: Boundaries with a detection this close count as found (TCPD's margin).
MARGIN = 5
#: Binary segmentation oracle: shortest segment in rows.
BINSEG_MIN_SIZE = 20
DETECTORS = ("betsi", "binseg", "pelt", "bottomup", "window", "bocpd", "ks_window")
ASPECTS = ("amplitude", "correlation", "frequency", "noise", "trend")


def nearest(truth: np.ndarray, found: list[int]) -> np.ndarray:
    """Distance from every true change point to the nearest detection (inf if none)."""
    if not found:
        return np.full(len(truth), np.inf)
    return np.abs(truth[:, None] - np.asarray(found)[None, :]).min(axis=1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=8, help="seeds 0 .. N-1 of the generator")
    ap.add_argument("--detectors", nargs="+", default=list(DETECTORS))
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

    import ruptures as rpt

    from lab.cp_evaluation import detect_change_points
    from lab.datasets import make_behaviour_changes
    from lab.metrics import f1_margin
    from lab.models import get_detector

    settings = {"betsi": {"verbose": 0}}
    f1 = defaultdict(list)
    dist = defaultdict(list)  # (detector, aspect) -> [(distance, window)]
    seconds = defaultdict(float)
    for seed in range(args.seeds):
        df, truth = make_behaviour_changes(random_state=seed)
        window = None
        found = {}
        for name in args.detectors:
            det = get_detector(name, **settings.get(name, {}))
            t0 = time.perf_counter()
            found[name] = detect_change_points(det, df).tolist()
            seconds[name] += time.perf_counter() - t0
            if name == "betsi":
                window = int(det.window_size_)
        window = window or 100
        X = ((df - df.mean()) / df.std()).to_numpy()
        found["binseg (true K)"] = rpt.Binseg(model="normal", min_size=BINSEG_MIN_SIZE,
                                              jump=1).fit(X).predict(n_bkps=len(truth))[:-1]
        changed = df.attrs["changed"]
        for aspect in ASPECTS:
            found[f"perfect {aspect}"] = [int(t) for t, a in zip(truth, changed, strict=True)
                                          if aspect in a]
        for name, cps in found.items():
            f1[name].append(f1_margin({"truth": truth.tolist()}, cps, len(df), MARGIN))
            if name.startswith("perfect"):
                continue
            for d, aspects in zip(nearest(truth, cps), changed, strict=True):
                if len(aspects) == 1:
                    dist[name, aspects[0]].append((d, window))
        print(f"seed {seed} done", file=sys.stderr, flush=True)

    print(f"| detector | mean F1 (margin {MARGIN}) | per seed | time per seed (s) |")
    print("|---|---|---|---|")
    for name in f1:
        t = f"{seconds[name] / args.seeds:.1f}" if name in seconds else "-"
        print(f"| {name} | {np.mean(f1[name]):.3f} | "
              f"{' '.join(f'{v:.2f}' for v in f1[name])} | {t} |")
    names = [n for n in f1 if not n.startswith("perfect")]
    print("\nShare of single-aspect boundaries found within 5 rows / within one window "
          "(betsi's window) / median distance (rows)\n")
    print("| aspect changed (alone) | boundaries | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for aspect in ASPECTS:
        cells = []
        for name in names:
            pairs = dist[name, aspect]
            if not pairs:
                cells.append("-")
                continue
            d = np.array([p[0] for p in pairs])
            w = np.array([p[1] for p in pairs])
            cells.append(f"{np.mean(d <= MARGIN):.2f} / {np.mean(d <= w):.2f} / "
                         f"{np.median(d):.0f}")
        print(f"| {aspect} | {len(dist[names[0], aspect])} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
