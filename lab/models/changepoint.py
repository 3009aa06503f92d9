"""Offline change-point detectors through ``ruptures``: PELT, binary segmentation, bottom-up, window.

Each detector reads the series it is given (``fit`` learns nothing but the
columns): :meth:`change_points` runs the search on ``X`` and returns the rows
where a new segment starts. PELT, binary segmentation and bottom-up have no
score of their own: their ``score`` is 1 on a change point and 0 elsewhere
(``threshold="native"`` is 0.5). The window method's score is its
discrepancy curve, placed at the row between the two windows.

``PeltDetector`` and ``BinsegDetector`` also reproduce TCPDBench's defaults
(``preset="tcpd_default"``): R ``changepoint``'s ``cpt.mean`` with the MBIC
penalty, written here since ruptures has no MBIC (see :func:`mbic_cost`).
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np

from lab._validation import _check_float, _check_int, _check_option
from lab.models._base import ChangePointDetector
from lab.models.bocpd import standardize
from lab.models.thresholds import DEFAULT_CONTAMINATION

__all__ = [
    "BinsegDetector", "BottomUpDetector", "PeltDetector", "WindowDetector",
    "bic_penalty", "changepoint_binseg", "changepoint_pelt",
]

#: ruptures cost models the detectors take.
COSTS = ("l2", "normal", "rbf", "ar")
#: Shortest segment in rows, and rows between candidate change points, by default.
DEFAULT_MIN_SIZE, DEFAULT_JUMP = 5, 1
#: Order of the autoregressive cost ("ar").
AR_ORDER = 4
#: Window method: rows in the two windows together.
DEFAULT_WIDTH = 20
#: MAD of first differences to a standard deviation: 1.4826 (normal MAD) / sqrt(2).
_MAD_DIFF_TO_SD = 1.4826 / np.sqrt(2)
#: TCPDBench's ``default_binseg``/``default_pelt``: at most Q change points (BinSeg),
#: minimum segment length 1 (``cpt.mean``'s default).
TCPD_Q, TCPD_MINSEGLEN = 5, 1
PRESETS = ("tcpd_default",)
#: ruptures' notice (v1.1.5) that the normal cost adds a small bias to covariances.
_RUPTURES_NOTICE = "New behaviour in v1.1.5"


def noise_variance(values: np.ndarray) -> float:
    """Noise variance of the columns, robust to level changes: MAD of first differences.

    The mean over columns of ``(1.4826 * MAD(diff x) / sqrt(2))**2``; where
    that is 0 (a step signal), the variance of the differences over 2; 1 if
    that is 0 too.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(scale=2.0, size=(4000, 1))
    >>> round(noise_variance(x), 1)
    4.1
    """
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 3:
        return 1.0
    diff = np.diff(x, axis=0)
    mad = np.median(np.abs(diff - np.median(diff, axis=0)), axis=0)
    var = float(np.mean((_MAD_DIFF_TO_SD * mad) ** 2))
    if var <= 0:
        var = float(np.mean(diff.var(axis=0))) / 2
    return var if var > 0 else 1.0


def bic_penalty(values: np.ndarray, cost: str) -> float:
    """BIC penalty per change point, in the units of the ruptures ``cost``.

    ``p log(n)`` times the noise variance, where ``p`` is the number of
    parameters a change adds: its location (Yao 1988) and ``d`` means for ``l2`` and ``rbf``
    (``rbf`` has no noise scale: variance 1), ``d`` means and ``d(d+1)/2``
    covariances for ``normal`` (its cost is already a log-likelihood),
    ``4 d`` coefficients for ``ar``. For ``l2`` and ``ar`` the cost is a sum
    of squares, so the penalty is scaled by :func:`noise_variance`.

    Examples
    --------
    >>> round(bic_penalty(np.random.default_rng(0).normal(size=(1000, 1)), "normal"), 2)
    20.72
    """
    n, d = values.shape
    params = 1 + {"l2": d, "rbf": d, "normal": d + d * (d + 1) // 2, "ar": AR_ORDER * d}[cost]
    scale = noise_variance(values) if cost in ("l2", "ar") else 1.0
    return float(params * np.log(n) * scale)


# ---------------------------------------------------------------- changepoint (R) kernels
def _mean_costs(csum: np.ndarray, csum2: np.ndarray, starts: np.ndarray, end: int
                ) -> np.ndarray:
    """MBIC cost of segments ``[s, end)``: sum of squares about the mean plus log(length)."""
    length = end - starts
    s = csum[end] - csum[starts]
    return csum2[end] - csum2[starts] - s * s / length + np.log(length)


def _cumulative_sums(x: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Length, and the running sums of ``x`` and ``x**2`` from 0 (the segment-cost tables)."""
    x = np.asarray(x, dtype=np.float64)
    return len(x), np.r_[0.0, np.cumsum(x)], np.r_[0.0, np.cumsum(x * x)]


def changepoint_pelt(x: np.ndarray, pen: float, minseglen: int = TCPD_MINSEGLEN) -> np.ndarray:
    """PELT on a change in mean with R ``changepoint``'s MBIC cost (``cpt.mean``, Normal).

    Minimises ``sum_i [C(segment_i) + log(n_i)] + k * pen`` over segmentations
    with ``k`` changes, where ``C`` is the sum of squares about the segment
    mean (``-2`` log-likelihood of a unit-variance Normal, up to a constant)
    and ``n_i`` the segment length; ``pen = 3 log(n)`` is ``changepoint``'s
    MBIC. Candidates are pruned as in ``changepoint``'s C code (Killick et
    al. 2012).

    Returns
    -------
    ndarray of int
        The first row of every segment after the first.

    Examples
    --------
    >>> x = np.r_[np.zeros(50), np.full(50, 4.0)] + np.sin(np.arange(100))
    >>> changepoint_pelt(x, 3 * np.log(100)).tolist()
    [50]
    """
    n, csum, csum2 = _cumulative_sums(x)
    best = np.empty(n + 1)
    best[0] = -pen
    last = np.zeros(n + 1, dtype=np.intp)
    cands = np.array([0], dtype=np.intp)
    for t in range(minseglen, n + 1):
        if t >= 2 * minseglen:
            cands = np.append(cands, t - minseglen)
        total = best[cands] + _mean_costs(csum, csum2, cands, t) + pen
        j = int(np.argmin(total))
        best[t], last[t] = total[j], cands[j]
        # changepoint's pruning: keep s while F(s) + C(s, t) <= F(t)
        cands = cands[total - pen <= best[t]]
    cps = []
    t = n
    while last[t] > 0:
        t = int(last[t])
        cps.append(t)
    return np.asarray(sorted(cps), dtype=np.intp)


def changepoint_binseg(x: np.ndarray, pen: float, Q: int = TCPD_Q,
                       minseglen: int = TCPD_MINSEGLEN) -> np.ndarray:
    """Binary segmentation on a change in mean with R ``changepoint``'s MBIC cost.

    ``Q`` greedy splits: each splits the segment where the cost
    (:func:`changepoint_pelt`'s, with its ``log(n_i)`` term) falls most. The
    gains are capped to be non-increasing, as ``changepoint`` does; the
    change points kept are the first splits whose (capped) gain is at least
    ``pen``.

    Examples
    --------
    >>> x = np.r_[np.zeros(50), np.full(50, 4.0)] + np.sin(np.arange(100))
    >>> changepoint_binseg(x, 3 * np.log(100)).tolist()
    [50]
    """
    n, csum, csum2 = _cumulative_sums(x)

    def cost(a, b):
        return _mean_costs(csum, csum2, np.atleast_1d(a), b)

    bounds = [0, n]
    splits, gains = [], []
    capped = np.inf
    for _ in range(Q):
        best_gain, best_s = -np.inf, None
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            if b - a < 2 * minseglen:
                continue
            s = np.arange(a + minseglen, b - minseglen + 1)
            seg_sum_l = csum[s] - csum[a]
            len_l = s - a
            cost_l = csum2[s] - csum2[a] - seg_sum_l ** 2 / len_l + np.log(len_l)
            cost_r = _mean_costs(csum, csum2, s, b)
            gain = cost(a, b)[0] - cost_l - cost_r
            k = int(np.argmax(gain))
            if gain[k] > best_gain:
                best_gain, best_s = float(gain[k]), int(s[k])
        if best_s is None:
            break
        capped = min(capped, best_gain)
        splits.append(best_s)
        gains.append(capped)
        bounds = sorted([*bounds, best_s])
    kept = 0
    while kept < len(gains) and gains[kept] >= pen:
        kept += 1
    return np.asarray(sorted(splits[:kept]), dtype=np.intp)


# ---------------------------------------------------------------- detectors
class _RupturesDetector(ChangePointDetector):
    """Shared door of the ruptures detectors: settings, checks, the search on a series."""

    _algorithm = ""
    _has_preset = False

    def _init(self, cost, penalty, n_bkps, min_size, jump, threshold, contamination,
              preset=None):
        self.cost = cost
        self.penalty = penalty
        self.n_bkps = n_bkps
        self.min_size = min_size
        self.jump = jump
        if self._has_preset:
            self.preset = preset
        self.threshold = threshold
        self.contamination = contamination

    @property
    def min_rows(self) -> int:
        """Two rows: one change needs a segment on each side."""
        return 2

    def _check_params(self) -> None:
        super()._check_params()
        preset = getattr(self, "preset", None)
        if preset is not None:
            _check_option(preset, "preset", PRESETS)
            return
        _check_option(self.cost, "cost", COSTS)
        if isinstance(self.penalty, str):
            _check_option(self.penalty, "penalty", ("bic",))
        elif _check_float(self.penalty, "penalty") < 0:
            raise ValueError(f"penalty must be >= 0 (or 'bic'), got {self.penalty}")
        if self.n_bkps is not None:
            _check_int(self.n_bkps, "n_bkps", minimum=0)
        _check_int(self.min_size, "min_size", minimum=1)
        _check_int(self.jump, "jump", minimum=1)

    def _fit(self, values: np.ndarray, y, valid) -> None:
        pass  # nothing to learn: each series is segmented on its own

    def _min_size(self, d: int) -> int:
        ms = int(self.min_size)
        return max(ms, AR_ORDER + 1) if self.cost == "ar" else ms

    def _algo(self, values: np.ndarray):
        import ruptures as rpt

        cls = {"pelt": rpt.Pelt, "binseg": rpt.Binseg, "bottomup": rpt.BottomUp}[self._algorithm]
        params = {"order": AR_ORDER} if self.cost == "ar" else None
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_RUPTURES_NOTICE)
            return cls(model=self.cost, min_size=self._min_size(values.shape[1]),
                       jump=int(self.jump), params=params).fit(self._signal(values))

    def _signal(self, values: np.ndarray) -> np.ndarray:
        # CostAR takes one column
        return values[:, 0] if self.cost == "ar" and values.shape[1] == 1 else values

    def _check_n_bkps(self, n: int, d: int) -> int:
        k = int(self.n_bkps)
        most = n // self._min_size(d) - 1
        if k > most:
            raise ValueError(f"n_bkps={k} is larger than a series of {n} rows allows with "
                             f"min_size={self._min_size(d)}: at most {max(most, 0)}")
        return k

    def _penalty(self, values: np.ndarray) -> float:
        if isinstance(self.penalty, str):
            return bic_penalty(values, self.cost)
        return float(self.penalty)

    def _preset_change_points(self, values: np.ndarray) -> np.ndarray:
        if values.shape[1] != 1:
            raise ValueError(
                f"preset='tcpd_default' is R changepoint's cpt.mean, which takes one column; "
                f"X has {values.shape[1]} (shape {values.shape}). TCPDBench skipped such "
                "series for this method")
        x = standardize(values)[:, 0]
        pen = 3 * np.log(len(x))  # changepoint's MBIC: (1 + 2) log(n) per change
        return self._preset_kernel(x, pen)

    def _change_points(self, values: np.ndarray) -> np.ndarray:
        n, d = values.shape
        if np.ptp(values, axis=0).max() == 0:
            return np.empty(0, dtype=np.intp)  # a constant series has no change
        if getattr(self, "preset", None) is not None:
            return self._preset_change_points(values)
        if self.n_bkps is not None:
            k = self._check_n_bkps(n, d)
            if k == 0:
                return np.empty(0, dtype=np.intp)
            bkps = self._predict_n_bkps(values, k)
        else:
            bkps = self._algo(values).predict(pen=self._penalty(values))
        return np.asarray(bkps[:-1], dtype=np.intp)

    def _predict_n_bkps(self, values: np.ndarray, k: int) -> list[int]:
        return self._algo(values).predict(n_bkps=k)

    def _score(self, values: np.ndarray) -> np.ndarray:
        score = np.zeros(len(values))
        score[self._change_points(values)] = 1.0
        return score

    def _native_threshold(self, valid_values) -> float:
        return 0.5


_COMMON_DOC = """
    Parameters
    ----------
    cost : {"l2", "normal", "rbf", "ar"}, default "l2"
        ruptures cost: change in mean (sum of squares), in mean and
        covariance (Gaussian likelihood), in distribution (Gaussian kernel),
        in the coefficients of an AR(4) model (one column only).
    penalty : "bic" or float, default "bic"
        Penalty per change point (:func:`bic_penalty`); must be >= 0.
    n_bkps : int, optional
        Number of change points when it is known; replaces the penalty.
    min_size : int, default 5
        Shortest segment in rows (at least 5 for ``"ar"``).
    jump : int, default 1
        Change points are searched every ``jump`` rows."""


class _PresetRupturesDetector(_RupturesDetector):
    """A ruptures detector that also takes TCPDBench's ``preset`` (PELT and binary segmentation)."""

    _has_preset = True

    def __init__(self, cost: str = "l2", penalty: Any = "bic", n_bkps: int | None = None,
                 min_size: int = DEFAULT_MIN_SIZE, jump: int = DEFAULT_JUMP,
                 preset: str | None = None, threshold: Any = "native",
                 contamination: float = DEFAULT_CONTAMINATION):
        self._init(cost, penalty, n_bkps, min_size, jump, threshold, contamination, preset)


class PeltDetector(_PresetRupturesDetector):
    """PELT: the segmentation of least penalised cost, exactly, by pruned dynamic programming.

    Parameters
    ----------
    cost, penalty, n_bkps, min_size, jump
        See below; with ``n_bkps`` the penalty is found by bisection so that
        PELT returns that many change points (or the nearest count).
    preset : {"tcpd_default"}, optional
        TCPDBench's ``default_pelt``: the series standardised, R
        ``changepoint``'s ``cpt.mean`` (change in mean, Normal) with method
        PELT, MBIC penalty, minimum segment length 1
        (:func:`changepoint_pelt`). Overrides the other settings; one column
        only.
    threshold : "native", float or dict, default "native"
        ``score`` is 1 at change points, so the native threshold is 0.5.
    contamination : float, default 0.01
    {common}

    Notes
    -----
    Killick, Fearnhead and Eckley, "Optimal detection of changepoints with a
    linear computational cost", JASA 2012, through ``ruptures`` (Truong,
    Oudre and Vayatis 2020, ``rpt.Pelt``). Cost O(n) to O(n^2) cost
    evaluations, depending on how much the pruning removes.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.r_[np.zeros(50), np.full(50, 4.0)] + np.random.default_rng(1).normal(size=100)
    >>> PeltDetector().fit(x).change_points(x).tolist()
    [50]
    >>> PeltDetector(preset="tcpd_default").fit(x).change_points(x).tolist()
    [50]
    """

    _algorithm = "pelt"

    @staticmethod
    def _preset_kernel(x: np.ndarray, pen: float) -> np.ndarray:
        return changepoint_pelt(x, pen, TCPD_MINSEGLEN)

    def _predict_n_bkps(self, values: np.ndarray, k: int) -> list[int]:
        algo = self._algo(values)
        lo, hi = 0.0, max(self._penalty(values), 1.0)
        while len(algo.predict(pen=hi)) - 1 > k and hi < 1e12:
            hi *= 4
        best = algo.predict(pen=hi)
        for _ in range(40):  # bisection on the penalty; the count falls as it grows
            mid = (lo + hi) / 2
            bkps = algo.predict(pen=mid)
            if abs(len(bkps) - 1 - k) < abs(len(best) - 1 - k):
                best = bkps
            if len(bkps) - 1 == k:
                return bkps
            if len(bkps) - 1 > k:
                lo = mid
            else:
                hi = mid
        return best


class BinsegDetector(_PresetRupturesDetector):
    """Binary segmentation: split where the cost falls most, until the gain is below the penalty.

    Parameters
    ----------
    cost, penalty, n_bkps, min_size, jump
        See below.
    preset : {"tcpd_default"}, optional
        TCPDBench's ``default_binseg``: the series standardised, R
        ``changepoint``'s ``cpt.mean`` (change in mean, Normal) with method
        BinSeg, at most Q = 5 change points, MBIC penalty, minimum segment
        length 1 (:func:`changepoint_binseg`). Overrides the other settings;
        one column only.
    threshold : "native", float or dict, default "native"
        ``score`` is 1 at change points, so the native threshold is 0.5.
    contamination : float, default 0.01
    {common}

    Notes
    -----
    Scott and Knott 1974; Sen and Srivastava 1975; through ``ruptures``
    (``rpt.Binseg``). Cost O(n log n) cost evaluations.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.r_[np.zeros(50), np.full(50, 4.0)] + np.random.default_rng(1).normal(size=100)
    >>> BinsegDetector().fit(x).change_points(x).tolist()
    [50]
    >>> BinsegDetector(n_bkps=1, cost="normal").fit(x).change_points(x).tolist()
    [50]
    """

    _algorithm = "binseg"

    @staticmethod
    def _preset_kernel(x: np.ndarray, pen: float) -> np.ndarray:
        return changepoint_binseg(x, pen, TCPD_Q, TCPD_MINSEGLEN)


class BottomUpDetector(_RupturesDetector):
    """Bottom-up segmentation: merge neighbouring segments while the cost rises less than the penalty.

    Parameters
    ----------
    cost, penalty, n_bkps, min_size, jump
        See below.
    threshold : "native", float or dict, default "native"
        ``score`` is 1 at change points, so the native threshold is 0.5.
    contamination : float, default 0.01
    {common}

    Notes
    -----
    Keogh et al., "An online algorithm for segmenting time series", ICDM
    2001; through ``ruptures`` (``rpt.BottomUp``).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.r_[np.zeros(50), np.full(50, 4.0)] + np.random.default_rng(1).normal(size=100)
    >>> BottomUpDetector(n_bkps=1).fit(x).change_points(x).tolist()
    [50]
    """

    _algorithm = "bottomup"

    def __init__(self, cost: str = "l2", penalty: Any = "bic", n_bkps: int | None = None,
                 min_size: int = DEFAULT_MIN_SIZE, jump: int = DEFAULT_JUMP,
                 threshold: Any = "native", contamination: float = DEFAULT_CONTAMINATION):
        self._init(cost, penalty, n_bkps, min_size, jump, threshold, contamination)


class WindowDetector(_RupturesDetector):
    """Window sliding: the cost gain of splitting a window in two halves, peaks as change points.

    Parameters
    ----------
    width : int, default 20
        Rows in the two half-windows together (even; at least ``2 * min_size``).
    cost, penalty, n_bkps, min_size, jump
        See below.
    threshold : {"quantile", "spot", "sigma"}, float or dict, default "quantile"
        Threshold of the discrepancy score (``predict``).
    contamination : float, default 0.01
    {common}

    Notes
    -----
    Truong, Oudre and Vayatis, "Selective review of offline change point
    detection methods", Signal Processing 2020 (``rpt.Window``). ``score``
    is the discrepancy at each row between the half-windows before and
    after it (0 within ``width / 2`` rows of either end).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.r_[np.zeros(50), np.full(50, 4.0)] + np.random.default_rng(1).normal(size=100)
    >>> WindowDetector().fit(x).change_points(x).tolist()
    [50]
    """

    _algorithm = "window"

    def __init__(self, width: int = DEFAULT_WIDTH, cost: str = "l2", penalty: Any = "bic",
                 n_bkps: int | None = None, min_size: int = DEFAULT_MIN_SIZE,
                 jump: int = DEFAULT_JUMP, threshold: Any = "quantile",
                 contamination: float = DEFAULT_CONTAMINATION):
        self.width = width
        self._init(cost, penalty, n_bkps, min_size, jump, threshold, contamination)

    @property
    def min_rows(self) -> int:
        """One window: ``width`` rows."""
        return int(self.width) if isinstance(self.width, numbers.Integral) else 2

    def _check_params(self) -> None:
        super()._check_params()
        width = _check_int(self.width, "width", minimum=2)
        if width < 2 * self._min_size(1):
            raise ValueError(f"width must be >= 2 * min_size = {2 * self._min_size(1)}, "
                             f"got {width}")

    def _algo(self, values: np.ndarray):
        import ruptures as rpt

        params = {"order": AR_ORDER} if self.cost == "ar" else None
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_RUPTURES_NOTICE)
            return rpt.Window(width=int(self.width), model=self.cost,
                              min_size=self._min_size(values.shape[1]), jump=int(self.jump),
                              params=params).fit(self._signal(values))

    def _score(self, values: np.ndarray) -> np.ndarray:
        score = np.zeros(len(values))
        if np.ptp(values, axis=0).max() == 0:
            return score
        algo = self._algo(values)
        score[np.asarray(algo.inds, dtype=np.intp)] = algo.score
        return score

    def _native_threshold(self, valid_values) -> float:
        raise ValueError("WindowDetector has no native threshold rule; use 'quantile', "
                         "'spot', 'sigma' or a number")


for _cls in (PeltDetector, BinsegDetector, BottomUpDetector, WindowDetector):
    _cls.__doc__ = _cls.__doc__.replace("    {common}", _COMMON_DOC.strip("\n"))
