"""Judging a stream: NAB scores with the corpus threshold, and detection delays.

The scores of an online detector are the same whether the points came
through Kafka or from :meth:`update` in process (the tests check it), so the
judging here takes scores, wherever they came from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from lab.benchmark_metrics import NAB_PROFILES, nab_threshold, window_rows

__all__ = ["stream_timestamps", "score_frames", "detection_delays", "nab_stream_report",
           "onset_grid", "NAB_PUBLISHED"]

#: NAB v1.1 scoreboard, standard profile (github.com/numenta/NAB, README, 2019).
NAB_PUBLISHED = {"Numenta HTM": 70.5, "KNN CAD": 58.0, "Relative Entropy": 54.6,
                 "Twitter ADVec": 47.1, "Windowed Gaussian": 39.6, "Etsy Skyline": 35.7,
                 "Bayes Changepoint": 17.7, "Random": 11.0, "Null": 0.0}
#: Points per :meth:`update` call in :func:`score_frames` (a Kafka message's worth).
SCORE_BATCH = 1000


def stream_timestamps(index: pd.DatetimeIndex) -> np.ndarray:
    """Stream timestamps (int64 ns) for a series' rows: strictly increasing, order kept.

    A few NAB series repeat a timestamp (and one steps back once). A stream
    rejects a point not after the last one, so a repeated stamp is moved
    forward by nanoseconds: ``t'[i] = max(t[i], t'[i-1] + 1)``. Rows stay in
    file order, which is how NAB scores them, and map back by position.

    Examples
    --------
    >>> idx = pd.DatetimeIndex(["2024-01-01", "2024-01-01", "2024-01-02"])
    >>> (stream_timestamps(idx) - idx.as_unit("ns").asi8[0]).tolist()
    [0, 1, 86400000000000]
    """
    ts = pd.DatetimeIndex(index).as_unit("ns").asi8.copy()
    if len(ts) > 1 and (np.diff(ts) <= 0).any():
        for i in range(1, len(ts)):
            if ts[i] <= ts[i - 1]:
                ts[i] = ts[i - 1] + 1
    return ts


def score_frames(frames: Mapping[str, pd.DataFrame], make_detector: Callable[[], Any],
                 column: str = "value", batch: int = SCORE_BATCH) -> dict[str, pd.Series]:
    """Score each series in process, ``batch`` points per :meth:`update`, as a stream would.

    Returns
    -------
    dict of str to Series
        The scores, on each frame's own index.

    Examples
    --------
    >>> from lab.stream import RollingZScore
    >>> t = pd.date_range("2024-01-01", periods=5, freq="min")
    >>> s = score_frames({"a": pd.DataFrame({"value": [1.0, 2, 1, 2, 9]}, index=t)},
    ...                  lambda: RollingZScore(window=4))
    >>> float(s["a"].iloc[-1])
    15.0
    """
    out = {}
    for key, frame in frames.items():
        values = frame[column].to_numpy(dtype=np.float64)
        det = make_detector()
        scores = np.concatenate([det.update(values[i:i + batch])
                                 for i in range(0, len(values), batch)] or [np.empty(0)])
        out[key] = pd.Series(scores, index=frame.index, name="score")
    return out


def detection_delays(detections: Mapping[str, pd.Series], windows: Mapping[str, list]
                     ) -> pd.DataFrame:
    """The first alert inside each labelled window, and how long after the window opened.

    Returns
    -------
    DataFrame
        One row per window: ``series``, ``start`` (window start),
        ``detected`` (the time of the first alert in the window, NaT if
        none), ``delay_points`` (rows from the start) and ``delay_seconds``.

    Examples
    --------
    >>> t = pd.date_range("2024-01-01", periods=10, freq="min")
    >>> d = pd.Series([False] * 6 + [True] * 4, index=t)
    >>> detection_delays({"a": d}, {"a": [(t[4], t[8])]})[["delay_points", "delay_seconds"]]
       delay_points  delay_seconds
    0           2.0          120.0
    """
    rows = []
    for key, det in detections.items():
        flags = np.asarray(det, dtype=bool)
        index = det.index
        for lo, hi in window_rows(windows[key], index):
            hits = np.flatnonzero(flags[lo:hi + 1])
            row = {"series": key, "start": index[lo], "detected": pd.NaT,
                   "delay_points": np.nan, "delay_seconds": np.nan}
            if len(hits):
                i = lo + int(hits[0])
                row.update(detected=index[i], delay_points=float(hits[0]),
                           delay_seconds=float((index[i] - index[lo]).total_seconds()))
            rows.append(row)
    return pd.DataFrame(rows, columns=["series", "start", "detected", "delay_points",
                                       "delay_seconds"])


def nab_stream_report(scores: Mapping[str, Mapping[str, pd.Series]],
                      windows: Mapping[str, list], profiles=tuple(NAB_PROFILES)
                      ) -> dict[str, Any]:
    """NAB scores with NAB's corpus threshold optimisation, and median detection delays.

    Parameters
    ----------
    scores : dict
        ``{detector: {series: score Series}}``.
    windows : dict
        ``{series: [(start, end), ...]}`` as :func:`lab.benchmark_metrics.nab_score` takes.
    profiles : sequence of str

    Returns
    -------
    dict
        ``nab_scores`` (``{detector: {profile: score}}``), ``thresholds``
        (same shape), ``median_delay`` (``{detector: {"points", "seconds"}}``
        at the standard profile's threshold, over the windows detected; None
        when none is),
        ``detected`` (``{detector: share of windows detected}``) and
        ``delays`` (``{detector: DataFrame}`` of :func:`detection_delays`).
    """
    report: dict[str, Any] = {"nab_scores": {}, "thresholds": {}, "median_delay": {},
                              "detected": {}, "delays": {}}
    for name, per_series in scores.items():
        report["nab_scores"][name], report["thresholds"][name] = {}, {}
        for profile in profiles:
            threshold, value = nab_threshold(dict(per_series), dict(windows), profile)
            report["nab_scores"][name][profile] = round(float(value), 2)
            report["thresholds"][name][profile] = float(threshold)
        threshold = report["thresholds"][name].get("standard",
                                                   next(iter(report["thresholds"][name].values())))
        delays = detection_delays({k: s >= threshold for k, s in per_series.items()}, windows)
        report["delays"][name] = delays
        found = delays.dropna(subset=["delay_points"])
        report["detected"][name] = float(len(found) / len(delays)) if len(delays) else 0.0
        report["median_delay"][name] = {
            "points": float(found["delay_points"].median()) if len(found) else None,
            "seconds": float(found["delay_seconds"].median()) if len(found) else None}
    return report


def onset_grid(raw: Mapping[str, Mapping[str, pd.Series]], windows: Mapping[str, list],
               lengths, caps, profiles=tuple(NAB_PROFILES)) -> pd.DataFrame:
    """NAB scores of raw stream scores under every :class:`~lab.stream.Onset` setting of a grid.

    :class:`~lab.stream.Onset` reads only the scores of the detector it wraps,
    so the detectors run once and each ``(length, cap)`` reworks their scores.
    The result equals wrapping each detector in ``Onset(length, cap)`` and
    judging it with :func:`nab_stream_report` (the tests check it).

    Parameters
    ----------
    raw : dict
        ``{detector: {series: score Series}}``, the detectors' own scores
        (no :class:`~lab.stream.Onset`), as :func:`score_frames` gives them.
    windows : dict
        ``{series: [(start, end), ...]}``, the labelled windows.
    lengths : sequence of int
        Onset lengths to try (each at least 1).
    caps : sequence of float
        Caps to try (``math.inf`` for none).
    profiles : sequence of str
        NAB profiles to score.

    Returns
    -------
    DataFrame
        One row per ``(length, cap, detector)``, one column per profile:
        the NAB score with NAB's corpus threshold optimisation.

    Raises
    ------
    ValueError
        On an empty grid, a length below 1 or not an integer, or the errors of
        :func:`lab.benchmark_metrics.nab_threshold`.

    Examples
    --------
    >>> from lab.stream import RollingZScore
    >>> from lab.stream.pipeline import make_generated_corpus
    >>> frames = make_generated_corpus(2, 2000)
    >>> raw = {"zscore": score_frames(frames, lambda: RollingZScore(window=100))}
    >>> windows = {k: f.attrs["windows"] for k, f in frames.items()}
    >>> grid = onset_grid(raw, windows, lengths=[1, 200], caps=[5.0], profiles=["standard"])
    >>> grid.index.names, grid.shape
    (FrozenList(['length', 'cap', 'detector']), (2, 1))
    """
    from lab.stream.detectors import onset_filter

    lengths, caps = list(lengths), [float(c) for c in caps]
    bad = [n for n in lengths if isinstance(n, bool) or not isinstance(n, (int, np.integer))
           or n < 1]
    if bad:
        raise ValueError(f"lengths must be integers of at least 1; got {bad} among {lengths}")
    if not lengths or not caps:
        raise ValueError(f"onset_grid needs at least one length and one cap; got lengths "
                         f"{lengths} and caps {caps}")
    rows, index = [], []
    for length in lengths:
        for cap in caps:
            for name, per_series in raw.items():
                reworked = {key: onset_filter(s, length, cap) for key, s in per_series.items()}
                rows.append([round(float(nab_threshold(reworked, dict(windows), p)[1]), 2)
                             for p in profiles])
                index.append((length, cap, name))
    return pd.DataFrame(rows, columns=list(profiles),
                        index=pd.MultiIndex.from_tuples(index, names=["length", "cap", "detector"]))
