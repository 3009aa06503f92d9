"""Conformance of every registered detector with the one interface (lab.models.BaseDetector).

Parametrised over ``lab.models.DETECTORS``: a detector added to the registry is
tested here without a line of its own. Three planted anomalies in a noisy sine
(period 50, noise std 0.2) must each rank in the top 1% of scores for the
detectors named in ``PLANTED``.
"""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest

from lab.models import DETECTORS, BaseDetector, NotFittedError, get_detector

#: Small settings for the detectors whose defaults take minutes (Keras training).
FAST = {
    "mscred": dict(windows=(10, 20), step=5, steps=2, epochs=1, filters=(2, 2, 2, 2)),
    "betsi": dict(window_size=20, stride=5, epochs=2, verbose=0),
    "lstm_ae": dict(window=10, stride=10, units=(4,), epochs=1, verbose=0),
}
SLOW = {"mscred", "betsi", "lstm_ae"}

ALL = list(DETECTORS)
NOT_SPIKE = {"random", "constant", "ks_window", "betsi", "mscred",
             "pelt", "binseg", "bottomup", "window", "lstm_ae"}
PLANTED = {
    "spike": [n for n in ALL if n not in NOT_SPIKE],
    "level_shift": ["ks_window", "pca"],
    "frequency": ["matrix_profile", "pca"],
}
PERIOD, NOISE = 50, 0.2


def _params(name: str) -> list:
    marks = [pytest.mark.slow] if name in SLOW else []
    return pytest.param(name, marks=marks, id=name)


def _make(name: str, **extra):
    return get_detector(name, **{**FAST.get(name, {}), **extra})


def _sine(n: int, seed: int, n_cols: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    phase = rng.uniform(0, 2 * np.pi, n_cols)
    return np.sin(2 * np.pi * t / PERIOD + phase) + NOISE * rng.standard_normal((n, n_cols))


def _frame(values: np.ndarray) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=len(values), freq="min")
    return pd.DataFrame(values, index=index, columns=[f"s{i}" for i in range(values.shape[1])])


@pytest.fixture(scope="module")
def multi():
    """Training and test frames of 4 series (MSCRED needs 4)."""
    return _frame(_sine(1200, 0, 4)), _frame(_sine(600, 1, 4))


@pytest.fixture(scope="module")
def fitted(multi):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = _make(name).fit(multi[0])
        return cache[name]

    return get


@pytest.mark.parametrize("name", [_params(n) for n in ALL])
def test_interface_shapes_and_index(name, multi, fitted):
    train, test = multi
    det = fitted(name)
    assert isinstance(det, BaseDetector)
    assert det.decision_scores_.shape == (len(train),)
    assert np.isfinite(det.decision_scores_).all()
    assert isinstance(det.threshold_, float) and np.isfinite(det.threshold_)
    s = det.score(test)
    assert isinstance(s, pd.Series) and s.dtype == np.float64
    assert s.index.equals(test.index)
    assert np.isfinite(s.to_numpy()).all()
    p = det.predict(test)
    assert p.dtype == bool and p.index.equals(test.index)
    np.testing.assert_array_equal(p.to_numpy(), s.to_numpy() > det.threshold_)
    # ndarray input: a RangeIndex, the same scores
    s2 = det.score(test.to_numpy())
    assert isinstance(s2.index, pd.RangeIndex)
    np.testing.assert_allclose(s2.to_numpy(), s.to_numpy())
    # columns matched by name, not position
    s3 = det.score(test[test.columns[::-1]])
    np.testing.assert_allclose(s3.to_numpy(), s.to_numpy())


@pytest.mark.parametrize("name", [_params(n) for n in ALL])
def test_deterministic_for_fixed_random_state(name, multi, fitted):
    train, test = multi
    extra = {"random_state": 3} if "random_state" in inspect.signature(
        DETECTORS[name].__init__).parameters else {}
    a = _make(name, **extra).fit(train).score(test)
    b = _make(name, **extra).fit(train).score(test)
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())


@pytest.mark.parametrize("name", [_params(n) for n in ALL])
def test_save_load_round_trip(name, multi, fitted, tmp_path):
    train, test = multi
    det = fitted(name)
    det.save(tmp_path / name)
    back = type(det).load(tmp_path / name)
    assert back.get_params() == det.get_params()
    assert back.threshold_ == det.threshold_
    np.testing.assert_allclose(back.score(test).to_numpy(), det.score(test).to_numpy(),
                               rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", [_params(n) for n in ALL])
def test_bad_input(name, multi, fitted):
    train, test = multi
    det = _make(name)
    with pytest.raises(NotFittedError):
        det.score(test)
    nan = train.copy()
    nan.iloc[5, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _make(name).fit(nan)
    short = train.iloc[: det.min_rows - 1]
    with pytest.raises(ValueError, match="rows"):
        _make(name).fit(short)
    text = train.assign(label="x")
    with pytest.raises(ValueError, match="non-numeric"):
        _make(name).fit(text)
    fitted_det = fitted(name)
    with pytest.raises(ValueError, match=r"missing: \['s3'\].*extra: \['other'\]"):
        fitted_det.score(test.rename(columns={"s3": "other"}))
    with pytest.raises(ValueError, match="NaN"):
        fitted_det.score(nan)


def _planted(kind: str, seed: int = 2, n: int = 4000) -> tuple[np.ndarray, slice]:
    x = _sine(n, seed)[:, 0]
    rng = np.random.default_rng(seed + 100)
    if kind == "spike":
        where = slice(2000, 2010)
        x[where] += 4.0
    elif kind == "level_shift":
        where = slice(2000, 2200)
        x[where] += 2.0
    else:
        where = slice(2000, 2300)
        t = np.arange(where.stop - where.start)
        x[where] = np.sin(2 * np.pi * t / 20) + NOISE * rng.standard_normal(t.size)
    return x, where


@pytest.mark.parametrize("kind,name", [(k, n) for k, names in PLANTED.items() for n in names])
def test_planted_anomaly_in_top_percent(kind, name):
    det = _make(name).fit(_sine(3000, 0))
    x, where = _planted(kind)
    s = det.score(x).to_numpy()
    # a window's score is placed on the row that ends it: allow the window past the end
    lag = getattr(det, "window_", 0) or 0
    inside = s[where.start : where.stop + lag]
    top = np.quantile(s, 0.99)
    assert inside.max() >= top, (
        f"{name}: best score in the {kind} ({inside.max():.4g}) is below the top 1% "
        f"({top:.4g})")


def test_registry_names_and_unknown():
    assert set(DETECTORS) == {"pca", "hbos", "iforest", "lof", "knn", "matrix_profile",
                              "spectral_residual", "ks_window", "spot", "mscred", "betsi",
                              "random", "constant", "pelt", "binseg", "bottomup", "window",
                              "bocpd", "lstm_ae", "robust_z"}
    with pytest.raises(ValueError, match="known detectors: pca, hbos"):
        get_detector("nosuch")
    with pytest.raises(ValueError, match="does not take"):
        get_detector("constant", window=3)


def test_threshold_rules_on_a_detector():
    x = _sine(3000, 0)
    q = get_detector("random", threshold="quantile", contamination=0.05).fit(x)
    assert q.labels_.mean() == pytest.approx(0.05, abs=0.002)
    s = get_detector("random", threshold={"method": "sigma", "k": 1}).fit(x)
    assert s.threshold_ == pytest.approx(s.decision_scores_.mean() + s.decision_scores_.std())
    assert get_detector("random", threshold=0.5).fit(x).threshold_ == 0.5
    with pytest.raises(ValueError, match="needs at least 500"):
        get_detector("random", threshold="spot").fit(x[:100])
    with pytest.raises(ValueError, match="threshold must be one of"):
        get_detector("random", threshold="median").fit(x)
    with pytest.raises(ValueError, match="no native threshold"):
        get_detector("random", threshold="native").fit(x)


@pytest.mark.slow
def test_cli_lists_every_detector_without_tensorflow_chatter():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "lab", "detectors"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines()[:len(DETECTORS)]]
    assert names == list(DETECTORS)
    assert "native" in proc.stdout and "get_detector" in proc.stdout
    for noise in ("oneDNN", "cuda drivers", "absl", "To enable the following instructions"):
        assert noise not in proc.stderr + proc.stdout, noise


def test_refit_starts_clean_and_a_failed_fit_leaves_no_half_fitted_detector():
    hbos = get_detector("hbos").fit(_sine(3000, 0))
    assert hbos.window_ == PERIOD
    hbos.fit(_sine(60, 1))  # "auto" resolves again on the new rows, not the old window_
    assert hbos.window_ < 60 and len(hbos.decision_scores_) == 60
    det = get_detector("random").fit(_sine(3000, 0))
    det.set_params(threshold="spot")
    with pytest.raises(ValueError, match="needs at least"):
        det.fit(_sine(100, 0))
    with pytest.raises(NotFittedError):  # not the old threshold_ beside new scores
        det.score(_sine(10, 0))


@pytest.mark.parametrize("columns", [pd.MultiIndex.from_tuples([("a", 1), ("b", 2)]),
                                     pd.date_range("2024-01-01", periods=2)])
def test_save_refuses_column_labels_json_cannot_give_back(columns, tmp_path):
    df = pd.DataFrame(_sine(200, 0, 2), columns=columns)
    det = get_detector("random").fit(df)
    with pytest.raises(ValueError, match="rename the columns to strings"):
        det.save(tmp_path / "det")
    assert not (tmp_path / "det").exists()
    ints = get_detector("random").fit(pd.DataFrame(_sine(200, 0, 2)))
    back = type(ints).load(ints.save(tmp_path / "ints"))
    np.testing.assert_array_equal(back.score(pd.DataFrame(_sine(50, 1, 2))),
                                  ints.score(pd.DataFrame(_sine(50, 1, 2))))


@pytest.mark.parametrize("name", ["pca", "hbos", "iforest", "lof", "knn", "matrix_profile",
                                  "ks_window", "spot", "constant"])
def test_a_score_reads_only_its_lookback(name):
    """Window placement: the score of a row reads the rows back to ``lookback_`` and no more.

    Rows far enough back are replaced by noise; no score from ``lookback_`` rows after the
    change on may move (a detector scoring every few rows carries a score a few rows on).
    """
    det = _make(name).fit(_sine(3000, 0))
    x = _sine(2000, 1)
    other = x.copy()
    other[:500] = np.random.default_rng(5).normal(size=(500, 1)) * 3
    assert isinstance(det.lookback_, int) and det.lookback_ >= 0
    start = 500 + det.lookback_ + 20
    # to rounding: stumpy's sliding statistics run over the whole series
    np.testing.assert_allclose(det.score(other).to_numpy()[start:],
                               det.score(x).to_numpy()[start:], rtol=1e-9, atol=1e-12)


def test_lookback_of_the_window_detectors():
    x = _sine(3000, 0)
    assert get_detector("pca", window=40).fit(x).lookback_ == 39
    ks = get_detector("ks_window", window=40).fit(x)
    assert ks.lookback_ == ks.window_ + ks.baseline_ - 1
    assert get_detector("spot").fit(x).lookback_ == 0
    with pytest.raises(NotFittedError):
        get_detector("pca").lookback_  # noqa: B018


_ONE_SERIES = sorted({n for names in PLANTED.values() for n in names})


@pytest.mark.parametrize("name", [_params(n) for n in _ONE_SERIES])
def test_three_planted_anomalies_in_one_series(name):
    """The three anomalies in one noisy sine: each ranks above 99% of the normal rows.

    Ranked among all rows, a 10-row spike cannot stay in the top 1% (60 rows) of a series
    that also holds 500 rows of level shift and frequency change, which window detectors
    rightly score higher; so the rank is taken among the rows outside every anomaly (and
    the ``lookback_`` rows after each, whose windows still hold it).
    """
    x = _sine(6000, 2)[:, 0]
    rng = np.random.default_rng(102)
    where = {"spike": slice(1000, 1010), "level_shift": slice(2500, 2700),
             "frequency": slice(4000, 4300)}
    x[where["spike"]] += 4.0
    x[where["level_shift"]] += 2.0
    t = np.arange(300)
    x[where["frequency"]] = np.sin(2 * np.pi * t / 20) + NOISE * rng.standard_normal(t.size)
    det = _make(name).fit(_sine(3000, 0))
    s = det.score(x).to_numpy()
    normal = np.ones(len(s), dtype=bool)
    for w in where.values():
        normal[w.start : w.stop + det.lookback_] = False
    top = np.quantile(s[normal], 0.99)
    for kind, w in where.items():
        if name in PLANTED[kind]:
            best = s[w.start : w.stop + det.lookback_].max()
            assert best >= top, f"{name}: {kind} peaks at {best:.4g}, below {top:.4g}"
