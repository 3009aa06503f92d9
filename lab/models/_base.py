"""Shared machinery for the lab's detectors (sklearn/pyod conventions).

``__init__`` only stores settings; ``fit`` validates, calls the subclass's
``_fit`` and returns ``self``; learned state ends in ``_``; a method that needs
a fitted model calls :meth:`BaseDetector._check_is_fitted` first, which raises
sklearn's ``NotFittedError``. Keras models are saved as a directory holding
``model.keras`` (loaded with ``safe_mode=True``), ``settings.json`` and
``state.npz`` (loaded with ``allow_pickle=False``): nothing is unpickled.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.exceptions import NotFittedError

__all__ = ["BaseDetector", "NotFittedError", "seed_everything"]

_FORMAT_FILE = "lab-model.json"


def seed_everything(random_state: int) -> None:
    """Seed Python, NumPy and the Keras backend, and make TensorFlow ops deterministic.

    Examples
    --------
    >>> seed_everything(0)
    """
    import keras

    keras.utils.set_random_seed(int(random_state))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.experimental.enable_op_determinism()
        except Exception:  # pragma: no cover - older TF without the switch
            pass


class BaseDetector:
    """Base class: parameter handling, fitted checks and safe save/load.

    Subclasses list their learned Keras models in ``_keras_attrs`` and their
    learned numpy/JSON state in ``_state_attrs``; ``save``/``load`` then need
    no code of their own. ``_fitted_attr`` names the attribute whose presence
    means "fitted".
    """

    _keras_attrs: tuple[str, ...] = ()
    _state_attrs: tuple[str, ...] = ()
    _fitted_attr: str = ""

    def get_params(self) -> dict[str, Any]:
        """Return the constructor settings as a dict (sklearn convention)."""
        names = [
            p for p in inspect.signature(type(self).__init__).parameters if p != "self"
        ]
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _check_is_fitted(self) -> None:
        if not self._fitted_attr or not hasattr(self, self._fitted_attr):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet; call fit() first"
            )

    # ------------------------------------------------------------------ save/load
    def save(self, path: str | os.PathLike) -> Path:
        """Save the fitted detector to the directory ``path`` (replaced atomically).

        Returns
        -------
        pathlib.Path
            The directory written.
        """
        self._check_is_fitted()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
        try:
            for attr in self._keras_attrs:
                getattr(self, attr).save(tmp / f"{attr}.keras")
            arrays, plain = {}, {}
            for attr in self._state_attrs:
                value = getattr(self, attr)
                if isinstance(value, np.ndarray):
                    arrays[attr] = value
                else:
                    plain[attr] = value
            np.savez(tmp / "state.npz", **arrays)
            (tmp / "settings.json").write_text(
                json.dumps({"params": _jsonable(self.get_params()), "state": _jsonable(plain)})
            )
            (tmp / _FORMAT_FILE).write_text(
                json.dumps({"class": type(self).__name__, "format": 1})
            )
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike):
        """Load a detector written by :meth:`save`, refusing anything else safely.

        Raises
        ------
        ValueError
            If ``path`` is not a saved detector of this class.
        """
        import keras

        path = Path(path)
        marker = path / _FORMAT_FILE
        if not path.is_dir() or not marker.is_file():
            raise ValueError(f"{path} is not a saved {cls.__name__} (no {_FORMAT_FILE})")
        try:
            meta = json.loads(marker.read_text())
            settings = json.loads((path / "settings.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path} is not a readable saved model: {exc}") from exc
        if meta.get("class") != cls.__name__:
            raise ValueError(f"{path} holds a {meta.get('class')!r}, not a {cls.__name__}")
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in settings["params"].items()}
        obj = cls(**params)
        for attr, value in settings["state"].items():
            setattr(obj, attr, value)
        with np.load(path / "state.npz", allow_pickle=False) as data:
            for attr in data.files:
                setattr(obj, attr, data[attr])
        for attr in cls._keras_attrs:
            try:
                model = keras.saving.load_model(path / f"{attr}.keras", safe_mode=True)
            except Exception as exc:
                raise ValueError(f"{path / (attr + '.keras')} is not a valid Keras model: {exc}") from exc
            setattr(obj, attr, model)
        obj._after_load()
        return obj

    def _after_load(self) -> None:
        """Hook for subclasses that rebuild derived objects after :meth:`load`."""


def _jsonable(obj: Any) -> Any:
    from lab.tracking import to_jsonable

    return to_jsonable(obj)
