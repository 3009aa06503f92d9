"""Input checks shared by every public entry point.

One data convention, enforced at the door: a multivariate time series is
``(n_timepoints, n_series)``, given as a DataFrame (time index, one column per
series) or as an ndarray. Every public function converts its input with
:func:`_as_2d` so that errors read the same everywhere.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd


def _as_2d(
    X: Any,
    name: str = "X",
    *,
    min_rows: int = 1,
    min_cols: int = 1,
    allow_nan: bool = False,
    dtype: Any = np.float64,
) -> tuple[np.ndarray, pd.Index, pd.Index]:
    """Convert a DataFrame, Series or array to a ``(n_timepoints, n_series)`` array.

    Parameters
    ----------
    X : DataFrame, Series or array-like
        The time series. A 1-D input is one series.
    name : str
        Argument name used in error messages.
    min_rows, min_cols : int
        Smallest accepted shape.
    allow_nan : bool
        If False, any NaN or infinite value raises.
    dtype : numpy dtype
        Output dtype.

    Returns
    -------
    values : ndarray of shape (n_timepoints, n_series)
        C-contiguous array of ``dtype``.
    index : pandas.Index
        The time index (a RangeIndex for array input).
    columns : pandas.Index
        The series names (a RangeIndex for array input).

    Raises
    ------
    ValueError
        On a wrong number of dimensions, non-numeric or complex columns, too
        few rows or columns, or NaN where NaN is not allowed. The message names
        ``name``, the shape seen and the shape expected.

    Examples
    --------
    >>> import numpy as np
    >>> values, index, columns = _as_2d(np.arange(6).reshape(3, 2))
    >>> values.shape, list(columns)
    ((3, 2), [0, 1])
    """
    if isinstance(X, pd.Series):
        X = X.to_frame()
    if isinstance(X, pd.DataFrame):
        # By position: a repeated column name would select a frame, not a column.
        bad = [c for i, c in enumerate(X.columns) if not _is_numeric_dtype(X.iloc[:, i])]
        if bad:
            raise ValueError(
                f"{name} has non-numeric columns {bad[:10]}{' ...' if len(bad) > 10 else ''}; "
                "expected numeric columns only (drop them or use lab.preprocessor.clean_metrics)"
            )
        _check_real(name, [c for c, dt in X.dtypes.items() if np.issubdtype(dt, np.complexfloating)])
        index, columns = X.index, X.columns
        try:
            values = X.to_numpy(dtype=dtype, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} could not be converted to {np.dtype(dtype)}: {exc}") from exc
    else:
        arr = np.asarray(X)
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
        ):
            raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise ValueError(
                f"{name} must be 2-D (n_timepoints, n_series), got shape {arr.shape}"
            )
        if np.issubdtype(arr.dtype, np.complexfloating):
            _check_real(name, list(range(arr.shape[1])))
        values = arr.astype(dtype, copy=False)
        index, columns = pd.RangeIndex(arr.shape[0]), pd.RangeIndex(arr.shape[1])
    values = np.ascontiguousarray(values)
    if values.shape[0] < min_rows:
        raise ValueError(
            f"{name} has {values.shape[0]} rows (shape {values.shape}); "
            f"at least {min_rows} rows are needed"
        )
    if values.shape[1] < min_cols:
        raise ValueError(
            f"{name} has {values.shape[1]} columns (shape {values.shape}); "
            f"at least {min_cols} series are needed"
        )
    if not allow_nan and np.issubdtype(values.dtype, np.floating):
        finite = np.isfinite(values)
        if not finite.all():
            bad_cols = np.flatnonzero(~finite.all(axis=0))
            labels = [columns[i] for i in bad_cols[:10]]
            raise ValueError(
                f"{name} contains NaN or infinite values in columns {labels}"
                f"{' ...' if len(bad_cols) > 10 else ''}; clean or fill them first"
            )
    return values, index, columns


def _check_real(name: str, complex_columns: list) -> None:
    """Refuse complex columns: casting them to float would drop the imaginary part.

    Examples
    --------
    >>> _check_real("X", [])
    >>> _check_real("X", ["z"])
    Traceback (most recent call last):
    ...
    ValueError: X has complex columns ['z']; expected real numbers (take .real, .imag or abs() explicitly)
    """
    if complex_columns:
        more = " ..." if len(complex_columns) > 10 else ""
        raise ValueError(f"{name} has complex columns {complex_columns[:10]}{more}; expected "
                         "real numbers (take .real, .imag or abs() explicitly)")


def _is_numeric_dtype(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_object_dtype(
        series.dtype
    )


def _check_int(value: Any, name: str, *, minimum: int | None = None,
               maximum: int | None = None) -> int:
    """Return ``value`` as an int, raising a ValueError that names ``name``.

    Examples
    --------
    >>> _check_int(3, "window", minimum=1)
    3
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def _check_float(value: Any, name: str) -> float:
    """Return ``value`` as a finite float, raising a ValueError that names ``name``.

    Strings, booleans, NaN and infinities are refused: a threshold of ``"0.5"``
    or ``nan`` is a mistake, not a number.

    Examples
    --------
    >>> _check_float(0.5, "threshold")
    0.5
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite number, got {value!r} "
                         f"({type(value).__name__})")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    return value


def _check_option(value: Any, name: str, options: Iterable[Any]) -> Any:
    """Raise a ValueError listing ``options`` if ``value`` is not one of them.

    Examples
    --------
    >>> _check_option("ks", "method", ("ks", "volume"))
    'ks'
    """
    options = tuple(options)
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def _as_1d(y: Any, name: str) -> np.ndarray:
    """A non-empty 1-D array from a Series, a one-column frame or an array-like.

    Examples
    --------
    >>> _as_1d([[1], [2]], "y").tolist()
    [1, 2]
    """
    if isinstance(y, pd.DataFrame):
        if y.shape[1] != 1:
            raise ValueError(f"{name} must be 1-D, got a DataFrame of shape {y.shape}")
        y = y.iloc[:, 0]
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n_timepoints,), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; at least one timepoint is needed")
    return arr


def _as_shaped(X: Any, name: str, shape: tuple, axes: tuple[str, ...],
               dtype: Any = np.float64) -> np.ndarray:
    """A numeric array of ``dtype`` whose shape matches ``shape`` (None: any size).

    ``axes`` names the axes for the message, which gives the shape seen and
    the shape needed. Non-finite values pass: the caller decides what they mean.

    Examples
    --------
    >>> _as_shaped(np.zeros((3, 2, 2)), "M", (None, 2, 2), ("k", "n", "n")).shape
    (3, 2, 2)
    >>> _as_shaped(np.zeros((3, 2)), "M", (None, 2, 2), ("k", "n", "n"))
    Traceback (most recent call last):
    ...
    ValueError: M must be 3-D with shape (k, n=2, n=2), got shape (3, 2)
    """
    arr = np.asarray(X)
    if arr.dtype == object or np.issubdtype(arr.dtype, np.complexfloating) or not (
            np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)):
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != len(shape) or any(want is not None and want != seen
                                     for want, seen in zip(shape, arr.shape, strict=False)):
        expected = ", ".join(axis if want is None else f"{axis}={want}"
                             for axis, want in zip(axes, shape, strict=True))
        raise ValueError(f"{name} must be {len(shape)}-D with shape ({expected}), "
                         f"got shape {arr.shape}")
    return arr.astype(dtype, copy=False)


def _check_labels(y: Any, name: str) -> np.ndarray:
    """A non-empty 1-D array of 0/1 labels, as bool.

    Examples
    --------
    >>> _check_labels([0, 1, 1], "y_true").tolist()
    [False, True, True]
    """
    arr = _as_1d(y, name)
    if arr.dtype == bool:
        return arr
    if not (np.issubdtype(arr.dtype, np.number)):
        raise ValueError(f"{name} must hold 0/1 labels, got dtype {arr.dtype}")
    bad = ~np.isin(arr, (0, 1))
    if bad.any():
        seen = np.unique(arr[bad])[:5].tolist()
        raise ValueError(f"{name} must hold only 0/1 labels; found {seen}")
    return arr.astype(bool)


def _check_score(s: Any, name: str) -> np.ndarray:
    """A non-empty 1-D array of finite floats.

    Examples
    --------
    >>> _check_score([1, 2.5], "score").tolist()
    [1.0, 2.5]
    """
    arr = _as_1d(s, name)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                   or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains {int((~np.isfinite(arr)).sum())} NaN or infinite "
                         "values; a score must be finite everywhere")
    return arr


def _check_label_pair(y_true: Any, other: Any, other_name: str,
                      score: bool) -> tuple[np.ndarray, np.ndarray]:
    """0/1 ``y_true`` and, of the same length, labels or (``score=True``) a finite score.

    Two pandas Series must also share their index, so that no metric silently
    compares misaligned timepoints.

    Examples
    --------
    >>> t, s = _check_label_pair([0, 1], [0.2, 0.9], "score", score=True)
    >>> t.tolist(), s.tolist()
    ([False, True], [0.2, 0.9])
    """
    t = _check_labels(y_true, "y_true")
    o = _check_score(other, other_name) if score else _check_labels(other, other_name)
    if len(t) != len(o):
        raise ValueError(f"y_true has {len(t)} timepoints but {other_name} has {len(o)}; "
                         "they must have the same length")
    if isinstance(y_true, pd.Series) and isinstance(other, pd.Series) and \
            not y_true.index.equals(other.index):
        raise ValueError(f"y_true and {other_name} are Series with different indexes; "
                         "align them first")
    return t, o
