"""DTW k-means with a banded, pruned assignment step: tslearn's algorithm, compiled.

:class:`DTWKMeans` is tslearn's ``TimeSeriesKMeans(metric="dtw")`` (k-means++
seeding, DBA barycentres by Petitjean et al. 2011, the same stopping rules) with
the costly steps replaced by compiled kernels that give the same numbers:

- the assignment step bounds every (series, centre) distance from below with
  LB_Keogh (Keogh & Ratanamahatana 2005) on the centre's band envelope, visits
  the centres in order of that bound, skips those whose bound exceeds the best
  distance found so far, and abandons a DTW once a whole row of its cost
  matrix does (early abandoning, as in the UCR suite of Rakthanmanon et al.
  2012). Only the winning distance is needed for the inertia, so pruning
  changes nothing in the result;
- DTW and its warping path fill only the Sakoe-Chiba band, not the full matrix
  under a mask;
- DBA aligns all members to the barycentre in parallel (numba ``prange``) and
  averages the aligned values with numpy's own pairwise summation order, so the
  barycentre is bit-identical to tslearn's.

The estimator subclasses tslearn's, keeps its parameters (``get_params`` is the
same) and its ``predict``/``transform``; only ``dtw`` with a Sakoe-Chiba band (or
none) on univariate series of one length runs compiled, every other setting
goes to tslearn's own code.

tslearn 0.10 passes ``metric_params`` to its compiled path function unchanged
while DBA aligns, and that function expects a constraint code, not the name:
with ``{"global_constraint": "sakoe_chiba", "sakoe_chiba_radius": r}`` the band
applies to the assignment only and DBA aligns without it; with
``{"sakoe_chiba_radius": r}`` (the constraint inferred from the radius) the band
applies to both. :class:`DTWKMeans` follows tslearn in both cases, so it stays
equal to tslearn's result for the same parameters.
"""

from __future__ import annotations

import math
import warnings

import numba
import numpy as np
from numba import prange
from tslearn.clustering import TimeSeriesKMeans
from tslearn.clustering.kmeans import _k_init_metric
from tslearn.clustering.utils import (
    _check_full_length,
    _check_no_empty_cluster,
    _compute_inertia,
)

__all__ = ["DTWKMeans", "dtw_band_distances"]

#: tslearn's DBA defaults in ``TimeSeriesKMeans`` (``dtw_barycenter_averaging_petitjean``):
#: at most 30 EM iterations, stop when the cost changes by less than 1e-5.
DBA_MAX_ITER = 30
DBA_TOL = 1e-5
#: Relative slack on the pruning tests: LB_Keogh and a partial DTW row are lower
#: bounds in exact arithmetic; the slack keeps float rounding from pruning a
#: centre whose distance ties the best one.
PRUNE_SLACK = 1e-9
#: numpy's pairwise summation: blocks of 128 summed in 8 lanes (numpy/_core/src/umath).
PAIRWISE_BLOCK = 128
#: metric_params keys the compiled path understands.
BAND_KEYS = ("global_constraint", "sakoe_chiba_radius")


# --------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------
@numba.njit(nogil=True, cache=True)
def _band(i: int, sz: int, r: int) -> tuple[int, int]:  # pragma: no cover - compiled
    """Columns ``lo..hi`` (inclusive) of row ``i`` inside a band of radius ``r``."""
    return max(0, i - r), min(sz - 1, i + r)


@numba.njit(nogil=True, cache=True)
def _dtw_sq(x, y, r, abandon, tail, prev, cur):  # pragma: no cover - compiled
    """Squared DTW cost of ``x`` and ``y`` (same length) in a band of radius ``r``.

    The recursion and its order of operations are tslearn's
    (``_njit_accumulated_matrix``): ``C[i, j] = d(i, j) + min(C[i-1, j],
    C[i, j-1], C[i-1, j-1])`` with ``d`` the squared euclidean distance of the
    two points, so the value is bit-identical (the left neighbour is carried
    in a register, which changes no value). Returns ``inf`` as soon as the
    smallest cell of row ``i`` plus ``tail[i + 1]``, a lower bound on what
    the rows below add (LB_Keogh per row, zeros for none), exceeds
    ``abandon``: every path crosses every row. ``prev``/``cur`` are scratch
    rows of length ``len(y) + 2``.
    """
    sz1, sz2, d = x.shape[0], y.shape[0], x.shape[1]
    inf = np.inf
    for j in range(sz2 + 2):
        prev[j] = inf
    prev[0] = 0.0
    for i in range(sz1):
        lo, hi = _band(i, sz2, r)
        left = inf
        row_min = inf
        for j in range(lo, hi + 1):
            dist = 0.0
            for k in range(d):
                diff = x[i, k] - y[j, k]
                dist += diff * diff
            c = dist + min(min(prev[j + 1], prev[j]), left)
            cur[j + 1] = c
            left = c
            row_min = min(row_min, c)
        cur[lo] = inf
        if hi + 2 < sz2 + 2:
            cur[hi + 2] = inf
        if row_min + tail[i + 1] > abandon:
            return inf
        prev, cur = cur, prev
    return prev[sz2]


@numba.njit(nogil=True, cache=True)
def _dtw_path(x, y, r, C, path):  # pragma: no cover - compiled
    """Squared DTW cost and warping path of ``x`` and ``y``, band radius ``r``.

    ``C`` (``len(x) x len(y)``) is filled in the band and one cell either side
    (``inf``), all the backtrack reads. The backtrack is tslearn's
    (``_compute_path``): from the last cell, step to the smallest of the
    diagonal, upper and left neighbours, the first of them on ties. ``path``
    receives the pairs in order; the pair count is returned.
    """
    sz1, sz2, d = x.shape[0], y.shape[0], x.shape[1]
    inf = np.inf
    for i in range(sz1):
        lo, hi = _band(i, sz2, r)
        if lo > 0:
            C[i, lo - 1] = inf
        if hi + 1 < sz2:
            C[i, hi + 1] = inf
        left = inf
        for j in range(lo, hi + 1):
            dist = 0.0
            for k in range(d):
                diff = x[i, k] - y[j, k]
                dist += diff * diff
            if i == 0:
                up, diag = inf, (0.0 if j == 0 else inf)
            else:
                up, diag = C[i - 1, j], (C[i - 1, j - 1] if j > 0 else inf)
            c = dist + min(min(up, diag), left)
            C[i, j] = c
            left = c
    # Every neighbour read below is in the band or one of the inf cells beside it.
    i, j, n = sz1 - 1, sz2 - 1, 0
    while True:
        path[n, 0], path[n, 1] = i, j
        n += 1
        if i == 0 and j == 0:
            break
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            diag, up, left = C[i - 1, j - 1], C[i - 1, j], C[i, j - 1]
            if up < diag and up <= left:
                i -= 1
            elif left < diag and left < up:
                j -= 1
            else:
                i -= 1
                j -= 1
    # reverse in place
    for a in range(n // 2):
        b = n - 1 - a
        t0, t1 = path[a, 0], path[a, 1]
        path[a, 0], path[a, 1] = path[b, 0], path[b, 1]
        path[b, 0], path[b, 1] = t0, t1
    return C[sz1 - 1, sz2 - 1], n


@numba.njit(parallel=True, cache=True)
def _cdist_kernel(A, B, r):  # pragma: no cover - compiled
    """DTW distances of every series of ``A`` to every series of ``B``."""
    na, nb, sz = A.shape[0], B.shape[0], B.shape[1]
    out = np.empty((na, nb))
    tail = np.zeros(A.shape[1] + 1)
    for p in prange(na * nb):
        i, j = p // nb, p % nb
        prev = np.empty(sz + 2)
        cur = np.empty(sz + 2)
        out[i, j] = math.sqrt(_dtw_sq(A[i], B[j], r, np.inf, tail, prev, cur))
    return out


@numba.njit(nogil=True, cache=True)
def _envelope(c, r, upper, lower):  # pragma: no cover - compiled
    """Running max and min of ``c`` over ``[j - r, j + r]`` (LB_Keogh's envelope)."""
    sz, d = c.shape
    for j in range(sz):
        lo, hi = _band(j, sz, r)
        for k in range(d):
            u, low = c[lo, k], c[lo, k]
            for t in range(lo + 1, hi + 1):
                u = max(u, c[t, k])
                low = min(low, c[t, k])
            upper[j, k], lower[j, k] = u, low


@numba.njit(parallel=True, cache=True)
def _assign_kernel(X, centres, r):  # pragma: no cover - compiled
    """Nearest centre (first on ties, as ``argmin``) and its DTW distance, pruned.

    LB_Keogh: a warping path in a band of radius ``r`` matches ``x[j]`` to
    some ``c[t]`` with ``|t - j| <= r``, so the squared DTW cost is at least
    the sum over ``j`` of the squared distance of ``x[j]`` to the envelope
    ``[L[j], U[j]]``. Centres are visited by increasing bound; a centre whose
    bound exceeds the best cost so far (plus ``PRUNE_SLACK``) is skipped with
    all after it, and a DTW is abandoned once a row's smallest cost plus the
    bound of the rows below exceeds it (Rakthanmanon et al. 2012).
    """
    n, sz, d = X.shape
    k = centres.shape[0]
    upper = np.empty((k, sz, d))
    lower = np.empty((k, sz, d))
    for c in range(k):
        _envelope(centres[c], r, upper[c], lower[c])
    labels = np.empty(n, dtype=np.int64)
    dists = np.empty(n)
    for i in prange(n):
        x = X[i]
        lb = np.zeros(k)
        # tails[c, j]: LB_Keogh of rows j.. of x against centre c.
        tails = np.zeros((k, sz + 1))
        for c in range(k):
            for j in range(sz - 1, -1, -1):
                s = 0.0
                for f in range(d):
                    v = x[j, f]
                    if v > upper[c, j, f]:
                        e = v - upper[c, j, f]
                        s += e * e
                    elif v < lower[c, j, f]:
                        e = lower[c, j, f] - v
                        s += e * e
                tails[c, j] = tails[c, j + 1] + s
            lb[c] = tails[c, 0]
        order = np.argsort(lb, kind="mergesort")
        prev = np.empty(sz + 2)
        cur = np.empty(sz + 2)
        best_sq, best_d, best_k = np.inf, np.inf, -1
        for o in range(k):
            c = order[o]
            limit = best_sq * (1.0 + PRUNE_SLACK)
            if lb[c] > limit:
                break
            cost = _dtw_sq(x, centres[c], r, limit, tails[c], prev, cur)
            if cost == np.inf:
                continue
            dist = math.sqrt(cost)
            if dist < best_d or (dist == best_d and c < best_k):
                best_sq, best_d, best_k = cost, dist, c
        labels[i], dists[i] = best_k, best_d
    return labels, dists


@numba.njit(nogil=True, cache=True)
def _pairwise_sum(a, lo, n):  # pragma: no cover - compiled
    """numpy's pairwise sum of ``a[lo:lo + n]`` (``DOUBLE_pairwise_sum``), same order."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    if n <= PAIRWISE_BLOCK:
        r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
        r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
        i = 8
        while i < n - (n % 8):
            r0 += a[lo + i]
            r1 += a[lo + i + 1]
            r2 += a[lo + i + 2]
            r3 += a[lo + i + 3]
            r4 += a[lo + i + 4]
            r5 += a[lo + i + 5]
            r6 += a[lo + i + 6]
            r7 += a[lo + i + 7]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res += a[lo + i]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise_sum(a, lo, n2) + _pairwise_sum(a, lo + n2, n - n2)


@numba.njit(parallel=True, cache=True)
def _dba_kernel(Xc, bary, r, max_iter, tol, n_chunks):  # pragma: no cover - compiled
    """tslearn's ``dtw_barycenter_averaging_petitjean`` for univariate members ``Xc``.

    Each iteration aligns every member to the barycentre (in parallel), sums
    the squared costs in member order, and sets ``bary[t]`` to the mean of the
    member values aligned to ``t``, gathered in tslearn's order (member, then
    path) and summed in numpy's pairwise order, as ``np.average`` does. Stops
    as tslearn does; returns the barycentre and whether the cost increased.
    """
    m, sz = Xc.shape[0], Xc.shape[1]
    bsz = bary.shape[0]
    bary = bary.copy()
    maxlen = sz + bsz
    paths = np.empty((m, maxlen, 2), dtype=np.int64)
    lengths = np.empty(m, dtype=np.int64)
    costs = np.empty(m)
    cost_prev = np.inf
    increased = False
    # One cost matrix per chunk of members, reused: a fresh one per path costs
    # a page fault per row touched, more than the band's arithmetic.
    chunks = min(m, n_chunks)
    scratch = np.empty((chunks, sz, bsz))
    for _ in range(max_iter):
        for t in prange(chunks):
            C = scratch[t]
            for i in range(t * m // chunks, (t + 1) * m // chunks):
                cost, n = _dtw_path(Xc[i], bary, r, C, paths[i])
                costs[i] = math.sqrt(cost)
                lengths[i] = n
        cost = 0.0
        for i in range(m):
            cost += costs[i] * costs[i]
        cost /= m
        counts = np.zeros(bsz + 1, dtype=np.int64)
        for i in range(m):
            for p in range(lengths[i]):
                counts[paths[i, p, 1] + 1] += 1
        starts = np.cumsum(counts)
        fill = starts[:-1].copy()
        values = np.empty(starts[-1])
        for i in range(m):
            for p in range(lengths[i]):
                t = paths[i, p, 1]
                values[fill[t]] = Xc[i, paths[i, p, 0], 0]
                fill[t] += 1
        for t in range(bsz):
            cnt = starts[t + 1] - starts[t]
            bary[t, 0] = _pairwise_sum(values, starts[t], cnt) / cnt
        if abs(cost_prev - cost) < tol:
            break
        if cost_prev < cost:
            increased = True
            break
        cost_prev = cost
    return bary, increased


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------
def _radius(sz: int, radius: int | None) -> int:
    """Band radius for the kernels: ``None`` (no band) becomes the full width."""
    return sz if radius is None else max(0, min(int(radius), sz))


def dtw_band_distances(A: np.ndarray, B: np.ndarray, radius: int | None = None) -> np.ndarray:
    """DTW distances between two sets of series, in a Sakoe-Chiba band.

    Parameters
    ----------
    A : ndarray of shape (n_a, sz, d)
        First set (tslearn's layout).
    B : ndarray of shape (n_b, sz, d)
        Second set, same ``sz`` and ``d``.
    radius : int or None
        Sakoe-Chiba radius; ``None`` is unconstrained DTW.

    Returns
    -------
    ndarray of shape (n_a, n_b)
        Equal to ``tslearn.metrics.cdist_dtw(A, B, sakoe_chiba_radius=radius)``
        (bit for bit: same recursion, same order), computed in the band only,
        on all cores.

    Raises
    ------
    ValueError
        If the arrays are not 3-D with the same length and dimension.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[0.0, 1, 2, 3]])[:, :, None]
    >>> B = np.array([[0.0, 0, 1, 2], [3.0, 3, 3, 3]])[:, :, None]
    >>> dtw_band_distances(A, B, radius=1).round(3).tolist()
    [[1.0, 3.742]]
    """
    A = np.ascontiguousarray(A, dtype=np.float64)
    B = np.ascontiguousarray(B, dtype=np.float64)
    if A.ndim != 3 or B.ndim != 3 or A.shape[1:] != B.shape[1:]:
        raise ValueError(f"A and B must be (n, sz, d) with the same sz and d; got A of shape "
                         f"{A.shape} and B of shape {B.shape}")
    return _cdist_kernel(A, B, _radius(A.shape[1], radius))


class DTWKMeans(TimeSeriesKMeans):
    """tslearn's ``TimeSeriesKMeans(metric="dtw")``, with compiled, pruned steps.

    Same parameters, same attributes and the same result as tslearn's estimator
    (see the module notes); ``fit`` is faster: the band is filled instead of
    masked, the assignment prunes with LB_Keogh and early abandoning, and DBA
    aligns the members of a cluster in parallel. ``n_jobs`` sets the threads
    (``None``: one, ``-1``: all cores).

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0, 6, 40)
    >>> X = np.array([np.sin(t + s) for s in (0, .1, .2)] + [np.cos(3 * t + s) for s in (0, .1)])
    >>> km = DTWKMeans(2, metric="dtw", max_iter=5, random_state=0,
    ...                metric_params={"sakoe_chiba_radius": 4}).fit(X[:, :, None])
    >>> km.labels_.tolist()
    [1, 1, 1, 0, 0]
    """

    def _compiled(self, X: np.ndarray) -> tuple[int, int] | None:
        """Band radii (assignment, DBA) when the compiled path applies, else None."""
        params = self._get_metric_params()
        if self.metric != "dtw" or X.ndim != 3 or X.shape[2] != 1 or np.isnan(X).any():
            return None
        if set(params) - set(BAND_KEYS):
            return None
        gc = params.get("global_constraint")
        if gc not in (None, "", "sakoe_chiba"):
            return None
        radius = params.get("sakoe_chiba_radius")
        sz = X.shape[1]
        if gc == "sakoe_chiba" and radius is None:
            radius = 1  # tslearn's default radius once the band is named
        assign = _radius(sz, radius)
        # DBA: tslearn hands the name to a function that expects a code, so a
        # named constraint is dropped there; a bare radius still applies.
        dba = _radius(sz, radius) if "global_constraint" not in params else sz
        return assign, dba

    def _threads(self) -> int:
        if self.n_jobs is None:
            return 1
        if self.n_jobs < 0:
            return numba.config.NUMBA_NUM_THREADS + 1 + self.n_jobs
        return min(int(self.n_jobs), numba.config.NUMBA_NUM_THREADS)

    def _run(self, fn, *args):
        before = numba.get_num_threads()
        numba.set_num_threads(max(1, self._threads()))
        try:
            return fn(*args)
        finally:
            numba.set_num_threads(before)

    def _fit_one_init(self, X, x_squared_norms, rs):
        bands = self._compiled(X)
        if bands is None:
            return super()._fit_one_init(X, x_squared_norms, rs)
        radius = bands[0]
        if hasattr(self.init, "__array__"):
            self.cluster_centers_ = self.init.copy()
        elif isinstance(self.init, str) and self.init == "k-means++":
            def metric_fun(x, y):
                return self._run(_cdist_kernel, np.ascontiguousarray(x, dtype=np.float64),
                                 np.ascontiguousarray(y, dtype=np.float64), radius)
            self.cluster_centers_ = _k_init_metric(X, self.n_clusters, cdist_metric=metric_fun,
                                                   random_state=rs)
        elif self.init == "random":
            indices = rs.choice(X.shape[0], self.n_clusters, replace=False)
            self.cluster_centers_ = X[indices].copy()
        else:
            raise ValueError(f"Value {self.init!r} for parameter 'init' is invalid")
        self.cluster_centers_ = _check_full_length(self.cluster_centers_)
        old_inertia = np.inf
        self._iter = 0
        for _ in range(self.max_iter):
            self._iter += 1
            self._assign(X)
            self._update_centroids(X)
            if np.abs(old_inertia - self.inertia_) < self.tol:
                break
            old_inertia = self.inertia_
        return self

    def _assign(self, X, update_class_attributes=True):
        bands = self._compiled(X)
        if bands is None:
            return super()._assign(X, update_class_attributes)
        X = np.ascontiguousarray(X, dtype=np.float64)
        centres = np.ascontiguousarray(self.cluster_centers_, dtype=np.float64)
        labels, dists = self._run(_assign_kernel, X, centres, bands[0])
        if update_class_attributes:
            self.labels_ = labels
            _check_no_empty_cluster(self.labels_, self.n_clusters)
            dist_matrix = np.zeros((len(X), self.n_clusters))
            dist_matrix[np.arange(len(X)), labels] = dists
            self.inertia_ = _compute_inertia(dist_matrix, labels, self._squared_inertia)
        return labels

    def _update_centroids(self, X):
        bands = self._compiled(X)
        if bands is None:
            return super()._update_centroids(X)
        X = np.ascontiguousarray(X, dtype=np.float64)
        for k in range(self.n_clusters):
            members = np.ascontiguousarray(X[self.labels_ == k])
            bary, increased = self._run(
                _dba_kernel, members, np.ascontiguousarray(self.cluster_centers_[k], dtype=np.float64),
                bands[1], DBA_MAX_ITER, DBA_TOL, 4 * self._threads())
            if increased:
                from sklearn.exceptions import ConvergenceWarning

                warnings.warn("DBA loss is increasing while it should not be. Stopping "
                              "optimization.", ConvergenceWarning, stacklevel=2)
            self.cluster_centers_[k] = bary

