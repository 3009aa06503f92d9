"""The synthetic protocol of the MSCRED paper: :func:`make_mscred_synthetic`.

Zhang et al., "A Deep Neural Network for Unsupervised Anomaly Detection and
Diagnosis in Multivariate Time Series Data", AAAI 2019, section "Synthetic
data": sinusoids with random delay and frequency plus Gaussian noise, split
into training, validation and test periods, with five anomalies of durations
10, 30 and 90 injected into the test period, each shocking three random series.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lab._validation import _check_float, _check_int

__all__ = [
    "make_mscred_synthetic",
    "ANOMALY_DURATIONS",
    "ROOT_CAUSES_PER_ANOMALY",
    "TRAIN_FRACTION",
    "VALID_FRACTION",
]

#: Anomaly durations in rows, used in turn (the paper's 10, 30 and 90).
ANOMALY_DURATIONS = (10, 30, 90)
#: Series shocked by each anomaly (the paper's three).
ROOT_CAUSES_PER_ANOMALY = 3
#: Share of rows in the training period (8000 of 20000 in the paper).
TRAIN_FRACTION = 0.4
#: Share of rows in the validation period (2000 of 20000); the rest is test.
VALID_FRACTION = 0.1
#: Range of the delay t0 of each sinusoid, in rows (paper: [50, 100]).
_DELAY_RANGE = (50.0, 100.0)
#: Range of the period scale omega of each sinusoid (paper: [40, 50]).
_OMEGA_RANGE = (40.0, 50.0)
#: Rows kept free of anomalies at both ends of each test segment, so that every
#: anomaly has a full clean history for the default MSCRED settings
#: (max window 60 + 5 steps x 10 rows = 110) and anomalies never overlap.
_MARGIN = 120


def make_mscred_synthetic(
    n_series: int = 30,
    length: int = 20000,
    random_state: int = 0,
    *,
    noise: float = 0.3,
    shock: float = 3.0,
    n_anomalies: int = 5,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sinusoids with injected multi-series shocks, with their ground truth.

    Parameters
    ----------
    n_series : int, default 30
        Number of series, at least 4.
    length : int, default 20000
        Number of rows. The first 40% are the training period, the next 10%
        validation, the last 50% test (8000 / 2000 / 10000 rows by default).
    random_state : int, default 0
        Seed; the same seed gives the same data.
    noise : float, default 0.3
        Standard deviation of the Gaussian noise (the paper's lambda).
    shock : float, default 3.0
        Size of the level shift added to each shocked series during an anomaly,
        with a random sign per series (the sinusoids have amplitude 1).
    n_anomalies : int, default 5
        Number of anomalies, all in the test period. Durations cycle through
        ``ANOMALY_DURATIONS``.

    Returns
    -------
    df : DataFrame of shape (length, n_series)
        Columns ``x00, x01, ...``; a RangeIndex named ``t``.
    truth : DataFrame, one row per anomaly
        ``start`` and ``end`` (first and last anomalous row label, inclusive),
        ``duration`` and ``root_causes`` (tuple of the shocked column names).
        ``truth.attrs`` holds ``train_end`` and ``valid_end``: the first row
        label of validation and of test.

    Raises
    ------
    ValueError
        If ``n_series < 4``, ``noise < 0``, ``shock <= 0``, or the test period
        is too short to hold ``n_anomalies`` separated anomalies.

    Notes
    -----
    Each series is ``s(t) = sin((t - t0) / omega)`` or ``cos((t - t0) / omega)``
    (chosen at random) plus ``noise * eps`` with ``eps ~ N(0, 1)``, ``t0``
    uniform in [50, 100] and ``omega`` uniform in [40, 50]: the protocol of
    Zhang et al., AAAI 2019 (MSCRED), section 4.1. The test period is cut into
    ``n_anomalies`` equal segments and one anomaly starts at a random row of
    each, at least 120 rows from the segment's ends, so anomalies never overlap
    and each has a clean history before it.

    Examples
    --------
    >>> df, truth = make_mscred_synthetic(n_series=5, length=4000, random_state=1)
    >>> df.shape, list(truth.columns)
    ((4000, 5), ['start', 'end', 'duration', 'root_causes'])
    >>> truth["duration"].tolist()
    [10, 30, 90, 10, 30]
    >>> bool((truth["start"] >= truth.attrs["valid_end"]).all())
    True
    """
    n_series = _check_int(n_series, "n_series", minimum=4)
    length = _check_int(length, "length", minimum=1)
    n_anomalies = _check_int(n_anomalies, "n_anomalies", minimum=0)
    random_state = _check_int(random_state, "random_state", minimum=0)
    if _check_float(noise, "noise") < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    if _check_float(shock, "shock") <= 0:
        raise ValueError(f"shock must be a finite number > 0, got {shock!r}")
    train_end = int(round(TRAIN_FRACTION * length))
    valid_end = int(round((TRAIN_FRACTION + VALID_FRACTION) * length))
    test_rows = length - valid_end
    segment = test_rows // max(n_anomalies, 1)
    longest = max(ANOMALY_DURATIONS[: max(n_anomalies, 1)])
    if n_anomalies and segment < longest + 2 * _MARGIN:
        raise ValueError(
            f"length={length} leaves a test period of {test_rows} rows, too short for "
            f"{n_anomalies} anomalies: each needs a segment of at least "
            f"{longest + 2 * _MARGIN} rows, so length >= "
            f"{int(np.ceil(n_anomalies * (longest + 2 * _MARGIN) / (1 - TRAIN_FRACTION - VALID_FRACTION)))}"
        )
    rng = np.random.default_rng(random_state)
    values = _sinusoids_kernel(rng, length, n_series, noise)
    columns = [f"x{i:02d}" for i in range(n_series)]
    rows = []
    for j in range(n_anomalies):
        duration = ANOMALY_DURATIONS[j % len(ANOMALY_DURATIONS)]
        lo = valid_end + j * segment + _MARGIN
        hi = valid_end + (j + 1) * segment - _MARGIN - duration
        start = int(rng.integers(lo, hi + 1))
        hit = np.sort(rng.choice(n_series, ROOT_CAUSES_PER_ANOMALY, replace=False))
        signs = rng.choice((-1.0, 1.0), size=hit.size)
        values[start : start + duration, hit] += shock * signs
        rows.append((start, start + duration - 1, duration, tuple(columns[i] for i in hit)))
    df = pd.DataFrame(values, index=pd.RangeIndex(length, name="t"), columns=columns)
    truth = pd.DataFrame(rows, columns=["start", "end", "duration", "root_causes"])
    truth.attrs.update(train_end=train_end, valid_end=valid_end)
    return df, truth


def _sinusoids_kernel(rng: np.random.Generator, length: int, n_series: int,
                      noise: float) -> np.ndarray:
    t = np.arange(length, dtype=np.float64)[:, None]
    t0 = rng.uniform(*_DELAY_RANGE, size=n_series)
    omega = rng.uniform(*_OMEGA_RANGE, size=n_series)
    use_cos = rng.integers(0, 2, size=n_series).astype(bool)
    phase = (t - t0) / omega
    values = np.where(use_cos, np.cos(phase), np.sin(phase))
    return values + noise * rng.standard_normal((length, n_series))
