"""EDF nights in, scores out: stage, train, predict by MLflow run id.

The loop of a CPAP device lab, as functions that ``lab stage``, ``lab
train`` and ``lab predict`` call (and notebook 06 calls directly):

1. :func:`stage` turns a folder of ResMed EDF files (``<night>_BRP.edf``,
   ``_PLD.edf``, ``_EVE.edf``) into Parquet, one partition per night and
   sampling rate: ``STAGED/night=<id>/rate=<Hz>/part.parquet``, the EDF+
   annotations in ``events.parquet`` and a ``_SUCCESS.json`` manifest. It is
   idempotent (staged nights are skipped unless ``force``), moves unreadable
   files to ``STAGED/quarantine/`` with a ``.reason.txt``, and copies
   ``truth.csv`` (from :func:`lab.datasets.make_cpap_nights`) to
   ``truth.parquet``.
2. :func:`night_features` makes a night's 1 Hz model frame: per second, the
   mean, maximum and breath amplitude of each high-rate channel and the
   low-rate channels held.
3. :func:`train` fits a registered detector (default :data:`DEFAULT_DETECTOR`)
   on the chosen nights and logs an MLflow run with the parameters, training
   metrics and the saved model (with a ``manifest.json`` naming the channels
   and features it needs) as artefacts.
4. :func:`predict` loads the model from a run's artefacts by its id, scores
   every matching night and writes ``OUTPUT/night=<id>/scores.parquet``
   (score, threshold, prediction, top channels) and ``OUTPUT/episodes.parquet``,
   and logs a prediction run tagged with the model's run id.

Every write goes to a temporary name that is renamed when complete.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lab import config
from lab.runner import LabError
from lab.tracking import atomic_directory

__all__ = ["stage", "list_nights", "load_night", "night_features", "train", "predict",
           "load_model", "night_episodes", "read_scores", "labelled_scores", "load_truth",
           "prediction_runs", "compare_detectors", "DEFAULT_DETECTOR", "DEFAULT_EXPERIMENT"]

#: The detector ``lab train`` uses without ``--detector`` (``lab.config.DEFAULT_EDF_DETECTOR``):
#: on make_cpap_nights(random_state=0) it finds every injected fault of nights 11-30 with 0.1
#: false episodes a night (notebook 06, README).
DEFAULT_DETECTOR = config.DEFAULT_EDF_DETECTOR
#: MLflow experiment of training and prediction runs.
DEFAULT_EXPERIMENT = "cpap"
#: Rows per second of the model frame.
FEATURE_RATE = 1.0
#: Seconds of the breath-amplitude feature's rolling maximum (one breath at 10 a minute).
AMP_SECONDS = 6
#: Top channels written per scored row.
TOP_CHANNELS = 3
#: Seconds between two alarmed rows that still belong to one episode.
EPISODE_GAP_S = 30
#: A night's id: the date and time stamp that opens ResMed's file names.
NIGHT_ID = re.compile(r"^(\d{8}_\d{6})")
_SUCCESS = "_SUCCESS.json"
_MANIFEST = "manifest.json"
_KIND_TAG = "lab.kind"


# ---------------------------------------------------------------------------------- staging
@dataclass
class StageSummary:
    """What :func:`stage` did: nights staged and skipped, files quarantined, bytes and time."""

    staged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    bytes_read: int = 0
    seconds: float = 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes_read / 1e6 / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        return (f"staged {len(self.staged)} nights, skipped {len(self.skipped)} already staged, "
                f"quarantined {len(self.quarantined)} files; read {self.bytes_read / 1e6:.1f} MB "
                f"in {self.seconds:.1f} s ({self.mb_per_s:.0f} MB/s)")


def _rate_dir(rate: float) -> str:
    return f"rate={rate:g}"


def _write_parquet(df: pd.DataFrame, path: Path, *, signals: bool = False) -> None:
    """Write ``df`` (index kept) to ``path`` through a temporary name.

    ``signals``: float columns on a regular ``time`` index, written without
    dictionary encoding or compression (noisy samples gain nothing from
    either) and the time stamps delta-encoded: six times faster than the
    defaults on a 25 Hz night, and smaller.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    df = df.copy(deep=False)
    df.attrs = {}
    table = pa.Table.from_pandas(df, preserve_index=True, nthreads=1)
    tmp = path.with_name(f".{path.name}.tmp")
    if signals:
        pq.write_table(table, tmp, compression="none", use_dictionary=False,
                       column_encoding={"time": "DELTA_BINARY_PACKED"})
    else:
        pq.write_table(table, tmp, compression="lz4")
    os.replace(tmp, path)


def _quarantine(path: Path, output: Path, reason: str) -> Path:
    qdir = output / "quarantine"
    qdir.mkdir(parents=True, exist_ok=True)
    target = qdir / path.name
    shutil.move(str(path), target)
    (qdir / f"{path.name}.reason.txt").write_text(reason + "\n")
    return target


def stage(input_dir: str | os.PathLike, output_dir: str | os.PathLike, *, force: bool = False,
          progress: bool = False) -> StageSummary:
    """Stage the EDF files of ``input_dir`` as Parquet, one partition per night and rate.

    Parameters
    ----------
    input_dir : str or path-like
        Folder of ``<YYYYMMDD_HHMMSS>_<kind>.edf`` files (any kinds; the files
        of one night share the stamp).
    output_dir : str or path-like
        Staged store (created).
    force : bool, default False
        Restage nights already staged.
    progress : bool, default False
        Show a progress bar (tqdm, on stderr).

    Returns
    -------
    StageSummary

    Raises
    ------
    lab.runner.LabError
        If ``input_dir`` is not a folder or holds no ``.edf`` file.

    Examples
    --------
    >>> import tempfile
    >>> from lab.datasets import make_cpap_nights
    >>> raw, out = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> _ = make_cpap_nights(raw, n_nights=2, hours=(0.5, 0.5))
    >>> stage(raw, out).staged
    ['20201115_233306', '20201116_211336']
    >>> stage(raw, out).skipped
    ['20201115_233306', '20201116_211336']
    """
    from tqdm.auto import tqdm

    from lab.datasets.edf import read_edf

    src, out = Path(input_dir), Path(output_dir)
    if not src.is_dir():
        raise LabError(f"input folder {src} does not exist; give the folder of the EDF files")
    files = sorted(p for p in src.iterdir() if p.suffix.lower() == ".edf" and p.is_file())
    if not files:
        raise LabError(f"no .edf file in {src}; give the folder of the EDF files")
    groups: dict[str, list[Path]] = {}
    for p in files:
        m = NIGHT_ID.match(p.name)
        groups.setdefault(m.group(1) if m else p.stem, []).append(p)
    out.mkdir(parents=True, exist_ok=True)
    summary = StageSummary()
    t0 = time.perf_counter()
    bar = tqdm(total=sum(p.stat().st_size for p in files), unit="B", unit_scale=True,
               desc="staging", disable=not progress)
    for night, paths in groups.items():
        final = out / f"night={night}"
        if (final / _SUCCESS).exists() and not force:
            summary.skipped.append(night)
            bar.update(sum(p.stat().st_size for p in paths))
            continue
        by_rate: dict[float, list[pd.DataFrame]] = {}
        notes, sources = [], []
        for p in paths:
            size = p.stat().st_size
            try:
                signals, ann = read_edf(p)
            except ValueError as exc:
                _quarantine(p, out, str(exc))
                summary.quarantined.append(p.name)
                bar.update(size)
                continue
            summary.bytes_read += size
            bar.update(size)
            sources.append(p.name)
            frames = signals.values() if isinstance(signals, dict) else [signals]
            for df in frames:
                if df.shape[1]:
                    by_rate.setdefault(float(df.attrs["rate"]), []).append(df)
            if len(ann):
                notes.append(ann.assign(file=p.name))
        if not sources:
            continue
        with atomic_directory(final, prefix=f".night={night}.") as tmp:
            channels, units = {}, {}
            for rate, dfs in by_rate.items():
                df = dfs[0] if len(dfs) == 1 else pd.concat(dfs, axis=1, join="outer")
                (tmp / _rate_dir(rate)).mkdir()
                _write_parquet(df, tmp / _rate_dir(rate) / "part.parquet", signals=True)
                channels[f"{rate:g}"] = list(df.columns)
                for d in dfs:
                    units.update(d.attrs.get("units", {}))
            events = (pd.concat(notes, ignore_index=True) if notes else
                      pd.DataFrame(columns=["onset", "duration", "text", "time", "file"]))
            _write_parquet(events.astype({"text": str, "file": str}), tmp / "events.parquet")
            (tmp / _SUCCESS).write_text(json.dumps(
                {"night": night, "files": sources, "channels": channels, "units": units}))
        summary.staged.append(night)
    bar.close()
    truth = src / "truth.csv"
    if truth.exists():
        t = pd.read_csv(truth, parse_dates=["start", "end"], dtype={"night": str})
        _write_parquet(t, out / "truth.parquet")
    summary.seconds = time.perf_counter() - t0
    return summary


# ---------------------------------------------------------------------------------- reading
def list_nights(staged: str | os.PathLike, pattern: str = "*") -> list[str]:
    """Ids of the staged nights matching the shell ``pattern`` (``202012*``), sorted.

    A comma separates several patterns (``2020111[5-9]*,2020112[0-4]*``).

    Raises
    ------
    lab.runner.LabError
        If ``staged`` holds no staged night, or none matches (the message
        lists the first and last ids).
    """
    root = Path(staged)
    nights = sorted(p.name.removeprefix("night=") for p in root.glob("night=*")
                    if (p / _SUCCESS).exists())
    if not nights:
        raise LabError(f"no staged night in {root}; stage EDF files first: lab stage INPUT {root}")
    patterns = [p.strip() for p in pattern.split(",") if p.strip()]
    picked = [n for n in nights if any(fnmatch.fnmatch(n, p) for p in patterns)]
    if not picked:
        raise LabError(f"pattern {pattern!r} matches no night in {root}; its {len(nights)} "
                       f"nights run from {nights[0]} to {nights[-1]}")
    return picked


def load_night(staged: str | os.PathLike, night: str,
               columns: list[str] | None = None) -> dict[float, pd.DataFrame]:
    """A staged night's signals: sampling rate (Hz) -> time-indexed DataFrame.

    ``columns`` keeps only those channels (rates without any are left out).
    """
    import pyarrow.parquet as pq

    root = Path(staged) / f"night={night}"
    meta = json.loads((root / _SUCCESS).read_text())
    out = {}
    for rate, chans in meta["channels"].items():
        keep = chans if columns is None else [c for c in chans if c in columns]
        if keep:
            df = pq.read_table(root / _rate_dir(float(rate)) / "part.parquet",
                               columns=[*keep, "time"]).to_pandas()
            out[float(rate)] = df
    return out


def night_channels(staged: str | os.PathLike, night: str) -> list[str]:
    """Every channel of a staged night."""
    meta = json.loads((Path(staged) / f"night={night}" / _SUCCESS).read_text())
    return [c for chans in meta["channels"].values() for c in chans]


def load_truth(staged: str | os.PathLike) -> pd.DataFrame | None:
    """The staged ``truth.parquet`` (generated nights), or None."""
    path = Path(staged) / "truth.parquet"
    return pd.read_parquet(path) if path.exists() else None


def _features(signals: dict[float, pd.DataFrame]) -> pd.DataFrame:
    start = min(df.index[0] for df in signals.values())
    end = max(df.index[0] + pd.Timedelta(seconds=len(df) / rate) for rate, df in signals.items())
    n = int((end - start).total_seconds() * FEATURE_RATE)
    grid = pd.date_range(start, periods=n, freq=pd.Timedelta(seconds=1 / FEATURE_RATE),
                         name="time")
    cols: dict[str, np.ndarray] = {}
    for rate, df in sorted(signals.items(), reverse=True):
        if rate > FEATURE_RATE:
            k = int(round(rate / FEATURE_RATE))
            m = len(df) // k
            for c in df.columns:
                x = df[c].to_numpy(np.float64)[: m * k].reshape(m, k)
                amp = pd.Series(x.std(axis=1)).rolling(AMP_SECONDS, min_periods=1).max()
                for name, v in ((f"{c}.mean", x.mean(axis=1)), (f"{c}.max", x.max(axis=1)),
                                (f"{c}.amp", amp.to_numpy())):
                    cols[name] = _fit_length(v, n)
        else:  # held until the next sample
            s = df.reindex(grid, method="ffill").bfill()
            for c in df.columns:
                cols[c] = s[c].to_numpy(np.float64)
    return pd.DataFrame(cols, index=grid)


def _fit_length(v: np.ndarray, n: int) -> np.ndarray:
    if len(v) >= n:
        return v[:n]
    return np.concatenate([v, np.full(n - len(v), v[-1] if len(v) else 0.0)])


def feature_channel(feature: str) -> str:
    """The channel a model-frame column comes from (``Flow.amp`` -> ``Flow``)."""
    return feature.split(".")[0]


def night_features(staged: str | os.PathLike, night: str,
                   channels: list[str] | None = None) -> pd.DataFrame:
    """A staged night's model frame at 1 Hz.

    High-rate channels (above 1 Hz) give three columns per second:
    ``<ch>.mean``, ``<ch>.max`` and ``<ch>.amp`` (the largest one-second
    standard deviation in the last 6 s: breath amplitude, exactly 0 when the
    channel is stuck). Low-rate channels are held until their next sample.

    Parameters
    ----------
    staged : str or path-like
    night : str
        A staged night's id.
    channels : list of str, optional
        Use only these channels (default: all). A channel the night lacks
        raises.

    Returns
    -------
    DataFrame
        Float columns on a 1 s DatetimeIndex over the night.

    Raises
    ------
    lab.runner.LabError
        If the night lacks one of ``channels``.
    """
    have = night_channels(staged, night)
    if channels is not None:
        missing = [c for c in channels if c not in have]
        if missing:
            raise LabError(f"night {night} in {staged} has no channel {missing} (it has {have})")
    marker = Path(staged).absolute() / f"night={night}" / _SUCCESS
    key = (str(marker), marker.stat().st_mtime_ns, tuple(channels) if channels else None)
    return _cached_features(*key).copy()


@functools.lru_cache(maxsize=32)
def _cached_features(marker: str, mtime_ns: int, channels: tuple[str, ...] | None
                     ) -> pd.DataFrame:
    """A night's model frame, kept while its staged partition is unchanged (restaging
    rewrites the ``_SUCCESS.json`` marker, so the key changes)."""
    root = Path(marker).parent
    night = root.name.removeprefix("night=")
    return _features(load_night(root.parent, night, list(channels) if channels else None))


# --------------------------------------------------------------------------------- tracking
def _client(runs_dir: str | os.PathLike | None):
    from lab.mlflow_store import mlflow_client

    out = Path(runs_dir) if runs_dir else config.RUNS_DIR
    out.mkdir(parents=True, exist_ok=True)
    return mlflow_client(out.absolute()), out.absolute()


def _experiment(client, out: Path, name: str) -> str:
    from lab.mlflow_store import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, store_lock

    with store_lock(out):
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        artifacts = None
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            artifacts = (out / "mlartifacts").as_uri()
        return client.create_experiment(name, artifact_location=artifacts,
                                        tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})


def _local_artifacts(run) -> Path | None:
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    uri = run.info.artifact_uri
    if uri.startswith("file:"):
        return Path(url2pathname(urlparse(uri).path))
    if "://" not in uri:
        return Path(uri)
    return None


def _local_root(client, run) -> Path:
    """The local folder of the run's experiment artefacts (it exists unless it was moved)."""
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    uri = client.get_experiment(run.info.experiment_id).artifact_location
    return Path(url2pathname(urlparse(uri).path)) if uri.startswith("file:") else Path(uri)


# ----------------------------------------------------------------------------------- train
def train(staged: str | os.PathLike, *, detector: str = DEFAULT_DETECTOR,
          params: dict[str, Any] | None = None, nights: str = "*",
          channels: list[str] | None = None, runs_dir: str | os.PathLike | None = None,
          experiment: str = DEFAULT_EXPERIMENT, progress: bool = False) -> str:
    """Fit a registered detector on the staged nights matching ``nights``; log it to MLflow.

    Parameters
    ----------
    staged : str or path-like
        Output of :func:`stage`.
    detector : str, default :data:`DEFAULT_DETECTOR`
        A name of :data:`lab.models.DETECTORS`.
    params : dict, optional
        The detector's settings.
    nights : str, default "*"
        Shell pattern of the training nights' ids.
    channels : list of str, optional
        Channels to use (default: every channel of the first night).
    runs_dir : str or path-like, optional
        Runs directory holding the MLflow store (default ``lab.config.RUNS_DIR``).
    experiment : str, default "cpap"
    progress : bool, default False

    Returns
    -------
    str
        The MLflow run id; the model is the run's ``model`` artefact.

    Raises
    ------
    lab.runner.LabError
        On a pattern that matches no night, an unknown detector or bad
        settings, or a night without one of the channels.
    """
    from mlflow.entities import Metric, Param
    from tqdm.auto import tqdm

    from lab.models import get_detector

    params = dict(params or {})
    picked = list_nights(staged, nights)
    channels = list(channels) if channels else night_channels(staged, picked[0])
    try:
        det = get_detector(detector, **params)
    except ValueError as exc:
        raise LabError(str(exc)) from None
    frames = [night_features(staged, n, channels)
              for n in tqdm(picked, desc="reading nights", unit="night", disable=not progress)]
    X = pd.concat(frames)
    t0 = time.perf_counter()
    try:
        det.fit(X)
    except ValueError as exc:
        raise LabError(f"{detector} cannot fit these nights: {exc}") from None
    fit_s = time.perf_counter() - t0
    metrics = {"n_nights": len(picked), "n_rows": len(X), "fit_seconds": fit_s,
               "threshold": float(det.threshold_),
               "train_alarm_rate": float(np.mean(det.labels_))}
    truth = load_truth(staged)
    if truth is not None:
        from lab.evaluation import evaluate_nights

        alarms = {}
        pos = 0
        for n, f in zip(picked, frames, strict=True):
            alarms[n] = pd.Series(det.labels_[pos: pos + len(f)], index=f.index)
            pos += len(f)
        ev = evaluate_nights(alarms, truth)
        metrics.update(train_recall=ev["recall"],
                       train_false_per_night=ev["false_per_night"])
    client, out = _client(runs_dir)
    exp_id = _experiment(client, out, experiment)
    run = client.create_run(exp_id, run_name=f"train-{detector}", tags={
        _KIND_TAG: "train", "lab.staged": str(Path(staged).absolute()),
        "lab.detector": detector})
    run_id = run.info.run_id
    try:
        now = int(time.time() * 1000)
        client.log_batch(run_id, params=[
            Param("detector", detector), Param("nights", nights),
            Param("channels", ",".join(channels)),
            *[Param(f"p.{k}", json.dumps(v)) for k, v in det.get_params().items()]],
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = Path(tmp) / "model"
            det.save(model_dir)
            (model_dir / _MANIFEST).write_text(json.dumps({
                "detector": detector, "params": det.get_params(), "channels": channels,
                "features": list(X.columns), "feature_rate": FEATURE_RATE,
                "nights": picked}, default=str))
            client.log_artifacts(run_id, str(model_dir), "model")
        client.set_terminated(run_id, "FINISHED")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    return run_id


# ---------------------------------------------------------------------------------- predict
def load_model(run_id: str, runs_dir: str | os.PathLike | None = None):
    """The detector and manifest a ``train`` run logged, from the run's artefacts.

    Returns
    -------
    (detector, manifest dict)

    Raises
    ------
    lab.runner.LabError
        On an unknown run id, a run without a model, or artefacts that are
        no longer where the store says (a runs directory moved or renamed).
    """
    from lab.models import DETECTORS

    client, out = _client(runs_dir)
    try:
        run = client.get_run(run_id)
    except Exception:
        raise LabError(f"unknown run id {run_id!r} in the MLflow store of {out}; list the "
                       f"training runs with `mlflow ui` (make ui) or give --runs DIR") from None
    path = _local_artifacts(run)
    if path is None:  # a remote artefact store: download
        path = Path(client.download_artifacts(run_id, "", tempfile.mkdtemp()))
    elif not path.exists() and not _local_root(client, run).exists():
        raise LabError(f"run {run_id}'s artefacts are missing at {path}: the runs directory was "
                       "moved or renamed after training (the store keeps absolute paths); move "
                       "it back or train again")
    model_dir = path / "model"
    if not (model_dir / _MANIFEST).exists():
        raise LabError(f"run {run_id} has no model (no model/{_MANIFEST} in {path}); give the id "
                       "of a `lab train` run")
    manifest = json.loads((model_dir / _MANIFEST).read_text())
    try:
        det = DETECTORS[manifest["detector"]].load(model_dir)
    except (KeyError, ValueError) as exc:
        raise LabError(f"run {run_id}'s model cannot be loaded: {exc}") from None
    return det, manifest


def night_episodes(scores: pd.DataFrame, night: str, gap_s: float = EPISODE_GAP_S
                   ) -> pd.DataFrame:
    """Alarm episodes of a night's scores: runs of predictions, merged across short gaps.

    Returns
    -------
    DataFrame
        ``night``, ``start``, ``end``, ``peak`` (highest score), ``channels``
        (the top channels at the peak, comma-separated), sorted by ``peak``,
        highest first.
    """
    on = scores["prediction"].to_numpy()
    cols = ["night", "start", "end", "peak", "channels"]
    if not on.any():
        return pd.DataFrame(columns=cols)
    t = scores.index
    idx = np.flatnonzero(on)
    secs = (t[idx] - t[0]).total_seconds().to_numpy()
    breaks = np.flatnonzero(np.diff(secs) > gap_s)
    rows = []
    for a, b in zip(np.r_[0, breaks + 1], np.r_[breaks, len(idx) - 1], strict=True):
        span = scores.iloc[idx[a]: idx[b] + 1]
        peak = span["score"].idxmax()
        top = [span.at[peak, f"top{i + 1}"] for i in range(TOP_CHANNELS)
               if f"top{i + 1}" in span]
        rows.append({"night": night, "start": t[idx[a]], "end": t[idx[b]],
                     "peak": float(span["score"].max()),
                     "channels": ",".join(dict.fromkeys(x for x in top if x))})
    return pd.DataFrame(rows, columns=cols).sort_values("peak", ascending=False,
                                                        ignore_index=True)


def _score_and_top(det, X: pd.DataFrame) -> tuple[pd.Series, pd.DataFrame]:
    """The score of each row and the ``TOP_CHANNELS`` channels contributing most to it.

    A detector with ``contributions`` (per-column scores whose row maximum is
    the score) is run once; any other gives its score and no channels.
    """
    if not hasattr(det, "contributions"):
        return det.score(X), pd.DataFrame(index=X.index)
    contrib = det.contributions(X)
    score = contrib.max(axis=1).rename("score")
    by_channel = contrib.T.groupby([feature_channel(c) for c in contrib.columns]).max().T
    names = np.asarray(by_channel.columns)
    order = np.argsort(-by_channel.to_numpy(), axis=1, kind="stable")[:, :TOP_CHANNELS]
    top = pd.DataFrame({f"top{i + 1}": pd.Categorical(names[order[:, i]], categories=names)
                        for i in range(order.shape[1])}, index=X.index)
    return score, top


def predict(run_id: str, staged: str | os.PathLike, output: str | os.PathLike, *,
            pattern: str = "*", runs_dir: str | os.PathLike | None = None,
            progress: bool = False) -> tuple[str, pd.DataFrame]:
    """Score the staged nights matching ``pattern`` with the model of training run ``run_id``.

    Parameters
    ----------
    run_id : str
        MLflow run id of a :func:`train` run.
    staged : str or path-like
    output : str or path-like
        Folder for ``night=<id>/scores.parquet`` and ``episodes.parquet``.
    pattern : str, default "*"
        Shell pattern of night ids (``202012*``).
    runs_dir : str or path-like, optional
        Runs directory of the MLflow store.
    progress : bool, default False

    Returns
    -------
    (str, DataFrame)
        The prediction run's id and every night's episodes, highest first.

    Raises
    ------
    lab.runner.LabError
        On a pattern matching no night, an unknown run, a run without a
        model, or a night without a channel the model needs.
    """
    from mlflow.entities import Metric, Param
    from tqdm.auto import tqdm

    det, manifest = load_model(run_id, runs_dir)
    nights = list_nights(staged, pattern)
    need = manifest["channels"]
    for n in nights:
        have = night_channels(staged, n)
        missing = [c for c in need if c not in have]
        if missing == need:
            raise LabError(f"model run {run_id} was trained on channels {need}; night {n} in "
                           f"{staged} holds {have}: train a model on these nights' channels")
        if missing:
            raise LabError(f"night {n} in {staged} has no channel {missing}, which model run "
                           f"{run_id} needs; stage files with it or train with --channels "
                           f"{','.join(c for c in need if c in have)}")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    episodes = []
    for n in tqdm(nights, desc="scoring nights", unit="night", disable=not progress):
        X = night_features(staged, n, need)[manifest["features"]]
        score, top = _score_and_top(det, X)
        frame = pd.DataFrame({"score": score.astype(np.float32),
                              "threshold": np.float32(det.threshold_),
                              "prediction": score.to_numpy() > det.threshold_}, index=X.index)
        frame = frame.join(top)
        ndir = out / f"night={n}"
        ndir.mkdir(exist_ok=True)
        _write_parquet(frame, ndir / "scores.parquet")
        episodes.append(night_episodes(frame, n))
    table = pd.concat(episodes, ignore_index=True) if episodes else pd.DataFrame()
    table = table.sort_values("peak", ascending=False, ignore_index=True)
    _write_parquet(table, out / "episodes.parquet")
    seconds = time.perf_counter() - t0
    client, root = _client(runs_dir)
    exp_id = _experiment(client, root, DEFAULT_EXPERIMENT)
    run = client.create_run(exp_id, run_name=f"predict-{pattern}", tags={
        _KIND_TAG: "predict", "lab.model_run_id": run_id,
        "lab.staged": str(Path(staged).absolute()), "lab.output": str(out.absolute())})
    now = int(time.time() * 1000)
    client.log_batch(run.info.run_id, params=[Param("pattern", pattern),
                                              Param("model_run_id", run_id)],
                     metrics=[Metric("n_nights", len(nights), now, 0),
                              Metric("n_episodes", len(table), now, 0),
                              Metric("predict_seconds", seconds, now, 0)])
    meta = {"prediction_run_id": run.info.run_id, "model_run_id": run_id, "nights": nights,
            "staged": str(Path(staged).absolute())}
    tmp = out / ".prediction.json.tmp"
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, out / "prediction.json")
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id, table


def read_scores(output: str | os.PathLike, night: str) -> pd.DataFrame:
    """A night's scores written by :func:`predict`."""
    return pd.read_parquet(Path(output) / f"night={night}" / "scores.parquet")


def labelled_scores(output: str | os.PathLike, nights: list[str],
                    truth: pd.DataFrame) -> pd.DataFrame:
    """The nights' scores with the truth per row, for row-level metrics such as VUS-PR.

    Returns
    -------
    DataFrame
        ``night``, ``score``, ``prediction``, ``label`` (1 inside an injected
        fault) and ``physiology`` (True inside a scored apnea or hypopnea,
        rows that row-level metrics should leave out), on each night's time
        index.
    """
    parts = []
    for n in nights:
        s = read_scores(output, n)[["score", "prediction"]]
        t = s.index
        label = np.zeros(len(t), dtype=np.int64)
        physiology = np.zeros(len(t), dtype=bool)
        for ev in truth[truth["night"] == n].itertuples(index=False):
            inside = np.asarray((t >= ev.start) & (t <= ev.end))
            if ev.fault:
                label |= inside
            else:
                physiology |= inside
        parts.append(s.assign(night=n, label=label, physiology=physiology & (label == 0)))
    return pd.concat(parts)


def compare_detectors(staged: str | os.PathLike, train_nights: list[str],
                      test_nights: list[str], detectors: dict[str, dict[str, Any]],
                      truth: pd.DataFrame) -> pd.DataFrame:
    """Fit each detector on the training nights' model frames and judge it on the test nights.

    The same frames, the same evaluation (:func:`lab.evaluation.evaluate_nights`,
    and VUS-PR on the rows outside scored events) for every detector, in
    this process (no MLflow run): what notebook 06 uses to pick
    :data:`DEFAULT_DETECTOR`.

    Returns
    -------
    DataFrame
        One row per detector: ``recall``, ``false_per_night``, ``precision``,
        ``vus_pr``, ``seconds`` (fit and score) and ``error`` (why a detector
        could not fit, its figures then NaN), best recall first.
    """
    from lab.benchmark_metrics import vus_pr
    from lab.evaluation import evaluate_nights
    from lab.models import get_detector

    train_x = pd.concat([night_features(staged, n) for n in train_nights])
    test_x = {n: night_features(staged, n) for n in test_nights}
    rows = []
    for name, params in detectors.items():
        t0 = time.perf_counter()
        try:
            det = get_detector(name, **params).fit(train_x)
        except ValueError as exc:  # e.g. SPOT on too little data: say so, go on
            rows.append({"detector": name, "error": str(exc).splitlines()[0]})
            continue
        scores = {n: det.score(x) for n, x in test_x.items()}
        seconds = time.perf_counter() - t0
        ev = evaluate_nights({n: s > det.threshold_ for n, s in scores.items()}, truth)
        labels, flat, keep = [], [], []
        for n, s in scores.items():
            t = s.index
            label = np.zeros(len(t), dtype=bool)
            other = np.zeros(len(t), dtype=bool)
            for e in truth[truth["night"] == n].itertuples(index=False):
                inside = np.asarray((t >= e.start) & (t <= e.end))
                if e.fault:
                    label |= inside
                else:
                    other |= inside
            keep.append(~other | label)
            labels.append(label)
            flat.append(s.to_numpy())
        keep_all = np.concatenate(keep)
        vus = vus_pr(np.concatenate(labels)[keep_all].astype(int),
                     np.concatenate(flat)[keep_all])
        rows.append({"detector": name, "recall": ev["recall"],
                     "false_per_night": ev["false_per_night"], "precision": ev["precision"],
                     "vus_pr": vus, "seconds": seconds, "error": ""})
    columns = ["detector", "recall", "false_per_night", "precision", "vus_pr", "seconds", "error"]
    return pd.DataFrame(rows, columns=columns).sort_values(["recall", "false_per_night"],
                                          ascending=[False, True], ignore_index=True)


def prediction_runs(runs_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Prediction runs of the store: ``run_id``, ``model_run_id``, ``output``, ``staged``, ``start``."""
    client, _ = _client(runs_dir)
    exp = client.get_experiment_by_name(DEFAULT_EXPERIMENT)
    rows = []
    if exp is not None:
        for r in client.search_runs([exp.experiment_id], f"tags.`{_KIND_TAG}` = 'predict'",
                                    order_by=["attributes.start_time DESC"]):
            rows.append({"run_id": r.info.run_id, "model_run_id": r.data.tags.get(
                "lab.model_run_id"), "output": r.data.tags.get("lab.output"),
                "staged": r.data.tags.get("lab.staged"),
                "start": pd.Timestamp(r.info.start_time, unit="ms")})
    return pd.DataFrame(rows, columns=["run_id", "model_run_id", "output", "staged", "start"])
