"""lab.models.clustering: tslearn is the oracle; the wrapper adds nothing and loses nothing."""

from __future__ import annotations

import warnings

import naive
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from tslearn.clustering import KernelKMeans, KShape, TimeSeriesKMeans
from tslearn.metrics import cdist_dtw

from lab.models.clustering import (
    ClusterResult,
    cluster_metrics,
    cluster_quality,
    cluster_silhouette,
    plot_clusters,
    preprocess_metrics,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*left out of clustering:UserWarning")


def _groups(n_per_group=5, n_groups=3, n_rows=80, noise=0.3, seed=0):
    """Metrics driven by a few latent shapes, plus a gap, a constant and an all-NaN column."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_rows)
    shapes = [np.sin(t / (3 + 2 * g)) + 0.02 * g * t * (-1) ** g for g in range(n_groups)]
    cols, truth = {}, {}
    for g in range(n_groups):
        for i in range(n_per_group):
            name = f"g{g}_m{i}"
            cols[name] = (1 + i) * shapes[g] + 5 * i + noise * rng.standard_normal(n_rows)
            truth[name] = g
    df = pd.DataFrame(cols, index=pd.date_range("2024-01-01", periods=n_rows, freq="1min"))
    df.iloc[10:14, 0] = np.nan
    df["flat"] = 3.0
    df["empty"] = np.nan
    return df, pd.Series(truth)


def _tslearn_input(frame):
    """tslearn's (n_ts, sz, 1) layout as a writeable C-ordered copy: a read-only or
    F-ordered view would make numba compile tslearn's kernels again, for nothing."""
    return np.array(frame.to_numpy().T, order="C")[:, :, None]


def _direct(model, n_clusters, **kw):
    """The tslearn call a user would write by hand, with the wrapper's settings."""
    if model == "kmeans":
        return TimeSeriesKMeans(n_clusters, metric="euclidean", **kw)
    if model == "dtw":
        return TimeSeriesKMeans(n_clusters, metric="dtw", **kw)
    if model == "kshape":
        return KShape(n_clusters, **kw)
    return KernelKMeans(n_clusters, kernel="gak", **kw)


# ---- the wrapper equals tslearn on the same preprocessed data


@pytest.mark.parametrize(
    "model, extra, norm, size",
    [
        ("kmeans", {}, "minmax", (6, 120)),
        # The wrapper's default band, ceil(0.1 * 25) = 3, as the radius alone: tslearn then
        # bands DBA too (named, "global_constraint": "sakoe_chiba", tslearn 0.10 drops it
        # there; test_dtw_kmeans_equals_tslearn_bit_for_bit covers both spellings).
        ("dtw", {"metric_params": {"sakoe_chiba_radius": 3}}, "minmax", (3, 25)),
        ("kshape", {}, "meanvar", (3, 25)),
        ("kernelkmeans", {"kernel_params": {"sigma": "auto"}}, "meanvar", (3, 25)),
    ],
)
def test_equals_tslearn_called_directly(model, extra, norm, size):
    per_group, n_rows = size
    df, _ = _groups(n_per_group=per_group, n_rows=n_rows)
    result = cluster_metrics(df, 3, model=model, norm=norm, max_iter=5, n_init=2,
                             random_state=7)
    X = _tslearn_input(result.preprocessed)
    ref = _direct(model, 3, max_iter=5, n_init=2, random_state=7, **extra).fit(X)
    np.testing.assert_array_equal(result.labels.to_numpy(), ref.labels_)
    assert result.model.inertia_ == ref.inertia_
    if model == "kernelkmeans":
        assert result.model.sigma_gak_ == ref.sigma_gak_
    else:
        np.testing.assert_array_equal(result.model.cluster_centers_, ref.cluster_centers_)
    assert result.model.get_params() == ref.get_params()


def test_dtw_metric_params_override_and_default_band():
    df, _ = _groups(n_per_group=3, n_rows=30)
    default = cluster_metrics(df, 2, model="dtw", max_iter=2, n_init=1)
    # ceil(0.1 * 30); the radius alone, so that tslearn's DBA keeps the band too
    assert default.model.metric_params == {"sakoe_chiba_radius": 3}
    free = cluster_metrics(df, 2, model="dtw", max_iter=2, n_init=1, metric_params={},
                           n_jobs=2)
    assert free.model.metric_params == {} and free.model.n_jobs == 2
    ref = TimeSeriesKMeans(2, metric="dtw", max_iter=2, n_init=1, random_state=0).fit(
        _tslearn_input(free.preprocessed))
    np.testing.assert_array_equal(free.labels.to_numpy(), ref.labels_)


def test_dtw_warm_start_is_tslearn_from_euclidean_centres():
    df, _ = _groups(n_per_group=3, n_rows=30)
    result = cluster_metrics(df, 3, model="dtw", max_iter=3, n_init=2, random_state=1,
                             warm_start=True)
    X = _tslearn_input(result.preprocessed)
    centres = TimeSeriesKMeans(3, max_iter=3, n_init=2, random_state=1).fit(X).cluster_centers_
    np.testing.assert_array_equal(result.model.init, centres)
    ref = TimeSeriesKMeans(3, metric="dtw", max_iter=3, n_init=1, random_state=1, init=centres,
                           metric_params=result.model.metric_params).fit(X)
    np.testing.assert_array_equal(result.labels.to_numpy(), ref.labels_)
    np.testing.assert_array_equal(result.model.cluster_centers_, ref.cluster_centers_)


def test_fixed_random_state_reproduces():
    df, _ = _groups()
    a = cluster_metrics(df, 3, random_state=3)
    b = cluster_metrics(df, 3, random_state=3)
    pd.testing.assert_series_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.model.cluster_centers_, b.model.cluster_centers_)


# ---- preprocessing is clean_metrics, diff, smooth and normalize, nothing else


@pytest.mark.parametrize("diff", [False, True])
@pytest.mark.parametrize("smooth_n, func", [(0, "mean"), (1, "sum"), (4, "mean"), (3, "max"),
                                            (5, "min"), (2, "sum")])
@pytest.mark.parametrize("norm", ["minmax", "meanvar", None])
def test_preprocessing_matches_pandas_and_sklearn(diff, smooth_n, func, norm):
    df, _ = _groups(n_rows=40)
    out, dropped = preprocess_metrics(df, diff=diff, smooth_n=smooth_n, smooth_func=func,
                                      norm=norm)
    ref = df.drop(columns=["flat", "empty"]).ffill().bfill()
    if diff:
        ref = ref.diff().iloc[1:]
    if smooth_n > 1:
        ref = getattr(ref.rolling(smooth_n), func)().dropna()
    if norm is not None:
        scaler = MinMaxScaler() if norm == "minmax" else StandardScaler()
        ref = pd.DataFrame(scaler.fit_transform(ref), index=ref.index, columns=ref.columns)
    pd.testing.assert_frame_equal(out, ref, check_freq=False, rtol=1e-12, atol=1e-12)
    assert dropped.set_index("column")["reason"].to_dict() == {"flat": "constant",
                                                                "empty": "all-NaN"}


def test_metrics_constant_after_preprocessing_are_dropped_and_reported():
    t = np.arange(30.0)
    df = pd.DataFrame({"ramp": 2 * t, "wave": np.sin(t), "wave2": np.cos(t) + 0.1 * t})
    with pytest.warns(UserWarning, match="ramp.*constant after preprocessing"):
        out, dropped = preprocess_metrics(df, diff=True)
    assert out.columns.tolist() == ["wave", "wave2"]
    assert dropped.values.tolist() == [["ramp", "constant after preprocessing"]]
    result = cluster_metrics(df, 2, diff=True)
    assert "ramp" not in result.labels.index
    assert result.dropped.values.tolist() == [["ramp", "constant after preprocessing"]]


def test_ndarray_input_uses_positions_as_names():
    df, truth = _groups(n_rows=60)
    arr = df.drop(columns=["flat", "empty"]).ffill().to_numpy()
    result = cluster_metrics(arr, 3)
    assert result.labels.index.tolist() == list(range(arr.shape[1]))
    named = cluster_metrics(df.drop(columns=["flat", "empty"]).ffill(), 3)
    np.testing.assert_array_equal(result.labels.to_numpy(), named.labels.to_numpy())


# ---- what the result says


def test_result_fields_are_consistent_and_find_the_groups():
    df, truth = _groups()
    result = cluster_metrics(df, 3)
    assert isinstance(result, ClusterResult)
    assert result.labels.index.tolist() == result.preprocessed.columns.tolist()
    assert result.labels.name == "cluster" and result.labels.dtype == np.int64
    assert adjusted_rand_score(truth[result.labels.index], result.labels) == 1.0
    assert result.sizes.sum() == len(result.labels) == 15
    assert result.sizes.index.tolist() == [0, 1, 2]
    assert result.singletons.empty
    assert sorted(result.quality.index) == [0, 1, 2]
    assert (result.quality.diff().dropna() <= 0).all()  # best first
    assert result.quality.between(0, 1).all() and result.quality.min() > 0.5
    assert result.fit_seconds > 0
    for k in range(3):
        assert len(result.members(k)) == result.sizes[k]
    summary = result.summary()
    assert summary.columns.tolist() == ["size", "quality"]
    assert summary.index[0] == result.quality.index[0]


def test_singletons_are_listed_apart():
    df, _ = _groups(noise=0.05)
    df["odd_one"] = np.where(np.arange(len(df)) % 7 == 0, 100.0, 0.0)
    result = cluster_metrics(df, 4, norm="meanvar")
    one = result.sizes.index[result.sizes == 1].tolist()
    assert one, "the spiky metric should end up alone"
    assert result.singletons.to_dict() == {k: result.members(k)[0] for k in one}
    assert "odd_one" in result.singletons.tolist()
    assert set(result.quality.index) == set(result.sizes.index[result.sizes >= 2])
    summary = result.summary()
    assert summary["quality"].isna().tolist()[-len(one):] == [True] * len(one)


# ---- quality score


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 8), st.integers(3, 30), st.integers(1, 3), st.integers(0, 2**31))
def test_cluster_quality_matches_pairwise_corrcoef(n_cols, n_rows, n_groups, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, n_cols)) + rng.standard_normal((n_rows, 1))
    labels = rng.integers(0, n_groups, n_cols)
    got = cluster_quality(X, labels)
    for k in np.unique(labels):
        members = labels == k
        if members.sum() < 2:
            assert k not in got.index
        else:
            assert got[k] == pytest.approx(naive.mean_abs_pairwise_corr(X[:, members]),
                                           rel=1e-10, abs=1e-12)


def test_cluster_quality_aligns_a_series_and_rejects_bad_input():
    df = pd.DataFrame({"a": [1.0, 2, 3, 5], "b": [2.0, 1, 0, -3], "c": [0.0, 1, 0, 1]})
    got = cluster_quality(df, pd.Series({"c": 1, "b": 0, "a": 0}))
    assert got.to_dict() == {0: pytest.approx(abs(np.corrcoef(df.a, df.b)[0, 1]))}
    with pytest.raises(ValueError, match="constant columns"):
        cluster_quality(df.assign(c=1.0), [0, 0, 0])
    with pytest.raises(ValueError, match="one entry per column"):
        cluster_quality(df, [0, 1])
    with pytest.raises(ValueError, match="no entry for columns"):
        cluster_quality(df, pd.Series({"a": 0, "b": 1}))


# ---- silhouette


def test_silhouette_euclidean_equals_sklearn():
    df, _ = _groups()
    result = cluster_metrics(df, 3)
    expected = silhouette_score(result.preprocessed.to_numpy().T, result.labels.to_numpy())
    assert cluster_silhouette(result) == pytest.approx(expected, rel=1e-12)
    assert cluster_silhouette(result, "model") == pytest.approx(expected, rel=1e-12)


def test_silhouette_in_the_models_own_geometry():
    df, _ = _groups(n_per_group=3, n_rows=25)
    dtw = cluster_metrics(df, 3, model="dtw", max_iter=2, n_init=1)
    X = _tslearn_input(dtw.preprocessed)
    D = cdist_dtw(X, **dtw.model.metric_params)
    assert cluster_silhouette(dtw, "model") == pytest.approx(
        silhouette_score(D, dtw.labels, metric="precomputed"), rel=1e-12)

    kshape = cluster_metrics(df, 3, model="kshape", norm="meanvar", max_iter=3, n_init=1)
    Z = kshape.preprocessed.to_numpy().T
    D = np.array([[0.0 if i == j else naive.shape_based_distance(a, b)
                   for j, b in enumerate(Z)] for i, a in enumerate(Z)])
    assert cluster_silhouette(kshape, "model") == pytest.approx(
        silhouette_score(D, kshape.labels, metric="precomputed"), rel=1e-9)


# ---- figures


def test_plot_clusters_titles_and_traces():
    df, _ = _groups()
    result = cluster_metrics(df, 3)
    fig = plot_clusters(result, max_members=2)
    titles = [a.text for a in fig.layout.annotations]
    best = result.quality.index[0]
    assert titles[0] == f"cluster {best} · n={result.sizes[best]} · quality {result.quality[best]:.2f}"
    assert len(fig.data) == 3 + 3 * 2
    assert all(tr.line.color == "black" for tr in fig.data[-3:])  # means drawn on top
    pair = plot_clusters(result, [result.quality.index[0], result.quality.index[-1]], ncols=2)
    assert len(pair.layout.annotations) == 2 and len(pair.data) == 2 + 10
    with pytest.raises(ValueError, match="clusters"):
        plot_clusters(result, [5])


# ---- bad input


def test_bad_input_is_a_clear_error():
    df, _ = _groups(n_per_group=2)
    with pytest.raises(ValueError, match=r"model must be one of .*'kmeans'.*got 'dbscan'"):
        cluster_metrics(df, 2, model="dbscan")
    with pytest.raises(ValueError, match="n_clusters=7 is larger than the number of usable "
                                         "metrics, 6"):
        cluster_metrics(df, 7)
    with pytest.raises(ValueError, match="n_clusters must be >= 2"):
        cluster_metrics(df, 1)
    with pytest.raises(ValueError, match="norm='meanvar'"):
        cluster_metrics(df, 2, model="kshape")
    with pytest.raises(ValueError, match="norm must be one of"):
        cluster_metrics(df, 2, norm="zscore")
    with pytest.raises(ValueError, match="smooth_func must be one of"):
        cluster_metrics(df, 2, smooth_n=3, smooth_func="median")
    with pytest.raises(ValueError, match="warm_start applies to model 'dtw' only"):
        cluster_metrics(df, 2, warm_start=True)
    with pytest.raises(ValueError, match="metric_params applies to"):
        cluster_metrics(df, 2, metric_params={"sigma": 1.0})
    with pytest.raises(ValueError, match="at least 2 are needed"):
        cluster_metrics(df.iloc[:5], 2, diff=True, smooth_n=4)


def test_all_nan_or_constant_frames_say_so():
    idx = pd.RangeIndex(20)
    nan = pd.DataFrame({"a": np.nan, "b": np.nan}, index=idx)
    with pytest.raises(ValueError, match=r"no usable metric after cleaning.*all-NaN"):
        cluster_metrics(nan, 2)
    flat = pd.DataFrame({"a": 1.0, "b": 2.0, "c": np.nan}, index=idx)
    with pytest.raises(ValueError, match=r"no usable metric after cleaning.*constant"):
        cluster_metrics(flat, 2)
    ramps = pd.DataFrame({"a": np.arange(20.0), "b": 3 * np.arange(20.0)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="constant after preprocessing"):
            cluster_metrics(ramps, 2, diff=True)


# ---- the bar: default server metrics, euclidean k-means, one cluster per group


def test_default_server_metrics_reach_ari_09():
    from lab.datasets import counters_to_rates, make_server_metrics

    df, truth = make_server_metrics()
    n_groups = truth["group"].nunique()
    result = cluster_metrics(counters_to_rates(df), n_groups, norm="meanvar")
    ari = adjusted_rand_score(truth["group"][result.labels.index], result.labels)
    assert ari >= 0.9, ari


# ---- DTWKMeans (lab.models.dtw_kmeans): tslearn's result, compiled and pruned


@pytest.mark.parametrize("metric_params", [
    {"global_constraint": "sakoe_chiba", "sakoe_chiba_radius": 2},  # band in assignment only
    {"sakoe_chiba_radius": 2},  # band in DBA too
    {"sakoe_chiba_radius": 0},
    {},
])
@pytest.mark.parametrize("n_jobs", [None, 2])
def test_dtw_kmeans_equals_tslearn_bit_for_bit(metric_params, n_jobs):
    from lab.models.dtw_kmeans import DTWKMeans

    rng = np.random.default_rng(3)
    t = np.linspace(0, 6, 28)
    # Overlapping groups: pruning has close calls to get right, DBA many cells per t.
    X = np.concatenate([np.sin(f * t + rng.uniform(0, 1, (7, 1))) + 0.5 * rng.normal(size=(7, 28))
                        for f in (1.0, 1.5, 2.0)])[:, :, None]
    kw = {"n_clusters": 4, "metric": "dtw", "max_iter": 6, "n_init": 2, "random_state": 5,
          "metric_params": metric_params, "n_jobs": n_jobs}
    ref = TimeSeriesKMeans(**kw).fit(X)
    fast = DTWKMeans(**kw).fit(X)
    np.testing.assert_array_equal(fast.labels_, ref.labels_)
    assert fast.inertia_ == ref.inertia_
    np.testing.assert_array_equal(fast.cluster_centers_, ref.cluster_centers_)
    assert fast.n_iter_ == ref.n_iter_


@given(n=st.integers(1, 4), sz=st.integers(1, 12), radius=st.one_of(st.none(), st.integers(0, 13)),
       seed=st.integers(0, 2**16))
@settings(max_examples=30, deadline=None)
def test_dtw_band_distances_equal_cdist_dtw(n, sz, radius, seed):
    from lab.models.dtw_kmeans import dtw_band_distances

    rng = np.random.default_rng(seed)
    A = np.round(rng.normal(size=(n, sz, 1)), 1)  # ties in the recursion
    B = np.round(rng.normal(size=(3, sz, 1)), 1)
    ref = cdist_dtw(A, B) if radius is None else cdist_dtw(A, B, sakoe_chiba_radius=radius)
    np.testing.assert_array_equal(dtw_band_distances(A, B, radius), ref)


def test_dtw_kmeans_other_settings_fall_back_to_tslearn():
    from lab.models.dtw_kmeans import DTWKMeans

    X = np.random.default_rng(0).normal(size=(8, 12, 1)).cumsum(axis=1)
    kw = {"n_clusters": 2, "metric": "dtw", "max_iter": 3, "random_state": 0,
          "metric_params": {"itakura_max_slope": 2.0}}
    np.testing.assert_array_equal(DTWKMeans(**kw).fit(X).labels_,
                                  TimeSeriesKMeans(**kw).fit(X).labels_)
    with pytest.raises(ValueError, match="A and B"):
        from lab.models.dtw_kmeans import dtw_band_distances
        dtw_band_distances(X, X[:, :5])
