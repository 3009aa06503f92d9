"""lab.cp_evaluation: the TCPD change-point leaderboard."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lab.cp_evaluation import (
    alarm_change_points,
    detect_change_points,
    leaderboard_summary,
    load_published_tcpd,
    tcpd_leaderboard,
)
from lab.models import get_detector


def test_alarm_change_points_one_per_episode():
    score = np.array([0, 5, 6, 0, 0, 1, 9, 9, 0, 0.0])
    # episodes [1, 3) and [5, 8) above 0.5: peaks at 2 and 6 (first of ties)
    assert alarm_change_points(score, 0.5).tolist() == [2, 6]
    assert alarm_change_points(score, 0.5, lag=3).tolist() == [1, 3]  # clipped to >= 1
    assert alarm_change_points(score, 100.0).tolist() == []


def test_detect_change_points_for_a_score_detector():
    x = np.r_[np.zeros(200), np.full(200, 4.0)] + np.random.default_rng(0).normal(size=400)
    cps = detect_change_points(get_detector("ks_window", window=20), x)
    assert len(cps) >= 1 and np.min(np.abs(cps - 200)) <= 5


def test_leaderboard_on_tcpd(tcpd_root):
    published = load_published_tcpd(tcpd_root)
    if not published["f1"]:
        pytest.skip("no published scores")
    detectors = {"binseg tcpd_default": ("binseg", {"preset": "tcpd_default"}),
                 "bocpd": ("bocpd", {})}
    board = tcpd_leaderboard(tcpd_root, detectors, ["nile", "run_log", "bank"])
    assert list(board.columns) == ["series", "n", "detector", "f1", "cover", "n_cps", "cps",
                                   "seconds", "skipped"]
    assert len(board) == 6 and (board["seconds"] >= 0).all()
    skipped = board.set_index(["series", "detector"]).loc[("run_log", "binseg tcpd_default")]
    assert "takes one column" in skipped["skipped"] and np.isnan(skipped["f1"])
    mine = board.set_index(["series", "detector"])["f1"]
    for s in ("nile", "bank"):
        assert mine[(s, "binseg tcpd_default")] == pytest.approx(published["f1"][s]["binseg"],
                                                                 abs=1e-3)
    summary = leaderboard_summary(board, published)
    assert {"published binseg", "published bocpd", "published zero"} <= set(summary.index)
    assert summary.loc["binseg tcpd_default", "series"] == 2
    assert summary.loc["published binseg", "f1"] == pytest.approx(
        np.mean([published["f1"][s]["binseg"] for s in ("nile", "bank")]))
    assert "f1 on binseg" in summary.columns
    assert isinstance(summary, pd.DataFrame)


@pytest.mark.slow
def test_skab_changepoint_leaderboard_on_three_experiments():
    from lab.cp_evaluation import skab_changepoint_leaderboard, skab_windows
    from lab.datasets import load_skab

    try:
        skab = load_skab()
    except FileNotFoundError:
        pytest.skip("SKAB data not found")
    some = {k: skab[k] for k in list(skab)[:3]}
    board = skab_changepoint_leaderboard(some, {"bocpd": ("bocpd", {}),
                                                "constant": ("constant", {})})
    assert list(board.columns) == ["standard", "reward_low_FP_rate", "reward_low_FN_rate",
                                   "detections", "seconds"]
    # the constant detector reports nothing: NAB's null detector scores 0
    assert board.loc["constant", "standard"] == pytest.approx(0.0)
    assert board.loc["constant", "detections"] == 0
    assert board.loc["bocpd", "standard"] > 0
    first = some[list(some)[0]].iloc[400:]
    w = skab_windows(first)
    cps = first.index[first["changepoint"] == 1]
    assert len(w) >= 1 and all(a in cps and a < b for a, b in w)
    # every true change point opens or lies in a window that runs 60 s past it (or to the end)
    for t in cps:
        assert any(a <= t and (b >= t + pd.Timedelta(seconds=60) or b == first.index[-1])
                   for a, b in w)
