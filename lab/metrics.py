"""Evaluation: change-point metrics (TCPD) and anomaly-detection metrics.

Change points follow the Turing Change Point Detection benchmark (van den Burg
& Williams, 2020): :func:`f1_margin` and :func:`covering`. Anomaly metrics take
0/1 labels and, for the threshold-free ones, a score where higher means more
anomalous: :func:`point_metrics`, :func:`point_adjusted_f1`,
:func:`range_precision_recall`, :func:`range_f1`, :func:`auc_roc`,
:func:`auc_pr`, :func:`precision_at_k`. The scores of published benchmarks,
:func:`vus_pr`, :func:`vus_roc` (TSB-AD), :func:`nab_score` (NAB) and
:func:`ucr_hit` (UCR archive), live in :mod:`lab.benchmark_metrics` and are
re-exported here.

Inputs are checked at the door: mismatched lengths, empty inputs, labels that
are not 0/1, NaN scores and out-of-range change points raise a ``ValueError``
that names the argument. A metric that is undefined on its input (precision
with no positive prediction, say) returns ``zero_division`` with a
``UndefinedMetricWarning``, never a silent NaN.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning

from lab._validation import (
    _check_int,
    _check_label_pair,
    _check_labels,
    _check_option,
)
from lab.benchmark_metrics import (
    NAB_PROFILES,
    nab_score,
    nab_threshold,
    ucr_hit,
    vus_pr,
    vus_roc,
    window_rows,
)

__all__ = [
    "f1_margin",
    "covering",
    "point_metrics",
    "point_adjust",
    "point_adjusted_f1",
    "range_precision_recall",
    "range_f1",
    "vus_pr",
    "vus_roc",
    "nab_score",
    "nab_threshold",
    "window_rows",
    "NAB_PROFILES",
    "ucr_hit",
    "auc_roc",
    "auc_pr",
    "precision_at_k",
    "label_ranges",
]

#: Margin (in samples) within which a detected change point counts, as in TCPD.
DEFAULT_MARGIN = 5
# Positional bias functions of Tatbul et al. (2018), section 4: weight of the
# i-th point (1-based) of a range of length n.
_BIASES = ("flat", "front", "back", "middle")
_CARDINALITIES = ("one", "reciprocal")
# point_adjusted_f1 warns once per process, not at every call of a loop.
_PA_WARNED = False


# --------------------------------------------------------------------------- input checks


def _check_zero_division(value) -> float:
    """``zero_division`` as a float: 0, 1 or NaN, as sklearn accepts."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            np.isnan(value) or value in (0, 1)):
        raise ValueError(f"zero_division must be 0, 1 or nan (the value returned for an "
                         f"undefined metric), got {value!r}")
    return float(value)


def _safe_div(num: float, den: float, what: str, zero_division: float) -> float:
    if den == 0:
        warnings.warn(f"{what} is undefined here (division by zero); returning "
                      f"zero_division={zero_division}", UndefinedMetricWarning, stacklevel=3)
        return float(zero_division)
    return float(num / den)


def _f1(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


# --------------------------------------------------------------------------- change points


def _check_cps(cps, n_obs: int, name: str) -> list[int]:
    if isinstance(cps, np.ndarray):
        cps = cps.tolist()
    if not isinstance(cps, Sequence | set | frozenset) or isinstance(cps, str):
        raise ValueError(f"{name} must be a list of change point indices, got {cps!r}")
    out = []
    for c in cps:
        if isinstance(c, bool) or not isinstance(c, numbers.Integral):
            if isinstance(c, float) and float(c).is_integer():
                c = int(c)
            else:
                raise ValueError(f"{name} must hold integer indices, got {c!r}")
        if not 0 <= c < n_obs:
            raise ValueError(f"{name} holds index {c}, outside [0, n_obs={n_obs})")
        out.append(int(c))
    return out


def _check_annotations(annotations, n_obs: int) -> list[list[int]]:
    if isinstance(annotations, Mapping):
        sets = [_check_cps(v, n_obs, f"annotations[{k!r}]") for k, v in annotations.items()]
    else:
        raise ValueError("annotations must map each annotator to a list of indices, "
                         f"got {type(annotations).__name__}")
    if not sets:
        raise ValueError("annotations is empty; at least one annotator is needed")
    return sets


def _true_positives(truth: np.ndarray, pred: np.ndarray, margin: int) -> int:
    """One-to-one matching within ``margin``, as TCPDBench's ``true_positives``.

    Each true point, in increasing order, takes the closest remaining
    prediction (the smaller one on a tie) within the margin.
    """
    remaining = list(np.sort(pred))
    tp = 0
    for tau in np.sort(truth):
        best = None
        for x in remaining:
            d = abs(tau - x)
            if d <= margin and (best is None or d < abs(tau - best)):
                best = x
        if best is not None:
            tp += 1
            remaining.remove(best)
    return tp


def f1_margin(annotations, predictions, n_obs: int, margin: int = DEFAULT_MARGIN, *,
              return_pr: bool = False):
    """F1 of detected change points against several annotators (TCPD definition).

    Parameters
    ----------
    annotations : dict
        ``{annotator: [indices]}``; an annotator may have marked nothing.
    predictions : list of int
        Detected change point indices.
    n_obs : int
        Length of the series; every index must lie in ``[0, n_obs)``.
    margin : int, default 5
        A detection within ``margin`` samples of a true point matches it.
    return_pr : bool, default False
        Also return precision and recall.

    Returns
    -------
    f1 : float, or (f1, precision, recall)

    Raises
    ------
    ValueError
        On empty annotations, non-integer indices or indices outside the series.

    Notes
    -----
    As in van den Burg & Williams (2020), section 4, and TCPDBench's
    ``metrics.py``: index 0 is added to every annotator's set and to the
    predictions (so the trivial start of the series always counts); a true
    point matches at most one prediction; precision is measured against the
    union of all annotators' points, recall is averaged over annotators, and
    F1 is their harmonic mean.

    Examples
    --------
    >>> f1_margin({"a": [50], "b": [52, 80]}, [51], n_obs=100)
    0.909...
    >>> f1_margin({"a": [50]}, [], n_obs=100, return_pr=True)
    (0.666..., 1.0, 0.5)
    """
    n_obs = _check_int(n_obs, "n_obs", minimum=1)
    margin = _check_int(margin, "margin", minimum=0)
    sets = [np.array(sorted(set(s) | {0})) for s in _check_annotations(annotations, n_obs)]
    pred = np.array(sorted(set(_check_cps(predictions, n_obs, "predictions")) | {0}))
    union = np.array(sorted(set().union(*map(set, sets))))
    precision = _true_positives(union, pred, margin) / len(pred)
    recall = float(np.mean([_true_positives(s, pred, margin) / len(s) for s in sets]))
    f1 = _f1(precision, recall)
    return (f1, precision, recall) if return_pr else f1


def _segments(cps: list[int], n_obs: int) -> np.ndarray:
    """Segment boundaries ``[0, c1, ..., n_obs]`` of a partition."""
    return np.array(sorted(set(cps) | {0, n_obs}))


def _cover_kernel(true_bounds: np.ndarray, pred_bounds: np.ndarray, n_obs: int) -> float:
    """Length-weighted best Jaccard overlap of true segments with predicted ones."""
    a0, a1 = true_bounds[:-1, None], true_bounds[1:, None]
    b0, b1 = pred_bounds[None, :-1], pred_bounds[None, 1:]
    inter = np.clip(np.minimum(a1, b1) - np.maximum(a0, b0), 0, None)
    union = (a1 - a0) + (b1 - b0) - inter
    best = (inter / union).max(axis=1)
    return float(((a1[:, 0] - a0[:, 0]) * best).sum() / n_obs)


def covering(annotations, predictions, n_obs: int) -> float:
    """Segmentation covering of the annotators' partitions by the detected one (TCPD).

    Parameters
    ----------
    annotations : dict
        ``{annotator: [indices]}``.
    predictions : list of int
        Detected change point indices.
    n_obs : int
        Length of the series.

    Returns
    -------
    float
        In ``[0, 1]``; 1 when the partitions agree for every annotator.

    Raises
    ------
    ValueError
        On empty annotations, non-integer indices or indices outside the series.

    Notes
    -----
    Change points split ``0 .. n_obs-1`` into segments (0 is always a start).
    For annotator ``k`` with segments ``A`` and predicted segments ``A'``,
    ``C_k = 1/n_obs * sum_A |A| max_A' J(A, A')`` with ``J`` the Jaccard index
    (Arbelaez et al., 2011, eq. 8); the result is the mean of ``C_k`` over
    annotators, as in van den Burg & Williams (2020), section 4, and
    TCPDBench's ``metrics.py``.

    Examples
    --------
    >>> covering({"a": [50]}, [50], n_obs=100)
    1.0
    >>> covering({"a": [50]}, [], n_obs=100)
    0.5
    """
    n_obs = _check_int(n_obs, "n_obs", minimum=1)
    sets = _check_annotations(annotations, n_obs)
    pred = _segments(_check_cps(predictions, n_obs, "predictions"), n_obs)
    return float(np.mean([_cover_kernel(_segments(s, n_obs), pred, n_obs) for s in sets]))


# --------------------------------------------------------------------------- point metrics


def point_metrics(y_true, y_pred, *, zero_division: float = 0.0) -> dict:
    """Point-wise precision, recall and F1 of binary anomaly labels.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_timepoints,)
        0/1 (or boolean) labels; 1 marks an anomaly.
    zero_division : {0, 1, nan}, default 0.0
        Value returned, with an ``UndefinedMetricWarning``, for a precision
        with no positive prediction or a recall with no true anomaly (as
        sklearn's ``zero_division``; NaN only when asked for).

    Returns
    -------
    dict
        ``{"precision", "recall", "f1"}`` as floats.

    Raises
    ------
    ValueError
        On empty inputs, different lengths, labels that are not 0/1, or a
        ``zero_division`` other than 0, 1 or NaN.

    Notes
    -----
    Same values as sklearn's ``precision_recall_fscore_support`` with
    ``average="binary"``.

    Examples
    --------
    >>> point_metrics([0, 1, 1, 0], [0, 1, 0, 1])
    {'precision': 0.5, 'recall': 0.5, 'f1': 0.5}
    """
    zero_division = _check_zero_division(zero_division)
    t, p = _check_label_pair(y_true, y_pred, "y_pred", score=False)
    tp = int((t & p).sum())
    precision = _safe_div(tp, int(p.sum()), "precision", zero_division)
    recall = _safe_div(tp, int(t.sum()), "recall", zero_division)
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}


def label_ranges(y) -> np.ndarray:
    """Runs of 1s in a 0/1 label array as half-open ``[start, end)`` rows.

    Examples
    --------
    >>> label_ranges([0, 1, 1, 0, 1]).tolist()
    [[1, 3], [4, 5]]
    """
    y = _check_labels(y, "y")
    return _ranges_kernel(y)


def _ranges_kernel(y: np.ndarray) -> np.ndarray:
    d = np.diff(np.concatenate([[0], y.astype(np.int8), [0]]))
    return np.column_stack([np.flatnonzero(d == 1), np.flatnonzero(d == -1)])


def point_adjust(y_true, y_pred) -> np.ndarray:
    """Point-adjusted predictions: a hit anywhere in a true anomaly marks all of it.

    Examples
    --------
    >>> point_adjust([0, 1, 1, 1, 0], [0, 0, 1, 0, 0]).astype(int).tolist()
    [0, 1, 1, 1, 0]
    """
    t, p = _check_label_pair(y_true, y_pred, "y_pred", score=False)
    return _adjust_kernel(t, p)


def _adjust_kernel(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    adjusted = p.copy()
    for s, e in _ranges_kernel(t):
        if p[s:e].any():
            adjusted[s:e] = True
    return adjusted


def point_adjusted_f1(y_true, y_pred, *, zero_division: float = 0.0, warn: bool = True) -> float:
    """F1 after point adjustment, the common protocol of anomaly-detection papers.

    Every true anomaly segment with at least one predicted point counts as
    fully detected (:func:`point_adjust`), then point-wise F1 is computed.

    .. warning::
       Point adjustment inflates scores: Kim et al. (AAAI 2022, "Towards a
       Rigorous Evaluation of Time-Series Anomaly Detection") show that a
       random score reaches a high point-adjusted F1 on the usual benchmarks.
       Report :func:`point_metrics` or :func:`range_f1` next to it. The first
       call in a process says so with a ``UserWarning`` (``warn=False``: a
       caller that reports stricter metrics beside it, such as
       :func:`lab.evaluation.evaluate_synthetic`).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_timepoints,)
        0/1 labels.
    zero_division : {0, 1, nan}, default 0.0
        See :func:`point_metrics`.
    warn : bool, default True
        Give the once-per-process warning.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On empty inputs, different lengths or labels that are not 0/1.

    Notes
    -----
    Protocol of Xu et al. (WWW 2018, Donut), criticised by Kim et al. (2022).

    Examples
    --------
    >>> point_adjusted_f1([0, 1, 1, 1, 0], [0, 0, 1, 0, 0])
    1.0
    """
    zero_division = _check_zero_division(zero_division)
    t, p = _check_label_pair(y_true, y_pred, "y_pred", score=False)
    if warn:
        _warn_point_adjust()
    adjusted = _adjust_kernel(t, p)
    tp = int((t & adjusted).sum())
    precision = _safe_div(tp, int(adjusted.sum()), "precision", zero_division)
    recall = _safe_div(tp, int(t.sum()), "recall", zero_division)
    return _f1(precision, recall)


def _warn_point_adjust() -> None:
    global _PA_WARNED
    if not _PA_WARNED:
        _PA_WARNED = True
        warnings.warn("point_adjusted_f1 inflates results: a random score reaches a high "
                      "point-adjusted F1 (Kim et al., AAAI 2022); report point_metrics or "
                      "range_f1 next to it. This warning is shown once per process.",
                      UserWarning, stacklevel=3)


# --------------------------------------------------------------------------- range metrics


def _bias_weights(n: int, bias: str) -> np.ndarray:
    i = np.arange(1, n + 1, dtype=np.float64)
    if bias == "flat":
        return np.ones(n)
    if bias == "front":
        return n - i + 1
    if bias == "back":
        return i
    return np.where(i <= n / 2, i, n - i + 1)


def _omega(rng: np.ndarray, overlap_mask: np.ndarray, bias: str) -> float:
    """Tatbul et al.'s ω: the bias-weighted share of a range that overlaps."""
    w = _bias_weights(rng[1] - rng[0], bias)
    return float(w[overlap_mask].sum() / w.sum())


def _range_side(ranges: np.ndarray, others: np.ndarray, alpha: float, bias: str,
                cardinality: str) -> np.ndarray:
    """Per-range reward of ``ranges`` (real or predicted) against ``others``."""
    scores = np.zeros(len(ranges))
    for k, (s, e) in enumerate(ranges):
        hits = others[(others[:, 0] < e) & (others[:, 1] > s)] if len(others) else others
        if len(hits) == 0:
            continue
        overlap = 0.0
        for hs, he in hits:
            mask = np.zeros(e - s, dtype=bool)
            mask[max(hs, s) - s:min(he, e) - s] = True
            overlap += _omega(np.array([s, e]), mask, bias)
        gamma = 1.0 if cardinality == "one" or len(hits) == 1 else 1.0 / len(hits)
        scores[k] = alpha * 1.0 + (1 - alpha) * gamma * overlap
    return scores


def range_precision_recall(y_true, y_pred, *, alpha: float = 0.0, bias: str = "flat",
                           cardinality: str = "one", zero_division: float = 0.0) -> dict:
    """Range-based precision and recall for time series (Tatbul et al., 2018).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_timepoints,)
        0/1 labels; each run of 1s is one anomaly range.
    alpha : float, default 0.0
        Weight of the existence reward in recall (0: overlap only).
    bias : {"flat", "front", "back", "middle"}, default "flat"
        Positional bias δ inside a range.
    cardinality : {"one", "reciprocal"}, default "one"
        γ: no penalty for fragmented detections, or 1/(number of overlapping ranges).
    zero_division : {0, 1, nan}, default 0.0
        Returned with an ``UndefinedMetricWarning`` for precision with no
        predicted range or recall with no true range.

    Returns
    -------
    dict
        ``{"precision", "recall", "f1"}``.

    Raises
    ------
    ValueError
        On empty inputs, different lengths, labels that are not 0/1, or
        ``alpha`` outside ``[0, 1]``.

    Notes
    -----
    Tatbul, Lee, Zdonik, Alam & Gottschlich, "Precision and Recall for Time
    Series", NeurIPS 2018, eqs. 1-8: recall averages over true ranges
    ``α·Existence + (1-α)·γ·Σ ω(R_i, R_i ∩ P_j, δ)``; precision averages over
    predicted ranges the same with α = 0. With α = 0, flat bias and γ = 1,
    recall is the mean covered fraction of the true ranges; when every range
    is a single point, both equal the point-wise metrics.

    Examples
    --------
    >>> r = range_precision_recall([0, 1, 1, 1, 1, 0, 1, 0], [0, 0, 1, 1, 0, 0, 0, 1])
    >>> r["precision"], r["recall"]
    (0.5, 0.25)
    """
    zero_division = _check_zero_division(zero_division)
    t, p = _check_label_pair(y_true, y_pred, "y_pred", score=False)
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    _check_option(bias, "bias", _BIASES)
    _check_option(cardinality, "cardinality", _CARDINALITIES)
    real, pred = _ranges_kernel(t), _ranges_kernel(p)
    recall_each = _range_side(real, pred, float(alpha), bias, cardinality)
    precision_each = _range_side(pred, real, 0.0, bias, cardinality)
    recall = _safe_div(recall_each.sum(), len(real), "range recall", zero_division)
    precision = _safe_div(precision_each.sum(), len(pred), "range precision", zero_division)
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}


def range_f1(y_true, y_pred, *, alpha: float = 0.0, cardinality: str = "one",
             zero_division: float = 0.0) -> float:
    """Range-based F1 of Tatbul et al. (2018) with flat positional bias.

    Parameters
    ----------
    y_true, y_pred : array-like or Series of shape (n_timepoints,)
        0/1 labels; each run of 1s is one anomaly range.
    alpha : float, default 0.0
        Weight of the existence reward in range recall. 0 scores overlap only,
        the common choice in benchmarks; Tatbul et al. leave it to the
        application (their experiments also use 0).
    cardinality : {"one", "reciprocal"}, default "one"
        γ: ``"one"`` does not penalise a range found in several pieces;
        ``"reciprocal"`` multiplies its overlap by 1/(number of pieces).
    zero_division : {0, 1, nan}, default 0.0
        Returned, with an ``UndefinedMetricWarning``, for a precision with no
        predicted range or a recall with no true range (F1 is then 0 unless
        the other term is defined and ``zero_division`` is 1).

    Returns
    -------
    float
        ``2 P R / (P + R)`` of the range precision ``P`` and recall ``R`` of
        :func:`range_precision_recall` with ``bias="flat"`` (0 when both are 0).

    Raises
    ------
    ValueError
        On empty inputs, different lengths, labels that are not 0/1,
        ``alpha`` outside ``[0, 1]`` or an unknown ``cardinality``.

    Notes
    -----
    Tatbul, Lee, Zdonik, Alam & Gottschlich, "Precision and Recall for Time
    Series", NeurIPS 2018, eqs. 1-8, with flat bias δ = 1. With the defaults
    (α = 0, γ = 1), recall is the mean covered share of the true ranges and
    precision the mean share of each predicted range that is anomalous.
    TSB-AD's "R-based-F1" uses α = 0.2 and reciprocal cardinality and takes
    the best threshold; pass those to compare.

    Examples
    --------
    >>> range_f1([0, 1, 1, 1, 1, 0, 1, 0], [0, 0, 1, 1, 0, 0, 0, 1])
    0.333...
    """
    return range_precision_recall(y_true, y_pred, alpha=alpha, bias="flat",
                                  cardinality=cardinality,
                                  zero_division=zero_division)["f1"]


# --------------------------------------------------------------------------- score metrics


def _check_both_classes(t: np.ndarray, what: str) -> None:
    if t.all() or not t.any():
        raise ValueError(f"{what} needs both classes in y_true; it holds only "
                         f"{'1s' if t.all() else '0s'} ({len(t)} timepoints)")


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    sx = x[order]
    starts = np.flatnonzero(np.r_[True, sx[1:] != sx[:-1]])
    ends = np.r_[starts[1:], len(x)]
    avg = (starts + ends + 1) / 2.0
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def auc_roc(y_true, score) -> float:
    """Area under the ROC curve of an anomaly score.

    Parameters
    ----------
    y_true : array-like of shape (n_timepoints,)
        0/1 labels, with both classes present.
    score : array-like of shape (n_timepoints,)
        Finite scores, higher meaning more anomalous.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On empty inputs, different lengths, non-0/1 labels, a non-finite
        score, or labels of one class only (the area is undefined).

    Notes
    -----
    Computed as the Mann-Whitney U statistic with average ranks for ties,
    which equals sklearn's ``roc_auc_score`` (trapezoidal ROC).

    Examples
    --------
    >>> auc_roc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    t, s = _check_label_pair(y_true, score, "score", score=True)
    _check_both_classes(t, "auc_roc")
    ranks = _average_ranks(s)
    n1, n0 = int(t.sum()), int((~t).sum())
    return float((ranks[t].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auc_pr(y_true, score) -> float:
    """Area under the precision-recall curve, as average precision.

    Parameters
    ----------
    y_true : array-like of shape (n_timepoints,)
        0/1 labels with at least one anomaly.
    score : array-like of shape (n_timepoints,)
        Finite scores, higher meaning more anomalous.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On empty inputs, different lengths, non-0/1 labels, a non-finite
        score, or no anomaly in ``y_true``.

    Notes
    -----
    ``AP = sum_k (R_k - R_{k-1}) P_k`` over distinct thresholds, the step
    definition of sklearn's ``average_precision_score`` (no interpolation,
    which would be optimistic; Davis & Goadrich, ICML 2006).

    Examples
    --------
    >>> auc_pr([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.833...
    """
    t, s = _check_label_pair(y_true, score, "score", score=True)
    if not t.any():
        raise ValueError(f"auc_pr needs at least one anomaly in y_true; it holds only 0s "
                         f"({len(t)} timepoints)")
    order = np.argsort(-s, kind="mergesort")
    ss, tt = s[order], t[order]
    last = np.r_[np.flatnonzero(ss[1:] != ss[:-1]), len(ss) - 1]  # end of each tie group
    tp = np.cumsum(tt)[last]
    fp = (last + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def precision_at_k(y_true, score, k: int | None = None) -> float:
    """Share of true anomalies among the ``k`` highest scores.

    Parameters
    ----------
    y_true : array-like of shape (n_timepoints,)
        0/1 labels.
    score : array-like of shape (n_timepoints,)
        Finite scores, higher meaning more anomalous.
    k : int, optional
        How many top scores to check; defaults to the number of anomalies in
        ``y_true`` (R-precision), which must then be at least 1.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On bad inputs, ``k`` outside ``[1, n_timepoints]``, or ``k=None``
        with no anomaly.

    Notes
    -----
    Ties at the cut are broken by time: the earlier timepoint ranks first
    (stable sort), so the result is deterministic.

    Examples
    --------
    >>> precision_at_k([0, 1, 0, 1], [0.9, 0.8, 0.1, 0.7], k=2)
    0.5
    """
    t, s = _check_label_pair(y_true, score, "score", score=True)
    if k is None:
        k = int(t.sum())
        if k == 0:
            raise ValueError("precision_at_k with k=None uses the number of anomalies, but "
                             "y_true holds none; pass k")
    k = _check_int(k, "k", minimum=1, maximum=len(t))
    top = np.argsort(-s, kind="stable")[:k]
    return float(t[top].mean())
