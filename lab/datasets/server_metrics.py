"""Synthetic, Netdata-like server metrics with a known incident: :func:`make_server_metrics`.

The frame is wide (hundreds of metric columns) and messy on purpose: rates,
cumulative counters, percentages, small integers with many ties, sparse error
counts that are mostly 0, seasonality, noise, a few NaN gaps. The ground truth
says which group drives each metric, which metrics change in the incident
window, and how.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from lab._validation import _as_2d, _check_int
from lab.preprocessor import BASELINE_FACTOR, window_rows

__all__ = [
    "make_server_metrics",
    "counters_to_rates",
    "default_incident",
    "focus_and_baseline",
    "METRIC_TYPES",
    "CHANGE_KINDS",
]

#: Metric types, with the column-name suffix that marks them (Prometheus style:
#: a cumulative counter ends in ``_total``).
METRIC_TYPES = {
    "rate": "_rate",
    "counter": "_total",
    "percent": "_pct",
    "integer": "_count",
    "sparse": "_errors",
}
#: Share of each metric type among the columns.
_TYPE_SHARES = {"rate": 0.35, "counter": 0.2, "percent": 0.15, "integer": 0.2, "sparse": 0.1}
#: Kinds of change applied in the incident window, assigned in turn to the affected metrics.
CHANGE_KINDS = ("level_shift", "variance", "spikes", "flatline")
#: A sparse metric is 0 nearly everywhere already, so a flatline would not show.
_SPARSE_KINDS = ("level_shift", "variance", "spikes")

#: First timestamp of the generated index.
_START = "2024-01-01"
#: The default incident is the 12th of the data that starts two thirds of the way in.
_DEFAULT_INCIDENT_FRACTION = 12
#: Candidate seasonal periods of the group loads (cron-like jobs), in rows of a
#: ``_PERIODS_PER`` row frame; they scale with ``n_rows`` so that the default incident
#: always spans more than one cycle.
_PERIODS = (20, 30, 45, 60, 75, 90, 120, 150, 180, 240)
_PERIODS_PER = 3600
_MIN_PERIOD = 4
#: AR(1) coefficient range of the fast part of a group load.
_AR_PHI = (0.5, 0.8)
#: Weights of the AR part, the seasonal part and the shared day curve in a group load.
_W_AR, _W_SEASON, _W_DAY = 0.8, 0.8, 0.25
#: Expected number of group load bursts per 1200 rows, their length and height.
_BURSTS_PER_ROWS = 1200
_BURST_LEN = (20, 120)
_BURST_HEIGHT = (1.5, 3.0)
#: Share of a metric's variance explained by its group load.
_LOADING = (0.55, 0.9)
#: Size of the changes, in units of the metric's standardised signal.
_SHIFT = (2.5, 3.5)
_EXTRA_NOISE_SD = (3.5, 4.5)
_SPIKE_EVERY = (3, 5)
_SPIKE_HEIGHT = (5.0, 8.0)
#: NaN gaps: one per this many metrics (at least one), each this many rows long.
_METRICS_PER_GAP = 100
_GAP_LEN = (3, 10)
#: Share of counters that restart from 0 once (a service restart).
_RESET_SHARE = 0.2


def make_server_metrics(
    n_metrics: int = 500,
    n_rows: int = 3600,
    n_groups: int = 8,
    incident: Any = None,
    n_affected: int = 25,
    freq: str = "1s",
    random_state: int | None = 0,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Generate a wide frame of server metrics with one incident and its ground truth.

    Parameters
    ----------
    n_metrics : int
        Number of metric columns (at least ``n_groups``).
    n_rows : int
        Number of time points (at least 60).
    n_groups : int
        Number of latent load groups (services); every group drives at least one metric.
    incident : (start, end) pair or None
        The incident window, as integer positions (half-open, ``start <= row < end``) or
        as index labels (inclusive at both ends, as ``df.loc[start:end]``; strings are
        times), read as :func:`lab.preprocessor.rank_changes` reads windows. ``None`` gives
        rows ``[2 * n_rows // 3, 2 * n_rows // 3 + n_rows // 12)``, which leaves room
        for a baseline four times as long just before it.
    n_affected : int
        Number of metrics that change in the incident window (0 for none).
    freq : str
        Sampling period of the time index (a pandas frequency string with a
        positive multiple: ``"1s"``, ``"5min"``; ``"-1s"`` is refused).
    random_state : int or None
        Seed; the same seed gives the same frame and truth.

    Returns
    -------
    df : DataFrame of shape (n_rows, n_metrics)
        Float metrics indexed by time, starting 2024-01-01. Column names end in the
        metric type's suffix (``_rate``, ``_total``, ``_pct``, ``_count``, ``_errors``).
    truth : dict
        ``group`` : Series metric -> group number (0 .. n_groups - 1);
        ``metric_type`` : Series metric -> one of :data:`METRIC_TYPES`;
        ``affected`` : list of the changed metrics;
        ``change`` : Series affected metric -> one of :data:`CHANGE_KINDS`;
        ``incident`` : ``(first_label, last_label)``, inclusive, for ``df.loc``;
        ``incident_pos`` : ``(start, end)`` positions, half-open, for ``df.iloc``.

    Raises
    ------
    ValueError
        On sizes out of range, ``n_affected > n_metrics``, a ``freq`` that is not a
        positive period, or an incident window that is reversed, empty or outside the data.

    Notes
    -----
    Generative model. Each group ``g`` has a latent load ``L_g(t)``: a unit-variance
    AR(1) process, plus a seasonal wave of its own period (a sine or a cron-like
    sawtooth; periods of 20 to 240 rows per 3600 rows, scaled with ``n_rows``), plus a slow day curve shared by all groups, plus a few load bursts,
    standardised to unit variance. Bursts never fall in the incident window nor in
    the four incident lengths before it, so that no burst makes a metric outside
    ``affected`` look changed there. That does not make those metrics identically
    distributed in the two windows: the seasonal waves and the AR noise differ
    from one window to the next, and with the defaults about a fifth of them have
    a KS p-value below 1e-3 between the incident and the baseline (with small
    distances: a 95th percentile of 0.15). Metric ``j`` of group ``g`` has the
    standardised signal

    ``z_j(t) = sqrt(r_j) L_g(t) + sqrt(1 - r_j) e_j(t)``,

    with ``r_j`` in [0.55, 0.9] and ``e_j`` its own white noise, mapped to what a
    collector reports according to its type:

    * rate: ``m + s z`` clipped at 0;
    * counter: the cumulative sum of a rounded rate (monotone; some counters
      restart from 0 once). Difference it first, see :func:`counters_to_rates`;
    * percent: ``100 sigmoid(a + b z)``, which saturates near 0 or 100;
    * integer: ``round(m + s z)`` with a small ``s``, so many values tie;
    * sparse: ``ceil(c max(0, z - q))`` with a high ``q``: 0 most of the time,
      small counts when the group is busy.

    In the incident window the affected metrics change, the kinds taken in turn:
    ``level_shift`` adds 2.5 to 3.5 to ``z`` (either sign; up for sparse),
    ``variance`` adds white noise of standard deviation 3.5 to 4.5, ``spikes``
    adds 5 to 8 on every 3rd to 5th row, and ``flatline`` holds the last value
    before the incident (a stuck collector; a stuck counter stops increasing).
    Sparse metrics never get a flatline. A few short NaN gaps (3 to 10 rows,
    about one per 100 metrics) fall anywhere.

    The base signals, the changes and the gaps are drawn from independent random
    streams: with the same seed, ``n_affected=0`` gives the same frame except in
    the affected metrics (and the counters there, after the incident).

    The setting follows Netdata's metric correlations, which rank the metrics of
    a highlighted window by a two-sample KS test against a baseline four times as
    long (https://learn.netdata.cloud/docs/metric-correlations).

    Examples
    --------
    >>> df, truth = make_server_metrics(n_metrics=40, n_rows=600, n_groups=4, n_affected=4)
    >>> df.shape
    (600, 40)
    >>> truth["incident_pos"]
    (400, 450)
    >>> sorted(truth["change"].value_counts().index)
    ['flatline', 'level_shift', 'spikes', 'variance']
    """
    n_metrics = _check_int(n_metrics, "n_metrics", minimum=1)
    n_rows = _check_int(n_rows, "n_rows", minimum=60)
    n_groups = _check_int(n_groups, "n_groups", minimum=1, maximum=n_metrics)
    n_affected = _check_int(n_affected, "n_affected", minimum=0, maximum=n_metrics)
    if random_state is not None:
        random_state = _check_int(random_state, "random_state", minimum=0)
    try:
        offset = pd.tseries.frequencies.to_offset(freq)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"freq must be a pandas frequency string, got {freq!r}") from exc
    if offset is None or offset.n <= 0:
        # A negative period makes a time index that runs backwards; 0 makes none.
        raise ValueError(f"freq must be a positive period such as '1s' or '5min', got {freq!r}")
    index = pd.date_range(_START, periods=n_rows, freq=offset)
    start, end = _incident_positions(incident, index)

    base_seed, change_seed, gap_seed = np.random.SeedSequence(random_state).spawn(3)
    base_rng = np.random.default_rng(base_seed)
    types = _assign_types(n_metrics, base_rng)
    groups = _assign_groups(n_metrics, n_groups, base_rng)
    loads = _group_loads(n_rows, n_groups, (start, end), base_rng)
    z = _metric_signals(loads, groups, base_rng)
    params = _type_params(types, base_rng)

    change_rng = np.random.default_rng(change_seed)
    affected, kinds = _choose_affected(types, n_affected, change_rng)
    z, stuck = _apply_changes(z, affected, kinds, (start, end), types, change_rng)

    values = _observe(z, types, params, stuck, (start, end))
    _add_gaps(values, np.random.default_rng(gap_seed))

    names = [f"m{j:04d}{METRIC_TYPES[t]}" for j, t in enumerate(types)]
    df = pd.DataFrame(values, index=index, columns=names)
    df.index.name = "time"
    affected_names = [names[j] for j in affected]
    truth = {
        "group": pd.Series(groups, index=names, name="group"),
        "metric_type": pd.Series(types, index=names, name="metric_type"),
        "affected": affected_names,
        "change": pd.Series(kinds, index=affected_names, name="change", dtype=object),
        "incident": (index[start], index[end - 1]),
        "incident_pos": (start, end),
    }
    return df, truth


def counters_to_rates(df: pd.DataFrame, columns: Any = None) -> pd.DataFrame:
    """Turn cumulative counters into per-row increments, as Netdata and Prometheus do.

    Parameters
    ----------
    df : DataFrame of shape (n_timepoints, n_series)
        Metrics indexed by time.
    columns : list of column names or None
        The counters. ``None`` takes the columns whose name ends in ``_total``.

    Returns
    -------
    DataFrame
        A copy of ``df`` in which each counter column holds its increment since the
        previous row. The first row of a counter, and a row after a NaN, are NaN.
        A decrease is a counter reset: the increment is then the new value, since
        the counter restarted from 0.

    Raises
    ------
    ValueError
        If ``df`` is not a DataFrame of numeric columns or a named column is missing.

    Notes
    -----
    The reset rule is that of Prometheus' ``rate()``/``increase()``
    (https://prometheus.io/docs/prometheus/latest/querying/functions/#rate).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"req_total": [0.0, 3, 5, 2, 6], "cpu_pct": [1.0, 2, 3, 4, 5]})
    >>> counters_to_rates(df)["req_total"].tolist()
    [nan, 3.0, 2.0, 2.0, 4.0]
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df must be a DataFrame, got {type(df).__name__}")
    if columns is None:
        columns = [c for c in df.columns if str(c).endswith(METRIC_TYPES["counter"])]
    else:
        columns = list(columns)
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ValueError(f"columns {missing[:10]} are not in df (shape {df.shape})")
    out = df.copy()
    if not columns:
        return out
    values, _, _ = _as_2d(df[columns], "df[columns]", allow_nan=True)
    out[columns] = _increments(values)
    return out


def _increments(values: np.ndarray) -> np.ndarray:
    diff = np.full_like(values, np.nan)
    diff[1:] = values[1:] - values[:-1]
    reset = diff < 0
    diff[reset] = values[reset]
    return diff


def default_incident(n_rows: int) -> tuple[int, int]:
    """The incident window :func:`make_server_metrics` uses when none is given.

    Parameters
    ----------
    n_rows : int
        Number of time points (at least 60, as for the generator).

    Returns
    -------
    (start, end) : tuple of int
        Half-open row positions: ``n_rows // 12`` rows (at least 2) starting two
        thirds of the way in, which leaves room for a baseline four times as long.

    Examples
    --------
    >>> default_incident(3600)
    (2400, 2700)
    """
    n_rows = _check_int(n_rows, "n_rows", minimum=60)
    start = 2 * n_rows // 3
    return start, start + max(2, n_rows // _DEFAULT_INCIDENT_FRACTION)


def focus_and_baseline(
    focus: Any, n_rows: int, baseline_mult: int = BASELINE_FACTOR
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Check a focus window and place the baseline right before it, before any work.

    Parameters
    ----------
    focus : (start, end) pair of int
        Half-open row positions of the focus window.
    n_rows : int
        Number of rows of the data.
    baseline_mult : int, default 4
        Baseline length, in focus lengths (Netdata uses 4).

    Returns
    -------
    focus, baseline : two (start, end) pairs of int
        Half-open row positions; ``baseline = (start - baseline_mult * length, start)``.

    Raises
    ------
    ValueError
        If ``focus`` is not a pair of ints, is reversed or empty, lies outside
        ``[0, n_rows]``, or starts too early for a full baseline. The message says
        which, with the numbers. Apart from the last, these are the checks of
        :func:`lab.preprocessor.rank_changes`, with the same messages.

    Notes
    -----
    :func:`lab.preprocessor.rank_changes` cuts a default baseline at the start of
    the data; a notebook that promises a baseline ``baseline_mult`` times the focus
    wants a clear error instead, before it generates or cleans anything.

    Examples
    --------
    >>> focus_and_baseline((2400, 2700), 3600)
    ((2400, 2700), (1200, 2400))
    >>> focus_and_baseline((100, 200), 3600)
    Traceback (most recent call last):
    ...
    ValueError: focus (100, 200) starts at row 100, too early for a baseline of 4 x 100 = 400 rows before it; start the focus at row 400 or later, or lower baseline_mult
    """
    n_rows = _check_int(n_rows, "n_rows", minimum=1)
    baseline_mult = _check_int(baseline_mult, "baseline_mult", minimum=1)
    try:
        first, last = focus
    except (TypeError, ValueError) as exc:
        raise ValueError(f"focus must be a (start, end) pair of row positions, got {focus!r}") from exc
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (first, last)):
        raise ValueError(f"focus must hold integer row positions, got {focus!r}")
    start, end = window_rows((first, last), pd.RangeIndex(n_rows), name="focus")
    length = baseline_mult * (end - start)
    if start < length:
        raise ValueError(
            f"focus ({start}, {end}) starts at row {start}, too early for a baseline of "
            f"{baseline_mult} x {end - start} = {length} rows before it; start the focus "
            f"at row {length} or later, or lower baseline_mult"
        )
    return (start, end), (start - length, start)


def _incident_positions(incident: Any, index: pd.DatetimeIndex) -> tuple[int, int]:
    if incident is None:
        return default_incident(len(index))
    start, end = window_rows(incident, index, name="incident")
    if end - start < 2:
        raise ValueError(f"incident {incident!r} is {end - start} row long; at least 2 are needed")
    return start, end


def _assign_types(n_metrics: int, rng: np.random.Generator) -> np.ndarray:
    names = list(_TYPE_SHARES)
    counts = np.floor(np.array([_TYPE_SHARES[t] for t in names]) * n_metrics).astype(int)
    counts[0] += n_metrics - counts.sum()
    return rng.permutation(np.repeat(np.array(names, dtype=object), counts))


def _assign_groups(n_metrics: int, n_groups: int, rng: np.random.Generator) -> np.ndarray:
    # Uneven group sizes, as services have uneven numbers of metrics, but each has one.
    weights = rng.uniform(0.5, 1.5, n_groups)
    extra = rng.multinomial(n_metrics - n_groups, weights / weights.sum())
    return rng.permutation(np.repeat(np.arange(n_groups), extra + 1))


def _group_loads(
    n_rows: int, n_groups: int, incident: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    t = np.arange(n_rows)
    start, end = incident
    # No burst in the incident nor in rank_changes' default baseline before it.
    protected = (max(0, start - BASELINE_FACTOR * (end - start)), end)
    day = np.sin(2 * np.pi * t / n_rows + rng.uniform(0, 2 * np.pi))
    scaled = np.maximum(_MIN_PERIOD, np.round(np.array(_PERIODS) * n_rows / _PERIODS_PER))
    periods = rng.permutation(np.resize(scaled, max(n_groups, len(_PERIODS))))[:n_groups]
    loads = np.empty((n_rows, n_groups))
    for g in range(n_groups):
        phi = rng.uniform(*_AR_PHI)
        ar = lfilter([np.sqrt(1 - phi**2)], [1, -phi], rng.standard_normal(n_rows),
                     zi=[phi * rng.standard_normal()])[0]
        phase = 2 * np.pi * t / periods[g] + rng.uniform(0, 2 * np.pi)
        # Half the groups run cron-like jobs (a sawtooth), half a smooth cycle.
        season = np.sin(phase) if g % 2 == 0 else 2 * (phase / (2 * np.pi) % 1) - 1
        load = _W_AR * ar + _W_SEASON * season / season.std() + _W_DAY * day
        load += _bursts(n_rows, protected, rng)
        loads[:, g] = (load - load.mean()) / load.std()
    return loads


def _bursts(n_rows: int, protected: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n_rows)
    for _ in range(rng.poisson(n_rows / _BURSTS_PER_ROWS)):
        length = int(rng.integers(*_BURST_LEN))
        if length >= n_rows:
            continue
        first = int(rng.integers(0, n_rows - length))
        if first < protected[1] and first + length > protected[0]:
            continue
        out[first:first + length] += rng.uniform(*_BURST_HEIGHT)
    return out


def _metric_signals(loads: np.ndarray, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n_rows, n_metrics = loads.shape[0], len(groups)
    r = rng.uniform(*_LOADING, n_metrics)
    noise = rng.standard_normal((n_rows, n_metrics))
    return np.sqrt(r) * loads[:, groups] + np.sqrt(1 - r) * noise


def _type_params(types: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = len(types)
    # Location and scale per metric; each type uses the pair in its own units.
    return {
        "rate_m": rng.uniform(20, 500, n),
        "rate_cv": rng.uniform(0.05, 0.25, n),
        "pct_a": rng.uniform(-1.5, 1.0, n),
        "pct_b": rng.uniform(0.4, 0.9, n),
        "int_m": rng.uniform(8, 40, n),
        "int_s": rng.uniform(1.5, 4.0, n),
        "sparse_q": rng.uniform(1.3, 1.8, n),
        "sparse_c": rng.uniform(1.0, 5.0, n),
        "reset": rng.uniform(0, 1, n) < _RESET_SHARE,
        "reset_at": rng.uniform(0.05, 0.95, n),
    }


def _choose_affected(
    types: np.ndarray, n_affected: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[str]]:
    kinds = [CHANGE_KINDS[i % len(CHANGE_KINDS)] for i in range(n_affected)]
    order = rng.permutation(len(types))
    chosen: list[int] = []
    for kind in kinds:
        for j in order:
            if j not in chosen and (types[j] != "sparse" or kind in _SPARSE_KINDS):
                chosen.append(int(j))
                break
        else:
            raise ValueError(
                f"n_affected={n_affected}: not enough metrics that can take a {kind} change"
            )
    return np.array(chosen, dtype=int), kinds


def _apply_changes(
    z: np.ndarray,
    affected: np.ndarray,
    kinds: list[str],
    incident: tuple[int, int],
    types: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    start, end = incident
    length = end - start
    z = z.copy()
    stuck = np.zeros(z.shape[1], dtype=bool)
    for j, kind in zip(affected, kinds, strict=True):
        if kind == "level_shift":
            sign = 1.0 if types[j] == "sparse" else rng.choice([-1.0, 1.0])
            z[start:end, j] += sign * rng.uniform(*_SHIFT)
        elif kind == "variance":
            z[start:end, j] += rng.uniform(*_EXTRA_NOISE_SD) * rng.standard_normal(length)
        elif kind == "spikes":
            every = int(rng.integers(_SPIKE_EVERY[0], _SPIKE_EVERY[1] + 1))
            rows = np.arange(start + int(rng.integers(every)), end, every)
            z[rows, j] += rng.uniform(*_SPIKE_HEIGHT, len(rows))
        else:
            z[start:end, j] = z[start - 1, j] if start > 0 else z[start, j]
            stuck[j] = True
    return z, stuck


def _observe(
    z: np.ndarray,
    types: np.ndarray,
    p: dict[str, np.ndarray],
    stuck: np.ndarray,
    incident: tuple[int, int],
) -> np.ndarray:
    n_rows = z.shape[0]
    out = np.empty_like(z)
    for j, kind in enumerate(types):
        zj = z[:, j]
        if kind == "rate":
            out[:, j] = np.maximum(p["rate_m"][j] * (1 + p["rate_cv"][j] * zj), 0)
        elif kind == "counter":
            inc = np.maximum(np.round(p["rate_m"][j] * (1 + p["rate_cv"][j] * zj)), 0)
            if stuck[j]:
                inc[incident[0]:incident[1]] = 0
            total = np.cumsum(inc) + np.round(p["rate_m"][j] * n_rows)
            if p["reset"][j]:
                at = int(p["reset_at"][j] * n_rows)
                total[at:] -= total[at - 1]
            out[:, j] = total
        elif kind == "percent":
            out[:, j] = 100 / (1 + np.exp(-(p["pct_a"][j] + p["pct_b"][j] * zj)))
        elif kind == "integer":
            out[:, j] = np.maximum(np.round(p["int_m"][j] + p["int_s"][j] * zj), 0)
        else:
            out[:, j] = np.ceil(p["sparse_c"][j] * np.maximum(zj - p["sparse_q"][j], 0))
    return out


def _add_gaps(values: np.ndarray, rng: np.random.Generator) -> None:
    n_rows, n_metrics = values.shape
    for _ in range(max(1, n_metrics // _METRICS_PER_GAP)):
        length = int(rng.integers(_GAP_LEN[0], _GAP_LEN[1] + 1))
        first = int(rng.integers(1, max(2, n_rows - length - 1)))
        values[first:first + length, int(rng.integers(n_metrics))] = np.nan
