"""Run functions in forked child processes, each task with its own time limit and its peak
memory: :func:`run_forked`, the engine under :func:`lab.benchmark.run_benchmark`'s tasks.

A task that hangs, or kills its process (a segfault in a compiled kernel, the kernel's
out-of-memory killer), is recorded as such, and the tasks after it still run. Results come
back through a pipe as length-prefixed pickles, read from a child only this process holds.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import pickle
import random
import select
import signal
import struct
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["run_forked"]


def _rss_kb() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    return 0


def _reset_peak() -> bool:
    """Set this process's peak resident memory (``VmHWM``) back to its resident memory now."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _peak_kb() -> int:
    """This process's peak resident memory in kB (``VmHWM``, else ``ru_maxrss``)."""
    import resource

    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_forked(fn: Callable[..., Any], arglist: Sequence[tuple], timeout: float,
               done: Callable[[int, tuple[str, Any]], None] | None = None, *,
               setup: Callable[[], None] | None = None) -> list[tuple[str, Any]]:
    """Run ``fn(*args)`` for each ``args`` of ``arglist`` in forked children, each task with
    its own time limit.

    One child runs the tasks one after the other. A task past its limit, or one that kills
    the child, is recorded, and a new child runs the rest. Forking (not spawning) is the
    point: the children inherit what this process imported and compiled. What does not
    survive a fork must not have started here: TensorFlow may be imported but must not have
    run an op (its thread pools), and a BLAS or OpenMP library that runs a thread team here
    should be limited to one thread in the child by ``setup``.

    Parameters
    ----------
    fn : callable
        Run in the child; its result is pickled back.
    arglist : sequence of tuple
        The arguments of each task.
    timeout : float
        Seconds each task may run, counted from the previous task's result, or from the fork
        for a child's first task (its ``setup`` included).
    done : callable, optional
        ``done(k, outcome)`` for task ``k`` as soon as its outcome is known, so a caller can
        keep finished tasks when it is interrupted.
    setup : callable, optional
        Run once in each child before its tasks (for example, to limit thread pools). If it
        raises, every task of that child fails with its error.

    Returns
    -------
    list of (str, object)
        Per task, in order: ``("ok", result)``, ``("failed", reason)`` or ``("timeout",
        reason)``. A failure's reason is the exception's type and message; or that the child
        died from a signal or exited without a result (a task that called ``sys.exit``);
        that the result could not be pickled in the child or read here; or that ``setup``
        failed. A result that is a dict gains ``"peak_mb"``: the task's peak resident memory
        above the child's at its start, in MB (NaN for all but each child's first task where
        Linux refuses to reset the peak; memory the allocator kept from an earlier task of
        the same child is reused and not counted).

    Notes
    -----
    Each task starts from the random states (``random`` and numpy's global one) the child
    had after ``setup``, as it would in a child of its own. The child's output goes to
    /dev/null.

    Examples
    --------
    >>> run_forked(divmod, [(7, 2), (1, 0)], timeout=10)
    [('ok', (3, 1)), ('failed', 'ZeroDivisionError: ...')]
    """
    outcomes: list[tuple[str, Any]] = []

    def _one(outcome: tuple[str, Any]) -> None:
        if done is not None:
            done(len(outcomes), outcome)
        outcomes.append(outcome)

    while len(outcomes) < len(arglist):
        _child_run(fn, arglist[len(outcomes):], timeout, _one, setup)
    return outcomes


# The length of each result a child writes to its pipe, before the pickled result.
_FRAME = struct.Struct("<Q")
# How often the parent looks whether its child has died while the pipe stays open (a process
# the task started may hold its end).
_REAP_S = 1.0


def _child_main(fn, arglist: Sequence[tuple], w: int,
                setup) -> None:  # pragma: no cover - in the child
    """The child of :func:`_child_run`: each task's outcome, framed, on the pipe ``w``."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    if setup is not None:
        try:
            setup()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - the tasks' result
            reason = f"the child's setup failed: {type(exc).__name__}: {exc}"[:2000]
            for _ in arglist:
                _send(w, ("failed", reason))
            return
    # Each task starts from the global random states the child was forked with, as it would
    # in a child of its own (a seeded Keras detector reseeds numpy's and Python's). numpy's
    # legacy global state is the one a detector without a seed draws from.
    states = random.getstate(), np.random.get_state()  # noqa: NPY002
    for k, args in enumerate(arglist):
        random.setstate(states[0])
        np.random.set_state(states[1])  # noqa: NPY002
        # the peak of each task: where Linux cannot reset it, only the first one's is known
        exact = _reset_peak() or k == 0
        start = _rss_kb()
        try:
            out = ("ok", fn(*args))
            if isinstance(out[1], dict):
                out[1]["peak_mb"] = max(_peak_kb() - start, 0) / 1024.0 if exact else math.nan
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - every failure is a result
            out = ("failed", f"{type(exc).__name__}: {exc}"[:2000])
        _send(w, out)


def _send(w: int, out: tuple[str, Any]) -> None:  # pragma: no cover - in the child
    """Write one outcome, framed, on the pipe ``w``."""
    try:
        data = pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001
        data = pickle.dumps(("failed", f"the task's result could not be pickled: "
                                       f"{type(exc).__name__}: {exc}"[:2000]))
    os.write(w, _FRAME.pack(len(data)))
    view = memoryview(data)
    while view:
        view = view[os.write(w, view):]


def _child_run(fn, arglist: Sequence[tuple], timeout: float, done, setup) -> None:
    """Fork one child that runs ``fn(*args)`` for each ``args`` in turn; ``done(outcome)``
    for each, until the first task that times out or kills the child (recorded as such).

    One child for many tasks (the leaderboard's tasks of a series) rather than one per task:
    the fork of a worker of 700 MB with TensorFlow imported, and a child's first writes to
    the pages it shares with that worker, cost about 100 ms of CPU (an Isolation Forest on
    3,000 rows took 0.78 s in a fresh child against 0.50 s in a process that had run one).
    """
    r, w = os.pipe()
    # The child's garbage collector leaves this process's objects alone: a full collection
    # there walked all of them (TensorFlow's too), writing to every page of the heap, which
    # the fork then copied. This process gets them back at once.
    pid = -1
    gc.freeze()
    try:
        with warnings.catch_warnings():
            # a dask worker or a kernel has threads; the child only computes and exits
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except BaseException:
        os.close(r)
        os.close(w)
        raise
    finally:
        if pid != 0:
            gc.unfreeze()
    if pid == 0:  # pragma: no cover - the child, measured through its results
        code = 0
        try:
            os.close(r)
            _child_main(fn, arglist, w, setup)
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    count = 0
    buffer = bytearray()
    deadline = time.monotonic() + timeout
    wstatus = None  # set once the child is reaped
    try:
        while count < len(arglist):
            left = deadline - time.monotonic()
            if left <= 0 and wstatus is None:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                wstatus = 0
                done(("timeout", f"timed out after {timeout:g} s"))
                return
            # once the child is reaped, only what it wrote before it died is left to read
            ready, _, _ = select.select([r], [], [],
                                        0.0 if wstatus is not None else min(left, _REAP_S))
            if not ready:
                if wstatus is not None:
                    break
                reaped, status = os.waitpid(pid, os.WNOHANG)
                if reaped:
                    wstatus = status
                continue
            chunk = os.read(r, 1 << 20)
            if not chunk:
                break
            buffer += chunk
            while len(buffer) >= _FRAME.size:
                (size,) = _FRAME.unpack_from(buffer)
                if len(buffer) < _FRAME.size + size:
                    break
                try:
                    # our own child's answer, read from a pipe only it and this process hold
                    outcome = pickle.loads(buffer[_FRAME.size:_FRAME.size + size])  # noqa: S301
                except Exception as exc:  # noqa: BLE001 - one task's result, not the job's
                    outcome = ("failed", f"the task's result could not be read: "
                                         f"{type(exc).__name__}: {exc}"[:2000])
                done(outcome)
                count += 1
                del buffer[:_FRAME.size + size]
                deadline = time.monotonic() + timeout  # the next task starts now
    except BaseException:
        if wstatus is None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        raise
    finally:
        os.close(r)
    if wstatus is None:
        _, wstatus = os.waitpid(pid, 0)
    if count < len(arglist):
        if os.WIFSIGNALED(wstatus):
            reason = f"the task's process died from signal {os.WTERMSIG(wstatus)}"
        else:
            reason = f"the task's process exited {os.waitstatus_to_exitcode(wstatus)} " \
                     "without a result"
        done(("failed", reason))
