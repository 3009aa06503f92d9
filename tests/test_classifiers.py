"""Chunk classifiers: the published FCN, threshold tuning against sklearn, determinism,
safe save/load, bad input; the spectrogram transform against signal_utility.spectrogram."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from lab.models import NotFittedError
from lab.models.classifiers import (
    ChunkClassifier,
    best_f1_threshold,
    build_bilstm,
    build_fcn,
    build_lstm,
    chunk_spectrograms,
)
from lab.signal_utility import spectrogram

TINY = dict(units=(4,), epochs=2, patience=2, batch_size=16, verbose=0)


def _data(n=48, T=8, d=2, seed=0, n_classes=2):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    X = rng.normal(size=(n, T, d))
    X[:, :, 0] += 1.5 * y[:, None]  # a level per class: learnable in a few epochs
    return X, y


def test_fcn_is_wang_2017():
    import keras

    m = build_fcn(150, 1, n_classes=2)
    convs = [layer for layer in m.layers if isinstance(layer, keras.layers.Conv1D)]
    assert [c.filters for c in convs] == [128, 256, 128]
    assert [c.kernel_size[0] for c in convs] == [8, 5, 3]
    assert all(c.padding == "same" for c in convs)
    kinds = [type(layer).__name__ for layer in m.layers]
    assert kinds.count("BatchNormalization") == 3 and "GlobalAveragePooling1D" in kinds
    assert m.output_shape == (None, 1)
    assert build_fcn(None, 3, n_classes=4).output_shape == (None, 4)


def test_lstm_sizes_are_parameters():
    import keras

    bi = build_bilstm(20, 3, units=(8, 4))
    lstms = [layer.forward_layer.units for layer in bi.layers
             if isinstance(layer, keras.layers.Bidirectional)]
    assert lstms == [8, 4]
    uni = build_lstm(20, 3, units=(5,))
    assert [layer.units for layer in uni.layers if isinstance(layer, keras.layers.LSTM)] == [5]


@pytest.mark.parametrize("seed", range(5))
def test_best_f1_threshold_against_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(60) < 0.3).astype(int)
    y[:2] = [0, 1]
    score = rng.random(60) + 0.5 * y
    score[5] = score[6]  # a tie
    t = best_f1_threshold(y, score)
    f1s = {c: f1_score(y, score >= c) for c in np.unique(score)}
    best = max(f1s.values())
    assert f1_score(y, score >= t) == pytest.approx(best, abs=1e-12)
    tol = 1 / 60
    t2 = best_f1_threshold(y, score, prefer=0.5, tol=tol)
    assert f1_score(y, score >= t2) >= best - tol - 1e-12
    # 0.5 is taken when it gives a near-best F1, else a threshold between two scores
    if f1_score(y, score >= 0.5) >= best - tol - 1e-12:
        assert t2 == 0.5
    else:
        assert t2 not in set(score)
    with pytest.raises(ValueError, match="both classes"):
        best_f1_threshold(np.zeros(5), np.arange(5.0))


def test_spectrograms_match_signal_utility():
    X = np.random.default_rng(1).normal(size=(3, 60, 2))
    S = chunk_spectrograms(X, nperseg=16)
    ref = spectrogram(X[2, :, 1], nperseg=16, noverlap=8).to_numpy()
    np.testing.assert_allclose(S[2, :, :, 1], np.log(1e-6 + ref), rtol=1e-10)
    with pytest.raises(ValueError, match="nperseg"):
        chunk_spectrograms(X, nperseg=61)


@pytest.mark.parametrize("arch", [
    "lstm", *[pytest.param(a, marks=pytest.mark.slow) for a in ("bilstm", "fcn", "spectrogram-cnn")]])
def test_each_arch_fits_predicts_and_is_deterministic(arch):
    X, y = _data()
    params = dict(TINY, filters=(4, 4)) if arch in ("fcn", "spectrogram-cnn") else TINY
    a = ChunkClassifier(arch, nperseg=6, **params).fit(X, y)
    b = ChunkClassifier(arch, nperseg=6, **params).fit(X, y)
    pa, pb = a.predict_proba(X), b.predict_proba(X)
    np.testing.assert_array_equal(pa, pb)
    assert pa.shape == (len(X), 2)
    np.testing.assert_allclose(pa.sum(axis=1), 1.0)
    assert set(a.predict(X)) <= {0, 1}
    assert 0 <= a.threshold_ <= 1 and 1 <= a.epochs_ <= 2
    assert len(a.history_["val_pr_auc"]) == len(a.history_["loss"])
    assert a.fit_time_ > 0


def test_learns_tuned_threshold_and_save_load(tmp_path):
    X, y = _data(n=120)
    clf = ChunkClassifier("lstm", units=(8,), epochs=15, patience=15, verbose=0,
                          learning_rate=1e-2).fit(X, y)
    assert (clf.predict(X) == y).mean() > 0.85
    # the threshold is the validation-F1 one, applied with >=
    p = clf.predict_proba(X)[:, 1]
    np.testing.assert_array_equal(clf.predict(X), (p >= clf.threshold_).astype(int))
    clf.save(tmp_path / "m")
    back = ChunkClassifier.load(tmp_path / "m")
    assert back.get_params() == clf.get_params()
    assert back.threshold_ == clf.threshold_ and back.epochs_ == clf.epochs_
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    with pytest.raises(ValueError, match="not a saved ChunkClassifier"):
        ChunkClassifier.load(tmp_path)


def test_multiclass_labels_groups_and_oversampling():
    X, y3 = _data(n=90, n_classes=3)
    labels = np.array(["a", "b", "c"])[y3]
    clf = ChunkClassifier("fcn", filters=(4, 4), **{**TINY, "units": (4,)}).fit(X, labels)
    assert clf.predict_proba(X).shape == (90, 3) and np.isnan(clf.threshold_)
    assert set(clf.predict(X)) <= {"a", "b", "c"}
    X2, y2 = _data(n=60)
    y2 = (np.arange(60) % 6 == 0).astype(int)  # 10 of 60 anomalous
    groups = np.arange(60) // 6
    over = ChunkClassifier("lstm", oversample=True, **TINY).fit(X2, y2, groups=groups)
    assert over.predict(X2).shape == (60,)


def test_bad_input():
    X, y = _data(n=20)
    clf = ChunkClassifier("lstm", **TINY)
    with pytest.raises(NotFittedError):
        clf.predict(X)
    with pytest.raises(ValueError, match="single class"):
        clf.fit(X, np.zeros(20))
    nan = X.copy()
    nan[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(nan, y)
    with pytest.raises(ValueError, match=r"shape \(n_chunks, T, n_features\), got shape \(20, 8\)"):
        clf.fit(X[:, :, 0], y)
    with pytest.raises(ValueError, match="one label per chunk"):
        clf.fit(X, y[:-1])
    with pytest.raises(ValueError, match="arch"):
        ChunkClassifier("gru").fit(X, y)
    fitted = ChunkClassifier("lstm", **TINY).fit(X, y)
    with pytest.raises(ValueError, match="fitted on"):
        fitted.predict(X[:, :6])
