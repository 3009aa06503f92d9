"""lab stage / train / predict: the CLI end to end, predict by run id, bad input, evaluation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import naive
import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from lab import edf_workflow as wf
from lab.datasets import make_cpap_nights, write_edf
from lab.evaluation import evaluate_events, evaluate_nights
from lab.explain_app import minmax_downsample
from lab.models import get_detector
from lab.runner import LabError


def _lab(*args, check=True):
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true")
    proc = subprocess.run([sys.executable, "-m", "lab", *map(str, args)], capture_output=True,
                          text=True, timeout=300, cwd=REPO_ROOT, env=env)
    if check and proc.returncode != 0:
        pytest.fail(f"lab {' '.join(map(str, args))} exited {proc.returncode}:\n"
                    f"{proc.stdout}\n{proc.stderr}")
    return proc


def _no_temporaries(root):
    left = [p for p in root.rglob(".*") if p.name != ".mlflow.lock" and "lock" not in p.name]
    assert not left, f"temporary files left behind: {left}"


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    out = tmp_path_factory.mktemp("raw")
    truth = make_cpap_nights(out, n_nights=4, hours=(0.5, 0.5), random_state=2)
    return out, truth


@pytest.fixture(scope="module")
def trained(raw, tmp_path_factory):
    """Staged nights and a model trained on the first two, in this process."""
    root = tmp_path_factory.mktemp("trained")
    src = root / "raw"
    shutil.copytree(raw[0], src)
    wf.stage(src, root / "staged")
    nights = wf.list_nights(root / "staged")
    run_id = wf.train(root / "staged", nights=",".join(nights[:2]), runs_dir=root / "runs")
    return root, nights, run_id


@pytest.mark.slow
def test_the_cli_end_to_end_and_predict_after_training_exited(raw, tmp_path, capsys):
    from lab.cli import main

    src = tmp_path / "raw"
    shutil.copytree(raw[0], src)
    for cmd in ("stage", "train", "predict", "explain"):
        with pytest.raises(SystemExit) as exit_:
            main([cmd, "--help"])
        assert exit_.value.code == 0 and f"usage: lab {cmd}" in capsys.readouterr().out
    assert main(["stage", str(src), str(tmp_path / "staged")]) == 0
    out = capsys.readouterr()
    assert "staged 4 nights" in out.out and "MB/s" in out.out
    assert "staging" in out.err  # the progress bar
    nights = wf.list_nights(tmp_path / "staged")
    # training runs in its own process, which exits before predict starts
    trained = _lab("train", tmp_path / "staged", "--nights", ",".join(nights[:2]),
                   "-p", "z_threshold=15", "--runs", tmp_path / "runs")
    run_id = trained.stdout.strip().splitlines()[-1]
    assert len(run_id) == 32 and "reading nights" in trained.stderr
    pattern = nights[2][:8] + "*," + nights[3][:8] + "*"
    assert main(["predict", "--run-id", run_id, "--pattern", pattern, str(tmp_path / "staged"),
                 str(tmp_path / "scores"), "--runs", str(tmp_path / "runs")]) == 0
    pred = capsys.readouterr().out
    assert f"scored 2 nights: {nights[2]}, {nights[3]}" in pred
    assert "worst episodes" in pred and f"model run {run_id}" in pred
    scores = wf.read_scores(tmp_path / "scores", nights[2])
    assert {"score", "threshold", "prediction", "top1", "top2", "top3"} <= set(scores.columns)
    assert (scores["prediction"] == (scores["score"] > scores["threshold"])).all()
    # the scores are the model's: refit the same detector on the same nights here
    det = get_detector("robust_z", z_threshold=15).fit(
        pd.concat([wf.night_features(tmp_path / "staged", n) for n in nights[:2]]))
    expect = det.score(wf.night_features(tmp_path / "staged", nights[2]))
    np.testing.assert_allclose(scores["score"], expect.astype(np.float32), rtol=1e-6)
    # the MLflow runs: training parameters, metrics and model; prediction tagged with the model
    from mlflow.tracking import MlflowClient

    from lab.mlflow_store import tracking_uri

    client = MlflowClient(tracking_uri(tmp_path / "runs"))
    run = client.get_run(run_id)
    assert run.data.params["detector"] == "robust_z"
    assert run.data.params["p.z_threshold"] == "15"
    assert {"n_rows", "threshold", "train_recall", "train_false_per_night"} <= set(run.data.metrics)
    assert [a.path for a in client.list_artifacts(run_id)] == ["model"]
    preds = wf.prediction_runs(tmp_path / "runs")
    assert preds["model_run_id"].tolist() == [run_id]
    _no_temporaries(tmp_path / "staged")
    _no_temporaries(tmp_path / "scores")
    # one clear line for a pattern that matches nothing, and the CLI's exit status 2
    assert main(["predict", "--run-id", run_id, "--pattern", "1999*", str(tmp_path / "staged"),
                 str(tmp_path / "none"), "--runs", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lab: error: pattern '1999*' matches no night")


def test_stage_is_idempotent_forced_and_quarantines_bad_files(raw, tmp_path):
    src = tmp_path / "raw"
    shutil.copytree(raw[0], src)
    nights = sorted(raw[1]["night"].unique())
    broken = src / f"{nights[1]}_PLD.edf"
    broken.write_bytes(broken.read_bytes()[:1000])
    first = wf.stage(src, tmp_path / "staged")
    assert first.staged == nights and first.quarantined == [broken.name]
    q = tmp_path / "staged" / "quarantine"
    assert (q / broken.name).exists() and not broken.exists()
    assert "not a readable EDF file" in (q / f"{broken.name}.reason.txt").read_text()
    # the night without its PLD file has only the 25 Hz partition
    assert list(wf.load_night(tmp_path / "staged", nights[1])) == [25.0]
    assert sorted(wf.load_night(tmp_path / "staged", nights[0])) == [0.5, 25.0]
    again = wf.stage(src, tmp_path / "staged")
    assert again.staged == [] and again.skipped == nights
    forced = wf.stage(src, tmp_path / "staged", force=True)
    assert forced.staged == nights
    _no_temporaries(tmp_path / "staged")
    # the staged signals are the EDF's
    from lab.datasets import read_edf

    brp, _ = read_edf(src / f"{nights[0]}_BRP.edf")
    staged = wf.load_night(tmp_path / "staged", nights[0])[25.0]
    pd.testing.assert_frame_equal(staged, brp, check_freq=False)
    truth = wf.load_truth(tmp_path / "staged")
    assert len(truth) == len(raw[1]) and truth["start"].dtype.kind == "M"
    with pytest.raises(LabError, match="no .edf file"):
        wf.stage(tmp_path / "staged", tmp_path / "x")


def test_bad_input_gives_one_clear_line(trained, tmp_path):
    root, nights, run_id = trained
    staged, runs = root / "staged", root / "runs"
    with pytest.raises(LabError, match=r"pattern '2019\*' matches no night in .*from "):
        wf.predict(run_id, staged, tmp_path / "s", pattern="2019*", runs_dir=runs)
    with pytest.raises(LabError, match="unknown run id 'f00' in the MLflow store"):
        wf.predict("f00", staged, tmp_path / "s", runs_dir=runs)
    pred_id, _ = wf.predict(run_id, staged, tmp_path / "s", pattern=nights[3], runs_dir=runs)
    with pytest.raises(LabError, match=f"run {pred_id} has no model"):
        wf.predict(pred_id, staged, tmp_path / "s", runs_dir=runs)
    # an EDF without a channel the model needs
    other = tmp_path / "other"
    other.mkdir()
    night = nights[0]
    shutil.copy(root / "raw" / f"{night}_PLD.edf", other)
    flow = np.sin(np.arange(25 * 600) / 10)
    write_edf(other / f"{night}_BRP.edf", {"Flow": flow}, {"Flow": 25.0}, "2020-11-15 22:00")
    wf.stage(other, tmp_path / "other-staged")
    with pytest.raises(LabError, match=rf"night {night} in .* has no channel \['Press'\], "
                                       f"which model run {run_id} needs"):
        wf.predict(run_id, tmp_path / "other-staged", tmp_path / "s", runs_dir=runs)
    # a model trained on other channels
    alien = tmp_path / "alien"
    write_edf(alien / "20210101_220000_EEG.edf", {"C3": flow, "C4": flow}, {"C3": 25.0,
              "C4": 25.0}, "2021-01-01 22:00")
    wf.stage(alien, tmp_path / "alien-staged")
    with pytest.raises(LabError, match=rf"model run {run_id} was trained on channels "
                                       r"\['Flow', 'Press', .*holds \['C3', 'C4'\]"):
        wf.predict(run_id, tmp_path / "alien-staged", tmp_path / "s", runs_dir=runs)
    with pytest.raises(LabError, match="unknown detector 'nope'"):
        wf.train(staged, detector="nope", runs_dir=runs)
    with pytest.raises(LabError, match="no staged night"):
        wf.list_nights(tmp_path)


def test_a_moved_runs_directory_is_a_clear_error(trained, tmp_path):
    root, nights, run_id = trained
    moved = tmp_path / "moved-runs"
    shutil.copytree(root / "runs", moved)
    os.rename(root / "runs" / "mlartifacts", root / "runs" / "mlartifacts.away")
    try:
        with pytest.raises(LabError, match=rf"run {run_id}'s artefacts are missing at .*"
                                           "moved or renamed"):
            wf.predict(run_id, root / "staged", tmp_path / "s", runs_dir=moved)
    finally:
        os.rename(root / "runs" / "mlartifacts.away", root / "runs" / "mlartifacts")
    assert not (tmp_path / "s").exists() or not list((tmp_path / "s").glob("night=*"))


def test_robust_z_equals_its_loop_twin(rng, tmp_path):
    x = rng.normal(size=(300, 3))
    x[100:170, 1] = x[99, 1]  # a flat line
    x[200, 2] = 40.0
    x[::7, 0] = np.round(x[::7, 0])  # ties
    det = get_detector("robust_z", window=25, flat_rows=20).fit(rng.normal(size=(400, 3)))
    expect = naive.robust_z_entries(x, det.median_, det.scale_, det.local_scale_, 25, 20,
                                    det.z_threshold)
    np.testing.assert_allclose(det.contributions(x).to_numpy(), expect, rtol=1e-12)
    np.testing.assert_allclose(det.score(x).to_numpy(), expect.max(axis=1), rtol=1e-12)
    assert det.predict(x)[100:170].all() and det.predict(x)[200]
    back = type(det).load(det.save(tmp_path / "m"))
    np.testing.assert_array_equal(back.score(x), det.score(x))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 400), n_out=st.integers(2, 60), seed=st.integers(0, 2**16))
def test_minmax_downsample_equals_its_loop_twin(n, n_out, seed):
    r = np.random.default_rng(seed)
    y = r.integers(0, 5, n).astype(float)  # many ties
    x = np.arange(n) * 40
    got = minmax_downsample(x, y, n_out)
    want = naive.minmax_buckets(x, y, n_out)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    if n > n_out:
        assert len(got[0]) <= n_out and y.max() in got[1] and y.min() in got[1]


def test_evaluate_nights_equals_evaluate_events_on_fault_only_truth(rng):
    t = pd.date_range("2020-01-01 22:00", periods=600, freq="s")
    on = pd.Series(rng.random(600) > 0.97, index=t)
    truth = pd.DataFrame({"night": "n", "start": t[[50, 200, 400]], "end": t[[80, 205, 460]],
                          "kind": ["leak", "spike", "mask_off"], "fault": True})
    got = evaluate_nights({"n": on}, truth, grace="30s")
    ref = evaluate_events(on, truth, tolerance=pd.Timedelta(0), grace=pd.Timedelta("30s"))
    assert got["detected"] == ref["detected"] and got["false_episodes"] == ref["false_episodes"]
    assert got["recall"] == ref["recall"] and got["precision"] == pytest.approx(ref["precision"])
    # an alarm inside a scored apnea is neither a detection nor a false episode
    apnea = pd.DataFrame({"night": ["n"], "start": [t[500]], "end": [t[530]], "kind": ["apnea"],
                          "fault": [False]})
    on2 = pd.Series(False, index=t)
    on2.iloc[510] = True
    out = evaluate_nights({"n": on2}, pd.concat([truth, apnea]))
    assert out["false_episodes"] == 0 and out["detected"] == 0 and out["n_faults"] == 3
    with pytest.raises(ValueError, match="truth lacks columns"):
        evaluate_nights({"n": on}, truth.drop(columns="fault"))


@pytest.mark.slow
def test_the_default_detector_meets_the_bar_on_the_month(tmp_path):
    """make_cpap_nights(random_state=0): trained on the first 10 nights, the default detector
    finds at least 80% of the faults of the other 20 with at most one false episode a night."""
    make_cpap_nights(tmp_path / "raw", random_state=0)
    wf.stage(tmp_path / "raw", tmp_path / "staged")
    nights = wf.list_nights(tmp_path / "staged")
    run_id = wf.train(tmp_path / "staged", nights=",".join(nights[:10]),
                      runs_dir=tmp_path / "runs")
    wf.predict(run_id, tmp_path / "staged", tmp_path / "scores", pattern=",".join(nights[10:]),
               runs_dir=tmp_path / "runs")
    alarms = {n: wf.read_scores(tmp_path / "scores", n)["prediction"] for n in nights[10:]}
    out = evaluate_nights(alarms, wf.load_truth(tmp_path / "staged"))
    assert out["n_faults"] == 60
    assert out["recall"] >= 0.8 and out["false_per_night"] <= 1.0, out
