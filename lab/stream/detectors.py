"""Online detectors: ``learn_one``/``score_one`` as River defines them, plus a batch ``update``.

Every detector here follows one protocol:

- ``score_one(x)`` scores a point with what the detector knows *before* it;
- ``learn_one(x)`` then adds the point to what it knows;
- ``update(batch)`` does both for a batch of points in order and returns
  their scores, the same numbers as ``score_one`` then ``learn_one`` point by
  point, in one vectorised call (the lab's addition to River's protocol).

``x`` is a float, or a River feature dict with one value (``{"value": 3.2}``),
so River's own detectors plug in through :class:`RiverDetector` unchanged.
Higher scores are more anomalous; a detector that has not seen enough points
yet scores 0.
"""

from __future__ import annotations

import bisect
import copy
import math
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from lab._validation import _check_float, _check_int
from lab.spot import DEFAULT_LEVEL, DEFAULT_Q, STEP_ANOMALY, DSpot, Spot, min_fit_size

__all__ = ["OnlineDetector", "SPOTStream", "DSPOTStream", "RiverDetector", "half_space_trees",
           "KSStream", "RollingZScore", "RetrainingDetector", "Onset", "onset_filter", "STREAM_DETECTORS",
           "get_stream_detector"]

#: Points a SPOT stream calibrates on before its first score (Siffer et al. use 1000).
DEFAULT_N_INIT = 1000
#: River HalfSpaceTrees settings used by :func:`half_space_trees` (River's defaults).
HST_TREES, HST_HEIGHT, HST_WINDOW = 10, 8, 250
#: Relative jitters tried on calibration values that have no tail (see ``_fit_tail``).
JITTER = (1e-6, 1e-4, 1e-2)
#: Points a RetrainingDetector keeps beyond ``train_max`` (the scoring context).
HISTORY_EXTRA = 10_000


def _value(x: Any) -> float:
    if isinstance(x, dict):
        if len(x) != 1:
            raise ValueError(f"x must be a number or a one-feature dict, got {len(x)} features")
        x = next(iter(x.values()))
    return _check_float(x, "x")


def _batch(batch: Any) -> np.ndarray:
    values = np.asarray(batch, dtype=np.float64)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise ValueError(f"batch must be 1-d (n,) or (n, 1), got shape {values.shape}")
    if np.isnan(values).any():
        raise ValueError(f"batch holds NaN at rows {np.flatnonzero(np.isnan(values))[:5].tolist()}")
    return values


class OnlineDetector:
    """Base of the online detectors: ``update`` in terms of the per-point methods.

    Subclasses override ``update`` with a vectorised version that gives the
    same scores.

    Examples
    --------
    >>> d = RollingZScore(window=3)
    >>> round(float(d.update([1.0, 2.0, 3.0, 10.0])[-1]), 2)
    9.8
    """

    def learn_one(self, x: Any) -> OnlineDetector:
        raise NotImplementedError

    def score_one(self, x: Any) -> float:
        raise NotImplementedError

    def update(self, batch: Any) -> np.ndarray:
        """Score each point of ``batch`` then learn it, in order; the scores."""
        values = _batch(batch)
        out = np.empty(len(values))
        for i, v in enumerate(values.tolist()):
            out[i] = self.score_one(v)
            self.learn_one(v)
        return out

    def clone(self) -> OnlineDetector:
        """A fresh, unfitted copy with the same settings."""
        return copy.deepcopy(self._fresh)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__init__

        def wrapped(self, *args, **kw):
            init(self, *args, **kw)
            if type(self) is cls:
                self._fresh = copy.deepcopy(self)

        wrapped.__doc__ = init.__doc__
        cls.__init__ = wrapped


class _Calibrating(OnlineDetector):
    """Buffers the first ``n_init`` points (scored 0), then fits on them."""

    def __init__(self, n_init: int):
        self.n_init = _check_int(n_init, "n_init", minimum=1)
        self._buffer: list[float] | None = []

    def _fit(self, values: np.ndarray) -> None:
        raise NotImplementedError

    def _scores(self, values: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def update(self, batch: Any) -> np.ndarray:
        values = _batch(batch)
        out = np.zeros(len(values))
        k = 0
        if self._buffer is not None:
            k = min(self.n_init - len(self._buffer), len(values))
            self._buffer.extend(values[:k].tolist())
            if len(self._buffer) == self.n_init:
                self._fit(np.asarray(self._buffer))
                self._buffer = None
        if k < len(values) and self._buffer is None:
            out[k:] = self._scores(values[k:])
        return out

    def learn_one(self, x: Any) -> _Calibrating:
        self.update([_value(x)])
        return self


def _fit_tail(fit: Callable[[np.ndarray], Any], values: np.ndarray) -> Any:
    """Fit a SPOT tail; on calibration values without a tail (flat, counts), add a tiny jitter.

    A stream cannot refuse its series: a flat stretch gets a tail of width
    ``JITTER`` times its scale (the smallest that fits), so that any real move
    away from it scores high. The jitter is seeded: a rerun gives the same
    scores.
    """
    try:
        return fit(values)
    except ValueError:
        scale = max(float(np.ptp(values)), float(np.abs(np.median(values))), 1.0)
        noise = np.random.default_rng(0).standard_normal(len(values))
        for jitter in JITTER:
            try:
                return fit(values + jitter * scale * noise)
            except ValueError:
                continue
        return fit(np.median(values) + scale * noise)


def _excess_score(x: np.ndarray, z: np.ndarray, t: np.ndarray) -> np.ndarray:
    # 0 at the tail start, 1 at the alarm threshold z_q: an alarm is score >= 1
    span = np.maximum(z - t, 1e-12)
    return (x - t) / span


class SPOTStream(_Calibrating):
    """SPOT as a stream (Siffer et al., KDD 2017) on the lab's SPOT core.

    The first ``n_init`` points calibrate the GPD tail (scored 0); each later
    point scores ``(x - t) / (z_q - t)``, where ``t`` is the tail start and
    ``z_q`` the alarm threshold in force when it arrives: an alarm is a score
    of 1 or more, exactly libspot's decision. The tail then learns the point
    (an excess refits it; an alarm does not enter it).

    Parameters
    ----------
    q : float, default 1e-3
        Risk per point.
    level : float, default 0.98
        Initial tail quantile; ``n_init`` must be at least
        :func:`lab.spot.min_fit_size` of it.
    n_init : int, default 1000
        Calibration points.
    tail : {"upper", "lower", "both"}, default "both"
        Which tail is watched; ``"both"`` keeps two tails and scores the max.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.r_[np.random.default_rng(0).normal(size=1500), 12.0]
    >>> d = SPOTStream(n_init=1000)
    >>> s = d.update(x)
    >>> bool(s[-1] >= 1), int((s[1000:-1] >= 1).sum()) <= 3
    (True, True)
    """

    def __init__(self, q: float = DEFAULT_Q, level: float = DEFAULT_LEVEL,
                 n_init: int = DEFAULT_N_INIT, tail: str = "both"):
        super().__init__(n_init)
        if tail not in ("upper", "lower", "both"):
            raise ValueError(f"tail must be 'upper', 'lower' or 'both', got {tail!r}")
        self.q, self.level, self.tail = q, level, tail
        Spot(q, level)  # validates q and level
        need = min_fit_size(level)
        if self.n_init < need:
            raise ValueError(f"n_init={self.n_init} is below the {need} points SPOT needs at "
                             f"level={level:g}")
        self._spots: list[tuple[float, Spot]] = []

    def _fit(self, values: np.ndarray) -> None:
        signs = {"upper": (1.0,), "lower": (-1.0,), "both": (1.0, -1.0)}[self.tail]
        self._spots = [(s, _fit_tail(lambda v: Spot(self.q, self.level).fit(v), s * values))
                       for s in signs]

    def _scores(self, values: np.ndarray) -> np.ndarray:
        out = None
        for sign, spot in self._spots:
            x = sign * values
            _, z, t = spot.step_trace(x)
            s = _excess_score(x, z, t)
            out = s if out is None else np.maximum(out, s)
        return out

    def score_one(self, x: Any) -> float:
        v = _value(x)
        if self._buffer is not None:
            return 0.0
        best = -math.inf
        for sign, spot in self._spots:
            z, t = spot._spot.anomaly_threshold, spot._spot.excess_threshold
            best = max(best, float(_excess_score(np.array([sign * v]), np.array([z]),
                                                 np.array([t]))[0]))
        return best


class DSPOTStream(_Calibrating):
    """DSPOT as a stream: SPOT on the residual to the mean of the last ``depth`` normal points.

    Scored like :class:`SPOTStream`, on the residual; an alarm (score >= 1)
    does not enter the moving window (Siffer et al. 2017, algorithm 3).

    Parameters
    ----------
    depth : int, default 10
        Moving-average length.
    q, level, n_init
        As in :class:`SPOTStream` (``n_init >= depth + min_fit_size(level)``).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.r_[np.linspace(0, 30, 1500) + np.random.default_rng(0).normal(size=1500), 60.0]
    >>> s = DSPOTStream(depth=20, n_init=1000).update(x)
    >>> bool(s[-1] >= 1), int((s[1000:-1] >= 1).sum()) <= 3
    (True, True)
    """

    def __init__(self, depth: int = 10, q: float = DEFAULT_Q, level: float = DEFAULT_LEVEL,
                 n_init: int = DEFAULT_N_INIT):
        super().__init__(n_init)
        self.depth, self.q, self.level = _check_int(depth, "depth", minimum=1), q, level
        need = self.depth + min_fit_size(level)
        if self.n_init < need:
            raise ValueError(f"n_init={self.n_init} is below the {need} points DSPOT needs "
                             f"with depth={self.depth} at level={level:g}")
        self._dspot: DSpot | None = None

    def _fit(self, values: np.ndarray) -> None:
        self._dspot = _fit_tail(lambda v: DSpot(self.depth, self.q, self.level).fit(v), values)

    def _scores(self, values: np.ndarray) -> np.ndarray:
        d = self._dspot
        spot = d._spot._spot
        window = d._window
        depth = self.depth
        out = np.empty(len(values))
        for i, v in enumerate(values.tolist()):
            r = v - sum(window) / depth
            z, t = spot.anomaly_threshold, spot.excess_threshold
            out[i] = (r - t) / max(z - t, 1e-12)
            if spot.step(r) != STEP_ANOMALY:
                window.append(v)
        return out

    def score_one(self, x: Any) -> float:
        v = _value(x)
        if self._buffer is not None:
            return 0.0
        spot = self._dspot._spot._spot
        r = v - sum(self._dspot._window) / self.depth
        z, t = spot.anomaly_threshold, spot.excess_threshold
        return (r - t) / max(z - t, 1e-12)


class RiverDetector(OnlineDetector):
    """Any River anomaly detector (or pipeline ending in one), as the lab's online protocol.

    ``update`` is River's own ``score_one`` then ``learn_one`` on each point,
    so it gives River's scores exactly.

    Parameters
    ----------
    model : river estimator
        Has ``score_one(dict)`` and ``learn_one(dict)``.
    feature : str, default "value"
        The key the value is passed under.

    Examples
    --------
    >>> import numpy as np
    >>> d = half_space_trees(seed=0)
    >>> s = d.update(np.random.default_rng(0).normal(size=500))
    >>> bool(((s >= 0) & (s <= 1)).all())
    True
    """

    def __init__(self, model: Any, feature: str = "value"):
        if not (hasattr(model, "score_one") and hasattr(model, "learn_one")):
            raise ValueError(f"model must have score_one and learn_one, got {type(model).__name__}")
        self.model, self.feature = model, feature

    def score_one(self, x: Any) -> float:
        return float(self.model.score_one({self.feature: _value(x)}))

    def learn_one(self, x: Any) -> RiverDetector:
        self.model.learn_one({self.feature: _value(x)})
        return self

    def update(self, batch: Any) -> np.ndarray:
        values = _batch(batch)
        model, key = self.model, self.feature
        out = np.empty(len(values))
        for i, v in enumerate(values.tolist()):
            x = {key: v}
            out[i] = model.score_one(x)
            model.learn_one(x)
        return out


def half_space_trees(n_trees: int = HST_TREES, height: int = HST_HEIGHT,
                     window_size: int = HST_WINDOW, seed: int | None = 0) -> RiverDetector:
    """River's HalfSpaceTrees behind a running min-max scaler (it expects values in [0, 1]).

    Notes
    -----
    Tan, Ting and Liu, "Fast Anomaly Detection for Streaming Data", IJCAI
    2011; ``river.anomaly.HalfSpaceTrees``. The trees split the unit cube, so
    River's documentation puts ``preprocessing.MinMaxScaler`` in front.

    Examples
    --------
    >>> d = half_space_trees()
    >>> type(d.model).__name__
    'Pipeline'
    """
    from river import anomaly, compose, preprocessing

    model = compose.Pipeline(preprocessing.MinMaxScaler(),
                             anomaly.HalfSpaceTrees(n_trees=n_trees, height=height,
                                                    window_size=window_size, seed=seed))
    return RiverDetector(model)


class KSStream(OnlineDetector):
    """Two-sample KS statistic of a focus window against its trailing baseline, online.

    The score of a point is the KS statistic between the focus (the last
    ``window`` points, this one included) and the ``baseline`` points
    before them: the online twin of :class:`lab.models.KSWindowDetector`.
    Both windows are kept sorted and updated by insertion and deletion, so a
    point costs ``O(window + baseline)``. Before both windows are full the
    score is 0.

    Parameters
    ----------
    window : int, default 50
    baseline : int, default 100

    Examples
    --------
    >>> s = KSStream(window=5, baseline=10).update([0.0] * 15 + [5.0] * 5)
    >>> float(s[-1]), float(s[14])
    (1.0, 0.0)
    """

    def __init__(self, window: int = 50, baseline: int = 100):
        self.window = _check_int(window, "window", minimum=1)
        self.baseline = _check_int(baseline, "baseline", minimum=1)
        self._recent: deque[float] = deque()
        self._focus_sorted: list[float] = []
        self._base_sorted: list[float] = []

    def _stat(self) -> float:
        a = np.asarray(self._focus_sorted)
        b = np.asarray(self._base_sorted)
        allv = np.concatenate([a, b])
        cdf_a = np.searchsorted(a, allv, side="right") / len(a)
        cdf_b = np.searchsorted(b, allv, side="right") / len(b)
        return float(np.max(np.abs(cdf_a - cdf_b)))

    def _push(self, v: float) -> None:
        w, b = self.window, self.baseline
        self._recent.append(v)
        bisect.insort(self._focus_sorted, v)
        if len(self._recent) > w:
            moved = self._recent[-w - 1]
            del self._focus_sorted[bisect.bisect_left(self._focus_sorted, moved)]
            bisect.insort(self._base_sorted, moved)
        if len(self._recent) > w + b:
            old = self._recent.popleft()
            del self._base_sorted[bisect.bisect_left(self._base_sorted, old)]

    def score_one(self, x: Any) -> float:
        # the focus ends at this point: score the windows as if it had arrived
        state = (copy.copy(self._recent), list(self._focus_sorted), list(self._base_sorted))
        self._push(_value(x))
        full = len(self._recent) == self.window + self.baseline
        score = self._stat() if full else 0.0
        self._recent, self._focus_sorted, self._base_sorted = state
        return score

    def learn_one(self, x: Any) -> KSStream:
        self._push(_value(x))
        return self

    def update(self, batch: Any) -> np.ndarray:
        values = _batch(batch)
        out = np.zeros(len(values))
        for i, v in enumerate(values.tolist()):
            self._push(v)
            if len(self._recent) == self.window + self.baseline:
                out[i] = self._stat()
        return out


class RollingZScore(OnlineDetector):
    """``|x - mean| / std`` of a point against the ``window`` points before it.

    Parameters
    ----------
    window : int, default 100
        Trailing points the mean and the standard deviation come from.
    min_std : float, default 1e-9
        Floor of the standard deviation (a constant stretch would divide by 0).

    Examples
    --------
    >>> s = RollingZScore(window=4).update([1.0, 2.0, 1.0, 2.0, 1.5, 9.0])
    >>> round(float(s[-1]), 2)
    17.79
    """

    def __init__(self, window: int = 100, min_std: float = 1e-9):
        self.window = _check_int(window, "window", minimum=2)
        self.min_std = _check_float(min_std, "min_std")
        self._last = np.empty(0)

    def score_one(self, x: Any) -> float:
        v = _value(x)
        if len(self._last) < self.window:
            return 0.0
        return float(abs(v - self._last.mean()) / max(self._last.std(), self.min_std))

    def learn_one(self, x: Any) -> RollingZScore:
        self._last = np.r_[self._last, _value(x)][-self.window:]
        return self

    def update(self, batch: Any) -> np.ndarray:
        values = _batch(batch)
        w = self.window
        allv = np.r_[self._last, values]
        k = len(self._last)
        out = np.zeros(len(values))
        if len(allv) > w:
            win = np.lib.stride_tricks.sliding_window_view(allv[:-1], w)  # windows before each
            first = max(w - k, 0)                                      # first scorable point
            rows = win[k + first - w:]
            mean = rows.mean(axis=1)
            std = np.maximum(rows.std(axis=1), self.min_std)
            out[first:] = np.abs(values[first:] - mean) / std
        self._last = allv[-w:].copy()
        return out


class RetrainingDetector(OnlineDetector):
    """A batch detector of :mod:`lab.models` refitted on a rolling schedule, as a stream.

    The schedule is :func:`lab.preprocessor.calc_batches`: the first model is
    fitted once ``train_min`` points have arrived and scores the points after
    them; at every point ``r`` that is a multiple of ``train_every`` a fresh
    model is fitted on the points ``[max(0, r - train_max), r)`` and scores
    from ``r`` on. A model only ever sees points before the ones it scores:
    there is no look-ahead. Points before the first model score 0. A window
    the detector cannot fit on (it raises ValueError: a flat stretch, too few
    rows for its tail) is skipped and counted in ``refit_errors_``; the model
    in force goes on scoring.

    Parameters
    ----------
    detector : BaseDetector
        Unfitted template (cloned at each refit).
    schedule : dict
        ``{"train_min": ..., "train_max": ..., "train_every": ...}``.
    normalise : bool, default True
        Score ``(s - m) / (threshold_ - m)``, with ``m`` the median training
        score of the model in force: 0 at a typical point, 1 at the model's
        own threshold, so that scores of different series and refits share
        one scale (NAB's corpus threshold needs that). False: the raw score.
    context : int, optional
        None: score a batch in one call, after the model's ``lookback_`` rows;
        exact (the same scores however the points are batched) for detectors
        whose score at a row reads only those rows (window detectors, SPOT,
        HBOS...). An int: score each point on the ``context`` rows ending at
        it, one call per point; exact for every detector, including those
        whose score reads the whole stretch given (spectral residual).

    Examples
    --------
    >>> import numpy as np
    >>> from lab.models import get_detector
    >>> d = RetrainingDetector(get_detector("hbos"), {"train_min": 50, "train_max": 100,
    ...                                               "train_every": 25})
    >>> s = d.update(np.r_[np.random.default_rng(0).normal(size=120), 30.0])
    >>> float(s[0]), d.refits_
    (0.0, 3)
    """

    def __init__(self, detector: Any, schedule: dict, normalise: bool = True,
                 context: int | None = None):
        from lab.models import BaseDetector

        if not isinstance(detector, BaseDetector):
            raise ValueError(f"detector must be a lab.models detector, got "
                             f"{type(detector).__name__}")
        missing = {"train_min", "train_max", "train_every"} - set(schedule)
        if missing:
            raise ValueError(f"schedule misses {sorted(missing)}; got {sorted(schedule)}")
        self.detector, self.schedule, self.normalise = detector, dict(schedule), bool(normalise)
        self.context = None if context is None else _check_int(context, "context", minimum=1)
        self.train_min = _check_int(schedule["train_min"], "train_min", minimum=1)
        self.train_max = _check_int(schedule["train_max"], "train_max", minimum=self.train_min)
        self.train_every = _check_int(schedule["train_every"], "train_every", minimum=1)
        self._history = np.empty(0)
        self._seen = 0          # points seen (the index of the next one)
        self._model = None
        self.refits_ = 0
        self.refit_errors_ = 0

    def _next_refit(self) -> int:
        # the point count at which the next model is fitted (calc_batches' batch ends)
        if self._model is None and self._seen < self.train_min:
            return self.train_min
        return (self._seen // self.train_every + 1) * self.train_every

    def _refit(self) -> None:
        from sklearn.base import clone

        from lab.preprocessor import calc_batches

        batches = calc_batches(self.train_min, self.train_max, self.train_every, self._seen)
        last = batches[max(batches)]
        start, end = last["start"], last["end"]
        offset = self._seen - len(self._history)
        train = self._history[start - offset:end - offset]
        try:
            model = clone(self.detector)
        except Exception:  # not an sklearn estimator: rebuild from its params
            model = type(self.detector)(**self.detector.get_params())
        try:
            model.fit(train.reshape(-1, 1))
        except ValueError:
            # a window the detector cannot learn from (flat, too short for its tail):
            # the model in force goes on scoring, or the stream scores 0 until one fits
            self.refit_errors_ += 1
            return
        self._model = model
        self.refits_ += 1
        self._centre, self._scale = 0.0, 1.0
        if self.normalise:
            centre = float(np.median(self._model.decision_scores_))
            span = float(self._model.threshold_) - centre
            if np.isfinite(span) and span > 0:
                self._centre, self._scale = centre, span

    def _score_segment(self, seg: np.ndarray) -> np.ndarray:
        if self._model is None:
            return np.zeros(len(seg))
        if self.context is not None:
            c = max(self.context, self._model.min_rows)
            allv = np.r_[self._history[max(len(self._history) - c + 1, 0):], seg]
            first = len(allv) - len(seg)
            raw = np.empty(len(seg))
            for j in range(len(seg)):
                window = allv[max(first + j + 1 - c, 0):first + j + 1]
                if len(window) < c:
                    window = np.r_[np.full(c - len(window), window[0]), window]
                raw[j] = np.asarray(self._model.score(window.reshape(-1, 1)), dtype=float)[-1]
            return (raw - self._centre) / self._scale
        ctx = self._model.lookback_
        context = self._history[len(self._history) - min(ctx, len(self._history)):]
        x = np.r_[context, seg].reshape(-1, 1)
        need = self._model.min_rows
        pad = max(need - len(x), 0)
        if pad:  # too short for the detector's window: repeat the oldest value in front
            x = np.r_[np.full((pad, 1), x[0, 0]), x]
        raw = np.asarray(self._model.score(x), dtype=float)[-len(seg):]
        return (raw - self._centre) / self._scale

    def _append(self, seg: np.ndarray) -> None:
        self._history = np.r_[self._history, seg][-(self.train_max + HISTORY_EXTRA):]
        self._seen += len(seg)

    def update(self, batch: Any) -> np.ndarray:
        values = _batch(batch)
        out = np.empty(len(values))
        i = 0
        while i < len(values):
            nxt = self._next_refit()
            stop = min(len(values), i + nxt - self._seen)
            seg = values[i:stop]
            out[i:stop] = self._score_segment(seg)
            self._append(seg)
            i = stop
            if self._seen == nxt:
                self._refit()
        return out

    def score_one(self, x: Any) -> float:
        return float(self._score_segment(np.array([_value(x)]))[0])

    def learn_one(self, x: Any) -> RetrainingDetector:
        nxt = self._next_refit()
        self._append(np.array([_value(x)]))
        if self._seen == nxt:
            self._refit()
        return self


class Onset(OnlineDetector):
    """Keep a score only where it opens a new high: above every score of the last ``length`` points.

    ``s'[t] = c[t]`` if ``c[t] > max(c[t - length : t])`` else 0, with
    ``c = min(score, cap)``. A threshold on ``s'`` then fires once at the
    onset of an episode instead of at every point of it: NAB counts only
    the first detection in a window and charges each false one, and the
    windowed detectors on its scoreboard suppress repeats the same way. It
    reads past scores only, so it adds no look-ahead.

    Parameters
    ----------
    detector : OnlineDetector
    length : int, default 200
        Points a high suppresses what follows it.
    cap : float, default inf
        Scores are capped first (a flat series' tail makes every move
        enormous; the cap puts those on the scale of real excesses).

    Examples
    --------
    >>> d = Onset(RollingZScore(window=3), length=2)
    >>> d.update([1.0, 2.0, 1.0, 9.0, 9.5, 9.0]).round(1).tolist()
    [0.0, 0.0, 0.0, 16.3, 0.0, 0.0]
    """

    def __init__(self, detector: OnlineDetector, length: int = 200, cap: float = math.inf):
        self.detector = detector
        self.length = _check_int(length, "length", minimum=1)
        self.cap = float(cap)
        self._prev = np.full(0, -np.inf)

    def _onset(self, capped: np.ndarray) -> np.ndarray:
        allv = np.r_[np.full(max(self.length - len(self._prev), 0), -np.inf), self._prev, capped]
        before = np.lib.stride_tricks.sliding_window_view(allv[:-1], self.length)
        before = before[len(before) - len(capped):].max(axis=1)
        return np.where(capped > before, capped, 0.0), allv[-self.length:]

    def update(self, batch: Any) -> np.ndarray:
        capped = np.minimum(self.detector.update(batch), self.cap)
        if not len(capped):
            return capped
        out, self._prev = self._onset(capped)
        return out

    def score_one(self, x: Any) -> float:
        c = min(self.detector.score_one(x), self.cap)
        prev = self._prev[-self.length:]
        return float(c) if (len(prev) == 0 or c > prev.max()) else 0.0

    def learn_one(self, x: Any) -> Onset:
        c = min(self.detector.score_one(x), self.cap)
        self.detector.learn_one(x)
        self._prev = np.r_[self._prev, c][-self.length:]
        return self


class _Replayed:
    """Hands back scores computed before, in order, so that :class:`Onset` can rework them."""

    def __init__(self, scores: np.ndarray):
        self._scores, self._at = scores, 0

    def update(self, batch: Any) -> np.ndarray:
        out = self._scores[self._at:self._at + len(batch)]
        self._at += len(out)
        return out


def onset_filter(scores: Any, length: int = 200, cap: float = math.inf) -> Any:
    """:class:`Onset` applied to a whole score sequence: a score only where it opens a new high.

    The same as wrapping the detector that made ``scores`` in
    ``Onset(detector, length, cap)``, for scores already computed (a batch
    detector's, or raw stream scores judged under several settings).

    Parameters
    ----------
    scores : array-like or Series
        One score per row, in time order; NaN is not allowed.
    length, cap : int, float
        As :class:`Onset`.

    Returns
    -------
    ndarray or Series
        The reworked scores; a Series keeps its index.

    Raises
    ------
    ValueError
        On scores that are not one-dimensional or hold NaN, or a ``length``
        below 1.

    Examples
    --------
    >>> onset_filter([1.0, 3.0, 2.0, 4.0, 4.0, 1.0], length=2).tolist()
    [1.0, 3.0, 0.0, 4.0, 0.0, 0.0]
    """
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"scores must be one-dimensional, got shape {values.shape}")
    if np.isnan(values).any():
        raise ValueError(f"scores holds NaN at rows {np.flatnonzero(np.isnan(values))[:5].tolist()}"
                         " (first 5); Onset needs a score for every row")
    out = Onset(_Replayed(values), length=length, cap=cap).update(np.zeros(len(values)))
    if isinstance(scores, pd.Series):
        return pd.Series(out, index=scores.index, name=scores.name)
    return out


def _retraining(detector: str = "hbos", train_min: int = 500, train_max: int = 2000,
                train_every: int = 500, normalise: bool = True,
                **params: Any) -> RetrainingDetector:
    from lab.models import get_detector

    return RetrainingDetector(get_detector(detector, **params),
                              {"train_min": train_min, "train_max": train_max,
                               "train_every": train_every}, normalise=normalise)


#: Name -> factory of the online detectors (``lab stream score --detector NAME``).
STREAM_DETECTORS = {
    "spot": SPOTStream,
    "dspot": DSPOTStream,
    "hst": half_space_trees,
    "ks": KSStream,
    "zscore": RollingZScore,
    "retrain": _retraining,
}


def get_stream_detector(name: str, onset: int | None = None, cap: float = math.inf,
                        **params: Any) -> OnlineDetector:
    """Build an online detector by name; ``params`` go to its constructor.

    ``onset`` (an int) wraps it in :class:`Onset` with that length and ``cap``.

    Raises
    ------
    ValueError
        On an unknown name (the message lists the known ones) or bad params.

    Examples
    --------
    >>> get_stream_detector("zscore", window=10).window
    10
    >>> get_stream_detector("nope")
    Traceback (most recent call last):
    ...
    ValueError: unknown stream detector 'nope'; known: dspot, hst, ks, retrain, spot, zscore
    """
    if name not in STREAM_DETECTORS:
        raise ValueError(f"unknown stream detector {name!r}; known: "
                         f"{', '.join(sorted(STREAM_DETECTORS))}")
    try:
        det = STREAM_DETECTORS[name](**params)
    except TypeError as exc:
        raise ValueError(f"stream detector {name!r}: {exc}") from None
    return det if onset is None else Onset(det, onset, cap)
