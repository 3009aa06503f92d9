"""lab.models.betsi: the autoencoder, the distance, event picking and BehaviourDetector.

Keras tests use tiny networks and 1-2 epochs, and share fitted detectors
(module scope) to stay within the test budget.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from naive import naive_normalized_distance, naive_peak_masses, naive_set_distance
from sklearn.exceptions import NotFittedError

from lab.datasets import make_behaviour_changes
from lab.metrics import f1_margin
from lab.models.betsi import (
    BehaviourDetector,
    _peak_masses,
    _set_distance_kernel,
    custom_autoencoder,
    distance_measure,
    get_events,
)

TINY = {"layer_dims": (4, 2), "epochs": 1, "batch_size": 64, "verbose": 0}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def data():
    df, cps = make_behaviour_changes(n_segments=4, length=400, n_series=2, random_state=0)
    return df, cps


@pytest.fixture(scope="module")
def fitted(data):
    df, _ = data
    train = df.iloc[:300]
    return BehaviourDetector(window_size=16, stride=2, **TINY).fit(train)


# --------------------------------------------------------------------------- autoencoder


def test_autoencoder_is_mirrored_with_a_linear_output():
    ae, enc, dec = custom_autoencoder([12, 6, 3, 2], activations=["relu", "tanh", "sigmoid"])
    dense = [layer for layer in ae.layers if layer.__class__.__name__ == "Dense"]
    assert [layer.units for layer in dense] == [6, 3, 2, 3, 6, 12]
    assert [layer.get_config()["activation"] for layer in dense] == [
        "relu", "tanh", "sigmoid", "tanh", "relu", "linear"]
    assert enc.output_shape == (None, 2) and dec.input_shape == (None, 2)
    assert dec.output_shape == (None, 12)


def test_linear_output_reconstructs_negative_standardised_data():
    import keras

    keras.utils.set_random_seed(0)
    ae, _, _ = custom_autoencoder([3, 2], activations=["relu"])
    out_layer = ae.get_layer("output")
    kernel, _ = out_layer.get_weights()
    out_layer.set_weights([kernel, np.full(3, -2.0, dtype="float32")])
    # relu codes are >= 0, yet the output can be negative: nothing clips it at 0
    x = -np.ones((4, 3), dtype="float32")
    assert (np.asarray(ae(x)) < -1).any()


def test_encoder_and_decoder_share_the_autoencoder_weights():
    ae, enc, dec = custom_autoencoder([8, 4, 2])
    ae.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
    before = np.asarray(enc(x))
    ae.fit(x, x, epochs=1, batch_size=8, verbose=0)
    assert not np.allclose(before, np.asarray(enc(x)))  # training moved the encoder too
    np.testing.assert_allclose(np.asarray(dec(enc(x))), np.asarray(ae(x)), rtol=1e-5, atol=1e-6)
    shared = {id(w) for w in ae.weights}
    assert {id(w) for w in enc.weights} <= shared and {id(w) for w in dec.weights} <= shared


@pytest.mark.parametrize(
    "dims, acts, message",
    [
        ([8, 4, 2], ["tanh"], "activations needs 2 entries"),
        ([8, 2], ["tanh", "tanh"], "activations needs 1 entries"),
        ([8], None, "at least 2 widths"),
        ([8, 0], None, "layer_dims\\[1\\] must be >= 1"),
        ("8,2", None, "sequence of widths"),
    ],
)
def test_autoencoder_rejects_bad_shapes(dims, acts, message):
    with pytest.raises(ValueError, match=message):
        custom_autoencoder(dims, acts)


# --------------------------------------------------------------------------- distance


finite = st.floats(-1e3, 1e3, allow_nan=False, width=64)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 5)), elements=finite),
       arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 5)), elements=finite))
def test_distance_matches_naive_row_by_row(a, b):
    b = np.resize(b, a.shape)
    got = distance_measure(a, b)
    want = [naive_normalized_distance(x, y) for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert np.isfinite(got).all() and (got >= 0).all()


def test_distance_special_cases():
    a = np.array([0.3, -1.2, 2.0])
    assert distance_measure(a, a) == 0.0
    assert distance_measure(a, np.zeros(3)) == 2.0  # finite where the formula divides by 0
    assert distance_measure(np.zeros(3), np.zeros(3)) == 0.0
    # scale free: the same relative change at any scale
    b = np.array([0.1, 0.4, -0.7])
    assert distance_measure(1e6 * a, 1e6 * b) == pytest.approx(distance_measure(a, b))
    with pytest.raises(ValueError, match="same shape"):
        distance_measure(np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="NaN"):
        distance_measure([np.nan, 1.0], [1.0, 1.0])


# --------------------------------------------------------------------------- events


curves = arrays(np.float64, st.integers(0, 60), elements=st.floats(0, 10, allow_nan=False))


@settings(max_examples=150, deadline=None)
@given(curves, st.sampled_from([0, 50, 150, 400]))
def test_events_match_the_naive_definition(d, threshold):
    peaks, masses = naive_peak_masses(d)
    fast_peaks, fast_masses = _peak_masses(d)
    assert fast_peaks.tolist() == peaks
    np.testing.assert_allclose(fast_masses, masses, rtol=1e-9, atol=0)
    got = get_events(d, threshold)
    assert got.dtype == np.int64
    assert set(got.tolist()) <= set(peaks)
    cut = (1 + threshold / 100) * np.mean(masses) if peaks else 0.0
    for p, m in zip(peaks, masses, strict=True):
        if np.isclose(m, cut, rtol=1e-9, atol=0):
            continue  # on the threshold: rounding may put it either side
        assert (p in got) == (m >= cut), (p, m, cut)


@settings(max_examples=60, deadline=None)
@given(curves)
def test_higher_threshold_keeps_a_subset(d):
    low, high = set(get_events(d, 50).tolist()), set(get_events(d, 200).tolist())
    assert high <= low


def test_event_peaks_are_local_maxima_above_the_median():
    d = np.abs(np.random.default_rng(3).normal(size=300)).cumsum() % 7
    ev = get_events(d, 0)
    assert len(ev) > 0
    assert (d[ev] > np.median(d)).all()
    inner = ev[(ev > 0) & (ev < len(d) - 1)]
    assert (d[inner] >= d[inner - 1]).all() and (d[inner] >= d[inner + 1]).all()


@pytest.mark.parametrize("d", [[], [1.0], [1.0, 2.0], [0.0, 1.0, 2.0, 3.0], [2.0] * 10,
                               [3.0, 2.0, 1.0], [0.0, 0.0, 5.0, 0.0, 0.0]])
def test_no_hill_or_a_lone_hill_gives_no_event_and_no_crash(d):
    assert get_events(d).tolist() == []


def test_one_broad_hill_among_noise_is_the_event():
    rng = np.random.default_rng(0)
    d = 0.1 * rng.random(200)
    d[95:106] += np.r_[np.linspace(0, 2, 6), np.linspace(2, 0, 6)[1:]]
    assert get_events(d).tolist() == [100]


@pytest.mark.parametrize("threshold", [-1, -0.5, np.nan, "150", True])
def test_bad_threshold_is_rejected(threshold):
    with pytest.raises(ValueError, match="threshold"):
        get_events([0.0, 1.0, 0.0], threshold)


def test_events_reject_bad_curves():
    with pytest.raises(ValueError, match="1-D"):
        get_events(np.ones((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        get_events([0.0, np.nan, 0.0])


# --------------------------------------------------------------------------- detector


def test_distances_are_indexed_by_the_boundary_between_windows(fitted, data):
    df, _ = data
    d = fitted.distances(df)
    w, s, lag = fitted.window_size_, fitted.stride_, fitted.lag_
    assert lag == 8  # window 16, stride 2: the first window that does not overlap
    n_windows = (len(df) - w) // s + 1
    assert isinstance(d, pd.Series) and len(d) == n_windows - lag
    # window i ends at row i*s + w, where window i + lag starts
    assert d.index.equals(df.index[np.arange(len(d)) * s + w])
    assert np.isfinite(d.to_numpy()).all() and (d.to_numpy() >= 0).all()


def test_distances_compare_codes_one_window_apart(fitted, data):
    df, _ = data
    codes = fitted.codes(df).to_numpy()
    lag = fitted.lag_
    want = [np.sqrt(sum((a - b) ** 2 for a, b in zip(codes[i], codes[i + lag], strict=True)))
            for i in range(len(codes) - lag)]
    np.testing.assert_allclose(fitted.distances(df).to_numpy(), want, rtol=1e-6, atol=1e-9)
    normalized = BehaviourDetector(**{**fitted.get_params(), "metric": "normalized"})
    for attr in ("autoencoder_", "encoder_", "decoder_", "window_size_", "stride_", "lag_",
                 "n_features_in_", "center_", "scale_", "columns_", "threshold_"):
        setattr(normalized, attr, getattr(fitted, attr))
    np.testing.assert_allclose(normalized.distances(df).to_numpy(),
                               distance_measure(codes[:-lag], codes[lag:]), rtol=1e-6)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), lag=st.integers(1, 6), span=st.integers(1, 6),
       k=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_set_distance_matches_naive(n, lag, span, k, seed):
    codes = np.random.default_rng(seed).normal(size=(n, k))
    got = _set_distance_kernel(codes, lag, span)
    want = naive_set_distance(codes, lag, span)
    assert got.shape == (len(want),)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    if span == 1:  # one code a side: the plain distance
        np.testing.assert_allclose(got, np.linalg.norm(codes[lag:] - codes[:-lag], axis=1)
                                   if n > lag else [], atol=1e-12)
    assert (got >= -1e-12).all()  # an energy distance is never negative


def test_set_distance_is_zero_for_a_repeating_cycle_and_peaks_at_a_change():
    # codes that go round a circle: one code a side sees the phase, sets of a
    # whole cycle do not; a change of radius is a hill centred on the change
    phase = 2 * np.pi * np.arange(80) / 8
    radius = np.where(np.arange(80) < 40, 1.0, 2.5)
    codes = np.c_[radius * np.cos(phase), radius * np.sin(phase)]
    single = _set_distance_kernel(codes[:40], 3, 1)
    assert single.min() > 0.5  # neighbours 3 steps apart on the circle: never close
    sets = _set_distance_kernel(codes, 3, 8)
    # value j compares codes[j .. j+7] with codes[j+10 .. j+17]: two whole
    # cycles of one radius (j <= 22 or j >= 40) give 0, whatever the phase;
    # a gap on the change (left all before 40, right all after) is the top
    assert len(sets) == 80 - 3 - 2 * 8 + 2
    np.testing.assert_allclose(sets[:23], 0.0, atol=1e-12)
    np.testing.assert_allclose(sets[40:], 0.0, atol=1e-12)
    assert int(np.argmax(sets)) == 30
    np.testing.assert_allclose(sets[30:33], sets[30])
    assert sets[30] > 0.3 and (sets[23:30] < sets[30]).all()


def test_span_compares_sets_of_windows_on_each_side(fitted, data):
    df, _ = data
    codes = fitted.codes(df).to_numpy()
    w, s, lag = fitted.window_size_, fitted.stride_, fitted.lag_
    det = BehaviourDetector(**{**fitted.get_params(), "span": 4})
    for attr in ("autoencoder_", "encoder_", "decoder_", "window_size_", "stride_", "lag_",
                 "n_features_in_", "center_", "scale_", "columns_", "threshold_"):
        setattr(det, attr, getattr(fitted, attr))
    d = det.distances(df)
    np.testing.assert_allclose(d.to_numpy(), naive_set_distance(codes, lag, 4), rtol=1e-6,
                               atol=1e-9)
    # the first value's gap is after window span - 1 = 3: window 3 ends at row 3*s + w
    assert d.index.equals(df.index[(np.arange(len(d)) + 3) * s + w])
    # lag + 4 windows leave room for 2 a side, not 4: span falls back to 2
    short = df.iloc[: w + (lag + 3) * s]
    assert len(fitted.codes(short)) == lag + 4
    np.testing.assert_allclose(det.distances(short).to_numpy(),
                               naive_set_distance(fitted.codes(short).to_numpy(), lag, 2),
                               rtol=1e-6, atol=1e-9)


def test_sets_of_codes_find_amplitude_changes_of_a_sine_that_neighbours_miss():
    # A sine whose amplitude switches between 1 and 2.5 every 250 rows. One
    # code follows the phase, so neighbouring windows' codes differ all along
    # and more in the loud segments: the curve steps, it has no hill at the
    # changes. Sets of lag_ codes a side cover whole cycles and do.
    rng = np.random.default_rng(0)
    n = 2000
    truth = np.arange(250, n, 250)
    amp = np.where((np.arange(n) // 250) % 2 == 0, 1.0, 2.5)
    x = (amp[:, None] * np.sin(2 * np.pi * 0.07 * np.arange(n)[:, None] + [0.0, 2.0])
         + 0.3 * rng.standard_normal((n, 2)))
    det = BehaviourDetector(verbose=0).fit(x)

    def within(cps, rows):
        return sum(bool(len(cps)) and np.abs(cps - t).min() <= rows for t in truth)

    neighbours = det.change_points(x)
    det.span = det.lag_
    sets = det.change_points(x)
    assert within(neighbours, 5) <= 1
    assert within(sets, 5) >= 4 and within(sets, 10) == len(truth)
    assert len(sets) <= len(truth) + 1
    f1 = [f1_margin({"truth": truth.tolist()}, c.tolist(), n) for c in (neighbours, sets)]
    assert f1[1] > f1[0] + 0.3


def test_change_points_events_and_peaks_agree(fitted, data):
    df, _ = data
    d = fitted.distances(df)
    cps = fitted.change_points(df)
    assert cps.dtype == np.int64 and np.all((cps >= 0) & (cps < len(df)))
    assert np.all(np.diff(cps) > 0)
    expected = df.index.get_indexer(d.index[get_events(d.to_numpy(), fitted.margin)])
    np.testing.assert_array_equal(cps, expected)
    events = fitted.events(df)
    assert events.equals(df.index[cps]) and isinstance(events, pd.DatetimeIndex)
    peaks = fitted.peaks(df)
    assert peaks.loc[peaks["event"], "row"].tolist() == cps.tolist()
    assert (peaks.loc[peaks["event"], "mass"] >= peaks.attrs["mass_threshold"]).all()


def test_normalisation_uses_the_fit_rows_only(fitted, data):
    df, _ = data
    train = df.iloc[:300].to_numpy()
    np.testing.assert_allclose(fitted.center_, train.mean(axis=0))
    np.testing.assert_allclose(fitted.scale_, train.std(axis=0))
    # scoring other data does not refit the statistics
    fitted.distances(df + 100.0)
    np.testing.assert_allclose(fitted.center_, train.mean(axis=0))


def test_save_load_round_trip(fitted, data, tmp_path):
    df, _ = data
    path = fitted.save(tmp_path / "betsi")
    loaded = BehaviourDetector.load(path)
    assert loaded.get_params() == fitted.get_params()
    assert (loaded.window_size_, loaded.stride_, loaded.lag_) == (
        fitted.window_size_, fitted.stride_, fitted.lag_)
    pd.testing.assert_series_equal(loaded.distances(df), fitted.distances(df))
    np.testing.assert_array_equal(loaded.change_points(df), fitted.change_points(df))
    assert loaded.history_ == fitted.history_
    # the rebuilt encoder and decoder still share the loaded autoencoder's weights
    x = np.random.default_rng(0).normal(size=(5, loaded.autoencoder_.input_shape[1])).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded.decoder_(loaded.encoder_(x))),
                               np.asarray(loaded.autoencoder_(x)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="not a saved BehaviourDetector"):
        BehaviourDetector.load(tmp_path)


def test_deterministic_for_a_fixed_seed_and_silent_with_verbose_0(data, capsys):
    df, _ = data
    x = df.iloc[:120]
    a = BehaviourDetector(window_size=8, stride=2, random_state=3, **TINY).fit(x)
    b = BehaviourDetector(window_size=8, stride=2, random_state=3, **TINY).fit(x)
    c = BehaviourDetector(window_size=8, stride=2, random_state=4, **TINY).fit(x)
    for wa, wb in zip(a.autoencoder_.get_weights(), b.autoencoder_.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    pd.testing.assert_series_equal(a.distances(x), b.distances(x))
    assert not np.allclose(a.distances(x), c.distances(x))
    assert capsys.readouterr().out == ""


def test_progress_bar_when_verbose(data, capsys):
    x = data[0].iloc[:60]
    BehaviourDetector(window_size=8, stride=4, **{**TINY, "verbose": 1}).fit(x)
    out = capsys.readouterr().out
    assert "1/1" in out and "loss" in out


@pytest.mark.parametrize(
    "n, window, stride",
    [(2, 2, 1), (15, 2, 1), (21, 2, 1), (59, 5, 1), (100, 10, 1), (313, 31, 3),
     (816, 32, 4), (100_000, 32, 4)],
)
def test_automatic_window_and_stride_follow_the_length(n, window, stride):
    assert BehaviourDetector()._resolve_window(n) == (window, stride)


@pytest.mark.parametrize("n", [2, 15])
def test_defaults_work_on_very_short_series(n):
    x = pd.DataFrame({"a": np.r_[np.zeros(n // 2), np.ones(n - n // 2)]},
                     index=pd.date_range("2000", periods=n, freq="YS"))
    det = BehaviourDetector(epochs=1, verbose=0).fit(x)
    cps = det.change_points(x)
    assert cps.dtype == np.int64 and np.all((cps > 0) & (cps < n))
    n_windows = (n - det.window_size_) // det.stride_ + 1
    assert len(det.distances(x)) == max(0, n_windows - det.lag_)


def test_bivariate_arrays_and_a_stride_that_does_not_divide_the_window(data):
    df, _ = data
    values = df.to_numpy()[:150]
    det = BehaviourDetector(window_size=10, stride=4, **TINY).fit(values)
    assert det.n_features_in_ == 2
    assert det.autoencoder_.input_shape == (None, 20)  # window x series, time-major
    assert det.lag_ == 3  # window 3 starts at row 12, after window 0 ends at row 10
    d = det.distances(values)
    # placed in the middle of the 2-row gap between the two windows
    assert d.index.tolist() == (np.arange(len(d)) * 4 + 11).tolist()
    with pytest.raises(ValueError, match="fitted on 2"):
        det.distances(values[:, :1])
    with pytest.raises(ValueError, match="fitted on 2"):
        det.change_points(values[:, :1])


def test_bad_input_gives_clear_errors(fitted, data):
    df, _ = data
    with pytest.raises(ValueError, match="shorter than one window"):
        BehaviourDetector(window_size=50, **TINY).fit(df.iloc[:20])
    with pytest.raises(ValueError, match="shorter than one window"):
        fitted.distances(df.iloc[:10])
    with pytest.raises(ValueError, match="at least 2 rows"):
        BehaviourDetector(**TINY).fit(df.iloc[:1])
    nan = df.iloc[:100].copy()
    nan.iloc[5, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        BehaviourDetector(**TINY).fit(nan)
    with pytest.raises(ValueError, match="NaN"):
        fitted.change_points(nan)
    text = df.iloc[:100].assign(label="a")
    with pytest.raises(ValueError, match="non-numeric"):
        BehaviourDetector(**TINY).fit(text)
    with pytest.raises(ValueError, match="margin must be >= 0"):
        BehaviourDetector(margin=-1, **TINY).fit(df)
    with pytest.raises(ValueError, match="threshold must be one of"):
        BehaviourDetector(threshold="peaks", **TINY).fit(df)
    with pytest.raises(ValueError, match="activations needs 2 entries"):
        BehaviourDetector(activations=["tanh"], **TINY).fit(df)
    with pytest.raises(ValueError, match="metric must be one of"):
        BehaviourDetector(metric="cosine", **TINY).fit(df)
    with pytest.raises(ValueError, match="span must be >= 1"):
        BehaviourDetector(span=0, **TINY).fit(df)
    with pytest.raises(ValueError, match="span=3 .*energy distance.*metric='euclidean'"):
        BehaviourDetector(span=3, metric="normalized", **TINY).fit(df)
    with pytest.raises(NotFittedError):
        BehaviourDetector().distances(df)


# --------------------------------------------------------------------------- interface


def test_score_is_the_distance_curve_placed_at_rows(fitted, data):
    df, _ = data
    d = fitted.distances(df)
    score = fitted.score(df)
    assert score.index.equals(df.index) and score.name == "score"
    rows = fitted.scored_rows(df)
    # each value sits on the last row of the later window it compares (span 1)
    k = np.arange(len(d))
    np.testing.assert_array_equal(
        rows, (k + fitted.lag_) * fitted.stride_ + fitted.window_size_ - 1)
    np.testing.assert_array_equal(score.iloc[rows].to_numpy(), d.to_numpy())
    # so a row's score reads no later row: cutting the frame changes no score before the cut
    for cut in (rows[0] + 1, rows[len(rows) // 2] + 3, len(df) - 1):
        np.testing.assert_array_equal(fitted.score(df.iloc[:cut]).to_numpy(),
                                      score.iloc[:cut].to_numpy())
    for i in range(len(df)):  # carried forward; the first value before the first row
        k = max(np.searchsorted(rows, i, side="right") - 1, 0)
        assert score.iloc[i] == d.iloc[k], i
    np.testing.assert_array_equal(fitted.decision_scores_,
                                  fitted.score(df.iloc[:300]).to_numpy())


def test_native_threshold_is_the_peak_rule_on_the_training_curve(fitted, data):
    df, _ = data
    d = fitted.distances(df.iloc[:300]).to_numpy()
    events = get_events(d, fitted.margin)
    assert events.size  # this training curve has events, so the rule is exercised
    assert (d > fitted.threshold_).sum() >= events.size
    assert fitted.threshold_ == np.nextafter(d[events].min(), -np.inf)
    flagged = fitted.predict(df.iloc[:300])
    assert flagged.iloc[fitted.scored_rows(df.iloc[:300])[events]].all()
    # the base rules are available too
    q = BehaviourDetector(**{**fitted.get_params(), "threshold": "quantile",
                             "contamination": 0.1}).fit(df.iloc[:300])
    assert q.threshold_ == pytest.approx(np.quantile(q.decision_scores_, 0.9))


def test_columns_are_matched_by_name(fitted, data):
    """Issue 21: permuted columns gave other numbers, renamed ones were accepted."""
    df, _ = data
    permuted = df[df.columns[::-1]]
    pd.testing.assert_series_equal(fitted.distances(permuted), fitted.distances(df))
    np.testing.assert_array_equal(fitted.change_points(permuted), fitted.change_points(df))
    pd.testing.assert_frame_equal(fitted.peaks(permuted), fitted.peaks(df))
    assert fitted.events(permuted).equals(fitted.events(df))
    renamed = df.rename(columns={df.columns[1]: "other"})
    message = rf"missing: \['{df.columns[1]}'\], extra: \['other'\]"
    for method in ("distances", "peaks", "events", "change_points", "score", "codes"):
        with pytest.raises(ValueError, match=message):
            getattr(fitted, method)(renamed)
