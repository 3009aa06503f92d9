"""tensor_apply against a serial loop, an ideal split, joblib (loky) and dask threads.

The work: singular values of every 64 x 64 slice of a (2000, 64, 64) float64
tensor (``np.linalg.svd(m, compute_uv=False)``), the issue's benchmark. All
parallel runs use the same number of workers and BLAS limited to one thread
per worker, so the figure is the gain from processes, not from BLAS threads;
the serial loop runs with one BLAS thread too. Times are the best (and the
median) of ``--repeat`` rounds, alternated, in one process. Every result is
checked bit for bit against the serial loop.

Rows: the serial loop; "ideal split", the tensor cut into ``--workers``
equal contiguous parts, one computed by this process and the others by bare
``os.fork`` children, into a shared output (tensor_apply's arrangement with
no probe, no scheduling and no messages: the ceiling for an equal split on
this hardware); tensor_apply (shared_memory backend) under fork and spawn, with an
ordinary ndarray and with a ``shared_array`` input; joblib (loky, the tensor
memmapped once); dask threads (skipped, with a note, where dask is not
installed).

Every implementation runs BLAS with one thread per process, so by default
this process starts with ``OPENBLAS_NUM_THREADS=1`` (and the OpenMP and MKL
equivalents): each row then finds BLAS already pinned and no row is slowed
by another's thread pool. Otherwise (``--default-blas``) each row limits
BLAS itself and gives the default back afterwards; after any fork in this
process, giving it back makes OpenBLAS start its pool again, whose threads
spin for about 0.1 s and steal CPU from whatever row comes next.

``--cpus N`` pins this process, and so every worker it starts, to the first
N CPUs that are distinct physical cores (one hyperthread per core, read from
``/sys/devices/system/cpu/cpu*/topology/thread_siblings_list``), with
``os.sched_setaffinity``. ``--workers`` defaults to the CPUs then available.

Extra memory of tensor_apply is measured in separate calls from the timings
(the median of three calls):
a thread samples, every few milliseconds, the proportional set size (PSS,
``/proc/PID/smaps_rollup``) of this process and of all its child processes.
PSS splits each shared page among the processes that map it, so the sum is
the physical memory the group uses, with the inherited input, the shared
output and any shared-memory segment counted once. Extra memory is the peak
of that sum minus the sum just before the call (which holds the input)
minus the output. Parts are shown too: the caller's peak growth of its
unique set size (USS, pages no other process maps; minus the output), the
peak USS sum of the workers (their private memory, including the output
pages they wrote), and the peak growth of this process's ``lab_<pid>_*``
segments in /dev/shm (inside the PSS sum too, when mapped). Linux only.

    .venv/bin/python benchmarks/bench_mp.py [--cpus 2] [--workers N] [--repeat 5]
        [--no-spawn] [--default-blas] [--quick]
"""

from __future__ import annotations

import os
import sys

#: Environment that starts BLAS/OpenMP with one thread (see --default-blas).
ONE_THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# Before numpy is imported: OpenBLAS reads it once, when it loads.
if __name__ == "__main__" and "--default-blas" not in sys.argv:
    os.environ.update(dict.fromkeys(ONE_THREAD_ENV, "1"))

import argparse  # noqa: E402
import mmap  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from lab.mp_utility import SHM_PREFIX, shared_array, tensor_apply  # noqa: E402

SHAPE = (2000, 64, 64)
#: Seconds between two memory samples.
SAMPLE_S = 0.003
#: Seconds between two scans of /proc for new child processes.
SCAN_S = 0.02
#: Calls measured for memory, per row (the median is shown).
MEMORY_CALLS = 3
SERIAL = "serial loop (1 BLAS thread)"


def singular_values(m: np.ndarray) -> np.ndarray:
    return np.linalg.svd(m, compute_uv=False)


def _range_svd(tensor: np.ndarray, lo: int, hi: int) -> np.ndarray:
    with threadpool_limits(limits=1):
        return np.stack([singular_values(m) for m in tensor[lo:hi]])


def _block_svd(block: np.ndarray) -> np.ndarray:
    return np.stack([singular_values(m) for m in block])


def _edges(n: int, parts: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, n, parts + 1).round().astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))


def serial(tensor: np.ndarray) -> np.ndarray:
    with threadpool_limits(limits=1):
        return np.stack([singular_values(m) for m in tensor])


def ideal_split(tensor: np.ndarray, workers: int) -> np.ndarray:
    """Equal contiguous parts: the last in this process, the others in bare forked children."""
    out = np.ndarray((len(tensor), tensor.shape[2]), dtype=np.float64,
                     buffer=mmap.mmap(-1, len(tensor) * tensor.shape[2] * 8))
    pids = []
    *parts, (last_lo, last_hi) = _edges(len(tensor), workers)
    with threadpool_limits(limits=1):
        for lo, hi in parts:
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    out[lo:hi] = np.stack([singular_values(m) for m in tensor[lo:hi]])
                    code = 0
                finally:
                    os._exit(code)
            pids.append(pid)
        out[last_lo:last_hi] = np.stack([singular_values(m) for m in tensor[last_lo:last_hi]])
        codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    assert codes == [0] * len(pids), codes
    return out


def joblib_loky(tensor: np.ndarray, workers: int) -> np.ndarray:
    from joblib import Parallel, delayed

    # The whole tensor is one argument above max_nbytes: joblib memmaps it
    # once and the workers read their ranges from the memmap.
    parts = Parallel(n_jobs=workers, backend="loky", max_nbytes="1M")(
        delayed(_range_svd)(tensor, lo, hi) for lo, hi in _edges(len(tensor), 2 * workers))
    return np.concatenate(parts)


def dask_threads(tensor: np.ndarray, workers: int) -> np.ndarray:
    import dask.array as da

    arr = da.from_array(tensor, chunks=(len(tensor) // (2 * workers), *tensor.shape[1:]))
    out = arr.map_blocks(_block_svd, drop_axis=2, chunks=(arr.chunks[0], (tensor.shape[1],)),
                         dtype=np.float64)
    with threadpool_limits(limits=1):
        return out.compute(scheduler="threads", num_workers=workers)


# --------------------------------------------------------------------------
# CPU pinning
# --------------------------------------------------------------------------
def _parse_cpu_list(text: str) -> set[int]:
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if part:
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def physical_cores(allowed: set[int]) -> list[int]:
    """One CPU per physical core among ``allowed``: the lowest-numbered of its siblings."""
    chosen, seen = [], set()
    for cpu in sorted(allowed):
        path = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        siblings = frozenset(_parse_cpu_list(path.read_text())) if path.exists() else {cpu}
        if siblings not in seen:
            seen.add(siblings)
            chosen.append(cpu)
    return chosen


def pin(n_cpus: int | None) -> str:
    allowed = os.sched_getaffinity(0)
    cores = physical_cores(allowed)
    if n_cpus is None:
        return (f"not pinned: {len(allowed)} CPUs available ({len(cores)} distinct "
                "physical cores)")
    if n_cpus > len(cores):
        raise SystemExit(f"--cpus {n_cpus}: only {len(cores)} distinct physical cores are "
                         f"available ({cores} of CPUs {sorted(allowed)})")
    os.sched_setaffinity(0, cores[:n_cpus])
    return f"pinned to CPUs {cores[:n_cpus]} (distinct physical cores)"


# --------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------
def _pss_uss(pid: int) -> tuple[int, int]:
    """(PSS, USS) of ``pid`` in bytes, (0, 0) if it is gone.

    USS is the memory only this process maps (private clean and dirty pages).
    """
    pss = uss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    pss = int(line.split()[1]) * 1024
                elif line.startswith((b"Private_Clean:", b"Private_Dirty:")):
                    uss += int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return pss, uss


def _children(pid: int) -> set[int]:
    """Every descendant of ``pid`` (one scan of /proc)."""
    parent_of = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes()
            except OSError:
                continue
            # The name field may hold spaces; fields after its ")" are safe.
            parent_of[int(entry)] = int(stat.rsplit(b")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parent_of.items() if pp in frontier} - found
        found |= frontier
    return found


def _dev_shm_bytes() -> int:
    total = 0
    prefix = f"{SHM_PREFIX}{os.getpid()}_"
    for entry in os.scandir("/dev/shm"):
        if entry.name.startswith(prefix):
            try:
                total += entry.stat().st_blocks * 512
            except FileNotFoundError:
                pass
    return total


class MemorySampler:
    """Peaks, while running, of the memory of this process and of its descendants.

    ``total``: PSS of this process and all its descendants (physical memory
    of the group); ``me``: USS of this process; ``workers``: USS sum of the
    descendants started after ``__init__``; ``shm``: bytes in this process's
    /dev/shm segments.
    """

    def __init__(self) -> None:
        self.me = os.getpid()
        self.helpers = _children(self.me)  # e.g. a resource tracker started earlier
        self.base_total, self.base_me = _pss_uss(self.me)
        self.base_total += sum(_pss_uss(p)[0] for p in self.helpers)
        self.base_shm = _dev_shm_bytes()
        self.peak = dict.fromkeys(("total", "me", "workers", "shm"), 0)
        self._previous: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self, pids: set[int]) -> None:
        me_pss, me_uss = _pss_uss(self.me)
        workers = [_pss_uss(p) for p in pids - self.helpers]
        sample = {
            "total": me_pss + sum(p for p, _ in workers)
            + sum(_pss_uss(p)[0] for p in pids & self.helpers),
            "me": me_uss,
            "workers": sum(u for _, u in workers),
            "shm": _dev_shm_bytes(),
        }
        # The reads of one sample are not atomic: a process that starts or
        # ends between them changes the shares of the pages it maps, and the
        # sum may count those twice for that one sample. A level held over
        # two consecutive samples is a real one.
        previous, self._previous = self._previous, sample
        for key, value in sample.items():
            self.peak[key] = max(self.peak[key], min(value, previous.get(key, value)))

    def _run(self) -> None:
        pids, last_scan = set(), 0.0
        while not self._stop.is_set():
            if time.monotonic() - last_scan > SCAN_S:
                pids, last_scan = _children(self.me), time.monotonic()
            self._sample(pids)
            self._stop.wait(SAMPLE_S)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def extra_memory(run: Callable[[], np.ndarray]) -> dict[str, float]:
    """Peak memory of ``run()`` in bytes beyond the memory before it and its output."""
    with MemorySampler() as s:
        out = run()
    return {
        "caller": max(s.peak["me"] - s.base_me - out.nbytes, 0),
        "workers": s.peak["workers"],
        "shm": max(s.peak["shm"] - s.base_shm, 0),
        "total": max(s.peak["total"] - s.base_total - out.nbytes, 0),
    }


# --------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpus", type=int, default=None,
                    help="pin to the first N distinct physical cores (default: all CPUs)")
    ap.add_argument("--workers", type=int, default=None,
                    help="worker processes (default: the CPUs available after pinning)")
    ap.add_argument("--repeat", type=int, default=5, help="rounds; best and median are shown")
    ap.add_argument("--no-spawn", action="store_true", help="skip the spawn rows (slow)")
    ap.add_argument("--quick", action="store_true", help="500 slices, two rounds")
    ap.add_argument("--default-blas", action="store_true",
                    help="keep the BLAS libraries' default thread count in this process "
                         "(by default it starts with one: see the module docstring)")
    args = ap.parse_args()
    pinning = pin(args.cpus)
    w = args.workers or len(os.sched_getaffinity(0))
    n_items = 500 if args.quick else SHAPE[0]
    repeat = 2 if args.quick else args.repeat
    tensor = np.random.default_rng(0).normal(size=(n_items, *SHAPE[1:]))
    expected = serial(tensor)

    notes = []
    with shared_array(tensor.shape) as shared:
        shared[:] = tensor
        runs: dict[str, Callable[[], np.ndarray]] = {
            SERIAL: lambda: serial(tensor),
            f"ideal split: caller + {w - 1} bare forked process(es), no IPC":
                lambda: ideal_split(tensor, w),
            f"tensor_apply fork, ndarray, {w} workers":
                lambda: tensor_apply(singular_values, tensor, workers=w, start_method="fork"),
            f"tensor_apply fork, shared_array, {w} workers":
                lambda: tensor_apply(singular_values, shared, workers=w, start_method="fork"),
        }
        if not args.no_spawn:
            runs[f"tensor_apply spawn, ndarray, {w} workers"] = lambda: tensor_apply(
                singular_values, tensor, workers=w, start_method="spawn")
            runs[f"tensor_apply spawn, shared_array, {w} workers"] = lambda: tensor_apply(
                singular_values, shared, workers=w, start_method="spawn")
        try:
            import joblib  # noqa: F401

            runs[f"joblib loky + memmapping, {w} workers"] = lambda: joblib_loky(tensor, w)
        except ImportError:
            notes.append("joblib row skipped: joblib is not installed")
        try:
            import dask.array  # noqa: F401

            runs[f"dask threads, {w} workers"] = lambda: dask_threads(tensor, w)
        except ImportError:
            notes.append("dask row skipped: dask is not installed")

        for name, fn in runs.items():  # warm-up and bit-for-bit check
            assert np.array_equal(fn(), expected), name
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(repeat):  # alternate, so all see the same load
            for name, fn in runs.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)

        # Median of a few calls: the sampler can miss or catch a short peak.
        memory = {
            name: {key: float(np.median([m[key] for m in samples])) for key in samples[0]}
            for name, fn in runs.items() if name.startswith("tensor_apply")
            for samples in [[extra_memory(fn) for _ in range(MEMORY_CALLS)]]
        }

    best = {name: min(t) for name, t in times.items()}
    ref = best[SERIAL]
    fork = best[f"tensor_apply fork, ndarray, {w} workers"]
    print(f"tensor_apply, per-slice singular values of a {tensor.shape} float64 tensor "
          f"({tensor.nbytes / 1e6:.0f} MB), {w} workers; {pinning}; "
          f"{'default BLAS threads' if args.default_blas else 'BLAS started with 1 thread'}; "
          f"best and median of {repeat} rounds; load average {os.getloadavg()[0]:.1f} at "
          "the end")
    print()
    print("| implementation | best s | median s | speed-up vs serial | "
          "tensor_apply (fork) vs it |")
    print("|---|---|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {best[name]:.3f} | {np.median(t):.3f} | {ref / best[name]:.2f}x | "
              f"{best[name] / fork:.2f}x |")
    for note in notes:
        print(f"\n{note}")

    mb = 1e6
    print()
    print("| extra memory beyond input and output | caller (USS) | workers (USS sum) | "
          "/dev/shm peak | total (PSS sum) | total / tensor size |")
    print("|---|---|---|---|---|---|")
    for name, m in memory.items():
        print(f"| {name} | {m['caller'] / mb:.1f} MB | {m['workers'] / mb:.1f} MB | "
              f"{m['shm'] / mb:.1f} MB | {m['total'] / mb:.1f} MB | "
              f"{m['total'] / tensor.nbytes:.3f} |")

if __name__ == "__main__":
    main()
