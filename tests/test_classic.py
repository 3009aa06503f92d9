"""The classic window detectors (lab.models.classic) against their libraries and naive loops.

Each detector is the library estimator on standardised, flattened windows:
the references rebuild those windows by loops (tests/naive.py), fit the same
scikit-learn or PyOD estimator on them and compare the placed scores.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from naive import naive_kth_distance, naive_place, naive_standardise, naive_windows
from pyod.models.hbos import HBOS
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor

import lab.models.classic as classic
from lab.models import get_detector
from lab.models.classic import HBOSDetector, IForestDetector, KNNDetector, LOFDetector, PCADetector


def _series(n, d, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    return np.sin(2 * np.pi * t / 17 + rng.uniform(0, 6, d)) + 0.3 * rng.standard_normal((n, d))


def _reference_windows(train, test, window):
    return (naive_windows(naive_standardise(train, train), window),
            naive_windows(naive_standardise(train, test), window))


def test_pca_window_1_is_sklearn_reconstruction_error():
    rng = np.random.default_rng(1)
    mix = rng.normal(size=(5, 5))
    train = rng.normal(size=(800, 5)) @ mix * [1, 10, 100, 0.1, 3] + 7
    test = rng.normal(size=(300, 5)) @ mix * [1, 10, 100, 0.1, 3] + 7
    det = PCADetector(window=1, n_components=2).fit(train)
    mean, std = train.mean(axis=0), train.std(axis=0)
    pca = PCA(n_components=2, svd_solver="full").fit((train - mean) / std)
    z = (test - mean) / std
    expected = ((z - pca.inverse_transform(pca.transform(z))) ** 2).sum(axis=1)
    np.testing.assert_allclose(det.score(test).to_numpy(), expected, rtol=1e-9, atol=1e-12)


def test_pca_windows_match_sklearn_on_naive_windows():
    train, test = _series(400, 2, 0), _series(150, 2, 1)
    det = PCADetector(window=9, n_components=0.8).fit(train)
    f_train, f_test = _reference_windows(train, test, 9)
    pca = PCA(n_components=0.8, svd_solver="full").fit(f_train)
    assert det.estimator_.n_components_ == pca.n_components_
    err = ((f_test - pca.inverse_transform(pca.transform(f_test))) ** 2).sum(axis=1)
    np.testing.assert_allclose(det.score(test).to_numpy(), naive_place(150, 9, err),
                               rtol=1e-8, atol=1e-10)


def test_hbos_is_pyods_decision_function_on_the_same_windows():
    train, test = _series(500, 3, 2), _series(200, 3, 3)
    test[100] += 5
    det = HBOSDetector(window=6).fit(train)
    f_train, f_test = _reference_windows(train, test, 6)
    ref = HBOS(n_bins=20, alpha=0.1, tol=0.5).fit(f_train)
    np.testing.assert_allclose(det.score(test).to_numpy(),
                               naive_place(200, 6, ref.decision_function(f_test)), rtol=1e-12)
    np.testing.assert_allclose(det.decision_scores_,
                               naive_place(500, 6, ref.decision_function(f_train)), rtol=1e-12)


def test_iforest_is_sklearns_on_the_same_windows_and_points():
    train, test = _series(600, 2, 4), _series(200, 2, 5)
    for window in (1, 5):
        det = IForestDetector(window=window, n_estimators=30, random_state=7).fit(train)
        f_train, f_test = _reference_windows(train, test, window)
        ref = IsolationForest(n_estimators=30, random_state=7).fit(f_train)
        np.testing.assert_allclose(det.score(test).to_numpy(),
                                   naive_place(200, window, -ref.score_samples(f_test)),
                                   rtol=1e-12)


def test_lof_is_sklearns_novelty_lof_with_leave_one_out_training_scores():
    train, test = _series(300, 2, 6), _series(120, 2, 7)
    det = LOFDetector(window=4, n_neighbors=10).fit(train)
    f_train, f_test = _reference_windows(train, test, 4)
    ref = LocalOutlierFactor(n_neighbors=10, novelty=True).fit(f_train)
    np.testing.assert_allclose(det.score(test).to_numpy(),
                               naive_place(120, 4, -ref.score_samples(f_test)), rtol=1e-10)
    np.testing.assert_allclose(det.decision_scores_,
                               naive_place(300, 4, -ref.negative_outlier_factor_), rtol=1e-10)


def test_knn_distance_is_the_naive_loop():
    train, test = _series(120, 2, 8), _series(60, 2, 9)
    det = KNNDetector(window=5, n_neighbors=3).fit(train)
    f_train, f_test = _reference_windows(train, test, 5)
    np.testing.assert_allclose(det.score(test).to_numpy(),
                               naive_place(60, 5, naive_kth_distance(f_train, f_test, 3)),
                               rtol=1e-10)
    # the fitted windows leave themselves out, as PyOD's fit does
    loo = naive_kth_distance(f_train, f_train, 3, leave_out=True)
    np.testing.assert_allclose(det.decision_scores_, naive_place(120, 5, loo), rtol=1e-10)
    # scored as new rows, the same windows find themselves: the k-th distance is the (k-1)-th
    again = det.score(train.copy()).to_numpy()
    np.testing.assert_allclose(again, naive_place(120, 5, naive_kth_distance(f_train, f_train, 3)),
                               rtol=1e-10)


def test_fit_subsamples_evenly_and_keeps_the_last_window(monkeypatch):
    monkeypatch.setattr(classic, "MAX_FIT_WINDOWS", 7)
    train = _series(100, 2, 10)
    det = KNNDetector(window=4, n_neighbors=2).fit(train)
    fitted = det.estimator_._fit_X
    assert fitted.shape == (7, 8)
    windows = naive_windows(naive_standardise(train, train), 4)  # 97 windows
    starts = [int(np.flatnonzero((windows == row).all(axis=1))[0]) for row in fitted]
    assert starts[0] == 0 and starts[-1] == len(windows) - 1
    gaps = np.diff(starts)
    assert gaps.max() - gaps.min() <= 1 and gaps.sum() == len(windows) - 1
    pca = PCADetector(window=4, n_components=2).fit(train)
    assert pca.estimator_.n_samples_ == 7


def test_fit_uses_every_window_below_the_cap():
    det = KNNDetector(window=4, n_neighbors=2).fit(_series(100, 1, 11))
    assert det.estimator_.n_samples_fit_ == 97


@pytest.mark.parametrize("name", ["pca", "hbos", "iforest", "lof", "knn"])
def test_scores_do_not_depend_on_chunking_or_on_other_test_rows(name, monkeypatch):
    train, test = _series(400, 3, 12), _series(300, 3, 13)
    det = get_detector(name, window=7).fit(train)
    whole = det.score(test).to_numpy()
    monkeypatch.setattr(classic, "CHUNK_BYTES", 8 * 21 * 10)  # 10 windows a chunk
    np.testing.assert_allclose(det.score(test).to_numpy(), whole, rtol=1e-12)
    # a row's score needs only its own window: no statistics of the test data
    np.testing.assert_allclose(det.score(test[100:]).to_numpy()[6:], whole[106:], rtol=1e-12)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 60), d=st.integers(2, 3), window=st.integers(1, 12),
       seed=st.integers(0, 2**16))
def test_placement_and_shape(n, d, window, seed):
    rng = np.random.default_rng(seed)
    train = rng.normal(size=(40, d)) * rng.uniform(0.1, 10, d)
    train[:, 0] = 3.0  # a constant column: centred, not divided by zero
    test = rng.normal(size=(n, d))
    det = PCADetector(window=window, n_components=1)
    if n < window:
        det.fit(train)
        with pytest.raises(ValueError, match=f"at least {window} rows"):
            det.score(test)
        return
    det.fit(train)
    index = pd.date_range("2024-01-01", periods=n, freq="s")
    s = det.score(pd.DataFrame(test, index=index))
    assert s.shape == (n,) and s.index.equals(index) and np.isfinite(s).all()
    f_train, f_test = _reference_windows(train, test, window)
    pca = PCA(n_components=1, svd_solver="full").fit(f_train)
    err = ((f_test - pca.inverse_transform(pca.transform(f_test))) ** 2).sum(axis=1)
    np.testing.assert_allclose(s.to_numpy(), naive_place(n, window, err), rtol=1e-7, atol=1e-9)
    assert (s.to_numpy()[: window - 1] == s.to_numpy()[window - 1]).all()


def test_min_rows_is_the_window():
    assert PCADetector(window=12).min_rows == 12
    assert PCADetector().min_rows == 8  # before "auto" is resolved: the shortest period
    det = PCADetector().fit(_series(600, 1, 14))
    assert det.window_ == 17 and det.min_rows == 17
    with pytest.raises(ValueError, match="at least 17 rows"):
        det.score(_series(16, 1, 15))


def test_constant_column_is_centred_only():
    train = np.c_[np.full(200, 5.0), _series(200, 1, 16)]
    det = KNNDetector(window=3, n_neighbors=2).fit(train)
    assert det.scale_[0] == 1.0 and det.mean_[0] == 5.0
    test = train.copy()
    test[100, 0] = 6.0
    s = det.score(test).to_numpy()
    assert np.isfinite(s).all() and s.argmax() in (100, 101, 102)


@pytest.mark.parametrize("params,match", [
    (dict(window=0), "window must be >= 1"),
    (dict(window="long"), "window must be an integer"),
    (dict(n_components=1.5), r"n_components as a share of variance must be in \(0, 1\)"),
    (dict(n_components=0), "n_components must be >= 1"),
])
def test_bad_pca_settings(params, match):
    with pytest.raises(ValueError, match=match):
        PCADetector(**params).fit(_series(100, 1))


@pytest.mark.parametrize("cls,params,match", [
    (HBOSDetector, dict(n_bins=1), "n_bins must be >= 2"),
    (HBOSDetector, dict(tol=2.0), r"tol must be in \(0, 1\)"),
    (IForestDetector, dict(n_estimators=0), "n_estimators must be >= 1"),
    (IForestDetector, dict(max_samples=1.5), r"max_samples as a share must be in \(0, 1\]"),
    (LOFDetector, dict(n_neighbors=0), "n_neighbors must be >= 1"),
    (KNNDetector, dict(n_neighbors=2.5), "n_neighbors must be an integer"),
])
def test_bad_settings(cls, params, match):
    with pytest.raises(ValueError, match=match):
        cls(**params).fit(_series(100, 1))


@pytest.mark.parametrize("cls", [LOFDetector, KNNDetector])
def test_neighbours_need_two_windows_and_are_clipped(cls):
    with pytest.raises(ValueError, match="needs at least 2 windows, so at least 11 rows"):
        cls(window=10).fit(_series(10, 1))
    det = cls(window=10, n_neighbors=50).fit(_series(20, 1))  # 11 windows: 10 neighbours
    assert det.estimator_.n_neighbors == 10
    assert np.isfinite(det.score(_series(30, 1)).to_numpy()).all()


def test_saved_estimator_is_skops_not_pickle(tmp_path):
    det = IForestDetector(window=3, n_estimators=5).fit(_series(200, 2))
    det.save(tmp_path / "m")
    assert (tmp_path / "m" / "estimator_.skops").is_file()
    assert not list((tmp_path / "m").glob("*.pkl"))
    back = IForestDetector.load(tmp_path / "m")
    assert back.window_ == 3
    np.testing.assert_array_equal(back.mean_, det.mean_)


def test_pca_on_constant_training_rows_scores_the_squared_deviation():
    det = PCADetector(window=5).fit(np.full(100, 2.0))
    assert det.estimator_.n_components_ == 0
    x = np.full(50, 2.0)
    x[20] = 5.0
    expected = np.zeros(50)
    expected[20:25] = 9.0
    np.testing.assert_array_equal(det.score(x).to_numpy(), expected)


@pytest.mark.parametrize("cls", [LOFDetector, KNNDetector])
def test_neighbour_tree_round_trips_through_skops(cls, tmp_path):
    x = _series(300, 2, 17)
    det = cls(window=1, n_neighbors=5).fit(x)
    assert det.estimator_._fit_method == "kd_tree"  # few features: scikit-learn builds a tree
    back = cls.load(det.save(tmp_path / "m"))
    np.testing.assert_array_equal(back.score(x).to_numpy(), det.score(x).to_numpy())
