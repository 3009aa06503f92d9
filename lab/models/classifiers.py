"""Supervised chunk classifiers: BiLSTM, LSTM, FCN and a spectrogram CNN.

The networks take chunks of shape ``(n, T, n_features)``
(:func:`lab.chunks.make_chunks`) and give one class per chunk.
:class:`ChunkClassifier` wraps them with the detector layer's conventions:
``__init__`` stores settings, ``fit`` returns ``self``, learned state ends in
``_``, ``save``/``load`` write no pickle (Keras ``safe_mode=True``, arrays in
``npz`` without pickle, the rest in JSON).

With two classes the decision threshold is tuned on a validation split for
the best F1 (:func:`best_f1_threshold`) and training stops early on the
validation PR-AUC; with more classes it stops on the validation loss and
predicts the most probable class.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lab.models._base import NotFittedError, seed_everything

__all__ = ["ARCHS", "build_bilstm", "build_lstm", "build_fcn", "build_spectrogram_cnn",
           "chunk_spectrograms", "best_f1_threshold", "ChunkClassifier"]

#: Architectures of :class:`ChunkClassifier`.
ARCHS = ("bilstm", "lstm", "fcn", "spectrogram-cnn")
#: Wang et al. 2017's FCN: filters and kernel sizes of its three convolution blocks.
FCN_FILTERS, FCN_KERNELS = (128, 256, 128), (8, 5, 3)
#: Batch-normalisation momentum (Keras's 0.99 adapts too slowly on a few hundred chunks).
BN_MOMENTUM = 0.9
#: Default LSTM sizes ("small by default") and spectrogram-CNN filters.
LSTM_UNITS, SPEC_FILTERS = (32,), (16, 32)
#: Spectrogram segment length and overlap (samples) of ``arch="spectrogram-cnn"``.
SPEC_NPERSEG = 16
_FORMAT_FILE = "lab-model.json"


def _keras():
    import keras

    return keras


def _head(keras, x, n_classes: int):
    if n_classes == 2:
        return keras.layers.Dense(1, activation="sigmoid")(x)
    return keras.layers.Dense(n_classes, activation="softmax")(x)


def _check_classes(n_classes: int) -> int:
    if int(n_classes) < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    return int(n_classes)


def build_bilstm(T: int, n_features: int, n_classes: int = 2,
                 units: Sequence[int] = LSTM_UNITS, dropout: float = 0.2):
    """The seed's "LSTMv1": stacked bidirectional LSTMs, dropout, a dense head.

    Parameters
    ----------
    T, n_features : int
        Chunk length and features per step.
    n_classes : int, default 2
        Two classes give one sigmoid output; more give a softmax.
    units : sequence of int, default (32,)
        Units of each LSTM layer (each direction).
    dropout : float, default 0.2

    Returns
    -------
    keras.Model (not compiled)

    Examples
    --------
    >>> build_bilstm(60, 4).output_shape
    (None, 1)
    """
    keras = _keras()
    n_classes = _check_classes(n_classes)
    inp = keras.Input((T, n_features))
    x = inp
    for i, u in enumerate(units):
        last = i == len(units) - 1
        x = keras.layers.Bidirectional(keras.layers.LSTM(int(u), return_sequences=not last))(x)
    x = keras.layers.Dropout(dropout)(x)
    return keras.Model(inp, _head(keras, x, n_classes), name="bilstm")


def build_lstm(T: int, n_features: int, n_classes: int = 2,
               units: Sequence[int] = LSTM_UNITS, dropout: float = 0.2):
    """The seed's "v2": stacked (one-directional) LSTMs, dropout, a dense head.

    Parameters are those of :func:`build_bilstm`.

    Examples
    --------
    >>> build_lstm(60, 4, n_classes=3).output_shape
    (None, 3)
    """
    keras = _keras()
    n_classes = _check_classes(n_classes)
    inp = keras.Input((T, n_features))
    x = inp
    for i, u in enumerate(units):
        x = keras.layers.LSTM(int(u), return_sequences=i < len(units) - 1)(x)
    x = keras.layers.Dropout(dropout)(x)
    return keras.Model(inp, _head(keras, x, n_classes), name="lstm")


def build_fcn(T: int | None, n_features: int, n_classes: int = 2,
              filters: Sequence[int] = FCN_FILTERS, kernels: Sequence[int] = FCN_KERNELS):
    """Wang et al.'s fully convolutional network for time series classification.

    Three blocks of 1-D convolution ("same" padding), batch normalisation
    and ReLU, with 128, 256 and 128 filters and kernels 8, 5 and 3, then
    global average pooling and the output layer.

    Parameters
    ----------
    T : int or None
        Chunk length (None: any length).
    n_features, n_classes : int
    filters, kernels : sequences of int of the same length

    Returns
    -------
    keras.Model (not compiled)

    Notes
    -----
    Wang, Yan & Oates, "Time series classification from scratch with deep
    neural networks: a strong baseline", IJCNN 2017; the same network as in
    Fawaz et al., DMKD 2019.

    Examples
    --------
    >>> m = build_fcn(150, 1)
    >>> [l.filters for l in m.layers if hasattr(l, "filters")]
    [128, 256, 128]
    """
    keras = _keras()
    n_classes = _check_classes(n_classes)
    if len(filters) != len(kernels):
        raise ValueError(f"filters and kernels must have the same length, got {len(filters)} "
                         f"and {len(kernels)}")
    inp = keras.Input((T, n_features))
    x = inp
    for f, k in zip(filters, kernels, strict=True):
        x = keras.layers.Conv1D(int(f), int(k), padding="same")(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
        x = keras.layers.Activation("relu")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inp, _head(keras, x, n_classes), name="fcn")


def build_spectrogram_cnn(n_freq: int, n_segments: int, n_channels: int, n_classes: int = 2,
                          filters: Sequence[int] = SPEC_FILTERS):
    """A small 2-D CNN on per-channel spectrograms (frequency x segment x channel).

    Each block is a 3x3 convolution, batch normalisation and ReLU; global
    average pooling and the output layer follow.

    Examples
    --------
    >>> build_spectrogram_cnn(9, 6, 4).output_shape
    (None, 1)
    """
    keras = _keras()
    n_classes = _check_classes(n_classes)
    inp = keras.Input((n_freq, n_segments, n_channels))
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM)(inp)
    for f in filters:
        x = keras.layers.Conv2D(int(f), 3, padding="same")(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
        x = keras.layers.Activation("relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, _head(keras, x, n_classes), name="spectrogram_cnn")


def chunk_spectrograms(X: np.ndarray, nperseg: int = SPEC_NPERSEG,
                       noverlap: int | None = None) -> np.ndarray:
    """Log power spectrogram of every channel of every chunk.

    Each ``X[i, :, j]`` gets :func:`lab.signal_utility.spectrogram`'s
    ``Sxx`` (same window and scaling, computed for all chunks at once), and
    the result is ``log(1e-6 + Sxx)``.

    Parameters
    ----------
    X : ndarray of shape (n, T, n_features)
    nperseg : int, default 16
        Samples per segment, at most ``T``.
    noverlap : int, optional
        Default ``nperseg // 2``.

    Returns
    -------
    ndarray of shape (n, n_freq, n_segments, n_features)

    Examples
    --------
    >>> chunk_spectrograms(np.zeros((2, 60, 3))).shape
    (2, 9, 6, 3)
    """
    from scipy import signal

    X = _check_X(X, "X")
    if not 1 <= int(nperseg) <= X.shape[1]:
        raise ValueError(f"nperseg must be in [1, T={X.shape[1]}], got {nperseg}")
    noverlap = int(nperseg) // 2 if noverlap is None else int(noverlap)
    _, _, sxx = signal.spectrogram(X, window=("tukey", 0.25), nperseg=int(nperseg),
                                   noverlap=noverlap, axis=1, scaling="density")
    # scipy replaces the time axis by frequencies and appends segments: (n, freq, d, seg)
    return np.log(1e-6 + sxx).transpose(0, 1, 3, 2)


def best_f1_threshold(y: Any, score: Any, *, prefer: float | None = None,
                      tol: float = 0.0) -> float:
    """A threshold ``t`` (alarm: ``score >= t``) with the best F1 on ``(y, score)``.

    The distinct scores ``s_1 < ... < s_m`` cut the line into intervals; a
    threshold in ``(s_{k-1}, s_k]`` flags the scores ``>= s_k``, with the F1
    of :func:`sklearn.metrics.precision_recall_curve` at ``s_k``. Without
    ``prefer`` the highest ``s_k`` with the best F1 is returned. With
    ``prefer``, among the intervals whose F1 is within ``tol`` of the best,
    ``prefer`` itself is returned if it lies in one, else the middle of
    the interval nearest to it (never a threshold on a validation score,
    which a slightly different score would cross). A classifier passes
    ``prefer=0.5`` and ``tol`` of one validation chunk, so that ties on a
    small validation set do not push the threshold to an extreme.

    Parameters
    ----------
    y : array of 0/1
        Must hold both classes.
    score : array of float, the same length
    prefer : float, optional
    tol : float, default 0

    Returns
    -------
    float

    Examples
    --------
    >>> best_f1_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.35
    >>> best_f1_threshold([0, 0, 1, 1], [0.1, 0.2, 0.9, 0.95], prefer=0.5)
    0.5
    """
    from sklearn.metrics import precision_recall_curve

    y = np.asarray(y).astype(int)
    score = np.asarray(score, dtype=np.float64)
    if y.shape != score.shape or y.ndim != 1:
        raise ValueError(f"y and score must be 1-D of one length, got {y.shape} and "
                         f"{score.shape}")
    if len(np.unique(y)) != 2:
        raise ValueError(f"y must hold both classes to tune a threshold, got {np.unique(y)}")
    precision, recall, thresholds = precision_recall_curve(y, score)
    p, r = precision[:-1], recall[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    ok = np.flatnonzero(f1 >= f1.max() - tol - 1e-12)
    if prefer is None:
        return float(thresholds[ok].max())
    lower = np.r_[-np.inf, thresholds[:-1]][ok]  # interval (lower, upper]
    upper = thresholds[ok]
    inside = (lower < prefer) & (prefer <= upper)
    if inside.any():
        return float(prefer)
    mid = np.where(np.isfinite(lower), (lower + upper) / 2, upper)
    return float(mid[np.argmin(np.abs(mid - prefer))])


def _check_X(X: Any, name: str) -> np.ndarray:
    arr = np.asarray(X)
    if arr.ndim != 3:
        raise ValueError(f"{name} must have shape (n_chunks, T, n_features), got shape "
                         f"{arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0].tolist()
        raise ValueError(f"{name} of shape {arr.shape} holds NaN or inf (first at "
                         f"{tuple(bad)}); fill or drop it before fit")
    return arr


class _BestEpoch:
    """Early stopping that keeps the best weights: the validation PR-AUC (ties broken
    by the lower validation loss) with two classes, the validation loss otherwise."""

    def __new__(cls, *args, **kwargs):
        keras = _keras()

        class BestEpoch(keras.callbacks.Callback):
            def __init__(self, X_val, y_val, binary, patience):
                super().__init__()
                self.X_val, self.y_val = X_val, y_val
                self.binary, self.patience = binary, patience
                self.best, self.best_epoch, self.weights, self.wait = None, 0, None, 0
                self.pr_auc = []

            def on_epoch_end(self, epoch, logs=None):
                from sklearn.metrics import average_precision_score

                logs = logs if logs is not None else {}
                loss = float(logs.get("val_loss", np.inf))
                if self.binary:
                    p = self.model.predict(self.X_val, verbose=0).ravel()
                    ap = float(average_precision_score(self.y_val, p))
                    logs["val_pr_auc"] = ap
                    self.pr_auc.append(ap)
                    key = (ap, -loss)
                else:
                    key = (-loss,)
                if self.best is None or key > self.best:
                    self.best, self.best_epoch, self.wait = key, epoch + 1, 0
                    self.weights = self.model.get_weights()
                else:
                    self.wait += 1
                    if self.wait >= self.patience:
                        self.model.stop_training = True

            def on_train_end(self, logs=None):
                if self.weights is not None:
                    self.model.set_weights(self.weights)

        return BestEpoch(*args, **kwargs)


class ChunkClassifier:
    """A supervised classifier of chunks ``(n, T, n_features)``: BiLSTM, LSTM, FCN or a
    spectrogram CNN.

    Parameters
    ----------
    arch : {"bilstm", "lstm", "fcn", "spectrogram-cnn"}, default "bilstm"
    units : sequence of int, default (32,)
        LSTM sizes (``bilstm``, ``lstm``).
    filters : sequence of int, optional
        Convolution filters (default: Wang et al.'s (128, 256, 128) for
        ``fcn``, (16, 32) for ``spectrogram-cnn``).
    epochs : int, default 400
        Most epochs; training stops ``patience`` epochs after the best one.
    patience : int, default 100
    batch_size : int, default 16
    learning_rate : float, default 1e-3
        Adam's.
    class_weight : {"balanced", None}, default "balanced"
        Weights ``n / (n_classes * count)`` per class in the loss.
    oversample : bool, default False
        Repeat chunks of the smaller classes (drawn at random) until every
        class is as large as the largest; class weights are then not used.
    validation_size : float, default 0.2
        Share of the training chunks held out for early stopping and the
        threshold (whole groups when ``fit`` gets ``groups``).
    nperseg : int, default 16
        Spectrogram segment length (``spectrogram-cnn``).
    random_state : int, default 0
        Seeds Python, NumPy and Keras and makes TensorFlow ops deterministic:
        the same data give the same model on CPU.
    verbose : int, default 1
        1 shows Keras's progress bar, 0 is silent.

    Attributes
    ----------
    classes_ : ndarray
    threshold_ : float
        Probability of the second class at or above which it is predicted
        (two classes only; NaN otherwise).
    epochs_ : int
        Epoch whose weights were kept.
    history_ : dict
        Per-epoch ``loss``, ``val_loss`` (and ``val_pr_auc``).
    fit_time_ : float
        Seconds ``fit`` took.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 10, 2)); y = (X[:, :, 0].mean(1) > 0).astype(int)
    >>> clf = ChunkClassifier("lstm", units=(4,), epochs=2, verbose=0).fit(X, y)
    >>> clf.predict(X).shape, clf.predict_proba(X).shape
    ((40,), (40, 2))
    """

    def __init__(self, arch: str = "bilstm", units: Sequence[int] = LSTM_UNITS,
                 filters: Sequence[int] | None = None, epochs: int = 400, patience: int = 100,
                 batch_size: int = 16, learning_rate: float = 1e-3,
                 class_weight: str | None = "balanced", oversample: bool = False,
                 validation_size: float = 0.2, nperseg: int = SPEC_NPERSEG,
                 random_state: int = 0, verbose: int = 1):
        self.arch = arch
        self.units = units
        self.filters = filters
        self.epochs = epochs
        self.patience = patience
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.class_weight = class_weight
        self.oversample = oversample
        self.validation_size = validation_size
        self.nperseg = nperseg
        self.random_state = random_state
        self.verbose = verbose

    # --------------------------------------------------------------- sklearn conventions
    def get_params(self) -> dict[str, Any]:
        """The constructor settings (sklearn convention)."""
        import inspect

        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        return f"ChunkClassifier({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    def _check_params(self) -> None:
        from lab._validation import _check_int, _check_option

        _check_option(self.arch, "arch", ARCHS)
        _check_option(self.class_weight, "class_weight", ("balanced", None))
        _check_int(self.epochs, "epochs", minimum=1)
        _check_int(self.patience, "patience", minimum=1)
        _check_int(self.batch_size, "batch_size", minimum=1)
        if not 0 < float(self.validation_size) < 1:
            raise ValueError(f"validation_size must be in (0, 1), got {self.validation_size!r}")

    def _check_is_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("This ChunkClassifier instance is not fitted yet; call fit() "
                                 "first")

    # --------------------------------------------------------------- fit
    def fit(self, X: Any, y: Any, *, groups: Any = None, valid: tuple | None = None):
        """Train on chunks ``X`` with labels ``y``.

        Parameters
        ----------
        X : array of shape (n_chunks, T, n_features)
            No NaN.
        y : array of shape (n_chunks,)
            Any labels; at least two classes.
        groups : array of shape (n_chunks,), optional
            Each chunk's source: the validation split then holds out whole
            groups (:func:`lab.chunks.validation_split`), so that no
            validation chunk shares an experiment with a training chunk.
            Without it, a stratified random share of the chunks.
        valid : (X_valid, y_valid), optional
            An explicit validation set instead of a split of ``X``.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            On a wrong shape, NaN, a single class in ``y``, or bad settings.
        """
        self._check_params()
        X = _check_X(X, "X")
        y = np.asarray(y)
        if y.shape != (len(X),):
            raise ValueError(f"y must have one label per chunk: shape {y.shape}, expected "
                             f"({len(X)},)")
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(f"y holds a single class ({classes.tolist()}) in the training "
                             "fold; a classifier needs at least two")
        for attr in [a for a in vars(self) if a.endswith("_")]:
            delattr(self, attr)
        start = time.perf_counter()
        seed_everything(self.random_state)
        codes = np.searchsorted(classes, y)
        if valid is not None:
            X_val = _check_X(valid[0], "valid[0]")
            y_val = np.searchsorted(classes, np.asarray(valid[1]))
            X_fit, y_fit = X, codes
        else:
            fit_idx, val_idx = self._split(codes, groups)
            X_fit, y_fit, X_val, y_val = X[fit_idx], codes[fit_idx], X[val_idx], codes[val_idx]
        self.mean_ = X_fit.mean(axis=(0, 1))
        scale = X_fit.std(axis=(0, 1))
        self.scale_ = np.where(scale > 0, scale, 1.0)
        weights = None
        if self.oversample:
            X_fit, y_fit = self._oversample(X_fit, y_fit)
        elif self.class_weight == "balanced":
            counts = np.bincount(y_fit, minlength=len(classes))
            weights = {i: len(y_fit) / (len(classes) * c) for i, c in enumerate(counts) if c}
        self.classes_ = classes
        self.T_, self.n_features_in_ = int(X.shape[1]), int(X.shape[2])
        inputs_fit, inputs_val = self._inputs(X_fit), self._inputs(X_val)
        model = self._build(inputs_fit.shape[1:], len(classes))
        keras = _keras()
        binary = len(classes) == 2
        model.compile(optimizer=keras.optimizers.Adam(float(self.learning_rate)),
                      loss="binary_crossentropy" if binary else
                      "sparse_categorical_crossentropy")
        stop = _BestEpoch(inputs_val, y_val, binary and len(np.unique(y_val)) == 2,
                          int(self.patience))
        history = model.fit(inputs_fit, y_fit.astype(np.float32 if binary else np.int64),
                            validation_data=(inputs_val, y_val.astype(
                                np.float32 if binary else np.int64)),
                            epochs=int(self.epochs), batch_size=int(self.batch_size),
                            class_weight=weights, shuffle=True, callbacks=[stop],
                            verbose=self.verbose)
        self.model_ = model
        self.epochs_ = int(stop.best_epoch)
        self.history_ = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        if stop.pr_auc:
            self.history_["val_pr_auc"] = stop.pr_auc
        self.threshold_ = float("nan")
        if binary and len(np.unique(y_val)) == 2:
            p_val = self._proba1(inputs_val)
            self.threshold_ = best_f1_threshold(y_val, p_val, prefer=0.5, tol=1.0 / len(y_val))
        elif binary:
            self.threshold_ = 0.5
        self.fit_time_ = time.perf_counter() - start
        return self

    def _split(self, codes: np.ndarray, groups: Any) -> tuple[np.ndarray, np.ndarray]:
        if groups is not None:
            from lab.chunks import validation_split

            groups = np.asarray(groups)
            if groups.shape != codes.shape:
                raise ValueError(f"groups must have one value per chunk: shape {groups.shape}, "
                                 f"expected {codes.shape}")
            return validation_split(groups, codes, float(self.validation_size),
                                    self.random_state)
        from sklearn.model_selection import train_test_split

        idx = np.arange(len(codes))
        stratify = codes if np.bincount(codes).min() >= 2 else None
        fit_idx, val_idx = train_test_split(idx, test_size=float(self.validation_size),
                                            random_state=self.random_state, stratify=stratify)
        return np.sort(fit_idx), np.sort(val_idx)

    def _oversample(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.random_state)
        counts = np.bincount(y)
        idx = [np.flatnonzero(y == c) for c in range(len(counts)) if counts[c]]
        top = counts.max()
        take = np.concatenate([np.r_[i, rng.choice(i, top - len(i))] for i in idx])
        take = rng.permutation(take)
        return X[take], y[take]

    def _inputs(self, X: np.ndarray) -> np.ndarray:
        Z = (X - self.mean_) / self.scale_
        if self.arch == "spectrogram-cnn":
            Z = chunk_spectrograms(Z, min(int(self.nperseg), Z.shape[1]))
        return Z.astype(np.float32)

    def _build(self, shape: tuple, n_classes: int):
        if self.arch == "bilstm":
            return build_bilstm(*shape, n_classes, units=self.units)
        if self.arch == "lstm":
            return build_lstm(*shape, n_classes, units=self.units)
        if self.arch == "fcn":
            filters = tuple(self.filters or FCN_FILTERS)
            return build_fcn(shape[0], shape[1], n_classes, filters=filters,
                             kernels=FCN_KERNELS[: len(filters)])
        return build_spectrogram_cnn(*shape, n_classes, filters=self.filters or SPEC_FILTERS)

    # --------------------------------------------------------------- predict
    def _checked(self, X: Any) -> np.ndarray:
        self._check_is_fitted()
        X = _check_X(X, "X")
        if X.shape[1:] != (self.T_, self.n_features_in_):
            raise ValueError(f"X has chunks of shape {X.shape[1:]}; the classifier was fitted "
                             f"on {(self.T_, self.n_features_in_)}")
        return X

    def _proba1(self, inputs: np.ndarray) -> np.ndarray:
        return self.model_.predict(inputs, verbose=0, batch_size=256).ravel().astype(np.float64)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape ``(n_chunks, n_classes)`` in the order of ``classes_``."""
        inputs = self._inputs(self._checked(X))
        if len(self.classes_) == 2:
            p = self._proba1(inputs)
            return np.column_stack([1 - p, p])
        return self.model_.predict(inputs, verbose=0, batch_size=256).astype(np.float64)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class of every chunk (two classes: the tuned ``threshold_``)."""
        proba = self.predict_proba(X)
        if len(self.classes_) == 2:
            return self.classes_[(proba[:, 1] >= self.threshold_).astype(int)]
        return self.classes_[proba.argmax(axis=1)]

    # --------------------------------------------------------------- save / load
    _arrays = ("mean_", "scale_", "classes_")
    _plain = ("threshold_", "epochs_", "history_", "fit_time_", "T_", "n_features_in_")

    def save(self, path: str | os.PathLike) -> Path:
        """Save the fitted classifier to the directory ``path`` (replaced atomically)."""
        from lab.tracking import atomic_directory, to_jsonable

        self._check_is_fitted()
        path = Path(path)
        with atomic_directory(path) as tmp:
            self.model_.save(tmp / "model_.keras")
            np.savez(tmp / "state.npz", **{a: getattr(self, a) for a in self._arrays})
            (tmp / "settings.json").write_text(json.dumps({
                "params": to_jsonable(self.get_params()),
                "state": to_jsonable({a: getattr(self, a) for a in self._plain})}))
            (tmp / _FORMAT_FILE).write_text(json.dumps({"class": "ChunkClassifier",
                                                        "format": 1}))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ChunkClassifier:
        """Load a classifier written by :meth:`save` (Keras ``safe_mode=True``, no pickle).

        Raises
        ------
        ValueError
            If ``path`` is not a saved ChunkClassifier.
        """
        path = Path(path)
        marker = path / _FORMAT_FILE
        if not marker.is_file():
            raise ValueError(f"{path} is not a saved ChunkClassifier (no {_FORMAT_FILE})")
        try:
            meta = json.loads(marker.read_text())
            settings = json.loads((path / "settings.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path} is not a readable saved model: {exc}") from exc
        if meta.get("class") != "ChunkClassifier":
            raise ValueError(f"{path} holds a {meta.get('class')!r}, not a ChunkClassifier")
        params = {k: tuple(v) if isinstance(v, list) else v
                  for k, v in settings["params"].items()}
        obj = cls(**params)
        for attr, value in settings["state"].items():
            setattr(obj, attr, float("nan") if attr == "threshold_" and value is None else value)
        with np.load(path / "state.npz", allow_pickle=False) as data:
            for attr in data.files:
                setattr(obj, attr, data[attr])
        try:
            obj.model_ = _keras().saving.load_model(path / "model_.keras", safe_mode=True)
        except Exception as exc:
            raise ValueError(f"{path / 'model_.keras'} is not a valid Keras model: {exc}") from exc
        return obj
