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


# `lab._x`, `lab.models._base`, `from lab... import _x` (also inside a parenthesised import list)
_PRIVATE = re.compile(r"\blab(?:\.[A-Za-z]\w*)*\._\w+|^\s*from\s+lab[\w.]*\s+import\s+[^#\n]*?\b_\w+",
                      re.M)
_PRIVATE_IN_LIST = re.compile(r"^\s*from\s+lab[\w.]*\s+import\s*\(([^)]*)\)", re.M)


def _private_names(text: str) -> list[str]:
    found = [m.group(0).strip() for m in _PRIVATE.finditer(text)]
    for m in _PRIVATE_IN_LIST.finditer(text):
        found += [n.strip() for n in m.group(1).replace("\n", " ").split(",") if n.strip().startswith("_")]
    return found


@pytest.mark.parametrize("text", ["from lab._validation import _check_option",
                                  "import lab._validation", "lab.models._base.BaseDetector",
                                  "from lab.models.mscred import _Progress",
                                  "from lab.models import (\n    mscred,\n    _base,\n)"])
def test_private_name_check_catches(text):
    assert _private_names(text)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_import_no_private_name(path):
    _, cells = _cells(path)
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "code":
            assert not _private_names(cell["text"]), f"cell {i} uses private names of lab"


def test_colab_cells_are_one_cell_that_names_no_url():
    cells = {p.name: _cells(p)[1][1]["text"] for p in NOTEBOOKS}
    first = next(iter(cells.values()))
    assert all(text == first for text in cells.values()), "every notebook has the same Colab cell"
    assert "://" not in first, "the project has no public URL: take it from LAB_REPO_URL"
    assert 'os.environ.get("LAB_REPO_URL")' in first and "lab/pyproject.toml" in first
    # no source: one sentence saying what to do; a failed pip: one sentence; then the restart check
    assert first.count("raise SystemExit(") == 2 and "finish_install()" in first
    compile(first, "colab-cell", "exec")


def test_colab_cell_says_how_to_install_and_fails_in_one_sentence(monkeypatch, tmp_path):
    import subprocess
    import sys
    import types

    cell = _cells(NOTEBOOKS[0])[1][1]["text"]
    assert exec(cell, {}) is None  # not on Colab: nothing happens
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LAB_REPO_URL", raising=False)
    with pytest.raises(SystemExit, match=r"^To install the lab, set .*LAB_REPO_URL.* then run this cell again\.$"):
        exec(cell, {})
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda argv, **kw: calls.append(argv) or
                        types.SimpleNamespace(returncode=1))
    monkeypatch.setenv("LAB_REPO_URL", "file:///srv/lab.git")
    with pytest.raises(SystemExit, match=r"^Installing the lab from lab @ git\+file:///srv/lab\.git failed"):
        exec(cell, {})
    monkeypatch.delenv("LAB_REPO_URL")
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "pyproject.toml").write_text("")
    with pytest.raises(SystemExit, match=r"from \./lab failed"):
        exec(cell, {})
    assert [argv[-1] for argv in calls] == ["lab @ git+file:///srv/lab.git", "./lab"]
