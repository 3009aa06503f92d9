"""Pluggable thresholds: how a detector turns its training scores into ``threshold_``.

Every detector takes ``threshold=`` and ``contamination=``:

* ``"quantile"``: the ``1 - contamination`` quantile of the training scores;
* ``"spot"``: peaks-over-threshold (Siffer et al., KDD 2017) fitted on the
  training scores, through :mod:`lab.spot`;
* ``"sigma"``: mean + k * standard deviation of the training scores (k = 3);
* ``"native"``: the detector's own rule (MSCRED: ``alpha`` times the largest
  validation score; betsi: its peak-mass rule);
* a number: that value.

A dict names a method with its setting: ``{"method": "quantile",
"contamination": 0.05}``, ``{"method": "sigma", "k": 2.5}``,
``{"method": "spot", "q": 1e-4, "level": 0.98}``.

Examples
--------
>>> import numpy as np
>>> s = np.arange(1000.0)
>>> fit_threshold(s, "quantile", contamination=0.01)
989.01
>>> bool(fit_threshold(s, {"method": "sigma", "k": 1}) == s.mean() + s.std())
True
>>> fit_threshold(s, 7)
7.0
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from lab._validation import _check_float

__all__ = ["METHODS", "DEFAULT_CONTAMINATION", "DEFAULT_SIGMA", "check_threshold",
           "fit_threshold"]

METHODS = ("quantile", "spot", "sigma", "native")
#: Share of training rows above a ``"quantile"`` threshold (PyOD's default is 0.1;
#: time-series benchmarks label about 1% of points anomalous).
DEFAULT_CONTAMINATION = 0.01
#: k of the ``"sigma"`` rule, mean + k * std.
DEFAULT_SIGMA = 3.0

_SETTINGS = {"quantile": {"contamination"}, "sigma": {"k"}, "spot": {"q", "level"},
             "native": set()}


def check_threshold(threshold: Any, contamination: Any = DEFAULT_CONTAMINATION
                    ) -> tuple[str | float, dict[str, Any]]:
    """Validate a ``threshold`` setting; return ``(method or number, settings)``.

    Raises
    ------
    ValueError
        On an unknown method, a setting the method does not take, or a
        contamination outside (0, 0.5].

    Examples
    --------
    >>> check_threshold({"method": "sigma", "k": 2})
    ('sigma', {'k': 2.0})
    """
    contamination = _check_float(contamination, "contamination")
    if not 0 < contamination <= 0.5:
        raise ValueError(f"contamination must be in (0, 0.5], got {contamination}")
    if isinstance(threshold, numbers.Real) and not isinstance(threshold, bool):
        return _check_float(threshold, "threshold"), {}
    if isinstance(threshold, dict):
        settings = dict(threshold)
        method = settings.pop("method", None)
    else:
        method, settings = threshold, {}
    if method not in METHODS:
        raise ValueError(f"threshold must be one of {METHODS}, a number, or a dict with a "
                         f"'method' key, got {threshold!r}")
    unknown = set(settings) - _SETTINGS[method]
    if unknown:
        raise ValueError(f"threshold method {method!r} takes {sorted(_SETTINGS[method])}, "
                         f"got {sorted(unknown)}")
    out = {k: _check_float(v, f"threshold[{k!r}]") for k, v in settings.items()}
    if method == "quantile":
        c = out.setdefault("contamination", contamination)
        if not 0 < c <= 0.5:
            raise ValueError(f"contamination must be in (0, 0.5], got {c}")
    if method == "sigma" and out.get("k", DEFAULT_SIGMA) <= 0:
        raise ValueError(f"threshold['k'] must be > 0, got {out['k']}")
    return method, out


def fit_threshold(scores: Any, threshold: Any = "quantile",
                  contamination: float = DEFAULT_CONTAMINATION) -> float:
    """The threshold of ``scores`` by the rule ``threshold`` (not ``"native"``).

    Parameters
    ----------
    scores : array-like of shape (n,)
        Training scores, finite.
    threshold : {"quantile", "spot", "sigma"}, float or dict
        The rule; see the module's docstring.
    contamination : float, default 0.01
        For ``"quantile"``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On a bad rule, or ``"spot"`` on too few scores to fit a tail (the
        message says how many are needed).

    Examples
    --------
    >>> import numpy as np
    >>> fit_threshold(np.r_[np.zeros(99), 1.0], "quantile", contamination=0.05)
    0.0
    """
    from lab.spot import DEFAULT_LEVEL, DEFAULT_Q, spot_threshold

    method, settings = check_threshold(threshold, contamination)
    if not isinstance(method, str):
        return float(method)
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size == 0 or not np.isfinite(s).all():
        raise ValueError(f"scores must be non-empty and finite to set a threshold, got "
                         f"{s.size} values")
    if method == "quantile":
        return float(np.quantile(s, 1 - settings["contamination"]))
    if method == "sigma":
        return float(s.mean() + settings.get("k", DEFAULT_SIGMA) * s.std())
    if method == "spot":
        return spot_threshold(s, q=settings.get("q", DEFAULT_Q),
                              level=settings.get("level", DEFAULT_LEVEL))
    raise ValueError("threshold='native' is the detector's own rule; fit the detector "
                     "instead of calling fit_threshold")
