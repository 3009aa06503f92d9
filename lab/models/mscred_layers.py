"""MSCRED's network: ConvLSTM over matrix sequences, step attention, and :func:`build_mscred`.

:func:`reconstruct_sliding` runs a built network over every window of a
stack of matrices, encoding each matrix once instead of once per window.

The layers of Zhang et al., AAAI 2019 (figure 2), apart from the detector that
trains and scores with them (:mod:`lab.models.mscred`). The custom layers are
registered with Keras under ``lab>ConvLSTMSequence`` and ``lab>StepAttention``:
the names saved models refer to (they did not change when the layers moved
here from ``lab.models.mscred``), so saved models load with ``safe_mode=True``
once this module is imported, which :mod:`lab.models.mscred` does.
"""

from __future__ import annotations

import functools
import os
import warnings
import weakref
from collections.abc import Sequence

import keras
import numpy as np
from keras import layers, ops

from lab._validation import _as_shaped, _check_int, _check_option

__all__ = ["ConvLSTMSequence", "StepAttention", "build_mscred", "check_filters",
           "reconstruct_sliding", "is_mscred_network", "window_sequences", "block_model",
           "FILTERS", "CHI", "MIN_SERIES", "SLIDING_BATCH", "PRECISIONS"]

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
#: Windows per chunk of :func:`reconstruct_sliding`. It bounds the memory, about 2 MB
#: per window for the paper's network at 30 series (docs/mscred.md, issue 20).
SLIDING_BATCH = 64
#: Number formats of the convolutions of :func:`reconstruct_sliding` (``precision``).
#: "bfloat16" runs the encoder, input and state convolutions (97% of the FLOP) in bfloat16
#: (inputs, kernels and outputs) and keeps the rest in float32: about 1.4x as fast on 2
#: AVX-512 BF16 cores with oneDNN (docs/mscred.md, issue 20).
PRECISIONS = ("float32", "bfloat16")
#: CPU flags (/proc/cpuinfo) of native bfloat16 arithmetic.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


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
        x = self._input_gates(ops.reshape(inputs, (-1, rows, cols, channels)))
        x = ops.reshape(x, (-1, steps, rows, cols, 4 * self.filters))
        return ops.stack(self._recurrence(ops.unstack(x, axis=1)), axis=1)

    def _input_gates(self, inputs, dtype: str | None = None):
        """Input convolution plus bias of ``(batch, rows, cols, channels)`` frames.

        ``dtype`` (e.g. "bfloat16"): the convolution's number format; its
        output is cast back to float32 (:func:`reconstruct_sliding`'s ``precision``).
        """
        return _conv(inputs, self.kernel, 1, dtype) + self.bias

    def _recurrence(self, gates, dtype: str | None = None) -> list:
        """Hidden states of every step, given each step's input gates (:meth:`_input_gates`).

        ``dtype``: the state convolutions' number format, as in :meth:`_input_gates`.
        """
        h = c = None
        out = []
        for z in gates:
            if h is not None:
                z = z + _conv(h, self.recurrent_kernel, 1, dtype)
            # split, not slicing: its gradient is a concatenation, not four padded copies
            i, f_gate, g, o = ops.split(z, 4, axis=-1)
            i, g, o = ops.sigmoid(i), ops.tanh(g), ops.sigmoid(o)
            # The first step has zero state, so the forget gate has nothing to act on.
            c = i * g if c is None else ops.sigmoid(f_gate) * c + i * g
            h = o * ops.tanh(c)
            out.append(h)
        return out

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size}


def _cpu_flags() -> set[str] | None:
    """This CPU's feature flags from /proc/cpuinfo (Linux); None where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


@functools.cache
def _warn_if_bfloat16_is_slow() -> None:
    """Warn once a process when bfloat16 convolutions will not be faster than float32 here.

    They are fast on TensorFlow's CPU path only with oneDNN's kernels on a CPU with native
    bfloat16 (docs/mscred.md): without either they measured no faster than float32. A GPU,
    another backend or a CPU whose flags cannot be read are left alone.
    """
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return
    flags = _cpu_flags()
    why = None
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip() == "0":
        why = "TF_ENABLE_ONEDNN_OPTS=0 turns off oneDNN's bfloat16 kernels"
    elif flags is not None and not flags & set(BF16_CPU_FLAGS):
        why = f"this CPU has none of {', '.join(BF16_CPU_FLAGS)}"
    if why:
        warnings.warn(f"precision='bfloat16': {why}, so the convolutions will not be faster "
                      "than in float32 and may be slower; scores still change slightly "
                      "(docs/mscred.md)", RuntimeWarning, stacklevel=3)


def _conv(x, kernel, strides, dtype: str | None):
    """A "same" convolution, in ``dtype`` when given, its output cast back to float32."""
    if dtype is None:
        return ops.conv(x, kernel, strides=strides, padding="same")
    out = ops.conv(ops.cast(x, dtype), ops.cast(kernel, dtype), strides=strides, padding="same")
    return ops.cast(out, "float32")


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


def reconstruct_sliding(model: keras.Model, matrices, *, batch_size: int = SLIDING_BATCH,
                        precision: str = "float32") -> np.ndarray:
    """Reconstruct the last matrix of every window of ``steps`` consecutive matrices.

    The same as ``model.predict`` on the sequences ``matrices[i : i + steps]``
    (up to float32 rounding), without encoding each matrix ``steps`` times:
    every encoder convolution and every ConvLSTM input convolution runs once
    per matrix, and only the recurrent convolutions, the attention and the
    decoder run per window. For the paper's network that is about 1.05 GFLOP
    per matrix instead of 1.9.

    Parameters
    ----------
    model : keras.Model
        A network from :func:`build_mscred` (trained or not); its own layers
        and weights are used, found by name.
    matrices : array-like of shape (n_matrices, n, n, n_scales)
        Consecutive signature matrices, channels last, ``n_matrices >= steps``;
        ``n``, ``n_scales`` and ``steps`` are the model's.
    batch_size : int, default 64
        Windows computed together; memory grows with it.
    precision : {"float32", "bfloat16"}, default "float32"
        Number format of the encoder, input and state convolutions. "bfloat16"
        keeps 8 significant bits of their inputs, weights and outputs (the
        gates, attention and decoder stay float32): on 2 CPU cores with
        AVX-512 BF16 and oneDNN it reconstructs about 1.4x as fast, and
        entries move by up to about 0.5% of the largest one. It is fast only
        with oneDNN's kernels on hardware with bfloat16 (AVX-512 BF16 or AMX
        CPUs); elsewhere it can be slower than float32, and the first call of
        a process warns (``RuntimeWarning``).

    Returns
    -------
    ndarray of shape (n_matrices - steps + 1, n, n, n_scales), float32
        Row ``i`` reconstructs ``matrices[i + steps - 1]`` from the window
        that ends with it.

    Raises
    ------
    ValueError
        If ``model`` lacks the layers of :func:`build_mscred`, ``matrices``
        is not 4-D, its ``n`` or ``n_scales`` differ from the model's input,
        it holds fewer than ``steps`` matrices, ``batch_size < 1``, or
        ``precision`` is not one of :data:`PRECISIONS` (or is "bfloat16" for
        encoder convolutions other than :func:`build_mscred`'s: "same"
        padding, no dilation, a bias).

    Notes
    -----
    A window's recurrent state depends on where the window starts, so the
    four state convolutions of each ConvLSTM stay per window; the input
    gates of step ``t`` of the windows ``lo .. hi - 1`` are the precomputed
    gates of matrices ``lo + t .. hi + t - 1``, a slice. Zhang et al.,
    AAAI 2019, section 3 (the network); docs/mscred.md, issue 20 (the count).

    Examples
    --------
    >>> model = build_mscred(5, steps=2, filters=(2, 2, 2, 2))
    >>> M = np.random.default_rng(0).normal(size=(6, 5, 5, 3)).astype("float32")
    >>> out = reconstruct_sliding(model, M, batch_size=4)
    >>> windows = np.stack([M[:-1], M[1:]], axis=1)  # the 5 sequences of 2 matrices
    >>> out.shape, bool(np.allclose(out, model.predict(windows, verbose=0), atol=1e-5))
    ((5, 5, 5, 3), True)
    >>> low = reconstruct_sliding(model, M, precision="bfloat16")
    >>> bool(np.allclose(low, out, atol=0.02 * np.abs(out).max()))
    True
    """
    parts = _mscred_parts(model)
    if parts is None:
        raise ValueError(f"model {model.name!r} is not a build_mscred network: it lacks some of "
                         "the layers conv1-4, convlstm1-4, attention1-4, skip1-3, deconv1-4")
    steps, n, _, n_scales = model.input_shape[1:]
    M = _as_shaped(matrices, "matrices", (None, n, n, n_scales),
                   ("n_matrices", "n", "n", "n_scales"), dtype=np.float32)
    if len(M) < steps:
        raise ValueError(f"matrices holds {len(M)} matrices (shape {M.shape}); the model "
                         f"reads windows of steps={steps}, so at least {steps} are needed")
    batch_size = _check_int(batch_size, "batch_size", minimum=1)
    _check_option(precision, "precision", PRECISIONS)
    if precision != "float32":
        _warn_if_bfloat16_is_slow()
        # the bfloat16 encoder repeats Conv2D.call for build_mscred's settings only
        for level in (1, 2, 3, 4):
            conv = parts[f"conv{level}"].layer
            if conv.padding != "same" or tuple(conv.dilation_rate) != (1, 1) \
                    or not conv.use_bias:
                raise ValueError(f"precision={precision!r} needs build_mscred's encoder "
                                 f"convolutions; conv{level} has padding={conv.padding!r}, "
                                 f"dilation_rate={conv.dilation_rate}, use_bias={conv.use_bias}")
    return _sliding_kernel(model, M, steps, batch_size, None if precision == "float32" else precision)


def is_mscred_network(model: keras.Model) -> bool:
    """Whether ``model`` is a :func:`build_mscred` network, as :func:`reconstruct_sliding` needs.

    Parameters
    ----------
    model : keras.Model

    Returns
    -------
    bool
        True if ``model`` holds ``conv1-4``, ``convlstm1-4`` (each a
        :class:`ConvLSTMSequence`), ``attention1-4``, ``skip1-3`` and
        ``deconv1-4``.

    Examples
    --------
    >>> is_mscred_network(build_mscred(5, steps=2, filters=(2, 2, 2, 2)))
    True
    >>> inputs = keras.Input((4,))
    >>> is_mscred_network(keras.Model(inputs, keras.layers.Dense(1)(inputs)))
    False
    """
    return _mscred_parts(model) is not None


def _mscred_parts(model: keras.Model) -> dict | None:
    """The layers of a :func:`build_mscred` network by name; None if some are missing."""
    by_name = {layer.name: layer for layer in model.layers}
    names = [f"{kind}{level}" for kind in ("conv", "convlstm", "attention", "deconv")
             for level in (1, 2, 3, 4)] + ["skip1", "skip2", "skip3"]
    if not all(name in by_name for name in names):
        return None
    for level in (1, 2, 3, 4):
        if not isinstance(by_name[f"convlstm{level}"], ConvLSTMSequence):
            return None
    return by_name


def _sliding_kernel(model: keras.Model, M: np.ndarray, steps: int,
                    batch_size: int, dtype: str | None = None) -> np.ndarray:
    n_windows = len(M) - steps + 1
    chunk = _chunk_function(model, dtype)
    out = []
    for lo in range(0, n_windows, batch_size):
        hi = min(lo + batch_size, n_windows)
        # the matrices of windows lo .. hi - 1; the steps - 1 shared with the next
        # chunk are encoded again, a small share of the work for batch_size >> steps
        out.append(ops.convert_to_numpy(chunk(ops.convert_to_tensor(M[lo : hi + steps - 1]))))
    return np.concatenate(out)


# The reconstruction of one chunk per network and convolution dtype, traced once
# (_chunk_function). Weakly keyed, and the function reaches the network through a weak
# reference, so it goes with the network.
_CHUNK_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _chunk_function(model: keras.Model, dtype: str | None = None):
    """The reconstruction of a chunk of consecutive matrices (each encoded once, then every
    window), as one traced graph on the TensorFlow backend.

    Traced, it took 6.0 to 6.4 s per 1000 matrices against 8.0 to 8.4 s eagerly (2 AVX-512
    cores; 9.1 s against 12.4 s on 2 AVX2 cores): the graph runs independent ops side by
    side and skips the per-op Python dispatch. It is traced once per network (about 0.5 s),
    for any number of matrices, and reads the weights when it runs, so training after the
    trace is seen. Other backends run eagerly. ``dtype`` (None or "bfloat16") is the number
    format of the encoder, input and state convolutions; one function per dtype.
    """
    functions = _CHUNK_FUNCTIONS.setdefault(model, {})
    if dtype in functions:
        return functions[dtype]
    steps = model.input_shape[1]
    ref = weakref.ref(model)

    def chunk(M):
        parts = _mscred_parts(ref())
        return _windows_kernel(parts, _encode_kernel(parts, M, dtype), steps, dtype=dtype)

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        # any number of matrices: one trace per network, whatever lengths it is given
        spec = tf.TensorSpec((None, *model.input_shape[2:]), tf.float32)
        chunk = tf.function(chunk, autograph=False, input_signature=[spec])
    functions[dtype] = chunk
    return chunk


def _encode_kernel(parts: dict, M, dtype: str | None = None) -> list:
    """Each level's ConvLSTM input gates of every matrix: (n_matrices, r, r, 4 filters).

    ``dtype``: the convolutions' number format (None: the layers' own float32).
    """
    gates = []
    x = M
    for level in (1, 2, 3, 4):
        # the Conv2D inside TimeDistributed, on matrices instead of sequences
        conv = parts[f"conv{level}"].layer
        if dtype is None:
            x = conv(x)
        else:  # what Conv2D.call does, on dtype inputs and kernel
            x = conv.activation(_conv(x, conv.kernel, conv.strides, dtype) + conv.bias)
        gates.append(parts[f"convlstm{level}"]._input_gates(x, dtype))
    return gates


def _windows_kernel(parts: dict, gates: list, steps: int, *, gather: bool = False,
                    dtype: str | None = None):
    """Reconstructions of the windows whose matrices' input gates are ``gates``.

    Step ``t`` of window ``w`` reads matrix ``w + t``. ``gather=True`` (training)
    takes them with one gather per level instead of a slice per step: each
    slice's gradient is a zero-padded copy of the whole gate tensor (12% of a
    training step on 2 CPU cores), a gather's is one segment sum. Inference
    keeps the slices: the gather copies every gate ``steps`` times (1.3x
    slower on the same cores).
    """
    if gather:
        n_windows = gates[0].shape[0] - steps + 1
        index = np.arange(n_windows)[:, None] + np.arange(steps)[None, :]
    else:
        # a tensor in a graph traced for any number of matrices (_chunk_function)
        n_windows = ops.shape(gates[0])[0] - steps + 1
    attended = []
    for level, z in enumerate(gates, start=1):
        if gather:
            seq = ops.unstack(ops.take(z, index, axis=0), axis=1)
        else:
            seq = [z[t : t + n_windows] for t in range(steps)]
        h = parts[f"convlstm{level}"]._recurrence(seq, dtype)
        attended.append(parts[f"attention{level}"](ops.stack(h, axis=1)))
    d = attended[-1]
    for level in (3, 2, 1):
        d = parts[f"deconv{level + 1}"](d)
        if f"crop{level + 1}" in parts:
            d = parts[f"crop{level + 1}"](d)
        d = parts[f"skip{level}"]([d, attended[level - 1]])
    return parts["deconv1"](d)


class _BlockModel(keras.Model):
    """A :func:`build_mscred` network trained on blocks of consecutive matrices.

    Input ``(1, n_matrices, n, n, n_scales)``, one block; output
    ``(1, n_matrices - steps + 1, n, n, n_scales)``, the reconstruction of the
    last matrix of every window of the block. Every matrix is encoded once
    (:func:`_encode_kernel`), as in :func:`reconstruct_sliding`, so a block
    of ``b`` windows costs the encoder and input convolutions of
    ``b + steps - 1`` matrices instead of ``b * steps``. It holds no weights
    of its own: training it trains ``network``. Fed one block per batch.
    """

    def __init__(self, network: keras.Model, **kwargs):
        super().__init__(**{"name": "mscred_blocks", **kwargs})
        self.network = network
        self.steps = int(network.input_shape[1])

    def call(self, blocks):
        length, *matrix = blocks.shape[1:]
        parts = _mscred_parts(self.network)
        gates = _encode_kernel(parts, ops.reshape(blocks, (length, *matrix)))
        return ops.expand_dims(_windows_kernel(parts, gates, self.steps, gather=True), 0)


def block_model(network: keras.Model) -> keras.Model:
    """A model that runs ``network`` on a block of consecutive matrices, for training by blocks.

    Its input is one block ``(1, n_matrices, n, n, n_scales)``; its output,
    ``(1, n_matrices - steps + 1, n, n, n_scales)``, reconstructs the last
    matrix of every window of ``steps`` consecutive matrices in the block,
    each matrix encoded once. It holds no weights of its own: compiling and
    training it trains ``network`` (:func:`lab.models.mscred_train.train_blocks`).
    Feed it one block per batch.

    Parameters
    ----------
    network : keras.Model
        A :func:`build_mscred` network.

    Returns
    -------
    keras.Model

    Raises
    ------
    ValueError
        If ``network`` is not a :func:`build_mscred` network.

    Examples
    --------
    >>> network = build_mscred(5, steps=2, filters=(2, 2, 2, 2))
    >>> M = np.random.default_rng(0).normal(size=(6, 5, 5, 3)).astype("float32")
    >>> out = np.asarray(block_model(network)(M[None]))
    >>> out.shape, bool(np.allclose(out[0], reconstruct_sliding(network, M), atol=1e-5))
    ((1, 5, 5, 5, 3), True)
    """
    if not isinstance(network, keras.Model) or _mscred_parts(network) is None:
        raise ValueError(f"network must be a build_mscred network, got {network!r}")
    return _BlockModel(network)


def window_sequences(M: np.ndarray, steps: int, lo: int = 0, hi: int | None = None) -> np.ndarray:
    """The windows of ``steps`` consecutive matrices, stacked: MSCRED's input sequences.

    Parameters
    ----------
    M : ndarray of shape (n_matrices, ...)
        Consecutive matrices.
    steps : int
        Matrices per window.
    lo, hi : int, optional
        Only windows ``lo .. hi - 1`` (window ``k`` ends with matrix
        ``k + steps - 1``).

    Returns
    -------
    ndarray of shape (n_windows, steps, ...)
        A contiguous copy.

    Raises
    ------
    ValueError
        If ``steps`` is not between 1 and ``len(M)``.

    Examples
    --------
    >>> window_sequences(np.arange(5), 3).tolist()
    [[0, 1, 2], [1, 2, 3], [2, 3, 4]]
    """
    M = np.asarray(M)
    steps = _check_int(steps, "steps", minimum=1)
    if len(M) < steps:
        raise ValueError(f"M has {len(M)} matrices (shape {M.shape}); steps={steps} needs "
                         f"at least {steps}")
    windows = np.lib.stride_tricks.sliding_window_view(M, steps, axis=0)
    windows = windows[lo:hi]
    return np.ascontiguousarray(np.moveaxis(windows, -1, 1))
