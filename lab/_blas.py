"""BLAS and OpenMP thread limits, shared by the parallel code of the lab.

Parallel work (the worker processes of :mod:`lab.mp_utility`) runs BLAS with
one thread per worker, so that the workers do not oversubscribe the CPUs.
Finding the loaded libraries with threadpoolctl takes 1 to 2 ms, so the
controller is cached until a shared library is loaded or unloaded.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator
from typing import Any

# The cached ThreadpoolController and the key it was made for (see
# _threadpool_controller), and glibc's dl_iterate_phdr (False where unavailable).
_CONTROLLER_CACHE: dict[str, Any] = {}
_DL_ITERATE: Any = None


class _PhdrInfo(ctypes.Structure):
    """The head of glibc's ``struct dl_phdr_info`` (``<link.h>``)."""

    _fields_ = [
        ("dlpi_addr", ctypes.c_void_p),
        ("dlpi_name", ctypes.c_char_p),
        ("dlpi_phdr", ctypes.c_void_p),
        ("dlpi_phnum", ctypes.c_uint16),
        ("dlpi_adds", ctypes.c_ulonglong),
        ("dlpi_subs", ctypes.c_ulonglong),
    ]


_PHDR_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(_PhdrInfo), ctypes.c_size_t,
                                  ctypes.c_void_p)

def _library_generation() -> tuple[int, int] | None:
    """glibc's counts of shared objects loaded and unloaded so far, or None.

    Both only ever grow, so any ``dlopen`` or ``dlclose`` since an earlier
    call changes the pair. None where ``dl_iterate_phdr`` or the counters
    are missing (not glibc).
    """
    global _DL_ITERATE
    if _DL_ITERATE is None:
        try:
            _DL_ITERATE = ctypes.CDLL(None).dl_iterate_phdr
        except (OSError, AttributeError):
            _DL_ITERATE = False
    if not _DL_ITERATE:
        return None
    found: list[tuple[int, int]] = []

    def first(info: Any, size: int, _data: Any) -> int:
        if size >= _PhdrInfo.dlpi_subs.offset + ctypes.sizeof(ctypes.c_ulonglong):
            found.append((info.contents.dlpi_adds, info.contents.dlpi_subs))
        return 1  # stop: every entry carries the same counters

    _DL_ITERATE(_PHDR_CALLBACK(first), None)
    return found[0] if found else None


def _threadpool_controller() -> Any:
    """threadpoolctl's view of the loaded BLAS/OpenMP libraries, cached per process.

    Finding the libraries takes 1 to 2 ms, paid on every call otherwise; the
    cache is dropped when the process forks or loads or unloads a shared
    object (glibc's load and unload counters), since a new library may bring
    its own thread pool. Without those counters nothing is cached.
    """
    from threadpoolctl import ThreadpoolController

    key = (os.getpid(), _library_generation())
    if key[1] is None or _CONTROLLER_CACHE.get("key") != key:
        _CONTROLLER_CACHE.update(key=key, controller=ThreadpoolController())
    return _CONTROLLER_CACHE["controller"]


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS and OpenMP limited to one thread in this process while the block runs.

    The limit is process-wide: threads started inside the block, and
    processes forked inside it, run BLAS with one thread (forked workers
    start pinned and need not set anything). Nothing is set when every
    library already runs one thread: setting a thread count after a fork
    makes OpenBLAS start its thread pool again. The setting is given back
    on leaving the block.
    """
    controller = _threadpool_controller()
    if all(lib["num_threads"] == 1 for lib in controller.info()):
        yield
        return
    with controller.limit(limits=1):
        yield
