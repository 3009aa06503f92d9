"""lab: a Jupyter-first time-series research lab.

The package is thin on purpose: numerical kernels (``mp_utility``,
``tensor_utility``, ``signal_utility``), pandas helpers (``preprocessor``),
figures (``plots``), evaluation (``metrics`` and ``evaluation``), data
(``datasets``) and models (``models``). Submodules are imported lazily so that ``import lab`` stays fast
and does not pull in TensorFlow.

Examples
--------
>>> import lab
>>> lab.record("answer", 42)
42
"""

from __future__ import annotations

import importlib
import os

# Keras 3 reads its backend once, at first import: default to TensorFlow unless
# the user already chose one.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from lab.tracking import record  # noqa: E402

__version__ = "0.1.0"

_SUBMODULES = (
    "chunks",
    "colab",
    "config",
    "datasets",
    "evaluation",
    "explorer",
    "kernel_output",
    "metrics",
    "mlflow_store",
    "models",
    "mp_utility",
    "plots",
    "preprocessor",
    "progress",
    "report",
    "runner",
    "signal_utility",
    "tensor_utility",
    "timing",
    "tracking",
)

__all__ = ["record", "__version__", *_SUBMODULES]


def __getattr__(name: str):
    if name in _SUBMODULES:
        module = importlib.import_module(f"lab.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'lab' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES))
