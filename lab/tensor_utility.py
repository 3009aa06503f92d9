"""Windows over time and multi-scale signature matrices.

A multivariate series is ``(n_timepoints, n_series)``; a batch of matrices is
``(n_items, rows, cols)``. The kernels here (``_..._kernel``) take validated
float arrays and do arithmetic only; the public functions validate, call them
and label the output.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
import numpy as np
import pandas as pd

from lab._blas import one_blas_thread
from lab._validation import _as_2d, _check_int

__all__ = [
    "sliding_windows",
    "signature_matrices",
    "correlation_matrices",
]

#: Default window lengths (rows) and step of MSCRED signature matrices
#: (Zhang et al., AAAI 2019, section 4.1 uses 10, 30 and 60 with step 10).
DEFAULT_WINDOWS = (10, 30, 60)
DEFAULT_STEP = 10
#: Elements of the centred-window scratch array of correlation_matrices per
#: batch (about 64 MB of float64): bounds memory on long series.
CORRELATION_BATCH_ELEMENTS = 8_000_000
#: Windows shorter than this many rows per shared block are summed from block
#: products; with smaller blocks the per-block overhead beats the saved
#: arithmetic and one batched product per window is faster.
MIN_BLOCK_ROWS = 5
#: Window ends handled together by the block kernel. For 30 series and windows
#: (10, 30, 60) 128 ends take about 4 MB of scratch sums (in L3, not L2), yet
#: beat 32 ends (1 MB) in interleaved timings on 2 cores (best 10.0 against
#: 11.4 ms): fewer chunks mean fewer BLAS and kernel calls per output.
SIGNATURE_CHUNK_ENDS = 128
#: Threads of the block kernel (it only starts them for inputs with at least
#: this many chunks of ends per thread).
SIGNATURE_THREADS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                        else os.cpu_count() or 1)


def sliding_windows(X: Any, window: int, step: int = 1) -> np.ndarray:
    """Windows over the rows of ``X`` as a read-only view, without copying.

    Parameters
    ----------
    X : ndarray of shape (T,) or (T, n), or DataFrame / Series
        The series. An ndarray is viewed as is (any dtype); a DataFrame is
        converted with ``to_numpy()`` first, which copies when its columns
        have different dtypes.
    window : int
        Rows per window, ``1 <= window <= T``.
    step : int
        Rows between the starts of consecutive windows (>= 1).

    Returns
    -------
    ndarray of shape (n_windows, window, n) or (n_windows, window)
        Window ``k`` is ``X[k * step : k * step + window]``, with
        ``n_windows = (T - window) // step + 1``. It is a strided view on
        ``X``'s memory: it is read-only, and changes to ``X`` show through.

    Raises
    ------
    ValueError
        If ``X`` is not 1-D or 2-D, or ``window`` / ``step`` are out of range.

    Notes
    -----
    Built on :func:`numpy.lib.stride_tricks.sliding_window_view`.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(12.0).reshape(6, 2)
    >>> W = sliding_windows(X, 3, step=2)
    >>> W.shape, np.shares_memory(W, X)
    ((2, 3, 2), True)
    >>> W[1].tolist()
    [[4.0, 5.0], [6.0, 7.0], [8.0, 9.0]]
    """
    arr = X.to_numpy() if isinstance(X, (pd.DataFrame, pd.Series)) else np.asarray(X)
    if arr.ndim not in (1, 2):
        raise ValueError(f"X must be 1-D (T,) or 2-D (T, n), got shape {arr.shape}")
    window = _check_int(window, "window", minimum=1, maximum=max(arr.shape[0], 1))
    if arr.shape[0] < 1:
        raise ValueError(f"X has no rows (shape {arr.shape}); at least {window} are needed")
    step = _check_int(step, "step", minimum=1)
    view = np.lib.stride_tricks.sliding_window_view(arr, window, axis=0)[::step]
    # sliding_window_view puts the window axis last; time goes back to axis 1.
    return view if arr.ndim == 1 else np.moveaxis(view, -1, 1)


def _check_windows(windows: Sequence[int], step: int, n_rows: int,
                   rows: str = "rows") -> tuple[tuple[int, ...], int]:
    if isinstance(windows, (int, np.integer)):
        windows = (windows,)
    try:
        windows = tuple(windows)
    except TypeError:
        raise ValueError(f"windows must be a sequence of positive integers, got {windows!r}") from None
    if not windows:
        raise ValueError("windows must hold at least one window length, got ()")
    windows = tuple(_check_int(w, "windows", minimum=1) for w in windows)
    step = _check_int(step, "step", minimum=1)
    if max(windows) > n_rows:
        raise ValueError(
            f"X has {n_rows} {rows} but the longest window is {max(windows)}; "
            f"at least {max(windows)} {rows} are needed"
        )
    return windows, step


def _addition_chain(targets: list[int]) -> list[tuple[int, int, int]]:
    """Steps ``(m, a, b)`` with ``m = a + b`` that build every target from 1.

    Each step is one array addition ``R_m[p] = R_a[p] + R_b[p - a]`` of
    sliding block sums; reusing the sums already built keeps the additions
    few (10, 30, 60 rows in blocks of 10: 2 = 1 + 1, 3 = 1 + 2, 6 = 3 + 3).
    """
    have, steps = {1}, []

    def build(m: int) -> None:
        if m in have:
            return
        a = max(x for x in have if x < m)
        build(m - a)
        steps.append((m, a, m - a))
        have.add(m)

    for m in sorted(targets):
        build(m)
    return steps


@numba.njit(nogil=True, cache=True)
def _signature_sums_kernel(sums: np.ndarray, chain: np.ndarray, levels: np.ndarray,
                           scales: np.ndarray, n_blocks: int, longest: int, stride: int,
                           out: np.ndarray, lo: int, hi: int) -> None:
    """Sliding block sums in ``sums[1:]`` from ``sums[0]``, scaled into ``out[lo:hi]``.

    ``chain[i] = (m, a, level of a, level of b)`` builds level ``i + 1``:
    ``R_m[p] = R_a[p] + R_b[p - a]``. Compiled so that every output element
    is written once, in memory order, with its scale; numpy's separate add
    and multiply passes (strided over the windows axis) cost twice as much.
    """
    # The n x n matrices are contiguous: one flat loop of n * n per matrix
    # vectorises where two nested loops of n did not.
    nn = sums.shape[2] * sums.shape[3]
    flat = sums.reshape(sums.shape[0], sums.shape[1], nn)
    flat_out = out.reshape(out.shape[0], out.shape[1], nn)
    for i in range(chain.shape[0]):
        m, a, la, lb = chain[i, 0], chain[i, 1], chain[i, 2], chain[i, 3]
        for p in range(m - 1, n_blocks):
            dst, x, y = flat[i + 1, p], flat[la, p], flat[lb, p - a]
            for q in range(nn):
                dst[q] = x[q] + y[q]
    for k in range(lo, hi):
        p = longest - 1 + (k - lo) * stride
        for s in range(levels.shape[0]):
            src, c, dst = flat[levels[s], p], scales[s], flat_out[k, s]
            for q in range(nn):
                dst[q] = src[q] * c


def _signature_block_sums(X: np.ndarray, stride: int, longest: int, g: int,
                          chain: np.ndarray, levels: np.ndarray, scales: np.ndarray,
                          ends: np.ndarray, out: np.ndarray, start: int, stop: int) -> None:
    """Fill ``out[start:stop]`` from block products (see ``_signature_kernel``)."""
    n = X.shape[1]
    chunk_ends = min(stop - start, SIGNATURE_CHUNK_ENDS)
    max_blocks = (chunk_ends - 1) * stride + longest
    # Scratch reused by every chunk: fresh large arrays would page-fault anew.
    sums = np.empty((len(chain) + 1, max_blocks, n, n))
    # Consecutive chunks share longest - stride blocks: their products are
    # moved to the front instead of computed again.
    overlap, prev_blocks = max(0, longest - stride), 0
    for lo in range(start, stop, chunk_ends):
        hi = min(stop, lo + chunk_ends)
        n_blocks = (hi - lo - 1) * stride + longest
        first_row = int(ends[lo]) - longest * g
        done = 0
        if prev_blocks:
            sums[0, :overlap] = sums[0, prev_blocks - overlap : prev_blocks]
            done = overlap
        blocks = X[first_row + done * g : first_row + n_blocks * g].reshape(n_blocks - done, g, n)
        np.matmul(blocks.transpose(0, 2, 1), blocks, out=sums[0, done:n_blocks])
        prev_blocks = n_blocks
        _signature_sums_kernel(sums, chain, levels, scales, n_blocks, longest, stride,
                               out, lo, hi)


def _signature_kernel(X: np.ndarray, windows: tuple[int, ...], step: int,
                      ends: np.ndarray) -> np.ndarray:
    """``M[k, s] = X[e-w:e].T @ X[e-w:e] / w`` for ``e = ends[k]``, ``w = windows[s]``.

    Every window boundary is a multiple of ``g = gcd(step, *windows)`` rows
    (the first end is the longest window, itself a multiple of ``g``). So the
    ``g``-row block products ``P_j = X[jg:(j+1)g].T @ X[jg:(j+1)g]`` are
    computed once with one batched matmul, and a window of ``m = w / g``
    blocks is the sliding sum ``R_m[j] = P_{j-m+1} + ... + P_j``, built from
    shorter sliding sums by an addition chain (``R_6 = R_3 + R_3`` shifted).
    Every sum is direct, never a difference of cumulative sums, so rounding
    stays at the level of the naive product (no cancellation). The work goes
    in chunks of ends whose scratch arrays stay in the CPU cache; the block
    products are BLAS calls (numpy's batched matmul), the sums and the
    scaled writes a compiled loop (numba) that writes each output element
    once, in memory order.
    """
    n_rows, n = X.shape
    out = np.empty((len(ends), len(windows), n, n))
    g = math.gcd(step, *windows)
    if g < MIN_BLOCK_ROWS or step > max(windows):
        # Small blocks, or ends so far apart that most blocks would be unused.
        for s, w in enumerate(windows):
            segs = np.lib.stride_tricks.sliding_window_view(X, w, axis=0)[ends - w]
            np.matmul(segs, segs.transpose(0, 2, 1), out=out[:, s])
            out[:, s] /= w
        return out
    stride, longest = step // g, max(windows) // g
    level = {1: 0}
    chain = np.zeros((0, 4), dtype=np.int64)
    for m, a, b in _addition_chain([w // g for w in windows]):
        chain = np.vstack([chain, [(m, a, level[a], level[b])]])
        level[m] = len(chain)
    levels = np.array([level[w // g] for w in windows], dtype=np.int64)
    # A multiply by 1/w (within an ulp of dividing) runs several times faster
    # than a division.
    scales = 1.0 / np.array(windows, dtype=float)
    # Threads take contiguous runs of ends: numpy releases the GIL in matmul
    # and in ufunc loops, and each thread keeps its own cache-sized scratch.
    n_threads = max(1, min(SIGNATURE_THREADS, len(ends) // SIGNATURE_CHUNK_ENDS))
    bounds = np.linspace(0, len(ends), n_threads + 1).astype(int)
    jobs = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    args = (X, stride, longest, g, chain, levels, scales, ends, out)
    if n_threads == 1:
        _signature_block_sums(*args, *jobs[0])
    else:
        # Each thread's block products would otherwise start BLAS's own
        # threads too (4 threads on 2 cores): one BLAS thread per thread cut
        # the median time by about a fifth in interleaved runs.
        with one_blas_thread(), ThreadPoolExecutor(n_threads) as pool:
            for done in [pool.submit(_signature_block_sums, *args, a, b) for a, b in jobs]:
                done.result()
    return out


def signature_matrices(X: Any, windows: Sequence[int] = DEFAULT_WINDOWS,
                       step: int = DEFAULT_STEP) -> tuple[np.ndarray, np.ndarray | pd.Index]:
    """Multi-scale signature matrices of a multivariate series (MSCRED).

    Parameters
    ----------
    X : DataFrame or ndarray of shape (T, n)
        The series, rows are time. No NaN allowed.
    windows : sequence of int
        Window lengths in rows, one scale each (default 10, 30, 60).
    step : int
        Rows between consecutive window ends (default 10).

    Returns
    -------
    M : ndarray of shape (len(ends), len(windows), n, n)
        ``M[k, s] = X[e - w : e].T @ X[e - w : e] / w`` with ``e`` the k-th
        end position and ``w = windows[s]``.
    ends : ndarray of int or pandas.Index
        For an ndarray, the exclusive end positions
        ``np.arange(max(windows), T + 1, step)``. For a DataFrame, the index
        labels of the last row in each window, ``X.index[ends - 1]``.

    Raises
    ------
    ValueError
        If ``X`` has NaN, is not numeric 2-D, or has fewer rows than the
        longest window; if a window or ``step`` is not a positive integer.

    Notes
    -----
    The definition of Zhang et al., "A Deep Neural Network for Unsupervised
    Anomaly Detection and Diagnosis in Multivariate Time Series Data",
    AAAI 2019 (MSCRED), eq. 1: windows end exclusively at ``e`` and all scales
    are aligned on the same ends, so the first end is the longest window.
    The computation sums block products of ``gcd(step, *windows)`` rows (see
    ``_signature_kernel``); it agrees with the per-window product to about
    ``1e-15`` relative.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(100, 3))
    >>> M, ends = signature_matrices(X, windows=(10, 30), step=10)
    >>> M.shape, ends[:3].tolist()
    ((8, 2, 3, 3), [30, 40, 50])
    >>> seg = X[40 - 10 : 40]
    >>> bool(np.allclose(M[1, 0], seg.T @ seg / 10))
    True
    """
    values, index, _ = _as_2d(X, "X")
    windows, step = _check_windows(windows, step, values.shape[0])
    ends = np.arange(max(windows), values.shape[0] + 1, step)
    M = _signature_kernel(values, windows, step, ends)
    if isinstance(X, (pd.DataFrame, pd.Series)):
        return M, index[ends - 1]
    return M, ends


def _correlation_kernel(X: np.ndarray, windows: tuple[int, ...],
                        ends: np.ndarray) -> np.ndarray:
    """Pearson correlation of every window; 0 wherever a series is constant.

    Each window is centred on its own mean before the product, so there is no
    cancellation between large means and small variations. A series is
    constant in a window when its maximum equals its minimum (exactly).
    """
    n = X.shape[1]
    out = np.empty((len(ends), len(windows), n, n))
    diag = np.arange(n)
    for s, w in enumerate(windows):
        starts = ends - w
        batch = max(1, CORRELATION_BATCH_ELEMENTS // (w * n))
        view = np.lib.stride_tricks.sliding_window_view(X, w, axis=0)  # (T-w+1, n, w)
        for lo in range(0, len(ends), batch):
            segs = view[starts[lo : lo + batch]]
            centred = segs - segs.mean(axis=2, keepdims=True)
            cov = np.matmul(centred, centred.transpose(0, 2, 1))
            constant = segs.max(axis=2) == segs.min(axis=2)
            sd = np.sqrt(cov[:, diag, diag])
            sd[constant] = 1.0  # placeholder; these rows and columns are zeroed below
            corr = cov / sd[:, :, None] / sd[:, None, :]
            np.clip(corr, -1.0, 1.0, out=corr)
            corr[:, diag, diag] = 1.0
            corr[constant[:, :, None] | constant[:, None, :]] = 0.0
            out[lo : lo + batch, s] = corr
    return out


def correlation_matrices(X: Any, windows: Sequence[int] = DEFAULT_WINDOWS,
                         step: int = DEFAULT_STEP, diff: bool = False
                         ) -> tuple[np.ndarray, np.ndarray | pd.Index]:
    """Multi-scale Pearson correlation matrices, laid out like :func:`signature_matrices`.

    Parameters
    ----------
    X : DataFrame or ndarray of shape (T, n)
        The series, rows are time. No NaN allowed.
    windows : sequence of int
        Window lengths in rows, one scale each (default 10, 30, 60); at
        least 2 rows each.
    step : int
        Rows between consecutive window ends (default 10).
    diff : bool
        If True, correlate first differences ``X[t] - X[t-1]`` instead of
        levels (trending series are otherwise all correlated). A window of
        ``w`` differences spans ``w + 1`` rows of ``X``.

    Returns
    -------
    C : ndarray of shape (len(ends), len(windows), n, n)
        ``C[k, s, i, j]`` is the Pearson correlation of series ``i`` and
        ``j`` over the window of ``windows[s]`` rows (of differences, with
        ``diff=True``) ending at the k-th end. **A series that is constant
        within a window has correlation 0 with every series, itself
        included** (not NaN); otherwise the diagonal is exactly 1.
    ends : ndarray of int or pandas.Index
        Exclusive end positions in the rows of ``X``:
        ``np.arange(max(windows), T + 1, step)``, shifted by one with
        ``diff=True`` (a window of differences ending at difference ``e``
        ends at row ``e + 1`` of ``X``). For a DataFrame, the index labels of
        the last row of ``X`` in each window.

    Raises
    ------
    ValueError
        If ``X`` has NaN or too few rows, or a window is shorter than 2.

    Notes
    -----
    Pearson's correlation per window, with each window centred on its own
    mean before the product (the "two-pass" algorithm, numerically stable;
    Chan, Golub & LeVeque 1983). Constant windows are detected exactly
    (maximum equal to minimum) and set to 0 by convention.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(100.0)
    >>> X = np.column_stack([np.sin(t), 2 * np.sin(t) + 1, np.ones(100)])
    >>> C, ends = correlation_matrices(X, windows=(10, 20), step=20)
    >>> C.shape, ends.tolist()
    ((5, 2, 3, 3), [20, 40, 60, 80, 100])
    >>> C[0, 0].round(6).tolist()
    [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    """
    values, index, _ = _as_2d(X, "X")
    if not isinstance(diff, (bool, np.bool_)):
        raise ValueError(f"diff must be True or False, got {diff!r}")
    shift = 1 if diff else 0
    if diff:
        values = np.diff(values, axis=0)
    windows, step = _check_windows(windows, step, values.shape[0],
                                   "differences (rows - 1)" if diff else "rows")
    if min(windows) < 2:
        raise ValueError(f"windows must be at least 2 rows for a correlation, got {windows}")
    ends = np.arange(max(windows), values.shape[0] + 1, step)
    C = _correlation_kernel(values, windows, ends)
    ends = ends + shift
    if isinstance(X, (pd.DataFrame, pd.Series)):
        return C, index[ends - 1]
    return C, ends
