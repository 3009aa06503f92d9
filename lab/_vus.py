"""Kernel of the volume under the surface (VUS), as TSB-AD computes it.

Arithmetic only: :func:`lab.benchmark_metrics.vus_pr` and
:func:`lab.benchmark_metrics.vus_roc` validate their input and call
:func:`vus_kernel`.

The definition is TSB-AD's ``RangeAUC_volume_opt`` (Paparrizos et al., VLDB
2022; Liu & Paparrizos, NeurIPS 2024), which this module reproduces value for
value. For each buffer width ``w = 0 .. window``:

- every labelled range ``[s, e]`` gets a soft border of ``w // 2`` points on
  each side, worth ``sqrt(1 - d / w)`` at distance ``d`` (summed where borders
  overlap, capped at 1);
- at each of the sampled thresholds the predicted points ``score >= thr``
  score a range-aware TP (the labelled points hit, plus the border weight
  hit), an existence ratio over the widened ranges (merged where they meet),
  and the FPR and precision that follow;
- a trapezoidal ROC area and a step PR area are taken over the thresholds.

VUS-ROC and VUS-PR are the means of these areas over the ``window + 1``
widths. Where TSB-AD loops over thresholds and ranges, this kernel sorts the
border points by score once per width and reads every threshold off a
cumulative sum.
"""

from __future__ import annotations

import numpy as np


def threshold_values(score: np.ndarray, n_thresholds: int) -> np.ndarray:
    """The sampled thresholds: evenly spaced ranks of the descending scores.

    ``np.linspace(0, n - 1, n_thresholds)`` truncated to integers indexes the
    scores sorted from high to low, so ties and short series repeat values.
    """
    ranks = np.linspace(0, len(score) - 1, n_thresholds).astype(int)
    return -np.sort(-score)[ranks]


def _count_at_least(sorted_values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How many of ``sorted_values`` (ascending) are ``>=`` each threshold."""
    return len(sorted_values) - np.searchsorted(sorted_values, thresholds, side="left")


def _border_pairs(ranges: np.ndarray, n: int, half: int, labelled: np.ndarray):
    """(position, distance) of every unlabelled point within ``half`` of a range."""
    if half == 0 or len(ranges) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    d = np.arange(1, half + 1)
    right = ranges[:, 1:2] + d  # to the right of each range end
    left = ranges[:, 0:1] - d   # to the left of each range start
    pos = np.concatenate([right.ravel(), left.ravel()])
    dist = np.concatenate([np.broadcast_to(d, right.shape).ravel(),
                           np.broadcast_to(d, left.shape).ravel()])
    keep = (pos >= 0) & (pos < n)
    pos, dist = pos[keep], dist[keep]
    keep = ~labelled[pos]  # a labelled point is 1 whatever borders reach it
    return pos[keep], dist[keep]


def _merged_segments(ranges: np.ndarray, n: int, half: int) -> tuple[np.ndarray, np.ndarray]:
    """Ranges widened by ``half`` each side, clipped to the series, merged where they meet."""
    starts = np.maximum(ranges[:, 0] - half, 0)
    ends = np.minimum(ranges[:, 1] + half, n - 1)
    # TSB-AD merges two neighbours unless the first ends strictly before the next begins
    separate = (ranges[:-1, 1] + half) < (ranges[1:, 0] - half)
    first = np.r_[True, separate]
    last = np.r_[separate, True]
    return starts[first], ends[last]


def vus_kernel(labels: np.ndarray, score: np.ndarray, ranges: np.ndarray, window: int,
               n_thresholds: int) -> tuple[float, float]:
    """VUS-ROC and VUS-PR of a validated input.

    Parameters
    ----------
    labels : ndarray of bool, shape (n,)
        With at least one True and one False.
    score : ndarray of float64, shape (n,)
        Finite.
    ranges : ndarray of int, shape (n_ranges, 2)
        Inclusive ``[start, end]`` of each run of True in ``labels``.
    window : int
        Largest buffer width (TSB-AD's ``slidingWindow``), >= 0.
    n_thresholds : int
        Number of sampled thresholds (TSB-AD's ``thre``), >= 1.

    Returns
    -------
    (vus_roc, vus_pr) : tuple of float
    """
    n = len(score)
    n_pos = float(labels.sum())
    thr = threshold_values(score, n_thresholds)
    n_pred = _count_at_least(np.sort(score), thr).astype(np.float64)
    hits_labelled = _count_at_least(np.sort(score[labels]), thr).astype(np.float64)

    pos, dist = _border_pairs(ranges, n, window // 2, labels)
    padded = np.r_[score, -np.inf]  # lets reduceat close the last segment at row n
    roc = np.empty(window + 1)
    pr = np.empty(window + 1)
    for w in range(window + 1):
        half = w // 2
        near = dist <= half
        weight = np.zeros(n)
        if near.any():
            np.add.at(weight, pos[near], np.sqrt(1.0 - dist[near] / w))
        border = np.flatnonzero(weight)
        weight = np.minimum(weight[border], 1.0)
        order = np.argsort(-score[border], kind="stable")
        cum = np.r_[0.0, np.cumsum(weight[order])]
        border_hit = cum[_count_at_least(np.sort(score[border]), thr)]

        seg_start, seg_end = _merged_segments(ranges, n, half)
        bounds = np.column_stack([seg_start, seg_end + 1]).ravel()
        seg_max = np.maximum.reduceat(padded, bounds)[::2]
        existence = _count_at_least(np.sort(seg_max), thr) / len(seg_start)

        tp = hits_labelled + border_hit
        p_new = n_pos + border_hit / 2.0
        tpr = np.minimum(tp / p_new, 1.0) * existence
        fpr = (n_pred - tp) / (n - p_new)
        precision = tp / n_pred

        tpr_curve = np.r_[0.0, tpr, 1.0]
        fpr_curve = np.r_[0.0, fpr, 1.0]
        roc[w] = np.dot(np.diff(fpr_curve), (tpr_curve[1:] + tpr_curve[:-1]) / 2.0)
        pr[w] = np.dot(np.diff(tpr_curve[:-1]), precision)
    return float(roc.mean()), float(pr.mean())
