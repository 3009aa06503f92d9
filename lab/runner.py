"""Headless notebook runs: planning, papermill execution, run directories, tracking.

``lab run`` goes through three steps, and every user error is raised in the
first one, before any kernel starts:

1. :func:`plan` resolves the target (notebook number or path, experiment name,
   ``all``), reads the parameter files, and checks and types every parameter;
2. :func:`execute` runs one notebook with papermill into a run directory that
   is written under a hidden temporary name and renamed when done, whatever
   the outcome, with ``run.json`` saying ``completed``, ``failed`` or
   ``interrupted`` (Ctrl-C or SIGTERM); a run whose process was killed
   outright is found by :func:`list_runs` and marked ``killed``;
3. :func:`lab.mlflow_store.track` logs the finished run to MLflow (a SQLite store under the
   runs directory unless ``MLFLOW_TRACKING_URI`` says otherwise; off with
   ``LAB_TRACKING=off``), with the run's own status and times.

:func:`run` ties them together, sequentially, in worker processes or on a
dask.distributed cluster.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from lab import config
from lab.experiments import (
    Experiment,
    ExperimentError,
    find_experiments,
    load_experiment,
    load_yaml,
)
from lab.kernel_output import KERNEL_ARGS
from lab.mlflow_store import (  # noqa: F401 (constants and tracking_uri: re-exported, see below)
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    MLFLOW_STATUS,
    mlflow_client,
    store_lock,
    track,
    tracking_enabled,
    tracking_uri,
)
from lab.notebook import Notebook, ParameterError, find_notebooks, read_notebook, resolve_parameters
from lab.progress import RunProgress
from lab.report import EXPORT_LOCK, html_exporter, write_report
from lab.tracking import METRICS_FILE, atomic_write_json, read_json, read_metrics

# EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, MLFLOW_STATUS and tracking_uri stay importable from
# here for code written before they moved to lab.mlflow_store; the rest of lab imports them there.
__all__ = [
    "LabError",
    "RunInterrupted",
    "RunResult",
    "RunSpec",
    "execute",
    "format_times",
    "is_headless",
    "list_runs",
    "mlflow_client",
    "plan",
    "run",
    "skip_unused_imports",
    "store_lock",
    "track",
    "tracking_enabled",
]

#: Packages whose versions every run.json records.
KEY_PACKAGES = (
    "lab", "numpy", "pandas", "scipy", "scikit-learn", "tslearn", "keras", "tensorflow",
    "plotly", "bokeh", "papermill", "dask", "distributed", "mlflow",
)
#: Statuses a run directory can end in (``killed``: set by :func:`list_runs` for a run
#: whose process is gone without finishing it, e.g. after SIGKILL).
STATUSES = ("completed", "failed", "interrupted", "killed")
# Kernel environment defaults, overridden by the user's environment: TensorFlow's
# C++ start-up chatter (CPU features, CUDA probing, graph notes) would otherwise fill the
# console; Python errors still raise.
_KERNEL_ENV_DEFAULTS = {"TF_CPP_MIN_LOG_LEVEL": "3"}
_PARTIAL = ".partial"



class LabError(Exception):
    """A user error (bad target, parameter, file or output directory)."""


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that a run ends as after Ctrl-C."""

    signum = signal.SIGTERM


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a run; ``result`` is the finished ``interrupted`` run.

    ``str()`` is the run directory; ``signum`` is ``signal.SIGINT`` or
    ``signal.SIGTERM``.
    """

    def __init__(self, result: RunResult, signum: int) -> None:
        super().__init__(str(result.run_dir))
        self.result, self.signum = result, signum

    def __reduce__(self):  # raised in worker processes too, and sent back
        return type(self), (self.result, self.signum)


def is_headless() -> bool:
    """Return True inside a run started by ``lab run`` (papermill, no browser).

    Notebooks use it to skip interactive-only parts such as widgets.

    Examples
    --------
    >>> isinstance(is_headless(), bool)
    True
    """
    return bool(os.environ.get(config.RUN_DIR_ENV))


@dataclass
class RunSpec:
    """One notebook execution, fully resolved and checked."""

    notebook: Notebook
    experiment: str
    parameters: dict[str, Any]
    smoke: bool = False
    show_code: bool = False
    target: str = ""

    def resolved_parameters(self) -> dict[str, Any]:
        """Defaults updated by the overrides: what the notebook will see."""
        return {**self.notebook.defaults(), **self.parameters}

    def label(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.parameters.items())
        return f"{self.experiment}" + (f" ({shown})" if shown else "")


@dataclass
class RunResult:
    """Where a run landed and how it ended."""

    run_dir: Path
    status: str
    spec: RunSpec
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    #: Why the run is not in MLflow although tracking is on (None: logged, or tracking off).
    tracking_error: str | None = None


# --------------------------------------------------------------------------- plan
def plan(
    target: str,
    overrides: dict[str, str] | None = None,
    params_file: str | Path | None = None,
    *,
    smoke: bool = False,
    show_code: bool = False,
    notebooks_dir: str | Path | None = None,
    experiments_dir: str | Path | None = None,
) -> list[RunSpec]:
    """Resolve ``target`` and check every parameter; start nothing.

    Parameters
    ----------
    target : str
        A notebook number (``"01"`` or ``"1"``), a notebook path, an
        experiment name (``experiments/<name>.yaml``), or ``"all"`` (every
        numbered notebook with its defaults).
    overrides : dict of str to str, optional
        ``-p NAME=VALUE`` pairs; parsed to the declared types.
    params_file : path, optional
        A YAML mapping of parameters (``-f``); ``-p`` wins over it.
    smoke : bool
        Apply the notebooks' declared smoke parameters.
    show_code : bool
        Keep code cells in the HTML report.

    Returns
    -------
    list of RunSpec
        One per notebook execution (several for ``all`` and for grids).

    Raises
    ------
    LabError
        Naming the unknown target (with the valid ones), the bad parameter
        (with its type or the valid names), or the unreadable file and line.

    Examples
    --------
    >>> [s.parameters for s in plan("00", {"trading_days": "250"})]
    [{'trading_days': 250}]
    """
    nb_dir = Path(notebooks_dir or config.NOTEBOOKS_DIR)
    ex_dir = Path(experiments_dir or config.EXPERIMENTS_DIR)
    overrides = dict(overrides or {})
    try:
        file_params = {}
        if params_file is not None:
            file_params = load_yaml(params_file) or {}
            if not isinstance(file_params, dict):
                raise LabError(f"{params_file}: expected a mapping of parameter names to values")
        jobs = _resolve_target(target, nb_dir, ex_dir)
        specs = []
        for notebook, experiment in jobs:
            combos = experiment.combinations() if experiment else [{}]
            name = experiment.name if experiment else notebook.name
            for combo in combos:
                params: dict[str, Any] = {}
                if experiment:
                    params.update(resolve_parameters(notebook, experiment.parameters,
                                                     source=str(experiment.path)))
                if smoke:
                    params.update(notebook.smoke)
                if experiment and experiment.grid:
                    params.update(resolve_parameters(
                        notebook, {k: combo[k] for k in experiment.grid},
                        source=f"{experiment.path} grid"))
                params.update(resolve_parameters(notebook, file_params, source=str(params_file)))
                params.update(resolve_parameters(notebook, overrides, source="-p"))
                specs.append(RunSpec(notebook, name, params, smoke, show_code, target))
        return specs
    except (ParameterError, ExperimentError) as exc:
        raise LabError(str(exc)) from None


def _resolve_target(target: str, nb_dir: Path, ex_dir: Path) -> list[tuple[Notebook, Experiment | None]]:
    numbered = find_notebooks(nb_dir)
    experiments = find_experiments(ex_dir)
    if target == "all":
        if not numbered:
            raise LabError(f"no numbered notebooks in {nb_dir}")
        return [(read_notebook(p), None) for p in numbered.values()]
    if re.fullmatch(r"\d{1,2}", target):
        key = f"{int(target):02d}"
        if key in numbered:
            return [(read_notebook(numbered[key]), None)]
    path = Path(target)
    if target.endswith(".ipynb"):
        for candidate in (path, nb_dir / path.name):
            if candidate.is_file():
                return [(read_notebook(candidate), None)]
        raise LabError(f"notebook {target} not found")
    if target in experiments:
        exp = load_experiment(experiments[target])
        return [(_experiment_notebook(exp, numbered, nb_dir), exp)]
    valid = ["all", *numbered, *(p.name for p in numbered.values()), *experiments]
    raise LabError(f"unknown target {target!r}; valid targets: {', '.join(valid)}")


def _experiment_notebook(exp: Experiment, numbered: dict[str, Path], nb_dir: Path) -> Notebook:
    ref = exp.notebook
    if re.fullmatch(r"\d{1,2}", ref) and f"{int(ref):02d}" in numbered:
        return read_notebook(numbered[f"{int(ref):02d}"])
    for candidate in (Path(ref), nb_dir / ref):
        if candidate.is_file():
            return read_notebook(candidate)
    raise LabError(f"{exp.path}: notebook {ref!r} not found; numbered notebooks: {', '.join(numbered)}")


def check_output_dir(out: str | Path) -> Path:
    """Create ``out`` if needed and prove it is writable, before any execution.

    Raises
    ------
    LabError
        If the directory cannot be created or written.
    """
    out = Path(out).absolute()
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise LabError(f"cannot write to output directory {out}: {exc.strerror or exc}") from None
    return out


# ------------------------------------------------------------------------ execute
def _interruptible_worker() -> None:
    """Let Ctrl-C interrupt a grid worker, even when ``lab`` was started with SIGINT ignored.

    A shell without job control starts background commands (``nohup lab run all &`` in a
    script) with SIGINT ignored, and children inherit that; the SIGTERM relay below sends
    SIGINT to the workers, which must then raise ``KeyboardInterrupt``.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)


def execute(spec: RunSpec, out_root: str | Path, *,
            progress: bool | RunProgress = False) -> RunResult:
    """Execute one notebook into ``out_root/<experiment>/<UTC timestamp>-<id>/``.

    The directory is written as ``.<name>.partial`` and renamed at the end,
    whatever the outcome; ``run.json`` records the status and the process
    that runs it (pid, host, start time), so that :func:`list_runs` can tell a
    run whose process was killed. A failing cell gives status ``failed`` (the
    partial notebook is kept); Ctrl-C (or SIGTERM while :func:`run` runs)
    gives ``interrupted`` and raises :class:`RunInterrupted`. plotly.js is
    stored once per ``out_root`` (see :func:`lab.report.share_plotlyjs`). ``progress`` is a
    :class:`lab.progress.RunProgress` to show on the console (True: papermill's
    bar of cells).
    """
    import papermill as pm

    for name in ("asyncio", "papermill", "nbclient", "traitlets"):
        logger = logging.getLogger(name)
        if _KILLED_KERNEL not in logger.filters:
            logger.addFilter(_KILLED_KERNEL)

    started = datetime.now(UTC)
    run_id = f"{started:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    parent = Path(out_root).absolute() / spec.experiment
    parent.mkdir(parents=True, exist_ok=True)
    final = parent / run_id
    tmp = parent / f".{run_id}{_PARTIAL}"
    tmp.mkdir()
    info: dict[str, Any] = {
        "id": run_id,
        "experiment": spec.experiment,
        "notebook": spec.notebook.path.name,
        "target": spec.target,
        "smoke": spec.smoke,
        "status": "running",
        "started": started.isoformat(),
        "git": _git_info(),
        "versions": _versions(),
        "python": sys.version.split()[0],
        "process": _process_identity(),
    }
    atomic_write_json(tmp / "params.json", spec.resolved_parameters())
    atomic_write_json(tmp / "run.json", info)
    t0 = time.perf_counter()
    status, error, signum = "completed", None, None
    try:
        pm.execute_notebook(
            str(spec.notebook.path),
            str(tmp / "notebook.ipynb"),
            parameters=spec.parameters,
            kernel_name="python3",
            cwd=str(spec.notebook.path.parent),
            progress_bar=progress is True,
            log_output=False,
            request_save_on_cell_execute=True,
            kernel_manager_class=_kernel_manager_with_env({config.RUN_DIR_ENV: str(tmp)}),
            # progress bars drawn with \r show their final state in the report
            coalesce_streams=True,
            **(progress.engine_kwargs() if isinstance(progress, RunProgress) else {}),
        )
    except KeyboardInterrupt as exc:
        status, (signum, error) = "interrupted", _interruption(exc)
    except pm.PapermillExecutionError as exc:
        status = "failed"
        number = _original_cell_number(tmp / "notebook.ipynb", exc.cell_index)
        head = (exc.source or "").strip().splitlines()[:1]
        error = (
            f"cell {number} of {spec.notebook.path.name} (counting from 1"
            f"{', first line ' + repr(head[0]) if head else ''}) raised {exc.ename}: {exc.evalue}"
        )
        info["failed_cell"] = {"number": number, "execution_count": exc.exec_count,
                               "ename": exc.ename, "evalue": exc.evalue}
    except Exception as exc:  # kernel death, bad notebook, ...: still a finished directory
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - t0
    if (tmp / "notebook.ipynb").exists():
        try:
            write_report(tmp / "notebook.ipynb", None if signum else tmp / "report.html",
                          spec.show_code)
        except KeyboardInterrupt as exc:  # the notebook ran, its report did not
            status, (signum, error) = "interrupted", _interruption(exc)
        except Exception:  # noqa: S110 - the run's own status says what matters
            pass
    metrics_path = tmp / METRICS_FILE
    metrics = read_metrics(tmp)
    if not metrics_path.exists():
        atomic_write_json(metrics_path, {})
    info.update(status=status, error=error, finished=datetime.now(UTC).isoformat(),
                seconds=round(seconds, 3))
    atomic_write_json(tmp / "run.json", info)
    os.replace(tmp, final)
    result = RunResult(final, status, spec, error, metrics, seconds)
    if signum is not None:
        raise RunInterrupted(result, signum)
    return result


def _interruption(exc: KeyboardInterrupt) -> tuple[int, str]:
    if isinstance(exc, _Terminated):
        return signal.SIGTERM, "terminated (SIGTERM)"
    return signal.SIGINT, "interrupted by the user (Ctrl-C)"


def _process_identity() -> dict[str, Any]:
    """What tells this process apart from a later one with the same pid."""
    import psutil

    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": psutil.Process().create_time()}


def _process_gone(identity: dict[str, Any]) -> bool:
    """True when the process ``identity`` describes has ended (on this host; elsewhere: False)."""
    import psutil

    if not identity or identity.get("host") != socket.gethostname():
        return False
    try:
        proc = psutil.Process(identity["pid"])
        # A pid is reused by later processes: the start time tells them apart.
        return (abs(proc.create_time() - identity["started"]) > 1.0
                or proc.status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True
    except (psutil.Error, KeyError, TypeError):
        return False


class _KilledKernelNoise(logging.Filter):
    """Drops the log records of a kernel that the runner itself killed after Ctrl-C or SIGTERM.

    The cell waiting on that kernel then ends with ``DeadKernelError``:
    nbclient logs "Kernel died while waiting for execute reply" and asyncio
    "Task exception was never retrieved" with a traceback, though nothing went
    wrong. A kernel that dies on its own fails its run with its own message
    (``run.json`` and the console), and its records pass: the filter acts only
    for a few seconds after the runner killed a kernel.
    """

    window_s = 30.0

    def __init__(self) -> None:
        super().__init__()
        self.started = -math.inf

    def filter(self, record: logging.LogRecord) -> bool:
        if time.monotonic() - self.started > self.window_s:
            return True
        exc = record.exc_info[1] if record.exc_info else None
        return not (type(exc).__name__ == "DeadKernelError"
                    or record.getMessage().startswith("Kernel died while waiting"))


_KILLED_KERNEL = _KilledKernelNoise()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM (a job scheduler's stop) raises in the main thread, as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _original_cell_number(executed: Path, index: int) -> int:
    """1-based number, in the notebook as written, of cell ``index`` of the executed copy.

    papermill inserts an ``injected-parameters`` cell, which the user never saw.
    """
    try:
        cells = json.loads(executed.read_text())["cells"][:index]
    except (OSError, ValueError, KeyError):
        return index + 1
    injected = sum("injected-parameters" in c.get("metadata", {}).get("tags", []) for c in cells)
    return index - injected + 1


def _kernel_manager_with_env(extra: dict[str, str]):
    """A kernel manager class whose kernels get ``extra`` in their environment.

    Passing the run directory this way (not through ``os.environ``) keeps
    concurrent runs in one process, e.g. dask worker threads, apart.
    """
    from jupyter_client.manager import AsyncKernelManager

    class _EnvKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            # IPC sockets in a private directory: the kernel is reachable by this
            # user only, and ipykernel does not warn (once per run) about plain TCP.
            self._ipc_dir = tempfile.mkdtemp(prefix="lab-kernel-")
            self.transport, self.ip = "ipc", os.path.join(self._ipc_dir, "kernel")
            kw["env"] = {**_KERNEL_ENV_DEFAULTS, **os.environ, **kw.get("env", {}), **extra}
            kw["extra_arguments"] = [*kw.get("extra_arguments", []), *KERNEL_ARGS]
            return await super().start_kernel(**kw)

        async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
            # After Ctrl-C or SIGTERM the kernel is killed (with its process group) at
            # once: its state is discarded anyway, and a graceful shutdown of a busy
            # kernel makes ipykernel print a ZMQError traceback (its reply to the
            # interrupted cell races its own closing sockets).
            killing = isinstance(sys.exc_info()[1], KeyboardInterrupt)
            if killing:
                _KILLED_KERNEL.started = time.monotonic()
            await super().shutdown_kernel(now=now or killing, restart=restart)

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            await super()._async_cleanup_resources(restart=restart)
            if not restart:
                shutil.rmtree(getattr(self, "_ipc_dir", ""), ignore_errors=True)

        # nbclient calls cleanup_resources (not shutdown_kernel) when the kernel
        # died; AsyncKernelManager binds that name to the base class's method.
        cleanup_resources = _async_cleanup_resources

    return _EnvKernelManager


def _git_info() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=config.REPO_ROOT,
                                capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=config.REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def _versions() -> dict[str, str | None]:
    out = {}
    for name in KEY_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


class _Tracker:
    """Logs finished runs to MLflow from :func:`run`, one at a time, and says when it cannot.

    ``warm`` holds the ``show_code`` settings of the reports to come: a
    thread then loads MLflow, opens the store and compiles those report
    templates while the first notebook runs (the kernel is another process,
    so this one mostly waits). That is 2 s of CPU that would otherwise follow
    the run (README, Runner Performance).
    """

    def __init__(self, out: Path, echo, warm: set[bool] | None = None) -> None:
        self.out, self.echo, self.client = out, echo, None
        self._warming = threading.Thread(target=self._warm, args=(warm or set(),),
                                         name="lab-warm-up", daemon=True)
        if warm is not None:
            self._warming.start()

    def _warm(self, show_code: set[bool]) -> None:
        import nbformat

        with contextlib.suppress(Exception):  # log() opens the store again and reports the error
            self.client = mlflow_client(self.out)
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1", outputs=[
            nbformat.v4.new_output("execute_result", {"text/plain": "1"}, execution_count=1)])])
        with contextlib.suppress(Exception):  # the real export reports any problem
            for setting in show_code:
                with EXPORT_LOCK:
                    html_exporter(setting).from_notebook_node(nb)

    def log(self, result: RunResult) -> None:
        if self._warming.is_alive():
            self._warming.join()
        try:
            if self.client is None:
                self.client = mlflow_client(self.out)
            track(result.run_dir, self.out, self.client)
        except Exception as exc:  # the run stays complete; its run.json and exit status say so
            result.tracking_error = f"{type(exc).__name__}: {exc}".strip()
            info = read_json(result.run_dir / "run.json")
            info["tracking_error"] = result.tracking_error
            atomic_write_json(result.run_dir / "run.json", info)
            self.echo(f"warning: MLflow tracking failed for {result.run_dir}: {result.tracking_error}")


def skip_unused_imports() -> None:
    """Keep jsonschema from importing ``rfc3987_syntax``, which compiles 38 grammars (1.5 s of CPU).

    jsonschema imports it, when installed, only to check the ``iri`` string
    formats of JSON Schema drafts 7 and later; nbformat validates notebooks
    against draft 4 without format checks, so nothing here uses it. Without
    the skip ``lab run 00 --smoke`` measured 1.26x and 1.58x papermill, over
    or near its 1.3x target (README, Runner Performance). Call it before
    anything imports jsonschema (``lab.cli`` does).

    Examples
    --------
    >>> skip_unused_imports()
    """
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)


# ---------------------------------------------------------------------------- run
def run(
    specs: list[RunSpec],
    out_root: str | Path | None = None,
    *,
    workers: int = 1,
    dask: str | Any | None = None,
    echo=print,
) -> list[RunResult]:
    """Execute ``specs`` and track them; sequential, in processes, or on dask.

    Parameters
    ----------
    specs : list of RunSpec
        From :func:`plan`.
    out_root : path, optional
        Runs directory (default ``lab.config.RUNS_DIR``); checked for write
        access before anything runs.
    workers : int
        Parallel worker processes for several runs.
    dask : str or distributed.Client, optional
        Scheduler address (or client) of an existing dask.distributed cluster;
        defaults to ``$LAB_DASK_SCHEDULER``.
    echo : callable
        Progress messages and warnings go here.

    Returns
    -------
    list of RunResult
        In the order of ``specs``. Each run is logged to MLflow (unless
        tracking is off) by this process as soon as it ends, one after the
        other; a run that could not be logged has ``tracking_error`` set, in
        its ``run.json`` too.

    Raises
    ------
    RunInterrupted
        Ctrl-C, or SIGTERM when called in the main thread: the interrupted
        run is logged (status KILLED) before this raises.
    """
    out = check_output_dir(out_root or config.RUNS_DIR)
    if workers < 1:
        raise LabError(f"--workers must be >= 1, got {workers}")
    dask = dask or os.environ.get(config.DASK_ENV) or None
    # papermill (nbformat, jsonschema) is loaded before the tracker's thread loads
    # MLflow, so that the two threads do not import the same modules at once.
    import papermill  # noqa: F401

    tracker = (_Tracker(out, echo, warm={s.show_code for s in specs})
               if tracking_enabled() else None)
    with _sigterm_as_interrupt():
        return _run_all(specs, out, workers, dask, echo, tracker)


def _run_all(specs: list[RunSpec], out: Path, workers: int, dask, echo,
             tracker: _Tracker | None = None) -> list[RunResult]:
    results: list[RunResult] = []
    n = len(specs)

    def _done(i: int, res: RunResult) -> None:
        results.append(res)
        if tracker is not None:
            tracker.log(res)
        echo(f"[{i + 1}/{n}] {res.status:<11} {res.spec.label()} -> {res.run_dir}")
        if res.error:
            echo(f"        {res.error}")

    if dask is not None:
        from distributed import Client

        client = dask if not isinstance(dask, str) else Client(dask)
        try:
            futures = client.map(execute, specs, out_root=out, pure=False)
            for i, res in enumerate(client.gather(futures)):
                _done(i, res)
        finally:
            if isinstance(dask, str):
                client.close()
    elif workers > 1 and n > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=min(workers, n), mp_context=mp.get_context("spawn"),
                                 initializer=_interruptible_worker) as pool:
            futures = [pool.submit(execute, s, out) for s in specs]
            try:
                for i, fut in enumerate(futures):
                    _done(i, fut.result())
            except KeyboardInterrupt as exc:
                if isinstance(exc, _Terminated):
                    # SIGTERM reached this process only (Ctrl-C in a terminal reaches
                    # the workers too): interrupt the workers' runs as well.
                    for child in mp.active_children():
                        with contextlib.suppress(OSError):
                            os.kill(child.pid, signal.SIGINT)
                # either way the workers' runs end `interrupted`: log them before leaving
                pool.shutdown(cancel_futures=True)
                for j, fut in enumerate(futures[len(results):], start=len(results)):
                    exc = None if fut.cancelled() else fut.exception()
                    if isinstance(exc, RunInterrupted):
                        _done(j, exc.result)
                    elif not fut.cancelled() and exc is None:
                        _done(j, fut.result())
                raise
    else:
        for i, spec in enumerate(specs):
            echo(f"[{i + 1}/{n}] running     {spec.label()}")
            display = RunProgress(f"[{i + 1}/{n}] {spec.notebook.name}")
            try:
                res = execute(spec, out, progress=display)
            except RunInterrupted as exc:
                # Log it before leaving; a second Ctrl-C (or SIGTERM) skips that.
                _done(i, exc.result)
                raise
            finally:
                display.close()
            _done(i, res)
    return results


def format_times(results: list[RunResult]) -> str:
    """A table of each run's wall time and the total, printed at the end of ``lab run``.

    Parameters
    ----------
    results : list of RunResult
        From :func:`run`, in order.

    Returns
    -------
    str
        One line per run (notebook, status, seconds) and a ``total`` line.

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> runs = [NS(spec=NS(notebook=NS(name=n)), status="completed", seconds=s)
    ...         for n, s in (("00-quickstart", 12.3), ("01-mscred-forex", 80.0))]
    >>> print(format_times(runs))
    times:
      00-quickstart    completed     12.3 s
      01-mscred-forex  completed     80.0 s
      total                          92.3 s (1 min 32 s)
    """
    names = [r.spec.notebook.name for r in results]
    width = max([len("total"), *map(len, names)])
    lines = ["times:"]
    for name, r in zip(names, results, strict=True):
        lines.append(f"  {name:<{width}}  {r.status:<10} {r.seconds:8.1f} s")
    total = sum(r.seconds for r in results)
    lines.append(f"  {'total':<{width}}  {'':<10} {total:8.1f} s "
                 f"({int(total // 60)} min {int(round(total % 60))} s)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- runs
def list_runs(out_root: str | Path | None = None, experiment: str | None = None) -> list[dict[str, Any]]:
    """Read every run directory under ``out_root`` (newest last).

    Each entry has ``experiment``, ``id``, ``status``, ``seconds``,
    ``params``, ``metrics`` and ``dir``. A hidden ``.partial`` directory is
    a run still going (status ``running``) or one whose process ended without
    finishing it (SIGKILL, the out-of-memory killer, a reboot):
    that one is marked ``killed`` for good here, its ``run.json`` updated, its
    directory renamed to the final name, and it is logged to MLflow (KILLED)
    when tracking is on. A run started on another host stays ``running``.

    Examples
    --------
    >>> list_runs("/nonexistent")
    []
    """
    root = Path(out_root or config.RUNS_DIR)
    if not root.is_dir():
        return []
    rows = []
    for exp_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if experiment and exp_dir.name != experiment:
            continue
        for run_dir in sorted(exp_dir.iterdir()):
            if not (run_dir / "run.json").is_file():
                continue
            info = read_json(run_dir / "run.json")
            if run_dir.name.endswith(_PARTIAL) and info.get("status") == "running" \
                    and _process_gone(info.get("process", {})):
                run_dir, info = _mark_killed(run_dir, info, root)
            status = info.get("status", "?")
            rows.append({
                "experiment": exp_dir.name,
                "id": info.get("id", run_dir.name),
                "status": status,
                "started": info.get("started", ""),
                "seconds": info.get("seconds"),
                "params": read_json(run_dir / "params.json"),
                "metrics": read_metrics(run_dir),
                "dir": run_dir,
            })
    rows.sort(key=lambda r: r["started"])
    return rows


def _mark_killed(run_dir: Path, info: dict[str, Any], root: Path) -> tuple[Path, dict[str, Any]]:
    """Record that the process of the partial run ``run_dir`` ended without finishing it."""
    proc = info.get("process", {})
    last = max((p.stat().st_mtime for p in run_dir.iterdir()), default=time.time())
    info.update(status="killed", finished=datetime.fromtimestamp(last, UTC).isoformat(),
                error=f"its process (pid {proc.get('pid')} on {proc.get('host')}) ended without "
                      "finishing the run (killed)")
    with contextlib.suppress(ValueError, TypeError):
        info["seconds"] = round(last - datetime.fromisoformat(info["started"]).timestamp(), 3)
    atomic_write_json(run_dir / "run.json", info)
    final = run_dir.with_name(run_dir.name.removeprefix(".").removesuffix(_PARTIAL))
    try:
        os.rename(run_dir, final)  # another `lab runs` may have done it already
    except OSError:
        return run_dir, info
    if tracking_enabled():
        _Tracker(root, lambda msg: print(msg, file=sys.stderr)).log(
            RunResult(final, "killed", None, info["error"]))  # type: ignore[arg-type]
        info = read_json(final / "run.json")
    return final, info


def format_runs(rows: list[dict[str, Any]], max_metrics: int = 4) -> str:
    """A text table of runs: status, the parameters that differ, headline metrics.

    The parameters shown are those whose values differ between the runs of
    the same experiment (a grid's axes, a ``-p`` override); a run alone in its
    experiment shows ``-``.

    Examples
    --------
    >>> print(format_runs([]))
    no runs yet
    >>> rows = [{"experiment": "demo", "id": f"r{i}", "status": "completed", "seconds": 1.0,
    ...          "params": {"n": i, "seed": 0}, "metrics": {"score": i / 4}} for i in (1, 2)]
    >>> print(format_runs(rows))
    experiment  run  status     time  params (differing)  metrics
    demo        r1   completed  1.0s  n=1                 score=0.25
    demo        r2   completed  1.0s  n=2                 score=0.5
    """
    if not rows:
        return "no runs yet"
    # Parameters are compared within an experiment only: two notebooks have
    # different parameters, and listing one's as null beside the other's is noise.
    differing: dict[str, list[str]] = {}
    for name in {r["experiment"] for r in rows}:
        group = [r for r in rows if r["experiment"] == name]
        keys = sorted({k for r in group for k in r["params"]})
        differing[name] = [k for k in keys if len(
            {json.dumps(r["params"].get(k), sort_keys=True) for r in group}) > 1]
    table = []
    for r in rows:
        params = " ".join(f"{k}={json.dumps(r['params'][k])}" for k in differing[r["experiment"]]
                          if k in r["params"])
        nums = [(k, v) for k, v in r["metrics"].items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)][:max_metrics]
        metrics = " ".join(f"{k}={v:.4g}" for k, v in nums)
        secs = f"{r['seconds']:.1f}s" if isinstance(r["seconds"], (int, float)) else "-"
        table.append((r["experiment"], r["id"], r["status"], secs, params or "-", metrics or "-"))
    header = ("experiment", "run", "status", "time", "params (differing)", "metrics")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *table, strict=True)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *table]]
    return "\n".join(lines)


