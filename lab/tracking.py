"""Recording headline metrics from a notebook: :func:`record`.

Inside a run started by ``lab run`` the runner sets ``LAB_RUN_DIR`` in the
kernel's environment, and every :func:`record` call rewrites
``$LAB_RUN_DIR/metrics.json`` atomically, so a crash never leaves a
half-written file. Interactively (no run directory) values are kept in memory
and can be read back with :func:`recorded`.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import tempfile
from pathlib import Path
from typing import Any

from lab.config import MAX_RECORD_ROWS, RUN_DIR_ENV

__all__ = ["record", "recorded", "to_jsonable", "METRICS_FILE"]

METRICS_FILE = "metrics.json"
_MEMORY: dict[str, Any] = {}


def to_jsonable(value: Any, name: str = "value") -> Any:
    """Convert ``value`` to plain JSON types.

    Numbers, strings, booleans, None, lists, tuples, dicts, numpy arrays and
    scalars, pandas Series (to a dict) and small DataFrames (to a list of
    records) are accepted. Timestamps become ISO strings. Non-finite floats
    become None, since JSON has no NaN.

    Raises
    ------
    TypeError
        For any other type, naming ``name``.
    ValueError
        For a DataFrame longer than ``lab.config.MAX_RECORD_ROWS`` rows.

    Examples
    --------
    >>> import numpy as np
    >>> to_jsonable({"a": np.float32(0.5), "b": np.arange(3)})
    {'a': 0.5, 'b': [0, 1, 2]}
    """
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
        return value if math.isfinite(value) else None
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
            {str(k): to_jsonable(v, f"{name}[{k!r}]") for k, v in row.items()}
            for row in frame.to_dict(orient="records")
        ]
    if isinstance(value, pd.Series):
        return {str(to_jsonable(k)): to_jsonable(v, f"{name}[{k!r}]") for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [to_jsonable(v, name) for v in value.tolist()]
    if isinstance(value, dict):
        return {str(to_jsonable(k)): to_jsonable(v, f"{name}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, f"{name}[{i}]") for i, v in enumerate(value)]
    raise TypeError(
        f"{name} has type {type(value).__name__}; record numbers, strings, lists, dicts "
        "or small DataFrames"
    )


def record(name: str, value: Any) -> Any:
    """Record a headline metric of the current run and return ``value``.

    Parameters
    ----------
    name : str
        Metric name, e.g. ``"auc"``. Recording a name twice keeps the last value.
    value : number, str, list, dict, Series or small DataFrame
        Converted with :func:`to_jsonable`.

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
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"record: name must be a non-empty string, got {name!r}")
    stored = to_jsonable(value, name)
    run_dir = os.environ.get(RUN_DIR_ENV)
    if run_dir:
        path = Path(run_dir) / METRICS_FILE
        metrics = json.loads(path.read_text()) if path.exists() else {}
        metrics[name] = stored
        _atomic_write_json(path, metrics)
    _MEMORY[name] = stored
    return value


def recorded() -> dict[str, Any]:
    """Return the metrics recorded in this process so far (a copy).

    Examples
    --------
    >>> isinstance(recorded(), dict)
    True
    """
    return dict(_MEMORY)


def _atomic_write_json(path: Path, obj: Any) -> None:
    """Write JSON to a temporary file beside ``path`` and rename it into place."""
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
