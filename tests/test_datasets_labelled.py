"""The labelled benchmark loaders (NAB, SKAB, UCR) against their files, and where they look."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lab import config
from lab.datasets import (
    DataNotFoundError,
    find_data,
    load_nab,
    load_nab_results,
    load_skab,
    load_ucr,
    load_ucr_anomaly,
    split_labels,
)
from lab.metrics import window_rows

DATA = Path(os.environ.get("LAB_SHARED_DATA",
                           Path(__file__).resolve().parents[2] / "shared" / "data"))


def _need(name: str) -> Path:
    path = DATA / name
    if not path.is_dir():
        pytest.skip(f"{name} data not found at {path}")
    return path


def test_nab_loads_every_series_with_its_windows():
    root = _need("nab")
    nab = load_nab(root)
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    assert len(nab) == 58 and sum(len(f.attrs["windows"]) for f in nab.values()) == 116
    assert sum(len(f) for f in nab.values()) == sum(
        len(pd.read_csv(root / "data" / k)) for k in windows)
    for key, pairs in windows.items():
        frame = nab[key.removesuffix(".csv")]
        raw = pd.read_csv(root / "data" / key)
        np.testing.assert_array_equal(frame["value"].to_numpy(), raw["value"].to_numpy())
        assert list(frame.columns) == ["value", "anomaly"]
        n = len(frame)
        assert frame.attrs["train_rows"] == min(math.floor(0.15 * n), 750)
        # the label is 1 exactly on the rows of NAB's windows, independently of window_rows
        index = pd.to_datetime(raw["timestamp"])
        expected = np.zeros(n, dtype=bool)
        for a, b in pairs:
            if index.is_monotonic_increasing:
                expected |= ((index >= pd.Timestamp(a)) & (index <= pd.Timestamp(b))).to_numpy()
        if index.is_monotonic_increasing:
            np.testing.assert_array_equal(frame["anomaly"].to_numpy() == 1, expected, key)
        rows = window_rows(frame.attrs["windows"], frame.index)
        assert frame["anomaly"].sum() == int((rows[:, 1] - rows[:, 0] + 1).sum())


def test_nab_category_and_bad_category():
    root = _need("nab")
    known = load_nab(root, category="realKnownCause")
    assert len(known) == 7 and all(k.startswith("realKnownCause/") for k in known)
    assert all(f.attrs["group"] == "realKnownCause" for f in known.values())
    with pytest.raises(ValueError, match="category"):
        load_nab(root, category="realNonsense")


def test_skab_loads_the_34_experiments_and_their_labels():
    root = _need("skab")
    skab = load_skab(root)
    assert len(skab) == 34
    assert [k for k in skab][:3] == ["valve1/0", "valve1/1", "valve1/2"]
    assert sum(k.startswith("other/") for k in skab) == 14
    for key, frame in skab.items():
        raw = pd.read_csv(root / "data" / f"{key}.csv", sep=";")
        assert list(frame.columns[-2:]) == ["anomaly", "changepoint"]
        assert frame.shape == (len(raw), 10)
        np.testing.assert_array_equal(frame["anomaly"].to_numpy(), raw["anomaly"].to_numpy())
        np.testing.assert_array_equal(frame.iloc[:, :8].to_numpy(), raw.iloc[:, 1:9].to_numpy())
        assert frame.attrs["train_rows"] == 400
        # the protocol's premise, that training rows are normal, fails on one experiment
        assert (frame["anomaly"].iloc[:400].sum() > 0) == (key == "other/2")
        signals, labels = split_labels(frame)
        assert signals.shape[1] == 8 and list(labels) == ["anomaly", "changepoint"]
        assert labels.attrs["name"] == key
        # the windows cover exactly the anomalous rows
        rows = window_rows(frame.attrs["windows"], frame.index)
        assert int((rows[:, 1] - rows[:, 0] + 1).sum()) == frame["anomaly"].sum()


def test_ucr_files():
    _need("ucr_anomaly")
    (name, frame), = load_ucr_anomaly().items()
    assert name == "135_InternalBleeding16" and frame.attrs["train_rows"] == 1200
    rows = np.flatnonzero(frame["anomaly"])
    assert (rows[0], rows[-1], len(frame)) == (4187, 4198, 7501)
    _need("ucr")
    X_train, X_test, y_train, y_test = load_ucr("ItalyPowerDemand")
    assert X_train.shape == (67, 24, 1) and X_test.shape == (1029, 24, 1)
    assert set(y_train) == set(y_test) == {1, 2}
    with pytest.raises(ValueError, match="name"):
        load_ucr("Coffee")


def _fake_nab(path: Path) -> Path:
    (path / "labels").mkdir(parents=True)
    (path / "data" / "realKnownCause").mkdir(parents=True)
    t = pd.date_range("2024-01-01", periods=40, freq="5min")
    pd.DataFrame({"timestamp": t.strftime("%Y-%m-%d %H:%M:%S"),
                  "value": np.arange(40.0)}).to_csv(path / "data/realKnownCause/x.csv",
                                                     index=False)
    windows = {"realKnownCause/x.csv": [[str(t[10]), str(t[14])]]}
    (path / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    return path


def test_search_order_root_then_lab_data_then_project_then_shared(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "REPO_ROOT", tmp_path / "project")
    monkeypatch.delenv("LAB_DATA", raising=False)
    shared = _fake_nab(tmp_path / "shared" / "data" / "nab")
    assert find_data("nab") == shared
    local = _fake_nab(tmp_path / "project" / "data" / "nab")
    assert find_data("nab") == local
    env = _fake_nab(tmp_path / "env" / "nab")
    monkeypatch.setenv("LAB_DATA", str(tmp_path / "env"))
    assert find_data("nab") == env
    explicit = _fake_nab(tmp_path / "mine")
    assert find_data("nab", explicit) == explicit
    frame = load_nab(explicit)["realKnownCause/x"]
    assert frame["anomaly"].tolist() == [0] * 10 + [1] * 5 + [0] * 25
    assert frame.attrs["train_rows"] == 6


def test_absent_data_names_the_places_and_the_command(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "REPO_ROOT", tmp_path / "project")
    monkeypatch.setenv("LAB_DATA", str(tmp_path / "env"))
    with pytest.raises(DataNotFoundError) as err:
        load_skab()
    message = str(err.value)
    for place in ("env/skab", "project/data/skab", "shared/data/skab", "lab data get skab"):
        assert place in message
    # an explicit root without the files names what is missing, and does not fall back
    (tmp_path / "half" / "data" / "valve1").mkdir(parents=True)
    with pytest.raises(DataNotFoundError, match=r"lacks .*data/valve2.*data/other"):
        load_skab(tmp_path / "half")


def test_a_labelled_file_that_is_missing_is_named(tmp_path):
    root = _fake_nab(tmp_path / "nab")
    (root / "data" / "realKnownCause" / "x.csv").unlink()
    with pytest.raises(ValueError, match=r"x\.csv is labelled .* but missing"):
        load_nab(root)


def test_nab_results_read_and_name_what_is_missing(tmp_path):
    root = _fake_nab(tmp_path / "nab")
    with pytest.raises(ValueError, match=r"'numenta'.* no results/numenta folder; it has no "):
        load_nab_results("numenta", root)
    folder = root / "results" / "numenta" / "realKnownCause"
    folder.mkdir(parents=True)
    (root / "results" / "other").mkdir()
    with pytest.raises(ValueError, match=r"'nope'.*it has \['numenta', 'other'\]"):
        load_nab_results("nope", root)
    with pytest.raises(ValueError, match=r"numenta_x\.csv is missing .*'realKnownCause/x\.csv'"):
        load_nab_results("numenta", root)
    t = pd.date_range("2024-01-01", periods=40, freq="5min")
    pd.DataFrame({"timestamp": t.strftime("%Y-%m-%d %H:%M:%S"), "value": np.arange(40.0),
                  "anomaly_score": np.linspace(0, 1, 40)}).to_csv(folder / "numenta_x.csv",
                                                                  index=False)
    scores, windows = load_nab_results("numenta", root)
    assert list(scores) == list(windows) == ["realKnownCause/x.csv"]
    s = scores["realKnownCause/x.csv"]
    assert s.index.equals(pd.DatetimeIndex(t, name="timestamp"))
    np.testing.assert_array_equal(s.to_numpy(), np.linspace(0, 1, 40))


def test_split_labels_refuses_frames_without_labels():
    with pytest.raises(ValueError, match="label_columns"):
        split_labels(pd.DataFrame({"value": [1.0]}))
    frame = pd.DataFrame({"value": [1.0]})
    frame.attrs["label_columns"] = ("anomaly",)
    with pytest.raises(ValueError, match=r"lacks its label columns \['anomaly'\]"):
        split_labels(frame)
