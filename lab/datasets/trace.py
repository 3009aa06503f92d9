"""tslearn's bundled Trace dataset (Roverso 2000), offline."""

from __future__ import annotations

import numpy as np

__all__ = ["load_trace"]


def load_trace(split: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """Load the Trace dataset that ships inside tslearn.

    Parameters
    ----------
    split : {"all", "train", "test"}
        Which part of the UCR split to return; ``"all"`` concatenates both.

    Returns
    -------
    X : ndarray of shape (n_series, 275, 1)
        The series, in tslearn's layout (one series per row).
    y : ndarray of shape (n_series,)
        Class labels 1 to 4.

    Notes
    -----
    Trace is a synthetic nuclear-plant instrumentation dataset (Roverso,
    2000), 100 training and 100 test series of length 275 in 4 classes, from
    the UCR archive as cached by ``tslearn.datasets.CachedDatasets``.

    Examples
    --------
    >>> X, y = load_trace()
    >>> X.shape, sorted(set(y.tolist()))
    ((200, 275, 1), [1, 2, 3, 4])
    """
    from tslearn.datasets import CachedDatasets

    if split not in ("all", "train", "test"):
        raise ValueError(f"split must be 'all', 'train' or 'test', got {split!r}")
    X_train, y_train, X_test, y_test = CachedDatasets().load_dataset("Trace")
    if split == "train":
        return X_train, y_train
    if split == "test":
        return X_test, y_test
    return np.concatenate([X_train, X_test]), np.concatenate([y_train, y_test])
