"""Floor detectors for every results table: :class:`RandomDetector` and :class:`ConstantDetector`.

A detector that does not beat both of these on a metric has learned nothing
that the metric can see. VUS and AUC give about 0.5 (ROC) or the anomaly
share (PR) to both; point-adjusted F1 can score the random one highly, which
is why the lab reports it only with a warning.
"""

from __future__ import annotations

import numpy as np

from lab._validation import _check_int
from lab.models._base import BaseDetector
from lab.models.thresholds import DEFAULT_CONTAMINATION

__all__ = ["RandomDetector", "ConstantDetector"]


class RandomDetector(BaseDetector):
    """Scores drawn uniformly from [0, 1), independent of the data: the chance floor.

    Parameters
    ----------
    random_state : int, default 0
        Seed. The scores of a call depend on the seed and the number of rows
        only, so ``score`` is deterministic.
    threshold : {"quantile", "spot", "sigma"}, float or dict, default "quantile"
        See :mod:`lab.models.thresholds`.
    contamination : float, default 0.01

    Notes
    -----
    Univariate and multivariate alike: the columns are not read.

    Examples
    --------
    >>> import numpy as np
    >>> det = RandomDetector(random_state=1).fit(np.zeros((100, 2)))
    >>> s = det.score(np.zeros((5, 2)))
    >>> len(s), bool(((s >= 0) & (s < 1)).all())
    (5, True)
    """

    _state_attrs = ()

    def __init__(self, random_state: int = 0, threshold="quantile",
                 contamination: float = DEFAULT_CONTAMINATION):
        self.random_state = random_state
        self.threshold = threshold
        self.contamination = contamination

    def _check_params(self) -> None:
        super()._check_params()
        _check_int(self.random_state, "random_state", minimum=0)

    def _fit(self, values, y, valid) -> None:
        pass

    def _score(self, values: np.ndarray) -> np.ndarray:
        return np.random.default_rng(self.random_state).random(len(values))


class ConstantDetector(BaseDetector):
    """The same score, 0, for every row: the floor that flags nothing.

    Parameters
    ----------
    threshold : {"quantile", "spot", "sigma"}, float or dict, default "quantile"
        With every score 0 the quantile threshold is 0 and ``predict`` is all
        False.
    contamination : float, default 0.01

    Examples
    --------
    >>> import numpy as np
    >>> det = ConstantDetector().fit(np.arange(10.0))
    >>> det.score(np.arange(3.0)).tolist(), bool(det.predict(np.arange(3.0)).any())
    ([0.0, 0.0, 0.0], False)
    """

    def __init__(self, threshold="quantile", contamination: float = DEFAULT_CONTAMINATION):
        self.threshold = threshold
        self.contamination = contamination

    def _fit(self, values, y, valid) -> None:
        pass

    def _score(self, values: np.ndarray) -> np.ndarray:
        return np.zeros(len(values))
