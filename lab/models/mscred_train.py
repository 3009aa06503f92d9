"""How MSCRED's network is trained: by blocks of consecutive windows, or by random windows.

:class:`lab.models.mscred.MSCREDDetector` trains with :func:`train_blocks` when
``batching="blocks"`` (its default) and with :func:`train_windows` when
``batching="windows"``. Both minimise the mean squared error of the last
matrix of each window of ``steps`` consecutive signature matrices with Adam,
``batch_size`` windows per step; they differ in which windows share a batch
and in what a batch costs (docs/mscred.md, issue 20).
"""

from __future__ import annotations

import math

import keras
import numpy as np

from lab._validation import _check_int
from lab.models.mscred_layers import (
    SLIDING_BATCH,
    block_model,
    reconstruct_sliding,
    window_sequences,
)

__all__ = ["BATCHINGS", "block_starts", "train_blocks", "train_windows"]

#: How training batches are cut: "blocks" of consecutive windows, each matrix encoded
#: once per batch, or "windows" drawn at random, each encoded whole (docs/mscred.md).
BATCHINGS = ("blocks", "windows")


def block_starts(n_windows: int, size: int, offset: int) -> np.ndarray:
    """First windows of the blocks of ``size`` windows cut at ``k * size - offset``.

    The starts are clipped to ``[0, n_windows - size]`` and made unique, so
    every block is whole, and every window is in one block or, where the first
    and the last block overlap their neighbours, two. Fewer than
    ``2 * size`` windows give the two end blocks alone. MSCRED's "blocks" training
    draws ``offset`` anew every epoch, so that the cuts move.

    Parameters
    ----------
    n_windows : int
        Windows to cover, at least ``size``.
    size : int
        Windows per block, at least 1.
    offset : int
        Shift of the cuts, in ``[0, size)``.

    Returns
    -------
    ndarray of int
        Increasing starts, ``ceil(n_windows / size)`` of them or one more.

    Raises
    ------
    ValueError
        If ``size < 1``, ``n_windows < size`` or ``offset`` is outside
        ``[0, size)``.

    Examples
    --------
    >>> block_starts(10, 4, 0).tolist(), block_starts(10, 4, 3).tolist()
    ([0, 4, 6], [0, 1, 5, 6])
    """
    size = _check_int(size, "size", minimum=1)
    n_windows = _check_int(n_windows, "n_windows", minimum=size)
    offset = _check_int(offset, "offset", minimum=0, maximum=size - 1)
    return _block_starts_kernel(n_windows, size, offset)


def _block_starts_kernel(n_windows: int, size: int, offset: int) -> np.ndarray:
    if n_windows < 2 * size:
        # the two end blocks already cover everything; a middle one would be a third copy
        return np.unique([0, n_windows - size])
    k = np.arange(-(-n_windows // size) + 1)
    return np.unique(np.clip(k * size - offset, 0, n_windows - size))


class _Progress(keras.callbacks.Callback):
    """A tqdm progress bar over all training batches, with the last losses."""

    def __init__(self, total: int):
        super().__init__()
        import sys

        from lab.runner import is_headless

        if is_headless():
            # `lab run` shows stdout on its console and keeps the bar's final
            # state in the report; a widget would be a stale 0% there
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc="MSCRED training", unit="batch", file=sys.stdout)
        else:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc="MSCRED training", unit="batch")

    def on_train_batch_end(self, batch, logs=None):
        self._bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self._bar.set_postfix(epoch=epoch + 1, loss=f"{logs.get('loss', math.nan):.4g}",
                              val_loss=f"{logs.get('val_loss', math.nan):.4g}")

    def on_train_end(self, logs=None):
        self._bar.close()


def train_blocks(model: keras.Model, M_train: np.ndarray, M_valid: np.ndarray, *, steps: int,
                 epochs: int, batch_size: int, learning_rate: float, random_state: int,
                 progress: bool = False) -> dict:
    """Train a :func:`~lab.models.mscred_layers.build_mscred` network on blocks of windows.

    Each Adam step takes ``batch_size`` consecutive windows: the
    ``batch_size + steps - 1`` matrices that hold them, each encoded once
    (the encoder and the ConvLSTM input convolutions), and the recurrence,
    attention and decoder run per window. The loss is the mean squared error
    of every window's last matrix, as for the same windows stacked in one
    batch. Every epoch cuts the windows at a new random offset
    (:func:`block_starts`) and takes the blocks in random order.

    Parameters
    ----------
    model : keras.Model
        A network from :func:`~lab.models.mscred_layers.build_mscred`; it is
        trained in place.
    M_train, M_valid : ndarray of shape (n_matrices, n, n, n_scales), float32
        Consecutive signature matrices of the training and validation
        periods, channels last, each with at least ``steps`` matrices.
    steps : int
        Matrices per window (the network's).
    epochs, batch_size : int
        Passes over the windows, and windows per block.
    learning_rate : float
        Adam's.
    random_state : int
        Seed of the offsets and the order of the blocks.
    progress : bool, default False
        A progress bar over the blocks.

    Returns
    -------
    dict
        ``{"loss": [...], "val_loss": [...]}`` per epoch: the mean of the
        epoch's block losses, and the mean squared error of every validation
        window after the epoch.

    Examples
    --------
    >>> from lab.models.mscred_layers import build_mscred
    >>> model = build_mscred(5, steps=2, filters=(2, 2, 2, 2))
    >>> M = np.random.default_rng(0).normal(size=(12, 5, 5, 3)).astype("float32")
    >>> history = train_blocks(model, M[:8], M[8:], steps=2, epochs=2, batch_size=4,
    ...                        learning_rate=1e-3, random_state=0)
    >>> len(history["loss"]), len(history["val_loss"])
    (2, 2)
    """
    trainer = block_model(model)
    trainer.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    n_windows = len(M_train) - steps + 1
    size = min(batch_size, n_windows)
    rng = np.random.default_rng(random_state)
    # every epoch's blocks, cut at a new offset and shuffled
    plan = [rng.permutation(_block_starts_kernel(n_windows, size, int(rng.integers(size))))
            for _ in range(epochs)]
    bar = _Progress(sum(map(len, plan))) if progress else None
    history: dict = {"loss": [], "val_loss": []}
    for epoch, starts in enumerate(plan):
        losses = []
        for start in starts:
            block = M_train[start : start + size + steps - 1][None]
            losses.append(float(trainer.train_on_batch(block, block[:, steps - 1 :])))
            if bar is not None:
                bar.on_train_batch_end(len(losses))
        out = reconstruct_sliding(model, M_valid, batch_size=SLIDING_BATCH)
        history["loss"].append(float(np.mean(losses)))
        history["val_loss"].append(
            float(np.mean(np.square(out - M_valid[steps - 1 :], dtype=np.float64))))
        if bar is not None:
            bar.on_epoch_end(epoch, {k: v[-1] for k, v in history.items()})
    if bar is not None:
        bar.on_train_end()
    return history


def train_windows(model: keras.Model, M_train: np.ndarray, M_valid: np.ndarray, *, steps: int,
                  epochs: int, batch_size: int, learning_rate: float, random_state: int,
                  progress: bool = False) -> dict:
    """Train any Keras network of MSCRED's shapes with ``fit`` on random windows.

    Each Adam step takes ``batch_size`` windows drawn at random, each encoded
    whole (Keras ``fit`` with ``shuffle=True``; ``random_state`` seeds nothing
    here: the caller seeds Keras). Parameters and return value as
    :func:`train_blocks`; ``model`` may be any network that maps
    ``(batch, steps, n, n, n_scales)`` to ``(batch, n, n, n_scales)``.

    Examples
    --------
    >>> from lab.models.mscred_layers import build_mscred
    >>> model = build_mscred(5, steps=2, filters=(2, 2, 2, 2))
    >>> M = np.random.default_rng(0).normal(size=(12, 5, 5, 3)).astype("float32")
    >>> history = train_windows(model, M[:8], M[8:], steps=2, epochs=2, batch_size=4,
    ...                         learning_rate=1e-3, random_state=0)
    >>> len(history["loss"]), len(history["val_loss"])
    (2, 2)
    """
    X_train, X_valid = window_sequences(M_train, steps), window_sequences(M_valid, steps)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    callbacks = [_Progress(epochs * math.ceil(len(X_train) / batch_size))] if progress else []
    fitted = model.fit(X_train, X_train[:, -1], validation_data=(X_valid, X_valid[:, -1]),
                       epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0,
                       callbacks=callbacks)
    return {"loss": [float(v) for v in fitted.history["loss"]],
            "val_loss": [float(v) for v in fitted.history["val_loss"]]}
