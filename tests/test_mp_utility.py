"""lab.mp_utility.tensor_apply: equality across backends, errors and cleanup.

Every test of the shared-memory backend checks that no segment created by
this process is left in /dev/shm and that no worker process is left alive.
"""

from __future__ import annotations

import functools
import gc
import multiprocessing as mp
import os
import signal
import threading
import time
import traceback

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_info

import lab.mp_utility as mpu
from lab.mp_utility import WorkerDiedError, shared_array, tensor_apply

SHM_DIR = "/dev/shm"
PARENT_PID = os.getpid()
pytestmark = pytest.mark.skipif(not os.path.isdir(SHM_DIR), reason="needs /dev/shm (Linux)")


# Module-level functions: they must be picklable for the spawn start method.
def singular_values(m):
    return np.linalg.svd(m, compute_uv=False)


def fail_on_marker(m):
    if m[0, 0] == 99.0:
        raise ZeroDivisionError("marker slice reached")
    return m.sum()


def size_from_first_value(m):
    return np.zeros(int(m[0, 0]))


def die_on_marker(m):
    # The caller computes ranges too: only a worker process kills itself.
    if m[0, 0] == 99.0 and os.getpid() != PARENT_PID:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.01)  # the caller must not finish everything before the worker starts
    return m.sum()


def fail_in_worker_sleep_in_caller(m):
    if os.getpid() != PARENT_PID:
        raise ZeroDivisionError("worker failed")
    time.sleep(0.02)
    return m.sum()


def pid_of(m):
    time.sleep(0.005)
    return os.getpid()


def pid_and_sum(m):
    time.sleep(0.0001)
    return np.array([os.getpid(), m.sum()])


_calls: dict[tuple[str, int], int] = {}
_deadlines: dict[str, float] = {}


def _wait_for_worker_slices(caller: int, flag: str, n: int) -> None:
    """A handshake: the caller waits (60 s at most) until a started worker has computed n slices.

    A spawned worker imports this module first (1.5 s on the idle machine, much longer on a
    loaded one), and the caller alone could finish every slice before it starts. The
    caller's first call is tensor_apply's probe, before any worker is started: it does not
    wait. In a worker, each call counts a slice and the n-th creates ``flag``.
    """
    key = (flag, os.getpid())  # a forked worker inherits the caller's counts
    _calls[key] = calls = _calls.get(key, 0) + 1
    if os.getpid() != caller:
        if calls >= n:
            open(flag, "a").close()
    elif calls > 1:
        end = _deadlines.setdefault(flag, time.monotonic() + 60.0)  # one wait in all
        while not os.path.exists(flag) and time.monotonic() < end:
            time.sleep(0.01)


def handshake_pid_and_sum(m, caller, flag):
    _wait_for_worker_slices(caller, flag, 10)
    return np.array([os.getpid(), m.sum()])


def slow_sum(m):
    time.sleep(0.05)
    return m.sum()


def _our_segments() -> set[str]:
    prefix = f"{mpu.SHM_PREFIX}{os.getpid()}_"
    return {name for name in os.listdir(SHM_DIR) if name.startswith(prefix)}


@pytest.fixture
def no_leaks():
    """/dev/shm and the process table are checked before and after the test."""
    before = _our_segments()
    assert not mp.active_children()
    yield
    assert _our_segments() == before
    assert not mp.active_children()


@pytest.fixture
def tensor(rng):
    return rng.normal(size=(64, 12, 12))


# ---------------------------------------------------------------- equality
@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_shared_memory_bit_identical_to_serial(tensor, no_leaks, start_method):
    expected = tensor_apply(singular_values, tensor, backend="serial")
    got = tensor_apply(singular_values, tensor, workers=2, start_method=start_method)
    assert got.dtype == expected.dtype and got.shape == (64, 12)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_allclose(
        expected, np.stack([np.linalg.svd(m, compute_uv=False) for m in tensor]), rtol=1e-12)


@pytest.mark.parametrize(("workers", "chunks"), [(1, None), (2, 1), (2, 7), (3, 500)])
def test_shared_memory_any_split_and_layouts(tensor, no_leaks, workers, chunks):
    # A non-contiguous view and an integer tensor exercise the copy-in path.
    view = tensor[::2, :, ::-1]
    got = tensor_apply(np.trace, view, workers=workers, chunks=chunks, start_method="fork")
    np.testing.assert_array_equal(got, [np.trace(m) for m in view])
    ints = np.arange(5 * 2 * 3).reshape(5, 2, 3)
    got = tensor_apply(lambda m: m * 2, ints, workers=workers, chunks=chunks,
                       start_method="fork")
    np.testing.assert_array_equal(got, ints * 2)


def test_caller_and_workers_share_the_ranges(no_leaks):
    pids = tensor_apply(pid_of, np.zeros((200, 1, 1)), workers=2, start_method="fork")
    assert PARENT_PID in set(pids) and len(set(pids)) == 2
    # One worker is the caller alone: no process is started.
    pids = tensor_apply(pid_of, np.zeros((5, 1, 1)), workers=1, start_method="fork")
    assert set(pids) == {PARENT_PID}


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_started_workers_compute_under_spawn_and_forkserver(no_leaks, tmp_path, start_method):
    T = np.random.default_rng(2).normal(size=(300, 3, 3))
    func = functools.partial(handshake_pid_and_sum, caller=os.getpid(),
                             flag=str(tmp_path / "worker-started"))
    got = tensor_apply(func, T, workers=2, start_method=start_method)
    np.testing.assert_array_equal(got[:, 1], T.sum(axis=(1, 2)))
    assert (got[:, 0] != PARENT_PID).sum() >= 10  # the started worker took ranges


def test_more_ranges_than_a_pipe_holds(no_leaks):
    # 20000 ranges of one slice each: a task queue in a pipe would fill up,
    # and so would a worker's pipe of "done" messages if the caller read one
    # message at a time (the worker would then stall and do little).
    T = np.arange(20001.0).reshape(-1, 1, 1)
    got = tensor_apply(pid_and_sum, T, workers=2, chunks=20000, start_method="fork")
    np.testing.assert_array_equal(got[:, 1], T.ravel())
    assert (got[:, 0] != PARENT_PID).mean() > 0.2


def test_single_slice_and_scalar_results(no_leaks):
    one = np.ones((1, 3, 3))
    np.testing.assert_array_equal(tensor_apply(np.sum, one, start_method="fork"), [9.0])


@pytest.fixture
def new_segments(monkeypatch):
    """Sizes of the segments tensor_apply creates (in this process) during the test."""
    created = []
    real = mpu._new_segment

    def spy(nbytes):
        created.append(nbytes)
        return real(nbytes)

    monkeypatch.setattr(mpu, "_new_segment", spy)
    return created


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_what_is_copied_into_shared_memory(tensor, no_leaks, new_segments, start_method):
    # fork: nothing (the input is inherited, the output is an anonymous mapping);
    # spawn: an ndarray input once, a shared_array input never, and the output.
    got = tensor_apply(singular_values, tensor, workers=2, start_method=start_method)
    with shared_array(tensor.shape) as shared:
        shared[:] = tensor
        # A view at an offset into the segment: workers attach at that offset.
        sliced = tensor_apply(singular_values, shared[10:20], workers=2,
                              start_method=start_method)
    if start_method == "fork":  # the shared_array's own segment only
        assert new_segments == [tensor.nbytes]
    else:  # the input copy and the output; the shared_array and the output
        assert new_segments == [tensor.nbytes, got.nbytes, tensor.nbytes, sliced.nbytes]
    expected = tensor_apply(singular_values, tensor, backend="serial")
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(sliced, expected[10:20])


def blas_threads(m, caller, flag):
    """Process id, its number of OS threads and the largest BLAS thread setting it sees.

    A fixed shape: which BLAS libraries are loaded differs between the caller
    (the probe runs there, after whatever other tests imported) and a spawned worker.
    """
    _wait_for_worker_slices(caller, flag, 1)  # the started worker computes some slices
    with open("/proc/self/status") as f:
        os_threads = next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
    settings = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    return np.array([os.getpid(), os_threads, max(settings or [1])])


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_result_outlives_the_call_and_blas_is_pinned(tensor, no_leaks, monkeypatch, tmp_path,
                                                     start_method):
    unraisable = []
    monkeypatch.setattr("sys.unraisablehook", unraisable.append)
    before = _our_segments()
    blas_before = [lib["num_threads"] for lib in threadpool_info()]
    got = tensor_apply(singular_values, tensor, workers=2, start_method=start_method)
    assert _our_segments() == before  # no name left, though the result is still mapped
    # A second call does not disturb the first result; BLAS has one thread in
    # the workers and gets its setting back in the caller.
    probe = functools.partial(blas_threads, caller=os.getpid(), flag=str(tmp_path / "started"))
    threads = tensor_apply(probe, tensor[:48], workers=2, start_method=start_method)
    in_worker = threads[:, 0] != PARENT_PID
    assert in_worker.any()  # the started worker computed some slices
    assert (threads[:, 2] == 1).all()
    if start_method == "fork":
        # Forked workers inherit the setting; setting it again would have
        # started OpenBLAS's thread pool in each worker. (The caller computes
        # some slices too; its thread count is the test process's.)
        assert (threads[in_worker, 1] == 1).all()
    assert [lib["num_threads"] for lib in threadpool_info()] == blas_before
    np.testing.assert_array_equal(got, tensor_apply(singular_values, tensor, backend="serial"))
    assert got.flags.writeable and got.flags.c_contiguous
    got[:] = 0.0
    view = got[3]
    del got
    gc.collect()
    np.testing.assert_array_equal(view, 0.0)  # a view keeps the mapping alive
    del view
    gc.collect()
    assert unraisable == []  # the segment was closed without a BufferError


def assert_partition(ranges, n):
    """Contiguous, non-empty ranges that cover 0 .. n-1 once each, in order."""
    assert [i for lo, hi in ranges for i in range(lo, hi)] == list(range(n))
    assert all(hi > lo for lo, hi in ranges)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(0, 300), parts=st.integers(1, 40))
def test_ranges_cover_every_index_once(n, parts):
    ranges = mpu._ranges(n, parts)
    assert_partition(ranges, n)
    assert len(ranges) <= parts


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 5000), processes=st.integers(1, 16))
def test_guided_ranges_cover_every_index_once_and_shrink(n, processes):
    ranges = mpu._guided_ranges(n, processes)
    assert_partition(ranges, n)
    sizes = [hi - lo for lo, hi in ranges]
    assert sizes[:-1] == sorted(sizes[:-1], reverse=True)  # the last may be a remainder
    if n:
        # The first range is a 1/(2 P) share; a few dozen ranges, not one per slice.
        assert sizes[0] == max(-(-n // (mpu.GUIDED_SHARE_PER_PROCESS * processes)),
                               -(-n // (mpu.GUIDED_MIN_PER_PROCESS * processes)))
        assert len(ranges) <= mpu.GUIDED_MIN_PER_PROCESS * processes + 1


# ---------------------------------------------------------------- errors in func
@pytest.mark.parametrize("backend", ["shared_memory", "serial"])
def test_exception_in_func_names_slice_and_keeps_traceback(tensor, no_leaks, backend):
    tensor[37, 0, 0] = 99.0
    with pytest.raises(ZeroDivisionError, match="marker slice reached") as info:
        tensor_apply(fail_on_marker, tensor, backend=backend, workers=2, start_method="fork")
    assert any("slice 37" in note for note in info.value.__notes__)
    # The original traceback: the worker's, as the cause, or the caller's own
    # when the caller computed slice 37.
    where = str(info.value.__cause__) + "".join(traceback.format_tb(info.value.__traceback__))
    assert "fail_on_marker" in where and "raise ZeroDivisionError" in where


def test_worker_traceback_is_the_cause(no_leaks):
    T = np.zeros((40, 2, 2))
    with pytest.raises(ZeroDivisionError, match="worker failed") as info:
        tensor_apply(fail_in_worker_sleep_in_caller, T, workers=2, start_method="fork")
    remote = str(info.value.__cause__)
    assert "fail_in_worker_sleep_in_caller" in remote and "raise ZeroDivisionError" in remote


def test_worker_error_is_raised_while_the_caller_computes(no_leaks):
    # 400 slices of 20 ms in the caller would take 8 s; the worker fails at
    # once and the caller looks at its messages between slices.
    T = np.zeros((400, 2, 2))
    start = time.monotonic()
    with pytest.raises(ZeroDivisionError, match="worker failed"):
        tensor_apply(fail_in_worker_sleep_in_caller, T, workers=2, start_method="fork")
    assert time.monotonic() - start < 2


def test_exception_in_first_slice_is_raised_in_caller(tensor, no_leaks):
    tensor[0, 0, 0] = 99.0
    with pytest.raises(ZeroDivisionError) as info:
        tensor_apply(fail_on_marker, tensor, start_method="fork")
    assert any("slice 0" in note for note in info.value.__notes__)


@pytest.mark.parametrize("backend", ["shared_memory", "serial"])
def test_result_shapes_that_differ_raise_value_error(no_leaks, backend):
    T = np.full((10, 2, 2), 3.0)
    T[6, 0, 0] = 4.0
    with pytest.raises(ValueError, match=r"shape \(4,\).*slice 6.*shape \(3,\)"):
        tensor_apply(size_from_first_value, T, backend=backend, workers=2, start_method="fork")


def test_worker_killed_is_an_error_not_a_hang(tensor, no_leaks):
    tensor[20:, 0, 0] = 99.0  # whichever ranges the worker takes, it dies
    start = time.monotonic()
    with pytest.raises(WorkerDiedError, match="SIGKILL"):
        tensor_apply(die_on_marker, tensor, workers=2, start_method="fork")
    assert time.monotonic() - start < 30


def test_worker_killed_holding_the_range_lock_is_an_error_not_a_hang(
        tensor, no_leaks, monkeypatch):
    real = mpu._take

    def take_then_die(counter, ranges):
        if os.getpid() != PARENT_PID:  # forked workers inherit the patch
            os.kill(os.getpid(), signal.SIGKILL)  # with the counter's lock held
        return real(counter, ranges)

    monkeypatch.setattr(mpu, "_take", take_then_die)
    start = time.monotonic()
    with pytest.raises(WorkerDiedError, match="SIGKILL"):
        tensor_apply(slow_sum, tensor, workers=2, start_method="fork")
    assert time.monotonic() - start < 10


def test_ctrl_c_stops_workers_and_unlinks(no_leaks):
    T = np.zeros((400, 2, 2))  # 400 x 50 ms: far longer than the interrupt delay
    # Ctrl-C as at a terminal, even under nohup or in a background job, where
    # SIGINT is ignored; the previous handler is given back afterwards.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, os.kill, args=(os.getpid(), signal.SIGINT))
    timer.start()
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            tensor_apply(slow_sum, T, workers=2, start_method="fork")
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - start < 5


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("tensor", "match"),
    [
        (np.zeros((3, 3)), "3-D"),
        (np.zeros((2, 2, 2, 2)), "3-D"),
        (np.empty((2, 2, 2), dtype=object), "dtype object"),
        (np.array([[["a"]]]), "numeric dtype"),
        (np.zeros((0, 2, 2)), "no slice"),
    ],
)
def test_bad_tensor(tensor, match):
    with pytest.raises(ValueError, match=match):
        tensor_apply(np.sum, tensor, backend="serial")


def test_bad_options():
    T = np.zeros((2, 2, 2))
    with pytest.raises(ValueError, match="backend"):
        tensor_apply(np.sum, T, backend="threads")
    with pytest.raises(ValueError, match="workers"):
        tensor_apply(np.sum, T, workers=0)
    with pytest.raises(ValueError, match="callable"):
        tensor_apply("sum", T)


def test_unpicklable_func_under_spawn_says_why(tensor, no_leaks):
    scale = 2.0
    with pytest.raises(ValueError, match="cannot be pickled.*spawn.*module level"):
        tensor_apply(lambda m: m * scale, tensor, start_method="spawn")
    # Under fork the same lambda needs no pickling and works.
    got = tensor_apply(lambda m: m.sum() * scale, tensor, workers=2, start_method="fork")
    np.testing.assert_allclose(got, tensor.sum(axis=(1, 2)) * scale)


def doubled(m):
    return 2.0 * m


def test_spawn_result_holds_no_shared_memory(no_leaks):
    # An unlinked segment's pages stay allocated in the /dev/shm tmpfs while
    # mapped; the spawn result must be private memory, not such a mapping.
    T = np.random.default_rng(1).normal(size=(64, 128, 128))  # 8 MB of output

    def shm_free():
        st = os.statvfs("/dev/shm")
        return st.f_bavail * st.f_frsize

    before = shm_free()
    got = tensor_apply(doubled, T, workers=2, start_method="spawn")
    assert before - shm_free() < T.nbytes / 4
    np.testing.assert_array_equal(got, 2.0 * T)


# ---------------------------------------------------------------- dask
@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("dask.distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0")
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_dask_matches_serial(tensor, dask_client):
    expected = tensor_apply(singular_values, tensor, backend="serial")
    got = tensor_apply(singular_values, tensor, backend="dask", client=dask_client, chunks=5)
    np.testing.assert_array_equal(got, expected)


def test_dask_error_names_slice(tensor, dask_client):
    tensor[23, 0, 0] = 99.0
    with pytest.raises(ZeroDivisionError) as info:
        tensor_apply(fail_on_marker, tensor, backend="dask", client=dask_client)
    assert any("slice 23" in note for note in info.value.__notes__)


@pytest.mark.slow
def test_dask_starts_and_closes_its_own_cluster(tensor):
    got = tensor_apply(np.trace, tensor[:8], backend="dask", workers=1)
    np.testing.assert_array_equal(got, [np.trace(m) for m in tensor[:8]])

