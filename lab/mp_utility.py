"""Parallel apply over the first axis of a 3-D tensor.

:func:`tensor_apply` maps a function over the 2-D slices ``tensor[i]`` of a
batch of matrices ``(n_items, rows, cols)`` and stacks the results. Three
backends share one contract (same output, same errors):

``"shared_memory"``
    The caller and ``workers - 1`` local processes take index ranges, large
    ones first and shrinking ones at the end, and write into one
    preallocated output, which is returned as it is (no final copy).
    What is copied depends on the start method:

    * ``fork`` (Python's default on Linux before 3.14): nothing. The workers
      are forked at call time and read the tensor, whatever its layout, from
      the memory they inherit (copy-on-write: they never write to it, so no
      page is copied). The output is an anonymous shared mapping made
      before the fork; nothing is created in /dev/shm.
    * ``spawn`` and ``forkserver``: the tensor is copied once into a POSIX
      shared-memory segment, unless it lives in one made by
      :func:`shared_array` (then the workers attach to it: no copy). The
      output is a second segment, copied into private memory and removed
      before the call returns.

    BLAS is pinned to one thread per worker. Every segment (and, under
    spawn, the named semaphore of the range counter) is unlinked and every
    worker is stopped whether the call succeeds, ``func`` raises or calls
    ``sys.exit``, the caller presses Ctrl-C, a worker is killed or stopped,
    or the ``timeout`` passes.
``"serial"``
    A plain loop in the calling process, for debugging (``pdb`` works).
``"dask"``
    A dask.distributed ``Client`` (the one given, or a temporary
    ``LocalCluster`` of processes), one task per chunk along axis 0. This is
    how work goes past one machine.

All backends run ``func`` with BLAS limited to one thread, so their results
are bit-identical to each other.
"""

from __future__ import annotations

import contextlib
import gc
import mmap
import multiprocessing as mp
import multiprocessing.connection
import os
import pickle
import secrets
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from lab._blas import one_blas_thread as _blas_pinned
from lab._validation import _check_float, _check_int, _check_option

__all__ = [
    "WorkerDiedError",
    "shared_array",
    "tensor_apply",
]

#: Backends accepted by :func:`tensor_apply`.
BACKENDS = ("shared_memory", "serial", "dask")
#: Start methods accepted for the shared-memory backend (None: Python's default).
START_METHODS = (None, "fork", "spawn", "forkserver")
#: Index ranges per dask worker by default: a few large ranges keep the
#: per-task overhead negligible, more than one lets a fast worker take over
#: part of a slow one's share on a busy machine.
RANGES_PER_WORKER = 2
#: The shared-memory backend hands out shrinking ranges by default ("guided"
#: scheduling, as in OpenMP): each is 1/GUIDED_SHARE_PER_PROCESS of what is
#: left per process, so the first are large (few messages) and the last are
#: small, and the processes finish within one small range of each other.
GUIDED_SHARE_PER_PROCESS = 2
#: The smallest guided range is 1/GUIDED_MIN_PER_PROCESS of a process's share
#: (for 2000 slices and 2 processes: 32 slices, 1/64 of the work).
GUIDED_MIN_PER_PROCESS = 32
#: Seconds between two looks, while the caller computes its own ranges, at
#: the workers' messages: a worker's error or death is raised within this
#: time (plus one slice), not after the caller's whole range.
CALLER_POLL_S = 0.01
#: Every shared-memory segment this module creates starts with this prefix
#: (followed by the creating process id), so leaks are easy to find in /dev/shm.
SHM_PREFIX = "lab_"
#: Seconds to wait for a worker to exit after SIGTERM before it gets SIGKILL.
TERMINATE_GRACE_S = 2.0
#: Workers of a temporary LocalCluster started by the dask backend (capped by
#: the number of CPUs); one thread each, as with the shared-memory backend.
DASK_DEFAULT_WORKERS = 2

# Segments created by shared_array(), by name: (shm, first byte address, size).
_OWNED_SEGMENTS: dict[str, tuple[shared_memory.SharedMemory, int, int]] = {}


class WorkerDiedError(RuntimeError):
    """A worker ended without finishing its work (killed, out of memory), or func called sys.exit."""


# --------------------------------------------------------------------------
# Shared memory helpers
# --------------------------------------------------------------------------
def _new_segment(nbytes: int) -> shared_memory.SharedMemory:
    name = f"{SHM_PREFIX}{os.getpid()}_{secrets.token_hex(6)}"
    # A zero-size segment is not allowed; one byte stands in for empty arrays.
    return shared_memory.SharedMemory(name=name, create=True, size=max(int(nbytes), 1))


def _release(shm: shared_memory.SharedMemory | None, unlink: bool) -> None:
    if shm is None:
        return
    with contextlib.suppress(BufferError):
        shm.close()
    if unlink:
        with contextlib.suppress(FileNotFoundError):
            shm.unlink()


@contextlib.contextmanager
def shared_array(shape: tuple[int, ...], dtype: Any = np.float64) -> Iterator[np.ndarray]:
    """An ndarray that lives in shared memory, for zero-copy :func:`tensor_apply`.

    Under the ``spawn`` and ``forkserver`` start methods, :func:`tensor_apply`
    copies an ordinary ndarray input once into shared memory. A tensor
    built inside this context is already there: spawned workers attach to
    it directly and no copy is made. (Under ``fork`` no input is copied
    anyway: forked workers read the caller's memory.) The segment is
    unlinked on exit; do not use the array afterwards.

    Parameters
    ----------
    shape : tuple of int
        Shape of the array.
    dtype : numpy dtype
        Element type (default float64).

    Yields
    ------
    ndarray
        A zero-filled, C-contiguous, writable array.

    Examples
    --------
    >>> import numpy as np
    >>> with shared_array((4, 2, 2)) as T:
    ...     T[:] = np.arange(16.0).reshape(4, 2, 2)
    ...     traces = tensor_apply(np.trace, T, backend="serial")
    >>> traces.tolist()
    [3.0, 11.0, 19.0, 27.0]
    """
    dtype = np.dtype(dtype)
    shape = tuple(int(s) for s in shape)
    shm = _new_segment(int(np.prod(shape)) * dtype.itemsize)
    try:
        array = np.ndarray(shape, dtype=dtype, buffer=shm.buf)
        array[...] = 0
        _OWNED_SEGMENTS[shm.name] = (shm, array.__array_interface__["data"][0], shm.size)
        yield array
    finally:
        _OWNED_SEGMENTS.pop(shm.name, None)
        array = None  # drop the export so that close() can unmap
        _release(shm, unlink=True)


def _find_owned_segment(arr: np.ndarray) -> tuple[str, int] | None:
    """``(segment name, byte offset)`` if ``arr`` lies in a shared_array segment."""
    if not arr.flags.c_contiguous:
        return None
    start = arr.__array_interface__["data"][0]
    for name, (_, base, size) in _OWNED_SEGMENTS.items():
        if base <= start and start + arr.nbytes <= base + size:
            return name, start - base
    return None


class _Deadline:
    """The end of a call's time: ``timeout`` seconds after it started (None: no end)."""

    def __init__(self, timeout: float | None):
        self.timeout = timeout
        self.at = None if timeout is None else time.monotonic() + timeout

    def left(self) -> float | None:
        return None if self.at is None else max(0.0, self.at - time.monotonic())

    def passed(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    def error(self, what: str) -> TimeoutError:
        return TimeoutError(f"tensor_apply did not finish within timeout={self.timeout:g} s: {what}")

    def check(self, what: str) -> None:
        if self.passed():
            raise self.error(what)


# --------------------------------------------------------------------------
# The per-slice loop shared by every backend
# --------------------------------------------------------------------------
def _shape_error(index: int, got: Any, expected_shape: tuple, expected_dtype: np.dtype) -> ValueError:
    return ValueError(
        f"func returned shape {np.shape(got)} and dtype {np.asarray(got).dtype} for slice "
        f"{index}, but shape {expected_shape} and dtype {expected_dtype} for slice 0; "
        "every slice must give a result of the same shape and dtype"
    )


def _exit_error(exc: SystemExit, index: int) -> WorkerDiedError:
    """``sys.exit`` in ``func``: an error, in whichever process ran the slice.

    Passed on as it is, it would end the caller's program with no message
    (the worker sends its exceptions to the caller, which re-raises them),
    or only when the caller happened to compute that slice itself.
    """
    return WorkerDiedError(
        f"func called sys.exit({exc.code!r}) on slice {index} (tensor[{index}]) in process "
        f"{os.getpid()} ({mp.current_process().name}); tensor_apply needs a result from every "
        "slice, so this ends the call with an error instead of ending the program"
    )


def _apply_range_kernel(func: Callable, src: np.ndarray, dst: np.ndarray, lo: int, hi: int,
                        offset: int = 0, between: Callable[[], None] | None = None) -> None:
    """``dst[i - lo] = func(src[i - lo])`` for ``i`` in ``[lo, hi)``, index-named errors.

    ``offset`` maps local positions to the caller's slice numbers (used for
    messages only). A failure gets a note naming the failing slice.
    ``between``, if given, is called after every slice (it may raise).
    """
    for local in range(hi - lo):
        index = lo + local + offset
        try:
            result = np.asarray(func(src[local]))
            if result.shape != dst.shape[1:] or result.dtype != dst.dtype:
                raise _shape_error(index, result, dst.shape[1:], dst.dtype)
            dst[local] = result
        except SystemExit as exc:
            raise _exit_error(exc, index) from exc
        except BaseException as exc:
            exc.add_note(f"tensor_apply: func failed on slice {index} (tensor[{index}])")
            raise
        if between is not None:
            between()


def _probe(func: Callable, tensor: np.ndarray) -> np.ndarray:
    """Run ``func`` on slice 0 to learn the output shape and dtype (BLAS already pinned)."""
    try:
        first = np.asarray(func(tensor[0]))
    except SystemExit as exc:
        raise _exit_error(exc, 0) from exc
    except BaseException as exc:
        exc.add_note("tensor_apply: func failed on slice 0 (tensor[0])")
        raise
    if first.dtype == object:
        raise ValueError(
            f"func returned an object array for slice 0 (shape {first.shape}); "
            "results must be numeric arrays or scalars of one shape"
        )
    return first


# --------------------------------------------------------------------------
# shared_memory backend
# --------------------------------------------------------------------------
class _SegmentView:
    """Exposes a segment as ``__array_interface__`` and keeps it mapped meanwhile.

    An array built from this object holds it as its base, so the segment
    stays mapped exactly as long as the array (or any view of it) lives,
    while its name can be unlinked at once. An array over ``shm.buf`` would
    not do: numpy keeps no buffer export, so when the ``SharedMemory``
    object is collected it unmaps the pages under the array (a crash on the
    next read).
    """

    def __init__(self, shm: shared_memory.SharedMemory, shape: tuple, dtype: np.dtype,
                 offset: int = 0):
        self._shm = shm
        view = np.ndarray(shape, dtype=dtype, buffer=shm.buf, offset=offset)
        self.__array_interface__ = view.__array_interface__
        # Only the address is kept: the temporary view must not hold an export.
        del view


def _segment_array(shm: shared_memory.SharedMemory, shape: tuple, dtype: Any,
                   offset: int = 0) -> np.ndarray:
    return np.asarray(_SegmentView(shm, shape, np.dtype(dtype), offset))


def _anonymous_shared(shape: tuple, dtype: np.dtype) -> np.ndarray:
    """A zero-filled array in an anonymous ``MAP_SHARED`` mapping.

    Processes forked after this call write to the same pages, so it serves
    as the output of forked workers and is returned to the caller as is:
    no name in /dev/shm, nothing to unlink; it is unmapped with the array.
    """
    nbytes = int(np.prod(shape)) * dtype.itemsize
    # A zero-length mapping is not allowed; one byte stands in for empty arrays.
    return np.ndarray(shape, dtype=dtype, buffer=mmap.mmap(-1, max(nbytes, 1)))


@contextlib.contextmanager
def _gc_frozen(active: bool) -> Iterator[None]:
    """Forked children start with the caller's objects in gc's permanent generation.

    A full collection in a forked worker would otherwise write to the header
    of every inherited object and so copy the caller's whole heap, page by
    page (``gc.freeze`` is documented for this case). The caller unfreezes
    at once; a caller that froze objects itself is left alone.
    """
    if not active or gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _take(counter: Any, ranges: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The next range nobody has taken (``counter`` is held locked), or None."""
    i = counter.value
    counter.value = i + 1
    return ranges[i] if i < len(ranges) else None


def _worker_main(func: Callable, src: Any, dst: Any, ranges: list[tuple[int, int]],
                 counter_box: list, conn: mp.connection.Connection) -> None:
    """Worker process: get both arrays, then take ranges until none is left.

    ``src`` and ``dst`` are arrays inherited through fork, or
    ``(segment name, offset, shape, dtype)`` to attach to after spawn.
    ``counter_box`` holds the shared index of the next range to take.
    """
    # The parent decides what Ctrl-C means and stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    (counter,) = counter_box
    segments = []
    try:
        if isinstance(src, tuple):
            # A fresh interpreter: pin BLAS here. A forked worker inherits the
            # caller's one-thread setting and must not set it again: after a
            # fork, OpenBLAS answers any set_num_threads by starting its whole
            # thread pool, whose threads then spin for a while on the
            # worker's CPUs.
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=1)
            src, dst = (_attach(spec, segments) for spec in (src, dst))
        while True:
            with counter.get_lock():
                task = _take(counter, ranges)
            if task is None:
                break
            lo, hi = task
            try:
                _apply_range_kernel(func, src[lo:hi], dst[lo:hi], lo, hi)
            except BaseException as exc:
                conn.send(("error", _picklable(exc), traceback.format_exc()))
                return
            conn.send(("done", lo, hi))
    finally:
        src = dst = None
        for shm in segments:
            _release(shm, unlink=False)
        conn.close()


def _attach(spec: tuple, segments: list) -> np.ndarray:
    name, offset, shape, dtype = spec
    shm = shared_memory.SharedMemory(name=name)
    segments.append(shm)
    return np.ndarray(shape, dtype=dtype, buffer=shm.buf, offset=offset)


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        fallback = RuntimeError(f"{type(exc).__name__}: {exc}")
        for note in getattr(exc, "__notes__", []):
            fallback.add_note(note)
        return fallback


class _RemoteTraceback(Exception):
    """Carries the worker's formatted traceback as the cause of a re-raised error."""

    def __init__(self, tb: str):
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


def _check_spawnable(func: Callable, method: str) -> None:
    """Fail early, with the reason, when ``func`` cannot reach a spawned worker."""
    try:
        pickle.dumps(func)
    except Exception as exc:
        raise ValueError(
            f"func {func!r} cannot be pickled ({type(exc).__name__}: {exc}). The {method!r} "
            "start method starts fresh worker processes and sends func to them by pickle: "
            "define func at module level (not a lambda or a local function), or use "
            "start_method='fork' or backend='serial'."
        ) from exc
    module = getattr(func, "__module__", None)
    main = sys.modules.get("__main__")
    if module == "__main__" and not getattr(main, "__file__", None):
        raise ValueError(
            f"func {func!r} is defined in an interactive session (__main__ has no file), so "
            f"workers started with {method!r} cannot import it to unpickle it: move it to a "
            "module, or use start_method='fork' or backend='serial'."
        )


def _ranges(n: int, parts: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, n, parts + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def _guided_ranges(n: int, processes: int) -> list[tuple[int, int]]:
    """Contiguous ranges covering ``[0, n)`` that shrink as the work runs out.

    Each range is ``1/GUIDED_SHARE_PER_PROCESS`` of what is left per
    process, and at least ``1/GUIDED_MIN_PER_PROCESS`` of one process's
    share (OpenMP's "guided" schedule).
    """
    smallest = max(1, -(-n // (GUIDED_MIN_PER_PROCESS * processes)))
    ranges, lo = [], 0
    while lo < n:
        size = max(smallest, -(-(n - lo) // (GUIDED_SHARE_PER_PROCESS * processes)))
        ranges.append((lo, min(n, lo + size)))
        lo = ranges[-1][1]
    return ranges


def _stop(procs: list) -> None:
    for p in procs:
        if p.is_alive():
            p.terminate()
            # A stopped worker (SIGSTOP) holds SIGTERM pending until it runs again.
            os.kill(p.pid, signal.SIGCONT)
    for p in procs:
        p.join(TERMINATE_GRACE_S)
        if p.is_alive():
            p.kill()
            p.join()


def _shared_memory(func: Callable, tensor: np.ndarray, first: np.ndarray, workers: int,
                   chunks: int | None, ctx: Any, deadline: _Deadline) -> np.ndarray:
    """Run slices 1.. in the caller and ``workers - 1`` processes; return the whole output.

    The caller takes ranges from the same counter as the worker processes
    (as OpenMP's master thread does) instead of waiting idle: one fork fewer
    and one more CPU at work. Between slices it looks at the workers'
    messages every ``CALLER_POLL_S``, so a worker's error or death is raised
    promptly. Under fork, the workers read ``tensor`` straight from the
    memory they inherit (copy-on-write, never written) and write into an
    anonymous shared mapping that becomes the result. Under
    spawn/forkserver, they attach by name to the input segment (a copy of
    ``tensor`` unless it was built with :func:`shared_array`) and to an
    output segment, copied into private memory and removed before returning.
    Past the deadline, the workers still running are named in a TimeoutError.
    """
    forked = ctx.get_start_method() == "fork"
    n = len(tensor)
    shape = (n, *first.shape)
    src_copy = out_shm = None
    procs, conns = [], []
    # Under spawn the counter's lock is a named semaphore (/dev/shm/sem.mp-*),
    # unlinked only when its last reference goes. A raised error's traceback
    # keeps this frame and the Process objects (so their arguments) alive, until
    # garbage collection when it is in a cycle. So the counter reaches the
    # workers in a box, and the finally empties the box and drops its own names.
    counter_box: list = []
    try:
        if forked:
            src, dst = tensor, _anonymous_shared(shape, first.dtype)
            out = dst
        else:
            owned = _find_owned_segment(tensor)
            if owned is None:
                src_copy = _new_segment(tensor.nbytes)
                np.ndarray(tensor.shape, tensor.dtype, buffer=src_copy.buf)[...] = tensor
                owned = (src_copy.name, 0)
            src = (*owned, tensor.shape, tensor.dtype.str)
            out_shm = _new_segment(int(np.prod(shape)) * first.dtype.itemsize)
            dst = (out_shm.name, 0, shape, first.dtype.str)
            out = _segment_array(out_shm, shape, first.dtype)
        out[0] = first

        # Slice 0 was computed by the probe. Processes take the ranges in
        # order through one shared counter (no queue: nothing to fill up).
        ranges = [(lo + 1, hi + 1) for lo, hi in
                  (_ranges(n - 1, chunks) if chunks else _guided_ranges(n - 1, workers))]
        counter = ctx.Value("q", 0)
        counter_box.append(counter)
        with _gc_frozen(forked):
            for _ in range(workers - 1):
                reader, writer = ctx.Pipe(duplex=False)
                p = ctx.Process(target=_worker_main,
                                args=(func, src, dst, ranges, counter_box, writer),
                                daemon=True, name="lab-tensor-apply")
                p.start()
                writer.close()
                procs.append(p)
                conns.append(reader)

        live = dict(zip(conns, procs, strict=True))
        remaining = len(ranges)

        def collect(timeout: float | None) -> None:
            """Take the workers' messages; raise on an error or a dead worker.

            Every message waiting on a ready pipe is read, so that a worker
            with many small ranges never blocks on a full pipe.
            """
            nonlocal remaining
            sentinels = {p.sentinel: p for p in live.values()}
            for item in mp.connection.wait(list(live) + list(sentinels), timeout):
                if item in live:
                    while item in live and item.poll():
                        try:
                            msg = item.recv()
                        except EOFError:
                            # The pipe closed: the worker is gone; its exit code decides.
                            proc = live.pop(item)
                            proc.join(TERMINATE_GRACE_S)
                            if proc.exitcode != 0:
                                raise _died(proc, remaining) from None
                            break
                        if msg[0] == "done":
                            remaining -= 1
                        else:
                            _, exc, tb = msg
                            raise exc from _RemoteTraceback(tb)
                elif item in sentinels:
                    proc = sentinels[item]
                    if proc.exitcode not in (0, None):
                        raise _died(proc, remaining)

        def check_deadline() -> None:
            if deadline.passed():
                at_work = _describe(live.values())
                raise deadline.error(f"{remaining} index range(s) unfinished" + (
                    f"; worker(s) {at_work} were still at work and are killed" if at_work else ""))

        next_look = 0.0

        def look() -> None:
            nonlocal next_look
            now = time.monotonic()
            if now >= next_look and live:
                collect(0)
                next_look = now + CALLER_POLL_S
            check_deadline()

        # The caller's share. A worker killed while it holds the counter's
        # lock would block a plain acquire for ever: wait in short steps and
        # look at the workers in between.
        lock = counter.get_lock()
        while True:
            while not lock.acquire(timeout=CALLER_POLL_S):
                collect(0)
                check_deadline()
            try:
                task = _take(counter, ranges)
            finally:
                lock.release()
            if task is None:
                break
            lo, hi = task
            _apply_range_kernel(func, tensor[lo:hi], out[lo:hi], lo, hi, between=look)
            remaining -= 1
        while remaining:
            if not live:  # a worker left with exit code 0 mid-range (os._exit(0) in func)
                raise WorkerDiedError(
                    f"{remaining} index range(s) were never finished: a worker exited with "
                    "code 0 before finishing its range (does func call os._exit?)")
            collect(deadline.left())
            check_deadline()
        if out_shm is not None:
            # A named segment's pages would stay allocated in /dev/shm (a tmpfs,
            # 64 MB by default in Docker) for as long as the result lives, yet be
            # invisible to ls once unlinked: hand back private memory instead.
            out = np.array(out, copy=True)
        return out
    finally:
        _stop(procs)
        for c in conns:
            c.close()
        _release(src_copy, unlink=True)
        _release(out_shm, unlink=True)
        counter_box.clear()
        counter = lock = None


def _describe(procs: Any) -> str:
    """``"12 (stopped), 13"``: the live workers' pids, as a timeout found them."""
    names = []
    for p in procs:
        try:
            with open(f"/proc/{p.pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            state = ""
        names.append(f"{p.pid} (stopped)" if state in ("T", "t") else str(p.pid))
    return ", ".join(names)


def _died(proc: Any, remaining: int) -> WorkerDiedError:
    code = proc.exitcode
    how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
    return WorkerDiedError(
        f"tensor_apply worker {proc.pid} ended with {how} while {remaining} index range(s) "
        "were unfinished; its results are lost (out of memory? killed?)"
    )


# --------------------------------------------------------------------------
# dask backend
# --------------------------------------------------------------------------
def _dask_block(func: Callable, block: np.ndarray, lo: int, shape: tuple, dtype: str) -> np.ndarray:
    from threadpoolctl import threadpool_limits

    out = np.empty((len(block), *shape), dtype=np.dtype(dtype))
    with threadpool_limits(limits=1):
        _apply_range_kernel(func, block, out, 0, len(block), offset=lo)
    return out


def _dask(func: Callable, tensor: np.ndarray, out: np.ndarray, workers: int | None,
          chunks: int | None, client: Any, deadline: _Deadline) -> None:
    from dask.distributed import CancelledError, Client, KilledWorker, LocalCluster

    own = client is None
    cluster = None
    futures: list = []
    done = False
    try:
        if own:
            n = workers or min(DASK_DEFAULT_WORKERS, os.cpu_count() or 1)
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   dashboard_address=":0")
            client = Client(cluster)
        if chunks is None:
            n_workers = max(1, len(client.scheduler_info().get("workers", {})))
            chunks = RANGES_PER_WORKER * n_workers
        ranges = _ranges(len(tensor) - 1, chunks)
        blocks = client.scatter([tensor[lo + 1:hi + 1] for lo, hi in ranges])
        futures = [
            client.submit(_dask_block, func, blk, lo + 1, out.shape[1:], out.dtype.str, pure=False)
            for blk, (lo, _) in zip(blocks, ranges, strict=True)
        ]
        for k, (fut, (lo, hi)) in enumerate(zip(futures, ranges, strict=True)):
            try:
                out[lo + 1:hi + 1] = fut.result(timeout=deadline.left())
            except TimeoutError:
                raise deadline.error(f"{len(ranges) - k} of {len(ranges)} dask task(s) "
                                     "unfinished, now cancelled") from None
            except (CancelledError, KilledWorker) as exc:
                # A dead worker takes the blocks scattered to it along: dask then
                # cancels their tasks ("already forgotten") instead of rerunning them.
                raise WorkerDiedError(
                    f"the dask task for slices {lo + 1} to {hi} (tensor[{lo + 1}:{hi + 1}]) was "
                    f"lost: a dask worker died (out of memory? killed? a crash in func?) "
                    f"({type(exc).__name__}: {exc})") from exc
        done = True
    finally:
        if not done and not own:
            # The error being raised says more than a failed cancel would.
            with contextlib.suppress(Exception):
                client.cancel(futures)
        if own:
            client.close()
            if cluster is not None:
                cluster.close()


# --------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------
def tensor_apply(func: Callable[[np.ndarray], Any], tensor: Any, *, backend: str = "shared_memory",
                 workers: int | None = None, chunks: int | None = None, client: Any = None,
                 start_method: str | None = None, timeout: float | None = None) -> np.ndarray:
    """Apply ``func`` to every slice ``tensor[i]`` and stack the results.

    Parameters
    ----------
    func : callable
        Takes one 2-D slice ``tensor[i]`` (to be treated as read-only) and
        returns an array or a scalar. Every slice must give the same shape and dtype. For the
        ``spawn``/``forkserver`` start methods and for dask it must be
        picklable (defined at module level).
    tensor : ndarray of shape (n_items, rows, cols)
        The batch of matrices. Any numeric dtype except object.
    backend : {"shared_memory", "serial", "dask"}
        Where the work runs (see the module docstring).
    workers : int, optional
        Processes that compute, the caller included (default: the CPUs
        available to this process): the shared-memory backend starts
        ``workers - 1`` processes and the caller works beside them, so
        ``workers=1`` runs everything in the caller. For dask with no
        ``client``, the workers of the temporary LocalCluster.
    chunks : int, optional
        Equal index ranges the work is split into. Default, shared memory:
        shrinking ranges ("guided"), each half of what is left per process
        and at least 1/32 of a process's share, so processes finish within
        one small range of each other; dask: 2 per worker.
    client : dask.distributed.Client, optional
        Cluster for the dask backend. If None, a temporary LocalCluster of
        processes is started and closed.
    start_method : {None, "fork", "spawn", "forkserver"}
        Multiprocessing start method of the shared-memory backend (None:
        Python's default for the platform).
    timeout : float, optional
        Seconds the whole call may take (None: no limit), for every backend;
        past it a ``TimeoutError`` is raised and the workers are killed (a
        stopped one too) or, on a dask cluster, the tasks cancelled. It is
        checked between slices: a slice that the calling process is
        computing (slice 0 always) is not interrupted.

    Returns
    -------
    ndarray of shape (n_items, *result_shape)
        ``out[i] = func(tensor[i])``, with the dtype of ``func(tensor[0])``;
        C-contiguous and writable. From the shared-memory backend under
        fork, its pages are the anonymous shared mapping the workers wrote
        into (no copy), released with the array; a process forked *later*
        from the caller shares those pages, so its writes to the array show
        in the caller (copy it first if a child must modify it privately).
        Under spawn/forkserver it is a private copy of the output segment,
        which is removed from /dev/shm before the call returns.

    Raises
    ------
    ValueError
        If ``tensor`` is not 3-D, has object (or non-numeric) dtype or no
        slice; if results differ in shape or dtype between slices (naming the
        slice); if ``func`` cannot be pickled under spawn (saying why).
    WorkerDiedError
        If a worker process dies (e.g. SIGKILL, out of memory; a dask worker
        too) before it finishes: an error, never a hang. Also if ``func``
        calls ``sys.exit``, in whichever process (the message names the
        slice and the process), instead of ending the caller's program.
    TimeoutError
        If the call is not done after ``timeout`` seconds (e.g. a worker was
        stopped with SIGSTOP); the message names the workers still at work
        and which of them were stopped.
    Exception
        Whatever ``func`` raises, re-raised in the caller with a note naming
        the failing slice index. Raised in a worker process, its cause holds
        the worker's original traceback; raised in the caller (the probe, or
        a range the caller took), its own traceback is the original.

    Notes
    -----
    ``func(tensor[0])`` runs first in the calling process to learn the output
    shape; the rest is split into contiguous ranges that the processes take
    in order from a shared counter. The caller takes ranges too instead of
    waiting idle (as OpenMP's master thread does): one fork fewer, one more
    CPU at work. While it computes, it looks at the workers' messages every
    ``CALLER_POLL_S`` seconds, so a worker's error or death is raised
    within that time, not after the caller's range. So a ``func`` that
    crashes its process (a segfault in an extension) ends the caller when it
    does so on slice 0 (the probe, as for every backend) or on a range the
    caller took; a crash in a worker is a :class:`WorkerDiedError`. Every
    backend calls ``func`` under a one-thread BLAS limit (threadpoolctl) so that
    parallel workers do not oversubscribe the CPUs and all backends give
    bit-identical results. The libraries are found in the caller on every
    call (about 1 ms), and the limit holds there for the whole call, so that forked
    workers start pinned and set nothing (after a fork, OpenBLAS answers a
    thread-count call by starting its thread pool, which then spins on the
    workers' CPUs); spawned workers pin themselves. When the caller gives
    its setting back at the end, OpenBLAS restarts its pool there, whose
    threads spin for about 0.1 s; nothing is set, in the caller or the
    workers, when BLAS already runs one thread (e.g.
    ``OPENBLAS_NUM_THREADS=1``).

    Memory of the shared-memory backend, beyond input and output: under
    ``fork`` none is copied; each worker adds its private pages (a forked
    Python process, a few MB, see ``benchmarks/bench_mp.py``), and the
    caller's objects are frozen for the garbage collector while the workers
    are forked (``gc.freeze``), so that a collection in a worker does not
    copy the caller's heap. Under ``spawn``/``forkserver`` the tensor is
    copied once into shared memory (no copy for a :func:`shared_array`) and
    each worker is a fresh interpreter that imports ``func``'s module.
    Segments are named ``lab_<pid>_...`` and always unlinked. ``func`` must
    not modify its input: where that input is shared, the change would be
    seen by other slices or by the caller, depending on the backend.

    Examples
    --------
    >>> import numpy as np
    >>> T = np.random.default_rng(0).normal(size=(6, 4, 4))
    >>> sv = tensor_apply(lambda m: np.linalg.svd(m, compute_uv=False), T,
    ...                   workers=2, start_method="fork")
    >>> sv.shape
    (6, 4)
    >>> bool(np.array_equal(sv, tensor_apply(lambda m: np.linalg.svd(m, compute_uv=False), T,
    ...                                      backend="serial")))
    True
    """
    backend = _check_option(backend, "backend", BACKENDS)
    start_method = _check_option(start_method, "start_method", START_METHODS)
    if not callable(func):
        raise ValueError(f"func must be callable, got {type(func).__name__}")
    arr = np.asarray(tensor)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                   or np.issubdtype(arr.dtype, np.bool_)):
        raise ValueError(f"tensor must have a numeric dtype, got dtype {arr.dtype}")
    if arr.ndim != 3:
        raise ValueError(
            f"tensor must be 3-D (n_items, rows, cols), got {arr.ndim}-D shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"tensor has no slice (shape {arr.shape}); at least 1 is needed")
    if workers is not None:
        workers = _check_int(workers, "workers", minimum=1)
    if chunks is not None:
        chunks = _check_int(chunks, "chunks", minimum=1)
    if timeout is not None:
        timeout = _check_float(timeout, "timeout")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds (or None: no limit), got {timeout}")
    deadline = _Deadline(timeout)

    with _blas_pinned():
        first = _probe(func, arr)
        n = arr.shape[0]
        if backend == "shared_memory" and n > 1:
            ctx = mp.get_context(start_method)
            if ctx.get_start_method() != "fork":
                _check_spawnable(func, ctx.get_start_method())
            n_workers = min(workers or len(os.sched_getaffinity(0)), n - 1)
            if n_workers > 1:
                return _shared_memory(func, arr, first, n_workers,
                                      min(chunks, n - 1) if chunks else None, ctx, deadline)
        out = np.empty((n, *first.shape), dtype=first.dtype)
        out[0] = first
        # One shared-memory worker is the caller itself: no process to start.
        if n > 1 and backend in ("serial", "shared_memory"):
            _apply_range_kernel(func, arr[1:], out[1:], 1, n, between=None if timeout is None else (
                lambda: deadline.check("the loop in the calling process stopped between slices")))
    if n > 1 and backend == "dask":
        _dask(func, arr, out, workers, chunks, client, deadline)
    return out
