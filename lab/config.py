"""Constants and defaults shared across the lab, kept in one place."""

from __future__ import annotations

import os
from pathlib import Path

#: Repository root when running from a checkout (the parent of the ``lab`` package).
REPO_ROOT = Path(__file__).resolve().parent.parent
#: Numbered notebooks live here; ``LAB_NOTEBOOKS`` overrides it.
NOTEBOOKS_DIR = Path(os.environ.get("LAB_NOTEBOOKS", REPO_ROOT / "notebooks"))
#: Named parameter sets, one YAML file each; ``LAB_EXPERIMENTS`` overrides it.
EXPERIMENTS_DIR = Path(os.environ.get("LAB_EXPERIMENTS", REPO_ROOT / "experiments"))
#: Where ``lab run`` writes run directories by default; ``LAB_RUNS`` overrides it.
RUNS_DIR = Path(os.environ.get("LAB_RUNS", REPO_ROOT / "runs"))
#: Local cache for downloaded or generated data (git-ignored).
DATA_DIR = Path(os.environ.get("LAB_DATA", REPO_ROOT / "data"))
#: The shared TCPD change-point data, beside the project root, when present.
TCPD_ROOT = Path(os.environ.get("LAB_TCPD", REPO_ROOT.parent / "shared" / "data" / "tcpd"))

#: Environment variable through which the runner tells a kernel where to record metrics.
RUN_DIR_ENV = "LAB_RUN_DIR"
#: Set to ``off`` to disable MLflow tracking.
TRACKING_ENV = "LAB_TRACKING"
#: Address of an existing dask scheduler for grids.
DASK_ENV = "LAB_DASK_SCHEDULER"

#: DataFrames passed to ``lab.record`` are stored as records up to this many rows.
MAX_RECORD_ROWS = 1000
#: Plot traces longer than this are decimated or drawn with WebGL.
MAX_POINTS_PER_TRACE = 100_000
#: The detector ``lab train`` fits without ``--detector`` (EDF nights; notebook 06 shows it works
#: best there: every fault of nights 11-30 of make_cpap_nights(random_state=0) found).
DEFAULT_EDF_DETECTOR = "robust_z"
