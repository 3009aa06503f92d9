"""Overhead of ``lab run 00 --smoke`` over running the same notebook with papermill.

Both are timed as whole commands (interpreter start included), alternating,
in one process; the figure is the ratio of medians. ``lab run`` does more:
typed parameter checks, the run directory, the HTML report and MLflow
tracking (on, as by default).

    .venv/bin/python benchmarks/bench_runner.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _time(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=ROOT)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one repetition")
    args = ap.parse_args()
    repeat = 1 if args.quick else args.repeat

    from lab.notebook import read_notebook

    nb = read_notebook(ROOT / "notebooks" / "00-quickstart.ipynb")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        params = tmp / "smoke.yaml"
        params.write_text(yaml.safe_dump(nb.smoke))
        env = dict(os.environ)
        env.pop("LAB_TRACKING", None)
        papermill = [str(BIN / "papermill"), str(nb.path), str(tmp / "out.ipynb"), "-f", str(params),
                     "--cwd", str(nb.path.parent), "-k", "python3", "--no-progress-bar"]
        lab = [str(BIN / "lab"), "run", "00", "--smoke", "--out", str(tmp / "runs")]
        _time(lab, env)  # first run creates the MLflow store: not what users pay per run
        times = {"papermill": [], "lab run": []}
        for _ in range(repeat):
            times["papermill"].append(_time(papermill, env))
            times["lab run"].append(_time(lab, env))
    ref = statistics.median(times["papermill"])
    print("| command | median seconds | ratio vs papermill |")
    print("|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts):.2f} | {statistics.median(ts) / ref:.2f}x |")


if __name__ == "__main__":
    main()
