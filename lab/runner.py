"""Headless notebook runs (papermill), run directories and tracking."""

from __future__ import annotations

import os

from lab.config import RUN_DIR_ENV


def is_headless() -> bool:
    """Return True inside a run started by ``lab run`` (papermill, no browser).

    Notebooks use it to skip interactive-only parts such as widgets.

    Examples
    --------
    >>> isinstance(is_headless(), bool)
    True
    """
    return bool(os.environ.get(RUN_DIR_ENV))
