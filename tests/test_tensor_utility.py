"""lab.tensor_utility against the loops in tests/naive.py."""

from __future__ import annotations

import math
import threading
import time
import warnings

import naive
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lab.tensor_utility as tu
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


@pytest.mark.parametrize(("part", "threads"), [(7, 3), (1, 2), (None, None)])
def test_signature_matrices_parts_threads_and_unsorted_windows(rng, monkeypatch, part, threads):
    # Many ends cross several parts taken by several threads; unsorted
    # windows keep the caller's order.
    if part is not None:
        monkeypatch.setattr(tu, "SIGNATURE_PART_ENDS", part)
        monkeypatch.setattr(tu, "SIGNATURE_MAX_OVERLAP", 100.0)  # parts that short
        monkeypatch.setattr(tu, "SIGNATURE_THREADS", threads)
    X = rng.normal(size=(3000, 5))
    for windows, step in [((60, 10, 30), 10), ((20, 40), 20), ((15,), 5), ((9, 21), 3)]:
        M, _ = signature_matrices(X, windows=windows, step=step)
        ref, _ = naive.signature_matrices_matmul(X, windows=windows, step=step)
        np.testing.assert_allclose(M, ref, rtol=0, atol=1e-12)


def test_signature_matrices_spreads_parts_over_threads(rng, monkeypatch):
    seen = []
    real = tu._signature_ring_kernel

    def spy(*args):
        seen.append((threading.get_ident(), args[-4]))  # (thread, first end of the part)
        time.sleep(0.01)  # so that no single thread takes every part first
        return real(*args)

    monkeypatch.setattr(tu, "_signature_ring_kernel", spy)
    monkeypatch.setattr(tu, "SIGNATURE_PART_ENDS", 10)
    monkeypatch.setattr(tu, "SIGNATURE_MAX_OVERLAP", 100.0)
    monkeypatch.setattr(tu, "SIGNATURE_THREADS", 2)
    X = rng.normal(size=(60 + 10 * 99, 3))
    M, ends = signature_matrices(X)
    assert sorted(lo for _, lo in seen) == list(range(0, 100, 10))  # each part once
    assert len({thread for thread, _ in seen}) == 2
    assert threading.get_ident() in {thread for thread, _ in seen}  # the caller works too
    ref, _ = naive.signature_matrices_matmul(X)
    np.testing.assert_allclose(M, ref, rtol=0, atol=1e-12)


def test_signature_matrices_reraises_a_thread_error_and_stops_the_others(rng, monkeypatch):
    calls = []

    def broken(*args):
        calls.append(args[-4])
        if threading.current_thread() is not threading.main_thread():
            raise MemoryError("no room for the part")
        time.sleep(0.05)

    monkeypatch.setattr(tu, "_signature_ring_kernel", broken)
    monkeypatch.setattr(tu, "SIGNATURE_PART_ENDS", 10)
    monkeypatch.setattr(tu, "SIGNATURE_THREADS", 2)
    X = rng.normal(size=(60 + 10 * 199, 3))
    with pytest.raises(MemoryError, match="no room"):
        signature_matrices(X)
    assert len(calls) < 20  # the caller stopped taking parts after the failure


@pytest.fixture
def ring_parts(monkeypatch):
    """The ``(lo, hi)`` ends of each part the ring kernel computes, in call order."""
    parts = []
    real = tu._signature_ring_kernel
    monkeypatch.setattr(tu, "_signature_ring_kernel",
                        lambda *args: parts.append(args[-4:-2]) or real(*args))
    return parts


def test_signature_matrices_long_windows_of_many_blocks(rng, ring_parts):
    # 1001 blocks of 10 rows: the addition chain has a dozen steps, not a
    # thousand (a chain of +1 steps also overflowed Python's recursion).
    X = rng.normal(size=(10_200, 3))
    M, _ = signature_matrices(X, windows=(10, 10_010), step=10)
    ref, _ = naive.signature_matrices_matmul(X, windows=(10, 10_010), step=10)
    np.testing.assert_allclose(M, ref, rtol=1e-12, atol=1e-12)
    assert ring_parts == [(0, 20)]  # through the ring kernel, in one part
    assert len(tu._addition_chain([1, 1001])) <= 2 * 10


def test_signature_matrices_parts_grow_with_the_overlap(rng, monkeypatch, ring_parts):
    # Each part recomputes longest - stride = 19 blocks: parts of 4 ends
    # would recompute 5 times what they keep, so they grow to 8 * 19 = 152.
    monkeypatch.setattr(tu, "SIGNATURE_PART_ENDS", 4)
    X = rng.normal(size=(200 + 10 * 400, 2))
    M, _ = signature_matrices(X, windows=(10, 200), step=10)
    assert sorted(ring_parts) == [(0, 152), (152, 304), (304, 401)]
    ref, _ = naive.signature_matrices_matmul(X, windows=(10, 200), step=10)
    np.testing.assert_allclose(M, ref, rtol=1e-12, atol=1e-12)


def test_signature_matrices_stops_started_threads_when_one_cannot_start(rng, monkeypatch):
    calls = []

    def slow(*args):
        calls.append(args[-4])
        time.sleep(0.01)

    class OneStart(threading.Thread):
        started = 0

        def start(self):
            OneStart.started += 1
            if OneStart.started > 1:
                raise RuntimeError("can't start new thread")
            super().start()

    monkeypatch.setattr(tu, "_signature_ring_kernel", slow)
    monkeypatch.setattr(tu.threading, "Thread", OneStart)
    monkeypatch.setattr(tu, "SIGNATURE_PART_ENDS", 10)
    monkeypatch.setattr(tu, "SIGNATURE_THREADS", 3)
    X = rng.normal(size=(60 + 10 * 199, 2))
    with pytest.raises(RuntimeError, match="start new thread"):
        signature_matrices(X)
    done = len(calls)
    time.sleep(0.05)
    assert done <= 2 and len(calls) == done  # the started thread stopped and was joined


@settings(max_examples=200, deadline=None)
@given(targets=st.lists(st.integers(1, 5000), min_size=1, max_size=4))
def test_addition_chain_builds_every_target_from_built_sums(targets):
    chain = tu._addition_chain(targets)
    have = {1}
    for m, a, b in chain:
        assert m == a + b and a in have and b in have and m not in have
        have.add(m)
    assert set(targets) <= have
    # O(log m) steps per target (about two per halving)
    assert len(chain) <= sum(2 * math.ceil(math.log2(m)) + 1 for m in targets)


@pytest.mark.parametrize(("windows", "step"), [((600, 37), 1), ((10, 30), 45)])
def test_signature_matrices_batched_path_in_bounded_batches(rng, monkeypatch, windows, step):
    # Rings over their memory bound, or ends further apart than the longest
    # window: one batched product per window, in batches of ends.
    monkeypatch.setattr(tu, "_signature_ring_kernel", None)
    monkeypatch.setattr(tu, "SIGNATURE_RING_BYTES", 0)
    monkeypatch.setattr(tu, "BATCH_ELEMENTS", 5_000)  # a few ends per batch
    X = rng.normal(size=(700, 3))
    M, ends = signature_matrices(X, windows=windows, step=step)
    ref, ref_ends = naive.signature_matrices_matmul(X, windows=windows, step=step)
    np.testing.assert_array_equal(ends, ref_ends)
    np.testing.assert_allclose(M, ref, rtol=1e-12, atol=1e-12)


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


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n=st.integers(2, 4),
    windows=st.lists(st.integers(2, 15), min_size=1, max_size=3),
    step=st.integers(1, 9),
    diff=st.booleans(),
)
def test_correlation_matrices_do_not_depend_on_column_scales(data, n, windows, step, diff):
    T = data.draw(st.integers(max(windows) + 1, max(windows) + 40))
    seed = data.draw(st.integers(0, 2**32 - 1))
    exponents = data.draw(st.lists(st.floats(-200, 200), min_size=n, max_size=n))
    X = np.random.default_rng(seed).normal(size=(T, n))
    scaled = X * 10.0 ** np.array(exponents)
    C, ends = correlation_matrices(scaled, windows=windows, step=step, diff=diff)
    ref, ref_ends = naive.correlation_matrices(scaled, windows=windows, step=step, diff=diff,
                                               rescale=True)
    np.testing.assert_array_equal(ends, ref_ends)
    np.testing.assert_allclose(C, ref, rtol=0, atol=1e-9)
    # and the correlations of the unscaled series, by np.corrcoef
    np.testing.assert_allclose(C, naive.correlation_matrices(X, windows, step, diff)[0],
                               rtol=0, atol=1e-9)


@pytest.mark.parametrize("scale", [1e-200, 1e-310, 1e155, 1e300, 2.0**1023])
@pytest.mark.parametrize("diff", [False, True])
def test_correlation_matrices_at_extreme_scales_equal_corrcoef_at_scale_1(rng, scale, diff):
    # The case: a column scaled by 1e-200 gave 1.0 and by 1e155 gave 0.0.
    X = rng.normal(size=(40, 3))
    X[:, 1] /= np.abs(X[:, 1]).max()
    X[:, 2] = rng.choice([-1.0, 1.0], size=40)  # at 2**1023, differences overflow
    Y = X.copy()
    Y[:, 1:] *= scale
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow, underflow or division warnings
        C, _ = correlation_matrices(Y, windows=(10, 30), step=10, diff=diff)
    ref, _ = naive.correlation_matrices(X, windows=(10, 30), step=10, diff=diff)
    atol = 1e-6 if scale < 1e-300 else 1e-12  # subnormals carry fewer digits
    np.testing.assert_allclose(C, ref, rtol=0, atol=atol)


def test_correlation_matrices_follow_a_scale_that_changes_over_time(rng):
    X = rng.normal(size=(60, 2))
    Y = X.copy()
    Y[:30, 1] *= 1e-200
    Y[30:, 1] *= 1e200
    C, _ = correlation_matrices(Y, windows=(10,), step=10)
    ref, _ = naive.correlation_matrices(X, windows=(10,), step=10)
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
