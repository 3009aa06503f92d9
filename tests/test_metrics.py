"""lab.metrics against TCPD's published scores, sklearn, and loop references."""

from __future__ import annotations

import json
import warnings

import naive
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import average_precision_score, precision_recall_fscore_support, roc_auc_score

from lab import metrics
from lab.datasets import load_tcpd

# --------------------------------------------------------------------- change points


def test_zero_detector_matches_published_tcpd_scores(tcpd_root):
    annotations = json.loads((tcpd_root / "annotations.json").read_text())
    published_path = tcpd_root / "published_default_scores.json"
    if not published_path.is_file():
        pytest.skip("published_default_scores.json absent")
    published = json.loads(published_path.read_text())
    assert published["f1"], "no published series"
    for name, scores in published["f1"].items():
        n_obs = json.loads((tcpd_root / f"{name}.json").read_text())["n_obs"]
        f1 = metrics.f1_margin(annotations[name], [], n_obs)
        cover = metrics.covering(annotations[name], [], n_obs)
        # published values are rounded to 3 decimals
        assert abs(f1 - scores["zero"]) <= 5e-4 + 1e-12, (name, f1, scores["zero"])
        assert abs(cover - published["cover"][name]["zero"]) <= 5e-4 + 1e-12, name


cps = st.lists(st.integers(0, 79), max_size=8)


@settings(max_examples=150, deadline=None)
@given(ann=st.lists(cps, min_size=1, max_size=4), pred=cps, margin=st.integers(0, 6))
def test_change_point_metrics_match_tcpdbench_transcription(ann, pred, margin):
    annotations = {str(i): a for i, a in enumerate(ann)}
    assert metrics.f1_margin(annotations, pred, 80, margin=margin) == pytest.approx(
        naive.tcpd_f_measure(annotations, pred, margin))
    assert metrics.covering(annotations, pred, 80) == pytest.approx(
        naive.tcpd_covering(annotations, pred, 80))


def test_change_point_metrics_perfect_and_pr():
    ann = {"a": [10, 30], "b": [10, 31]}
    f1, p, r = metrics.f1_margin(ann, [10, 30], 50, return_pr=True)
    assert (f1, p, r) == (1.0, 1.0, 1.0)
    assert metrics.covering({"a": [10, 30]}, [10, 30], 50) == 1.0
    # a detection just outside the margin does not count
    assert metrics.f1_margin({"a": [20]}, [26], 50, margin=5, return_pr=True)[1] == 0.5


@pytest.mark.parametrize("bad, match", [
    (dict(annotations={}, predictions=[], n_obs=10), "annotations is empty"),
    (dict(annotations={"a": [10]}, predictions=[], n_obs=10), r"annotations\['a'\]"),
    (dict(annotations={"a": [1]}, predictions=[-1], n_obs=10), "predictions"),
    (dict(annotations={"a": [1]}, predictions=[1.5], n_obs=10), "predictions"),
    (dict(annotations=[1, 2], predictions=[], n_obs=10), "annotations"),
    (dict(annotations={"a": [1]}, predictions=[], n_obs=0), "n_obs"),
])
def test_change_point_metrics_reject_bad_input(bad, match):
    for fn in (metrics.f1_margin, metrics.covering):
        with pytest.raises(ValueError, match=match):
            fn(**bad)


# --------------------------------------------------------------------- point metrics

labels = st.lists(st.integers(0, 1), min_size=1, max_size=60)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_point_metrics_match_sklearn(data):
    t = data.draw(labels)
    p = data.draw(st.lists(st.integers(0, 1), min_size=len(t), max_size=len(t)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        got = metrics.point_metrics(t, p)
        ref = precision_recall_fscore_support(t, p, average="binary", zero_division=0)
    assert got == pytest.approx(dict(zip(("precision", "recall", "f1"), ref[:3], strict=False)))
    assert all(np.isfinite(list(got.values())))


def test_undefined_point_metric_warns_instead_of_nan():
    with pytest.warns(UndefinedMetricWarning, match="precision"):
        out = metrics.point_metrics([0, 1, 0], [0, 0, 0])
    assert out == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


_ZERO_DIVISION_FNS = [metrics.point_metrics, metrics.point_adjusted_f1,
                      metrics.range_precision_recall]


@pytest.mark.parametrize("fn", _ZERO_DIVISION_FNS)
@pytest.mark.parametrize("bad", [0.5, -1, 2, "warn", None, True, np.inf])
def test_zero_division_must_be_0_1_or_nan(fn, bad):
    with pytest.raises(ValueError, match="zero_division must be 0, 1 or nan"):
        fn([0, 1, 0], [0, 0, 0], zero_division=bad)


@pytest.mark.parametrize("fn", _ZERO_DIVISION_FNS)
def test_zero_division_values_match_sklearn(fn):
    for value in (0, 1, 1.0, np.float64(0.0), np.nan):
        with pytest.warns(UndefinedMetricWarning):
            out = fn([0, 1, 0], [0, 0, 0], zero_division=value)
        precision = out if fn is metrics.point_adjusted_f1 else out["precision"]
        if fn is metrics.point_adjusted_f1:  # recall is 0, so F1 is 0 unless precision is NaN
            expected = np.nan if np.isnan(value) else 0.0
        else:
            expected = precision_recall_fscore_support(
                [0, 1, 0], [0, 0, 0], average="binary", zero_division=value)[0]
        np.testing.assert_equal(precision, expected)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_point_adjust_and_f1_match_loop_reference(data):
    t = data.draw(labels)
    p = data.draw(st.lists(st.integers(0, 1), min_size=len(t), max_size=len(t)))
    adjusted = naive.point_adjust(t, p)
    assert metrics.point_adjust(t, p).astype(int).tolist() == adjusted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        ref = precision_recall_fscore_support(t, adjusted, average="binary", zero_division=0)[2]
        assert metrics.point_adjusted_f1(t, p) == pytest.approx(ref)
        # adjustment only ever adds hits inside true segments: never lowers F1
        assert metrics.point_adjusted_f1(t, p) >= metrics.point_metrics(t, p)["f1"] - 1e-12


@settings(max_examples=100, deadline=None)
@given(data=st.data(), alpha=st.sampled_from([0.0, 0.3, 1.0]),
       bias=st.sampled_from(["flat", "front", "back", "middle"]),
       cardinality=st.sampled_from(["one", "reciprocal"]))
def test_range_precision_recall_matches_loop_reference(data, alpha, bias, cardinality):
    t = data.draw(labels)
    p = data.draw(st.lists(st.integers(0, 1), min_size=len(t), max_size=len(t)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        got = metrics.range_precision_recall(t, p, alpha=alpha, bias=bias,
                                             cardinality=cardinality)
    ref_p, ref_r = naive.tatbul_precision_recall(t, p, alpha, bias, cardinality)
    assert got["precision"] == pytest.approx(ref_p)
    assert got["recall"] == pytest.approx(ref_r)


def test_range_metrics_equal_point_metrics_on_isolated_points():
    rng = np.random.default_rng(3)
    t = np.zeros(200, int)
    p = np.zeros(200, int)
    t[rng.choice(np.arange(0, 200, 2), 20, replace=False)] = 1  # even rows: never adjacent
    p[rng.choice(np.arange(0, 200, 2), 25, replace=False)] = 1
    r = metrics.range_precision_recall(t, p)
    ref = precision_recall_fscore_support(t, p, average="binary")
    assert (r["precision"], r["recall"]) == pytest.approx(ref[:2])


# --------------------------------------------------------------------- score metrics


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_auc_and_precision_at_k_match_sklearn(data):
    n = data.draw(st.integers(2, 60))
    t = np.array(data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    # few distinct values so that ties are common
    s = np.array(data.draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)), float)
    if t.any():
        assert metrics.auc_pr(t, s) == pytest.approx(average_precision_score(t, s))
        k = data.draw(st.integers(1, n))
        order = sorted(range(n), key=lambda i: (-s[i], i))
        assert metrics.precision_at_k(t, s, k) == pytest.approx(t[order[:k]].mean())
    if 0 < t.sum() < n:
        assert metrics.auc_roc(t, s) == pytest.approx(roc_auc_score(t, s))


def test_precision_at_k_defaults_to_number_of_anomalies():
    t = pd.Series([0, 1, 0, 1, 1])
    s = pd.Series([0.1, 0.9, 0.95, 0.8, 0.2])
    assert metrics.precision_at_k(t, s) == pytest.approx(2 / 3)


@pytest.mark.parametrize("fn", [metrics.point_metrics, metrics.point_adjusted_f1,
                                metrics.range_precision_recall])
def test_label_metrics_reject_bad_input(fn):
    with pytest.raises(ValueError, match="y_pred has 2"):
        fn([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="y_true is empty"):
        fn([], [])
    with pytest.raises(ValueError, match="y_true must hold only 0/1"):
        fn([0, 2, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="y_pred must hold only 0/1"):
        fn([0, 1, 1], [0, 0.5, 1])
    with pytest.raises(ValueError, match="y_true must be 1-D"):
        fn(np.zeros((3, 2)), np.zeros((3, 2)))


@pytest.mark.parametrize("fn", [metrics.auc_roc, metrics.auc_pr, metrics.precision_at_k])
def test_score_metrics_reject_bad_input(fn):
    with pytest.raises(ValueError, match="score has 2"):
        fn([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="score contains 1 NaN"):
        fn([0, 1, 1], [0.1, np.nan, 0.3])
    with pytest.raises(ValueError, match="y_true must hold only 0/1"):
        fn([0, -1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="y_true is empty"):
        fn([], [])
    with pytest.raises(ValueError, match="different indexes"):
        fn(pd.Series([0, 1], index=[0, 1]), pd.Series([0.1, 0.2], index=[1, 2]))


def test_undefined_score_metrics_raise():
    with pytest.raises(ValueError, match="both classes"):
        metrics.auc_roc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="at least one anomaly"):
        metrics.auc_pr([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="k must be <= 3"):
        metrics.precision_at_k([0, 1, 0], [0.1, 0.2, 0.3], k=4)
    with pytest.raises(ValueError, match="holds none"):
        metrics.precision_at_k([0, 0, 0], [0.1, 0.2, 0.3])


def _toy_tcpd(root, cps):
    (root / "annotations.json").write_text(json.dumps({"toy": {"1": cps}}))
    (root / "toy.json").write_text(json.dumps({
        "n_obs": 6, "n_dim": 1, "time": {"index": list(range(6))},
        "series": [{"label": "x", "raw": [0, 0, 0, 5, 5, None]}]}))


@pytest.mark.parametrize("bad", [3.7, "3", None, True])
def test_load_tcpd_rejects_non_integer_annotations(tmp_path, bad):
    """int() would silently make 3.7 the index 3; the error names the file instead."""
    _toy_tcpd(tmp_path, [1, bad])
    with pytest.raises(ValueError, match=r"annotations\.json: annotations of 'toy' by '1' "
                                         r"hold .* which are not integer indices"):
        load_tcpd("toy", tmp_path)
    _toy_tcpd(tmp_path, [1, 3.0])  # a whole number written as a float is still an index
    assert load_tcpd("toy", tmp_path)[1] == {"1": [1, 3]}


# --------------------------------------------------------------------- range F1, point-adjust warning


@pytest.mark.parametrize("y_true, y_pred, kwargs, expected", [
    # true ranges [1,5) and [6]; predicted [2,4) and [7]: P = (1 + 0)/2, R = (2/4 + 0)/2
    ([0, 1, 1, 1, 1, 0, 1, 0], [0, 0, 1, 1, 0, 0, 0, 1], {}, 1 / 3),
    # one true range of 6 found in two pieces of 2, plus a false range: P = 2/3, R = 4/6
    ([1] * 6 + [0] * 4, [1, 1, 0, 1, 1, 0, 0, 0, 0, 1], {}, 2 / 3),
    # reciprocal cardinality halves the recall of the fragmented range: R = 1/3
    ([1] * 6 + [0] * 4, [1, 1, 0, 1, 1, 0, 0, 0, 0, 1], {"cardinality": "reciprocal"}, 4 / 9),
    # alpha = 0.5 adds half an existence reward: R = 0.5 + 0.5 / 3
    ([1] * 6 + [0] * 4, [1, 1, 0, 1, 1, 0, 0, 0, 0, 1],
     {"cardinality": "reciprocal", "alpha": 0.5}, 2 / 3),
])
def test_range_f1_hand_computed(y_true, y_pred, kwargs, expected):
    assert metrics.range_f1(y_true, y_pred, **kwargs) == pytest.approx(expected)
    assert metrics.range_f1(pd.Series(y_true), pd.Series(y_pred), **kwargs) == \
        pytest.approx(expected)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), alpha=st.sampled_from([0.0, 0.2, 1.0]),
       cardinality=st.sampled_from(["one", "reciprocal"]))
def test_range_f1_matches_loop_reference(data, alpha, cardinality):
    n = data.draw(st.integers(1, 60))
    t = data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    p = data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        got = metrics.range_f1(t, p, alpha=alpha, cardinality=cardinality)
    assert got == pytest.approx(naive.range_f1(t, p, alpha=alpha, cardinality=cardinality))


def test_range_f1_bad_input():
    with pytest.raises(ValueError, match="alpha must be in"):
        metrics.range_f1([0, 1], [0, 1], alpha=1.5)
    with pytest.raises(ValueError, match="cardinality must be one of"):
        metrics.range_f1([0, 1], [0, 1], cardinality="many")
    with pytest.raises(ValueError, match="same length"):
        metrics.range_f1([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="only 0/1"):
        metrics.range_f1([0, 1], [0, 3])
    with pytest.warns(UndefinedMetricWarning, match="range precision"):
        assert metrics.range_f1([0, 1], [0, 0]) == 0.0


def test_point_adjusted_f1_warns_once_per_process(monkeypatch):
    monkeypatch.setattr(metrics, "_PA_WARNED", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError):
            metrics.point_adjusted_f1([0, 1], [0, 1, 1])  # bad input does not use it up
        for _ in range(3):
            metrics.point_adjusted_f1([0, 1, 1, 0], [0, 1, 0, 0])
    inflated = [w for w in caught if "inflates" in str(w.message)]
    assert len(inflated) == 1
    assert issubclass(inflated[0].category, UserWarning)
    assert "Kim et al., AAAI 2022" in str(inflated[0].message)
    assert inflated[0].filename == __file__  # points at the caller's line


def test_point_adjusted_f1_warn_false_neither_warns_nor_uses_up_the_warning(monkeypatch):
    monkeypatch.setattr(metrics, "_PA_WARNED", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics.point_adjusted_f1([0, 1, 1, 0], [0, 1, 0, 0], warn=False)
        assert not [w for w in caught if "inflates" in str(w.message)]
        metrics.point_adjusted_f1([0, 1, 1, 0], [0, 1, 0, 0])
    assert len([w for w in caught if "inflates" in str(w.message)]) == 1
