"""The MLflow tracking store of a runs directory: where it is, its lock, and logging a run.

Every finished ``lab run`` is logged here by :func:`track`, from the files of
its run directory only (``run.json``, ``params.json``, ``metrics.json``, the
report and notebook), to a SQLite store ``<runs>/mlflow.db`` unless
``MLFLOW_TRACKING_URI`` names another one. ``LAB_TRACKING=off`` turns it off.
:func:`store_lock` serialises the processes that write to one store; the EDF
workflow (``lab train``, ``lab predict``) logs its runs through the same
client and lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from lab import config
from lab.tracking import atomic_write_json, read_json, read_metrics

__all__ = [
    "EXPERIMENT_KIND",
    "EXPERIMENT_KIND_TAG",
    "MLFLOW_STATUS",
    "mlflow_client",
    "store_lock",
    "track",
    "tracking_enabled",
    "tracking_uri",
]

#: MLflow experiment tag, and value, that makes MLflow 3's UI open an experiment on its
#: runs table ("Machine learning") rather than on the GenAI traces page.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
#: MLflow run status for each status of a run directory (``lab.runner.STATUSES``).
MLFLOW_STATUS = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED",
                 "killed": "KILLED"}


def tracking_enabled() -> bool:
    """Whether runs are logged to MLflow (``LAB_TRACKING`` is not ``off``).

    Returns
    -------
    bool
        False when ``LAB_TRACKING`` is ``off``, ``0``, ``false`` or ``no`` (any case).

    Examples
    --------
    >>> isinstance(tracking_enabled(), bool)
    True
    """
    return os.environ.get(config.TRACKING_ENV, "on").strip().lower() not in {"off", "0", "false", "no"}


def tracking_uri(out_root: str | Path) -> str:
    """The tracking store of a runs directory: ``MLFLOW_TRACKING_URI`` if set, else SQLite.

    Parameters
    ----------
    out_root : path
        The runs directory.

    Returns
    -------
    str
        ``$MLFLOW_TRACKING_URI``, or ``sqlite:///<out_root>/mlflow.db`` (absolute).

    Examples
    --------
    >>> import os
    >>> uri = tracking_uri("/tmp/runs")
    >>> uri == os.environ.get("MLFLOW_TRACKING_URI", "sqlite:////tmp/runs/mlflow.db")
    True
    """
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(out_root).absolute() / 'mlflow.db'}"


@contextlib.contextmanager
def store_lock(out_root: Path) -> Iterator[None]:
    """Hold an exclusive lock on the tracking store of ``out_root`` (all processes on this host).

    MLflow creates a new SQLite store's schema on first use, and two
    processes doing that at once fail ("duplicate column name"); later
    writes from several processes can meet "database is locked". One run is
    logged at a time, so the lock is short.

    Parameters
    ----------
    out_root : Path
        The runs directory whose tracking store is locked.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d, store_lock(Path(d)):
    ...     pass
    """
    import fcntl

    db = _sqlite_path(tracking_uri(out_root))
    path = Path(out_root) / ".mlflow.lock" if db is None else db.with_name(db.name + ".lock")
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def mlflow_client(out_root: Path):
    """An ``MlflowClient`` on the tracking store of ``out_root``, its schema created under the lock.

    A new SQLite store is built under a hidden name and renamed into place, so a
    process killed while MLflow creates it leaves no half-made store.

    Parameters
    ----------
    out_root : Path
        The runs directory (its ``mlflow.db`` unless ``MLFLOW_TRACKING_URI`` is set).

    Returns
    -------
    mlflow.tracking.MlflowClient

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     type(mlflow_client(Path(d))).__name__
    'MlflowClient'
    """
    import logging

    # MLflow's usage telemetry would try the network (there is none in runs)
    # and wait on it at exit; a remote store that is down would be retried for
    # minutes (7 retries with backoff). An explicit user setting wins.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    from mlflow.tracking import MlflowClient

    for name in ("mlflow", "alembic"):  # after the import, which sets mlflow's level
        logging.getLogger(name).setLevel(logging.WARNING)

    uri = tracking_uri(out_root)
    with store_lock(out_root):
        db = _sqlite_path(uri)
        if db is not None:
            _create_sqlite_store(db)
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)  # migrations of an older store, under the lock
    return client


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI; None for any other store."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def _create_sqlite_store(db: Path) -> None:
    """Create the SQLite store ``db`` if it is missing: built under another name, then renamed.

    MLflow builds a new store's schema in a few dozen migrations (about 2 s on 2 cores). A
    process killed among them (``lab run`` warms the store up while its first notebook
    starts, and a SIGKILL can come then) used to leave a store that every later use refused
    ("table spans already exists"). Renamed into place when whole, the store is complete or
    absent. Called under :func:`store_lock`, so a partial file found here is a dead process's.
    """
    from mlflow.tracking import MlflowClient

    for stale in db.parent.glob(f".{db.name}.*.partial"):
        stale.unlink(missing_ok=True)
    if db.exists():
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    tmp = db.with_name(f".{db.name}.{os.getpid()}.partial")
    try:
        MlflowClient(tracking_uri=f"sqlite:///{tmp}").search_experiments(max_results=1)
        os.replace(tmp, db)
    finally:
        tmp.unlink(missing_ok=True)


def _ms(iso: str | None, default: float) -> int:
    """Milliseconds since the epoch of an ISO time stamp (``default`` seconds if missing)."""
    try:
        return int(datetime.fromisoformat(iso).timestamp() * 1000)
    except (TypeError, ValueError):
        return int(default * 1000)


def track(run_dir: str | Path, out_root: str | Path, client=None) -> str | None:
    """Log a finished run directory to MLflow: parameters, numeric metrics, report and notebook.

    Everything comes from the directory's JSON files. The MLflow run gets the
    run's own start and end times and status (``completed``: FINISHED,
    ``failed``: FAILED, ``interrupted`` and ``killed``: KILLED). New
    experiments are tagged as machine-learning experiments, so MLflow's UI
    opens them on the runs table. Files are hard-linked into a local artifact
    store (copied where that is not possible), so they take disk space once.

    Parameters
    ----------
    run_dir : path
        A finished run directory (``<out_root>/<experiment>/<run>``).
    out_root : path
        The runs directory, whose store is used (:func:`tracking_uri`).
    client : mlflow.tracking.MlflowClient, optional
        An open client on that store (:func:`mlflow_client`); one is made if not given.

    Returns
    -------
    str or None
        The MLflow run id, also written into the directory's ``run.json``
        (``mlflow_run_id``); None when tracking is off.

    Raises
    ------
    Exception
        Whatever MLflow raises; the caller records it (see :func:`lab.runner.run`).

    Examples
    --------
    >>> import json, tempfile
    >>> from lab.tracking import atomic_write_json
    >>> root = Path(tempfile.mkdtemp())
    >>> run = root / "demo" / "r1"
    >>> atomic_write_json(run / "run.json", {"experiment": "demo", "status": "completed"})
    >>> run_id = track(run, root)
    >>> run_id is None or json.loads((run / "run.json").read_text())["mlflow_run_id"] == run_id
    True
    """
    if not tracking_enabled():
        return None
    from mlflow.entities import Metric, Param, RunTag

    run_dir, out_root = Path(run_dir), Path(out_root).absolute()
    client = client or mlflow_client(out_root)
    info = read_json(run_dir / "run.json")
    name = info.get("experiment", run_dir.parent.name)
    status = info.get("status", "failed")
    started = _ms(info.get("started"), time.time())
    finished = _ms(info.get("finished"), time.time())
    with store_lock(out_root):
        exp = client.get_experiment_by_name(name)
        if exp is None:
            artifacts = None
            if not os.environ.get("MLFLOW_TRACKING_URI"):
                artifacts = (out_root / "mlartifacts").as_uri()
            exp_id = client.create_experiment(name, artifact_location=artifacts,
                                              tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        else:
            exp_id = exp.experiment_id
            if EXPERIMENT_KIND_TAG not in exp.tags:
                client.set_experiment_tag(exp_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        mlrun = client.create_run(exp_id, start_time=started, run_name=run_dir.name, tags={
            "lab.notebook": str(info.get("notebook")),
            "lab.status": status,
            "lab.smoke": str(info.get("smoke")),
            "lab.run_dir": str(run_dir),
            "mlflow.source.git.commit": str(info.get("git", {}).get("commit")),
        })
        run_id = mlrun.info.run_id
        params = [Param(k, json.dumps(v)[:6000])
                  for k, v in read_json(run_dir / "params.json").items()]
        metrics = [
            Metric(k, float(v), finished, 0)
            for k, v in read_metrics(run_dir).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        metrics.append(Metric("run_seconds", float(info.get("seconds") or 0.0), finished, 0))
        client.log_batch(run_id, metrics=metrics, params=params,
                         tags=[RunTag("lab.error", (info.get("error") or "")[:5000])])
        _log_files(client, mlrun.info.artifact_uri, run_id, run_dir)
        client.set_terminated(run_id, status=MLFLOW_STATUS.get(status, "FAILED"), end_time=finished)
    info["mlflow_run_id"] = run_id
    info.pop("tracking_error", None)
    atomic_write_json(run_dir / "run.json", info)
    return run_id


def _log_files(client, artifact_uri: str, run_id: str, run_dir: Path) -> None:
    """Hard-link the run's files into a local artifact store; log copies otherwise."""
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    files = [run_dir / f for f in ("report.html", "notebook.ipynb", "metrics.json", "params.json",
                                   "run.json") if (run_dir / f).exists()]
    files += sorted(run_dir.glob("*.parquet"))  # result tables a notebook saved (lab.benchmark)
    target = None
    if artifact_uri.startswith("file:"):
        target = Path(url2pathname(urlparse(artifact_uri).path))
    for src in files:
        try:
            if target is None:
                raise OSError("not a local artifact store")
            target.mkdir(parents=True, exist_ok=True)
            os.link(src, target / src.name)
        except OSError:  # another file system, or a remote store
            client.log_artifact(run_id, str(src))
