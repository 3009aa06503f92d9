"""04-ks-focus-baseline runs headless with --smoke, records sensible metrics, rejects bad windows."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, run_smoke

from lab.datasets import make_server_metrics
from lab.notebook import read_notebook


@pytest.mark.slow
def test_ks_focus_baseline_smoke(tmp_path):
    run_dir, metrics = run_smoke("04", tmp_path)
    smoke = read_notebook(REPO_ROOT / "notebooks" / "04-ks-focus-baseline.ipynb").smoke
    _, truth = make_server_metrics(
        n_metrics=smoke["n_metrics"], n_rows=smoke["n_rows"], n_groups=smoke["n_groups"],
        n_affected=smoke["n_affected"], random_state=0,
    )
    for name in ("precision_at_k", "auc", "speedup_vs_scipy"):
        assert isinstance(metrics[name], float), name
    assert 0 <= metrics["precision_at_k"] <= 1 and 0 <= metrics["auc"] <= 1
    # the KS ranking is far better than chance even on the tiny smoke data
    assert metrics["precision_at_k"] >= 0.5 and metrics["auc"] >= 0.8
    assert metrics["by_method"]["ks"] == {
        "precision_at_k": metrics["precision_at_k"], "auc": metrics["auc"]
    }
    assert 0 <= metrics["by_method"]["volume"]["auc"] <= 1
    assert metrics["speedup_vs_scipy"] > 0
    top = metrics["top_metrics"]
    assert len(top) == smoke["top_n"] == len(set(top))
    assert set(top) <= set(truth["group"].index)
    # the metrics ranked first are real changes
    assert top[0] in truth["affected"]
    html = (run_dir / "report.html").read_text()
    assert "plotly" in html.lower()


@pytest.mark.slow
def test_window_too_short_for_a_baseline_is_a_clear_error(tmp_path):
    """The other bad windows are unit-tested on focus_and_baseline, which the notebook calls."""
    cmd = [sys.executable, "-m", "lab", "run", "04", "--smoke", "--out", str(tmp_path),
           "-p", "focus=[100, 200]"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
                          env={**os.environ, "LAB_TRACKING": "off"})
    assert proc.returncode != 0
    assert "too early for a baseline of 4 x 100 = 400 rows" in proc.stdout + proc.stderr
