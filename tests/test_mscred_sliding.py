"""reconstruct_sliding: each matrix encoded once, the same output as predict on every window."""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lab.models.mscred as mscred
import lab.models.mscred_train as mscred_train
from lab.datasets import make_mscred_synthetic
from lab.models.mscred import MSCREDDetector
from lab.models.mscred_layers import (
    block_model,
    build_mscred,
    reconstruct_sliding,
    window_sequences,
)

# steps=1 models attend over one step, which Keras warns about
pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax over axis 1")

# float32 arithmetic in another order: differences of a few ulps of the matrices' scale
ATOL = 1e-4


@functools.cache
def _model(n: int, steps: int, n_scales: int = 3, filters=(2, 3, 2, 2)) -> keras.Model:
    keras.utils.set_random_seed(n + 10 * steps)
    return build_mscred(n, n_scales, steps, filters=filters)


def _matrices(n_matrices: int, n: int, n_scales: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n_matrices, n, n, n_scales)).astype("float32")


def _expected(model: keras.Model, M: np.ndarray) -> np.ndarray:
    """The per-window path: predict on every sequence of ``steps`` matrices."""
    return np.asarray(model.predict(window_sequences(M, model.input_shape[1]), verbose=0))


@pytest.mark.parametrize("n, steps, n_scales, filters, n_matrices, batch_size", [
    (5, 2, 3, (2, 2, 2, 2), 9, 3),       # odd n: the crop layers
    (7, 3, 2, (3, 4, 5, 6), 11, 4),      # odd n, chunks that do not divide 9 windows
    (8, 1, 3, (2, 3, 2, 2), 5, 2),       # steps=1: no recurrence at all
    (6, 4, 1, (2, 2, 3, 2), 4, 64),      # as many matrices as steps: one window
    (9, 5, 3, (4, 4, 4, 4), 12, 1),      # one window per chunk
    (4, 3, 3, (2, 2, 2, 2), 20, 100),    # one chunk for all
])
def test_equals_predict_on_every_window(n, steps, n_scales, filters, n_matrices, batch_size):
    model = _model(n, steps, n_scales, filters)
    M = _matrices(n_matrices, n, n_scales, seed=n_matrices)
    out = reconstruct_sliding(model, M, batch_size=batch_size)
    assert out.shape == (n_matrices - steps + 1, n, n, n_scales) and out.dtype == np.float32
    np.testing.assert_allclose(out, _expected(model, M), rtol=0, atol=ATOL)


@settings(max_examples=12, deadline=None)
@given(n=st.sampled_from([4, 5, 7]), steps=st.integers(1, 4), extra=st.integers(0, 7),
       batch_size=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_windows_and_chunks_of_any_size(n, steps, extra, batch_size, seed):
    model = _model(n, steps)
    M = _matrices(steps + extra, n, seed=seed)
    out = reconstruct_sliding(model, M, batch_size=batch_size)
    np.testing.assert_allclose(out, _expected(model, M), rtol=0, atol=ATOL)
    # each window depends on its own matrices only: the chunking changes nothing
    np.testing.assert_allclose(out, reconstruct_sliding(model, M, batch_size=1000),
                               rtol=0, atol=ATOL)


def test_windows_see_their_own_matrices_only():
    """A change to matrix k moves the windows that hold it and no other."""
    model = _model(5, 3)
    M = _matrices(10, 5)
    base = reconstruct_sliding(model, M, batch_size=3)
    M2 = M.copy()
    M2[6] += 5.0
    moved = np.abs(reconstruct_sliding(model, M2, batch_size=3) - base).max(axis=(1, 2, 3))
    # windows i hold matrices i .. i + 2; matrix 6 is in windows 4, 5 and 6
    assert (moved[[4, 5, 6]] > 1e-3).all() and (moved[[0, 1, 2, 3, 7]] == 0).all()


def test_overflow_stays_in_the_windows_that_hold_it():
    model = _model(5, 2)
    M = _matrices(6, 5)
    M[3, 0, 0, 0] = np.inf
    out = reconstruct_sliding(model, M, batch_size=4)
    finite = np.isfinite(out).all(axis=(1, 2, 3))
    # windows 2 and 3 hold matrix 3
    assert finite.tolist() == [True, True, False, False, True]


def test_trained_detector_scores_the_same_as_predict_on_every_window(monkeypatch):
    df, _ = make_mscred_synthetic(n_series=5, length=1600, n_anomalies=1, random_state=1)
    det = MSCREDDetector(windows=(10, 20), step=5, steps=3, epochs=1, batch_size=16,
                         filters=(3, 3, 3, 3)).fit(df.iloc[:700], valid=df.iloc[700:1000])
    test = df.iloc[1000:]
    Z_valid = (df.iloc[700:1000].to_numpy() - det.mean_) / det.scale_

    def outputs():
        fitted = det.tau_, det.valid_score_max_
        det._set_tau(Z_valid)
        tau = det.tau_, det.valid_score_max_
        det.tau_, det.valid_score_max_ = fitted  # the rest uses the fitted tau_
        R, _ = det.residuals(test)
        _, res = det.matrices_at(test, test.index[-1])
        return R, res, tau, det._identity_check(Z_valid), det.score(test)

    sliding = outputs()
    assert sliding[2] == (det.tau_, det.valid_score_max_)
    # without the build_mscred layers the detector falls back on predict per window
    monkeypatch.setattr(mscred, "is_mscred_network", lambda model: False)
    whole = outputs()
    scale = float(np.abs(det.signature(test)[0]).max()) ** 2
    assert np.abs(sliding[0] - whole[0]).max() <= ATOL * scale
    assert np.abs(sliding[1] - whole[1]).max() <= ATOL * scale
    assert sliding[2][0] == pytest.approx(whole[2][0], rel=1e-4)
    assert sliding[2][1] == whole[2][1] and sliding[3] == whole[3]
    assert sliding[3]["probes"] >= 1
    assert (sliding[4] == whole[4]).all()


@pytest.mark.parametrize("matrices, match", [
    (np.zeros((6, 5, 5)), r"matrices must be 4-D with shape \(n_matrices, n=5, n=5, "
                          r"n_scales=3\), got shape \(6, 5, 5\)"),
    (np.zeros((6, 6, 6, 3)), r"n=5, n=5, n_scales=3\), got shape \(6, 6, 6, 3\)"),
    (np.zeros((6, 5, 5, 2)), r"got shape \(6, 5, 5, 2\)"),
    (np.zeros((2, 5, 5, 3)), r"matrices holds 2 matrices \(shape \(2, 5, 5, 3\)\).*steps=3"),
    (np.full((6, 5, 5, 3), "a"), "matrices must hold real numbers"),
])
def test_wrong_matrices_raise(matrices, match):
    with pytest.raises(ValueError, match=match):
        reconstruct_sliding(_model(5, 3), matrices)


def test_wrong_batch_size_and_model_raise():
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        reconstruct_sliding(_model(5, 3), _matrices(4, 5), batch_size=0)
    inputs = keras.Input((3, 5, 5, 3))
    other = keras.Model(inputs, keras.layers.Reshape((5, 5, 3))(inputs[:, -1]), name="last")
    with pytest.raises(ValueError, match="model 'last' is not a build_mscred network"):
        reconstruct_sliding(other, _matrices(4, 5))


# ------------------------------------------------------------------ bfloat16 convolutions


@pytest.mark.parametrize("n, steps, filters", [(9, 3, (4, 6, 8, 8)), (12, 5, (8, 8, 16, 16))])
def test_bfloat16_reconstruction_is_close_to_float32_and_not_it(n, steps, filters):
    model = _model(n, steps, 3, filters)
    M = _matrices(steps + 20, n, seed=3)
    exact = _expected(model, M)
    low = reconstruct_sliding(model, M, batch_size=8, precision="bfloat16")
    assert low.shape == exact.shape and low.dtype == np.float32
    scale = np.abs(exact).max()
    # bfloat16 keeps 8 significant bits (a relative step of 2 ** -8) of each convolution's
    # inputs and weights; a handful of roundings pile up through the layers
    assert np.abs(low - exact).max() <= 0.02 * scale
    # ... and it is not float32 under another name: some entries move by more than float32
    # reordering does
    assert np.abs(low - exact).max() > 10 * ATOL * scale
    # float32 after a bfloat16 call: still float32 (one traced function per precision)
    np.testing.assert_allclose(reconstruct_sliding(model, M, batch_size=8), exact, atol=ATOL)


def test_precision_is_checked():
    with pytest.raises(ValueError, match=r"precision must be one of \('float32', 'bfloat16'\), "
                                         r"got 'float16'"):
        reconstruct_sliding(_model(5, 3), _matrices(4, 5), precision="float16")
    model = build_mscred(5, 3, 2, filters=(2, 2, 2, 2))
    model.get_layer("conv2").layer.dilation_rate = (2, 2)  # not what the bfloat16 path repeats
    with pytest.raises(ValueError, match=r"conv2 has padding='same', dilation_rate=\(2, 2\)"):
        reconstruct_sliding(model, _matrices(4, 5), precision="bfloat16")
    with pytest.raises(ValueError, match="score_precision must be one of"):
        MSCREDDetector(score_precision="half").fit(np.zeros((10, 5)))


@pytest.mark.parametrize("flags, onednn, warned", [
    ({"avx2", "fma"}, None, "this CPU has none of avx512_bf16, amx_bf16"),
    ({"avx512f", "avx512_bf16"}, "0", "TF_ENABLE_ONEDNN_OPTS=0 turns off oneDNN"),
    ({"avx512f", "avx512_bf16"}, None, None),
    ({"amx_bf16"}, "1", None),
    (None, None, None),  # flags unknown (not Linux): nothing said
])
def test_bfloat16_warns_once_where_it_is_not_faster(monkeypatch, flags, onednn, warned):
    import warnings

    import lab.models.mscred_layers as layers_module

    monkeypatch.setattr(layers_module, "_cpu_flags", lambda: flags)
    if onednn is None:
        monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    else:
        monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", onednn)
    layers_module._warn_if_bfloat16_is_slow.cache_clear()
    model, M = _model(5, 2), _matrices(4, 5)
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            reconstruct_sliding(model, M, precision="bfloat16")
            reconstruct_sliding(model, M, precision="bfloat16")  # once a process
            reconstruct_sliding(model, M)  # float32 says nothing
        said = [str(w.message) for w in seen if issubclass(w.category, RuntimeWarning)]
        if warned is None:
            assert said == []
        else:
            assert len(said) == 1 and warned in said[0], said
    finally:
        layers_module._warn_if_bfloat16_is_slow.cache_clear()


def test_bfloat16_detector_scores_nearly_as_float32_and_saves_it(tmp_path, monkeypatch):
    df, _ = make_mscred_synthetic(n_series=6, length=1600, n_anomalies=1, random_state=2)
    kwargs = dict(windows=(10, 20), step=5, steps=3, epochs=1, batch_size=16,
                  filters=(4, 4, 4, 4))
    full = MSCREDDetector(**kwargs).fit(df.iloc[:700], valid=df.iloc[700:1000])
    low = MSCREDDetector(**kwargs, score_precision="bfloat16").fit(df.iloc[:700],
                                                                    valid=df.iloc[700:1000])
    # training is float32 either way: the same network
    for a, b in zip(full.model_.get_weights(), low.model_.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    test = df.iloc[1000:]
    rows = full.scored_rows(test)
    s32, s16 = full.score(test).to_numpy()[rows], low.score(test).to_numpy()[rows]
    # tau_ comes from bfloat16 validation scores: near float32's, not equal to it
    assert low.tau_ == pytest.approx(full.tau_, rel=0.05) and low.tau_ != full.tau_
    assert (low.score_precision_, full.score_precision_) == ("bfloat16", "float32")
    assert np.mean(s32 == s16) >= 0.8 and np.corrcoef(s32, s16)[0, 1] >= 0.95
    assert not np.array_equal(low.residuals(test)[0], full.residuals(test)[0])
    again = MSCREDDetector.load(low.save(tmp_path / "low"))
    assert again.score_precision == "bfloat16"
    np.testing.assert_array_equal(again.score(test).to_numpy(), low.score(test).to_numpy())
    # tau_ and threshold_ belong to the precision of fit: another one is refused
    with pytest.raises(ValueError, match="score_precision is 'float32' but the detector was "
                                         "fitted with 'bfloat16'"):
        low.set_params(score_precision="float32").score(test)
    low.set_params(score_precision="bfloat16")
    # a network that is not build_mscred's has no bfloat16 path: said, not ignored, and
    # before training it
    monkeypatch.setattr(mscred, "is_mscred_network", lambda model: False)
    with pytest.raises(ValueError, match="score_precision='bfloat16' needs a build_mscred"):
        low.score(test)
    with pytest.raises(ValueError, match="score_precision='bfloat16' needs a build_mscred"):
        MSCREDDetector(**kwargs, score_precision="bfloat16").fit(df.iloc[:700],
                                                                 valid=df.iloc[700:1000])


# ----------------------------------------------------------------- training on blocks


def _naive_block_starts(n_windows: int, size: int, offset: int) -> list[int]:
    """Loop version: cut at k * size - offset, clip each block into [0, n_windows), dedupe;
    under two blocks' worth of windows, the two end blocks."""
    if n_windows < 2 * size:
        return sorted({0, n_windows - size})
    starts, k = [], 0
    while True:
        start = min(max(k * size - offset, 0), n_windows - size)
        if start not in starts:
            starts.append(start)
        if start + size >= n_windows:
            return starts
        k += 1


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 12), extra=st.integers(0, 60), data=st.data())
def test_block_starts_cover_every_window_with_whole_blocks(size, extra, data):
    n_windows = size + extra
    offset = data.draw(st.integers(0, size - 1))
    starts = mscred_train.block_starts(n_windows, size, offset)
    assert starts.tolist() == _naive_block_starts(n_windows, size, offset)
    covered = np.zeros(n_windows, int)
    for s in starts:
        assert 0 <= s <= n_windows - size          # a whole block of `size` windows
        covered[s: s + size] += 1
    assert covered.min() >= 1 and covered.max() <= 2
    assert len(starts) in (-(-n_windows // size), -(-n_windows // size) + 1)


@pytest.mark.parametrize("args, message", [
    ((3, 4, 0), "n_windows must be >= 4, got 3"),
    ((10, 0, 0), "size must be >= 1, got 0"),
    ((10, 4, 4), "offset must be <= 3, got 4"),
    ((10, 4, -1), "offset must be >= 0, got -1"),
])
def test_block_starts_refuses_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        mscred_train.block_starts(*args)


@pytest.mark.parametrize("steps, n_blocks_windows", [(3, 4), (2, 1), (4, 6), (1, 4)])
def test_a_block_step_is_the_windows_step(steps, n_blocks_windows):
    """One SGD step on a block equals one step on its windows stacked as a batch.

    The same loss (the mean squared error of each window's last matrix) and the
    same gradients, so the same weights after the step, up to float32 rounding.
    """
    M = _matrices(n_blocks_windows + steps - 1, 6, seed=steps)
    keras.utils.set_random_seed(1)
    windows_net = build_mscred(6, 3, steps, filters=(2, 3, 2, 2))
    block_net = build_mscred(6, 3, steps, filters=(2, 3, 2, 2))
    block_net.set_weights(windows_net.get_weights())
    block = block_model(block_net)
    windows_net.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    block.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    X = window_sequences(M, steps)
    before = block_net.get_weights()
    loss_windows = float(windows_net.train_on_batch(X, X[:, -1]))
    loss_block = float(block.train_on_batch(M[None], M[None, steps - 1:]))
    assert loss_block == pytest.approx(loss_windows, rel=1e-5)
    moved = 0.0
    for got, expected, old in zip(block_net.get_weights(), windows_net.get_weights(), before,
                                  strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
        moved = max(moved, float(np.abs(got - old).max()))
    assert moved > 1e-3  # the step did train the shared network


def test_block_model_refuses_another_network():
    inputs = keras.Input((2, 5, 5, 3))
    other = keras.Model(inputs, keras.layers.Dense(3)(inputs[:, -1]))
    with pytest.raises(ValueError, match="network must be a build_mscred network"):
        block_model(other)


def test_window_sequences_are_the_windows_and_refuse_bad_steps():
    M = np.arange(24.0).reshape(6, 2, 2)
    got = window_sequences(M, 3, lo=1, hi=3)
    np.testing.assert_array_equal(got, np.stack([M[1:4], M[2:5]]))
    for steps in (0, 7):
        with pytest.raises(ValueError, match="steps"):
            window_sequences(M, steps)
    with pytest.raises(ValueError, match="steps"):
        window_sequences(M[:0], 1)


def test_the_traced_reconstruction_reads_the_current_weights():
    keras.utils.set_random_seed(3)
    model = build_mscred(6, 3, 3, filters=(2, 3, 2, 2))
    M = _matrices(12, 6, seed=4)
    before = reconstruct_sliding(model, M, batch_size=4)  # traced with these weights
    model.set_weights([w * 1.5 + 0.01 for w in model.get_weights()])
    after = reconstruct_sliding(model, M, batch_size=4)
    expected = model.predict(window_sequences(M, 3), verbose=0)
    assert np.abs(after - before).max() > 1e-3
    np.testing.assert_allclose(after, expected, atol=ATOL)


def test_the_traced_reconstruction_does_not_keep_the_network_alive():
    import gc
    import weakref

    model = build_mscred(6, 3, 2, filters=(2, 2, 2, 2))
    reconstruct_sliding(model, _matrices(5, 6), batch_size=2)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_one_trace_per_network_whatever_the_lengths():
    from lab.models.mscred_layers import _chunk_function

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the reconstruction is traced on the TensorFlow backend only")
    keras.utils.set_random_seed(5)
    model = build_mscred(6, 3, 3, filters=(2, 3, 2, 2))
    for n_matrices, batch_size in ((3, 4), (5, 4), (14, 4), (9, 64), (30, 7)):
        M = _matrices(n_matrices, 6, seed=n_matrices)
        np.testing.assert_allclose(reconstruct_sliding(model, M, batch_size=batch_size),
                                   model.predict(window_sequences(M, 3), verbose=0), atol=ATOL)
    assert _chunk_function(model).experimental_get_tracing_count() == 1
