"""Windows over time and multi-scale signature matrices.

A multivariate series is ``(n_timepoints, n_series)``; a batch of matrices is
``(n_items, rows, cols)``. The kernels here (``_..._kernel``) take validated
float arrays and do arithmetic only; the public functions validate, call them
and label the output.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from typing import Any

import numba
import numpy as np
import pandas as pd

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
#: Elements of the window copies that correlation_matrices and the batched
#: path of signature_matrices make per batch (about 64 MB of float64):
#: bounds memory on long series.
BATCH_ELEMENTS = 8_000_000
#: Window ends per part of the block kernel. Threads take parts one at a time,
#: so a thread slowed by a busy CPU takes fewer; each part recomputes the
#: ``longest - stride`` block products it shares with the part before it
#: (5 of 261 blocks for windows 10, 30, 60 and step 10). For n=30, T=20000
#: two halves were 5% faster on a quiet machine (best 5.7 against 6.0 ms),
#: 32 ends 10% slower.
SIGNATURE_PART_ENDS = 256
#: Parts are made longer where needed so that the recomputed blocks are at
#: most this share of a part's blocks (long windows in short blocks).
SIGNATURE_MAX_OVERLAP = 1 / 8
#: Bytes of the block kernel's ring buffers per thread allowed beyond the
#: output's own size. The rings hold about 2 * w / g matrices of n x n for a
#: window of w rows in g-row blocks; past this, the batched product is used.
SIGNATURE_RING_BYTES = 128 * 2**20
#: Threads of the block kernel, the caller included (it starts no more than
#: there are parts).
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

    Each step is one addition of sliding block sums,
    ``R_m[p] = R_a[p] + R_b[p - a]``; reusing the sums already built keeps
    the steps few (10, 30, 60 rows in blocks of 10: 2 = 1 + 1, 3 = 1 + 2,
    6 = 3 + 3). ``m`` is the largest sum built so far that is at most
    ``m / 2``, plus the rest; when that sum is under about ``m / 4``, ``m``
    is built from its two halves instead. So the chain has O(log m) steps
    and recursion depth (a chain of +1 steps would take m steps, and
    recurse m deep).
    """
    have, steps = {1}, []

    def build(m: int) -> None:
        if m in have:
            return
        a = max(x for x in have if x <= m // 2)
        if 2 * a < m // 2:  # the largest sum so far is too short: halve instead
            a = m // 2
        build(a)
        build(m - a)
        steps.append((m, a, m - a))
        have.add(m)

    for m in sorted(targets):
        build(m)
    return steps


@numba.njit(nogil=True, cache=True, fastmath={"contract"})
def _signature_ring_kernel(X: np.ndarray, g: int, longest: int, chain: np.ndarray,
                           ring_start: np.ndarray, ring_len: np.ndarray, levels: np.ndarray,
                           scales: np.ndarray, end_blocks: np.ndarray, lo: int, hi: int,
                           ring: np.ndarray, out: np.ndarray) -> None:
    """Fill ``out[lo:hi]`` from ``g``-row block products kept in a ring buffer.

    Block ``j`` is ``X[j*g : (j+1)*g]``; window end ``k`` is block
    ``end_blocks[k]`` (exclusive). Level 0 holds the block products ``P_j``,
    level ``i + 1`` the sliding sums ``R_m[j] = R_a[j] + R_b[j - a]`` of step
    ``chain[i] = (m, a, level of a, level of b)``. Level ``L`` keeps its last
    ``ring_len[L]`` values in ``ring[ring_start[L]:]`` (as many as the
    longest shift it is read at, plus one). For windows of a few blocks that
    is a few matrices, which stay in the CPU cache: only ``out`` goes to
    memory, written once, in order, scaled.
    """
    n = X.shape[1]
    nn = n * n
    flat = ring.reshape(ring.shape[0], nn)
    flat_out = out.reshape(out.shape[0], out.shape[1], nn)
    first = end_blocks[lo] - longest
    k = lo
    for j in range(first, end_blocks[hi - 1]):
        # P_j = B.T @ B by rank-1 updates, rows of B in order: the inner loops
        # run over contiguous rows and vectorise with fused multiply-adds.
        # Four rows per pass over P_j load and store it a quarter as often
        # (17% faster for n = 30; the additions keep their order, so the
        # result is bit-identical to one row per pass). One BLAS call per
        # 10 x 30 block costs more in call overhead than this whole product.
        P, r = ring[ring_start[0] + j % ring_len[0]], j * g
        row = X[r]
        for a in range(n):
            Pa, xa = P[a], row[a]
            for b in range(n):
                Pa[b] = xa * row[b]
        t = 1
        while t + 4 <= g:
            y0, y1, y2, y3 = X[r + t], X[r + t + 1], X[r + t + 2], X[r + t + 3]
            for a in range(n):
                Pa, c0, c1, c2, c3 = P[a], y0[a], y1[a], y2[a], y3[a]
                for b in range(n):
                    Pa[b] = Pa[b] + c0 * y0[b] + c1 * y1[b] + c2 * y2[b] + c3 * y3[b]
            t += 4
        for u in range(t, g):
            row = X[r + u]
            for a in range(n):
                Pa, xa = P[a], row[a]
                for b in range(n):
                    Pa[b] += xa * row[b]
        for i in range(chain.shape[0]):
            m, a, la, lb = chain[i, 0], chain[i, 1], chain[i, 2], chain[i, 3]
            if j - m + 1 >= first:  # R_m[j] needs blocks from this part only
                dst = flat[ring_start[i + 1] + j % ring_len[i + 1]]
                x = flat[ring_start[la] + j % ring_len[la]]
                y = flat[ring_start[lb] + (j - a) % ring_len[lb]]
                for q in range(nn):
                    dst[q] = x[q] + y[q]
        if j == end_blocks[k] - 1:
            for s in range(levels.shape[0]):
                level = levels[s]
                src = flat[ring_start[level] + j % ring_len[level]]
                c, dst = scales[s], flat_out[k, s]
                for q in range(nn):
                    dst[q] = src[q] * c
            k += 1
            if k == hi:
                break


def _signature_kernel(X: np.ndarray, windows: tuple[int, ...], step: int,
                      ends: np.ndarray) -> np.ndarray:
    """``M[k, s] = X[e-w:e].T @ X[e-w:e] / w`` for ``e = ends[k]``, ``w = windows[s]``.

    Every window boundary is a multiple of ``g = gcd(step, *windows)`` rows
    (the first end is the longest window, itself a multiple of ``g``). So the
    ``g``-row block products ``P_j = X[jg:(j+1)g].T @ X[jg:(j+1)g]`` are
    computed once each, and a window of ``m = w / g`` blocks is the sliding
    sum ``R_m[j] = P_{j-m+1} + ... + P_j``, built from shorter sliding sums by
    an addition chain (``R_6 = R_3 + R_3`` shifted). Every sum is direct,
    never a difference of cumulative sums, so rounding stays at the level of
    the naive product (no cancellation). One compiled pass
    (``_signature_ring_kernel``) per part of the ends computes the products
    and sums into ring buffers (cache-sized for windows of a few blocks) and
    writes each output element once; threads take the parts in turn.
    """
    n = X.shape[1]
    out = np.empty((len(ends), len(windows), n, n))
    g = math.gcd(step, *windows)
    level, shift = {1: 0}, [0]
    chain = np.zeros((0, 4), dtype=np.int64)
    for m, a, b in _addition_chain([w // g for w in windows]):
        chain = np.vstack([chain, [(m, a, level[a], level[b])]])
        shift[level[b]] = max(shift[level[b]], a)
        level[m] = len(chain)
        shift.append(0)
    ring_len = np.array(shift, dtype=np.int64) + 1
    ring_bytes = int(ring_len.sum()) * n * n * 8
    if step > max(windows) or ring_bytes > max(out.nbytes, SIGNATURE_RING_BYTES):
        # Ends so far apart that most blocks would be unused, or rings of
        # sums too large (windows of very many blocks): one batched product
        # per window and end, over batches of ends that bound the copies.
        for s, w in enumerate(windows):
            view = np.lib.stride_tricks.sliding_window_view(X, w, axis=0)  # (T-w+1, n, w)
            batch = max(1, BATCH_ELEMENTS // (w * n))
            for lo in range(0, len(ends), batch):
                segs = view[ends[lo : lo + batch] - w]
                dst = out[lo : lo + batch, s]
                np.matmul(segs, segs.transpose(0, 2, 1), out=dst)
                dst /= w
        return out
    X = np.ascontiguousarray(X, dtype=np.float64)  # the kernel reads whole rows
    longest = max(windows) // g
    ring_start = np.concatenate([[0], np.cumsum(ring_len)[:-1]])
    levels = np.array([level[w // g] for w in windows], dtype=np.int64)
    # A multiply by 1/w (within an ulp of dividing) runs several times faster
    # than a division.
    scales = 1.0 / np.array(windows, dtype=float)
    end_blocks = ends // g
    stride = step // g
    part = max(SIGNATURE_PART_ENDS,
               math.ceil((longest - stride) / (SIGNATURE_MAX_OVERLAP * stride)))
    parts = iter(range(0, len(ends), part))
    take = threading.Lock()
    failed: list[BaseException] = []

    def work() -> None:
        try:
            ring = np.empty((int(ring_len.sum()), n, n))
            while not failed:
                with take:
                    lo = next(parts, None)
                if lo is None:
                    return
                _signature_ring_kernel(X, g, longest, chain, ring_start, ring_len, levels,
                                       scales, end_blocks, lo, min(len(ends), lo + part),
                                       ring, out)
        except BaseException as exc:  # re-raised by the caller; the others stop
            failed.append(exc)

    # The kernel releases the GIL: the caller works beside up to
    # SIGNATURE_THREADS - 1 threads, which end with the call (no idle threads
    # are left behind to trouble a later fork).
    helpers = [threading.Thread(target=work, daemon=True)
               for _ in range(min(SIGNATURE_THREADS, -(-len(ends) // part)) - 1)]
    try:
        for thread in helpers:
            thread.start()
        work()
    except BaseException as exc:  # a thread that could not start, or Ctrl-C
        failed.append(exc)
    finally:
        for thread in helpers:
            if thread.ident is not None:  # started
                thread.join()
    if failed:  # Ctrl-C first, then the first error
        raise next((e for e in failed if isinstance(e, KeyboardInterrupt)), failed[0])
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

    Each series is first scaled, in each window, by the power of two that
    brings its largest absolute value into [0.5, 1): the scaling is exact and
    the correlation does not depend on it, but squares of values near 1e-200
    no longer underflow to 0 nor those near 1e155 overflow to inf. Each
    window is then centred on its own mean before the product, so there is
    no cancellation between large means and small variations. A series is
    constant in a window when its maximum equals its minimum (exactly).
    """
    n = X.shape[1]
    out = np.empty((len(ends), len(windows), n, n))
    diag = np.arange(n)
    for s, w in enumerate(windows):
        starts = ends - w
        batch = max(1, BATCH_ELEMENTS // (w * n))
        view = np.lib.stride_tricks.sliding_window_view(X, w, axis=0)  # (T-w+1, n, w)
        for lo in range(0, len(ends), batch):
            centred = view[starts[lo : lo + batch]]  # a copy: fancy indexing
            top, bottom = centred.max(axis=2), centred.min(axis=2)
            _, exponent = np.frexp(np.maximum(top, -bottom))
            # Within +-1021 the factor is a normal number; subnormal series
            # scaled by 2**1021 are at least 2**-53, whose squares are normal.
            centred *= np.ldexp(1.0, -np.clip(exponent, -1021, 1021))[:, :, None]
            centred -= centred.mean(axis=2, keepdims=True)
            cov = np.matmul(centred, centred.transpose(0, 2, 1))
            constant = top == bottom
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
    Chan, Golub & LeVeque 1983). Before that, each series is scaled in each
    window by the power of two that brings its largest absolute value into
    [0.5, 1): exact, and the correlation is scale-invariant, so a series of
    values near 1e-200 or 1e200 gives what ``np.corrcoef`` gives for the same
    series at scale 1 (``np.corrcoef`` itself returns 1 or 0 there, as its
    squares underflow or overflow). Constant windows are detected exactly
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
        with np.errstate(over="ignore"):
            diffs = np.diff(values, axis=0)
        over = ~np.isfinite(diffs).all(axis=0)
        if over.any():
            # Differences of values near +-1.8e308 overflow; those of the halves
            # do not, and halving (exact) leaves every correlation unchanged.
            diffs[:, over] = np.diff(values[:, over] * 0.5, axis=0)
        values = diffs
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
