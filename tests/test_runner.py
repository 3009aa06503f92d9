"""The runner: planning and typing, run directories, failures, interrupts, grids, tracking."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.experiments import ExperimentError, load_experiment
from lab.notebook import Param, ParameterError, coerce_value, parse_parameters_cell
from lab.runner import LabError, execute, format_runs, list_runs, plan, run

FIX = Path(__file__).parent / "fixtures"
NB_DIR, EX_DIR = FIX / "notebooks", FIX / "experiments"
ENV = dict(os.environ, LAB_NOTEBOOKS=str(NB_DIR), LAB_EXPERIMENTS=str(EX_DIR), LAB_TRACKING="off")


def _plan(target, overrides=None, params_file=None, **kw):
    return plan(target, overrides, params_file, notebooks_dir=NB_DIR, experiments_dir=EX_DIR, **kw)


def _cli(*args, timeout=180, env=ENV):
    return subprocess.run([sys.executable, "-m", "lab", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(autouse=True)
def _no_tracking(monkeypatch):
    monkeypatch.setenv("LAB_TRACKING", "off")


# ------------------------------------------------------------------ parameters
def test_parameters_are_typed():
    (spec,) = _plan("10", {"x": "3", "rate": "2", "flag": "yes", "items": "[3, 4]", "name": "7"})
    assert spec.parameters == {"x": 3, "rate": 2.0, "flag": True, "items": [3, 4], "name": "7"}
    assert isinstance(spec.parameters["rate"], float)
    assert spec.resolved_parameters()["sleep"] == 0.0


def test_unknown_parameter_lists_valid_ones():
    with pytest.raises(LabError, match=r"unknown parameter 'nope'.*valid parameters: x, name, rate"):
        _plan("10", {"nope": "1"})


@pytest.mark.parametrize("name,value", [("x", "1.5"), ("flag", "maybe"), ("items", "{a: 1}"),
                                        ("rate", "fast")])
def test_bad_value_names_parameter_and_type(name, value):
    with pytest.raises(LabError, match=rf"parameter '{name}' expects"):
        _plan("10", {name: value})


def test_unknown_target_lists_valid_targets():
    with pytest.raises(LabError, match=r"unknown target 'zz'; valid targets: all, 10, 10-echo.ipynb, "):
        _plan("zz")


def test_targets_by_number_path_experiment_and_all():
    assert _plan("10")[0].experiment == "10-echo"
    assert _plan(str(NB_DIR / "10-echo.ipynb"))[0].notebook.path.name == "10-echo.ipynb"
    grid = _plan("echo-grid")
    assert [s.parameters for s in grid] == [{"name": "grid", "x": 1}, {"name": "grid", "x": 2}]
    assert {s.experiment for s in grid} == {"echo-grid"}
    assert [s.experiment for s in _plan("all")] == ["10-echo"]


def test_smoke_parameters_and_precedence(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("x: 5\nname: from-file\n")
    (spec,) = _plan("10", {"name": "from-cli"}, f, smoke=True)
    assert spec.parameters == {"x": 5, "name": "from-cli"}
    (spec,) = _plan("10", smoke=True)
    assert spec.parameters == {"x": 7}


def test_unreadable_yaml_names_file_and_line(tmp_path):
    with pytest.raises(LabError, match=r"broken\.yaml:\d+: invalid YAML"):
        _plan("broken")
    bad = tmp_path / "p.yaml"
    bad.write_text("x: 1\ny: [\n")
    with pytest.raises(LabError, match=r"p\.yaml:3: invalid YAML"):
        _plan("10", params_file=bad)
    with pytest.raises(LabError, match="wrong-param.yaml: unknown parameter 'nope'"):
        _plan("wrong-param")


def test_experiment_file_checks(tmp_path):
    p = tmp_path / "e.yaml"
    p.write_text("notebook: '10'\ngrid: {x: 3}\n")
    with pytest.raises(ExperimentError, match="non-empty lists"):
        load_experiment(p)
    p.write_text("parameters: {}\n")
    with pytest.raises(ExperimentError, match="missing 'notebook'"):
        load_experiment(p)


_LITERALS = {
    "int": st.integers(-10**6, 10**6),
    "float": st.floats(allow_nan=False, allow_infinity=False, width=64),
    "str": st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
    "bool": st.booleans(),
    "list": st.lists(st.integers(-100, 100) | st.text(max_size=5), max_size=5),
    "dict": st.dictionaries(st.text("abc", min_size=1, max_size=3), st.integers(), max_size=3),
}


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(_LITERALS)).flatmap(lambda t: st.tuples(st.just(t), _LITERALS[t])),
       st.text("abc xyz", max_size=15))
def test_parameters_cell_round_trip(type_and_value, help_text):
    type_name, value = type_and_value
    params = parse_parameters_cell(f"p: {type_name} = {value!r}  # {help_text}")
    assert params["p"] == Param("p", type_name, value, help_text.strip())
    if type_name in ("int", "float", "bool"):
        assert coerce_value(params["p"], str(value)) == value


def test_parameters_cell_rejects_non_literals():
    with pytest.raises(ParameterError, match="line 2: the default of 'b' must be a literal"):
        parse_parameters_cell("a: int = 1\nb: int = a + 1")
    with pytest.raises(ParameterError, match="line 1: expected `name: type = literal"):
        parse_parameters_cell("a = 1")
    with pytest.raises(ParameterError, match="type 'set'"):
        parse_parameters_cell("a: set = 1")
    with pytest.raises(ParameterError, match="expects int"):
        parse_parameters_cell("a: int = 'x'")


# ------------------------------------------------------------------ execution
def test_run_directory_contents(tmp_path):
    (spec,) = _plan("10", {"x": "21"})
    result = execute(spec, tmp_path)
    assert result.status == "completed", result.error
    d = result.run_dir
    assert d.parent == tmp_path / "10-echo"
    assert sorted(p.name for p in d.iterdir()) == [
        "metrics.json", "notebook.ipynb", "params.json", "report.html", "run.json"]
    assert not list(tmp_path.rglob("*.partial"))
    info = json.loads((d / "run.json").read_text())
    assert info["status"] == "completed" and info["seconds"] > 0
    assert info["versions"]["papermill"] and "commit" in info["git"]
    assert json.loads((d / "params.json").read_text())["x"] == 21
    metrics = json.loads((d / "metrics.json").read_text())
    assert metrics == {"x2": 42, "name": "a", "items": [1, 2], "rate": 0.5, "flag": False,
                       "after": 1}
    html = (d / "report.html").read_text()
    assert "OUTPUT-MARKER 21" in html and "boom on purpose" not in html  # no code by default
    assert len(list(tmp_path.glob("10-echo/*"))) == 1


def test_failed_run_names_the_cell(tmp_path):
    proc = _cli("run", "10", "-p", "fail=true", "--out", str(tmp_path))
    assert proc.returncode == 1
    assert "RuntimeError: boom on purpose" in proc.stderr and "cell 4 of 10-echo.ipynb" in proc.stderr
    (run_json,) = tmp_path.rglob("run.json")
    info = json.loads(run_json.read_text())
    assert info["status"] == "failed"
    assert info["failed_cell"]["ename"] == "RuntimeError"
    metrics = json.loads((run_json.parent / "metrics.json").read_text())
    assert metrics["x2"] == 2 and "after" not in metrics
    assert (run_json.parent / "notebook.ipynb").exists()
    assert "boom on purpose" in (run_json.parent / "report.html").read_text()
    assert not list(tmp_path.rglob("*.partial"))


def test_ctrl_c_leaves_interrupted_run(tmp_path):
    # Ctrl-C as at a terminal, even when the tests run under nohup or in a
    # background job, where SIGINT is ignored and children inherit that.
    proc = subprocess.Popen([sys.executable, "-m", "lab", "run", "10", "-p", "sleep=60",
                             "--out", str(tmp_path)], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until the kernel has recorded, i.e. is sleeping
        if list(tmp_path.glob("10-echo/.*.partial/metrics.json")):
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the run never started")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    (run_json,) = tmp_path.rglob("run.json")
    assert json.loads(run_json.read_text())["status"] == "interrupted"
    assert not list(tmp_path.rglob("*.partial"))


def test_bad_inputs_leave_nothing_behind(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = _cli("run", "10", "--out", str(blocker / "runs"))
    assert proc.returncode == 2 and "cannot write to output directory" in proc.stderr
    for args in (["zz"], ["10", "-p", "x=1.5"], ["10", "-p", "nope=1"], ["broken"]):
        proc = _cli("run", *args, "--out", str(tmp_path / "out"))
        assert proc.returncode == 2 and proc.stderr.startswith("lab: error:"), proc.stderr
    assert not (tmp_path / "out").exists()


def test_grid_in_worker_processes(tmp_path):
    proc = _cli("run", "echo-grid", "--workers", "2", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    rows = list_runs(tmp_path, "echo-grid")
    assert sorted(r["metrics"]["x2"] for r in rows) == [2, 4]
    assert {r["status"] for r in rows} == {"completed"}
    table = format_runs(rows)
    assert "x=1" in table and "x=2" in table and "name=" not in table  # only differing params
    proc = _cli("runs", "--out", str(tmp_path))
    assert "echo-grid" in proc.stdout and "completed" in proc.stdout


def test_run_prints_a_time_per_notebook_and_the_total(tmp_path):
    # What `make run` shows at the end (lab run all).
    proc = _cli("run", "echo-grid", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    times = proc.stdout[proc.stdout.index("times:"):].splitlines()
    assert len(times) == 4 and times[-1].split()[0] == "total"
    seconds = [float(line.split()[-2]) for line in times[1:3]]
    assert all(s > 0 for s in seconds) and "completed" in times[1]
    assert float(times[-1].split()[1]) == pytest.approx(sum(seconds), abs=0.11)


@pytest.mark.slow
def test_grid_on_dask_local_cluster(tmp_path):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        results = run(_plan("echo-grid"), tmp_path, dask=client, echo=lambda m: None)
    assert [r.status for r in results] == ["completed", "completed"]
    assert sorted(r.metrics["x2"] for r in results) == [2, 4]
    assert {r.run_dir.parent for r in results} == {tmp_path / "echo-grid"}


def test_mlflow_records_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_TRACKING", "on")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (result,) = run(_plan("10", {"x": "4"}), tmp_path, echo=lambda m: None)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("10-echo")
    (mlrun,) = client.search_runs([exp.experiment_id])
    assert mlrun.data.metrics["x2"] == 8.0 and mlrun.data.params["x"] == "4"
    assert mlrun.info.status == "FINISHED"
    names = {a.path for a in client.list_artifacts(mlrun.info.run_id)}
    assert {"report.html", "notebook.ipynb", "metrics.json"} <= names
    assert json.loads((result.run_dir / "run.json").read_text())["mlflow_run_id"] == mlrun.info.run_id
    info = json.loads((result.run_dir / "run.json").read_text())
    for key, ms in (("started", mlrun.info.start_time), ("finished", mlrun.info.end_time)):
        assert ms == int(datetime.fromisoformat(info[key]).timestamp() * 1000)  # the run's times
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # UI opens on runs
    html = (result.run_dir / "report.html").read_text()
    assert "OUTPUT-MARKER 4" in html and "boom on purpose" not in html  # no code


def test_failed_run_is_logged_as_failed(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_TRACKING", "on")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (result,) = run(_plan("10", {"fail": "true"}), tmp_path, echo=lambda m: None)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (mlrun,) = client.search_runs([client.get_experiment_by_name("10-echo").experiment_id])
    info = json.loads((result.run_dir / "run.json").read_text())
    assert result.status == "failed" and mlrun.info.status == "FAILED"
    assert "boom on purpose" in mlrun.data.tags["lab.error"]
    assert mlrun.info.end_time == int(datetime.fromisoformat(info["finished"]).timestamp() * 1000)


def test_broken_mlflow_store_still_finishes_the_run(tmp_path):
    env = dict(ENV, LAB_TRACKING="on", MLFLOW_TRACKING_URI="bogus-scheme://nowhere")
    proc = _cli("run", "10", "--out", str(tmp_path), env=env)
    assert proc.returncode == 3, proc.stderr  # completed, but not tracked: said in the status
    assert "warning: MLflow tracking failed" in proc.stderr and "bogus-scheme" in proc.stderr
    assert "lab: run not logged to MLflow" in proc.stderr
    (run_dir,) = tmp_path.glob("10-echo/*")
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "metrics.json", "notebook.ipynb", "params.json", "report.html", "run.json"]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "completed" and "mlflow_run_id" not in info
    assert "bogus-scheme" in info["tracking_error"]


def test_cli_list_and_params():
    proc = _cli("list")
    assert proc.returncode == 0
    assert "10  10-echo.ipynb" in proc.stdout and "echo parameters back" in proc.stdout
    assert "echo-grid" in proc.stdout and "grid: x(2)" in proc.stdout
    proc = _cli("params", "10")
    assert proc.returncode == 0
    assert re.search(r"^x +int +1 +a number$", proc.stdout, re.M) and "smoke: x=7" in proc.stdout


def test_runs_table_compares_parameters_within_an_experiment():
    def row(exp, i, params):
        return {"experiment": exp, "id": f"{exp}-{i}", "status": "completed", "seconds": 1.0,
                "params": params, "metrics": {}}

    rows = [row("a", 1, {"alpha": 1, "epochs": 5}), row("a", 2, {"alpha": 2, "epochs": 5}),
            row("b", 1, {"window": 10})]
    lines = format_runs(rows).splitlines()[1:]
    assert "alpha=1" in lines[0] and "alpha=2" in lines[1]
    # epochs is the same in both runs of a; b has no alpha and nothing to compare with
    assert all("epochs" not in line and "null" not in line for line in lines)
    assert "window" not in lines[2] and "alpha" not in lines[2]


def test_dead_kernel_fails_the_run_and_removes_its_socket_dir(tmp_path):
    import tempfile

    import nbformat

    nb = nbformat.read(NB_DIR / "10-echo.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import os\nos._exit(3)"))
    (tmp_path / "nbs").mkdir()
    nbformat.write(nb, tmp_path / "nbs" / "10-echo.ipynb")
    # The run gets a temporary directory of its own, so the kernel directories
    # of tests running beside it (pytest-xdist) are not counted. It sits
    # directly under /tmp: an IPC socket path must stay under 108 bytes.
    private_tmp = Path(tempfile.mkdtemp(prefix="lab-t-", dir="/tmp"))
    try:
        proc = _cli("run", "10", "--out", str(tmp_path / "runs"),
                    env=dict(ENV, LAB_NOTEBOOKS=str(tmp_path / "nbs"), TMPDIR=str(private_tmp)))
        assert proc.returncode == 1 and "DeadKernelError" in proc.stderr
        (run_json,) = (tmp_path / "runs").rglob("run.json")
        assert json.loads(run_json.read_text())["status"] == "failed"
        # nbclient's dead-kernel path cleaned up too
        assert list(private_tmp.glob("lab-kernel-*")) == []
    finally:
        shutil.rmtree(private_tmp, ignore_errors=True)


def test_unreachable_tracking_server_warns_and_keeps_the_run(tmp_path):
    # Port 9 (discard) is closed: MLflow's retries are capped, the report is
    # not held up by them, and the finished run stays complete.
    env = dict(ENV, LAB_TRACKING="on", MLFLOW_TRACKING_URI="http://127.0.0.1:9")
    start = time.monotonic()
    proc = _cli("run", "10", "--out", str(tmp_path), env=env, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert "MLflow tracking failed" in proc.stderr
    (run_json,) = tmp_path.rglob("run.json")
    info = json.loads(run_json.read_text())
    assert info["status"] == "completed" and info["tracking_error"]
    assert (run_json.parent / "report.html").is_file()
    assert time.monotonic() - start < 90


def test_files_are_stored_once(tmp_path, monkeypatch):
    # plotly.js once per runs directory, linked from notebooks and reports;
    # MLflow's artifacts are hard links to the run directory's files.
    import nbformat
    from plotly.offline import get_plotlyjs

    monkeypatch.setenv("LAB_TRACKING", "on")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    nb = nbformat.read(NB_DIR / "10-echo.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "import plotly.graph_objects as go\nimport lab.plots\nlab.plots.setup_notebook()\n"
        "go.Figure(go.Scatter(y=[1, 3, 2], name='FIGURE-MARKER')).show()"))
    (tmp_path / "nbs").mkdir()
    nbformat.write(nb, tmp_path / "nbs" / "10-echo.ipynb")
    specs = plan("10", notebooks_dir=tmp_path / "nbs", experiments_dir=EX_DIR) * 2
    results = run(specs, tmp_path / "runs", echo=lambda m: None)
    (shared,) = (tmp_path / "runs" / "_static").iterdir()
    assert shared.read_text(encoding="utf-8") == get_plotlyjs()
    for res in results:
        assert res.status == "completed" and res.tracking_error is None
        html = (res.run_dir / "report.html").read_text()
        assert "FIGURE-MARKER" in html and get_plotlyjs()[:2000] not in html
        link = re.search(r'<script src="([^"]+plotly[^"]+)"></script>', html).group(1)
        assert (res.run_dir / link).resolve() == shared.resolve()
        assert link in (res.run_dir / "notebook.ipynb").read_text()
        for name in ("report.html", "notebook.ipynb"):
            assert (res.run_dir / name).stat().st_size < 500_000
            assert (res.run_dir / name).stat().st_nlink == 2  # and once in mlartifacts
    linked = {p.stat().st_ino for p in (tmp_path / "runs" / "mlartifacts").rglob("report.html")}
    assert linked == {(r.run_dir / "report.html").stat().st_ino for r in results}


def test_noise_of_a_kernel_the_runner_killed_is_dropped_for_a_while_only(monkeypatch):
    import logging
    import time

    from nbclient.exceptions import DeadKernelError

    from lab import runner

    def record(msg, exc=None):
        info = (type(exc), exc, None) if exc else None
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, msg, (), info)

    noise = [record("Task exception was never retrieved", DeadKernelError("Kernel died")),
             record("Kernel died while waiting for execute reply.")]
    real = record("Task exception was never retrieved", RuntimeError("a real bug"))
    monkeypatch.setattr(runner._KILLED_KERNEL, "started", time.monotonic())
    assert [runner._KILLED_KERNEL.filter(r) for r in noise] == [False, False]
    assert runner._KILLED_KERNEL.filter(real)
    monkeypatch.setattr(runner._KILLED_KERNEL, "started", time.monotonic() - 60)
    assert all(runner._KILLED_KERNEL.filter(r) for r in noise)  # a kernel that died by itself
