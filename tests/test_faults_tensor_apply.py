"""Fault injection in tensor_apply's workers: sys.exit, SIGSTOP, errors under spawn, dask deaths.

After each fault: the error raised, no child process left behind, and /dev/shm as it was
(this process's ``lab_<pid>_`` segments, and every entry this process has mapped, such as
a named semaphore ``sem.mp-*`` that is still linked).
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import re
import signal
import sys
import time

import numpy as np
import pytest

import lab.mp_utility as mpu
from lab.mp_utility import WorkerDiedError, tensor_apply

SHM_DIR = "/dev/shm"
pytestmark = pytest.mark.skipif(not os.path.isdir(SHM_DIR), reason="needs /dev/shm (Linux)")
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
def test_sys_exit_in_a_worker_is_worker_died_error(no_leftovers):
    with pytest.raises(WorkerDiedError,
                       match=r"sys\.exit\(0\) on slice \d+ .*in process \d+ \(lab-tensor-apply\)"):
        tensor_apply(exit_in_worker, marked(64, 20), workers=2, start_method="fork")
    # The caller goes on as before.
    assert tensor_apply(np.sum, np.ones((8, 2, 2)), workers=2, start_method="fork").tolist() == [4] * 8


@pytest.mark.parametrize("backend", ["serial", "shared_memory"])
def test_sys_exit_is_the_same_error_in_whichever_process_runs_the_slice(no_leftovers, backend):
    with pytest.raises(WorkerDiedError, match=r"sys\.exit\(3\) on slice 5 \(tensor\[5\]\)"):
        tensor_apply(exit_on_marker, marked(6, 5), backend=backend, workers=1)
    with pytest.raises(WorkerDiedError, match=r"sys\.exit\(3\) on slice 0 "):
        tensor_apply(exit_on_marker, marked(6, 0), backend=backend)


# ---------------------------------------------------------------- SIGSTOP, timeout
def test_stopped_worker_times_out_and_is_killed(no_leftovers):
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"timeout=1 s: .*worker\(s\) (\d+) \(stopped\)") as info:
        tensor_apply(stop_in_worker, marked(64, 20), workers=2, start_method="fork", timeout=1)
    assert time.monotonic() - start < 1 + mpu.TERMINATE_GRACE_S
    pid = int(re.search(r"(\d+) \(stopped\)", str(info.value)).group(1))
    assert not os.path.exists(f"/proc/{pid}")


@pytest.mark.parametrize("backend", ["serial", "shared_memory"])
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
def test_bad_timeout(bad):
    with pytest.raises(ValueError, match="timeout"):
        tensor_apply(np.sum, np.zeros((2, 2, 2)), backend="serial", timeout=bad)


# ---------------------------------------------------------------- spawn: named semaphore
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
