"""Models, one module per family: ``clustering`` (tslearn), ``betsi``
(autoencoder behaviour extraction) and ``mscred`` (Zhang et al. 2019).

Submodules are imported on first use; ``betsi`` and ``mscred`` import Keras.
"""

from __future__ import annotations

import importlib

_NAMES = {
    "cluster_metrics": "clustering",
    "ClusterResult": "clustering",
    "BehaviourDetector": "betsi",
    "MSCREDDetector": "mscred",
    "build_mscred": "mscred",
}
_SUBMODULES = ("clustering", "betsi", "mscred")

__all__ = sorted(_NAMES) + list(_SUBMODULES)


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
