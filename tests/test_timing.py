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
