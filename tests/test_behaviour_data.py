"""lab.datasets.make_behaviour_changes: shapes, truth, determinism and real changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lab.datasets import make_behaviour_changes
from lab.datasets.behaviour import BEHAVIOUR_ASPECTS


def test_defaults_shape_index_and_truth():
    df, cps = make_behaviour_changes()
    assert df.shape == (2000, 3)
    assert list(df.columns) == ["x0", "x1", "x2"]
    assert isinstance(df.index, pd.DatetimeIndex) and df.index.is_monotonic_increasing
    assert cps.dtype == np.int64 and len(cps) == 7
    assert np.all(np.diff(np.r_[0, cps, 2000]) >= 2000 // (3 * 8))
    assert np.isfinite(df.to_numpy()).all()
    # with 7 boundaries every aspect of behaviour changes at least once
    changed = {a for step in df.attrs["changed"] for a in step}
    assert changed == set(BEHAVIOUR_ASPECTS)


def test_every_boundary_changes_the_parameters_it_says_by_a_clear_factor():
    df, cps = make_behaviour_changes(n_segments=12, length=3000, random_state=3)
    segments, changed = df.attrs["segments"], df.attrs["changed"]
    assert len(segments) == 12 and len(changed) == 11
    for before, after, aspects in zip(segments[:-1], segments[1:], changed, strict=True):
        assert 1 <= len(aspects) <= 2
        for aspect in BEHAVIOUR_ASPECTS:
            if aspect not in aspects:
                assert before[aspect] == after[aspect], aspect
        for aspect in aspects:
            if aspect in ("frequency", "amplitude", "noise"):
                ratio = max(after[aspect], before[aspect]) / min(after[aspect], before[aspect])
                assert ratio >= 1.5, (aspect, before[aspect], after[aspect])
            else:
                assert after[aspect] != before[aspect], aspect


def test_segment_parameters_show_in_the_data():
    """A segment's spread follows its amplitude and noise; the correlation flips sign."""
    df, cps = make_behaviour_changes(n_segments=8, length=4000, n_series=2, random_state=1)
    bounds = np.r_[0, cps, len(df)]
    x = df.to_numpy()
    for k, p in enumerate(df.attrs["segments"]):
        seg = x[bounds[k]:bounds[k + 1]]
        steps = np.arange(len(seg))
        # take out the (linear) trend; what remains is the sine plus noise
        resid = seg - np.polyval(np.polyfit(steps, seg[:, 0], 1), steps)[:, None]
        expected = np.sqrt(p["amplitude"] ** 2 / 2 + p["noise"] ** 2)
        assert resid[:, 0].std() == pytest.approx(expected, rel=0.35), k


def test_deterministic_for_a_seed_and_different_across_seeds():
    a, ca = make_behaviour_changes(length=300, n_segments=4, random_state=5)
    b, cb = make_behaviour_changes(length=300, n_segments=4, random_state=5)
    c, cc = make_behaviour_changes(length=300, n_segments=4, random_state=6)
    pd.testing.assert_frame_equal(a, b)
    np.testing.assert_array_equal(ca, cb)
    assert not np.allclose(a.to_numpy(), c.to_numpy())


def test_one_series_has_no_correlation_aspect():
    df, cps = make_behaviour_changes(n_segments=10, length=1000, n_series=1)
    assert df.shape == (1000, 1)
    assert all("correlation" not in step for step in df.attrs["changed"])


@settings(max_examples=25, deadline=None)
@given(n_segments=st.integers(1, 12), extra=st.integers(0, 400), n_series=st.integers(1, 4),
       seed=st.integers(0, 2**16))
def test_any_valid_arguments_give_consistent_truth(n_segments, extra, n_series, seed):
    length = 4 * n_segments + extra
    df, cps = make_behaviour_changes(n_segments, length, n_series, random_state=seed)
    assert df.shape == (length, n_series)
    assert len(cps) == n_segments - 1
    assert np.all(np.diff(np.r_[0, cps, length]) >= 4)
    assert np.isfinite(df.to_numpy()).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_segments": 0}, "n_segments must be >= 1"),
        ({"n_series": 0}, "n_series must be >= 1"),
        ({"length": 10, "n_segments": 3}, "length must be >= 4 \\* n_segments"),
        ({"length": 2.5}, "length must be an integer"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_behaviour_changes(**kwargs)


@settings(max_examples=50, deadline=None)
@given(n_segments=st.integers(2, 12), seed=st.integers(0, 2**16))
@example(n_segments=12, seed=1477)  # a slope already heading back to 0 used to be flipped
@example(n_segments=20, seed=1692)
def test_trend_level_stays_within_a_few_units(n_segments, seed):
    """A slope moves the level by at most 2.5 over the stretch it lasts, back towards 0."""
    from lab.datasets import behaviour

    df, cps = make_behaviour_changes(n_segments=n_segments, length=2000, random_state=seed)
    bounds = np.r_[0, cps, len(df)]
    slopes = np.concatenate([np.full(bounds[k + 1] - bounds[k], p["trend"])
                             for k, p in enumerate(df.attrs["segments"])])
    level = np.cumsum(slopes)
    bound = behaviour._TREND_RETURN_LEVEL + behaviour._TREND_RISE[1]
    assert np.abs(level).max() <= bound + 1e-9
    # every stretch of one nonzero slope moves the level by 1 to 2.5 units
    for k, p in enumerate(df.attrs["segments"]):
        if p["trend"] != 0 and (k == 0 or df.attrs["segments"][k - 1]["trend"] != p["trend"]):
            end = next((j for j in range(k + 1, n_segments)
                        if df.attrs["segments"][j]["trend"] != p["trend"]), n_segments)
            rise = abs(p["trend"]) * (bounds[end] - bounds[k])
            assert behaviour._TREND_RISE[0] - 1e-9 <= rise <= behaviour._TREND_RISE[1] + 1e-9
