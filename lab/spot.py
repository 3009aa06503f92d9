"""Peaks-over-threshold: SPOT and DSPOT (Siffer et al., KDD 2017), the lab's one SPOT core.

SPOT fits a generalised Pareto distribution (GPD) to the excesses of a stream
over a high empirical quantile and sets the threshold ``z_q`` that a normal
value passes with probability ``q``. DSPOT runs SPOT on the residual of a
moving average, so that drift does not pass for an anomaly.

The GPD fit and the streaming update are Siffer's own ``libspot`` (3.1),
wrapped thinly. libspot has only ``Spot``; the minimum-size check, the batch
step and DSPOT are written here. ``threshold="spot"`` of every detector,
:class:`lab.models.SPOTDetector` and the streaming detectors all use this
module.

Examples
--------
>>> import numpy as np
>>> x = np.random.default_rng(0).normal(size=5000)
>>> z = spot_threshold(x, q=1e-3)
>>> 2.5 < z < 4.5
True
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from lab._validation import _as_2d, _check_float, _check_int

__all__ = ["MIN_EXCESSES", "DEFAULT_Q", "DEFAULT_LEVEL", "min_fit_size", "spot_threshold",
           "tail_probability", "tail_quantile", "Spot", "DSpot", "STEP_NORMAL", "STEP_EXCESS",
           "STEP_ANOMALY"]

#: libspot's step codes (``libspot.NORMAL``, ``EXCESS``, ``ANOMALY``).
STEP_NORMAL, STEP_EXCESS, STEP_ANOMALY = 0, 1, 2

#: Fewest excesses over the initial quantile for a GPD fit worth the name.
#: Siffer et al. fit on n = 1000 calibration points at level 0.98, which gives 20.
MIN_EXCESSES = 10
#: Default risk: a normal value passes the threshold with probability 1e-3.
DEFAULT_Q = 1e-3
#: Default tail location: the initial threshold is the 0.98 empirical quantile.
DEFAULT_LEVEL = 0.98


def _check_q_level(q: Any, level: Any) -> tuple[float, float]:
    q = _check_float(q, "q")
    level = _check_float(level, "level")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if not 0 < q < 1 - level:
        raise ValueError(f"q must be in (0, 1 - level) = (0, {1 - level:g}), got {q}: the "
                         "risk must be smaller than the tail that the GPD is fitted on")
    return q, level


def min_fit_size(level: float = DEFAULT_LEVEL) -> int:
    """Fewest calibration values SPOT needs at ``level``: ``ceil(MIN_EXCESSES / (1 - level))``.

    Examples
    --------
    >>> min_fit_size(0.98)
    500
    """
    _, level = _check_q_level(min(DEFAULT_Q, (1 - float(level)) / 2), level)
    return math.ceil(MIN_EXCESSES / (1 - level) - 1e-9)


def _check_calibration(x: Any, name: str, level: float) -> np.ndarray:
    values, _, _ = _as_2d(x, name)
    if values.shape[1] != 1:
        raise ValueError(f"{name} must be one series, got shape {values.shape}")
    values = values[:, 0]
    need = min_fit_size(level)
    if len(values) < need:
        raise ValueError(
            f"{name} has {len(values)} values; SPOT at level={level:g} needs at least {need} "
            f"to see {MIN_EXCESSES} excesses over the initial quantile (lower level, or give "
            "more data)")
    return values


def spot_threshold(scores: Any, q: float = DEFAULT_Q, level: float = DEFAULT_LEVEL) -> float:
    """The SPOT threshold ``z_q`` of a batch of values: ``P(X > z_q) = q`` under the GPD tail.

    Parameters
    ----------
    scores : array-like of shape (n,)
        Calibration values (for a detector, its training scores). No NaN.
    q : float, default 1e-3
        Risk: the probability that a normal value passes the threshold.
    level : float, default 0.98
        Quantile of ``scores`` where the tail starts.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On fewer than :func:`min_fit_size` values, NaN, or ``q``/``level`` out of range.

    Notes
    -----
    Siffer, Fouque, Termier and Largouët, "Anomaly Detection in Streams with
    Extreme Value Theory", KDD 2017, algorithm 1 (the initial step), through
    ``libspot.Spot.fit``. A tail whose excesses are all equal (990 zeros and
    10 ones; the lower tail of counts) leaves the GPD undetermined, and a
    batch with nothing above its initial quantile (a constant batch) has no
    tail: both raise ValueError rather than return a meaningless threshold.

    Examples
    --------
    >>> import numpy as np
    >>> round(spot_threshold(np.arange(1000.0), q=1e-3, level=0.9), 1) > 980
    True
    """
    q, level = _check_q_level(q, level)
    values = _check_calibration(scores, "scores", level)
    return Spot(q=q, level=level).fit(values).threshold_


class Spot:
    """Streaming SPOT over libspot: fit on a calibration batch, then ``step`` or ``step_batch``.

    Parameters
    ----------
    q : float, default 1e-3
        Risk of a false alarm per value.
    level : float, default 0.98
        Initial tail quantile.
    discard_anomalies : bool, default True
        Flagged values do not update the tail (Siffer et al.'s choice).
    low : bool, default False
        Watch the lower tail instead of the upper one.
    max_excess : int, default 500
        Excesses kept for the GPD (a sliding memory of the tail).

    Attributes
    ----------
    threshold_ : float
        Current alarm threshold ``z_q``.
    excess_threshold_ : float
        Current tail start ``t``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> s = Spot().fit(rng.normal(size=2000))
    >>> flags = s.step_batch(np.r_[rng.normal(size=100), 9.0])
    >>> bool(flags[-1]), int(flags[:-1].sum()) <= 1
    (True, True)
    """

    def __init__(self, q: float = DEFAULT_Q, level: float = DEFAULT_LEVEL, *,
                 discard_anomalies: bool = True, low: bool = False, max_excess: int = 500):
        self.q, self.level = _check_q_level(q, level)
        self.discard_anomalies = bool(discard_anomalies)
        self.low = bool(low)
        self.max_excess = _check_int(max_excess, "max_excess", minimum=MIN_EXCESSES)
        self._spot = None

    def fit(self, x: Any) -> Spot:
        """Fit the tail on the calibration batch ``x`` (at least :func:`min_fit_size` values)."""
        import libspot

        values = _check_calibration(x, "x", self.level)
        self._spot = libspot.Spot(q=self.q, low=int(self.low),
                                  discard_anomalies=int(self.discard_anomalies),
                                  level=self.level, max_excess=self.max_excess)
        try:
            self._spot.fit(np.ascontiguousarray(values, dtype=np.float64))
        except RuntimeError:
            # libspot raises (instead of returning NaN) when no value exceeds
            # the initial quantile, e.g. on a constant calibration batch
            self._spot = None
            self._degenerate_check(values, fitted=False)
        self._degenerate_check(values)
        return self

    def _degenerate_check(self, values: np.ndarray, fitted: bool = True) -> None:
        # Excesses that are all equal (count data, a bounded tail) leave the GPD
        # undetermined: libspot then returns sigma <= 0, absurd parameters or no
        # finite threshold, and its scores would be garbage.
        degenerate = not fitted
        if fitted:
            spot = self._spot
            ex = np.asarray(spot.excesses(), dtype=np.float64)
            flat = ex.size == 0 or np.ptp(ex) <= 1e-12 * max(1.0, float(np.abs(ex).max()))
            degenerate = flat or not (np.isfinite(spot.gamma) and np.isfinite(spot.sigma)
                                      and spot.sigma > 0
                                      and np.isfinite(spot.anomaly_threshold))
        if degenerate:
            raise ValueError(
                "SPOT could not fit a tail: the calibration values above their "
                f"{self.level:g} quantile have no spread (min {values.min():g}, max "
                f"{values.max():g}); use threshold='quantile' for such scores")

    @property
    def threshold_(self) -> float:
        self._check_fitted()
        return float(self._spot.anomaly_threshold)

    @property
    def excess_threshold_(self) -> float:
        self._check_fitted()
        return float(self._spot.excess_threshold)

    @property
    def tail_(self) -> dict[str, float]:
        """The fitted tail, the input of :func:`tail_probability`.

        ``t`` (tail start), ``gamma`` and ``sigma`` (GPD shape and scale of
        the excesses), ``n`` (values seen) and ``n_excess`` (excesses kept),
        as libspot holds them now.
        """
        self._check_fitted()
        s = self._spot
        return {"t": float(s.excess_threshold), "gamma": float(s.gamma),
                "sigma": float(s.sigma), "n": float(s.n), "n_excess": float(s.Nt)}

    def probability(self, z: float) -> float:
        """libspot's ``P(X > z)`` under the fitted tail (meaningful for ``z`` above ``t``)."""
        self._check_fitted()
        return float(self._spot.probability(_check_float(z, "z")))

    def _check_fitted(self) -> None:
        if self._spot is None:
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("This Spot is not fitted yet; call fit() first")

    def step(self, x: float) -> bool:
        """Feed one value; True if it is an anomaly (beyond the threshold before the update)."""
        import libspot

        self._check_fitted()
        x = _check_float(x, "x")
        return self._spot.step(x) == libspot.ANOMALY

    def step_batch(self, x: Any) -> np.ndarray:
        """Feed values in order; a bool array, True where a value was an anomaly.

        The same as calling :meth:`step` on each value, in one call.
        """
        import libspot

        self._check_fitted()
        values, _, _ = _as_2d(x, "x")
        if values.shape[1] != 1:
            raise ValueError(f"x must be one series, got shape {values.shape}")
        step = self._spot.step
        return np.fromiter((step(float(v)) == libspot.ANOMALY for v in values[:, 0]),
                           dtype=bool, count=len(values))


    def step_trace(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Feed float64 values in order; the step codes and the thresholds each value met.

        The fast path of the streaming detectors: no validation (pass a 1-d
        float64 array without NaN), and the thresholds are read from libspot
        only after an excess, the one step that moves them.

        Returns
        -------
        codes : ndarray of int8
            :data:`STEP_NORMAL`, :data:`STEP_EXCESS` or :data:`STEP_ANOMALY`.
        z, t : ndarray of float
            The alarm threshold ``z_q`` and the tail start ``t`` in force
            when each value arrived (before its own update).

        Examples
        --------
        >>> import numpy as np
        >>> s = Spot().fit(np.random.default_rng(1).normal(size=2000))
        >>> codes, z, t = s.step_trace(np.array([0.0, 9.0]))
        >>> codes.tolist(), bool(z[1] < 9.0)
        ([0, 2], True)
        """
        self._check_fitted()
        spot = self._spot
        step = spot.step
        n = len(x)
        codes = np.empty(n, dtype=np.int8)
        z = np.empty(n)
        t = np.empty(n)
        cur_z, cur_t = spot.anomaly_threshold, spot.excess_threshold
        start = 0
        for i, v in enumerate(x.tolist()):
            c = step(v)
            codes[i] = c
            if c == STEP_EXCESS:
                z[start:i + 1] = cur_z
                t[start:i + 1] = cur_t
                start = i + 1
                cur_z, cur_t = spot.anomaly_threshold, spot.excess_threshold
        z[start:] = cur_z
        t[start:] = cur_t
        return codes, z, t


class DSpot:
    """DSPOT: SPOT on the residual of a moving average of the last ``depth`` normal values.

    Parameters
    ----------
    depth : int, default 10
        Length of the moving window that estimates the local level.
    q, level, discard_anomalies, max_excess
        As in :class:`Spot`.

    Notes
    -----
    Siffer et al. 2017, section 4.2 (algorithm 3). As in the paper, a value
    flagged as an anomaly does not enter the moving window. libspot 3.1 has no
    DSPOT, so the drift part is written here, around :class:`Spot`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(2)
    >>> drift = np.linspace(0, 50, 3000) + rng.normal(size=3000)
    >>> d = DSpot(depth=20).fit(drift[:2000])
    >>> int(d.step_batch(drift[2000:]).sum()) <= 3
    True
    """

    def __init__(self, depth: int = 10, q: float = DEFAULT_Q, level: float = DEFAULT_LEVEL, *,
                 discard_anomalies: bool = True, max_excess: int = 500):
        self.depth = _check_int(depth, "depth", minimum=1)
        self._spot = Spot(q, level, discard_anomalies=discard_anomalies, max_excess=max_excess)
        self._window: deque[float] | None = None

    def fit(self, x: Any) -> DSpot:
        """Fit on a calibration batch of at least ``depth + min_fit_size(level)`` values."""
        values, _, _ = _as_2d(x, "x")
        if values.shape[1] != 1:
            raise ValueError(f"x must be one series, got shape {values.shape}")
        values = values[:, 0]
        need = self.depth + min_fit_size(self._spot.level)
        if len(values) < need:
            raise ValueError(f"x has {len(values)} values; DSPOT with depth={self.depth} at "
                             f"level={self._spot.level:g} needs at least {need}")
        self._spot.fit(residuals_to_moving_average(values, self.depth))
        self._window = deque(values[-self.depth:].tolist(), maxlen=self.depth)
        return self

    @property
    def threshold_(self) -> float:
        """Threshold on the residual (value minus the moving average)."""
        return self._spot.threshold_

    @property
    def level_(self) -> float:
        """The current moving average: the value ``threshold_`` is added to."""
        if self._window is None:
            self._spot._check_fitted()
        return float(np.mean(self._window))

    def step(self, x: float) -> bool:
        """Feed one value; True if it is an anomaly."""
        x = _check_float(x, "x")
        if self._window is None:
            self._spot._check_fitted()
        anomaly = self._spot.step(x - sum(self._window) / self.depth)
        if not anomaly:
            self._window.append(x)
        return anomaly

    def step_batch(self, x: Any) -> np.ndarray:
        """Feed values in order; a bool array, True where a value was an anomaly."""
        values, _, _ = _as_2d(x, "x")
        if values.shape[1] != 1:
            raise ValueError(f"x must be one series, got shape {values.shape}")
        return np.fromiter((self.step(float(v)) for v in values[:, 0]), dtype=bool,
                           count=len(values))


def tail_probability(z: Any, tail: dict[str, float]) -> np.ndarray:
    """``P(X > z)`` under a fitted GPD tail, for an array of ``z`` at once.

    ``share * (1 + gamma * (z - t) / sigma) ** (-1 / gamma)`` with
    ``share = n_excess / n`` (``share * exp(-(z - t) / sigma)`` when
    ``gamma`` is 0), the formula libspot's ``Spot.probability`` evaluates one
    value at a time (Siffer et al. 2017, eq. 1). Beyond the upper end of a
    bounded tail (``gamma < 0``) the probability is 0. Below ``t`` the formula
    is an extrapolation (it passes ``share`` at ``t``, may exceed 1, and is
    inf where undefined); callers decide what to do there.

    Parameters
    ----------
    z : array-like
        Values.
    tail : dict
        :attr:`Spot.tail_` (keys ``t``, ``gamma``, ``sigma``, ``n``, ``n_excess``).

    Returns
    -------
    ndarray of float, the shape of ``z``

    Examples
    --------
    >>> import numpy as np
    >>> s = Spot().fit(np.random.default_rng(0).normal(size=5000))
    >>> p = tail_probability([3.0], s.tail_)
    >>> bool(np.isclose(p[0], s.probability(3.0)))
    True
    """
    z = np.asarray(z, dtype=np.float64)
    t, gamma, sigma = tail["t"], tail["gamma"], tail["sigma"]
    share = tail["n_excess"] / tail["n"]
    y = (z - t) / sigma
    if gamma == 0.0:
        # far below t, exp(-y) overflows to inf: a probability above 1, as the power form gives
        with np.errstate(over="ignore"):
            return share * np.exp(-y)
    base = 1.0 + gamma * y
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = share * np.power(np.where(base > 0, base, 1.0), -1.0 / gamma)
    return np.where(base > 0, out, 0.0 if gamma < 0 else np.inf)


def tail_quantile(p: float, tail: dict[str, float]) -> float:
    """The value ``z`` with ``P(X > z) = p`` under a fitted GPD tail (inverse of
    :func:`tail_probability`; libspot's ``Spot.quantile``).

    ``t + sigma / gamma * ((p / share) ** -gamma - 1)``, or
    ``t - sigma * log(p / share)`` when ``gamma`` is 0 (Siffer et al. 2017,
    eq. 2, with ``share = n_excess / n``). At ``p = q`` it is the SPOT
    threshold ``z_q``.

    Examples
    --------
    >>> import numpy as np
    >>> s = Spot(q=1e-3).fit(np.random.default_rng(0).normal(size=5000))
    >>> bool(np.isclose(tail_quantile(1e-3, s.tail_), s.threshold_))
    True
    """
    p = _check_float(p, "p")
    t, gamma, sigma = tail["t"], tail["gamma"], tail["sigma"]
    r = p / (tail["n_excess"] / tail["n"])
    if gamma == 0.0:
        return float(t - sigma * math.log(r))
    return float(t + sigma / gamma * (r ** -gamma - 1.0))


def residuals_to_moving_average(x: np.ndarray, depth: int) -> np.ndarray:
    """``x[i] - mean(x[i - depth : i])`` for ``i >= depth`` (DSPOT's calibration residuals).

    Examples
    --------
    >>> residuals_to_moving_average(np.array([1.0, 2.0, 3.0, 10.0]), 2).tolist()
    [1.5, 7.5]
    """
    x = np.asarray(x, dtype=np.float64)
    csum = np.concatenate(([0.0], np.cumsum(x)))
    means = (csum[depth:-1] - csum[:-depth - 1]) / depth
    return x[depth:] - means
