"""Robust z-scores per channel, with flat-line detection: :class:`RobustZDetector`.

Device recordings fail in a few plain ways: a value leaves its usual range
(a mask leak), jumps away from its neighbours (a pressure spike, a mask taken
off) or stops moving (a stuck sensor). Three robust statistics catch them,
column by column, and the row's score is the largest:

* the global z-score ``|x - median| / scale``, median and scale (MAD times
  1.4826) learned from the training rows;
* the local z-score ``|x - m_w(x)| / scale_local``, where ``m_w`` is the
  trailing rolling median over ``window`` rows of the scored data itself and
  ``scale_local`` the MAD of the training rows' residuals (slow drift and
  night-to-night offsets cancel);
* a flat-line score: inside a run of ``flat_rows`` or more identical
  values, ``z_threshold * (1 + run / flat_rows)``, above the native
  threshold by construction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lab._validation import _check_float, _check_int
from lab.models._base import BaseDetector
from lab.models.thresholds import DEFAULT_CONTAMINATION

__all__ = ["RobustZDetector"]

#: MAD to standard deviation for normal data.
MAD_TO_SD = 1.4826
#: Smallest scale, relative to max(1, |median|): a constant training column still divides.
SCALE_FLOOR = 1e-6


def _rolling_median(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing rolling median of each column (pandas; shorter windows at the start)."""
    return pd.DataFrame(values).rolling(window, min_periods=1).median().to_numpy()


def _run_lengths(values: np.ndarray) -> np.ndarray:
    """For every entry, the length of the run of identical values (per column) it belongs to."""
    n, d = values.shape
    out = np.empty((n, d), dtype=np.int64)
    for j in range(d):
        x = values[:, j]
        new = np.r_[True, x[1:] != x[:-1]]
        ids = np.cumsum(new) - 1
        out[:, j] = np.bincount(ids)[ids]
    return out


def _robust_z_kernel(values: np.ndarray, median: np.ndarray, scale: np.ndarray,
                     local_scale: np.ndarray, window: int, flat_rows: int,
                     z_threshold: float) -> np.ndarray:
    """Per-entry score (n, d): max of global z, local z and the flat-line score."""
    z = np.abs(values - median) / scale
    local = np.abs(values - _rolling_median(values, window)) / local_scale
    np.maximum(z, local, out=z)
    runs = _run_lengths(values)
    flat = np.where(runs >= flat_rows, z_threshold * (1.0 + runs / flat_rows), 0.0)
    return np.maximum(z, flat)


def _scale(x: np.ndarray, center: np.ndarray) -> np.ndarray:
    mad = np.median(np.abs(x - center), axis=0) * MAD_TO_SD
    return np.maximum(mad, SCALE_FLOOR * np.maximum(1.0, np.abs(center)))


class RobustZDetector(BaseDetector):
    """Robust z-score per channel (global and rolling-median residual) with flat-line detection.

    Parameters
    ----------
    window : int, default 301
        Rows of the trailing rolling median (the row and those before it)
        that the local z-score compares each value with (at 1 Hz, five
        minutes). A step change alarms for about ``window / 2`` rows after
        it, whatever it lasts.
    flat_rows : int, default 60
        A run of this many identical values or more is a flat line.
    z_threshold : float, default 15.0
        The native threshold (``threshold="native"``), in robust standard
        deviations.
    threshold : {"native", "quantile", "spot", "sigma"}, float or dict, default "native"
        See :mod:`lab.models.thresholds`.
    contamination : float, default 0.01

    Attributes
    ----------
    median_, scale_, local_scale_ : ndarray of shape (n_columns,)
        Training median and MAD-based scales (global, and of the residuals
        from the rolling median).

    Notes
    -----
    The MAD-based z-score is the robust outlier rule of Iglewicz and Hoaglin
    (1993); Rousseeuw and Croux (1993) give the 1.4826 consistency factor.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(2000, 2))
    >>> det = RobustZDetector().fit(x)
    >>> y = x.copy(); y[500, 0] = 20.0; y[1000:1100, 1] = 0.5
    >>> alarms = det.predict(y)
    >>> bool(alarms[500]), bool(alarms[1050]), int(alarms.sum())
    (True, True, 101)
    >>> int(det.contributions(y).iloc[500].idxmax())
    0
    """

    _state_attrs = ("median_", "scale_", "local_scale_")
    _default_threshold = "native"

    def __init__(self, window: int = 301, flat_rows: int = 60, z_threshold: float = 15.0,
                 threshold="native", contamination: float = DEFAULT_CONTAMINATION):
        self.window = window
        self.flat_rows = flat_rows
        self.z_threshold = z_threshold
        self.threshold = threshold
        self.contamination = contamination

    @property
    def lookback_(self) -> int:
        """Rows before a row that its rolling median reads: ``window - 1``.

        A flat-line run also reads back to the run's start (and on to its end).
        """
        self._check_is_fitted()
        return int(self.window) - 1

    def _check_params(self) -> None:
        super()._check_params()
        _check_int(self.window, "window", minimum=1)
        _check_int(self.flat_rows, "flat_rows", minimum=2)
        if not _check_float(self.z_threshold, "z_threshold") > 0:
            raise ValueError(f"z_threshold must be positive, got {self.z_threshold!r}")

    def _fit(self, values: np.ndarray, y, valid) -> None:
        self.median_ = np.median(values, axis=0)
        self.scale_ = _scale(values, self.median_)
        resid = values - _rolling_median(values, self.window)
        self.local_scale_ = _scale(resid, np.zeros(values.shape[1]))

    def _entries(self, values: np.ndarray) -> np.ndarray:
        return _robust_z_kernel(values, self.median_, self.scale_, self.local_scale_,
                                int(self.window), int(self.flat_rows), float(self.z_threshold))

    def _score(self, values: np.ndarray) -> np.ndarray:
        return self._entries(values).max(axis=1)

    def _native_threshold(self, valid_values) -> float:
        return float(self.z_threshold)

    def contributions(self, X) -> pd.DataFrame:
        """Each column's score at each row (the row's score is their maximum).

        Parameters
        ----------
        X : DataFrame or ndarray of shape (n_timepoints, n_series)
            The fitted columns.

        Returns
        -------
        DataFrame
            Same index and columns as ``X`` (the fitted columns, in order).
        """
        values = self._check_columns(X)
        index = X.index if isinstance(X, pd.DataFrame | pd.Series) else pd.RangeIndex(len(values))
        return pd.DataFrame(self._entries(values), index=index, columns=list(self.columns_))
