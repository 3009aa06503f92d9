"""Change-point leaderboards: every detector with its defaults on every TCPD series.

:func:`tcpd_leaderboard` runs each detector on each series of the Turing Change
Point Dataset (van den Burg and Williams 2020) as TCPDBench's "default"
experiment does: one fixed configuration, each series segmented on its own,
F1 and covering at a margin of 5 rows (:func:`lab.metrics.f1_margin`,
:func:`lab.metrics.covering`). :func:`leaderboard_summary` gives the means,
next to TCPDBench's published default scores of ``binseg``, ``bocpd`` and
``zero``, over all series and over the series each published method scored
(compare a method only where it has a score).

A detector without ``change_points`` (``ks_window``) gives one change per
alarm episode (rows with ``score > threshold_``): the episode's highest row
less the window it reads (:func:`alarm_change_points`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["DEFAULT_CP_DETECTORS", "alarm_change_points", "detect_change_points",
           "load_published_tcpd", "leaderboard_summary", "skab_changepoint_leaderboard",
           "skab_windows", "tcpd_leaderboard"]

#: TCPD's margin: a detection within 5 rows of an annotation counts.
CP_MARGIN = 5
#: Leaderboard rows: label -> (registered detector, settings). The presets
#: reproduce TCPDBench's default_binseg / default_pelt (bocpd's defaults are its preset).
DEFAULT_CP_DETECTORS: dict[str, tuple[str, dict]] = {
    "betsi": ("betsi", {"verbose": 0}),
    "binseg": ("binseg", {}),
    "pelt": ("pelt", {}),
    "bottomup": ("bottomup", {}),
    "window": ("window", {}),
    "bocpd": ("bocpd", {}),
    "ks_window": ("ks_window", {}),
    "binseg tcpd_default": ("binseg", {"preset": "tcpd_default"}),
    "pelt tcpd_default": ("pelt", {"preset": "tcpd_default"}),
}
#: Published TCPDBench methods shown beside the lab's.
PUBLISHED_METHODS = ("binseg", "bocpd", "zero")
PUBLISHED_FILE = "published_default_scores.json"
#: SKAB's change-point protocol: a NAB window this long to the right of each true change;
#: the first SKAB_TRAIN_ROWS rows of each experiment train, the rest are scored.
SKAB_WINDOW = pd.Timedelta(seconds=60)
SKAB_TRAIN_ROWS = 400
#: SKAB's published change-point NAB scores (standard / low FP / low FN), SKAB README.
SKAB_PUBLISHED = {"MSCRED": (32.42, 16.53, 40.28), "Isolation Forest": (26.16, 19.5, 30.82),
                  "T-squared+Q": (25.35, None, None), "Conv-AE": (23.61, None, None),
                  "Null": (0.0, 0.0, 0.0)}


def alarm_change_points(score: np.ndarray, threshold: float, lag: int = 0) -> np.ndarray:
    """One change per run of ``score > threshold``: its highest row less ``lag``.

    Parameters
    ----------
    score : ndarray of float
        A score placed at rows.
    threshold : float
    lag : int, default 0
        Rows between a change and the row where the score peaks (a trailing
        window of ``w`` rows peaks ``w - 1`` rows after the change).

    Returns
    -------
    ndarray of int
        Sorted, unique, clipped to ``[1, n - 1]``.

    Examples
    --------
    >>> alarm_change_points(np.array([0, 0, 3, 5, 1, 0, 4, 0.0]), 2.0, lag=1).tolist()
    [2, 5]
    """
    score = np.asarray(score, dtype=np.float64)
    on = np.r_[False, score > threshold, False]
    edges = np.flatnonzero(np.diff(on.astype(np.int8)))
    cps = [s + int(np.argmax(score[s:e])) - lag for s, e in zip(edges[::2], edges[1::2],
                                                               strict=True)]
    cps = np.clip(np.asarray(cps, dtype=np.intp), 1, max(len(score) - 1, 1))
    return np.unique(cps[cps < len(score)]) if len(score) > 1 else np.empty(0, np.intp)


def detect_change_points(detector: Any, X: Any, train: Any = None) -> np.ndarray:
    """Fit ``detector`` on ``train`` (``X`` if None) and return the rows where ``X`` changes.

    A :class:`lab.models.ChangePointDetector` gives ``change_points(X)``;
    any other detector gives :func:`alarm_change_points` of its score, with
    the lag of its window (``window_ - 1`` where it has one).

    Examples
    --------
    >>> from lab.models import get_detector
    >>> x = np.r_[np.zeros(60), np.full(60, 5.0)] + np.random.default_rng(0).normal(size=120)
    >>> detect_change_points(get_detector("binseg"), x).tolist()
    [60]
    """
    detector.fit(X if train is None else train)
    if hasattr(detector, "change_points"):
        return np.asarray(detector.change_points(X), dtype=np.intp)
    score = detector.score(X).to_numpy()
    lag = int(getattr(detector, "window_", 1)) - 1
    return alarm_change_points(score, detector.threshold_, lag)


def load_published_tcpd(root=None) -> dict:
    """TCPDBench's published default F1 and covering per series (``{"f1": ..., "cover": ...}``).

    Empty dicts when the file is absent.

    Examples
    --------
    >>> load_published_tcpd("/nonexistent")
    {'f1': {}, 'cover': {}}
    """
    from lab import config

    path = Path(config.TCPD_ROOT if root is None else root) / PUBLISHED_FILE
    if not path.is_file():
        return {"f1": {}, "cover": {}}
    data = json.loads(path.read_text())
    return {"f1": data.get("f1", {}), "cover": data.get("cover", {})}


def tcpd_leaderboard(root=None, detectors: Mapping[str, tuple[str, dict]] | None = None,
                     series: list[str] | None = None, *, margin: int = CP_MARGIN,
                     progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Every detector with its defaults on every TCPD series: F1, covering, time.

    Parameters
    ----------
    root : str or Path, optional
        TCPD folder; ``lab.config.TCPD_ROOT`` by default.
    detectors : dict, optional
        ``{label: (registered name, settings)}``; :data:`DEFAULT_CP_DETECTORS`
        by default.
    series : list of str, optional
        Only these series (all of them by default).
    margin : int, default 5
    progress : callable, optional
        Called with a line per series and detector.

    Returns
    -------
    DataFrame
        One row per (series, detector): ``series``, ``n``, ``detector``,
        ``f1``, ``cover``, ``n_cps``, ``cps`` (list), ``seconds`` (fit and
        detection), ``skipped`` (the error message where the detector refused
        the series, e.g. a ``tcpd_default`` preset on a bivariate series; its
        scores are NaN). The two missing values of ``uk_coal_employ`` are
        filled forward, then backward (:func:`lab.preprocessor.clean_metrics`).

    Examples
    --------
    >>> import json, pathlib, tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "annotations.json").write_text(json.dumps({"toy": {"1": [30]}}))
    >>> _ = (root / "toy.json").write_text(json.dumps({"n_obs": 60, "n_dim": 1,
    ...     "time": {"index": list(range(60))},
    ...     "series": [{"label": "x", "raw": [0.0] * 30 + [5.0] * 29 + [5.1]}]}))
    >>> board = tcpd_leaderboard(root, {"binseg": ("binseg", {})})
    >>> board[["series", "detector", "f1", "cps"]].to_dict("records")
    [{'series': 'toy', 'detector': 'binseg', 'f1': 1.0, 'cps': [30]}]
    """
    from lab.datasets import list_tcpd, load_tcpd
    from lab.metrics import covering, f1_margin
    from lab.models import get_detector
    from lab.preprocessor import clean_metrics

    detectors = DEFAULT_CP_DETECTORS if detectors is None else detectors
    names = list_tcpd(root) if series is None else list(series)
    rows = []
    for name in names:
        df, annotations = load_tcpd(name, root)
        if df.isna().any().any():
            df, _ = clean_metrics(df, warn=False)
        n = len(df)
        for label, (registered, settings) in detectors.items():
            det = get_detector(registered, **settings)
            t0 = time.perf_counter()
            try:
                cps = detect_change_points(det, df).tolist()
                skipped = ""
            except ValueError as exc:
                cps, skipped = [], str(exc)
            seconds = time.perf_counter() - t0
            f1 = np.nan if skipped else f1_margin(annotations, cps, n, margin)
            cover = np.nan if skipped else covering(annotations, cps, n)
            rows.append({"series": name, "n": n, "detector": label, "f1": f1, "cover": cover,
                         "n_cps": len(cps), "cps": cps, "seconds": seconds,
                         "skipped": skipped})
            if progress is not None:
                progress(f"{name} {label}: F1 {f1:.3f} cover {cover:.3f} ({seconds:.1f} s)"
                         + (f" skipped: {skipped}" if skipped else ""))
    return pd.DataFrame(rows)


def leaderboard_summary(board: pd.DataFrame, published: dict | None = None) -> pd.DataFrame:
    """Mean F1 and covering per detector: over all series, and where each published method scored.

    Parameters
    ----------
    board : DataFrame
        From :func:`tcpd_leaderboard`.
    published : dict, optional
        From :func:`load_published_tcpd`; its methods are added as rows
        ``published <method>``.

    Returns
    -------
    DataFrame
        Index: detector. Columns ``f1``, ``cover`` and ``series`` (means over
        the series the detector scored, and how many), ``seconds`` (mean per
        series), and for each published method ``m`` that scored fewer than
        all series, ``f1 on m``, ``cover on m`` and ``series on m`` (means
        over the series ``m`` scored where the detector scored them too, and
        how many), sorted by ``f1``.

    Examples
    --------
    >>> board = pd.DataFrame({"series": ["a", "b"], "detector": "x", "f1": [1.0, 0.5],
    ...                       "cover": [0.9, 0.7], "seconds": [0.1, 0.3]})
    >>> pub = {"f1": {"a": {"binseg": 0.8}, "b": {"binseg": None}},
    ...        "cover": {"a": {"binseg": 0.6}, "b": {"binseg": None}}}
    >>> leaderboard_summary(board, pub).round(2).to_dict("index")["x"]
    {'f1': 0.75, 'cover': 0.8, 'series': 2, 'seconds': 0.2, 'f1 on binseg': 1.0, 'cover on binseg': 0.9, 'series on binseg': 1}
    """
    wide = board.pivot(index="series", columns="detector", values=["f1", "cover"])
    seconds = board.groupby("detector")["seconds"].mean()
    f1, cover = wide["f1"].copy(), wide["cover"].copy()
    if published:
        for m in _published_methods(published):
            f1[f"published {m}"] = [_pub(published, "f1", s, m) for s in f1.index]
            cover[f"published {m}"] = [_pub(published, "cover", s, m) for s in cover.index]
    out = pd.DataFrame({"f1": f1.mean(), "cover": cover.mean(),
                        "series": f1.notna().sum().astype(int)})
    out["seconds"] = seconds.reindex(out.index)
    if published:
        for m in _published_methods(published):
            scored = f1[f"published {m}"].notna()
            if scored.all():
                continue
            out[f"f1 on {m}"] = f1[scored].mean()
            out[f"cover on {m}"] = cover[scored].mean()
            out[f"series on {m}"] = f1[scored].notna().sum().astype(int)
    out.index.name = "detector"
    return out.sort_values("f1", ascending=False)


def _published_methods(published: dict) -> list[str]:
    methods = {m for per in published.get("f1", {}).values() for m in per}
    return [m for m in PUBLISHED_METHODS if m in methods] + sorted(methods - set(PUBLISHED_METHODS))


def _pub(published: dict, metric: str, series: str, method: str) -> float:
    value = published.get(metric, {}).get(series, {}).get(method)
    return np.nan if value is None else float(value)


def skab_windows(frame: pd.DataFrame, width: pd.Timedelta = SKAB_WINDOW) -> list[tuple]:
    """NAB windows ``(t, t + width)`` to the right of each ``changepoint`` row, overlaps merged.

    Examples
    --------
    >>> idx = pd.date_range("2020-01-01", periods=200, freq="s")
    >>> f = pd.DataFrame({"changepoint": 0}, index=idx)
    >>> f.iloc[[10, 40, 150], 0] = 1
    >>> [(str(a.time()), str(b.time())) for a, b in skab_windows(f)]
    [('00:00:10', '00:01:40'), ('00:02:30', '00:03:19')]
    """
    starts = frame.index[frame["changepoint"].to_numpy() == 1]
    windows: list[list] = []
    for t in starts:
        end = min(t + width, frame.index[-1])
        if windows and t <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], end)
        else:
            windows.append([t, end])
    return [tuple(w) for w in windows]


def skab_changepoint_leaderboard(skab: Mapping[str, pd.DataFrame],
                                 detectors: Mapping[str, tuple[str, dict]] | None = None, *,
                                 progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Every change-point detector on SKAB's ``changepoint`` labels, scored by NAB.

    SKAB's protocol (Katser and Kozitsin 2020): per experiment the first 400
    rows train (the detector is fitted on them; a change-point detector
    learns nothing there) and the change points are found in the rest; NAB
    windows of 60 s to the right of each true change point
    (:func:`skab_windows`), the corpus scored by
    :func:`lab.benchmark_metrics.nab_score` with each profile.

    Returns
    -------
    DataFrame
        Index: detector. Columns ``standard``, ``reward_low_FP_rate``,
        ``reward_low_FN_rate`` (NAB scores, 0 for no detection, 100 for the
        perfect one), ``detections`` (total), ``seconds`` (total).

    Notes
    -----
    ``nab_score`` is NAB v1.1's scorer, with its probationary period (the
    first 15% of each scored stretch ignores detections); SKAB's own scorer
    has none, so the published figures (:data:`SKAB_PUBLISHED`) are a guide,
    not the same number.
    """
    from lab.benchmark_metrics import NAB_PROFILES, nab_score
    from lab.models import get_detector

    if detectors is None:
        detectors = {k: v for k, v in DEFAULT_CP_DETECTORS.items() if "tcpd_default" not in k}
    sensors = {name: f.drop(columns=["anomaly", "changepoint"]) for name, f in skab.items()}
    windows = {name: skab_windows(f.iloc[SKAB_TRAIN_ROWS:]) for name, f in skab.items()}
    rows = {}
    for label, (registered, settings) in detectors.items():
        detections, seconds, total = {}, 0.0, 0
        for name, frame in sensors.items():
            train, test = frame.iloc[:SKAB_TRAIN_ROWS], frame.iloc[SKAB_TRAIN_ROWS:]
            t0 = time.perf_counter()
            cps = detect_change_points(get_detector(registered, **settings), test, train)
            seconds += time.perf_counter() - t0
            flags = np.zeros(len(test), dtype=bool)
            flags[cps] = True
            detections[name] = pd.Series(flags, index=test.index)
            total += len(cps)
        rows[label] = {p: nab_score(detections, windows, p) for p in NAB_PROFILES}
        rows[label].update(detections=total, seconds=seconds)
        if progress is not None:
            progress(f"{label}: NAB standard {rows[label]['standard']:.2f} ({seconds:.0f} s)")
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "detector"
    return out.sort_values("standard", ascending=False)
