"""What :func:`lab.benchmark.run_benchmark` returns: :class:`BenchmarkResult`, its tables and
the benchmarks' own scores (NAB's corpus score, SKAB's pooled outlier metrics and change-point
score), and :func:`skab_scores`.

Kept apart from the engine (:mod:`lab.benchmark`), which runs the tasks; everything here reads
a finished results table. ``lab.benchmark`` re-exports both names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["BenchmarkResult", "skab_scores", "METRICS"]

#: Per-series metrics :func:`lab.benchmark.run_benchmark` can compute (``nab`` is scored over
#: the corpus).
METRICS = ("vus_pr", "vus_roc", "auc_pr", "best_f1", "range_f1", "ucr_hit", "nab")


@dataclass
class BenchmarkResult:
    """What :func:`lab.benchmark.run_benchmark` returns.

    Attributes
    ----------
    table : DataFrame
        One row per (detector, series): ``detector, dataset, series, group,
        n_rows, train_rows, status`` (``ok``, ``failed``, ``timeout``),
        ``error``, ``fit_s``, ``score_s``, ``peak_mb`` (peak resident memory
        of the task above its start; memory that the series' earlier tasks
        left with the allocator is reused and not counted, and it is NaN
        after the first task where Linux cannot reset the peak),
        ``threshold`` (the detector's ``threshold_``; inf without one),
        ``cached``, then the metric columns and
        ``tp, fp, fn, tn`` of the detector's own alarms on the test rows.
    scores : dict
        ``{(detector, dataset, series): Series}``: the raw score of every
        successful task on the series' index.
    unit_scores : dict
        The same, mapped into [0, 1] by :func:`lab.benchmark.unit_score`.
    windows : dict
        ``{(dataset, series): windows}`` from the frames' ``attrs``.
    changepoints : dict
        ``{(dataset, series): Series}``: the 0/1 ``changepoint`` label of every
        series that has one (SKAB), on the series' index.
    seconds : float
        Wall time of the run.
    path : Path or None
        The Parquet file written, if any.
    """

    table: pd.DataFrame
    scores: dict = field(default_factory=dict, repr=False)
    unit_scores: dict = field(default_factory=dict, repr=False)
    windows: dict = field(default_factory=dict, repr=False)
    changepoints: dict = field(default_factory=dict, repr=False)
    seconds: float = 0.0
    path: Path | None = None

    @property
    def detectors(self) -> list[str]:
        """The detectors, in the order they were given."""
        return list(dict.fromkeys(self.table["detector"]))

    def failed(self) -> list[dict[str, str]]:
        """The (detector, dataset, series) tasks that failed or timed out, with the reason."""
        bad = self.table[self.table["status"] != "ok"]
        return [{"detector": r.detector, "dataset": r.dataset, "series": r.series,
                 "status": r.status, "error": r.error} for r in bad.itertuples()]

    def leaderboard(self, metric: str = "vus_pr", dataset: str | None = None) -> pd.DataFrame:
        """Mean of a metric per detector and data set, best first by the mean over all.

        Examples
        --------
        >>> t = pd.DataFrame({"detector": ["a", "b"], "dataset": ["d", "d"],
        ...                   "status": ["ok", "ok"], "vus_pr": [0.2, 0.6]})
        >>> BenchmarkResult(t).leaderboard().index.tolist()
        ['b', 'a']
        """
        t = self.table if dataset is None else self.table[self.table["dataset"] == dataset]
        if metric not in t.columns:
            raise ValueError(f"metric {metric!r} is not in the results; columns: "
                             f"{list(t.columns)}")
        ok = t[t["status"] == "ok"]
        board = ok.pivot_table(index="detector", columns="dataset", values=metric,
                               aggfunc="mean")
        board["all"] = ok.groupby("detector")[metric].mean()
        board = board.reindex([d for d in self.detectors if d in board.index])
        return board.sort_values("all", ascending=False)

    def summary(self) -> pd.DataFrame:
        """One row per detector: mean of each metric, seconds, tasks and failures, by ``vus_pr``.

        Examples
        --------
        >>> t = pd.DataFrame({"detector": ["a", "a"], "dataset": ["d", "d"], "status": ["ok", "failed"],
        ...                   "vus_pr": [0.5, float("nan")], "fit_s": [1.0, float("nan")],
        ...                   "score_s": [0.5, float("nan")]})
        >>> BenchmarkResult(t).summary()[["vus_pr", "seconds", "tasks", "failed"]].values.tolist()
        [[0.5, 1.5, 2.0, 1.0]]
        """
        t = self.table
        metrics = [m for m in METRICS if m in t.columns]
        ok = t[t["status"] == "ok"]
        out = ok.groupby("detector")[metrics].mean().reindex(self.detectors)
        out["seconds"] = (ok["fit_s"] + ok["score_s"]).groupby(ok["detector"]).sum()
        out["tasks"] = t.groupby("detector").size().astype(float)
        out["failed"] = (t["status"] != "ok").groupby(t["detector"]).sum().astype(float)
        key = "vus_pr" if "vus_pr" in out else out.columns[0]
        return out.sort_values(key, ascending=False)

    def per_series(self, metric: str = "vus_pr") -> pd.DataFrame:
        """``(dataset, series) x detector`` table of a metric (for :func:`lab.evaluation.critical_difference`)."""
        ok = self.table[self.table["status"] == "ok"]
        return ok.pivot_table(index=["dataset", "series"], columns="detector", values=metric,
                              aggfunc="first")[[d for d in self.detectors
                                                if d in set(ok["detector"])]]

    def nab_scores(self, dataset: str = "nab", profiles: Sequence[str] | None = None,
                   onset: int | None = None) -> pd.DataFrame:
        """NAB's corpus score of each detector and profile, with its optimised threshold.

        Each series' score is mapped into [0, 1] by :func:`lab.benchmark.unit_score` (the
        rule fixed before any label is read: the empirical distribution of its
        own training-row scores), then :func:`lab.metrics.nab_threshold`
        picks one threshold per detector and profile over every series of the
        data set, as NAB does.

        Parameters
        ----------
        dataset : str
            The data set scored.
        profiles : sequence of str, optional
            NAB profiles (default: all three).
        onset : int, optional
            Rework each series' mapped score by
            :func:`lab.stream.onset_filter` with this length first: a score
            counts only where it opens a new high over the last ``onset``
            rows, so an episode raises one alarm (None: the scores as they
            are).

        Returns
        -------
        DataFrame
            Index ``detector``; columns ``<profile>`` (the score),
            ``<profile>_threshold`` and ``n_series`` (the series the detector
            scored; a detector that failed on some is scored on the rest).

        Raises
        ------
        ValueError
            On an ``onset`` below 1, or the errors of
            :func:`lab.metrics.nab_threshold`.

        Examples
        --------
        >>> from lab.benchmark import run_benchmark
        >>> from lab.datasets import make_labelled_benchmark
        >>> data = {"toy": make_labelled_benchmark(n_series=2, n_rows=400, random_state=1)}
        >>> res = run_benchmark(["spectral_residual"], data, ["auc_pr"], workers=0, cache=False,
        ...                     progress=False)
        >>> table = res.nab_scores("toy", onset=30)
        >>> list(table.index), int(table.loc["spectral_residual", "n_series"])
        (['spectral_residual'], 2)
        """
        from lab._validation import _check_int
        from lab.metrics import NAB_PROFILES, nab_threshold
        from lab.stream.detectors import onset_filter

        if onset is not None:
            onset = _check_int(onset, "onset", minimum=1)
        profiles = tuple(profiles or NAB_PROFILES)
        rows = {}
        for det in self.detectors:
            keys = [k for k in self.unit_scores if k[0] == det and k[1] == dataset]
            if not keys:
                continue
            scores = {k[2]: self.unit_scores[k] for k in keys}
            if onset is not None:
                scores = {k: onset_filter(v, onset) for k, v in scores.items()}
            windows = {k[2]: self.windows[(dataset, k[2])] for k in keys}
            if not any(windows.values()):
                continue
            row: dict[str, float] = {"n_series": len(keys)}
            for p in profiles:
                threshold, score = nab_threshold(scores, windows, p)
                row[p], row[f"{p}_threshold"] = score, threshold
            rows[det] = row
        out = pd.DataFrame.from_dict(rows, orient="index")
        out.index.name = "detector"
        return out.sort_values(profiles[0], ascending=False) if len(out) else out

    def skab_nab(self, dataset: str = "skab", *, smooth: int | None = None,
                 cp_rows: int | None = None) -> pd.DataFrame:
        """SKAB's change-point score of each detector (tsad's NAB variant), per profile.

        Each detector's own alarms (``score > threshold_``, the threshold from
        the training rows) are smoothed and turned into change points as SKAB
        does for its Isolation Forest (:func:`lab.protocols.skab_smooth`, then
        :func:`lab.protocols.skab_changepoints`), and the test rows of every
        series are scored together by :func:`lab.protocols.skab_nab_score`
        against the series' ``changepoint`` labels.

        Parameters
        ----------
        dataset : str, default "skab"
            The data set's name in the results; its frames need a
            ``changepoint`` label column.
        smooth, cp_rows : int, optional
            Rows of the rolling median on the alarms (1: none) and of the
            rolling maximum whose changes are the change points (1: every
            change of the alarms). Default: SKAB's Isolation Forest rule, 3
            and 30. ``smooth=1, cp_rows=1`` is the rule of SKAB's MSCRED and
            Conv-AE notebooks (``abs(prediction.diff())`` of the raw alarms).

        Returns
        -------
        DataFrame
            Index ``detector``; columns ``standard``, ``reward_low_FP_rate``,
            ``reward_low_FN_rate`` and ``n_series``, best standard score first.
            Empty when no series of ``dataset`` has change-point labels.

        Notes
        -----
        Katser & Kozitsin, "Skoltech Anomaly Benchmark (SKAB)", 2020: change
        points scored with NAB's profiles in a 60-second window to the right of
        each true change point. A detector without a threshold raises no alarm
        and scores as the null detector (0). SKAB's published change-point rows
        (:data:`lab.benchmark.SKAB_PUBLISHED_NAB`) do not share one rule
        (:data:`lab.benchmark.SKAB_PUBLISHED_NAB_RULE`): Isolation Forest's is the default
        here, MSCRED's and Conv-AE's is ``smooth=1, cp_rows=1``.

        Examples
        --------
        >>> t = pd.date_range("2020-01-01", periods=60, freq="s")
        >>> cp = pd.Series(0, index=t); cp.iloc[40] = 1
        >>> table = pd.DataFrame({"detector": ["a"], "dataset": ["skab"], "series": ["e1"],
        ...                       "train_rows": [20], "status": ["ok"], "threshold": [0.5]})
        >>> score = pd.Series((t >= t[40]).astype(float), index=t)  # the median delays a row
        >>> res = BenchmarkResult(table, scores={("a", "skab", "e1"): score},
        ...                       changepoints={("skab", "e1"): cp})
        >>> res.skab_nab()[["standard", "n_series"]].round(2).to_dict("records")  # 1 s late
        [{'standard': 99.75, 'n_series': 1.0}]
        """
        from lab._validation import _check_int
        from lab.protocols import (
            SKAB_CP_ROWS,
            SKAB_PROFILES,
            SKAB_SMOOTH_ROWS,
            skab_changepoints,
            skab_nab_score,
            skab_smooth,
        )

        smooth = _check_int(SKAB_SMOOTH_ROWS if smooth is None else smooth, "smooth", minimum=1)
        cp_rows = _check_int(SKAB_CP_ROWS if cp_rows is None else cp_rows, "cp_rows", minimum=1)

        ok = self.table[(self.table["dataset"] == dataset) & (self.table["status"] == "ok")]
        rows = {}
        for det, group in ok.groupby("detector", sort=False):
            truth, found = {}, {}
            for r in group.itertuples():
                cp = self.changepoints.get((dataset, r.series))
                if cp is None:
                    continue
                score = self.scores[(det, dataset, r.series)]
                alarms = (score > float(getattr(r, "threshold", np.inf))).astype(int)
                found[r.series] = skab_changepoints(skab_smooth(alarms, smooth),
                                                    cp_rows).iloc[int(r.train_rows):]
                truth[r.series] = cp.iloc[int(r.train_rows):]
            if not any(s.to_numpy().any() for s in truth.values()):
                continue
            rows[det] = {**skab_nab_score(truth, found), "n_series": float(len(truth))}
        out = pd.DataFrame.from_dict(rows, orient="index",
                                     columns=[*SKAB_PROFILES, "n_series"])
        out.index.name = "detector"
        return out.sort_values("standard", ascending=False)


def skab_scores(table: pd.DataFrame, dataset: str = "skab") -> pd.DataFrame:
    """SKAB's outlier metrics of each detector's alarms, pooled over the experiments.

    Parameters
    ----------
    table : DataFrame
        :attr:`BenchmarkResult.table`.
    dataset : str
        The data set's name in the table.

    Returns
    -------
    DataFrame
        Index ``detector``; ``f1``, ``far`` and ``mar`` (in %), over the test
        rows of every experiment taken together, of ``score > threshold_`` with
        the detector's own threshold from the training rows.

    Notes
    -----
    Katser & Kozitsin (SKAB, 2020): F1 of the binary outlier labels, FAR =
    FP / (FP + TN) and MAR = FN / (FN + TP), on all test points pooled.

    Examples
    --------
    >>> t = pd.DataFrame({"detector": ["a", "a"], "dataset": ["skab"] * 2,
    ...                   "status": ["ok", "ok"], "tp": [1, 1], "fp": [0, 2],
    ...                   "fn": [1, 1], "tn": [8, 6]})
    >>> skab_scores(t).round(3).to_dict("records")
    [{'f1': 0.5, 'far': 12.5, 'mar': 50.0}]
    """
    t = table[(table["dataset"] == dataset) & (table["status"] == "ok")]
    c = t.groupby("detector", sort=False)[["tp", "fp", "fn", "tn"]].sum()
    out = pd.DataFrame({
        "f1": 2 * c["tp"] / (2 * c["tp"] + c["fp"] + c["fn"]).replace(0, np.nan),
        "far": 100 * c["fp"] / (c["fp"] + c["tn"]).replace(0, np.nan),
        "mar": 100 * c["fn"] / (c["fn"] + c["tp"]).replace(0, np.nan),
    })
    return out.sort_values("f1", ascending=False)
