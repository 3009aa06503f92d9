"""Bayesian online change-point detection (Adams and MacKay 2007), vectorised over run lengths."""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

from lab._validation import _check_float
from lab.models._base import ChangePointDetector
from lab.models.thresholds import DEFAULT_CONTAMINATION

__all__ = ["BOCPDDetector", "standardize"]

#: Defaults: R package ``ocp`` (``onlineCPD``) as TCPDBench runs it: expected run
#: length 100 (hazard 1/100), Normal-Gamma prior m=0, k=1, a=1, b=1, run lengths of
#: posterior probability below 1e-4 dropped.
DEFAULT_LAM = 100.0
DEFAULT_PRIOR = {"prior_mean": 0.0, "prior_kappa": 1.0, "prior_alpha": 1.0, "prior_beta": 1.0}
DEFAULT_PRUNE = 1e-4
#: ``preset`` name -> settings it fixes (TCPDBench's ``default_bocpd``).
PRESETS = {"tcpd_default": {"lam": DEFAULT_LAM, **DEFAULT_PRIOR, "prune": DEFAULT_PRUNE,
                            "standardize": True}}
#: Run-length arrays start with room for this many runs and double when full.
_START_CAPACITY = 64


def standardize(values: np.ndarray) -> np.ndarray:
    """Each column minus its mean over its standard deviation (``ddof=1``, R's ``scale``).

    A constant column becomes zeros.

    Examples
    --------
    >>> standardize(np.array([[1.0, 2.0], [3.0, 2.0]])).tolist()
    [[-0.7071067811865475, 0.0], [0.7071067811865475, 0.0]]
    """
    x = np.asarray(values, dtype=np.float64)
    centred = x - x.mean(axis=0)
    sd = x.std(axis=0, ddof=1) if len(x) > 1 else np.zeros(x.shape[1])
    sd = np.where(sd > 0, sd, 1.0)
    return centred / sd


def _bocpd_kernel(x: np.ndarray, hazard: float, mu0: float, kappa0: float, alpha0: float,
                  beta0: float, prune: float) -> tuple[np.ndarray, np.ndarray]:
    """Log predictive density of every row and the most probable run length after it.

    Adams and MacKay's recursion with a constant hazard and independent
    Normal-Gamma models per column. After row ``t`` a run length ``r`` means
    the last ``r`` rows form the current run (``r = 0``: a run starts at
    ``t + 1``). Runs of posterior probability below ``prune`` are dropped.
    Arrays are preallocated (doubled when full) and updated in place; every
    quantity that depends on the run length only is read from one table.
    """
    n, d = x.shape
    r_all = np.arange(n + 2, dtype=np.float64)
    alpha = alpha0 + r_all / 2
    kappa = kappa0 + r_all
    nu = 2 * alpha
    scale_per_beta = (kappa + 1) / (alpha * kappa)  # Student t scale^2 / beta
    # by run length: log density constant, 1 / (nu scale^2 / beta), (nu + 1) / 2,
    # 1 / (kappa + 1) (mean update), kappa / (2 (kappa + 1)) (beta update)
    table = np.stack([
        d * (gammaln((nu + 1) / 2) - gammaln(nu / 2)
             - 0.5 * np.log(nu * np.pi * scale_per_beta)),
        1.0 / (nu * scale_per_beta),
        (nu + 1) / 2,
        1.0 / (kappa + 1),
        kappa / (2 * (kappa + 1)),
    ])  # (5, n + 2): a row per quantity, so that each gathered row is contiguous
    cap = _START_CAPACITY
    rl = np.zeros(cap, dtype=np.intp)
    p = np.zeros(cap)
    mu = np.empty((d, cap))  # one row per column: each column's runs are contiguous
    beta = np.empty((d, cap))
    p[0], mu[:, 0], beta[:, 0] = 1.0, mu0, beta0
    m = 1
    log_ev = np.empty(n)
    map_rl = np.empty(n, dtype=np.intp)
    grow = 1.0 - hazard
    for t in range(n):
        c = table[:, rl[:m]]
        logpi = c[0]
        for j in range(d):
            bj = beta[j, :m]
            dev = x[t, j] - mu[j, :m]
            sq = dev * dev
            logpi = logpi - 0.5 * np.log(bj) - c[2] * np.log1p(sq * c[1] / bj)
            mu[j, :m] += dev * c[3]  # the run grows by x[t]
            bj += c[4] * sq
        top = logpi.max()
        w = p[:m] * np.exp(logpi - top)
        total = w.sum()
        log_ev[t] = top + np.log(total)
        p[:m] = w * (grow / total)  # the change mass, hazard, opens a new run below
        rl[:m] += 1
        if p[:m].min() < prune:
            keep = np.flatnonzero(p[:m] >= prune)
            k = len(keep)
            rl[:k], p[:k] = rl[keep], p[keep]
            mu[:, :k], beta[:, :k] = mu[:, keep], beta[:, keep]
            m = k
        if m == cap:
            cap *= 2
            rl, p = np.resize(rl, cap), np.resize(p, cap)
            mu = np.concatenate([mu, np.empty((d, cap - m))], axis=1)
            beta = np.concatenate([beta, np.empty((d, cap - m))], axis=1)
        rl[m], p[m], mu[:, m], beta[:, m] = 0, hazard, mu0, beta0
        m += 1
        map_rl[t] = rl[np.argmax(p[:m])]
    return log_ev, map_rl


def map_change_points(map_rl: np.ndarray) -> np.ndarray:
    """Change points of the most probable run-length path (``ocp``'s ``maxCPs``).

    The run that is most probable after the last row started after row
    ``c = t - r``; the path before it is the most probable one after row
    ``c - 1``, and so on back to the start. Each change is placed on the
    first row of its run, ``c + 1``.

    Examples
    --------
    >>> map_change_points(np.array([1, 2, 3, 1, 2, 3])).tolist()
    [3]
    """
    cps = []
    t = len(map_rl) - 1
    while t >= 0:
        c = t - int(map_rl[t])
        if c < 0:
            break
        if c + 1 < len(map_rl):
            cps.append(c + 1)
        t = c - 1
    return np.asarray(sorted(cps), dtype=np.intp)


class BOCPDDetector(ChangePointDetector):
    """Bayesian online change-point detection: constant hazard, Normal-Gamma model.

    The run length (rows since the last change) has a posterior that is
    updated row by row; the change points are those of the most probable
    run-length path. ``score`` is the surprise of each row, minus the log of
    its predictive density given the rows before it.

    Parameters
    ----------
    lam : float, default 100
        Expected run length; the hazard (prior probability of a change at
        each row) is ``1 / lam``. Must be > 1.
    prior_mean, prior_kappa, prior_alpha, prior_beta : float, default 0, 1, 1, 1
        Normal-Gamma prior of each column's mean and precision (``m``, ``k``,
        ``a``, ``b`` of ``ocp``); kappa, alpha and beta must be > 0.
    prune : float, default 1e-4
        Run lengths whose posterior probability falls below this are dropped,
        which keeps the cost linear in the series' length. 0 keeps all.
    standardize : bool, default True
        Standardise each column of the series first (R's ``scale``), as the
        prior assumes unit scale.
    preset : {"tcpd_default"}, optional
        Settings of TCPDBench's ``default_bocpd`` (R ``ocp``); they are also
        the defaults.
    threshold : {"quantile", "spot", "sigma"}, float or dict, default "quantile"
        Threshold of the surprise score (``predict``); not used by
        :meth:`change_points`.
    contamination : float, default 0.01

    Notes
    -----
    Adams and MacKay, "Bayesian Online Changepoint Detection", 2007; the
    predictive of a Normal-Gamma model is a Student t with ``2 a`` degrees of
    freedom, location ``m`` and squared scale ``b (k + 1) / (a k)`` (Murphy,
    "Conjugate Bayesian analysis of the Gaussian distribution", 2007).
    Columns are independent given the run, as in ``ocp``. Settings follow
    the ``ocp`` R package (Pagotto 2019), run by TCPDBench (van den Burg and
    Williams 2020). Each row's update is numpy over the live run lengths;
    cost O(n m d) for ``m`` live run lengths (bounded by pruning).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.r_[np.zeros(100), np.full(100, 5.0)]
    >>> x += np.random.default_rng(0).normal(scale=0.5, size=200)
    >>> BOCPDDetector().fit(x).change_points(x).tolist()
    [100]
    """

    _state_attrs = ()

    def __init__(self, lam: float = DEFAULT_LAM, prior_mean: float = 0.0,
                 prior_kappa: float = 1.0, prior_alpha: float = 1.0, prior_beta: float = 1.0,
                 prune: float = DEFAULT_PRUNE, standardize: bool = True,
                 preset: str | None = None, threshold="quantile",
                 contamination: float = DEFAULT_CONTAMINATION):
        self.lam = lam
        self.prior_mean = prior_mean
        self.prior_kappa = prior_kappa
        self.prior_alpha = prior_alpha
        self.prior_beta = prior_beta
        self.prune = prune
        self.standardize = standardize
        self.preset = preset
        self.threshold = threshold
        self.contamination = contamination

    @property
    def min_rows(self) -> int:
        """Two rows (a standard deviation needs two)."""
        return 2

    def _settings(self) -> dict:
        if self.preset is not None:
            if self.preset not in PRESETS:
                raise ValueError(f"preset must be one of {tuple(PRESETS)} or None, got "
                                 f"{self.preset!r}")
            return dict(PRESETS[self.preset])
        return {"lam": self.lam, "prior_mean": self.prior_mean, "prior_kappa": self.prior_kappa,
                "prior_alpha": self.prior_alpha, "prior_beta": self.prior_beta,
                "prune": self.prune, "standardize": self.standardize}

    def _check_params(self) -> None:
        super()._check_params()
        s = self._settings()
        lam = _check_float(s["lam"], "lam")
        if lam <= 1:
            raise ValueError(f"lam (expected run length; the hazard is 1/lam) must be > 1, "
                             f"got {lam}")
        _check_float(s["prior_mean"], "prior_mean")
        for name in ("prior_kappa", "prior_alpha", "prior_beta"):
            if _check_float(s[name], name) <= 0:
                raise ValueError(f"{name} must be > 0, got {s[name]}")
        prune = _check_float(s["prune"], "prune")
        if not 0 <= prune < 1:
            raise ValueError(f"prune must be in [0, 1), got {prune}")
        if not isinstance(s["standardize"], bool | np.bool_):
            raise ValueError(f"standardize must be True or False, got {s['standardize']!r}")

    def _fit(self, values: np.ndarray, y, valid) -> None:
        pass  # nothing to learn: each series is read on its own

    def _run(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = self._settings()
        x = standardize(values) if s["standardize"] else np.asarray(values, dtype=np.float64)
        return _bocpd_kernel(np.ascontiguousarray(x), 1.0 / float(s["lam"]),
                             float(s["prior_mean"]), float(s["prior_kappa"]),
                             float(s["prior_alpha"]), float(s["prior_beta"]),
                             float(s["prune"]))

    def _score(self, values: np.ndarray) -> np.ndarray:
        log_ev, _ = self._run(values)
        return -log_ev

    def _change_points(self, values: np.ndarray) -> np.ndarray:
        if np.ptp(values, axis=0).max() == 0:
            return np.empty(0, dtype=np.intp)  # a constant series has no change
        _, map_rl = self._run(values)
        return map_change_points(map_rl)
