"""lab.benchmark (the leaderboard engine) and lab.evaluation.critical_difference."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from lab.benchmark import data_digest, run_benchmark, skab_scores, unit_score
from lab.datasets import make_labelled_benchmark
from lab.evaluation import complete_block, critical_difference
from lab.metrics import nab_score, vus_pr


class _Odd:
    """A detector outside the registry that misbehaves as ``mode`` says."""

    def __init__(self, mode: str = "nan"):
        self.mode = mode

    def get_params(self):
        return {"mode": self.mode}

    def fit(self, X, y=None):
        return self

    def score(self, X):
        n = len(X)
        if self.mode == "nan":
            return np.r_[np.zeros(n - 1), np.nan]
        if self.mode == "short":
            return np.zeros(n - 1)
        if self.mode == "raise":
            raise RuntimeError("boom on purpose")
        if self.mode == "sleep":
            time.sleep(60)
        if self.mode == "pause":  # a second per 200 rows
            time.sleep(n / 200)
        return np.asarray(X)[:, 0] ** 2


@pytest.fixture(scope="module")
def toy():
    return {"toy": make_labelled_benchmark(n_series=2, n_rows=400, random_state=1)}


@pytest.mark.parametrize("workers", [0, 1])
def test_failures_are_recorded_and_the_rest_goes_on(toy, tmp_path, workers):
    # workers=1: the same through a dask worker, whose tasks are forked in turn
    detectors = {m: _Odd(m) for m in ("nan", "short", "raise", "sleep", "square")}
    detectors["hbos"] = "hbos"
    res = run_benchmark(detectors, toy, ["vus_pr"], workers=workers, timeout=2, cache=False,
                        progress=False, out=tmp_path)
    by = res.table.set_index(["detector", "series"])
    assert (by.loc["square", "status"] == "ok").all() and (by.loc["hbos", "status"] == "ok").all()
    assert by.loc["nan", "error"].str.contains("NaN").all()
    assert by.loc["short", "error"].str.contains(r"shape \(399,\)").all()
    assert by.loc["raise", "error"].str.contains("RuntimeError: boom on purpose").all()
    assert (by.loc["sleep", "status"] == "timeout").all()
    assert {f["detector"] for f in res.failed()} == {"nan", "short", "raise", "sleep"}
    assert by.loc[("nan", "synthetic/0_spike"), "vus_pr"] != by.loc[("nan", "synthetic/0_spike"),
                                                                   "vus_pr"]  # NaN
    # the Parquet file is the table
    back = pd.read_parquet(tmp_path / "benchmark.parquet")
    pd.testing.assert_frame_equal(back, res.table, check_dtype=False)


def test_metrics_are_the_library_functions_on_the_test_rows(toy):
    res = run_benchmark({"sq": _Odd("square")}, toy, ["vus_pr", "best_f1", "ucr_hit"],
                        workers=0, cache=False, progress=False)
    for name, frame in toy["toy"].items():
        n_train = frame.attrs["train_rows"]
        y = frame["anomaly"].to_numpy()[n_train:]
        s = frame["value"].to_numpy()[n_train:] ** 2
        row = res.table.set_index("series").loc[name]
        assert row["vus_pr"] == pytest.approx(vus_pr(y, s), abs=1e-12)
        # best F1 over thresholds, by brute force
        best = max(2 * np.sum((s >= t) & (y > 0)) / (np.sum(s >= t) + np.sum(y > 0))
                   for t in np.unique(s))
        assert row["best_f1"] == pytest.approx(best, abs=1e-12)
        assert row["ucr_hit"] in (0.0, 1.0)
        pd.testing.assert_series_equal(res.scores[("sq", "toy", name)],
                                       pd.Series(frame["value"].to_numpy() ** 2,
                                                 index=frame.index, name="score"))


def test_nab_scores_are_nab_score_at_the_chosen_threshold(toy):
    res = run_benchmark(["spectral_residual"], toy, ["auc_pr"], workers=0, cache=False,
                        progress=False)
    nab = res.nab_scores("toy")
    threshold = nab.loc["spectral_residual", "standard_threshold"]
    keys = [k for k in res.unit_scores if k[1] == "toy"]
    detections = {k[2]: res.unit_scores[k] >= threshold for k in keys}
    windows = {k[2]: res.windows[("toy", k[2])] for k in keys}
    assert nab.loc["spectral_residual", "standard"] == pytest.approx(
        nab_score(detections, windows), abs=1e-9)
    assert nab.loc["spectral_residual", "n_series"] == 2


def test_nab_scores_with_onset_are_nab_score_of_the_reworked_scores():
    data = {"toy": make_labelled_benchmark(n_series=4, n_rows=600, random_state=3)}
    res = run_benchmark(["spectral_residual"], data, ["auc_pr"], workers=0, cache=False,
                        progress=False)
    keys = [k for k in res.unit_scores if k[1] == "toy"]
    windows = {k[2]: res.windows[("toy", k[2])] for k in keys}
    reworked = {}
    for k in keys:  # a pandas twin of Onset(length=30)
        u = res.unit_scores[k]
        prev = u.shift(1).rolling(30, min_periods=1).max().fillna(-np.inf)
        reworked[k[2]] = u.where(u > prev, 0.0)
    plain, onset = res.nab_scores("toy"), res.nab_scores("toy", onset=30)
    for profile in ("standard", "reward_low_FN_rate"):
        threshold = onset.loc["spectral_residual", f"{profile}_threshold"]
        assert onset.loc["spectral_residual", profile] == pytest.approx(
            nab_score({k: v >= threshold for k, v in reworked.items()}, windows, profile),
            abs=1e-9)
    with pytest.raises(ValueError, match="onset must be"):
        res.nab_scores("toy", onset=0)
    # here one alarm per episode scores higher than the raw score's repeats
    assert onset.loc["spectral_residual", "standard"] > plain.loc["spectral_residual", "standard"] + 1


def test_cache_reuses_finished_tasks_and_keys_on_params(toy, tmp_path):
    one = {"toy": dict(list(toy["toy"].items())[:1])}
    first = run_benchmark(["iforest"], one, ["auc_pr"], workers=0, cache=tmp_path,
                          progress=False)
    assert not first.table["cached"].any()
    # an "interrupted" run finished one series: the full rerun picks up from it
    again = run_benchmark(["iforest", ("iforest", {"n_estimators": 20})], toy, ["auc_pr"],
                          workers=0, cache=tmp_path, progress=False)
    t = again.table.set_index(["detector", "series"])["cached"]
    name = next(iter(one["toy"]))
    assert t.loc[("iforest", name)] and t.sum() == 1
    assert again.table.set_index(["detector", "series"]).loc[("iforest", name), "auc_pr"] \
        == first.table["auc_pr"].iloc[0]
    assert data_digest(one["toy"][name]) != data_digest(one["toy"][name] * 2)


def test_dask_cluster_gives_the_same_results(toy):
    local = run_benchmark(["hbos", "spectral_residual"], toy, ["vus_pr", "auc_pr"], workers=0,
                          cache=False, progress=False)
    dask = run_benchmark(["hbos", "spectral_residual"], toy, ["vus_pr", "auc_pr"], workers=1,
                         cache=False, progress=False)
    cols = ["detector", "series", "status", "vus_pr", "auc_pr", "tp", "fp"]
    pd.testing.assert_frame_equal(local.table[cols], dask.table[cols])


def _callback_ms(dask_worker=None, dask_scheduler=None) -> dict:
    server = dask_worker or dask_scheduler
    return {k: v.callback_time for k, v in server.periodic_callbacks.items()}


def test_series_jobs_group_by_frame_and_keep_apart_the_one_worker_detectors():
    from types import SimpleNamespace

    from lab.benchmark import _ONE_WORKER, _series_groups

    frames = [pd.DataFrame({"x": [k]}) for k in range(2)]
    names = ["pca", *_ONE_WORKER, "hbos"]
    tasks = [(SimpleNamespace(name=n), "d", str(k), f, None)
             for k, f in enumerate(frames) for n in names]
    todo = [i for i in range(len(tasks)) if i != 2]  # one task cached
    assert _series_groups(tasks, todo) == [[0, 1], [3, 4, 5]]
    assert _series_groups(tasks, todo, _ONE_WORKER) == [[0], [1], [3, 5], [4]]


def test_the_labs_own_cluster_runs_dasks_watchers_rarely():
    # dask's defaults cost the idle client 7% of a core and each worker 5%, which the tasks
    # lose when both cores compute: no stack profiler, and the watchers once a second or less
    from lab.benchmark import _client

    with _client(None, 1) as client:
        (worker,) = client.run(_callback_ms).values()
        scheduler = client.run_on_scheduler(_callback_ms)
    assert "profile" not in worker and "profile-cycle" not in worker, worker
    for callbacks in (worker, scheduler):
        assert callbacks["tick"] >= 1000 and callbacks["monitor"] >= 5000, callbacks
    assert worker["memory_monitor"] >= 1000, worker


@pytest.mark.slow
def test_a_worker_that_runs_dry_takes_the_next_task():
    # one series of 8 s and four of 1 s on 2 workers, without work stealing (as on the lab's
    # own LocalCluster). When each series was held by one worker, its task waited for that
    # worker: the one with the long series ran 2 of the short ones after it, while the other
    # ran dry. Now the other worker runs all four before the long one ends (with 3 s to spare
    # for each task's fork and round trip on a loaded machine).
    import dask
    from distributed import Client, LocalCluster, get_task_stream

    long_ = make_labelled_benchmark(n_series=1, n_rows=1600, random_state=0)
    short = make_labelled_benchmark(n_series=4, n_rows=200, random_state=1)
    data = {"toy": {"long": next(iter(long_.values())),
                    **{f"short{k}": f for k, f in enumerate(short.values())}}}
    with dask.config.set({"distributed.scheduler.work-stealing": False}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                         dashboard_address=None) as cluster, Client(cluster) as client:
        with get_task_stream(client) as ts:
            res = run_benchmark({"pause": _Odd("pause")}, data, ["auc_pr"], dask=client,
                                cache=False, progress=False)
    assert (res.table["status"] == "ok").all()
    by_worker: dict[str, set] = {}
    for rec in ts.data:
        by_worker.setdefault(rec["worker"], set()).add(rec["key"])
    assert len(by_worker) == 2, by_worker
    (with_long,) = [keys for keys in by_worker.values() if "bench-0-long" in keys]
    # the long one, and at most one short one queued behind it
    assert len(with_long) <= 2, sorted(with_long)


_KERAS_CHILD = """
import os, sys
import numpy as np
from lab.benchmark import _detector_specs, _evaluate, _warm
from lab.forked import run_forked
from lab.datasets import make_labelled_benchmark

def threads():
    return len(os.listdir("/proc/self/task"))

frame = next(iter(make_labelled_benchmark(n_series=1, n_rows=400, random_state=1).values()))
spec = _detector_specs([("lstm_ae", {"window": 16, "epochs": 2})])[0]
before = threads()
_warm(spec)
assert "keras" in sys.modules and "tensorflow" in sys.modules, "keras not imported"
assert threads() <= before, f"the import started threads: {before} -> {threads()}"
(a,) = run_forked(_evaluate, [(spec, frame, ("vus_pr",))], 120)
(b,) = run_forked(_evaluate, [(spec, frame, ("vus_pr",))], 120)
assert a[0] == b[0] == "ok", (a, b)
# one child for several tasks, as a series' job runs them: a Keras fit after another in the
# same process scores as in a fresh child
other = _detector_specs(["hbos"])[0]
_warm(other)
c, d, e = run_forked(_evaluate, [(spec, frame, ("vus_pr",)), (other, frame, ("vus_pr",)),
                                  (spec, frame, ("vus_pr",))], 120)
assert c[0] == d[0] == e[0] == "ok", (c, d, e)
np.testing.assert_array_equal(c[1]["score"], a[1]["score"])
np.testing.assert_array_equal(e[1]["score"], a[1]["score"])
assert threads() <= before, f"a child's fit started threads here: {before} -> {threads()}"
print(a[1]["metrics"]["vus_pr"], b[1]["metrics"]["vus_pr"])
"""


@pytest.mark.slow
def test_keras_detectors_are_imported_before_the_fork_and_run_in_each_child():
    # a clean interpreter: the import must add no thread, and two forked children fit and
    # score after it (TensorFlow's pools start at the first operation and do not survive a fork)
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _KERAS_CHILD], capture_output=True, text=True,
                         timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    first, second = map(float, out.stdout.split()[-2:])
    assert 0.0 <= first <= 1.0 and first == second


_OPENMP_PARENT = """
import numpy as np
from sklearn.neighbors import NearestNeighbors
from lab.benchmark import run_benchmark
from lab.datasets import make_labelled_benchmark

# an OpenMP parallel region in this process first: libgomp keeps its team of threads, which a
# forked child does not have
x = np.random.default_rng(0).standard_normal((5000, 8))
NearestNeighbors(n_neighbors=5).fit(x).kneighbors(x)
data = {"toy": make_labelled_benchmark(n_series=1, n_rows=400, random_state=1)}
res = run_benchmark(["knn", "lof"], data, ["vus_pr"], workers=0, timeout=60, cache=False,
                    progress=False)
print(res.table[["detector", "status", "error"]].to_string())
assert (res.table["status"] == "ok").all()
"""


@pytest.mark.slow
def test_in_process_tasks_run_after_the_parent_used_openmp():
    # workers=0 forks from the caller's process (a notebook's kernel): a child that entered
    # OpenMP there waited for the parent's libgomp threads until the time limit
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", _OPENMP_PARENT], capture_output=True, text=True,
                         timeout=300, check=False, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


_NUMBA_PARENT = """
import time
import numba
import numpy as np
from lab.benchmark import _detector_specs, _evaluate, _warm
from lab.forked import run_forked
from lab.datasets import make_labelled_benchmark

frame = next(iter(make_labelled_benchmark(n_series=1, n_rows=600, random_state=2).values()))
spec = _detector_specs(["matrix_profile"])[0]
_warm(spec)
assert numba.threading_layer() == "workqueue", numba.threading_layer()
t0 = time.perf_counter()
((status, out),) = run_forked(_evaluate, [(spec, frame, ("vus_pr",))], 60)
assert status == "ok", out
child_s = time.perf_counter() - t0
here = _evaluate(spec, frame, ("vus_pr",))
np.testing.assert_array_equal(out["score"], here["score"])
print(child_s)
"""


@pytest.mark.slow
def test_in_process_matrix_profile_children_inherit_the_compiled_kernels():
    # workers=0: the parent compiles stumpy's kernels on numba's fork-safe workqueue layer, and
    # each child runs them as compiled (it compiled them again before, about 35 s per task)
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _NUMBA_PARENT], capture_output=True, text=True,
                         timeout=600, check=False)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert float(out.stdout.split()[-1]) < 10.0, "the child compiled the kernels again"


def test_skab_scores_pool_the_counts():
    t = pd.DataFrame({"detector": ["a", "a", "b"], "dataset": ["skab"] * 3,
                      "status": ["ok"] * 3, "tp": [3, 1, 0], "fp": [1, 1, 0],
                      "fn": [1, 3, 4], "tn": [10, 10, 20]})
    out = skab_scores(t)
    assert out.loc["a", "f1"] == pytest.approx(2 * 4 / (8 + 2 + 4))
    assert out.loc["a", "far"] == pytest.approx(100 * 2 / 22)
    assert out.loc["b", "mar"] == 100.0


def _with_changepoints(frames: dict) -> dict:
    """The toy frames with a SKAB-style ``changepoint`` label where each anomaly run starts."""
    out = {}
    for key, frame in frames.items():
        f = frame.copy()
        y = f["anomaly"].to_numpy().astype(np.int8)
        f["changepoint"] = (np.diff(np.r_[0, y]) == 1).astype(int)
        f.index = pd.date_range("2020-01-01", periods=len(f), freq="s")
        f.attrs = {**frame.attrs,
                   "label_columns": [*frame.attrs["label_columns"], "changepoint"]}
        out[key] = f
    return out


@pytest.mark.parametrize("detector", ["hbos", "pca"])
def test_skab_nab_is_evaluate_skab_on_the_same_alarms(toy, detector):
    """The leaderboard's change-point score equals SKAB's protocol run detector by detector."""
    from lab.protocols import evaluate_skab

    frames = _with_changepoints(toy["toy"])
    assert sum(f["changepoint"].sum() for f in frames.values()) > 0
    res = run_benchmark([detector], {"skab": frames}, ["vus_pr"], workers=0, cache=False,
                        progress=False)
    got = res.skab_nab()
    want = evaluate_skab(detector, frames).nab
    assert got.index.tolist() == [detector]
    for profile, value in want.items():
        assert got.loc[detector, profile] == pytest.approx(value, abs=1e-9)
    assert got.loc[detector, "n_series"] == len(frames)
    # SKAB's MSCRED rule (raw alarms, every change a change point): the same with smooth=1, cp_rows=1
    raw, want_raw = res.skab_nab(smooth=1, cp_rows=1), evaluate_skab(detector, frames, smooth=1,
                                                                     cp_rows=1).nab
    for profile, value in want_raw.items():
        assert raw.loc[detector, profile] == pytest.approx(value, abs=1e-9)
    with pytest.raises(ValueError, match="cp_rows"):
        res.skab_nab(cp_rows=0)
    # no change-point labels: nothing to score
    assert res.skab_nab("elsewhere").empty


def test_bad_input_names_the_argument(toy):
    with pytest.raises(ValueError, match="known names"):
        run_benchmark(["no_such_detector"], toy, progress=False)
    with pytest.raises(ValueError, match="metrics must name"):
        run_benchmark(["hbos"], toy, ["f2"], progress=False)
    with pytest.raises(ValueError, match="labelled frame"):
        run_benchmark(["hbos"], {"x": {"a": pd.DataFrame({"v": [1.0, 2.0]})}}, progress=False)
    with pytest.raises(ValueError, match="data set 'nope'"):
        run_benchmark(["hbos"], ["nope"], progress=False)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=30),
       st.lists(st.floats(-1e7, 1e7), min_size=1, max_size=30))
def test_unit_score_is_an_increasing_map_into_0_1(train, scores):
    out = unit_score(train, scores)
    assert ((out >= 0) & (out <= 1)).all()
    order = np.argsort(scores, kind="stable")
    assert (np.diff(out[order]) >= 0).all()
    # up to the training maximum it is the training ECDF, scaled by n / (n + 1)
    s = np.asarray(scores)
    inside = s <= max(train)
    ecdf = np.array([np.mean(np.asarray(train) <= v) for v in s[inside]])
    np.testing.assert_allclose(out[inside], ecdf * len(train) / (len(train) + 1))


@given(st.lists(st.lists(st.none() | st.floats(0, 1), min_size=4, max_size=4), max_size=12),
       st.sampled_from([0.25, 0.5, 0.9, 1.0]))
@settings(max_examples=100, deadline=None)
def test_complete_block_is_naive(rows, min_coverage):
    from naive import complete_block as naive_block

    columns = ["a", "b", "c", "d"]
    table = pd.DataFrame([[np.nan if v is None else v for v in row] for row in rows],
                         columns=columns, dtype=np.float64)
    block, left_out = complete_block(table, min_coverage)
    keep_rows, keep_cols, want_out = naive_block(rows, columns, min_coverage)
    assert list(block.columns) == keep_cols and left_out == want_out
    assert list(block.index) == keep_rows
    assert not block.isna().any().any()


def test_complete_block_saves_a_table_that_one_failed_detector_empties():
    rng = np.random.default_rng(1)
    table = pd.DataFrame(rng.random((20, 3)), columns=["a", "b", "c"])
    table["failed"] = np.nan
    table.loc[:7, "c"] = np.nan
    with pytest.raises(ValueError, match="complete_block"):
        critical_difference(table)
    block, left_out = complete_block(table)
    assert left_out == ["failed"] and block.shape == (12, 3)
    assert critical_difference(block).n_datasets == 12
    with pytest.raises(ValueError, match=r"min_coverage must be in \(0, 1\], got 0"):
        complete_block(table, 0)


def test_critical_difference_matches_scipy_and_demsar():
    rng = np.random.default_rng(0)
    values = np.round(rng.random((14, 4)) + np.array([0.0, 0.1, 0.2, 0.3]), 1)  # with ties
    table = pd.DataFrame(values, columns=list("abcd"))
    res = critical_difference(table)
    ref = stats.friedmanchisquare(*values.T)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-9)
    # Demsar 2006, section 3.2.2: k = 4 classifiers on N = 14 data sets, q_0.05 = 2.569,
    # CD = 2.569 sqrt(4 * 5 / (6 * 14)) = 1.25 (his figure)
    assert res.cd == pytest.approx(1.25, abs=0.005)
    assert res.cd == pytest.approx(2.569 * math.sqrt(20 / 84), abs=1e-3)
    ranks = stats.rankdata(-values, axis=1).mean(axis=0)
    assert res.mean_ranks.to_dict() == pytest.approx(dict(zip("abcd", ranks, strict=True)))
    assert list(res.mean_ranks.index)[0] == "abcd"[int(np.argmin(ranks))]
    for clique in res.cliques:  # every clique lies within the CD
        r = res.mean_ranks[list(clique)]
        assert r.max() - r.min() <= res.cd
    with pytest.raises(ValueError, match="2 methods and 2 complete rows"):
        critical_difference(table[["a"]])
