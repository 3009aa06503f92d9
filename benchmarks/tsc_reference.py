"""FCN test accuracy on UCR GunPoint and ItalyPowerDemand against the published figures.

``ChunkClassifier(arch="fcn")`` with its defaults (Wang et al.'s network; 400 epochs
at most, early stopping on the validation PR-AUC with patience 100, threshold tuned
on a 20 % validation split of the training set) is trained on the archive's TRAIN
split and scored on TEST. Published test accuracies (Fawaz et al., "Deep learning for
time series classification: a review", DMKD 2019, FCN mean over 10 runs; InceptionTime
from Fawaz et al., "InceptionTime", DMKD 2020) are quoted beside it. The bar: FCN
within 0.03 of Fawaz et al.'s figure.

    .venv/bin/python benchmarks/tsc_reference.py [--seeds 0]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: Published test accuracy: FCN (Fawaz et al. 2019), InceptionTime (Fawaz et al. 2020).
PUBLISHED = {"GunPoint": {"fcn": 1.000, "inception": 1.000},
             "ItalyPowerDemand": {"fcn": 0.963, "inception": 0.967}}
TOLERANCE = 0.03


def main() -> None:
    from lab.datasets import load_ucr
    from lab.models.classifiers import ChunkClassifier

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0", help="comma-separated random_state values")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    print("| data set | FCN here | epochs kept / run | seconds | FCN published | within 0.03 "
          "| InceptionTime published |")
    print("|---|---|---|---|---|---|---|")
    for name, ref in PUBLISHED.items():
        try:
            X_train, X_test, y_train, y_test = load_ucr(name)
        except FileNotFoundError as exc:
            print(f"| {name} | data absent ({exc}) | | | {ref['fcn']:.3f} | | "
                  f"{ref['inception']:.3f} |")
            continue
        accs, kept, ran, secs = [], [], [], []
        for seed in seeds:
            t0 = time.perf_counter()
            clf = ChunkClassifier("fcn", random_state=seed, verbose=0).fit(X_train, y_train)
            secs.append(time.perf_counter() - t0)
            accs.append(float((clf.predict(X_test) == y_test).mean()))
            kept.append(clf.epochs_)
            ran.append(len(clf.history_["loss"]))
        acc = float(np.mean(accs))
        ok = "yes" if acc >= ref["fcn"] - TOLERANCE else "NO"
        print(f"| {name} | {acc:.3f} | {'/'.join(map(str, kept))} of {'/'.join(map(str, ran))} "
              f"| {np.mean(secs):.0f} | {ref['fcn']:.3f} | {ok} | {ref['inception']:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
