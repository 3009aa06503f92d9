"""lab.stream.detectors: update(batch) == score_one/learn_one one by one, against references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp

from lab.models import get_detector
from lab.preprocessor import calc_batches
from lab.spot import Spot
from lab.stream import (
    DSPOTStream,
    KSStream,
    Onset,
    RetrainingDetector,
    RollingZScore,
    SPOTStream,
    get_stream_detector,
    half_space_trees,
)


def _series(n=1600, seed=0):
    rng = np.random.default_rng(seed)
    x = np.sin(np.arange(n) / 20) + rng.normal(scale=0.3, size=n)
    x[[n * 3 // 4, n * 7 // 8]] += [6.0, -6.0]
    return x


def _one_by_one(det, x):
    out = []
    for v in x:
        out.append(det.score_one(float(v)))
        det.learn_one({"value": float(v)})
    return np.array(out)


def _chunked(det, x, cuts):
    parts = np.split(x, sorted(set(cuts)))
    return np.concatenate([det.update(p) for p in parts])


FACTORIES = {
    "spot": lambda: SPOTStream(n_init=600, tail="both"),
    "dspot": lambda: DSPOTStream(depth=10, n_init=600),
    "hst": lambda: half_space_trees(seed=1),
    "ks": lambda: KSStream(window=20, baseline=40),
    "zscore": lambda: RollingZScore(window=30),
    "onset": lambda: Onset(SPOTStream(n_init=600), length=40, cap=3.0),
    "retrain": lambda: RetrainingDetector(get_detector("hbos"), {"train_min": 300,
                                                                "train_max": 600,
                                                                "train_every": 250}),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_update_equals_one_by_one(name):
    x = _series(1600 if name != "retrain" else 900)
    cuts = np.random.default_rng(3).integers(1, len(x), size=7)
    one = _one_by_one(FACTORIES[name](), x)
    batch = _chunked(FACTORIES[name](), x, cuts)
    np.testing.assert_allclose(batch, one, rtol=1e-9, atol=1e-12)
    whole = FACTORIES[name]().update(x)
    np.testing.assert_allclose(whole, one, rtol=1e-9, atol=1e-12)


def test_clone_is_fresh():
    d = RollingZScore(window=5)
    d.update(np.arange(20.0))
    c = d.clone()
    assert c.window == 5 and len(c._last) == 0


def test_spot_stream_alarms_are_libspots():
    x = _series(3000, seed=1)
    d = SPOTStream(n_init=1000, tail="upper")
    score = d.update(x)
    ref = Spot().fit(x[:1000]).step_batch(x[1000:])
    np.testing.assert_array_equal(score[1000:] >= 1, ref)
    assert (score[:1000] == 0).all() and ref.any()


def test_dspot_stream_alarms_are_dspots():
    from lab.spot import DSpot

    x = _series(3000, seed=2) + np.linspace(0, 20, 3000)
    score = DSPOTStream(depth=15, n_init=1000).update(x)
    ref = DSpot(depth=15).fit(x[:1000]).step_batch(x[1000:])
    np.testing.assert_array_equal(score[1000:] >= 1, ref)


def test_hst_is_rivers():
    from river import anomaly, compose, preprocessing

    x = _series(800)
    model = compose.Pipeline(preprocessing.MinMaxScaler(),
                             anomaly.HalfSpaceTrees(n_trees=10, height=8, window_size=250, seed=4))
    ref = []
    for v in x:
        ref.append(model.score_one({"value": v}))
        model.learn_one({"value": v})
    np.testing.assert_allclose(half_space_trees(seed=4).update(x), ref)


def test_ks_stream_is_scipys():
    x = _series(300)
    w, b = 15, 25
    s = KSStream(window=w, baseline=b).update(x)
    for t in (w + b - 1, 100, 299):
        ref = ks_2samp(x[t - w + 1:t + 1], x[t - w - b + 1:t - w + 1]).statistic
        assert s[t] == pytest.approx(ref)
    assert (s[:w + b - 1] == 0).all()


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 12), st.integers(1, 60))
def test_rolling_zscore_is_pandas(window, n):
    import pandas as pd

    x = pd.Series(np.random.default_rng(n).normal(size=n))
    ref = ((x - x.rolling(window).mean().shift()) / x.rolling(window).std(ddof=0).shift()).abs()
    s = RollingZScore(window=window).update(x.to_numpy())
    np.testing.assert_allclose(s[window:], ref.to_numpy()[window:], rtol=1e-8)
    assert (s[:window] == 0).all()


def test_retraining_no_look_ahead_and_schedule():
    x = _series(1000)
    sched = {"train_min": 200, "train_max": 400, "train_every": 150}
    d = RetrainingDetector(get_detector("knn"), sched)
    a = d.update(x)
    y = x.copy()
    y[700:] += 50.0                      # change the future only
    b = RetrainingDetector(get_detector("knn"), sched).update(y)
    np.testing.assert_array_equal(a[:700], b[:700])
    assert d.refits_ == len(calc_batches(200, 400, 150, 1000))
    assert (a[:200] == 0).all()


def test_bad_input():
    with pytest.raises(ValueError, match="known: dspot, hst, ks, retrain, spot, zscore"):
        get_stream_detector("nope")
    with pytest.raises(ValueError, match="n_init"):
        SPOTStream(n_init=10)
    with pytest.raises(ValueError, match="batch"):
        RollingZScore().update(np.ones((3, 2)))
    with pytest.raises(ValueError, match="model"):
        from lab.stream import RiverDetector

        RiverDetector(object())


def test_onset_is_naive():
    import pandas as pd

    s = np.random.default_rng(5).normal(size=300)
    got = Onset(RollingZScore(window=10), length=25, cap=2.5).update(s)
    raw = np.minimum(RollingZScore(window=10).update(s), 2.5)
    prev = pd.Series(raw).shift(1).rolling(25, min_periods=1).max().fillna(-np.inf).to_numpy()
    np.testing.assert_array_equal(got, np.where(raw > prev, raw, 0.0))


@given(st.lists(st.floats(-1e6, 1e6), max_size=60),  # pandas' rolling max has no inf
       st.integers(1, 30), st.sampled_from([0.5, 3.0, np.inf]))
@settings(max_examples=80, deadline=None)
def test_onset_filter_is_the_pandas_twin(values, length, cap):
    import pandas as pd

    from lab.stream import onset_filter

    raw = np.minimum(np.asarray(values, dtype=np.float64), cap)
    prev = pd.Series(raw).shift(1).rolling(length, min_periods=1).max().fillna(-np.inf).to_numpy()
    got = onset_filter(values, length, cap)
    np.testing.assert_array_equal(got, np.where(raw > prev, raw, 0.0))
    t = pd.date_range("2024-01-01", periods=len(values), freq="min")
    series = onset_filter(pd.Series(values, index=t, dtype=np.float64, name="score"), length, cap)
    assert series.index.equals(t) and series.name == "score"
    np.testing.assert_array_equal(series.to_numpy(), got)


def test_onset_filter_infinite_scores_and_empty_batches():
    from lab.stream import onset_filter

    np.testing.assert_array_equal(onset_filter([np.inf, 1.0, np.inf], length=1), [np.inf, 0.0, np.inf])
    np.testing.assert_array_equal(onset_filter([np.inf, 1.0, np.inf], length=2), [np.inf, 0.0, 0.0])
    d = Onset(RollingZScore(window=3), length=2)
    assert d.update([]).shape == (0,)
    np.testing.assert_array_equal(d.update([1.0, 2.0, 1.0, 9.0]),
                                  Onset(RollingZScore(window=3), length=2).update([1.0, 2, 1, 9]))


def test_onset_filter_names_bad_scores():
    from lab.stream import onset_filter

    with pytest.raises(ValueError, match=r"NaN at rows \[1\]"):
        onset_filter([1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match=r"one-dimensional, got shape \(2, 2\)"):
        onset_filter(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="length"):
        onset_filter([1.0], length=0)


def test_retraining_context_makes_any_detector_batch_independent():
    x = _series(700)
    sched = {"train_min": 300, "train_max": 600, "train_every": 250}

    def make():
        return RetrainingDetector(get_detector("spectral_residual"), sched, context=60)

    whole = make().update(x)
    d = make()
    parts = np.concatenate([d.update(x[i:i + 77]) for i in range(0, 700, 77)])
    np.testing.assert_array_equal(whole, parts)
