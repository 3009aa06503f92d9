"""read_edf against pyedflib's own low-level reading; write_edf round trips; make_cpap_nights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lab.datasets import make_cpap_nights, read_edf, write_edf
from lab.datasets.cpap import BRP_RATE, CHANNELS, PLD_RATE


@pytest.fixture(scope="module")
def generator_file() -> str:
    """pyedflib's shipped EDF+ test file (11 signals at 200 Hz, two annotations)."""
    import pyedflib.data

    return pyedflib.data.get_generator_filename()


def test_read_edf_equals_pyedflib_on_its_shipped_file(generator_file):
    import pyedflib

    signals, notes = read_edf(generator_file)
    with pyedflib.EdfReader(generator_file) as f:
        labels = f.getSignalLabels()
        assert list(signals.columns) == labels
        assert signals.attrs["rate"] == f.getSampleFrequency(0)
        assert signals.index[0] == pd.Timestamp(f.getStartdatetime())
        assert signals.index[1] - signals.index[0] == pd.Timedelta(seconds=1 / 200)
        assert len(signals) == f.getNSamples()[0]
        for i, label in enumerate(labels):
            np.testing.assert_allclose(signals[label].to_numpy(), f.readSignal(i),
                                       rtol=1e-6, atol=1e-6 * f.getPhysicalMaximum(i))
            assert signals.attrs["units"][label] == f.getPhysicalDimension(i)
        onset, duration, text = f.readAnnotations()
    np.testing.assert_array_equal(notes["onset"], onset)
    np.testing.assert_array_equal(notes["duration"].fillna(-1), duration)
    assert notes["text"].tolist() == list(text)
    assert notes["time"].iloc[0] == signals.index[0]


def test_read_edf_picks_channels_and_names_a_missing_one(generator_file):
    signals, _ = read_edf(generator_file, channels=["sine 1 Hz", "ramp"])
    assert list(signals.columns) == ["sine 1 Hz", "ramp"]
    with pytest.raises(ValueError, match=r"has no channel \['Flow'\]; its channels are"):
        read_edf(generator_file, channels=["Flow"])


def test_mixed_rates_give_one_frame_per_rate_and_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=25 * 120), rng.normal(size=60)
    notes = pd.DataFrame({"onset": [3.0, 40.5], "duration": [10.0, 2.0],
                          "text": ["Obstructive apnea", "Hypopnea"]})
    path = write_edf(tmp_path / "x.edf", {"a": a, "b": b}, {"a": 25.0, "b": 0.5},
                     "2020-01-01 23:00:05", units={"a": "L/s", "b": "cmH2O"},
                     annotations=notes)
    signals, got = read_edf(path)
    assert sorted(signals) == [0.5, 25.0]
    assert signals[25.0].attrs["units"] == {"a": "L/s"}
    np.testing.assert_allclose(signals[25.0]["a"], a, atol=np.ptp(a) / 30000)
    np.testing.assert_allclose(signals[0.5]["b"], b, atol=np.ptp(b) / 30000)
    assert signals[0.5].index[1] - signals[0.5].index[0] == pd.Timedelta(seconds=2)
    assert got[["onset", "duration", "text"]].equals(notes)
    assert not list(tmp_path.glob(".*"))  # no temporary file left


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing"])
def test_an_unreadable_file_is_a_clear_error(tmp_path, damage):
    path = write_edf(tmp_path / "x.edf", {"a": np.arange(120.0)}, {"a": 1.0}, "2020-01-01")
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:-100])
    elif damage == "garbage":
        path.write_bytes(b"not an edf file at all" * 20)
    else:
        path.unlink()
    with pytest.raises(ValueError, match=r"x\.edf: not a readable EDF file"):
        read_edf(path)


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    out = tmp_path_factory.mktemp("nights")
    truth = make_cpap_nights(out, n_nights=2, hours=(1.0, 1.0), faults_per_night=4,
                             random_state=3)
    return out, truth


def test_nights_follow_resmeds_layout(nights):
    out, truth = nights
    for night in truth["night"].unique():
        brp, _ = read_edf(out / f"{night}_BRP.edf")
        pld, _ = read_edf(out / f"{night}_PLD.edf")
        eve, notes = read_edf(out / f"{night}_EVE.edf")
        assert list(brp.columns) == list(CHANNELS["BRP"]) and brp.attrs["rate"] == BRP_RATE
        assert list(pld.columns) == list(CHANNELS["PLD"]) and pld.attrs["rate"] == PLD_RATE
        assert brp.attrs["units"]["Press"] == "cmH2O" and eve.shape[1] == 0
        assert len(brp) == 3600 * BRP_RATE and len(pld) == 3600 * PLD_RATE
        # the EVE annotations are the night's scored events, and nothing else
        scored = truth[(truth["night"] == night) & ~truth["fault"]].sort_values("start")
        assert len(notes) == len(scored) > 0
        np.testing.assert_allclose(notes["onset"], (scored["start"] - brp.index[0])
                                   .dt.total_seconds())
        assert set(notes["text"]) <= {"Obstructive apnea", "Hypopnea"}


def test_faults_have_the_specified_kinds_sizes_and_effects(nights):
    out, truth = nights
    faults = truth[truth["fault"]]
    assert sorted(faults["kind"].unique()) == ["flatline", "leak", "mask_off", "spike"]
    seconds = (faults["end"] - faults["start"]).dt.total_seconds()
    limits = {"leak": (120, 1200), "mask_off": (60, 600), "flatline": (120, 1800),
              "spike": (1, 5)}
    for kind, s in seconds.groupby(faults["kind"]):
        assert s.between(*limits[kind]).all(), kind
    for f in faults.itertuples():
        brp, _ = read_edf(out / f"{f.night}_BRP.edf")
        pld, _ = read_edf(out / f"{f.night}_PLD.edf")
        inside = slice(f.start, f.end - pd.Timedelta(seconds=0.04))
        if f.kind == "leak":
            assert pld["Leak"][inside].max() >= 30 - 0.5
        elif f.kind == "mask_off":
            assert brp["Press"][inside].abs().max() < 0.5 and brp["Flow"][inside].abs().max() < 0.1
        elif f.kind == "spike":
            before = brp["Press"][f.start - pd.Timedelta(seconds=5):
                                  f.start - pd.Timedelta(seconds=0.04)].max()
            assert brp["Press"][inside].max() > before + 4
        else:
            frame = brp if f.channels in brp else pld
            assert frame[f.channels][inside].nunique() == 1
    physiology = truth[~truth["fault"]]
    assert set(physiology["kind"]) <= {"apnea", "hypopnea"}
    assert ((physiology["end"] - physiology["start"]).dt.total_seconds()).between(10, 60).all()


def test_the_same_seed_writes_the_same_nights(tmp_path, nights):
    out, truth = nights
    again = make_cpap_nights(tmp_path, n_nights=2, hours=(1.0, 1.0), faults_per_night=4,
                             random_state=3)
    pd.testing.assert_frame_equal(again, truth)
    name = f"{truth['night'].iloc[0]}_BRP.edf"
    assert (tmp_path / name).read_bytes() == (out / name).read_bytes()
    assert pd.read_csv(tmp_path / "truth.csv")["kind"].tolist() == truth["kind"].tolist()


def test_bad_generator_settings_are_named():
    with pytest.raises(ValueError, match="n_nights"):
        make_cpap_nights("/tmp/never", n_nights=0)
    with pytest.raises(ValueError, match="hours"):
        make_cpap_nights("/tmp/never", hours=(8, 4))
