"""The Turing Change Point Dataset (TCPD), read from a local copy.

Each series is a JSON file ``<name>.json`` with ``n_obs``, ``n_dim``, a
``time`` block (positions in ``index``, and optionally ``raw`` strings with a
``format``) and one entry per dimension in ``series`` (``label`` and ``raw``
values, ``null`` for missing). ``annotations.json`` maps each series to
``{annotator_id: [change point indices]}``. Nothing is downloaded: the data is
read by path from ``lab.config.TCPD_ROOT`` (``LAB_TCPD`` overrides it).
"""

from __future__ import annotations

import json
import numbers
from pathlib import Path

import numpy as np
import pandas as pd

from lab import config

__all__ = ["load_tcpd", "list_tcpd"]

ANNOTATIONS_FILE = "annotations.json"


def _root(root) -> Path:
    path = Path(config.TCPD_ROOT if root is None else root)
    if not (path / ANNOTATIONS_FILE).is_file():
        raise FileNotFoundError(
            f"TCPD data not found: {path / ANNOTATIONS_FILE} does not exist. Point root (or "
            "the LAB_TCPD environment variable) at a folder holding the TCPD JSON files "
            "(van den Burg & Williams, github.com/alan-turing-institute/TCPD)"
        )
    return path


def list_tcpd(root=None) -> list[str]:
    """Names of the TCPD series available under ``root``.

    Parameters
    ----------
    root : str or Path, optional
        Folder with ``annotations.json`` and one ``<name>.json`` per series;
        ``lab.config.TCPD_ROOT`` by default.

    Returns
    -------
    list of str
        Sorted names that have both a series file and annotations.

    Raises
    ------
    FileNotFoundError
        If ``root`` holds no ``annotations.json``.

    Examples
    --------
    A folder in the TCPD layout (the real data lives at ``lab.config.TCPD_ROOT``):

    >>> import json, pathlib, tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "annotations.json").write_text(json.dumps({"toy": {"1": [3]}}))
    >>> _ = (root / "toy.json").write_text(json.dumps({"n_obs": 6, "n_dim": 1,
    ...     "time": {"index": list(range(6))},
    ...     "series": [{"label": "x", "raw": [0, 0, 0, 5, 5, None]}]}))
    >>> list_tcpd(root)
    ['toy']
    """
    path = _root(root)
    annotated = json.loads((path / ANNOTATIONS_FILE).read_text())
    return sorted(n for n in annotated if (path / f"{n}.json").is_file())


def load_tcpd(name: str, root=None) -> tuple[pd.DataFrame, dict[str, list[int]]]:
    """One TCPD series and its change point annotations.

    Parameters
    ----------
    name : str
        Series name, e.g. ``"nile"`` (see :func:`list_tcpd`).
    root : str or Path, optional
        Folder of the data; ``lab.config.TCPD_ROOT`` by default.

    Returns
    -------
    series : DataFrame of shape (n_obs, n_dim)
        One column per dimension, named by its label; missing values are NaN.
        The index is a DatetimeIndex when the file gives timestamps with a
        format, otherwise the positions ``0 .. n_obs-1``. ``series.attrs``
        holds ``name``, ``longname`` and ``n_obs``.
    annotations : dict
        ``{annotator_id: [indices]}``; indices are *positions* (use
        ``series.iloc``), ready for :func:`lab.metrics.f1_margin` and
        :func:`lab.metrics.covering`.

    Raises
    ------
    FileNotFoundError
        If the data folder is missing.
    ValueError
        If ``name`` is not a TCPD series there, or the files are inconsistent
        (values or annotations that do not fit ``n_obs``, annotations that are
        not whole numbers); the message names the file.

    Notes
    -----
    Data of van den Burg & Williams, "An Evaluation of Change Point Detection
    Algorithms" (2020), MIT licence.

    Examples
    --------
    A folder in the TCPD layout (the real data lives at ``lab.config.TCPD_ROOT``):

    >>> import json, pathlib, tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "annotations.json").write_text(json.dumps({"toy": {"1": [3], "2": []}}))
    >>> _ = (root / "toy.json").write_text(json.dumps({"n_obs": 6, "n_dim": 1,
    ...     "time": {"index": list(range(6))},
    ...     "series": [{"label": "x", "raw": [0, 0, 0, 5, 5, None]}]}))
    >>> series, annotations = load_tcpd("toy", root)
    >>> series["x"].tolist(), annotations
    ([0.0, 0.0, 0.0, 5.0, 5.0, nan], {'1': [3], '2': []})
    """
    path = _root(root)
    if not isinstance(name, str):
        raise ValueError(f"name must be a string, got {name!r}")
    annotated = json.loads((path / ANNOTATIONS_FILE).read_text())
    file = path / f"{name}.json"
    if name not in annotated or not file.is_file():
        available = list_tcpd(path)
        raise ValueError(f"name={name!r} is not a TCPD series in {path}; available: {available}")
    data = json.loads(file.read_text())
    n_obs = int(data["n_obs"])
    columns = {}
    for k, dim in enumerate(data["series"]):
        raw = dim["raw"]
        if len(raw) != n_obs:
            raise ValueError(f"{file}: series {k} has {len(raw)} values, n_obs is {n_obs}")
        label = dim.get("label", f"V{k + 1}")
        columns[label if label not in columns else f"{label}_{k}"] = np.array(
            [np.nan if v is None else v for v in raw], dtype=np.float64)
    frame = pd.DataFrame(columns, index=_time_index(data.get("time", {}), n_obs, file))
    frame.attrs.update(name=data.get("name", name), longname=data.get("longname", name),
                       n_obs=n_obs)
    annotations = {}
    for annotator, cps in annotated[name].items():
        where = f"{path / ANNOTATIONS_FILE}: annotations of {name!r} by {annotator!r}"
        # int() would truncate 3.7 to 3: only whole numbers are indices.
        not_int = [c for c in cps if isinstance(c, bool)
                   or not isinstance(c, numbers.Integral | float)
                   or (isinstance(c, float) and not c.is_integer())]
        if not_int:
            raise ValueError(f"{where} hold {not_int}, which are not integer indices")
        bad = [c for c in cps if not 0 <= int(c) < n_obs]
        if bad:
            raise ValueError(f"{where} hold {bad}, outside [0, n_obs={n_obs})")
        annotations[str(annotator)] = sorted(int(c) for c in cps)
    return frame, annotations


def _time_index(time: dict, n_obs: int, file: Path) -> pd.Index:
    raw, fmt = time.get("raw"), time.get("format")
    if raw is not None and fmt is not None:
        if len(raw) != n_obs:
            raise ValueError(f"{file}: time has {len(raw)} stamps, n_obs is {n_obs}")
        return pd.DatetimeIndex(pd.to_datetime(raw, format=fmt), name="time")
    return pd.RangeIndex(n_obs, name="t")
