"""lab.evaluation: events, episodes and the synthetic protocol for any detector."""

from __future__ import annotations

import math

import naive
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.datasets import make_mscred_synthetic
from lab.evaluation import (
    evaluate_events,
    evaluate_synthetic,
    event_labels,
    root_cause_recall,
    top_episodes,
)
from lab.models import ConstantDetector, RandomDetector

# --------------------------------------------------------------------------- evaluation helpers


@settings(max_examples=60, deadline=None)
@given(alarms=st.lists(st.booleans(), min_size=1, max_size=40),
       raw_spans=st.lists(st.tuples(st.integers(0, 39), st.integers(0, 6)), min_size=1,
                          max_size=4),
       tolerance=st.integers(0, 3), extra=st.integers(0, 25))
def test_evaluate_events_matches_naive(alarms, raw_spans, tolerance, extra):
    labels = np.arange(len(alarms)) * 10
    spans = [(10 * s, 10 * s + d) for s, d in raw_spans]
    grace = tolerance + extra
    got = evaluate_events(pd.Series(alarms, index=labels), spans, tolerance=tolerance,
                          grace=grace)
    detected, episodes = naive.event_metrics(labels, alarms, spans, tolerance, grace)
    assert got["detected_events"] == detected and got["false_episodes"] == episodes
    tp = sum(detected)
    assert got["recall"] == tp / len(spans)
    assert got["precision"] == (tp / (tp + episodes) if tp + episodes else 0.0)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.integers(0, 5), min_size=1, max_size=40),
       k=st.integers(1, 6), min_gap=st.integers(1, 5))
def test_top_episodes_matches_naive(values, k, min_gap):
    score = pd.Series(values, index=np.arange(len(values)) * 3)
    got = top_episodes(score, k=k, min_gap=min_gap)
    taken = naive.top_episodes(values, k, min_gap)
    assert list(got.index) == [3 * i for i in taken]


def test_top_episodes_measures_gaps_in_data_rows():
    days = pd.bdate_range("2024-01-01", periods=30)
    score = pd.Series([5.0, 9.0, 1.0], index=days[[0, 3, 20]])
    # 3 trading days apart: too close with min_gap=5, so only one of the first two is kept
    assert list(top_episodes(score, k=3, min_gap=5, index=days).index) == [days[3], days[20]]
    # without index, gaps count score entries: the three are 1 entry apart
    assert list(top_episodes(score, k=3, min_gap=2).index) == [days[3]]
    with pytest.raises(ValueError, match="not in index"):
        top_episodes(score, index=days[5:])


def test_event_labels():
    index = pd.RangeIndex(0, 100, 10)
    truth = pd.DataFrame({"start": [15, 70], "end": [24, 70]})
    assert event_labels(index, truth).tolist() == [0, 0, 1, 0, 0, 0, 0, 1, 0, 0]
    assert event_labels(index, truth, tolerance=9).tolist() == [0, 0, 1, 1, 0, 0, 0, 1, 0, 0]
    with pytest.raises(ValueError, match="start and end"):
        event_labels(index, pd.DataFrame({"begin": [1]}))
    with pytest.raises(ValueError, match="no event"):
        evaluate_events(pd.Series([True]), [])
    with pytest.raises(ValueError, match="boolean"):
        evaluate_events(pd.Series([1, 0]), [(0, 0)])
    with pytest.raises(ValueError, match="grace"):
        evaluate_events(pd.Series([True]), [(0, 0)], tolerance=3, grace=1)


# --------------------------------------------------------------------------- any detector


class _Oracle(ConstantDetector):
    """Scores a row 1 inside an event (the truth, read at fit), 0 elsewhere; scores every 10th row."""

    def __init__(self, spans=(), threshold=0.5, contamination=0.01):
        super().__init__(threshold=threshold, contamination=contamination)
        self.spans = spans

    def _score(self, values):
        rows = np.arange(len(values))
        out = np.zeros(len(values))
        for a, b in self.spans:
            out[(rows >= a) & (rows <= b)] = 1.0
        return out

    def scored_rows(self, X):
        return np.arange(9, len(X), 10)


def test_evaluate_synthetic_takes_any_detector():
    df, truth = make_mscred_synthetic(n_series=4, length=2000, n_anomalies=1)
    test = df.iloc[1000:]
    spans = [(a - 1000, b - 1000) for a, b in zip(truth["start"], truth["end"], strict=True)]
    floor = evaluate_synthetic(ConstantDetector().fit(df.iloc[:800]), test, truth)
    assert (floor["detected"], floor["auc_roc"]) == (0, 0.5)
    assert math.isnan(floor["root_cause_recall_at_3"])
    chance = evaluate_synthetic(RandomDetector().fit(df.iloc[:800]), test, truth)
    assert 0.2 < chance["auc_roc"] < 0.8
    oracle = _Oracle(spans=spans).fit(df.iloc[:800])
    ev = evaluate_synthetic(oracle, test, truth)
    assert (ev["detected"], ev["false_episodes"], ev["auc_roc"]) == (1, 0, 1.0)
    # judged at scored_rows only: rows 9, 19, ... of the test frame
    got = oracle.score(test).iloc[oracle.scored_rows(test)]
    assert len(got) == 100
    with pytest.raises(TypeError, match="root_causes"):
        root_cause_recall(oracle, test, truth)
    with pytest.raises(ValueError, match="one value per row"):
        evaluate_synthetic(oracle, test, truth, score=oracle.score(test).iloc[::10])
