"""The anomaly leaderboard engine: every detector on every labelled series, on dask.

:func:`run_benchmark` fits each detector, with its one default
configuration (or the parameters given), on the training rows of each series
(``attrs["train_rows"]`` of the lab's labelled form, :mod:`lab.datasets`:
NAB's probationary period, SKAB's first 400 rows, the UCR series' normal
head), scores the whole series, and judges the rows after the training part.

- **Parallel:** the (detector, series) tasks run on ``dask.distributed``: a
  ``LocalCluster`` of worker processes with one thread each by default, or an
  existing cluster at ``dask=ADDRESS`` or ``$LAB_DASK_SCHEDULER``.
- **Reliable:** the tasks of one series run one after the other in a child
  process forked for them (:func:`lab.forked.run_forked`), each with its own
  time limit. A detector that
  raises, returns NaN or a score of the wrong length, crashes the child or
  runs out of time is recorded as failed with the reason, and the other tasks
  go on (in a new child after a crash or a timeout).
- **Cached:** every finished task is written at once to
  ``runs/.cache/benchmark/<key>.npz``, keyed on the detector's name, class and
  parameters, a hash of the series (values, index, labels, training rows),
  and the detector module's last git commit with a hash of its source (and of
  this module's). A rerun, after a change elsewhere or an interrupted run,
  reuses them. Timeouts are not cached: they depend on the machine's load.
- **Output:** :class:`lab.benchmark_result.BenchmarkResult` (re-exported
  here), whose ``table`` is tidy (one row per
  detector and series), saved as Parquet into the run directory
  (``$LAB_RUN_DIR`` in a ``lab run``, whose MLflow run logs it) and, with
  ``mlflow_run=True``, logged to MLflow directly.

Metrics of each series (on the rows after the training part)
-------------------------------------------------------------
``vus_pr``, ``vus_roc`` (TSB-AD's volumes), ``auc_pr``, ``best_f1`` (the
best point F1 over all thresholds), ``range_f1`` (Tatbul et al., of the
detector's own alarms, ``score > threshold_``), ``ucr_hit`` (where the test
rows hold exactly one anomaly), and ``tp, fp, fn, tn`` of those alarms (SKAB
pools them over its 34 experiments). A metric that needs both classes is NaN
on a series with one class only (NAB's series without an anomaly window,
which NAB still scores).

NAB's score is a corpus score: :meth:`BenchmarkResult.nab_scores` maps each
series' scores into [0, 1] with :func:`unit_score` and runs NAB's threshold
optimisation (:func:`lab.metrics.nab_threshold`) once per detector and
profile over all the NAB series.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import math
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lab import config
from lab.benchmark_result import METRICS, BenchmarkResult, skab_scores
from lab.forked import run_forked

__all__ = ["run_benchmark", "BenchmarkResult", "unit_score", "data_digest", "skab_scores",
           "leaderboard_data", "with_published", "METRICS", "TASK_TIMEOUT_S", "CACHE_DIR",
           "NAB_PUBLISHED", "SKAB_PUBLISHED_F1", "SKAB_PUBLISHED_NAB", "SKAB_PUBLISHED_NAB_RULE",
           "NAB_EXCLUDED", "LEADERBOARD_DETECTORS"]

#: Seconds a (detector, series) task may run before it is stopped and recorded as failed.
TASK_TIMEOUT_S = 600.0
#: Where finished tasks are cached; ``cache=`` of :func:`run_benchmark` overrides it.
CACHE_DIR = config.RUNS_DIR / ".cache" / "benchmark"
#: The results table's file in the output directory.
RESULTS_FILE = "benchmark.parquet"
#: The detector layer's detectors, each with its defaults: the full leaderboard's entries
#: (the change-point detectors registered later are judged by lab.cp_evaluation instead).
LEADERBOARD_DETECTORS = ("pca", "hbos", "iforest", "lof", "knn", "matrix_profile",
                         "spectral_residual", "ks_window", "spot", "mscred", "betsi", "random",
                         "constant")
#: Detectors the default leaderboard does not run on NAB (Keras models, minutes per series).
NAB_EXCLUDED = ("mscred", "betsi")
#: NAB v1.1 scoreboard, standard profile (github.com/numenta/NAB, README "Scoreboard").
NAB_PUBLISHED = {"Numenta HTM": 70.5, "CAD OSE": 69.9, "KNN CAD": 58.0,
                 "Random Cut Forest": 51.7, "Twitter ADVec": 47.1, "Windowed Gaussian": 39.6,
                 "Bayesian changepoint": 17.7, "random": 11.0, "null": 0.0}
#: SKAB v0.9 leaderboard, outlier detection F1 (github.com/waico/SKAB, README).
SKAB_PUBLISHED_F1 = {"Conv-AE": 0.78, "MSET": 0.78, "T2+Q (PCA)": 0.76, "LSTM-AE": 0.74,
                     "LSTM-VAE": 0.56, "Vanilla LSTM": 0.54, "Vanilla AE": 0.39, "MSCRED": 0.36,
                     "Isolation Forest": 0.29}
#: SKAB v0.9 leaderboard, change points, NAB standard score (github.com/waico/SKAB, README).
SKAB_PUBLISHED_NAB = {"MSCRED": 32.42, "Isolation Forest": 26.16, "Conv-AE": 23.61}
#: The change-point rule behind each published row (their notebooks at 46e2c1c): "iforest",
#: the changes of the smoothed alarms' 30-row rolling maximum (``skab_nab()``), or "raw",
#: every change of the raw alarms (``skab_nab(smooth=1, cp_rows=1)``).
SKAB_PUBLISHED_NAB_RULE = {"MSCRED": "raw", "Isolation Forest": "iforest", "Conv-AE": "raw"}
# Bumped when the cached content changes form, so old entries are not read.
_CACHE_VERSION = 1
_STATUS = ("ok", "failed", "timeout")
# Thread counts pinned in the workers (one thread per worker, no oversubscription).
_ONE_THREAD_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
                                    "NUMBA_NUM_THREADS")}
# numba's workqueue layer survives a fork (GNU OpenMP's does not: libgomp stops the child with
# SIGTERM), so the workers can compile stumpy's kernels once and fork children that use them.
_ONE_THREAD_ENV["NUMBA_THREADING_LAYER"] = "workqueue"
# The lab's own LocalCluster. No work stealing: it moved _ONE_WORKER tasks to the other worker,
# which set them up again. And dask's periodic watchers, made for a dashboard this cluster does
# not have, run less often: idle, the client's process (scheduler and nannies) used 7% of a
# core and each worker 5%, taken from the tasks when both cores compute (1.0% and 0.4% with
# these settings; the event-loop tick, the workers' stack profiler, the GIL monitor, and the
# system and memory monitors).
_LOCAL_DASK_CONFIG = {
    "distributed.scheduler.work-stealing": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.admin.system-monitor.gil.enabled": False,
    "distributed.worker.profile.enabled": False,
    "distributed.worker.memory.monitor-interval": "1s",
}
# The columns of BenchmarkResult.table, in order (metric columns follow "status").
_ID_COLUMNS = ("detector", "dataset", "series", "group", "n_rows", "train_rows", "status",
               "error", "fit_s", "score_s", "peak_mb", "cached")


# --------------------------------------------------------------------------- score rule


def unit_score(train_scores, scores) -> np.ndarray:
    """Map scores into [0, 1] by the empirical distribution of the training scores.

    Parameters
    ----------
    train_scores : array-like of shape (n_train,)
        Finite scores of the training rows (at least one).
    scores : array-like of shape (n,)
        Finite scores to map.

    Returns
    -------
    ndarray of shape (n,)
        ``ECDF_train(s) * n_train / (n_train + 1)`` for ``s`` up to the largest
        training score; above it, in the last ``1 / (n_train + 1)``,
        ``(n_train + z / (1 + z)) / (n_train + 1)`` with ``z`` the excess over
        the training maximum in training standard deviations. The map is
        increasing, so the order of scores above every training score is kept
        (a plain ECDF ties them all at 1), and it keeps them apart in float64
        up to an excess of about 1e12 standard deviations.

    Raises
    ------
    ValueError
        On empty or non-finite input.

    Notes
    -----
    NAB thresholds every detector's [0, 1] scores with one threshold per
    profile over the corpus; a batch detector's raw scores differ in scale
    from series to series. This rule is fixed before any label is read and
    uses only the training rows of the series (the probationary period on
    NAB).

    Examples
    --------
    >>> unit_score([1.0, 2.0, 3.0], [0.5, 2.0, 3.0, 100.0]).round(3).tolist()
    [0.0, 0.5, 0.75, 0.998]
    """
    train = np.asarray(train_scores, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if train.size == 0 or not np.isfinite(train).all():
        raise ValueError(f"train_scores must be finite and non-empty, got shape {train.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    n = train.size
    ordered = np.sort(train)
    out = np.searchsorted(ordered, s, side="right") / (n + 1.0)
    top = ordered[-1]
    spread = float(train.std()) or 1.0
    above = s > top
    z = (s[above] - top) / spread
    out[above] = (n + z / (1.0 + z)) / (n + 1.0)
    return out


def data_digest(frame: pd.DataFrame) -> str:
    """A hash of a labelled series: values, index, labels and training rows.

    Examples
    --------
    >>> f = pd.DataFrame({"value": [1.0, 2.0], "anomaly": [0, 1]})
    >>> f.attrs.update(label_columns=("anomaly",), train_rows=1)
    >>> data_digest(f) == data_digest(f.copy()), len(data_digest(f))
    (True, 16)
    """
    h = hashlib.sha256()
    h.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    h.update(json.dumps([list(map(str, frame.columns)), int(frame.attrs.get("train_rows", 0))])
             .encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- detectors


@dataclass
class _DetectorSpec:
    label: str
    name: str | None          # registry name, or None for an instance
    params: dict[str, Any]
    instance: Any = None      # a detector object (a copy is fitted per task)
    code: str = ""            # git commit of its module + hash of its source

    def build(self):
        if self.instance is not None:
            return type(self.instance)(**self.params)
        from lab.models import get_detector

        return get_detector(self.name, **self.params)


def _source_code_key(cls: type) -> str:
    """Last git commit of the class's module with a hash of its source (and this module's)."""
    files = [inspect.getsourcefile(cls), __file__]
    h = hashlib.sha256()
    commit = ""
    for f in files:
        if f is None:
            continue
        with contextlib.suppress(OSError):
            h.update(Path(f).read_bytes())
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        src = files[0]
        if src is not None:
            commit = subprocess.run(["git", "log", "-1", "--format=%H", "--", src],
                                    cwd=Path(src).parent, capture_output=True, text=True,
                                    timeout=10).stdout.strip()
    return f"{commit[:12]}:{h.hexdigest()[:12]}"


def _detector_specs(detectors) -> list[_DetectorSpec]:
    from lab.models import DETECTORS

    if isinstance(detectors, str) or not isinstance(detectors, Sequence | Mapping):
        raise ValueError(f"detectors must be a list of registry names or a dict of label to "
                         f"name, (name, params) or detector, got {type(detectors).__name__}")
    items = detectors.items() if isinstance(detectors, Mapping) else [
        (d if isinstance(d, str) else type(d).__name__, d) for d in detectors]
    specs = []
    for label, d in items:
        if isinstance(d, str):
            d = (d, {})
        if isinstance(d, tuple):
            if len(d) != 2 or d[0] not in DETECTORS or not isinstance(d[1], Mapping):
                raise ValueError(f"detectors[{label!r}] must be a registry name or (name, "
                                 f"params); known names: {', '.join(DETECTORS)}; got {d!r}")
            name, params = d
            cls = DETECTORS[name]
            specs.append(_DetectorSpec(str(label), name, dict(params)))
        elif hasattr(d, "get_params") and hasattr(d, "fit") and hasattr(d, "score"):
            cls = type(d)
            specs.append(_DetectorSpec(str(label), None, dict(d.get_params()), instance=d))
        else:
            raise ValueError(f"detectors[{label!r}] is neither a registry name nor a detector "
                             f"(fit, score, get_params): {d!r}")
        specs[-1].code = _source_code_key(cls)
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels) or not labels:
        raise ValueError(f"detectors must be non-empty with distinct labels, got {labels}")
    return specs


# --------------------------------------------------------------------------- datasets

_LOADERS = {"nab": "load_nab", "skab": "load_skab", "ucr_anomaly": "load_ucr_anomaly"}


def _datasets(datasets) -> dict[str, dict[str, pd.DataFrame]]:
    import lab.datasets

    if isinstance(datasets, str):
        datasets = [datasets]
    if isinstance(datasets, Mapping):
        items = list(datasets.items())
    elif isinstance(datasets, Sequence):
        items = []
        for name in datasets:
            if name not in _LOADERS:
                raise ValueError(f"datasets names a data set {name!r}; known: {list(_LOADERS)} "
                                 "(or pass a dict of name to {series: labelled frame})")
            items.append((name, getattr(lab.datasets, _LOADERS[name])()))
    else:
        raise ValueError(f"datasets must be names or a dict of name to {{series: frame}}, got "
                         f"{type(datasets).__name__}")
    out = {}
    for name, series in items:
        if not isinstance(series, Mapping) or not series:
            raise ValueError(f"datasets[{name!r}] must be a non-empty dict of series name to "
                             f"labelled frame, got {type(series).__name__}")
        for key, frame in series.items():
            if not isinstance(frame, pd.DataFrame) or "anomaly" not in frame.columns \
                    or "train_rows" not in frame.attrs or "label_columns" not in frame.attrs:
                raise ValueError(f"datasets[{name!r}][{key!r}] must be a labelled frame (an "
                                 "'anomaly' column, attrs 'label_columns' and 'train_rows'), as "
                                 "lab.datasets' loaders return")
            n_train = int(frame.attrs["train_rows"])
            if not 0 < n_train < len(frame):
                raise ValueError(f"datasets[{name!r}][{key!r}] has train_rows={n_train}; "
                                 f"expected between 1 and {len(frame) - 1} ({len(frame)} rows)")
        out[str(name)] = dict(series)
    return out


# --------------------------------------------------------------------------- one task


def _series_metrics(y: np.ndarray, s: np.ndarray, alarms: np.ndarray,
                    metrics: tuple[str, ...]) -> dict[str, float]:
    """The per-series metrics of the test rows (NaN where a metric is undefined)."""
    from lab.metrics import auc_pr, range_f1, ucr_hit, vus_pr, vus_roc

    out: dict[str, float] = {}
    both = bool(y.any()) and not bool(y.all())
    if "vus_pr" in metrics:
        out["vus_pr"] = vus_pr(y, s) if both else math.nan
    if "vus_roc" in metrics:
        out["vus_roc"] = vus_roc(y, s) if both else math.nan
    if "auc_pr" in metrics:
        out["auc_pr"] = auc_pr(y, s) if both else math.nan
    if "best_f1" in metrics:
        out["best_f1"] = _best_f1(y, s) if both else math.nan
    if "range_f1" in metrics:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["range_f1"] = range_f1(y, alarms.astype(np.int8)) if y.any() else math.nan
    if "ucr_hit" in metrics:
        runs = int(np.count_nonzero(np.diff(np.r_[0, y.astype(np.int8)]) == 1))
        out["ucr_hit"] = float(ucr_hit(y, s)) if runs == 1 else math.nan
    out["tp"] = float(np.sum(alarms & y))
    out["fp"] = float(np.sum(alarms & ~y))
    out["fn"] = float(np.sum(~alarms & y))
    out["tn"] = float(np.sum(~alarms & ~y))
    return out


def _best_f1(y: np.ndarray, s: np.ndarray) -> float:
    """The best point F1 over every threshold ``score >= t`` (sklearn's PR curve)."""
    from sklearn.metrics import precision_recall_curve

    p, r, _ = precision_recall_curve(y, s)
    f = np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1.0), 0.0)
    return float(f.max())


def _evaluate(spec: _DetectorSpec, frame: pd.DataFrame, metrics: tuple[str, ...]) -> dict:
    """Fit on the training rows, score the series, judge the test rows (runs in the child)."""
    from lab.datasets import split_labels

    signals, labels = split_labels(frame)
    n_train = int(frame.attrs["train_rows"])
    detector = spec.build()
    t0 = time.perf_counter()
    detector.fit(signals.iloc[:n_train])
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    score = detector.score(signals)
    score_s = time.perf_counter() - t0
    score = np.asarray(score, dtype=np.float64).ravel()
    if score.shape != (len(frame),):
        raise ValueError(f"score has shape {score.shape}; expected ({len(frame)},), one per row")
    if not np.isfinite(score).all():
        bad = np.flatnonzero(~np.isfinite(score))
        raise ValueError(f"score holds {bad.size} NaN or infinite values (first at row {bad[0]})")
    train_scores = np.asarray(getattr(detector, "decision_scores_", score[:n_train]),
                              dtype=np.float64).ravel()
    if train_scores.shape != (n_train,) or not np.isfinite(train_scores).all():
        train_scores = score[:n_train]
    threshold = float(getattr(detector, "threshold_", np.inf))
    y = labels["anomaly"].to_numpy()[n_train:] > 0
    test = score[n_train:]
    values = _series_metrics(y, test, test > threshold, metrics)
    unit = unit_score(train_scores, score)
    return {"fit_s": fit_s, "score_s": score_s, "threshold": threshold, "metrics": values,
            "score": score, "unit": unit}


# Detectors whose modules load Keras. TensorFlow and Keras are imported before the fork (the
# import starts no thread, and it is 5 s and 500 MB that each child would otherwise pay again),
# but nothing is run: TensorFlow's thread pools start with the first operation, and they do not
# survive a fork.
_KERAS_DETECTORS = ("mscred", "betsi", "lstm_ae")
_WARMED: set[str] = set()
# [threadpoolctl controller] when a BLAS or OpenMP library of this process runs several threads
_THREAD_POOLS: list = []
# Detectors with numba-parallel kernels (stumpy). They are fitted before the fork, so that each
# child inherits the compiled kernels (stumpy does not cache them on disk: a child would compile
# them again, 35 s per task), with numba's workqueue threading layer: with the OpenMP layer a
# child forked after a parallel kernel ran is stopped by libgomp with SIGTERM. The dask workers
# start with that layer (_ONE_THREAD_ENV); in the caller's process (workers=0) it is chosen here
# when numba has not started a layer yet, and otherwise the kernels are only imported.
_IMPORT_ONLY = ("matrix_profile",)
# Detectors run on one worker of the cluster: setting them up in a worker costs more than all
# their tasks (stumpy's kernels compile in about 40 s, and stumpy keeps no compiled copy on
# disk; its 92 leaderboard tasks take 8 s), and a second worker would pay it again.
_ONE_WORKER = ("matrix_profile",)
# Detectors whose tasks take seconds each (Keras training): sent to the cluster first.
_LONG = _KERAS_DETECTORS


def _numba_workqueue() -> bool:
    """Whether numba's parallel kernels run (or will run) on its fork-safe workqueue layer."""
    import numba

    try:
        return numba.threading_layer() == "workqueue"
    except ValueError:  # no layer started yet in this process: choose it
        numba.config.THREADING_LAYER = "workqueue"
        return True


def _warm(spec: _DetectorSpec) -> None:
    """Import what a task needs in this (long-lived) process, so each forked child has it."""
    import sklearn.metrics  # noqa: F401

    import lab.metrics  # noqa: F401

    if spec.label in _WARMED:
        return
    _WARMED.add(spec.label)
    _warm_detector(spec)
    _note_thread_pools()


def _note_thread_pools() -> None:
    """Keep this process's BLAS and OpenMP libraries when one runs more than one thread.

    Looked up once per warmed detector (15 ms with TensorFlow loaded), not per task.
    """
    from lab._blas import threaded_libraries

    controller = threaded_libraries()
    _THREAD_POOLS[:] = [] if controller is None else [controller]


def _limit_thread_pools() -> None:  # pragma: no cover - in the forked child
    """One thread for BLAS and OpenMP in a forked child, as on the dask workers; and a libgomp
    team that the parent started is not in the child (entering OpenMP with it waited for
    those threads until the time limit)."""
    if _THREAD_POOLS:
        _THREAD_POOLS[0].limit(limits=1)


def _warm_detector(spec: _DetectorSpec) -> None:
    """Load (and for most, fit once) what the detector needs, before any fork."""
    if spec.name in _KERAS_DETECTORS:
        import keras  # noqa: F401

        spec.build()
        return
    if spec.name in _IMPORT_ONLY and not _numba_workqueue():
        spec.build()
        return
    # a first fit loads what the detector imports lazily (PyOD, numba kernels)
    with contextlib.suppress(Exception), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detector = spec.build()
        n = max(4 * int(getattr(detector, "min_rows", 1)), 64)
        detector.fit(np.random.default_rng(0).standard_normal((n, 1)))


def _series_groups(tasks: list, todo: list[int], apart: Sequence[str] = ()) -> list[list[int]]:
    """The tasks ``todo`` grouped by their series (frame), in order of first appearance; the
    detectors named in ``apart`` make groups of their own."""
    groups: dict[tuple[int, bool], list[int]] = {}
    for i in todo:
        groups.setdefault((id(tasks[i][3]), tasks[i][0].name in apart), []).append(i)
    return list(groups.values())


# --------------------------------------------------------------------------- cache


def _cache_key(spec: _DetectorSpec, digest: str, metrics: tuple[str, ...]) -> str:
    cls = type(spec.instance).__qualname__ if spec.instance is not None else spec.name
    blob = json.dumps([_CACHE_VERSION, spec.name, cls, repr(sorted(spec.params.items())),
                       digest, spec.code, sorted(metrics)])
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _cache_write(path: Path, status: str, payload: Any) -> None:
    if status == "timeout":
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    if status == "ok":
        meta = {k: v for k, v in payload.items() if k not in ("score", "unit")}
        np.savez(tmp, meta=np.array(json.dumps({"status": status, **meta})),
                 score=payload["score"], unit=payload["unit"])
    else:
        np.savez(tmp, meta=np.array(json.dumps({"status": status, "error": payload})))
    os.replace(tmp, path)


def _cache_read(path: Path) -> tuple[str, Any] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            status = meta.pop("status")
            if status != "ok":
                return status, meta["error"]
            return "ok", {**meta, "score": z["score"], "unit": z["unit"]}
    except (OSError, ValueError, KeyError):
        return None


# --------------------------------------------------------------------------- engine


def _check_metrics(metrics) -> tuple[str, ...]:
    if isinstance(metrics, str):
        metrics = (metrics,)
    metrics = tuple(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ValueError(f"metrics must name some of {METRICS}, got {list(metrics)}")
    return metrics


def _progress(total: int, show):
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="benchmark", unit="task", file=sys.stdout, mininterval=1.0,
                dynamic_ncols=True, leave=True)


@contextlib.contextmanager
def _client(dask, workers: int):
    """A dask client: the one given, one to ``ADDRESS``, or a fresh LocalCluster."""
    from distributed import Client, LocalCluster

    if dask is not None and not isinstance(dask, str):
        yield dask
        return
    if isinstance(dask, str):
        client = Client(dask)
        try:
            yield client
        finally:
            client.close()
        return
    import dask as dask_

    with warnings.catch_warnings(), dask_.config.set(_LOCAL_DASK_CONFIG):
        warnings.simplefilter("ignore")
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR,
                               env=_ONE_THREAD_ENV)
        try:
            client = Client(cluster)
        except BaseException:
            cluster.close()
            raise
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close()
        with contextlib.suppress(Exception):
            cluster.close()


def _series_job(specs: list[_DetectorSpec], frame: pd.DataFrame, metrics: tuple[str, ...],
                timeout: float, done=None) -> list[tuple[str, Any]]:
    """Several detectors' tasks on one series, one after the other, in one forked child.

    Each task keeps its own time limit; one that times out or kills the child is recorded, and
    a new child runs the rest (:func:`lab.forked.run_forked`).
    """
    for spec in specs:
        _warm(spec)
    return run_forked(_evaluate, [(spec, frame, metrics) for spec in specs], timeout, done,
                      setup=_limit_thread_pools)


def _on_cluster(client, tasks: list, todo: list[int], metrics: tuple[str, ...], timeout: float,
                done) -> None:
    """Run the tasks ``todo`` on the client's workers; ``done(i, status, payload)`` for each.

    One dask task (a job) runs the detectors of one series one after the other in one forked
    child, each with its own time limit (:func:`_series_job`): the client and the scheduler,
    which share the workers' cores, then handle a dozen times fewer tasks (with one dask task per
    detector and series they took a tenth of a core). The client places every job itself
    (greedy list scheduling, longest first): each worker thread has one job running and one
    waiting, and when a worker's job ends, the next job of the queue goes to that worker. Left
    to dask, a job went to the worker that held its series (work stealing is off on the lab's
    cluster, see :func:`_client`), and one worker could run dry while the other still had a
    queue. Every worker holds every series (a few MB for NAB and SKAB). The detectors of
    :data:`_ONE_WORKER` make jobs of their own, which go to one worker.
    """
    from collections import deque

    from distributed import as_completed

    distinct = list({id(tasks[i][3]): tasks[i][3] for i in todo}.values())
    held = dict(zip(map(id, distinct), client.scatter(distinct, hash=False, broadcast=True),
                    strict=True))
    def _cost(job: list[int]) -> tuple[bool, int]:
        # the Keras detectors' tasks take seconds each; the others grow with the rows
        return (any(tasks[i][0].name in _LONG for i in job), len(job) * len(tasks[job[0]][3]))

    # longest first: the last are short
    order = sorted(_series_groups(tasks, todo, _ONE_WORKER), key=_cost, reverse=True)
    queues = {True: deque(j for j in order if tasks[j[0]][0].name in _ONE_WORKER),
              False: deque(j for j in order if tasks[j[0]][0].name not in _ONE_WORKER)}
    slots = {w: 2 * max(int(n), 1) for w, n in client.nthreads().items()}
    first = min(slots)  # the worker that runs the _ONE_WORKER jobs
    placed: dict = {}  # future: (job, worker)
    running = as_completed()

    def _next(worker: str) -> None:
        """Send the next job of the queue to ``worker``, which has a free slot."""
        queue = queues[True] if worker == first and queues[True] else queues[False]
        if not queue and not placed and queues[True]:
            queue = queues[True]  # that worker is gone: another one takes them
        if not queue:
            return
        job = queue.popleft()
        # loosely: another worker takes the job if this one is lost
        _, _, series, frame, _ = tasks[job[0]]
        fut = client.submit(_series_job, [tasks[i][0] for i in job], held[id(frame)], metrics,
                            timeout, pure=False, key=f"bench-{job[0]}-{series}",
                            workers=[worker], allow_other_workers=True)
        placed[fut] = (job, worker)
        running.add(fut)

    for k in range(max(slots.values())):  # one job to each worker, then a second
        for worker, n in slots.items():
            if k < n:
                _next(worker)
    for fut in running:
        job, worker = placed.pop(fut)
        _next(worker)  # the slot this job held
        try:
            outcomes = fut.result()
        except Exception as exc:  # noqa: BLE001 - a lost worker, say
            outcomes = [("failed", f"{type(exc).__name__}: {exc}")] * len(job)
        for i, (status, payload) in zip(job, outcomes, strict=True):
            done(i, status, payload)


def run_benchmark(detectors, datasets, metrics: Sequence[str] = METRICS, *,
                  workers: int = 2, dask: str | Any | None = None,
                  timeout: float = TASK_TIMEOUT_S, cache: bool | str | Path = True,
                  out: str | Path | None = None, progress: bool = True,
                  mlflow_run: bool = False,
                  exclude: Mapping[str, Sequence[str]] | None = None) -> BenchmarkResult:
    """Run every detector on every labelled series and judge it.

    Parameters
    ----------
    detectors : list of str, or dict
        Registry names (:data:`lab.models.DETECTORS`), each run with its
        default configuration; or ``{label: name | (name, params) |
        detector}`` (a detector object is copied with its ``get_params``).
    datasets : str, list of str, or dict
        ``"nab"``, ``"skab"``, ``"ucr_anomaly"`` (loaded with the
        :mod:`lab.datasets` loaders), or ``{name: {series: frame}}`` of frames
        in the lab's labelled form (``anomaly`` column, ``attrs["train_rows"]``;
        ``attrs["windows"]`` for NAB scoring).
    metrics : sequence of str
        Some of :data:`METRICS`.
    workers : int, default 2
        Worker processes of the LocalCluster (one thread each). 0 runs the
        tasks one after the other from this process (each series' tasks
        still in a forked child, each with the time limit), without dask.
    dask : str or distributed.Client, optional
        An existing cluster's scheduler address, or a client; defaults to
        ``$LAB_DASK_SCHEDULER``. Then ``workers`` is not used.
    timeout : float, default 600
        Seconds per task.
    cache : bool or path, default True
        Reuse and store finished tasks under :data:`CACHE_DIR` (or this folder).
    out : path, optional
        Folder for ``benchmark.parquet``; defaults to ``$LAB_RUN_DIR`` when set.
    progress : bool, default True
        A progress bar (on stdout: in a notebook, and on ``lab run``'s live line).
    mlflow_run : bool, default False
        Also log the table and the mean metrics to the active MLflow run (or a new one).
    exclude : dict of str to list of str, optional
        Detector labels not run on a data set, e.g. ``{"nab": NAB_EXCLUDED}``.

    Returns
    -------
    BenchmarkResult

    Raises
    ------
    ValueError
        On an unknown detector, metric or data set, a frame that is not in the
        labelled form, or a bad ``timeout``/``workers``.
    KeyboardInterrupt
        Passed on; the tasks finished until then are in the cache.

    Examples
    --------
    >>> from lab.datasets import make_labelled_benchmark
    >>> data = {"toy": make_labelled_benchmark(n_series=2, n_rows=300, random_state=0)}
    >>> res = run_benchmark(["hbos"], data, ["auc_pr"], workers=0, cache=False,
    ...                     progress=False)
    >>> res.table[["detector", "status"]].drop_duplicates().values.tolist()
    [['hbos', 'ok']]
    """
    from lab._validation import _check_float, _check_int

    specs = _detector_specs(detectors)
    data = _datasets(datasets)
    metrics = _check_metrics(metrics)
    workers = _check_int(workers, "workers", minimum=0)
    timeout = _check_float(timeout, "timeout")
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    dask = dask or os.environ.get(config.DASK_ENV) or None
    cache_dir = None if cache is False else (CACHE_DIR if cache is True else Path(cache))
    started = time.perf_counter()

    tasks = []  # (spec, dataset, series, frame, cache path)
    for ds, series in data.items():
        for key, frame in series.items():
            digest = data_digest(frame)
            for spec in specs:
                if spec.label in (exclude or {}).get(ds, ()):
                    continue
                path = None if cache_dir is None else \
                    cache_dir / f"{_cache_key(spec, digest, metrics)}.npz"
                tasks.append((spec, ds, key, frame, path))
    results: dict[int, tuple[str, Any, bool]] = {}
    todo = []
    for i, (*_, path) in enumerate(tasks):
        hit = _cache_read(path) if path is not None and path.exists() else None
        if hit is not None:
            results[i] = (*hit, True)
        else:
            todo.append(i)
    bar = _progress(len(tasks), progress)
    if bar is not None:
        bar.update(len(results))

    def _done(i: int, status: str, payload: Any) -> None:
        results[i] = (status, payload, False)
        if tasks[i][4] is not None:
            _cache_write(tasks[i][4], status, payload)
        if bar is not None:
            bar.update(1)
            if status != "ok":
                bar.set_postfix_str(f"{len([r for r in results.values() if r[0] != 'ok'])} "
                                    "failed", refresh=False)

    try:
        if todo and workers == 0 and dask is None:
            for job in _series_groups(tasks, todo):
                _series_job([tasks[i][0] for i in job], tasks[job[0]][3], metrics, timeout,
                            done=lambda k, outcome, job=job: _done(job[k], *outcome))
        elif todo:
            with _client(dask, max(workers, 1)) as client:
                _on_cluster(client, tasks, todo, metrics, timeout, _done)
    finally:
        if bar is not None:
            bar.close()

    rows, scores, units, windows, changepoints = [], {}, {}, {}, {}
    for i, (spec, ds, key, frame, _) in enumerate(tasks):
        status, payload, cached = results[i]
        row = {"detector": spec.label, "dataset": ds, "series": key,
               "group": str(frame.attrs.get("group", "")), "n_rows": len(frame),
               "train_rows": int(frame.attrs["train_rows"]), "status": status,
               "error": "" if status == "ok" else str(payload), "fit_s": math.nan,
               "score_s": math.nan, "peak_mb": math.nan, "threshold": math.nan,
               "cached": cached}
        windows[(ds, key)] = list(frame.attrs.get("windows", []))
        if "changepoint" in frame.columns:
            changepoints[(ds, key)] = frame["changepoint"]
        if status == "ok":
            row.update(fit_s=payload["fit_s"], score_s=payload["score_s"],
                       threshold=payload.get("threshold", math.nan),
                       peak_mb=payload.get("peak_mb", math.nan), **payload["metrics"])
            scores[(spec.label, ds, key)] = pd.Series(payload["score"], index=frame.index,
                                                      name="score")
            units[(spec.label, ds, key)] = pd.Series(payload["unit"], index=frame.index,
                                                     name="score")
        rows.append(row)
    table = pd.DataFrame(rows)
    for m in [m for m in metrics if m != "nab"] + ["tp", "fp", "fn", "tn"]:
        if m not in table:
            table[m] = math.nan
    result = BenchmarkResult(table, scores, units, windows, changepoints,
                             time.perf_counter() - started)
    out = out if out is not None else os.environ.get(config.RUN_DIR_ENV)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        result.path = Path(out) / RESULTS_FILE
        table.to_parquet(result.path, index=False)
    if mlflow_run:
        _log_mlflow(result)
    return result


def _log_mlflow(result: BenchmarkResult) -> None:
    """Log the mean metrics and the Parquet table to the active (or a new) MLflow run."""
    import tempfile

    import mlflow

    active = mlflow.active_run()
    if active is None:
        mlflow.start_run(run_name="benchmark")
    try:
        board = result.leaderboard("vus_pr") if "vus_pr" in result.table else None
        if board is not None:
            mlflow.log_metrics({f"vus_pr.{d}": float(v) for d, v in board["all"].items()
                                if np.isfinite(v)})
        mlflow.log_metric("failed_tasks", len(result.failed()))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / RESULTS_FILE
            result.table.to_parquet(path, index=False)
            mlflow.log_artifact(str(path))
    finally:
        if active is None:
            mlflow.end_run()


# --------------------------------------------------------------------------- notebook helpers


def leaderboard_data(datasets: Sequence[str] = ("nab", "skab"), *,
                     nab_categories: Sequence[str] | None = None, max_series: int = 0,
                     fallback: bool = True, random_state: int = 0
                     ) -> tuple[dict[str, dict[str, pd.DataFrame]], str]:
    """The labelled data sets of a leaderboard, or a generated one when they are absent.

    Parameters
    ----------
    datasets : sequence of {"nab", "skab", "ucr_anomaly"}
        Read with the :mod:`lab.datasets` loaders.
    nab_categories : sequence of str, optional
        NAB categories to keep (all by default).
    max_series : int, default 0
        Keep the first ``max_series`` series of each data set (0: all).
    fallback : bool, default True
        When a data set is absent, use :func:`lab.datasets.make_labelled_benchmark`
        (as ``"synthetic"``) instead of raising.
    random_state : int
        Seed of the generated fallback.

    Returns
    -------
    data : dict
        ``{name: {series: frame}}`` for :func:`run_benchmark`.
    note : str
        What was loaded, and which data sets were absent and replaced.

    Raises
    ------
    DataNotFoundError
        If a data set is absent and ``fallback`` is False.
    ValueError
        On an unknown data set or category.

    Examples
    --------
    >>> data, note = leaderboard_data(["nab"], nab_categories=["realKnownCause"], max_series=2)
    >>> sum(len(v) for v in data.values())
    2
    """
    import lab.datasets
    from lab.datasets import DataNotFoundError, make_labelled_benchmark
    from lab.datasets.labelled import NAB_CATEGORIES

    unknown = [d for d in datasets if d not in _LOADERS]
    if unknown:
        raise ValueError(f"datasets names unknown data sets {unknown}; known: {list(_LOADERS)}")
    bad = [c for c in nab_categories or () if c not in NAB_CATEGORIES]
    if bad:
        raise ValueError(f"nab_categories has unknown categories {bad}; known: "
                         f"{list(NAB_CATEGORIES)}")
    data, loaded, missing = {}, [], []
    for name in datasets:
        try:
            series = getattr(lab.datasets, _LOADERS[name])()
        except DataNotFoundError:
            if not fallback:
                raise
            missing.append(name)
            continue
        if name == "nab" and nab_categories:
            series = {k: v for k, v in series.items() if v.attrs["group"] in nab_categories}
        if max_series:
            series = dict(list(series.items())[:max_series])
        data[name] = series
        loaded.append(f"{name} ({len(series)} series, {sum(map(len, series.values())):,} rows)")
    note = "Data: " + (", ".join(loaded) if loaded else "none of the real data sets")
    if missing:
        n = max_series or 8
        data["synthetic"] = make_labelled_benchmark(n_series=n, n_rows=2000,
                                                    random_state=random_state)
        note += (f". ABSENT: {', '.join(missing)} (get them with `lab data get NAME`); "
                 f"using a small generated benchmark instead ({n} series, "
                 "lab.datasets.make_labelled_benchmark)")
    return data, note


def with_published(lab_scores: Mapping[str, float], published: Mapping[str, float],
                   name: str = "score") -> pd.DataFrame:
    """The lab's figures beside the published ones, marked by source, best first.

    Examples
    --------
    >>> with_published({"iforest": 30.0}, {"HTM": 70.5})["source"].tolist()
    ['published (quoted)', 'lab (ran here)']
    """
    rows = [{"detector": k, name: float(v), "source": "lab (ran here)"}
            for k, v in lab_scores.items()]
    rows += [{"detector": k, name: float(v), "source": "published (quoted)"}
             for k, v in published.items()]
    return pd.DataFrame(rows).sort_values(name, ascending=False,
                                          ignore_index=True).set_index("detector")
