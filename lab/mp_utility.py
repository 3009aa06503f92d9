"""Parallel apply over the first axis of a 3-D tensor.

:func:`tensor_apply` maps a function over the 2-D slices ``tensor[i]`` of a
batch of matrices ``(n_items, rows, cols)`` and stacks the results. Three
backends share one contract (same output, same errors):

``"shared_memory"``
    Local processes. The tensor is placed once in POSIX shared memory, the
    output is preallocated there, workers attach to both without copying and
    take a few large index ranges each. BLAS is pinned to one thread per
    worker. Works under the ``fork``, ``spawn`` and ``forkserver`` start
    methods; every segment is unlinked and every worker is stopped whether
    the call succeeds, ``func`` raises, the caller presses Ctrl-C or a worker
    is killed.
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
import multiprocessing as mp
import multiprocessing.connection
import os
import pickle
import secrets
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from lab._validation import _check_int, _check_option

__all__ = [
    "WorkerDiedError",
    "shared_array",
    "tensor_apply",
]

#: Backends accepted by :func:`tensor_apply`.
BACKENDS = ("shared_memory", "serial", "dask")
#: Start methods accepted for the shared-memory backend (None: Python's default).
START_METHODS = (None, "fork", "spawn", "forkserver")
#: Index ranges handed out per worker by default: a few large ranges keep the
#: per-task overhead negligible, more than one lets a fast worker take over
#: part of a slow one's share on a busy machine.
RANGES_PER_WORKER = 2
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
    """A worker process ended without finishing its work (e.g. killed by SIGKILL)."""


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

    :func:`tensor_apply` normally copies its input once into shared memory.
    A tensor built inside this context is already there: workers attach to
    it directly and no copy is made. The segment is unlinked on exit; do not
    use the array afterwards.

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


# --------------------------------------------------------------------------
# The per-slice loop shared by every backend
# --------------------------------------------------------------------------
def _shape_error(index: int, got: Any, expected_shape: tuple, expected_dtype: np.dtype) -> ValueError:
    return ValueError(
        f"func returned shape {np.shape(got)} and dtype {np.asarray(got).dtype} for slice "
        f"{index}, but shape {expected_shape} and dtype {expected_dtype} for slice 0; "
        "every slice must give a result of the same shape and dtype"
    )


def _apply_range_kernel(func: Callable, src: np.ndarray, dst: np.ndarray, lo: int, hi: int,
                        offset: int = 0) -> None:
    """``dst[i - lo] = func(src[i - lo])`` for ``i`` in ``[lo, hi)``, index-named errors.

    ``offset`` maps local positions to the caller's slice numbers (used for
    messages only). A failure gets a note naming the failing slice.
    """
    for local in range(hi - lo):
        index = lo + local + offset
        try:
            result = np.asarray(func(src[local]))
            if result.shape != dst.shape[1:] or result.dtype != dst.dtype:
                raise _shape_error(index, result, dst.shape[1:], dst.dtype)
            dst[local] = result
        except BaseException as exc:
            exc.add_note(f"tensor_apply: func failed on slice {index} (tensor[{index}])")
            raise


def _probe(func: Callable, tensor: np.ndarray) -> np.ndarray:
    """Run ``func`` on slice 0 to learn the output shape and dtype."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        try:
            first = np.asarray(func(tensor[0]))
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
# serial backend
# --------------------------------------------------------------------------
def _serial(func: Callable, tensor: np.ndarray, out: np.ndarray) -> None:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        _apply_range_kernel(func, tensor[1:], out[1:], 1, len(tensor))


# --------------------------------------------------------------------------
# shared_memory backend
# --------------------------------------------------------------------------
def _worker_main(func: Callable, src_spec: tuple, dst_spec: tuple, tasks: Any,
                 conn: mp.connection.Connection) -> None:
    """Worker process: attach to both segments, then run ranges until told to stop."""
    # The parent decides what Ctrl-C means and stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    segments, arrays = [], []
    try:
        for name, offset, shape, dtype in (src_spec, dst_spec):
            shm = shared_memory.SharedMemory(name=name)
            segments.append(shm)
            arrays.append(np.ndarray(shape, dtype=dtype, buffer=shm.buf, offset=offset))
        src, dst = arrays
        while True:
            task = tasks.get()
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
        arrays.clear()
        for shm in segments:
            _release(shm, unlink=False)
        conn.close()


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


def _stop(procs: list) -> None:
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(TERMINATE_GRACE_S)
        if p.is_alive():
            p.kill()
            p.join()


def _shared_memory(func: Callable, tensor: np.ndarray, out: np.ndarray, workers: int,
                   chunks: int, start_method: str | None) -> None:
    ctx = mp.get_context(start_method)
    if ctx.get_start_method() != "fork":
        _check_spawnable(func, ctx.get_start_method())
    n = len(tensor)
    src_shm = dst_shm = None
    procs, conns = [], []
    try:
        owned = _find_owned_segment(tensor)
        if owned is None:
            src_shm = _new_segment(tensor.nbytes)
            np.ndarray(tensor.shape, tensor.dtype, buffer=src_shm.buf)[...] = tensor
            src_spec = (src_shm.name, 0, tensor.shape, tensor.dtype.str)
        else:
            src_spec = (owned[0], owned[1], tensor.shape, tensor.dtype.str)
        dst_shm = _new_segment(out.nbytes)
        dst_spec = (dst_shm.name, 0, out.shape, out.dtype.str)

        tasks = ctx.SimpleQueue()
        ranges = _ranges(n - 1, chunks)
        for lo, hi in ranges:
            tasks.put((lo + 1, hi + 1))  # slice 0 was computed by the probe
        for _ in range(workers):
            tasks.put(None)
        for _ in range(workers):
            reader, writer = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_worker_main, args=(func, src_spec, dst_spec, tasks, writer),
                            daemon=True, name="lab-tensor-apply")
            p.start()
            writer.close()
            procs.append(p)
            conns.append(reader)

        remaining = len(ranges)
        live = dict(zip(conns, procs, strict=True))
        while remaining:
            sentinels = {p.sentinel: p for p in live.values()}
            ready = mp.connection.wait(list(live) + list(sentinels))
            for item in ready:
                if item in live:
                    try:
                        msg = item.recv()
                    except EOFError:
                        # The pipe closed: the worker is gone; its exit code decides.
                        proc = live.pop(item)
                        proc.join(TERMINATE_GRACE_S)
                        if proc.exitcode != 0:
                            raise _died(proc, remaining) from None
                        continue
                    if msg[0] == "done":
                        remaining -= 1
                    else:
                        _, exc, tb = msg
                        raise exc from _RemoteTraceback(tb)
                elif item in sentinels:
                    proc = sentinels[item]
                    if proc.exitcode not in (0, None):
                        raise _died(proc, remaining)
        out[1:] = np.ndarray(out.shape, out.dtype, buffer=dst_shm.buf)[1:]
    finally:
        _stop(procs)
        for c in conns:
            c.close()
        _release(src_shm, unlink=True)
        _release(dst_shm, unlink=True)


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
          chunks: int | None, client: Any) -> None:
    from dask.distributed import Client, LocalCluster

    own = client is None
    cluster = None
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
        for fut, (lo, hi) in zip(futures, ranges, strict=True):
            out[lo + 1:hi + 1] = fut.result()
    finally:
        if own:
            client.close()
            if cluster is not None:
                cluster.close()


# --------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------
def tensor_apply(func: Callable[[np.ndarray], Any], tensor: Any, *, backend: str = "shared_memory",
                 workers: int | None = None, chunks: int | None = None, client: Any = None,
                 start_method: str | None = None) -> np.ndarray:
    """Apply ``func`` to every slice ``tensor[i]`` and stack the results.

    Parameters
    ----------
    func : callable
        Takes one 2-D slice ``tensor[i]`` (read-only) and returns an array or
        a scalar. Every slice must give the same shape and dtype. For the
        ``spawn``/``forkserver`` start methods and for dask it must be
        picklable (defined at module level).
    tensor : ndarray of shape (n_items, rows, cols)
        The batch of matrices. Any numeric dtype except object.
    backend : {"shared_memory", "serial", "dask"}
        Where the work runs (see the module docstring).
    workers : int, optional
        Worker processes (default: the CPUs available to this process). For
        dask with no ``client``, the workers of the temporary LocalCluster.
    chunks : int, optional
        Index ranges the work is split into (default: 2 per worker).
    client : dask.distributed.Client, optional
        Cluster for the dask backend. If None, a temporary LocalCluster of
        processes is started and closed.
    start_method : {None, "fork", "spawn", "forkserver"}
        Multiprocessing start method of the shared-memory backend (None:
        Python's default for the platform).

    Returns
    -------
    ndarray of shape (n_items, *result_shape)
        ``out[i] = func(tensor[i])``, with the dtype of ``func(tensor[0])``.

    Raises
    ------
    ValueError
        If ``tensor`` is not 3-D, has object (or non-numeric) dtype or no
        slice; if results differ in shape or dtype between slices (naming the
        slice); if ``func`` cannot be pickled under spawn (saying why).
    WorkerDiedError
        If a worker process dies (e.g. SIGKILL, out of memory) before it
        finishes: an error, never a hang.
    Exception
        Whatever ``func`` raises, re-raised in the caller with a note naming
        the failing slice index; for the shared-memory backend its cause
        holds the worker's original traceback.

    Notes
    -----
    ``func(tensor[0])`` runs first in the calling process to learn the output
    shape; the rest is split into ``chunks`` contiguous ranges. Every backend
    calls ``func`` under ``threadpoolctl.threadpool_limits(1)`` so that
    parallel workers do not oversubscribe the CPUs and all backends give
    bit-identical results. The shared-memory backend copies ``tensor`` once
    into a shared segment (no copy when it was built with
    :func:`shared_array`); the output is written in place by the workers
    and copied out once at the end. Segments are named ``lab_<pid>_...`` and
    always unlinked.

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

    first = _probe(func, arr)
    out = np.empty((arr.shape[0], *first.shape), dtype=first.dtype)
    out[0] = first
    if arr.shape[0] == 1:
        return out
    if backend == "serial":
        _serial(func, arr, out)
    elif backend == "dask":
        _dask(func, arr, out, workers, chunks, client)
    else:
        n_workers = workers or len(os.sched_getaffinity(0))
        n_workers = min(n_workers, arr.shape[0] - 1)
        n_chunks = min(chunks or RANGES_PER_WORKER * n_workers, arr.shape[0] - 1)
        _shared_memory(func, arr, out, n_workers, n_chunks, start_method)
    return out
