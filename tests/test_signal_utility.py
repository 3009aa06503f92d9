"""lab.signal_utility against scipy, pandas and the loops in tests/naive.py."""

from __future__ import annotations

import warnings

import naive
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lab.signal_utility import (
    bandpass,
    ks_2samp_columns,
    robust_zscore,
    smooth,
    spectral_residual,
    spectrogram,
)

KS_METHODS = ("asymp", "exact", "auto")
KS_ALTERNATIVES = ("two-sided", "less", "greater")


def _assert_matches_scipy(a, b, method, alternative="two-sided"):
    stat, p = ks_2samp_columns(a, b, method=method, alternative=alternative)
    ref_stat, ref_p = naive.ks_2samp_columns(a, b, method=method, alternative=alternative)
    np.testing.assert_array_equal(stat, ref_stat)
    np.testing.assert_allclose(p, ref_p, rtol=1e-12, atol=0)


# ---------------------------------------------------------------- ks_2samp_columns
@pytest.mark.parametrize("method", KS_METHODS)
@pytest.mark.parametrize("alternative", KS_ALTERNATIVES)
def test_ks_continuous_matches_scipy(rng, method, alternative):
    a = rng.normal(size=(120, 25))
    b = rng.normal(size=(45, 25)) + np.linspace(0, 1, 25)
    _assert_matches_scipy(a, b, method, alternative)


@pytest.mark.parametrize("method", KS_METHODS)
@pytest.mark.parametrize("alternative", KS_ALTERNATIVES)
def test_ks_ties_discrete_constant_and_nan(rng, method, alternative):
    a = rng.integers(0, 4, size=(60, 30)).astype(float)
    b = rng.integers(0, 5, size=(24, 30)).astype(float)
    a[rng.random(a.shape) < 0.15] = np.nan
    b[rng.random(b.shape) < 0.15] = np.nan
    a[:, 0], b[:, 0] = 2.0, 2.0  # constant, equal
    a[:, 1], b[:, 1] = 1.0, 3.0  # constant, disjoint
    a[:, 2], b[:, 2] = 0.0, -0.0  # signed zeros tie
    _assert_matches_scipy(a, b, method, alternative)


@pytest.mark.parametrize("method", KS_METHODS)
def test_ks_very_different_sizes(rng, method):
    a = rng.standard_t(3, size=(3000, 6))
    b = rng.standard_t(3, size=(3, 6)) + 0.5
    _assert_matches_scipy(a, b, method)
    _assert_matches_scipy(b, a, method)


def test_ks_auto_switches_to_asymp_above_scipy_limit(rng):
    a = rng.integers(0, 50, size=(10_001, 3)).astype(float)
    b = rng.integers(0, 50, size=(700, 3)).astype(float)
    _assert_matches_scipy(a, b, "auto")


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n1=st.integers(1, 30),
    n2=st.integers(1, 30),
    ncols=st.integers(1, 4),
    method=st.sampled_from(KS_METHODS),
    alternative=st.sampled_from(KS_ALTERNATIVES),
)
def test_ks_hypothesis_small_lattice_samples(data, n1, n2, ncols, method, alternative):
    # Few distinct values make many ties and many points where the ECDF gap
    # has the same exact value but different float roundings.
    values = st.sampled_from([0.0, 1.0, 2.0, 2.5, np.nan])
    a = data.draw(hnp.arrays(np.float64, (n1, ncols), elements=values))
    b = data.draw(hnp.arrays(np.float64, (n2, ncols), elements=values))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        _assert_matches_scipy(a, b, method, alternative)


def test_ks_empty_column_is_nan_and_named_in_warning(rng):
    a = pd.DataFrame(rng.normal(size=(20, 3)), columns=["cpu", "mem", "disk"])
    b = pd.DataFrame(rng.normal(size=(10, 3)), columns=["cpu", "mem", "disk"])
    a["mem"] = np.nan
    with pytest.warns(RuntimeWarning, match="mem"):
        stat, p = ks_2samp_columns(a, b)
    assert np.isnan(stat[1]) and np.isnan(p[1])
    ref_stat, ref_p = naive.ks_2samp_columns(a.to_numpy(), b.to_numpy())
    np.testing.assert_array_equal(stat[[0, 2]], ref_stat[[0, 2]])
    np.testing.assert_allclose(p[[0, 2]], ref_p[[0, 2]], rtol=1e-12)


def test_ks_exact_fallback_warns_like_scipy():
    # gcd 1 and sizes whose lcm overflows int32 force the asymptotic formula.
    a = np.arange(50_000, dtype=float)[:, None]
    b = np.arange(49_999, dtype=float)[:, None] + 0.5
    with pytest.warns(RuntimeWarning, match="asymp"):
        stat, p = ks_2samp_columns(a, b, method="exact")
    ref_stat, ref_p = naive.ks_2samp_columns(a, b, method="exact")
    np.testing.assert_array_equal(stat, ref_stat)
    np.testing.assert_allclose(p, ref_p, rtol=1e-12)


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        (np.zeros((5, 2)), np.zeros((5, 3)), "same number of columns"),
        (np.zeros((2, 2, 2)), np.zeros((5, 2)), "2-D"),
        (np.array([["x"]], dtype=object), np.zeros((1, 1)), "numeric"),
    ],
)
def test_ks_bad_input(a, b, match):
    with pytest.raises(ValueError, match=match):
        ks_2samp_columns(a, b)


def test_ks_bad_method_and_misaligned_frames():
    with pytest.raises(ValueError, match="method"):
        ks_2samp_columns(np.zeros((3, 1)), np.zeros((3, 1)), method="fast")
    with pytest.raises(ValueError, match="different columns"):
        ks_2samp_columns(pd.DataFrame({"x": [1.0]}), pd.DataFrame({"y": [1.0]}))


def test_ks_int64_beyond_2_53_compared_exactly():
    # float64 would round 2**60 + 1 and 2**60 + 2 to 2**60 and change the result.
    big = 2**60
    a = np.array([[big, -big], [big + 1, -big - 1], [big + 2, 5]])
    b = np.array([[big + 1, -big - 1], [big + 3, 7]])
    rounded, _ = ks_2samp_columns(a.astype(float), b.astype(float))
    stat, p = ks_2samp_columns(pd.DataFrame(a), pd.DataFrame(b))
    ref_stat, ref_p = naive.ks_2samp_columns(a, b)
    np.testing.assert_array_equal(stat, ref_stat)
    np.testing.assert_allclose(p, ref_p, rtol=1e-12, atol=0)
    assert rounded[0] != stat[0]
    uint = np.array([[2**63 + 5]], dtype=np.uint64)
    with pytest.raises(ValueError, match="2\\*\\*53"):
        ks_2samp_columns(a, b.astype(float))
    with pytest.raises(ValueError, match="above 2\\*\\*63"):
        ks_2samp_columns(uint, uint)


def test_ks_many_blocks_on_threads_match_scipy(rng, monkeypatch):
    # Blocks of 3 columns spread over the worker threads; ties, NaN, a
    # smaller a than b (the other pivot) and an empty-after-NaN-free mix.
    import lab.signal_utility as su

    monkeypatch.setattr(su, "KS_BLOCK_ELEMENTS", 3 * 90)
    monkeypatch.setattr(su, "_n_workers", lambda: 2)
    a = np.round(rng.normal(size=(40, 17)), 1)
    b = np.round(rng.normal(size=(50, 17)) + 0.3, 1)
    a[rng.random(a.shape) < 0.1] = np.nan
    _assert_matches_scipy(a, b, "asymp")
    _assert_matches_scipy(b, a, "auto", "less")


# ---------------------------------------------------------------- smooth
@pytest.mark.parametrize("func", ["mean", "min", "max", "sum", "median"])
def test_smooth_matches_loop_with_nan(rng, func):
    X = rng.normal(size=(40, 3))
    X[rng.random(X.shape) < 0.1] = np.nan
    for n in (1, 4, 40):
        np.testing.assert_allclose(smooth(X, n, func), naive.rolling(X, n, func), rtol=1e-12)


def test_smooth_keeps_type_index_and_columns(rng):
    idx = pd.date_range("2024-01-01", periods=30, freq="h")
    df = pd.DataFrame(rng.normal(size=(30, 2)), index=idx, columns=["a", "b"])
    out = smooth(df, 5)
    assert out.index.equals(idx) and list(out.columns) == ["a", "b"]
    assert not out.isna().any().any()
    s = smooth(df["a"], 5, "max")
    assert isinstance(s, pd.Series) and s.name == "a" and s.index.equals(idx)
    assert smooth(df["a"].to_numpy(), 5).shape == (30,)
    strict = smooth(df, 5, min_periods=None)
    assert strict.iloc[:4].isna().all().all() and strict.iloc[4:].notna().all().all()


@settings(max_examples=40, deadline=None)
@given(X=hnp.arrays(np.float64, st.tuples(st.integers(1, 25), st.integers(1, 3)),
                    elements=st.floats(-1e3, 1e3)),
       n=st.integers(1, 30))
def test_smooth_mean_bounded_by_min_and_max(X, n):
    n = min(n, X.shape[0])
    mean, lo, hi = smooth(X, n), smooth(X, n, "min"), smooth(X, n, "max")
    assert mean.shape == X.shape
    assert np.all(lo <= mean + 1e-9) and np.all(mean <= hi + 1e-9)


@pytest.mark.parametrize(("n", "func", "match"), [(0, "mean", "n must be"),
                                                  (2.5, "mean", "n must be"),
                                                  (3, "mode", "func")])
def test_smooth_bad_input(n, func, match):
    with pytest.raises(ValueError, match=match):
        smooth(np.zeros((5, 2)), n, func)


# ---------------------------------------------------------------- robust_zscore
def test_robust_zscore_matches_scipy_mad(rng):
    from scipy import stats

    X = rng.standard_t(2, size=(300, 4))
    Z = robust_zscore(X)
    expected = (X - np.median(X, axis=0)) / stats.median_abs_deviation(X, axis=0, scale="normal")
    np.testing.assert_allclose(Z, expected, rtol=1e-12)


def test_robust_zscore_nan_zero_mad_and_constant():
    df = pd.DataFrame({
        "nan": [1.0, np.nan, 3.0, 2.0, 10.0],
        "mostly_same": [5.0, 5.0, 5.0, 5.0, 9.0],  # MAD is 0
        "constant": [2.0] * 5,
    }, index=pd.date_range("2024", periods=5, freq="D"))
    Z = robust_zscore(df)
    assert isinstance(Z, pd.DataFrame) and Z.index.equals(df.index)
    assert np.isnan(Z.loc[df.index[1], "nan"]) and Z["nan"].notna().sum() == 4
    np.testing.assert_allclose(Z["nan"].dropna(), (np.array([1, 3, 2, 10.0]) - 2.5) / (1.4826022185056018 * 1.0))
    mean_ad = np.mean(np.abs(df["mostly_same"] - 5.0))
    np.testing.assert_allclose(Z["mostly_same"], (df["mostly_same"] - 5.0) / (1.2533141373155003 * mean_ad))
    assert (Z["constant"] == 0).all()


def test_robust_zscore_all_nan_column_raises():
    with pytest.raises(ValueError, match="no value"):
        robust_zscore(np.array([[1.0, np.nan], [2.0, np.nan]]))


# ---------------------------------------------------------------- bandpass
def test_bandpass_equals_scipy_and_is_zero_phase(rng):
    from scipy import signal

    t = np.arange(4000)
    inside = np.sin(2 * np.pi * 0.05 * t + 0.3)
    X = np.column_stack([inside + np.sin(2 * np.pi * 0.4 * t) + 0.5, rng.normal(size=4000)])
    Y = bandpass(X, 0.02, 0.1)
    sos = signal.butter(4, [0.02, 0.1], btype="bandpass", fs=1.0, output="sos")
    np.testing.assert_allclose(Y, signal.sosfiltfilt(sos, X, axis=0), rtol=1e-12, atol=1e-12)
    # Zero phase: the in-band tone comes back in place, offset and out-of-band tone removed.
    np.testing.assert_allclose(Y[500:3500, 0], inside[500:3500], atol=0.01)


def test_bandpass_low_and_high_pass_keep_index():
    idx = pd.date_range("2024", periods=1000, freq="s")
    t = np.arange(1000)
    s = pd.Series(np.sin(2 * np.pi * 0.01 * t) + np.sin(2 * np.pi * 0.3 * t), index=idx, name="v")
    low = bandpass(s, None, 0.05)
    high = bandpass(s, 0.2, None)
    assert isinstance(low, pd.Series) and low.index.equals(idx) and low.name == "v"
    np.testing.assert_allclose(low.iloc[200:800], np.sin(2 * np.pi * 0.01 * t[200:800]), atol=0.01)
    np.testing.assert_allclose(high.iloc[200:800], np.sin(2 * np.pi * 0.3 * t[200:800]), atol=0.01)


@pytest.mark.parametrize(("low", "high", "match"), [(0.1, 0.6, "high must be in"),
                                                    (0.0, 0.2, "low must be in"),
                                                    (0.3, 0.2, "below high"),
                                                    (None, None, "both None")])
def test_bandpass_bad_band(low, high, match):
    with pytest.raises(ValueError, match=match):
        bandpass(np.zeros((100, 1)), low, high)


_BAD_FS = [(-1, "fs must be > 0"), (0, "fs must be > 0"), (-0.5, "fs must be > 0"),
           (True, r"fs must be a finite number, got True \(bool\)"),
           ("1", r"fs must be a finite number, got '1' \(str\)"),
           (np.inf, "fs must be a finite number, got inf"),
           (np.nan, "fs must be a finite number, got nan"), (None, "fs must be a finite")]


@pytest.mark.parametrize(("fs", "match"), _BAD_FS)
def test_bandpass_refuses_bad_fs(fs, match):
    with pytest.raises(ValueError, match=match):
        bandpass(np.zeros((100, 1)), 0.01, 0.1, fs=fs)


@pytest.mark.parametrize(("low", "high", "match"), [
    ("0.01", 0.1, r"low must be a finite number, got '0.01' \(str\)"),
    (0.01, "0.1", r"high must be a finite number, got '0.1' \(str\)"),
    (True, 0.3, r"low must be a finite number, got True \(bool\)"),
    (0.01, np.nan, "high must be a finite number, got nan"),
    (-np.inf, 0.3, "low must be a finite number, got -inf"),
    (None, [0.1], "high must be a finite number"),
])
def test_bandpass_refuses_edges_that_are_not_numbers(low, high, match):
    with pytest.raises(ValueError, match=match):
        bandpass(np.zeros((100, 1)), low, high)


def test_bandpass_takes_numpy_and_integer_numbers():
    x = np.sin(2 * np.pi * 0.05 * np.arange(400))
    ref = bandpass(x, 0.02, 0.1, fs=1.0)
    np.testing.assert_array_equal(bandpass(x, np.float32(0.02), np.float64(0.1), fs=np.int64(1)),
                                  bandpass(x, float(np.float32(0.02)), 0.1))
    np.testing.assert_array_equal(bandpass(x, 2, 10, fs=100), ref)


def test_bandpass_too_short_says_so():
    with pytest.raises(ValueError, match="too few"):
        bandpass(np.zeros(10), 0.1, 0.2)


# ---------------------------------------------------------------- spectrogram
def test_spectrogram_matches_scipy_and_labels_time(rng):
    from scipy import signal

    idx = pd.date_range("2024", periods=2048, freq="min")
    x = pd.Series(np.sin(2 * np.pi * 0.1 * np.arange(2048)) + rng.normal(size=2048) * 0.1, index=idx)
    S = spectrogram(x, nperseg=128, noverlap=64)
    f, t, sxx = signal.spectrogram(x.to_numpy(), fs=1.0, nperseg=128, noverlap=64)
    np.testing.assert_allclose(S.to_numpy(), sxx, rtol=1e-12)
    np.testing.assert_array_equal(S.index, f)
    assert list(S.columns) == list(idx[np.round(t).astype(int)])
    assert abs(S.mean(axis=1).idxmax() - 0.1) < 1 / 128


def test_spectrogram_bad_input():
    with pytest.raises(ValueError, match="one series"):
        spectrogram(np.zeros((100, 2)))
    with pytest.raises(ValueError, match="nperseg"):
        spectrogram(np.zeros(100), nperseg=200)


@pytest.mark.parametrize(("fs", "match"), _BAD_FS)
def test_spectrogram_refuses_bad_fs(fs, match):
    # fs=-1 gave negative frequencies
    with pytest.raises(ValueError, match=match):
        spectrogram(np.sin(np.arange(256.0)), fs=fs, nperseg=64)


def test_spectrogram_frequencies_scale_with_fs():
    x = np.sin(2 * np.pi * 0.125 * np.arange(1024))
    S = spectrogram(x, fs=8, nperseg=64)
    assert float(S.mean(axis=1).idxmax()) == 1.0 and S.index.min() == 0.0
    assert S.index.max() == 4.0 and (np.diff(S.columns) > 0).all()


# ---------------------------------------------------------------- spectral_residual
@pytest.mark.parametrize("n", [12, 101, 500])
def test_spectral_residual_matches_loop(rng, n):
    x = np.sin(np.arange(n) / 4.0) + rng.normal(size=n) * 0.1
    x[n // 2] += 4.0
    sal, score = naive.spectral_residual(x)
    np.testing.assert_allclose(spectral_residual(x), sal, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(spectral_residual(x, output="score"), score, rtol=1e-9, atol=1e-12)


def test_spectral_residual_columns_are_independent_and_spike_is_salient(rng):
    idx = pd.date_range("2024", periods=300, freq="h")
    X = pd.DataFrame({"a": np.sin(np.arange(300) / 6.0), "b": rng.normal(size=300) * 0.1}, index=idx)
    X.iloc[210, 0] += 5.0
    X.iloc[90, 1] += 5.0
    S = spectral_residual(X, mag_window=5, score_window=21)
    assert isinstance(S, pd.DataFrame) and S.index.equals(idx)
    assert S["a"].idxmax() == idx[210] and S["b"].idxmax() == idx[90]
    for col in X:
        np.testing.assert_allclose(S[col], spectral_residual(X[col], mag_window=5, score_window=21))
    constant = spectral_residual(np.ones(50))  # every amplitude but the mean is ~0
    assert np.isfinite(constant).all()


def test_spectral_residual_bad_input():
    with pytest.raises(ValueError, match="rows"):
        spectral_residual(np.zeros(5))
    with pytest.raises(ValueError, match="mag_window"):
        spectral_residual(np.zeros(50), mag_window=0)
    with pytest.raises(ValueError, match="NaN"):
        spectral_residual(np.array([1.0, np.nan] * 10))


@pytest.mark.parametrize("n", [141, 160, 1600, 2000, 2001, 4000])
def test_vectorised_kstwo_sf_matches_scipy_in_every_branch(n):
    from scipy.stats import kstwo

    from lab.signal_utility import _kstwo_sf

    # Ruben-Gambino edges, the Durbin-matrix region, Pelz-Good, the Smirnov
    # tail (n d^2 >= 2.2, in float64 up to n = 2000, long double above), x >= 0.5.
    z = np.array([0.3, 0.6, 0.9, 1.2, 1.45, 1.5, 2.0, 3.0, 5.0, 8.0, 12.0, 18.0])
    d = np.concatenate([z / np.sqrt(n), [0.4 / n, 0.7 / n, 1.5 / n, 0.55, 0.999]])
    d = d[d < 1]
    expected = kstwo.sf(d, n)
    got = _kstwo_sf(d, np.full(d.shape, float(n)))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
