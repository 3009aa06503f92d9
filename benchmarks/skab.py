"""Lab detectors under SKAB's protocol, beside SKAB's published leaderboard.

Every row the lab runs uses :func:`lab.protocols.evaluate_skab`: fitted on the
first 400 rows of each of the 34 experiments, scored on the rest (F1, FAR,
MAR pooled over the test rows; tsad's NAB variant on the change points with
a 60 s window). Prints a markdown table of the lab's rows (marked "lab ran")
and SKAB's published rows ("quoted"), then the lab's rows on valve1 (where a
setting may be chosen) and on the other 18 experiments ("not valve1").
MSCRED is trained once per experiment and scored for each alpha of a sweep
(its threshold is alpha times its largest validation score), under two change-point rules:

- **IForest's rule**, which SKAB applies to its Isolation Forest: the alarms smoothed by a
  3-row rolling median, change points where their 30-row rolling maximum changes;
- **MSCRED's rule**, which SKAB's own MSCRED notebook applies (waico/SKAB,
  ``notebooks/mscred.ipynb`` at 46e2c1c, the run whose outputs are the published row): the raw
  alarms, no smoothing, change points where they change (``abs(prediction.diff())``), which is
  ``cp_rows=1``.

The published MSCRED row is scored under the second, so that is the one its bar compares with.
For each rule the setting is chosen on valve1 alone, by the rule fixed earlier: of the alphas,
the best NAB standard on valve1 with F1 above SKAB's published MSCRED (0.36).

    PYTHONPATH=. .venv/bin/python benchmarks/skab.py [--quick] [--only NAME ...] [--reuse]
        [--windows 10,30 ...] [--batching blocks|windows]

``--quick`` runs the Isolation Forests and the all-alarm baseline only (about
15 s); MSCRED trains 34 networks per window set (``--windows 10,30 5,10,30``; default 10,30),
about 10 to 20 minutes each on 2 busy cores, and keeps their scores in
``benchmarks/results/skab_mscred_scores_w<windows>.npz``; ``--reuse`` reads back those that exist
instead of training again. The valve1 choice is made over every window set and alpha run. Results go
to ``benchmarks/results/skab.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ notes, as the other scripts

from lab.benchmark import SKAB_PUBLISHED_F1  # noqa: E402
from lab.protocols import SKAB_CP_ROWS, SKAB_SMOOTH_ROWS  # noqa: E402

#: MSCRED on SKAB, the same for all 34 experiments. Its default windows (10, 30, 60) need
#: 110 rows of validation, but the 20% of 400 training rows that it carves off hold 80, so
#: the largest scale is dropped: the nearest to its default that runs.
MSCRED_SKAB = {"windows": (10, 30)}
#: The one SKAB setting, chosen on valve1 alone (``choose_on_valve1``): of alpha in {1.5, 2,
#: 3, 5, 7, 10, 15, 20, 30} (threshold = alpha x the largest validation score), the best NAB
#: standard on valve1 with F1 above SKAB's published MSCRED (0.36). Under MSCRED's change-point
#: rule, the one SKAB's MSCRED row is scored with: alpha 7 (valve1: F1 0.632, NAB 26.9; with
#: ``--batching windows``, alpha 7 too: F1 0.630, NAB 30.5). With SKAB's own windows
#: (5, 10, 30) added as candidates (``--windows 10,30 5,10,30 --batching windows``), valve1
#: prefers (5, 10, 30) at alpha 7 (NAB 31.0), which scores 23.18 on all 34 against 28.11
#: (docs/protocols.md); the script then prints that they differ.
MSCRED_SKAB_CHOSEN = {**MSCRED_SKAB, "alpha": 7.0}
#: The same choice under Isolation Forest's change-point rule: alpha 7 (valve1: F1 0.632, NAB
#: 22.5; with ``--batching windows``, alpha 10: F1 0.476, NAB 25.2).
MSCRED_SKAB_CHOSEN_IFOREST_RULE = {**MSCRED_SKAB, "alpha": 7.0}
#: SKAB's MSCRED threshold (notebooks/mscred.ipynb at 46e2c1c): 2/3 of the 0.99 quantile of
#: the test rows' errors, per experiment. Used only for a diagnostic row (it looks ahead).
SKAB_MSCRED_QUANTILE, SKAB_MSCRED_QUANTILE_SHARE = 0.99, 2 / 3
#: The sweep of alpha (the default is 1.5).
MSCRED_ALPHAS = (1.5, 2, 3, 5, 7, 10, 15, 20, 30)


def _configs():
    from lab.protocols import skab_iforest

    return {
        "Isolation Forest (SKAB's pipeline)": skab_iforest,
        "iforest, SKAB's settings": ("iforest", {"window": 1, "n_estimators": 100,
                                                 "contamination": 0.0005}),
        "all alarms (baseline)": lambda frame: pd.Series(1, index=frame.index),
    }


#: Where the trained networks' scores are kept (``--reuse`` reads them).
RESULTS = Path("benchmarks/results")
#: The two change-point rules: (label, rows of the smoothing median, rows of the rolling max).
CP_RULES = (("IForest's CP rule", SKAB_SMOOTH_ROWS, SKAB_CP_ROWS), ("MSCRED's CP rule", 1, 1))


def _label(windows, alpha, rule: str) -> str:
    return f"mscred, windows ({', '.join(map(str, windows))}), alpha {alpha:g}, {rule}"


def _scores_file(windows, batching: str = "blocks") -> Path:
    suffix = "" if batching == "blocks" else f"_{batching}"
    return RESULTS / f"skab_mscred_scores_w{'-'.join(map(str, windows))}{suffix}.npz"


def _mscred_scores(data, windows, reuse: bool, batching: str = "blocks") -> dict:
    """``{experiment: (score per row, largest validation score)}``, trained or read back."""
    from lab.datasets import split_labels
    from lab.models import get_detector

    path = _scores_file(windows, batching)
    if reuse and path.exists():
        print(f"mscred, windows {windows}: scores read back from {path}", flush=True)
        with np.load(path) as kept:
            return {key: (pd.Series(kept[f"{key}|score"], index=frame.index),
                          float(kept[f"{key}|valid_max"])) for key, frame in data.items()}
    fitted, arrays = {}, {}
    for key, frame in data.items():
        signals, _ = split_labels(frame)
        det = get_detector("mscred", **{**MSCRED_SKAB, "windows": tuple(windows),
                                        "batching": batching}).fit(
            signals.iloc[:frame.attrs["train_rows"]])
        fitted[key] = (det.score(signals), det.valid_score_max_)
        arrays[f"{key}|score"] = fitted[key][0].to_numpy(dtype=np.float64)
        arrays[f"{key}|valid_max"] = np.float64(fitted[key][1])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return fitted


def _mscred_rows(data, windows=MSCRED_SKAB["windows"], reuse: bool = False,
                 batching: str = "blocks") -> dict:
    """One alarm function per alpha of the sweep and change-point rule: ``{label: (f, cp_rows)}``."""
    from lab.protocols import skab_smooth

    fitted = _mscred_scores(data, windows, reuse, batching)

    def rule(alpha, smooth):
        def alarms(frame):
            score, valid_max = fitted[frame.attrs["name"]]
            flags = (score > alpha * valid_max).astype(int)   # det.predict's rule
            return skab_smooth(flags, smooth)
        return alarms

    def their_threshold(frame):
        # SKAB's MSCRED notebook: 2/3 of the 0.99 quantile of the test rows' own scores. It
        # reads the rows it flags (look-ahead), so it is a diagnostic here, never a lab setting.
        score, _ = fitted[frame.attrs["name"]]
        test = score.iloc[frame.attrs["train_rows"]:]
        return (score > SKAB_MSCRED_QUANTILE_SHARE * test.quantile(SKAB_MSCRED_QUANTILE)
                ).astype(int)

    rows = {_label(windows, a, name): (rule(a, smooth), cp_rows)
            for name, smooth, cp_rows in CP_RULES for a in MSCRED_ALPHAS}
    rows[f"mscred, windows ({', '.join(map(str, windows))}), SKAB's test-quantile threshold "
         f"(look-ahead, diagnostic), MSCRED's CP rule"] = (their_threshold, 1)
    return rows


def choose_on_valve1(groups: dict, rule: str) -> str | None:
    """The MSCRED row chosen on valve1 alone: the best NAB standard with F1 above SKAB's MSCRED."""
    rows = {k: g.loc["valve1"] for k, g in groups.items()
            if k.startswith("mscred") and k.endswith(rule) and "look-ahead" not in k}
    ok = {k: r for k, r in rows.items() if r["f1"] > SKAB_PUBLISHED_F1["MSCRED"]}
    return max(ok, key=lambda k: ok[k]["nab_standard"]) if ok else None


def _markdown(frame: pd.DataFrame, index: bool = False) -> str:
    if index:
        frame = frame.reset_index(names="")
    cells = [[("-" if pd.isna(v) else f"{v:.3f}" if isinstance(v, float) else str(v))
              for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |",
             "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def main(argv=None) -> int:
    from lab.datasets import load_skab
    from lab.models import get_detector
    from lab.protocols import SKAB_PUBLISHED, evaluate_skab

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="SKAB's folder (found as find_data says)")
    p.add_argument("--quick", action="store_true", help="leave MSCRED out")
    p.add_argument("--only", nargs="*", default=None, help="run only these rows (by prefix)")
    p.add_argument("--reuse", action="store_true",
                   help=f"read MSCRED's scores from {RESULTS}/ instead of training")
    p.add_argument("--windows", nargs="+", default=[",".join(map(str, MSCRED_SKAB["windows"]))],
                   help="MSCRED window sets to train, each comma-separated (default 10,30)")
    p.add_argument("--batching", choices=("blocks", "windows"), default="blocks",
                   help="how MSCRED's networks are trained (its default: blocks)")
    p.add_argument("--out", default="benchmarks/results/skab.json")
    args = p.parse_args(argv)

    data = load_skab(args.data)
    rows, groups = [], {}
    configs = {k: v for k, v in _configs().items()
               if not args.only or any(k.startswith(o) for o in args.only)}
    if not args.quick and (not args.only or any("mscred".startswith(o) for o in args.only)):
        t0 = time.perf_counter()
        for spec in args.windows:
            windows = tuple(int(w) for w in spec.split(","))
            configs.update(_mscred_rows(data, windows, args.reuse, args.batching))
        print(f"mscred (batching={args.batching!r}): {len(args.windows)} window set(s) ready in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    for label, detector in configs.items():
        cp_rows = SKAB_CP_ROWS
        if isinstance(detector, tuple) and callable(detector[0]):
            detector, cp_rows = detector
        elif isinstance(detector, tuple):
            detector = get_detector(detector[0], **detector[1])
        t0 = time.perf_counter()
        result = evaluate_skab(detector, data, cp_rows=cp_rows)
        seconds = time.perf_counter() - t0
        rows.append({"detector": label, **result.row(), "seconds": seconds, "source": "lab ran"})
        groups[label] = result.per_group
        print(f"{label}: {json.dumps({k: round(v, 3) for k, v in result.row().items()})} "
              f"({seconds:.0f} s)", flush=True)

    table = pd.concat([pd.DataFrame(rows),
                       SKAB_PUBLISHED.assign(source="quoted (SKAB README)")], ignore_index=True)
    print()
    print(_markdown(table))
    for group in ("valve1", "not valve1"):
        print(f"\n{group}:\n")
        print(_markdown(pd.DataFrame({k: v.loc[group] for k, v in groups.items()}).T,
                        index=True))
    constants = {CP_RULES[0][0]: MSCRED_SKAB_CHOSEN_IFOREST_RULE, CP_RULES[1][0]: MSCRED_SKAB_CHOSEN}
    for name, _, _ in CP_RULES:
        chosen = choose_on_valve1(groups, name)
        if chosen is not None:
            kept = constants[name]
            same = chosen == _label(kept["windows"], kept["alpha"], name)
            print(f"\nchosen on valve1 ({name}): {chosen}"
                  + ("" if same else f" (the constant in this file says {kept}: THEY DIFFER)")
                  + ": "
                  + json.dumps({k: round(v, 3) for k, v in
                                next(r for r in rows if r["detector"] == chosen).items()
                                if isinstance(v, float)}))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"table": table.to_dict(orient="records"),
                               "groups": {k: v.to_dict(orient="index")
                                          for k, v in groups.items()}}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
