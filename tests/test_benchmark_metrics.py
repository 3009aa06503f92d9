"""VUS, NAB and UCR scores against their benchmarks' own values and loop references."""

from __future__ import annotations

import json
import os
from pathlib import Path

import naive
import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lab import metrics
from lab.benchmark_metrics import NAB_PROFILES
from lab.datasets import load_nab_results

DATA = Path(os.environ.get("LAB_SHARED_DATA",
                           Path(__file__).resolve().parents[2] / "shared" / "data"))
VUS_REFERENCE = DATA / "reference" / "vus_tsbad.json"
NAB_ROOT = DATA / "nab"
UCR_ROOT = DATA / "ucr_anomaly"


# --------------------------------------------------------------------- VUS


def test_vus_reproduces_tsbad_reference_values():
    if not VUS_REFERENCE.is_file():
        pytest.skip(f"TSB-AD reference values not found at {VUS_REFERENCE}")
    cases = json.loads(VUS_REFERENCE.read_text())["cases"]
    assert cases
    for case in cases:
        y, s, w = np.array(case["labels"]), np.array(case["score"]), case["window"]
        assert metrics.vus_pr(y, s, window=w) == pytest.approx(case["vus_pr"], abs=1e-6)
        assert metrics.vus_roc(y, s, window=w) == pytest.approx(case["vus_roc"], abs=1e-6)
        # the same file's AUCs check that the labels and scores were read the same way
        assert metrics.auc_pr(y, s) == pytest.approx(case["auc_pr"], abs=1e-9)
        assert metrics.auc_roc(y, s) == pytest.approx(case["auc_roc"], abs=1e-9)


def test_vus_matches_the_loop_reference_on_the_reference_case():
    if not VUS_REFERENCE.is_file():
        pytest.skip(f"TSB-AD reference values not found at {VUS_REFERENCE}")
    case = json.loads(VUS_REFERENCE.read_text())["cases"][0]
    y, s = np.array(case["labels"])[:600], np.array(case["score"])[:600]
    y[:3] = 1  # an anomaly at the very start as well
    roc, pr = naive.vus_tsbad(y, s, window=10)
    assert metrics.vus_roc(y, s, window=10) == pytest.approx(roc, abs=1e-12)
    assert metrics.vus_pr(y, s, window=10) == pytest.approx(pr, abs=1e-12)


@st.composite
def labels_and_scores(draw):
    n = draw(st.integers(2, 90))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    assume(0 < y.sum() < n)
    # few distinct values make ties common; a constant score is allowed
    levels = draw(st.integers(1, 6))
    s = np.array(draw(st.lists(st.integers(0, levels), min_size=n, max_size=n)), float)
    if draw(st.booleans()):
        s = s + np.array(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)))
    return y, s


@settings(max_examples=60, deadline=None)
@given(data=labels_and_scores(), window=st.integers(0, 14), n_thr=st.integers(1, 40))
def test_vus_matches_the_loop_reference(data, window, n_thr):
    y, s = data
    roc, pr = naive.vus_tsbad(y, s, window, n_thresholds=n_thr)
    assert metrics.vus_roc(y, s, window, n_thresholds=n_thr) == pytest.approx(roc, abs=1e-12)
    assert metrics.vus_pr(y, s, window, n_thresholds=n_thr) == pytest.approx(pr, abs=1e-12)


@settings(max_examples=8, deadline=None)
@given(data=labels_and_scores(), window=st.integers(60, 120))
def test_vus_window_longer_than_the_series_and_250_thresholds(data, window):
    y, s = data
    roc, pr = naive.vus_tsbad(y, s, window)
    assert metrics.vus_roc(y, s, window) == pytest.approx(roc, abs=1e-12)
    assert metrics.vus_pr(y, s, window) == pytest.approx(pr, abs=1e-12)


def test_vus_perfect_and_pandas_input():
    y = np.zeros(300, dtype=int)
    y[100:120] = 1
    y[-5:] = 1  # anomaly at the end
    s = y.astype(float)
    idx = pd.date_range("2024-01-01", periods=300, freq="min")
    assert metrics.vus_roc(pd.Series(y, index=idx), pd.Series(s, index=idx), 0) == \
        pytest.approx(1.0)
    assert metrics.vus_pr(y, s, window=0) == pytest.approx(1.0)
    # buffers reward a score that rises just before the anomaly
    early = np.roll(s, -3)
    assert metrics.vus_pr(y, early, window=20) > metrics.vus_pr(y, early, window=0)


@pytest.mark.parametrize("fn", [metrics.vus_pr, metrics.vus_roc])
def test_vus_bad_input(fn):
    with pytest.raises(ValueError, match="both classes.*only 0s"):
        fn([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="both classes.*only 1s"):
        fn([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="window must be >= 0"):
        fn([0, 1], [0.1, 0.2], window=-1)
    with pytest.raises(ValueError, match="window must be an integer"):
        fn([0, 1], [0.1, 0.2], window=2.5)
    with pytest.raises(ValueError, match="same length"):
        fn([0, 1, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN or infinite"):
        fn([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="only 0/1"):
        fn([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="n_thresholds must be >= 1"):
        fn([0, 1], [0.1, 0.2], n_thresholds=0)


# --------------------------------------------------------------------- NAB


def test_nab_score_reproduces_published_final_scores():
    published_path = NAB_ROOT / "results" / "published.json"
    if not published_path.is_file():
        pytest.skip(f"NAB published results not found at {published_path}")
    published = json.loads(published_path.read_text())
    assert set(published) == {"numenta", "windowedGaussian"}
    for detector, info in published.items():
        scores, windows = load_nab_results(detector, NAB_ROOT)
        for profile, threshold in info["threshold"].items():
            detections = {k: s >= threshold for k, s in scores.items()}
            got = metrics.nab_score(detections, windows, profile=profile)
            assert got == pytest.approx(info["final_score"][profile], abs=1e-6), \
                (detector, profile)


@st.composite
def nab_series(draw, min_windows=0):
    n = draw(st.integers(1, 260))
    cuts = sorted(draw(st.sets(st.integers(0, n - 1), max_size=8)))
    # consecutive pairs of distinct cut points are windows; a one-row window
    # comes from a repeated cut
    windows = []
    for a, b in zip(cuts[::2], cuts[1::2], strict=False):
        windows.append((a, b))
    if draw(st.booleans()) and cuts and (not windows or cuts[-1] > windows[-1][1]):
        windows.append((cuts[-1], cuts[-1]))
    assume(len(windows) >= min_windows)
    density = draw(st.sampled_from([0.0, 0.02, 0.2, 0.8]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    detected = rng.random(n) < density
    return detected, windows


@settings(max_examples=150, deadline=None)
@given(corpus=st.lists(nab_series(), min_size=1, max_size=4),
       profile=st.sampled_from(sorted(NAB_PROFILES)), datetimes=st.booleans())
def test_nab_score_matches_the_row_walk(corpus, profile, datetimes):
    assume(sum(len(w) for _, w in corpus) > 0)
    cost = NAB_PROFILES[profile]
    detections, windows = {}, {}
    for k, (det, win) in enumerate(corpus):
        if datetimes:
            index = pd.date_range("2020-01-01", periods=len(det), freq="5min")
        else:
            index = pd.RangeIndex(len(det)) * 10
        detections[k] = pd.Series(det, index=index)
        windows[k] = [(index[a], index[b]) for a, b in win]
    expected = naive.nab_score(corpus, cost)
    assert metrics.nab_score(detections, windows, profile) == pytest.approx(expected, abs=1e-9)
    if len(corpus) == 1 and windows[0]:
        assert metrics.nab_score(detections[0], windows[0], profile) == \
            pytest.approx(expected, abs=1e-9)


def test_nab_profiles_are_nabs_config():
    path = NAB_ROOT / "config" / "profiles.json"
    if not path.is_file():
        pytest.skip(f"NAB profiles not found at {path}")
    config = json.loads(path.read_text())
    assert set(config) == set(NAB_PROFILES)
    for name, profile in config.items():
        for key, weight in NAB_PROFILES[name].items():
            assert profile["CostMatrix"][key] == weight, (name, key)


def test_nab_null_perfect_and_hand_computed_cases():
    index = pd.date_range("2024-01-01", periods=2000, freq="h")
    windows = [(index[800], index[849]), (index[1500], index[1599])]
    none = pd.Series(False, index=index)
    assert metrics.nab_score(none, windows) == 0.0
    perfect = none.copy()
    perfect.iloc[[800, 1500]] = True
    for profile in NAB_PROFILES:
        assert metrics.nab_score(perfect, windows, profile) == pytest.approx(100.0)
    # only the first detection in a window counts: more hits change nothing
    more = perfect.copy()
    more.iloc[[801, 840, 1550]] = True
    assert metrics.nab_score(more, windows) == pytest.approx(100.0)
    # a late hit in the first window (row 824 of 800..849):
    # sigma(-26/50) / sigma(-1) with sigma(x) = 2 / (1 + e^(5x)) - 1
    late = none.copy()
    late.iloc[[824, 1500]] = True
    sigma = lambda x: 2 / (1 + np.exp(5 * x)) - 1  # noqa: E731
    tp = sigma(-26 / 50) / sigma(-1)
    assert metrics.nab_score(late, windows) == pytest.approx(100 * (tp + 1 + 2) / 4)
    # detections in the probationary period (first 15%, here 300 rows) are ignored,
    # a false positive 10 rows after a 50-row window costs 0.11 * sigma(10/49)
    probation = perfect.copy()
    probation.iloc[[0, 299]] = True
    assert metrics.nab_score(probation, windows) == pytest.approx(100.0)
    fp = perfect.copy()
    fp.iloc[859] = True
    assert metrics.nab_score(fp, windows) == pytest.approx(
        100 * (2 + 0.11 * sigma(10 / 49) + 2) / 4)
    # before any window a false positive costs the full weight
    early = perfect.copy()
    early.iloc[400] = True
    assert metrics.nab_score(early, windows, "reward_low_FP_rate") == \
        pytest.approx(100 * (2 - 0.22 + 2) / 4)


def test_nab_probationary_period_is_capped_at_750_rows():
    index = pd.RangeIndex(10_000)  # 15% would be 1500 rows; NAB caps it at 750
    windows = [(5000, 5099)]
    det = pd.Series(False, index=index)
    det.iloc[[5000, 760]] = True  # a false positive just after the cap counts
    assert metrics.nab_score(det, windows) == pytest.approx(100 * (2 - 0.11) / 2)
    det.iloc[760] = False
    det.iloc[749] = True  # inside the capped probationary period: ignored
    assert metrics.nab_score(det, windows) == pytest.approx(100.0)


def test_nab_bad_input():
    index = pd.date_range("2024-01-01", periods=100, freq="min")
    det = pd.Series(False, index=index)
    with pytest.raises(ValueError, match="profile must be one of"):
        metrics.nab_score(det, [(index[50], index[60])], profile="strict")
    with pytest.raises(ValueError, match="at least one anomaly window"):
        metrics.nab_score(det, [])
    with pytest.raises(ValueError, match="bool pandas Series"):
        metrics.nab_score(det.to_numpy(), [(index[50], index[60])])
    with pytest.raises(ValueError, match=r"windows\[0\].*ends before it starts"):
        metrics.nab_score(det, [(index[60], index[50])])
    with pytest.raises(ValueError, match="holds no row"):
        metrics.nab_score(det, [("2030-01-01", "2030-01-02")])
    with pytest.raises(ValueError, match="overlapping windows"):
        metrics.nab_score(det, [(index[10], index[30]), (index[30], index[40])])
    with pytest.raises(ValueError, match="pair"):
        metrics.nab_score(det, [(index[10],)])
    with pytest.raises(ValueError, match="same keys"):
        metrics.nab_score({"a": det}, {"b": []})
    with pytest.raises(ValueError, match="must be a dict"):
        metrics.nab_score({"a": det}, [(index[10], index[20])])
    with pytest.raises(ValueError, match="only 0/1"):
        metrics.nab_score(pd.Series(2, index=index), [(index[10], index[20])])


def test_nab_string_window_limits_and_repeated_timestamps():
    # NAB's own series repeat timestamps; windows are placed by row
    index = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 00:05", "2024-01-01 00:05",
                              "2024-01-01 00:10"] * 1 + list(
        pd.date_range("2024-01-01 00:15", periods=96, freq="5min")))
    det = pd.Series(False, index=index)
    det.iloc[50] = True
    windows = [(str(index[50]), str(index[59]))]
    assert metrics.nab_score(det, windows) == pytest.approx(100.0)


# --------------------------------------------------------------------- UCR


def test_ucr_hit_on_the_archive_series():
    path = UCR_ROOT / "135_UCR_Anomaly_InternalBleeding16_TEST.csv"
    if not path.is_file():
        pytest.skip(f"UCR anomaly series not found at {path}")
    df = pd.read_csv(path)
    y, x = df["is_anomaly"], df["value"].to_numpy()
    rows = np.flatnonzero(y)
    assert (rows[0], rows[-1]) == (4187, 4198)
    # the second difference peaks inside this anomaly (a sharp glitch) ...
    curvature = pd.Series(np.r_[0.0, np.abs(np.diff(x, 2)), 0.0], index=df.index)
    assert metrics.ucr_hit(y, curvature)
    # ... a one-period seasonal difference (period 183 in TRAIN) peaks elsewhere
    seasonal = np.r_[np.zeros(183), np.abs(x[183:] - x[:-183])]
    assert not metrics.ucr_hit(y, seasonal)
    # the rule's edges on these labels: 100 points either side, no more
    for at, hit in [(4087, True), (4086, False), (4298, True), (4299, False)]:
        score = np.zeros(len(y))
        score[at] = 1.0
        assert metrics.ucr_hit(y, score) is hit, at
        assert naive.ucr_hit(y.tolist(), score.tolist()) is hit


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 300), data=st.data(), tolerance=st.integers(0, 120))
def test_ucr_hit_matches_the_loop(n, data, tolerance):
    a = data.draw(st.integers(0, n - 1))
    b = data.draw(st.integers(a, n - 1))
    y = np.zeros(n, dtype=int)
    y[a:b + 1] = 1
    levels = data.draw(st.integers(0, 4))  # 0: a constant score
    s = np.array(data.draw(st.lists(st.integers(0, levels), min_size=n, max_size=n)), float)
    assert metrics.ucr_hit(y, s, tolerance) is naive.ucr_hit(y.tolist(), s.tolist(), tolerance)


def test_ucr_hit_bad_input():
    with pytest.raises(ValueError, match="exactly one labelled anomaly.*found 2"):
        metrics.ucr_hit([1, 0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="exactly one labelled anomaly.*found 0"):
        metrics.ucr_hit([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        metrics.ucr_hit([0, 1, 0], [0.1, 0.2, 0.3], tolerance=-1)
    with pytest.raises(ValueError, match="same length"):
        metrics.ucr_hit([0, 1, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN or infinite"):
        metrics.ucr_hit([0, 1, 0], [0.1, np.inf, 0.3])


def test_nab_index_out_of_order_needs_exact_window_limits():
    # one of NAB's series steps back in time once; windows are then found by their
    # exact timestamps, in row order, as NAB's sweeper does
    index = pd.Index(list(range(0, 500, 5)) + list(range(300, 800, 5)))
    det = pd.Series(False, index=index)
    det.iloc[150] = True  # value 550, inside the window below, after the step back
    assert metrics.nab_score(det, [(550, 600)]) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="not increasing.*timestamps of the series"):
        metrics.nab_score(det, [(551, 600)])


def test_nab_threshold_does_at_least_as_well_as_nabs_optimiser():
    published_path = NAB_ROOT / "results" / "published.json"
    if not published_path.is_file():
        pytest.skip(f"NAB published results not found at {published_path}")
    published = json.loads(published_path.read_text())
    scores, windows = load_nab_results("windowedGaussian", NAB_ROOT)
    for profile, final in published["windowedGaussian"]["final_score"].items():
        threshold, score = metrics.nab_threshold(scores, windows, profile)
        # NAB's local search on [0, 1] is not exhaustive: ours may find more, never less
        assert score >= final - 1e-6, profile  # 1e-6: as the reproduction test above
        # and the score is the corpus score of the threshold it returns
        detections = {k: s >= threshold for k, s in scores.items()}
        assert metrics.nab_score(detections, windows, profile) == pytest.approx(score)


@settings(max_examples=25, deadline=None)
@given(corpus=nab_series(min_windows=1), profile=st.sampled_from(sorted(NAB_PROFILES)),
       seed=st.integers(0, 2**32 - 1))
def test_nab_threshold_is_the_best_of_its_candidates(corpus, profile, seed):
    detected, windows = corpus
    n = len(detected)
    # a score with ties, as real detectors give
    score = pd.Series(np.random.default_rng(seed).integers(0, 6, n).astype(float))
    threshold, best = metrics.nab_threshold({"a": score}, {"a": windows}, profile,
                                            n_thresholds=n + 2)
    # with a candidate per row, no threshold does better (brute force over every value)
    for t in np.r_[np.unique(score), np.inf]:
        assert metrics.nab_score(score >= t, windows, profile) <= best + 1e-9
    assert metrics.nab_score(score >= threshold, windows, profile) == pytest.approx(best)


@settings(max_examples=150, deadline=None)
@given(corpus=nab_series(), profile=st.sampled_from(sorted(NAB_PROFILES)),
       levels=st.integers(0, 8), seed=st.integers(0, 2**32 - 1))
def test_nab_raw_curve_is_the_raw_score_at_every_threshold(corpus, profile, levels, seed):
    """The one-sort threshold curve equals the raw score of ``score >= t``, t by t."""
    from lab.benchmark_metrics import _nab_raw, _nab_raw_curve, _nab_windows

    _, windows = corpus
    n = len(corpus[0])
    rng = np.random.default_rng(seed)
    # ties (few levels), a constant score (0 levels) and distinct floats
    score = rng.integers(0, levels + 1, n).astype(float) if levels else np.full(n, 0.5)
    if levels == 8:
        score = rng.normal(size=n)
    left, right = _nab_windows(windows, pd.RangeIndex(n), "windows")
    cost = NAB_PROFILES[profile]
    thresholds = np.r_[np.unique(score), np.nextafter(score.max(), np.inf), -np.inf,
                       rng.normal(size=3)]
    got = _nab_raw_curve(score, left, right, cost, thresholds)
    want = [_nab_raw(score >= t, left, right, cost) for t in thresholds]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_nab_threshold_bad_input():
    t = pd.date_range("2024-01-01", periods=50, freq="min")
    s = pd.Series(np.arange(50.0), index=t)
    with pytest.raises(ValueError, match="same keys"):
        metrics.nab_threshold({"a": s}, {"b": []})
    with pytest.raises(ValueError, match="NaN"):
        metrics.nab_threshold({"a": s.where(s > 3)}, {"a": [(t[10], t[20])]})
    with pytest.raises(ValueError, match="at least one anomaly window"):
        metrics.nab_threshold({"a": s}, {"a": []})
    with pytest.raises(ValueError, match="must be a pandas Series"):
        metrics.nab_threshold({"a": s.to_numpy()}, {"a": [(t[10], t[20])]})
