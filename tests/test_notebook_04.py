"""04-ks-focus-baseline runs headless with --smoke, records sensible metrics, rejects bad windows."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, run_smoke

from lab.datasets import make_server_metrics
from lab.datasets.server_metrics import (
    counters_to_rates,
    focus_and_baseline,
)
from lab.evaluation import evaluate_ranking
from lab.notebook import read_notebook
from lab.preprocessor import clean_metrics, rank_changes


@pytest.mark.slow
def test_ks_focus_baseline_smoke(tmp_path):
    run_dir, metrics = run_smoke("04", tmp_path)
    smoke = read_notebook(REPO_ROOT / "notebooks" / "04-ks-focus-baseline.ipynb").smoke
    df, truth = make_server_metrics(
        n_metrics=smoke["n_metrics"], n_rows=smoke["n_rows"], n_groups=smoke["n_groups"],
        n_affected=smoke["n_affected"], random_state=0,
    )
    for name in ("precision_at_k", "auc", "speedup_vs_scipy"):
        assert isinstance(metrics[name], float), name
    assert 0 <= metrics["precision_at_k"] <= 1 and 0 <= metrics["auc"] <= 1
    # the KS ranking is far better than chance even on the tiny smoke data
    assert metrics["precision_at_k"] >= 0.5 and metrics["auc"] >= 0.8
    # the recorded figures are evaluate_ranking's, for both methods
    clean, _ = clean_metrics(counters_to_rates(df), warn=False)
    focus, baseline = focus_and_baseline(truth["incident_pos"], len(df))
    for method in ("ks", "volume"):
        table = evaluate_ranking(rank_changes(clean, focus, baseline, method=method), truth)
        assert metrics["by_method"][method] == pytest.approx(
            {name: table.loc["all", name] for name in ("precision_at_k", "auc")}, abs=1e-12)
    assert metrics["by_method"]["ks"] == {
        "precision_at_k": metrics["precision_at_k"], "auc": metrics["auc"]
    }
    # Measured at 8 to 33 on the smoke frame (60 columns, 200 x 50 rows) on the loaded
    # 2-core development machine; the scipy loop pays scipy's per-call overhead 60 times.
    assert metrics["speedup_vs_scipy"] > 1
    # the speedup was measured on calls that gave scipy's answers
    assert metrics["ks_max_abs_diff_stat"] == 0.0
    assert 0.0 <= metrics["ks_max_rel_diff_p"] <= 1e-12
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
