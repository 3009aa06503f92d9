"""make_server_metrics: its truth must be true, and counters_to_rates must be right."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from naive import counter_increments
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, roc_auc_score

from lab.datasets import make_server_metrics
from lab.datasets.server_metrics import (
    CHANGE_KINDS,
    METRIC_TYPES,
    counters_to_rates,
    default_incident,
    focus_and_baseline,
)
from lab.evaluation import evaluate_ranking, rank_scores
from lab.signal_utility import ks_2samp_columns

SMALL = dict(n_metrics=120, n_rows=1200, n_groups=4, n_affected=12)


@pytest.fixture(scope="module")
def default_data():
    return make_server_metrics(random_state=0)


@pytest.fixture(scope="module")
def small_pair():
    """The same seed with and without the incident (the counterfactual)."""
    with_incident = make_server_metrics(**SMALL, random_state=3)
    without = make_server_metrics(**{**SMALL, "n_affected": 0}, random_state=3)
    return with_incident, without


def _filled_rates(df):
    return counters_to_rates(df).ffill().bfill()


def _windows(values, truth, mult=4):
    start, end = truth["incident_pos"]
    return values[start - mult * (end - start):start], values[start:end]


def test_shape_index_and_truth_layout(default_data):
    df, truth = default_data
    assert df.shape == (3600, 500)
    assert isinstance(df.index, pd.DatetimeIndex) and df.index.freqstr == "s"
    assert df.columns.is_unique
    assert list(truth["group"].index) == list(df.columns)
    assert sorted(truth["group"].unique()) == list(range(8))
    for name, kind in truth["metric_type"].items():
        assert name.endswith(METRIC_TYPES[kind])
    assert len(truth["affected"]) == 25 == len(set(truth["affected"]))
    assert list(truth["change"].index) == truth["affected"]
    assert set(truth["change"]) == set(CHANGE_KINDS)
    sparse = truth["metric_type"][truth["affected"]] == "sparse"
    assert "flatline" not in set(truth["change"][sparse.to_numpy()])
    start, end = truth["incident_pos"]
    assert 0 < start < end <= len(df)
    assert truth["incident"] == (df.index[start], df.index[end - 1])
    assert len(df.loc[truth["incident"][0]:truth["incident"][1]]) == end - start
    # the default incident leaves room for a baseline four times as long
    assert start >= 4 * (end - start)


def test_metric_types_look_like_what_they_claim(default_data):
    df, truth = default_data
    kind = truth["metric_type"]
    for name in df.columns:
        col = df[name].dropna()
        if kind[name] == "percent":
            assert col.between(0, 100).all(), name
        elif kind[name] == "integer":
            assert (col == col.round()).all() and col.nunique() < 0.1 * len(col), name
        elif kind[name] == "sparse":
            assert (col == 0).mean() > 0.7 and (col > 0).any(), name
        elif kind[name] == "counter":
            # monotone apart from at most one restart from 0
            assert (np.diff(col.to_numpy()) < 0).sum() <= 1, name
        assert (col >= 0).all(), name
    nan_cols = df.columns[df.isna().any()]
    assert 1 <= len(nan_cols) <= 10
    assert df.isna().to_numpy().mean() < 0.001


def test_random_state_reproduces_and_differs():
    a, ta = make_server_metrics(**SMALL, random_state=7)
    b, tb = make_server_metrics(**SMALL, random_state=7)
    c, _ = make_server_metrics(**SMALL, random_state=8)
    pd.testing.assert_frame_equal(a, b)
    assert ta["affected"] == tb["affected"]
    pd.testing.assert_series_equal(ta["group"], tb["group"])
    assert not np.allclose(a.fillna(0).to_numpy(), c.fillna(0).to_numpy())


def test_only_affected_metrics_change_and_only_in_the_incident(small_pair):
    (df, truth), (clean, clean_truth) = small_pair
    assert clean_truth["affected"] == []
    pd.testing.assert_series_equal(truth["group"], clean_truth["group"])
    rates, clean_rates = counters_to_rates(df), counters_to_rates(clean)
    start, end = truth["incident_pos"]
    others = df.columns.difference(truth["affected"])
    pd.testing.assert_frame_equal(rates[others], clean_rates[others])
    outside = np.r_[0:start, end:len(df)]
    pd.testing.assert_frame_equal(
        rates[truth["affected"]].iloc[outside], clean_rates[truth["affected"]].iloc[outside]
    )
    for name in truth["affected"]:
        assert not rates[name].iloc[start:end].equals(clean_rates[name].iloc[start:end]), name


def test_affected_metrics_change_visibly_and_others_only_a_little(default_data):
    """A KS test of the incident against the 4x baseline before it sees the changes.

    The unaffected metrics are not identically distributed in the two windows
    (seasonality, AR noise): with seed 0, 96 of 475 have p < 1e-3 (seeds 0 to 5:
    2 to 104), but their KS distances stay small (95th percentile 0.151; seeds 0
    to 5: 0.10 to 0.18). The bounds below hold those with a margin.
    """
    df, truth = default_data
    base, focus = _windows(_filled_rates(df).to_numpy(), truth)
    stat, pvalue = ks_2samp_columns(base, focus)
    affected = df.columns.isin(truth["affected"])
    assert (pvalue[affected] < 1e-3).all()
    assert np.median(stat[~affected]) < 0.12
    assert np.quantile(stat[~affected], 0.95) < 0.2
    assert (pvalue[~affected] < 1e-3).mean() < 0.3
    for kind in ("level_shift", "flatline"):
        names = truth["change"].index[truth["change"] == kind]
        assert (stat[df.columns.get_indexer(names)] > 0.4).all(), kind
    top = df.columns[np.argsort(-stat, kind="stable")[: len(truth["affected"])]]
    assert np.isin(top, truth["affected"]).mean() >= 0.8


def test_groups_are_recoverable_by_euclidean_kmeans(default_data):
    df, truth = default_data
    values = _filled_rates(df).to_numpy()
    z = (values - values.mean(axis=0)) / values.std(axis=0)
    labels = KMeans(n_clusters=8, n_init=2, random_state=0).fit_predict(z.T)
    assert adjusted_rand_score(truth["group"].to_numpy(), labels) >= 0.9


@pytest.mark.parametrize(
    "incident, match",
    [
        ((500, 400), "reversed"),
        ((100, 1300), "outside"),
        ((-5, 10), "outside"),
        ((100, 101), "at least 2"),
        ((100, "2024-01-01 00:05:00"), "mixes"),
        (("2023-01-01", "2023-01-02"), r"incident=.* is outside the data"),
        (("2024-01-01 00:10", "2024-01-01 00:05"), r"incident=.* is reversed"),
        (("2024-01-01 00:05:00.2", "2024-01-01 00:05:00.7"), r"incident=.* holds no rows"),
        (42, "pair"),
    ],
)
def test_bad_incident_is_a_clear_error(incident, match):
    with pytest.raises(ValueError, match=match):
        make_server_metrics(**SMALL, incident=incident)


def test_incident_labels_and_positions_agree():
    df, truth = make_server_metrics(**SMALL, incident=(300, 400), random_state=1)
    df2, truth2 = make_server_metrics(
        **SMALL, incident=(df.index[300], df.index[399]), random_state=1
    )
    assert truth["incident_pos"] == truth2["incident_pos"] == (300, 400)
    pd.testing.assert_frame_equal(df, df2)
    # strings are times, read as rank_changes reads them (the one window rule)
    _, truth3 = make_server_metrics(
        **SMALL, incident=("2024-01-01 00:05:00", "2024-01-01 00:06:39"), random_state=1
    )
    assert truth3["incident_pos"] == (300, 400)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_metrics": 0}, "n_metrics"),
        ({"n_groups": 200}, "n_groups"),
        ({"n_affected": 121}, "n_affected"),
        ({"n_rows": 10}, "n_rows"),
        ({"freq": "bogus"}, "freq"),
    ],
)
def test_bad_sizes_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_server_metrics(**{**SMALL, **kwargs})


@pytest.mark.parametrize("freq", ["-1s", "0s", "-1D", "-1MS", pd.Timedelta(-1, "s"),
                                  pd.offsets.Hour(0)])
def test_non_positive_freq_is_refused(freq):
    # freq="-1s" made an index that runs backwards
    with pytest.raises(ValueError, match=r"freq must be a positive period .* got"):
        make_server_metrics(**{**SMALL, "freq": freq})


@pytest.mark.parametrize("freq", ["5min", pd.Timedelta(2, "s"), "MS"])
def test_positive_freq_gives_an_increasing_index(freq):
    df, _ = make_server_metrics(**{**SMALL, "freq": freq})
    assert df.index.is_monotonic_increasing and df.index.is_unique
    assert df.index.freq == pd.tseries.frequencies.to_offset(freq)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.one_of(st.integers(0, 50).map(float), st.just(np.nan)), min_size=1, max_size=30)
)
def test_counters_to_rates_matches_naive(values):
    df = pd.DataFrame({"x_total": values, "y_rate": values})
    out = counters_to_rates(df)
    np.testing.assert_array_equal(out["x_total"], counter_increments(np.c_[values])[:, 0])
    pd.testing.assert_series_equal(out["y_rate"], df["y_rate"])


def test_counters_to_rates_explicit_columns_and_errors():
    df = pd.DataFrame({"a": [1.0, 2, 4], "b_total": [5.0, 6, 7]})
    out = counters_to_rates(df, columns=["a"])
    assert out["a"].tolist()[1:] == [1.0, 2.0] and out["b_total"].tolist() == [5.0, 6, 7]
    with pytest.raises(ValueError, match="not in df"):
        counters_to_rates(df, columns=["nope"])
    with pytest.raises(ValueError, match="DataFrame"):
        counters_to_rates(df.to_numpy())


@pytest.mark.parametrize("n_rows", [60, 600, 3600, 10_000])
def test_default_incident_is_the_generators_and_fits_a_baseline(n_rows):
    start, end = default_incident(n_rows)
    _, truth = make_server_metrics(n_metrics=8, n_rows=n_rows, n_groups=2, n_affected=0)
    assert truth["incident_pos"] == (start, end)
    assert focus_and_baseline((start, end), n_rows)[1] == (start - 4 * (end - start), start)


@settings(max_examples=60, deadline=None)
@given(st.integers(-5, 120), st.integers(-5, 120), st.integers(1, 6))
def test_focus_and_baseline_accepts_exactly_the_windows_that_fit(start, end, mult):
    n_rows = 100
    fits = 0 <= start < end <= n_rows and start >= mult * (end - start)
    if fits:
        focus, base = focus_and_baseline((start, end), n_rows, mult)
        assert focus == (start, end) and base[1] == start
        assert base[1] - base[0] == mult * (end - start) and base[0] >= 0
    else:
        with pytest.raises(ValueError, match="focus"):
            focus_and_baseline((start, end), n_rows, mult)


@pytest.mark.parametrize(
    "focus, match",
    [
        ((300, 200), r"focus=\(300, 200\) is reversed"),
        ((200, 200), r"focus=\(200, 200\) holds no rows"),
        ((500, 700), r"focus=\(500, 700\) is outside the data"),
        ((100, 200), "too early for a baseline of 4 x 100 = 400 rows"),
        ((1.5, 300), "integer row positions"),
        (None, "pair"),
    ],
)
def test_focus_and_baseline_messages(focus, match):
    with pytest.raises(ValueError, match=match):
        focus_and_baseline(focus, 600)


def test_rank_scores_follow_the_order_and_reject_bad_rankings():
    ranking = pd.DataFrame({"score": [np.inf, 3.0, 3.0]}, index=["c", "a", "d"])
    scores = rank_scores(ranking, ["a", "b", "c", "d"])
    assert scores.to_dict() == {"a": 2.0, "b": 0.0, "c": 3.0, "d": 1.0}
    with pytest.raises(ValueError, match="repeats"):
        rank_scores(pd.Series([1.0, 2.0], index=["a", "a"]), ["a"])
    with pytest.raises(ValueError, match="not known"):
        rank_scores(pd.Series([1.0], index=["z"]), ["a"])


def test_evaluate_ranking_matches_a_hand_count_and_sklearn():
    df, truth = make_server_metrics(**SMALL, random_state=5)
    rng = np.random.default_rng(0)
    # a random ranking that misses two metrics (as if dropped by cleaning)
    order = list(rng.permutation(df.columns)[:-2])
    table = evaluate_ranking(pd.Series(0.0, index=order), truth, k=30)
    assert list(table.index) == [*CHANGE_KINDS, "all"]
    position = {m: i for i, m in enumerate(order)}
    score = np.array([-position.get(m, len(order)) for m in df.columns], dtype=float)
    top = set(order[:30])
    for kind, row in table.iterrows():
        members = truth["affected"] if kind == "all" else list(
            truth["change"].index[truth["change"] == kind])
        assert row["n"] == len(members)
        assert row["found"] == len(top.intersection(members))
        assert row["precision_at_k"] == len(top.intersection(members)) / 30
        assert row["recall_at_k"] == row["found"] / len(members)
        keep = ~df.columns.isin(truth["affected"]) | df.columns.isin(members)
        expected = roc_auc_score(df.columns[keep].isin(members), score[keep])
        assert row["auc"] == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="no affected"):
        evaluate_ranking(pd.Series(0.0, index=order), {**truth, "affected": []})
