"""betsi: behaviour extraction with a dense autoencoder (Lee et al., 2018).

Behaviour Extraction for Time-Series Investigation, after Lee, Ortiz, Ko and
Lee, "Time Series Segmentation through Automatic Feature Learning" (arXiv
1801.05394), in four steps:

1. normalise every series with statistics of the training rows
   (:func:`lab.preprocessor.normalize`, z-score);
2. stack windows of ``window_size`` rows, taken every ``stride`` rows, into one
   row each (:func:`lab.preprocessor.convert_to_column`);
3. train a symmetric dense autoencoder on those rows (:func:`custom_autoencoder`);
4. compare the codes of consecutive windows, the one that ends at a row with
   the one that starts there (or, with ``span > 1``, the sets of codes on each
   side by their energy distance), and call a peak of that distance curve an
   event when its mass stands far enough above the average peak's
   (:func:`get_events`).

:class:`BehaviourDetector` is a :class:`lab.models.ChangePointDetector`: its
``score`` is the distance curve placed at rows, ``change_points`` the events.

Fixed defects of the published package: the output layer is linear (a ReLU
output cannot reconstruct standardised, negative data); the distance stays
finite when a code is all zeros; no peak means no event rather than a crash;
and events are reported as row positions and time labels, not window numbers.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from lab._validation import _as_2d, _check_int, _check_option
from lab.models._base import ChangePointDetector, seed_everything
from lab.models.thresholds import DEFAULT_CONTAMINATION

__all__ = ["custom_autoencoder", "distance_measure", "get_events", "BehaviourDetector"]

#: Default event margin, in percent above the mean peak mass (150 -> 2.5 x the mean):
#: ``get_events``' ``threshold`` and ``BehaviourDetector``'s ``margin``.
DEFAULT_THRESHOLD = 150.0
#: Activation of every encoder layer (and of the mirrored decoder layers) by default.
DEFAULT_ACTIVATION = "tanh"

# Automatic window: one tenth of the series, between 2 and 32 rows. Short
# series need short windows to keep enough windows to train on; beyond 32 rows
# a window mixes behaviours of nearby segments and the input grows for nothing.
_WINDOW_FRACTION = 10
_MIN_WINDOW, _MAX_WINDOW = 2, 32
# Automatic stride: an eighth of the window (at least 1), so an event's
# position is known to within a few rows (TCPD scores use a 5-row margin).
_STRIDE_FRACTION = 8
# Automatic network: hidden width = half the input width (at least 2), then
# a bottleneck of 2 codes.
_HIDDEN_FRACTION = 2
_BOTTLENECK = 2
_LEARNING_RATE = 1e-3
_METRICS = ("euclidean", "normalized")


# --------------------------------------------------------------------------- network


def custom_autoencoder(layer_dims: Sequence[int], activations: Sequence[str] | None = None):
    """Mirrored dense autoencoder; returns ``(autoencoder, encoder, decoder)``.

    Parameters
    ----------
    layer_dims : sequence of int
        Widths from the input down to the bottleneck, e.g. ``[48, 16, 2]``: an
        input of 48 values, a hidden layer of 16 and a code of 2. The decoder
        mirrors the hidden widths back up to the input width.
    activations : sequence of str, optional
        One Keras activation per encoder layer (``len(layer_dims) - 1`` of
        them); the decoder layer that produces width ``layer_dims[k]`` uses the
        encoder's activation for that width. Default: ``"tanh"`` everywhere.
        The output layer is always linear.

    Returns
    -------
    autoencoder : keras.Model
        Input -> reconstruction, not compiled.
    encoder : keras.Model
        Input -> code, sharing the autoencoder's layers.
    decoder : keras.Model
        Code -> reconstruction, sharing the autoencoder's layers (and so its
        weights: training the autoencoder trains both).

    Raises
    ------
    ValueError
        If fewer than two widths are given, a width is not a positive
        integer, or ``activations`` does not have ``len(layer_dims) - 1``
        entries (the message says how many are needed).

    Notes
    -----
    Lee et al. (2018), Sec. 3.2, stack fully connected layers that shrink to a
    bottleneck and mirror them. The published betsi package ended the decoder
    with a ReLU, which cannot output the negative values of standardised data;
    here the output is linear.

    Examples
    --------
    >>> ae, enc, dec = custom_autoencoder([6, 4, 2])
    >>> ae.input_shape, enc.output_shape, dec.output_shape
    ((None, 6), (None, 2), (None, 6))
    >>> ae.layers[-1].get_config()["activation"]
    'linear'
    """
    import keras

    dims = _check_layer_dims(layer_dims)
    acts = _check_activations(activations, len(dims) - 1)
    encoder_layers = [
        keras.layers.Dense(width, activation=act, name=f"encoder_{k}")
        for k, (width, act) in enumerate(zip(dims[1:], acts, strict=True))
    ]
    # Mirror: the decoder layer producing dims[k] reuses the activation that
    # produced dims[k] in the encoder; the last layer gives back the input, linearly.
    decoder_layers = [
        keras.layers.Dense(dims[k], activation=acts[k - 1], name=f"decoder_{j}")
        for j, k in enumerate(range(len(dims) - 2, 0, -1))
    ]
    decoder_layers.append(keras.layers.Dense(dims[0], activation="linear", name="output"))
    inputs = keras.Input(shape=(dims[0],), name="window")
    code = inputs
    for layer in encoder_layers:
        code = layer(code)
    out = code
    for layer in decoder_layers:
        out = layer(out)
    autoencoder = keras.Model(inputs, out, name="autoencoder")
    encoder, decoder = _encoder_decoder(autoencoder, len(encoder_layers))
    return autoencoder, encoder, decoder


def _encoder_decoder(autoencoder, n_encoder_layers: int):
    """Encoder and decoder models built on the autoencoder's own layers."""
    import keras

    encoder = keras.Model(
        autoencoder.input, autoencoder.get_layer(f"encoder_{n_encoder_layers - 1}").output,
        name="encoder",
    )
    code_width = encoder.output_shape[-1]
    code_in = keras.Input(shape=(code_width,), name="code")
    out = code_in
    for layer in autoencoder.layers:
        if layer.name.startswith("decoder_") or layer.name == "output":
            out = layer(out)
    decoder = keras.Model(code_in, out, name="decoder")
    return encoder, decoder


def _check_layer_dims(layer_dims) -> list[int]:
    if isinstance(layer_dims, (str, bytes)) or not isinstance(layer_dims, Sequence):
        raise ValueError(
            f"layer_dims must be a sequence of widths from the input down to the "
            f"bottleneck, e.g. [48, 16, 2]; got {layer_dims!r}"
        )
    dims = [_check_int(d, f"layer_dims[{i}]", minimum=1) for i, d in enumerate(layer_dims)]
    if len(dims) < 2:
        raise ValueError(
            f"layer_dims needs at least 2 widths (input and bottleneck), got {list(layer_dims)}"
        )
    return dims


def _check_activations(activations, n_needed: int) -> list[str]:
    if activations is None:
        return [DEFAULT_ACTIVATION] * n_needed
    if isinstance(activations, str):
        activations = [activations]
    activations = list(activations)
    if len(activations) != n_needed:
        raise ValueError(
            f"activations needs {n_needed} entries, one per encoder layer "
            f"(len(layer_dims) - 1), got {len(activations)}: {activations}"
        )
    bad = [a for a in activations if not isinstance(a, str)]
    if bad:
        raise ValueError(f"activations must be Keras activation names, got {bad}")
    return activations


# --------------------------------------------------------------------------- distances


def distance_measure(a, b) -> float | np.ndarray:
    """Normalised L2 distance between codes (Lee et al., 2018, Sec. 3.3).

    ``D(a, b) = ||a - b|| / sqrt(||a|| * ||b||)``: the Euclidean distance
    divided by the geometric mean of the two norms, so that it does not depend
    on the scale of the codes.

    Parameters
    ----------
    a, b : array-like of shape (n_codes,) or (n_pairs, n_codes)
        Codes; 2-D inputs are compared row by row.

    Returns
    -------
    float or ndarray of shape (n_pairs,)
        Non-negative and finite; 0 for identical codes.

    Raises
    ------
    ValueError
        If the shapes differ, an input is empty or holds NaN or infinity.

    Notes
    -----
    The formula is undefined when a code is all zeros (which a ReLU
    bottleneck produces, and which made the published package divide by
    zero). Then the geometric mean of the norms is replaced by their
    arithmetic mean, so a zero code against a non-zero one is at distance 2
    and two zero codes are at distance 0.

    Examples
    --------
    >>> distance_measure([1.0, 0.0], [1.0, 0.0])
    0.0
    >>> distance_measure([3.0, 4.0], [0.0, 0.0])
    2.0
    >>> round(distance_measure([1.0, 0.0], [0.0, 1.0]), 4)
    1.4142
    """
    a_arr = np.asarray(a, dtype=np.float64)
    b_arr = np.asarray(b, dtype=np.float64)
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"a and b must have the same shape, got {a_arr.shape} and {b_arr.shape}")
    if a_arr.ndim not in (1, 2) or a_arr.size == 0:
        raise ValueError(
            f"a and b must be non-empty codes of shape (n_codes,) or (n_pairs, n_codes), "
            f"got shape {a_arr.shape}"
        )
    if not (np.isfinite(a_arr).all() and np.isfinite(b_arr).all()):
        raise ValueError("a and b must not contain NaN or infinite values")
    out = _distance_kernel(np.atleast_2d(a_arr), np.atleast_2d(b_arr))
    return float(out[0]) if a_arr.ndim == 1 else out


def _distance_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise ``||a - b|| / sqrt(||a|| ||b||)`` with the zero-code fallback."""
    norm_a = np.linalg.norm(a, axis=1)
    norm_b = np.linalg.norm(b, axis=1)
    diff = np.linalg.norm(a - b, axis=1)
    denom = np.sqrt(norm_a * norm_b)
    denom = np.where(denom > 0, denom, 0.5 * (norm_a + norm_b))
    return np.divide(diff, denom, out=np.zeros_like(diff), where=denom > 0)


def _set_distance_kernel(codes: np.ndarray, lag: int, span: int) -> np.ndarray:
    """Half the energy distance between the sets of ``span`` codes on each side of a gap.

    Value ``i`` compares the left set ``codes[i - span + 1 .. i]`` with the
    right set ``codes[i + lag .. i + lag + span - 1]``::

        mean ||L - R|| - (mean ||L - L'|| + mean ||R - R'||) / 2

    (means over all pairs, a code paired with itself included), for ``i`` in
    ``span - 1 .. len(codes) - lag - span``. With ``span=1`` it is
    ``||codes[i] - codes[i + lag]||``. The pairwise distances are taken once
    per offset between windows (``k**2`` passes over the curve, not one per
    value and pair).
    """
    n_out = len(codes) - lag - 2 * span + 2
    if n_out <= 0:
        return np.empty(0)
    first = span - 1  # position of value 0 in the codes

    def at(offset: int, start: int) -> np.ndarray:
        """``||codes[t] - codes[t + offset]||`` for t = start .. start + n_out - 1."""
        return np.linalg.norm(codes[start + offset:start + offset + n_out]
                              - codes[start:start + n_out], axis=1)

    cross = np.zeros(n_out)
    within = np.zeros(n_out)
    for a in range(span):  # left code i - a
        for b in range(span):  # right code i + lag + b
            cross += at(lag + a + b, first - a)
        for b in range(a + 1, span):  # pairs inside each set, both orders: x2
            within += at(b - a, first - b) + at(b - a, first + lag + a)
    return cross / span**2 - within / span**2


# --------------------------------------------------------------------------- events


def get_events(distances, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Positions of the peaks of a distance curve that stand out by their mass.

    The curve's median is its noise floor. A *hill* is a maximal run of
    consecutive samples strictly above the median; its *peak* is the position
    of the run's maximum (the first one on ties) and its *mass* is the area
    between the curve and the median over the run::

        mass = sum(d[i] - median(d) for i in run)

    A peak is an event when ``mass >= (1 + threshold / 100) * mean(mass of all
    hills)``.

    Parameters
    ----------
    distances : array-like of shape (n,)
        The distance curve (for instance :meth:`BehaviourDetector.distances`).
    threshold : float, default 150
        Percentage above the mean mass; 150 keeps hills of at least 2.5 times
        the mean, 0 keeps every hill of at least average mass.

    Returns
    -------
    ndarray of int
        Positions into ``distances`` of the events' peaks, increasing. Empty
        when the curve has no hill (it is empty or never rises above its
        median, e.g. constant), and when it has a single hill, which cannot
        stand above its own mass unless ``threshold`` is 0.

    Raises
    ------
    ValueError
        If ``threshold`` is negative or not a number, or ``distances`` is not
        1-D or holds NaN or infinity.

    Notes
    -----
    Lee et al. (2018), Sec. 3.3, keep the peaks of the distance curve that
    stand above the average by a noise margin (``noise_margin_per`` in the
    published package). Weighing a peak by the mass of its hill rather than by
    its height favours the broad hills that a change of behaviour raises while
    the windows slide across it over the narrow spikes of noise, and measuring
    the hill from the median keeps one hill whole when noise ripples its top.

    Examples
    --------
    >>> d = [0, 1, 0, 0, 5, 6, 5, 0, 0, 1, 0, 0]
    >>> get_events(d, threshold=150)
    array([5])
    >>> get_events([2.0, 2.0, 2.0])
    array([], dtype=int64)
    """
    threshold = _check_threshold(threshold)
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 1:
        raise ValueError(f"distances must be 1-D, got shape {d.shape}")
    if not np.isfinite(d).all():
        raise ValueError("distances must not contain NaN or infinite values")
    peaks, masses = _peak_masses(d)
    return _select_events(peaks, masses, threshold)


def _select_events(peaks: np.ndarray, masses: np.ndarray, threshold: float) -> np.ndarray:
    if peaks.size == 0:
        return np.array([], dtype=np.int64)
    cut = (1.0 + threshold / 100.0) * masses.mean()
    return peaks[masses >= cut].astype(np.int64)


def _peak_masses(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Peak positions and masses of the hills above the median (see :func:`get_events`)."""
    if d.size == 0:
        return np.array([], dtype=np.int64), np.array([])
    excess = d - np.median(d)
    above = excess > 0
    # run starts and ends of the True stretches of ``above``
    edges = np.diff(np.r_[0, above.astype(np.int8), 0])
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    peaks = np.array([a + int(np.argmax(d[a:b])) for a, b in zip(starts, stops, strict=True)], dtype=np.int64)
    masses = np.array([excess[a:b].sum() for a, b in zip(starts, stops, strict=True)])
    return peaks, masses


def _check_threshold(threshold, name: str = "threshold") -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise ValueError(f"{name} must be a number (percent), got {threshold!r}")
    threshold = float(threshold)
    if not np.isfinite(threshold) or threshold < 0:
        raise ValueError(f"{name} must be >= 0 (percent above the mean peak mass), got {threshold}")
    return threshold


# --------------------------------------------------------------------------- detector


class BehaviourDetector(ChangePointDetector):
    """Change-of-behaviour detector: windows -> autoencoder codes -> distance peaks.

    Parameters
    ----------
    window_size : int or None, default None
        Rows per window. ``None`` adapts it to the length ``n`` of the data
        given to :meth:`fit`: ``clip(n // 10, 2, 32)``.
    stride : int or None, default None
        Rows between the starts of consecutive windows, and so the resolution
        of the distance curve. ``None`` uses ``max(1, window_size // 8)``.
    layer_dims : sequence of int or None, default None
        Widths after the input down to the bottleneck, e.g. ``(16, 2)``; the
        input width is ``window_size * n_series``. ``None`` uses one hidden
        layer of half the input width (at least 2) and a code of 2.
    activations : sequence of str or None, default None
        One activation per entry of ``layer_dims`` (``"tanh"`` by default);
        see :func:`custom_autoencoder`.
    epochs : int, default 30
        Training epochs.
    batch_size : int, default 16
        Mini-batch size.
    margin : float, default 150
        Event threshold of :func:`get_events` (its ``threshold``), in percent
        above the mean hill mass. (Before the shared detector interface this
        setting was called ``threshold``.)
    metric : {"euclidean", "normalized"}, default "euclidean"
        Distance between two codes: plain Euclidean, or Lee et al.'s normalised
        L2 distance (:func:`distance_measure`).
    span : int, default 1
        Windows compared on each side of a boundary. 1 compares one window
        with its neighbour (the paper's comparison of consecutive codes).
        ``span > 1`` compares the *sets* of ``span`` codes before and after
        the boundary by their energy distance (halved, so that ``span=1``
        gives the plain distance): for a periodic signal, where a single code
        follows the phase, the set of codes over a few windows covers the
        whole cycle, so a change of amplitude, noise or correlation shows as a
        hill at the change rather than as a change of level of the curve.
        Euclidean metric only. Capped at ``(n_windows - lag_) // 2`` for
        short series. See Notes.
    random_state : int, default 0
        Seed for weights and shuffling (:func:`lab.models._base.seed_everything`);
        the same seed gives the same model on CPU.
    verbose : int or str, default 1
        Keras ``fit`` verbosity: 1 (or ``"auto"``) shows a progress bar, 0 is silent.
    threshold : {"native", "quantile", "spot", "sigma"}, float or dict, default "native"
        How ``threshold_``, the score above which :meth:`predict` flags a
        row, is set (:mod:`lab.models.thresholds`). "native" is the peak rule
        (see Notes); the others use the training rows' scores.
    contamination : float, default 0.01
        For ``threshold="quantile"``.

    Attributes
    ----------
    window_size_, stride_ : int
        The values used, after adapting ``None`` to the training data.
    lag_ : int
        Windows between the two compared codes, ``ceil(window_size_ / stride_)``.
    n_features_in_ : int
        Number of series seen in :meth:`fit`.
    center_, scale_ : ndarray of shape (n_features_in_,)
        Z-score statistics of the training rows.
    autoencoder_, encoder_, decoder_ : keras.Model
        The trained networks (encoder and decoder share the autoencoder's weights).
    history_ : dict
        Training loss per epoch, ``{"loss": [...]}``.
    decision_scores_ : ndarray of shape (n_rows,)
        :meth:`score` of the training rows.
    threshold_ : float
        Score above which :meth:`predict` flags a row.

    Notes
    -----
    Method of Lee et al., "Time Series Segmentation through Automatic Feature
    Learning" (2018), arXiv 1801.05394. Window ``i`` covers rows
    ``i*stride .. i*stride + window_size - 1``. Consecutive windows are
    compared as neighbours in time: window ``i`` with window ``i + lag_``, the
    first one that does not overlap it, so the curve answers "does the
    behaviour just after this row differ from the behaviour just before it?"
    at every ``stride`` rows. The distance is placed at the boundary between
    the two windows, row ``i*stride + window_size`` when ``stride`` divides
    ``window_size`` (the middle of the gap between them otherwise). Rows
    after the last full window are in no window, and a change closer than one
    window to either end of the series cannot be seen.

    Comparing overlapping windows (``i`` with ``i + 1``) measures how fast the
    code moves, which within a noisy segment is mostly noise; the codes of two
    windows a full window apart differ little inside a segment and most at a
    change. The Euclidean distance is the default because the normalised one
    divides by the codes' norms and so explodes wherever the codes pass near
    the origin, which z-scored windows near the series' mean do. Both choices
    were made on the TCPD benchmark (``benchmarks/tcpd.py``, docs/betsi.md).

    With ``span=k > 1`` the value at a boundary is half the energy distance
    (Szekely and Rizzo, 2013) between the codes of the ``k`` windows that end
    at or before it and the ``k`` windows that start at or after it; it is 0
    when the two sets coincide and grows with any difference between their
    distributions, whatever the phase of each window. It needs ``k`` windows
    on each side, so a change closer than ``window_size + (k - 1) * stride``
    rows to either end cannot be seen. On a sine whose amplitude switches
    between 1 and 2.5 (docs/betsi.md), ``span=1`` places none of the changes
    within 5 rows and ``span=lag_`` most of them; on TCPD ``span=1`` scores
    better, hence the default.

    **Score at rows.** :meth:`score` is the distance curve placed at rows:
    each value on the row that ends the later of the windows it compares
    (:meth:`scored_rows`), so a row's score reads no later row; the rows
    between two values take the last one, and the rows before the first
    value take the first one. With fewer than ``window_size_ + lag_ * stride_``
    rows there is no pair of windows to compare and every row scores 0 (no
    change seen). ``change_points`` (row positions) and :meth:`events` (time
    labels) are the peaks of the curve that :func:`get_events` keeps with
    ``margin``.

    **Native threshold.** The peak rule applied to the training rows:
    ``threshold_`` is just below the lowest distance among the peaks that are
    events there, so :meth:`predict` flags every training event's peak row
    and the rows whose distance reaches as high. With no event on the
    training rows it is the largest training distance (0 without any).

    Short series: a series shorter than ``window_size`` (when given) raises;
    with the automatic window, any series of at least 2 rows works (the 15-row
    series of TCPD gets windows of 2 rows, stride 1), though a series with
    fewer than ``2 * window_size`` rows has no pair of windows to compare and
    so no event.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.r_[np.zeros(60), np.ones(60)] + 0.05 * np.random.default_rng(0).normal(size=120)
    >>> det = BehaviourDetector(epochs=2, verbose=0).fit(x)
    >>> det.window_size_, det.stride_, det.lag_
    (12, 1, 12)
    >>> det.distances(x).shape
    (97,)
    """

    _keras_attrs = ("autoencoder_",)
    _state_attrs = (
        "window_size_", "stride_", "lag_", "n_features_in_", "n_encoder_layers_",
        "center_", "scale_", "history_",
    )

    def __init__(
        self,
        window_size: int | None = None,
        stride: int | None = None,
        layer_dims: Sequence[int] | None = None,
        activations: Sequence[str] | None = None,
        epochs: int = 30,
        batch_size: int = 16,
        margin: float = DEFAULT_THRESHOLD,
        metric: str = "euclidean",
        span: int = 1,
        random_state: int = 0,
        verbose: int | str = 1,
        threshold: Any = "native",
        contamination: float = DEFAULT_CONTAMINATION,
    ):
        self.window_size = window_size
        self.stride = stride
        self.layer_dims = layer_dims
        self.activations = activations
        self.epochs = epochs
        self.batch_size = batch_size
        self.margin = margin
        self.metric = metric
        self.span = span
        self.random_state = random_state
        self.verbose = verbose
        self.threshold = threshold
        self.contamination = contamination

    # ------------------------------------------------------------------ fit
    def _check_params(self) -> None:
        super()._check_params()
        _check_threshold(self.margin, "margin")
        _check_option(self.metric, "metric", _METRICS)
        self._check_span()
        _check_int(self.epochs, "epochs", minimum=1)
        _check_int(self.batch_size, "batch_size", minimum=1)
        _check_int(self.random_state, "random_state", minimum=0)

    @property
    def lookback_(self) -> int:
        """Rows before a row that its score reads: the two windows (and sets) it compares."""
        self._check_is_fitted()
        span = self._check_span()
        return int(self.window_size_ + (self.lag_ + span - 1) * self.stride_ - 1)

    @property
    def min_rows(self) -> int:
        """Fewest rows accepted: one window (``window_size_`` once fitted; 2 for the automatic one)."""
        if hasattr(self, "window_size_"):
            return int(self.window_size_)
        if self.window_size is None:
            return _MIN_WINDOW
        return _check_int(self.window_size, "window_size", minimum=1)

    def _validate(self, X: Any, name: str) -> tuple[np.ndarray, pd.Index, pd.Index]:
        values, index, columns = _as_2d(X, name)
        if len(values) < self.min_rows:
            which = (f"window_size={self.min_rows}" if self.window_size is not None
                     or hasattr(self, "window_size_") else "the automatic window needs 2")
            raise ValueError(
                f"{name} has {len(values)} rows (shape {values.shape}), shorter than one window "
                f"({which}); at least {self.min_rows} rows are needed")
        return values, index, columns

    def _fit(self, values: np.ndarray, y: Any, valid: Any) -> None:
        """Normalise with the statistics of the training rows, window them and train."""
        import keras

        from lab.preprocessor import convert_to_column, normalize

        n, m = values.shape
        window, stride = self._resolve_window(n)
        hidden = self._resolve_layers(window * m)
        acts = _check_activations(self.activations, len(hidden))
        normalized, scaler = normalize(values, "zscore")
        self.center_ = np.asarray(scaler.mean_, dtype=np.float64)
        self.scale_ = np.asarray(scaler.scale_, dtype=np.float64)
        rows = convert_to_column(normalized, window, stride).astype(np.float32)
        seed_everything(self.random_state)
        autoencoder, encoder, decoder = custom_autoencoder([rows.shape[1], *hidden], acts)
        autoencoder.compile(optimizer=keras.optimizers.Adam(_LEARNING_RATE), loss="mse")
        history = autoencoder.fit(
            rows, rows, epochs=self.epochs, batch_size=min(self.batch_size, len(rows)),
            shuffle=True, verbose=self.verbose,
        )
        self.history_ = {"loss": [float(v) for v in history.history["loss"]]}
        self.autoencoder_, self.encoder_, self.decoder_ = autoencoder, encoder, decoder
        self.window_size_, self.stride_ = window, stride
        self.lag_ = -(-window // stride)
        self.n_encoder_layers_ = len(hidden)

    def _native_threshold(self, valid_values: np.ndarray | None) -> float:
        # the peak rule (class Notes) on the training curve, read back from the
        # training rows' scores at the rows where the curve's values sit
        d = self.decision_scores_[self._ends(len(self.decision_scores_))]
        events = get_events(d, self.margin)
        if events.size:
            return float(np.nextafter(d[events].min(), -np.inf))
        return float(d.max()) if d.size else 0.0

    def _resolve_window(self, n: int) -> tuple[int, int]:
        if self.window_size is None:
            window = int(np.clip(n // _WINDOW_FRACTION, _MIN_WINDOW, _MAX_WINDOW))
        else:
            window = _check_int(self.window_size, "window_size", minimum=1)
            if window > n:
                raise ValueError(
                    f"X has {n} rows, shorter than one window (window_size={window}); "
                    f"give at least {window} rows or a smaller window_size"
                )
        if self.stride is None:
            stride = max(1, window // _STRIDE_FRACTION)
        else:
            stride = _check_int(self.stride, "stride", minimum=1)
        return window, stride

    def _resolve_layers(self, input_width: int) -> list[int]:
        if self.layer_dims is None:
            return [max(2, input_width // _HIDDEN_FRACTION), _BOTTLENECK]
        if isinstance(self.layer_dims, numbers.Integral):
            return [_check_int(self.layer_dims, "layer_dims", minimum=1)]
        return _check_layer_dims([input_width, *self.layer_dims])[1:]

    def _check_span(self) -> int:
        span = _check_int(self.span, "span", minimum=1)
        if span > 1 and self.metric != "euclidean":
            raise ValueError(
                f"span={span} compares sets of codes by their energy distance, which needs "
                f"metric='euclidean', got metric={self.metric!r}; use span=1 with it"
            )
        return span

    def _after_load(self) -> None:
        for attr in ("window_size_", "stride_", "lag_", "n_features_in_", "n_encoder_layers_"):
            setattr(self, attr, int(getattr(self, attr)))
        self.encoder_, self.decoder_ = _encoder_decoder(self.autoencoder_, self.n_encoder_layers_)

    # ------------------------------------------------------------------ scoring
    def _codes_kernel(self, values: np.ndarray) -> np.ndarray:
        """Codes of the normalised windows of validated ``values``."""
        from lab.preprocessor import convert_to_column

        normalized = (values - self.center_) / self.scale_
        rows = convert_to_column(normalized, self.window_size_, self.stride_)
        return np.asarray(self.encoder_(rows.astype(np.float32)), dtype=np.float64)

    def _positions(self, n_rows: int) -> tuple[np.ndarray, int]:
        """Row of each value of the distance curve of ``n_rows`` rows, and the span used."""
        n_codes = max((n_rows - self.window_size_) // self.stride_ + 1, 0)
        lag = self.lag_
        span = min(self._check_span(), max(1, (n_codes - lag) // 2))
        i = np.arange(max(n_codes - lag - 2 * span + 2, 0)) + span - 1
        # between the end of window i and the start of window i + lag
        return ((2 * i * self.stride_ + self.window_size_ + lag * self.stride_) // 2
                ).astype(np.int64), span

    def _ends(self, n_rows: int) -> np.ndarray:
        """Row that ends the last window each value of the curve reads (window i + lag + span - 1)."""
        positions, span = self._positions(n_rows)
        n_values = len(positions)
        i = np.arange(n_values) + span - 1
        return ((i + self.lag_ + span - 1) * self.stride_ + self.window_size_ - 1).astype(np.int64)

    def _curve(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance curve of validated ``values`` and the row position of each value."""
        codes = self._codes_kernel(values)
        positions, span = self._positions(len(values))
        if self.metric == "normalized":
            d = _distance_kernel(codes[:-self.lag_], codes[self.lag_:]) if len(positions) \
                else np.empty(0)
        else:
            d = _set_distance_kernel(codes, self.lag_, span)
        return d, positions

    def _score(self, values: np.ndarray) -> np.ndarray:
        d, _ = self._curve(values)
        if not len(d):
            return np.zeros(len(values))
        # at the row that ends the windows it compares, so a row's score reads no later row
        return self._place(self._ends(len(values)), d, len(values))

    def _change_points(self, values: np.ndarray) -> np.ndarray:
        d, positions = self._curve(values)
        return positions[get_events(d, self.margin)]

    def scored_rows(self, X) -> np.ndarray:
        """Positions of the rows of ``X`` where :meth:`score` places a value of the curve.

        One every ``stride_`` rows, each the last row of the windows that the
        value compares; :meth:`score` carries each value over the rows up to
        the next one. (:meth:`change_points` put a change on the boundary
        between the two windows instead.)

        Returns
        -------
        ndarray of int
        """
        values = self._check_columns(X)
        return self._ends(len(values))

    def codes(self, X) -> pd.DataFrame:
        """Bottleneck code of every window, indexed by the label of the window's middle row.

        Examples
        --------
        >>> import numpy as np
        >>> x = np.sin(np.arange(40.0))
        >>> det = BehaviourDetector(window_size=4, stride=2, epochs=1, verbose=0).fit(x)
        >>> det.codes(x).shape
        (19, 2)
        """
        values = self._check_columns(X)
        codes = self._codes_kernel(values)
        middle = np.arange(len(codes)) * self.stride_ + self.window_size_ // 2
        return pd.DataFrame(codes, index=_index(X, len(values))[middle],
                            columns=[f"code_{k}" for k in range(codes.shape[1])])

    def distances(self, X) -> pd.Series:
        """Distance between the codes of neighbouring windows, indexed by time.

        Value ``i`` compares window ``i`` with window ``i + lag_`` (with
        ``span=k``, windows ``i .. i+k-1`` with the ``k`` windows from
        ``i + k - 1 + lag_`` on) and sits at the row between the last window of
        the left set and the first of the right one (see Notes of the class).
        The result is empty when ``X`` has too few rows for two windows side
        by side.

        Raises
        ------
        ValueError
            If ``X``'s columns are not the fitted ones (a DataFrame's are
            matched by name: reordered ones are put back in order, missing or
            extra ones are named), it is shorter than one window, or holds NaN
            or non-numeric columns.
        """
        values = self._check_columns(X)
        d, positions = self._curve(values)
        return pd.Series(d, index=_index(X, len(values))[positions], name="distance")

    def peaks(self, X) -> pd.DataFrame:
        """Every hill of the distance curve with its mass and whether it is an event.

        Returns
        -------
        DataFrame
            Indexed by the time of each hill's peak, with columns ``row``
            (position in ``X``), ``mass`` and ``event`` (bool).
            ``attrs["mass_threshold"]`` holds the mass an event needs (NaN when
            there is no hill).
        """
        values = self._check_columns(X)
        d, positions = self._curve(values)
        peaks, masses = _peak_masses(d)
        margin = _check_threshold(self.margin, "margin")
        events = set(_select_events(peaks, masses, margin).tolist())
        rows = positions[peaks]
        out = pd.DataFrame(
            {"row": rows, "mass": masses, "event": [p in events for p in peaks.tolist()]},
            index=_index(X, len(values))[rows],
        )
        out.attrs["mass_threshold"] = (
            float((1 + margin / 100) * masses.mean()) if len(masses) else np.nan
        )
        return out

    def events(self, X) -> pd.Index:
        """Time labels of the detected changes (``X.index`` at :meth:`change_points`)."""
        values = self._check_columns(X)
        return _index(X, len(values))[self._change_points(values)]


def _index(X, n: int) -> pd.Index:
    return X.index if isinstance(X, pd.DataFrame | pd.Series) else pd.RangeIndex(n)
