"""Change-point leaderboard on TCPD: every detector with its defaults, beside the published scores.

One fixed default configuration per detector, no per-series tuning: each
series is segmented on its own, as in TCPDBench's "default" experiment
(van den Burg and Williams 2020). Prints, per series, F1 (margin 5) and
covering of every detector next to TCPDBench's published default ``binseg``,
``bocpd`` and ``zero`` (no change points), then the means: over all series,
and over the series each published method scored (binseg: 18, bocpd: 19),
and the mean time per series. The ``tcpd_default`` presets reproduce
TCPDBench's ``default_binseg`` and ``default_pelt`` (R ``changepoint``); the
``bocpd`` defaults are TCPDBench's ``default_bocpd`` (R ``ocp``).

    .venv/bin/python benchmarks/tcpd.py [--data ../shared/data/tcpd] [--detectors binseg bocpd]
        [--series nile ...] [--json out.json]

Logic: :func:`lab.cp_evaluation.tcpd_leaderboard`; missing values
(``uk_coal_employ`` has two) are filled forward, then backward.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np


def _fmt(x) -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


def per_series_table(board, published, metric: str) -> str:
    from lab.cp_evaluation import PUBLISHED_METHODS

    wide = board.pivot(index="series", columns="detector", values=metric)
    labels = list(dict.fromkeys(board["detector"]))
    head = "| series | n | " + " | ".join(labels) + " | " + " | ".join(
        f"published {m}" for m in PUBLISHED_METHODS) + " |"
    lines = [head, "|" + "---|" * (2 + len(labels) + len(PUBLISHED_METHODS))]
    n = board.groupby("series")["n"].first()
    for s in wide.index:
        pub = published.get(metric, {}).get(s, {})
        lines.append(f"| {s} | {n[s]} | " + " | ".join(_fmt(wide.loc[s, d]) for d in labels)
                     + " | " + " | ".join(_fmt(pub.get(m)) for m in PUBLISHED_METHODS) + " |")
    return "\n".join(lines)


def summary_table(summary) -> str:
    cols = list(summary.columns)
    lines = ["| detector | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for det, row in summary.iterrows():
        cells = [str(int(row[c])) if c.startswith("series") else _fmt(row[c]) for c in cols]
        lines.append(f"| {det} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from lab import config
    from lab.cp_evaluation import (
        DEFAULT_CP_DETECTORS,
        leaderboard_summary,
        load_published_tcpd,
        tcpd_leaderboard,
    )

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=config.TCPD_ROOT,
                    help="folder of the TCPD JSON files (default: lab.config.TCPD_ROOT)")
    ap.add_argument("--detectors", nargs="*", default=None,
                    help=f"leaderboard labels (default: all of {list(DEFAULT_CP_DETECTORS)})")
    ap.add_argument("--series", nargs="*", default=None, help="only these series")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    if not (args.data / "annotations.json").is_file():
        print(f"TCPD data not found at {args.data} (no annotations.json); skipping.")
        return 0
    detectors = DEFAULT_CP_DETECTORS if args.detectors is None else {
        k: DEFAULT_CP_DETECTORS[k] for k in args.detectors}
    if "betsi" in detectors:
        import keras  # noqa: F401  (so the first series' time excludes the import)
    published = load_published_tcpd(args.data)
    t0 = time.perf_counter()
    board = tcpd_leaderboard(args.data, detectors, args.series)
    print("F1 (margin 5)\n")
    print(per_series_table(board, published, "f1"))
    print("\nCovering\n")
    print(per_series_table(board, published, "cover"))
    print("\nSeconds (fit + detection)\n")
    print(per_series_table(board, published, "seconds"))
    print("\nMeans (f1 on binseg / bocpd: over the series that method scored; seconds: mean "
          "fit + detection per series)\n")
    print(summary_table(leaderboard_summary(board, published)))
    for _, r in board[board["skipped"] != ""].drop_duplicates("detector").iterrows():
        print(f"\n{r['detector']} skipped {int((board['detector'] == r['detector']).sum() - board[board['detector'] == r['detector']]['f1'].notna().sum())} series, e.g. {r['series']}: {r['skipped']}")
    print(f"\nTotal {time.perf_counter() - t0:.0f} s for {board['series'].nunique()} series.")
    if args.json:
        args.json.write_text(board.to_json(orient="records", indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
