"""Cluster many metrics by shape with tslearn, and say which clusters to trust.

The workflow of notebook 03: clean the metrics (:func:`lab.preprocessor.clean_metrics`),
optionally difference them, smooth them (:func:`lab.signal_utility.smooth`), normalise
them (:func:`lab.preprocessor.normalize`), then cluster the series with one of tslearn's
estimators. Each cluster gets a rough quality score, the mean absolute pairwise
correlation of its members, so that a reader knows which groups hold together.

The wrapper adds nothing to tslearn and loses nothing: ``result.model`` is the fitted
tslearn estimator, and fitting the same estimator on ``result.preprocessed`` (transposed
to tslearn's ``(n_ts, sz, 1)`` layout) gives the same labels and centres.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lab._validation import _as_2d, _check_int, _check_option

__all__ = [
    "MODELS",
    "NORMS",
    "ClusterResult",
    "cluster_metrics",
    "cluster_quality",
    "cluster_silhouette",
    "plot_clusters",
    "preprocess_metrics",
]

#: The tslearn estimators behind ``model=``: euclidean k-means, DTW k-means (DBA
#: barycentres), k-Shape (shape-based distance) and kernel k-means with the global
#: alignment kernel (GAK).
MODELS = ("kmeans", "dtw", "kshape", "kernelkmeans")
#: ``norm=`` choices and the :func:`lab.preprocessor.normalize` method behind each.
NORMS = {"minmax": "minmax", "meanvar": "zscore", None: None}
#: Aggregates accepted by ``smooth_func`` (the reference workflow's four).
SMOOTH_FUNCS = ("mean", "min", "max", "sum")
#: Default Sakoe-Chiba radius for ``model="dtw"``, as a fraction of the series length.
#: Sakoe & Chiba (1978) used about 10%; Ratanamahatana & Keogh (2004) found that the best
#: warping windows on the UCR data are mostly narrower still, so the band rarely hurts
#: accuracy while it bounds the work per pair.
DTW_BAND_FRACTION = 0.1
#: Default GAK bandwidth for ``model="kernelkmeans"``: tslearn's ``"auto"`` estimate
#: (median distance times sqrt of the length, Cuturi 2011), because tslearn's own default
#: of 1.0 suits no particular scale.
GAK_SIGMA = "auto"
#: At most this many points per member line in :func:`plot_clusters` (display only).
PLOT_MAX_POINTS = 600
#: Members drawn per cluster in :func:`plot_clusters`, so that big clusters stay legible.
PLOT_MAX_MEMBERS = 10


@dataclass
class ClusterResult:
    """What :func:`cluster_metrics` found.

    Attributes
    ----------
    labels : Series
        Metric name -> cluster number (0 .. n_clusters - 1), for every metric that was
        clustered, in the order of ``preprocessed``'s columns.
    quality : Series
        Cluster -> mean absolute pairwise correlation of its members (0 to 1), for the
        clusters of two or more members, best first. Singletons have no pairs and are
        listed apart in ``singletons``.
    sizes : Series
        Cluster -> number of members, for every cluster.
    singletons : Series
        Cluster -> its only metric, for the clusters of one member.
    model : tslearn estimator
        The fitted ``TimeSeriesKMeans``, ``KShape`` or ``KernelKMeans``.
    preprocessed : DataFrame of shape (n_timepoints, n_metrics)
        The frame that was clustered (cleaned, differenced, smoothed, normalised).
    dropped : DataFrame
        One row per metric left out, with ``column`` and ``reason``: the reasons of
        :func:`lab.preprocessor.clean_metrics`, or ``"constant after preprocessing"``.
    fit_seconds : float
        Wall time of the tslearn ``fit`` alone.
    """

    labels: pd.Series
    quality: pd.Series
    sizes: pd.Series
    singletons: pd.Series
    model: Any
    preprocessed: pd.DataFrame
    dropped: pd.DataFrame
    fit_seconds: float

    @property
    def n_clusters(self) -> int:
        """The number of clusters asked for."""
        return len(self.sizes)

    def members(self, cluster: int) -> list:
        """The metrics of one cluster, in column order.

        Raises
        ------
        ValueError
            If ``cluster`` is not a cluster number.
        """
        cluster = _check_int(cluster, "cluster", minimum=0, maximum=self.n_clusters - 1)
        return self.labels.index[self.labels.to_numpy() == cluster].tolist()

    def summary(self) -> pd.DataFrame:
        """One row per cluster: ``size`` and ``quality``, best first, singletons last.

        A singleton's quality is NaN on purpose: it has no pair to correlate.
        """
        table = pd.DataFrame({"size": self.sizes, "quality": self.quality.reindex(self.sizes.index)})
        table.index.name = "cluster"
        return table.sort_values(["quality", "size"], ascending=[False, False], na_position="last")


def preprocess_metrics(
    df: Any,
    diff: bool = False,
    smooth_n: int = 0,
    smooth_func: str = "mean",
    norm: str | None = "minmax",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean, difference, smooth and normalise metrics, as :func:`cluster_metrics` does.

    Parameters
    ----------
    df : DataFrame or ndarray of shape (n_timepoints, n_metrics)
        Raw metrics, one column per metric; gaps (NaN) and useless columns are allowed.
    diff : bool, default False
        Replace each series by its first difference (the first row is dropped).
    smooth_n : int, default 0
        Rolling window in rows; 0 or 1 means no smoothing. The first ``smooth_n - 1``
        rows, whose windows are incomplete, are dropped so that a partial ``sum`` or
        ``min`` does not show up as a ramp at the start.
    smooth_func : {"mean", "min", "max", "sum"}
        The rolling aggregate.
    norm : {"minmax", "meanvar", None}
        Scale each series to [0, 1], or to zero mean and unit variance, or leave it.

    Returns
    -------
    preprocessed : DataFrame
        Time index and metric columns; no NaN, no constant column.
    dropped : DataFrame
        ``column`` and ``reason`` of every metric left out.

    Raises
    ------
    ValueError
        On a bad option, on too few rows left after differencing and smoothing, or when
        no metric is left: all of them are all-NaN, constant, duplicates or non-numeric
        (the message says which).

    Notes
    -----
    The steps are the reference workflow's: :func:`lab.preprocessor.clean_metrics`
    (drops all-NaN, constant, duplicate and non-numeric columns, fills gaps forward then
    backward), :meth:`pandas.DataFrame.diff`, :func:`lab.signal_utility.smooth` and
    :func:`lab.preprocessor.normalize`. A series can become constant on the way (a
    counter that grows at a fixed rate, once differenced); it is then dropped with the
    reason ``"constant after preprocessing"`` and a warning, since it has no shape to
    cluster and no correlation with anything.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> df = pd.DataFrame({"a": [1.0, 2.0, np.nan, 4.0], "b": [0.0, 2.0, 4.0, 6.0],
    ...                    "flat": [3.0, 3.0, 3.0, 3.0]})
    >>> out, dropped = preprocess_metrics(df, norm="minmax")
    >>> out.round(3).to_dict("list")
    {'a': [0.0, 0.333, 0.333, 1.0], 'b': [0.0, 0.333, 0.667, 1.0]}
    >>> dropped.values.tolist()
    [['flat', 'constant']]
    """
    from lab.preprocessor import clean_metrics, normalize
    from lab.signal_utility import smooth

    if not isinstance(diff, bool | np.bool_):
        raise ValueError(f"diff must be True or False, got {diff!r}")
    smooth_n = _check_int(smooth_n, "smooth_n", minimum=0)
    _check_option(smooth_func, "smooth_func", SMOOTH_FUNCS)
    _check_option(norm, "norm", tuple(NORMS))
    if not isinstance(df, pd.DataFrame):
        values, index, columns = _as_2d(df, "df", allow_nan=True)
        df = pd.DataFrame(values, index=index, columns=columns)
    n_in = df.shape[1]
    with warnings.catch_warnings():
        # clean_metrics' warning is folded into ours below, with every reason at once.
        warnings.simplefilter("ignore", UserWarning)
        cleaned, report = clean_metrics(df, warn=False)
    dropped = [tuple(row) for row in report[["column", "reason"]].itertuples(index=False)]
    if cleaned.shape[1] == 0:
        reasons = pd.Series([r for _, r in dropped]).value_counts().to_dict()
        raise ValueError(
            f"df (shape {df.shape}) has no usable metric after cleaning: all {n_in} columns "
            f"are all-NaN, constant, duplicates or non-numeric ({reasons})"
        )
    out = cleaned
    if diff:
        out = out.diff().iloc[1:]
    if smooth_n > 1:
        # min_periods=None leaves the incomplete leading windows as NaN; they go here.
        out = smooth(out, smooth_n, smooth_func, min_periods=None).iloc[smooth_n - 1:]
    if len(out) < 2:
        raise ValueError(
            f"df has {len(df)} rows; after diff={diff} and smooth_n={smooth_n}, {len(out)} "
            "row(s) are left and at least 2 are needed"
        )
    flat = np.ptp(out.to_numpy(dtype=np.float64), axis=0) == 0
    if flat.any():
        gone = out.columns[flat].tolist()
        dropped += [(c, "constant after preprocessing") for c in gone]
        if flat.all():
            raise ValueError(
                f"every metric of df (shape {df.shape}) that survived cleaning is constant "
                f"after preprocessing (diff={diff}, smooth_n={smooth_n}): {gone[:10]}"
                f"{' ...' if len(gone) > 10 else ''}"
            )
        out = out.loc[:, ~flat]
    if dropped:
        listing = "; ".join(f"{c!r} ({r})" for c, r in dropped[:20])
        warnings.warn(
            f"{len(dropped)} metric(s) left out of clustering: {listing}"
            f"{' ...' if len(dropped) > 20 else ''}",
            UserWarning,
            stacklevel=2,
        )
    if NORMS[norm] is not None:
        out, _ = normalize(out, NORMS[norm])
    return out, pd.DataFrame(dropped, columns=["column", "reason"])


def cluster_metrics(
    df: Any,
    n_clusters: int,
    model: str = "kmeans",
    diff: bool = False,
    smooth_n: int = 0,
    smooth_func: str = "mean",
    norm: str | None = "minmax",
    max_iter: int = 10,
    n_init: int = 2,
    n_jobs: int | None = None,
    random_state: int | None = 0,
    *,
    metric_params: dict | None = None,
    warm_start: bool = False,
) -> ClusterResult:
    """Group metrics by the shape of their series with a tslearn clustering model.

    Parameters
    ----------
    df : DataFrame or ndarray of shape (n_timepoints, n_metrics)
        Raw metrics, one column per metric (see :func:`preprocess_metrics`).
    n_clusters : int
        Number of clusters, from 2 to the number of usable metrics.
    model : {"kmeans", "dtw", "kshape", "kernelkmeans"}
        ``kmeans``: ``TimeSeriesKMeans(metric="euclidean")``; ``dtw``:
        ``TimeSeriesKMeans(metric="dtw")`` with DBA barycentres, run by
        :class:`lab.models.dtw_kmeans.DTWKMeans` (the same result, compiled, with
        LB_Keogh pruning); ``kshape``: ``KShape``;
        ``kernelkmeans``: ``KernelKMeans(kernel="gak")``.
    diff, smooth_n, smooth_func, norm
        Preprocessing, see :func:`preprocess_metrics`. ``kshape`` needs
        ``norm="meanvar"``: its shape-based distance assumes z-normalised series
        (Paparrizos & Gravano 2015) and tslearn does not normalise in ``fit``.
    max_iter, n_init : int
        Passed to the tslearn estimator (iterations per run, runs kept by inertia).
    n_jobs : int or None
        Passed to tslearn for the DTW and GAK distance computations (threads); ``None``
        is one job, ``-1`` all cores.
    random_state : int or None
        Seed of the estimator; a fixed seed gives the same result every time.
    metric_params : dict, optional
        For ``dtw``: tslearn's ``metric_params``; by default
        ``{"sakoe_chiba_radius": ceil(DTW_BAND_FRACTION * n_timepoints)}``, a
        Sakoe-Chiba band that tslearn applies to the assignment and to DBA (with
        ``"global_constraint": "sakoe_chiba"`` named too, tslearn 0.10 drops the
        band in DBA); pass ``{}`` for tslearn's unconstrained DTW. For ``kernelkmeans``: tslearn's ``kernel_params``; by default
        ``{"sigma": GAK_SIGMA}``. Not accepted by the other models.
    warm_start : bool, default False
        ``dtw`` only: first run euclidean k-means (same ``max_iter``, ``n_init`` and
        ``random_state``), then run DTW k-means once (``n_init=1``) from its centres
        instead of tslearn's k-means++ seeding. DBA k-means then needs fewer, cheaper
        iterations; ``result.model.init`` holds the starting centres, so the direct
        tslearn call stays reproducible. ``fit_seconds`` counts both fits.

    Returns
    -------
    ClusterResult
        ``labels``, ``quality``, ``sizes``, ``singletons``, ``model``, ``preprocessed``,
        ``dropped`` and ``fit_seconds``.

    Raises
    ------
    ValueError
        On an unknown ``model`` or option, ``n_clusters`` above the number of usable
        metrics, ``kshape`` without ``norm="meanvar"``, or a frame with no usable metric
        (all-NaN or constant after cleaning).

    Notes
    -----
    The data go to tslearn as ``preprocessed.to_numpy().T[:, :, None]``: one univariate
    series per metric, the ``(n_ts, sz, d)`` layout. The quality score is
    :func:`cluster_quality`. References: k-means with DBA, Petitjean et al. (2011);
    k-Shape, Paparrizos & Gravano (SIGMOD 2015); GAK, Cuturi (ICML 2011); the band,
    Sakoe & Chiba (1978); all as implemented in tslearn (Tavenard et al., JMLR 2020).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> t = np.arange(60)
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({f"{kind}{i}": f(t / 5) + 0.1 * rng.standard_normal(60)
    ...                    for i in range(3) for kind, f in (("sin", np.sin), ("cos", np.cos))})
    >>> result = cluster_metrics(df, n_clusters=2)
    >>> sorted(sorted(result.members(k)) for k in range(2))
    [['cos0', 'cos1', 'cos2'], ['sin0', 'sin1', 'sin2']]
    >>> bool(result.quality.min() > 0.9)
    True
    """
    model = _check_option(model, "model", MODELS)
    _check_option(norm, "norm", tuple(NORMS))
    if model == "kshape" and norm != "meanvar":
        raise ValueError(
            f"model='kshape' needs z-normalised series (norm='meanvar'), got norm={norm!r}: "
            "its shape-based distance compares z-normalised shapes, and tslearn's KShape "
            "does not normalise the data it is fitted on"
        )
    n_clusters = _check_int(n_clusters, "n_clusters", minimum=2)
    max_iter = _check_int(max_iter, "max_iter", minimum=1)
    n_init = _check_int(n_init, "n_init", minimum=1)
    if n_jobs is not None:
        n_jobs = _check_int(n_jobs, "n_jobs")
    if random_state is not None:
        random_state = _check_int(random_state, "random_state", minimum=0)
    if metric_params is not None and not isinstance(metric_params, dict):
        raise ValueError(f"metric_params must be a dict or None, got {metric_params!r}")
    if metric_params is not None and model not in ("dtw", "kernelkmeans"):
        raise ValueError(f"metric_params applies to model 'dtw' or 'kernelkmeans', not {model!r}")
    if not isinstance(warm_start, bool | np.bool_):
        raise ValueError(f"warm_start must be True or False, got {warm_start!r}")
    if warm_start and model != "dtw":
        raise ValueError(f"warm_start applies to model 'dtw' only, not {model!r}")

    preprocessed, dropped = preprocess_metrics(df, diff, smooth_n, smooth_func, norm)
    n_metrics = preprocessed.shape[1]
    if n_clusters > n_metrics:
        raise ValueError(
            f"n_clusters={n_clusters} is larger than the number of usable metrics, "
            f"{n_metrics} (df had {np.shape(df)[1]} columns, {len(dropped)} left out)"
        )
    X = _to_tslearn(preprocessed)
    start = time.perf_counter()
    init = None
    if warm_start:
        init = _make_estimator("kmeans", n_clusters, len(preprocessed), max_iter, n_init,
                               None, random_state, None).fit(X).cluster_centers_
        n_init = 1  # from fixed centres, more runs would repeat the same work
    estimator = _make_estimator(model, n_clusters, len(preprocessed), max_iter, n_init,
                                n_jobs, random_state, metric_params, init)
    estimator.fit(X)
    fit_seconds = time.perf_counter() - start

    labels = pd.Series(np.asarray(estimator.labels_, dtype=np.int64),
                       index=preprocessed.columns, name="cluster")
    sizes = labels.value_counts().reindex(range(n_clusters), fill_value=0).rename("size")
    sizes.index.name = "cluster"
    one = sizes.index[sizes.to_numpy() == 1]
    singletons = pd.Series({k: labels.index[labels.to_numpy() == k][0] for k in one},
                           name="metric", dtype=object)
    singletons.index.name = "cluster"
    return ClusterResult(
        labels=labels,
        quality=cluster_quality(preprocessed, labels),
        sizes=sizes,
        singletons=singletons,
        model=estimator,
        preprocessed=preprocessed,
        dropped=dropped,
        fit_seconds=fit_seconds,
    )


def cluster_quality(df: Any, labels: Any) -> pd.Series:
    """Mean absolute pairwise correlation of the members of each cluster.

    Parameters
    ----------
    df : DataFrame or ndarray of shape (n_timepoints, n_metrics)
        The clustered series, one column per metric, no NaN, no constant column.
    labels : Series or array-like of length n_metrics
        Cluster of each column. A Series is aligned on ``df``'s columns.

    Returns
    -------
    Series
        Cluster -> quality in [0, 1], for the clusters of two or more members, sorted
        best first. 1 means every pair of members moves in lockstep (or in exact
        opposition); near 0, the members have little in common.

    Raises
    ------
    ValueError
        On NaN, a constant column (its correlation is undefined), or labels whose
        length or names do not match ``df``.

    Notes
    -----
    For a cluster of ``m`` members with Pearson correlation matrix ``C``, the score is
    ``sum_{i != j} |C_ij| / (m (m - 1))``. It is the rough quality score of the
    reference workflow: cheap, model-free, and unchanged by the per-series scaling of
    :func:`preprocess_metrics`. It sees only co-movement at lag 0, so clusters of
    shifted shapes (which DTW and k-Shape allow) score lower than they look.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> df = pd.DataFrame({"a": [1.0, 2, 3, 4], "b": [2.0, 4, 6, 8.5], "c": [1.0, -1, 1, -1]})
    >>> cluster_quality(df, pd.Series({"a": 0, "b": 0, "c": 1})).round(4).to_dict()
    {0: 0.9984}
    """
    values, _, columns = _as_2d(df, "df", min_rows=2)
    if isinstance(labels, pd.Series):
        missing = columns.difference(labels.index)
        if len(missing):
            raise ValueError(f"labels has no entry for columns {missing[:10].tolist()} of df")
        labels = labels.reindex(columns).to_numpy()
    labels = np.asarray(labels)
    if labels.shape != (values.shape[1],):
        raise ValueError(
            f"labels must have one entry per column of df ({values.shape[1]}), "
            f"got shape {labels.shape}"
        )
    flat = np.ptp(values, axis=0) == 0
    if flat.any():
        raise ValueError(
            f"df has constant columns {columns[flat][:10].tolist()}: their correlation is "
            "undefined; drop them first (preprocess_metrics does)"
        )
    scores = {}
    for k in pd.unique(labels):
        members = labels == k
        if members.sum() >= 2:
            scores[k] = _mean_abs_corr(values[:, members])
    out = pd.Series(scores, name="quality", dtype=np.float64)
    out.index.name = "cluster"
    return out.sort_values(ascending=False, kind="stable")


def _mean_abs_corr(values: np.ndarray) -> float:
    """Mean of |Pearson correlation| over the distinct pairs of columns (m >= 2)."""
    z = values - values.mean(axis=0)
    z /= np.sqrt(np.einsum("ij,ij->j", z, z))
    corr = np.abs(z.T @ z)
    m = corr.shape[0]
    return float(min(1.0, (corr.sum() - np.trace(corr)) / (m * (m - 1))))


def cluster_silhouette(result: ClusterResult, metric: str = "euclidean") -> float:
    """Silhouette score of a clustering (Rousseeuw 1987), from -1 to 1.

    Parameters
    ----------
    result : ClusterResult
    metric : {"euclidean", "model"}
        ``"euclidean"``: distances between the preprocessed series, the same geometry
        for every model, so that scores compare across models (cheap). ``"model"``: the
        model's own geometry: euclidean for ``kmeans``, DTW with the same band for
        ``dtw``, the shape-based distance ``1 - max NCC`` for ``kshape``, and the GAK
        kernel distance ``sqrt(2 - 2 k(x, y))`` for ``kernelkmeans``. The last three
        cost a full pairwise matrix of the model's distance, as much as a fit or more.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On an unknown ``metric``, or labels with fewer than 2 clusters or as many
        clusters as metrics (the silhouette is undefined then).

    Notes
    -----
    The score is ``tslearn.clustering.silhouette_score`` (itself sklearn's) on the
    distance matrix of ``metric``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> t = np.arange(40)
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({f"s{i}": np.sin(t / 4 + i % 2 * 3) + 0.3 * rng.standard_normal(40)
    ...                    for i in range(6)})
    >>> round(cluster_silhouette(cluster_metrics(df, 2)), 3)
    0.663
    """
    from tslearn.clustering import silhouette_score

    _check_option(metric, "metric", ("euclidean", "model"))
    labels = result.labels.to_numpy()
    n_labels = len(np.unique(labels))
    if not 2 <= n_labels < len(labels):
        raise ValueError(
            f"the silhouette needs 2 to n_metrics - 1 clusters; result has {n_labels} "
            f"non-empty clusters over {len(labels)} metrics"
        )
    X = _to_tslearn(result.preprocessed)
    est = result.model
    kind = _model_name(est)
    if metric == "euclidean" or kind == "kmeans":
        return float(silhouette_score(X, labels, metric="euclidean"))
    if kind == "dtw":
        return float(silhouette_score(X, labels, metric="dtw", metric_params=est.metric_params,
                                      n_jobs=est.n_jobs))
    return float(silhouette_score(_model_distances(est, X), labels, metric="precomputed"))


def _model_distances(est: Any, X: np.ndarray) -> np.ndarray:
    """Pairwise distance matrix in the geometry of a fitted KShape or GAK KernelKMeans."""
    if _model_name(est) == "kshape":
        from tslearn.metrics import cdist_normalized_cc

        norms = np.linalg.norm(X, axis=(1, 2))
        # self_similarity=True would halve the work, but tslearn 0.10 then doubles the
        # lower triangle (an aliased ``dists += dists.T`` under numba's parallel mode).
        dist = 1.0 - cdist_normalized_cc(X, X, norms, norms.copy(), False)
    else:
        from tslearn.metrics import cdist_gak

        gram = cdist_gak(X, sigma=est.sigma_gak_, n_jobs=est.n_jobs)
        dist = np.sqrt(np.clip(2.0 - 2.0 * gram, 0.0, None))
    # Rounding leaves tiny negative or non-zero self-distances that sklearn rejects.
    dist = np.clip((dist + dist.T) / 2, 0.0, None)
    np.fill_diagonal(dist, 0.0)
    return dist


def plot_clusters(result: ClusterResult, clusters: Any = None, *, ncols: int = 2,
                  max_members: int = PLOT_MAX_MEMBERS):
    """One plot per cluster: its members and their mean, titled with size and quality.

    Parameters
    ----------
    result : ClusterResult
    clusters : list of int, optional
        Clusters to draw, in this order; all of them, best first, by default. Pass
        ``[best, worst]`` with ``ncols=2`` to see them side by side.
    ncols : int, default 2
        Plots per row.
    max_members : int
        Members drawn per cluster (the first ones in column order); the mean uses all.

    Returns
    -------
    plotly Figure
        Built with :func:`lab.plots.plot_lines_grid` on the cluster means (one subplot
        per cluster, titled ``cluster k · n=size · quality q``), with the member lines
        added faintly behind each mean. Lines longer than ``PLOT_MAX_POINTS`` are
        thinned for display only (the means by plot_lines_grid's decimation, the members
        at a stride).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> t = np.arange(40)
    >>> df = pd.DataFrame({f"s{i}": np.sin(t / 4 + i % 2 * 3) + 0.01 * i for i in range(6)})
    >>> fig = plot_clusters(cluster_metrics(df, 2))
    >>> len(fig.data), [a.text.split(" · ")[1] for a in fig.layout.annotations]
    (8, ['n=3', 'n=3'])
    """
    from lab.plots import plot_lines_grid

    ncols = _check_int(ncols, "ncols", minimum=1)
    max_members = _check_int(max_members, "max_members", minimum=0)
    if clusters is None:
        clusters = result.summary().index.tolist()
    clusters = [_check_int(k, "clusters", minimum=0, maximum=result.n_clusters - 1)
                for k in clusters]
    if not clusters:
        raise ValueError("clusters is empty; give at least one cluster number")
    data = result.preprocessed
    means, titles = {}, []
    for k in clusters:
        size = int(result.sizes[k])
        quality = result.quality.get(k)
        q = "singleton" if size == 1 else ("empty" if size == 0 else f"quality {quality:.2f}")
        title = f"cluster {k} · n={size} · {q}"
        titles.append(title)
        means[title] = data[result.members(k)].mean(axis=1) if size else np.nan
    fig = plot_lines_grid(pd.DataFrame(means, index=data.index), ncols=ncols,
                          title="Clusters: members (faint) and their mean",
                          max_points=PLOT_MAX_POINTS)
    step = max(1, math.ceil(len(data) / PLOT_MAX_POINTS))
    x = data.index[::step]
    import plotly.graph_objects as go

    for pos, k in enumerate(clusters):
        for name in result.members(k)[:max_members]:
            fig.add_trace(
                go.Scatter(x=x, y=data[name].to_numpy()[::step], mode="lines", name=str(name),
                           line={"width": 1}, opacity=0.35, showlegend=False),
                row=pos // min(ncols, len(clusters)) + 1, col=pos % min(ncols, len(clusters)) + 1,
            )
    # The means were drawn first; put them back on top of the members.
    fig.data = fig.data[len(clusters):] + fig.data[:len(clusters)]
    for trace in fig.data[-len(clusters):]:
        trace.line = {"width": 2.5, "color": "black"}
    return fig


def _to_tslearn(frame: pd.DataFrame) -> np.ndarray:
    """(n_timepoints, n_metrics) frame -> tslearn's (n_ts, sz, 1) array, a writeable copy.

    pandas may hand out read-only views; numba compiles tslearn's kernels once per array
    flavour, so a read-only input would cost a second compilation of each.
    """
    return np.array(frame.to_numpy(dtype=np.float64).T, order="C")[:, :, None]


def _default_band(n_timepoints: int) -> dict:
    # The constraint inferred from the radius alone: tslearn then applies the band
    # to DBA's alignments too (a named constraint reaches only the assignment in
    # tslearn 0.10, see lab.models.dtw_kmeans).
    return {"sakoe_chiba_radius": max(1, math.ceil(DTW_BAND_FRACTION * n_timepoints))}


def _make_estimator(model: str, n_clusters: int, n_timepoints: int, max_iter: int, n_init: int,
                    n_jobs: int | None, random_state: int | None, metric_params: dict | None,
                    init: np.ndarray | None = None):
    """The unfitted tslearn estimator for ``model``, with the wrapper's defaults."""
    from tslearn.clustering import KernelKMeans, KShape, TimeSeriesKMeans

    from lab.models.dtw_kmeans import DTWKMeans

    common = {"n_clusters": n_clusters, "max_iter": max_iter, "n_init": n_init,
              "random_state": random_state}
    if model == "kmeans":
        return TimeSeriesKMeans(metric="euclidean", **common)
    if model == "dtw":
        params = _default_band(n_timepoints) if metric_params is None else dict(metric_params)
        extra = {} if init is None else {"init": init}
        return DTWKMeans(metric="dtw", metric_params=params, n_jobs=n_jobs, **extra, **common)
    if model == "kshape":
        return KShape(**common)
    params = {"sigma": GAK_SIGMA} if metric_params is None else dict(metric_params)
    return KernelKMeans(kernel="gak", kernel_params=params, n_jobs=n_jobs, **common)


def _model_name(est: Any) -> str:
    name = type(est).__name__
    if name in ("TimeSeriesKMeans", "DTWKMeans"):
        return "dtw" if est.metric == "dtw" else "kmeans"
    return {"KShape": "kshape", "KernelKMeans": "kernelkmeans"}[name]
