"""make_chunks against its loop twin; grouped splits that never put a group on both sides."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from naive import make_chunks_loop

from lab.chunks import add_calendar, grouped_folds, make_chunks, validation_split


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(3, 40), min_size=1, max_size=4),
    T=st.integers(1, 3),
    step=st.one_of(st.none(), st.integers(1, 5)),
    rule=st.sampled_from(["any", 0.5, 1.0, 0.01]),
    d=st.integers(1, 3),
    seed=st.integers(0, 1000),
)
def test_matches_loop_twin(sizes, T, step, rule, d, seed):
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    values = rng.normal(size=(n, d))
    labels = rng.random(n) < 0.2
    groups = np.repeat(np.arange(len(sizes)) * 7, sizes)
    X, y, meta = make_chunks(values, labels, T=T, step=step, rule=rule, calendar=False,
                             groups=groups)
    Xn, yn, starts = make_chunks_loop(values, labels, T, step or T, rule, groups)
    np.testing.assert_array_equal(X, Xn)
    np.testing.assert_array_equal(y, yn)
    assert meta["start_pos"].tolist() == starts
    assert X.shape == (len(starts), T, d)
    # no chunk straddles two groups
    for s, e, g in zip(meta["start_pos"], meta["stop_pos"], meta["group"], strict=True):
        assert set(groups[s:e]) == {g}


def test_frame_calendar_meta_and_nonoverlap():
    idx = pd.date_range("2024-05-31 23:00", periods=12, freq="30min")
    df = pd.DataFrame({"a": np.arange(12.0), "b": -np.arange(12.0)}, index=idx)
    labels = pd.Series(np.r_[np.zeros(9), 1, 0, 0], index=idx)
    X, y, meta = make_chunks(df, labels, T=4)
    assert X.shape == (3, 4, 2 + 8)
    assert y.tolist() == [0, 0, 1]
    cal = add_calendar(df)
    np.testing.assert_allclose(X.reshape(-1, 10), cal.to_numpy())
    assert meta["start"].tolist() == [idx[0], idx[4], idx[8]]
    assert meta["end"].tolist() == [idx[3], idx[7], idx[11]]
    # the calendar is cyclic: 23:00 and 00:00 are neighbours, hour_sin^2 + hour_cos^2 == 1
    np.testing.assert_allclose(cal["hour_sin"] ** 2 + cal["hour_cos"] ** 2, 1.0)
    assert np.hypot(cal["hour_sin"].iloc[0] - cal["hour_sin"].iloc[2],
                    cal["hour_cos"].iloc[0] - cal["hour_cos"].iloc[2]) < 0.3
    # month 5 (June) after day 31 of May
    assert cal["month_sin"].iloc[2] == pytest.approx(np.sin(2 * np.pi * 5 / 12))


def test_rule_share():
    labels = np.r_[1, 0, 0, 0, 1, 1, 0, 0]
    _, y_any, _ = make_chunks(np.zeros(8), labels, T=4, calendar=False)
    _, y_half, meta = make_chunks(np.zeros(8), labels, T=4, rule=0.5, calendar=False)
    assert y_any.tolist() == [1, 1] and y_half.tolist() == [0, 1]
    assert meta["anomaly_share"].tolist() == [0.25, 0.5]


def test_bad_input():
    idx = pd.date_range("2024-01-01", periods=10, freq="min")
    df = pd.DataFrame({"a": np.arange(10.0)}, index=idx)
    labels = pd.Series(np.zeros(10), index=idx)
    with pytest.raises(ValueError, match="T=11 is longer than the series"):
        make_chunks(df, labels, T=11)
    with pytest.raises(ValueError, match="group 'b' has 3 rows"):
        make_chunks(df, labels, T=4, groups=np.array(["a"] * 7 + ["b"] * 3))
    with pytest.raises(ValueError, match="labels does not align"):
        make_chunks(df, labels.set_axis(idx + pd.Timedelta("1s")), T=5)
    with pytest.raises(ValueError, match=r"labels must have one value per row: shape \(9,\)"):
        make_chunks(df, np.zeros(9), T=5)
    nan = df.copy()
    nan.iloc[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        make_chunks(nan, labels, T=5)
    with pytest.raises(ValueError, match="DatetimeIndex"):
        make_chunks(df.to_numpy(), labels.to_numpy(), T=5)
    with pytest.raises(ValueError, match="rule"):
        make_chunks(df, labels, T=5, rule=0)
    with pytest.raises(ValueError, match="rule"):
        make_chunks(df, labels, T=5, rule="all")
    with pytest.raises(ValueError, match="step"):
        make_chunks(df, labels, T=5, step=0)


@settings(max_examples=40, deadline=None)
@given(n_groups=st.integers(2, 12), n_splits=st.integers(2, 6), seed=st.integers(0, 99))
def test_grouped_folds_hold_out_whole_groups(n_groups, n_splits, seed):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n_groups, size=60)
    uniq = np.unique(groups)
    if len(uniq) < n_splits:
        with pytest.raises(ValueError, match=f"at least n_splits={n_splits} groups"):
            grouped_folds(groups, n_splits)
        return
    folds = grouped_folds(groups, n_splits)
    assert len(folds) == n_splits
    seen = np.concatenate([te for _, te in folds])
    assert sorted(seen.tolist()) == list(range(60))
    for tr, te in folds:
        assert not set(groups[tr]) & set(groups[te])
        if len(np.unique(groups[tr])) >= 2:
            fit, val = validation_split(groups[tr], size=0.25, random_state=seed)
            assert not set(groups[tr][fit]) & set(groups[tr][val])
            assert len(fit) + len(val) == len(tr) and len(val) > 0


def test_validation_split_finds_both_classes():
    groups = np.repeat(np.arange(10), 5)
    y = (groups == 3).astype(int)  # one anomalous group
    fit, val = validation_split(groups, y, size=0.2, random_state=0)
    assert set(y[val]) == {0, 1}
    with pytest.raises(ValueError, match="at least 2 groups"):
        validation_split(np.zeros(5))
