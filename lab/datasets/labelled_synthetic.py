"""A small generated anomaly benchmark in the labelled form of :mod:`lab.datasets.labelled`.

Notebooks that default to NAB or SKAB fall back to it when that data is absent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lab._validation import _check_int

__all__ = ["make_labelled_benchmark", "ANOMALY_KINDS"]

#: The anomalies planted, one per series, in turn.
ANOMALY_KINDS = ("spike", "level_shift", "noise_burst", "frequency")
# Share of each series that is training rows (NAB's probationary share).
_TRAIN_SHARE = 0.15
# Length of a planted anomaly as a share of the series, and NAB's window share around it.
_ANOMALY_SHARE, _WINDOW_SHARE = 0.02, 0.1


def make_labelled_benchmark(n_series: int = 8, n_rows: int = 2000, n_columns: int = 1, *,
                            random_state: int | None = 0) -> dict[str, pd.DataFrame]:
    """Noisy seasonal series, each with one planted anomaly after its training rows.

    Parameters
    ----------
    n_series : int, default 8
        Series to make; the anomaly kinds of :data:`ANOMALY_KINDS` in turn.
    n_rows : int, default 2000
        Rows per series (at least 200).
    n_columns : int, default 1
        Signal columns (the anomaly hits the first); more gives SKAB-like
        multivariate series.
    random_state : int, optional
        Seed.

    Returns
    -------
    dict of str to DataFrame
        ``{"synthetic/<i>_<kind>": frame}`` in the labelled form of
        :func:`lab.datasets.load_nab`: ``value`` (or ``x0, x1, ...``) columns,
        ``anomaly`` (1 inside the labelled window, as wide as NAB's, 10% of
        the series, centred on the anomaly), a minute ``timestamp`` index, and
        ``attrs`` ``dataset="synthetic"``, ``group`` (the kind), ``windows``
        and ``train_rows`` (15%).

    Raises
    ------
    ValueError
        On ``n_series < 1``, ``n_rows < 200`` or ``n_columns < 1``.

    Examples
    --------
    >>> data = make_labelled_benchmark(n_series=2, n_rows=400)
    >>> frame = data["synthetic/0_spike"]
    >>> frame.shape, frame.attrs["train_rows"], int(frame["anomaly"].sum())
    ((400, 2), 60, 40)
    """
    n_series = _check_int(n_series, "n_series", minimum=1)
    n_rows = _check_int(n_rows, "n_rows", minimum=200)
    n_columns = _check_int(n_columns, "n_columns", minimum=1)
    rng = np.random.default_rng(random_state)
    index = pd.date_range("2024-01-01", periods=n_rows, freq="min", name="timestamp")
    t = np.arange(n_rows, dtype=np.float64)
    n_train = int(_TRAIN_SHARE * n_rows)
    length = max(int(_ANOMALY_SHARE * n_rows), 3)
    half = int(_WINDOW_SHARE * n_rows) // 2
    out = {}
    for i in range(n_series):
        kind = ANOMALY_KINDS[i % len(ANOMALY_KINDS)]
        period = rng.uniform(30, 120)
        values = np.stack([np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
                           + 0.2 * rng.standard_normal(n_rows) for _ in range(n_columns)],
                          axis=1)
        start = int(rng.integers(n_train + half, n_rows - half - length))
        end = start + length
        x = values[:, 0]
        if kind == "spike":
            x[start:start + 2] += 4.0
        elif kind == "level_shift":
            x[start:end] += 2.0
        elif kind == "noise_burst":
            x[start:end] += 1.5 * rng.standard_normal(length)
        else:
            x[start:end] = np.sin(2 * np.pi * t[start:end] / (period / 4))
        centre = (start + end) // 2
        lo, hi = centre - half, centre + half - 1
        flags = np.zeros(n_rows, dtype=np.int8)
        flags[lo:hi + 1] = 1
        columns = ["value"] if n_columns == 1 else [f"x{j}" for j in range(n_columns)]
        frame = pd.DataFrame(values, index=index, columns=columns)
        frame["anomaly"] = flags
        name = f"synthetic/{i}_{kind}"
        frame.attrs.update(dataset="synthetic", name=name, group=kind, source="generated",
                           windows=[(index[lo], index[hi])], train_rows=n_train,
                           label_columns=("anomaly",))
        out[name] = frame
    return out
