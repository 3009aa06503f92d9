"""lab.tracking: what lab.record stores, and how the runner reads it back."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pandas as pd
import pytest

from lab import tracking
from lab.config import RUN_DIR_ENV
from lab.mlflow_store import track
from lab.runner import format_runs, list_runs


def _strict_json(text):
    """Parse JSON, refusing the NaN/Infinity tokens that Python's json would accept."""
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=refuse)


def test_record_keeps_inf_apart_from_nan(tmp_path, monkeypatch):
    # lab.record(inf) was stored as null, the same as NaN.
    monkeypatch.setenv(RUN_DIR_ENV, str(tmp_path))
    tracking.record("gain", float("inf"))
    tracking.record("loss", -np.inf)
    tracking.record("auc", np.float32("nan"))
    tracking.record("none", None)
    tracking.record("table", pd.DataFrame({"a": [1.0, np.nan], "b": [np.inf, 2.0]}))
    tracking.record("nested", {"x": [np.nan, -np.inf, 1.5], "s": pd.Series({"k": np.inf})})
    raw = _strict_json((tmp_path / tracking.METRICS_FILE).read_text())
    assert raw["gain"] == "inf" and raw["loss"] == "-inf" and raw["auc"] == "nan"
    assert raw["none"] is None
    assert raw["table"] == [{"a": 1.0, "b": "inf"}, {"a": "nan", "b": 2.0}]
    assert raw["nested"] == {"x": ["nan", "-inf", 1.5], "s": {"k": "inf"}}
    for metrics in (tracking.read_metrics(tmp_path), tracking.recorded()):
        assert metrics["gain"] == math.inf and metrics["loss"] == -math.inf
        assert math.isnan(metrics["auc"]) and metrics["none"] is None
        assert metrics["table"][0]["b"] == math.inf and math.isnan(metrics["table"][1]["a"])
        assert math.isnan(metrics["nested"]["x"][0]) and metrics["nested"]["x"][1] == -math.inf
        assert metrics["nested"]["s"] == {"k": math.inf}


def test_to_jsonable_nonfinite_options():
    values = [np.inf, -np.inf, np.nan, 1.0]
    assert tracking.to_jsonable(values) == [None, None, None, 1.0]
    assert tracking.to_jsonable(values, nonfinite="string") == ["inf", "-inf", "nan", 1.0]
    back = tracking.from_jsonable(tracking.to_jsonable(values, nonfinite="string"))
    assert back[0] == math.inf and back[1] == -math.inf and math.isnan(back[2]) and back[3] == 1.0
    with pytest.raises(ValueError, match="nonfinite must be one of"):
        tracking.to_jsonable(values, nonfinite="NaN")


def test_read_metrics_of_a_missing_or_broken_file(tmp_path):
    assert tracking.read_metrics(tmp_path) == {}
    (tmp_path / tracking.METRICS_FILE).write_text("{not json")
    assert tracking.read_metrics(tmp_path) == {}


def _run_dir(root, metrics):
    run_dir = root / "demo" / "20260101T000000-abc"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({
        "id": run_dir.name, "experiment": "demo", "status": "completed", "seconds": 1.0,
        "started": "2026-01-01T00:00:00+00:00", "notebook": "demo.ipynb"}))
    (run_dir / "params.json").write_text("{}")
    (run_dir / tracking.METRICS_FILE).write_text(json.dumps(metrics))
    return run_dir


def test_list_runs_and_format_runs_show_inf_and_nan(tmp_path):
    _run_dir(tmp_path, {"gain": "inf", "loss": "-inf", "auc": "nan", "n": 3})
    (row,) = list_runs(tmp_path)
    assert row["metrics"]["gain"] == math.inf and row["metrics"]["loss"] == -math.inf
    assert math.isnan(row["metrics"]["auc"])
    assert "gain=inf loss=-inf auc=nan n=3" in format_runs([row])


@pytest.mark.slow  # MLflow creates its SQLite schema: 20 s on the shared machine
def test_mlflow_gets_inf_and_nan(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_TRACKING", "on")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_dir = _run_dir(tmp_path, {"gain": "inf", "loss": "-inf", "auc": "nan", "n": 3})
    run_id = track(run_dir, tmp_path)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    metrics = client.get_run(run_id).data.metrics
    # MLflow's SQL store keeps NaN, and saves +-inf as the largest float64.
    assert metrics["gain"] == sys.float_info.max and metrics["loss"] == -sys.float_info.max
    assert math.isnan(metrics["auc"]) and metrics["n"] == 3.0


# A process killed while MLflow builds a new store's schema (the migrations create tables
# one by one); it kills itself after the third table, in the middle of a migration.
_KILLED_WHILE_CREATING = """
import os, signal, sys
from pathlib import Path
from alembic.operations import Operations

made = []
real = Operations.create_table

def create_table(self, *args, **kwargs):
    made.append(args[0])
    out = real(self, *args, **kwargs)
    if len(made) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return out

Operations.create_table = create_table
from lab.mlflow_store import mlflow_client
mlflow_client(Path(sys.argv[1]))
"""


def test_a_process_killed_while_creating_the_store_leaves_none(tmp_path, monkeypatch):
    import subprocess

    from lab.mlflow_store import mlflow_client

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    killed = subprocess.run([sys.executable, "-c", _KILLED_WHILE_CREATING, str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    # no half-made store: only its hidden partial file, which the next client removes
    assert not (tmp_path / "mlflow.db").exists()
    assert list(tmp_path.glob(".mlflow.db.*.partial"))
    client = mlflow_client(tmp_path)
    exp = client.create_experiment("after-the-kill")
    assert client.get_experiment(exp).name == "after-the-kill"
    assert (tmp_path / "mlflow.db").is_file() and not list(tmp_path.glob(".mlflow.db.*"))
