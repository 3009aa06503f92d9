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

from lab.signal_utility import ks_2samp_columns, smooth

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
