"""01-mscred-forex runs headless with --smoke, on forex and on the synthetic protocol."""

from __future__ import annotations

from datetime import date

import pytest
from conftest import REPO_ROOT, run_smoke

from lab.datasets import load_forex, make_mscred_synthetic
from lab.notebook import read_notebook

SMOKE = read_notebook(REPO_ROOT / "notebooks" / "01-mscred-forex.ipynb").smoke


def _check_common(metrics, columns, test_start, gap_index):
    for name in ("train_loss", "valid_loss", "fit_seconds"):
        assert isinstance(metrics[name], float) and metrics[name] > 0, name
    top = metrics["top_anomalies"]
    assert len(top) == SMOKE["top_k"]
    scores = [t["score"] for t in top]
    assert scores == sorted(scores, reverse=True) and all(isinstance(s, int) for s in scores)
    for t in top:
        assert len(t["root_causes"]) == 3 and set(t["root_causes"]) <= set(columns)
    positions = sorted(gap_index.get_loc(t["date"]) for t in top)
    assert all(b - a >= 5 for a, b in zip(positions[:-1], positions[1:], strict=True)), "episodes too close"
    assert all(t["date"] >= test_start for t in top)


@pytest.mark.slow
def test_forex_smoke(tmp_path):
    run_dir, metrics = run_smoke("01", tmp_path)
    rates = load_forex(start=SMOKE["start"], end=SMOKE["end"], complete=True)
    for t in metrics["top_anomalies"]:
        date.fromisoformat(t["date"])
    import pandas as pd

    days = pd.Index([d.date().isoformat() for d in rates.index])
    _check_common(metrics, rates.columns, SMOKE["valid_end"], days)
    assert "precision" not in metrics  # no truth for forex
    html = (run_dir / "report.html").read_text()
    assert "plotly" in html.lower()
    # the training bar is text on stdout in a headless run: `lab run` shows it live, and the
    # report keeps its final state (a widget would stay at 0% there)
    executed = (run_dir / "notebook.ipynb").read_text()
    assert "MSCRED training: 100%" in executed and "widget-view" not in executed


@pytest.mark.slow
def test_synthetic_smoke(tmp_path):
    run_dir, metrics = run_smoke("mscred-synthetic", tmp_path)
    df, truth = make_mscred_synthetic(n_series=SMOKE["n_series"], length=SMOKE["length"])
    _check_common(metrics, df.columns, truth.attrs["valid_end"], df.index)
    for name in ("precision", "recall", "f1", "point_adjusted_f1", "auc_roc",
                 "root_cause_recall_at_3"):
        assert isinstance(metrics[name], float) and 0 <= metrics[name] <= 1, name
    # the shocks are big: even the one-epoch smoke model ranks them above normal matrices
    assert metrics["auc_roc"] > 0.8
    assert isinstance(metrics["bar_passed"], bool)
