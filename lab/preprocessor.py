"""Pandas helpers between raw data and models: cleaning, scaling, windowing, splitting.

Pandas in, pandas out: a DataFrame argument gives a DataFrame result that keeps
the time index and the column names; an ndarray gives an ndarray where that is
the natural result.

Position or label
-----------------
Where a function takes a point in time (``time_split``, ``rank_changes``,
``normalize(fit=...)``), a Python ``int`` is always a *position* (half-open,
like ``iloc``) and anything else (a timestamp, a string, a float) is a *label*
of the index (like ``loc``). On a RangeIndex both readings agree.
"""

from __future__ import annotations

import datetime
import numbers
import warnings
from collections import namedtuple
from typing import Any

import numpy as np
import pandas as pd
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from lab._validation import _as_2d, _check_int, _check_option, _check_real, _is_numeric_dtype
from lab.chunks import CALENDAR_PERIODS, add_calendar, grouped_folds, make_chunks, validation_split

__all__ = [
    "clean_metrics",
    "normalize",
    "convert_to_column",
    "convert_from_column",
    "time_split",
    "TimeSplit",
    "calc_batches",
    "rank_changes",
    "window_rows",
    "RANK_METHODS",
    # moved to lab.chunks, re-exported here for code written before the move
    "CALENDAR_PERIODS",
    "add_calendar",
    "make_chunks",
    "grouped_folds",
    "validation_split",
]

# Scalers offered by ``normalize``; sklearn maps a zero range or zero variance
# to a scale of 1, so a constant column becomes 0 instead of inf/NaN.
_SCALERS = {"minmax": MinMaxScaler, "zscore": StandardScaler}
# Netdata's metric correlations compare the focus window with a baseline this
# many times longer, immediately before it.
BASELINE_FACTOR = 4
#: Methods of ``rank_changes`` (and of ``lab.explorer.focus_explorer``).
RANK_METHODS = ("ks", "volume")
# Reasons reported by ``clean_metrics``, in the order the checks run.
_REASONS = ("non-numeric", "all-NaN", "duplicate name", "duplicate values", "constant")


# --------------------------------------------------------------------------- cleaning


def clean_metrics(df: pd.DataFrame, *, warn: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop useless metric columns and fill gaps.

    The checks run in this order, each on the columns the previous ones kept:
    non-numeric columns, all-NaN columns, repeated column names (the first is
    kept), columns whose values repeat an earlier column exactly (NaN equal to
    NaN; the first is kept) and constant columns (one distinct non-NaN value).
    Gaps in the kept columns are then filled forward, then backward.

    Parameters
    ----------
    df : DataFrame of shape (n_timepoints, n_columns)
        Raw metrics, one column per metric.
    warn : bool, default True
        Emit a ``UserWarning`` listing the dropped columns and why.

    Returns
    -------
    cleaned : DataFrame
        Numeric, gap-free columns, same index as ``df``.
    report : DataFrame
        One row per dropped column with ``column`` and ``reason`` (one of
        ``"non-numeric"``, ``"all-NaN"``, ``"duplicate name"``,
        ``"duplicate values"``, ``"constant"``); empty when nothing was dropped.

    Raises
    ------
    ValueError
        If ``df`` is not a DataFrame, has no rows, or has complex columns
        (a cast to float would drop their imaginary part).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> df = pd.DataFrame({"cpu": [1.0, np.nan, 3.0], "host": list("abc"),
    ...                    "flat": [5, 5, 5], "cpu2": [1.0, np.nan, 3.0]})
    >>> cleaned, report = clean_metrics(df, warn=False)
    >>> cleaned["cpu"].tolist()
    [1.0, 1.0, 3.0]
    >>> report.values.tolist()
    [['host', 'non-numeric'], ['cpu2', 'duplicate values'], ['flat', 'constant']]
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    if len(df) == 0:
        raise ValueError(f"df has no rows (shape {df.shape}); at least 1 row is needed")
    positions = list(range(df.shape[1]))
    dropped: list[tuple[Any, str]] = []

    def _drop(keep_mask, reason):
        nonlocal positions
        for p, keep in zip(list(positions), keep_mask, strict=True):
            if not keep:
                dropped.append((df.columns[p], reason))
        positions = [p for p, keep in zip(positions, keep_mask, strict=True) if keep]

    _drop([_is_numeric_dtype(df.iloc[:, p]) for p in positions], "non-numeric")
    _check_real("df", [df.columns[p] for p in positions
                       if np.issubdtype(df.dtypes.iloc[p], np.complexfloating)])
    values = df.iloc[:, positions].to_numpy(dtype=np.float64, na_value=np.nan)
    col_of = {p: j for j, p in enumerate(positions)}
    _drop([not np.isnan(values[:, col_of[p]]).all() for p in positions], "all-NaN")
    seen_names: set = set()
    keep = []
    for p in positions:
        name = df.columns[p]
        keep.append(name not in seen_names)
        seen_names.add(name)
    _drop(keep, "duplicate name")
    _drop(_first_of_equal_columns(values, [col_of[p] for p in positions]), "duplicate values")
    _drop([not _is_constant(values[:, col_of[p]]) for p in positions], "constant")

    cleaned = df.iloc[:, positions].ffill().bfill()
    report = pd.DataFrame(dropped, columns=["column", "reason"])
    if warn and dropped:
        listing = "; ".join(f"{c!r} ({r})" for c, r in dropped)
        warnings.warn(f"clean_metrics dropped {len(dropped)} column(s): {listing}",
                      UserWarning, stacklevel=2)
    return cleaned, report


def _first_of_equal_columns(values: np.ndarray, cols: list[int]) -> list[bool]:
    """True for columns whose values do not repeat an earlier column."""
    canon = np.where(np.isnan(values), np.nan, values)  # one NaN bit pattern
    first_by_key: dict[int, list[int]] = {}
    keep = []
    for j in cols:
        column = np.ascontiguousarray(canon[:, j])
        key = hash(column.tobytes())
        twins = first_by_key.setdefault(key, [])
        duplicate = any(np.array_equal(column, canon[:, k], equal_nan=True) for k in twins)
        keep.append(not duplicate)
        if not duplicate:
            twins.append(j)
    return keep


def _is_constant(column: np.ndarray) -> bool:
    finite = column[~np.isnan(column)]
    return finite.size == 0 or bool(np.all(finite == finite[0]))


# --------------------------------------------------------------------------- scaling


def normalize(df, method: str = "minmax", fit=None):
    """Scale every column with statistics learned on the training rows only.

    Parameters
    ----------
    df : DataFrame or ndarray of shape (n_timepoints, n_series)
        Numeric data without NaN.
    method : {"minmax", "zscore"}
        ``"minmax"`` maps the fitted minimum and maximum to 0 and 1
        (sklearn ``MinMaxScaler``); ``"zscore"`` subtracts the mean and divides
        by the standard deviation (sklearn ``StandardScaler``).
    fit : slice, boolean mask or None
        Rows the statistics are learned from; ``None`` uses every row. A slice
        with ``int`` bounds is positional (``iloc``); other bounds are index
        labels (``loc``, end included). A mask is a boolean array of length
        ``n_timepoints``. Pass the training rows so that test data never leaks
        into the scaling.

    Returns
    -------
    normalized : DataFrame or ndarray
        Same type, shape, index and columns as ``df``.
    scaler : sklearn transformer
        The fitted scaler, with ``transform`` and ``inverse_transform``. When
        ``df`` is a DataFrame with string column names, the scaler is fitted
        on a DataFrame and its ``transform`` returns DataFrames.

    Raises
    ------
    ValueError
        On NaN, a mask of the wrong length or dtype, or a fit selection with no rows.

    Notes
    -----
    A constant column (zero range or variance on the fit rows) gets a scale
    of 1, as in sklearn, so it becomes 0 rather than inf or NaN.

    The statistics are learned, and ``normalized`` computed, on each column
    divided by the smallest power of two above its largest absolute value on
    the fit rows. That division is exact, so on ordinary data the result is
    sklearn's to the last bit; but sums of squares no longer overflow near
    1e154 and above or underflow near 1e-154 and below, where sklearn's
    scalers return the input unchanged, zeros or NaN. The returned scaler
    holds the statistics in the units of ``df``; its own ``transform``
    computes ``(x - mean_) / scale_`` (or ``x * scale_ + min_``) directly,
    which can overflow for values near the float64 maximum (1.8e308), and
    ``var_`` is ``inf`` where the variance itself exceeds it.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"a": [0.0, 10.0, 20.0, 40.0], "b": [1.0, 1.0, 1.0, 1.0]})
    >>> scaled, scaler = normalize(df, fit=slice(0, 3))
    >>> scaled["a"].tolist(), scaled["b"].tolist()
    ([0.0, 0.5, 1.0, 2.0], [0.0, 0.0, 0.0, 0.0])
    >>> scaler.inverse_transform(scaled)[:, 0].tolist()
    [0.0, 10.0, 20.0, 40.0]
    """
    _check_option(method, "method", _SCALERS)
    values, index, columns = _as_2d(df, "df")
    rows = _fit_rows(fit, index, len(values))
    _, shift = np.frexp(np.abs(values[rows]).max(axis=0))
    train = np.ldexp(values[rows], -shift)
    scaler = _SCALERS[method]()
    frame_in = isinstance(df, pd.DataFrame)
    if frame_in and all(isinstance(c, str) for c in columns):
        # Fitting on a frame records feature names, so that later
        # scaler.transform(test_df) returns a frame without name warnings.
        scaler.set_output(transform="pandas")
        scaler.fit(pd.DataFrame(train, columns=columns))
    else:
        scaler.fit(train)
    # sklearn's arithmetic on the scaled columns; a constant column has a
    # scale of 1 in the units of df, so its differences are scaled back. The
    # scaled columns lie in (-1, 1), so their standard deviation is below 1
    # and a scale_ of 1 is sklearn's mark of a constant column.
    constant = scaler.data_range_ == 0 if method == "minmax" else scaler.scale_ == 1.0
    out = _scale_kernel(np.ldexp(values, -shift), scaler)
    out[:, constant] = np.ldexp(out[:, constant], shift[constant])
    _to_data_units(scaler, shift, constant)
    if isinstance(df, pd.DataFrame | pd.Series):
        return pd.DataFrame(out, index=index, columns=columns), scaler
    return out.reshape(np.shape(df)), scaler


def _to_data_units(scaler, shift: np.ndarray, constant: np.ndarray) -> None:
    """Turn a scaler fitted on ``train * 2**-shift`` into one for the data itself."""
    with np.errstate(over="ignore"):
        if isinstance(scaler, MinMaxScaler):
            scaler.min_ = np.where(constant, np.ldexp(scaler.min_, shift), scaler.min_)
            scaler.scale_ = np.where(constant, 1.0, np.ldexp(scaler.scale_, -shift))
            for attr in ("data_min_", "data_max_", "data_range_"):
                setattr(scaler, attr, np.ldexp(getattr(scaler, attr), shift))
        else:
            scaler.mean_ = np.ldexp(scaler.mean_, shift)
            scaler.var_ = np.ldexp(scaler.var_, 2 * shift)
            scaler.scale_ = np.where(constant, 1.0, np.ldexp(scaler.scale_, shift))


def _scale_kernel(values: np.ndarray, scaler) -> np.ndarray:
    # The same arithmetic as sklearn's transform, on the bare array.
    if isinstance(scaler, MinMaxScaler):
        return values * scaler.scale_ + scaler.min_
    return (values - scaler.mean_) / scaler.scale_


def _fit_rows(fit, index: pd.Index, n: int) -> np.ndarray:
    """Positions selected by ``fit`` (None, slice or boolean mask)."""
    if fit is None:
        return np.arange(n)
    if isinstance(fit, slice):
        if all(b is None or isinstance(b, numbers.Integral) for b in (fit.start, fit.stop)):
            rows = np.arange(n)[fit]
        else:
            try:
                rows = np.arange(n)[index.slice_indexer(fit.start, fit.stop, fit.step)]
            except (KeyError, TypeError) as exc:
                raise ValueError(f"fit slice {fit} does not match the index of df: {exc}") from exc
    else:
        mask = np.asarray(fit)
        if mask.dtype != bool or mask.shape != (n,):
            raise ValueError(
                f"fit must be a slice or a boolean mask of shape ({n},), "
                f"got dtype {mask.dtype} and shape {mask.shape}"
            )
        rows = np.flatnonzero(mask)
    if rows.size == 0:
        raise ValueError(f"fit selects no rows of df (n_timepoints={n}); select the training rows")
    return rows


# --------------------------------------------------------------------------- windows


def convert_to_column(data, window_size: int, stride: int = 1):
    """Stack each window of rows into one row (behaviour extraction).

    Row ``k`` of the result holds rows ``t .. t+window_size-1`` of ``data``,
    ``t = k*stride``, flattened time-major: first every series at ``t``, then
    every series at ``t+1``, and so on.

    Parameters
    ----------
    data : DataFrame or ndarray of shape (n_timepoints, n_series)
        Numeric data without NaN.
    window_size : int
        Rows per window, ``1 <= window_size <= n_timepoints``.
    stride : int, default 1
        Rows between the starts of consecutive windows.

    Returns
    -------
    columns : DataFrame or ndarray of shape (n_windows, window_size * n_series)
        ``n_windows = (n_timepoints - window_size) // stride + 1``. For a
        DataFrame, the index holds the label of each window's first row and the
        columns are a MultiIndex ``(offset, series)``.

    Raises
    ------
    ValueError
        If ``window_size < 1``, ``stride < 1`` or ``window_size > n_timepoints``.

    Notes
    -----
    Only full windows are made: a partial last window is dropped, never
    zero-padded, so the last ``(n_timepoints - window_size) % stride`` rows are
    in no window (and, when ``stride > window_size``, so are the rows between
    windows). :func:`convert_from_column` returns NaN for them.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(10).reshape(5, 2)
    >>> convert_to_column(x, window_size=2, stride=2)
    array([[0, 1, 2, 3],
           [4, 5, 6, 7]])
    """
    frame_in = isinstance(data, pd.DataFrame | pd.Series)
    # Integer arrays stay integer; frames are converted to float like everywhere else.
    dtype = np.asarray(data).dtype if not frame_in and np.issubdtype(
        np.asarray(data).dtype, np.number) else np.float64
    values, index, columns = _as_2d(data, "data", dtype=dtype)
    n, m = values.shape
    window_size = _check_int(window_size, "window_size", minimum=1)
    stride = _check_int(stride, "stride", minimum=1)
    if window_size > n:
        raise ValueError(
            f"window_size={window_size} is longer than data ({n} rows, shape {values.shape})"
        )
    out = _to_column_kernel(values, window_size, stride)
    if frame_in:
        cols = pd.MultiIndex.from_product([range(window_size), columns], names=["offset", "series"])
        return pd.DataFrame(out, index=index[::stride][: len(out)], columns=cols)
    return out


def _to_column_kernel(values: np.ndarray, window_size: int, stride: int) -> np.ndarray:
    windows = np.lib.stride_tricks.sliding_window_view(values, window_size, axis=0)[::stride]
    # sliding_window_view puts the window axis last: (k, series, offset) -> (k, offset, series)
    return np.ascontiguousarray(windows.transpose(0, 2, 1)).reshape(len(windows), -1)


def convert_from_column(columns, window_size: int, stride: int, n_rows: int, *,
                        agg: str = "mean", index=None):
    """Undo :func:`convert_to_column`: spread windows back onto rows.

    Parameters
    ----------
    columns : DataFrame or ndarray of shape (n_windows, window_size * n_series)
        Windows, e.g. a model's reconstruction of ``convert_to_column`` output.
    window_size, stride : int
        The values given to :func:`convert_to_column`.
    n_rows : int
        Rows of the original data.
    agg : {"mean", "first"}, default "mean"
        How a row covered by several windows is combined: their mean, or the
        value of the first window covering it.
    index : Index, optional
        Time index of the result (length ``n_rows``); a RangeIndex otherwise.

    Returns
    -------
    data : DataFrame or ndarray of shape (n_rows, n_series)
        A DataFrame when ``columns`` is one (series names are taken from a
        ``(offset, series)`` MultiIndex when present). Rows that no window covers
        (the tail after the last full window, gaps when ``stride > window_size``)
        are NaN.

    Raises
    ------
    ValueError
        On a width that is not a multiple of ``window_size``, a number of
        windows that does not fit ``n_rows``, or bad sizes.

    Notes
    -----
    The mean is computed as ``first + mean(value - first)`` so that identical
    overlapping values give back exactly the original value.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(10.0).reshape(5, 2)
    >>> cols = convert_to_column(x, window_size=2, stride=2)
    >>> convert_from_column(cols, window_size=2, stride=2, n_rows=5)
    array([[ 0.,  1.],
           [ 2.,  3.],
           [ 4.,  5.],
           [ 6.,  7.],
           [nan, nan]])
    """
    _check_option(agg, "agg", ("mean", "first"))
    values, _, col_labels = _as_2d(columns, "columns")
    window_size = _check_int(window_size, "window_size", minimum=1)
    stride = _check_int(stride, "stride", minimum=1)
    n_rows = _check_int(n_rows, "n_rows", minimum=window_size)
    k, width = values.shape
    if width % window_size:
        raise ValueError(
            f"columns has {width} columns (shape {values.shape}); expected a multiple of "
            f"window_size={window_size}"
        )
    expected = (n_rows - window_size) // stride + 1
    if k != expected:
        raise ValueError(
            f"columns has {k} windows (shape {values.shape}); n_rows={n_rows}, "
            f"window_size={window_size} and stride={stride} give {expected}"
        )
    if index is not None and len(index) != n_rows:
        raise ValueError(f"index has length {len(index)}; expected n_rows={n_rows}")
    out = _from_column_kernel(values, window_size, stride, n_rows, agg)
    if isinstance(columns, pd.DataFrame):
        m = width // window_size
        if isinstance(col_labels, pd.MultiIndex) and col_labels.nlevels == 2:
            names = col_labels.get_level_values(1)[:m]
        else:
            names = pd.RangeIndex(m)
        return pd.DataFrame(out, index=index if index is not None else pd.RangeIndex(n_rows),
                            columns=names)
    return out


def _from_column_kernel(values, window_size, stride, n_rows, agg):
    k = values.shape[0]
    windows = values.reshape(k, window_size, -1)
    m = windows.shape[2]
    first = np.full((n_rows, m), np.nan)
    # A row's largest offset comes from its earliest window; writing offsets in
    # increasing order lets that window win.
    for offset in range(window_size):
        first[offset + stride * np.arange(k)] = windows[:, offset]
    if agg == "first":
        return first
    total = np.zeros((n_rows, m))
    count = np.zeros((n_rows, 1))
    for offset in range(window_size):
        rows = offset + stride * np.arange(k)
        total[rows] += windows[:, offset] - first[rows]
        count[rows] += 1
    with np.errstate(invalid="ignore"):
        return first + total / count


# --------------------------------------------------------------------------- splitting

#: Result of :func:`time_split`.
TimeSplit = namedtuple("TimeSplit", ["train", "valid", "test"])


def time_split(df, *, train_end, valid_end=None, gap: int = 0) -> TimeSplit:
    """Split rows by time into train, validation and test parts.

    Parameters
    ----------
    df : DataFrame or ndarray of shape (n_timepoints, ...)
        Rows in time order. The index of a DataFrame or Series must be sorted
        increasingly (repeated labels are allowed): on an unsorted index the
        first rows are not the earliest, and a split by position would put
        later rows in training.
    train_end : int or label
        First row *not* in train: a position (``int``) or an index label
        (train then holds the rows before the first label ``>= train_end``).
    valid_end : int or label, optional
        First row not in validation, read the same way. Without it the
        validation part is empty and test follows train.
    gap : int, default 0
        Rows dropped at the start of validation and of test. A window of up to
        ``gap + 1`` consecutive rows then never holds rows of two parts.

    Returns
    -------
    TimeSplit
        Named tuple ``(train, valid, test)`` of the same type as ``df``.

    Raises
    ------
    ValueError
        If a boundary is outside the data, ``valid_end`` is not after
        ``train_end``, a non-optional part is empty, or the index is not sorted
        (the message gives the first row that is earlier than the row before it).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"x": range(10)})
    >>> train, valid, test = time_split(df, train_end=5, valid_end=8, gap=1)
    >>> train.index.tolist(), valid.index.tolist(), test.index.tolist()
    ([0, 1, 2, 3, 4], [6, 7], [9])
    """
    n = _n_rows(df, "df")
    gap = _check_int(gap, "gap", minimum=0)
    index = df.index if isinstance(df, pd.DataFrame | pd.Series) else pd.RangeIndex(n)
    _check_sorted(index, "df")
    p1 = _boundary(train_end, index, "train_end")
    if not 1 <= p1 < n:
        raise ValueError(f"train_end={train_end!r} is row {p1}; expected a row in [1, {n - 1}]"
                         f" so that train and test are not empty (df has {n} rows)")
    if valid_end is None:
        p2 = p1
    else:
        p2 = _boundary(valid_end, index, "valid_end")
        if not p1 < p2 < n:
            raise ValueError(f"valid_end={valid_end!r} is row {p2}; expected a row in "
                             f"({p1}, {n - 1}] after train_end (df has {n} rows)")
        if p1 + gap >= p2:
            raise ValueError(f"validation is empty: rows [{p1} + gap={gap}, {p2})")
    test_start = p2 + gap
    if test_start >= n:
        raise ValueError(f"test is empty: it starts at row {test_start} but df has {n} rows")
    take = (lambda a, b: df.iloc[a:b]) if isinstance(df, pd.DataFrame | pd.Series) \
        else (lambda a, b: df[a:b])
    valid = take(p1 + gap, p2) if valid_end is not None else take(p1, p1)
    return TimeSplit(take(0, p1), valid, take(test_start, n))


def _n_rows(df, name: str) -> int:
    if isinstance(df, pd.DataFrame | pd.Series):
        n = len(df)
    else:
        arr = np.asarray(df)
        if arr.ndim == 0:
            raise ValueError(f"{name} must have a time axis, got a scalar")
        n = arr.shape[0]
    if n == 0:
        raise ValueError(f"{name} has no rows; at least 2 are needed")
    return n


def _check_sorted(index: pd.Index, name: str) -> None:
    """Raise a ValueError naming the first row of ``index`` that goes back in time."""
    if index.is_monotonic_increasing:
        return
    try:
        back = np.flatnonzero(np.asarray(index[1:] < index[:-1]))
    except TypeError:  # labels of types that do not compare
        back = np.array([], dtype=int)
    if back.size:
        p = int(back[0]) + 1
        where = f"row {p} ({index[p]!r}) is earlier than row {p - 1} ({index[p - 1]!r})"
    else:
        where = "its labels do not compare (NaT, NaN or mixed types)"
    raise ValueError(f"{name} must be in time order, but its index is not sorted increasingly: "
                     f"{where}; sort it first (df.sort_index())")


def _boundary(value, index: pd.Index, name: str) -> int:
    """Position of a boundary given as a position (int) or a label of a sorted index."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    try:
        return int(index.searchsorted(value, side="left"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}={value!r} cannot be compared with the index "
                         f"({index.dtype}): {exc}") from exc


# --------------------------------------------------------------------------- schedules


def calc_batches(train_min: int, train_max: int, train_every: int, n: int) -> dict:
    """Rolling retraining schedule: which rows each model is trained on.

    Batch 0 covers rows ``[0, train_min)``. Then at every row ``r`` that is a
    multiple of ``train_every`` with ``train_min < r <= n``, a new batch
    covers ``[max(0, r - train_max), r)``: the window grows until it holds
    ``train_max`` rows, then slides.

    Parameters
    ----------
    train_min : int
        Rows needed before the first model (>= 1).
    train_max : int
        Largest training window (>= ``train_min``).
    train_every : int
        Retrain every this many rows (>= 1).
    n : int
        Rows available (>= ``train_min``).

    Returns
    -------
    dict
        ``{batch_number: {"start": s, "end": e}}`` with ``end`` exclusive.

    Raises
    ------
    ValueError
        On non-integers, values below their minimum, ``train_max < train_min``
        or ``train_min > n``.

    Examples
    --------
    >>> calc_batches(train_min=4, train_max=6, train_every=3, n=12)
    {0: {'start': 0, 'end': 4}, 1: {'start': 0, 'end': 6}, 2: {'start': 3, 'end': 9}, 3: {'start': 6, 'end': 12}}
    """
    train_min = _check_int(train_min, "train_min", minimum=1)
    train_max = _check_int(train_max, "train_max", minimum=train_min)
    train_every = _check_int(train_every, "train_every", minimum=1)
    n = _check_int(n, "n", minimum=train_min)
    batches = {0: {"start": 0, "end": train_min}}
    first = (train_min // train_every + 1) * train_every
    for b, r in enumerate(range(first, n + 1, train_every), start=1):
        batches[b] = {"start": max(0, r - train_max), "end": r}
    return batches


# --------------------------------------------------------------------------- ranking


def rank_changes(df, focus, baseline=None, method: str = "ks", *, ks_method: str = "auto"):
    """Rank metrics by how much they changed in a focus window (metric correlations).

    Parameters
    ----------
    df : DataFrame or ndarray of shape (n_timepoints, n_metrics)
        Numeric metrics without NaN (see :func:`clean_metrics`).
    focus : (start, end)
        The window of interest. ``int`` bounds are positions, half-open
        ``[start, end)``; other bounds are index labels, both included, read
        as ``df.loc[start:end]`` reads them (on a DatetimeIndex, strings such
        as ``"2024-01-01 02:30"`` are times, and a partial time covers its
        whole minute, hour or day).
    baseline : (start, end), optional
        The reference window, read the same way. By default the
        ``4 * len(focus)`` rows right before the focus, cut at the start of
        the data with a warning.
    method : {"ks", "volume"}
        ``"ks"``: two-sample Kolmogorov-Smirnov test of each metric, baseline
        against focus (``lab.signal_utility.ks_2samp_columns``); ``statistic``
        is the KS distance, ``score`` equals it. ``"volume"``: ``statistic``
        is the relative change of the mean, ``(mean_focus - mean_base) /
        |mean_base|`` (``±inf`` when the baseline mean is 0 and the focus mean
        is not, 0 when both are 0), ``score`` is its absolute value, and
        ``pvalue`` is NaN because this method has no test.
    ks_method : str, default "auto"
        Passed to ``ks_2samp_columns`` as ``method`` (as in scipy's ``ks_2samp``).

    Returns
    -------
    DataFrame
        Indexed by metric with columns ``statistic``, ``pvalue`` and
        ``score``, sorted by decreasing score (ties: increasing p-value, then
        the original column order).

    Raises
    ------
    ValueError
        If a window is not a pair, mixes positions and labels, is reversed,
        reaches outside the data or holds no rows, or the two overlap.

    Notes
    -----
    The setting, a focus window against a baseline four times as long right
    before it, is that of Netdata's Metric Correlations
    (https://learn.netdata.cloud/docs/metric-correlations). The two methods
    follow the lab's definitions (issue 4), not Netdata's code
    (netdata/netdata, ``web/api/queries/weights.c``), and differ from it:

    * ``"ks"`` tests the *levels* of each metric with scipy's ``ks_2samp``
      (exact statistic, p-value by ``ks_method``). Netdata's ``kstwo()`` tests
      the *consecutive differences* of the points (``calculate_pairs_diff``),
      takes the p-value of scipy's ``method="asymp"`` (Kolmogorov's
      distribution at ``round(n1 n2 / (n1 + n2))``) and ranks by ``1 - p``;
      it also resamples
      both windows to a few hundred points and rounds the baseline multiplier
      to a power of two.
    * ``"volume"`` is the relative change of the mean. Netdata's ``volume``
      multiplies that change by the share of focus points beyond the baseline
      mean (above it when the mean went up, below when it went down), and
      reports only that share when the baseline mean is 0, where this method
      gives ``±inf``.

    Both Netdata methods finally spread the values evenly over [0, 1] by rank;
    here the statistics are returned as they are.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame(rng.normal(size=(100, 3)), columns=["a", "b", "c"])
    >>> df.loc[80:, "b"] += 5
    >>> rank_changes(df, focus=(80, 100), method="volume").index[0]
    'b'
    """
    _check_option(method, "method", RANK_METHODS)
    values, index, columns = _as_2d(df, "df")
    f0, f1 = window_rows(focus, index, name="focus")
    if baseline is None:
        length = f1 - f0
        b0, b1 = max(0, f0 - BASELINE_FACTOR * length), f0
        if b1 <= b0:
            raise ValueError(f"focus starts at row {f0}: there are no rows before it for the "
                             "default baseline; pass baseline=(start, end)")
        if b1 - b0 < BASELINE_FACTOR * length:
            warnings.warn(f"the default baseline is cut at the start of the data: {b1 - b0} rows "
                          f"instead of {BASELINE_FACTOR} x {length}", UserWarning, stacklevel=2)
    else:
        b0, b1 = window_rows(baseline, index, name="baseline")
        if b0 < f1 and f0 < b1:
            raise ValueError(f"baseline rows [{b0}, {b1}) overlap focus rows [{f0}, {f1})")
    base, foc = values[b0:b1], values[f0:f1]
    if method == "ks":
        from lab.signal_utility import ks_2samp_columns

        statistic, pvalue = ks_2samp_columns(base, foc, method=ks_method)
        statistic, pvalue = np.asarray(statistic, float), np.asarray(pvalue, float)
        score = statistic.copy()
    else:
        statistic = _volume_kernel(base, foc)
        pvalue = np.full(statistic.shape, np.nan)
        score = np.abs(statistic)
    out = pd.DataFrame({"statistic": statistic, "pvalue": pvalue, "score": score},
                       index=pd.Index(columns, name="metric"))
    order = np.lexsort((np.arange(len(out)), np.nan_to_num(pvalue, nan=1.0), -score))
    return out.iloc[order]


def _volume_kernel(base: np.ndarray, focus: np.ndarray) -> np.ndarray:
    mb, mf = base.mean(axis=0), focus.mean(axis=0)
    diff = mf - mb
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = diff / np.abs(mb)
    return np.where(diff == 0, 0.0, rel)


def window_rows(window, index: pd.Index, *, name: str = "window") -> tuple[int, int]:
    """Half-open row range ``[s, e)`` of a ``(start, end)`` window of positions or labels.

    This is the one window rule of the lab (``rank_changes``,
    ``make_server_metrics``, ``plot_scores``, ``plot_lines_grid``).

    Parameters
    ----------
    window : (start, end) pair
        ``int`` bounds are positions, half-open (``iloc``). Other bounds are
        labels, both included, read as ``df.loc[start:end]`` reads them
        (``Index.slice_indexer``): on a DatetimeIndex a string is a time,
        possibly a partial one such as ``"2024-01-01 02:30"``.
    index : pandas.Index
        The index of the data (``pd.RangeIndex(n)`` for an array of ``n`` rows).
    name : str, default "window"
        Argument name used in error messages.

    Returns
    -------
    (s, e) : tuple of int
        The window's rows are ``s <= row < e``, with ``e > s``.

    Raises
    ------
    ValueError
        Naming ``name``, for a window that is not a pair, mixes positions and
        labels, is reversed, reaches outside the data, or holds no rows, or
        for labels on an index that is not sorted.

    Examples
    --------
    >>> import pandas as pd
    >>> index = pd.date_range("2024-01-01", periods=48, freq="h")
    >>> window_rows((2, 5), index)
    (2, 5)
    >>> window_rows(("2024-01-01 03:00", "2024-01-01 05:00"), index)
    (3, 6)
    >>> window_rows(("2024-01-02", "2024-01-02"), index)  # a whole day
    (24, 48)
    """
    n = len(index)
    try:
        start, end = window
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (start, end) pair, got {window!r}") from None
    ints = [isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in (start, end)]
    if all(ints):
        s, e = int(start), int(end)
        if e < s:
            raise ValueError(f"{name}=({start}, {end}) is reversed: end before start")
        if s < 0 or e > n:
            raise ValueError(f"{name}=({start}, {end}) is outside the data (rows 0..{n})")
    elif any(ints):
        raise ValueError(f"{name}=({start!r}, {end!r}) mixes positions and labels")
    else:
        s, e = _label_rows(start, end, index, name)
    if e <= s:
        raise ValueError(f"{name}=({start!r}, {end!r}) holds no rows")
    return s, e


def _label_rows(start, end, index: pd.Index, name: str) -> tuple[int, int]:
    if not index.is_monotonic_increasing:
        raise ValueError(f"{name} is given as labels but the index is not sorted")
    shown = f"{name}=({start!r}, {end!r})"
    first, last = _label_key(start, index, shown), _label_key(end, index, shown)
    try:
        if last < first:
            raise ValueError(f"{shown} is reversed: end before start")
        lo, hi = index[0], index[-1]
        if first < lo or last > hi:
            raise ValueError(f"{shown} is outside the data ({lo!r} .. {hi!r})")
        rows = index.slice_indexer(start, end)
    except (TypeError, KeyError) as exc:
        raise ValueError(f"{shown} cannot be compared with the index "
                         f"({index.dtype}): {exc}") from exc
    s, e, _ = rows.indices(len(index))
    return s, e


def _label_key(value, index: pd.Index, shown: str):
    """A label as a value comparable with the index (a time string becomes a Timestamp)."""
    if not isinstance(index, pd.DatetimeIndex) or isinstance(value, pd.Timestamp) or \
            not isinstance(value, str | np.datetime64 | datetime.date):
        return value
    try:
        key = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{shown}: {value!r} is not a time ({exc})") from exc
    if key is pd.NaT:
        raise ValueError(f"{shown}: {value!r} is not a time")
    if index.tz is not None and key.tzinfo is None:
        key = key.tz_localize(index.tz)
    return key
