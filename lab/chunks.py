"""Chunks for supervised classifiers: fixed-length pieces of labelled series, and splits.

:func:`make_chunks` cuts a labelled multivariate series into chunks of ``T``
consecutive rows that never cross a group (an experiment, a recording), with
one label per chunk; :func:`add_calendar` appends the time of day and year as
cyclic features first. :func:`grouped_folds` and :func:`validation_split`
split by group, so that no chunk of one experiment is on both sides of a split
(neighbouring chunks share most of their rows, and a split by chunk leaks).
Notebook 07 and :mod:`lab.chunk_study` use them; docs/chunk-classifiers.md
explains the leak.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lab._validation import _as_2d, _check_int, _check_option

__all__ = [
    "CALENDAR_PERIODS",
    "add_calendar",
    "make_chunks",
    "grouped_folds",
    "validation_split",
]


#: Calendar fields of ``add_calendar`` and their periods (sine/cosine pairs).
CALENDAR_PERIODS = {"hour": 24, "minute": 60, "day": 31, "month": 12}


def add_calendar(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with hour, minute, day and month appended as cyclic sine/cosine pairs.

    Each field ``f`` of period ``P`` (hour 24, minute 60, day of month 31,
    month 12) becomes ``f_sin = sin(2 pi v / P)`` and ``f_cos = cos(2 pi v / P)``,
    so 23:00 sits next to 00:00. Day and month count from 0.

    Parameters
    ----------
    df : DataFrame with a DatetimeIndex

    Returns
    -------
    DataFrame
        The columns of ``df`` then the eight calendar columns, on ``df``'s index.

    Raises
    ------
    ValueError
        If ``df`` has no DatetimeIndex.

    Examples
    --------
    >>> idx = pd.date_range("2024-03-01 06:00", periods=2, freq="h")
    >>> out = add_calendar(pd.DataFrame({"x": [1.0, 2.0]}, index=idx))
    >>> list(out.columns[:3]), round(float(out["hour_sin"].iloc[0]), 6)
    (['x', 'hour_sin', 'hour_cos'], 1.0)
    """
    if not isinstance(df, pd.DataFrame) or not isinstance(df.index, pd.DatetimeIndex):
        kind = type(df.index).__name__ if isinstance(df, pd.DataFrame) else type(df).__name__
        raise ValueError(f"calendar features need a DataFrame with a DatetimeIndex, got {kind}; "
                         "pass calendar=False")
    idx = df.index
    fields = {"hour": idx.hour, "minute": idx.minute, "day": idx.day - 1, "month": idx.month - 1}
    cal = {}
    for name, period in CALENDAR_PERIODS.items():
        angle = 2 * np.pi * np.asarray(fields[name], dtype=np.float64) / period
        cal[f"{name}_sin"] = np.sin(angle)
        cal[f"{name}_cos"] = np.cos(angle)
    return pd.concat([df, pd.DataFrame(cal, index=idx)], axis=1)


def _aligned(values: Any, index: pd.Index, name: str) -> np.ndarray:
    """A per-row array of ``values``; a Series must carry exactly ``index``."""
    if isinstance(values, pd.DataFrame):
        if values.shape[1] != 1:
            raise ValueError(f"{name} must be one column, got shape {values.shape}")
        values = values.iloc[:, 0]
    if isinstance(values, pd.Series):
        if not values.index.equals(index):
            raise ValueError(f"{name} does not align with the frame's index: {len(values)} rows "
                             f"from {values.index[:1].tolist()} vs {len(index)} rows from "
                             f"{index[:1].tolist()}; reindex it first")
        return values.to_numpy()
    arr = np.asarray(values)
    if arr.ndim != 1 or len(arr) != len(index):
        raise ValueError(f"{name} must have one value per row: shape {arr.shape}, expected "
                         f"({len(index)},)")
    return arr


def _group_runs(groups: np.ndarray) -> list[tuple[int, int]]:
    """Half-open row ranges of consecutive equal group values."""
    if len(groups) == 0:
        return []
    change = np.flatnonzero(groups[1:] != groups[:-1]) + 1
    bounds = np.r_[0, change, len(groups)]
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))


def _chunk_starts(runs: list[tuple[int, int]], T: int, step: int) -> np.ndarray:
    starts = [np.arange(s, e - T + 1, step) for s, e in runs]
    return np.concatenate(starts).astype(np.intp) if starts else np.zeros(0, np.intp)


def _chunk_kernel(values: np.ndarray, flags: np.ndarray, starts: np.ndarray, T: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Chunks ``values[s:s+T]`` for each start, and the share of flagged rows in each."""
    windows = np.lib.stride_tricks.sliding_window_view(values, T, axis=0)  # (n-T+1, d, T)
    X = np.ascontiguousarray(windows[starts].transpose(0, 2, 1))
    csum = np.r_[0, np.cumsum(flags, dtype=np.int64)]
    share = (csum[starts + T] - csum[starts]) / T
    return X, share


def make_chunks(df: Any, labels: Any, T: int = 60, step: int | None = None,
                rule: str | float = "any", calendar: bool = True, groups: Any = None
                ) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Cut a labelled series into fixed-length chunks, one label per chunk.

    The seed study's preprocessing: ``T`` consecutive rows make a chunk, and a
    chunk holding any anomalous row (``rule="any"``) is anomalous. No chunk
    straddles two groups (experiments, sites, files): chunks are cut inside
    each run of consecutive rows of one group, and a run's last rows that do
    not fill a chunk are dropped.

    Parameters
    ----------
    df : DataFrame or ndarray of shape (n_timepoints, n_series)
        Numeric signals without NaN.
    labels : Series or array of shape (n_timepoints,)
        Row labels, 0/1 or bool (a Series must carry ``df``'s index).
    T : int, default 60
        Rows per chunk.
    step : int, optional
        Rows between chunk starts; None gives ``T`` (non-overlapping chunks).
    rule : "any" or float in (0, 1]
        A chunk is anomalous if any row is (``"any"``), or if the share of
        anomalous rows is at least this number.
    calendar : bool, default True
        Append hour, minute, day and month as sine/cosine pairs
        (:func:`add_calendar`); needs a DatetimeIndex.
    groups : Series or array of shape (n_timepoints,), optional
        Each row's source. None: one group.

    Returns
    -------
    X : ndarray of shape (n_chunks, T, n_features)
        Signals (then calendar columns), float64.
    y : ndarray of int, shape (n_chunks,)
        Chunk labels.
    meta : DataFrame
        One row per chunk: ``group``, ``start`` and ``end`` (the index labels
        of its first and last row), ``start_pos`` and ``stop_pos``
        (half-open row positions) and ``anomaly_share``.

    Raises
    ------
    ValueError
        On NaN or non-numeric signals, labels or groups that do not align
        with ``df``, a ``T`` longer than a group's rows, a bad ``step`` or
        ``rule``, or ``calendar=True`` without a DatetimeIndex.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros(10, int); labels[7] = 1
    >>> X, y, meta = make_chunks(np.arange(10.0), labels, T=4, calendar=False)
    >>> X.shape, y.tolist(), meta["start_pos"].tolist()
    ((2, 4, 1), [0, 1], [0, 4])
    """
    if calendar:
        frame = df if isinstance(df, pd.DataFrame) else None
        if frame is None or not isinstance(frame.index, pd.DatetimeIndex):
            add_calendar(frame if frame is not None else df)  # raises the clear error
        _as_2d(df, "df")  # non-numeric / NaN named before the calendar hides them
        df = add_calendar(df)
    values, index, _ = _as_2d(df, "df")
    n = len(values)
    T = _check_int(T, "T", minimum=1)
    step = T if step is None else _check_int(step, "step", minimum=1)
    if isinstance(rule, str):
        _check_option(rule, "rule", ("any",))
    else:
        share = float(rule)
        if not 0 < share <= 1:
            raise ValueError(f"rule must be 'any' or a share in (0, 1], got {rule!r}")
    flags = _aligned(labels, index, "labels")
    try:
        flags = flags.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"labels must be 0/1 or bool, got dtype {flags.dtype}") from None
    if np.isnan(flags).any() or not np.isin(flags, (0.0, 1.0)).all():
        raise ValueError("labels must be 0/1 or bool without NaN, got values "
                         f"{np.unique(flags)[:5].tolist()}")
    group_values = np.zeros(n, np.int64) if groups is None else _aligned(groups, index, "groups")
    runs = _group_runs(group_values)
    short = [(group_values[s].item() if hasattr(group_values[s], "item") else group_values[s], e - s) for s, e in runs if e - s < T]
    if short:
        g, rows = short[0]
        raise ValueError(f"T={T} is longer than the series: group {g!r} has {rows} rows "
                         f"({len(short)} group run(s) shorter than T); choose T <= {rows}")
    starts = _chunk_starts(runs, T, step)
    X, shares = _chunk_kernel(values, flags, starts, T)
    y = (shares > 0) if rule == "any" else (shares >= float(rule))
    meta = pd.DataFrame({
        "group": group_values[starts] if len(starts) else group_values[:0],
        "start": index[starts], "end": index[starts + T - 1],
        "start_pos": starts, "stop_pos": starts + T, "anomaly_share": shares,
    })
    return X, y.astype(np.int64), meta


def grouped_folds(groups: Any, n_splits: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-validation folds that hold out whole groups (scikit-learn's ``GroupKFold``).

    Parameters
    ----------
    groups : array of shape (n_items,)
        Each item's group (a chunk's experiment: ``meta["group"]``).
    n_splits : int, default 5

    Returns
    -------
    list of (train, test) index arrays
        Every group is in exactly one test fold and never on both sides.

    Raises
    ------
    ValueError
        With fewer groups than folds, or fewer than 2 folds.

    Examples
    --------
    >>> folds = grouped_folds(["a", "a", "b", "c", "c"], n_splits=3)
    >>> sorted(t.tolist() for _, t in folds)
    [[0, 1], [2], [3, 4]]
    """
    from sklearn.model_selection import GroupKFold

    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise ValueError(f"groups must be 1-D, got shape {groups.shape}")
    n_splits = _check_int(n_splits, "n_splits", minimum=2)
    n_groups = len(np.unique(groups))
    if n_groups < n_splits:
        raise ValueError(f"grouped split needs at least n_splits={n_splits} groups, got "
                         f"{n_groups}; lower n_splits")
    return [(tr, te) for tr, te in GroupKFold(n_splits).split(groups, groups=groups)]


def validation_split(groups: Any, y: Any = None, size: float = 0.2,
                     random_state: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split items into fit and validation rows that keep whole groups on one side.

    Groups are shuffled (``random_state``) and taken into validation until it
    holds at least ``size`` of the items. With ``y`` given, up to 20 shuffles
    are tried for a validation set holding every class of ``y``.

    Parameters
    ----------
    groups : array of shape (n_items,)
    y : array of shape (n_items,), optional
    size : float in (0, 1), default 0.2
    random_state : int, optional

    Returns
    -------
    fit_idx, valid_idx : ndarray of int

    Raises
    ------
    ValueError
        With fewer than 2 groups, or a ``size`` outside (0, 1).

    Examples
    --------
    >>> fit, val = validation_split([0, 0, 1, 1, 2, 2, 3, 3, 4, 4], size=0.2)
    >>> len(val), len(set(fit) & set(val))
    (2, 0)
    """
    groups = np.asarray(groups)
    if not 0 < float(size) < 1:
        raise ValueError(f"size must be in (0, 1), got {size!r}")
    uniq = np.unique(groups)
    if len(uniq) < 2:
        raise ValueError(f"validation_split needs at least 2 groups, got {len(uniq)}")
    rng = np.random.default_rng(random_state)
    classes = None if y is None else np.unique(np.asarray(y))
    best = None
    for _ in range(20):
        order = rng.permutation(uniq)
        counts = np.array([(groups == g).sum() for g in order])
        k = int(np.searchsorted(np.cumsum(counts), size * len(groups))) + 1
        k = min(max(k, 1), len(uniq) - 1)
        is_val = np.isin(groups, order[:k])
        if best is None:
            best = is_val
        if classes is None or len(np.unique(np.asarray(y)[is_val])) == len(classes):
            best = is_val
            break
    return np.flatnonzero(~best), np.flatnonzero(best)
