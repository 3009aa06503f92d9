"""Every numbered notebook follows the house conventions (docs/notebooks.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lab.notebook import NOTEBOOK_NAME, read_notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# absolute paths in code: "/x...", 'C:\...', or a home directory
_ABSOLUTE = re.compile(r"""["'](?:/[A-Za-z_]|[A-Za-z]:\\|~/)""")
_NETWORK = re.compile(r"\b(?:requests|urllib|http\.client|wget|curl)\b|https?://")


def _cells(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        src = cell["source"]
        cell["text"] = "".join(src) if isinstance(src, list) else src
    return nb, nb["cells"]


def test_there_are_numbered_notebooks():
    numbers = [NOTEBOOK_NAME.match(p.name).group(1) for p in NOTEBOOKS]
    assert "00" in numbers
    assert numbers == sorted(set(numbers)), "notebook numbers must be unique"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_conventions(path):
    assert NOTEBOOK_NAME.match(path.name), f"{path.name} is not NN-kebab-description.ipynb"
    nb, cells = _cells(path)
    assert cells[0]["cell_type"] == "markdown" and len(cells[0]["text"]) > 80, "intro first"
    assert cells[1]["cell_type"] == "code" and '"google.colab" in sys.modules' in cells[1]["text"]
    tagged = [i for i, c in enumerate(cells) if "parameters" in c["metadata"].get("tags", [])]
    assert tagged == [2], f"exactly one parameters cell, third; found at {tagged}"
    info = read_notebook(path)  # parses every parameter line and the smoke parameters
    assert info.description and info.smoke, "metadata lab.description and lab.smoke are required"
    assert all(p.help for p in info.params.values()), "every parameter has a # help comment"
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        assert not cell.get("outputs") and cell.get("execution_count") is None, f"cell {i} has outputs"
        if i == 1:
            continue
        assert not _ABSOLUTE.search(cell["text"]), f"cell {i} has an absolute path"
        assert not _NETWORK.search(cell["text"]), f"cell {i} reaches for the network"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_has_a_smoke_test(path):
    number = NOTEBOOK_NAME.match(path.name).group(1)
    test_file = ROOT / "tests" / f"test_notebook_{number}.py"
    assert test_file.is_file(), f"{test_file.name} must run {path.name} with --smoke"
    assert "run_smoke" in test_file.read_text()


@pytest.mark.parametrize("path", sorted((ROOT / "experiments").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_experiments_plan_against_the_real_notebooks(path):
    """Every experiments/*.yaml names an existing notebook and only parameters it declares."""
    from lab.runner import plan

    specs = plan(path.stem, notebooks_dir=ROOT / "notebooks", experiments_dir=ROOT / "experiments")
    assert specs and all(s.experiment == path.stem for s in specs)
