"""Synthetic multivariate series whose behaviour changes between segments.

:func:`make_behaviour_changes` is the ground-truth data set of the betsi
experiment (``notebooks/02-betsi-autoencoder.ipynb``): every segment has its own
oscillation frequency, amplitude, noise level, trend and cross-series
correlation, and each boundary changes at least one of them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lab._validation import _check_int

__all__ = ["make_behaviour_changes", "BEHAVIOUR_ASPECTS"]

#: The aspects of behaviour that a boundary can change, in the order used for the labels.
BEHAVIOUR_ASPECTS = ("frequency", "amplitude", "noise", "trend", "correlation")

# Ranges of the per-segment parameters. Frequencies are in cycles per step:
# periods of 5 to 50 steps, so a window of a few dozen steps sees whole cycles.
_FREQ_RANGE = (0.02, 0.2)
# Amplitude and noise stay of the same order, so that a change of the noise
# (or of its correlation across series) is not drowned by the oscillation.
_AMP_RANGE = (0.4, 2.5)
_NOISE_RANGE = (0.15, 1.5)
_CORR_MAX = 0.9
# A change multiplies or divides a scale parameter by a factor drawn from this
# range: large enough to be a change of behaviour, not of noise.
_CHANGE_FACTOR = (2.0, 3.5)
# A trend slope moves the level by this many units over the whole stretch it
# lasts (it lasts until the next boundary that changes the trend), towards 0
# when the level has drifted, so trends never swamp the other behaviours.
_TREND_RISE = (1.0, 2.5)
# A slope heads back towards 0 once the level is this far from it.
_TREND_RETURN_LEVEL = 1.0
# Chance that a boundary changes a second aspect besides the one taken in cyclic order.
_SECOND_ASPECT_PROB = 0.3
# No segment is shorter than length / (_MIN_SEGMENT_DIVISOR * n_segments).
_MIN_SEGMENT_DIVISOR = 3
#: Start of the generated time index and its frequency.
START, FREQ = "2024-01-01", "min"


def make_behaviour_changes(
    n_segments: int = 8,
    length: int = 2000,
    n_series: int = 3,
    random_state: int | None = 0,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Piecewise multivariate signal whose behaviour changes at known rows.

    Each series is ``trend + amplitude * sin(phase + offset) + noise`` where,
    within one segment, the frequency, amplitude, noise level, trend slope and
    the correlation of the noise across series are constant. At every boundary
    one aspect (taken in a random cyclic order, so all five occur when there
    are at least five boundaries) and sometimes a second one change by a
    clear factor. Phase and trend are continuous across boundaries, so nothing
    jumps: only the behaviour changes. A trend slope lasts until the next
    boundary that changes the trend and moves the level by 1 to 2.5 units
    over that whole stretch (back towards 0 once the level is more than 1
    away), so the level stays within a few units of 0 and never swamps the
    oscillation.

    Parameters
    ----------
    n_segments : int, default 8
        Number of segments (``n_segments - 1`` change points), at least 1.
    length : int, default 2000
        Number of rows; at least ``4 * n_segments``.
    n_series : int, default 3
        Number of columns, at least 1. With one series the correlation aspect
        is replaced by another aspect.
    random_state : int or None, default 0
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    df : DataFrame of shape (length, n_series)
        Columns ``x0, x1, ...``, a minute-frequency DatetimeIndex.
    change_points : ndarray of int
        Row positions where a new segment starts, increasing, without 0.
        ``df.attrs["segments"]`` holds the per-segment parameters and
        ``df.attrs["changed"]`` the aspects changed at each change point.

    Raises
    ------
    ValueError
        If an argument is not a positive integer or ``length`` is too short
        for ``n_segments``.

    Notes
    -----
    The set of aspects follows the behaviours that Lee et al., "Time Series
    Segmentation through Automatic Feature Learning" (arXiv 1801.05394), let
    an autoencoder discover: changes of frequency, amplitude, noise, trend and
    of the relation between channels. Correlated noise mixes one common and
    one own Gaussian innovation per series, ``sqrt(|rho|) * sign_j * z0 +
    sqrt(1 - |rho|) * z_j``, whose pairwise correlation is ``+-|rho|``.

    Examples
    --------
    >>> df, cps = make_behaviour_changes(n_segments=3, length=60, n_series=2)
    >>> df.shape, len(cps)
    ((60, 2), 2)
    >>> bool(0 < cps[0] < cps[1] < 60)
    True
    """
    n_segments = _check_int(n_segments, "n_segments", minimum=1)
    n_series = _check_int(n_series, "n_series", minimum=1)
    length = _check_int(length, "length", minimum=1)
    if length < 4 * n_segments:
        raise ValueError(
            f"length must be >= 4 * n_segments = {4 * n_segments} so every segment has "
            f"at least 4 rows, got length={length}"
        )
    rng = np.random.default_rng(random_state)
    bounds = _segment_bounds(rng, n_segments, length)
    params, changed = _segment_params(rng, n_segments, n_series, bounds)
    values = _kernel(rng, bounds, params, n_series)
    index = pd.date_range(START, periods=length, freq=FREQ, name="time")
    df = pd.DataFrame(values, index=index, columns=[f"x{j}" for j in range(n_series)])
    df.attrs["segments"] = params
    df.attrs["changed"] = changed
    return df, np.asarray(bounds[1:-1], dtype=np.int64)


def _segment_bounds(rng: np.random.Generator, n_segments: int, length: int) -> list[int]:
    """Random segment boundaries ``[0, c1, ..., length]`` with a minimum length."""
    min_len = max(4, length // (_MIN_SEGMENT_DIVISOR * n_segments))
    spare = length - min_len * n_segments
    shares = rng.dirichlet(np.full(n_segments, 2.0))
    extra = np.floor(shares * spare).astype(int)
    extra[: spare - extra.sum()] += 1  # hand out the rounding remainder
    lengths = min_len + extra
    return [0, *np.cumsum(lengths).tolist()]


def _segment_params(rng, n_segments, n_series, bounds):
    """Per-segment parameters; each boundary changes one or two aspects."""
    aspects = [a for a in BEHAVIOUR_ASPECTS if n_series > 1 or a != "correlation"]
    order = list(rng.permutation(aspects))
    current = {
        "frequency": float(np.exp(rng.uniform(*np.log(_FREQ_RANGE)))),
        "amplitude": float(rng.uniform(0.8, 1.2)),
        "noise": float(rng.uniform(0.3, 0.5)),
        "trend": 0.0,
        "correlation": float(rng.uniform(-0.3, 0.3)),
    }
    # Which aspects change where is drawn first: a trend slope must know how
    # long it lasts (until the next trend change) to move the level by a
    # bounded amount.
    changed = []
    for k in range(1, n_segments):
        picked = [order[(k - 1) % len(order)]]
        if rng.random() < _SECOND_ASPECT_PROB:
            picked.append(rng.choice([a for a in aspects if a != picked[0]]))
        changed.append([str(a) for a in picked])
    trend_starts = [k for k in range(1, n_segments) if "trend" in changed[k - 1]]
    params, level = [dict(current)], 0.0
    for k in range(1, n_segments):
        level += current["trend"] * (bounds[k] - bounds[k - 1])
        for aspect in changed[k - 1]:
            if aspect == "trend":
                end = next((j for j in trend_starts if j > k), n_segments)
                current["trend"] = _changed_trend(rng, current["trend"], bounds[end] - bounds[k],
                                                  level)
            else:
                current[aspect] = _changed_value(rng, aspect, current[aspect])
        params.append(dict(current))
    return params, changed


def _changed_value(rng, aspect, value):
    if aspect in ("frequency", "amplitude", "noise"):
        low, high = {"frequency": _FREQ_RANGE, "amplitude": _AMP_RANGE,
                     "noise": _NOISE_RANGE}[aspect]
        factor = rng.uniform(*_CHANGE_FACTOR)
        up, down = value * factor, value / factor
        # Go the way that stays inside the range; if both do, pick at random.
        options = [v for v in (up, down) if low <= v <= high] or [min(max(up, low), high)]
        return float(options[rng.integers(len(options))])
    # correlation: flip to the other side, far from the current value
    target = -np.sign(value) if value != 0 else rng.choice([-1.0, 1.0])
    return float(target * rng.uniform(0.6, _CORR_MAX))


def _changed_trend(rng, slope, span, level):
    """A new slope that moves the level by ``_TREND_RISE`` units over ``span`` rows."""
    if slope != 0.0 and rng.random() < 0.5:
        return 0.0
    if abs(level) > _TREND_RETURN_LEVEL:
        sign = -np.sign(level)
        if slope != 0.0 and sign == np.sign(slope):
            # Already heading back: a flipped slope would carry the level
            # further away, so the change is that the trend stops.
            return 0.0
    else:
        sign = rng.choice([-1.0, 1.0])
        if slope != 0.0 and sign == np.sign(slope):
            sign = -sign  # a new slope, not the same one
    return float(sign * rng.uniform(*_TREND_RISE) / max(span, 1))


def _kernel(rng, bounds, params, n_series):
    """Sum of continuous trend, oscillation and correlated noise, segment by segment."""
    length = bounds[-1]
    out = np.empty((length, n_series))
    offsets = rng.uniform(0, 2 * np.pi, size=n_series)
    signs = np.where(np.arange(n_series) % 2 == 0, 1.0, -1.0)
    phase, level = 0.0, 0.0
    for (start, stop), p in zip(zip(bounds[:-1], bounds[1:], strict=True), params, strict=True):
        steps = np.arange(stop - start)
        phases = phase + 2 * np.pi * p["frequency"] * steps
        trend = level + p["trend"] * steps
        rho = p["correlation"]
        common = rng.standard_normal(len(steps))[:, None]
        own = rng.standard_normal((len(steps), n_series))
        mix_sign = np.sign(rho) * signs if rho < 0 else np.ones(n_series)
        noise = np.sqrt(abs(rho)) * mix_sign * common + np.sqrt(1 - abs(rho)) * own
        out[start:stop] = (trend[:, None] + p["amplitude"] * np.sin(phases[:, None] + offsets)
                           + p["noise"] * noise)
        phase = phases[-1] + 2 * np.pi * p["frequency"]
        level = trend[-1] + p["trend"]
    return out
