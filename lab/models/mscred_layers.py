"""MSCRED's network: ConvLSTM over matrix sequences, step attention, and :func:`build_mscred`.

The layers of Zhang et al., AAAI 2019 (figure 2), apart from the detector that
trains and scores with them (:mod:`lab.models.mscred`). The custom layers are
registered with Keras under ``lab>ConvLSTMSequence`` and ``lab>StepAttention``:
the names saved models refer to (they did not change when the layers moved
here from ``lab.models.mscred``), so saved models load with ``safe_mode=True``
once this module is imported, which :mod:`lab.models.mscred` does.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers, ops

from lab._validation import _check_int

__all__ = ["ConvLSTMSequence", "StepAttention", "build_mscred", "check_filters", "FILTERS",
           "CHI", "MIN_SERIES"]

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
    filters = check_filters(filters)
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


def check_filters(filters: Sequence[int]) -> tuple[int, ...]:
    """``filters`` as a tuple of four positive ints; ValueError otherwise.

    Examples
    --------
    >>> check_filters([2, 4, 8, 16])
    (2, 4, 8, 16)
    """
    try:
        filters = tuple(filters)
    except TypeError:
        raise ValueError(f"filters must be four positive integers, got {filters!r}") from None
    if len(filters) != 4:
        raise ValueError(f"filters must be four positive integers, got {filters!r}")
    return tuple(_check_int(f, "filters", minimum=1) for f in filters)

