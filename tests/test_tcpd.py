"""lab.datasets.load_tcpd / list_tcpd against the raw TCPD files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lab.datasets import list_tcpd, load_tcpd
from lab.metrics import covering, f1_margin


def test_list_tcpd_names_every_annotated_file(tcpd_root):
    names = list_tcpd(tcpd_root)
    annotated = json.loads((tcpd_root / "annotations.json").read_text())
    assert names == sorted(n for n in annotated if (tcpd_root / f"{n}.json").is_file())
    assert "nile" in names and "run_log" in names


def test_load_tcpd_matches_raw_files(tcpd_root):
    annotated = json.loads((tcpd_root / "annotations.json").read_text())
    for name in list_tcpd(tcpd_root):
        raw = json.loads((tcpd_root / f"{name}.json").read_text())
        series, annotations = load_tcpd(name, tcpd_root)
        assert series.shape == (raw["n_obs"], raw["n_dim"])
        assert series.attrs["n_obs"] == raw["n_obs"]
        for k, dim in enumerate(raw["series"]):
            expected = np.array([np.nan if v is None else v for v in dim["raw"]], float)
            np.testing.assert_array_equal(series.iloc[:, k].to_numpy(), expected)
        assert annotations == {k: sorted(v) for k, v in annotated[name].items()}
        if "raw" in raw["time"] and "format" in raw["time"]:
            assert isinstance(series.index, pd.DatetimeIndex)
            assert series.index[0].strftime(raw["time"]["format"]) == raw["time"]["raw"][0]
        # annotations feed the metrics directly
        assert 0.0 <= f1_margin(annotations, [], len(series)) <= 1.0
        assert 0.0 <= covering(annotations, [], len(series)) <= 1.0


def test_load_tcpd_missing_values_and_bivariate(tcpd_root):
    coal, _ = load_tcpd("uk_coal_employ", tcpd_root)
    assert coal.iloc[:, 0].isna().sum() == 2
    run_log, _ = load_tcpd("run_log", tcpd_root)
    assert list(run_log.columns) == ["Pace", "Distance"]


def test_load_tcpd_errors(tcpd_root, tmp_path):
    with pytest.raises(ValueError, match="name='nope' is not a TCPD series"):
        load_tcpd("nope", tcpd_root)
    with pytest.raises(FileNotFoundError, match="TCPD data not found"):
        load_tcpd("nile", tmp_path)
    with pytest.raises(FileNotFoundError, match="LAB_TCPD"):
        list_tcpd(tmp_path)


def test_load_tcpd_rejects_inconsistent_files(tmp_path):
    (tmp_path / "annotations.json").write_text(json.dumps({"toy": {"1": [2, 9]}}))
    toy = {"name": "toy", "n_obs": 5, "n_dim": 1, "time": {"index": list(range(5))},
           "series": [{"label": "x", "raw": [1, 2, None, 4, 5]}]}
    (tmp_path / "toy.json").write_text(json.dumps(toy))
    with pytest.raises(ValueError, match=r"hold \[9\], outside \[0, n_obs=5\)"):
        load_tcpd("toy", tmp_path)
    (tmp_path / "annotations.json").write_text(json.dumps({"toy": {"1": [2]}}))
    series, annotations = load_tcpd("toy", tmp_path)
    assert isinstance(series.index, pd.RangeIndex) and np.isnan(series["x"].iloc[2])
    assert annotations == {"1": [2]}
