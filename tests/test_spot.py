"""lab.spot, the one SPOT core: against an independent GPD fit, naive DSPOT and its own contracts."""

from __future__ import annotations

import naive
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from lab.spot import DSpot, Spot, min_fit_size, spot_threshold, tail_probability, tail_quantile

SAMPLES = {
    "normal": lambda rng, n: rng.normal(size=n),
    "student_t5": lambda rng, n: rng.standard_t(5, size=n),
    "exponential": lambda rng, n: rng.exponential(size=n),
}


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_spot_threshold_matches_an_independent_gpd_fit(kind):
    q, level = 1e-4, 0.98
    x = SAMPLES[kind](np.random.default_rng(7), 20_000)
    spot = Spot(q=q, level=level).fit(x)
    tail = spot.tail_
    t = tail["t"]
    # The same initial threshold: libspot's own quantile, which differs from
    # np.quantile's interpolation by a fraction of one order statistic.
    assert t == pytest.approx(np.quantile(x, level), rel=0.01)
    excesses = x[x > t] - t
    assert tail["n_excess"] == len(excesses) and tail["n"] == len(x)
    gamma, _, sigma = stats.genpareto.fit(excesses, floc=0)
    z_scipy = t + sigma / gamma * ((q * len(x) / len(excesses)) ** -gamma - 1)
    # Both are maximum-likelihood fits, found by different searches (libspot:
    # Grimshaw's roots; scipy: a general optimiser). Their log-likelihoods must
    # agree to 0.1 nat: the 95% likelihood-ratio region of two parameters is
    # 3.0 nats deep, so the fits are 30x closer than the data can tell apart.
    ll_lib = stats.genpareto.logpdf(excesses, tail["gamma"], 0, tail["sigma"]).sum()
    ll_scipy = stats.genpareto.logpdf(excesses, gamma, 0, sigma).sum()
    assert ll_scipy - ll_lib < 0.1
    # Parameters that close to the optimum move z_q by a few percent at most
    # (measured 0.3% to 2% on these samples), far inside z_q's sampling error.
    assert spot_threshold(x, q=q, level=level) == pytest.approx(z_scipy, rel=0.03)


def test_false_alarm_rate_on_fresh_samples_is_about_q():
    q = 1e-3
    rng = np.random.default_rng(11)
    z = spot_threshold(rng.normal(size=20_000), q=q)
    fresh = rng.normal(size=400_000)
    rate = (fresh > z).mean()
    # 400 expected alarms (sd 20) if z were exact; the tail fitted on 400
    # excesses errs by some 20% in rate, so [0.6 q, 1.6 q] leaves room for both.
    assert 0.6 * q < rate < 1.6 * q


def test_min_size_error_says_how_many():
    assert min_fit_size(0.98) == 500
    assert min_fit_size(0.9) == 100
    with pytest.raises(ValueError, match="has 499 values.*needs at least 500"):
        spot_threshold(np.arange(499.0))
    with pytest.raises(ValueError, match="has 509 values.*needs at least 510"):
        DSpot(depth=10, level=0.98).fit(np.arange(509.0))
    assert np.isfinite(spot_threshold(np.random.default_rng(0).normal(size=500)))


@pytest.mark.parametrize("discard", [True, False])
def test_step_batch_equals_repeated_step(discard):
    rng = np.random.default_rng(3)
    calib, stream = rng.standard_t(4, size=2000), rng.standard_t(4, size=3000)
    stream[::500] += 15.0
    a = Spot(q=1e-3, discard_anomalies=discard).fit(calib)
    b = Spot(q=1e-3, discard_anomalies=discard).fit(calib)
    flags = a.step_batch(stream)
    one_by_one = np.array([b.step(v) for v in stream])
    np.testing.assert_array_equal(flags, one_by_one)
    if discard:
        assert flags[::500].all()
    assert a.threshold_ == b.threshold_ and a.tail_ == b.tail_


@settings(max_examples=15, deadline=None)
@given(depth=st.integers(1, 30), seed=st.integers(0, 10_000))
def test_dspot_matches_a_naive_loop(depth, seed):
    rng = np.random.default_rng(seed)
    n = 700 + 300
    x = np.cumsum(rng.normal(size=n)) * 0.1 + rng.normal(size=n)
    x[800::37] += 6.0
    d = DSpot(depth=depth, q=1e-3, level=0.98).fit(x[:700])
    got = d.step_batch(x[700:])
    want = naive.dspot_flags(x[:700], x[700:], depth, 1e-3, 0.98)
    np.testing.assert_array_equal(got, want)


def test_dspot_follows_drift_that_spot_flags():
    rng = np.random.default_rng(5)
    drift = np.linspace(0, 40, 4000) + rng.normal(size=4000)
    # q = 1e-3: about 2 false alarms expected in 2000 values
    assert DSpot(depth=20).fit(drift[:2000]).step_batch(drift[2000:]).sum() <= 10
    assert Spot().fit(drift[:2000]).step_batch(drift[2000:]).sum() > 100


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_tail_probability_and_quantile_match_libspot(kind):
    x = SAMPLES[kind](np.random.default_rng(1), 5000)
    spot = Spot(q=1e-3).fit(x)
    tail = spot.tail_
    z = np.linspace(tail["t"], spot.threshold_ * 1.5, 50)
    want = np.array([spot.probability(v) for v in z])
    np.testing.assert_allclose(tail_probability(z, tail), want, rtol=1e-12, atol=1e-300)
    assert tail_quantile(1e-3, tail) == pytest.approx(spot.threshold_, rel=1e-12)
    assert tail_probability([spot.threshold_], tail)[0] == pytest.approx(1e-3, rel=1e-9)


def test_tail_probability_is_zero_beyond_a_bounded_tail():
    tail = {"t": 1.0, "gamma": -0.5, "sigma": 1.0, "n": 100.0, "n_excess": 10.0}
    p = tail_probability([1.0, 2.0, 3.0, 10.0], tail)  # upper end t + sigma / 0.5 = 3
    assert p[0] == pytest.approx(0.1) and 0 < p[1] < p[0] and p[2] == 0 and p[3] == 0
    exp_tail = dict(tail, gamma=0.0)
    assert tail_probability([2.0], exp_tail)[0] == pytest.approx(0.1 * np.exp(-1))
    assert tail_quantile(0.1 * np.exp(-1), exp_tail) == pytest.approx(2.0)


def test_low_tail_watches_the_minimum():
    rng = np.random.default_rng(2)
    s = Spot(low=True).fit(rng.normal(size=3000))
    assert s.threshold_ < -2
    assert s.step(-9.0) and not s.step(9.0)


def test_constant_calibration_is_a_clear_error():
    # libspot itself raises a RuntimeError ("anomaly threshold has not been initialized")
    calibration = np.full(1000, 2.5)
    with pytest.raises(ValueError, match="no spread"):
        spot_threshold(calibration, level=0.98)
    with pytest.raises(ValueError, match="no spread"):
        DSpot(depth=5).fit(calibration)


def test_unfitted_spot_raises():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        Spot().step(1.0)
    with pytest.raises(NotFittedError):
        _ = Spot().tail_


@pytest.mark.parametrize("x", [np.r_[np.zeros(990), np.ones(10)],
                               -np.random.default_rng(0).poisson(2, 3000).astype(float)])
def test_a_tail_of_equal_excesses_is_refused_not_fitted_to_garbage(x):
    with pytest.raises(ValueError, match="no spread"):
        spot_threshold(x)


def test_spot_detector_names_the_column_and_side_of_a_degenerate_tail():
    from lab.models import SPOTDetector

    counts = np.random.default_rng(0).poisson(2, (3000, 1)).astype(float)
    with pytest.raises(ValueError, match=r"column 0 \(lower tail\).*no spread"):
        SPOTDetector(tail="both").fit(counts)
    det = SPOTDetector(tail="upper").fit(counts)
    assert np.isfinite(det.score(np.array([[0.0], [20.0]])).to_numpy()).all()
