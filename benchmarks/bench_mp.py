"""tensor_apply against a serial loop, joblib (loky, memmapping) and dask threads.

The work: singular values of every 64 x 64 slice of a (2000, 64, 64) float64
tensor (``np.linalg.svd(m, compute_uv=False)``), the issue's benchmark. All
parallel runs use the same number of workers (default: the CPUs available)
and BLAS limited to one thread per worker, so the figure is the gain from
processes, not from BLAS threads; the serial loop runs with one BLAS thread
too. Times are best of ``--repeat`` runs, alternated, in one process. Every
result is checked bit for bit against the serial loop.

Extra memory of tensor_apply (beyond input and output) is measured with
tracemalloc, which sees every numpy allocation: in the caller (peak during
the call, minus the returned output) and in each worker (its peak, written
to a file per process by a traced wrapper of the same function, run
separately from the timings). The shared-memory segments are not Python
allocations and are accounted for separately: the output segment is the
output, and the input segment is one copy of the tensor unless the tensor
was built with ``lab.mp_utility.shared_array``, which the table shows as a
second row.

    .venv/bin/python benchmarks/bench_mp.py [--repeat 3] [--workers N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from lab.mp_utility import shared_array, tensor_apply

SHAPE = (2000, 64, 64)
_TRACE_DIR = os.environ.get("LAB_BENCH_TRACE_DIR", "")


def singular_values(m: np.ndarray) -> np.ndarray:
    return np.linalg.svd(m, compute_uv=False)


def traced_singular_values(m: np.ndarray) -> np.ndarray:
    """singular_values, recording this process's tracemalloc peak in a file."""
    if not tracemalloc.is_tracing():
        tracemalloc.start()
    out = singular_values(m)
    peak = tracemalloc.get_traced_memory()[1]
    path = Path(_TRACE_DIR) / str(os.getpid())
    if not path.exists() or int(path.read_text()) < peak:
        path.write_text(str(peak))
    return out


def _range_svd(tensor: np.ndarray, lo: int, hi: int) -> np.ndarray:
    with threadpool_limits(limits=1):
        return np.stack([singular_values(m) for m in tensor[lo:hi]])


def _block_svd(block: np.ndarray) -> np.ndarray:
    return np.stack([singular_values(m) for m in block])


def serial(tensor: np.ndarray) -> np.ndarray:
    with threadpool_limits(limits=1):
        return np.stack([singular_values(m) for m in tensor])


def joblib_loky(tensor: np.ndarray, workers: int) -> np.ndarray:
    from joblib import Parallel, delayed

    edges = np.linspace(0, len(tensor), 2 * workers + 1).astype(int)
    # The whole tensor is one argument above max_nbytes: joblib memmaps it
    # once and the workers read their ranges from the memmap.
    parts = Parallel(n_jobs=workers, backend="loky", max_nbytes="1M")(
        delayed(_range_svd)(tensor, lo, hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True))
    return np.concatenate(parts)


def dask_threads(tensor: np.ndarray, workers: int) -> np.ndarray:
    import dask.array as da

    arr = da.from_array(tensor, chunks=(len(tensor) // (2 * workers), *tensor.shape[1:]))
    out = arr.map_blocks(_block_svd, drop_axis=2, chunks=(arr.chunks[0], (tensor.shape[1],)),
                         dtype=np.float64)
    with threadpool_limits(limits=1):
        return out.compute(scheduler="threads", num_workers=workers)


def extra_memory(tensor: np.ndarray, workers: int) -> tuple[int, int]:
    """(caller peak beyond the output, sum of worker peaks) in bytes, tracemalloc."""
    global _TRACE_DIR
    with tempfile.TemporaryDirectory() as tmp:
        _TRACE_DIR = os.environ["LAB_BENCH_TRACE_DIR"] = tmp
        tracemalloc.start()
        out = tensor_apply(traced_singular_values, tensor, workers=workers, start_method="fork")
        caller = tracemalloc.get_traced_memory()[1] - out.nbytes
        tracemalloc.stop()
        peaks = [int(p.read_text()) for p in Path(tmp).iterdir() if p.name != str(os.getpid())]
    return max(caller, 0), sum(peaks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--quick", action="store_true", help="500 slices, one repeat")
    args = ap.parse_args()
    n_items = 500 if args.quick else SHAPE[0]
    repeat = 1 if args.quick else args.repeat
    w = args.workers
    tensor = np.random.default_rng(0).normal(size=(n_items, *SHAPE[1:]))
    expected = serial(tensor)

    runs = {
        "serial loop (1 BLAS thread)": lambda: serial(tensor),
        f"tensor_apply shared_memory, fork, {w} workers":
            lambda: tensor_apply(singular_values, tensor, workers=w, start_method="fork"),
        f"tensor_apply shared_memory, spawn, {w} workers":
            lambda: tensor_apply(singular_values, tensor, workers=w, start_method="spawn"),
        f"joblib loky + memmapping, {w} workers": lambda: joblib_loky(tensor, w),
        f"dask threads, {w} workers": lambda: dask_threads(tensor, w),
    }
    for name, fn in runs.items():  # warm-up and bit-for-bit check
        assert np.array_equal(fn(), expected), name
    best = dict.fromkeys(runs, np.inf)
    for _ in range(repeat):  # alternate, so all see the same load
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)

    ref = best["serial loop (1 BLAS thread)"]
    fork = best[f"tensor_apply shared_memory, fork, {w} workers"]
    print(f"tensor_apply, per-slice singular values of a {tensor.shape} float64 tensor "
          f"({tensor.nbytes / 1e6:.0f} MB), {w} workers, {os.cpu_count()} CPUs")
    print()
    print("| implementation | seconds | speed-up vs serial | tensor_apply (fork) vs it |")
    print("|---|---|---|---|")
    for name, t in best.items():
        print(f"| {name} | {t:.3f} | {ref / t:.2f}x | {t / fork:.2f}x |")

    print()
    print("| extra memory of tensor_apply (fork) | caller | workers (sum) | "
          "input copy in shared memory | total / tensor size |")
    print("|---|---|---|---|---|")
    caller, workers_peak = extra_memory(tensor, w)
    mb = 1e6
    print(f"| ndarray input | {caller / mb:.2f} MB | {workers_peak / mb:.2f} MB | "
          f"{tensor.nbytes / mb:.0f} MB (1 copy) | "
          f"{(caller + workers_peak) / tensor.nbytes:.3f} + 1.000 (copy) |")
    with shared_array(tensor.shape) as shared:
        shared[:] = tensor
        caller, workers_peak = extra_memory(shared, w)
    print(f"| shared_array input | {caller / mb:.2f} MB | {workers_peak / mb:.2f} MB | 0 MB | "
          f"{(caller + workers_peak) / tensor.nbytes:.3f} |")


if __name__ == "__main__":
    main()
