"""lab._blas: the one-thread BLAS limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from threadpoolctl import threadpool_info

import lab._blas as blas

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_one_blas_thread_limits_and_gives_back():
    before = [lib["num_threads"] for lib in threadpool_info()]
    with blas.one_blas_thread():
        assert all(lib["num_threads"] == 1 for lib in threadpool_info())
    assert [lib["num_threads"] for lib in threadpool_info()] == before


def test_one_blas_thread_covers_a_library_loaded_after_an_earlier_use():
    # A fresh interpreter, so that scipy's own OpenBLAS is not loaded yet.
    code = textwrap.dedent("""
        import json

        import numpy
        from threadpoolctl import threadpool_info
        from lab._blas import one_blas_thread
        with one_blas_thread():
            pass
        import scipy.linalg  # loads scipy's own OpenBLAS
        threads = [lib["num_threads"] for lib in threadpool_info()]
        with one_blas_thread():
            pinned = [lib["num_threads"] for lib in threadpool_info()]
        print(json.dumps([threads, pinned]))
    """)
    env = {k: v for k, v in os.environ.items()
           if not k.endswith("_NUM_THREADS") and k != "OMP_THREAD_LIMIT"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True, timeout=120).stdout
    threads, pinned = json.loads(out)
    if len(threads) < 2 or max(threads) == 1:
        pytest.skip(f"needs two BLAS libraries with more than one thread, got {threads}")
    assert pinned == [1] * len(threads)
