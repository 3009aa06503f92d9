"""Judging detectors against the truth: events, episodes, root causes and rankings.

Everything that scores a result lives here (and, for point and range
metrics, in :mod:`lab.metrics`), apart from the models, so that every
detector is judged by the same code:

* :func:`event_labels`, :func:`evaluate_events`, :func:`top_episodes`:
  event-level precision and recall of alarms, and the highest-scoring
  episodes of any score Series;
* :func:`evaluate_synthetic`: every metric of the MSCRED synthetic protocol
  for a fitted detector (any :class:`lab.models.BaseDetector`);
  :func:`root_cause_recall` for the detectors that rank root causes
  (``root_causes(df, at, k)``, which :class:`lab.models.mscred.MSCREDDetector`
  has);
* :func:`evaluate_ranking`, :func:`rank_scores`: how well a ranking of
  metrics finds the ones an incident changed
  (:func:`lab.datasets.make_server_metrics`).

Scores computed every few rows
------------------------------
A detector that computes its score every ``step`` rows (MSCRED) places each
value on the row that ends its window and carries it over the rows up to the
next one (:meth:`lab.models.BaseDetector.score`). Such a detector has
``scored_rows(X)``, the positions of the rows whose score it computed.
:func:`evaluate_synthetic` and :func:`root_cause_recall` judge the score at
those rows only: counting each carried copy as another sample would weigh a
value by the grid's spacing, and the rows of an event before the first window
that reaches it would count as misses that no setting of the detector could
avoid. On the step grid these metrics equal those of the matrix-indexed score
MSCRED used to return. A detector without ``scored_rows`` is judged at every
row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lab._validation import _check_int

__all__ = [
    "event_labels",
    "evaluate_events",
    "top_episodes",
    "root_cause_recall",
    "evaluate_synthetic",
    "evaluate_ranking",
    "rank_scores",
    "evaluate_nights",
    "critical_difference",
    "complete_block",
    "CriticalDifference",
    "MIN_COVERAGE",
]

#: Share of the rows a method must have a value on to stay in :func:`complete_block`.
MIN_COVERAGE = 0.5


def _truth_spans(truth) -> list[tuple[Any, Any]]:
    if isinstance(truth, pd.DataFrame):
        missing = {"start", "end"} - set(truth.columns)
        if missing:
            raise ValueError(f"truth lacks columns {sorted(missing)}; expected start and end")
        return list(zip(truth["start"], truth["end"], strict=True))
    spans = []
    for item in truth:
        try:
            start, end = item
        except (TypeError, ValueError):
            raise ValueError(f"truth must be a DataFrame with start/end or (start, end) pairs, "
                             f"got {item!r}") from None
        spans.append((start, end))
    return spans


def event_labels(index: pd.Index, truth, tolerance: Any = 0) -> pd.Series:
    """0/1 labels on ``index``: 1 where a label falls in an event, extended by ``tolerance``.

    Parameters
    ----------
    index : pandas.Index
        Labels to mark, e.g. a score's index.
    truth : DataFrame with ``start`` and ``end``, or (start, end) pairs
        Events, both ends inclusive.
    tolerance : label difference, default 0
        Added to each event's end: a score at label ``t`` whose windows look
        back ``w`` rows still holds anomalous rows up to ``end + w - 1``.

    Returns
    -------
    Series of int (0/1), indexed by ``index``, name "label"

    Examples
    --------
    >>> event_labels(pd.RangeIndex(0, 50, 10), [(15, 22)], tolerance=9).tolist()
    [0, 0, 1, 1, 0]
    """
    index = pd.Index(index)
    labels = np.zeros(len(index), dtype=np.int64)
    for start, end in _truth_spans(truth):
        labels |= np.asarray((index >= start) & (index <= end + tolerance), dtype=np.int64)
    return pd.Series(labels, index=index, name="label")


def evaluate_events(alarms: pd.Series, truth, *, tolerance: Any = 0,
                    grace: Any = None) -> dict[str, Any]:
    """Event-level precision, recall and F1 of boolean alarms.

    An event is detected when any alarm falls inside it, its end extended by
    ``tolerance``. An alarm episode is a run of consecutive alarmed entries
    of ``alarms``. It is a false-alarm episode when none of its alarms falls
    inside an event, the end extended by ``grace`` here. A run that starts
    inside an event and outlasts it is therefore not a false alarm, and
    neither is an alarm raised while the event's rows are still inside the
    detector's input.

    Parameters
    ----------
    alarms : Series of bool
        Alarms indexed by time, in time order.
    truth : DataFrame with ``start`` and ``end``, or (start, end) pairs
        Events, both ends inclusive.
    tolerance : label difference, default 0
        See :func:`event_labels`.
    grace : label difference, optional
        How long after an event's end an alarm still belongs to it (default
        ``tolerance``; never less). For MSCRED, ``max(windows) - 1``: until
        then the largest window still holds anomalous rows.

    Returns
    -------
    dict
        ``precision`` = detected / (detected + false_episodes), ``recall`` =
        detected / n_events, ``f1``, ``detected``, ``n_events``,
        ``false_episodes`` and ``detected_events`` (a list of booleans). With
        no alarm at all, precision is 0.

    Raises
    ------
    ValueError
        If ``alarms`` is not a boolean Series, ``truth`` is empty or ``grace``
        is smaller than ``tolerance``.

    Examples
    --------
    >>> alarms = pd.Series([True, False, True, True, False, False, True])
    >>> out = evaluate_events(alarms, [(2, 2), (5, 5)])
    >>> out["detected"], out["false_episodes"], out["precision"], out["recall"]
    (1, 2, 0.3333333333333333, 0.5)
    >>> evaluate_events(alarms, [(2, 2), (5, 5)], grace=1)["false_episodes"]
    1
    """
    if not isinstance(alarms, pd.Series) or alarms.dtype != bool:
        raise ValueError(f"alarms must be a boolean pandas Series, got "
                         f"{type(alarms).__name__} of dtype {getattr(alarms, 'dtype', None)}")
    if grace is None:
        grace = tolerance
    if grace < tolerance:
        raise ValueError(f"grace={grace!r} must not be smaller than tolerance={tolerance!r}")
    spans = _truth_spans(truth)
    if not spans:
        raise ValueError("truth holds no event; event-level metrics are undefined")
    on = alarms.to_numpy()
    belongs = np.zeros(len(alarms), dtype=bool)
    detected = []
    for start, end in spans:
        inside = np.asarray((alarms.index >= start) & (alarms.index <= end + tolerance))
        detected.append(bool((on & inside).any()))
        belongs |= np.asarray((alarms.index >= start) & (alarms.index <= end + grace))
    episodes = _false_episodes_kernel(on, belongs)
    tp = sum(detected)
    precision = tp / (tp + episodes) if tp + episodes else 0.0
    recall = tp / len(spans)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1),
            "detected": int(tp), "n_events": len(spans), "false_episodes": episodes,
            "detected_events": detected}


def _false_episodes_kernel(on: np.ndarray, inside: np.ndarray) -> int:
    """Runs of consecutive True in ``on`` with no position in ``inside``."""
    starts = np.flatnonzero(on & ~np.concatenate(([False], on[:-1])))
    ends = np.flatnonzero(on & ~np.concatenate((on[1:], [False]))) + 1
    hits = np.concatenate(([0], np.cumsum(on & inside)))
    return int(((hits[ends] - hits[starts]) == 0).sum())


def top_episodes(score: pd.Series, k: int = 10, min_gap: int = 5, *,
                 index: pd.Index | None = None) -> pd.Series:
    """The ``k`` highest scores at least ``min_gap`` rows apart (greedy non-maximum suppression).

    Parameters
    ----------
    score : Series
        Score indexed by time.
    k : int, default 10
        Episodes to return (fewer if the score is short).
    min_gap : int, default 5
        Smallest distance between two episodes, in rows of ``index``.
    index : pandas.Index, optional
        The data's full index (e.g. trading days), so that distances count its
        rows rather than score entries. Default: the score's own index.

    Returns
    -------
    Series
        Selected scores, highest first (ties: earliest first), indexed by label.

    Raises
    ------
    ValueError
        If a score label is missing from ``index``, or the score has NaN.

    Examples
    --------
    >>> s = pd.Series([1, 9, 8, 2, 7, 3])
    >>> top_episodes(s, k=3, min_gap=2).to_dict()
    {1: 9, 4: 7}
    """
    k = _check_int(k, "k", minimum=1)
    min_gap = _check_int(min_gap, "min_gap", minimum=1)
    if score.isna().any():
        raise ValueError("score has NaN values; drop or fill them first")
    if index is None:
        positions = np.arange(len(score))
    else:
        positions = pd.Index(index).get_indexer(score.index)
        if (positions < 0).any():
            missing = list(score.index[positions < 0][:5])
            raise ValueError(f"score labels {missing} are not in index")
    order = np.argsort(-score.to_numpy(), kind="stable")
    picked: list[int] = []
    for i in order:
        if all(abs(positions[i] - positions[j]) >= min_gap for j in picked):
            picked.append(int(i))
            if len(picked) == k:
                break
    return score.iloc[picked]

def _scored(detector: Any, df: Any, score: pd.Series | None) -> pd.Series:
    """The detector's score of ``df`` at the rows it computed (see the module's docstring)."""
    if score is None:
        score = detector.score(df)
    elif len(score) != len(df) or not score.index.equals(
            df.index if isinstance(df, pd.DataFrame | pd.Series) else pd.RangeIndex(len(df))):
        raise ValueError(f"score must be detector.score(df): one value per row of df on df's "
                         f"index, got {len(score)} values for {len(df)} rows")
    rows = getattr(detector, "scored_rows", None)
    return score if rows is None else score.iloc[rows(df)]


def _lookback(detector: Any) -> tuple[int, int]:
    """``(tolerance, grace)`` in rows: how far past an event a score still sees it.

    MSCRED (``windows``): the smallest window, whose scale the score counts,
    and the largest, which the network's input holds. Another detector: its
    ``lookback_`` (the rows before a row that its score reads) for both; 0
    for an object without one.
    """
    windows = getattr(detector, "windows", None)
    if windows is not None:
        windows = tuple(windows)
        return min(windows) - 1, max(windows) - 1
    lookback = int(getattr(detector, "lookback_", 0) or 0)
    return lookback, lookback


def root_cause_recall(detector: Any, df, truth, *, k: int = 3, tolerance: Any = 0,
                      score: pd.Series | None = None) -> float:
    """Mean share of each event's true root causes among the detector's top ``k``.

    Each event is diagnosed at its highest score (the first such row among
    the rows the detector scored, see the module's docstring), inside the
    event extended by ``tolerance``.

    Parameters
    ----------
    detector : fitted detector with ``root_causes(df, at, k)``
        Such as :class:`lab.models.mscred.MSCREDDetector`; a detector that
        does not rank series has no root-cause recall.
    df : DataFrame
        The data the events are in, with enough history before them.
    truth : DataFrame with ``start``, ``end`` and ``root_causes``
    k : int, default 3
    tolerance : label difference, default 0
    score : Series, optional
        ``detector.score(df)``, if already computed.

    Returns
    -------
    float in [0, 1]

    Raises
    ------
    TypeError
        If the detector has no ``root_causes``.
    ValueError
        If an event has no scored row.
    """
    if not callable(getattr(detector, "root_causes", None)):
        raise TypeError(f"root_cause_recall needs a detector with root_causes(df, at, k), "
                        f"such as MSCREDDetector; got {type(detector).__name__}")
    return _root_cause_recall(detector, df, truth, k, tolerance, _scored(detector, df, score))


def _root_cause_recall(detector, df, truth, k, tolerance, score: pd.Series) -> float:
    recalls = []
    for start, end, causes in zip(truth["start"], truth["end"], truth["root_causes"],
                                  strict=True):
        inside = score[(score.index >= start) & (score.index <= end + tolerance)]
        if inside.empty:
            raise ValueError(f"the event [{start!r}, {end!r}] has no score: is it in df, "
                             "with enough history before it?")
        top = detector.root_causes(df, inside.idxmax(), k=k)
        recalls.append(len(set(top.index) & set(causes)) / len(causes))
    return float(np.mean(recalls))


def evaluate_synthetic(detector: Any, df: pd.DataFrame, truth: pd.DataFrame, *,
                       start: Any = None, score: pd.Series | None = None,
                       tolerance: Any = None, grace: Any = None) -> dict[str, Any]:
    """All the synthetic-protocol metrics of a fitted detector.

    Alarms are ``score > detector.threshold_``. For MSCRED the score at a
    row looks back ``min(windows)`` rows on the smallest scale, so an event
    is detected by an alarm up to ``min(windows) - 1`` rows after its end
    (``tolerance``). The network's input at that row also holds the larger
    windows, so alarms up to ``max(windows) - 1`` rows after the end are not
    false alarms (``grace``, see :func:`evaluate_events`). AUC and
    point-adjusted F1 label only the ``tolerance`` span as anomalous. The
    score is judged at the rows the detector computed (the module's
    docstring): for MSCRED, the rows that end a matrix.

    Parameters
    ----------
    detector : fitted BaseDetector
        Any detector with ``score`` and ``threshold_``; root-cause recall
        needs ``root_causes`` too.
    df : DataFrame
        Rows to score, e.g. validation and test (history for the first test
        matrices), as from :func:`lab.datasets.make_mscred_synthetic`.
    truth : DataFrame
        As from :func:`lab.datasets.make_mscred_synthetic`.
    start : label, optional
        Rows before ``start`` are left out of the evaluation.
    score : Series, optional
        ``detector.score(df)``, if already computed.
    tolerance, grace : label difference, optional
        Default: from the detector's windows, ``min(windows) - 1`` and
        ``max(windows) - 1`` (MSCRED), ``window_ - 1`` for a detector with one
        window, else 0.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` (event level, :func:`evaluate_events`),
        ``detected``, ``n_events``, ``false_episodes``, ``point_adjusted_f1``
        (:func:`lab.metrics.point_adjusted_f1`, an optimistic protocol),
        ``auc_roc`` of the score and ``root_cause_recall_at_3`` (NaN for a
        detector without ``root_causes``).

    Examples
    --------
    The floor that flags nothing detects nothing:

    >>> from lab.datasets import make_mscred_synthetic
    >>> from lab.models import ConstantDetector
    >>> df, truth = make_mscred_synthetic(n_series=4, length=2000, n_anomalies=1)
    >>> det = ConstantDetector().fit(df.iloc[:800])
    >>> out = evaluate_synthetic(det, df.iloc[1000:], truth)
    >>> out["detected"], out["auc_roc"], math.isnan(out["root_cause_recall_at_3"])
    (0, 0.5, True)
    """
    from lab.metrics import auc_roc, point_adjusted_f1

    score = _scored(detector, df, score)
    if start is not None:
        score = score[score.index >= start]
    default_tolerance, default_grace = _lookback(detector)
    tolerance = default_tolerance if tolerance is None else tolerance
    grace = max(default_grace, tolerance) if grace is None else grace
    labels = event_labels(score.index, truth, tolerance)
    alarms = score > detector.threshold_
    out = evaluate_events(alarms, truth, tolerance=tolerance, grace=grace)
    out.pop("detected_events")
    # reported beside event-level precision, recall and F1, as Kim et al. ask: no warning
    out["point_adjusted_f1"] = point_adjusted_f1(labels.to_numpy(), alarms.to_numpy(),
                                                 warn=False)
    out["auc_roc"] = auc_roc(labels.to_numpy(), score.to_numpy())
    out["root_cause_recall_at_3"] = (
        _root_cause_recall(detector, df, truth, 3, tolerance, score)
        if callable(getattr(detector, "root_causes", None)) else math.nan)
    return out


def evaluate_ranking(ranking: Any, truth: dict[str, Any], k: int | None = None) -> pd.DataFrame:
    """How well a ranking of metrics finds the truth, overall and per kind of change.

    Parameters
    ----------
    ranking : DataFrame or Series indexed by metric
        Metrics from most to least changed, e.g. the output of
        :func:`lab.preprocessor.rank_changes`. Only the order is used, so
        infinite scores (the volume method on a zero baseline) are fine. Metrics of
        ``truth`` missing from it (dropped by cleaning) rank last.
    truth : dict
        The truth of :func:`lab.datasets.make_server_metrics`.
    k : int, optional
        The cut; by default the number of affected metrics.

    Returns
    -------
    DataFrame
        One row per change kind present, then ``all``, with ``n`` (affected
        metrics), ``found`` (among the top ``k``), ``recall_at_k``
        (``found / n``), ``precision_at_k`` (``found / k``: in the ``all``
        row, the share of affected metrics among the top ``k``) and ``auc``
        (ROC AUC of the rank against the affected metrics of that kind, all
        unaffected metrics being the negatives).

    Raises
    ------
    ValueError
        If ``truth`` has no affected metric, the ranking names metrics that
        ``truth`` does not know or repeats one, or ``k`` is out of range.

    Notes
    -----
    ``precision_at_k`` and ``auc`` are :func:`lab.metrics.precision_at_k` and
    :func:`lab.metrics.auc_roc` of :func:`rank_scores` (ties at the cut are
    broken by the order of ``truth``'s metrics, as there).

    Examples
    --------
    >>> from lab.datasets import make_server_metrics
    >>> df, truth = make_server_metrics(n_metrics=40, n_rows=600, n_groups=4, n_affected=4)
    >>> perfect = pd.Series(1.0, index=truth["affected"]).reindex(df.columns, fill_value=0)
    >>> evaluate_ranking(perfect.sort_values(ascending=False, kind="stable"), truth)["auc"].tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0]
    """
    from lab.datasets.server_metrics import CHANGE_KINDS
    from lab.metrics import auc_roc, precision_at_k

    metrics = pd.Index(truth["group"].index)
    score = rank_scores(ranking, metrics).to_numpy()
    affected = list(truth["affected"])
    if not affected:
        raise ValueError("truth has no affected metric; there is nothing to find")
    k = len(affected) if k is None else _check_int(k, "k", minimum=1, maximum=len(metrics))
    is_affected = metrics.isin(affected)
    rows = {}
    kinds = [c for c in CHANGE_KINDS if (truth["change"] == c).any()]
    for kind in [*kinds, "all"]:
        members = affected if kind == "all" else list(truth["change"].index[truth["change"] == kind])
        is_member = metrics.isin(members)
        precision = precision_at_k(is_member, score, k)
        found = int(round(precision * k))
        keep = ~is_affected | is_member
        rows[kind] = {"n": len(members), "found": found, "recall_at_k": found / len(members),
                      "precision_at_k": precision,
                      "auc": auc_roc(is_member[keep], score[keep])}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "change"
    return out


def rank_scores(ranking: Any, metrics: Any) -> pd.Series:
    """Finite scores that reproduce the order of a ranking, for ROC AUC and precision at k.

    Parameters
    ----------
    ranking : DataFrame or Series indexed by metric
        Metrics from most to least changed (only the order of the index is used).
    metrics : sequence
        Every metric that should get a score, e.g. the columns before cleaning.

    Returns
    -------
    Series
        Indexed by ``metrics``: ``len(ranking)`` for the first ranked metric down
        to 1 for the last, and 0 for metrics missing from the ranking. Unlike the
        volume method's statistic, these are never infinite, and they keep the
        ranking's own tie-breaking.

    Raises
    ------
    ValueError
        If the ranking repeats a metric or names one that is not in ``metrics``.

    Examples
    --------
    >>> rank_scores(pd.Series([float("inf"), 2.0], index=["b", "a"]), ["a", "b", "c"]).tolist()
    [1.0, 2.0, 0.0]
    """
    metrics = pd.Index(metrics)
    order = pd.Index(ranking.index)
    if not order.is_unique:
        raise ValueError("ranking repeats metrics; expected each metric once")
    unknown = order.difference(metrics)
    if len(unknown):
        raise ValueError(f"ranking names metrics that are not known: {list(unknown[:10])}")
    score = pd.Series(0.0, index=metrics)
    score[order] = np.arange(len(order), 0, -1, dtype=float)
    return score


def evaluate_nights(alarms: dict[str, pd.Series], truth: pd.DataFrame, *,
                    tolerance: Any = "0s", grace: Any = "30s") -> dict[str, Any]:
    """Fault episodes found and false episodes per night, over nights of device recordings.

    The truth holds faults (``fault`` True) and physiological events (scored
    apneas and hypopneas, ``fault`` False), as
    :func:`lab.datasets.make_cpap_nights` returns it. A fault is found when
    an alarm of its night falls inside it (end extended by ``tolerance``).
    A false episode is a run of consecutive alarms none of which falls
    inside any event of the truth, fault or physiological, the end extended
    by ``grace``: physiology counts neither as a detection nor as a false
    episode.

    Parameters
    ----------
    alarms : dict of str -> Series of bool
        Each night's alarms on its time index, by night id.
    truth : DataFrame
        ``night``, ``start``, ``end``, ``kind`` and ``fault``.
    tolerance, grace : Timedelta or str, default "0s" and "30s"
        See :func:`evaluate_events`.

    Returns
    -------
    dict
        ``recall`` (faults found / faults), ``precision`` (found / (found +
        false episodes)), ``detected``, ``n_faults``, ``false_episodes``,
        ``n_nights``, ``false_per_night``, ``by_kind`` (DataFrame: kind,
        faults, found) and ``faults`` (the fault rows with a ``found``
        column).

    Raises
    ------
    ValueError
        If ``truth`` lacks a column or a night of ``alarms`` is not a boolean Series.

    Examples
    --------
    >>> t = pd.date_range("2020-01-01", periods=10, freq="s")
    >>> truth = pd.DataFrame({"night": ["a", "a"], "start": [t[2], t[6]], "end": [t[3], t[6]],
    ...                       "kind": ["leak", "apnea"], "fault": [True, False]})
    >>> on = pd.Series([0, 0, 1, 0, 0, 0, 1, 0, 0, 1], index=t).astype(bool)
    >>> out = evaluate_nights({"a": on}, truth, grace="0s")
    >>> out["recall"], out["false_episodes"], out["false_per_night"]
    (1.0, 1, 1.0)
    """
    missing = {"night", "start", "end", "kind", "fault"} - set(truth.columns)
    if missing:
        raise ValueError(f"truth lacks columns {sorted(missing)}; expected night, start, end, "
                         "kind and fault")
    tolerance, grace = pd.Timedelta(tolerance), pd.Timedelta(grace)
    faults = truth[truth["fault"].astype(bool) & truth["night"].isin(list(alarms))].copy()
    found = np.zeros(len(faults), dtype=bool)
    false_episodes = 0
    for night, on_series in alarms.items():
        if not isinstance(on_series, pd.Series) or on_series.dtype != bool:
            raise ValueError(f"alarms[{night!r}] must be a boolean pandas Series, got "
                             f"{type(on_series).__name__}")
        index, on = on_series.index, on_series.to_numpy()
        belongs = np.zeros(len(on), dtype=bool)
        for row in truth[truth["night"] == night].itertuples(index=False):
            belongs |= np.asarray((index >= row.start) & (index <= row.end + grace))
        mine = np.flatnonzero((faults["night"] == night).to_numpy())
        for i in mine:
            start, end = faults["start"].iloc[i], faults["end"].iloc[i]
            found[i] = bool((on & np.asarray((index >= start) & (index <= end + tolerance))).any())
        false_episodes += _false_episodes_kernel(on, belongs)
    faults["found"] = found
    detected = int(found.sum())
    n_nights = len(alarms)
    by_kind = (faults.groupby("kind")["found"].agg(faults="size", found="sum").reset_index())
    return {"recall": detected / len(faults) if len(faults) else float("nan"),
            "precision": (detected / (detected + false_episodes)
                          if detected + false_episodes else 0.0),
            "detected": detected, "n_faults": int(len(faults)),
            "false_episodes": int(false_episodes), "n_nights": n_nights,
            "false_per_night": false_episodes / n_nights if n_nights else float("nan"),
            "by_kind": by_kind, "faults": faults.reset_index(drop=True)}


# --------------------------------------------------------------------------- leaderboards


@dataclass
class CriticalDifference:
    """Friedman's test and Nemenyi's critical difference of a leaderboard (Demšar 2006).

    Attributes
    ----------
    mean_ranks : Series
        Mean rank of each method over the data sets (1 is best), best first.
    cd : float
        Nemenyi's critical difference: two methods whose mean ranks differ by
        more are significantly different at level ``alpha``.
    statistic, pvalue : float
        Friedman's chi-square (with the correction for ties) and its p-value.
    cliques : list of tuple of str
        The maximal groups of methods, in rank order, whose mean ranks lie
        within ``cd`` of each other (the bars of the diagram).
    n_datasets : int
        Data sets (rows) used: those where every method has a value.
    alpha : float
    """

    mean_ranks: pd.Series
    cd: float
    statistic: float
    pvalue: float
    cliques: list
    n_datasets: int
    alpha: float


def complete_block(table: pd.DataFrame, min_coverage: float = MIN_COVERAGE
                   ) -> tuple[pd.DataFrame, list]:
    """The rows and methods that a Friedman test can use: every method on every row.

    A leaderboard table has holes: a detector failed on some series, ran on
    one data set only, or a metric is undefined on a series. Dropping every
    row with a hole can leave nothing (one detector that failed everywhere
    empties the table), so the methods that have a value on fewer than
    ``min_coverage`` of the rows are left out first, then the rows that
    still have a hole.

    Parameters
    ----------
    table : DataFrame
        One row per data set (or series), one column per method.
    min_coverage : float, default :data:`MIN_COVERAGE`
        In (0, 1]: the share of rows a method needs a value on to stay.

    Returns
    -------
    block : DataFrame
        The methods kept, on the rows where all of them have a value (the
        table's order kept).
    left_out : list
        The methods left out, in the table's column order.

    Raises
    ------
    ValueError
        On a ``table`` that is not a DataFrame or a ``min_coverage`` outside
        (0, 1].

    Examples
    --------
    >>> t = pd.DataFrame({"a": [0.9, 0.8, 0.7], "b": [0.5, None, 0.4],
    ...                   "c": [None, None, 0.2]})
    >>> block, left_out = complete_block(t)
    >>> block.to_dict("list"), left_out
    ({'a': [0.9, 0.7], 'b': [0.5, 0.4]}, ['c'])
    """
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"table must be a DataFrame (data sets x methods), got "
                         f"{type(table).__name__}")
    if not 0 < min_coverage <= 1:
        raise ValueError(f"min_coverage must be in (0, 1], got {min_coverage!r}")
    coverage = table.notna().mean() if len(table) else pd.Series(0.0, index=table.columns)
    keep = coverage >= min_coverage
    return table.loc[:, keep].dropna(), [c for c in table.columns if not keep[c]]


def critical_difference(table: pd.DataFrame, *, alpha: float = 0.05,
                        higher_is_better: bool = True) -> CriticalDifference:
    """Mean ranks, Friedman's test and Nemenyi's critical difference over data sets.

    Parameters
    ----------
    table : DataFrame
        One row per data set (or series), one column per method, the metric
        as values. Rows with a missing value are dropped (Friedman's test
        needs every method on every data set).
    alpha : float, default 0.05
        Significance level of the Nemenyi test, in (0, 1).
    higher_is_better : bool, default True
        Whether a higher metric gets the better (lower) rank.

    Returns
    -------
    CriticalDifference

    Raises
    ------
    ValueError
        On fewer than 2 methods or 2 complete rows (:func:`complete_block`
        keeps more of a table with holes), non-numeric values, or an
        ``alpha`` outside (0, 1).

    Notes
    -----
    Demšar, "Statistical Comparisons of Classifiers over Multiple Data Sets",
    JMLR 7 (2006), section 3.2.2: ranks are averaged over ties;
    ``CD = q_alpha sqrt(k (k + 1) / (6 N))`` with ``q_alpha`` the studentized
    range quantile over ``sqrt(2)`` (his Table 5a; ``scipy.stats.studentized_range``
    with infinite degrees of freedom). Friedman's statistic is that of
    ``scipy.stats.friedmanchisquare``, tie correction included.

    Examples
    --------
    >>> t = pd.DataFrame({"a": [0.9, 0.8, 0.7, 0.9], "b": [0.5, 0.6, 0.4, 0.5],
    ...                   "c": [0.1, 0.2, 0.3, 0.2]})
    >>> res = critical_difference(t)
    >>> res.mean_ranks.to_dict(), round(res.cd, 3), res.cliques
    ({'a': 1.0, 'b': 2.0, 'c': 3.0}, 1.657, [('a', 'b'), ('b', 'c')])
    """
    from scipy import stats

    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"table must be a DataFrame (data sets x methods), got "
                         f"{type(table).__name__}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    try:
        values = table.dropna().to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"table must hold numbers only: {exc}") from None
    n, k = values.shape
    if k < 2 or n < 2:
        raise ValueError(f"table needs at least 2 methods and 2 complete rows, got shape "
                         f"{table.shape} ({n} rows without a missing value); complete_block "
                         f"leaves out the methods with the most holes first")
    ranks = stats.rankdata(-values if higher_is_better else values, axis=1)
    mean = ranks.mean(axis=0)
    # Friedman with the tie correction, as scipy.stats.friedmanchisquare
    ties = sum(float(((c := np.unique(row, return_counts=True)[1]) ** 3 - c).sum())
               for row in ranks)
    chi2 = (12.0 * n / (k * (k + 1)) * ((mean - (k + 1) / 2.0) ** 2).sum()
            / (1.0 - ties / (n * k * (k * k - 1))))
    pvalue = float(stats.chi2.sf(chi2, k - 1))
    q = stats.studentized_range.ppf(1.0 - alpha, k, np.inf) / math.sqrt(2.0)
    cd = float(q * math.sqrt(k * (k + 1) / (6.0 * n)))
    mean_ranks = pd.Series(mean, index=table.columns).sort_values(kind="stable")
    r = mean_ranks.to_numpy()
    cliques, last_end = [], -1
    for i in range(k):
        j = int(np.searchsorted(r, r[i] + cd, side="right")) - 1
        if j > i and j > last_end:
            cliques.append(tuple(mean_ranks.index[i:j + 1]))
            last_end = j
    return CriticalDifference(mean_ranks, cd, float(chi2), pvalue, cliques, n, float(alpha))
