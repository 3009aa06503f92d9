"""compare_timings: best-of-repeat, interleaved rounds, ratios against the reference."""

from __future__ import annotations

import time

import numpy as np
import pytest

from lab import timing
from lab.timing import compare_timings


class FakeClock:
    """A clock that only moves when a candidate says how long it 'took'."""

    def __init__(self):
        self.now = 0.0
        self.calls: list[str] = []

    def __call__(self):
        return self.now

    def work(self, name, durations):
        it = iter(durations)

        def run():
            self.calls.append(name)
            self.now += next(it)

        return run


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(timing, "_clock", fake)
    return fake


def test_best_of_repeat_and_ratios(clock):
    funcs = {
        "slow": clock.work("slow", [5.0, 4.0, 6.0]),
        "fast": clock.work("fast", [1.0, 0.5, 2.0]),
    }
    table = compare_timings(funcs, repeat=3)
    assert list(table.index) == ["slow", "fast"] and table.index.name == "name"
    np.testing.assert_allclose(table["seconds"], [4.0, 0.5])
    np.testing.assert_allclose(table["speedup"], [1.0, 8.0])
    np.testing.assert_allclose(table["relative"], [1.0, 0.125])


def test_rounds_are_interleaved(clock):
    funcs = {n: clock.work(n, [1.0] * 2) for n in "abc"}
    compare_timings(funcs, repeat=2)
    assert clock.calls == list("abcabc")


def test_reference_and_number(clock):
    funcs = {
        "a": clock.work("a", [2.0] * 4),
        "b": clock.work("b", [1.0, 3.0, 1.0, 1.0]),
    }
    table = compare_timings(funcs, repeat=2, reference="b", number=2)
    # per-call time of the best of two measurements of two calls each
    np.testing.assert_allclose(table["seconds"], [2.0, 1.0])
    np.testing.assert_allclose(table["relative"], [2.0, 1.0])
    np.testing.assert_allclose(table["speedup"], [0.5, 1.0])
    assert len(clock.calls) == 8


def test_zero_time_gives_finite_ratios(clock):
    table = compare_timings({"a": clock.work("a", [0.0]), "b": clock.work("b", [1.0])}, repeat=1)
    assert np.isfinite(table.to_numpy()).all() and table.loc["b", "speedup"] < 1


def test_real_clock_orders_sleeps():
    table = compare_timings(
        {"long": lambda: time.sleep(0.02), "short": lambda: time.sleep(0.002)}, repeat=2
    )
    assert table.loc["long", "seconds"] >= 0.02
    assert table.loc["short", "speedup"] > 1


@pytest.mark.parametrize(
    "funcs, kwargs, match",
    [
        ({}, {}, "non-empty"),
        ([lambda: 0], {}, "dict"),
        ({"a": 3}, {}, "not callable"),
        ({"a": lambda: 0}, {"repeat": 0}, "repeat"),
        ({"a": lambda: 0}, {"number": 0}, "number"),
        ({"a": lambda: 0}, {"reference": "b"}, "reference"),
    ],
)
def test_bad_input(funcs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        compare_timings(funcs, **kwargs)


def test_exception_in_a_candidate_propagates():
    def boom():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        compare_timings({"ok": lambda: 0, "bad": boom})


# --------------------------------------------------------------------- ks_speedup


def _ks_samples(rng, cols=6):
    base = rng.normal(size=(120, cols))
    focus = rng.normal(size=(30, cols)) + np.linspace(0, 2, cols)
    base[:, 0] = np.round(base[:, 0])  # ties
    focus[:, 0] = np.round(focus[:, 0])
    return base, focus


@pytest.mark.parametrize("method", ["auto", "exact", "asymp"])
def test_ks_speedup_reports_agreement_with_the_scipy_loop(method):
    base, focus = _ks_samples(np.random.default_rng(0))
    result = timing.ks_speedup(base, focus, method=method, repeat=1)
    assert isinstance(result, timing.KSSpeedup) and result.speedup > 0
    assert result.max_abs_diff_stat == 0.0 and result.max_rel_diff_p <= 1e-12


def test_ks_speedup_ratio_and_differences_come_from_the_timed_calls(clock, monkeypatch):
    """The loop 'takes' 10 ms a column, the vectorised call 20 ms in all: speedup 6 x 10 / 20."""
    import scipy.stats

    import lab.signal_utility as su

    real_ks, real_columns = scipy.stats.ks_2samp, su.ks_2samp_columns

    def slow_ks(*args, **kwargs):
        clock.now += 0.01
        return real_ks(*args, **kwargs)

    def wrong_columns(*args, **kwargs):
        clock.now += 0.02
        stat, p = real_columns(*args, **kwargs)
        return stat + np.r_[0.25, np.zeros(len(stat) - 1)], p * 1.5

    monkeypatch.setattr(scipy.stats, "ks_2samp", slow_ks)
    monkeypatch.setattr(su, "ks_2samp_columns", wrong_columns)
    result = timing.ks_speedup(*_ks_samples(np.random.default_rng(1)), repeat=2)
    assert result.speedup == pytest.approx(3.0)
    assert result.max_abs_diff_stat == pytest.approx(0.25)
    assert result.max_rel_diff_p == pytest.approx(0.5)


def test_ks_differences_handle_zero_p_values():
    ref = np.array([[0.5, 0.0], [0.2, 0.1]])
    assert timing._ks_differences(ref.copy(), ref) == (0.0, 0.0)
    assert timing._ks_differences(np.array([[0.5, 1e-300], [0.2, 0.1]]), ref)[1] == np.inf


@pytest.mark.parametrize(
    "base, focus, kwargs, match",
    [
        (np.zeros((5, 3)), np.zeros((4, 2)), {}, "base has 3 columns"),
        (np.zeros((5, 2)), np.full((4, 2), np.nan), {}, "focus contains NaN"),
        (np.zeros((5, 2)), np.zeros((4, 2)), {"method": "fast"}, "method must be one of"),
        (np.zeros((5, 2)), np.zeros((4, 2)), {"repeat": 0}, "repeat must be >= 1"),
    ],
)
def test_ks_speedup_bad_input(base, focus, kwargs, match):
    with pytest.raises(ValueError, match=match):
        timing.ks_speedup(base, focus, **kwargs)
