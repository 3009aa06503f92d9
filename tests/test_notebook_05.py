"""05-anomaly-leaderboard runs headless with --smoke and records a leaderboard that makes sense."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from conftest import REPO_ROOT, run_smoke

from lab.datasets import find_data, load_nab
from lab.notebook import read_notebook
from lab.stream.pipeline import NAB_ONSET, online_nab_scores


def _have(name: str) -> bool:
    try:
        find_data(name)
    except FileNotFoundError:
        return False
    return True


def test_notebook_onset_defaults_are_nab_onset():
    p08 = read_notebook(REPO_ROOT / "notebooks" / "08-streaming.ipynb").params
    p05 = read_notebook(REPO_ROOT / "notebooks" / "05-anomaly-leaderboard.ipynb").params
    assert (p08["onset"].default, p08["cap"].default) == NAB_ONSET
    assert p05["nab_onset"].default == NAB_ONSET[0]


@pytest.mark.slow
def test_anomaly_leaderboard_smoke(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUNS", str(tmp_path / "runs"))  # a cold cache under tmp_path
    run_dir, metrics = run_smoke("05", tmp_path)
    smoke = read_notebook(REPO_ROOT / "notebooks" / "05-anomaly-leaderboard.ipynb").smoke
    detectors = set(smoke["detectors"])
    table = pd.read_parquet(run_dir / "benchmark.parquet")
    assert set(table["detector"]) == detectors
    assert (table["status"] == "ok").all(), table[table["status"] != "ok"]
    assert metrics["failed"] == []
    assert metrics["n_tasks"] == len(table)
    assert set(metrics["vus_pr"]) == detectors
    assert all(0 <= v <= 1 for v in metrics["vus_pr"].values())
    # the recorded means are the table's
    ok = table.groupby("detector")["vus_pr"].mean()
    assert metrics["vus_pr"] == pytest.approx(ok.to_dict(), abs=1e-12)
    profiles = {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    assert set(metrics["nab_scores"]) == detectors
    assert all(set(v) == profiles and v["standard"] <= 100 for v in metrics["nab_scores"].values())
    # one threshold per profile: NAB's optimisation never does worse than the null detector
    assert all(v["standard"] >= 0 for v in metrics["nab_scores"].values())
    if _have("skab"):
        assert set(metrics["skab_f1"]) == detectors
        assert all(0 <= v <= 1 for v in metrics["skab_f1"].values())
        assert all(0 <= metrics["skab_far"][d] <= 100 and 0 <= metrics["skab_mar"][d] <= 100
                   for d in detectors)
        # SKAB's change-point score (tsad's NAB variant): at most 100, finite, every detector
        assert set(metrics["skab_nab"]) == detectors
        assert all(math.isfinite(v) and v <= 100 for v in metrics["skab_nab"].values())
        assert set(metrics["skab_nab_raw"]) == detectors
        assert all(math.isfinite(v) and v <= 100 for v in metrics["skab_nab_raw"].values())
    # the batch detectors again, each series' mapped score through Onset
    assert set(metrics["nab_scores_onset"]) == detectors
    assert all(set(v) == profiles and 0 <= v["standard"] <= 100
               for v in metrics["nab_scores_onset"].values())
    # the online detectors, scored as a stream on the same NAB series as the batch ones
    params = read_notebook(REPO_ROOT / "notebooks" / "05-anomaly-leaderboard.ipynb").params
    names = smoke.get("online", params["online"].default)
    assert set(metrics["nab_online"]) == {f"{d} (online)" for d in names}
    assert all(set(v) == profiles and 0 <= v["standard"] <= 100
               for v in metrics["nab_online"].values())
    if _have("nab"):
        frames = dict(list(load_nab(category="realKnownCause").items())[:2])
        want = online_nab_scores(frames, names)
        assert metrics["nab_online"] == {f"{d} (online)": pytest.approx(want.loc[d].to_dict(),
                                                                        abs=1e-9)
                                         for d in names}
        assert metrics["data_note"].startswith("Data: nab (2 series")
        assert set(table["dataset"]) >= {"nab"}
    else:
        assert "ABSENT" in metrics["data_note"]
    html = (run_dir / "report.html").read_text()
    assert "Friedman" in html and metrics["data_note"][:40] in html
