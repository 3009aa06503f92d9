"""The signal detectors (matrix profile, spectral residual, KS window, SPOT) against references.

Matrix profile: a naive z-normalised distance loop (tests/naive.py). Spectral
residual: lab.signal_utility.spectral_residual. KS window: scipy.stats.ks_2samp
in a loop. SPOT: lab.spot's tail, and a score monotone in the value.
"""

from __future__ import annotations

import math

import naive
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.models import get_detector
from lab.models._base import MAX_FIT_WINDOWS
from lab.models.ks_window import KSWindowDetector
from lab.models.matrix_profile import MP_BLOCKS, MatrixProfileDetector
from lab.models.spectral import SpectralResidualDetector, saliency_ratio
from lab.models.spot_detector import SPOTDetector
from lab.signal_utility import spectral_residual
from lab.spot import Spot, tail_probability


def _sine(n, seed, cols=1, period=25):
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    return np.sin(2 * np.pi * t / period + rng.uniform(0, 6, cols)) + 0.3 * rng.normal(size=(n, cols))


# ---------------------------------------------------------------- matrix profile
def test_matrix_profile_equals_a_naive_join():
    train, test = _sine(120, 0, 2), _sine(70, 1, 2)
    test[30:45, 1] = 0.5  # a constant stretch: stumpy's constant-window convention
    m = 12
    det = MatrixProfileDetector(window=m).fit(train)
    want = np.maximum(naive.mp_ab_join(test[:, 0], train[:, 0], m),
                      naive.mp_ab_join(test[:, 1], train[:, 1], m))
    got = det.score(test).to_numpy()
    np.testing.assert_allclose(got[m - 1:], want, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(got[: m - 1], got[m - 1])  # first score before the first window
    train_want = np.maximum(naive.mp_self_join(train[:, 0], m), naive.mp_self_join(train[:, 1], m))
    np.testing.assert_allclose(det.decision_scores_[m - 1:], train_want, rtol=1e-6, atol=1e-6)
    assert (det.decision_scores_ > 0).all()  # no training window is its own neighbour


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(3, 8), n_train=st.integers(16, 50), n_test=st.integers(8, 40),
       seed=st.integers(0, 1000), flat=st.booleans())
def test_matrix_profile_matches_the_naive_join_on_random_shapes(m, n_train, n_test, seed, flat):
    rng = np.random.default_rng(seed)
    train, test = rng.normal(size=(n_train, 1)), rng.normal(size=(n_test, 1))
    if flat:
        test[: n_test // 2] = 1.0  # constant windows
    det = MatrixProfileDetector(window=m).fit(train)
    got = det.score(test).to_numpy()
    want = naive.mp_ab_join(test[:, 0], train[:, 0], m)
    np.testing.assert_allclose(got[m - 1:], want, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(got[: m - 1], got[m - 1])


def test_matrix_profile_constant_input_stays_finite():
    m = 10
    det = MatrixProfileDetector(window=m).fit(np.r_[np.zeros(40), _sine(60, 2)[:, 0]])
    s = det.score(np.r_[np.full(30, 3.0), np.ones(30)]).to_numpy()
    assert np.isfinite(s).all() and s.max() <= 2 * math.sqrt(m)
    # constant windows match the training's constant windows exactly
    np.testing.assert_allclose(s[m - 1 : 30], 0.0, atol=1e-6)
    np.testing.assert_allclose(s[30 + m - 1 :], 0.0, atol=1e-6)
    assert s[30 : 30 + m - 1].min() > 0.5  # windows across the step are not constant
    flat = MatrixProfileDetector(window=m).fit(np.full((50, 1), 2.0))
    s = flat.score(_sine(40, 3)).to_numpy()
    np.testing.assert_allclose(s, math.sqrt(m))
    assert np.isfinite(flat.decision_scores_).all()


def test_matrix_profile_repeated_anomaly_is_found():
    """The reason for the AB-join: a self-join would pair the two copies at distance ~0."""
    train = _sine(1000, 4)
    test = _sine(600, 5)
    burst = np.sin(2 * np.pi * np.arange(50) / 7)[:, None]
    test[100:150], test[400:450] = burst, burst
    s = MatrixProfileDetector(window=25).fit(train).score(test).to_numpy()
    top = np.quantile(s, 0.95)
    assert s[100:175].max() > top and s[400:475].max() > top


def test_matrix_profile_long_training_keeps_evenly_spaced_blocks():
    m = 20
    n = MAX_FIT_WINDOWS + 5000
    x = _sine(n, 6)
    det = MatrixProfileDetector(window=m).fit(x)
    ref = det.reference_[:, 0]
    assert np.isnan(ref).sum() == MP_BLOCKS - 1
    windows_kept = len(ref) - (MP_BLOCKS - 1) - MP_BLOCKS * (m - 1)
    assert windows_kept == MAX_FIT_WINDOWS
    # each block is a contiguous stretch of the training rows, the first at row 0
    block = MAX_FIT_WINDOWS // MP_BLOCKS + m - 1
    np.testing.assert_array_equal(ref[:block], x[:block, 0])
    np.testing.assert_array_equal(ref[-block:], x[-block:, 0])
    assert np.isfinite(det.decision_scores_).all() and det.decision_scores_.min() > 0


def test_matrix_profile_auto_window_is_the_period():
    det = MatrixProfileDetector().fit(_sine(2000, 7, period=40))
    assert det.window_ == 40 and det.min_rows == 40


# ---------------------------------------------------------------- spectral residual
def test_saliency_ratio_is_microsofts_score_unclipped():
    x = _sine(500, 8)
    x[300] += 4
    want = spectral_residual(x, output="score")
    np.testing.assert_allclose(np.clip(saliency_ratio(x) / 10, 0, 1), want, rtol=1e-9, atol=1e-12)


def test_spectral_residual_detector_equals_signal_utility_on_one_column():
    train, test = _sine(800, 9), _sine(300, 10)
    test[150] += 3
    det = SpectralResidualDetector().fit(train)
    sal = spectral_residual(test)[:, 0]
    local = pd.Series(sal).rolling(40, min_periods=1).mean().to_numpy()
    ratio = np.abs(sal - local) / local
    np.testing.assert_allclose(det.score(test).to_numpy(),
                               (ratio - det.center_[0]) / det.scale_[0], rtol=1e-9)
    train_ratio = saliency_ratio(train)[:, 0]
    assert det.center_[0] == pytest.approx(np.median(train_ratio))
    assert det.scale_[0] == pytest.approx(
        1.482602218505602 * np.median(np.abs(train_ratio - np.median(train_ratio))))


def test_spectral_residual_multivariate_is_the_max_of_scaled_columns():
    train = _sine(800, 11, 3) * [1.0, 10.0, 0.1]
    test = _sine(300, 12, 3) * [1.0, 10.0, 0.1]
    test[100, 2] += 0.5  # a large spike for the small column only
    det = SpectralResidualDetector().fit(train)
    per_column = [SpectralResidualDetector().fit(train[:, [j]]).score(test[:, [j]]).to_numpy()
                  for j in range(3)]
    np.testing.assert_allclose(det.score(test).to_numpy(), np.max(per_column, axis=0))
    assert int(det.score(test).argmax()) == 100


def test_spectral_residual_score_does_not_depend_on_length():
    det = SpectralResidualDetector().fit(_sine(2000, 13))
    short, long = det.score(_sine(1000, 14)), det.score(_sine(20_000, 14))
    assert abs(np.median(short) - np.median(long)) < 0.2
    assert abs(np.median(short)) < 0.3


def test_spectral_residual_constant_column_is_finite():
    x = np.c_[np.ones(300), _sine(300, 15)[:, 0]]
    det = SpectralResidualDetector().fit(x)
    assert np.isfinite(det.score(x).to_numpy()).all()


# ---------------------------------------------------------------- KS window
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(18, 90), window=st.integers(1, 8), baseline=st.integers(1, 10),
       stride=st.integers(1, 7), cols=st.integers(1, 3), seed=st.integers(0, 1000),
       ties=st.booleans())
def test_ks_window_equals_a_scipy_loop(n, window, baseline, stride, cols, seed, ties):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, cols))
    if ties:
        x = np.round(x)  # many ties: ECDF steps shared by both samples
    det = KSWindowDetector(window=window, baseline=baseline, stride=stride).fit(x)
    got = det.score(x).to_numpy()
    want = naive.ks_window_scores(x, window, baseline, stride)
    np.testing.assert_array_equal(got, want)


def test_ks_window_auto_and_defaults():
    det = KSWindowDetector().fit(_sine(2000, 16, period=40))
    assert (det.window_, det.baseline_, det.stride_, det.min_rows) == (40, 80, 4, 120)
    short = KSWindowDetector().fit(np.random.default_rng(0).normal(size=(30, 1)))
    assert short.window_ + short.baseline_ <= 30
    with pytest.raises(ValueError, match="stride must be >= 1"):
        KSWindowDetector(stride=0).fit(np.zeros((50, 1)))


def test_ks_window_sees_a_variance_change_a_point_detector_misses():
    rng = np.random.default_rng(17)
    x = rng.normal(size=2000)
    x[1200:1400] *= 0.1  # quieter, every value inside the normal range
    s = KSWindowDetector(window=50).fit(x[:1000]).score(x).to_numpy()
    assert 1200 <= int(s.argmax()) < 1450


# ---------------------------------------------------------------- SPOT
@settings(max_examples=20, deadline=None)
@given(tail=st.sampled_from(["upper", "lower", "both"]),
       values=st.lists(st.floats(-50, 50), min_size=2, max_size=60))
def test_spot_score_is_monotone_in_the_value(tail, values):
    det = _fitted_spot(tail)
    v = np.sort(np.asarray(values))
    s = det.score(v).to_numpy()
    if tail == "upper":
        assert (np.diff(s) >= 0).all()
    elif tail == "lower":
        assert (np.diff(s) <= 0).all()
    else:
        # the larger of a rising and a falling score: down to one lowest point, then up
        low = int(np.argmin(s))
        assert (np.diff(s[: low + 1]) <= 0).all() and (np.diff(s[low:]) >= 0).all()
    assert np.isfinite(s).all() and (s >= 0).all()


_SPOT_CACHE: dict = {}


def _fitted_spot(tail):
    if tail not in _SPOT_CACHE:
        x = np.random.default_rng(18).standard_t(5, size=(3000, 1))
        _SPOT_CACHE[tail] = SPOTDetector(tail=tail).fit(x)
    return _SPOT_CACHE[tail]


def test_spot_score_is_the_tail_probability_and_native_threshold_is_z_q():
    x = np.random.default_rng(19).standard_t(5, size=3000)
    det = SPOTDetector(tail="upper", q=1e-3).fit(x)
    spot = Spot(q=1e-3).fit(x)
    assert det.threshold_ == pytest.approx(3.0)
    z = np.array([spot.tail_["t"] + 0.5, spot.threshold_, spot.threshold_ + 2])
    np.testing.assert_allclose(det.score(z).to_numpy(), -np.log10(tail_probability(z, spot.tail_)))
    # a value just above (below) SPOT's own threshold is (is not) an alarm
    alarms = det.predict(np.array([spot.threshold_ * 1.001, spot.threshold_ * 0.999]))
    assert alarms.tolist() == [True, False]
    # far beyond the fitted tail the score stays finite and keeps growing
    far = det.score(np.array([1e3, 1e6])).to_numpy()
    assert np.isfinite(far).all() and far[1] > far[0] > det.threshold_


def test_spot_multivariate_both_tails_is_the_max():
    rng = np.random.default_rng(20)
    train, test = rng.normal(size=(2000, 2)), rng.normal(size=(200, 2))
    test[50, 0], test[120, 1] = -7.0, 6.0
    det = SPOTDetector().fit(train)
    parts = [SPOTDetector(tail=t).fit(train[:, [j]]).score(test[:, [j]]).to_numpy()
             for j in range(2) for t in ("upper", "lower")]
    np.testing.assert_allclose(det.score(test).to_numpy(), np.max(parts, axis=0))
    assert set(np.argsort(det.score(test).to_numpy())[-2:]) == {50, 120}


def test_dspot_scores_the_residual_of_the_moving_average():
    rng = np.random.default_rng(21)
    x = np.linspace(0, 30, 4000) + rng.normal(size=4000)
    x[3000] += 8.0
    depth = 15
    det = SPOTDetector(method="dspot", depth=depth, tail="upper").fit(x[:2000])
    test = x[2000:]
    s = det.score(test).to_numpy()
    assert int(s.argmax()) == 1000
    resid = test[depth:] - np.convolve(test, np.ones(depth) / depth, "valid")[:-1]
    manual = SPOTDetector(tail="upper").fit(
        x[depth:2000] - np.convolve(x[:2000], np.ones(depth) / depth, "valid")[:-1])
    np.testing.assert_allclose(s[depth:], manual.score(resid).to_numpy(), rtol=1e-9)
    np.testing.assert_array_equal(s[:depth], s[depth])  # first rows take the first score
    # plain SPOT on the drifting values flags the whole late stretch instead
    assert SPOTDetector(tail="upper").fit(x[:2000]).predict(test).mean() > 0.5


def test_spot_fit_size_error_says_how_many_rows():
    x = np.random.default_rng(0).normal(size=(499, 1))
    with pytest.raises(ValueError, match="499 rows.*needs at least 500 rows"):
        SPOTDetector().fit(x)
    with pytest.raises(ValueError, match="needs at least 520 rows"):
        SPOTDetector(method="dspot", depth=20).fit(x)
    with pytest.raises(ValueError, match="method must be one of"):
        SPOTDetector(method="kspot").fit(x)
    with pytest.raises(ValueError, match="column 0"):
        SPOTDetector().fit(np.ones((600, 1)))
    assert len(SPOTDetector().fit(np.r_[x[:, 0], x[:100, 0]]).score(np.zeros(1))) == 1


# ---------------------------------------------------------------- all four
@pytest.mark.parametrize("name,params", [
    ("matrix_profile", {"window": 8}), ("spectral_residual", {}),
    ("ks_window", {"window": 8}), ("spot", {"method": "dspot", "depth": 4}),
])
def test_window_placement_first_score_fills_the_start(name, params):
    det = get_detector(name, **params).fit(_sine(800, 22))
    s = det.score(_sine(100, 23)).to_numpy()
    first = {"matrix_profile": 7, "spectral_residual": 0, "ks_window": 23, "spot": 4}[name]
    np.testing.assert_array_equal(s[:first], s[first])
