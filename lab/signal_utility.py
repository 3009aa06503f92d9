"""Signal helpers: column-wise two-sample KS tests, smoothing, filtering, saliency.

Every function accepts a ``(n_timepoints, n_series)`` DataFrame or ndarray
(the lab's data convention) and keeps the time index on outputs that belong
to time. Numeric kernels (``_..._kernel``) do arithmetic only; the public
wrappers validate input, call the kernel and name the output.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
import numpy as np
import pandas as pd

from lab._validation import _as_2d, _check_float, _check_int, _check_option

__all__ = [
    "bandpass",
    "ks_2samp_columns",
    "robust_zscore",
    "smooth",
    "spectral_residual",
    "spectrogram",
]

#: ``method="auto"`` computes exact p-values while both samples have at most
#: this many observations, as ``scipy.stats.ks_2samp`` does (its MAX_AUTO_N).
KS_MAX_AUTO_N = 10_000
#: KS methods and alternatives accepted, with scipy's meaning.
KS_METHODS = ("auto", "exact", "asymp")
KS_ALTERNATIVES = ("two-sided", "less", "greater")
#: Upper bound on the elements of one column block of the KS kernel (both
#: samples): one thread sorts and merges it while it is still in its cache
#: (2 MB of float64).
KS_BLOCK_ELEMENTS = 250_000
#: Largest integer magnitude float64 holds exactly (2**53): integer inputs
#: beyond it are compared as int64.
KS_EXACT_FLOAT_INT = 2**53
#: Largest n for which the one-sided Smirnov sum is taken in float64: its
#: relative error grows like n * 5e-17 (1.2e-13 at n = 2000, 10x inside the
#: 1e-12 agreement promised with scipy); larger n use np.longdouble.
SMIRNOV_FLOAT64_MAX_N = 2000
#: Extended precision must really be wider than double (x86: 64-bit
#: mantissa, eps 1.1e-19); otherwise large n go to scipy's routine.
SMIRNOV_MAX_EPS = 1e-18
#: Smaller sums are near float64 underflow; scipy computes those.
SMIRNOV_MIN_RESULT = 1e-280
#: Elements of one (columns x terms) block of the Smirnov sum.
SMIRNOV_BLOCK_ELEMENTS = 2_000_000
#: Rolling aggregations accepted by :func:`smooth`.
SMOOTH_FUNCS = ("mean", "min", "max", "sum", "median", "std")
#: Median absolute deviation to standard deviation for normal data,
#: 1 / Phi^-1(3/4) (scipy.stats.median_abs_deviation(scale="normal")).
MAD_TO_SD = 1.482602218505602
#: Mean absolute deviation to standard deviation for normal data, sqrt(pi/2):
#: the fallback scale when more than half the values equal the median.
MEANAD_TO_SD = 1.2533141373155003
#: Spectral residual defaults of Microsoft's reference implementation
#: (github.com/microsoft/anomalydetector, msanomalydetector/spectral_residual.py).
SR_EPS = 1e-8
SR_MAG_WINDOW = 3
SR_SCORE_WINDOW = 40
SR_EXTEND_NUM = 5
SR_LOOK_AHEAD = 5
#: Butterworth order used by bandpass (applied twice by filtfilt).
BANDPASS_ORDER = 4


# --------------------------------------------------------------------------
# Two-sample Kolmogorov-Smirnov test, one test per column
# --------------------------------------------------------------------------
def _ks_2samp_kernel(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    """ECDF differences of every column of ``a`` and ``b``.

    Returns ``(n1, n2, d_plus, d_minus)`` per column: the non-NaN counts,
    ``max(F1 - F2)`` and ``max(F2 - F1)`` clipped at 0, with the ECDFs
    evaluated at every observation exactly as scipy does (counts of values
    ``<=`` x, divided by the sample size in float64). Blocks of columns are
    transposed, sorted (numpy's sort releases the GIL) and merged
    (:func:`_ks_merge_kernel`, compiled without the GIL) on one thread per
    core, each block small enough to stay in the cache between the two.
    """
    rows_a, p = a.shape
    n_total = rows_a + b.shape[0]
    n1 = np.zeros(p, dtype=np.int64)
    n2 = np.zeros(p, dtype=np.int64)
    d_plus = np.zeros(p)
    d_minus = np.zeros(p)
    workers = _n_workers()
    block = max(1, min(KS_BLOCK_ELEMENTS // n_total, -(-p // workers)))

    def run(lo: int) -> None:
        hi = min(p, lo + block)
        sa = np.ascontiguousarray(a[:, lo:hi].T)
        sa.sort(axis=1)
        sb = np.ascontiguousarray(b[:, lo:hi].T)
        sb.sort(axis=1)
        _ks_merge_kernel(sa, sb, lo, n1, n2, d_plus, d_minus)

    starts = range(0, p, block)
    if workers == 1 or len(starts) == 1:
        for lo in starts:
            run(lo)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(run, starts))
    return n1, n2, d_plus, d_minus


def _n_workers() -> int:
    """Cores this process may run on (the threads of the KS kernel)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


@numba.njit(nogil=True, cache=True)
def _ks_merge_kernel(sa, sb, lo, n1, n2, d_plus, d_minus) -> None:  # pragma: no cover - compiled
    """Merge the sorted rows ``sa[r]``, ``sb[r]`` into the KS extremes of column ``lo + r``.

    NaN sorts last, so the valid counts are found from the end. The smaller
    sample is the pivot: between two of its distinct values the other ECDF
    alone moves, monotonically, so ``F1 - F2`` takes its extremes at a pivot
    value (counts ``<=`` it) or just below it (counts ``<`` it), and only
    those two points per pivot value are evaluated. The extremes are found on
    the exact integer ``key = n2 c1 - n1 c2``; the float ``c1/n1 - c2/n2`` is
    formed as scipy forms it, and among points sharing the extreme key the
    float extreme is kept (``3/3 - 2/3`` is not ``1/3 - 0/3`` in float64).
    Starting both extremes at 0 is exact: the last point always has gap 0.
    """
    for r in range(sa.shape[0]):
        x, y = sa[r], sb[r]
        na, nb = x.shape[0], y.shape[0]
        while na > 0 and x[na - 1] != x[na - 1]:
            na -= 1
        while nb > 0 and y[nb - 1] != y[nb - 1]:
            nb -= 1
        n1[lo + r], n2[lo + r] = na, nb
        if na == 0 or nb == 0:
            continue
        swap = na < nb
        if swap:
            q, nq, piv, npiv = y, nb, x, na
        else:
            q, nq, piv, npiv = x, na, y, nb
        kmax = kmin = 0
        fmax = fmin = 0.0
        i = j = 0
        while j < npiv:
            v = piv[j]
            while i < nq and q[i] < v:
                i += 1
            for stage in range(2):  # just below v, then at v
                if swap:
                    ca, cb = j, i
                else:
                    ca, cb = i, j
                key = ca * nb - cb * na
                if key >= kmax:
                    g = ca / na - cb / nb
                    if key > kmax or g > fmax:
                        fmax = g
                    kmax = key
                if key <= kmin:
                    g = ca / na - cb / nb
                    if key < kmin or g < fmin:
                        fmin = g
                    kmin = key
                if stage == 0:
                    while i < nq and q[i] <= v:
                        i += 1
                    j += 1
                    while j < npiv and piv[j] <= v:
                        j += 1
        d_plus[lo + r] = fmax
        d_minus[lo + r] = min(max(-fmin, 0.0), 1.0)


def _exact_integers(X: Any, name: str) -> np.ndarray | None:
    """``X`` as int64 when it is held in a numpy integer dtype, else None.

    float64 represents integers exactly only up to ``2**53``; the KS kernel
    compares int64 values directly, as scipy does for integer arrays.
    """
    if isinstance(X, pd.Series):
        X = X.to_frame()
    if isinstance(X, pd.DataFrame):
        dtypes = list(X.dtypes)
        if not dtypes or not all(isinstance(dt, np.dtype) and dt.kind in "iu" for dt in dtypes):
            return None
        values = [X.iloc[:, i].to_numpy() for i in range(X.shape[1])]
    else:
        arr = np.asarray(X)
        if arr.dtype.kind not in "iu":
            return None
        values = [arr.reshape(arr.shape[0], -1) if arr.ndim else arr]
    for v in values:
        if v.dtype == np.uint64 and v.size and v.max() > np.iinfo(np.int64).max:
            raise ValueError(
                f"{name} holds unsigned integers above 2**63 - 1 (max {v.max()}); "
                "expected values that fit in int64")
    out = np.column_stack([v.astype(np.int64) for v in values]) if len(values) > 1 else \
        values[0].astype(np.int64)
    return np.ascontiguousarray(out.reshape(out.shape[0], -1))


def _ks_values(a: Any, b: Any, va: np.ndarray, vb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The arrays to compare: int64 when an integer input passes ``2**53``, else ``va``, ``vb``.

    Two integer inputs are compared exactly as int64; an integer input
    beyond ``2**53`` beside a float one cannot be, and is refused rather
    than silently rounded.
    """
    ia, ib = _exact_integers(a, "a"), _exact_integers(b, "b")
    wide = [name for name, v in (("a", ia), ("b", ib))
            if v is not None and v.size and np.abs(v).max(initial=0) > KS_EXACT_FLOAT_INT]
    # abs(int64 min) overflows to itself (negative): test the minimum too.
    wide += [name for name, v in (("a", ia), ("b", ib)) if v is not None and v.size
             and v.min() < -KS_EXACT_FLOAT_INT and name not in wide]
    if not wide:
        return va, vb
    if ia is None or ib is None:
        raise ValueError(
            f"{' and '.join(wide)} holds integers beyond 2**53, which float64 cannot represent "
            "exactly, while the other sample is not integer; pass both a and b as integer "
            "arrays (compared exactly) or round both to float64 yourself")
    return ia, ib


def _pelz_good_cdf(n: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Pelz-Good (1976) approximation of ``P(D_n <= x)``, vectorised.

    An element-wise transcription of scipy's ``_kolmogn_PelzGood``
    (scipy/stats/_ksstats.py), the branch ``kstwo.sf`` takes for n > 140
    and ``n x^2 < 2.2`` unless ``n x^1.5 <= 1.4``: same series, same
    truncation ``k <= ceil(16 z / pi)``, evaluated for all inputs at once.
    """
    pi2, pi4, pi6 = np.pi**2, np.pi**4, np.pi**6
    sqrt2pi, sqrt3 = np.sqrt(2 * np.pi), np.sqrt(3)
    z = np.sqrt(n) * x
    z2, z3, z4, z6 = z**2, z**3, z**4, z**6
    q = np.exp(-pi2 / 8 / z2)
    k1a, k1b = -z2, pi2 / 4
    k2a = 6 * z6 + 2 * z4
    k2b = (2 * z4 - 5 * z2) * pi2 / 4
    k2c = pi4 * (1 - 2 * z2) / 16
    k3d = pi6 * (5 - 30 * z2) / 64
    k3c = pi4 * (-60 * z2 + 212 * z4) / 16
    k3b = pi2 * (135 * z4 - 96 * z6) / 4
    k3a = -30 * z6 - 90 * z**8
    maxk = np.ceil(16 * z / np.pi).astype(np.int64)
    K = np.zeros((4, *z.shape))
    # Horner scheme over odd m = 2k - 1, k = maxk .. 1, per element.
    for k in range(int(maxk.max()), 0, -1):
        m = 2 * k - 1
        m2, m4, m6 = m**2, m**4, m**6
        coeffs = np.stack([np.ones_like(z), k1a + k1b * m2, k2a + k2b * m2 + k2c * m4,
                           k3a + k3b * m2 + k3c * m4 + k3d * m6])
        K = np.where(k <= maxk, K * np.power(q, 8 * k) + coeffs, K)
    K *= q
    K *= sqrt2pi
    K /= np.stack([z, 6 * z4, 72 * z**7, 6480 * z**10])
    q = np.exp(-pi2 / 2 / z2)
    k2extra = np.zeros_like(z)
    k3extra = np.zeros_like(z)
    for k in range(int(maxk.max()), 0, -1):
        active = k <= maxk
        qk = q ** (k * k)
        k2extra += np.where(active, k * k * qk, 0.0)
        k3extra += np.where(active, (sqrt3 * z + np.pi * k) * (sqrt3 * z - np.pi * k) * k * k * qk,
                            0.0)
    K[2] += k2extra * (pi2 * sqrt2pi / (-36 * z3))
    K[3] += k3extra * (pi2 * sqrt2pi / (216 * z6))
    K /= np.power(n * 1.0, np.arange(4)[:, None] / 2.0)
    return K[0] + K[1] + K[2] + K[3]


def _smirnov_sf(n: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``scipy.special.smirnov(n, d)`` = ``P(D+_n >= d)``, vectorised over columns.

    The Birnbaum-Tingey (1951) sum of positive terms
    ``C(n, v) d (d + v/n)^(v-1) (1 - d - v/n)^(n-v)``, ``0 <= v <= n (1 - d)``,
    each term taken through its logarithm. That logarithm is a sum of parts
    as large as ``n |log d|``, so a term carries a relative rounding error of
    about ``n`` ulps: float64 is used up to ``SMIRNOV_FLOAT64_MAX_N``
    (measured error below 1.2e-13 against scipy), extended precision
    (``np.longdouble``) above it. scipy's routine does the same sum in
    double-double arithmetic one element at a time, milliseconds per element
    for n in the thousands. Sums too small for a normal float64, and
    platforms whose long double is no wider than a double, are left to scipy.
    """
    from scipy import special

    n = np.asarray(n, dtype=np.int64)
    d = np.asarray(d, dtype=np.float64)
    out = np.full(d.shape, np.nan)
    for nv in np.unique(n):
        nv = int(nv)
        wide = nv > SMIRNOV_FLOAT64_MAX_N
        if wide and np.finfo(np.longdouble).eps > SMIRNOV_MAX_EPS:
            continue  # no extended precision here: scipy below
        ftype = np.longdouble if wide else np.float64
        v = np.arange(nv + 1).astype(ftype)
        log_binom = np.zeros(nv + 1, dtype=np.longdouble)
        log_binom[1:] = np.cumsum(np.log(nv - v[1:].astype(np.longdouble) + 1)
                                  - np.log(v[1:].astype(np.longdouble)))
        log_binom = log_binom.astype(ftype)
        cols = np.flatnonzero(n == nv)
        step = max(1, SMIRNOV_BLOCK_ELEMENTS // (nv + 1))
        for lo in range(0, len(cols), step):
            idx = cols[lo : lo + step]
            dc = d[idx].astype(ftype)[:, None]
            p = dc + v / nv
            with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
                log_t = log_binom + np.log(dc) + (v - 1) * np.log(p) + (nv - v) * np.log1p(-p)
                log_t[(v > np.floor(nv * (1 - dc))) | np.isnan(log_t)] = -np.inf
                top = log_t.max(axis=1, keepdims=True)
                total = np.exp(top[:, 0]) * np.exp(log_t - top).sum(axis=1)
            out[idx] = total.astype(np.float64)
    left = ~(out >= SMIRNOV_MIN_RESULT)
    if left.any():
        out[left] = special.smirnov(n[left], d[left])
    return out


def _kstwo_sf(d: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``scipy.stats.kstwo.sf(d, n)`` element-wise, the costly branches vectorised.

    scipy evaluates each element in Python (``_kolmogn``). For n > 140 it
    uses ``2 * smirnov(n, d)`` when ``n d^2 >= 2.2`` and the Pelz-Good
    series for smaller statistics; those two branches, which cover almost
    every two-sample test, are computed here for all columns at once with
    scipy's own branch conditions. Every other element (small n, the Durbin
    matrix and Ruben-Gambino regions, the support edges) goes to scipy.
    """
    from scipy.stats import kstwo

    d = np.asarray(d, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    out = np.full(d.shape, np.nan)
    t = n * d
    nx2 = t * d
    usual = (n > 140) & (d > 0.5 / n) & (t > 1.0) & (t < n - 1) & (d < 0.5)
    tail = usual & (nx2 >= 2.2) & (nx2 < 370.0)
    out[tail] = np.clip(2 * _smirnov_sf(n[tail].astype(np.int64), d[tail]), 0.0, 1.0)
    out[usual & (nx2 >= 370.0)] = 0.0
    pelz = usual & (nx2 < 2.2) & ~((n <= 100000) & (n * d**1.5 <= 1.4))
    # Below z ~ 0.0417 scipy short-cuts the series; leave those to scipy.
    pelz &= (-np.pi**2 / 8 / np.where(pelz, n * d * d, 1.0)) >= -708
    if pelz.any():
        out[pelz] = np.clip(1.0 - _pelz_good_cdf(n[pelz], d[pelz]), 0.0, 1.0)
    rest = np.isnan(out)
    if rest.any():
        # kstwo.sf loops in Python per element: evaluate each distinct pair once.
        keys = np.stack([d[rest], n[rest]], axis=1)
        uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
        out[rest] = np.asarray(kstwo.sf(uniq[:, 0], uniq[:, 1]), dtype=np.float64)[inverse.ravel()]
    return out


def _ks_asymp_pvalues(d: np.ndarray, n1: np.ndarray, n2: np.ndarray,
                      alternative: str) -> np.ndarray:
    """Smirnov's asymptotic p-values with scipy's formulas."""
    m = np.maximum(n1, n2).astype(np.float64)
    n = np.minimum(n1, n2).astype(np.float64)
    en = m * n / (m + n)
    if alternative == "two-sided":
        return _kstwo_sf(d, np.round(en))
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
        DataFrame column labels) differ, on an unknown ``method`` or
        ``alternative``, or if one sample holds integers beyond ``2**53``
        (which float64 would round) while the other is not integer.

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
    counts), evaluated once per distinct ``(n1, n2, D)``. Columns are
    sorted and merged on one thread per core. Integer inputs beyond
    ``2**53`` are compared exactly as int64, as scipy compares them.

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
    n1, n2, d_plus, d_minus = _ks_2samp_kernel(*_ks_values(a, b, va, vb))
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


# --------------------------------------------------------------------------
# Small helpers that keep the caller's container type
# --------------------------------------------------------------------------
def _like(df: Any, values: np.ndarray, index: pd.Index, columns: pd.Index) -> Any:
    """Wrap ``values`` like ``df`` was given: DataFrame, Series or ndarray."""
    if isinstance(df, pd.DataFrame):
        return pd.DataFrame(values, index=index, columns=columns)
    if isinstance(df, pd.Series):
        return pd.Series(values[:, 0], index=index, name=df.name)
    return values[:, 0] if np.ndim(df) == 1 else values


# --------------------------------------------------------------------------
# Robust z-score
# --------------------------------------------------------------------------
def _robust_zscore_kernel(values: np.ndarray) -> np.ndarray:
    median = np.nanmedian(values, axis=0)
    dev = np.abs(values - median)
    scale = MAD_TO_SD * np.nanmedian(dev, axis=0)
    # More than half the values at the median make the MAD 0; the mean
    # absolute deviation still sees the rest (Iglewicz & Hoaglin 1993).
    fallback = MEANAD_TO_SD * np.nanmean(dev, axis=0)
    scale = np.where(scale > 0, scale, fallback)
    z = np.zeros_like(values)
    ok = scale > 0
    z[:, ok] = (values[:, ok] - median[ok]) / scale[ok]
    z[np.isnan(values)] = np.nan
    return z


def robust_zscore(df: Any) -> Any:
    """Robust z-score of every series: ``(x - median) / (1.4826 * MAD)``.

    Parameters
    ----------
    df : DataFrame, Series or ndarray of shape (n_timepoints, n_series)
        The series. NaNs are ignored in the median and MAD and stay NaN.

    Returns
    -------
    Same type as ``df``
        The scores, same shape, index and columns.

    Raises
    ------
    ValueError
        If ``df`` is not numeric, or a column has no value that is not NaN.

    Notes
    -----
    The median absolute deviation times ``1.4826`` estimates the standard
    deviation of normal data (Rousseeuw & Croux 1993; it equals
    ``scipy.stats.median_abs_deviation(x, scale="normal")``). When the MAD is
    0 (more than half the values equal the median), the scale falls back to
    ``1.2533 * mean absolute deviation`` (Iglewicz & Hoaglin 1993). A
    constant series scores 0 everywhere.

    Examples
    --------
    >>> import numpy as np
    >>> robust_zscore(np.array([1.0, 2.0, 3.0, 4.0, 100.0])).round(3).tolist()
    [-1.349, -0.674, 0.0, 0.674, 65.426]
    """
    values, index, columns = _as_2d(df, "df", allow_nan=True)
    empty = np.isnan(values).all(axis=0)
    if empty.any():
        raise ValueError(f"df columns {list(columns[empty][:10])} have no value that is not NaN")
    return _like(df, _robust_zscore_kernel(values), index, columns)


def _check_fs(fs: Any) -> float:
    """A sampling frequency: a finite number > 0 (not a bool or a string)."""
    fs = _check_float(fs, "fs")
    if fs <= 0:
        raise ValueError(f"fs must be > 0 (samples per time unit), got {fs}")
    return fs


# --------------------------------------------------------------------------
# Zero-phase Butterworth filter
# --------------------------------------------------------------------------
def bandpass(df: Any, low: float | None, high: float | None, fs: float = 1.0, *,
             order: int = BANDPASS_ORDER) -> Any:
    """Zero-phase Butterworth band-pass (or low/high-pass) filter of every series.

    Parameters
    ----------
    df : DataFrame, Series or ndarray of shape (n_timepoints, n_series)
        Evenly sampled series without NaN.
    low, high : float or None
        Pass band edges in the units of ``fs`` (Hz for ``fs`` in Hz,
        cycles per sample for ``fs=1``). ``low=None`` gives a low-pass filter
        below ``high``; ``high=None`` a high-pass filter above ``low``.
        ``0 < low < high < fs / 2``.
    fs : float
        Sampling frequency (default 1: one sample per time unit); a finite
        number > 0.
    order : int
        Butterworth order; ``sosfiltfilt`` applies it forward and backward,
        which doubles the attenuation and cancels the phase.

    Returns
    -------
    Same type as ``df``
        The filtered series, same shape, index and columns.

    Raises
    ------
    ValueError
        If ``fs`` is not a finite number > 0, an edge is not a finite number
        (a string, a bool, NaN), the band is not inside ``(0, fs / 2)``, both
        edges are None, the series has NaN, or it is too short for the
        filter's padding.

    Notes
    -----
    ``scipy.signal.butter(order, ..., output="sos")`` followed by
    ``scipy.signal.sosfiltfilt`` along time (Gustafsson 1996 initial
    conditions): no phase shift, so peaks stay where they are.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(2000)
    >>> x = np.sin(2 * np.pi * 0.05 * t) + np.sin(2 * np.pi * 0.4 * t)
    >>> y = bandpass(x, 0.02, 0.1)
    >>> bool(np.abs(y[500:1500] - np.sin(2 * np.pi * 0.05 * t[500:1500])).max() < 0.01)
    True
    """
    from scipy import signal

    values, index, columns = _as_2d(df, "df")
    order = _check_int(order, "order", minimum=1)
    fs = _check_fs(fs)
    nyquist = fs / 2
    if low is not None:
        low = _check_float(low, "low")
    if high is not None:
        high = _check_float(high, "high")
    for name, edge in (("low", low), ("high", high)):
        if edge is not None and not 0 < edge < nyquist:
            raise ValueError(f"{name} must be in (0, fs/2) = (0, {nyquist}), got {edge}")
    if low is None and high is None:
        raise ValueError("low and high are both None; give at least one band edge")
    if low is not None and high is not None and not low < high:
        raise ValueError(f"low must be below high, got low={low}, high={high}")
    if low is None:
        btype, edges = "lowpass", high
    elif high is None:
        btype, edges = "highpass", low
    else:
        btype, edges = "bandpass", [low, high]
    sos = signal.butter(order, edges, btype=btype, fs=fs, output="sos")
    try:
        filtered = signal.sosfiltfilt(sos, values, axis=0)
    except ValueError as exc:
        raise ValueError(
            f"df has {values.shape[0]} rows (shape {values.shape}), too few for an order-{order} "
            f"{btype} filter with filtfilt padding: {exc}"
        ) from exc
    return _like(df, filtered, index, columns)


# --------------------------------------------------------------------------
# Spectrogram
# --------------------------------------------------------------------------
def spectrogram(x: Any, fs: float = 1.0, *, nperseg: int = 256, noverlap: int | None = None,
                window: str | tuple = ("tukey", 0.25), scaling: str = "density") -> pd.DataFrame:
    """Power spectrogram of one series, as a frequency x time DataFrame.

    Parameters
    ----------
    x : Series, one-column DataFrame or 1-D array
        One evenly sampled series without NaN.
    fs : float
        Sampling frequency (default 1); a finite number > 0.
    nperseg : int
        Samples per segment (at most the series length).
    noverlap : int, optional
        Samples shared by consecutive segments (default ``nperseg // 8``, as
        scipy).
    window : str or tuple
        Window understood by ``scipy.signal.get_window`` (default scipy's,
        a Tukey window with shape 0.25).
    scaling : {"density", "spectrum"}
        Power spectral density or power spectrum, as in scipy.

    Returns
    -------
    DataFrame
        Index: frequencies (name ``"frequency"``). Columns: the centre of
        each segment, as a label of ``x``'s index when ``x`` is a Series or
        DataFrame (the sample nearest the centre), else in time units of
        ``1 / fs`` (name ``"time"``). Values: ``Sxx`` of scipy.

    Raises
    ------
    ValueError
        If ``x`` has more than one column or NaN, ``nperseg`` exceeds its
        length, or ``fs`` is not a finite number > 0 (a negative ``fs``
        would give negative frequencies).

    Notes
    -----
    A wrapper of :func:`scipy.signal.spectrogram` (Welch-style segments, no
    averaging) that keeps the time labels.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.sin(2 * np.pi * 0.125 * np.arange(1024))
    >>> S = spectrogram(x, nperseg=64)
    >>> float(S.mean(axis=1).idxmax())
    0.125
    """
    from scipy import signal

    values, index, _ = _as_2d(x, "x")
    if values.shape[1] != 1:
        raise ValueError(f"x must be one series, got shape {values.shape}; pick a column")
    fs = _check_fs(fs)
    nperseg = _check_int(nperseg, "nperseg", minimum=1, maximum=values.shape[0])
    if noverlap is not None:
        noverlap = _check_int(noverlap, "noverlap", minimum=0, maximum=nperseg - 1)
    scaling = _check_option(scaling, "scaling", ("density", "spectrum"))
    freqs, times, sxx = signal.spectrogram(values[:, 0], fs=fs, window=window, nperseg=nperseg,
                                           noverlap=noverlap, scaling=scaling)
    if isinstance(x, (pd.Series, pd.DataFrame)):
        centre = np.clip(np.round(times * fs).astype(int), 0, len(index) - 1)
        columns = pd.Index(index[centre], name=index.name or "time")
    else:
        columns = pd.Index(times, name="time")
    return pd.DataFrame(sxx, index=pd.Index(freqs, name="frequency"), columns=columns)


# --------------------------------------------------------------------------
# Spectral residual (Ren et al., KDD 2019)
# --------------------------------------------------------------------------
def _average_filter(values: np.ndarray, n: int) -> np.ndarray:
    """Trailing mean over ``min(n, i + 1)`` values along axis 0 (Microsoft's average_filter)."""
    n = min(n, values.shape[0])
    out = np.cumsum(values, axis=0, dtype=np.float64)
    out[n:] = (out[n:] - out[:-n]) / n
    out[1:n] /= np.arange(2, n + 1, dtype=np.float64).reshape(-1, *([1] * (values.ndim - 1)))
    return out


def _extend(values: np.ndarray, extend_num: int, look_ahead: int) -> np.ndarray:
    """Append ``extend_num`` copies of a slope-extrapolated next value (Ren et al., sec. 4.1)."""
    window = values[-look_ahead - 2 : -1]
    m = window.shape[0]
    last = window[-1]
    steps = (m - 1 - np.arange(m - 1, dtype=np.float64)).reshape(-1, *([1] * (values.ndim - 1)))
    slopes = (last - window[:-1]) / steps
    nxt = window[1] + slopes.sum(axis=0)
    return np.concatenate([values, np.repeat(nxt[None], extend_num, axis=0)], axis=0)


def _spectral_residual_kernel(values: np.ndarray, mag_window: int, score_window: int,
                              extend_num: int, look_ahead: int) -> tuple[np.ndarray, np.ndarray]:
    extended = _extend(values, extend_num, look_ahead)
    trans = np.fft.fft(extended, axis=0)
    mag = np.abs(trans)
    tiny = mag <= SR_EPS
    mag[tiny] = SR_EPS
    log_mag = np.log(mag)
    log_mag[tiny] = 0.0
    residual = np.exp(log_mag - _average_filter(log_mag, mag_window))
    trans = trans * (residual / mag)
    trans[tiny] = 0.0
    saliency = np.abs(np.fft.ifft(trans, axis=0))[: values.shape[0]]
    local = _average_filter(saliency, score_window)
    local[local <= SR_EPS] = SR_EPS
    score = np.clip(np.abs(saliency - local) / local / 10.0, 0.0, 1.0)
    return saliency, score


def spectral_residual(df: Any, *, mag_window: int = SR_MAG_WINDOW,
                      score_window: int = SR_SCORE_WINDOW, extend_num: int = SR_EXTEND_NUM,
                      look_ahead: int = SR_LOOK_AHEAD, output: str = "saliency") -> Any:
    """Spectral residual saliency map of every series (Ren et al., KDD 2019).

    Parameters
    ----------
    df : DataFrame, Series or ndarray of shape (n_timepoints, n_series)
        Evenly sampled series without NaN, at least ``look_ahead + 2`` rows.
    mag_window : int
        Length ``q`` of the average filter on the log amplitude spectrum.
    score_window : int
        Length ``z`` of the trailing mean the saliency is compared with.
    extend_num, look_ahead : int
        The series is extended by ``extend_num`` points, each the value
        extrapolated from the slopes of the last ``look_ahead + 1`` points,
        so that the latest points are not at the edge of the transform.
    output : {"saliency", "score"}
        ``"saliency"``: the saliency map ``S(x)``. ``"score"``: Microsoft's
        anomaly score ``clip(|S - mean_z(S)| / mean_z(S) / 10, 0, 1)``.

    Returns
    -------
    Same type as ``df``
        Saliency (or score) per point, same shape, index and columns; high
        values mark points that break the series' usual spectrum.

    Raises
    ------
    ValueError
        If ``df`` has NaN, too few rows, or a window is not a positive int.

    Notes
    -----
    Ren et al., "Time-Series Anomaly Detection Service at Microsoft",
    KDD 2019, eq. 1-3: ``A = |F(x)|``, ``L = log A``,
    ``R = L - h_q * L`` (average filter), ``S = |F^-1(exp(R + iP))|``.
    Details follow Microsoft's reference implementation
    (github.com/microsoft/anomalydetector, ``spectral_residual.py``):
    amplitudes at most ``1e-8`` are dropped, the average filter is trailing
    with shorter windows at the start, and the series is extended before
    the transform. The defaults are that implementation's.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.sin(np.arange(200) / 5.0)
    >>> x[120] += 3.0
    >>> int(np.argmax(spectral_residual(x)))
    120
    """
    mag_window = _check_int(mag_window, "mag_window", minimum=1)
    score_window = _check_int(score_window, "score_window", minimum=1)
    extend_num = _check_int(extend_num, "extend_num", minimum=0)
    look_ahead = _check_int(look_ahead, "look_ahead", minimum=1)
    output = _check_option(output, "output", ("saliency", "score"))
    values, index, columns = _as_2d(df, "df", min_rows=look_ahead + 2)
    saliency, score = _spectral_residual_kernel(values, mag_window, score_window, extend_num,
                                                look_ahead)
    return _like(df, saliency if output == "saliency" else score, index, columns)
