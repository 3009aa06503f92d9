"""SKAB's protocol (lab.protocols) against SKAB's published leaderboard and tsad's scorer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lab.datasets import DataNotFoundError, find_data
from lab.protocols import (
    SKAB_PUBLISHED,
    evaluate_skab,
    skab_binary,
    skab_changepoints,
    skab_iforest,
    skab_nab_score,
    skab_smooth,
)

try:
    find_data("skab")
    HAVE_SKAB = True
except DataNotFoundError:
    HAVE_SKAB = False
needs_skab = pytest.mark.skipif(not HAVE_SKAB, reason="SKAB data not found (lab data get skab)")


@pytest.fixture(scope="module")
def skab():
    from lab.datasets import load_skab
    return load_skab()


def _published(detector: str) -> pd.Series:
    return SKAB_PUBLISHED.set_index("detector").loc[detector]


def test_binary_matches_sklearn():
    from sklearn.metrics import confusion_matrix, f1_score

    rng = np.random.default_rng(1)
    t = {k: pd.Series(rng.integers(0, 2, 50)) for k in "abc"}
    p = {k: pd.Series(rng.integers(0, 2, 50)) for k in "abc"}
    r = skab_binary(t, p)
    yt, yp = np.concatenate(list(t.values())), np.concatenate(list(p.values()))
    tn, fp, fn, tp = confusion_matrix(yt, yp).ravel()
    assert r["f1"] == pytest.approx(f1_score(yt, yp))
    assert r["far"] == pytest.approx(100 * fp / (fp + tn))
    assert r["mar"] == pytest.approx(100 * fn / (fn + tp))


def test_binary_bad_input():
    with pytest.raises(ValueError, match="0/1"):
        skab_binary(pd.Series([0, 2]), pd.Series([0, 1]))
    with pytest.raises(ValueError, match="same keys"):
        skab_binary({"a": pd.Series([0])}, {"b": pd.Series([0])})
    with pytest.raises(ValueError, match="rows"):
        skab_binary(pd.Series([0, 1]), pd.Series([0]))


def _tsad_loop(cp: pd.Series, det: pd.Series, width: str, a_tp, a_fp, a_fn):
    """tsad's single_evaluate_nab, written as plainly as it reads (one series)."""
    td = pd.Timedelta(width)
    bounds = [[t, t + td] for t in cp.index[cp.to_numpy() == 1]]
    for i in range(len(bounds) - 1):
        if bounds[i][1] >= bounds[i + 1][0]:
            bounds[i + 1][0] = bounds[i][1]
    alarms = list(det.index[det.to_numpy() == 1])
    score = 0.0
    used = set()
    for lo, hi in bounds:
        inside = [a for a in alarms if lo <= a <= hi]
        used.update(inside)
        if not inside:
            score += a_fn
            continue
        x = np.linspace(-np.pi / 2, np.pi / 2, 1000)
        y = (a_tp - a_fp) / 2 * -np.tanh(x) / np.tanh(np.pi / 2) + (a_tp - a_fp) / 2 + a_fp
        score += y[min(int((inside[0] - lo) / (hi - lo) * 1000), 999)]
    score += a_fp * sum(1 for a in alarms if a not in used)
    n = len(bounds)
    return 100 * (score - n * a_fn) / (n * a_tp - n * a_fn)


@pytest.mark.parametrize("seed", range(5))
def test_nab_variant_matches_plain_loop(seed):
    rng = np.random.default_rng(seed)
    t = pd.date_range("2020-01-01", periods=400, freq="s")
    cp = pd.Series((rng.random(400) < 0.02).astype(int), index=t)
    cp.iloc[10] = 1
    det = pd.Series((rng.random(400) < 0.05).astype(int), index=t)
    got = skab_nab_score(cp, det)
    assert got["standard"] == pytest.approx(_tsad_loop(cp, det, "60s", 1, -0.11, -1))
    assert got["reward_low_FP_rate"] == pytest.approx(_tsad_loop(cp, det, "60s", 1, -0.22, -1))
    assert got["reward_low_FN_rate"] == pytest.approx(_tsad_loop(cp, det, "60s", 1, -0.11, -2))


def test_nab_variant_null_and_perfect():
    t = pd.date_range("2020-01-01", periods=500, freq="s")
    cp = pd.Series(0, index=t)
    cp.iloc[[100, 300]] = 1
    assert skab_nab_score(cp, pd.Series(0, index=t)) == dict.fromkeys(
        ("standard", "reward_low_FP_rate", "reward_low_FN_rate"), 0.0)
    assert set(skab_nab_score(cp, cp).values()) == {100.0}
    with pytest.raises(ValueError, match="DatetimeIndex"):
        skab_nab_score(cp.reset_index(drop=True), cp.reset_index(drop=True))
    with pytest.raises(ValueError, match="at least one"):
        skab_nab_score(pd.Series(0, index=t), cp)


def test_nab_variant_differs_from_nab():
    """A false alarm right after a window: tsad charges A_fp flat, NAB less (sigmoid)."""
    from lab.metrics import nab_score

    t = pd.date_range("2020-01-01", periods=2000, freq="s")
    cp = pd.Series(0, index=t)
    cp.iloc[1000] = 1
    det = cp.copy()
    det.iloc[1070] = 1
    tsad = skab_nab_score(cp, det)["standard"]
    nab = nab_score(det.astype(bool), [(t[1000], t[1060])])
    assert tsad == pytest.approx(100 * (1 - 0.11 + 1) / 2)
    assert nab > tsad


def test_smooth_and_changepoints_match_pandas():
    rng = np.random.default_rng(0)
    a = pd.Series(rng.integers(0, 2, 200))
    ref = a.rolling(3).median().fillna(0)
    assert skab_smooth(a).tolist() == ref.astype(int).tolist()
    ref_cp = a.rolling(30).max().fillna(0).diff().abs()
    ref_cp.iloc[0] = a.iloc[0]
    assert skab_changepoints(a).tolist() == (ref_cp > 0).astype(int).tolist()
    # rows=1 is SKAB's MSCRED notebook: prediction_cp = abs(prediction.diff()), [0] = prediction[0]
    mscred_cp = abs(a.diff())
    mscred_cp.iloc[0] = a.iloc[0]
    assert skab_changepoints(a, rows=1).tolist() == mscred_cp.astype(int).tolist()


def test_evaluate_skab_bad_detector():
    with pytest.raises(ValueError, match="detector must be"):
        evaluate_skab(42, {"x": pd.DataFrame()})


@pytest.mark.slow
@needs_skab
def test_skab_iforest_reproduces_published_row(skab):
    """SKAB's own Isolation Forest under the lab's protocol code: their row, exactly."""
    r = evaluate_skab(skab_iforest, skab)
    pub = _published("Isolation Forest")
    assert round(r.f1, 2) == pub["f1"]
    assert round(r.far, 2) == pub["far"]
    assert round(r.mar, 2) == pub["mar"]
    assert round(r.nab["standard"], 2) == pub["nab_standard"]
    assert round(r.nab["reward_low_FP_rate"], 2) == pub["nab_low_fp"]
    assert round(r.nab["reward_low_FN_rate"], 2) == pub["nab_low_fn"]
    assert list(r.per_group.index) == ["valve1", "valve2", "other", "not valve1"]
    assert r.per_group["experiments"].tolist() == [16, 4, 14, 18]


@pytest.mark.slow
@needs_skab
def test_lab_iforest_within_bar(skab):
    """The bar: the lab's IForestDetector with SKAB's settings is within 0.02 F1 of 0.29."""
    from lab.models import IForestDetector

    det = IForestDetector(window=1, n_estimators=100, contamination=0.0005)
    r = evaluate_skab(det, skab)
    assert abs(r.f1 - _published("Isolation Forest")["f1"]) <= 0.02
    assert r.far < 5 and r.mar > 70


@needs_skab
def test_published_table_matches_skab_readme():
    """SKAB_PUBLISHED is the table in the data's README, number for number."""
    import re

    text = " ".join((find_data("skab") / "README.md").read_text().split())
    outliers = text.split("Outlier detection, F1 / FAR % / MAR %:")[1].split("Change points")[0]
    changes = text.split("NAB standard / low FP / low FN:")[1]
    names = {"T-squared+Q (PCA)": "T-squared+Q (PCA)", "T-squared+Q": "T-squared+Q (PCA)"}
    table = SKAB_PUBLISHED.set_index("detector")

    def entries(part):
        for item in part.strip(" .").split(";"):
            m = re.fullmatch(r"\s*(.+?) ([\d.]+(?: / [\d.]+)*)\s*\.?\s*", item)
            name = names.get(m.group(1), m.group(1))
            yield name, [float(v) for v in m.group(2).split(" / ")]

    seen = 0
    for name, values in entries(outliers):
        row = table.loc[name, ["f1", "far", "mar"]].tolist()
        assert row[:len(values)] == values, name
        seen += 1
    for name, values in entries(changes):
        row = table.loc[name, ["nab_standard", "nab_low_fp", "nab_low_fn"]].tolist()
        assert row[:len(values)] == values, name
        seen += 1
    assert seen == 21


def _fake_skab(n_rows=700, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for i, group in enumerate(("valve1", "valve1", "other")):
        t = pd.date_range("2020-01-01", periods=n_rows, freq="s")
        x = rng.normal(size=(n_rows, 3))
        x[500:560] += 6
        f = pd.DataFrame(x, index=t, columns=list("abc"))
        f["anomaly"] = 0
        f.iloc[500:560, f.columns.get_loc("anomaly")] = 1
        f["changepoint"] = 0
        f.iloc[[500, 559], f.columns.get_loc("changepoint")] = 1
        f.attrs.update(label_columns=("anomaly", "changepoint"), train_rows=400, group=group,
                       name=f"{group}/{i}")
        out[f"{group}/{i}"] = f
    return out


def test_evaluate_skab_with_a_lab_detector_on_planted_anomalies():
    from lab.models import IForestDetector

    data = _fake_skab()
    r = evaluate_skab(IForestDetector(window=1, n_estimators=20, contamination=0.01), data)
    assert r.f1 > 0.8 and r.nab["standard"] > 50
    assert list(r.per_group.index) == ["valve1", "other", "not valve1"]
    assert set(r.alarms) == set(data) and all(len(r.alarms[k]) == 700 for k in data)
    assert evaluate_skab("iforest", data).f1 > 0.5          # a registry name, its defaults
    with pytest.raises(ValueError, match="must return a Series of 700"):
        evaluate_skab(lambda frame: pd.Series([0, 1]), data)
    with pytest.raises(ValueError, match="lacks the 'changepoint'"):
        evaluate_skab(skab_iforest, {k: f.drop(columns="changepoint") for k, f in data.items()})
