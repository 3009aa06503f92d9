"""Every change-point detector on SKAB's change points, scored by NAB, beside SKAB's published scores.

SKAB's protocol (Katser and Kozitsin 2020): in each of the 34 experiments the
first 400 rows train and the change points are found in the rest; a NAB window
of 60 s lies to the right of each true change point (``changepoint == 1``:
the start and the end of each anomaly). Scores with the three NAB profiles
(standard, low FP, low FN), then SKAB's published change-point scores.

    .venv/bin/python benchmarks/skab_changepoints.py [--detectors bocpd binseg ...]

Logic: :func:`lab.cp_evaluation.skab_changepoint_leaderboard`. The lab's NAB
scorer keeps NAB's probationary period (detections in the first 15% of each
scored stretch are ignored); SKAB's scorer has none, so the published figures
are a guide rather than the same measurement.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from lab.cp_evaluation import (
        DEFAULT_CP_DETECTORS,
        SKAB_PUBLISHED,
        skab_changepoint_leaderboard,
    )
    from lab.datasets import load_skab

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="SKAB's folder (default: found)")
    ap.add_argument("--detectors", nargs="*", default=None,
                    help="leaderboard labels (default: every detector but the TCPD presets)")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        skab = load_skab(args.data)
    except FileNotFoundError as exc:
        print(f"SKAB not found ({exc}); skipping.")
        return 0
    detectors = None if args.detectors is None else {
        k: DEFAULT_CP_DETECTORS[k] for k in args.detectors}
    board = skab_changepoint_leaderboard(skab, detectors,
                                         progress=lambda s: print(s, file=sys.stderr))
    print("| detector | NAB standard | low FP | low FN | detections | seconds (all 34) |")
    print("|---|---|---|---|---|---|")
    for name, r in board.iterrows():
        print(f"| {name} | {r['standard']:.2f} | {r['reward_low_FP_rate']:.2f} | "
              f"{r['reward_low_FN_rate']:.2f} | {int(r['detections'])} | {r['seconds']:.0f} |")
    for name, scores in SKAB_PUBLISHED.items():
        cells = " | ".join("-" if v is None else f"{v:.2f}" for v in scores)
        print(f"| published {name} | {cells} | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
