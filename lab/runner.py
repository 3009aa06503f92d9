"""Headless notebook runs: planning, papermill execution, run directories, tracking.

``lab run`` goes through three steps, and every user error is raised in the
first one, before any kernel starts:

1. :func:`plan` resolves the target (notebook number or path, experiment name,
   ``all``), reads the parameter files, and checks and types every parameter;
2. :func:`execute` runs one notebook with papermill into a run directory that
   is written under a hidden temporary name and renamed when done, whatever
   the outcome, with ``run.json`` saying ``completed``, ``failed`` or
   ``interrupted``;
3. :func:`track` logs the finished run to MLflow (a SQLite store under the
   runs directory unless ``MLFLOW_TRACKING_URI`` says otherwise; off with
   ``LAB_TRACKING=off``).

:func:`run` ties them together, sequentially, in worker processes or on a
dask.distributed cluster.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
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
from lab.notebook import Notebook, ParameterError, find_notebooks, read_notebook, resolve_parameters
from lab.progress import RunProgress
from lab.tracking import METRICS_FILE, _atomic_write_json, read_metrics

__all__ = [
    "LabError",
    "RunResult",
    "RunSpec",
    "execute",
    "is_headless",
    "list_runs",
    "plan",
    "run",
    "track",
    "tracking_enabled",
]

#: Packages whose versions every run.json records.
KEY_PACKAGES = (
    "lab", "numpy", "pandas", "scipy", "scikit-learn", "tslearn", "keras", "tensorflow",
    "plotly", "bokeh", "papermill", "dask", "distributed", "mlflow",
)
#: Statuses a run directory can end in.
STATUSES = ("completed", "failed", "interrupted")
# Kernel environment defaults, overridden by the user's environment: TensorFlow's
# C++ start-up chatter (CPU features, CUDA probing, graph notes) would otherwise fill the
# console; Python errors still raise.
_KERNEL_ENV_DEFAULTS = {"TF_CPP_MIN_LOG_LEVEL": "3"}
#: Seconds the report and tracking helper gets to log the finished runs after
#: an error or Ctrl-C before it is stopped.
HELPER_GRACE_S = 30.0
_PARTIAL = ".partial"


class LabError(Exception):
    """A user error (bad target, parameter, file or output directory)."""


def is_headless() -> bool:
    """Return True inside a run started by ``lab run`` (papermill, no browser).

    Notebooks use it to skip interactive-only parts such as widgets.

    Examples
    --------
    >>> isinstance(is_headless(), bool)
    True
    """
    return bool(os.environ.get(config.RUN_DIR_ENV))


def tracking_enabled() -> bool:
    """Whether runs are logged to MLflow (``LAB_TRACKING`` is not ``off``).

    Examples
    --------
    >>> isinstance(tracking_enabled(), bool)
    True
    """
    return os.environ.get(config.TRACKING_ENV, "on").strip().lower() not in {"off", "0", "false", "no"}


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
def execute(spec: RunSpec, out_root: str | Path, *, progress: bool | RunProgress = False,
            report=None) -> RunResult:
    """Execute one notebook into ``out_root/<experiment>/<UTC timestamp>-<id>/``.

    The directory is written as ``.<name>.partial`` and renamed at the end,
    whatever the outcome; ``run.json`` records the status. A failing cell
    gives status ``failed`` (the partial notebook is kept); Ctrl-C gives
    ``interrupted`` and re-raises ``KeyboardInterrupt``. ``report`` is a
    callable ``(notebook, html, show_code)`` that writes the HTML report
    (default: :func:`_write_report` in this process; :func:`run` passes its
    helper process, where nbconvert is already loaded). ``progress`` is a
    :class:`lab.progress.RunProgress` to show on the console (True: papermill's
    bar of cells).
    """
    import papermill as pm

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
    }
    _atomic_write_json(tmp / "params.json", spec.resolved_parameters())
    _atomic_write_json(tmp / "run.json", info)
    t0 = time.perf_counter()
    status, error, interrupted = "completed", None, False
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
    except KeyboardInterrupt:
        status, error, interrupted = "interrupted", "interrupted by the user (Ctrl-C)", True
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
    if (tmp / "notebook.ipynb").exists() and not interrupted:
        with contextlib.suppress(Exception):
            (report or _write_report)(tmp / "notebook.ipynb", tmp / "report.html", spec.show_code)
    metrics_path = tmp / METRICS_FILE
    metrics = read_metrics(tmp)
    if not metrics_path.exists():
        _atomic_write_json(metrics_path, {})
    info.update(status=status, error=error, finished=datetime.now(UTC).isoformat(),
                seconds=round(seconds, 3))
    _atomic_write_json(tmp / "run.json", info)
    os.replace(tmp, final)
    result = RunResult(final, status, spec, error, metrics, seconds)
    if interrupted:
        raise KeyboardInterrupt(str(final))
    return result


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

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            await super()._async_cleanup_resources(restart=restart)
            if not restart:
                shutil.rmtree(getattr(self, "_ipc_dir", ""), ignore_errors=True)

        # nbclient calls cleanup_resources (not shutdown_kernel) when the kernel
        # died; AsyncKernelManager binds that name to the base class's method.
        cleanup_resources = _async_cleanup_resources

    return _EnvKernelManager


def _write_report(notebook: Path, html: Path, show_code: bool) -> None:
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    body, _ = _html_exporter(show_code).from_notebook_node(nb)
    tmp = html.with_suffix(".html.tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, html)


@functools.cache
def _html_exporter(show_code: bool):
    """One exporter per setting, reused: its first export compiles the templates (about 1 s)."""
    from nbconvert import HTMLExporter

    return HTMLExporter(exclude_input=not show_code, exclude_input_prompt=not show_code,
                        exclude_output_prompt=True)


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


# -------------------------------------------------------------------------- track
def tracking_uri(out_root: str | Path) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a SQLite store ``<out_root>/mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(out_root).absolute() / 'mlflow.db'}"


def _mlflow_client(out_root: Path):
    import logging

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri(out_root))


def track(run_dir: str | Path, out_root: str | Path, client=None) -> str | None:
    """Log a finished run directory to MLflow: parameters, numeric metrics, report and notebook.

    Everything comes from the directory's JSON files, so a separate process
    can do it (see :func:`run`). Returns the MLflow run id, or None when
    tracking is off.
    """
    if not tracking_enabled():
        return None
    from mlflow.entities import Metric, Param, RunTag

    run_dir, out_root = Path(run_dir), Path(out_root).absolute()
    client = client or _mlflow_client(out_root)
    info = _read_json(run_dir / "run.json")
    name = info.get("experiment", run_dir.parent.name)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        artifacts = None
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            artifacts = (out_root / "mlartifacts").as_uri()
        exp_id = client.create_experiment(name, artifact_location=artifacts)
    else:
        exp_id = exp.experiment_id
    status = info.get("status", "failed")
    mlrun = client.create_run(exp_id, run_name=run_dir.name, tags={
        "lab.notebook": str(info.get("notebook")),
        "lab.status": status,
        "lab.smoke": str(info.get("smoke")),
        "lab.run_dir": str(run_dir),
        "mlflow.source.git.commit": str(info.get("git", {}).get("commit")),
    })
    now = int(time.time() * 1000)
    params = [Param(k, json.dumps(v)[:6000]) for k, v in _read_json(run_dir / "params.json").items()]
    metrics = [
        Metric(k, float(v), now, 0)
        for k, v in read_metrics(run_dir).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    metrics.append(Metric("run_seconds", float(info.get("seconds") or 0.0), now, 0))
    client.log_batch(mlrun.info.run_id, metrics=metrics, params=params,
                     tags=[RunTag("lab.error", (info.get("error") or "")[:5000])])
    for fname in ("report.html", "notebook.ipynb", "metrics.json", "params.json", "run.json"):
        if (run_dir / fname).exists():
            client.log_artifact(mlrun.info.run_id, str(run_dir / fname))
    client.set_terminated(mlrun.info.run_id,
                          status={"completed": "FINISHED", "failed": "FAILED"}.get(status, "KILLED"))
    info["mlflow_run_id"] = mlrun.info.run_id
    _atomic_write_json(run_dir / "run.json", info)
    return mlrun.info.run_id


class _Helper:
    """The helper process ``python -m lab.runner``, seen from :func:`run`.

    It is started before any notebook executes, so that loading nbconvert
    and MLflow and opening the MLflow store (seconds of CPU) happen on
    another core while the kernel works, not after it. It then writes each
    HTML report (one request, one reply) and logs each finished run to
    MLflow, one run after the other, so a SQLite store is never written
    concurrently. :meth:`close` waits until every run is logged.
    """

    def __init__(self, out: Path, *, track: bool, report: set[bool], experiments: list[str]) -> None:
        """``report`` holds the ``show_code`` settings of the reports to write (none: no reports)."""
        self.tracking, self.reporting = track, bool(report)
        argv = [sys.executable, "-m", "lab.runner", str(out)]
        argv += ["--track"] * track
        for show_code in sorted(report):
            argv += ["--report", "show-code" if show_code else "hide-code"]
        for name in experiments:
            argv += ["--experiment", name]
        env = dict(os.environ)
        # MLflow's usage telemetry would try the network (there is none in
        # runs) and wait on it at exit; an explicit user setting still wins.
        env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        # A remote store that is down would otherwise be retried for minutes
        # (7 retries with backoff) before the run's warning.
        env.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)

    def _send(self, **request: Any) -> bool:
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except (OSError, ValueError):  # the helper died: callers fall back or warn
            return False
        return True

    def report(self, notebook: Path, html: Path, show_code: bool) -> None:
        """Write ``html`` in the helper; in this process if the helper cannot."""
        if self.reporting and self._send(op="report", notebook=str(notebook), html=str(html),
                                         show_code=show_code):
            if self.proc.stdout.readline().strip() == "ok":
                return
        _write_report(notebook, html, show_code)

    def track(self, run_dir: Path) -> None:
        """Queue ``run_dir`` for MLflow; logged while the next run executes."""
        if self.tracking and not self._send(op="track", run_dir=str(run_dir)):
            print(f"warning: MLflow tracking failed for {run_dir}: helper process exited",
                  file=sys.stderr)

    def close(self, timeout: float | None = None) -> None:
        """Wait until every queued run is logged (at most ``timeout`` seconds, then kill)."""
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            print(f"warning: the lab.runner helper process did not finish within {timeout:g} s "
                  "and was stopped; runs may be missing from MLflow", file=sys.stderr)
            return
        if self.proc.returncode != 0:
            print(f"warning: the lab.runner helper process exited with status {self.proc.returncode}"
                  + ("; runs may be missing from MLflow" if self.tracking else ""), file=sys.stderr)
        self.proc.stdout.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


def _helper_main(argv: list[str]) -> int:
    """``python -m lab.runner OUT [--track] [--report {hide,show}-code]... [--experiment NAME]...``.

    Reads JSON requests from stdin, one per line: ``{"op": "report",
    "notebook", "html", "show_code"}`` (answered ``ok`` or ``error`` on
    stdout) and ``{"op": "track", "run_dir"}`` (not answered; failures are
    warnings on stderr, since tracking must never lose a finished run).
    """
    import argparse
    import signal

    # The parent decides when this process ends (Ctrl-C in a terminal reaches
    # the whole process group): it is killed, or its stdin closes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ap = argparse.ArgumentParser(prog="python -m lab.runner")
    ap.add_argument("out", type=Path)
    ap.add_argument("--track", action="store_true")
    ap.add_argument("--report", action="append", default=[], choices=["hide-code", "show-code"])
    ap.add_argument("--experiment", action="append", default=[])
    args = ap.parse_args(argv)
    # Replies go to the original stdout; anything a library prints goes to stderr.
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    _skip_unused_imports()
    # Tracking runs in its own thread, so that a report never waits on MLflow
    # (a remote store that is slow or down retries for minutes).
    pending: queue.Queue = queue.Queue()
    tracker = threading.Thread(target=_tracker_main, args=(args.out, args.experiment, pending),
                               name="lab-tracker") if args.track else None
    if tracker is not None:
        tracker.start()
    if args.report:
        _warm_report([mode == "show-code" for mode in args.report])
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if request["op"] == "report":
            try:
                _write_report(Path(request["notebook"]), Path(request["html"]), request["show_code"])
                replies.write("ok\n")
            except Exception as exc:  # the parent retries in its own process
                replies.write(f"error {type(exc).__name__}: {exc}\n")
            replies.flush()
        elif request["op"] == "track" and tracker is not None:  # sent only with --track
            pending.put(request["run_dir"])
    if tracker is not None:
        pending.put(None)
        tracker.join()
    return 0


def _tracker_main(out: Path, experiments: list[str], pending: queue.Queue) -> None:
    """Log each run directory taken from ``pending`` to MLflow, until ``None``."""
    client, failure = None, ""
    try:
        client = _mlflow_client(out)
        for name in experiments:  # opens the store and compiles its queries
            client.get_experiment_by_name(name)
    except Exception as exc:  # reports are still written; each run gets a warning
        failure = f"cannot open the MLflow store: {type(exc).__name__}: {exc}"
    while (run_dir := pending.get()) is not None:
        try:
            if client is None:
                raise RuntimeError(failure)
            track(run_dir, out, client)
        except Exception as exc:  # tracking must never lose a finished run
            print(f"warning: MLflow tracking failed for {run_dir}: {exc}", file=sys.stderr)


def _warm_report(show_code: list[bool]) -> None:
    """Load nbconvert and compile the report templates on a tiny notebook."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# warm-up"),
                                         nbformat.v4.new_code_cell("1", outputs=[
                                             nbformat.v4.new_output("execute_result", {"text/plain": "1"},
                                                                    execution_count=1)])])
    with contextlib.suppress(Exception):  # the real export will report any problem
        for setting in show_code:
            _html_exporter(setting).from_notebook_node(nb)


def _skip_unused_imports() -> None:
    """Keep jsonschema from importing ``rfc3987_syntax``, which compiles 38 grammars (1.5 s of CPU).

    jsonschema imports it, when installed, only to check the ``iri`` string
    formats of JSON Schema drafts 7 and later; nbformat validates notebooks
    against draft 4 without format checks, so nothing here uses it.
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
        Progress messages go here.

    Returns
    -------
    list of RunResult
        In the order of ``specs``, every run logged to MLflow (unless
        tracking is off) before this returns. One helper process, started
        first so that nbconvert and MLflow load while the notebooks run,
        writes the reports of sequential runs and logs the runs one after the
        other, so a SQLite store is never written concurrently.
    """
    out = check_output_dir(out_root or config.RUNS_DIR)
    if workers < 1:
        raise LabError(f"--workers must be >= 1, got {workers}")
    dask = dask or os.environ.get(config.DASK_ENV) or None
    sequential = dask is None and (workers == 1 or len(specs) < 2)
    helper = None
    if tracking_enabled() or sequential:
        helper = _Helper(out, track=tracking_enabled(),
                         report={s.show_code for s in specs} if sequential else set(),
                         experiments=list(dict.fromkeys(s.experiment for s in specs)))
    try:
        results = _run_all(specs, out, workers, dask, echo, helper)
    except BaseException:
        if helper is not None:
            # Let the helper log the runs that finished before the error or
            # Ctrl-C (it ignores SIGINT); a second Ctrl-C stops it at once.
            try:
                helper.close(timeout=HELPER_GRACE_S)
            finally:
                if helper.proc.poll() is None:
                    helper.kill()
        raise
    if helper is not None:
        helper.close()
    return results


def _run_all(specs: list[RunSpec], out: Path, workers: int, dask, echo,
             helper: _Helper | None = None) -> list[RunResult]:
    results: list[RunResult] = []
    n = len(specs)

    def _done(i: int, res: RunResult) -> None:
        results.append(res)
        if helper is not None:
            helper.track(res.run_dir)
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

        with ProcessPoolExecutor(max_workers=min(workers, n),
                                 mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(execute, s, out) for s in specs]
            for i, fut in enumerate(futures):
                _done(i, fut.result())
    else:
        for i, spec in enumerate(specs):
            echo(f"[{i + 1}/{n}] running     {spec.label()}")
            display = RunProgress(f"[{i + 1}/{n}] {spec.notebook.name}")
            try:
                res = execute(spec, out, progress=display,
                              report=helper.report if helper is not None else None)
            finally:
                display.close()
            _done(i, res)
    return results


# --------------------------------------------------------------------------- runs
def list_runs(out_root: str | Path | None = None, experiment: str | None = None) -> list[dict[str, Any]]:
    """Read every run directory under ``out_root`` (newest last).

    Each entry has ``experiment``, ``id``, ``status``, ``seconds``,
    ``params``, ``metrics`` and ``dir``. Hidden ``.partial`` directories
    (a run still going, or a process that was killed) are listed with status
    ``incomplete``.

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
            info = _read_json(run_dir / "run.json")
            status = info.get("status", "?")
            if run_dir.name.endswith(_PARTIAL):
                status = "incomplete"
            rows.append({
                "experiment": exp_dir.name,
                "id": info.get("id", run_dir.name),
                "status": status,
                "started": info.get("started", ""),
                "seconds": info.get("seconds"),
                "params": _read_json(run_dir / "params.json"),
                "metrics": read_metrics(run_dir),
                "dir": run_dir,
            })
    rows.sort(key=lambda r: r["started"])
    return rows


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


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


if __name__ == "__main__":
    _status = _helper_main(sys.argv[1:])
    # Every run is logged and committed: skip the interpreter's teardown of
    # MLflow and SQLAlchemy (about a second that the parent would wait for).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_status)
