"""03-tslearn-clustering runs headless with --smoke and records what the library computes."""

from __future__ import annotations

import warnings

import pytest
from conftest import run_smoke
from sklearn.metrics import adjusted_rand_score

from lab.datasets import counters_to_rates, make_server_metrics
from lab.models.clustering import cluster_metrics, cluster_silhouette


@pytest.mark.slow
def test_clustering_notebook_smoke(tmp_path):
    run_dir, metrics = run_smoke("03", tmp_path)
    assert set(metrics) >= {"ari", "silhouette", "mean_quality", "fit_seconds"}

    # The smoke parameters (40 metrics x 200 points, 8 groups, k-means) redone in process:
    # the notebook adds no logic of its own, so the records match exactly.
    df, truth = make_server_metrics(n_metrics=40, n_rows=200, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = cluster_metrics(counters_to_rates(df), 8, norm="meanvar", n_jobs=-1)
    ari = adjusted_rand_score(truth["group"][result.labels.index], result.labels)
    assert metrics["ari"] == pytest.approx(ari, abs=1e-12)
    assert metrics["ari"] > 0.5, "k-means should find most of the generator's groups"
    assert metrics["silhouette"] == pytest.approx(cluster_silhouette(result), abs=1e-12)
    assert 0 < metrics["silhouette"] <= 1
    assert metrics["mean_quality"] == pytest.approx(result.quality.mean(), abs=1e-12)
    assert 0 < metrics["mean_quality"] <= 1
    assert metrics["fit_seconds"] > 0

    html = (run_dir / "report.html").read_text()
    assert "plotly" in html.lower() and "quality" in html
