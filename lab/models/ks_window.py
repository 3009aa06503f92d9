"""The two-sample Kolmogorov-Smirnov statistic between a sliding focus window and its baseline."""

from __future__ import annotations

import numpy as np

from lab._validation import _check_int
from lab.models._base import MIN_WINDOW, BaseDetector, estimate_window
from lab.models.thresholds import DEFAULT_CONTAMINATION
from lab.signal_utility import ks_2samp_columns
from lab.tensor_utility import sliding_windows

__all__ = ["KSWindowDetector"]

#: Baseline length as a multiple of the focus window when ``baseline=None``.
BASELINE_FACTOR = 2
#: ``stride="auto"`` scores every ``ceil(window / KS_STRIDE_DIVISOR)``-th row:
#: the cost per row is then the same for every window length, and the score
#: moves in steps of a tenth of the focus, finer than the focus resolves.
KS_STRIDE_DIVISOR = 10
#: Elements (window pairs x rows per pair) handed to ks_2samp_columns at once:
#: the copies it makes stay near 16 MB while the per-call overhead is spread
#: over thousands of windows.
KS_CHUNK_ELEMENTS = 2_000_000


class KSWindowDetector(BaseDetector):
    """KS statistic between the last ``window`` rows and the ``baseline`` rows before them.

    The score at row ``t`` is the two-sample Kolmogorov-Smirnov statistic
    between the focus ``x[t - window + 1 : t + 1]`` and its trailing baseline
    ``x[t - window - baseline + 1 : t - window + 1]``: 0 when the two look
    alike, 1 when they do not overlap at all. It sees a change of
    distribution (a level shift, a change of variance), not a lone spike.

    Parameters
    ----------
    window : int or "auto", default "auto"
        Focus length in rows. ``"auto"``: the dominant period of the training
        rows (:func:`lab.models._base.estimate_window`), so that the focus
        holds whole periods.
    baseline : int, optional
        Baseline length in rows; default ``2 * window``.
    stride : int or "auto", default "auto"
        Score every ``stride``-th window only (the last one always); the rows
        between take the last score. 1 scores every row; ``"auto"`` is
        ``ceil(window / 10)``, which keeps 100,000 rows under a few seconds
        for any window (5 rows for a window of 50).
    threshold : {"quantile", "spot", "sigma"}, float or dict, default "quantile"
        See :mod:`lab.models.thresholds`.
    contamination : float, default 0.01

    Attributes
    ----------
    window_, baseline_, stride_ : int
        The focus length, baseline length and stride used.

    Notes
    -----
    The two-sample KS test (Smirnov 1939) on sliding windows, as in the
    change detectors of Kifer, Ben-David and Gehrke, "Detecting Change in
    Data Streams", VLDB 2004. The statistic is
    :func:`lab.signal_utility.ks_2samp_columns`, equal to
    ``scipy.stats.ks_2samp(...).statistic``; many window pairs are tested at
    once by making each pair a column.

    * Learns only its window lengths: the statistic needs no training (the
      training scores still set ``threshold_``).
    * Univariate rule, multivariate by column: a row's score is the largest
      statistic over columns (each is in [0, 1], free of scale).
    * Placement: a window pair's score goes to its last row; rows between
      two scored pairs (``stride > 1``) take the last score; rows before the
      first full pair (``window + baseline - 1`` of them) take the first
      score.
    * Cost: O(n (w + b) log(w + b) d / stride) time (O(n d) with the
      default stride and baseline), O(KS_CHUNK_ELEMENTS)
      extra memory, for ``n`` rows, ``d`` columns, focus ``w`` and baseline ``b``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=600)
    >>> x[400:] += 10.0
    >>> det = KSWindowDetector(window=20).fit(x[:300])
    >>> s = det.score(x)
    >>> int(s.argmax()), float(s.max())
    (419, 1.0)
    """

    _state_attrs = ("window_", "baseline_", "stride_")

    def __init__(self, window="auto", baseline: int | None = None, stride="auto",
                 threshold="quantile", contamination: float = DEFAULT_CONTAMINATION):
        self.window = window
        self.baseline = baseline
        self.stride = stride
        self.threshold = threshold
        self.contamination = contamination

    @property
    def min_rows(self) -> int:
        """Rows for one focus and its baseline (fitted lengths once fitted)."""
        if hasattr(self, "window_"):
            return self.window_ + self.baseline_
        window = self.window if isinstance(self.window, int) else MIN_WINDOW
        baseline = self.baseline if isinstance(self.baseline, int) else BASELINE_FACTOR * window
        return max(2, window + baseline)

    def _check_params(self) -> None:
        super()._check_params()
        if self.window != "auto":
            _check_int(self.window, "window", minimum=1)
        if self.baseline is not None:
            _check_int(self.baseline, "baseline", minimum=1)
        if self.stride != "auto":
            _check_int(self.stride, "stride", minimum=1)

    def _fit(self, values: np.ndarray, y, valid) -> None:
        n = len(values)
        if self.window == "auto":
            # the estimate may not leave room for a baseline in short training data
            room = n - self.baseline if self.baseline is not None else n // (1 + BASELINE_FACTOR)
            window = max(1, min(estimate_window(values), room))
        else:
            window = self.window
        self.window_ = int(window)
        self.baseline_ = int(self.baseline if self.baseline is not None
                             else BASELINE_FACTOR * self.window_)
        self.stride_ = int(-(-self.window_ // KS_STRIDE_DIVISOR) if self.stride == "auto"
                           else self.stride)

    def _score(self, values: np.ndarray) -> np.ndarray:
        w, b = self.window_, self.baseline_
        pairs = sliding_windows(values, w + b)  # (n_pairs, w + b, d) view
        starts = np.arange(0, len(pairs), self.stride_)
        if starts[-1] != len(pairs) - 1:
            starts = np.append(starts, len(pairs) - 1)
        best = np.zeros(len(starts))
        chunk = max(1, KS_CHUNK_ELEMENTS // (w + b))
        for lo in range(0, len(starts), chunk):
            sel = pairs[starts[lo : lo + chunk]]
            for j in range(values.shape[1]):
                # columns are window pairs: rows [0, b) the baseline, [b, b + w) the focus
                with np.errstate(divide="ignore", invalid="ignore"):
                    # the p-values (unused) of tiny samples divide by zero on the way
                    stat, _ = ks_2samp_columns(sel[:, :b, j].T, sel[:, b:, j].T,
                                               method="asymp")
                np.maximum(best[lo : lo + chunk], stat, out=best[lo : lo + chunk])
        return self._place(starts + w + b - 1, best, len(values))
