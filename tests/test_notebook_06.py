"""06-cpap-edf runs headless with --smoke and records sensible metrics."""

from __future__ import annotations

import pytest
from conftest import REPO_ROOT, run_smoke

from lab.datasets import make_cpap_nights
from lab.notebook import read_notebook


@pytest.mark.slow
def test_cpap_edf_smoke(tmp_path):
    run_dir, metrics = run_smoke("06", tmp_path)
    smoke = read_notebook(REPO_ROOT / "notebooks" / "06-cpap-edf.ipynb").smoke
    truth = make_cpap_nights(tmp_path / "again", n_nights=smoke["n_nights"], random_state=0,
                             hours=(smoke["hours_low"], smoke["hours_high"]))
    test_nights = sorted(truth["night"].unique())[smoke["train_nights"]:]
    assert metrics["faults"] == (truth["fault"] & truth["night"].isin(test_nights)).sum() > 0
    for name in ("recall", "precision", "vus_pr"):
        assert 0.0 <= metrics[name] <= 1.0, name
    # even on two half-hour nights the default detector finds most faults, with few false
    # episodes (the month's figures are in the README)
    assert metrics["recall"] >= 0.8 and metrics["false_per_night"] <= 1.0
    assert metrics["faults_found"] == round(metrics["recall"] * metrics["faults"])
    assert metrics["vus_pr"] > 0.3
    assert metrics["stage_mb_per_s"] > 0
    assert set(metrics["compared"]) == set(smoke["compare"])
    assert metrics["compared"]["robust_z"]["recall"] >= metrics["compared"]["pca"]["recall"]
    html = (run_dir / "report.html").read_text()
    assert "plotly" in html.lower() and "lab explain --runs" in html
