"""Change-point references: ruptures detectors against ruptures, BOCPD against its loop twin,
the tcpd_default presets against TCPDBench's published scores."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import ruptures as rpt
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.models import get_detector
from lab.models.bocpd import BOCPDDetector, _bocpd_kernel, map_change_points, standardize
from lab.models.changepoint import (
    AR_ORDER,
    BinsegDetector,
    BottomUpDetector,
    PeltDetector,
    WindowDetector,
    bic_penalty,
    changepoint_binseg,
    changepoint_pelt,
)
from tests import naive

pytestmark = pytest.mark.filterwarnings("ignore:New behaviour in v1.1.5:UserWarning")

RUPTURES = {"pelt": rpt.Pelt, "binseg": rpt.Binseg, "bottomup": rpt.BottomUp}


def _steps(n=150, d=1, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    level = np.repeat(rng.normal(scale=3, size=(3, d)), [n // 3, n // 3, n - 2 * (n // 3)],
                      axis=0)
    return level + scale * rng.normal(size=(n, d))


@pytest.mark.parametrize("algo", ["pelt", "binseg", "bottomup"])
@pytest.mark.parametrize("cost", ["l2", "normal", "rbf", "ar"])
def test_same_change_points_as_ruptures(algo, cost):
    x = _steps(120, d=1, seed=1)
    signal = x[:, 0] if cost == "ar" else x
    min_size = AR_ORDER + 1 if cost == "ar" else 5
    params = {"order": AR_ORDER} if cost == "ar" else None
    ref = RUPTURES[algo](model=cost, min_size=min_size, jump=1, params=params).fit(signal)
    det = get_detector(algo, cost=cost, penalty=7.5).fit(x)
    assert det.change_points(x).tolist() == ref.predict(pen=7.5)[:-1]
    # the default penalty is the BIC one
    det = get_detector(algo, cost=cost).fit(x)
    assert det.change_points(x).tolist() == ref.predict(pen=bic_penalty(x, cost))[:-1]
    if algo != "pelt":
        det = get_detector(algo, cost=cost, n_bkps=2).fit(x)
        assert det.change_points(x).tolist() == ref.predict(n_bkps=2)[:-1]


def test_window_same_as_ruptures_and_score_is_its_curve():
    x = _steps(200, d=2, seed=2)
    ref = rpt.Window(width=20, model="l2", min_size=5, jump=1).fit(x)
    det = WindowDetector().fit(x)
    assert det.change_points(x).tolist() == ref.predict(pen=bic_penalty(x, "l2"))[:-1]
    assert det.change_points(x).tolist() == [66, 132]
    score = det.score(x).to_numpy()
    np.testing.assert_allclose(score[ref.inds], ref.score)
    assert WindowDetector(n_bkps=2).fit(x).change_points(x).tolist() == \
        ref.predict(n_bkps=2)[:-1]


def test_pelt_n_bkps_finds_that_many():
    x = _steps(150, seed=3)
    assert PeltDetector(n_bkps=2).fit(x).change_points(x).tolist() == [50, 100]
    assert len(PeltDetector(n_bkps=4).fit(x).change_points(x)) == 4


def test_score_marks_change_points_and_predict_matches():
    x = pd.DataFrame(_steps(150, seed=4), index=pd.date_range("2024", periods=150, freq="h"))
    det = BinsegDetector().fit(x)
    cps = det.change_points(x)
    s = det.score(x)
    assert s.index.equals(x.index) and np.flatnonzero(s.to_numpy()).tolist() == cps.tolist()
    assert np.flatnonzero(det.predict(x).to_numpy()).tolist() == cps.tolist()


@pytest.mark.parametrize("seed", range(4))
def test_bocpd_kernel_matches_loop_twin(seed):
    rng = np.random.default_rng(seed)
    d = 1 + seed % 2
    x = np.r_[rng.normal(size=(40, d)), rng.normal(3, 0.5, size=(40, d))]
    for prune in (0.0, 1e-4):
        log_ev, map_rl = _bocpd_kernel(x, 1 / 30, 0.0, 1.0, 1.0, 1.0, prune)
        ref_ev, ref_rl = naive.bocpd_map(x, 30, 0.0, 1.0, 1.0, 1.0, prune)
        np.testing.assert_allclose(log_ev, ref_ev, rtol=1e-10)
        np.testing.assert_array_equal(map_rl, ref_rl)


def test_bocpd_scipy_predictive_at_first_row():
    from scipy import stats

    x = np.array([[0.7], [0.1]])
    log_ev, _ = _bocpd_kernel(x, 0.01, 0.0, 1.0, 1.0, 1.0, 0.0)
    # Student t with 2a = 2 degrees of freedom, scale^2 = b (k + 1) / (a k) = 2
    assert log_ev[0] == pytest.approx(stats.t(df=2, loc=0, scale=np.sqrt(2)).logpdf(0.7))


def test_map_change_points_walks_back():
    # run grows to 4, a run starts after row 4 and grows to the end
    assert map_change_points(np.array([1, 2, 3, 4, 1, 2, 3])).tolist() == [4]
    assert map_change_points(np.array([1, 2, 0])).tolist() == []  # a change after the end
    # after row 2 a one-row run (started at 2); after row 0 the first run
    assert map_change_points(np.array([1, 1, 1])).tolist() == [2]


def test_changepoint_pelt_is_optimal_partition():
    rng = np.random.default_rng(5)
    for _ in range(5):
        x = np.r_[rng.normal(size=20), rng.normal(2, 1, size=15), rng.normal(-1, 1, size=25)]
        pen = 3 * np.log(len(x))
        assert changepoint_pelt(x, pen).tolist() == naive.mbic_optimal_partition(x, pen)
        # binseg: greedy, at most 5; finds the big ones
        assert len(changepoint_binseg(x, pen)) <= 5


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 60), d=st.integers(1, 3), seed=st.integers(0, 1000),
       name=st.sampled_from(["pelt", "binseg", "bottomup", "bocpd"]))
def test_change_points_are_sorted_rows_inside(n, d, seed, name):
    x = np.random.default_rng(seed).normal(size=(n, d))
    det = get_detector(name, **({"min_size": 2} if name != "bocpd" else {})).fit(x)
    cps = det.change_points(x)
    assert cps.dtype == np.intp
    assert np.all(np.diff(cps) > 0) and np.all((cps > 0) & (cps < n))
    assert det.score(x).shape == (n,)


@pytest.mark.parametrize("name", ["pelt", "binseg", "bottomup", "window", "bocpd"])
def test_constant_series_has_no_change(name):
    x = np.full((50, 2), 3.0)
    assert get_detector(name).fit(x).change_points(x).tolist() == []
    if name in ("pelt", "binseg", "bocpd"):
        c = np.full((50, 1), 3.0)
        assert get_detector(name, preset="tcpd_default").fit(c).change_points(c).tolist() == []


def test_bad_settings_name_the_parameter():
    x = _steps(60)
    with pytest.raises(ValueError, match="penalty must be >= 0"):
        PeltDetector(penalty=-1.0).fit(x)
    with pytest.raises(ValueError, match="n_bkps=20 is larger than a series of 60 rows"):
        BinsegDetector(n_bkps=20).fit(x).change_points(x)
    with pytest.raises(ValueError, match="cost must be one of"):
        BottomUpDetector(cost="l1").fit(x)
    with pytest.raises(ValueError, match="lam .* must be > 1"):
        BOCPDDetector(lam=1.0).fit(x)
    with pytest.raises(ValueError, match="prior_beta must be > 0"):
        BOCPDDetector(prior_beta=0.0).fit(x)
    with pytest.raises(ValueError, match="preset must be one of"):
        BinsegDetector(preset="nope").fit(x)
    with pytest.raises(ValueError, match="width must be >= 2 \\* min_size"):
        WindowDetector(width=6).fit(x)
    two = np.c_[x, x]
    with pytest.raises(ValueError, match="takes one column; X has 2"):
        BinsegDetector(preset="tcpd_default").fit(two).change_points(two)


def test_standardize_is_r_scale():
    x = np.array([[1.0], [2.0], [4.0]])
    np.testing.assert_allclose(standardize(x)[:, 0], (x[:, 0] - x.mean()) / x.std(ddof=1))


def _tcpd_means(root, name, method, metric="f1", shift=0):
    from lab.datasets import list_tcpd, load_tcpd
    from lab.metrics import covering, f1_margin
    from lab.preprocessor import clean_metrics

    published = json.loads((root / "published_default_scores.json").read_text())[metric]
    score = f1_margin if metric == "f1" else covering
    ours, theirs = [], []
    for series in list_tcpd(root):
        ref = published.get(series, {}).get(method)
        if ref is None:
            continue
        df, annotations = load_tcpd(series, root)
        if df.isna().any().any():
            df, _ = clean_metrics(df, warn=False)
        cps = get_detector(name, preset="tcpd_default").fit(df).change_points(df) + shift
        ours.append(score(annotations, cps.tolist(), len(df)))
        theirs.append(ref)
    return np.array(ours), np.array(theirs)


@pytest.mark.parametrize("name,count", [("binseg", 18), ("bocpd", 19)])
def test_tcpd_default_presets_reproduce_published_f1(tcpd_root, name, count):
    if not (tcpd_root / "published_default_scores.json").is_file():
        pytest.skip("no published scores")
    ours, theirs = _tcpd_means(tcpd_root, name, name)
    assert len(ours) == count
    assert abs(ours.mean() - theirs.mean()) < 0.05
    # per series: binseg is exact; bocpd within 0.07 on every series
    assert np.abs(ours - theirs).max() <= (1e-3 if name == "binseg" else 0.07)


def test_tcpd_binseg_locations_are_one_row_earlier(tcpd_root):
    """TCPDBench takes changepoint's cpts (the last row of a segment) as the change: one row
    before the first row of the new segment that change_points gives. Shifted back by one
    row, the preset's covering equals the published one on every series."""
    if not (tcpd_root / "published_default_scores.json").is_file():
        pytest.skip("no published scores")
    ours, theirs = _tcpd_means(tcpd_root, "binseg", "binseg", "cover", shift=-1)
    np.testing.assert_allclose(ours, theirs, atol=1e-3)
