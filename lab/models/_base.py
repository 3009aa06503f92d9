"""The lab's one detector interface (sklearn/pyod conventions, aeon's template).

``__init__`` only stores settings. The public :meth:`BaseDetector.fit`
validates once, calls the subclass's ``_fit``, then does the shared work
itself (training scores, threshold, bookkeeping), so no subclass can forget
it. :meth:`BaseDetector.score` validates against the fitted columns, calls
``_score`` and returns a float Series on the input's index; ``predict`` is
``score > threshold_``. Learned state ends in ``_``; a method that needs a
fitted model raises sklearn's ``NotFittedError`` before.

Saving needs no pickle: Keras models go to ``<attr>.keras`` (loaded with
``safe_mode=True``), scikit-learn and PyOD estimators to ``<attr>.skops``
(loaded by skops with only scikit-learn, PyOD and NumPy types trusted),
arrays to ``state.npz`` (``allow_pickle=False``) and the rest to JSON.
"""

from __future__ import annotations

import inspect
import json
import numbers
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import NotFittedError

from lab._validation import _as_2d

__all__ = ["BaseDetector", "ChangePointDetector", "NotFittedError", "seed_everything"]

_FORMAT_FILE = "lab-model.json"


def seed_everything(random_state: int) -> None:
    """Seed Python, NumPy and the Keras backend, and make TensorFlow ops deterministic.

    Examples
    --------
    >>> seed_everything(0)
    """
    import keras

    keras.utils.set_random_seed(int(random_state))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.experimental.enable_op_determinism()
        except Exception:  # pragma: no cover - older TF without the switch
            pass


class BaseDetector:
    """The template every detector follows: ``fit``, ``score``, ``predict``, ``save``/``load``.

    A subclass sets the class attributes below and writes ``_fit`` and
    ``_score``; everything else is shared.

    * ``_fit(values, y, valid)`` learns from the validated training rows
      (``values``: float ndarray ``(n_rows, n_columns)``; ``valid``: the same for
      the optional validation stretch, or None).
    * ``_score(values)`` returns one finite float per row of ``values``, higher
      meaning more anomalous. A window detector computes one score per window
      and places it with :meth:`_place`.
    * ``_native_threshold(valid_values)`` (optional) is the detector's own rule,
      used by ``threshold="native"``.

    Class attributes: ``_keras_attrs`` (Keras models), ``_estimator_attrs``
    (scikit-learn or PyOD estimators) and ``_state_attrs`` (arrays and JSON
    values) are what :meth:`save` writes; ``_allow_nan`` (NaN accepted in
    input); ``_default_threshold``; ``_needs_valid`` (``valid`` is required,
    or carved from the end of the training rows).

    Parameters shared by every detector (each subclass lists them in its own
    ``__init__``):

    threshold : {"quantile", "spot", "sigma", "native"}, float or dict
        How ``threshold_`` is set from the training scores (or, for
        ``"native"``, by the detector's own rule). A dict gives the method
        and its setting, e.g. ``{"method": "sigma", "k": 2.5}`` or
        ``{"method": "spot", "q": 1e-4, "level": 0.98}``; see
        :func:`lab.models.thresholds.fit_threshold`.
    contamination : float, default 0.01
        Share of training rows above the ``"quantile"`` threshold.
    """

    _keras_attrs: tuple[str, ...] = ()
    _estimator_attrs: tuple[str, ...] = ()
    _state_attrs: tuple[str, ...] = ()
    _fitted_attr: str = "threshold_"
    _allow_nan: bool = False
    _default_threshold: str = "quantile"
    _needs_valid: bool = False
    #: the state every detector gets from the shared ``fit``
    _base_state: tuple[str, ...] = ("columns_", "decision_scores_", "threshold_",
                                    "n_features_in_")

    def get_params(self) -> dict[str, Any]:
        """Return the constructor settings as a dict (sklearn convention)."""
        names = [
            p for p in inspect.signature(type(self).__init__).parameters if p != "self"
        ]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params: Any):
        """Set constructor settings (sklearn convention); unknown names raise ValueError."""
        known = self.get_params()
        for name, value in params.items():
            if name not in known:
                raise ValueError(f"{type(self).__name__} has no parameter {name!r}; its "
                                 f"parameters are {sorted(known)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _check_is_fitted(self) -> None:
        if not self._fitted_attr or not hasattr(self, self._fitted_attr):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet; call fit() first"
            )

    # ------------------------------------------------------------------ template
    @property
    def min_rows(self) -> int:
        """Fewest rows ``fit`` and ``score`` accept (a window detector: its window)."""
        return 1

    @property
    def lookback_(self) -> int:
        """Rows before a row that its score reads: ``min_rows - 1`` once fitted.

        An event still shows in the scores this many rows after it ends
        (:mod:`lab.evaluation` grants that grace). A detector whose score
        reads more than one window overrides it.
        """
        self._check_is_fitted()
        return max(int(self.min_rows) - 1, 0)

    def _check_params(self) -> None:
        """Validate the constructor settings (subclasses extend it); raise ValueError."""
        from lab.models.thresholds import check_threshold

        check_threshold(getattr(self, "threshold", self._default_threshold),
                        getattr(self, "contamination", 0.01))

    def _validate(self, X: Any, name: str) -> tuple[np.ndarray, pd.Index, pd.Index]:
        return _as_2d(X, name, min_rows=self.min_rows, allow_nan=self._allow_nan)

    def fit(self, X: Any, y: Any = None, *, valid: Any = None):
        """Learn from ``X`` (normal data, or data with few anomalies), set the threshold.

        Parameters
        ----------
        X : DataFrame or ndarray of shape (n_timepoints, n_series)
            Training rows: numeric, no NaN unless the detector handles NaN,
            at least :attr:`min_rows` rows.
        y : ignored
            Present for the sklearn convention (detectors are unsupervised).
        valid : DataFrame or ndarray, optional
            A later stretch of normal data with the same columns, for the
            detectors that set their threshold on it (``threshold="native"``
            of MSCRED).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            On non-numeric columns, NaN, too few rows, bad settings, or a
            ``valid`` with other columns.
        """
        self._forget()
        self._check_params()
        values, _, columns = self._validate(X, "X")
        valid_values = None
        if valid is not None:
            valid_values, _, valid_columns = self._validate(valid, "valid")
            _check_same_columns(list(columns), valid_values, valid_columns, "valid",
                                isinstance(valid, pd.DataFrame | pd.Series)
                                and isinstance(X, pd.DataFrame | pd.Series))
        self.columns_ = list(columns)
        self.n_features_in_ = int(values.shape[1])
        fit_values = values
        if self._needs_valid and valid_values is None:
            fit_values, valid_values = self._carve_valid(values)
        try:
            self._fit(fit_values, y, valid_values)
            self.decision_scores_ = self._checked_scores(self._training_scores(values),
                                                         len(values))
            self._set_threshold(valid_values)
        except BaseException:
            self._forget()  # no half-fitted detector: unfitted, or fitted whole
            raise
        return self

    def _forget(self) -> None:
        """Drop every learned attribute (names ending in ``_``): a refit starts clean."""
        for name in [n for n in vars(self) if n.endswith("_") and not n.startswith("__")]:
            delattr(self, name)

    def _training_scores(self, values: np.ndarray) -> np.ndarray:
        """Scores of the training rows that ``_fit`` just learned from.

        ``_score(values)`` unless a detector must score its own training
        points differently (k-NN and LOF: leave-one-out, or a fitted window
        would find itself at distance 0).
        """
        return self._score(values)

    def _carve_valid(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError  # pragma: no cover - only detectors with _needs_valid

    def _set_threshold(self, valid_values: np.ndarray | None) -> None:
        from lab.models.thresholds import fit_threshold

        method = getattr(self, "threshold", self._default_threshold)
        if method == "native" or (isinstance(method, dict) and method.get("method") == "native"):
            self.threshold_ = float(self._native_threshold(valid_values))
        else:
            self.threshold_ = fit_threshold(self.decision_scores_, method,
                                            getattr(self, "contamination", 0.01))

    def _native_threshold(self, valid_values: np.ndarray | None) -> float:
        raise ValueError(f"{type(self).__name__} has no native threshold rule; use "
                         "'quantile', 'spot', 'sigma' or a number")

    def _check_columns(self, X: Any, name: str = "X") -> np.ndarray:
        """Validate ``X`` against the fitted columns; reorder a DataFrame's columns by name."""
        self._check_is_fitted()
        values, _, columns = self._validate(X, name)
        return _match_columns(self.columns_, values, columns, name,
                              isinstance(X, pd.DataFrame | pd.Series))

    def score(self, X: Any) -> pd.Series:
        """Anomaly score of every row of ``X``: a float Series on X's index, higher is worse.

        Parameters
        ----------
        X : DataFrame or ndarray of shape (n_timepoints, n_series)
            The fitted columns (a DataFrame's are matched by name), at least
            :attr:`min_rows` rows.

        Returns
        -------
        Series of float, name "score"

        Raises
        ------
        NotFittedError
            Before ``fit``.
        ValueError
            On missing or extra columns (named), NaN or too few rows.
        """
        values = self._check_columns(X)
        index = X.index if isinstance(X, pd.DataFrame | pd.Series) else pd.RangeIndex(len(values))
        scores = self._checked_scores(self._score(values), len(values))
        return pd.Series(scores, index=index, name="score")

    def predict(self, X: Any) -> pd.Series:
        """Alarms: ``score(X) > threshold_``, a bool Series named "anomaly" on X's index."""
        return (self.score(X) > self.threshold_).rename("anomaly")

    def decision_function(self, X: Any) -> np.ndarray:
        """``score(X)`` as an ndarray (PyOD's name)."""
        return self.score(X).to_numpy()

    @property
    def labels_(self) -> np.ndarray:
        """Training-row alarms, ``decision_scores_ > threshold_`` (PyOD's name)."""
        self._check_is_fitted()
        return self.decision_scores_ > self.threshold_

    def _checked_scores(self, scores: Any, n: int) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (n,):
            raise RuntimeError(f"{type(self).__name__}._score returned shape {scores.shape}; "
                               f"expected ({n},), one score per row")
        if not np.isfinite(scores).all():
            bad = np.flatnonzero(~np.isfinite(scores))
            raise FloatingPointError(
                f"{type(self).__name__} produced {bad.size} non-finite scores (first at row "
                f"{bad[0]}); the input may hold values too large for its arithmetic")
        return scores

    @staticmethod
    def _place(ends: np.ndarray, window_scores: np.ndarray, n: int) -> np.ndarray:
        """Scores of windows ending at rows ``ends`` placed on ``n`` rows.

        A window's score goes to the row that ends it; rows between two
        scored rows take the last score; rows before the first scored row
        take the first score.

        Examples
        --------
        >>> BaseDetector._place(np.array([2, 4]), np.array([1.0, 5.0]), 6).tolist()
        [1.0, 1.0, 1.0, 1.0, 5.0, 5.0]
        """
        ends = np.asarray(ends, dtype=np.intp)
        pos = np.searchsorted(ends, np.arange(n), side="right") - 1
        return np.asarray(window_scores, dtype=np.float64)[np.maximum(pos, 0)]

    # ------------------------------------------------------------------ save/load
    def save(self, path: str | os.PathLike) -> Path:
        """Save the fitted detector to the directory ``path`` (replaced atomically).

        Returns
        -------
        pathlib.Path
            The directory written.

        Raises
        ------
        NotFittedError
            Before ``fit``.
        ValueError
            If the fitted column labels are not strings or integers (JSON
            could not give them back as they were).
        """
        self._check_is_fitted()
        odd = [c for c in getattr(self, "columns_", [])
               if isinstance(c, bool) or not isinstance(c, str | numbers.Integral)]
        if odd:
            raise ValueError(
                f"cannot save a detector fitted on column labels {odd[:3]} "
                f"({type(odd[0]).__name__}): saved settings are JSON, which keeps strings and "
                "integers only; rename the columns to strings before fit to save it")
        from lab.tracking import atomic_directory

        path = Path(path)
        with atomic_directory(path) as tmp:
            for attr in self._keras_attrs:
                getattr(self, attr).save(tmp / f"{attr}.keras")
            for attr in self._estimator_attrs:
                _save_estimator(getattr(self, attr), tmp / f"{attr}.skops")
            arrays, plain = {}, {}
            for attr in self._saved_state():
                value = getattr(self, attr)
                if isinstance(value, np.ndarray):
                    arrays[attr] = value
                else:
                    plain[attr] = value
            np.savez(tmp / "state.npz", **arrays)
            (tmp / "settings.json").write_text(
                json.dumps({"params": _jsonable(self.get_params()), "state": _jsonable(plain)})
            )
            (tmp / _FORMAT_FILE).write_text(
                json.dumps({"class": type(self).__name__, "format": 1})
            )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike):
        """Load a detector written by :meth:`save`, refusing anything else safely.

        Raises
        ------
        ValueError
            If ``path`` is not a saved detector of this class.
        """
        path = Path(path)
        marker = path / _FORMAT_FILE
        if not path.is_dir() or not marker.is_file():
            raise ValueError(f"{path} is not a saved {cls.__name__} (no {_FORMAT_FILE})")
        try:
            meta = json.loads(marker.read_text())
            settings = json.loads((path / "settings.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path} is not a readable saved model: {exc}") from exc
        if meta.get("class") != cls.__name__:
            raise ValueError(f"{path} holds a {meta.get('class')!r}, not a {cls.__name__}")
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in settings["params"].items()}
        obj = cls(**params)
        for attr, value in settings["state"].items():
            setattr(obj, attr, value)
        with np.load(path / "state.npz", allow_pickle=False) as data:
            for attr in data.files:
                setattr(obj, attr, data[attr])
        for attr in cls._estimator_attrs:
            setattr(obj, attr, _load_estimator(path / f"{attr}.skops"))
        for attr in cls._keras_attrs:
            import keras

            try:
                model = keras.saving.load_model(path / f"{attr}.keras", safe_mode=True)
            except Exception as exc:
                raise ValueError(f"{path / (attr + '.keras')} is not a valid Keras model: {exc}") from exc
            setattr(obj, attr, model)
        obj._after_load()
        return obj

    def _after_load(self) -> None:
        """Hook for subclasses that rebuild derived objects after :meth:`load`."""

    def _saved_state(self) -> list[str]:
        # the shared fit's state (when this detector has it) and the subclass's own
        names = [a for a in self._base_state if hasattr(self, a)] + list(self._state_attrs)
        return list(dict.fromkeys(names))


def _jsonable(obj: Any) -> Any:
    from lab.tracking import to_jsonable

    return to_jsonable(obj)



class ChangePointDetector(BaseDetector):
    """A detector of changes: :meth:`change_points` gives the rows where behaviour changes.

    Subclasses write ``_change_points(values)``, returning sorted row
    positions (a change at ``i`` means rows ``i`` and after behave
    differently from the rows before). ``score`` is the method's change score
    where it has one, placed at rows like any detector's.

    Examples
    --------
    >>> import numpy as np
    >>> class Jump(ChangePointDetector):
    ...     def __init__(self, threshold="native", contamination=0.01):
    ...         self.threshold, self.contamination = threshold, contamination
    ...     def _fit(self, values, y, valid):
    ...         pass
    ...     def _score(self, values):
    ...         return np.abs(np.diff(values[:, 0], prepend=values[0, 0]))
    ...     def _native_threshold(self, valid_values):
    ...         return 1.0
    ...     def _change_points(self, values):
    ...         return np.flatnonzero(self._score(values) > self.threshold_)
    >>> Jump().fit(np.zeros(10)).change_points(np.r_[np.zeros(5), np.ones(5) * 3]).tolist()
    [5]
    """

    _default_threshold = "native"

    def change_points(self, X: Any) -> np.ndarray:
        """Row positions (0-based, sorted) where ``X``'s behaviour changes.

        Raises
        ------
        NotFittedError
            Before ``fit``.
        ValueError
            On missing or extra columns, NaN or too few rows.
        """
        values = self._check_columns(X)
        return np.asarray(self._change_points(values), dtype=np.intp)

    def _change_points(self, values: np.ndarray) -> np.ndarray:
        raise NotImplementedError



#: Window detectors' ``window="auto"``: the dominant period by autocorrelation,
#: searched in [MIN_WINDOW, MAX_WINDOW] over the first AUTO_WINDOW_ROWS rows
#: (TSB-AD's ``find_length`` rule), else DEFAULT_WINDOW.
MIN_WINDOW, MAX_WINDOW, DEFAULT_WINDOW = 8, 300, 100
AUTO_WINDOW_ROWS = 20_000
#: Window detectors fit on at most this many windows, taken evenly spaced.
MAX_FIT_WINDOWS = 10_000


def estimate_window(values: np.ndarray) -> int:
    """The dominant period of ``values`` (rows), by the highest autocorrelation peak.

    The autocorrelation of each column (first 20,000 rows) is averaged over
    columns; the lag of its highest local maximum in [8, min(300, n / 3)] is
    the window. With no peak above 0.1, the window is 100.

    Examples
    --------
    >>> t = np.arange(2000)
    >>> estimate_window(np.sin(2 * np.pi * t / 37)[:, None])
    37
    >>> estimate_window(np.random.default_rng(0).normal(size=(500, 1)))
    100
    """
    x = np.asarray(values, dtype=np.float64)[:AUTO_WINDOW_ROWS]
    if x.ndim == 1:
        x = x[:, None]
    n = len(x)
    hi = min(MAX_WINDOW, n // 3)
    if hi <= MIN_WINDOW:
        return min(DEFAULT_WINDOW, max(1, n // 2))
    x = x - x.mean(axis=0)
    power = (x * x).sum(axis=0)
    keep = power > 0
    if not keep.any():
        return min(DEFAULT_WINDOW, n)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(x[:, keep], size, axis=0)
    acf = np.fft.irfft(f * np.conj(f), size, axis=0)[: hi + 2] / power[keep]
    acf = acf.mean(axis=1)
    lags = np.arange(MIN_WINDOW, hi + 1)
    peak = (acf[lags] > acf[lags - 1]) & (acf[lags] >= acf[lags + 1]) & (acf[lags] > 0.1)
    if not peak.any():
        return min(DEFAULT_WINDOW, n // 2)
    cand = lags[peak]
    return int(cand[np.argmax(acf[cand])])


def window_matrix(values: np.ndarray, window: int, *, max_windows: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Rows of flattened sliding windows of ``values`` and the row each window ends at.

    Parameters
    ----------
    values : ndarray of shape (n, d)
    window : int
        Rows per window, ``1 <= window <= n``.
    max_windows : int, optional
        Keep at most this many windows, evenly spaced (the last one always
        kept): window detectors fit on at most ``MAX_FIT_WINDOWS``.

    Returns
    -------
    features : ndarray of shape (n_windows, window * d)
        Window ``k`` flattened row-major (time, then column), a copy.
    ends : ndarray of int
        The row each window ends at.

    Examples
    --------
    >>> f, ends = window_matrix(np.arange(5.0)[:, None], 3)
    >>> f.tolist(), ends.tolist()
    ([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0], [2.0, 3.0, 4.0]], [2, 3, 4])
    """
    from lab.tensor_utility import sliding_windows

    w = sliding_windows(values, window)  # (n_windows, window, d) view
    ends = np.arange(window - 1, len(values))
    if max_windows is not None and len(ends) > max_windows:
        keep = np.unique(np.linspace(0, len(ends) - 1, max_windows).round().astype(np.intp))
        w, ends = w[keep], ends[keep]
    return np.ascontiguousarray(w).reshape(len(ends), -1), ends


#: Module prefixes whose types a saved estimator may hold: skops refuses any other.
_TRUSTED_PREFIXES = ("sklearn.", "pyod.models.", "numpy.", "builtins.", "scipy.sparse.")


def _save_estimator(estimator: Any, path: Path) -> None:
    import skops.io

    skops.io.dump(estimator, path)


def _load_estimator(path: Path) -> Any:
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(file=path)
    except Exception as exc:
        raise ValueError(f"{path} is not a readable saved estimator: {exc}") from exc
    refused = [t for t in untrusted if not t.startswith(_TRUSTED_PREFIXES)]
    if refused:
        raise ValueError(f"{path} holds types outside scikit-learn, PyOD and NumPy: "
                         f"{refused[:5]}; refusing to load it")
    return skops.io.load(path, trusted=untrusted)


def _check_same_columns(columns: list, values: np.ndarray, other: pd.Index, name: str,
                        by_name: bool) -> None:
    if values.shape[1] != len(columns) or (by_name and list(other) != columns):
        raise ValueError(f"{name} has columns {list(other)[:10]} (shape {values.shape}); "
                         f"expected the training columns {columns[:10]}")


def _match_columns(fitted: list, values: np.ndarray, columns: pd.Index, name: str,
                   by_name: bool) -> np.ndarray:
    """``values`` with its columns in the fitted order; an error names missing and extra ones."""
    if by_name:
        seen = list(columns)
        if seen == fitted:
            return values
        missing = [c for c in fitted if c not in seen]
        extra = [c for c in seen if c not in fitted]
        if missing or extra or len(seen) != len(fitted):
            raise ValueError(
                f"{name} has columns {seen[:10]}; the detector was fitted on {fitted[:10]} "
                f"(missing: {missing[:10]}, extra: {extra[:10]})")
        return values[:, [seen.index(c) for c in fitted]]
    if values.shape[1] != len(fitted):
        raise ValueError(f"{name} has {values.shape[1]} columns (shape {values.shape}); the "
                         f"detector was fitted on {len(fitted)}: {fitted[:10]}")
    return values
