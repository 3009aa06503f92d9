"""MSCRED: architecture, real recurrence, leakage checks, identity-mapping check, scoring, I/O."""

from __future__ import annotations

import warnings

import keras
import naive
import numpy as np
import pandas as pd
import pytest

from lab.datasets import make_mscred_synthetic
from lab.evaluation import evaluate_synthetic
from lab.models._base import NotFittedError
from lab.models.mscred import (
    TAU_QUANTILE,
    IdentityMappingWarning,
    MatrixOverflowWarning,
    MSCREDDetector,
    SeparationWarning,
)
from lab.models.mscred_layers import ConvLSTMSequence, StepAttention, build_mscred
from lab.tensor_utility import signature_matrices

# A tiny configuration: 6 series, three scales, sequences of 3 matrices, one epoch.
TINY = dict(windows=(10, 20, 30), step=10, steps=3, epochs=1, batch_size=16,
            filters=(4, 4, 4, 4))


def _bar_passed(ev: dict) -> bool:
    """The synthetic bar of issue 8."""
    return (ev["detected"] >= 4 and ev["false_episodes"] <= 1 and ev["auc_roc"] >= 0.95
            and ev["root_cause_recall_at_3"] >= 0.6)


def _fit_recording(train, valid, **settings):
    """Fit a plain MSCREDDetector, recording every array handed to Keras for training.

    ``recorded`` holds ``("fit", x, y, validation_data)`` for Keras ``fit``
    (``batching="windows"``) and ``("batch", x, y)`` for each ``train_on_batch``
    (``batching="blocks"``), in call order.
    """
    recorded = []
    fit, train_on_batch = keras.Model.fit, keras.Model.train_on_batch

    def recording_fit(self, x=None, y=None, **kwargs):
        recorded.append(("fit", np.array(x), np.array(y), kwargs.get("validation_data")))
        return fit(self, x, y, **kwargs)

    def recording_batch(self, x=None, y=None, **kwargs):
        recorded.append(("batch", np.array(x), np.array(y)))
        return train_on_batch(self, x, y, **kwargs)

    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings(record=True) as caught:
        mp.setattr(keras.Model, "fit", recording_fit)
        mp.setattr(keras.Model, "train_on_batch", recording_batch)
        warnings.simplefilter("always")
        det = MSCREDDetector(**{**TINY, **settings}).fit(train, valid=valid)
    return det, caught, recorded


def _part_matrices(det, part):
    """The float32 signature matrices (channels last) of one period, standardised by ``det``."""
    Z = (part.to_numpy() - det.mean_) / det.scale_
    M, _ = signature_matrices(Z, windows=det.windows, step=det.step)
    return np.moveaxis(M, 1, -1).astype("float32")


class _Identity(MSCREDDetector):
    """The limit of a decoder fed by the skip path alone: output = last input matrix."""

    def _build_model(self, n_series, n_scales):
        inputs = keras.Input((self.steps, n_series, n_series, n_scales))
        last = keras.layers.Cropping3D(((self.steps - 1, 0), (0, 0), (0, 0)))(inputs)
        last = keras.layers.Reshape((n_series, n_series, n_scales))(last)
        out = keras.layers.Dense(n_scales, kernel_initializer=keras.initializers.Identity(),
                                 bias_initializer="zeros")(last)
        return keras.Model(inputs, out)


@pytest.fixture(scope="module")
def data():
    df, truth = make_mscred_synthetic(n_series=6, length=4000, random_state=0)
    a, b = truth.attrs["train_end"], truth.attrs["valid_end"]
    return df, truth, df.iloc[:a], df.iloc[a:b], df.iloc[b:]


@pytest.fixture(scope="module")
def fitted(data):
    df, truth, train, valid, test = data
    return _fit_recording(train, valid)


@pytest.fixture(scope="module")
def identity(data):
    df, truth, train, valid, test = data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # valid=None: the last 20% of this frame is held out as validation
        det = _Identity(**TINY).fit(pd.concat([train, valid]))
    return det, caught


# --------------------------------------------------------------------------- architecture


@pytest.mark.parametrize("n", [4, 5, 6, 7, 9, 13])
def test_build_any_size(n):
    model = build_mscred(n, n_scales=2, steps=2, filters=(2, 2, 2, 2))
    x = np.random.default_rng(n).normal(size=(1, 2, n, n, 2)).astype("float32")
    assert model(x).shape == (1, n, n, 2)


def test_build_follows_the_paper():
    model = build_mscred(30)
    convs = [model.get_layer(f"conv{i}").layer for i in range(1, 5)]
    assert [c.filters for c in convs] == [32, 64, 128, 256]
    assert [c.kernel_size for c in convs] == [(3, 3), (3, 3), (2, 2), (2, 2)]
    assert [c.strides for c in convs] == [(1, 1), (2, 2), (2, 2), (2, 2)]
    assert all(c.activation.__name__ == "selu" for c in convs)
    sizes = [model.get_layer(f"conv{i}").output.shape[2] for i in range(1, 5)]
    assert sizes == [30, 15, 8, 4]
    lstms = [model.get_layer(f"convlstm{i}") for i in range(1, 5)]
    assert [layer.filters for layer in lstms] == [32, 64, 128, 256]
    assert all(layer.output.shape[1] == 5 for layer in lstms)  # return_sequences over steps
    assert model.input_shape == (None, 5, 30, 30, 3) and model.output_shape == (None, 30, 30, 3)
    # 15 -> 16 and 8 -> 8: the decoder crops once, where an encoder level had an odd size
    assert [layer.name for layer in model.layers if "crop" in layer.name] == ["crop3"]


@pytest.mark.parametrize("bad", [dict(n_series=3), dict(n_series=5, steps=0),
                                 dict(n_series=5, filters=(2, 2, 2))])
def test_build_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        build_mscred(**bad)


def test_convlstm_equals_keras_convlstm2d():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 5, 5, 3)).astype("float32")
    reference = keras.layers.ConvLSTM2D(6, 3, padding="same", return_sequences=True)
    reference.build(x.shape)
    weights = [rng.normal(scale=0.3, size=w.shape).astype("float32")
               for w in reference.get_weights()]
    reference.set_weights(weights)
    ours = ConvLSTMSequence(6, 3)
    ours.build(x.shape)
    ours.set_weights(weights)
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(reference(x)), atol=2e-5)


def test_attention_is_a_softmax_over_steps():
    H = np.random.default_rng(1).normal(size=(3, 5, 4, 4, 2)).astype("float32")
    for chi in (1.0, 5.0):
        got = np.asarray(StepAttention(chi)(H))
        np.testing.assert_allclose(got, naive.step_attention(H, chi), rtol=1e-4, atol=1e-5)


def test_recurrence_is_real():
    """Changing only the first step changes the reconstruction of the last one."""
    keras.utils.set_random_seed(0)
    model = build_mscred(6, steps=4, filters=(4, 4, 4, 4))
    x = np.random.default_rng(2).normal(size=(2, 4, 6, 6, 3)).astype("float32")
    earlier = x.copy()
    earlier[:, 0] += 1.0
    assert np.abs(np.asarray(model(earlier)) - np.asarray(model(x))).max() > 1e-3
    # ... through the ConvLSTM's state, not only through the attention weights
    lstm = ConvLSTMSequence(4, 3)
    h, h_earlier = np.asarray(lstm(x)), np.asarray(lstm(earlier))
    assert np.abs(h_earlier[:, -1] - h[:, -1]).max() > 1e-3


def test_custom_layers_round_trip_safely(tmp_path):
    model = build_mscred(5, steps=2, filters=(2, 2, 2, 2))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    x = np.random.default_rng(3).normal(size=(1, 2, 5, 5, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)


# --------------------------------------------------------------------------- leakage


def test_normalisation_uses_train_rows_only(data, fitted, identity):
    df, truth, train, valid, test = data
    det, _, _ = fitted
    np.testing.assert_allclose(det.mean_, train.to_numpy().mean(axis=0))
    np.testing.assert_allclose(det.scale_, train.to_numpy().std(axis=0))
    # with valid=None the held-out tail does not enter the statistics either
    ident, _ = identity
    first = pd.concat([train, valid]).to_numpy()[: int(round(0.8 * (len(train) + len(valid))))]
    np.testing.assert_allclose(ident.mean_, first.mean(axis=0))


def test_training_blocks_come_from_train_only(data, fitted):
    """batching="blocks": each batch is consecutive matrices of the training part."""
    df, truth, train, valid, test = data
    det, _, recorded = fitted
    assert det.batching == "blocks" and {kind for kind, *_ in recorded} == {"batch"}
    M = _part_matrices(det, train)
    n_windows, length = len(M) - det.steps + 1, det.batch_size + det.steps - 1
    covered = np.zeros(n_windows, int)
    for _, x, y in recorded:
        assert x.shape == (1, length, *M.shape[1:])
        # a block of consecutive matrices of the training part: find where it starts
        start = int(np.flatnonzero(M[: n_windows - det.batch_size + 1, 0, 0, 0]
                                    == x[0, 0, 0, 0, 0])[0])
        np.testing.assert_array_equal(x[0], M[start: start + length])
        np.testing.assert_array_equal(y[0], x[0, det.steps - 1:])     # every window's last matrix
        covered[start: start + det.batch_size] += 1
    # one epoch: every training window once, or twice where the first or the last block
    # overlaps its neighbour (the cuts are shifted, and the blocks clipped to the ends)
    assert covered.min() == 1 and covered.max() <= 2
    assert (covered == 2).sum() <= 2 * (det.batch_size - 1)


def test_blocks_move_between_epochs_and_the_history_is_their_mean(data):
    """Two epochs: each covers every window, the cuts and the order change, and history_
    holds the mean block loss and the validation error of every validation window."""
    from lab.models.mscred_layers import reconstruct_sliding

    df, truth, train, valid, test = data
    batch_losses = []
    original = keras.Model.train_on_batch

    def recording(self, x=None, y=None, **kwargs):
        loss = original(self, x, y, **kwargs)
        batch_losses.append(float(loss))
        return loss

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(keras.Model, "train_on_batch", recording)
        det, _, recorded = _fit_recording(train, valid, epochs=2, batch_size=8)
    M = _part_matrices(det, train)
    n_windows = len(M) - det.steps + 1
    starts = [int(np.flatnonzero(M[: n_windows - 7, 0, 0, 0] == x[0, 0, 0, 0, 0])[0])
              for _, x, _ in recorded]
    # the epochs split where each has covered every window once
    covered, cut = np.zeros(n_windows, int), None
    for i, start in enumerate(starts):
        covered[start: start + 8] += 1
        if cut is None and covered.min() == 1:
            cut = i + 1
    first, second = starts[:cut], starts[cut:]
    assert len(first) in (-(-n_windows // 8), -(-n_windows // 8) + 1)
    assert sorted(first) != sorted(second)         # the cuts moved
    assert first != sorted(first) and second != sorted(second)  # random order
    assert det.history_["loss"][0] == pytest.approx(np.mean(batch_losses[:cut]))
    assert det.history_["loss"][1] == pytest.approx(np.mean(batch_losses[cut:]))
    V = _part_matrices(det, valid)
    error = np.mean(np.square(reconstruct_sliding(det.model_, V) - V[det.steps - 1:],
                              dtype=np.float64))
    assert det.history_["val_loss"][1] == pytest.approx(error, rel=1e-6)


def test_blocks_with_fewer_windows_than_a_batch(data):
    """One block of every window, when the training part holds fewer than batch_size."""
    df, truth, train, valid, test = data
    det, _, recorded = _fit_recording(train.iloc[:100], valid, batch_size=64)
    M = _part_matrices(det, train.iloc[:100])
    [(kind, x, y)] = recorded
    np.testing.assert_array_equal(x[0], M)
    np.testing.assert_array_equal(y[0], M[det.steps - 1:])
    assert det.batching_ == "blocks"


def test_training_windows_come_from_train_only(data):
    """batching="windows": Keras fit on the training part's sequences, validated on valid's."""
    df, truth, train, valid, test = data
    det, _, recorded = _fit_recording(train, valid, batching="windows")
    [(kind, X_train, y_train, (X_valid, y_valid))] = recorded
    assert kind == "fit"
    for part, X, y in ((train, X_train, y_train), (valid, X_valid, y_valid)):
        M = _part_matrices(det, part)
        # every sequence is `steps` consecutive, distinct matrices of this part alone
        assert len(X) == len(M) - det.steps + 1
        for j in range(det.steps):
            np.testing.assert_array_equal(X[:, j], M[j: j + len(X)])
        assert not np.array_equal(X[:, 0], X[:, 1])
        np.testing.assert_array_equal(y, M[det.steps - 1:])


def test_rows_after_train_never_enter_training(data, fitted):
    """Poison the validation period: the trained network is bit-identical."""
    df, truth, train, valid, test = data
    det, _, recorded = fitted
    # tau does not touch training either; fixing it here also tests the setting
    poisoned, _, poisoned_recorded = _fit_recording(train, valid * 50.0 + 100.0, tau=0.5)
    assert len(poisoned_recorded) == len(recorded)
    for (_, x, y), (_, x0, y0) in zip(poisoned_recorded, recorded, strict=True):
        np.testing.assert_array_equal(x, x0)
        np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(poisoned.mean_, det.mean_)
    for got, expected in zip(poisoned.model_.get_weights(), det.model_.get_weights(), strict=True):
        np.testing.assert_array_equal(got, expected)
    assert poisoned.history_["loss"] == det.history_["loss"]
    assert poisoned.history_["val_loss"] != det.history_["val_loss"]
    assert poisoned.tau_ == 0.5


# --------------------------------------------------------------------------- identity check


def test_identity_model_is_flagged_and_fails_the_bar(data, identity):
    df, truth, train, valid, test = data
    det, caught = identity
    # not a build_mscred network: trained by windows although batching is "blocks"
    assert det.batching == "blocks" and det.batching_ == "windows"
    assert any(w.category is IdentityMappingWarning for w in caught)
    message = next(str(w.message) for w in caught if w.category is IdentityMappingWarning)
    assert "identity mapping" in message and "collapsed" in message
    assert det.identity_check_["probe_detection_rate"] == 0.0
    assert det.identity_check_["loss_ratio"] < 1e-6  # the loss collapsed to zero
    ev = evaluate_synthetic(det, pd.concat([valid, test]), truth, start=test.index[0])
    assert not _bar_passed(ev)
    assert ev["detected"] == 0


def test_trained_model_is_not_flagged(fitted):
    det, caught, _ = fitted
    assert not any(issubclass(w.category, SeparationWarning) for w in caught)
    check = det.identity_check_
    assert check["probes"] >= 1 and check["probe_detection_rate"] >= 0.5
    assert check["loss_ratio"] > 1e-3


# --------------------------------------------------------------------------- scoring


def test_fitted_state(fitted):
    det, _, _ = fitted
    assert len(det.history_["loss"]) == len(det.history_["val_loss"]) == det.epochs
    assert all(np.isfinite(det.history_["loss"])) and all(np.isfinite(det.history_["val_loss"]))
    assert det.fit_seconds_ > 0
    assert det.columns_ == [f"x{i:02d}" for i in range(6)]


def test_residuals_equal_an_independent_reconstruction(data, fitted):
    df, truth, train, valid, test = data
    det, _, _ = fitted
    part = test.iloc[:200]
    R, labels = det.residuals(part)
    Z = (part.to_numpy() - det.mean_) / det.scale_
    M, ends = signature_matrices(Z, windows=det.windows, step=det.step)
    M = np.moveaxis(M, 1, -1).astype("float32")
    X = np.stack([M[k - det.steps + 1: k + 1] for k in range(det.steps - 1, len(M))])
    expected = np.square(X[:, -1] - det.model_.predict(X, verbose=0))
    np.testing.assert_allclose(R, np.moveaxis(expected, -1, 1), rtol=1e-5, atol=1e-6)
    assert list(labels) == list(part.index[ends[det.steps - 1:] - 1])


def test_score_counts_smallest_scale_entries_above_tau(data, fitted):
    df, truth, train, valid, test = data
    det, _, _ = fitted
    score = det.score(test)
    R, labels = det.residuals(test)
    smallest = int(np.argmin(det.windows))
    counts = (R[:, smallest] > det.tau_).sum(axis=(1, 2))
    assert score.name == "score" and score.index.equals(test.index)
    # the rows that end a matrix hold its count ...
    rows = det.scored_rows(test)
    assert test.index[rows].equals(labels)
    np.testing.assert_array_equal(rows, det.step * np.arange(len(labels)) + rows[0])
    np.testing.assert_array_equal(score.iloc[rows].to_numpy(), counts)
    # ... the rows between carry the last count, the rows before the first take the first
    for i in range(len(test)):
        k = max(np.searchsorted(rows, i, side="right") - 1, 0)
        assert score.iloc[i] == counts[k], i
    assert rows[0] == max(det.windows) + (det.steps - 1) * det.step - 1
    assert score.std() > 0  # not the constant score of the len(np.where(...)) bug
    alarms = det.predict(test)
    assert alarms.dtype == bool and alarms.name == "anomaly"
    np.testing.assert_array_equal(alarms.to_numpy(), score.to_numpy() > det.threshold_)
    # decision_scores_ are the scores of the rows fit was given
    assert det.decision_scores_.shape == (len(train),)


def test_a_series_stuck_at_1e20_alarms_and_is_named(data, fitted):
    """Issue 21: matrices overflow float32 to inf, residuals to NaN; that must alarm."""
    df, truth, train, valid, test = data
    det, _, _ = fitted
    part = test.iloc[:400].copy()
    part.iloc[200:260, 2] = 1e20
    with pytest.warns(MatrixOverflowWarning, match=r"columns \['x02'\].*rows \[") as caught:
        score = det.score(part)
    assert "highest score" in str(caught[0].message)
    n = part.shape[1]
    assert np.isfinite(score.to_numpy()).all()
    # every row whose matrices hold the stuck rows scores n * n, the most there is
    R, labels = det.residuals(part)
    hit = ~np.isfinite(R).all(axis=(1, 2, 3))
    assert hit.any()
    np.testing.assert_array_equal(score[labels[hit]].to_numpy(), n * n)
    assert det.predict(part)[labels[hit]].all()
    assert score.iloc[:150].max() < n * n  # before the stuck rows: not flagged
    # the stuck series is named first among the root causes
    assert det.root_causes(part, labels[hit][0], k=3).index[0] == "x02"
    # a validation period with such values (standardised with training statistics) is refused
    stuck = valid.copy()
    stuck.iloc[100:110, 1] = 1e20
    with pytest.raises(ValueError, match=r"valid holds values too large.*\['x01'\]"):
        MSCREDDetector(**TINY).fit(train, valid=stuck)


def test_tau_and_threshold_come_from_validation(data, fitted):
    """Both come from matrices ending at every validation row (all offsets of the grid)."""
    df, truth, train, valid, test = data
    det, _, _ = fitted
    smallest = int(np.argmin(det.windows))
    residuals = np.concatenate([det.residuals(valid.iloc[s:])[0][:, smallest]
                                for s in range(det.step)])
    assert len(residuals) > 9 * len(det.scored_rows(valid))
    assert det.tau_ == pytest.approx(float(np.quantile(residuals, TAU_QUANTILE)), rel=1e-5)
    valid_max = max(det.score(valid.iloc[s:]).max() for s in range(det.step))
    assert det.valid_score_max_ == valid_max
    assert det.threshold_ == pytest.approx(det.alpha * valid_max)


def test_root_causes_rank_residual_rows(data, fitted):
    df, truth, train, valid, test = data
    det, _, _ = fitted
    part = pd.concat([valid, test])
    score = det.score(part).iloc[det.scored_rows(part)]
    event = truth.iloc[2]  # the 90-row event
    at = score.index[(score.index >= event["start"]) & (score.index <= event["end"])][4]
    top = det.root_causes(part, at, k=3)
    R, labels = det.residuals(part)
    mass = R[labels.get_loc(at), int(np.argmin(det.windows))].sum(axis=1)
    expected = pd.Series(mass, index=det.columns_).sort_values(ascending=False).iloc[:3]
    assert list(top.index) == list(expected.index)
    np.testing.assert_allclose(top.to_numpy(), expected.to_numpy(), rtol=1e-4)
    # the shocked series: their rows carry the residual, even for this barely trained network
    assert set(top.index) == set(event["root_causes"])
    signature, residual = det.matrices_at(part, at)
    M, M_labels = det.signature(part)
    np.testing.assert_allclose(signature, M[M_labels.get_loc(at)], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(residual, R[labels.get_loc(at)], rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="not a label"):
        det.root_causes(part, -5)
    with pytest.raises(ValueError, match="history"):
        det.root_causes(part, part.index[3])


def test_evaluate_synthetic_records(data, fitted):
    df, truth, train, valid, test = data
    det, _, _ = fitted
    context = pd.concat([valid, test])
    ev = evaluate_synthetic(det, context, truth, start=test.index[0])
    for key in ("precision", "recall", "f1", "point_adjusted_f1", "auc_roc",
                "root_cause_recall_at_3"):
        assert 0.0 <= ev[key] <= 1.0, key
    assert ev["n_events"] == 5 and 0 <= ev["detected"] <= 5
    # even a one-epoch tiny model ranks shocked windows far above normal ones
    assert ev["auc_roc"] > 0.8
    # judged at the rows that end a matrix: the metrics of the matrix-indexed score
    from lab.evaluation import evaluate_events, event_labels
    from lab.metrics import auc_roc

    R, labels = det.residuals(context)
    counts = pd.Series((R[:, int(np.argmin(det.windows))] > det.tau_).sum(axis=(1, 2)),
                       index=labels)
    counts = counts[counts.index >= test.index[0]]
    tol, grace = min(det.windows) - 1, max(det.windows) - 1
    assert ev["auc_roc"] == auc_roc(event_labels(counts.index, truth, tol).to_numpy(),
                                    counts.to_numpy())
    events = evaluate_events(counts > det.threshold_, truth, tolerance=tol, grace=grace)
    assert (ev["detected"], ev["false_episodes"]) == (events["detected"], events["false_episodes"])


# --------------------------------------------------------------------------- I/O


def test_save_load_round_trip(tmp_path, data, fitted):
    df, truth, train, valid, test = data
    det, _, _ = fitted
    det.save(tmp_path / "mscred")
    loaded = MSCREDDetector.load(tmp_path / "mscred")
    assert loaded.threshold_ == det.threshold_ and loaded.tau_ == det.tau_
    assert loaded.windows == det.windows and loaded.columns_ == det.columns_
    assert loaded.get_params() == det.get_params() and loaded.batching_ == "blocks"
    pd.testing.assert_series_equal(loaded.score(test), det.score(test))


def test_a_model_saved_without_batching_loads(tmp_path, fitted):
    """Models saved before ``batching`` existed load, with the default."""
    import json

    det, _, _ = fitted
    det.save(tmp_path / "old")
    settings = json.loads((tmp_path / "old" / "settings.json").read_text())
    del settings["params"]["batching"]
    settings["state"].pop("batching_", None)
    (tmp_path / "old" / "settings.json").write_text(json.dumps(settings))
    loaded = MSCREDDetector.load(tmp_path / "old")
    assert loaded.batching == "blocks" and loaded.threshold_ == det.threshold_


def test_load_refuses_what_is_not_a_model(tmp_path, fitted):
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a saved"):
        MSCREDDetector.load(tmp_path / "junk.keras")
    with pytest.raises(ValueError, match="not a saved"):
        MSCREDDetector.load(tmp_path)
    det, _, _ = fitted
    det.save(tmp_path / "broken")
    (tmp_path / "broken" / "model_.keras").write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(ValueError, match="not a valid Keras model"):
        MSCREDDetector.load(tmp_path / "broken")


def test_not_fitted(data):
    with pytest.raises(NotFittedError):
        MSCREDDetector().score(data[4])


# --------------------------------------------------------------------------- bad input


def test_bad_input(data):
    df, truth, train, valid, test = data
    det = MSCREDDetector(**TINY)
    with pytest.raises(ValueError, match="at least 4 series"):
        det.fit(train.iloc[:, :3], valid=valid.iloc[:, :3])
    with pytest.raises(ValueError, match=r"max\(windows\) \+ steps \* step = 60"):
        det.fit(train.iloc[:59], valid=valid)
    with pytest.raises(ValueError, match="valid has 50 rows"):
        det.fit(train, valid=valid.iloc[:50])
    holed = train.copy()
    holed.iloc[100, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        det.fit(holed, valid=valid)
    with pytest.raises(ValueError, match="valid overlaps X"):
        det.fit(train, valid=train.iloc[-300:])
    with pytest.raises(ValueError, match="columns"):
        det.fit(train, valid=valid.rename(columns={"x00": "other"}))
    with pytest.raises(ValueError, match="alpha"):
        MSCREDDetector(**{**TINY, "alpha": 0}).fit(train, valid=valid)
    with pytest.raises(ValueError, match=r"batching must be one of \('blocks', 'windows'\), "
                                         "got 'shuffled'"):
        MSCREDDetector(**{**TINY, "batching": "shuffled"}).fit(train, valid=valid)
    # the call of the old signature, fit(train, valid), is refused, not read as y
    with pytest.raises(TypeError, match="valid=valid"):
        det.fit(train, valid)


def test_bad_input_after_fit(data, fitted):
    df, truth, train, valid, test = data
    det, _, _ = fitted
    with pytest.raises(ValueError, match=r"missing: \['x05'\], extra: \[\]"):
        det.score(test.iloc[:, :5])
    with pytest.raises(ValueError, match="has 5 columns .*fitted on 6"):
        det.score(test.iloc[:, :5].to_numpy())
    with pytest.raises(ValueError, match="at least 4 series"):
        det.score(test.iloc[:, :3])
    with pytest.raises(ValueError, match=r"missing: \['x05'\], extra: \['other'\]"):
        det.score(test.rename(columns={"x05": "other"}))
    with pytest.raises(ValueError, match="rows"):
        det.score(test.iloc[:20])
    # the same columns in another order are matched by name
    pd.testing.assert_series_equal(det.score(test.iloc[:300, ::-1]), det.score(test.iloc[:300]))
