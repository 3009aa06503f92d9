"""Models, one module per family, behind one detector interface.

Every detector follows :class:`lab.models.BaseDetector` (``fit``, ``score``,
``predict``, ``save``/``load``) and is registered by a short name in
:data:`DETECTORS`; :func:`get_detector` builds one by name. Change-point
detectors add ``change_points`` (:class:`ChangePointDetector`). Clustering is
``cluster_metrics`` (tslearn).

Submodules are imported on first use; ``betsi`` and ``mscred`` import Keras.

Examples
--------
>>> from lab.models import DETECTORS, get_detector
>>> "constant" in DETECTORS
True
>>> get_detector("random", random_state=3)
RandomDetector(random_state=3, threshold='quantile', contamination=0.01)
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

#: short name -> "module:Class" of every registered detector
_REGISTRY = {
    "pca": "classic:PCADetector",
    "hbos": "classic:HBOSDetector",
    "iforest": "classic:IForestDetector",
    "lof": "classic:LOFDetector",
    "knn": "classic:KNNDetector",
    "matrix_profile": "matrix_profile:MatrixProfileDetector",
    "spectral_residual": "spectral:SpectralResidualDetector",
    "ks_window": "ks_window:KSWindowDetector",
    "spot": "spot_detector:SPOTDetector",
    "mscred": "mscred:MSCREDDetector",
    "betsi": "betsi:BehaviourDetector",
    "random": "baselines:RandomDetector",
    "constant": "baselines:ConstantDetector",
    "pelt": "changepoint:PeltDetector",
    "binseg": "changepoint:BinsegDetector",
    "bottomup": "changepoint:BottomUpDetector",
    "window": "changepoint:WindowDetector",
    "bocpd": "bocpd:BOCPDDetector",
    "lstm_ae": "lstm_ae:LSTMAutoencoderDetector",
    "robust_z": "robust:RobustZDetector",
}

_NAMES = {
    "cluster_metrics": "clustering",
    "ClusterResult": "clustering",
    "build_mscred": "mscred_layers",
    "reconstruct_sliding": "mscred_layers",
    "is_mscred_network": "mscred_layers",
    "BaseDetector": "_base",
    "ChangePointDetector": "_base",
    "NotFittedError": "_base",
    "ChunkClassifier": "classifiers",
    **{spec.split(":")[1]: spec.split(":")[0] for spec in _REGISTRY.values()},
}
_SUBMODULES = ("clustering", "betsi", "mscred", "baselines", "thresholds", "classic",
               "matrix_profile", "spectral", "ks_window", "spot_detector", "changepoint",
               "bocpd", "classifiers", "lstm_ae", "robust")


class _Registry(Mapping):
    """Name -> detector class, importing each class's module on first access."""

    def __getitem__(self, name: str) -> type:
        if name not in _REGISTRY:
            raise KeyError(name)
        module, cls = _REGISTRY[name].split(":")
        return getattr(importlib.import_module(f"lab.models.{module}"), cls)

    def __iter__(self) -> Iterator[str]:
        return iter(_REGISTRY)

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __repr__(self) -> str:
        return f"DETECTORS({', '.join(_REGISTRY)})"


#: Every registered detector class by its short name (the CLI and notebooks use these).
DETECTORS: Mapping[str, type] = _Registry()


def get_detector(name: str, **params: Any):
    """Build the detector registered as ``name`` with ``params``.

    Raises
    ------
    ValueError
        On an unknown name (the message lists the known ones) or a parameter
        the detector does not take.

    Examples
    --------
    >>> get_detector("constant", contamination=0.05).contamination
    0.05
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown detector {name!r}; known detectors: {', '.join(_REGISTRY)}")
    cls = DETECTORS[name]
    try:
        return cls(**params)
    except TypeError as exc:
        raise ValueError(f"detector {name!r} ({cls.__name__}) does not take those parameters: "
                         f"{exc}") from None


def detector_table():
    """One row per registered detector: its name, class, default threshold and summary.

    ``lab detectors`` prints it. Importing ``mscred`` and ``betsi`` loads Keras.

    Returns
    -------
    DataFrame
        Columns ``name``, ``class``, ``threshold`` (the default rule) and
        ``summary`` (the first line of the class docstring).

    Examples
    --------
    >>> table = detector_table()
    >>> table.set_index("name").loc["spot", "threshold"]
    'native'
    """
    import inspect

    import pandas as pd

    rows = []
    for name in _REGISTRY:
        cls = DETECTORS[name]
        default = inspect.signature(cls.__init__).parameters.get("threshold")
        rows.append({"name": name, "class": cls.__name__,
                     "threshold": default.default if default is not None else "",
                     "summary": (inspect.getdoc(cls) or "").split("\n")[0]})
    return pd.DataFrame(rows)


__all__ = sorted(_NAMES) + ["DETECTORS", "detector_table", "get_detector"] + list(_SUBMODULES)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"lab.models.{name}")
    if name in _NAMES:
        value = getattr(importlib.import_module(f"lab.models.{_NAMES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lab.models' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_NAMES) | set(_SUBMODULES))
