"""Google Colab: what a notebook needs there once its setup cell installed the lab.

Every numbered notebook opens with the same setup cell (docs/notebooks.md).
On Colab it installs the lab with pip, from the git URL in ``LAB_REPO_URL``
or from a checkout uploaded as a folder ``lab`` beside the notebook, then
calls :func:`finish_install`. Elsewhere it does nothing. The install itself
has to live in the cell, since the lab is not importable before it.

Examples
--------
>>> on_colab()
False
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

__all__ = ["RESTART_MODULES", "dataset_or_default", "finish_install", "on_colab", "stale_modules"]

#: Packages that Colab has often loaded already and that the lab's pins may replace:
#: a new version on disk takes effect only after a restart of the runtime.
RESTART_MODULES = ("numpy", "pandas", "scipy", "sklearn", "keras", "tensorflow", "plotly")
# import name -> distribution name, where they differ
_DISTRIBUTIONS = {"sklearn": "scikit-learn"}


def on_colab() -> bool:
    """Whether this kernel runs on Google Colab.

    Examples
    --------
    >>> isinstance(on_colab(), bool)
    True
    """
    return "google.colab" in sys.modules


def stale_modules(modules=RESTART_MODULES) -> list[str]:
    """Loaded modules whose version on disk is no longer the one in memory.

    Examples
    --------
    >>> stale_modules()
    []
    """
    stale = []
    for name in modules:
        module = sys.modules.get(name)
        loaded = getattr(module, "__version__", None)
        if loaded is None:
            continue
        try:
            installed = metadata.version(_DISTRIBUTIONS.get(name, name))
        except metadata.PackageNotFoundError:
            continue
        if installed != loaded:
            stale.append(f"{name} {loaded} -> {installed}")
    return stale


def finish_install() -> None:
    """Print whether the runtime must restart after the install (see :func:`stale_modules`).

    Examples
    --------
    >>> finish_install()
    The lab is installed; no restart is needed.
    """
    stale = stale_modules()
    if stale:
        message = (f"The lab is installed, and pip replaced packages already loaded ({', '.join(stale)}): "
                   "restart the runtime (Runtime > Restart session) and run the notebook again.")
    else:
        message = "The lab is installed; no restart is needed."
    print(message)


def dataset_or_default(dataset: str, default: str, root: str | Path, parameter: str = "root") -> str:
    """On Colab, ``default`` with a note if ``dataset`` needs a data folder that is absent.

    The shared data (``../shared/data``) sits beside a checkout, not on
    Colab. There a notebook says so and runs on its synthetic default
    instead; elsewhere ``dataset`` is returned as it is, and the loader
    names the missing folder.

    Parameters
    ----------
    dataset : str
        The dataset the notebook was asked for.
    default : str
        The dataset that needs no files (the notebook's synthetic default).
    root : path
        The folder ``dataset`` is read from.
    parameter : str
        The notebook parameter that sets ``root``, named in the note.

    Examples
    --------
    >>> dataset_or_default("nile", "synthetic", "/nonexistent")  # not on Colab
    'nile'
    """
    if dataset == default or not on_colab() or Path(root).is_dir():
        return dataset
    print(f"{dataset!r} needs the shared data folder {root}, which is not on this Colab runtime "
          f"(upload it and set {parameter} to its path); using {default!r} instead.")
    return default
