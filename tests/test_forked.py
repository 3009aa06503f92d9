"""run_forked: tasks in forked children, each with its own time limit, peak memory and outcome."""

from __future__ import annotations

import os
import signal
import time

import numpy as np

from lab.forked import run_forked


def _refuse_to_load():
    raise RuntimeError("refused on purpose")


class _Unreadable:
    """Pickles in the child, and fails to unpickle in the parent."""

    def __reduce__(self):
        return (_refuse_to_load, ())


def _child_task(mode: str, arg: float = 0.0) -> dict:
    """A task for ``run_forked``: returns its process id, and does what ``mode`` says."""
    import os

    if mode == "sleep":
        time.sleep(arg)
    elif mode == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    elif mode == "raise":
        raise ValueError("on purpose")
    elif mode == "alloc":  # arg MB, touched
        block = np.ones(int(arg * 2**20) // 8)
        return {"pid": os.getpid(), "sum": float(block.sum())}
    elif mode == "big":  # a result of arg MB, far past a pipe's buffer
        return {"pid": os.getpid(), "x": np.arange(int(arg * 2**20) // 8, dtype=np.float64)}
    elif mode == "unpicklable":
        return {"pid": os.getpid(), "f": lambda: 0}
    elif mode == "unreadable":
        return {"pid": os.getpid(), "x": _Unreadable()}
    elif mode == "orphan":  # a process of the task keeps the pipe open; then the child dies
        if os.fork() == 0:
            time.sleep(arg)
            os._exit(0)
        os.kill(os.getpid(), signal.SIGKILL)
    elif mode == "draw":  # from numpy's global state, seeded first when arg
        if arg:
            np.random.seed(7)  # noqa: NPY002 - the legacy global state is what is tested
        return {"pid": os.getpid(), "x": float(np.random.random())}  # noqa: NPY002
    return {"pid": os.getpid()}


def test_tasks_run_in_one_child_each_with_its_own_limit():
    # three tasks of 0.6 s under a 1.5 s limit each: a limit on the whole job would stop the
    # third; a failure is a result and the child goes on
    out = run_forked(_child_task, [("sleep", 0.6), ("raise",), ("sleep", 0.6),
                                   ("sleep", 0.6), ("plain",)], 1.5)
    assert [s for s, _ in out] == ["ok", "failed", "ok", "ok", "ok"], out
    assert out[1][1] == "ValueError: on purpose"
    pids = {p["pid"] for s, p in out if s == "ok"}
    assert len(pids) == 1 and os.getpid() not in pids
    # a task past its limit, and one that kills its child: each is recorded, and a new child
    # runs the rest
    out = run_forked(_child_task, [("plain",), ("sleep", 30.0), ("plain",), ("die",),
                                   ("plain",), ("plain",)], 1.0)
    assert [s for s, _ in out] == ["ok", "timeout", "ok", "failed", "ok", "ok"], out
    assert out[1][1] == "timed out after 1 s"
    assert out[3][1] == "the task's process died from signal 9"
    first, second, third = out[0][1]["pid"], out[2][1]["pid"], out[4][1]["pid"]
    assert len({first, second, third}) == 3 and out[5][1]["pid"] == third


def test_a_child_reports_what_a_task_cannot_send_and_goes_on():
    out = run_forked(_child_task, [("unpicklable",), ("plain",), ("unreadable",), ("plain",),
                                   ("sleep", 30.0)], 1.0)
    assert [s for s, _ in out] == ["failed", "ok", "failed", "ok", "timeout"], out
    assert out[0][1].startswith("the task's result could not be pickled: ")
    assert out[2][1] == ("the task's result could not be read: "
                         "RuntimeError: refused on purpose")
    assert out[1][1]["pid"] == out[3][1]["pid"]  # the same child went on


def test_a_dead_child_is_found_while_its_task_holds_the_pipe_open():
    start = time.monotonic()
    out = run_forked(_child_task, [("orphan", 8.0), ("plain",)], 20.0)
    assert [s for s, _ in out] == ["failed", "ok"], out
    assert out[0][1] == "the task's process died from signal 9"
    assert time.monotonic() - start < 6.0  # found by polling, not at the pipe's end (8 s)


def test_each_task_in_a_child_starts_from_the_forked_random_state():
    # as in a child of its own: a task that seeds numpy's global state does not change what
    # the next one draws
    out = run_forked(_child_task, [("draw", 0), ("draw", 1), ("draw", 0)], 60)
    draws = [p["x"] for _, p in out]
    assert draws[0] == draws[2] != draws[1]
    assert len({p["pid"] for _, p in out}) == 1


def test_outcomes_are_passed_on_as_they_arrive():
    # so a caller can keep each task when it ends (Ctrl-C then keeps it)
    seen = []
    out = run_forked(_child_task, [("plain",), ("sleep", 1.5), ("plain",)], 60,
                     lambda k, outcome: seen.append((k, outcome[0], time.monotonic())))
    end = time.monotonic()
    assert [(k, s) for k, s, _ in seen] == [(0, "ok"), (1, "ok"), (2, "ok")]
    assert end - seen[0][2] > 1.2  # the first outcome came before the sleeping task ended
    assert [s for s, _ in out] == ["ok"] * 3


def test_results_larger_than_the_pipe_arrive_whole_and_in_order():
    out = run_forked(_child_task, [("big", 3.0), ("plain",), ("big", 0.5), ("big", 2.0)], 60)
    assert [s for s, _ in out] == ["ok"] * 4
    for (_, payload), mb in zip([out[0], out[2], out[3]], (3.0, 0.5, 2.0), strict=True):
        np.testing.assert_array_equal(payload["x"], np.arange(int(mb * 2**20) // 8))


def test_each_task_in_a_child_reports_its_own_peak_memory():
    out = run_forked(_child_task, [("alloc", 200.0), ("plain",), ("alloc", 50.0)], 60)
    peaks = [p["peak_mb"] for _, p in out]
    # the 200 MB of the first task are freed; the next ones start from there
    assert 190 < peaks[0] < 260, peaks
    assert peaks[1] < 20, peaks
    assert 45 < peaks[2] < 110, peaks


def test_results_that_are_not_dicts_come_back_as_they_are():
    out = run_forked(divmod, [(7, 2), (1, 0), (9, 4)], 10)
    assert [out[0], out[2]] == [("ok", (3, 1)), ("ok", (2, 1))]
    assert out[1][0] == "failed" and out[1][1].startswith("ZeroDivisionError: ")


_SET_UP = []


def _set_up_here():
    _SET_UP.append(os.getpid())


def _what_setup_did(die: bool = False) -> dict:
    if die:
        os.kill(os.getpid(), signal.SIGKILL)
    return {"setup": list(_SET_UP), "pid": os.getpid()}


def test_setup_runs_once_in_each_child_before_its_tasks():
    out = run_forked(_what_setup_did, [(), (), (True,), (), ()], 10, setup=_set_up_here)
    assert [s for s, _ in out] == ["ok", "ok", "failed", "ok", "ok"], out
    first, second = out[0][1]["pid"], out[3][1]["pid"]
    assert first != second  # a new child after the one that died
    for k, pid in ((0, first), (1, first), (3, second), (4, second)):
        assert out[k][1] == {"setup": [pid], "pid": pid, "peak_mb": out[k][1]["peak_mb"]}
    assert _SET_UP == []  # in the children only


def _refuse_to_set_up():
    raise OSError("no such thing")


def test_a_failed_setup_fails_each_task_of_its_child_with_its_error():
    out = run_forked(_what_setup_did, [(), ()], 10, setup=_refuse_to_set_up)
    assert out == [("failed", "the child's setup failed: OSError: no such thing")] * 2
