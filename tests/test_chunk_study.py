"""run_chunk_study in worker processes (n_jobs): the serial results, errors that name the fit."""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
import pytest
from joblib import cpu_count
from joblib.externals.loky import get_reusable_executor
from joblib.externals.loky.process_executor import TerminatedWorkerError

import lab.chunk_study as chunk_study
from lab.chunk_study import (
    _COST_ORDER,
    MODELS,
    _check_n_jobs,
    _fit_in_processes,
    _fit_model,
    experiment_chunks,
    make_experiments,
    run_chunk_study,
)

# Small networks, so that a fit takes a second or two.
NETS = {"n_splits": 2, "epochs": 2, "patience": 2, "units": (8,), "fcn_filters": (8, 16, 8),
        "ae_epochs": 1}


@pytest.fixture(scope="module")
def chunks():
    return experiment_chunks(make_experiments(4, 360, random_state=2), T=30, calendar=False)


@pytest.mark.slow
def test_workers_give_the_serial_results_and_keep_models(chunks):
    X, y, meta = chunks
    models = ("fcn", "lstm", "iforest", "kmeans", "majority")
    one = run_chunk_study(X, y, meta, models=models, **NETS)
    two = run_chunk_study(X, y, meta, models=models, n_jobs=2, keep_models=True, **NETS)
    # exactly: TensorFlow on another thread count than the caller's sums in another order
    pd.testing.assert_frame_equal(one.folds.drop(columns="fit_s"),
                                  two.folds.drop(columns="fit_s"), check_exact=True)
    pd.testing.assert_frame_equal(one.scores, two.scores, check_exact=True)
    assert list(two.folds["model"]) == [*models, *models]
    assert (two.folds["fit_s"] > 0).all()
    # the classifiers come back from the workers and score as they did there
    assert sorted(two.classifiers) == sorted((m, k) for m in ("fcn", "lstm")
                                             for k in (0, 1))
    test = one.scores.index[one.scores["fold"] == 1]
    np.testing.assert_array_equal(two.classifiers[("fcn", 1)].predict_proba(X[test])[:, 1],
                                  one.scores.loc[test, "fcn"].to_numpy())


def test_n_jobs_minus_one_is_every_core(chunks):
    assert _check_n_jobs(-1) == cpu_count() and _check_n_jobs(3) == 3
    X, y, meta = chunks
    one = run_chunk_study(X, y, meta, models=("iforest", "majority"), n_splits=2)
    every = run_chunk_study(X, y, meta, models=("iforest", "majority"), n_splits=2, n_jobs=-1)
    pd.testing.assert_frame_equal(one.scores, every.scores, check_exact=True)


@pytest.mark.parametrize("n_jobs", [0, -2, 1.5, True, "2"])
def test_bad_n_jobs_is_named(chunks, n_jobs):
    X, y, meta = chunks
    with pytest.raises(ValueError, match="n_jobs"):
        run_chunk_study(X, y, meta, models=("majority",), n_splits=2, n_jobs=n_jobs)


def test_every_model_has_a_place_in_the_start_order():
    assert sorted(_COST_ORDER) == sorted(MODELS)


def _fails_on_kmeans(X, y, name, k, fit, val, test, settings):
    if name == "kmeans":
        raise ValueError("kmeans broke")
    if name == "lstm":
        time.sleep(60)
    return _fit_model(X, y, name, k, fit, val, test, settings)


def _dies_on_kmeans(X, y, name, k, fit, val, test, settings):
    if name == "kmeans":
        os._exit(3)
    return _fit_model(X, y, name, k, fit, val, test, settings)


def _tasks(chunks, models):
    X, y, meta = chunks
    idx = np.arange(len(y))
    return [(m, 0, idx[::2], idx[1::4], idx[3::4]) for m in models]


def _settings(chunks):
    return {"T": chunks[0].shape[1], "epochs": 1, "patience": 1, "units": (8,),
            "fcn_filters": (8, 16, 8), "batch_size": 32, "ae_epochs": 1,
            "validation_size": 0.2, "random_state": 0, "verbose": 0, "keep_models": False}


def test_an_error_in_a_worker_names_the_fit_and_stops_the_rest(chunks):
    X, y, _ = chunks
    start = time.perf_counter()
    with pytest.raises(ValueError, match="kmeans broke") as info:
        # lstm starts first (the order puts the networks first) and would sleep 60 s
        _fit_in_processes(X, y, _tasks(chunks, ("kmeans", "lstm")), _settings(chunks), 2,
                          fit=_fails_on_kmeans)
    assert time.perf_counter() - start < 30
    assert "while fitting 'kmeans' on fold 0" in "\n".join(getattr(info.value, "__notes__", []))


def test_a_worker_that_dies_is_reported_and_the_next_call_works(chunks):
    X, y, _ = chunks
    with pytest.raises(TerminatedWorkerError):
        _fit_in_processes(X, y, _tasks(chunks, ("kmeans", "iforest")), _settings(chunks), 2,
                          fit=_dies_on_kmeans)
    out = _fit_in_processes(X, y, _tasks(chunks, ("iforest", "majority")), _settings(chunks), 2)
    assert [row["model"] for row, *_ in out] == ["iforest", "majority"]


def test_a_serial_error_names_the_fit_too():
    # k-means with 4 centres on 3 training chunks
    X, y, meta = experiment_chunks(make_experiments(4, 90, random_state=0), T=30,
                                   calendar=False)
    with pytest.raises(ValueError, match="n_clusters") as info:
        run_chunk_study(X, y, meta, models=("majority", "kmeans"), n_splits=2)
    assert "while fitting 'kmeans' on fold 0" in "\n".join(getattr(info.value, "__notes__", []))


def _tf_threads_here(X, y, name, k, fit, val, test, settings):
    import tensorflow as tf

    time.sleep(0.3)  # both workers get a task
    float(tf.reduce_sum(tf.ones(3)))  # TensorFlow's thread pools start here
    return (tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads())


@pytest.fixture
def fresh_workers():
    get_reusable_executor().shutdown(wait=True)
    yield
    get_reusable_executor().shutdown(wait=True)


def test_workers_take_the_callers_tensorflow_threads_or_refuse(chunks, fresh_workers,
                                                               monkeypatch):
    X, y, _ = chunks
    tasks = _tasks(chunks, ("lstm",) * 4)
    monkeypatch.setattr(chunk_study, "_tf_threads", lambda: (1, 1))
    assert _fit_in_processes(X, y, tasks, _settings(chunks), 2, fit=_tf_threads_here) == \
        [(1, 1)] * 4
    # the same workers, kept by joblib, cannot change their counts once TensorFlow ran
    monkeypatch.setattr(chunk_study, "_tf_threads", lambda: (2, 2))
    with pytest.raises(RuntimeError, match=r"reused worker process runs TensorFlow on \(1, 1\)"):
        _fit_in_processes(X, y, tasks, _settings(chunks), 2, fit=_tf_threads_here)
