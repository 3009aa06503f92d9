"""Overhead of ``lab run 00 --smoke`` over running the same notebook with papermill.

Both are timed as whole commands (interpreter start included), alternating,
in one process; the figure is the ratio of medians. ``lab run`` does more:
typed parameter checks, the run directory, the HTML report and MLflow
tracking (on, as by default; ``--no-tracking`` sets ``LAB_TRACKING=off`` for
comparison). The CPU column is the median of user + system seconds of the
command and all its child processes (the kernel included): on a busy
machine it tells the extra work apart from waiting for a core.

    .venv/bin/python benchmarks/bench_runner.py [--repeat 3] [--no-tracking]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one whole command."""
    c0, t0 = _cpu(), time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=ROOT)
    return time.perf_counter() - t0, _cpu() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one repetition")
    ap.add_argument("--no-tracking", action="store_true", help="run lab with LAB_TRACKING=off")
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
        lab_env = dict(env, LAB_TRACKING="off") if args.no_tracking else env
        papermill = [str(BIN / "papermill"), str(nb.path), str(tmp / "out.ipynb"), "-f", str(params),
                     "--cwd", str(nb.path.parent), "-k", "python3", "--no-progress-bar"]
        lab = [str(BIN / "lab"), "run", "00", "--smoke", "--out", str(tmp / "runs")]
        _time(lab, lab_env)  # first run creates the MLflow store: not what users pay per run
        label = "lab run" + (" (tracking off)" if args.no_tracking else "")
        times: dict[str, list[tuple[float, float]]] = {"papermill": [], label: []}
        for _ in range(repeat):
            times["papermill"].append(_time(papermill, env))
            times[label].append(_time(lab, lab_env))
    ref = statistics.median(w for w, _ in times["papermill"])
    print("| command | median seconds | ratio vs papermill | median CPU seconds |")
    print("|---|---|---|---|")
    for name, ts in times.items():
        wall = statistics.median(w for w, _ in ts)
        cpu = statistics.median(c for _, c in ts)
        print(f"| {name} | {wall:.2f} | {wall / ref:.2f}x | {cpu:.2f} |")


if __name__ == "__main__":
    main()
