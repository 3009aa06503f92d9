"""lab.stream.evaluate and pipeline helpers: delays, NAB report, stream timestamps (no broker)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lab.benchmark_metrics import nab_score
from lab.stream import Onset, RollingZScore
from lab.stream.evaluate import (
    detection_delays,
    nab_stream_report,
    onset_grid,
    score_frames,
    stream_timestamps,
)
from lab.stream.pipeline import NAB_ONSET, make_generated_corpus, nab_detectors, online_nab_scores


def test_stream_timestamps_strictly_increasing_order_kept():
    idx = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 00:05", "2024-01-01 00:05",
                            "2024-01-01 00:03", "2024-01-01 00:10"])
    ts = stream_timestamps(idx)
    assert (np.diff(ts) > 0).all()
    ns = idx.as_unit("ns").asi8
    assert ts[0] == ns[0] and ts[-1] == ns[-1]
    assert (ts >= ns).all() and (ts - ns)[:3].tolist() == [0, 0, 1]


def test_detection_delays_naive():
    t = pd.date_range("2024-01-01", periods=100, freq="5min")
    det = pd.Series(np.zeros(100, bool), index=t)
    det.iloc[[5, 33, 80]] = True
    windows = [(t[30], t[40]), (t[60], t[70]), (t[78], t[90])]
    d = detection_delays({"a": det}, {"a": windows})
    assert d["delay_points"].tolist()[0] == 3 and np.isnan(d["delay_points"][1])
    assert d["delay_points"][2] == 2 and d["delay_seconds"][2] == 600


def test_nab_stream_report_is_nab_score_at_its_threshold():
    corpus = make_generated_corpus(3, 3000)
    windows = {k: f.attrs["windows"] for k, f in corpus.items()}
    scores = {"z": score_frames(corpus, lambda: RollingZScore(window=50), batch=333)}
    rep = nab_stream_report(scores, windows, profiles=("standard",))
    th = rep["thresholds"]["z"]["standard"]
    direct = nab_score({k: s >= th for k, s in scores["z"].items()}, windows)
    assert rep["nab_scores"]["z"]["standard"] == pytest.approx(direct, abs=0.01)
    assert 0 <= rep["detected"]["z"] <= 1
    assert set(rep["median_delay"]["z"]) == {"points", "seconds"}


def test_score_frames_batching_does_not_matter():
    corpus = make_generated_corpus(1, 2000)
    make, _ = nab_detectors(["spot"])["spot"]
    a = score_frames(corpus, make, batch=1000)
    b = score_frames(corpus, make, batch=77)
    for k in a:
        np.testing.assert_array_equal(a[k].to_numpy(), b[k].to_numpy())
    with pytest.raises(ValueError, match="known"):
        nab_detectors(["nope"])


def test_onset_grid_equals_wrapping_each_detector_in_onset():
    frames = make_generated_corpus(3, 3000, random_state=4)
    windows = {k: f.attrs["windows"] for k, f in frames.items()}
    lengths, caps = [1, 50, 200], [2.0, math.inf]
    raw = {"zscore": score_frames(frames, lambda: RollingZScore(window=100)),
           "spot": score_frames(frames, nab_detectors(["spot"], onset=None)["spot"][0])}
    grid = onset_grid(raw, windows, lengths, caps)
    assert grid.shape == (len(lengths) * len(caps) * 2, 3)
    for length in lengths:
        for cap in caps:
            wrapped = {
                "zscore": score_frames(frames, lambda n=length, c=cap: Onset(
                    RollingZScore(window=100), length=n, cap=c), batch=333),
                "spot": score_frames(frames, nab_detectors(["spot"], onset=length, cap=cap)["spot"][0])}
            report = nab_stream_report(wrapped, windows)["nab_scores"]
            for name in raw:
                assert grid.loc[(length, cap, name)].to_dict() == report[name]
    # the grid is not flat: the setting matters on this corpus
    assert grid["standard"].nunique() > 1


def test_onset_grid_refuses_an_empty_grid():
    frames = make_generated_corpus(1, 2000)
    raw = {"z": score_frames(frames, lambda: RollingZScore(window=50))}
    with pytest.raises(ValueError, match="at least one length and one cap"):
        onset_grid(raw, {k: f.attrs["windows"] for k, f in frames.items()}, [], [5.0])
    with pytest.raises(ValueError, match=r"lengths must be integers of at least 1; got \[0, 2.5\]"):
        onset_grid(raw, {k: f.attrs["windows"] for k, f in frames.items()}, [0, 50, 2.5], [5.0])


def test_online_nab_scores_is_the_onset_grid_at_its_setting():
    frames = make_generated_corpus(3, 3000, random_state=5)
    windows = {k: f.attrs["windows"] for k, f in frames.items()}
    got = online_nab_scores(frames, ["spot", "dspot"])
    raw = {n: score_frames(frames, nab_detectors([n], onset=None)[n][0]) for n in ("spot", "dspot")}
    want = onset_grid(raw, windows, [NAB_ONSET[0]], [NAB_ONSET[1]]).droplevel(["length", "cap"])
    pd.testing.assert_frame_equal(got, want, check_names=False)
    assert list(got.index) == ["spot", "dspot"]


def test_online_nab_scores_names_what_a_frame_lacks():
    frames = make_generated_corpus(1, 2000)
    frames["generated/0"].attrs.pop("windows")
    with pytest.raises(ValueError, match=r"frames\['generated/0'\] needs .*attrs\['windows'\]"):
        online_nab_scores(frames, ["spot"])
    with pytest.raises(ValueError, match="unknown detector 'nope'"):
        online_nab_scores(make_generated_corpus(1, 2000), ["nope"])
