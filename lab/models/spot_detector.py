"""SPOT and DSPOT as a detector: a tail-probability score from :mod:`lab.spot`.

The tail is fitted by the lab's one SPOT core (:class:`lab.spot.Spot`, over
libspot); this module only turns a fitted tail into a score per row.
"""

from __future__ import annotations

import math

import numpy as np

from lab._validation import _check_int, _check_option
from lab.models._base import BaseDetector
from lab.models.thresholds import DEFAULT_CONTAMINATION
from lab.spot import (
    DEFAULT_LEVEL,
    DEFAULT_Q,
    Spot,
    min_fit_size,
    residuals_to_moving_average,
    tail_probability,
    tail_quantile,
)

__all__ = ["SPOTDetector"]

SPOT_METHODS = ("spot", "dspot")
SPOT_TAILS = ("upper", "lower", "both")
#: Moving-average length of DSPOT (Siffer et al. 2017 use depths of 10 to 450).
DEFAULT_DEPTH = 10
#: Tail probabilities below this are not resolved (the GPD formula has lost
#: all meaning there, and a bounded tail gives exactly 0): the score goes on
#: linearly in ``(value - z_cap) / sigma`` from ``-log10(SCORE_P_FLOOR)`` = 12,
#: so that it stays finite and increasing.
SCORE_P_FLOOR = 1e-12
#: Points of the empirical survival function kept for values below the tail
#: start (quantiles at 0, level/200, ..., level).
BODY_GRID = 201
#: Layout of ``tails_[column, side]``.
_TAIL_KEYS = ("t", "gamma", "sigma", "n", "n_excess")


class SPOTDetector(BaseDetector):
    """Peaks-over-threshold on the values (SPOT) or on the residual of a moving average (DSPOT).

    The score of a value is ``-log10 P(X > value)``, its exceedance
    probability under the tail fitted on the training rows: a generalised
    Pareto distribution above the ``level`` quantile, the empirical
    distribution below it. The SPOT alarm threshold ``z_q`` (``P = q``) is
    therefore the score ``-log10 q``, and that is ``threshold="native"``,
    this detector's default.

    Parameters
    ----------
    method : {"spot", "dspot"}, default "spot"
        ``"spot"``: the tail of the values themselves. ``"dspot"``: the tail
        of ``x[i] - mean(x[i - depth : i])``, so that a slow drift is not an
        anomaly.
    depth : int, default 10
        DSPOT's moving-average length (ignored by ``"spot"``).
    tail : {"upper", "lower", "both"}, default "both"
        Which extremes are anomalous. ``"both"`` fits the upper tail of the
        values and the upper tail of their negation (the paper's biSPOT) and
        scores a row by the larger of the two.
    q : float, default 1e-3
        SPOT's risk: ``threshold="native"`` is ``-log10 q``, which a normal
        value of one tail of one column passes with probability ``q``.
    level : float, default 0.98
        Quantile of the training values where the fitted tail starts.
    threshold : {"native", "quantile", "spot", "sigma"}, float or dict, default "native"
        See :mod:`lab.models.thresholds`. The default is SPOT's own rule,
        not the classic detectors' ``"quantile"``: SPOT *is* a threshold
        method, and a quantile of its training scores would replace the
        fitted tail by the empirical one it was fitted to improve on.
    contamination : float, default 0.01
        For ``threshold="quantile"``.

    Attributes
    ----------
    tails_ : ndarray of shape (n_columns, n_sides, 5)
        Per column and side (upper, then lower), the fitted tail: start
        ``t``, GPD ``gamma`` and ``sigma``, values seen ``n``, excesses.
    body_ : ndarray of shape (n_columns, n_sides, 201)
        Quantiles of the (side's) training values at probabilities
        ``linspace(0, level, 201)``: the empirical distribution below ``t``.
    caps_ : ndarray of shape (n_columns, n_sides)
        The value whose tail probability is ``1e-12``; beyond it the score
        grows linearly.

    Notes
    -----
    Siffer, Fouque, Termier and Largouët, "Anomaly Detection in Streams with
    Extreme Value Theory", KDD 2017: SPOT (algorithm 1 for the fit), DSPOT
    (section 4.2), biSPOT (both tails). The fit is libspot's through
    :class:`lab.spot.Spot`; the probability is :func:`lab.spot.tail_probability`.

    * Univariate rule, multivariate by column: each column (and side) has its
      own tail; a row's score is the maximum over columns and sides. Every
      column's score is a probability on the same scale, so the maximum
      compares like with like; with ``d`` columns and both tails the native
      threshold is passed by about ``2 d q`` of normal rows.
    * Placement: SPOT scores every row. DSPOT's first ``depth`` rows have no
      full moving average and take the first score (row ``depth``'s).
    * Scoring does not update the tail (``score`` is a function of the fitted
      detector), and DSPOT's moving average here takes every previous value,
      where the streaming :class:`lab.spot.DSpot` leaves flagged values out.
    * Fitting needs :func:`lab.spot.min_fit_size` rows (500 at level 0.98),
      plus ``depth`` for DSPOT. Cost: O(n log n) time to fit (the
      quantiles), O(n) time and memory to score.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> det = SPOTDetector().fit(rng.normal(size=(2000, 2)))
    >>> x = rng.normal(size=(100, 2))
    >>> x[50, 1] = 8.0
    >>> s = det.score(x)
    >>> int(s.argmax()), round(det.threshold_, 6)
    (50, 3.0)
    """

    _state_attrs = ("tails_", "body_", "caps_")
    _default_threshold = "native"

    def __init__(self, method: str = "spot", depth: int = DEFAULT_DEPTH, tail: str = "both",
                 q: float = DEFAULT_Q, level: float = DEFAULT_LEVEL, threshold="native",
                 contamination: float = DEFAULT_CONTAMINATION):
        self.method = method
        self.depth = depth
        self.tail = tail
        self.q = q
        self.level = level
        self.threshold = threshold
        self.contamination = contamination

    @property
    def min_rows(self) -> int:
        """Rows ``score`` needs: 1 for SPOT, ``depth + 1`` for DSPOT (fitting needs more)."""
        return self.depth + 1 if self.method == "dspot" and isinstance(self.depth, int) else 1

    def _check_params(self) -> None:
        super()._check_params()
        _check_option(self.method, "method", SPOT_METHODS)
        _check_option(self.tail, "tail", SPOT_TAILS)
        _check_int(self.depth, "depth", minimum=1)
        Spot(self.q, self.level)  # validates q and level, with their messages

    def _sides(self) -> tuple[int, ...]:
        return {"upper": (1,), "lower": (-1,), "both": (1, -1)}[self.tail]

    def _series(self, column: np.ndarray) -> tuple[np.ndarray, int]:
        """The values the tail is about, and the row the first of them belongs to."""
        if self.method == "dspot":
            return residuals_to_moving_average(column, self.depth), self.depth
        return column, 0

    def _fit(self, values: np.ndarray, y, valid) -> None:
        n = len(values)
        need = min_fit_size(self.level) + (self.depth if self.method == "dspot" else 0)
        if n < need:
            raise ValueError(
                f"X has {n} rows; SPOTDetector(method={self.method!r}, level={self.level:g}) "
                f"needs at least {need} rows to fit a tail (lower level, or give more rows)")
        sides = self._sides()
        d = values.shape[1]
        self.tails_ = np.empty((d, len(sides), len(_TAIL_KEYS)))
        self.body_ = np.empty((d, len(sides), BODY_GRID))
        self.caps_ = np.empty((d, len(sides)))
        probs = np.linspace(0.0, self.level, BODY_GRID)
        for j in range(d):
            series, _ = self._series(values[:, j])
            for k, sign in enumerate(sides):
                x = sign * series
                try:
                    tail = Spot(self.q, self.level).fit(x).tail_
                except ValueError as exc:
                    raise ValueError(f"column {j} ({'upper' if sign > 0 else 'lower'} tail): "
                                     f"{exc}") from None
                self.tails_[j, k] = [tail[key] for key in _TAIL_KEYS]
                # the body ends where the tail starts, so the score is monotone across t
                self.body_[j, k] = np.minimum(np.quantile(x, probs), tail["t"])
                self.caps_[j, k] = tail_quantile(SCORE_P_FLOOR, tail)

    def _side_score(self, x: np.ndarray, j: int, k: int) -> np.ndarray:
        tail = dict(zip(_TAIL_KEYS, self.tails_[j, k].tolist(), strict=True))
        share = tail["n_excess"] / tail["n"]
        body = self.body_[j, k]
        # Below t: the empirical survival (from 1 down to 1 - level), never
        # below the tail's share at t, so that the two pieces join monotonely.
        survival = np.interp(x, body, 1.0 - np.linspace(0.0, self.level, BODY_GRID))
        p = np.where(x > tail["t"], tail_probability(x, tail), np.maximum(survival, share))
        score = -np.log10(np.clip(p, SCORE_P_FLOOR, 1.0))
        beyond = x > self.caps_[j, k]
        if beyond.any():
            score[beyond] = -math.log10(SCORE_P_FLOOR) + (x[beyond] - self.caps_[j, k]) / tail[
                "sigma"]
        return score

    def _score(self, values: np.ndarray) -> np.ndarray:
        best = None
        start = 0
        for j in range(values.shape[1]):
            series, start = self._series(values[:, j])
            for k, sign in enumerate(self._sides()):
                s = self._side_score(sign * series, j, k)
                best = s if best is None else np.maximum(best, s)
        ends = np.arange(start, len(values))
        return self._place(ends, best, len(values))

    def _native_threshold(self, valid_values) -> float:
        return -math.log10(self.q)
