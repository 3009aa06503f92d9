"""make_mscred_synthetic follows the MSCRED paper's protocol and its truth is exact."""

from __future__ import annotations

import numpy as np
import pytest

from lab.datasets import make_mscred_synthetic
from lab.datasets.mscred_synthetic import ANOMALY_DURATIONS


@pytest.fixture(scope="module")
def default():
    return make_mscred_synthetic()


def test_shape_split_and_truth(default):
    df, truth = default
    assert df.shape == (20000, 30) and df.index.name == "t"
    assert truth.attrs == {"train_end": 8000, "valid_end": 10000}
    assert len(truth) == 5
    assert truth["duration"].tolist() == [10, 30, 90, 10, 30]
    assert (truth["end"] - truth["start"] + 1).tolist() == truth["duration"].tolist()
    # all anomalies in the test period, in order, with clean history between them
    assert (truth["start"] >= 10000).all() and (truth["end"] < 20000).all()
    assert (truth["start"].to_numpy()[1:] - truth["end"].to_numpy()[:-1] > 200).all()
    for causes in truth["root_causes"]:
        assert len(causes) == len(set(causes)) == 3 and set(causes) <= set(df.columns)


def test_same_seed_same_data_other_seed_other_data(default):
    df, truth = default
    again, truth_again = make_mscred_synthetic()
    assert again.equals(df) and truth_again.equals(truth)
    other, truth_other = make_mscred_synthetic(random_state=1)
    assert not other.equals(df) and not truth_other["start"].equals(truth["start"])


def test_shocks_hit_exactly_the_truth(default):
    """Only the shock size differs between the two draws: the difference is the truth."""
    df, truth = default
    half, _ = make_mscred_synthetic(shock=1.5)
    diff = (df - half).to_numpy()
    expected = np.zeros_like(diff, dtype=bool)
    for start, end, causes in zip(truth["start"], truth["end"], truth["root_causes"],
                                  strict=True):
        expected[start:end + 1, [df.columns.get_loc(c) for c in causes]] = True
    assert np.array_equal(np.abs(diff) > 1e-9, expected)
    np.testing.assert_allclose(np.abs(diff[expected]), 1.5)
    # the sign of a shock is constant over its duration
    for start, end, causes in zip(truth["start"], truth["end"], truth["root_causes"],
                                  strict=True):
        block = diff[start:end + 1, [df.columns.get_loc(c) for c in causes]]
        assert (np.sign(block) == np.sign(block[0])).all()


def test_normal_part_is_the_paper_sinusoid():
    clean, truth = make_mscred_synthetic(n_series=8, length=4000, noise=0.0, random_state=3)
    noisy, _ = make_mscred_synthetic(n_series=8, length=4000, noise=0.3, random_state=3)
    normal = np.ones(len(clean), dtype=bool)
    for start, end in zip(truth["start"], truth["end"], strict=True):
        normal[start:end + 1] = False
    values = clean.to_numpy()[normal]
    assert np.abs(values).max() <= 1.0 + 1e-12
    # period 2 * pi * omega with omega in [40, 50]: dominant frequency of each clean series
    spectrum = np.abs(np.fft.rfft(clean.to_numpy()[:2000], axis=0))  # no anomaly there
    periods = 2000 / (np.argmax(spectrum[1:], axis=0) + 1)
    assert ((periods > 2 * np.pi * 40 * 0.85) & (periods < 2 * np.pi * 50 * 1.15)).all()
    # the noise is Gaussian with the paper's lambda = 0.3
    residual = (noisy - clean).to_numpy()
    assert residual.std() == pytest.approx(0.3, rel=0.03)


def test_durations_cycle():
    _, truth = make_mscred_synthetic(n_series=4, length=16000, n_anomalies=7)
    assert truth["duration"].tolist() == [ANOMALY_DURATIONS[i % 3] for i in range(7)]


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_series=3), "n_series"),
    (dict(length=1000), "too short"),
    (dict(shock=0.0), "shock"),
    (dict(noise=-1.0), "noise"),
    (dict(noise="0.3"), r"noise must be a finite number, got '0.3' \(str\)"),
    (dict(noise=True), r"noise must be a finite number, got True \(bool\)"),
    (dict(shock=np.nan), "shock must be a finite number, got nan"),
    (dict(shock="3"), r"shock must be a finite number, got '3' \(str\)"),
])
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_mscred_synthetic(**kwargs)
