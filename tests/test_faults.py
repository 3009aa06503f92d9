"""Fault injection: ``lab run`` killed from outside, two first runs into one store, and
``tensor_apply``'s workers exiting, stopping, failing under spawn and dying on dask.

After each fault the tests check what a user would see: the run's status in
``run.json``, its MLflow entry (status, start and end times), the exit code or
the error raised, that no process is left behind, and that /dev/shm holds no
file that the faulted processes made. Other jobs on the machine create and
remove /dev/shm files at the same time, so the tests look at the files of
their own processes (mapped, opened, or named with their pid), not at the
whole directory.
"""

from __future__ import annotations

import gc
import json
import multiprocessing as mp
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import psutil
import pytest

import lab.mp_utility as mpu
from lab.mp_utility import WorkerDiedError, tensor_apply

# ------------------------------------------------------------------ lab run
FIX = Path(__file__).parent / "fixtures"
ENV = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
ENV.update(LAB_NOTEBOOKS=str(FIX / "notebooks"), LAB_EXPERIMENTS=str(FIX / "experiments"),
           LAB_TRACKING="on")
SHM = Path("/dev/shm")

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


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.parametrize("signum, code, sigint_ignored", [
    (signal.SIGTERM, 143, False), (signal.SIGINT, 130, False),
    # `nohup lab run ... &` from a script starts lab with SIGINT ignored, and its grid
    # workers inherit that: SIGTERM's relay to them must still interrupt their runs
    (signal.SIGTERM, 143, True)])
def test_a_signal_interrupts_a_grid_in_worker_processes(tmp_path, signum, code, sigint_ignored):
    def ignore_sigint():
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = subprocess.Popen([sys.executable, "-m", "lab", "run", "echo-grid", "--workers", "2",
                             "-p", "sleep=120", "--out", str(tmp_path)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            preexec_fn=ignore_sigint if sigint_ignored else None)
    deadline = time.time() + 240
    while len(list(tmp_path.glob("echo-grid/.*.partial/metrics.json"))) < 2:
        if time.time() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"the runs never started: {proc.communicate()}")
        time.sleep(0.2)
    procs = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    shm = _shm_of(procs)
    if signum == signal.SIGINT:  # Ctrl-C in a terminal: the whole process group
        os.killpg(proc.pid, signum)
    else:  # a job scheduler: lab's own process only
        proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


# ------------------------------------------------------------------ tensor_apply
SHM_DIR = "/dev/shm"
needs_shm = pytest.mark.skipif(not os.path.isdir(SHM_DIR), reason="needs /dev/shm (Linux)")
MARKER = 99.0


# Module-level functions: they must be picklable for the spawn start method.
# A worker is told from the caller by its parent process (the caller has none).
def exit_in_worker(m):
    if m[0, 0] == MARKER and mp.parent_process() is not None:
        sys.exit(0)
    time.sleep(0.01)  # the caller must not finish everything before the worker starts
    return m.sum()


def exit_on_marker(m):
    if m[0, 0] == MARKER:
        sys.exit(3)
    return m.sum()


def stop_in_worker(m):
    if m[0, 0] == MARKER and mp.parent_process() is not None:
        os.kill(os.getpid(), signal.SIGSTOP)
    time.sleep(0.01)
    return m.sum()


def fail_in_worker_sleep_in_caller(m):
    if mp.parent_process() is not None:
        raise ZeroDivisionError("worker failed")
    time.sleep(0.02)  # long enough for a spawned worker to start and fail
    return m.sum()


def kill_on_marker(m):
    if m[0, 0] == MARKER:  # slice 0 runs in the caller: the marker is never there
        os.kill(os.getpid(), signal.SIGKILL)
    return m.sum()


def slow_sum(m):
    time.sleep(0.05)
    return m.sum()


def _children() -> set[int]:
    """Pids of this process's children, less multiprocessing's resource tracker.

    The tracker is started once per interpreter by the first spawn and lives
    until it exits: it is no worker.
    """
    me, kids = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == me and b"resource_tracker" not in cmdline:
            kids.add(int(entry))
    return kids


def _our_shm() -> set[str]:
    """Entries of /dev/shm this process made or has mapped (other users of the machine aside).

    Mapped entries are matched by inode: glibc maps a named semaphore under a
    temporary name before it links the real one.
    """
    with open("/proc/self/maps") as f:
        mapped = {int(line.split()[4]) for line in f if f" {SHM_DIR}/" in line}
    prefix = f"{mpu.SHM_PREFIX}{os.getpid()}_"
    ours = set()
    for entry in os.scandir(SHM_DIR):
        try:
            if entry.name.startswith(prefix) or entry.inode() in mapped:
                ours.add(entry.name)
        except OSError:  # removed meanwhile by its owner
            continue
    return ours


@pytest.fixture
def no_leftovers():
    shm, kids = _our_shm(), _children()
    yield
    assert _children() == kids
    assert _our_shm() == shm


def marked(n: int, start: int) -> np.ndarray:
    tensor = np.zeros((n, 2, 2))
    tensor[start:, 0, 0] = MARKER
    return tensor


# ---------------------------------------------------------------- sys.exit
@needs_shm
def test_sys_exit_in_a_worker_is_worker_died_error(no_leftovers):
    with pytest.raises(WorkerDiedError,
                       match=r"sys\.exit\(0\) on slice \d+ .*in process \d+ \(lab-tensor-apply\)"):
        tensor_apply(exit_in_worker, marked(64, 20), workers=2, start_method="fork")
    # The caller goes on as before.
    assert tensor_apply(np.sum, np.ones((8, 2, 2)), workers=2, start_method="fork").tolist() == [4] * 8


@pytest.mark.parametrize("backend", ["serial", "shared_memory"])
@needs_shm
def test_sys_exit_is_the_same_error_in_whichever_process_runs_the_slice(no_leftovers, backend):
    with pytest.raises(WorkerDiedError, match=r"sys\.exit\(3\) on slice 5 \(tensor\[5\]\)"):
        tensor_apply(exit_on_marker, marked(6, 5), backend=backend, workers=1)
    with pytest.raises(WorkerDiedError, match=r"sys\.exit\(3\) on slice 0 "):
        tensor_apply(exit_on_marker, marked(6, 0), backend=backend)


# ---------------------------------------------------------------- SIGSTOP, timeout
@needs_shm
def test_stopped_worker_times_out_and_is_killed(no_leftovers):
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"timeout=1 s: .*worker\(s\) (\d+) \(stopped\)") as info:
        tensor_apply(stop_in_worker, marked(64, 20), workers=2, start_method="fork", timeout=1)
    assert time.monotonic() - start < 1 + mpu.TERMINATE_GRACE_S
    pid = int(re.search(r"(\d+) \(stopped\)", str(info.value)).group(1))
    assert not os.path.exists(f"/proc/{pid}")


@pytest.mark.parametrize("backend", ["serial", "shared_memory"])
@needs_shm
def test_timeout_stops_a_slow_call(no_leftovers, backend):
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"timeout=0\.3 s"):
        tensor_apply(slow_sum, np.zeros((100, 2, 2)), backend=backend, workers=2,
                     start_method="fork", timeout=0.3)
    assert time.monotonic() - start < 2
    # A timeout that is not reached changes nothing.
    got = tensor_apply(np.sum, np.ones((8, 2, 2)), backend=backend, workers=2,
                       start_method="fork", timeout=60)
    assert got.tolist() == [4] * 8


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "5", True])
@needs_shm
def test_bad_timeout(bad):
    with pytest.raises(ValueError, match="timeout"):
        tensor_apply(np.sum, np.zeros((2, 2, 2)), backend="serial", timeout=bad)


# ---------------------------------------------------------------- spawn: named semaphore
@needs_shm
def test_raising_worker_under_spawn_leaves_no_semaphore(no_leftovers):
    # With the collector off, only reference counting can release the
    # counter's named semaphore while the error (and its traceback) lives.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with pytest.raises(ZeroDivisionError, match="worker failed") as info:
            tensor_apply(fail_in_worker_sleep_in_caller, np.zeros((300, 2, 2)), workers=2,
                         start_method="spawn")
        assert info.value.__traceback__ is not None
        assert not [n for n in _our_shm() if n.startswith("sem.")]
    finally:
        if was_enabled:
            gc.enable()


# ---------------------------------------------------------------- dask
@pytest.mark.slow
@needs_shm
def test_dask_worker_death_is_worker_died_error(no_leftovers):
    distributed = pytest.importorskip("dask.distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0")
    client = distributed.Client(cluster)
    try:
        workers = set(client.run(os.getpid).values())
        with pytest.raises(WorkerDiedError, match=r"dask task for slices .* lost: a dask worker died"):
            tensor_apply(kill_on_marker, marked(20, 10), backend="dask", client=client)
        # The nanny restarts the killed worker meanwhile: skip it if it is not up yet.
        workers |= set(client.run(os.getpid, on_error="ignore").values())
    finally:
        client.close()
        cluster.close()
    assert not [pid for pid in workers if os.path.exists(f"/proc/{pid}")]
