"""lab._blas: the cached threadpoolctl controller and the one-thread limit."""

from __future__ import annotations

import pytest
from threadpoolctl import threadpool_info

import lab._blas as blas


def test_threadpool_controller_is_cached_until_a_library_loads(monkeypatch):
    generation = [(1, 0)]
    monkeypatch.setattr(blas, "_library_generation", lambda: generation[0])
    monkeypatch.setattr(blas, "_CONTROLLER_CACHE", {})
    first = blas._threadpool_controller()
    assert blas._threadpool_controller() is first
    generation[0] = (2, 0)  # a shared object was loaded
    second = blas._threadpool_controller()
    assert second is not first and blas._threadpool_controller() is second
    generation[0] = None  # no counters (not glibc): nothing is cached
    assert blas._threadpool_controller() is not blas._threadpool_controller()


def test_library_generation_moves_when_a_library_loads():
    import ctypes
    import ctypes.util

    before = blas._library_generation()
    if before is None:
        pytest.skip("no glibc dl_iterate_phdr load counters here")
    with open("/proc/self/maps") as f:
        mapped = f.read()
    paths = [ctypes.util.find_library(n) for n in ("sqlite3", "expat", "gdbm", "bz2", "lzma")]
    new = next((p for p in paths if p and p.split(".so")[0] not in mapped), None)
    if new is None:
        pytest.skip("every candidate library is already loaded")
    assert blas._library_generation() == before  # nothing loaded in between
    ctypes.CDLL(new)
    after = blas._library_generation()
    assert after[0] > before[0] and after[1] >= before[1]


def test_one_blas_thread_limits_and_gives_back():
    before = [lib["num_threads"] for lib in threadpool_info()]
    with blas.one_blas_thread():
        assert all(lib["num_threads"] == 1 for lib in threadpool_info())
    assert [lib["num_threads"] for lib in threadpool_info()] == before
