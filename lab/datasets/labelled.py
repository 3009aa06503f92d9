"""Labelled anomaly benchmarks (NAB, SKAB, the UCR anomaly archive) and UCR classification data.

Every anomaly loader returns the same form, a dict ``{series name: frame}``
in name order, where each frame holds

- the signal columns, then the label columns: ``anomaly`` (``int8``, 1 on the
  rows of a labelled anomaly) always, and ``changepoint`` where the data set
  labels change points (SKAB);
- an index of time stamps (``timestamp``; a ``RangeIndex`` where the data
  has only positions);
- ``attrs``: ``dataset``, ``name``, ``group`` (NAB category or SKAB folder),
  ``label_columns``, ``windows`` (the labelled anomalies as inclusive
  ``(start, end)`` index values, the form :func:`lab.metrics.nab_score`
  takes), ``train_rows`` (the leading rows a batch detector may be fitted on
  without looking ahead) and ``source`` (the file read).

:func:`split_labels` separates signals and labels. Nothing here downloads:
the data is found in ``root``, then ``$LAB_DATA/<name>``, then
``data/<name>`` in the project, then ``../shared/data/<name>`` beside it;
``lab data get NAME`` fetches a missing data set into ``data/``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from lab import config
from lab._validation import _check_option

__all__ = ["load_nab", "load_nab_results", "load_skab", "load_ucr_anomaly", "load_ucr", "split_labels",
           "find_data", "DataNotFoundError", "NAB_CATEGORIES", "SKAB_GROUPS", "UCR_DATASETS"]

#: NAB's seven categories (``data/<category>/*.csv``).
NAB_CATEGORIES = ("artificialNoAnomaly", "artificialWithAnomaly", "realAWSCloudwatch",
                  "realAdExchange", "realKnownCause", "realTraffic", "realTweets")
#: SKAB's experiment folders (``data/<group>/*.csv``), anomaly-free run excluded.
SKAB_GROUPS = ("valve1", "valve2", "other")
#: UCR classification data sets the lab reads (``<name>_{TRAIN,TEST}.tsv``).
UCR_DATASETS = ("GunPoint", "ItalyPowerDemand")
#: NAB's probationary period: 15% of a series, at most 750 rows (0.15 x 5000).
NAB_TRAIN_SHARE, NAB_TRAIN_MAX = 0.15, 750
#: SKAB's protocol: the first 400 rows of each experiment train (they hold no anomaly).
SKAB_TRAIN_ROWS = 400

# files (relative to the data set's folder) whose presence marks a usable copy
_MARKERS = {
    "nab": ("labels/combined_windows.json", "data"),
    "skab": ("data/valve1", "data/valve2", "data/other"),
    "ucr_anomaly": (),
    "ucr": (),
}


class DataNotFoundError(FileNotFoundError):
    """A data set that is in none of the places the lab looks."""


def _candidates(name: str, root) -> list[tuple[str, Path]]:
    places = []
    if root is not None:
        places.append(("root", Path(root)))
    if os.environ.get("LAB_DATA"):
        places.append(("$LAB_DATA", Path(os.environ["LAB_DATA"]) / name))
    places.append(("data/", config.REPO_ROOT / "data" / name))
    places.append(("../shared/data", config.REPO_ROOT.parent / "shared" / "data" / name))
    return places


def _missing(path: Path, name: str) -> list[str]:
    if not path.is_dir():
        return [str(path)]
    return [str(path / m) for m in _MARKERS[name] if not (path / m).exists()]


def find_data(name: str, root=None) -> Path:
    """The folder of a data set, from the places the lab looks in.

    Parameters
    ----------
    name : {"nab", "skab", "ucr_anomaly", "ucr"}
        The data set.
    root : str or Path, optional
        Its folder. When given, it must hold the data set: the lab does not
        fall back to another copy behind an explicit path.

    Returns
    -------
    Path
        ``root``, else the first of ``$LAB_DATA/<name>``, the project's
        ``data/<name>`` and ``../shared/data/<name>`` that holds the data set.

    Raises
    ------
    DataNotFoundError
        If ``root`` lacks the data set's files (they are named), or no place
        holds it (the places are named, with the command that downloads it).

    Examples
    --------
    >>> import tempfile
    >>> find_data("nab", root=tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lab.datasets.labelled.DataNotFoundError: nab: root=... lacks ...labels/combined_windows.json...
    """
    _check_option(name, "name", tuple(_MARKERS))
    if root is not None:
        missing = _missing(Path(root), name)
        if missing:
            raise DataNotFoundError(f"{name}: root={str(root)!r} lacks {', '.join(missing)}")
        return Path(root)
    looked = []
    for label, path in _candidates(name, None):
        if not _missing(path, name):
            return path
        looked.append(f"{path} ({label})")
    # `lab data get` fetches the anomaly benchmarks; the UCR classification files come from
    # the UCR archive's own site (its zip is password-protected), so they are fetched by hand
    get = (f"Download it with `lab data get {name}`" if name != "ucr" else
           "Put GunPoint_{TRAIN,TEST}.tsv and ItalyPowerDemand_{TRAIN,TEST}.tsv from the UCR "
           "archive (www.cs.ucr.edu/~eamonn/time_series_data_2018) in data/ucr")
    raise DataNotFoundError(
        f"{name} data not found; looked in {', '.join(looked)}. {get}, or pass root= (or set "
        f"LAB_DATA) to a folder holding it")


def split_labels(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a loaded frame into its signal columns and its label columns.

    Parameters
    ----------
    frame : DataFrame
        A frame from :func:`load_nab`, :func:`load_skab` or
        :func:`load_ucr_anomaly` (its ``attrs["label_columns"]`` names the
        labels).

    Returns
    -------
    signals, labels : DataFrame
        Both on the frame's index; ``attrs`` are kept on both.

    Raises
    ------
    ValueError
        If the frame does not name its label columns, or lacks one of them.

    Examples
    --------
    >>> import pandas as pd
    >>> f = pd.DataFrame({"value": [1.0, 9.0], "anomaly": [0, 1]})
    >>> f.attrs["label_columns"] = ("anomaly",)
    >>> signals, labels = split_labels(f)
    >>> list(signals), labels["anomaly"].tolist()
    (['value'], [0, 1])
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"frame must be a DataFrame from a lab loader, got "
                         f"{type(frame).__name__}")
    label_columns = frame.attrs.get("label_columns")
    if not label_columns:
        raise ValueError("frame has no attrs['label_columns']: it does not come from a lab "
                         "loader (load_nab, load_skab, load_ucr_anomaly)")
    missing = [c for c in label_columns if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks its label columns {missing}; columns are "
                         f"{list(frame.columns)}")
    signals = frame.drop(columns=list(label_columns))
    labels = frame[list(label_columns)]
    signals.attrs = dict(frame.attrs)
    labels.attrs = dict(frame.attrs)
    return signals, labels


def _runs(flags: np.ndarray, index: pd.Index) -> list[tuple]:
    """Inclusive (start, end) index values of each run of ones."""
    padded = np.r_[0, flags.astype(np.int8), 0]
    edges = np.flatnonzero(np.diff(padded))
    return [(index[a], index[b - 1]) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _frame(values: pd.DataFrame, labels: dict[str, np.ndarray], **attrs) -> pd.DataFrame:
    frame = values.copy()
    for column, flags in labels.items():
        frame[column] = flags.astype(np.int8)
    frame.attrs.update(attrs, label_columns=tuple(labels))
    return frame


def load_nab(root=None, category: str | None = None) -> dict[str, pd.DataFrame]:
    """The Numenta Anomaly Benchmark: 58 univariate series with their anomaly windows.

    Parameters
    ----------
    root : str or Path, optional
        NAB's folder (``data/<category>/<name>.csv`` and
        ``labels/combined_windows.json``); found as :func:`find_data` says
        when not given.
    category : str, optional
        One of :data:`NAB_CATEGORIES`; all of them by default.

    Returns
    -------
    dict of str to DataFrame
        ``{"<category>/<name>": frame}``: a ``value`` column and the
        ``anomaly`` label (1 inside a labelled window), indexed by
        ``timestamp`` as in the file (NAB's own series repeat a few stamps,
        and one is out of order: rows are kept as NAB scores them).
        ``attrs["windows"]`` holds NAB's windows, and ``attrs["train_rows"]``
        the probationary period, ``min(floor(0.15 n), 750)`` rows, which NAB
        does not score and on which a batch detector may be fitted.

    Raises
    ------
    DataNotFoundError
        If the data is in none of the places looked in.
    ValueError
        On an unknown category, or a labelled file that is missing.

    Notes
    -----
    Lavin & Ahmad, "Evaluating Real-time Anomaly Detection Algorithms - the
    Numenta Anomaly Benchmark", ICMLA 2015 (data v1.1, MIT licence). A label
    is 1 on the rows that :func:`lab.metrics.nab_score` counts as inside a
    window.

    Examples
    --------
    >>> from lab.datasets import load_nab
    >>> try:
    ...     nab = load_nab(category="realKnownCause")
    ... except FileNotFoundError:
    ...     nab = None                      # the data is not on this machine
    >>> nab is None or nab["realKnownCause/nyc_taxi"].attrs["train_rows"] == 750
    True
    """
    from lab.benchmark_metrics import window_rows

    path = find_data("nab", root)
    if category is not None:
        _check_option(category, "category", NAB_CATEGORIES)
    windows = json.loads((path / "labels" / "combined_windows.json").read_text())
    out = {}
    for key in sorted(windows):
        group, file = key.split("/", 1)
        if category is not None and group != category:
            continue
        csv = path / "data" / key
        if not csv.is_file():
            raise ValueError(f"NAB at {path}: {csv} is labelled in "
                             "labels/combined_windows.json but missing")
        raw = pd.read_csv(csv)
        index = pd.DatetimeIndex(pd.to_datetime(raw["timestamp"]), name="timestamp")
        values = pd.DataFrame({"value": raw["value"].to_numpy(np.float64)}, index=index)
        pairs = [(pd.Timestamp(a), pd.Timestamp(b)) for a, b in windows[key]]
        flags = np.zeros(len(values), dtype=bool)
        for lo, hi in window_rows(pairs, index):
            flags[lo:hi + 1] = True
        n = len(values)
        name = f"{group}/{file.removesuffix('.csv')}"
        out[name] = _frame(values, {"anomaly": flags}, dataset="nab", name=name, group=group,
                           windows=pairs, source=str(csv),
                           train_rows=int(min(math.floor(NAB_TRAIN_SHARE * n), NAB_TRAIN_MAX)))
    return out


def load_nab_results(detector: str, root=None) -> tuple[dict[str, pd.Series], dict[str, list]]:
    """A published NAB entry's anomaly scores (``results/<detector>/``), with NAB's windows.

    Parameters
    ----------
    detector : str
        A folder of NAB's ``results/`` (``numenta``, ``windowedGaussian``, ...).
    root : str or Path, optional
        NAB's folder; found as :func:`find_data` says when not given.

    Returns
    -------
    scores : dict of str to Series
        ``anomaly_score`` of every series, indexed by ``timestamp``, keyed as
        in ``labels/combined_windows.json`` (``"<category>/<name>.csv"``).
    windows : dict of str to list
        ``labels/combined_windows.json`` as NAB ships it, the windows
        :func:`lab.metrics.nab_score` judges those scores by.

    Raises
    ------
    DataNotFoundError
        If NAB is in none of the places looked in.
    ValueError
        If NAB there has no ``results/<detector>`` folder (the folders it
        has are named), or a labelled series has no result file.

    Examples
    --------
    >>> from lab.datasets import load_nab_results
    >>> try:
    ...     scores, windows = load_nab_results("windowedGaussian")
    ... except (FileNotFoundError, ValueError):
    ...     scores = windows = None           # NAB or its results are not on this machine
    >>> scores is None or sorted(scores) == sorted(windows)
    True
    """
    path = find_data("nab", root)
    folder = path / "results" / str(detector)
    if not folder.is_dir():
        have = sorted(p.name for p in (path / "results").iterdir() if p.is_dir()) \
            if (path / "results").is_dir() else []
        raise ValueError(f"detector {detector!r}: NAB at {path} has no results/{detector} "
                         f"folder; it has {have or 'no results/ folder'}")
    windows = json.loads((path / "labels" / "combined_windows.json").read_text())
    scores = {}
    for key in windows:
        category, name = key.split("/")
        csv = folder / category / f"{detector}_{name}"
        if not csv.is_file():
            raise ValueError(f"detector {detector!r}: {csv} is missing (the series {key!r} "
                             "is labelled in labels/combined_windows.json)")
        scores[key] = pd.read_csv(csv, index_col="timestamp", parse_dates=True)["anomaly_score"]
    return scores, windows


def load_skab(root=None) -> dict[str, pd.DataFrame]:
    """The Skoltech Anomaly Benchmark v0.9: 34 multivariate experiments.

    Parameters
    ----------
    root : str or Path, optional
        SKAB's folder (``data/{valve1,valve2,other}/*.csv``, ``;``-separated);
        found as :func:`find_data` says when not given.

    Returns
    -------
    dict of str to DataFrame
        ``{"<group>/<n>": frame}`` in experiment order (``valve1/0`` ..
        ``other/14``): the 8 sensor columns, then ``anomaly`` and
        ``changepoint`` (0/1), indexed by ``timestamp`` at one row a second.
        ``attrs["train_rows"]`` is 400 (SKAB's protocol) and
        ``attrs["windows"]`` the anomalous runs. The protocol assumes the
        training rows normal; in ``other/2`` 296 of them are labelled
        anomalous (as in SKAB's files; kept as they are).

    Raises
    ------
    DataNotFoundError
        If the data is in none of the places looked in.
    ValueError
        If a file lacks the ``anomaly`` or ``changepoint`` column.

    Notes
    -----
    Katser & Kozitsin, "Skoltech Anomaly Benchmark (SKAB)", Kaggle 2020,
    DOI 10.34740/KAGGLE/DSV/1693952 (GPL-3.0 data, read in place).

    Examples
    --------
    >>> from lab.datasets import load_skab
    >>> try:
    ...     skab = load_skab()
    ... except FileNotFoundError:
    ...     skab = None                     # the data is not on this machine
    >>> skab is None or (len(skab), skab["valve1/0"].shape[1]) == (34, 10)
    True
    """
    path = find_data("skab", root)
    out = {}
    for group in SKAB_GROUPS:
        files = sorted((path / "data" / group).glob("*.csv"), key=lambda p: int(p.stem)
                       if p.stem.isdigit() else p.stem)
        for csv in files:
            raw = pd.read_csv(csv, sep=";")
            missing = [c for c in ("datetime", "anomaly", "changepoint") if c not in raw]
            if missing:
                raise ValueError(f"SKAB file {csv} lacks the column(s) {missing}")
            index = pd.DatetimeIndex(pd.to_datetime(raw.pop("datetime")), name="timestamp")
            anomaly = raw.pop("anomaly").to_numpy() > 0
            changepoint = raw.pop("changepoint").to_numpy() > 0
            values = raw.astype(np.float64).set_axis(index)
            name = f"{group}/{csv.stem}"
            out[name] = _frame(values, {"anomaly": anomaly, "changepoint": changepoint},
                               dataset="skab", name=name, group=group, source=str(csv),
                               windows=_runs(anomaly, index), train_rows=SKAB_TRAIN_ROWS)
    return out


def load_ucr_anomaly(root=None) -> dict[str, pd.DataFrame]:
    """The series of the UCR anomaly archive (KDD Cup 2021) that are present.

    Parameters
    ----------
    root : str or Path, optional
        The folder of ``<id>_UCR_Anomaly_<name>_{TRAIN,TEST}.csv`` files
        (``timestamp,value,is_anomaly``); found as :func:`find_data` says.

    Returns
    -------
    dict of str to DataFrame
        ``{"<id>_<name>": frame}``: the whole series (the TEST file) with a
        ``value`` column and the ``anomaly`` label on a ``RangeIndex``;
        ``attrs["train_rows"]`` is the length of the TRAIN file, its normal
        head.

    Raises
    ------
    DataNotFoundError
        If the data is in none of the places looked in.
    ValueError
        If a TEST file has no TRAIN file beside it, or no labelled anomaly.

    Notes
    -----
    Wu & Keogh, "Current Time Series Anomaly Detection Benchmarks are Flawed
    and are Creating the Illusion of Progress", IEEE TKDE 2021. Score a
    series with :func:`lab.metrics.ucr_hit`.

    Examples
    --------
    >>> from lab.datasets import load_ucr_anomaly
    >>> try:
    ...     ucr = load_ucr_anomaly()
    ... except FileNotFoundError:
    ...     ucr = {}                        # the data is not on this machine
    >>> all(f["anomaly"].sum() > 0 for f in ucr.values())
    True
    """
    path = find_data("ucr_anomaly", root)
    out = {}
    tests = sorted(path.glob("*_UCR_Anomaly_*_TEST.csv"))
    if not tests:
        raise DataNotFoundError(f"ucr_anomaly: {path} holds no *_UCR_Anomaly_*_TEST.csv file")
    for test in tests:
        train = test.with_name(test.name.replace("_TEST.csv", "_TRAIN.csv"))
        if not train.is_file():
            raise ValueError(f"UCR anomaly file {test} has no {train.name} beside it")
        raw = pd.read_csv(test)
        flags = raw["is_anomaly"].to_numpy() > 0
        if not flags.any():
            raise ValueError(f"UCR anomaly file {test} labels no anomaly")
        ident, _, rest = test.stem.partition("_UCR_Anomaly_")
        name = f"{ident}_{rest.removesuffix('_TEST')}"
        values = pd.DataFrame({"value": raw["value"].to_numpy(np.float64)},
                              index=pd.RangeIndex(len(raw), name="timestamp"))
        n_train = sum(1 for _ in train.open()) - 1
        out[name] = _frame(values, {"anomaly": flags}, dataset="ucr_anomaly", name=name,
                           group="ucr_anomaly", source=str(test), train_rows=n_train,
                           windows=_runs(flags, values.index))
    return out


def load_ucr(name: str, root=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A UCR classification data set with the archive's standard split.

    Parameters
    ----------
    name : {"GunPoint", "ItalyPowerDemand"}
        The data set (:data:`UCR_DATASETS`).
    root : str or Path, optional
        The folder of ``<name>_{TRAIN,TEST}.tsv`` (label first, then the
        values, tab-separated); found as :func:`find_data` says.

    Returns
    -------
    X_train, X_test : ndarray of shape (n, length, 1)
        The series, in the ``(n_items, T, n_features)`` form of the chunk
        classifiers.
    y_train, y_test : ndarray of int
        The class labels as the archive gives them.

    Raises
    ------
    DataNotFoundError
        If the data is in none of the places looked in, or the files are missing.
    ValueError
        On an unknown name.

    Notes
    -----
    Dau et al., "The UCR Time Series Archive", IEEE/CAA J. Autom. Sinica 2019.

    Examples
    --------
    >>> from lab.datasets import load_ucr
    >>> try:
    ...     X_train, X_test, y_train, y_test = load_ucr("GunPoint")
    ... except FileNotFoundError:
    ...     X_train = None                  # the data is not on this machine
    >>> X_train is None or X_train.shape == (50, 150, 1)
    True
    """
    _check_option(name, "name", UCR_DATASETS)
    path = find_data("ucr", root)
    parts = []
    for split in ("TRAIN", "TEST"):
        file = path / f"{name}_{split}.tsv"
        if not file.is_file():
            raise DataNotFoundError(f"ucr: {path} lacks {file.name}")
        data = np.loadtxt(file, delimiter="\t", dtype=np.float64, ndmin=2)
        parts.append((data[:, 1:, None], data[:, 0].astype(np.int64)))
    (X_train, y_train), (X_test, y_test) = parts
    return X_train, X_test, y_train, y_test
