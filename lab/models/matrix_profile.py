"""Matrix-profile discords (Yeh et al. 2016) as a detector, through stumpy."""

from __future__ import annotations

import warnings

import numpy as np

from lab._validation import _check_int
from lab.models._base import MAX_FIT_WINDOWS, MIN_WINDOW, BaseDetector, estimate_window
from lab.models.thresholds import DEFAULT_CONTAMINATION

__all__ = ["MatrixProfileDetector"]

#: When the training rows hold more than MAX_FIT_WINDOWS windows, the
#: reference keeps MAX_FIT_WINDOWS of them in this many evenly spaced
#: contiguous blocks (a join needs contiguous rows; blocks keep the variety of
#: a long training set). Blocks are joined by a NaN row, so that no window
#: spans two of them: stumpy gives a window with NaN an infinite distance.
MP_BLOCKS = 10


class MatrixProfileDetector(BaseDetector):
    """Distance of each window to its nearest neighbour among the training windows.

    A window of the scored series that resembles no window of the (normal)
    training series is a discord: its z-normalised Euclidean distance to its
    nearest training window, the matrix profile of an AB-join, is large.

    Parameters
    ----------
    window : int or "auto", default "auto"
        Subsequence length ``m`` in rows. ``"auto"``: the dominant period of
        the training rows (:func:`lab.models._base.estimate_window`).
    threshold : {"quantile", "spot", "sigma"}, float or dict, default "quantile"
        See :mod:`lab.models.thresholds`.
    contamination : float, default 0.01

    Attributes
    ----------
    window_ : int
        The subsequence length used.
    reference_ : ndarray of shape (n_reference, n_columns)
        The training rows the scored windows are compared with (evenly spaced
        blocks joined by NaN rows when the training set is long).

    Notes
    -----
    Yeh, Zhu, Ulanova, Begum, Ding, Dau, Silva, Mueen and Keogh, "Matrix
    Profile I: All Pairs Similarity Joins for Time Series", ICDM 2016; the
    joins are ``stumpy.stump`` (Law 2019).

    * Why an AB-join with the training rows, not a self-join of the scored
      series: the question a researcher asks is "is this unlike normal
      data?", and a self-join answers "is this unlike the rest of this
      series?", which misses an anomaly that repeats (its twin is its
      nearest neighbour) and depends on what else was scored in the call.
    * Training scores: a training window's distance to its nearest training
      window outside its own exclusion zone (``m / 4`` rows either side,
      stumpy's self-join), so that it is not its own neighbour at distance 0.
    * Fits on at most ``MAX_FIT_WINDOWS`` (10,000) training windows: longer
      training sets keep ``MP_BLOCKS`` evenly spaced contiguous blocks of
      ``MAX_FIT_WINDOWS / MP_BLOCKS`` windows. Training rows outside the
      blocks take the score of the last block window before them.
    * Univariate rule, multivariate by column: each column is joined with its
      own training column; a row's score is the largest distance over
      columns. The z-normalised distance is free of scale and lies in
      ``[0, 2 sqrt(m)]``, so columns compare as they are. A constant window
      is at distance 0 from a constant one and ``sqrt(m)`` from any other
      (stumpy's convention).
    * Placement: a window's score goes to the row that ends it; the first
      ``m - 1`` rows take the first score.
    * Cost: O(n r d) time for ``n`` scored rows, ``r`` reference rows (at
      most about 10,000 + blocks) and ``d`` columns; O((n + r) d) memory.
      The first call in a process also compiles stumpy's numba kernels (one
      to three minutes on a busy two-core machine), which is not counted in
      the detector's cost.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(1200)
    >>> x = np.sin(2 * np.pi * t / 40) + 0.05 * np.random.default_rng(0).normal(size=1200)
    >>> det = MatrixProfileDetector(window=40).fit(x[:800])
    >>> y = x[800:].copy()
    >>> y[200:240] = np.sin(2 * np.pi * np.arange(40) / 10)
    >>> 200 <= int(det.score(y).argmax()) < 280
    True
    """

    _state_attrs = ("window_", "reference_")

    def __init__(self, window="auto", threshold="quantile",
                 contamination: float = DEFAULT_CONTAMINATION):
        self.window = window
        self.threshold = threshold
        self.contamination = contamination

    @property
    def min_rows(self) -> int:
        """Rows to score: one window; to fit: two windows (a neighbour outside the own)."""
        if hasattr(self, "window_"):
            return self.window_
        return 2 * (self.window if isinstance(self.window, int) else MIN_WINDOW)

    def _check_params(self) -> None:
        super()._check_params()
        if self.window != "auto":
            _check_int(self.window, "window", minimum=3)

    def _fit(self, values: np.ndarray, y, valid) -> None:
        n = len(values)
        if self.window == "auto":
            m = max(3, min(estimate_window(values), n // 2))
        else:
            m = self.window
            if n < 2 * m:
                raise ValueError(f"X has {n} rows (shape {values.shape}); a matrix profile of "
                                 f"window={m} needs at least {2 * m} rows to fit")
        self.window_ = int(m)
        self._reference_rows = _reference_rows(n, self.window_)
        ref = np.full((len(self._reference_rows), values.shape[1]), np.nan)
        kept = self._reference_rows >= 0
        ref[kept] = values[self._reference_rows[kept]]
        self.reference_ = ref

    def _training_scores(self, values: np.ndarray) -> np.ndarray:
        m = self.window_
        best = None
        for j in range(values.shape[1]):
            p = _stump(self.reference_[:, j], m)
            best = p if best is None else np.maximum(best, p)
        rows = self._reference_rows[m - 1 :]  # the training row ending each window
        # windows across a block join hold the NaN row: stumpy gives them inf
        whole = np.isfinite(best)
        return self._place(rows[whole], best[whole], len(values))

    def _score(self, values: np.ndarray) -> np.ndarray:
        m = self.window_
        best = None
        for j in range(values.shape[1]):
            p = _stump(T_A=values[:, j], m=m, T_B=self.reference_[:, j], ignore_trivial=False)
            best = p if best is None else np.maximum(best, p)
        return self._place(np.arange(m - 1, len(values)), best, len(values))


def _stump(*args, **kwargs) -> np.ndarray:
    """The distances (column 0) of ``stumpy.stump(*args, **kwargs)`` as float64."""
    import stumpy

    with warnings.catch_warnings():
        # stumpy suspects a mistaken self-join when many distances are ~0; in an
        # AB-join with normal data, or a self-join of flat data, 0 is the right answer
        warnings.filterwarnings("ignore", message="A large number of values in `P`",
                                category=UserWarning)
        return stumpy.stump(*args, **kwargs)[:, 0].astype(np.float64)


def _reference_rows(n: int, m: int) -> np.ndarray:
    """Training row of each reference row (-1 for the NaN row between two blocks).

    All ``n`` rows while they hold at most ``MAX_FIT_WINDOWS`` windows; else
    ``MP_BLOCKS`` evenly spaced blocks of ``MAX_FIT_WINDOWS // MP_BLOCKS``
    windows each.

    Examples
    --------
    >>> _reference_rows(6, 3).tolist()
    [0, 1, 2, 3, 4, 5]
    """
    if n - m + 1 <= MAX_FIT_WINDOWS:
        return np.arange(n)
    block = MAX_FIT_WINDOWS // MP_BLOCKS + m - 1
    starts = np.linspace(0, n - block, MP_BLOCKS).round().astype(np.intp)
    parts = []
    for k, start in enumerate(starts):
        if k:
            parts.append([-1])
        parts.append(np.arange(start, start + block))
    return np.concatenate(parts)
