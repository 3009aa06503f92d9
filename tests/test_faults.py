"""Fault injection of ``lab run``: signals from outside, and two first runs into one fresh store.

After each fault the test checks the run's status in ``run.json``, its MLflow
entry (status, start and end times), the exit code, that no process of the
run is left (the kernel), and that no /dev/shm file that a process of the run
mapped or opened is left. (Other jobs on the machine create and remove
/dev/shm files at the same time, so the whole directory is not compared.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import psutil
import pytest

FIX = Path(__file__).parent / "fixtures"
ENV = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
ENV.update(LAB_NOTEBOOKS=str(FIX / "notebooks"), LAB_EXPERIMENTS=str(FIX / "experiments"),
           LAB_TRACKING="on")
SHM = Path("/dev/shm")

pytestmark = pytest.mark.slow


def _shm_of(processes: list[psutil.Process]) -> set[str]:
    """/dev/shm files that ``processes`` map or hold open (POSIX semaphores are mapped)."""
    paths = set()
    for proc in processes:
        try:
            paths |= {m.path for m in proc.memory_maps(grouped=False)}
            paths |= {f.path for f in proc.open_files()}
        except psutil.Error:
            continue
    return {p for p in paths if p.startswith(f"{SHM}/")}


def _assert_no_shm_left(used: set[str]) -> None:
    left = {p for p in used if Path(p).exists()}
    assert not left, f"/dev/shm files left: {left}"


def _start(out: Path, *params: str) -> subprocess.Popen:
    """``lab run 10`` in a session of its own, as a terminal's foreground job is.

    SIGINT is restored to its default: under nohup or in a background job it
    is ignored, and children inherit that.
    """
    args = [a for p in params for a in ("-p", p)]
    return subprocess.Popen([sys.executable, "-m", "lab", "run", "10", *args, "--out", str(out)],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_until_sleeping(proc: subprocess.Popen, out: Path) -> list[psutil.Process]:
    """Wait until the kernel has recorded (so it sleeps in its cell); return lab's children."""
    deadline = time.time() + 180
    while not list(out.glob("10-echo/.*.partial/metrics.json")):
        if time.time() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"the run never started: {proc.communicate()}")
        time.sleep(0.2)
    lab = psutil.Process(proc.pid)
    children = lab.children(recursive=True)
    assert children, "no kernel process seen"
    return [lab, *children]


def _assert_gone(processes: list[psutil.Process], timeout: float = 20.0) -> None:
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    assert not alive, f"left behind: {[(p.pid, p.cmdline()) for p in alive]}"


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def _mlflow_runs(out: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    exp = client.get_experiment_by_name("10-echo")
    return client.search_runs([exp.experiment_id]) if exp else []


def _assert_logged(out: Path, run_dir: Path, status: str) -> None:
    """One MLflow run for ``run_dir``, with ``status`` and the run's own start and end times."""
    info = json.loads((run_dir / "run.json").read_text())
    matching = [r for r in _mlflow_runs(out) if r.info.run_id == info.get("mlflow_run_id")]
    assert len(matching) == 1, f"not in MLflow: {info}"
    mlrun = matching[0]
    assert mlrun.info.status == status
    assert mlrun.info.start_time == _ms(info["started"])
    assert mlrun.info.end_time == _ms(info["finished"])
    assert mlrun.data.tags["lab.run_dir"] == str(run_dir)


@pytest.mark.parametrize("signum, code, message", [
    (signal.SIGINT, 130, "interrupted by the user (Ctrl-C)"),  # Ctrl-C: the whole group
    (signal.SIGTERM, 143, "terminated (SIGTERM)"),  # a job scheduler: lab's process only
])
def test_signal_interrupts_the_run(tmp_path, signum, code, message):
    proc = _start(tmp_path, "sleep=120")
    procs = _wait_until_sleeping(proc, tmp_path)
    shm = _shm_of(procs)
    if signum == signal.SIGINT:
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err and "ZMQError" not in err, err
    (run_dir,) = tmp_path.glob("10-echo/*")
    assert not run_dir.name.startswith(".")
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "interrupted" and info["error"] == message
    _assert_logged(tmp_path, run_dir, "KILLED")
    _assert_gone(procs)
    _assert_no_shm_left(shm)


def test_sigterm_interrupts_a_grid_in_worker_processes(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "lab", "run", "echo-grid", "--workers", "2",
                             "-p", "sleep=120", "--out", str(tmp_path)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 240
    while len(list(tmp_path.glob("echo-grid/.*.partial/metrics.json"))) < 2:
        if time.time() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"the runs never started: {proc.communicate()}")
        time.sleep(0.2)
    procs = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    shm = _shm_of(procs)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    run_dirs = list(tmp_path.glob("echo-grid/*"))
    assert len(run_dirs) == 2 and not any(d.name.startswith(".") for d in run_dirs)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlruns = client.search_runs([client.get_experiment_by_name("echo-grid").experiment_id])
    assert sorted(r.info.status for r in mlruns) == ["KILLED", "KILLED"]
    for run_dir in run_dirs:
        info = json.loads((run_dir / "run.json").read_text())
        assert info["status"] == "interrupted" and info["mlflow_run_id"] in {
            r.info.run_id for r in mlruns}
    _assert_gone(procs)
    _assert_no_shm_left(shm)


def test_sigkill_is_marked_killed_by_lab_runs(tmp_path):
    proc = _start(tmp_path, "sleep=120")
    procs = _wait_until_sleeping(proc, tmp_path)
    shm = _shm_of(procs)
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    _assert_gone(procs)  # the kernel notices that its parent is gone
    (partial,) = tmp_path.glob("10-echo/.*.partial")
    info = json.loads((partial / "run.json").read_text())
    assert info["status"] == "running"
    assert info["process"]["pid"] == proc.pid
    runs = subprocess.run([sys.executable, "-m", "lab", "runs", "--out", str(tmp_path)],
                          env=ENV, capture_output=True, text=True, timeout=120)
    assert runs.returncode == 0, runs.stderr
    assert " killed " in runs.stdout, runs.stdout
    (run_dir,) = tmp_path.glob("10-echo/*")  # persisted: renamed, and run.json says so
    assert run_dir.name == partial.name.removeprefix(".").removesuffix(".partial")
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "killed" and f"pid {proc.pid}" in info["error"]
    assert _ms(info["finished"]) >= _ms(info["started"])
    _assert_logged(tmp_path, run_dir, "KILLED")
    _assert_no_shm_left(shm)
    # A second listing finds the same, and logs nothing twice.
    again = subprocess.run([sys.executable, "-m", "lab", "runs", "--out", str(tmp_path)],
                           env=ENV, capture_output=True, text=True, timeout=120)
    assert " killed " in again.stdout and len(_mlflow_runs(tmp_path)) == 1


def test_running_run_of_a_live_process_stays_running(tmp_path):
    from lab.runner import list_runs

    proc = _start(tmp_path, "sleep=120")
    procs = _wait_until_sleeping(proc, tmp_path)
    try:
        (row,) = list_runs(tmp_path)
        assert row["status"] == "running"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=120)
    _assert_gone(procs)


def test_two_first_runs_into_one_fresh_store(tmp_path):
    procs = [_start(tmp_path, f"x={x}") for x in (1, 2)]
    seen: dict[int, psutil.Process] = {}
    shm: set[str] = set()
    deadline = time.time() + 300
    while any(p.poll() is None for p in procs) and time.time() < deadline:
        for p in procs:
            try:
                kids = psutil.Process(p.pid).children(recursive=True)
            except psutil.Error:
                continue
            seen.update({k.pid: k for k in kids})
            shm |= _shm_of(kids)
        time.sleep(0.2)
    outs = [p.communicate(timeout=60) for p in procs]
    assert seen, "no kernel process seen"
    _assert_gone(list(seen.values()))
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
        assert "warning" not in err, err
    run_dirs = sorted(tmp_path.glob("10-echo/*"))
    assert len(run_dirs) == 2
    for run_dir in run_dirs:
        info = json.loads((run_dir / "run.json").read_text())
        assert info["status"] == "completed" and "tracking_error" not in info
        _assert_logged(tmp_path, run_dir, "FINISHED")
    assert sorted(r.data.metrics["x2"] for r in _mlflow_runs(tmp_path)) == [2.0, 4.0]
    _assert_no_shm_left(shm)
