"""Classic detectors on sliding windows: PCA, HBOS, Isolation Forest, LOF and k-NN.

Every detector here runs one pipeline, after TSB-AD's "Sub-" detectors (Liu
and Paparrizos, NeurIPS 2024), and wraps a well-kept library estimator
(scikit-learn or PyOD) thinly:

1. **Standardise** each column with the mean and standard deviation of the
   *training* rows (a column with zero spread is only centred). Distances
   (LOF, k-NN) and variances (PCA) then weigh every column alike whatever
   its unit, and a row's score never depends on other test rows: statistics
   of the test data would leak it into the model. HBOS and Isolation Forest
   are invariant to a per-feature rescaling; they share the step so that one
   pipeline serves all five.
2. **Window**: ``window`` consecutive rows, all columns, flattened row-major
   into one vector of ``window * n_columns`` features (time, then column).
   Multivariate input is therefore handled jointly, not column by column.
   ``window="auto"`` takes the dominant period of the training rows
   (:func:`lab.models._base.estimate_window`, TSB-AD's ``find_length``);
   ``window=1`` scores single rows (points).
3. **Fit** the estimator on at most ``MAX_FIT_WINDOWS`` (10,000) windows,
   evenly spaced over the training rows, the last one always kept.
4. **Score** every window of the input in chunks of bounded memory, and place
   each window's score on the row that ends it; rows before the first full
   window take the first window's score.

``min_rows`` is the window (the fitted ``window_`` once fitted; 8 rows, the
shortest period searched, before an ``"auto"`` window is resolved).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lab._validation import _check_float, _check_int
from lab.models._base import (
    MAX_FIT_WINDOWS,
    MIN_WINDOW,
    BaseDetector,
    estimate_window,
    window_matrix,
)
from lab.models.thresholds import DEFAULT_CONTAMINATION
from lab.tensor_utility import sliding_windows

__all__ = ["PCADetector", "HBOSDetector", "IForestDetector", "LOFDetector", "KNNDetector"]

#: Bytes of flattened windows materialised at once while scoring. LOF and k-NN
#: need large chunks: scikit-learn's k-nearest-neighbour search bounds its own
#: distance memory, and parallelises poorly over a few thousand queries (3x
#: slower per window in chunks of 1,700 than of 30,000).
CHUNK_BYTES = 32 * 2**20
#: PCA: share of the training variance its principal subspace keeps.
DEFAULT_PCA_VARIANCE = 0.9
#: HBOS (TSB-AD's best univariate setting of PyOD's HBOS; alpha and tol are PyOD's).
DEFAULT_HBOS_BINS, DEFAULT_HBOS_ALPHA, DEFAULT_HBOS_TOL = 20, 0.1, 0.5
#: Isolation Forest trees (TSB-AD's best univariate setting; sklearn's default is 100).
DEFAULT_TREES = 200
#: LOF and k-NN neighbours (TSB-AD's best setting of both).
DEFAULT_NEIGHBORS = 50


class _WindowDetector(BaseDetector):
    """Standardise, window, fit a library estimator, score in chunks (the module's pipeline).

    Subclasses write ``_make_estimator(features)`` (return the fitted
    estimator) and ``_window_scores(features)`` (one float per window, higher
    is worse), and may override ``_fit_scores`` to give the fitted windows
    their leave-one-out scores.
    """

    _estimator_attrs = ("estimator_",)
    _state_attrs = ("window_", "mean_", "scale_")

    @property
    def min_rows(self) -> int:
        """Fewest rows ``fit`` and ``score`` accept: the window."""
        if hasattr(self, "window_"):
            return int(self.window_)
        return MIN_WINDOW if self.window == "auto" else max(int(self.window), 1)

    def _check_params(self) -> None:
        super()._check_params()
        if self.window != "auto":
            _check_int(self.window, "window", minimum=1)

    def _fit(self, values: np.ndarray, y: Any, valid: Any) -> None:
        self.window_ = (estimate_window(values) if self.window == "auto"
                        else int(self.window))
        self.mean_ = values.mean(axis=0)
        scale = values.std(axis=0)
        # a constant column is only centred: any later change shows in its own unit
        self.scale_ = np.where(scale > 0, scale, 1.0)
        features, ends = window_matrix(self._standardise(values), self.window_,
                                       max_windows=MAX_FIT_WINDOWS)
        self.estimator_ = self._make_estimator(features)
        # kept only until BaseDetector.fit asks for the training scores, then dropped
        self._fit_rows = (ends - (self.window_ - 1), self._fit_scores(features))

    def _standardise(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean_) / self.scale_

    def _chunk_rows(self, n_features: int) -> int:
        return max(1, CHUNK_BYTES // (8 * n_features))

    def _score(self, values: np.ndarray) -> np.ndarray:
        return self._place(np.arange(self.window_ - 1, len(values)),
                           self._all_window_scores(values), len(values))

    def _training_scores(self, values: np.ndarray) -> np.ndarray:
        scores = self._all_window_scores(values)
        positions, fitted = self._fit_rows
        del self._fit_rows
        if fitted is not None:
            scores[positions] = fitted
        return self._place(np.arange(self.window_ - 1, len(values)), scores, len(values))

    def _all_window_scores(self, values: np.ndarray) -> np.ndarray:
        """The score of every window of ``values``, in chunks of bounded memory."""
        z = self._standardise(values)
        view = sliding_windows(z, self.window_)
        n_windows = len(view)
        n_features = self.window_ * values.shape[1]
        step = self._chunk_rows(n_features)
        scores = np.empty(n_windows)
        for start in range(0, n_windows, step):
            stop = min(start + step, n_windows)
            chunk = np.ascontiguousarray(view[start:stop]).reshape(stop - start, n_features)
            scores[start:stop] = self._window_scores(chunk)
        return scores

    def _fit_scores(self, features: np.ndarray) -> np.ndarray | None:
        """Scores of the fitted windows themselves, or None to score them like any window."""
        return None

    def _make_estimator(self, features: np.ndarray) -> Any:
        raise NotImplementedError

    def _window_scores(self, features: np.ndarray) -> np.ndarray:
        raise NotImplementedError


_WINDOW_PARAM = """window : "auto" or int, default "auto"
        Rows per window; ``"auto"`` takes the dominant period of the
        training rows (8 to 300 rows, else 100), ``1`` scores single rows."""

_COMMON_PARAMS = """threshold : {"quantile", "spot", "sigma"}, float or dict, default "quantile"
        How ``threshold_`` is set from the training scores; see
        :mod:`lab.models.thresholds`.
    contamination : float, default 0.01
        Share of training rows above the ``"quantile"`` threshold."""

_COMMON_NOTES = """Univariate and multivariate alike: a window flattens all columns
    (``window * n_columns`` features), standardised by the training mean and
    standard deviation of each column. The fit uses at most
    ``MAX_FIT_WINDOWS`` (10,000) windows, evenly spaced over the training
    rows (the last one kept). A window's score goes to the row that ends it;
    rows before the first full window take the first window's score."""


class PCADetector(_WindowDetector):
    """Reconstruction error of sliding windows from their principal subspace (Sub-PCA).

    Parameters
    ----------
    {window}
    n_components : float in (0, 1) or int, default 0.9
        The principal subspace: the fewest components that explain this share
        of the training windows' variance, or this many components.
    {common}

    Attributes
    ----------
    window_ : int
    mean_, scale_ : ndarray of shape (n_columns,)
        Training statistics that standardise each column.
    estimator_ : sklearn.decomposition.PCA
        Fitted on the standardised, flattened training windows.

    Notes
    -----
    A window's score is its squared distance to the principal subspace of the
    training windows, ``||z - PCA.inverse_transform(PCA.transform(z))||^2``
    (the squared prediction error, or Q statistic, of Jackson and Mudholkar
    1979; used for anomaly detection by Shyu et al. 2003). TSB-AD's
    Sub-PCA (Liu and Paparrizos, NeurIPS 2024), the best simple detector of
    its univariate benchmark, gives the recipe adopted here: windows of the
    series' dominant period, flattened and standardised with training
    statistics, then scikit-learn's PCA. It differs in two ways. TSB-AD
    scores with PyOD's formula, the distances to every eigenvector weighted
    by the inverse explained-variance ratio, which keeps all components and
    mostly measures the window's norm; here the score is the reconstruction
    error from the components that explain 90% of the variance. And TSB-AD
    places a window's score at its centre; here at its end, like every
    detector of the lab.

    {notes}

    One column with ``window=1`` leaves one feature, which its one
    component reconstructs exactly: every score is 0. Use a window. Constant
    training windows keep no component: the score is then the squared
    deviation of the standardised window from them.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(3000)
    >>> x = np.sin(2 * np.pi * t / 50) + 0.1 * np.random.default_rng(0).normal(size=t.size)
    >>> det = PCADetector().fit(x[:2000])
    >>> det.window_
    50
    >>> test = x[2000:].copy()
    >>> test[500:510] += 3
    >>> int(det.score(test).idxmax()) in range(500, 560)
    True
    """

    def __init__(self, window="auto", n_components=DEFAULT_PCA_VARIANCE, threshold="quantile",
                 contamination: float = DEFAULT_CONTAMINATION):
        self.window = window
        self.n_components = n_components
        self.threshold = threshold
        self.contamination = contamination

    def _check_params(self) -> None:
        super()._check_params()
        if isinstance(self.n_components, float):
            value = _check_float(self.n_components, "n_components")
            if not 0 < value < 1:
                raise ValueError(f"n_components as a share of variance must be in (0, 1), "
                                 f"got {value}")
        else:
            _check_int(self.n_components, "n_components", minimum=1)

    def _make_estimator(self, features: np.ndarray):
        from sklearn.decomposition import PCA

        n_components = self.n_components
        constant = not features.var(axis=0).any()
        if not isinstance(n_components, float) or constant:
            n_components = 0 if constant else min(int(n_components), *features.shape)
        # the covariance route (one p x p eigendecomposition) is much faster than the SVD
        # of the m x p windows when there are more windows than features, as usual here
        solver = "covariance_eigh" if len(features) >= features.shape[1] else "full"
        # constant training windows have no variance to share out: sklearn's ratios are 0/0
        with np.errstate(invalid="ignore" if constant else "warn"):
            return PCA(n_components=n_components, svd_solver=solver).fit(features)

    def _window_scores(self, features: np.ndarray) -> np.ndarray:
        # PCA.inverse_transform(PCA.transform(x)) without whitening, written out so that
        # a subspace of no components (constant training windows) works too
        pca = self.estimator_
        centred = features - pca.mean_
        residual = centred - (centred @ pca.components_.T) @ pca.components_
        return np.einsum("ij,ij->i", residual, residual)


class HBOSDetector(_WindowDetector):
    """Histogram-based outlier score of sliding windows or points (PyOD's HBOS).

    Parameters
    ----------
    {window}
    n_bins : int, default 20
        Equal-width bins per feature (TSB-AD's best univariate setting).
    alpha : float, default 0.1
        Added to each bin's density before the logarithm (PyOD's default).
    tol : float, default 0.5
        A value outside the training range by at most ``tol`` bin widths
        takes the edge bin's density, otherwise the lowest (PyOD's default).
    {common}

    Attributes
    ----------
    window_ : int
    mean_, scale_ : ndarray of shape (n_columns,)
    estimator_ : pyod.models.hbos.HBOS

    Notes
    -----
    Goldstein and Dengel 2012, "Histogram-based Outlier Score (HBOS): a fast
    unsupervised anomaly detection algorithm": one histogram per feature,
    features taken as independent, score ``-sum(log2(density + alpha))``.
    PyOD's implementation, as TSB-AD's Sub-HBOS uses it, with TSB-AD's
    window and bin count.

    {notes}

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(2000, 2))
    >>> det = HBOSDetector(window=1).fit(x)
    >>> test = x[:100].copy()
    >>> test[40] = [6.0, -6.0]
    >>> int(det.score(test).idxmax())
    40
    """

    def __init__(self, window="auto", n_bins: int = DEFAULT_HBOS_BINS,
                 alpha: float = DEFAULT_HBOS_ALPHA, tol: float = DEFAULT_HBOS_TOL,
                 threshold="quantile", contamination: float = DEFAULT_CONTAMINATION):
        self.window = window
        self.n_bins = n_bins
        self.alpha = alpha
        self.tol = tol
        self.threshold = threshold
        self.contamination = contamination

    def _check_params(self) -> None:
        super()._check_params()
        _check_int(self.n_bins, "n_bins", minimum=2)
        for name in ("alpha", "tol"):
            value = _check_float(getattr(self, name), name)
            if not 0 < value < 1:
                raise ValueError(f"{name} must be in (0, 1), got {value}")

    def _make_estimator(self, features: np.ndarray):
        from pyod.models.hbos import HBOS

        return HBOS(n_bins=self.n_bins, alpha=self.alpha, tol=self.tol).fit(features)

    def _window_scores(self, features: np.ndarray) -> np.ndarray:
        return self.estimator_.decision_function(features)


class IForestDetector(_WindowDetector):
    """Isolation Forest on sliding windows, or on points with ``window=1`` (scikit-learn).

    Parameters
    ----------
    {window}
    n_estimators : int, default 200
        Trees (TSB-AD's best univariate setting).
    max_samples : int, float or "auto", default "auto"
        Windows drawn per tree (``"auto"``: min(256, n_windows), as in the
        paper).
    random_state : int, default 0
        Seed of the trees.
    {common}

    Attributes
    ----------
    window_ : int
    mean_, scale_ : ndarray of shape (n_columns,)
    estimator_ : sklearn.ensemble.IsolationForest

    Notes
    -----
    Liu, Ting and Zhou 2008, "Isolation Forest": the score is the mean path
    length's anomaly score ``2 ** (-E[h(x)] / c(psi))`` in (0, 1],
    scikit-learn's ``-score_samples``.

    {notes}

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(2000, 1))
    >>> det = IForestDetector(window=1, n_estimators=50).fit(x)
    >>> test = x[:100].copy()
    >>> test[7] = 8.0
    >>> int(det.score(test).idxmax())
    7
    """

    def __init__(self, window="auto", n_estimators: int = DEFAULT_TREES, max_samples="auto",
                 random_state: int = 0, threshold="quantile",
                 contamination: float = DEFAULT_CONTAMINATION):
        self.window = window
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.random_state = random_state
        self.threshold = threshold
        self.contamination = contamination

    def _check_params(self) -> None:
        super()._check_params()
        _check_int(self.n_estimators, "n_estimators", minimum=1)
        _check_int(self.random_state, "random_state", minimum=0)
        if self.max_samples != "auto":
            if isinstance(self.max_samples, float):
                value = _check_float(self.max_samples, "max_samples")
                if not 0 < value <= 1:
                    raise ValueError(f"max_samples as a share must be in (0, 1], got {value}")
            else:
                _check_int(self.max_samples, "max_samples", minimum=1)

    def _make_estimator(self, features: np.ndarray):
        from sklearn.ensemble import IsolationForest

        max_samples = self.max_samples
        if isinstance(max_samples, int) and not isinstance(max_samples, bool):
            # sklearn warns and clips; a short training series is not a mistake
            max_samples = min(max_samples, len(features))
        return IsolationForest(n_estimators=self.n_estimators, max_samples=max_samples,
                               random_state=self.random_state).fit(features)

    def _window_scores(self, features: np.ndarray) -> np.ndarray:
        return -self.estimator_.score_samples(features)


class _NeighborDetector(_WindowDetector):
    """LOF and k-NN: the fitted windows get leave-one-out scores, as PyOD's fit gives them.

    Scored as a query, a fitted window would find itself at distance 0, so
    the training scores (and the quantile threshold) would sit below those
    of new windows of the same kind.
    """

    def _check_params(self) -> None:
        super()._check_params()
        _check_int(self.n_neighbors, "n_neighbors", minimum=1)

    def _neighbors(self, n_windows: int) -> int:
        if n_windows < 2:
            raise ValueError(
                f"X gives {n_windows} window of {self.window_} rows; {type(self).__name__} "
                f"needs at least 2 windows, so at least {self.window_ + 1} rows")
        # as sklearn's LOF does: fewer windows than neighbours is a short series, not an error
        return min(int(self.n_neighbors), n_windows - 1)


class LOFDetector(_NeighborDetector):
    """Local outlier factor of sliding windows (scikit-learn, ``novelty=True``).

    Parameters
    ----------
    {window}
    n_neighbors : int, default 50
        Neighbours (TSB-AD's best setting); at most the number of fitted
        windows less one.
    {common}

    Attributes
    ----------
    window_ : int
    mean_, scale_ : ndarray of shape (n_columns,)
    estimator_ : sklearn.neighbors.LocalOutlierFactor

    Notes
    -----
    Breunig et al. 2000, "LOF: identifying density-based local outliers": the
    ratio of the neighbours' local reachability density to the window's own,
    about 1 inside a cluster, larger for outliers (scikit-learn's
    ``-score_samples``). The fitted windows' training scores are their
    leave-one-out LOF (``-negative_outlier_factor_``); other training rows and
    all new rows are scored against the fitted windows. Scoring ``n`` rows
    costs ``O(n * m * window * n_columns)`` for ``m <= 10,000`` fitted windows:
    linear in ``n`` after the fit's cap, but with a large constant.

    {notes}

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(3000)
    >>> x = np.sin(2 * np.pi * t / 40) + 0.1 * np.random.default_rng(0).normal(size=t.size)
    >>> det = LOFDetector().fit(x[:2000])
    >>> test = x[2000:].copy()
    >>> test[500:505] -= 3
    >>> int(det.score(test).idxmax()) in range(500, 545)
    True
    """

    def __init__(self, window="auto", n_neighbors: int = DEFAULT_NEIGHBORS,
                 threshold="quantile", contamination: float = DEFAULT_CONTAMINATION):
        self.window = window
        self.n_neighbors = n_neighbors
        self.threshold = threshold
        self.contamination = contamination

    def _make_estimator(self, features: np.ndarray):
        from sklearn.neighbors import LocalOutlierFactor

        return LocalOutlierFactor(n_neighbors=self._neighbors(len(features)),
                                  novelty=True).fit(features)

    def _fit_scores(self, features: np.ndarray) -> np.ndarray:
        return -self.estimator_.negative_outlier_factor_

    def _window_scores(self, features: np.ndarray) -> np.ndarray:
        return -self.estimator_.score_samples(features)


class KNNDetector(_NeighborDetector):
    """Distance of each sliding window to its k-th nearest training window (scikit-learn).

    Parameters
    ----------
    {window}
    n_neighbors : int, default 50
        k (TSB-AD's best setting for k-NN, PyOD's "largest" method); at most
        the number of fitted windows less one.
    {common}

    Attributes
    ----------
    window_ : int
    mean_, scale_ : ndarray of shape (n_columns,)
    estimator_ : sklearn.neighbors.NearestNeighbors

    Notes
    -----
    Ramaswamy, Rastogi and Shim 2000, "Efficient algorithms for mining
    outliers from large data sets": the Euclidean distance to the k-th
    nearest neighbour, as PyOD's ``KNN(method="largest")``. The fitted
    windows' training scores leave the window itself out; other training rows
    and all new rows are scored against the fitted windows. Scoring ``n`` rows
    costs ``O(n * m * window * n_columns)`` for ``m <= 10,000`` fitted windows.

    {notes}

    Examples
    --------
    >>> import numpy as np
    >>> det = KNNDetector(window=1, n_neighbors=1).fit(np.array([-1.0, 1.0]))
    >>> det.score(np.array([0.5, 5.0])).tolist()  # the training rows have mean 0, std 1
    [0.5, 4.0]
    >>> det.decision_scores_.tolist()  # each fitted row left out of its own neighbours
    [2.0, 2.0]
    """

    def __init__(self, window="auto", n_neighbors: int = DEFAULT_NEIGHBORS,
                 threshold="quantile", contamination: float = DEFAULT_CONTAMINATION):
        self.window = window
        self.n_neighbors = n_neighbors
        self.threshold = threshold
        self.contamination = contamination

    def _make_estimator(self, features: np.ndarray):
        from sklearn.neighbors import NearestNeighbors

        return NearestNeighbors(n_neighbors=self._neighbors(len(features))).fit(features)

    def _fit_scores(self, features: np.ndarray) -> np.ndarray:
        return self.estimator_.kneighbors()[0][:, -1]

    def _window_scores(self, features: np.ndarray) -> np.ndarray:
        return self.estimator_.kneighbors(features)[0][:, -1]


for _cls in (PCADetector, HBOSDetector, IForestDetector, LOFDetector, KNNDetector):
    _cls.__doc__ = (_cls.__doc__.replace("{window}", _WINDOW_PARAM)
                    .replace("{common}", _COMMON_PARAMS).replace("{notes}", _COMMON_NOTES))
del _cls
