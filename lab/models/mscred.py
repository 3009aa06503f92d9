"""MSCRED: multi-scale convolutional recurrent encoder-decoder (Zhang et al., AAAI 2019).

The method, in four steps:

1. turn a multivariate series into multi-scale signature matrices
   (:func:`lab.tensor_utility.signature_matrices`);
2. encode each matrix with four convolutions;
3. model the evolution of each level's feature maps over the last ``steps``
   matrices with a ConvLSTM, summarise the hidden states with attention, and
   decode with transposed convolutions and skip connections;
4. score each time by how many residual entries of the smallest scale are
   poorly reconstructed.

The public reimplementations we know of are broken in ways this module tests
against: they feed the same frame to every ConvLSTM step (no recurrence), take
attention over the wrong axis, normalise over train and test together (leakage)
or compute a constant score. Here the recurrence, train-only normalisation and
training windows that never cross into validation are all tested. After
training, a self-check injects anomalies into the validation period and warns
(:class:`SeparationWarning`) when they do not score above the threshold. When
the training loss has also collapsed towards zero, the warning is an
:class:`IdentityMappingWarning`: the network reconstructs anomalous matrices as
well as normal ones, the signature of an identity mapping (or of leakage).

The evaluation helpers for labelled data (:func:`evaluate_events`,
:func:`top_episodes`, :func:`root_cause_recall`, :func:`evaluate_synthetic`)
live here too, so that notebooks only call them.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import pandas as pd
from keras import layers, ops

from lab._validation import _as_2d, _check_int
from lab.models._base import BaseDetector, seed_everything
from lab.tensor_utility import signature_matrices

__all__ = [
    "MSCREDDetector",
    "build_mscred",
    "ConvLSTMSequence",
    "StepAttention",
    "IdentityMappingWarning",
    "SeparationWarning",
    "event_labels",
    "evaluate_events",
    "top_episodes",
    "root_cause_recall",
    "evaluate_synthetic",
    "FILTERS",
    "MIN_SERIES",
    "TAU_QUANTILE",
]

#: Channels of the four encoder levels (the paper's 32, 64, 128, 256).
FILTERS = (32, 64, 128, 256)
#: Encoder kernel size and stride per level (paper: 3x3/1, 3x3/2, 2x2/2, 2x2/2).
_ENCODER = ((3, 1), (3, 2), (2, 2), (2, 2))
#: ConvLSTM kernel size per level (paper: 3x3 on the two fine levels, 2x2 below).
_CONVLSTM_KERNELS = (3, 3, 2, 2)
#: Rescaling factor chi of the attention logits <H_k, H_last> / chi (paper: 5).
CHI = 5.0
#: Fewest series MSCRED accepts: below 4 the fourth encoder level has nothing to encode.
MIN_SERIES = 4
#: Default number of training epochs (see docs/mscred.md for the choice).
DEFAULT_EPOCHS = 8
#: Default minibatch size: small batches give more Adam updates per epoch, which
#: matters more than throughput at the paper's learning rate of 2e-4.
DEFAULT_BATCH_SIZE = 8
#: Minibatch size for inference; it bounds the memory of :meth:`MSCREDDetector.score`.
_PREDICT_BATCH = 64
#: Share of ``train`` held out as validation when ``fit`` gets no ``valid``.
VALID_FRACTION = 0.2
#: When ``tau`` is None it is this quantile of the validation residuals of the
#: smallest scale: about 1 entry in 200 counts on normal data, so a normal count is
#: a few entries rather than almost always 0, and its maximum over the validation
#: period (hence ``threshold_``) is a stable statistic. 0.999 left two false-alarm
#: episodes on the synthetic protocol (docs/mscred.md).
TAU_QUANTILE = 0.995
#: Identity-mapping check: level shift, in training standard deviations, added
#: to a few random series at probe positions in the validation period.
PROBE_SHOCK = 3.0
#: Identity-mapping check: series shocked per probe, and most probes.
_PROBE_SERIES = 3
_MAX_PROBES = 8
#: Identity-mapping check: warn when fewer probes than this share score above
#: the threshold.
PROBE_MIN_DETECTION = 0.5
#: Identity-mapping check: a final training loss below this share of the mean
#: square of the target matrices counts as collapsed.
COLLAPSE_RATIO = 1e-3
#: A scale must stay non-zero after standardisation; constant series get scale 1.
_MIN_SCALE = 1e-12


class SeparationWarning(UserWarning):
    """Anomalies injected into the validation period do not score above the threshold."""


class IdentityMappingWarning(SeparationWarning):
    """The training loss collapsed and injected anomalies are reconstructed: an identity map."""


# --------------------------------------------------------------------------- layers


def _lstm_bias_initializer(filters: int):
    """Zero bias with the forget gate at 1 (Keras' ``unit_forget_bias``)."""

    def init(shape, dtype=None):
        return ops.concatenate(
            [ops.zeros((filters,), dtype), ops.ones((filters,), dtype),
             ops.zeros((2 * filters,), dtype)]
        )

    return init


@keras.saving.register_keras_serializable(package="lab")
class ConvLSTMSequence(layers.Layer):
    """A ConvLSTM over axis 1 of ``(batch, steps, rows, cols, channels)``, returning every step.

    The same cell as ``keras.layers.ConvLSTM2D(filters, kernel_size,
    padding="same", return_sequences=True)`` (gate order i, f, c, o; sigmoid
    gates, tanh state) with the same weight layout, so weights can be copied
    between the two (tested). The recurrence is spelled out over the steps:
    one input convolution for all steps, one gate convolution per step, and
    none for the zero initial state. ``benchmarks/bench_mscred.py`` times it
    against ``ConvLSTM2D`` in the same network: on 2 CPU cores it trained
    1.1-1.2x as fast and ran inference at the same speed.

    Parameters
    ----------
    filters : int
        Hidden channels.
    kernel_size : int
        Square kernel of the input and recurrent convolutions ("same" padding).

    Notes
    -----
    Shi et al., "Convolutional LSTM Network", NeurIPS 2015, without peepholes,
    as used by MSCRED (Zhang et al., AAAI 2019, eq. 3).

    Examples
    --------
    >>> import numpy as np
    >>> layer = ConvLSTMSequence(4, 3)
    >>> tuple(layer(np.zeros((2, 5, 6, 6, 3), "float32")).shape)
    (2, 5, 6, 6, 4)
    """

    def __init__(self, filters: int, kernel_size: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)

    def build(self, input_shape):
        channels = input_shape[-1]
        k, f = self.kernel_size, self.filters
        self.kernel = self.add_weight(shape=(k, k, channels, 4 * f), name="kernel",
                                      initializer="glorot_uniform")
        self.recurrent_kernel = self.add_weight(shape=(k, k, f, 4 * f), name="recurrent_kernel",
                                                initializer="orthogonal")
        self.bias = self.add_weight(shape=(4 * f,), name="bias",
                                    initializer=_lstm_bias_initializer(f))

    def call(self, inputs):
        steps, rows, cols, channels = inputs.shape[1:]
        f = self.filters
        x = ops.conv(ops.reshape(inputs, (-1, rows, cols, channels)), self.kernel,
                     padding="same") + self.bias
        x = ops.reshape(x, (-1, steps, rows, cols, 4 * f))
        h = c = None
        out = []
        for z in ops.unstack(x, axis=1):
            if h is not None:
                z = z + ops.conv(h, self.recurrent_kernel, padding="same")
            # split, not slicing: its gradient is a concatenation, not four padded copies
            i, f_gate, g, o = ops.split(z, 4, axis=-1)
            i, g, o = ops.sigmoid(i), ops.tanh(g), ops.sigmoid(o)
            # The first step has zero state, so the forget gate has nothing to act on.
            c = i * g if c is None else ops.sigmoid(f_gate) * c + i * g
            h = o * ops.tanh(c)
            out.append(h)
        return ops.stack(out, axis=1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package="lab")
class StepAttention(layers.Layer):
    """Temporal attention of MSCRED: weight the steps by their match with the last one.

    For hidden states ``H_1 .. H_h`` (axis 1), returns
    ``sum_k alpha_k H_k`` with ``alpha = softmax_k(<H_k, H_h> / chi)``, the
    inner product taken over rows, columns and channels.

    Parameters
    ----------
    chi : float, default 5.0
        Rescaling factor of the logits (the paper's chi).

    Notes
    -----
    Zhang et al., AAAI 2019, eq. 4. The softmax runs over the steps axis, not
    over channels or positions.

    Examples
    --------
    >>> import numpy as np
    >>> h = np.zeros((1, 3, 2, 2, 1), "float32")
    >>> h[0, :, :, :, 0] = np.array([1.0, 2.0, 3.0])[:, None, None]
    >>> out = StepAttention(chi=1.0)(h)
    >>> tuple(out.shape), bool(2.9 < float(out[0, 0, 0, 0]) < 3.0)
    ((1, 2, 2, 1), True)
    """

    def __init__(self, chi: float = CHI, **kwargs):
        super().__init__(**kwargs)
        self.chi = float(chi)

    def call(self, inputs):
        logits = ops.sum(inputs * inputs[:, -1:], axis=(2, 3, 4)) / self.chi
        alpha = ops.softmax(logits, axis=1)
        return ops.sum(inputs * alpha[:, :, None, None, None], axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *input_shape[2:])

    def get_config(self):
        return {**super().get_config(), "chi": self.chi}


def build_mscred(n_series: int, n_scales: int = 3, steps: int = 5, *,
                 filters: Sequence[int] = FILTERS, chi: float = CHI) -> keras.Model:
    """Build the MSCRED network (not compiled).

    Parameters
    ----------
    n_series : int
        Size ``n`` of the ``n x n`` signature matrices, at least 4.
    n_scales : int, default 3
        Number of signature scales (input and output channels).
    steps : int, default 5
        Length ``h`` of the matrix sequence fed to the ConvLSTMs.
    filters : sequence of 4 ints, default (32, 64, 128, 256)
        Channels of the four encoder levels; the ConvLSTM of a level has as
        many filters. Smaller values make tiny test models.
    chi : float, default 5.0
        Attention rescaling factor.

    Returns
    -------
    keras.Model
        Input ``(batch, steps, n, n, n_scales)`` (channels last), output the
        reconstruction ``(batch, n, n, n_scales)`` of the last step.

    Raises
    ------
    ValueError
        If ``n_series < 4``, ``n_scales < 1``, ``steps < 1`` or ``filters`` is
        not four positive integers.

    Notes
    -----
    Zhang et al., AAAI 2019, section 3 and figure 2:

    - encoder: conv 3x3/32 stride 1, 3x3/64 stride 2, 2x2/128 stride 2,
      2x2/256 stride 2, all SELU, "same" padding, applied to every step;
    - a ConvLSTM per level over the steps axis (:class:`ConvLSTMSequence`),
      then :class:`StepAttention` over its hidden states;
    - decoder: transposed convolutions 2x2/128, 2x2/64, 3x3/32 (stride 2,
      SELU), each concatenated with the attended state of the level above it
      and cropped where a stride-2 level had an odd size, then a 3x3 stride-1
      transposed convolution to ``n_scales`` channels. The output layer is
      linear: standardised signature matrices have entries below SELU's
      floor of -1.76.

    Examples
    --------
    >>> model = build_mscred(5, steps=2, filters=(2, 2, 2, 2))
    >>> model.input_shape, model.output_shape
    ((None, 2, 5, 5, 3), (None, 5, 5, 3))
    """
    n_series = _check_int(n_series, "n_series", minimum=MIN_SERIES)
    n_scales = _check_int(n_scales, "n_scales", minimum=1)
    steps = _check_int(steps, "steps", minimum=1)
    filters = _check_filters(filters)
    inputs = keras.Input((steps, n_series, n_series, n_scales), name="signature_matrices")
    x = inputs
    attended = []
    for level, (f, (kernel, stride), lstm_kernel) in enumerate(
            zip(filters, _ENCODER, _CONVLSTM_KERNELS, strict=True), start=1):
        x = layers.TimeDistributed(
            layers.Conv2D(f, kernel, strides=stride, padding="same", activation="selu"),
            name=f"conv{level}")(x)
        h = ConvLSTMSequence(f, lstm_kernel, name=f"convlstm{level}")(x)
        attended.append(StepAttention(chi, name=f"attention{level}")(h))
    d = attended[-1]
    for level in (3, 2, 1):
        kernel, stride = _ENCODER[level]
        d = layers.Conv2DTranspose(filters[level - 1], kernel, strides=stride, padding="same",
                                   activation="selu", name=f"deconv{level + 1}")(d)
        excess = d.shape[1] - attended[level - 1].shape[1]
        if excess:
            d = layers.Cropping2D(((0, excess), (0, excess)), name=f"crop{level + 1}")(d)
        d = layers.Concatenate(name=f"skip{level}")([d, attended[level - 1]])
    outputs = layers.Conv2DTranspose(n_scales, 3, strides=1, padding="same",
                                     name="deconv1")(d)
    return keras.Model(inputs, outputs, name="mscred")


def _check_filters(filters: Sequence[int]) -> tuple[int, ...]:
    try:
        filters = tuple(filters)
    except TypeError:
        raise ValueError(f"filters must be four positive integers, got {filters!r}") from None
    if len(filters) != 4:
        raise ValueError(f"filters must be four positive integers, got {filters!r}")
    return tuple(_check_int(f, "filters", minimum=1) for f in filters)


# --------------------------------------------------------------------------- kernels


def _standardize_kernel(values: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (values - mean) / scale


def _to_channels_last(M: np.ndarray) -> np.ndarray:
    """(K, scales, n, n) float64 -> (K, n, n, scales) float32."""
    return np.ascontiguousarray(np.moveaxis(M, 1, -1), dtype=np.float32)


def _sequences(M: np.ndarray, steps: int, lo: int = 0, hi: int | None = None) -> np.ndarray:
    """Sequences ``M[k - steps + 1 : k + 1]`` for k in ``[steps - 1 + lo, steps - 1 + hi)``."""
    windows = np.lib.stride_tricks.sliding_window_view(M, steps, axis=0)
    windows = windows[lo:hi]
    return np.ascontiguousarray(np.moveaxis(windows, -1, 1))


def _count_kernel(residual: np.ndarray, tau: float) -> np.ndarray:
    return (residual > tau).sum(axis=(1, 2))


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


# --------------------------------------------------------------------------- detector


class MSCREDDetector(BaseDetector):
    """Unsupervised anomaly detection and diagnosis with MSCRED.

    Parameters
    ----------
    windows : tuple of int, default (10, 30, 60)
        Signature-matrix window lengths in rows, one scale each. The score
        uses the smallest.
    step : int, default 10
        Rows between consecutive matrices.
    steps : int, default 5
        Matrices per input sequence (the ConvLSTM length ``h``).
    epochs : int, default 8
        Training epochs.
    batch_size : int, default 8
        Training minibatch size.
    learning_rate : float, default 2e-4
        Adam learning rate (the paper's).
    tau : float or None, default None
        A squared residual entry above ``tau`` is "poorly reconstructed".
        None: the 0.995 quantile of the validation residuals of the smallest
        scale, learned as ``tau_``. Validation matrices end at every row of the
        validation period, not only every ``step`` rows.
    alpha : float, default 1.5
        ``threshold_ = alpha * max(validation score)`` (the paper's beta),
        the maximum over matrices ending at every validation row.
    random_state : int, default 0
        Seed of weights, shuffling and the identity-mapping probes.
    filters : tuple of 4 ints, default (32, 64, 128, 256)
        Encoder channels, see :func:`build_mscred`.

    Attributes
    ----------
    model_ : keras.Model
        The trained network.
    mean_, scale_ : ndarray of shape (n_series,)
        Standardisation statistics, from the training rows only.
    columns_ : list
        Series names seen in ``fit``.
    tau_ : float
        Residual level above which an entry counts.
    threshold_ : float
        Score above which :meth:`predict` raises an alarm.
    valid_score_max_ : float
        Largest validation score (matrices ending at every validation row).
    history_ : dict
        ``{"loss": [...], "val_loss": [...]}`` per epoch (mean squared error).
    identity_check_ : dict
        ``loss_ratio`` (final training loss over the mean square of the
        targets), ``probes``, ``probes_detected`` and ``probe_detection_rate``.
    fit_seconds_ : float
        Wall time of the training.

    Notes
    -----
    Zhang et al., "A Deep Neural Network for Unsupervised Anomaly Detection
    and Diagnosis in Multivariate Time Series Data", AAAI 2019
    (arXiv:1811.08055). The series is standardised with training statistics
    (the reference code min-max scales the whole series, test included); the
    loss is the mean squared reconstruction error of the last matrix of each
    sequence; the score at a time is the number of entries of the smallest
    scale's squared residual matrix above ``tau`` (section 3.5); root causes
    are ranked by residual row mass (section 4.4).

    Examples
    --------
    A tiny network for one epoch, to show the calls (the defaults are the paper's):

    >>> from lab.datasets import make_mscred_synthetic
    >>> df, truth = make_mscred_synthetic(n_series=6, length=2000, n_anomalies=1)
    >>> det = MSCREDDetector(windows=(10, 20), step=10, steps=2, epochs=1,
    ...                      filters=(2, 2, 2, 2))
    >>> det = det.fit(df.iloc[:800], df.iloc[800:1000])
    >>> score = det.score(df.iloc[1000:])
    >>> score.name, len(score), bool(det.threshold_ == det.alpha * det.valid_score_max_)
    ('score', 98, True)
    >>> at = truth["start"][0] + 5
    >>> sorted(det.root_causes(df, at, k=3).index) == sorted(truth["root_causes"][0])
    True
    """

    _keras_attrs = ("model_",)
    _state_attrs = ("mean_", "scale_", "columns_", "tau_", "threshold_", "valid_score_max_",
                    "history_", "identity_check_", "fit_seconds_")
    _fitted_attr = "model_"

    def __init__(self, windows: Sequence[int] = (10, 30, 60), step: int = 10, steps: int = 5,
                 epochs: int = DEFAULT_EPOCHS, batch_size: int = DEFAULT_BATCH_SIZE,
                 learning_rate: float = 2e-4, tau: float | None = None, alpha: float = 1.5,
                 random_state: int = 0, filters: Sequence[int] = FILTERS):
        self.windows = windows
        self.step = step
        self.steps = steps
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.tau = tau
        self.alpha = alpha
        self.random_state = random_state
        self.filters = filters

    # ------------------------------------------------------------ settings
    def _settings(self) -> tuple[tuple[int, ...], int, int]:
        try:
            windows = tuple(self.windows)
        except TypeError:
            raise ValueError(f"windows must be a sequence of ints, got {self.windows!r}") from None
        if not windows:
            raise ValueError("windows must hold at least one window length")
        windows = tuple(_check_int(w, "windows", minimum=1) for w in windows)
        step = _check_int(self.step, "step", minimum=1)
        steps = _check_int(self.steps, "steps", minimum=1)
        _check_int(self.epochs, "epochs", minimum=1)
        _check_int(self.batch_size, "batch_size", minimum=1)
        _check_int(self.random_state, "random_state", minimum=0)
        _check_filters(self.filters)
        for name in ("learning_rate", "alpha"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if self.tau is not None and (not isinstance(self.tau, (int, float))
                                     or not math.isfinite(self.tau) or self.tau < 0):
            raise ValueError(f"tau must be None or a finite number >= 0, got {self.tau!r}")
        return windows, step, steps

    @property
    def min_rows(self) -> int:
        """Fewest rows ``fit`` accepts per period: ``max(windows) + steps * step``."""
        windows, step, steps = self._settings()
        return max(windows) + steps * step

    @property
    def _context_rows(self) -> int:
        """Rows behind one input sequence: ``max(windows) + (steps - 1) * step``."""
        windows, step, steps = self._settings()
        return max(windows) + (steps - 1) * step

    # ------------------------------------------------------------ fit
    def fit(self, train, valid=None, *, progress: bool = False) -> MSCREDDetector:
        """Train on ``train``, set ``tau_`` and ``threshold_`` on ``valid``.

        Parameters
        ----------
        train : DataFrame or ndarray of shape (n_timepoints, n_series)
            Normal data, ``n_series >= 4``, no NaN.
        valid : DataFrame or ndarray, optional
            Normal data after ``train`` with the same columns. Default: the
            last 20% of ``train`` (which then trains on the first 80%).
        progress : bool, default False
            Show a progress bar over the training batches.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            On fewer than 4 series, fewer than ``max(windows) + steps * step``
            rows in either period, NaN or infinite values, different columns,
            or a ``valid`` whose index does not come after ``train``'s.

        Warns
        -----
        IdentityMappingWarning
            When the final training loss is below ``COLLAPSE_RATIO`` of the mean
            square of the training matrices while fewer than half of the
            anomalies injected into the validation period score above
            ``threshold_``: the network behaves like an identity map.
        SeparationWarning
            When those anomalies are missed but the loss did not collapse.

        Notes
        -----
        Normalisation statistics come from ``train`` only, and training
        sequences are cut from ``train`` alone, so no training window
        straddles the train/valid boundary.
        """
        windows, step, steps = self._settings()
        min_rows = max(windows) + steps * step
        values, index, columns = _as_2d(train, "train", min_cols=MIN_SERIES)
        if valid is None:
            cut = int(round(len(values) * (1 - VALID_FRACTION)))
            train_values, valid_values = values[:cut], values[cut:]
            _check_rows(train_values, f"train (its first {1 - VALID_FRACTION:.0%})", min_rows)
            _check_rows(valid_values, f"train (its last {VALID_FRACTION:.0%}, held out as "
                        "validation)", min_rows)
        else:
            train_values = values
            _check_rows(train_values, "train", min_rows)
            valid_values, valid_index, valid_columns = _as_2d(valid, "valid",
                                                              min_cols=MIN_SERIES)
            _check_rows(valid_values, "valid", min_rows)
            if valid_values.shape[1] != values.shape[1] or (
                    isinstance(valid, pd.DataFrame) and isinstance(train, pd.DataFrame)
                    and not valid_columns.equals(columns)):
                raise ValueError(f"valid has columns {list(valid_columns)[:10]} (shape "
                                 f"{valid_values.shape}); expected the columns of train "
                                 f"{list(columns)[:10]} ({values.shape[1]} series)")
            if isinstance(valid, pd.DataFrame | pd.Series) and isinstance(
                    train, pd.DataFrame | pd.Series):
                _check_after(index, valid_index)
        self.mean_ = train_values.mean(axis=0)
        scale = train_values.std(axis=0)
        self.scale_ = np.where(scale > _MIN_SCALE, scale, 1.0)
        self.columns_ = list(columns)
        started = time.perf_counter()
        self._fit(_standardize_kernel(train_values, self.mean_, self.scale_),
                  _standardize_kernel(valid_values, self.mean_, self.scale_), progress)
        self.fit_seconds_ = time.perf_counter() - started
        self._set_threshold(_standardize_kernel(valid_values, self.mean_, self.scale_))
        return self

    def _build_model(self, n_series: int, n_scales: int) -> keras.Model:
        """The network to train; tests override it to plug in degenerate models."""
        return build_mscred(n_series, n_scales, self.steps, filters=tuple(self.filters))

    def _dataset(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Input sequences and last-step targets of one period, from that period only."""
        M = self._matrices_kernel(Z)
        X = _sequences(M, self.steps)
        return X, X[:, -1]

    def _fit(self, Z_train: np.ndarray, Z_valid: np.ndarray, progress: bool) -> None:
        seed_everything(self.random_state)
        X_train, y_train = self._dataset(Z_train)
        X_valid, y_valid = self._dataset(Z_valid)
        model = self._build_model(Z_train.shape[1], len(tuple(self.windows)))
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss="mse")
        callbacks = []
        if progress:
            callbacks.append(_Progress(self.epochs * math.ceil(len(X_train) / self.batch_size)))
        fitted = model.fit(X_train, y_train, validation_data=(X_valid, y_valid),
                           epochs=self.epochs, batch_size=self.batch_size, shuffle=True,
                           verbose=0, callbacks=callbacks)
        self.model_ = model
        self.history_ = {"loss": [float(v) for v in fitted.history["loss"]],
                         "val_loss": [float(v) for v in fitted.history["val_loss"]]}
        target_power = float(np.mean(np.square(y_train, dtype=np.float64)))
        self._loss_ratio = self.history_["loss"][-1] / max(target_power, _MIN_SCALE)

    def _set_threshold(self, Z_valid: np.ndarray) -> None:
        windows, step, steps = self._settings()
        # every end row of the validation period, not only the step grid: ten times
        # more matrices for step=10, so the maximum is closer to that of a longer
        # test period (docs/mscred.md)
        starts = [s for s in range(step) if len(Z_valid) - s >= self._context_rows]
        R = self._residuals_kernel(*(self._matrices_kernel(Z_valid[s:]) for s in starts))
        smallest = R[:, :, :, self._smallest_scale]
        self.tau_ = float(np.quantile(smallest, TAU_QUANTILE)) if self.tau is None \
            else float(self.tau)
        valid_score = _count_kernel(smallest, self.tau_)
        self.valid_score_max_ = float(valid_score.max())
        self.threshold_ = float(self.alpha * self.valid_score_max_)
        self.identity_check_ = self._identity_check(Z_valid)
        check = self.identity_check_
        if check["probes"] and check["probe_detection_rate"] < PROBE_MIN_DETECTION:
            missed = (f"only {check['probes_detected']} of {check['probes']} anomalies injected "
                      f"into the validation period ({PROBE_SHOCK:g} standard deviations on "
                      f"{_PROBE_SERIES} series) score above threshold_={self.threshold_:.4g}")
            if check["loss_ratio"] < COLLAPSE_RATIO:
                warnings.warn(
                    f"identity-mapping check failed: the training loss collapsed to "
                    f"{check['loss_ratio']:.2e} of the mean square of the signature matrices "
                    f"while {missed}. The network reconstructs anomalous matrices as well as "
                    "normal ones, like an identity mapping, so its scores cannot separate "
                    "anomalies. Look for leakage of the scored data into training, or a "
                    "path that bypasses the bottleneck.", IdentityMappingWarning, stacklevel=3)
            else:
                warnings.warn(
                    f"separation check failed: {missed} (training loss at "
                    f"{check['loss_ratio']:.2e} of the mean square of the signature matrices). "
                    "The scores may not separate anomalies: train longer, or check that the "
                    "validation period is normal.", SeparationWarning, stacklevel=3)

    def _identity_check(self, Z_valid: np.ndarray) -> dict[str, Any]:
        """Inject level shifts into the validation period and count how many score high."""
        windows, step, steps = self._settings()
        duration = min(windows)
        n_matrices = (len(Z_valid) - max(windows)) // step + 1
        # exclusive end row of each sequence's last matrix
        seq_end = max(windows) + step * np.arange(steps - 1, n_matrices)
        # a probe fills the smallest window of a sequence on the grid; probes lie far
        # enough apart that none is in the input of the sequence another one fills
        spacing = math.ceil((self._context_rows + duration) / step) + 1
        starts = list(seq_end[::spacing][:_MAX_PROBES] - duration)
        result = {"loss_ratio": float(self._loss_ratio), "probes": len(starts),
                  "probes_detected": 0, "probe_detection_rate": None}
        if not starts:
            return result
        rng = np.random.default_rng(self.random_state)
        n = Z_valid.shape[1]
        Z = Z_valid.copy()
        for start in starts:
            hit = rng.choice(n, min(_PROBE_SERIES, n - 1), replace=False)
            Z[start : start + duration, hit] += PROBE_SHOCK * rng.choice((-1.0, 1.0), hit.size)
        M = self._matrices_kernel(Z)
        pieces, owners = [], []
        for j, start in enumerate(starts):
            # sequences whose smallest-scale window holds a shocked row
            hit = np.flatnonzero((seq_end > start) & (seq_end - duration < start + duration))
            if hit.size:
                pieces.append(_sequences(M, steps, hit[0], hit[-1] + 1))
                owners.append(np.full(len(pieces[-1]), j))
        X = np.concatenate(pieces)
        residual = np.square(X[:, -1] - self._reconstruct(X))[..., self._smallest_scale]
        peak = np.zeros(len(starts))
        np.maximum.at(peak, np.concatenate(owners), _count_kernel(residual, self.tau_))
        detected = int((peak > self.threshold_).sum())
        result["probes_detected"] = detected
        result["probe_detection_rate"] = detected / len(starts)
        return result

    # ------------------------------------------------------------ inference
    @property
    def _smallest_scale(self) -> int:
        return int(np.argmin(tuple(self.windows)))

    def _matrices_kernel(self, Z: np.ndarray) -> np.ndarray:
        windows, step, _ = self._settings()
        M, _ = signature_matrices(Z, windows=windows, step=step)
        return _to_channels_last(M)

    def _reconstruct(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model_.predict(X, batch_size=_PREDICT_BATCH, verbose=0))

    def _residuals_kernel(self, *Ms: np.ndarray) -> np.ndarray:
        """Squared residuals of every full sequence of each ``M``, concatenated.

        Sequences of several matrix stacks share inference batches, so that
        many short stacks cost few ``predict`` calls.
        """
        chunk = 4 * _PREDICT_BATCH
        spans = [(M, lo, min(lo + chunk, len(M) - self.steps + 1))
                 for M in Ms for lo in range(0, len(M) - self.steps + 1, chunk)]
        out, pending, size = [], [], 0
        for k, (M, lo, hi) in enumerate(spans):
            pending.append(_sequences(M, self.steps, lo, hi))
            size += hi - lo
            if size >= chunk or k == len(spans) - 1:
                X = np.concatenate(pending) if len(pending) > 1 else pending[0]
                out.append(np.square(X[:, -1] - self._reconstruct(X)))
                pending, size = [], 0
        return np.concatenate(out)

    def _prepare(self, df, name: str = "df") -> tuple[np.ndarray, pd.Index]:
        """Validate ``df`` against the fitted columns and standardise it."""
        self._check_is_fitted()
        values, index, columns = _as_2d(df, name, min_cols=MIN_SERIES)
        if values.shape[1] != len(self.columns_):
            raise ValueError(f"{name} has {values.shape[1]} series (shape {values.shape}); "
                             f"the model was fitted on {len(self.columns_)}")
        if isinstance(df, pd.DataFrame) and list(columns) != list(self.columns_):
            if set(columns) != set(self.columns_):
                raise ValueError(f"{name} has columns {list(columns)[:10]}; the model was "
                                 f"fitted on {self.columns_[:10]}")
            order = [columns.get_loc(c) for c in self.columns_]
            values = values[:, order]
        _check_rows(values, name, self._context_rows, "max(windows) + (steps - 1) * step")
        return _standardize_kernel(values, self.mean_, self.scale_), index

    def residuals(self, df) -> tuple[np.ndarray, pd.Index]:
        """Squared reconstruction residuals of every matrix of ``df`` with a full history.

        Parameters
        ----------
        df : DataFrame or ndarray of shape (n_timepoints, n_series)
            At least ``max(windows) + (steps - 1) * step`` rows, the fitted columns.

        Returns
        -------
        R : ndarray of shape (n_matrices, n_scales, n_series, n_series)
            ``(M - M_hat) ** 2`` in the layout of
            :func:`lab.tensor_utility.signature_matrices`, scales in the order
            of ``windows``.
        labels : pandas.Index
            Label of the last row of each matrix's windows.
        """
        Z, index = self._prepare(df)
        windows, step, steps = self._settings()
        R = self._residuals_kernel(self._matrices_kernel(Z))
        ends = max(windows) + step * np.arange(steps - 1, steps - 1 + len(R))
        return np.moveaxis(R, -1, 1), index[ends - 1]

    def signature(self, df) -> tuple[np.ndarray, pd.Index]:
        """Standardised signature matrices of ``df``, aligned with :meth:`residuals`.

        Returns
        -------
        M : ndarray of shape (n_matrices, n_scales, n_series, n_series)
        labels : pandas.Index
        """
        Z, index = self._prepare(df)
        windows, step, steps = self._settings()
        M, ends = signature_matrices(Z, windows=windows, step=step)
        return M[steps - 1 :], index[ends[steps - 1 :] - 1]

    def score(self, df) -> pd.Series:
        """Anomaly score: residual entries of the smallest scale above ``tau_``.

        Parameters
        ----------
        df : DataFrame or ndarray of shape (n_timepoints, n_series)

        Returns
        -------
        Series of int, name "score"
            Indexed by the label of the last row of each matrix. Higher is more
            anomalous.
        """
        R, labels = self.residuals(df)
        counts = _count_kernel(R[:, self._smallest_scale], self.tau_)
        return pd.Series(counts.astype(np.int64), index=labels, name="score")

    def predict(self, df) -> pd.Series:
        """Alarms: ``score(df) > threshold_``, a boolean Series named "anomaly"."""
        return (self.score(df) > self.threshold_).rename("anomaly")

    def matrices_at(self, df, at) -> tuple[np.ndarray, np.ndarray]:
        """Standardised signature matrices and squared residuals of the matrix ending at ``at``.

        Only the rows behind that one input sequence are processed, so this is
        cheap at any label.

        Parameters
        ----------
        df : DataFrame or ndarray
            The series; ``at`` needs ``max(windows) + (steps - 1) * step - 1``
            rows of history before it.
        at : label
            Index label of the last row of the matrix (a position for an ndarray).

        Returns
        -------
        signature, residual : ndarray of shape (n_scales, n_series, n_series)

        Raises
        ------
        ValueError
            If ``at`` is not in the index or has too little history.
        """
        self._check_is_fitted()
        index = df.index if isinstance(df, pd.DataFrame | pd.Series) else pd.RangeIndex(len(df))
        try:
            pos = index.get_loc(at)
        except KeyError:
            raise ValueError(f"at={at!r} is not a label of df's index") from None
        if not isinstance(pos, (int, np.integer)):
            raise ValueError(f"at={at!r} does not name a single row of df")
        context = self._context_rows
        if pos + 1 < context:
            raise ValueError(f"at={at!r} is row {pos}; MSCRED needs {context} rows of "
                             f"history up to it, so at must be row {context - 1} or later")
        rows = df.iloc[pos + 1 - context : pos + 1] if isinstance(df, pd.DataFrame) \
            else np.asarray(df)[pos + 1 - context : pos + 1]
        Z, _ = self._prepare(rows)
        M = self._matrices_kernel(Z)
        R = self._residuals_kernel(M)
        return np.moveaxis(M[-1], -1, 0).astype(np.float64), np.moveaxis(R[-1], -1, 0)

    def root_causes(self, df, at, k: int = 3) -> pd.Series:
        """The ``k`` series with the largest residual row mass at time ``at``.

        Parameters
        ----------
        df : DataFrame or ndarray
            The series; ``at`` needs ``max(windows) + (steps - 1) * step - 1``
            rows of history before it.
        at : label
            Index label of the last row of the matrix to explain (a position
            for an ndarray).
        k : int, default 3

        Returns
        -------
        Series, name "row_mass"
            The sum of each series' row of the smallest scale's squared
            residual matrix, largest first, indexed by series name.

        Raises
        ------
        ValueError
            If ``at`` is not in the index or has too little history.

        Notes
        -----
        Zhang et al., AAAI 2019, section 4.4: the series whose rows (and, the
        matrix being symmetric, columns) are poorly reconstructed are ranked
        as root causes.
        """
        self._check_is_fitted()
        k = _check_int(k, "k", minimum=1, maximum=len(self.columns_))
        _, residual = self.matrices_at(df, at)
        mass = residual[self._smallest_scale].sum(axis=1)
        out = pd.Series(mass, index=pd.Index(self.columns_), name="row_mass")
        return out.sort_values(ascending=False, kind="stable").iloc[:k]


def _check_rows(values: np.ndarray, name: str, min_rows: int,
                formula: str = "max(windows) + steps * step") -> None:
    if len(values) < min_rows:
        raise ValueError(f"{name} has {len(values)} rows (shape {values.shape}); MSCRED needs "
                         f"at least {formula} = {min_rows} rows")


def _check_after(train_index: pd.Index, valid_index: pd.Index) -> None:
    try:
        overlaps = bool(valid_index.min() <= train_index.max())
    except TypeError:
        raise ValueError(f"valid's index ({valid_index.dtype}) cannot be compared with "
                         f"train's ({train_index.dtype})") from None
    if overlaps:
        raise ValueError(f"valid overlaps train: valid starts at {valid_index.min()!r} but train "
                         f"runs to {train_index.max()!r}; the validation period must come "
                         "after the training period")


# --------------------------------------------------------------------------- evaluation


def _truth_spans(truth) -> list[tuple[Any, Any]]:
    if isinstance(truth, pd.DataFrame):
        missing = {"start", "end"} - set(truth.columns)
        if missing:
            raise ValueError(f"truth lacks columns {sorted(missing)}; expected start and end")
        return list(zip(truth["start"], truth["end"], strict=True))
    spans = []
    for item in truth:
        try:
            start, end = item
        except (TypeError, ValueError):
            raise ValueError(f"truth must be a DataFrame with start/end or (start, end) pairs, "
                             f"got {item!r}") from None
        spans.append((start, end))
    return spans


def event_labels(index: pd.Index, truth, tolerance: Any = 0) -> pd.Series:
    """0/1 labels on ``index``: 1 where a label falls in an event, extended by ``tolerance``.

    Parameters
    ----------
    index : pandas.Index
        Labels to mark, e.g. a score's index.
    truth : DataFrame with ``start`` and ``end``, or (start, end) pairs
        Events, both ends inclusive.
    tolerance : label difference, default 0
        Added to each event's end: a score at label ``t`` whose windows look
        back ``w`` rows still holds anomalous rows up to ``end + w - 1``.

    Returns
    -------
    Series of int (0/1), indexed by ``index``, name "label"

    Examples
    --------
    >>> event_labels(pd.RangeIndex(0, 50, 10), [(15, 22)], tolerance=9).tolist()
    [0, 0, 1, 1, 0]
    """
    index = pd.Index(index)
    labels = np.zeros(len(index), dtype=np.int64)
    for start, end in _truth_spans(truth):
        labels |= np.asarray((index >= start) & (index <= end + tolerance), dtype=np.int64)
    return pd.Series(labels, index=index, name="label")


def evaluate_events(alarms: pd.Series, truth, *, tolerance: Any = 0,
                    grace: Any = None) -> dict[str, Any]:
    """Event-level precision, recall and F1 of boolean alarms.

    An event is detected when any alarm falls inside it, its end extended by
    ``tolerance``. An alarm episode is a run of consecutive alarmed entries
    of ``alarms``. It is a false-alarm episode when none of its alarms falls
    inside an event, the end extended by ``grace`` here. A run that starts
    inside an event and outlasts it is therefore not a false alarm, and
    neither is an alarm raised while the event's rows are still inside the
    detector's input.

    Parameters
    ----------
    alarms : Series of bool
        Alarms indexed by time, in time order.
    truth : DataFrame with ``start`` and ``end``, or (start, end) pairs
        Events, both ends inclusive.
    tolerance : label difference, default 0
        See :func:`event_labels`.
    grace : label difference, optional
        How long after an event's end an alarm still belongs to it (default
        ``tolerance``; never less). For MSCRED, ``max(windows) - 1``: until
        then the largest window still holds anomalous rows.

    Returns
    -------
    dict
        ``precision`` = detected / (detected + false_episodes), ``recall`` =
        detected / n_events, ``f1``, ``detected``, ``n_events``,
        ``false_episodes`` and ``detected_events`` (a list of booleans). With
        no alarm at all, precision is 0.

    Raises
    ------
    ValueError
        If ``alarms`` is not a boolean Series, ``truth`` is empty or ``grace``
        is smaller than ``tolerance``.

    Examples
    --------
    >>> alarms = pd.Series([True, False, True, True, False, False, True])
    >>> out = evaluate_events(alarms, [(2, 2), (5, 5)])
    >>> out["detected"], out["false_episodes"], out["precision"], out["recall"]
    (1, 2, 0.3333333333333333, 0.5)
    >>> evaluate_events(alarms, [(2, 2), (5, 5)], grace=1)["false_episodes"]
    1
    """
    if not isinstance(alarms, pd.Series) or alarms.dtype != bool:
        raise ValueError(f"alarms must be a boolean pandas Series, got "
                         f"{type(alarms).__name__} of dtype {getattr(alarms, 'dtype', None)}")
    if grace is None:
        grace = tolerance
    if grace < tolerance:
        raise ValueError(f"grace={grace!r} must not be smaller than tolerance={tolerance!r}")
    spans = _truth_spans(truth)
    if not spans:
        raise ValueError("truth holds no event; event-level metrics are undefined")
    on = alarms.to_numpy()
    belongs = np.zeros(len(alarms), dtype=bool)
    detected = []
    for start, end in spans:
        inside = np.asarray((alarms.index >= start) & (alarms.index <= end + tolerance))
        detected.append(bool((on & inside).any()))
        belongs |= np.asarray((alarms.index >= start) & (alarms.index <= end + grace))
    episodes = _false_episodes_kernel(on, belongs)
    tp = sum(detected)
    precision = tp / (tp + episodes) if tp + episodes else 0.0
    recall = tp / len(spans)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1),
            "detected": int(tp), "n_events": len(spans), "false_episodes": episodes,
            "detected_events": detected}


def _false_episodes_kernel(on: np.ndarray, inside: np.ndarray) -> int:
    """Runs of consecutive True in ``on`` with no position in ``inside``."""
    starts = np.flatnonzero(on & ~np.concatenate(([False], on[:-1])))
    ends = np.flatnonzero(on & ~np.concatenate((on[1:], [False]))) + 1
    hits = np.concatenate(([0], np.cumsum(on & inside)))
    return int(((hits[ends] - hits[starts]) == 0).sum())


def top_episodes(score: pd.Series, k: int = 10, min_gap: int = 5, *,
                 index: pd.Index | None = None) -> pd.Series:
    """The ``k`` highest scores at least ``min_gap`` rows apart (greedy non-maximum suppression).

    Parameters
    ----------
    score : Series
        Score indexed by time.
    k : int, default 10
        Episodes to return (fewer if the score is short).
    min_gap : int, default 5
        Smallest distance between two episodes, in rows of ``index``.
    index : pandas.Index, optional
        The data's full index (e.g. trading days), so that distances count its
        rows rather than score entries. Default: the score's own index.

    Returns
    -------
    Series
        Selected scores, highest first (ties: earliest first), indexed by label.

    Raises
    ------
    ValueError
        If a score label is missing from ``index``, or the score has NaN.

    Examples
    --------
    >>> s = pd.Series([1, 9, 8, 2, 7, 3])
    >>> top_episodes(s, k=3, min_gap=2).to_dict()
    {1: 9, 4: 7}
    """
    k = _check_int(k, "k", minimum=1)
    min_gap = _check_int(min_gap, "min_gap", minimum=1)
    if score.isna().any():
        raise ValueError("score has NaN values; drop or fill them first")
    if index is None:
        positions = np.arange(len(score))
    else:
        positions = pd.Index(index).get_indexer(score.index)
        if (positions < 0).any():
            missing = list(score.index[positions < 0][:5])
            raise ValueError(f"score labels {missing} are not in index")
    order = np.argsort(-score.to_numpy(), kind="stable")
    picked: list[int] = []
    for i in order:
        if all(abs(positions[i] - positions[j]) >= min_gap for j in picked):
            picked.append(int(i))
            if len(picked) == k:
                break
    return score.iloc[picked]


def root_cause_recall(detector: MSCREDDetector, df, truth, *, k: int = 3,
                      tolerance: Any = 0, score: pd.Series | None = None) -> float:
    """Mean share of each event's true root causes among the detector's top ``k``.

    Each event is diagnosed at its highest score (first such label), inside
    the event extended by ``tolerance``.

    Parameters
    ----------
    detector : MSCREDDetector
        Fitted.
    df : DataFrame
        The data the events are in, with enough history before them.
    truth : DataFrame with ``start``, ``end`` and ``root_causes``
    k : int, default 3
    tolerance : label difference, default 0
    score : Series, optional
        ``detector.score(df)``, if already computed.

    Returns
    -------
    float in [0, 1]

    Raises
    ------
    ValueError
        If an event has no scored label.
    """
    if score is None:
        score = detector.score(df)
    recalls = []
    for start, end, causes in zip(truth["start"], truth["end"], truth["root_causes"],
                                  strict=True):
        inside = score[(score.index >= start) & (score.index <= end + tolerance)]
        if inside.empty:
            raise ValueError(f"the event [{start!r}, {end!r}] has no score: is it in df, "
                             "with enough history before it?")
        top = detector.root_causes(df, inside.idxmax(), k=k)
        recalls.append(len(set(top.index) & set(causes)) / len(causes))
    return float(np.mean(recalls))


def evaluate_synthetic(detector: MSCREDDetector, df: pd.DataFrame, truth: pd.DataFrame, *,
                       start: Any = None, score: pd.Series | None = None) -> dict[str, Any]:
    """All the synthetic-protocol metrics of a fitted detector.

    The score at a label looks back ``min(windows)`` rows on the smallest
    scale, so an event is detected by an alarm up to ``min(windows) - 1`` rows
    after its end (``tolerance``). The network's input at that label also
    holds the larger windows, so alarms up to ``max(windows) - 1`` rows after
    the end are not false alarms (``grace``, see :func:`evaluate_events`).
    AUC and point-adjusted F1 label only the ``tolerance`` span as anomalous.

    Parameters
    ----------
    detector : MSCREDDetector
        Fitted.
    df : DataFrame
        Rows to score, e.g. validation and test (history for the first test
        matrices), as from :func:`lab.datasets.make_mscred_synthetic`.
    truth : DataFrame
        As from :func:`lab.datasets.make_mscred_synthetic`.
    start : label, optional
        Score labels before ``start`` are left out of the evaluation.
    score : Series, optional
        ``detector.score(df)``, if already computed.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` (event level, :func:`evaluate_events`),
        ``detected``, ``n_events``, ``false_episodes``, ``point_adjusted_f1``
        (:func:`lab.metrics.point_adjusted_f1`, an optimistic protocol),
        ``auc_roc`` of the score and ``root_cause_recall_at_3``.
    """
    from lab.metrics import auc_roc, point_adjusted_f1

    if score is None:
        score = detector.score(df)
    if start is not None:
        score = score[score.index >= start]
    tolerance = min(tuple(detector.windows)) - 1
    grace = max(tuple(detector.windows)) - 1
    labels = event_labels(score.index, truth, tolerance)
    alarms = score > detector.threshold_
    out = evaluate_events(alarms, truth, tolerance=tolerance, grace=grace)
    out.pop("detected_events")
    out["point_adjusted_f1"] = point_adjusted_f1(labels.to_numpy(), alarms.to_numpy())
    out["auc_roc"] = auc_roc(labels.to_numpy(), score.to_numpy())
    out["root_cause_recall_at_3"] = root_cause_recall(detector, df, truth, k=3,
                                                      tolerance=tolerance, score=score)
    return out
