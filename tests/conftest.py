"""Shared fixtures. Tests never need a GPU or the network."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
sys.path.insert(0, str(Path(__file__).parent))

REPO_ROOT = Path(__file__).resolve().parent.parent
TCPD_ROOT = Path(os.environ.get("LAB_TCPD", REPO_ROOT.parent / "shared" / "data" / "tcpd"))


@pytest.fixture
def tcpd_root() -> Path:
    """Path to the shared TCPD data; the test is skipped when it is absent."""
    if not (TCPD_ROOT / "annotations.json").is_file():
        pytest.skip(f"TCPD data not found at {TCPD_ROOT}")
    return TCPD_ROOT


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(12345)


def run_smoke(target: str, out: Path, *extra: str, timeout: int = 600) -> tuple[Path, dict]:
    """Run ``lab run TARGET --smoke --out OUT`` exactly as a user would.

    Returns the single run directory created and its recorded metrics; fails
    the test with the command's output if the run did not complete.
    """
    import json
    import subprocess

    env = dict(os.environ, LAB_TRACKING=os.environ.get("LAB_TRACKING", "off"))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a newcomer's shell: nothing set
    # ipykernel leaves fd 2 alone under pytest; the kernel must capture it as for a user
    env.pop("PYTEST_CURRENT_TEST", None)
    cmd = [sys.executable, "-m", "lab", "run", target, "--smoke", "--out", str(out), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=REPO_ROOT)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    runs = [p for p in out.rglob("run.json")]
    assert len(runs) == 1, f"expected one run directory under {out}, found {runs}"
    run_dir = runs[0].parent
    run_info = json.loads((run_dir / "run.json").read_text())
    assert run_info["status"] == "completed", run_info
    from lab.tracking import read_metrics

    metrics = read_metrics(run_dir)
    check_clean_console(proc.stdout + proc.stderr)
    check_clean_report(run_dir)
    return run_dir, metrics


# TensorFlow/absl start-up lines ("I0000 00:00:... port.cc:153] ...", absl's preamble, oneDNN)
_TF_LINE = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\]|absl|oneDNN|cuda drivers", re.M)
_BARE_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?(?:e[-+]?\d+)?$")


def check_clean_console(text: str) -> None:
    """No TensorFlow or absl line in what ``lab run`` printed."""
    found = _TF_LINE.findall(text)
    assert not found, f"TensorFlow/absl lines on the console: {found}\n{text}"


def check_clean_report(run_dir: Path) -> None:
    """The executed notebook of a clean run holds no stderr block, bare value or Series printout."""
    import json

    nb = json.loads((run_dir / "notebook.ipynb").read_text())
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            assert out.get("name") != "stderr", f"cell {i}: stderr block {''.join(out['text'])!r}"
            data = out.get("data", {})
            plain = "".join(data.get("text/plain", ""))
            if out["output_type"] == "execute_result" and set(data) == {"text/plain"}:
                assert not _BARE_NUMBER.match(plain.strip()), f"cell {i}: bare value {plain!r}"
            assert not re.search(r"\ndtype: \w+$", plain), f"cell {i}: Series printout {plain!r}"
            assert not plain.startswith("Empty DataFrame"), f"cell {i}: empty table {plain!r}"
    html = (run_dir / "report.html").read_text()
    assert 'data-mime-type="application/vnd.jupyter.stderr"' not in html, "stderr block in report.html"
