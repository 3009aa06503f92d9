"""Side-by-side timings for notebooks: :func:`compare_timings`.

Speed claims in the lab are ratios against a reference run in the same
process, on the same data, at the same time, because absolute seconds on a
shared machine mean little. The calls are interleaved (every candidate once,
then every candidate again, ...) so that a slow spell of the machine hits all
of them alike, and the best of the repeats is kept, as :mod:`timeit` advises.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from lab._validation import _check_int

__all__ = ["compare_timings"]

#: The clock; tests replace it with a fake one.
_clock = time.perf_counter
#: Floor of a measured time, so that a ratio is never a division by zero.
_MIN_SECONDS = time.get_clock_info("perf_counter").resolution


def compare_timings(
    funcs: Mapping[str, Callable[[], Any]],
    repeat: int = 3,
    reference: str | None = None,
    *,
    number: int = 1,
) -> pd.DataFrame:
    """Time a few zero-argument callables side by side, relative to a reference.

    Parameters
    ----------
    funcs : mapping of name -> callable
        The candidates, each called with no arguments (wrap arguments in a
        ``lambda`` or ``functools.partial``). The mapping's order is the order
        of the calls within a round and of the result's rows.
    repeat : int, default 3
        Rounds; each candidate's time is its best round.
    reference : str, optional
        The name the ratios are relative to; by default the first one.
    number : int, default 1
        Calls per measurement; the time is per call. Raise it for calls that
        take well under a millisecond.

    Returns
    -------
    DataFrame
        Indexed by name (``name``), with ``seconds`` (best time per call),
        ``relative`` (``seconds / reference seconds``: below 1 is faster) and
        ``speedup`` (``reference seconds / seconds``: above 1 is faster). The
        reference row has 1.0 in both.

    Raises
    ------
    ValueError
        If ``funcs`` is empty or holds something that is not callable,
        ``repeat`` or ``number`` is below 1, or ``reference`` is not a key.

    Notes
    -----
    Best-of-``repeat`` follows the advice of the standard library's
    :mod:`timeit` ("the lowest value gives a lower bound for how fast your
    machine can run the given code snippet; higher values are typically caused
    by other processes interfering").

    Examples
    --------
    >>> table = compare_timings({"loop": lambda: sum(range(20_000)),
    ...                          "builtin": lambda: 20_000 * 19_999 // 2})
    >>> list(table.columns), float(table.loc["loop", "speedup"])
    (['seconds', 'relative', 'speedup'], 1.0)
    >>> bool(table.loc["builtin", "speedup"] > 1)
    True
    """
    if not isinstance(funcs, Mapping) or not funcs:
        raise ValueError(f"funcs must be a non-empty dict of name -> callable, got {funcs!r}")
    bad = [name for name, f in funcs.items() if not callable(f)]
    if bad:
        raise ValueError(f"funcs[{bad[0]!r}] is not callable; wrap the call in a lambda")
    repeat = _check_int(repeat, "repeat", minimum=1)
    number = _check_int(number, "number", minimum=1)
    names = list(funcs)
    if reference is None:
        reference = names[0]
    elif reference not in funcs:
        raise ValueError(f"reference={reference!r} is not one of {names}")
    best = _best_times([funcs[n] for n in names], repeat, number)
    ref = best[names.index(reference)]
    return pd.DataFrame(
        {"seconds": best, "relative": best / ref, "speedup": ref / best},
        index=pd.Index(names, name="name"),
    )


def _best_times(funcs: list[Callable[[], Any]], repeat: int, number: int) -> np.ndarray:
    best = np.full(len(funcs), np.inf)
    for _ in range(repeat):
        for i, func in enumerate(funcs):
            start = _clock()
            for _ in range(number):
                func()
            best[i] = min(best[i], (_clock() - start) / number)
    return np.maximum(best, _MIN_SECONDS)
