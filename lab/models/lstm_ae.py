"""An LSTM autoencoder detector: reconstruction error of sliding windows (Keras).

The seed study's roadmap model. An LSTM encoder reads a window of
standardised rows into one vector; a ``RepeatVector`` and an LSTM decoder
give the window back. A window's score is its mean squared reconstruction
error, placed on the row that ends it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lab._validation import _check_int
from lab.models._base import MAX_FIT_WINDOWS, BaseDetector, seed_everything

__all__ = ["LSTMAutoencoderDetector", "build_lstm_autoencoder"]

#: Default window (rows), fit stride and LSTM sizes.
AE_WINDOW, AE_STRIDE, AE_UNITS = 30, 5, (32,)


def build_lstm_autoencoder(window: int, n_features: int, units: Sequence[int] = AE_UNITS):
    """Encoder LSTMs, ``RepeatVector(window)``, decoder LSTMs, a dense output per step.

    Examples
    --------
    >>> build_lstm_autoencoder(20, 3).output_shape
    (None, 20, 3)
    """
    import keras

    inp = keras.Input((window, n_features))
    x = inp
    for i, u in enumerate(units):
        x = keras.layers.LSTM(int(u), return_sequences=i < len(units) - 1)(x)
    x = keras.layers.RepeatVector(window)(x)
    for u in reversed(units):
        x = keras.layers.LSTM(int(u), return_sequences=True)(x)
    out = keras.layers.TimeDistributed(keras.layers.Dense(n_features))(x)
    return keras.Model(inp, out, name="lstm_autoencoder")


class LSTMAutoencoderDetector(BaseDetector):
    """LSTM autoencoder on sliding windows; the score is the reconstruction error.

    Parameters
    ----------
    window : int, default 30
        Rows per window.
    stride : int, default 5
        Rows between the starts of the training windows (at most
        ``MAX_FIT_WINDOWS`` of them, evenly spaced). Scoring reads every window.
    units : sequence of int, default (32,)
        Encoder LSTM sizes (the decoder mirrors them).
    epochs : int, default 20
    batch_size : int, default 64
    learning_rate : float, default 1e-3
    random_state : int, default 0
        Seeds Keras and makes TensorFlow ops deterministic (same scores on CPU).
    verbose : int, default 1
        1 shows Keras's progress bar.
    threshold : {"quantile", "spot", "sigma"}, float or dict, default "quantile"
    contamination : float, default 0.01

    Attributes
    ----------
    mean_, scale_ : ndarray of shape (n_columns,)
    model_ : keras.Model
    history_ : dict

    Notes
    -----
    Malhotra et al., "LSTM-based encoder-decoder for multi-sensor anomaly
    detection", ICML workshop 2016. Columns are standardised by the training
    mean and standard deviation.

    Examples
    --------
    >>> x = np.sin(np.arange(400) / 5)[:, None]
    >>> det = LSTMAutoencoderDetector(window=20, units=(4,), epochs=1, verbose=0).fit(x)
    >>> det.score(x).shape
    (400,)
    """

    _keras_attrs = ("model_",)
    _state_attrs = ("mean_", "scale_", "history_")
    _fitted_attr = "threshold_"

    def __init__(self, window: int = AE_WINDOW, stride: int = AE_STRIDE,
                 units: Sequence[int] = AE_UNITS, epochs: int = 20, batch_size: int = 64,
                 learning_rate: float = 1e-3, random_state: int = 0, verbose: int = 1,
                 threshold="quantile", contamination: float = 0.01):
        self.window = window
        self.stride = stride
        self.units = units
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.random_state = random_state
        self.verbose = verbose
        self.threshold = threshold
        self.contamination = contamination

    @property
    def min_rows(self) -> int:
        """Fewest rows ``fit`` and ``score`` accept: the window."""
        return max(int(self.window), 1)

    def _check_params(self) -> None:
        super()._check_params()
        _check_int(self.window, "window", minimum=1)
        _check_int(self.stride, "stride", minimum=1)
        _check_int(self.epochs, "epochs", minimum=1)
        _check_int(self.batch_size, "batch_size", minimum=1)

    def _windows(self, values: np.ndarray) -> np.ndarray:
        from lab.tensor_utility import sliding_windows

        z = (values - self.mean_) / self.scale_
        return sliding_windows(z, int(self.window))

    def _fit(self, values: np.ndarray, y: Any, valid: Any) -> None:
        import keras

        seed_everything(self.random_state)
        self.mean_ = values.mean(axis=0)
        scale = values.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        windows = self._windows(values)[:: int(self.stride)]
        if len(windows) > MAX_FIT_WINDOWS:
            keep = np.linspace(0, len(windows) - 1, MAX_FIT_WINDOWS).round().astype(np.intp)
            windows = windows[keep]
        train = np.ascontiguousarray(windows, dtype=np.float32)
        model = build_lstm_autoencoder(int(self.window), values.shape[1], self.units)
        model.compile(optimizer=keras.optimizers.Adam(float(self.learning_rate)), loss="mse")
        hist = model.fit(train, train, epochs=int(self.epochs), batch_size=int(self.batch_size),
                         shuffle=True, verbose=self.verbose)
        self.model_ = model
        self.history_ = {k: [float(v) for v in vals] for k, vals in hist.history.items()}

    def score_windows(self, windows: Any) -> np.ndarray:
        """Reconstruction error of each window of a batch ``(n, window, n_columns)``.

        The windows are raw rows (standardised here as in ``fit``); the chunk
        study scores chunks of ``T = window`` rows with it.

        Raises
        ------
        ValueError
            On a batch of another shape, or NaN.
        """
        self._check_is_fitted()
        w = np.asarray(windows, dtype=np.float64)
        if w.ndim != 3 or w.shape[1:] != (int(self.window), self.n_features_in_):
            raise ValueError(f"windows must have shape (n, {self.window}, "
                             f"{self.n_features_in_}), got {w.shape}")
        if not np.isfinite(w).all():
            raise ValueError(f"windows of shape {w.shape} hold NaN or inf")
        return self._errors((w - self.mean_) / self.scale_)

    def _errors(self, z: np.ndarray) -> np.ndarray:
        z = np.ascontiguousarray(z, dtype=np.float32)
        recon = self.model_.predict(z, verbose=0, batch_size=512)
        return np.mean((recon.astype(np.float64) - z) ** 2, axis=(1, 2))

    def _score(self, values: np.ndarray) -> np.ndarray:
        errors = self._errors(self._windows(values))
        ends = np.arange(int(self.window) - 1, len(values))
        return self._place(ends, errors, len(values))
