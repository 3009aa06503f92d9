"""07-chunk-classifiers runs headless with --smoke (generated experiments) and records sane metrics."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_smoke

from lab.chunk_study import (
    calendar_leak,
    experiment_chunks,
    make_experiments,
    run_chunk_study,
    study_folds,
)


@pytest.mark.slow
def test_chunk_classifiers_smoke(tmp_path):
    _, metrics = run_smoke("07", tmp_path)
    assert metrics["data_source"] == "generated"
    assert metrics["n_chunks"] == 6 * 10  # 6 experiments x 600 rows / T=60
    assert 0 < metrics["chunk_anomalous_share"] < 1
    pr = metrics["pr_auc"]
    assert set(pr) == {"bilstm", "lstm", "fcn", "spectrogram-cnn", "lstm_ae", "iforest",
                       "kmeans", "majority"}
    assert all(0 <= v <= 1 for v in pr.values())
    # the majority floor's PR-AUC is the prevalence of each test fold
    assert abs(pr["majority"] - metrics["chunk_anomalous_share"]) < 0.15
    assert isinstance(metrics["leak_gap"], float)
    assert 0 <= metrics["calendar_only_pr_auc"] <= 1
    claims = metrics["claims"]
    assert claims["best_supervised"] in pr and claims["best_unsupervised"] in pr
    assert isinstance(claims["supervised_beats_unsupervised"], bool)
    assert isinstance(claims["lstm_beats_fcn"], bool)


def test_study_holds_out_whole_experiments_and_scores_every_chunk_once():
    X, y, meta = experiment_chunks(make_experiments(6, 300, random_state=1), T=30,
                                   calendar=False)
    res = run_chunk_study(X, y, meta, models=("iforest", "kmeans", "majority"), n_splits=3)
    assert sorted(res.scores.index) == list(range(len(y)))
    for train, test in study_folds(meta, 3):
        assert not set(meta["group"].iloc[train]) & set(meta["group"].iloc[test])
    summ = res.summary()
    assert list(summ.columns[:2]) == ["pr_auc_mean", "pr_auc_std"]
    # the generated faults shift levels: Isolation Forest is far above the majority floor
    assert summ.loc["iforest", "pr_auc_mean"] > summ.loc["majority", "pr_auc_mean"] + 0.2
    assert summ.loc["majority", "roc_auc_mean"] == 0.5
    with pytest.raises(ValueError, match="at least n_splits=7 groups"):
        run_chunk_study(X, y, meta, models=("iforest",), n_splits=7)
    with pytest.raises(ValueError, match="unknown model"):
        run_chunk_study(X, y, meta, models=("svm",), n_splits=2)
    shuffled = study_folds(meta, 3, split="shuffled")
    assert any(set(meta["group"].iloc[tr]) & set(meta["group"].iloc[te]) for tr, te in shuffled)


def test_calendar_leak_needs_calendar_columns():
    X, y, meta = experiment_chunks(make_experiments(4, 240), T=30)
    out = calendar_leak(X, y, meta, n_splits=2)
    assert 0 <= out["pr_auc_mean"] <= 1 and out["prevalence"] == pytest.approx(np.mean(y))
    with pytest.raises(ValueError, match="calendar=True"):
        calendar_leak(X[:, :, :4], y, meta)
