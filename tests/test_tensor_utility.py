"""lab.tensor_utility against the loops in tests/naive.py."""

from __future__ import annotations

import naive
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lab.tensor_utility import correlation_matrices, signature_matrices, sliding_windows


# ---------------------------------------------------------------- sliding_windows
@settings(max_examples=50, deadline=None)
@given(T=st.integers(1, 40), n=st.integers(1, 3), window=st.integers(1, 40),
       step=st.integers(1, 12))
def test_sliding_windows_match_loop_and_share_memory(T, n, window, step):
    window = min(window, T)
    X = np.arange(T * n, dtype=float).reshape(T, n)
    W = sliding_windows(X, window, step)
    np.testing.assert_array_equal(W, naive.sliding_windows(X, window, step))
    assert W.shape == ((T - window) // step + 1, window, n)
    assert np.shares_memory(W, X)
    assert not W.flags.writeable


def test_sliding_windows_1d_and_frame():
    x = np.arange(10)
    assert sliding_windows(x, 4, 3).tolist() == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    df = pd.DataFrame({"a": np.arange(5.0), "b": np.arange(5.0) * 2})
    np.testing.assert_array_equal(sliding_windows(df, 5)[0], df.to_numpy())


@pytest.mark.parametrize(("window", "step", "match"),
                         [(0, 1, "window"), (11, 1, "window"), (3, 0, "step")])
def test_sliding_windows_bad_input(window, step, match):
    with pytest.raises(ValueError, match=match):
        sliding_windows(np.zeros((10, 2)), window, step)
    with pytest.raises(ValueError, match="2-D"):
        sliding_windows(np.zeros((2, 2, 2)), 1)


# ---------------------------------------------------------------- signature_matrices
def test_signature_matrices_default_matches_pairwise_inner_loop(rng):
    X = rng.normal(size=(400, 6))
    M, ends = signature_matrices(X)
    ref, ref_ends = naive.signature_matrices(X)
    np.testing.assert_array_equal(ends, ref_ends)
    assert ends[0] == 60 and ends[-1] == 400
    np.testing.assert_allclose(M, ref, rtol=0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 4),
    windows=st.lists(st.integers(1, 24), min_size=1, max_size=3),
    step=st.sampled_from([1, 2, 3, 5, 6, 10, 12, 24]),
)
def test_signature_matrices_hypothesis(data, n, windows, step):
    T = data.draw(st.integers(max(windows), max(windows) + 80))
    X = data.draw(hnp.arrays(np.float64, (T, n), elements=st.floats(-10, 10)))
    M, ends = signature_matrices(X, windows=windows, step=step)
    ref, ref_ends = naive.signature_matrices_matmul(X, windows=windows, step=step)
    np.testing.assert_array_equal(ends, ref_ends)
    np.testing.assert_array_equal(ends, np.arange(max(windows), T + 1, step))
    assert M.shape == (len(ends), len(windows), n, n)
    np.testing.assert_allclose(M, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("chunk", [7, None])
def test_signature_matrices_block_path_chunks_and_unsorted_windows(rng, monkeypatch, chunk):
    # Many ends cross several chunks (and threads); unsorted windows keep the caller's order.
    if chunk is not None:
        monkeypatch.setattr("lab.tensor_utility.SIGNATURE_CHUNK_ENDS", chunk)
    X = rng.normal(size=(3000, 5))
    for windows, step in [((60, 10, 30), 10), ((20, 40), 20), ((15,), 5)]:
        M, _ = signature_matrices(X, windows=windows, step=step)
        ref, _ = naive.signature_matrices_matmul(X, windows=windows, step=step)
        np.testing.assert_allclose(M, ref, rtol=0, atol=1e-12)


def test_signature_matrices_block_sums_keep_precision_with_large_offset(rng):
    # Direct sums of block products, no differences of running sums: a large
    # mean loses nothing beyond the naive product's own rounding.
    X = 1e6 + rng.normal(size=(2000, 4))
    M, _ = signature_matrices(X)
    ref, _ = naive.signature_matrices_matmul(X)
    np.testing.assert_allclose(M, ref, rtol=1e-14, atol=0)


def test_signature_matrices_dataframe_gives_labels_of_last_row(rng):
    idx = pd.date_range("2024-01-01", periods=100, freq="min")
    df = pd.DataFrame(rng.normal(size=(100, 3)), index=idx, columns=list("abc"))
    M, ends = signature_matrices(df, windows=(10, 20), step=10)
    assert isinstance(ends, pd.DatetimeIndex)
    assert list(ends) == list(idx[np.arange(20, 101, 10) - 1])
    seg = df.loc[: ends[0]].to_numpy()[-20:]
    np.testing.assert_allclose(M[0, 1], seg.T @ seg / 20, atol=1e-12)


def test_signature_matrices_window_as_long_as_series(rng):
    X = rng.normal(size=(30, 2))
    M, ends = signature_matrices(X, windows=(30,), step=7)
    assert ends.tolist() == [30]
    np.testing.assert_allclose(M[0, 0], X.T @ X / 30, atol=1e-12)


@pytest.mark.parametrize(
    ("X", "windows", "step", "match"),
    [
        (np.zeros((50, 2)), (10, 60), 10, "at least 60 rows"),
        (np.zeros((50, 2)), (0, 10), 10, "windows"),
        (np.zeros((50, 2)), (), 10, "windows"),
        (np.zeros((50, 2)), (10,), 0, "step"),
        (np.full((50, 2), np.nan), (10,), 10, "NaN"),
        (np.zeros((5, 2, 2)), (1,), 1, "2-D"),
    ],
)
def test_signature_matrices_bad_input(X, windows, step, match):
    with pytest.raises(ValueError, match=match):
        signature_matrices(X, windows=windows, step=step)


# ---------------------------------------------------------------- correlation_matrices
@pytest.mark.parametrize("diff", [False, True])
def test_correlation_matrices_match_corrcoef_with_constant_stretches(rng, diff):
    X = rng.normal(size=(200, 4)).cumsum(axis=0) + 1e4  # trending, large offset
    X[50:120, 1] = 7.0  # a constant stretch
    X[:, 3] = 0.1  # constant series: 0.1 is not exact, the window mean of it may not be
    C, ends = correlation_matrices(X, windows=(10, 30, 60), step=10, diff=diff)
    ref, ref_ends = naive.correlation_matrices(X, windows=(10, 30, 60), step=10, diff=diff)
    np.testing.assert_array_equal(ends, ref_ends)
    np.testing.assert_allclose(C, ref, rtol=0, atol=1e-9)
    assert np.isfinite(C).all() and (np.abs(C) <= 1).all()
    assert (C[..., 3, :] == 0).all()


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 3),
    windows=st.lists(st.integers(2, 15), min_size=1, max_size=3),
    step=st.integers(1, 9),
    diff=st.booleans(),
)
def test_correlation_matrices_hypothesis(data, n, windows, step, diff):
    T = data.draw(st.integers(max(windows) + 1, max(windows) + 40))
    X = data.draw(hnp.arrays(np.float64, (T, n), elements=st.sampled_from([0.0, 1.0, 2.5, -3.0])))
    C, ends = correlation_matrices(X, windows=windows, step=step, diff=diff)
    ref, ref_ends = naive.correlation_matrices(X, windows=windows, step=step, diff=diff)
    np.testing.assert_array_equal(ends, ref_ends)
    np.testing.assert_allclose(C, ref, rtol=0, atol=1e-12)


def test_correlation_matrices_dataframe_labels_with_diff(rng):
    idx = pd.date_range("2024-01-01", periods=61, freq="D")
    df = pd.DataFrame(rng.normal(size=(61, 2)), index=idx)
    _, ends = correlation_matrices(df, windows=(10, 30), step=10, diff=True)
    # 60 differences; the first window of 30 differences covers rows 0..30.
    assert list(ends) == list(idx[[30, 40, 50, 60]])


def test_correlation_matrices_bad_input():
    with pytest.raises(ValueError, match="at least 2 rows"):
        correlation_matrices(np.zeros((20, 2)), windows=(1, 5))
    with pytest.raises(ValueError, match="differences"):
        correlation_matrices(np.zeros((30, 2)), windows=(30,), diff=True)
    with pytest.raises(ValueError, match="diff"):
        correlation_matrices(np.zeros((30, 2)), windows=(5,), diff="yes")
