"""The metric-correlation explorer: pick a focus window, see which metrics changed (ipywidgets).

:func:`focus_explorer` wraps :func:`lab.preprocessor.rank_changes` and
:func:`lab.plots.plot_lines` in a widget for JupyterLab and Colab. It is
interactive only: notebooks skip it under ``lab run``
(:func:`lab.runner.is_headless`). ipywidgets is imported when the explorer is
first used.
"""

from __future__ import annotations

import pandas as pd

from lab._validation import _as_2d, _check_int, _check_option
from lab.config import MAX_POINTS_PER_TRACE
from lab.plots import plot_lines

__all__ = ["focus_explorer"]

#: Shading of the focus window in the explorer's plot.
FOCUS_COLOR = "rgba(214, 39, 40, 0.15)"


def focus_explorer(df, *, method: str = "ks", top: int = 5, focus=None,
                   max_points: int = MAX_POINTS_PER_TRACE):
    """Interactive metric-correlation explorer (ipywidgets).

    A range slider picks the focus window; the ranking of metrics by
    :func:`lab.preprocessor.rank_changes` (against the default baseline, the
    four focus lengths before it) and a plot of the ``top`` changed metrics,
    with the focus shaded, update in place. The status line under the slider
    gives both windows and says when the baseline is cut short at the start
    of the data (no warning is emitted while dragging).

    Parameters
    ----------
    df : DataFrame of shape (n_timepoints, n_metrics)
        Clean numeric metrics (see :func:`lab.preprocessor.clean_metrics`).
    method : {"ks", "volume"}
        Ranking method of :func:`lab.preprocessor.rank_changes`.
    top : int, default 5
        Metrics shown in the plot (the table shows the top ``2 * top``).
    focus : (start, end) positions, optional
        Initial focus, half-open; by default the last tenth of the rows.
    max_points : int
        Longer traces are decimated.

    Returns
    -------
    FocusExplorer
        An ``ipywidgets.VBox``; display it (end a cell with it). Its
        ``slider``, ``ranking`` (DataFrame), ``table`` (HTML widget) and
        ``figure`` (plotly Figure) attributes are updated on every change.

    Raises
    ------
    ValueError
        On too few rows (fewer than 2) or bad options.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> df = pd.DataFrame(np.random.default_rng(0).normal(size=(50, 3)), columns=list("abc"))
    >>> ex = focus_explorer(df, method="volume", top=2)
    >>> ex.slider.value = (40, 50)
    >>> len(ex.ranking), len(ex.figure.data)
    (3, 2)
    """
    cls = __getattr__("FocusExplorer")
    return cls(df, method=method, top=top, focus=focus, max_points=max_points)


def _make_focus_explorer_class():
    import ipywidgets as widgets

    class FocusExplorer(widgets.VBox):
        """Widget returned by :func:`focus_explorer`."""

        def __init__(self, df, *, method="ks", top=5, focus=None,
                     max_points=MAX_POINTS_PER_TRACE):
            from lab.preprocessor import RANK_METHODS

            _check_option(method, "method", RANK_METHODS)
            self._top = _check_int(top, "top", minimum=1)
            values, index, columns = _as_2d(df, "df", min_rows=2)
            self._df = pd.DataFrame(values, index=index, columns=columns)
            self._method, self._max_points = method, max_points
            n = len(values)
            if focus is None:
                focus = (max(1, n - max(1, n // 10)), n)
            self.slider = widgets.IntRangeSlider(
                value=tuple(focus), min=1, max=n, step=1, description="focus rows",
                continuous_update=False, layout=widgets.Layout(width="95%"))
            self.label = widgets.Label()
            self.table = widgets.HTML()
            self.output = widgets.Output()
            self.ranking: pd.DataFrame | None = None
            self.figure = None
            self.error: str | None = None
            super().__init__([self.slider, self.label, self.table, self.output])
            self.slider.observe(self._on_change, names="value")
            self._update(tuple(self.slider.value))

        def _on_change(self, change):
            self._update(tuple(change["new"]))

        def _update(self, window):
            from lab.preprocessor import BASELINE_FACTOR, rank_changes

            start, end = int(window[0]), int(window[1])
            idx = self._df.index
            # The default baseline, placed here and passed explicitly: rank_changes
            # would warn on every drag near the start of the data, where the
            # status line says it instead.
            wanted = BASELINE_FACTOR * max(0, end - start)
            base = (max(0, start - wanted), start)
            status = f"focus: {_rows_text(idx, start, end)}; baseline: {_rows_text(idx, *base)}"
            if base[1] - base[0] < wanted:
                status += (f", cut at the start of the data ({BASELINE_FACTOR} x "
                           f"{end - start} = {wanted} rows wanted)")
            self.label.value = status
            try:
                self.ranking = rank_changes(self._df, (start, end), baseline=base,
                                            method=self._method)
                self.error = None
            except ValueError as exc:  # e.g. an empty window while dragging
                self.error = str(exc)
                self.table.value = f"<pre>{exc}</pre>"
                return
            self.table.value = self.ranking.head(2 * self._top).to_html(float_format="%.4g")
            names = list(self.ranking.index[: self._top])
            fig = plot_lines(self._df, cols=names, max_points=self._max_points,
                             title=f"top {len(names)} changed metrics ({self._method})")
            fig.add_vrect(x0=idx[start], x1=idx[end - 1], fillcolor=FOCUS_COLOR,
                          line_width=0, layer="below")
            self.figure = fig
            if _in_kernel():  # outside a kernel, display would print the figure's repr
                from IPython.display import display

                self.output.clear_output(wait=True)
                with self.output:
                    display(fig)

    return FocusExplorer


def _rows_text(index: pd.Index, start: int, end: int) -> str:
    if end <= start:
        return "no rows"
    return f"{index[start]} .. {index[end - 1]} ({end - start} rows)"


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def __getattr__(name: str):
    # ipywidgets is imported only when the explorer is used.
    if name == "FocusExplorer":
        if "FocusExplorer" not in globals():
            globals()["FocusExplorer"] = _make_focus_explorer_class()
        return globals()["FocusExplorer"]
    raise AttributeError(f"module 'lab.explorer' has no attribute {name!r}")
