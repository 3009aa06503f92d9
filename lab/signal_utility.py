"""Signal helpers: column-wise two-sample KS tests, smoothing, filtering, saliency.

Every function accepts a ``(n_timepoints, n_series)`` DataFrame or ndarray
(the lab's data convention) and keeps the time index on outputs that belong
to time. Numeric kernels (``_..._kernel``) do arithmetic only; the public
wrappers validate input, call the kernel and name the output.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from lab._validation import _as_2d, _check_int, _check_option

__all__ = [
    "ks_2samp_columns",
    "smooth",
]

#: ``method="auto"`` computes exact p-values while both samples have at most
#: this many observations, as ``scipy.stats.ks_2samp`` does (its MAX_AUTO_N).
KS_MAX_AUTO_N = 10_000
#: KS methods and alternatives accepted, with scipy's meaning.
KS_METHODS = ("auto", "exact", "asymp")
KS_ALTERNATIVES = ("two-sided", "less", "greater")
#: Upper bound on the elements of one sorted column block in the KS kernel:
#: it keeps the working set (about six arrays of this size) near 100 MB.
KS_BLOCK_ELEMENTS = 2_000_000
#: Rolling aggregations accepted by :func:`smooth`.
SMOOTH_FUNCS = ("mean", "min", "max", "sum", "median", "std")


# --------------------------------------------------------------------------
# Two-sample Kolmogorov-Smirnov test, one test per column
# --------------------------------------------------------------------------
def _ks_2samp_kernel(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    """ECDF differences of every column of ``a`` and ``b``.

    Returns ``(n1, n2, d_plus, d_minus)`` per column: the non-NaN counts,
    ``max(F1 - F2)`` and ``max(F2 - F1)`` clipped at 0, with the ECDFs
    evaluated at every observation exactly as scipy does (counts of values
    ``<=`` x, divided by the sample size in float64).
    """
    rows_a, p = a.shape
    rows_b = b.shape[0]
    n_total = rows_a + rows_b
    n1 = rows_a - np.isnan(a).sum(axis=0)
    n2 = rows_b - np.isnan(b).sum(axis=0)
    d_plus = np.zeros(p)
    d_minus = np.zeros(p)
    position = np.arange(1, n_total + 1)
    block = max(1, KS_BLOCK_ELEMENTS // n_total)
    for lo in range(0, p, block):
        hi = min(p, lo + block)
        # Two separately sorted runs merge in linear time under the stable
        # (timsort) argsort; NaN sorts last in both, so valid values come first.
        merged = np.empty((hi - lo, n_total))
        merged[:, :rows_a] = a[:, lo:hi].T
        merged[:, rows_a:] = b[:, lo:hi].T
        merged[:, :rows_a].sort(axis=1)
        merged[:, rows_a:].sort(axis=1)
        order = np.argsort(merged, axis=1, kind="stable")
        values = np.take_along_axis(merged, order, axis=1)
        count_a = np.cumsum(order < rows_a, axis=1)
        count_b = position - count_a
        na, nb = n1[lo:hi, None], n2[lo:hi, None]
        # Only the last member of a run of ties is an ECDF value (scipy's
        # searchsorted(side="right")); NaN rows are not data at all.
        keep = np.empty(values.shape, dtype=bool)
        np.not_equal(values[:, 1:], values[:, :-1], out=keep[:, :-1])
        keep[:, -1] = True
        keep &= position <= na + nb
        # Exact integer scores F1 - F2 = key / (n1 n2) locate the extremes;
        # the 0 put at ignored points never wins (the last valid point is 0).
        key = count_a * nb - count_b * na
        key[~keep] = 0
        d_plus[lo:hi] = _extreme_ecdf_gap(key, keep, count_a, count_b, na, nb, np.max)
        d_minus[lo:hi] = np.clip(
            -_extreme_ecdf_gap(key, keep, count_a, count_b, na, nb, np.min), 0, 1)
    return n1, n2, d_plus, d_minus


def _extreme_ecdf_gap(key, keep, count_a, count_b, na, nb, extreme) -> np.ndarray:
    """Float value of ``count_a / na - count_b / nb`` at the extreme ``key`` per row.

    Several points can share the extreme exact value yet round to different
    floats (``3/3 - 2/3`` is not ``1/3 - 0/3`` in float64), so the float difference is
    formed at every such point, as scipy forms it at every point, and the
    float extreme is kept.
    """
    target = extreme(key, axis=1)
    rows, cols = np.nonzero((key == target[:, None]) & keep)
    # Columns with no data divide by zero here; the caller discards them.
    with np.errstate(divide="ignore", invalid="ignore"):
        gaps = count_a[rows, cols] / na[rows, 0] - count_b[rows, cols] / nb[rows, 0]
        out = np.full(key.shape[0], -np.inf if extreme is np.max else np.inf)
        (np.maximum if extreme is np.max else np.minimum).at(out, rows, gaps)
    return out


def _ks_asymp_pvalues(d: np.ndarray, n1: np.ndarray, n2: np.ndarray,
                      alternative: str) -> np.ndarray:
    """Smirnov's asymptotic p-values, scipy's formulas, one call per distinct input."""
    from scipy.stats import kstwo

    m = np.maximum(n1, n2).astype(np.float64)
    n = np.minimum(n1, n2).astype(np.float64)
    en = m * n / (m + n)
    if alternative == "two-sided":
        # kstwo.sf runs a Python-level loop per element; D takes few distinct
        # values on its lattice, so evaluate each distinct (d, n) pair once.
        keys = np.stack([d, np.round(en)], axis=1)
        uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
        return np.asarray(kstwo.sf(uniq[:, 0], uniq[:, 1]), dtype=np.float64)[inverse.ravel()]
    # Hodges' approximation, eq. 5.3, with m the larger sample (as scipy).
    z = np.sqrt(en) * d
    expt = -2 * z**2 - 2 * z * (m + 2 * n) / np.sqrt(m * n * (m + n)) / 3.0
    return np.exp(expt)


def _ks_pvalues(d: np.ndarray, n1: np.ndarray, n2: np.ndarray, method: str,
                alternative: str, labels: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """p-values (and the statistic scipy reports) for columns with data.

    Reproduces the decision logic of ``scipy.stats.ks_2samp``: ``auto`` is
    exact up to ``KS_MAX_AUTO_N`` observations, exact falls back to the
    asymptotic formula when the lattice is too large or the computation
    overflows, and the exact path rounds ``d`` to its lattice ``h / lcm``.
    """
    from scipy.stats._stats_py import _attempt_exact_2kssamp

    d = d.copy()
    pvalue = np.full(d.shape, np.nan)
    g = np.gcd(n1, n2)
    n1g, n2g = n1 // g, n2 // g
    if method == "auto":
        exact = np.maximum(n1, n2) <= KS_MAX_AUTO_N
    elif method == "exact":
        exact = ~(n1g >= np.iinfo(np.int32).max / n2g)
        if not exact.all():
            warnings.warn(
                "Exact ks_2samp calculation not possible for columns "
                f"{list(labels[~exact][:10])} (sample sizes too large). Switching to 'asymp'.",
                RuntimeWarning, stacklevel=3)
    else:
        exact = np.zeros(d.shape, dtype=bool)
    if exact.any():
        idx = np.flatnonzero(exact)
        lcm = (n1g[idx] * n2[idx]).astype(np.float64)
        d_raw = d[idx]
        h = np.round(d_raw * lcm)
        d[idx] = h * 1.0 / lcm
        # The exact p-value depends only on (n1, n2, h): compute each once.
        keys = np.stack([n1[idx], n2[idx], h.astype(np.int64)], axis=1)
        uniq, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        ok = np.empty(len(uniq), dtype=bool)
        prob = np.empty(len(uniq))
        for u, (k1, k2, _) in enumerate(uniq):
            rep = idx[first[u]]
            ok[u], _, prob[u] = _attempt_exact_2kssamp(
                int(k1), int(k2), int(g[rep]), float(d_raw[first[u]]), alternative)
        ok, prob = ok[inverse.ravel()], prob[inverse.ravel()]
        pvalue[idx[ok]] = prob[ok]
        failed = idx[~ok]
        if failed.size:
            warnings.warn(
                f"ks_2samp: Exact calculation unsuccessful for columns {list(labels[failed][:10])}. "
                "Switching to method=asymp.", RuntimeWarning, stacklevel=3)
            exact[failed] = False
    asymp = ~exact
    if asymp.any():
        pvalue[asymp] = _ks_asymp_pvalues(d[asymp], n1[asymp], n2[asymp], alternative)
    return d, np.clip(pvalue, 0, 1)


def ks_2samp_columns(a: Any, b: Any, method: str = "auto",
                     alternative: str = "two-sided") -> tuple[np.ndarray, np.ndarray]:
    """Two-sample Kolmogorov-Smirnov test for every column of two samples.

    Column ``j`` of ``a`` is tested against column ``j`` of ``b``; rows are
    observations. NaNs are dropped per column, as with ``nan_policy="omit"``.

    Parameters
    ----------
    a : DataFrame or array-like of shape (n1, n_columns)
        First sample (e.g. a baseline period).
    b : DataFrame or array-like of shape (n2, n_columns)
        Second sample (e.g. a focus period); ``n2`` may differ from ``n1``.
    method : {"auto", "exact", "asymp"}
        How the p-value is computed, with the meaning of
        :func:`scipy.stats.ks_2samp`.
    alternative : {"two-sided", "less", "greater"}
        The alternative hypothesis, with the meaning of scipy's.

    Returns
    -------
    statistic : ndarray of shape (n_columns,)
        The KS statistic of each column.
    pvalue : ndarray of shape (n_columns,)
        The p-value of each column.

    Raises
    ------
    ValueError
        If ``a`` or ``b`` is not 2-D and numeric, if their column counts (or
        DataFrame column labels) differ, or on an unknown ``method`` or
        ``alternative``.

    Warns
    -----
    RuntimeWarning
        For columns left with no observation in ``a`` or ``b`` after NaNs are
        dropped (named in the message; their results are NaN), and when an
        exact p-value falls back to the asymptotic one, as scipy warns.

    Notes
    -----
    For every column the result equals
    ``scipy.stats.ks_2samp(a[:, j], b[:, j], method=method,
    alternative=alternative, nan_policy="omit")``: the statistic exactly, the
    p-value to floating-point accuracy. The statistic is computed for all
    columns at once: each column of ``a`` and ``b`` is sorted, the two sorted
    runs are merged, and cumulative counts give both ECDFs at every
    observation (only the last of tied values counts, as with
    ``searchsorted(side="right")``). The p-values reuse scipy's own
    distribution code (``scipy.stats.kstwo`` for the asymptotic two-sided
    case, Hodges (1958) eq. 5.3 for one-sided, and scipy's exact lattice-path
    counts), evaluated once per distinct ``(n1, n2, D)``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=(200, 3))
    >>> b = rng.normal(size=(100, 3)) + [0.0, 0.0, 2.0]
    >>> stat, p = ks_2samp_columns(a, b)
    >>> stat.shape, bool(p[2] < 1e-10), bool(p[0] > 0.01)
    ((3,), True, True)
    """
    method = _check_option(method, "method", KS_METHODS)
    alternative = _check_option(alternative, "alternative", KS_ALTERNATIVES)
    va, _, cols_a = _as_2d(a, "a", allow_nan=True)
    vb, _, cols_b = _as_2d(b, "b", allow_nan=True)
    if va.shape[1] != vb.shape[1]:
        raise ValueError(
            f"a and b must have the same number of columns; got a of shape {va.shape} "
            f"and b of shape {vb.shape}"
        )
    if isinstance(a, pd.DataFrame) and isinstance(b, pd.DataFrame) and not cols_a.equals(cols_b):
        raise ValueError("a and b are DataFrames with different columns; align them first")
    n1, n2, d_plus, d_minus = _ks_2samp_kernel(va, vb)
    if alternative == "greater":
        d = d_plus
    elif alternative == "less":
        d = d_minus
    else:
        d = np.where(d_minus > d_plus, d_minus, d_plus)
    statistic = np.full(d.shape, np.nan)
    pvalue = np.full(d.shape, np.nan)
    has_data = (n1 > 0) & (n2 > 0)
    if not has_data.all():
        empty = [cols_a[j] for j in np.flatnonzero(~has_data)]
        warnings.warn(
            f"ks_2samp_columns: columns {empty[:10]}{' ...' if len(empty) > 10 else ''} have no "
            "observation left in a or b after dropping NaN; their statistic and p-value are NaN",
            RuntimeWarning, stacklevel=2)
    if has_data.any():
        statistic[has_data], pvalue[has_data] = _ks_pvalues(
            d[has_data], n1[has_data], n2[has_data], method, alternative, cols_a[has_data])
    return statistic, pvalue


# --------------------------------------------------------------------------
# Rolling smoothing
# --------------------------------------------------------------------------
def smooth(df: Any, n: int, func: str = "mean", *, min_periods: int | None = 1,
           center: bool = False) -> Any:
    """Rolling aggregate of every series over the last ``n`` rows.

    Parameters
    ----------
    df : DataFrame, Series or ndarray of shape (n_timepoints, n_series)
        The series. NaNs are skipped inside a window (pandas semantics).
    n : int
        Window length in rows (>= 1). ``n=1`` returns the input values.
    func : {"mean", "min", "max", "sum", "median", "std"}
        The aggregate computed over each window.
    min_periods : int or None
        Fewest non-NaN values a window needs; the first ``n - 1`` rows use the
        rows available so far when this is 1 (the default), so no leading NaN
        is produced. ``None`` means ``n`` (leading rows become NaN).
    center : bool
        If True the window is centred on each row instead of trailing (not
        causal: it uses future rows).

    Returns
    -------
    Same type as ``df``
        The smoothed series, same shape, same index and columns.

    Raises
    ------
    ValueError
        If ``n`` is not a positive integer, ``func`` is unknown, or ``df`` is
        not a numeric 2-D series.

    Notes
    -----
    A thin wrapper around :meth:`pandas.DataFrame.rolling`; the trailing
    window ending at row ``t`` covers rows ``t - n + 1 .. t``.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"x": [1.0, 2.0, 3.0, 10.0]})
    >>> smooth(s, 2)["x"].tolist()
    [1.0, 1.5, 2.5, 6.5]
    >>> smooth(s, 3, "max")["x"].tolist()
    [1.0, 2.0, 3.0, 10.0]
    """
    n = _check_int(n, "n", minimum=1)
    func = _check_option(func, "func", SMOOTH_FUNCS)
    if min_periods is not None:
        min_periods = _check_int(min_periods, "min_periods", minimum=1, maximum=n)
    values, index, columns = _as_2d(df, "df", allow_nan=True)
    frame = pd.DataFrame(values, index=index, columns=columns)
    result = getattr(frame.rolling(n, min_periods=min_periods, center=center), func)()
    if isinstance(df, pd.DataFrame):
        return result
    if isinstance(df, pd.Series):
        return result.iloc[:, 0].rename(df.name)
    out = result.to_numpy()
    return out[:, 0] if np.ndim(df) == 1 else out
