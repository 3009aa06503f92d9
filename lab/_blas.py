"""BLAS and OpenMP thread limits, shared by the parallel code of the lab.

Parallel work (the worker processes of :mod:`lab.mp_utility`) runs BLAS with
one thread per worker, so that the workers do not oversubscribe the CPUs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS and OpenMP limited to one thread in this process while the block runs.

    The limit is process-wide: threads started inside the block, and
    processes forked inside it, run BLAS with one thread (forked workers
    start pinned and need not set anything). Nothing is set when every
    library already runs one thread: setting a thread count after a fork
    makes OpenBLAS start its thread pool again. The setting is given back
    on leaving the block.

    The loaded libraries are looked up on every entry (about 1 ms), not
    cached: that is under 1% of the benchmarked ``tensor_apply`` call
    (0.22 s, README), and a cache would miss a BLAS library loaded after it
    was made (e.g. by a later ``import scipy.linalg``).
    """
    controller = threaded_libraries()
    if controller is None:
        yield
        return
    with controller.limit(limits=1):
        yield


def threaded_libraries():
    """This process's BLAS and OpenMP libraries when one runs more than one thread, else None.

    Returns
    -------
    threadpoolctl.ThreadpoolController or None
        The controller of every loaded library (``.limit(limits=1)`` pins
        them), or None when each one already runs a single thread.

    Examples
    --------
    >>> c = threaded_libraries()
    >>> c is None or any(lib["num_threads"] > 1 for lib in c.info())
    True
    """
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    if all(lib["num_threads"] == 1 for lib in controller.info()):
        return None
    return controller
