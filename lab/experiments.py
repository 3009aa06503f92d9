"""Named experiments: ``experiments/<name>.yaml`` parameter sets and grids.

A file holds::

    notebook: "03"              # notebook number or file name
    description: one line shown by `lab list`
    parameters: {dataset: trace}
    grid:                       # optional; every combination runs
      model: [kmeans, dtw]
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Experiment", "ExperimentError", "load_experiment", "load_yaml", "find_experiments"]

_KEYS = {"notebook", "description", "parameters", "grid"}


class ExperimentError(ValueError):
    """An experiment or parameter file that cannot be used."""


@dataclass
class Experiment:
    """A named parameter set (and optional grid) for one notebook."""

    name: str
    notebook: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list] = field(default_factory=dict)
    path: Path | None = None

    def combinations(self) -> list[dict[str, Any]]:
        """Every parameter set: ``parameters`` updated by each grid combination.

        Examples
        --------
        >>> e = Experiment("x", "03", parameters={"a": 1}, grid={"b": [1, 2]})
        >>> e.combinations()
        [{'a': 1, 'b': 1}, {'a': 1, 'b': 2}]
        """
        if not self.grid:
            return [dict(self.parameters)]
        keys = list(self.grid)
        return [
            {**self.parameters, **dict(zip(keys, values, strict=True))}
            for values in itertools.product(*(self.grid[k] for k in keys))
        ]


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file; errors name the file and the line.

    Raises
    ------
    ExperimentError
        If the file cannot be read or parsed.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ExperimentError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ExperimentError(f"{where}: invalid YAML: {problem}") from exc


def load_experiment(path: str | Path) -> Experiment:
    """Load and check ``experiments/<name>.yaml``.

    Raises
    ------
    ExperimentError
        For unreadable YAML, unknown keys, a missing ``notebook`` or a grid
        whose values are not non-empty lists.
    """
    path = Path(path)
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ExperimentError(f"{path}: expected a mapping with 'notebook' and 'parameters'")
    unknown = set(data) - _KEYS
    if unknown:
        raise ExperimentError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(_KEYS)}")
    if "notebook" not in data:
        raise ExperimentError(f"{path}: missing 'notebook'")
    params = data.get("parameters") or {}
    grid = data.get("grid") or {}
    if not isinstance(params, dict):
        raise ExperimentError(f"{path}: 'parameters' must be a mapping")
    if not isinstance(grid, dict) or any(
        not isinstance(v, list) or not v for v in grid.values()
    ):
        raise ExperimentError(f"{path}: 'grid' must map names to non-empty lists")
    notebook = data["notebook"]
    notebook = f"{notebook:02d}" if isinstance(notebook, int) else str(notebook)
    return Experiment(path.stem, notebook, str(data.get("description", "")), params, grid, path)


def find_experiments(directory: str | Path) -> dict[str, Path]:
    """Map experiment names to their YAML files."""
    return {p.stem: p for p in sorted(Path(directory).glob("*.yaml"))}
