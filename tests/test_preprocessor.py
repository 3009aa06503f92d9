"""lab.preprocessor: cleaning, scaling, windowing, splitting, schedules, ranking."""

from __future__ import annotations

import warnings

import naive
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from lab import preprocessor as pp

# --------------------------------------------------------------------- clean_metrics


def _messy_frame():
    idx = pd.date_range("2024-01-01", periods=6, freq="min")
    df = pd.DataFrame({
        "cpu": [1.0, np.nan, 3.0, 4.0, np.nan, 6.0],
        "host": list("abcdef"),
        "empty": [np.nan] * 6,
        "flat": [7.0, 7.0, np.nan, 7.0, 7.0, 7.0],
        "mem": [np.nan, 2.0, 2.5, 3.0, 1.0, 0.5],
        "cpu_copy": [1.0, np.nan, 3.0, 4.0, np.nan, 6.0],
    }, index=idx)
    df.insert(2, "mem_dup_name", [9.0, 8, 7, 6, 5, 4])
    df.columns = ["cpu", "host", "mem", "empty", "flat", "mem", "cpu_copy"]
    return df


def test_clean_metrics_drops_and_reports_each_reason():
    df = _messy_frame()
    with pytest.warns(UserWarning, match="dropped 5 column"):
        cleaned, report = pp.clean_metrics(df)
    assert list(cleaned.columns) == ["cpu", "mem"]
    assert cleaned.index.equals(df.index)
    assert dict(zip(report["column"], report["reason"], strict=True)) == {
        "host": "non-numeric", "empty": "all-NaN", "mem": "duplicate name",
        "cpu_copy": "duplicate values", "flat": "constant"}
    # forward fill first, then backward fill for a leading gap
    assert cleaned["cpu"].tolist() == [1.0, 1.0, 3.0, 4.0, 4.0, 6.0]
    assert cleaned.iloc[:, 1].tolist() == [9.0, 8, 7, 6, 5, 4]
    assert not cleaned.isna().any().any()


def test_clean_metrics_keeps_clean_frame_without_warning(rng):
    df = pd.DataFrame(rng.normal(size=(20, 4)), columns=list("abcd"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cleaned, report = pp.clean_metrics(df)
    pd.testing.assert_frame_equal(cleaned, df)
    assert report.empty and list(report.columns) == ["column", "reason"]


def test_clean_metrics_rejects_non_frames():
    with pytest.raises(ValueError, match="df must be a pandas DataFrame"):
        pp.clean_metrics(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="df has no rows"):
        pp.clean_metrics(pd.DataFrame({"a": []}))


# --------------------------------------------------------------------- normalize


@pytest.mark.parametrize("method, ref", [("minmax", MinMaxScaler), ("zscore", StandardScaler)])
def test_normalize_fits_on_training_rows_only(rng, method, ref):
    df = pd.DataFrame(rng.normal(size=(50, 3)), columns=["a", "b", "c"],
                      index=pd.date_range("2024", periods=50, freq="h"))
    df.iloc[40:] += 100  # a test period far away: must not move the fitted statistics
    out, scaler = pp.normalize(df, method=method, fit=slice(0, 40))
    expected = ref().fit(df.iloc[:40].to_numpy()).transform(df.to_numpy())
    np.testing.assert_allclose(out.to_numpy(), expected)
    assert out.index.equals(df.index) and list(out.columns) == ["a", "b", "c"]
    np.testing.assert_allclose(scaler.inverse_transform(out), df.to_numpy())
    pd.testing.assert_frame_equal(scaler.transform(df.iloc[40:]), out.iloc[40:])
    # a boolean mask and a label slice select the same rows
    mask = np.arange(50) < 40
    np.testing.assert_allclose(pp.normalize(df, method, fit=mask)[0], out)
    label_slice = slice(df.index[0], df.index[39])
    np.testing.assert_allclose(pp.normalize(df, method, fit=label_slice)[0], out)


@pytest.mark.parametrize("method", ["minmax", "zscore"])
def test_normalize_constant_column_stays_finite(method):
    x = np.column_stack([np.full(10, 3.0), np.arange(10.0)])
    out, _ = pp.normalize(x, method=method, fit=slice(0, 5))
    assert isinstance(out, np.ndarray) and np.isfinite(out).all()
    assert (out[:, 0] == 0).all()


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), shape=st.tuples(st.integers(2, 30), st.integers(1, 4)),
       exponents=st.lists(st.floats(-300, 300), min_size=4, max_size=4))
def test_normalize_matches_scipy_at_any_column_scale(seed, shape, exponents):
    x = np.random.default_rng(seed).normal(size=shape)
    scales = 10.0 ** np.array(exponents[: shape[1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or underflow on the way
        z, scaler = pp.normalize(x * scales, "zscore")
        m, _ = pp.normalize(x * scales, "minmax")
    np.testing.assert_allclose(z, stats.zscore(x, axis=0), rtol=1e-9, atol=1e-12)
    lo, hi = x.min(axis=0), x.max(axis=0)
    np.testing.assert_allclose(m, (x - lo) / (hi - lo), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(scaler.mean_ / scales, x.mean(axis=0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(scaler.scale_ / scales, x.std(axis=0), rtol=1e-9)


def test_normalize_matches_sklearn_bit_for_bit_on_ordinary_data(rng):
    x = rng.normal(size=(40, 3)) * [1.0, 1e3, 1e-3] + [0.0, 5.0, -2.0]
    z, _ = pp.normalize(x, "zscore", fit=slice(0, 30))
    m, _ = pp.normalize(x, "minmax", fit=slice(0, 30))
    np.testing.assert_array_equal(z, StandardScaler().fit(x[:30]).transform(x))
    np.testing.assert_array_equal(m, MinMaxScaler().fit(x[:30]).transform(x))


@pytest.mark.parametrize("scale", [1e308 / 3, 1e200, 1e-200, 5e-324])
def test_normalize_at_the_ends_of_float64(scale):
    # The case: zscore at +-1e308 returned its input. At 5e-324 (the
    # smallest subnormal) the small integers below are exact multiples.
    base = np.array([[1.0, 1.0], [-1.0, 3.0], [1.0, 2.0], [-1.0, 0.0]])
    x = base * scale
    z, _ = pp.normalize(x, "zscore")
    np.testing.assert_allclose(z, stats.zscore(base, axis=0), rtol=1e-12)
    m, _ = pp.normalize(x, "minmax")
    np.testing.assert_allclose(m, (base - base.min(0)) / np.ptp(base, axis=0), rtol=1e-12)


def test_normalize_rejects_bad_input():
    x = np.arange(10.0).reshape(5, 2)
    with pytest.raises(ValueError, match="method must be one of"):
        pp.normalize(x, method="robust")
    with pytest.raises(ValueError, match=r"boolean mask of shape \(5,\)"):
        pp.normalize(x, fit=np.ones(4, bool))
    with pytest.raises(ValueError, match="fit selects no rows"):
        pp.normalize(x, fit=slice(3, 3))
    with pytest.raises(ValueError, match="df contains NaN"):
        pp.normalize(np.array([[1.0], [np.nan]]))


# --------------------------------------------------------------------- windows


frames = st.tuples(st.integers(1, 30), st.integers(1, 4)).flatmap(
    lambda s: st.tuples(st.just(s), st.integers(1, s[0]), st.integers(1, 7)))


@settings(max_examples=150, deadline=None)
@given(spec=frames, seed=st.integers(0, 2**16), agg=st.sampled_from(["mean", "first"]))
def test_column_round_trip_restores_covered_rows(spec, seed, agg):
    (n, m), w, stride = spec
    x = np.random.default_rng(seed).normal(size=(n, m))
    cols = pp.convert_to_column(x, w, stride)
    np.testing.assert_array_equal(cols, naive.convert_to_column(x, w, stride))
    back = pp.convert_from_column(cols, w, stride, n, agg=agg)
    covered = np.zeros(n, bool)
    for t in range(0, n - w + 1, stride):
        covered[t:t + w] = True
    np.testing.assert_array_equal(back[covered], x[covered])  # exact, not approx
    assert np.isnan(back[~covered]).all()  # uncovered rows are never filled in


def test_column_frames_keep_labels(rng):
    idx = pd.date_range("2024", periods=7, freq="D")
    df = pd.DataFrame(rng.normal(size=(7, 2)), index=idx, columns=["a", "b"])
    cols = pp.convert_to_column(df, window_size=3, stride=2)
    assert cols.shape == (3, 6)
    assert list(cols.index) == list(idx[[0, 2, 4]])
    assert cols.columns.names == ["offset", "series"]
    assert cols[(1, "b")].tolist() == df["b"].iloc[[1, 3, 5]].tolist()
    back = pp.convert_from_column(cols, 3, 2, 7, index=idx)
    pd.testing.assert_frame_equal(back, df, check_freq=False, check_names=False)


def test_convert_from_column_mean_averages_overlaps():
    cols = np.array([[1.0, 2.0], [4.0, 6.0]])  # w=2, stride=1, one series
    np.testing.assert_allclose(pp.convert_from_column(cols, 2, 1, 3)[:, 0], [1, 3, 6])
    np.testing.assert_allclose(pp.convert_from_column(cols, 2, 1, 3, agg="first")[:, 0],
                               [1, 2, 6])


def test_windows_reject_bad_sizes():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="window_size must be >= 1"):
        pp.convert_to_column(x, 0, 1)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        pp.convert_to_column(x, 2, 0)
    with pytest.raises(ValueError, match="window_size=6 is longer than data"):
        pp.convert_to_column(x, 6, 1)
    cols = pp.convert_to_column(x, 2, 1)
    with pytest.raises(ValueError, match="multiple of window_size=3"):
        pp.convert_from_column(cols, 3, 1, 5)
    with pytest.raises(ValueError, match="columns has 4 windows"):
        pp.convert_from_column(cols, 2, 1, 6)


# --------------------------------------------------------------------- time_split


@settings(max_examples=150, deadline=None)
@given(n=st.integers(3, 60), data=st.data())
def test_time_split_parts_are_ordered_and_gap_separated(n, data):
    gap = data.draw(st.integers(0, 5))
    p1 = data.draw(st.integers(1, n - 1))
    use_valid = data.draw(st.booleans())
    df = pd.DataFrame({"x": np.arange(n)})
    p2 = data.draw(st.integers(p1 + 1, n)) if use_valid else None
    try:
        train, valid, test = pp.time_split(df, train_end=p1, valid_end=p2, gap=gap)
    except ValueError as exc:  # only when a part would be empty
        assert "empty" in str(exc) or "expected a row" in str(exc)
        return
    part = np.full(n, -1)
    for k, frame in enumerate((train, valid, test)):
        part[frame["x"].to_numpy()] = k
    assert train["x"].tolist() == list(range(p1))
    assert (part[part >= 0] == np.sort(part[part >= 0])).all()  # time order
    assert (part == -1).sum() == gap * (2 if use_valid else 1)
    # no window of gap + 1 consecutive rows holds rows of two parts
    for s in range(n - gap):
        seen = set(part[s:s + gap + 1]) - {-1}
        assert len(seen) <= 1


def test_time_split_by_labels():
    df = pd.DataFrame({"x": range(10)}, index=pd.date_range("2024-01-01", periods=10))
    train, valid, test = pp.time_split(df, train_end="2024-01-05", valid_end="2024-01-08")
    assert len(train) == 4 and train.index[-1] == pd.Timestamp("2024-01-04")
    assert valid.index[0] == pd.Timestamp("2024-01-05") and len(valid) == 3
    assert test.index[0] == pd.Timestamp("2024-01-08")
    assert pp.time_split(df, train_end=5).valid.empty


def test_time_split_rejects_bad_boundaries():
    df = pd.DataFrame({"x": range(10)})
    with pytest.raises(ValueError, match="train_end=10"):
        pp.time_split(df, train_end=10)
    with pytest.raises(ValueError, match="valid_end=3"):
        pp.time_split(df, train_end=5, valid_end=3)
    with pytest.raises(ValueError, match="test is empty"):
        pp.time_split(df, train_end=8, gap=2)
    with pytest.raises(ValueError, match="gap must be >= 0"):
        pp.time_split(df, train_end=5, gap=-1)


def _days_index(steps):
    """A DatetimeIndex whose consecutive labels differ by ``steps`` days."""
    return pd.Timestamp("2024-01-01") + pd.to_timedelta(np.cumsum(steps), unit="D")


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(st.integers(0, 3), min_size=3, max_size=40), data=st.data())
def test_time_split_sorted_index_is_a_partition_in_time_order(steps, data):
    n = len(steps)
    df = pd.DataFrame({"x": np.arange(n)}, index=_days_index(steps))
    p1 = data.draw(st.integers(1, n - 1))
    p2 = data.draw(st.none() | st.integers(p1 + 1, n))
    try:
        train, valid, test = pp.time_split(df, train_end=p1, valid_end=p2)
    except ValueError as exc:  # only when a part would be empty
        assert "expected a row" in str(exc)
        return
    parts = [train, valid, test]
    assert np.concatenate([p["x"].to_numpy() for p in parts]).tolist() == list(range(n))
    nonempty = [p for p in parts if len(p)]
    for early, late in zip(nonempty, nonempty[1:], strict=False):
        assert early.index.max() <= late.index.min()


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(st.integers(-3, 3), min_size=3, max_size=40), data=st.data())
def test_time_split_unsorted_index_raises_at_the_first_step_back(steps, data):
    back = [i for i, d in enumerate(steps) if d < 0 and i > 0]
    if not back:
        steps[-1] = -1
        back = [len(steps) - 1]
    df = pd.DataFrame({"x": np.arange(len(steps))}, index=_days_index(steps))
    train_end = data.draw(st.integers(1, len(steps) - 1))
    with pytest.raises(ValueError, match=rf"^df must be in time order.*row {back[0]} \("):
        pp.time_split(df, train_end=train_end)
    with pytest.raises(ValueError, match="not sorted"):
        pp.time_split(df, train_end=df.index[train_end])


def test_time_split_reversed_days_is_refused():
    # The case: the latest 5 days would have been the training part.
    df = pd.DataFrame({"x": range(10)}, index=pd.date_range("2024-01-01", periods=10)[::-1])
    with pytest.raises(ValueError, match=r"row 1 \(Timestamp\('2024-01-09"):
        pp.time_split(df, train_end=5)


# --------------------------------------------------------------------- calc_batches


@settings(max_examples=200, deadline=None)
@given(train_min=st.integers(1, 30), extra=st.integers(0, 30), every=st.integers(1, 12),
       more=st.integers(0, 80))
def test_calc_batches_matches_loop_reference(train_min, extra, every, more):
    train_max, n = train_min + extra, train_min + more
    batches = pp.calc_batches(train_min, train_max, every, n)
    assert batches == naive.calc_batches(train_min, train_max, every, n)
    for b in batches.values():
        assert 0 <= b["start"] < b["end"] <= n
        assert b["end"] - b["start"] <= train_max


@pytest.mark.parametrize("args, match", [
    ((0, 5, 1, 10), "train_min must be >= 1"),
    ((5, 4, 1, 10), "train_max must be >= 5"),
    ((5, 6, 0, 10), "train_every must be >= 1"),
    ((11, 12, 1, 10), "n must be >= 11"),
    ((5.0, 6, 1, 10), "train_min must be an integer"),
])
def test_calc_batches_rejects_nonsense(args, match):
    with pytest.raises(ValueError, match=match):
        pp.calc_batches(*args)


# --------------------------------------------------------------------- rank_changes


def _incident_frame(rng):
    idx = pd.date_range("2024-01-01", periods=200, freq="min")
    df = pd.DataFrame(rng.normal(size=(200, 5)), index=idx, columns=list("abcde"))
    df.iloc[150:170, 3] += 4  # d jumps in the focus window
    df.iloc[150:170, 1] *= 3  # b gets noisier
    return df


def test_rank_changes_ks_matches_scipy_and_default_baseline(rng):
    df = _incident_frame(rng)
    ranked = pp.rank_changes(df, focus=(150, 170))
    assert list(ranked.columns) == ["statistic", "pvalue", "score"]
    assert ranked.index[0] == "d" and ranked.index.name == "metric"
    for col in df.columns:
        ref = stats.ks_2samp(df[col].iloc[70:150], df[col].iloc[150:170])
        assert ranked.loc[col, "statistic"] == pytest.approx(ref.statistic)
        assert ranked.loc[col, "pvalue"] == pytest.approx(ref.pvalue)
    assert (np.diff(ranked["score"].to_numpy()) <= 0).all()
    # the same window given as labels (end included)
    by_label = pp.rank_changes(df, focus=(df.index[150], df.index[169]))
    pd.testing.assert_frame_equal(by_label, ranked)


def test_rank_changes_volume_is_relative_mean_change(rng):
    df = _incident_frame(rng) + 10
    ranked = pp.rank_changes(df, focus=(150, 170), baseline=(0, 100), method="volume")
    for col in df.columns:
        mb, mf = df[col].iloc[:100].mean(), df[col].iloc[150:170].mean()
        assert ranked.loc[col, "statistic"] == pytest.approx((mf - mb) / abs(mb))
    assert ranked.index[0] == "d"
    assert ranked["pvalue"].isna().all()


def test_rank_changes_rejects_bad_windows(rng):
    df = _incident_frame(rng)
    with pytest.raises(ValueError, match="outside the data"):
        pp.rank_changes(df, focus=(150, 250))
    with pytest.raises(ValueError, match="holds no rows"):
        pp.rank_changes(df, focus=(150, 150))
    with pytest.raises(ValueError, match="overlap"):
        pp.rank_changes(df, focus=(150, 170), baseline=(100, 160))
    with pytest.raises(ValueError, match="no rows before it"):
        pp.rank_changes(df, focus=(0, 10))
    with pytest.raises(ValueError, match="outside the data"):
        pp.rank_changes(df, focus=(pd.Timestamp("2023-01-01"), df.index[10]))
    with pytest.raises(ValueError, match="method must be one of"):
        pp.rank_changes(df, focus=(150, 170), method="corr")


def test_rank_changes_warns_when_default_baseline_is_cut():
    df = pd.DataFrame(np.random.default_rng(1).normal(size=(60, 3)))
    with pytest.warns(UserWarning, match="20 rows instead of 4 x 10"):
        pp.rank_changes(df, focus=(20, 30))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pp.rank_changes(df, focus=(40, 50))  # 40 rows before: the full 4x baseline, no warning


def test_rank_changes_takes_string_labels_on_a_datetime_index(rng):
    df = _incident_frame(rng)  # one row per minute from 2024-01-01 00:00
    by_position = pp.rank_changes(df, focus=(150, 170), baseline=(60, 150))
    by_string = pp.rank_changes(df, focus=("2024-01-01 02:30", "2024-01-01 02:49"),
                                baseline=("2024-01-01 01:00", "2024-01-01 02:29"))
    pd.testing.assert_frame_equal(by_string, by_position)
    # the default baseline follows a focus given as strings too
    pd.testing.assert_frame_equal(
        pp.rank_changes(df, focus=("2024-01-01 02:30", "2024-01-01 02:49")),
        pp.rank_changes(df, focus=(150, 170)))
    # a partial time covers its whole hour, as df.loc does
    assert pp.window_rows(("2024-01-01 02", "2024-01-01 02"), df.index, name="focus") == (120, 180)


@pytest.mark.parametrize(
    "focus, match",
    [
        (("2024-01-01 02:49", "2024-01-01 02:30"), r"focus=.* is reversed"),
        (("2023-12-31 23:00", "2024-01-01 00:10"), r"focus=.* is outside the data"),
        (("2024-01-01 02:30", "2024-01-02 00:00"), r"focus=.* is outside the data"),
        (("2024-01-01 02:30:10", "2024-01-01 02:30:50"), r"focus=.* holds no rows"),
        (("soon", "later"), r"'soon' is not a time"),
        ((1.5, 2.5), "cannot be compared with the index"),
    ],
)
def test_rank_changes_rejects_bad_string_windows(rng, focus, match):
    with pytest.raises(ValueError, match=match):
        pp.rank_changes(_incident_frame(rng), focus=focus)


@settings(max_examples=60, deadline=None)
@given(st.integers(-60, 12_000), st.integers(-60, 12_000))
def test_window_labels_read_as_loc(first, last):
    """Times inside the data select the rows df.loc selects (to the second, between rows)."""
    idx = pd.date_range("2024-01-01", periods=200, freq="min")  # 0 .. 11_940 s
    start, end = (idx[0] + pd.Timedelta(seconds=v) for v in (first, last))
    labels = (str(start), str(end))
    if end < start:
        with pytest.raises(ValueError, match="reversed"):
            pp.window_rows(labels, idx, name="w")
        return
    if start < idx[0] or end > idx[-1]:
        with pytest.raises(ValueError, match="outside the data"):
            pp.window_rows(labels, idx, name="w")
        return
    rows = pd.Series(np.arange(len(idx)), index=idx).loc[start:end].to_numpy()
    if rows.size == 0:
        with pytest.raises(ValueError, match="holds no rows"):
            pp.window_rows(labels, idx, name="w")
    else:
        assert pp.window_rows(labels, idx, name="w") == (rows[0], rows[-1] + 1)
