"""Spectral residual (Ren et al., KDD 2019) as a detector, over :func:`lab.signal_utility.spectral_residual`."""

from __future__ import annotations

import numpy as np
from scipy.stats import median_abs_deviation

from lab._validation import _check_int
from lab.models._base import BaseDetector
from lab.models.thresholds import DEFAULT_CONTAMINATION
from lab.signal_utility import (
    SR_EPS,
    SR_LOOK_AHEAD,
    SR_MAG_WINDOW,
    SR_SCORE_WINDOW,
    smooth,
    spectral_residual,
)

__all__ = ["SpectralResidualDetector", "saliency_ratio"]

#: Floor of a column's training scale: a column whose training ratios do not
#: vary (a constant series) would otherwise divide by zero.
SR_MIN_SCALE = 1e-12


def saliency_ratio(values: np.ndarray, mag_window: int = SR_MAG_WINDOW,
                   score_window: int = SR_SCORE_WINDOW) -> np.ndarray:
    """``|S - mean_z(S)| / mean_z(S)`` per row and column, ``S`` the saliency map.

    Microsoft's anomaly score (Ren et al. 2019, eq. 4) without its ``/ 10``
    and its clipping to [0, 1], which would tie every strong anomaly at 1:
    ``spectral_residual(x, output="score") == clip(saliency_ratio(x) / 10, 0, 1)``.

    Parameters
    ----------
    values : ndarray of shape (n, d)
        Validated series (no NaN, at least ``SR_LOOK_AHEAD + 2`` rows).
    mag_window, score_window : int
        As in :func:`lab.signal_utility.spectral_residual`.

    Returns
    -------
    ndarray of shape (n, d)

    Examples
    --------
    >>> x = np.sin(np.arange(200) / 5.0)[:, None]
    >>> x[120] += 3.0
    >>> int(np.argmax(saliency_ratio(x)))
    120
    """
    saliency = spectral_residual(values, mag_window=mag_window, score_window=score_window)
    local = np.maximum(smooth(saliency, score_window, "mean"), SR_EPS)
    return np.abs(saliency - local) / local


class SpectralResidualDetector(BaseDetector):
    """Spectral residual saliency (Ren et al. 2019), scaled by each column's training spread.

    The saliency map of a series is large where the series breaks its usual
    spectrum; each row's saliency is compared with the mean of the
    ``score_window`` rows before it (Microsoft's score), and that ratio is
    robustly standardised with the column's training median and MAD.

    Parameters
    ----------
    mag_window : int, default 3
        Average filter on the log amplitude spectrum (``q`` in the paper).
    score_window : int, default 40
        Trailing mean the saliency is compared with (``z`` in the paper).
    threshold : {"quantile", "spot", "sigma"}, float or dict, default "quantile"
        See :mod:`lab.models.thresholds`.
    contamination : float, default 0.01

    Attributes
    ----------
    center_, scale_ : ndarray of shape (n_columns,)
        Median and MAD (normal-consistent) of each column's training ratios.

    Notes
    -----
    Ren, Xu, Wang, Yi, Wang, Xu, Yang, Zhang and Zhang, "Time-Series Anomaly
    Detection Service at Microsoft", KDD 2019. The saliency is
    :func:`lab.signal_utility.spectral_residual` with Microsoft's defaults;
    the ratio is :func:`saliency_ratio`, Microsoft's score unclipped.

    * The saliency itself is not compared across calls: its size depends on
      the number of rows transformed (the inverse FFT spreads a fixed
      spectrum over them). The ratio to the local mean does not, which is why
      the detector standardises the ratio rather than the saliency.
    * Univariate rule, multivariate by column: score of column ``j`` is
      ``(ratio_j - center_j) / scale_j``; a row's score is the maximum over
      columns, so every column is measured in its own training spread.
    * Placement: one score per row. The transform runs once over the whole
      scored series (the paper's batch mode), so a row's score depends on
      the other rows of the same call, ahead of it too.
    * Cost: O(n log n) time and O(n) memory per column (one FFT).

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(2000)
    >>> x = np.sin(2 * np.pi * t / 50) + 0.1 * np.random.default_rng(0).normal(size=2000)
    >>> det = SpectralResidualDetector().fit(x[:1000])
    >>> y = x[1000:].copy()
    >>> y[500] += 3.0
    >>> int(det.score(y).argmax())
    500
    """

    _state_attrs = ("center_", "scale_")

    def __init__(self, mag_window: int = SR_MAG_WINDOW, score_window: int = SR_SCORE_WINDOW,
                 threshold="quantile", contamination: float = DEFAULT_CONTAMINATION):
        self.mag_window = mag_window
        self.score_window = score_window
        self.threshold = threshold
        self.contamination = contamination

    @property
    def min_rows(self) -> int:
        """Rows the spectral residual needs: ``SR_LOOK_AHEAD + 2`` (its extrapolation)."""
        return SR_LOOK_AHEAD + 2

    def _check_params(self) -> None:
        super()._check_params()
        _check_int(self.mag_window, "mag_window", minimum=1)
        _check_int(self.score_window, "score_window", minimum=1)

    def _ratio(self, values: np.ndarray) -> np.ndarray:
        return saliency_ratio(values, self.mag_window, self.score_window)

    def _fit(self, values: np.ndarray, y, valid) -> None:
        ratio = self._ratio(values)
        self.center_ = np.median(ratio, axis=0)
        self.scale_ = np.maximum(median_abs_deviation(ratio, axis=0, scale="normal"),
                                 SR_MIN_SCALE)

    def _score(self, values: np.ndarray) -> np.ndarray:
        return ((self._ratio(values) - self.center_) / self.scale_).max(axis=1)
