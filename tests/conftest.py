"""Shared fixtures. Tests never need a GPU or the network."""

from __future__ import annotations

import os
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

    return run_dir, read_metrics(run_dir)
