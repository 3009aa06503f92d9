"""Recording headline metrics from a notebook: :func:`record`.

Inside a run started by ``lab run`` the runner sets ``LAB_RUN_DIR`` in the
kernel's environment, and every :func:`record` call rewrites
``$LAB_RUN_DIR/metrics.json`` atomically, so a crash never leaves a
half-written file. Interactively (no run directory) values are kept in memory
and can be read back with :func:`recorded`.

JSON has no NaN or infinity, so ``metrics.json`` holds non-finite floats as
the strings ``"nan"``, ``"inf"`` and ``"-inf"`` (what ``float()`` reads back),
at any depth; :func:`read_metrics` and :func:`from_jsonable` turn them back
into floats. A recorded string equal to one of those three reads back as a
float too.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lab.config import MAX_RECORD_ROWS, RUN_DIR_ENV

__all__ = ["atomic_directory", "record", "recorded", "read_json", "read_metrics", "to_jsonable", "from_jsonable",
           "atomic_write_json", "METRICS_FILE"]

METRICS_FILE = "metrics.json"
#: How metrics.json spells the floats JSON cannot hold (``float()`` reads them back).
NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_MEMORY: dict[str, Any] = {}


def to_jsonable(value: Any, name: str = "value", *, nonfinite: str = "null") -> Any:
    """Convert ``value`` to plain JSON types.

    Numbers, strings, booleans, None, lists, tuples, dicts, numpy arrays and
    scalars, pandas Series (to a dict) and small DataFrames (to a list of
    records) are accepted. Timestamps become ISO strings.

    Parameters
    ----------
    value : Any
        The value to convert.
    name : str
        Argument name used in error messages.
    nonfinite : {"null", "string"}
        What a NaN or infinite float becomes, since JSON has neither:
        ``"null"`` gives None for all three; ``"string"`` keeps them apart as
        ``"nan"``, ``"inf"`` and ``"-inf"`` (see :func:`from_jsonable`).

    Raises
    ------
    TypeError
        For any other type, naming ``name``.
    ValueError
        For a DataFrame longer than ``lab.config.MAX_RECORD_ROWS`` rows, or
        an unknown ``nonfinite``.

    Examples
    --------
    >>> import numpy as np
    >>> to_jsonable({"a": np.float32(0.5), "b": np.arange(3)})
    {'a': 0.5, 'b': [0, 1, 2]}
    >>> to_jsonable([np.inf, -np.inf, np.nan]), to_jsonable([np.inf, np.nan], nonfinite="string")
    ([None, None, None], ['inf', 'nan'])
    """
    if nonfinite not in ("null", "string"):
        raise ValueError(f"nonfinite must be one of ('null', 'string'), got {nonfinite!r}")
    return _to_jsonable(value, name, nonfinite == "string")


def _to_jsonable(value: Any, name: str, spell: bool) -> Any:
    # numpy and pandas are imported here, not at module level: `lab` and the
    # `lab` command import this module and should start without them.
    import numpy as np
    import pandas as pd

    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isfinite(value):
            return value
        return (("nan" if math.isnan(value) else "inf" if value > 0 else "-inf") if spell
                else None)
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, pd.Timedelta):
        return str(value)
    if isinstance(value, pd.DataFrame):
        if len(value) > MAX_RECORD_ROWS:
            raise ValueError(
                f"{name} is a DataFrame of {len(value)} rows; record at most "
                f"{MAX_RECORD_ROWS} rows (summarise it first)"
            )
        frame = value.reset_index() if not isinstance(value.index, pd.RangeIndex) else value
        return [
            {str(k): _to_jsonable(v, f"{name}[{k!r}]", spell) for k, v in row.items()}
            for row in frame.to_dict(orient="records")
        ]
    if isinstance(value, pd.Series):
        return {str(_to_jsonable(k, name, spell)): _to_jsonable(v, f"{name}[{k!r}]", spell)
                for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [_to_jsonable(v, name, spell) for v in value.tolist()]
    if isinstance(value, dict):
        return {str(_to_jsonable(k, name, spell)): _to_jsonable(v, f"{name}[{k!r}]", spell)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v, f"{name}[{i}]", spell) for i, v in enumerate(value)]
    raise TypeError(
        f"{name} has type {type(value).__name__}; record numbers, strings, lists, dicts "
        "or small DataFrames"
    )


def from_jsonable(value: Any) -> Any:
    """Undo ``to_jsonable(..., nonfinite="string")``: ``"nan"``, ``"inf"``, ``"-inf"`` become floats.

    Lists and dict values are converted at any depth; everything else is
    returned as it is.

    Examples
    --------
    >>> from_jsonable({"auc": "nan", "gain": "inf", "rows": [1.0, "-inf"], "name": "x"})
    {'auc': nan, 'gain': inf, 'rows': [1.0, -inf], 'name': 'x'}
    """
    if isinstance(value, str):
        return NONFINITE.get(value, value)
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: from_jsonable(v) for k, v in value.items()}
    return value


def read_metrics(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The metrics a run recorded: its ``metrics.json``, non-finite floats decoded.

    Parameters
    ----------
    run_dir : str or path
        A run directory (the one holding ``metrics.json``).

    Returns
    -------
    dict
        Metric name to value; ``{}`` when the file is missing or is not JSON
        (a run killed before its first :func:`record`).

    Examples
    --------
    >>> read_metrics("/nonexistent")
    {}
    """
    try:
        metrics = json.loads((Path(run_dir) / METRICS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return from_jsonable(metrics) if isinstance(metrics, dict) else {}


def record(name: str, value: Any) -> Any:
    """Record a headline metric of the current run and return ``value``.

    Parameters
    ----------
    name : str
        Metric name, e.g. ``"auc"``. Recording a name twice keeps the last value.
    value : number, str, list, dict, Series or small DataFrame
        Converted with ``to_jsonable(value, nonfinite="string")``: NaN, inf
        and -inf are stored as ``"nan"``, ``"inf"`` and ``"-inf"``, and read
        back as floats by :func:`read_metrics` and :func:`recorded`.

    Returns
    -------
    value
        The value passed in, unchanged, so a call can end a notebook cell.

    Raises
    ------
    ValueError
        If ``name`` is empty or not a string.
    TypeError
        If ``value`` cannot be stored as JSON.

    Examples
    --------
    >>> record("precision_at_k", 0.9)
    0.9
    >>> recorded()["precision_at_k"]
    0.9
    >>> _ = record("gain", float("inf"))
    >>> recorded()["gain"]
    inf
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"record: name must be a non-empty string, got {name!r}")
    stored = to_jsonable(value, name, nonfinite="string")
    run_dir = os.environ.get(RUN_DIR_ENV)
    if run_dir:
        path = Path(run_dir) / METRICS_FILE
        metrics = json.loads(path.read_text()) if path.exists() else {}
        metrics[name] = stored
        atomic_write_json(path, metrics)
    _MEMORY[name] = from_jsonable(stored)
    return value


def recorded() -> dict[str, Any]:
    """Return the metrics recorded in this process so far (a copy), as :func:`read_metrics` would.

    Examples
    --------
    >>> isinstance(recorded(), dict)
    True
    """
    return dict(_MEMORY)


def read_json(path: str | os.PathLike) -> dict:
    """The JSON object in ``path``; an empty dict if it is missing or not valid JSON.

    Run directories are read while other processes write them (atomically, by
    :func:`atomic_write_json`), and a run killed early may lack a file: a
    listing shows what is there instead of failing.

    Parameters
    ----------
    path : path
        A JSON file holding an object (``run.json``, ``params.json``).

    Returns
    -------
    dict
        Its content, or ``{}``.

    Examples
    --------
    >>> read_json("/nonexistent/run.json")
    {}
    """
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write JSON to a temporary file beside ``path`` and rename it into place.

    A reader sees the old file or the new one, never half of one.

    Examples
    --------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> p = Path(tempfile.mkdtemp()) / "run.json"
    >>> atomic_write_json(p, {"status": "completed"})
    >>> json.loads(p.read_text())
    {'status': 'completed'}
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, prefix: str | None = None) -> Iterator[Path]:
    """Write a directory under a temporary name and put it in place at ``path`` when complete.

    The body writes into the yielded folder, made beside ``path`` (same file
    system). When the body ends, a directory already at ``path`` is removed
    and the new one renamed into place; when it raises (Ctrl-C included),
    the temporary folder is removed and ``path`` is left as it was, so no
    half-written directory is ever seen under the final name.

    Parameters
    ----------
    path : str or PathLike
        The directory to write; its parent is created if needed.
    prefix : str, optional
        Name prefix of the temporary folder (default ``.<name>.``).

    Yields
    ------
    Path
        The temporary folder to write into.

    Examples
    --------
    >>> d = Path(tempfile.mkdtemp())
    >>> with atomic_directory(d / "model") as tmp:
    ...     _ = (tmp / "settings.json").write_text("{}")
    >>> sorted(p.name for p in (d / "model").iterdir())
    ['settings.json']
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=prefix or f".{path.name}."))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
