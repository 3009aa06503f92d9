"""Published evaluation protocols, written out so that the lab's numbers compare with theirs.

SKAB (Katser & Kozitsin 2020) scores its leaderboard with its own protocol:

- per experiment, the first 400 rows train and the rest test
  (:data:`lab.datasets.labelled.SKAB_TRAIN_ROWS`);
- outlier detection: binary F1, false-alarm rate (FAR, %) and missed-alarm
  rate (MAR, %) over the test rows of all experiments pooled
  (:func:`skab_binary`);
- change points: a NAB-like score from the ``tsad`` library (the SKAB
  authors' own), with a 60-second window to the right of each labelled change
  point (:func:`skab_nab_score`). It is **not** NAB's scorer
  (:func:`lab.metrics.nab_score`); the differences are listed there.

:func:`evaluate_skab` runs a lab detector (or any alarm function) under that
protocol, and :func:`skab_iforest` is SKAB's own Isolation Forest baseline,
which reproduces their published row exactly (F1 0.29, FAR 2.56 %, MAR
82.89 %; NAB 26.16 / 19.5 / 30.82).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lab._validation import _check_int

__all__ = ["skab_binary", "skab_nab_score", "skab_smooth", "skab_changepoints",
           "skab_iforest", "evaluate_skab", "SkabResult", "SKAB_PROFILES",
           "SKAB_WINDOW", "SKAB_PUBLISHED"]

#: tsad's NAB profiles as (A_tp, A_fp, A_fn), under NAB's profile names.
SKAB_PROFILES = {
    "standard": (1.0, -0.11, -1.0),
    "reward_low_FP_rate": (1.0, -0.22, -1.0),
    "reward_low_FN_rate": (1.0, -0.11, -2.0),
}
#: Width of the scoring window placed to the right of each true change point.
SKAB_WINDOW = "60s"
#: SKAB's rolling median over the 0/1 alarms (their Isolation Forest pipeline).
SKAB_SMOOTH_ROWS = 3
#: Rows of the rolling maximum whose changes are SKAB's predicted change points.
SKAB_CP_ROWS = 30
#: tsad's resolution of its scoring curve over a window.
_TSAD_STEPS = 1000
#: SKAB's Isolation Forest settings (notebooks/isolation_forest.ipynb).
SKAB_IFOREST = {"random_state": 0, "contamination": 0.0005}

#: SKAB's published leaderboard (README of SKAB v0.9): outlier F1, FAR %, MAR %
#: and change-point NAB standard / low FP / low FN (None where not published).
SKAB_PUBLISHED = pd.DataFrame.from_records([
    ("Conv-AE", 0.78, 13.55, 28.02, 23.61, None, None),
    ("MSET", 0.78, 39.73, 14.13, 13.84, None, None),
    ("T-squared+Q (PCA)", 0.76, 26.62, 24.92, 25.35, None, None),
    ("LSTM-AE", 0.74, 29.96, 25.92, 23.51, None, None),
    ("T-squared", 0.66, None, None, 19.54, None, None),
    ("LSTM-VAE", 0.56, None, None, None, None, None),
    ("Vanilla LSTM", 0.54, None, None, 11.31, None, None),
    ("Vanilla AE", 0.39, None, None, 11.41, None, None),
    ("MSCRED", 0.36, 49.94, 69.88, 32.42, 16.53, 40.28),
    ("Isolation Forest", 0.29, 2.56, 82.89, 26.16, 19.5, 30.82),
    ("Null", 0.0, None, None, 0.0, 0.0, 0.0),
], columns=["detector", "f1", "far", "mar", "nab_standard", "nab_low_fp", "nab_low_fn"])


def _as_corpus(value, name: str) -> dict:
    if isinstance(value, pd.Series):
        return {"series": value}
    if isinstance(value, Mapping):
        for key, s in value.items():
            if not isinstance(s, pd.Series):
                raise ValueError(f"{name}[{key!r}] must be a pandas Series, got "
                                 f"{type(s).__name__}")
        return dict(value)
    raise ValueError(f"{name} must be a Series or a dict of Series, got {type(value).__name__}")


def _flags(s: pd.Series, name: str) -> np.ndarray:
    values = s.to_numpy()
    if values.dtype == bool:
        return values
    try:
        values = values.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must hold 0/1 or bool values, got dtype {s.dtype}") from exc
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        raise ValueError(f"{name} must hold 0/1 values only, found {values[bad][:3].tolist()} "
                         f"(shape {values.shape})")
    return values == 1.0


def _pairs(y_true, y_pred) -> list[tuple[str, np.ndarray, np.ndarray, pd.Index]]:
    true, pred = _as_corpus(y_true, "y_true"), _as_corpus(y_pred, "y_pred")
    if set(true) != set(pred):
        raise ValueError(f"y_true and y_pred must have the same keys; differing: "
                         f"{sorted(map(str, set(true) ^ set(pred)))[:5]}")
    out = []
    for key in true:
        t, p = true[key], pred[key]
        if len(t) != len(p):
            raise ValueError(f"y_true[{key!r}] has {len(t)} rows and y_pred[{key!r}] {len(p)}; "
                             "they must be the same series")
        out.append((key, _flags(t, f"y_true[{key!r}]"), _flags(p, f"y_pred[{key!r}]"), t.index))
    return out


def skab_binary(y_true, y_pred) -> dict[str, float]:
    """SKAB's outlier scores: F1, FAR and MAR over all points of a corpus pooled.

    Parameters
    ----------
    y_true, y_pred : Series of 0/1 (or bool), or dicts of them with the same keys
        True labels and alarms, one Series per experiment (the test rows only,
        under SKAB's protocol).

    Returns
    -------
    dict
        ``f1`` = TP / (TP + (FP + FN) / 2), ``far`` = 100 FP / (FP + TN) and
        ``mar`` = 100 FN / (FN + TP), unrounded (SKAB's table rounds to two
        decimals), and the counts ``tp``, ``fp``, ``tn``, ``fn``.

    Raises
    ------
    ValueError
        On values other than 0/1, keys or lengths that differ.

    Notes
    -----
    tsad's ``evaluating(metric="binary")`` (Katser & Kozitsin, SKAB 2020):
    the confusion counts are summed over the experiments before the ratios
    are taken, so long experiments weigh more. A ratio with a zero
    denominator is NaN.

    Examples
    --------
    >>> import pandas as pd
    >>> r = skab_binary(pd.Series([0, 1, 1, 0]), pd.Series([0, 1, 0, 1]))
    >>> r["f1"], r["far"], r["mar"]
    (0.5, 50.0, 50.0)
    """
    tp = fp = tn = fn = 0
    for _, t, p, _ in _pairs(y_true, y_pred):
        tp += int((t & p).sum())
        fp += int((~t & p).sum())
        tn += int((~t & ~p).sum())
        fn += int((t & ~p).sum())

    def ratio(a, b):
        return float(a / b) if b else float("nan")

    return {"f1": ratio(tp, tp + (fp + fn) / 2), "far": 100 * ratio(fp, fp + tn),
            "mar": 100 * ratio(fn, fn + tp), "tp": tp, "fp": fp, "tn": tn, "fn": fn}


def _tsad_weight(start, at, end, a_tp: float, a_fp: float) -> float:
    """tsad's ``my_scale``: a tanh from A_tp at the window's start to A_fp at its end."""
    x = np.linspace(-np.pi / 2, np.pi / 2, _TSAD_STEPS)
    y = (a_tp - a_fp) / 2 * -np.tanh(x) / np.tanh(np.pi / 2) + (a_tp - a_fp) / 2 + a_fp
    step = int((at - start) / (end - start) * _TSAD_STEPS)
    return float(y[min(step, _TSAD_STEPS - 1)])


def _tsad_windows(times: pd.Index, width: pd.Timedelta) -> list[list]:
    windows = [[t, t + width] for t in times]
    for i in range(len(windows) - 1):          # tsad's "cut right window"
        if windows[i][1] >= windows[i + 1][0]:
            windows[i + 1][0] = windows[i][1]
    return windows


def skab_nab_score(changepoints, detections, window=SKAB_WINDOW) -> dict[str, float]:
    """SKAB's change-point score: tsad's variant of NAB, per profile.

    Parameters
    ----------
    changepoints : Series of 0/1, or dict of them
        The true change points of each experiment (SKAB's ``changepoint``
        column), on a DatetimeIndex.
    detections : Series of 0/1, or dict of them
        The predicted change points, on the same index (every 1 is one
        detection).
    window : str or Timedelta, default "60s"
        Width of the scoring window that starts at each true change point.

    Returns
    -------
    dict of str to float
        ``{profile: 100 (S - S_null) / (S_perfect - S_null)}`` for the three
        profiles (:data:`SKAB_PROFILES`), unrounded; SKAB's table rounds to
        two decimals.

    Raises
    ------
    ValueError
        On values other than 0/1, keys or lengths that differ, an index that
        is not a DatetimeIndex, or no true change point in the corpus.

    Notes
    -----
    tsad's ``evaluating(metric="nab", numenta_time="60s",
    anomaly_window_destenation="righter", intersection_mode="cut right
    window", scale_func="improved")``, which SKAB's leaderboard uses. It
    differs from NAB's scorer (:func:`lab.metrics.nab_score`):

    - windows are ``[cp, cp + window]`` in time, one per true change point,
      both ends included; a window that overlaps the one before starts where
      that one ends (NAB's windows are labelled, centred on the anomaly);
    - the first detection in a window earns ``y[int(1000 (t - start) /
      (end - start))]`` with ``y = (A_tp - A_fp)/2 (1 - tanh(x)/tanh(pi/2)) +
      A_fp`` over 1,000 steps of ``x`` in ``[-pi/2, pi/2]``: A_tp at the
      window's start, falling to A_fp at its end (NAB uses a scaled sigmoid
      of the row position, equal to A_tp at the window's start);
    - every detection outside the windows costs A_fp flat, wherever it is
      (NAB scales it by a sigmoid of the distance from the preceding window,
      so alarms just after a window cost less);
    - there is no probationary period: every row of the series given is
      scored (under SKAB's protocol, pass the test rows);
    - ``S_null = n A_fn`` and ``S_perfect = n A_tp`` for ``n`` windows, as in
      NAB.

    With SKAB's Isolation Forest this reproduces the published 26.16 / 19.5
    / 30.82 (tests/test_protocols.py).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.date_range("2020-01-01", periods=300, freq="s")
    >>> cp = pd.Series(0, index=t); cp.iloc[100] = 1
    >>> det = pd.Series(0, index=t); det.iloc[100] = 1
    >>> skab_nab_score(cp, det)["standard"]
    100.0
    >>> det.iloc[250] = 1                         # one false alarm: -0.11
    >>> round(skab_nab_score(cp, det)["standard"], 2)
    94.5
    """
    width = pd.Timedelta(window)
    if width <= pd.Timedelta(0):
        raise ValueError(f"window must be a positive duration, got {window!r}")
    totals = {p: [0.0, 0.0, 0.0] for p in SKAB_PROFILES}   # score, null, perfect
    n_windows = 0
    for key, t, p, index in _pairs(changepoints, detections):
        if not isinstance(index, pd.DatetimeIndex):
            raise ValueError(f"changepoints[{key!r}] must be on a DatetimeIndex (the window is "
                             f"a duration), got {type(index).__name__}")
        windows = _tsad_windows(index[t], width)
        alarms = index[p].sort_values()
        tps, fps, fns = [], 0, 0
        if windows:
            fps += int((alarms < windows[0][0]).sum())
            for i, (lo, hi) in enumerate(windows):
                inside = alarms[(alarms >= lo) & (alarms <= hi)]
                if len(inside):
                    tps.append((lo, inside[0], hi))
                else:
                    fns += 1
                if i + 1 < len(windows):
                    fps += int(((alarms > hi) & (alarms < windows[i + 1][0])).sum())
            fps += int((alarms > windows[-1][1]).sum())
        else:
            fps += len(alarms)
        n_windows += len(windows)
        for profile, (a_tp, a_fp, a_fn) in SKAB_PROFILES.items():
            score = a_fp * fps + a_fn * fns + sum(_tsad_weight(*w, a_tp, a_fp) for w in tps)
            totals[profile][0] += score
            totals[profile][1] += len(windows) * a_fn
            totals[profile][2] += len(windows) * a_tp
    if n_windows == 0:
        raise ValueError("skab_nab_score needs at least one true change point in the corpus")
    return {profile: float(100 * (s - null) / (perfect - null))
            for profile, (s, null, perfect) in totals.items()}


def skab_smooth(alarms: pd.Series, rows: int = SKAB_SMOOTH_ROWS) -> pd.Series:
    """SKAB's smoothing of 0/1 alarms: a rolling median over ``rows``, the first rows 0.

    Parameters
    ----------
    alarms : Series of 0/1 or bool
    rows : int, default 3

    Returns
    -------
    Series of int
        ``alarms.rolling(rows).median()``, the leading incomplete windows 0.

    Examples
    --------
    >>> import pandas as pd
    >>> skab_smooth(pd.Series([1, 1, 0, 1, 1, 0, 0])).tolist()
    [0, 0, 1, 1, 1, 1, 0]
    """
    _check_int(rows, "rows", minimum=1)
    values = _flags(alarms, "alarms").astype(np.float64)
    out = pd.Series(values, index=alarms.index).rolling(rows).median().fillna(0.0)
    return (out > 0.5).astype(int)


def skab_changepoints(alarms: pd.Series, rows: int = SKAB_CP_ROWS) -> pd.Series:
    """SKAB's change points from 0/1 alarms: where their ``rows``-row rolling maximum changes.

    Parameters
    ----------
    alarms : Series of 0/1 or bool
    rows : int, default 30

    Returns
    -------
    Series of int
        1 where ``alarms.rolling(rows).max()`` (0 before it is defined)
        changes, and at the first row when the first alarm is 1.

    Examples
    --------
    >>> import pandas as pd
    >>> a = pd.Series([0] * 5 + [1] * 3 + [0] * 8)
    >>> skab_changepoints(a, rows=4).to_numpy().nonzero()[0].tolist()
    [5, 11]
    """
    _check_int(rows, "rows", minimum=1)
    values = _flags(alarms, "alarms").astype(np.float64)
    series = pd.Series(values, index=alarms.index)
    cp = series.rolling(rows).max().fillna(0.0).diff().abs()
    if len(cp):
        cp.iloc[0] = values[0]
    return (cp > 0).astype(int)


def skab_iforest(frame: pd.DataFrame, train_rows: int | None = None) -> pd.Series:
    """SKAB's Isolation Forest baseline on one experiment: its 0/1 alarms on every row.

    Parameters
    ----------
    frame : DataFrame
        One experiment from :func:`lab.datasets.load_skab` (sensor columns,
        then ``anomaly`` and ``changepoint``).
    train_rows : int, optional
        Training rows; ``frame.attrs["train_rows"]`` (400) by default.

    Returns
    -------
    Series of int
        scikit-learn's ``IsolationForest(random_state=0,
        contamination=0.0005)`` fitted on the training rows, its prediction
        on every row as 0/1, smoothed by :func:`skab_smooth`.

    Notes
    -----
    SKAB's ``notebooks/isolation_forest.ipynb``. Under :func:`evaluate_skab`
    it gives F1 0.287, FAR 2.56 % and MAR 82.89 %, their published row.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> t = pd.date_range("2020-01-01", periods=500, freq="s")
    >>> x = np.random.default_rng(0).normal(size=(500, 2))
    >>> x[450:460] += 10
    >>> f = pd.DataFrame(x, index=t, columns=["a", "b"]).assign(anomaly=0, changepoint=0)
    >>> f.attrs["label_columns"] = ("anomaly", "changepoint")
    >>> int(skab_iforest(f, train_rows=400).iloc[450:460].sum())   # the first lost to smoothing
    9
    """
    from sklearn.ensemble import IsolationForest

    from lab.datasets import split_labels

    signals, _ = split_labels(frame)
    n = train_rows if train_rows is not None else frame.attrs.get("train_rows")
    _check_int(n, "train_rows", minimum=1)
    model = IsolationForest(**SKAB_IFOREST).fit(signals.iloc[:n])
    alarms = pd.Series((model.predict(signals) == -1).astype(int), index=signals.index)
    return skab_smooth(alarms)


@dataclass
class SkabResult:
    """The scores of one detector under SKAB's protocol.

    Attributes
    ----------
    f1, far, mar : float
        Pooled over the test rows of every experiment (:func:`skab_binary`).
    nab : dict of str to float
        :func:`skab_nab_score` per profile, on the test rows.
    per_group : DataFrame
        The same scores for each group (``valve1``, ``valve2``, ``other``) and
        for every experiment outside ``valve1`` (``not valve1``).
    alarms, changepoints : dict of str to Series
        The 0/1 alarms and predicted change points of every experiment, on
        all its rows.
    """

    f1: float
    far: float
    mar: float
    nab: dict[str, float]
    per_group: pd.DataFrame
    alarms: dict[str, pd.Series] = field(repr=False)
    changepoints: dict[str, pd.Series] = field(repr=False)

    def row(self) -> dict[str, float]:
        """The leaderboard row: ``f1``, ``far``, ``mar`` and ``nab_<profile>``."""
        return {"f1": self.f1, "far": self.far, "mar": self.mar,
                "nab_standard": self.nab["standard"],
                "nab_low_fp": self.nab["reward_low_FP_rate"],
                "nab_low_fn": self.nab["reward_low_FN_rate"]}


def _scores(names, data, alarms, cps) -> dict[str, float]:
    tests = {k: data[k].attrs["train_rows"] for k in names}
    binary = skab_binary({k: data[k]["anomaly"].iloc[n:] for k, n in tests.items()},
                         {k: alarms[k].iloc[n:] for k, n in tests.items()})
    true_cps = {k: data[k]["changepoint"].iloc[n:] for k, n in tests.items()}
    if any(s.to_numpy().any() for s in true_cps.values()):
        nab = skab_nab_score(true_cps, {k: cps[k].iloc[n:] for k, n in tests.items()})
    else:                                   # no change point to score in these experiments
        nab = dict.fromkeys(SKAB_PROFILES, float("nan"))
    return {"f1": binary["f1"], "far": binary["far"], "mar": binary["mar"],
            "nab_standard": nab["standard"], "nab_low_fp": nab["reward_low_FP_rate"],
            "nab_low_fn": nab["reward_low_FN_rate"], "experiments": len(names)}


def evaluate_skab(detector, data: Mapping[str, pd.DataFrame] | None = None, *,
                  smooth: int = SKAB_SMOOTH_ROWS, cp_rows: int = SKAB_CP_ROWS) -> SkabResult:
    """Run a detector under SKAB's protocol and score it as SKAB's leaderboard does.

    Parameters
    ----------
    detector : str, detector, or callable
        A registry name (built with its defaults), a lab detector (cloned per
        experiment with ``get_params``), or a function ``f(frame) -> Series``
        returning the 0/1 alarms of every row of one experiment (such as
        :func:`skab_iforest`, which smooths by itself).
    data : dict of str to DataFrame, optional
        Experiments as :func:`lab.datasets.load_skab` returns them (all 34 by
        default).
    smooth : int, default 3
        Rows of the rolling median applied to a lab detector's alarms (SKAB's
        rule for its Isolation Forest); 1 keeps them as they are. Not applied
        to a callable.
    cp_rows : int, default 30
        Rows of the rolling maximum whose changes are the predicted change
        points (:func:`skab_changepoints`).

    Returns
    -------
    SkabResult

    Raises
    ------
    ValueError
        On an unknown detector name, a callable whose alarms do not match the
        experiment's rows, or data without SKAB's label columns.

    Notes
    -----
    A lab detector is fitted on the first ``attrs["train_rows"]`` (400) rows
    of each experiment and its ``predict`` (its own threshold from those
    training scores) marks every row; only the rows after the training rows
    are scored. SKAB's networks set their threshold at 4/3 of the 0.999
    quantile of the training residuals: pass ``threshold`` to the detector
    to do the same.

    Examples
    --------
    >>> from lab.protocols import evaluate_skab, skab_iforest
    >>> from lab.datasets import load_skab
    >>> try:
    ...     data = dict(list(load_skab().items())[:2])
    ... except FileNotFoundError:
    ...     data = None                      # the data is not on this machine
    >>> data is None or 0 <= evaluate_skab(skab_iforest, data).f1 <= 1
    True
    """
    from lab.datasets import load_skab, split_labels
    from lab.models import get_detector

    _check_int(smooth, "smooth", minimum=1)
    _check_int(cp_rows, "cp_rows", minimum=1)
    data = dict(load_skab() if data is None else data)
    if not data:
        raise ValueError("data holds no experiment")
    if isinstance(detector, str):
        name = detector

        def make():
            return get_detector(name)
    elif callable(detector) and not hasattr(detector, "fit"):
        make = None
    elif hasattr(detector, "fit") and hasattr(detector, "get_params"):
        cls, params = type(detector), detector.get_params()

        def make():
            return cls(**params)
    else:
        raise ValueError(f"detector must be a registry name, a lab detector or a function "
                         f"frame -> alarms, got {type(detector).__name__}")

    alarms, cps = {}, {}
    for key, frame in data.items():
        for column in ("anomaly", "changepoint"):
            if column not in frame:
                raise ValueError(f"data[{key!r}] lacks the {column!r} column of SKAB's labels")
        if make is None:
            out = detector(frame)
            if not isinstance(out, pd.Series) or len(out) != len(frame):
                raise ValueError(f"detector({key!r}) must return a Series of {len(frame)} "
                                 f"alarms, got {type(out).__name__} of length "
                                 f"{len(out) if hasattr(out, '__len__') else '?'}")
            flags = pd.Series(_flags(out, f"alarms of {key!r}").astype(int), index=frame.index)
        else:
            signals, _ = split_labels(frame)
            n = frame.attrs["train_rows"]
            model = make().fit(signals.iloc[:n])
            raw = model.predict(signals).reindex(signals.index).fillna(False).astype(int)
            flags = skab_smooth(raw, smooth)
        alarms[key] = flags
        cps[key] = skab_changepoints(flags, cp_rows)

    total = _scores(list(data), data, alarms, cps)
    groups = {}
    for group in dict.fromkeys(f.attrs.get("group", k.split("/")[0]) for k, f in data.items()):
        names = [k for k, f in data.items() if f.attrs.get("group", k.split("/")[0]) == group]
        groups[group] = _scores(names, data, alarms, cps)
    others = [k for k, f in data.items() if f.attrs.get("group", k.split("/")[0]) != "valve1"]
    if others and len(others) < len(data):
        groups["not valve1"] = _scores(others, data, alarms, cps)
    per_group = pd.DataFrame.from_dict(groups, orient="index")
    return SkabResult(f1=total["f1"], far=total["far"], mar=total["mar"],
                      nab={"standard": total["nab_standard"],
                           "reward_low_FP_rate": total["nab_low_fp"],
                           "reward_low_FN_rate": total["nab_low_fn"]},
                      per_group=per_group, alarms=alarms, changepoints=cps)
