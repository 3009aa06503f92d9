"""The chunk-classifier study of notebook 07: supervised networks against unsupervised
baselines on the same grouped folds.

:func:`experiment_chunks` turns labelled experiments (SKAB's form: signal
columns plus ``anomaly``) into chunks; :func:`run_chunk_study` trains and
scores every model on the same folds and returns per-fold metrics and the
held-out scores of every chunk. With ``split="grouped"`` whole experiments
are held out (no chunk of a test experiment, and no window overlapping one,
is seen in training or threshold tuning); ``split="shuffled"`` is the leaky
protocol kept for the leakage demonstration.

The unsupervised baselines are the seed study's: Isolation Forest and
k-means (distance to the nearest centre) on per-chunk summary features, and
the LSTM autoencoder of the detector layer; the majority class is the floor.
Every model's alarm threshold is tuned the same way, for the best F1 on the
validation experiments of the training fold.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lab.chunks import grouped_folds, make_chunks, validation_split
from lab.models.classifiers import ChunkClassifier, best_f1_threshold

__all__ = ["SUPERVISED", "UNSUPERVISED", "MODELS", "experiment_chunks", "make_experiments",
           "chunk_summary", "classification_scores", "study_folds", "run_chunk_study",
           "calendar_leak",
           "StudyResult"]

SUPERVISED = ("bilstm", "lstm", "fcn", "spectrogram-cnn")
UNSUPERVISED = ("lstm_ae", "iforest", "kmeans")
MODELS = (*SUPERVISED, *UNSUPERVISED, "majority")
#: k-means centres of the baseline (normal operating modes).
KMEANS_CLUSTERS = 4
METRICS = ("pr_auc", "roc_auc", "f1", "recall")


def make_experiments(n_experiments: int = 12, n_rows: int = 1200, n_signals: int = 4,
                     random_state: int = 0) -> dict[str, pd.DataFrame]:
    """Generated experiments in SKAB's form, the notebook's fallback without SKAB.

    Each experiment is ``n_signals`` noisy, correlated sensor readings at one
    row a second, starting at its own time; a fault from about a third of
    the way in shifts the level of some signals and raises their noise.

    Returns
    -------
    dict of str to DataFrame
        ``{"gen/<i>": frame}`` with columns ``s0..`` and ``anomaly`` (0/1).

    Examples
    --------
    >>> exps = make_experiments(3, 300)
    >>> sorted(exps)[0], exps["gen/0"].shape
    ('gen/0', (300, 5))
    """
    rng = np.random.default_rng(random_state)
    out = {}
    for i in range(n_experiments):
        start = pd.Timestamp("2024-01-01") + pd.Timedelta(hours=int(rng.integers(0, 24 * 60)))
        index = pd.date_range(start, periods=n_rows, freq="s", name="timestamp")
        t = np.arange(n_rows)
        base = np.sin(2 * np.pi * t / rng.uniform(40, 80))[:, None] * rng.uniform(0.5, 1.5,
                                                                                   n_signals)
        values = base + 0.3 * rng.standard_normal((n_rows, n_signals))
        anomaly = np.zeros(n_rows, int)
        onset = int(n_rows * rng.uniform(0.3, 0.6))
        stop = min(n_rows, onset + int(n_rows * rng.uniform(0.1, 0.3)))
        hit = rng.random(n_signals) < 0.5
        hit[rng.integers(n_signals)] = True
        values[onset:stop, hit] += rng.uniform(0.4, 0.8) * rng.choice([-1, 1], hit.sum())
        values[onset:stop, hit] += 0.3 * rng.standard_normal((stop - onset, hit.sum()))
        anomaly[onset:stop] = 1
        frame = pd.DataFrame(values, index=index, columns=[f"s{j}" for j in range(n_signals)])
        out[f"gen/{i}"] = frame.assign(anomaly=anomaly)
    return out


def experiment_chunks(experiments: dict[str, pd.DataFrame], T: int = 60, step: int | None = None,
                      rule: str | float = "any", calendar: bool = True,
                      label: str = "anomaly", drop: Sequence[str] = ("changepoint",)
                      ) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Chunks of every experiment, each experiment a group (:func:`make_chunks`).

    Parameters
    ----------
    experiments : dict of str to DataFrame
        Signal columns plus ``label`` (SKAB's :func:`lab.datasets.load_skab`).
    T, step, rule, calendar
        As :func:`lab.chunks.make_chunks`.
    label : str, default "anomaly"
    drop : sequence of str
        Other label columns to leave out of the features.

    Returns
    -------
    X, y, meta
        As :func:`make_chunks`; ``meta["group"]`` is the experiment's name.

    Examples
    --------
    >>> X, y, meta = experiment_chunks(make_experiments(3, 300), T=60)
    >>> X.shape, meta["group"].nunique()
    ((15, 60, 12), 3)
    """
    if not experiments:
        raise ValueError("experiments is empty; expected a dict of labelled frames")
    frames, labels, groups = [], [], []
    for name, frame in experiments.items():
        if label not in frame:
            raise ValueError(f"experiment {name!r} has no {label!r} column; columns are "
                             f"{list(frame.columns)[:10]}")
        frames.append(frame.drop(columns=[label, *[c for c in drop if c in frame]]))
        labels.append(frame[label].to_numpy())
        groups.append(np.full(len(frame), name, dtype=object))
    df = pd.concat(frames)
    return make_chunks(df, np.concatenate(labels), T=T, step=step, rule=rule,
                       calendar=calendar, groups=np.concatenate(groups))


def chunk_summary(X: np.ndarray) -> np.ndarray:
    """Per-chunk features of the unsupervised baselines: mean, std, min and max of each
    channel, shape ``(n, 4 * n_features)``.

    Examples
    --------
    >>> chunk_summary(np.arange(6.0).reshape(1, 3, 2)).tolist()
    [[2.0, 3.0, 1.632993161855452, 1.632993161855452, 0.0, 1.0, 4.0, 5.0]]
    """
    return np.concatenate([X.mean(axis=1), X.std(axis=1), X.min(axis=1), X.max(axis=1)],
                          axis=1)


def classification_scores(y: Any, score: Any, threshold: float) -> dict[str, float]:
    """PR-AUC (average precision), ROC-AUC, F1 and recall of alarms ``score >= threshold``.

    The AUCs are NaN when ``y`` holds one class.

    Examples
    --------
    >>> classification_scores([0, 0, 1, 1], [0.1, 0.6, 0.7, 0.9], 0.65)
    {'pr_auc': 1.0, 'roc_auc': 1.0, 'f1': 1.0, 'recall': 1.0}
    """
    from sklearn.metrics import average_precision_score, f1_score, recall_score, roc_auc_score

    y = np.asarray(y).astype(int)
    score = np.asarray(score, dtype=np.float64)
    pred = score >= threshold
    both = len(np.unique(y)) == 2
    return {
        "pr_auc": float(average_precision_score(y, score)) if both else float("nan"),
        "roc_auc": float(roc_auc_score(y, score)) if both else float("nan"),
        "f1": float(f1_score(y, pred, zero_division=0.0)),
        "recall": float(recall_score(y, pred, zero_division=0.0)),
    }


def study_folds(meta: pd.DataFrame, n_splits: int = 5, split: str = "grouped",
                random_state: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """The study's folds: whole experiments held out, or (``"shuffled"``) chunks shuffled
    across experiments, the leaky protocol.

    Examples
    --------
    >>> meta = pd.DataFrame({"group": list("aabbcc")})
    >>> sorted(te.tolist() for _, te in study_folds(meta, 3))
    [[0, 1], [2, 3], [4, 5]]
    """
    if split == "grouped":
        return grouped_folds(meta["group"].to_numpy(), n_splits)
    if split == "shuffled":
        from sklearn.model_selection import KFold

        kf = KFold(n_splits, shuffle=True, random_state=random_state)
        return list(kf.split(np.arange(len(meta))))
    raise ValueError(f"split must be 'grouped' or 'shuffled', got {split!r}")


@dataclass
class StudyResult:
    """Per-fold metrics and held-out scores of :func:`run_chunk_study`.

    ``folds``: one row per (model, fold) with ``pr_auc``, ``roc_auc``,
    ``f1``, ``recall``, ``fit_s`` (training seconds) and ``epochs``.
    ``scores``: one row per held-out chunk, its ``fold``, ``y`` and, per
    model, ``<model>`` (score) and ``<model>_alarm``.
    """

    folds: pd.DataFrame
    scores: pd.DataFrame
    split: str = "grouped"
    classifiers: dict = field(default_factory=dict, repr=False)

    def summary(self) -> pd.DataFrame:
        """Mean and std over folds of each metric, one row per model, best PR-AUC first."""
        agg = self.folds.groupby("model", sort=False)[[*METRICS, "fit_s"]].agg(["mean", "std"])
        agg.columns = [f"{m}_{s}" for m, s in agg.columns]
        return agg.sort_values("pr_auc_mean", ascending=False)


def _unsupervised(name: str, X_fit, y_fit, others, T: int, random_state: int,
                  ae_epochs: int, verbose: int) -> tuple[list[np.ndarray], int]:
    """Scores of ``others`` (a list of chunk batches) by an unsupervised baseline fitted
    on ``X_fit`` (the LSTM autoencoder: on its normal chunks only)."""
    if name == "lstm_ae":
        from lab.models.lstm_ae import LSTMAutoencoderDetector

        normal = X_fit[y_fit == 0]
        det = LSTMAutoencoderDetector(window=T, stride=T, epochs=ae_epochs,
                                      random_state=random_state, verbose=verbose)
        det.fit(normal.reshape(-1, normal.shape[2]))
        return [det.score_windows(o) for o in others], ae_epochs
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(chunk_summary(X_fit))
    feats = [scaler.transform(chunk_summary(o)) for o in others]
    if name == "iforest":
        from sklearn.ensemble import IsolationForest

        model = IsolationForest(n_estimators=200, random_state=random_state)
        model.fit(scaler.transform(chunk_summary(X_fit)))
        return [-model.score_samples(f) for f in feats], 0
    if name == "kmeans":
        from sklearn.cluster import KMeans

        km = KMeans(KMEANS_CLUSTERS, n_init=10, random_state=random_state)
        km.fit(scaler.transform(chunk_summary(X_fit)))
        return [km.transform(f).min(axis=1) for f in feats], 0
    raise ValueError(f"unknown model {name!r}; models are {MODELS}")


def run_chunk_study(X: np.ndarray, y: np.ndarray, meta: pd.DataFrame, *,
                    models: Sequence[str] = MODELS, n_splits: int = 5, split: str = "grouped",
                    epochs: int = 30, patience: int = 10, units: Sequence[int] = (32,),
                    fcn_filters: Sequence[int] | None = None, batch_size: int = 32,
                    ae_epochs: int = 10, validation_size: float = 0.2, random_state: int = 0,
                    verbose: int = 0, keep_models: bool = False,
                    n_jobs: int = 1) -> StudyResult:
    """Train and score every model on the same folds.

    In each fold the training chunks are split once more into fit and
    validation experiments (:func:`lab.chunks.validation_split`;
    random chunks under ``split="shuffled"``). The networks stop early on
    the validation experiments; every model's threshold is the best-F1 one
    on them (:func:`lab.models.classifiers.best_f1_threshold`, 0.5 preferred
    for the networks' probabilities); the held-out experiments are scored
    last.

    Parameters
    ----------
    X, y, meta
        From :func:`experiment_chunks` or :func:`lab.chunks.make_chunks`.
    models : sequence of str
        From :data:`MODELS`.
    n_splits : int, default 5
    split : {"grouped", "shuffled"}
    epochs, patience, units, fcn_filters, batch_size
        The networks' settings (:class:`ChunkClassifier`); ``fcn_filters``
        None is Wang et al.'s (128, 256, 128).
    ae_epochs : int
        Epochs of the LSTM autoencoder.
    validation_size : float
    random_state : int
    verbose : int
        Keras progress bars (1) or silence (0). With ``n_jobs`` above 1 the
        bars go to the worker processes' console, not to the notebook.
    keep_models : bool
        Keep each fold's fitted classifiers in ``result.classifiers``.
    n_jobs : int, default 1
        Processes that fit the (model, fold) pairs side by side: 1 fits
        them one after the other in this process, -1 uses one process per
        CPU core (``joblib.cpu_count()``, cgroup quotas included). A small
        network's training keeps about one core busy, so two processes on
        two cores take about half the time. The results are the same as
        with 1: every fit seeds itself (:func:`lab.models.seed_everything`),
        and the workers' TensorFlow uses this process's thread counts.

    Returns
    -------
    StudyResult

    Raises
    ------
    ValueError
        On an unknown model, fewer experiments than folds, a training fold
        with a single class, or ``n_jobs`` 0 or below -1.
    RuntimeError
        When a worker kept from an earlier call runs TensorFlow on other
        thread counts than this process (its results would differ).
    joblib.externals.loky.process_executor.TerminatedWorkerError
        When a worker process dies (``n_jobs`` above 1).

    Notes
    -----
    An error in a fit is raised with the model and fold in its notes;
    with ``n_jobs`` above 1 it also stops the other fits.

    The worker processes are joblib's loky workers, started fresh rather
    than forked (a forked copy of a process whose TensorFlow has run ops
    can hang in TensorFlow's thread pools). Starting them and importing
    TensorFlow in them takes a few seconds. joblib keeps them, idle, for
    a later call (about 5 minutes, each holding TensorFlow's few hundred
    MB); ``joblib.externals.loky.get_reusable_executor().shutdown()``
    stops them sooner. Each keeps this process's TensorFlow thread counts,
    by default one thread per core, so that its sums are taken in the same
    order: on a machine with many cores, many workers oversubscribe them,
    and a smaller ``n_jobs`` is faster.

    Examples
    --------
    >>> X, y, meta = experiment_chunks(make_experiments(4, 240), T=30, calendar=False)
    >>> res = run_chunk_study(X, y, meta, models=("iforest", "majority"), n_splits=2)
    >>> sorted(res.folds["model"].unique())
    ['iforest', 'majority']
    """
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; models are {MODELS}")
    n_jobs = _check_n_jobs(n_jobs)
    groups = meta["group"].to_numpy()
    folds = study_folds(meta, n_splits, split, random_state)
    settings = {"T": X.shape[1], "epochs": epochs, "patience": patience, "units": units,
                "fcn_filters": fcn_filters, "batch_size": batch_size, "ae_epochs": ae_epochs,
                "validation_size": validation_size, "random_state": random_state,
                "verbose": verbose, "keep_models": keep_models}
    tasks, parts = [], []
    for k, (train, test) in enumerate(folds):
        if len(np.unique(y[train])) < 2:
            raise ValueError(f"fold {k}: the training chunks hold a single class "
                             f"({np.unique(y[train]).tolist()}); use fewer folds")
        if split == "grouped":
            fit_i, val_i = validation_split(groups[train], y[train], validation_size,
                                            random_state)
        else:
            from sklearn.model_selection import train_test_split

            fit_i, val_i = train_test_split(np.arange(len(train)), test_size=validation_size,
                                            random_state=random_state, stratify=y[train])
        parts.append(pd.DataFrame({"fold": k, "y": y[test]}, index=test))
        tasks += [(name, k, train[fit_i], train[val_i], test) for name in models]
    if n_jobs == 1 or len(tasks) < 2:
        outcomes = [_noted(_fit_model, X, y, task, settings) for task in tasks]
    else:
        outcomes = _fit_in_processes(X, y, tasks, settings, n_jobs)
    rows, kept = [], {}
    for (name, k, *_), (row, test_score, threshold, clf) in zip(tasks, outcomes, strict=True):
        parts[k][name] = test_score
        parts[k][f"{name}_alarm"] = test_score >= threshold
        rows.append(row)
        if clf is not None:
            kept[(name, k)] = clf
    scores = pd.concat(parts).sort_index()
    return StudyResult(pd.DataFrame(rows), scores, split, kept)


def _check_n_jobs(n_jobs: Any) -> int:
    """``n_jobs`` as a process count (-1: one per CPU core)."""
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)):
        raise ValueError(f"n_jobs must be an int (1, 2, ... or -1 for every core), got "
                         f"{n_jobs!r}")
    if n_jobs == -1:
        from joblib import cpu_count

        return cpu_count()  # the cores this process may use, cgroup quotas included
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be 1 or more, or -1 for every core, got {n_jobs}")
    return int(n_jobs)


def _fit_model(X: np.ndarray, y: np.ndarray, name: str, k: int, fit: np.ndarray,
               val: np.ndarray, test: np.ndarray, settings: dict
               ) -> tuple[dict, np.ndarray, float, Any]:
    """Fit one model on fold ``k``: its metrics row, test scores, threshold and (when kept)
    classifier."""
    start = time.perf_counter()
    n_epochs, clf = 0, None
    if name in SUPERVISED:
        clf = ChunkClassifier(name, units=settings["units"], filters=settings["fcn_filters"],
                              epochs=settings["epochs"], patience=settings["patience"],
                              batch_size=settings["batch_size"],
                              validation_size=settings["validation_size"],
                              random_state=settings["random_state"],
                              verbose=settings["verbose"])
        clf.fit(X[fit], y[fit], valid=(X[val], y[val]))
        test_score = clf.predict_proba(X[test])[:, 1]
        threshold, n_epochs = clf.threshold_, clf.epochs_
        if not settings["keep_models"]:
            clf = None
    elif name == "majority":
        major = int(np.mean(y[fit]) > 0.5)
        test_score = np.full(len(test), float(major))
        threshold = 0.5
    else:
        (val_score, test_score), n_epochs = _unsupervised(
            name, X[fit], y[fit], [X[val], X[test]], settings["T"], settings["random_state"],
            settings["ae_epochs"], settings["verbose"])
        threshold = (best_f1_threshold(y[val], val_score)
                     if len(np.unique(y[val])) == 2 else float(np.median(val_score)))
    row = {"model": name, "fold": k, **classification_scores(y[test], test_score, threshold),
           "fit_s": time.perf_counter() - start, "epochs": n_epochs, "threshold": threshold}
    return row, np.asarray(test_score), float(threshold), clf


# The order in which the pairs start: the slowest first (measured on SKAB at notebook 07's
# defaults), so that the last ones to finish are short and the processes end together.
_COST_ORDER = ("lstm_ae", "bilstm", "spectrogram-cnn", "lstm", "fcn", "iforest", "kmeans",
               "majority")


def _tf_threads() -> tuple[int, int]:
    """This process's TensorFlow thread counts (intra-op, inter-op); 0 is TensorFlow's
    default, one per core, and so is a process that has not imported TensorFlow."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return 0, 0
    return (tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads())


def _noted(fit: Any, X: np.ndarray, y: np.ndarray, task: tuple, settings: dict) -> tuple:
    """``fit(X, y, *task, settings)``; an error it raises carries the model and fold."""
    try:
        return fit(X, y, *task, settings)
    except Exception as exc:
        exc.add_note(f"while fitting {task[0]!r} on fold {task[1]}")
        raise


def _not_retracing(record: logging.LogRecord) -> bool:
    """False for TensorFlow's warning that a function was traced again: every fit of the
    study builds a new network on purpose, and a worker that fits five in a row gets it."""
    return "triggered tf.function retracing" not in record.getMessage()


def _match_tf_threads(tf_threads: tuple[int, int]) -> None:
    """Run this worker's TensorFlow on ``tf_threads`` (intra-op, inter-op), or raise if it
    already runs on others: its sums would be taken in another order than the caller's."""
    import tensorflow as tf

    threading = tf.config.threading
    have = (threading.get_intra_op_parallelism_threads(),
            threading.get_inter_op_parallelism_threads())
    if have == tuple(tf_threads):
        return
    try:
        threading.set_intra_op_parallelism_threads(tf_threads[0])
        threading.set_inter_op_parallelism_threads(tf_threads[1])
    except RuntimeError as exc:  # this worker has run TensorFlow with other counts
        raise RuntimeError(
            f"a reused worker process runs TensorFlow on {have} (intra-op, inter-op) threads "
            f"and this process on {tuple(tf_threads)} (0: one per core), so its results would "
            "differ; stop the workers with joblib.externals.loky.get_reusable_executor()"
            ".shutdown(wait=True) and run again") from exc


def _fit_task(fit: Any, X: np.ndarray, y: np.ndarray, task: tuple, settings: dict,
              tf_threads: tuple[int, int]) -> tuple:
    """``fit`` (:func:`_fit_model`) on one (model, fold) pair in a worker process, its
    TensorFlow on the caller's thread counts ``tf_threads``."""
    if task[0] in SUPERVISED or task[0] == "lstm_ae":
        _match_tf_threads(tf_threads)
    tf_log = logging.getLogger("tensorflow")
    tf_log.addFilter(_not_retracing)
    try:
        return _noted(fit, X, y, task, settings)
    finally:
        tf_log.removeFilter(_not_retracing)


def _fit_in_processes(X: np.ndarray, y: np.ndarray, tasks: list, settings: dict,
                      n_jobs: int, fit: Any = _fit_model) -> list:
    """The outcomes of ``fit`` on each of ``tasks`` in ``n_jobs`` worker processes, in task
    order.

    joblib's loky workers: started fresh (a fork of a process whose TensorFlow has run can
    hang), kept for the next call, fed ``X`` as a memory map, and stopped at the first error
    or Ctrl-C, which is raised here. Their TensorFlow runs on this process's thread counts:
    on another count the convolutions sum in another order, and the FCN's and the
    spectrogram CNN's scores on SKAB moved by up to 0.01 (one thread a worker was no faster).
    """
    from joblib import Parallel, delayed

    order = sorted(range(len(tasks)), key=lambda i: (_COST_ORDER.index(tasks[i][0]), i))
    tf_threads = _tf_threads()
    out = Parallel(n_jobs=min(n_jobs, len(tasks)), backend="loky", pre_dispatch="all")(
        delayed(_fit_task)(fit, X, y, tasks[i], settings, tf_threads) for i in order)
    outcomes = [None] * len(tasks)
    for i, outcome in zip(order, out, strict=True):
        outcomes[i] = outcome
    return outcomes


def calendar_leak(X: np.ndarray, y: np.ndarray, meta: pd.DataFrame, n_splits: int = 5,
                  random_state: int = 0) -> dict[str, float]:
    """What the calendar features alone predict, under the grouped folds.

    A logistic regression (balanced class weights) on each chunk's mean of
    the eight calendar columns (the last ones, as
    :func:`lab.chunks.make_chunks` appends them). The calendar holds
    no physics: a PR-AUC above the prevalence is learned from when faults
    were staged.

    Returns
    -------
    dict
        ``pr_auc_mean``, ``pr_auc_std`` (over folds) and ``prevalence`` (the
        share of anomalous chunks, a guess's PR-AUC).

    Examples
    --------
    >>> X, y, meta = experiment_chunks(make_experiments(4, 240), T=30)
    >>> sorted(calendar_leak(X, y, meta, n_splits=2))
    ['pr_auc_mean', 'pr_auc_std', 'prevalence']
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score

    from lab.chunks import CALENDAR_PERIODS

    n_cal = 2 * len(CALENDAR_PERIODS)
    if X.ndim != 3 or X.shape[2] <= n_cal:
        raise ValueError(f"X must hold signals then {n_cal} calendar columns, got shape "
                         f"{X.shape}; make the chunks with calendar=True")
    feats = X[:, :, -n_cal:].mean(axis=1)
    out = []
    for train, test in study_folds(meta, n_splits, "grouped", random_state):
        if len(np.unique(y[train])) < 2 or len(np.unique(y[test])) < 2:
            continue
        model = LogisticRegression(class_weight="balanced", max_iter=1000)
        model.fit(feats[train], y[train])
        out.append(average_precision_score(y[test], model.predict_proba(feats[test])[:, 1]))
    return {"pr_auc_mean": float(np.mean(out)) if out else float("nan"),
            "pr_auc_std": float(np.std(out, ddof=1)) if len(out) > 1 else float("nan"),
            "prevalence": float(np.mean(y))}
