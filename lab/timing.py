"""Side-by-side timings for notebooks: :func:`compare_timings`, :func:`ks_speedup`.

Speed claims in the lab are ratios against a reference run in the same
process, on the same data, at the same time, because absolute seconds on a
shared machine mean little. The calls are interleaved (every candidate once,
then every candidate again, ...) so that a slow spell of the machine hits all
of them alike, and the best of the repeats is kept, as :mod:`timeit` advises.
"""

from __future__ import annotations

import time
from collections import namedtuple
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from lab._validation import _as_2d, _check_int, _check_option

__all__ = ["best_of", "compare_timings", "ks_speedup", "KSSpeedup"]

#: The clock; tests replace it with a fake one.
_clock = time.perf_counter
#: Floor of a measured time, so that a ratio is never a division by zero.
_MIN_SECONDS = time.get_clock_info("perf_counter").resolution
#: p-value methods of scipy's ks_2samp, which ks_2samp_columns shares.
_KS_METHODS = ("auto", "exact", "asymp")
#: Names of the two candidates of :func:`ks_speedup`.
_KS_LOOP, _KS_COLUMNS = "scipy ks_2samp loop", "ks_2samp_columns"

#: Result of :func:`ks_speedup`.
KSSpeedup = namedtuple("KSSpeedup", ["speedup", "max_abs_diff_stat", "max_rel_diff_p"])


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


def best_of(func: Callable[[], Any], repeat: int = 3) -> float:
    """Best wall time of ``repeat`` calls of ``func``, in seconds (the benchmarks' timer).

    Examples
    --------
    >>> best_of(lambda: sum(range(100)), repeat=2) > 0
    True
    """
    return float(_best_times([func], repeat, 1)[0])


def _best_times(funcs: list[Callable[[], Any]], repeat: int, number: int) -> np.ndarray:
    best = np.full(len(funcs), np.inf)
    for _ in range(repeat):
        for i, func in enumerate(funcs):
            start = _clock()
            for _ in range(number):
                func()
            best[i] = min(best[i], (_clock() - start) / number)
    return np.maximum(best, _MIN_SECONDS)


def ks_speedup(base, focus, method: str = "auto", repeat: int = 3) -> KSSpeedup:
    """Time ``ks_2samp_columns`` against a scipy ``ks_2samp`` loop, and check they agree.

    Both compute the two-sample KS test of every column of ``base`` against
    the same column of ``focus``; they are timed side by side with
    :func:`compare_timings`, and the results of their timed calls are
    compared, since a speedup means nothing if the answers differ.

    Parameters
    ----------
    base, focus : DataFrame or ndarray of shape (n1, n_columns) and (n2, n_columns)
        The two samples, e.g. the baseline and focus rows of a metrics frame;
        finite values only.
    method : {"auto", "exact", "asymp"}, default "auto"
        The p-value method, passed to both (scipy's meaning).
    repeat : int, default 3
        Rounds of the timing; each side keeps its best.

    Returns
    -------
    KSSpeedup
        Named tuple ``(speedup, max_abs_diff_stat, max_rel_diff_p)``: the
        loop's best time over ``ks_2samp_columns``'s (above 1 is faster), the
        largest absolute difference of the statistics and the largest relative
        difference of the p-values (0 where both are equal, inf where scipy's
        is 0 and the other is not).

    Raises
    ------
    ValueError
        On non-numeric or non-finite data, different column counts, an
        unknown ``method`` or ``repeat < 1``.

    Notes
    -----
    The reference is ``scipy.stats.ks_2samp(base[:, j], focus[:, j],
    method=method)`` for each column ``j``; ``lab.signal_utility`` documents
    why ``ks_2samp_columns`` gives the same statistic exactly and the same
    p-value to floating-point accuracy.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> result = ks_speedup(rng.normal(size=(80, 20)), rng.normal(size=(20, 20)), repeat=1)
    >>> result.max_abs_diff_stat, result.max_rel_diff_p < 1e-12, result.speedup > 0
    (0.0, True, True)
    """
    _check_option(method, "method", _KS_METHODS)
    a, _, _ = _as_2d(base, "base")
    b, _, _ = _as_2d(focus, "focus")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"base has {a.shape[1]} columns (shape {a.shape}) but focus has "
                         f"{b.shape[1]} (shape {b.shape}); expected the same columns")
    from scipy.stats import ks_2samp

    from lab.signal_utility import ks_2samp_columns

    results: dict[str, np.ndarray] = {}

    def loop():
        results[_KS_LOOP] = np.array(
            [tuple(ks_2samp(a[:, j], b[:, j], method=method))[:2] for j in range(a.shape[1])]
        ).reshape(-1, 2)

    def columns():
        results[_KS_COLUMNS] = np.column_stack(ks_2samp_columns(a, b, method=method))

    table = compare_timings({_KS_LOOP: loop, _KS_COLUMNS: columns}, repeat=repeat)
    return KSSpeedup(float(table.loc[_KS_COLUMNS, "speedup"]),
                     *_ks_differences(results[_KS_COLUMNS], results[_KS_LOOP]))


def _ks_differences(fast: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    stat = float(np.max(np.abs(fast[:, 0] - reference[:, 0]), initial=0.0))
    diff = np.abs(fast[:, 1] - reference[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(diff == 0, 0.0, diff / np.abs(reference[:, 1]))
    return stat, float(np.max(rel, initial=0.0))
