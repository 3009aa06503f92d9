"""Numbered notebooks: discovery, the ``parameters`` cell and typed values.

A notebook's ``parameters`` cell holds one literal per line::

    n_metrics: int = 500  # number of metric columns

and its metadata ``lab`` holds a one-line ``description`` and the ``smoke``
parameters. This module reads both without executing anything, and parses
command-line values to the declared types, so that a bad parameter is an
error before any kernel starts (papermill itself only warns).
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "NOTEBOOK_NAME",
    "Notebook",
    "Param",
    "ParameterError",
    "coerce_value",
    "find_notebooks",
    "parse_parameters_cell",
    "read_notebook",
    "resolve_parameters",
]

#: ``NN-kebab-description.ipynb``
NOTEBOOK_NAME = re.compile(r"^(\d{2})-[a-z0-9]+(?:-[a-z0-9]+)*\.ipynb$")
#: Declared types a parameter may have, and the Python types accepted for each.
_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (float, int),
    "str": (str,),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class ParameterError(ValueError):
    """A parameter name, value or declaration that is not valid."""


@dataclass(frozen=True)
class Param:
    """One declared notebook parameter."""

    name: str
    type: str
    default: Any
    help: str = ""


@dataclass
class Notebook:
    """A notebook's path, declared parameters and lab metadata."""

    path: Path
    params: dict[str, Param]
    description: str = ""
    smoke: dict[str, Any] = field(default_factory=dict)

    @property
    def number(self) -> str | None:
        m = NOTEBOOK_NAME.match(self.path.name)
        return m.group(1) if m else None

    @property
    def name(self) -> str:
        return self.path.stem

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params.values()}


def parse_parameters_cell(source: str, where: str = "parameters cell") -> dict[str, Param]:
    """Parse a ``parameters`` cell of ``name: type = default  # help`` lines.

    Parameters
    ----------
    source : str
        The cell's source.
    where : str
        Used in error messages (e.g. the notebook path).

    Returns
    -------
    dict of str to Param
        In declaration order.

    Raises
    ------
    ParameterError
        For a line that is not an annotated literal assignment, an unknown
        type, or a default that does not match its type.

    Examples
    --------
    >>> p = parse_parameters_cell('n: int = 5  # how many\\nname: str = "a"')
    >>> p["n"]
    Param(name='n', type='int', default=5, help='how many')
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ParameterError(f"{where}: line {exc.lineno}: not valid Python: {exc.msg}") from exc
    comments = _comments_by_line(source)
    params: dict[str, Param] = {}
    for node in tree.body:
        line = node.lineno
        if not (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(node.annotation, ast.Name)
            and node.value is not None
        ):
            raise ParameterError(
                f"{where}: line {line}: expected `name: type = literal  # help`, got "
                f"{ast.get_source_segment(source, node)!r}"
            )
        name, type_name = node.target.id, node.annotation.id
        if type_name not in _TYPES:
            raise ParameterError(
                f"{where}: line {line}: parameter {name!r} has type {type_name!r}; "
                f"use one of {sorted(_TYPES)}"
            )
        try:
            default = ast.literal_eval(node.value)
        except ValueError as exc:
            raise ParameterError(
                f"{where}: line {line}: the default of {name!r} must be a literal "
                "(derived values go in the next cell)"
            ) from exc
        _check_type(name, type_name, default)
        params[name] = Param(name, type_name, default, comments.get(node.end_lineno, ""))
    return params


def _comments_by_line(source: str) -> dict[int, str]:
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string.lstrip("#").strip()
    return out


def _check_type(name: str, type_name: str, value: Any) -> Any:
    if value is None:
        return None
    allowed = _TYPES[type_name]
    if isinstance(value, bool) and bool not in allowed:
        ok = False
    else:
        ok = isinstance(value, allowed)
    if not ok:
        raise ParameterError(
            f"parameter {name!r} expects {type_name}, got {value!r} ({type(value).__name__})"
        )
    return float(value) if type_name == "float" else value


def coerce_value(param: Param, raw: Any) -> Any:
    """Convert a command-line string (or a YAML value) to ``param``'s type.

    ``None``/``null`` give None; bools accept true/false/yes/no/on/off/1/0;
    lists and dicts are read as YAML flow (``[1, 2]``, ``{a: 1}``).

    Raises
    ------
    ParameterError
        Naming the parameter and its type.

    Examples
    --------
    >>> coerce_value(Param("epochs", "int", 5), "12")
    12
    >>> coerce_value(Param("dims", "list", [8]), "[16, 4]")
    [16, 4]
    """
    if not isinstance(raw, str):
        return _check_type(param.name, param.type, raw)
    text = raw.strip()
    if text in ("None", "null", "~"):
        return None
    try:
        if param.type == "str":
            return raw
        if param.type == "int":
            return int(text)
        if param.type == "float":
            return float(text)
        if param.type == "bool":
            low = text.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(text)
        value = yaml.safe_load(text)
    except (ValueError, yaml.YAMLError):
        raise ParameterError(
            f"parameter {param.name!r} expects {param.type}, got {raw!r}"
        ) from None
    return _check_type(param.name, param.type, value)


def resolve_parameters(
    notebook: Notebook, overrides: dict[str, Any], *, source: str = "-p"
) -> dict[str, Any]:
    """Check ``overrides`` against the declared parameters and return typed values.

    Raises
    ------
    ParameterError
        For an unknown name (listing the valid ones) or a value that does not parse.
    """
    out = {}
    for name, raw in overrides.items():
        if name not in notebook.params:
            valid = ", ".join(notebook.params) or "(none)"
            raise ParameterError(
                f"{source}: unknown parameter {name!r} for {notebook.path.name}; "
                f"valid parameters: {valid}"
            )
        out[name] = coerce_value(notebook.params[name], raw)
    return out


def read_notebook(path: str | Path) -> Notebook:
    """Read a notebook's parameters and ``lab`` metadata without executing it.

    Raises
    ------
    ParameterError
        If the notebook is unreadable, has no or several ``parameters`` cells,
        or declares smoke parameters that are not valid.
    """
    path = Path(path)
    try:
        nb = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ParameterError(f"{path}: cannot read notebook: {exc}") from exc
    cells = [
        c for c in nb.get("cells", [])
        if "parameters" in c.get("metadata", {}).get("tags", [])
    ]
    if len(cells) != 1:
        raise ParameterError(f"{path}: expected exactly one cell tagged 'parameters', found {len(cells)}")
    source = cells[0]["source"]
    source = "".join(source) if isinstance(source, list) else source
    params = parse_parameters_cell(source, where=str(path))
    meta = nb.get("metadata", {}).get("lab", {})
    notebook = Notebook(path, params, meta.get("description", ""), {})
    notebook.smoke = resolve_parameters(notebook, meta.get("smoke", {}), source=f"{path.name} smoke")
    return notebook


def find_notebooks(directory: str | Path) -> dict[str, Path]:
    """Map each notebook number (``"01"``) to its path, sorted by number.

    Examples
    --------
    >>> from lab.config import NOTEBOOKS_DIR
    >>> "00" in find_notebooks(NOTEBOOKS_DIR)
    True
    """
    directory = Path(directory)
    found = {}
    for path in sorted(directory.glob("*.ipynb")):
        m = NOTEBOOK_NAME.match(path.name)
        if m:
            found[m.group(1)] = path
    return found
