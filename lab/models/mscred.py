"""MSCRED: multi-scale convolutional recurrent encoder-decoder (Zhang et al., AAAI 2019).

The method, in four steps:

1. turn a multivariate series into multi-scale signature matrices
   (:func:`lab.tensor_utility.signature_matrices`);
2. encode each matrix with four convolutions;
3. model the evolution of each level's feature maps over the last ``steps``
   matrices with a ConvLSTM, summarise the hidden states with attention, and
   decode with transposed convolutions and skip connections (the network is in
   :mod:`lab.models.mscred_layers`);
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

The detector follows :class:`lab.models.BaseDetector`; judging it against a
truth is :mod:`lab.evaluation`'s work (:func:`lab.evaluation.evaluate_synthetic`).
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

from lab._validation import _as_2d, _check_int, _check_option
from lab.models._base import BaseDetector, seed_everything
from lab.models.mscred_layers import (
    FILTERS,
    MIN_SERIES,
    PRECISIONS,
    SLIDING_BATCH,
    build_mscred,
    check_filters,
    is_mscred_network,
    reconstruct_sliding,
    window_sequences,
)
from lab.models.mscred_train import BATCHINGS, train_blocks, train_windows
from lab.models.thresholds import DEFAULT_CONTAMINATION
from lab.tensor_utility import signature_matrices

__all__ = [
    "MSCREDDetector",
    "IdentityMappingWarning",
    "SeparationWarning",
    "MatrixOverflowWarning",
    "TAU_QUANTILE",
    "VALID_FRACTION",
]

#: Default number of training epochs (see docs/mscred.md for the choice).
DEFAULT_EPOCHS = 8
#: Default minibatch size: small batches give more Adam updates per epoch, which
#: matters more than throughput at the paper's learning rate of 2e-4.
DEFAULT_BATCH_SIZE = 8
#: Minibatch size of ``predict`` for networks that are not :func:`build_mscred`'s
#: (tests plug in degenerate ones); those use every window whole.
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


class MatrixOverflowWarning(RuntimeWarning):
    """Signature matrices or residuals overflowed float32: those rows score as the most anomalous."""


# --------------------------------------------------------------------------- kernels


def _standardize_kernel(values: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (values - mean) / scale


def _to_channels_last(M: np.ndarray) -> np.ndarray:
    """(K, scales, n, n) float64 -> (K, n, n, scales) float32 (inf where float32 overflows)."""
    # an overflow is reported by the detector (MatrixOverflowWarning), not by numpy
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(np.moveaxis(M, 1, -1), dtype=np.float32)


def _count_kernel(residual: np.ndarray, tau: float) -> np.ndarray:
    # "not <= tau" rather than "> tau": a NaN residual (a matrix that overflowed
    # float32) counts as poorly reconstructed instead of silently as normal
    return (~(residual <= tau)).sum(axis=(1, 2))


def _overflow_kernel(M: np.ndarray) -> np.ndarray:
    """``(K, n)``: series whose own entry ``M[k, i, i]`` is not finite at some scale.

    ``M`` is channels last. ``|M_ij| <= sqrt(M_ii M_jj)``, so a series whose
    diagonal entries are finite cannot overflow an entry on its own.
    """
    return ~np.isfinite(np.diagonal(M, axis1=1, axis2=2)).all(axis=1)


# --------------------------------------------------------------------------- detector


def _check_precision_network(precision: str, model: keras.Model) -> None:
    """Refuse bfloat16 scoring for a network that only ``predict`` can run (no sliding path)."""
    if precision != "float32" and not is_mscred_network(model):
        raise ValueError(f"score_precision={precision!r} needs a build_mscred network; "
                         f"{model.name!r} is not one: use 'float32'")


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
        The native threshold: ``threshold_ = alpha * max(validation score)``
        (the paper's beta), the maximum over matrices ending at every
        validation row.
    random_state : int, default 0
        Seed of weights, shuffling and the identity-mapping probes.
    filters : tuple of 4 ints, default (32, 64, 128, 256)
        Encoder channels, see :func:`lab.models.mscred_layers.build_mscred`.
    threshold : {"native", "quantile", "spot", "sigma"}, float or dict, default "native"
        How ``threshold_`` is set (:mod:`lab.models.thresholds`). "native" is
        the ``alpha`` rule above; the others use the training rows' scores.
    contamination : float, default 0.01
        For ``threshold="quantile"``.
    batching : {"blocks", "windows"}, default "blocks"
        How training batches are cut (:mod:`lab.models.mscred_train`).
        "blocks": each batch is ``batch_size`` consecutive windows, and each
        of its ``batch_size + steps - 1`` matrices is encoded once; the cuts
        move every epoch, the blocks come in random order, and up to
        ``2 * (batch_size - 1)`` windows at the ends are seen twice an epoch.
        "windows": ``batch_size`` windows drawn at random, each encoded whole
        (Keras ``fit``). Each batch's loss is the same mean squared error of
        its windows' last matrices. On 2 AVX2 cores "blocks" trains 1.64x as
        fast with TensorFlow's default kernels and 1.48x with oneDNN's
        (docs/mscred.md). A network that is not
        :func:`~lab.models.mscred_layers.build_mscred`'s trains by "windows".
    score_precision : {"float32", "bfloat16"}, default "float32"
        Number format of the encoder, input and state convolutions when
        scoring, validation scores (``tau_``, ``threshold_``) included, so set
        it before ``fit``; training is float32 either way. "bfloat16" scored
        1000 matrices about 1.4x as fast on 2 CPU cores with AVX-512 BF16 and
        changed 3% of the scores by one entry (``benchmarks/bench_mscred.py
        --bf16``, docs/mscred.md). It is fast only with oneDNN's kernels on
        hardware with bfloat16 (AVX-512 BF16 or AMX CPUs), and needs a
        :func:`~lab.models.mscred_layers.build_mscred` network.

    Attributes
    ----------
    model_ : keras.Model
        The trained network.
    mean_, scale_ : ndarray of shape (n_series,)
        Standardisation statistics, from the training rows only.
    columns_ : list
        Series names seen in ``fit``.
    decision_scores_ : ndarray of shape (n_rows,)
        Scores of the rows given to ``fit`` (training and carved validation).
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
    batching_ : str
        The batching that trained ``model_``: ``batching``, or "windows" for
        a network that is not :func:`~lab.models.mscred_layers.build_mscred`'s.
    score_precision_ : str
        The ``score_precision`` of ``fit``, whose validation scores set
        ``tau_`` and ``threshold_``; scoring with another one raises.

    Notes
    -----
    Zhang et al., "A Deep Neural Network for Unsupervised Anomaly Detection
    and Diagnosis in Multivariate Time Series Data", AAAI 2019
    (arXiv:1811.08055). The series is standardised with training statistics
    (the reference code min-max scales the whole series, test included); the
    loss is the mean squared reconstruction error of the last matrix of each
    sequence; the score of a matrix is the number of entries of the smallest
    scale's squared residual matrix above ``tau`` (section 3.5); root causes
    are ranked by residual row mass (section 4.4).

    **Score at rows.** A matrix is computed every ``step`` rows
    (:meth:`scored_rows`); its score goes to the row that ends it, rows
    between two matrices take the last score, and rows before the first full
    sequence (``max(windows) + (steps - 1) * step - 1`` rows of history) take
    the first score. Metrics are judged at :meth:`scored_rows`
    (:mod:`lab.evaluation`).

    **Overflow.** The network runs in float32. A value so far from the
    training data that its signature matrices overflow float32 (a sensor stuck
    at 1e20) gives non-finite residuals; every such entry counts as above
    ``tau_``, so the row gets the highest score there is (``n_series ** 2``),
    and a :class:`MatrixOverflowWarning` names the columns and rows. Training
    or validation data that overflow raise a ValueError.

    Examples
    --------
    A tiny network for one epoch, to show the calls (the defaults are the paper's):

    >>> from lab.datasets import make_mscred_synthetic
    >>> df, truth = make_mscred_synthetic(n_series=6, length=2000, n_anomalies=1)
    >>> det = MSCREDDetector(windows=(10, 20), step=10, steps=2, epochs=1,
    ...                      filters=(2, 2, 2, 2))
    >>> det = det.fit(df.iloc[:800], valid=df.iloc[800:1000])
    >>> score = det.score(df.iloc[1000:])
    >>> score.name, len(score), bool(det.threshold_ == det.alpha * det.valid_score_max_)
    ('score', 1000, True)
    >>> len(det.scored_rows(df.iloc[1000:]))  # one matrix every 10 rows, 2 per sequence
    98
    >>> det.batching_, len(det.history_["loss"])  # trained on blocks of consecutive windows
    ('blocks', 1)
    >>> at = truth["start"][0] + 5
    >>> sorted(det.root_causes(df, at, k=3).index) == sorted(truth["root_causes"][0])
    True
    """

    _keras_attrs = ("model_",)
    _state_attrs = ("mean_", "scale_", "tau_", "valid_score_max_", "history_",
                    "identity_check_", "fit_seconds_", "batching_", "score_precision_")
    _default_threshold = "native"
    _needs_valid = True

    def __init__(self, windows: Sequence[int] = (10, 30, 60), step: int = 10, steps: int = 5,
                 epochs: int = DEFAULT_EPOCHS, batch_size: int = DEFAULT_BATCH_SIZE,
                 learning_rate: float = 2e-4, tau: float | None = None, alpha: float = 1.5,
                 random_state: int = 0, filters: Sequence[int] = FILTERS,
                 threshold: Any = "native", contamination: float = DEFAULT_CONTAMINATION,
                 batching: str = "blocks", score_precision: str = "float32"):
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
        self.threshold = threshold
        self.contamination = contamination
        self.batching = batching
        self.score_precision = score_precision

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
        return windows, step, steps

    def _check_params(self) -> None:
        super()._check_params()
        self._settings()
        _check_int(self.epochs, "epochs", minimum=1)
        _check_int(self.batch_size, "batch_size", minimum=1)
        _check_option(self.batching, "batching", BATCHINGS)
        _check_option(self.score_precision, "score_precision", PRECISIONS)
        _check_int(self.random_state, "random_state", minimum=0)
        check_filters(self.filters)
        for name in ("learning_rate", "alpha"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if self.tau is not None and (not isinstance(self.tau, (int, float))
                                     or not math.isfinite(self.tau) or self.tau < 0):
            raise ValueError(f"tau must be None or a finite number >= 0, got {self.tau!r}")

    @property
    def min_rows(self) -> int:
        """Rows behind one input sequence, the fewest ``score`` accepts.

        ``max(windows) + (steps - 1) * step``. ``fit`` needs
        ``max(windows) + steps * step`` rows in each of the training and
        validation periods (:attr:`min_fit_rows`).
        """
        windows, step, steps = self._settings()
        return max(windows) + (steps - 1) * step

    @property
    def min_fit_rows(self) -> int:
        """Fewest rows of each period ``fit`` accepts: ``max(windows) + steps * step``."""
        windows, step, steps = self._settings()
        return max(windows) + steps * step

    def _validate(self, X: Any, name: str) -> tuple[np.ndarray, pd.Index, pd.Index]:
        return _as_2d(X, name, min_rows=self.min_rows, min_cols=MIN_SERIES)

    def _ends(self, n_rows: int) -> np.ndarray:
        """Row positions that end a full sequence of matrices, for ``n_rows`` rows."""
        windows, step, steps = self._settings()
        n_matrices = (n_rows - max(windows)) // step + 1
        return max(windows) + step * np.arange(steps - 1, n_matrices) - 1

    # ------------------------------------------------------------ fit
    def fit(self, X, y: Any = None, *, valid=None, progress: bool = False) -> MSCREDDetector:
        """Train on ``X``, set ``tau_`` and ``threshold_`` on ``valid``.

        Parameters
        ----------
        X : DataFrame or ndarray of shape (n_timepoints, n_series)
            Normal training data, ``n_series >= 4``, no NaN.
        y : None
            MSCRED is unsupervised; anything else raises (``fit(train, valid)``
            was the call before ``valid`` became a keyword).
        valid : DataFrame or ndarray, optional
            Normal data after ``X`` with the same columns. Default: the
            last 20% of ``X`` (which then trains on the first 80%).
        progress : bool, default False
            Show a progress bar over the training batches.

        Returns
        -------
        self

        Raises
        ------
        TypeError
            If ``y`` is given.
        ValueError
            On fewer than 4 series, fewer than ``max(windows) + steps * step``
            rows in either period, NaN or infinite values, values whose
            signature matrices overflow float32, different columns, or a
            ``valid`` whose index does not come after ``X``'s.

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
        Normalisation statistics come from the training rows only, and
        training sequences are cut from them alone, so no training window
        straddles the train/valid boundary.
        """
        if y is not None:
            # fit(train, valid) was this detector's signature before the shared interface;
            # taking valid for an ignored y would silently carve another validation period
            raise TypeError("MSCREDDetector is unsupervised and takes no y; pass the validation "
                            "period as a keyword, fit(X, valid=valid)")
        if isinstance(X, pd.DataFrame | pd.Series) and isinstance(valid, pd.DataFrame | pd.Series):
            _check_after(X.index, valid.index)
        self._progress = bool(progress)
        try:
            super().fit(X, y, valid=valid)
            self._check_separation(self._Z_valid)
        finally:
            for attr in ("_progress", "_Z_valid"):
                self.__dict__.pop(attr, None)
        return self

    def _carve_valid(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cut = int(round(len(values) * (1 - VALID_FRACTION)))
        train, valid = values[:cut], values[cut:]
        _check_rows(train, f"X (its first {1 - VALID_FRACTION:.0%})", self.min_fit_rows)
        _check_rows(valid, f"X (its last {VALID_FRACTION:.0%}, held out as validation)",
                    self.min_fit_rows)
        return train, valid

    def _build_model(self, n_series: int, n_scales: int) -> keras.Model:
        """The network to train; tests override it to plug in degenerate models."""
        return build_mscred(n_series, n_scales, self.steps, filters=tuple(self.filters))

    def _fit(self, values: np.ndarray, y: Any, valid: np.ndarray) -> None:
        _check_rows(values, "X", self.min_fit_rows)
        _check_rows(valid, "valid", self.min_fit_rows)
        self.mean_ = values.mean(axis=0)
        scale = values.std(axis=0)
        self.scale_ = np.where(scale > _MIN_SCALE, scale, 1.0)
        Z_train = _standardize_kernel(values, self.mean_, self.scale_)
        Z_valid = _standardize_kernel(valid, self.mean_, self.scale_)
        started = time.perf_counter()
        self._train(Z_train, Z_valid, getattr(self, "_progress", False))
        self.fit_seconds_ = time.perf_counter() - started
        # tau_ and threshold_ come from validation scores in this precision
        self.score_precision_ = self.score_precision
        self._set_tau(Z_valid)
        self._Z_valid = Z_valid

    def _train(self, Z_train: np.ndarray, Z_valid: np.ndarray, progress: bool) -> None:
        seed_everything(self.random_state)
        M_train, M_valid = self._matrices_kernel(Z_train), self._matrices_kernel(Z_valid)
        for name, M in (("X", M_train), ("valid", M_valid)):
            series = _overflow_kernel(M).any(axis=0)
            if series.any():
                raise ValueError(
                    f"{name} holds values too large for MSCRED's float32 network: the "
                    f"signature matrices of columns {self._names(series)} overflow float32; "
                    "rescale them, or leave such rows out of the normal data")
        model = self._build_model(Z_train.shape[1], len(tuple(self.windows)))
        _check_precision_network(self.score_precision, model)
        # a network that is not build_mscred's (the tests' stand-ins) has no blocks path
        self.batching_ = self.batching if is_mscred_network(model) else "windows"
        train = train_blocks if self.batching_ == "blocks" else train_windows
        self.history_ = train(model, M_train, M_valid, steps=self.steps, epochs=self.epochs,
                              batch_size=self.batch_size, learning_rate=self.learning_rate,
                              random_state=self.random_state, progress=progress)
        self.model_ = model
        target_power = float(np.mean(np.square(M_train[self.steps - 1 :], dtype=np.float64)))
        self._loss_ratio = self.history_["loss"][-1] / max(target_power, _MIN_SCALE)

    def _set_tau(self, Z_valid: np.ndarray) -> None:
        windows, step, steps = self._settings()
        # every end row of the validation period, not only the step grid: ten times
        # more matrices for step=10, so the maximum is closer to that of a longer
        # test period (docs/mscred.md)
        starts = [s for s in range(step) if len(Z_valid) - s >= self.min_rows]
        R = self._residuals_kernel(*(self._matrices_kernel(Z_valid[s:]) for s in starts))
        smallest = R[:, :, :, self._smallest_scale]
        self.tau_ = float(np.quantile(smallest, TAU_QUANTILE)) if self.tau is None \
            else float(self.tau)
        self.valid_score_max_ = float(_count_kernel(smallest, self.tau_).max())

    def _native_threshold(self, valid_values: np.ndarray | None) -> float:
        # the maximum over matrices ending at every validation row (_set_tau), more
        # than the matrices on the step grid that score() places
        return float(self.alpha * self.valid_score_max_)

    def _check_separation(self, Z_valid: np.ndarray) -> None:
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
        spacing = math.ceil((self.min_rows + duration) / step) + 1
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
                # the matrices behind those sequences
                pieces.append(M[hit[0] : hit[-1] + steps])
                owners.append(np.full(hit.size, j))
        residual = self._residuals_kernel(*pieces)[..., self._smallest_scale]
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

    def _names(self, series: np.ndarray) -> list:
        return [self.columns_[i] for i in np.flatnonzero(series)][:10]

    def _matrices_kernel(self, Z: np.ndarray) -> np.ndarray:
        windows, step, _ = self._settings()
        M, _ = signature_matrices(Z, windows=windows, step=step)
        return _to_channels_last(M)

    def _reconstruct_kernel(self, M: np.ndarray) -> np.ndarray:
        """Reconstruction of the last matrix of every sequence of ``steps`` matrices of ``M``.

        Each matrix is encoded once and shared by the sequences that hold it
        (:func:`lab.models.mscred_layers.reconstruct_sliding`, issue 20).
        """
        # detectors saved before score_precision existed scored in float32
        fitted = getattr(self, "score_precision_", "float32")
        if self.score_precision != fitted:
            raise ValueError(f"score_precision is {self.score_precision!r} but the detector was "
                             f"fitted with {fitted!r}, whose validation scores set tau_ and "
                             "threshold_: fit again, or set it back")
        if is_mscred_network(self.model_):
            return reconstruct_sliding(self.model_, M, batch_size=SLIDING_BATCH,
                                       precision=fitted)
        _check_precision_network(fitted, self.model_)
        return np.concatenate([
            np.asarray(self.model_.predict(window_sequences(M, self.steps, lo, lo + _PREDICT_BATCH),
                                           batch_size=_PREDICT_BATCH, verbose=0))
            for lo in range(0, len(M) - self.steps + 1, _PREDICT_BATCH)])

    def _residuals_kernel(self, *Ms: np.ndarray) -> np.ndarray:
        """Squared residuals of every full sequence of each ``M``, concatenated."""
        out = []
        for M in Ms:
            # overflowed matrices give inf - inf: NaN, counted by _count_kernel
            with np.errstate(over="ignore", invalid="ignore"):
                out.append(np.square(M[self.steps - 1 :] - self._reconstruct_kernel(M)))
        return np.concatenate(out)

    def _matrices_and_residuals(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Float32 matrices (channels last) and squared residuals of validated rows."""
        M = self._matrices_kernel(_standardize_kernel(values, self.mean_, self.scale_))
        return M, self._residuals_kernel(M)

    def _score(self, values: np.ndarray) -> np.ndarray:
        M, R = self._matrices_and_residuals(values)
        counts = _count_kernel(R[..., self._smallest_scale], self.tau_)
        ends = self._ends(len(values))
        bad = ~np.isfinite(R).all(axis=(1, 2, 3))
        if bad.any():
            # the series that overflowed in any matrix of each sequence's input
            over = np.lib.stride_tricks.sliding_window_view(
                _overflow_kernel(M), self.steps, axis=0).any(axis=-1)
            series = over[bad].any(axis=0)
            who = (f"the signature matrices of columns {self._names(series)} overflow float32"
                   if series.any() else "the network's float32 arithmetic overflowed")
            warnings.warn(
                f"MSCRED: {who} in {int(bad.sum())} sequences ending at rows "
                f"{ends[bad][:10].tolist()}{' ...' if bad.sum() > 10 else ''} (positions in "
                f"the input); their non-finite residual entries count as above tau_, so those "
                f"rows score {R.shape[1] * R.shape[2]}, the highest score there is",
                MatrixOverflowWarning, stacklevel=3)
        return self._place(ends, counts, len(values))

    def scored_rows(self, X) -> np.ndarray:
        """Positions of the rows of ``X`` whose score is computed: those that end a matrix.

        One every ``step`` rows from row ``max(windows) + (steps - 1) * step - 1``
        on; :meth:`score` carries each value over the rows up to the next one.
        :mod:`lab.evaluation` judges the score at these rows.

        Returns
        -------
        ndarray of int
        """
        values = self._check_columns(X)
        return self._ends(len(values))

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
            of ``windows``; not finite where the matrices overflow float32.
        labels : pandas.Index
            Label of the last row of each matrix's windows (:meth:`scored_rows`).
        """
        values = self._check_columns(df, "df")
        _, R = self._matrices_and_residuals(values)
        return np.moveaxis(R, -1, 1), _index(df, len(values))[self._ends(len(values))]

    def signature(self, df) -> tuple[np.ndarray, pd.Index]:
        """Standardised signature matrices of ``df``, aligned with :meth:`residuals`.

        Returns
        -------
        M : ndarray of shape (n_matrices, n_scales, n_series, n_series)
        labels : pandas.Index
        """
        values = self._check_columns(df, "df")
        windows, step, steps = self._settings()
        Z = _standardize_kernel(values, self.mean_, self.scale_)
        M, ends = signature_matrices(Z, windows=windows, step=step)
        return M[steps - 1 :], _index(df, len(values))[ends[steps - 1 :] - 1]

    def matrices_at(self, df, at) -> tuple[np.ndarray, np.ndarray]:
        """Standardised signature matrices and squared residuals of the matrix ending at ``at``.

        Only the rows behind that one input sequence go through the network,
        so this is cheap at any label.

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
        values = self._check_columns(df, "df")
        index = _index(df, len(values))
        try:
            pos = index.get_loc(at)
        except KeyError:
            raise ValueError(f"at={at!r} is not a label of df's index") from None
        if not isinstance(pos, (int, np.integer)):
            raise ValueError(f"at={at!r} does not name a single row of df")
        context = self.min_rows
        if pos + 1 < context:
            raise ValueError(f"at={at!r} is row {pos}; MSCRED needs {context} rows of "
                             f"history up to it, so at must be row {context - 1} or later")
        M, R = self._matrices_and_residuals(values[pos + 1 - context : pos + 1])
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
            residual matrix, largest first, indexed by series name. A series
            whose signature entries overflow float32 at ``at`` has mass inf
            and ranks first; masses that the overflow made NaN rank last.

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
        signature, residual = self.matrices_at(df, at)
        mass = residual[self._smallest_scale].sum(axis=1)
        overflow = ~np.isfinite(np.diagonal(signature, axis1=1, axis2=2)).all(axis=0)
        mass = np.where(overflow, np.inf, mass)
        out = pd.Series(mass, index=pd.Index(self.columns_), name="row_mass")
        return out.sort_values(ascending=False, kind="stable").iloc[:k]


def _index(df, n: int) -> pd.Index:
    return df.index if isinstance(df, pd.DataFrame | pd.Series) else pd.RangeIndex(n)


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
                         f"X's ({train_index.dtype})") from None
    if overlaps:
        raise ValueError(f"valid overlaps X: valid starts at {valid_index.min()!r} but the "
                         f"training rows run to {train_index.max()!r}; the validation period "
                         "must come after the training period")
