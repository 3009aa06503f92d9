"""Training and inference samples per second of each chunk-classifier architecture.

Data: all SKAB chunks (T=60, non-overlapping, signals + calendar, 16 features), or
generated experiments of the same shape when SKAB is absent (said in the output).
Each architecture is built with its defaults (``ChunkClassifier(arch)``: BiLSTM and
LSTM with 32 units, Wang et al.'s FCN with 128/256/128 filters, the spectrogram CNN
with 16/32 filters) and trained for ``1 + --epochs`` epochs on every chunk (the
validation split is 20 % of them); the first epoch (graph tracing) is not timed, the
rest are timed one by one and the median is kept. Inference is ``predict_proba`` on
all chunks, median of 3 after one untimed call.

The issue's bar: one epoch of the default BiLSTM on all SKAB chunks in under 10 s on
the 2-core development machine.

    .venv/bin/python benchmarks/bench_classifiers.py [--epochs 3] [--only bilstm,fcn]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BAR_BILSTM_EPOCH_S = 10.0


def chunks():
    from lab.chunk_study import experiment_chunks, make_experiments
    from lab.datasets import load_skab

    try:
        return "skab", experiment_chunks(load_skab(), T=60)
    except FileNotFoundError:
        return "generated", experiment_chunks(make_experiments(34, 1100), T=60)


def epoch_seconds(arch: str, X: np.ndarray, y: np.ndarray, epochs: int) -> tuple[float, float]:
    import keras

    from lab.models.classifiers import ChunkClassifier

    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t0)

    clf = ChunkClassifier(arch, epochs=1 + epochs, patience=1 + epochs, verbose=0)
    # the Keras fit call is ChunkClassifier's own; the timer rides on its callbacks
    original = keras.Model.fit

    def fit(self, *args, callbacks=None, **kwargs):
        return original(self, *args, callbacks=[*(callbacks or []), Timer()], **kwargs)

    keras.Model.fit = fit
    try:
        clf.fit(X, y)
    finally:
        keras.Model.fit = original
    clf.predict_proba(X)
    pred = []
    for _ in range(3):
        t0 = time.perf_counter()
        clf.predict_proba(X)
        pred.append(time.perf_counter() - t0)
    return float(np.median(times[1:])), float(np.median(pred))


def main() -> None:
    from lab.models.classifiers import ARCHS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per architecture")
    parser.add_argument("--only", default="", help="comma-separated architectures")
    args = parser.parse_args()
    archs = [a for a in args.only.split(",") if a] or list(ARCHS)
    source, (X, y, _) = chunks()
    n_fit = int(round(0.8 * len(X)))
    print(f"data: {source}, {X.shape} chunks ({n_fit} trained on per epoch); "
          f"{os.cpu_count()} CPUs")
    print("| arch | s / epoch | train samples / s | predict samples / s |")
    print("|---|---|---|---|")
    for arch in archs:
        epoch_s, pred_s = epoch_seconds(arch, X, y, args.epochs)
        print(f"| {arch} | {epoch_s:.2f} | {n_fit / epoch_s:.0f} | {len(X) / pred_s:.0f} |",
              flush=True)
        if arch == "bilstm":
            verdict = "met" if epoch_s < BAR_BILSTM_EPOCH_S else "NOT met"
            print(f"<!-- BiLSTM epoch {epoch_s:.2f} s vs bar {BAR_BILSTM_EPOCH_S} s: {verdict} -->")


if __name__ == "__main__":
    main()
