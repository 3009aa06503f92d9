"""What a newcomer sees: the console and reports of `lab run`, `lab runs`, make targets, Colab."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import types
import warnings
from importlib import metadata
from pathlib import Path

import nbformat
import pytest
from conftest import REPO_ROOT

from lab import colab
from lab.cli import main
from lab.kernel_output import install, is_benign, warnings_as_notes
from lab.progress import RunProgress

ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
TF_LINES = [
    ABSL_PREAMBLE,
    "I0000 00:00:1796529502.225948    6204 port.cc:153] oneDNN custom operations are on. You may "
    "see slightly different numerical results due to floating-point round-off errors.",
    "I0000 00:00:1796529502.227110    6204 cudart_stub.cc:31] Could not find cuda drivers on your "
    "machine, GPU will not be used.",
]
REAL_LINES = [
    "E0000 00:00:1796529502.227110    6204 some_op.cc:12] real C++ error",
    "I0000 00:00:1796529502.227110    6204 port.cc:99] a port.cc line that is not the oneDNN notice",
    "Traceback (most recent call last):",
    "oneDNN custom operations are on, said by someone else",
]


# ---------------------------------------------------------------- start-up lines
@pytest.mark.parametrize("line", TF_LINES)
def test_tensorflow_startup_lines_are_benign(line):
    assert is_benign(line) and is_benign(line + "\n")


@pytest.mark.parametrize("line", REAL_LINES)
def test_other_lines_are_not(line):
    assert not is_benign(line)


def _through_filter(chunks: list[bytes]) -> bytes:
    import tempfile

    with tempfile.TemporaryFile() as sink:
        fd = os.dup(sink.fileno())
        proc = install(fd)
        for chunk in chunks:
            os.write(fd, chunk)
        os.close(fd)
        assert proc.wait(10) == 0
        sink.seek(0)
        return sink.read()


@pytest.mark.parametrize("ending", ["raise SystemExit(3)", "os.abort()"])
def test_the_last_lines_of_a_process_that_exits_or_crashes_are_not_lost(tmp_path, ending):
    code = ("import os\nfrom lab.kernel_output import install\ninstall()\n"
            f"os.write(2, b'{TF_LINES[0]}\\nlast words\\n')\n{ending}\n")
    with open(tmp_path / "err", "wb") as err:
        proc = subprocess.run([sys.executable, "-c", code], stderr=err, timeout=60)
    assert proc.returncode != 0
    deadline = time.monotonic() + 10  # the filter may finish just after its parent
    while b"last words" not in (tmp_path / "err").read_bytes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (tmp_path / "err").read_bytes() == b"last words\n"


def test_filter_drops_only_the_startup_lines_in_order():
    text = "\n".join([TF_LINES[0], REAL_LINES[0], TF_LINES[1], REAL_LINES[1], TF_LINES[2]]) + "\n"
    assert _through_filter([text.encode()]) == f"{REAL_LINES[0]}\n{REAL_LINES[1]}\n".encode()


def test_filter_joins_lines_split_across_writes_and_keeps_a_last_partial_line():
    line = TF_LINES[2].encode() + b"\n"
    out = _through_filter([line[:20], line[20:] + b"kept\nno newline"])
    assert out == b"kept\nno newline"


def _write_notebook(path: Path, code: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("x: int = 1  # unused")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _lab_run(notebook: Path, out: Path) -> tuple[subprocess.CompletedProcess, Path]:
    env = dict(os.environ, LAB_TRACKING="off")
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    env.pop("PYTEST_CURRENT_TEST", None)  # else ipykernel does not capture fd 2 at all
    proc = subprocess.run([sys.executable, "-m", "lab", "run", str(notebook), "--out", str(out)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_json,) = out.rglob("run.json")
    return proc, run_json.parent


def _stderr_outputs(run_dir: Path) -> str:
    nb = json.loads((run_dir / "notebook.ipynb").read_text())
    return "".join("".join(o["text"]) for c in nb["cells"] for o in c.get("outputs", [])
                   if o.get("name") == "stderr")


@pytest.mark.slow
def test_a_run_drops_the_startup_lines_but_shows_real_stderr(tmp_path):
    """The kernel's fd 2 as TensorFlow writes it: start-up lines vanish, real ones stay."""
    lines = [TF_LINES[0], REAL_LINES[0], TF_LINES[1], TF_LINES[2]]
    code = ("import os, sys, time\n"
            f"os.write(2, {(chr(10).join(lines) + chr(10)).encode()!r})\n"
            "print('a python error message', file=sys.stderr)\n"
            "time.sleep(1)  # fd output reaches the notebook through two pipes\n")
    proc, run_dir = _lab_run(_write_notebook(tmp_path / "stderr.ipynb", code), tmp_path / "runs")
    stderr = _stderr_outputs(run_dir)
    assert REAL_LINES[0] in stderr and "a python error message" in stderr
    assert "absl" not in stderr and "cuda drivers" not in stderr and "oneDNN" not in stderr
    console = proc.stdout + proc.stderr
    assert REAL_LINES[0] in console  # ipykernel echoes the kernel's fd 2 to the terminal
    assert "absl" not in console and "cuda drivers" not in console and "oneDNN" not in console
    # progress on a non-terminal: one plain line per code cell, with the elapsed time
    assert "stderr  cell 1/2  0:0" in console and "cell 2/2" in console


def test_warnings_as_notes_shows_chosen_warnings_and_passes_others(capsys):
    class Expected(UserWarning):
        pass

    with warnings.catch_warnings(record=True) as others:
        warnings.simplefilter("always")
        with warnings_as_notes(Expected):
            warnings.warn("train longer", Expected, stacklevel=1)
            warnings.warn("something else", RuntimeWarning, stacklevel=1)
    assert capsys.readouterr().out == "Expected: train longer\n"
    assert [str(w.message) for w in others] == ["something else"]
    with pytest.raises(TypeError, match="Warning subclasses, got 'x'"):
        with warnings_as_notes("x"):
            pass


# --------------------------------------------------------------------- progress
class _Tty(io.StringIO):
    def isatty(self):
        return True


def _drive(stream, tty):
    now = [0.0]
    p = RunProgress("[2/5] 01-mscred-forex", stream=stream, tty=tty, clock=lambda: now[0])
    if p.tty:
        p._draw()  # what the ticker shows while the kernel starts
    p.notebook_start(notebook={"cells": [{"cell_type": "markdown"}, {"cell_type": "code"},
                                         {"cell_type": "code"}]})
    p.cell_start(cell={"cell_type": "markdown", "source": "# title"}, cell_index=0)
    now[0] = 1.0
    p.cell_start(cell={"cell_type": "code", "source": "# comment\nimport lab"}, cell_index=1)
    p.write("a plain print\n")
    now[0] = 65.0
    p.cell_start(cell={"cell_type": "code", "source": ["detector.fit(train)\n", "x"]}, cell_index=2)
    p.write("\rtraining:  50%|##   | 1/2")
    p.write("\rtraining: 100%|#####| 2/2\n")
    p.close()
    return stream.getvalue()


def test_progress_without_a_terminal_prints_plain_lines():
    out = _drive(io.StringIO(), tty=None)  # StringIO is no terminal
    assert out == ("[2/5] 01-mscred-forex  cell 1/2  0:01  import lab\n"
                   "[2/5] 01-mscred-forex  cell 2/2  1:05  detector.fit(train)\n"
                   "    training: 100%|#####| 2/2\n")


def test_progress_on_a_terminal_redraws_one_live_line(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    out = _drive(_Tty(), tty=None)
    assert "\n" not in out  # one line, redrawn in place
    frames = [f for f in out.split("\r\x1b[2K") if f]
    assert frames.pop(0) == "[2/5] 01-mscred-forex  starting the kernel  0:00"
    assert frames[0] == "[2/5] 01-mscred-forex  |--------------------| cell 1/2  0:01  import lab"
    assert "[2/5] 01-mscred-forex  |##########----------| cell 2/2  1:05  detector.fit(train)" in frames
    # the notebook's bar, its drawing left out (it is as wide as the terminal)
    assert any(f.endswith("cell 2/2  1:05  training:  50%| 1/2") for f in frames)
    assert out.endswith("\r\x1b[2K")  # cleared at the end, for the runner's outcome line


# ------------------------------------------------------------------- lab runs
def test_runs_with_an_unknown_name_lists_the_names(tmp_path, capsys):
    for name in ("b-exp", "a-exp"):
        run_dir = tmp_path / name / "r1"
        run_dir.mkdir(parents=True)
        (run_dir / "run.json").write_text(json.dumps({"id": "r1", "status": "completed"}))
    assert main(["runs", "nosuch", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no runs named 'nosuch'" in err and "runs exist for: a-exp, b-exp" in err
    assert main(["runs", "a-exp", "--out", str(tmp_path)]) == 0
    assert main(["runs", "nosuch", "--out", str(tmp_path / "empty")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "no runs yet"


# --------------------------------------------------------------- make targets
def _make_n(tmp_path, *targets, **env):
    stamp = tmp_path / "stamp"
    stamp.touch()  # newer than pyproject.toml: no install
    # the Makefile's own defaults, whatever the caller's environment sets (a container
    # often exports JUPYTER_IP) or a parent make passes on (`make test JUPYTER_IP=...`)
    inherited = {k: v for k, v in os.environ.items()
                 if k not in ("JUPYTER_IP", "JUPYTER_PORT", "MLFLOW_HOST", "MLFLOW_PORT",
                              "MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    proc = subprocess.run(["make", "-n", *targets, f"STAMP={stamp}"], capture_output=True,
                          text=True, cwd=REPO_ROOT, env={**inherited, **env}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_make_jupyter_and_ui_take_host_port_and_root_from_the_environment(tmp_path):
    root = "--allow-root" if os.geteuid() == 0 else None
    out = _make_n(tmp_path, "jupyter", "ui", JUPYTER_IP="0.0.0.0", JUPYTER_PORT="9123",
                  MLFLOW_HOST="0.0.0.0", MLFLOW_PORT="5123")
    (jupyter,) = [ln for ln in out.splitlines() if "jupyter lab" in ln]
    assert "--ip=0.0.0.0 --port=9123" in jupyter
    assert (root in jupyter) if root else ("--allow-root" not in jupyter)
    (ui,) = [ln for ln in out.splitlines() if "mlflow ui" in ln]
    assert "--host 0.0.0.0 --port 5123" in ui
    defaults = _make_n(tmp_path, "jupyter", "ui")
    assert "--ip=127.0.0.1 --port=8888" in defaults and "--host 127.0.0.1 --port 5000" in defaults


def test_make_install_says_what_it_does(tmp_path):
    # under `make test` the parent make's flags would add "Entering directory" lines
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    proc = subprocess.run(["make", "-n", "--no-print-directory", "install",
                           f"STAMP={tmp_path / 'missing'}"],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=60, env=env)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith('echo "Installing the lab')
    (pip,) = [ln for ln in lines if "install" in ln and "-e" in ln]
    assert " -q " not in pip  # pip shows what it downloads and builds


# ------------------------------------------------------------------------ Colab
def test_stale_modules_name_loaded_packages_replaced_on_disk(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "numpy", types.SimpleNamespace(__version__="0.0.1"))
    installed = metadata.version("numpy")
    assert colab.stale_modules(("numpy",)) == [f"numpy 0.0.1 -> {installed}"]
    colab.finish_install()
    assert "restart the runtime" in capsys.readouterr().out


def test_a_notebook_falls_back_to_its_default_on_colab_without_shared_data(monkeypatch, tmp_path, capsys):
    assert colab.dataset_or_default("nile", "synthetic", tmp_path / "absent") == "nile"  # not Colab
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert colab.dataset_or_default("nile", "synthetic", tmp_path) == "nile"  # data is there
    assert colab.dataset_or_default("nile", "synthetic", tmp_path / "absent") == "synthetic"
    assert colab.dataset_or_default("nile", "synthetic", tmp_path / "absent", "tcpd_root") == "synthetic"
    out = capsys.readouterr().out
    assert "not on this Colab runtime" in out and "set tcpd_root to its path" in out
