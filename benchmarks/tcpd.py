"""BehaviourDetector with its defaults on every TCPD series, beside the published scores.

One fixed default configuration for all series, no per-series tuning: each
series is fitted and scored on itself (unsupervised), as in the TCPD
benchmark's "default" experiment. Prints a markdown table of F1 (margin 5)
and covering per series next to the published default scores of ``binseg``,
``bocpd`` and ``zero`` (a detector that reports nothing), then the means.

    .venv/bin/python benchmarks/tcpd.py --data ../shared/data/tcpd [--quick] [--seed 0]

Missing values (``uk_coal_employ`` has two) are filled forward, then
backward, by :func:`lab.preprocessor.clean_metrics`. Published scores that are
missing (the method failed on that series) are shown as ``-`` and the means
are given both over all series and over the series where every method has a
score.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

# Series that need more than a few seconds are left out of --quick.
_QUICK_MAX_ROWS = 120
_METHODS = ("binseg", "bocpd", "zero")
_SCORES_FILE = "published_default_scores.json"


def evaluate(root: Path, names: list[str], seed: int) -> list[dict]:
    import keras  # noqa: F401  (imported here so the first series' time excludes it)

    from lab.datasets import load_tcpd
    from lab.metrics import covering, f1_margin
    from lab.models.betsi import BehaviourDetector
    from lab.preprocessor import clean_metrics

    rows = []
    for name in names:
        series, annotations = load_tcpd(name, root)
        if series.isna().any().any():
            series, _ = clean_metrics(series, warn=False)
        t0 = time.perf_counter()
        det = BehaviourDetector(random_state=seed, verbose=0).fit(series)
        cps = det.change_points(series).tolist()
        seconds = time.perf_counter() - t0
        n = len(series)
        rows.append({
            "series": name, "n": n, "window": det.window_size_, "stride": det.stride_,
            "f1": f1_margin(annotations, cps, n), "cover": covering(annotations, cps, n),
            "cps": cps, "seconds": seconds,
        })
    return rows


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def table(rows: list[dict], published: dict) -> str:
    head = ("| series | n | window/stride | betsi F1 | binseg | bocpd | zero | "
            "betsi cover | binseg | bocpd | zero | fit+detect (s) |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        f1p = published["f1"].get(r["series"], {})
        cvp = published["cover"].get(r["series"], {})
        lines.append(
            f"| {r['series']} | {r['n']} | {r['window']}/{r['stride']} | **{r['f1']:.3f}** | "
            + " | ".join(_fmt(f1p.get(m)) for m in _METHODS)
            + f" | **{r['cover']:.3f}** | "
            + " | ".join(_fmt(cvp.get(m)) for m in _METHODS)
            + f" | {r['seconds']:.1f} |"
        )

    def mean_row(label, subset):
        if not subset:
            return None
        cells = [f"| {label} | | | **{np.mean([r['f1'] for r in subset]):.3f}** |"]
        for m in _METHODS:
            vals = [published["f1"].get(r["series"], {}).get(m) for r in subset]
            vals = [v for v in vals if v is not None]
            cells.append(f" {np.mean(vals):.3f} ({len(vals)}) |" if vals else " - |")
        cells.append(f" **{np.mean([r['cover'] for r in subset]):.3f}** |")
        for m in _METHODS:
            vals = [published["cover"].get(r["series"], {}).get(m) for r in subset]
            vals = [v for v in vals if v is not None]
            cells.append(f" {np.mean(vals):.3f} ({len(vals)}) |" if vals else " - |")
        cells.append(f" {sum(r['seconds'] for r in subset):.0f} total |")
        return "".join(cells)

    lines.append(mean_row(f"**mean, all {len(rows)}**", rows))
    common = [r for r in rows if all(
        published[k].get(r["series"], {}).get(m) is not None for k in ("f1", "cover")
        for m in _METHODS)]
    if len(common) < len(rows):
        lines.append(mean_row(f"**mean, {len(common)} scored by all**", common))
    return "\n".join(line for line in lines if line)


def main(argv: list[str] | None = None) -> int:
    from lab import config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=config.TCPD_ROOT,
                    help="folder of the TCPD JSON files (default: lab.config.TCPD_ROOT)")
    ap.add_argument("--quick", action="store_true",
                    help=f"only the series of at most {_QUICK_MAX_ROWS} rows")
    ap.add_argument("--seed", type=int, default=0, help="random_state of the detector")
    ap.add_argument("--series", nargs="*", default=None, help="only these series")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = ap.parse_args(argv)

    if not (args.data / "annotations.json").is_file():
        print(f"TCPD data not found at {args.data} (no annotations.json); skipping.")
        return 0
    from lab.datasets import list_tcpd, load_tcpd

    names = args.series or list_tcpd(args.data)
    if args.quick:
        names = [n for n in names if len(load_tcpd(n, args.data)[0]) <= _QUICK_MAX_ROWS]
    scores_path = args.data / _SCORES_FILE
    published = (json.loads(scores_path.read_text()) if scores_path.is_file()
                 else {"f1": {}, "cover": {}})
    t0 = time.perf_counter()
    rows = evaluate(args.data, names, args.seed)
    print(table(rows, published))
    zero_f1 = [published["f1"].get(r["series"], {}).get("zero") for r in rows]
    if all(v is not None for v in zero_f1):
        wins = sum(r["f1"] > z for r, z in zip(rows, zero_f1, strict=True))
        losses = sum(r["f1"] < z for r, z in zip(rows, zero_f1, strict=True))
        print(f"\nF1 against zero: better on {wins}, worse on {losses}, "
              f"equal on {len(rows) - wins - losses} series.")
    print(f"Total {time.perf_counter() - t0:.0f} s for {len(rows)} series "
          f"(BehaviourDetector defaults, random_state={args.seed}).")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
