"""lab._validation: the shared input converter refuses what it cannot convert faithfully."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from lab import preprocessor as pp
from lab import signal_utility as su
from lab._validation import _as_2d


def _complex_frame():
    return pd.DataFrame({"re": [1.0, 2.0, 3.0], "z": [1 + 1j, 1 + 2j, 1 + 3j],
                         "w": np.array([1, 2, 3], dtype=np.complex64)})


def test_as_2d_refuses_complex_frame_columns_by_name():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning: an error before any cast
        with pytest.raises(ValueError, match=r"^df has complex columns \['z', 'w'\]"):
            _as_2d(_complex_frame(), "df")


@pytest.mark.parametrize("shape", [(4,), (4, 3)])
def test_as_2d_refuses_complex_arrays(shape):
    x = np.ones(shape, dtype=complex)
    n_cols = shape[1] if len(shape) == 2 else 1
    with pytest.raises(ValueError, match="^X has complex columns " + re.escape(str(list(range(n_cols))))):
        _as_2d(x, "X")
    with pytest.raises(ValueError, match="complex columns"):
        _as_2d(pd.Series(x[:, 0] if x.ndim == 2 else x), "X")


def test_public_entry_points_refuse_complex_input():
    # One through _as_2d, and clean_metrics, which reads frames itself: it called
    # a complex column a duplicate of its real part.
    with pytest.raises(ValueError, match=r"df has complex columns \['z', 'w'\]"):
        pp.normalize(_complex_frame())
    with pytest.raises(ValueError, match=r"df has complex columns \['z', 'w'\]"):
        su.smooth(_complex_frame(), 2)
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1 + 5j, 2 + 5j, 3 + 5j], "host": list("xyz")})
    with pytest.raises(ValueError, match=r"^df has complex columns \['b'\]"):
        pp.clean_metrics(df, warn=False)


def test_plot_heatmap_refuses_complex_matrices():
    from lab.plots import plot_heatmap

    with pytest.raises(ValueError, match="matrix_or_stack has complex values"):
        plot_heatmap(pd.DataFrame(np.eye(2) * (1 + 1j)))


def test_as_2d_reads_repeated_column_names():
    df = pd.DataFrame([[1.0, 2.0], [3.0, 4.0]], columns=["a", "a"])
    values, _, columns = _as_2d(df)
    assert values.tolist() == [[1.0, 2.0], [3.0, 4.0]] and list(columns) == ["a", "a"]
    df["s"] = ["x", "y"]
    with pytest.raises(ValueError, match=r"non-numeric columns \['s'\]"):
        _as_2d(df)


def test_no_module_imports_another_modules_private_names():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    found = set()
    for path in sorted((root / "lab").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lab") \
                    and node.module != "lab._validation":
                found |= {(path.relative_to(root).as_posix(), node.module, alias.name)
                          for alias in node.names if alias.name.startswith("_")}
    assert not found, sorted(found)
