"""Windows over time and multi-scale signature matrices.

A multivariate series is ``(n_timepoints, n_series)``; a batch of matrices is
``(n_items, rows, cols)``. The kernels here (``_..._kernel``) take validated
float arrays and do arithmetic only; the public functions validate, call them
and label the output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from lab._validation import _as_2d, _check_int

__all__ = [
    "sliding_windows",
    "signature_matrices",
]

#: Default window lengths (rows) and step of MSCRED signature matrices
#: (Zhang et al., AAAI 2019, section 4.1 uses 10, 30 and 60 with step 10).
DEFAULT_WINDOWS = (10, 30, 60)
DEFAULT_STEP = 10
#: Windows shorter than this many rows per shared block are summed from block
#: products; with smaller blocks the per-block overhead beats the saved
#: arithmetic and one batched product per window is faster.
MIN_BLOCK_ROWS = 5
#: Window ends handled together by the block kernel: about 1 MB of output
#: rows for 30 series and three scales, so a chunk stays in the L2 cache.
SIGNATURE_CHUNK_ENDS = 64


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


def _check_windows(windows: Sequence[int], step: int, n_rows: int) -> tuple[tuple[int, ...], int]:
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
            f"X has {n_rows} rows but the longest window is {max(windows)}; "
            f"at least {max(windows)} rows are needed"
        )
    return windows, step


def _signature_kernel(X: np.ndarray, windows: tuple[int, ...], step: int,
                      ends: np.ndarray) -> np.ndarray:
    """``M[k, s] = X[e-w:e].T @ X[e-w:e] / w`` for ``e = ends[k]``, ``w = windows[s]``.

    Every window boundary is a multiple of ``g = gcd(step, *windows)`` rows
    (the first end is the longest window, itself a multiple of ``g``). So the
    ``g``-row block products ``B_j = X[jg:(j+1)g].T @ X[jg:(j+1)g]`` are
    computed once with one batched matmul, and each window is a direct sum of
    ``w / g`` consecutive blocks. Windows of one end are nested, so the scales
    grow from one running sum: ``max(windows) / g`` additions per end in all.
    The sums are direct, never differences of cumulative sums, so rounding
    stays at the level of the naive product (no cancellation).
    """
    n_rows, n = X.shape
    out = np.empty((len(ends), len(windows), n, n))
    g = math.gcd(step, *windows)
    if g < MIN_BLOCK_ROWS:
        for s, w in enumerate(windows):
            segs = np.lib.stride_tricks.sliding_window_view(X, w, axis=0)[ends - w]
            np.matmul(segs, segs.transpose(0, 2, 1), out=out[:, s])
            out[:, s] /= w
        return out
    stride, longest = step // g, max(windows) // g
    order = np.argsort(windows, kind="stable")
    # Chunks of ends keep the block products and the output rows they feed
    # in cache; each chunk recomputes only the blocks it shares with the last.
    for lo in range(0, len(ends), SIGNATURE_CHUNK_ENDS):
        hi = min(len(ends), lo + SIGNATURE_CHUNK_ENDS)
        first_block = int(ends[lo]) // g - longest
        n_blocks = int(ends[hi - 1]) // g - first_block
        blocks = X[first_block * g : (first_block + n_blocks) * g].reshape(n_blocks, g, n)
        products = np.matmul(blocks.transpose(0, 2, 1), blocks)
        # The block just before end k is a strided slice of the products (a
        # view, which numpy adds far faster than a fancy-index gather).
        last = longest - 1
        chunk = out[lo:hi]
        done, prev = 0, None
        for s in order:
            need = windows[s] // g
            target = chunk[:, s]
            if prev is None:
                target[...] = products[last::stride][: hi - lo]
                done = 1
            else:
                target[...] = chunk[:, prev]
            for back in range(done, need):
                target += products[last - back :: stride][: hi - lo]
            done, prev = need, s
        # Scale only now: the larger windows were built from the raw sums.
        chunk /= np.asarray(windows, dtype=np.float64)[:, None, None]
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
