"""Figures for notebooks: DataFrame in, figure out.

Every function returns a figure (plotly by default, bokeh with
``backend="bokeh"``) and never calls ``show()``: end a notebook cell with the
figure, or write it with :func:`save`. Call :func:`setup_notebook` once at the
top of a notebook so that figures show in JupyterLab and Colab and are
embedded, offline, in the HTML report of a headless run.

Long series stay responsive: a trace with more than
``lab.config.MAX_POINTS_PER_TRACE`` points is decimated with a min-max
reduction (each bucket keeps its lowest and highest point, so spikes survive)
and traces with many points are drawn with WebGL. Histograms and box plots are
computed here, so a figure of a million rows stays small.
"""

from __future__ import annotations

import importlib.util
import numbers
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lab._validation import _as_2d, _check_float, _check_int, _check_option
from lab.config import MAX_POINTS_PER_TRACE

__all__ = [
    "setup_notebook",
    "plot_lines",
    "plot_lines_grid",
    "plot_hists",
    "plot_boxes",
    "plot_heatmap",
    "plot_scores",
    "save",
    "decimate",
    "plot_critical_difference",
]

BACKENDS = ("plotly", "bokeh")
# Above this many points a trace is drawn with WebGL (plotly Scattergl, bokeh
# webgl output); SVG gets sluggish past roughly ten thousand points.
WEBGL_MIN_POINTS = 10_000
# plotly renderers for setup_notebook: the mimetype output is what JupyterLab
# draws; the "notebook" part adds text/html with plotly.js inline, which is
# what nbconvert keeps in the HTML report (offline, no CDN).
NOTEBOOK_RENDERER = "plotly_mimetype+notebook"
COLAB_RENDERER = "colab"
# Default heights in pixels.
HEIGHT = 400
GRID_ROW_HEIGHT = 220
_TRUTH_COLOR = "rgba(214, 39, 40, 0.15)"
# Shaded windows of plot_lines_grid, in turn: grey suits a baseline given
# first, red a focus given second.
_WINDOW_COLORS = ("#7f7f7f", "#d62728", "#1f77b4", "#2ca02c", "#9467bd")
_WINDOW_ALPHA = 0.15
_DETECTION_COLOR = "#d62728"
_THRESHOLD_COLOR = "#7f7f7f"


# --------------------------------------------------------------------------- notebook setup


def setup_notebook(*, bokeh: bool = False) -> None:
    """Make figures show in notebooks and embed in headless HTML reports.

    Call it once, in the first code cell after the parameters. It sets
    plotly's default renderer to ``"plotly_mimetype+notebook"`` (``"colab"``
    on Google Colab): JupyterLab draws the ``application/vnd.plotly.v1+json``
    output, and the ``text/html`` output carries plotly.js inline (once per
    notebook), so the HTML report that ``lab run`` makes with nbconvert shows
    interactive figures offline. With ``bokeh=True`` it also loads BokehJS
    inline with ``bokeh.io.output_notebook``; show bokeh figures with
    ``bokeh.io.show(fig)``.

    Parameters
    ----------
    bokeh : bool, default False
        Also set up bokeh output (adds BokehJS, about 1 MB, to the notebook).

    Returns
    -------
    None
        Nothing, so the cell shows no output.

    Examples
    --------
    >>> import plotly.io as pio
    >>> previous = pio.renderers.default
    >>> setup_notebook()
    >>> pio.renderers.default
    'plotly_mimetype+notebook'
    >>> pio.renderers.default = previous
    """
    import plotly.io as pio

    pio.renderers.default = COLAB_RENDERER if "google.colab" in sys.modules \
        else NOTEBOOK_RENDERER
    if bokeh:
        from bokeh.io import output_notebook
        from bokeh.resources import INLINE

        output_notebook(resources=INLINE, hide_banner=True)


# --------------------------------------------------------------------------- helpers


def _frame(df, name: str, cols=None) -> pd.DataFrame:
    """Validated numeric frame (NaN allowed: gaps are drawn as gaps)."""
    values, index, columns = _as_2d(df, name, allow_nan=True)
    frame = pd.DataFrame(values, index=index, columns=columns)
    if cols is None:
        return frame
    if isinstance(cols, str) or not isinstance(cols, Sequence | pd.Index):
        cols = [cols]
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"cols {missing} are not columns of {name} "
                         f"(columns: {list(frame.columns)[:10]})")
    if not len(cols):
        raise ValueError("cols is empty; pass None for every column")
    return frame.loc[:, list(cols)]


def decimate(n: int, y: np.ndarray | None = None, max_points: int = MAX_POINTS_PER_TRACE
             ) -> np.ndarray:
    """Positions to keep so that a trace of ``n`` points has at most ``max_points``.

    Min-max decimation: the series is cut into ``max_points // 2`` buckets
    and each keeps the positions of its smallest and largest value, so peaks
    and dips stay visible. Without ``y`` (or when ``n <= max_points``) the
    positions are evenly spaced or all kept.

    Parameters
    ----------
    n : int
        Number of points.
    y : ndarray of shape (n,), optional
        Values; NaN is allowed.
    max_points : int
        Most points kept (>= 2).

    Returns
    -------
    ndarray of int
        Sorted, unique positions.

    Notes
    -----
    The min-max reduction is the M4 idea of Jugel et al., "M4: A
    Visualization-Oriented Time Series Data Aggregation", VLDB 2014, without
    the first/last points of each bucket.

    Examples
    --------
    >>> y = np.zeros(1000); y[567] = 9.0
    >>> keep = decimate(1000, y, max_points=20)
    >>> len(keep) <= 20, 567 in keep
    (True, True)
    """
    n = _check_int(n, "n", minimum=0)
    max_points = _check_int(max_points, "max_points", minimum=2)
    if n <= max_points:
        return np.arange(n)
    buckets = max_points // 2
    if y is None:
        return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))
    return _minmax_kernel(np.asarray(y, dtype=np.float64), buckets)


def _minmax_kernel(y: np.ndarray, buckets: int) -> np.ndarray:
    n = len(y)
    size = -(-n // buckets)
    padded = np.full(buckets * size, np.nan)
    padded[:n] = y
    blocks = padded.reshape(buckets, size)
    lo = np.where(np.isnan(blocks), np.inf, blocks).argmin(axis=1)
    hi = np.where(np.isnan(blocks), -np.inf, blocks).argmax(axis=1)
    base = np.arange(buckets) * size
    keep = np.concatenate([base + lo, base + hi])
    return np.unique(np.minimum(keep, n - 1))


def _xy(frame: pd.DataFrame, col, max_points: int):
    y = frame[col].to_numpy()
    keep = decimate(len(y), y, max_points)
    return frame.index[keep], y[keep], len(y)


def _is_datetime(index: pd.Index) -> bool:
    return isinstance(index, pd.DatetimeIndex)


def _palette(k: int) -> list[str]:
    from bokeh.palettes import Category10_10

    return [Category10_10[i % 10] for i in range(k)]


def _bokeh_figure(title, index=None, height=HEIGHT, n_points=0, **kwargs):
    from bokeh.plotting import figure

    kwargs.setdefault("sizing_mode", "stretch_width")
    return figure(title=title, height=height,
                  x_axis_type="datetime" if index is not None and _is_datetime(index) else "auto",
                  output_backend="webgl" if n_points > WEBGL_MIN_POINTS else "canvas",
                  tools="pan,box_zoom,xwheel_zoom,reset,save,hover", **kwargs)


def _plotly_scatter(n_points: int):
    import plotly.graph_objects as go

    return go.Scattergl if n_points > WEBGL_MIN_POINTS else go.Scatter


def _bokeh_x(index):
    return index.to_numpy() if _is_datetime(index) else np.asarray(index)


# --------------------------------------------------------------------------- lines


def plot_lines(df, cols=None, *, title: str | None = None, yaxis_title: str | None = None,
               height: int = HEIGHT, max_points: int = MAX_POINTS_PER_TRACE,
               backend: str = "plotly"):
    """All series of a frame as lines on one set of axes.

    Parameters
    ----------
    df : DataFrame, Series or ndarray of shape (n_timepoints, n_series)
        Series against the time index. NaN shows as a gap.
    cols : list, optional
        Columns to draw, in this order; all by default.
    title, yaxis_title : str, optional
        Figure title and y-axis title.
    height : int
        Height in pixels.
    max_points : int
        Longer traces are decimated to this many points (see :func:`decimate`).
    backend : {"plotly", "bokeh"}

    Returns
    -------
    plotly.graph_objects.Figure or bokeh.plotting.figure
        One trace (plotly) or line renderer (bokeh) per column, named after it.

    Raises
    ------
    ValueError
        On non-numeric data, unknown ``cols`` or an unknown backend.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"a": [1, 2, 3], "b": [3, 1, 2]})
    >>> fig = plot_lines(df, title="demo")
    >>> [t.name for t in fig.data], fig.layout.title.text
    (['a', 'b'], 'demo')
    """
    _check_option(backend, "backend", BACKENDS)
    frame = _frame(df, "df", cols)
    if backend == "bokeh":
        fig = _bokeh_figure(title, frame.index, height, len(frame))
        for col, color in zip(frame.columns, _palette(frame.shape[1]), strict=True):
            x, y, _ = _xy(frame, col, max_points)
            fig.line(_bokeh_x(x), y, legend_label=str(col), color=color, name=str(col))
        fig.yaxis.axis_label = yaxis_title
        fig.legend.click_policy = "hide"
        return fig
    import plotly.graph_objects as go

    fig = go.Figure()
    for col in frame.columns:
        x, y, n = _xy(frame, col, max_points)
        trace = _plotly_scatter(len(y))
        fig.add_trace(trace(x=x, y=y, mode="lines", name=str(col),
                            meta={"n_points": n, "decimated": n > len(y)}))
    fig.update_layout(title=title, height=height, yaxis_title=yaxis_title,
                      hovermode="x unified")
    return fig


def plot_lines_grid(df, cols=None, ncols: int = 2, *, title: str | None = None,
                    row_height: int = GRID_ROW_HEIGHT, shared_x: bool = True,
                    windows=None, max_points: int = MAX_POINTS_PER_TRACE,
                    backend: str = "plotly"):
    """One small line plot per series, in a grid.

    Parameters
    ----------
    df : DataFrame, Series or ndarray of shape (n_timepoints, n_series)
    cols : list, optional
        Columns to draw; all by default.
    ncols : int, default 2
        Plots per grid row.
    title : str, optional
    row_height : int
        Height of one grid row in pixels.
    shared_x : bool, default True
        Zooming one plot zooms them all.
    windows : list of (start, end[, label[, color]]), optional
        Time windows shaded in every plot, e.g. a baseline and a focus. The
        bounds are read as in :func:`lab.preprocessor.rank_changes`: ``int``
        bounds are positions, half-open; other bounds are index labels, both
        included. Colours default to grey, red, blue, ... in turn.
    max_points : int
        Longer traces are decimated to this many points.
    backend : {"plotly", "bokeh"}

    Returns
    -------
    plotly Figure or bokeh layout
        plotly: one subplot per column, titled with its name, and one ``rect``
        shape per window and subplot, named after the window's label (the
        first of each window shows in the legend). bokeh: a ``column`` of a
        title ``Div`` (which names the windows in their colours) and a
        ``GridPlot`` of figures, each with one ``BoxAnnotation`` per window.

    Raises
    ------
    ValueError
        On unknown columns, bad sizes, or a window that is malformed,
        reversed or outside the data.

    Examples
    --------
    >>> import numpy as np
    >>> fig = plot_lines_grid(np.arange(12.0).reshape(4, 3), ncols=2, title="grid",
    ...                       windows=[(0, 2, "baseline"), (2, 4, "focus")])
    >>> len(fig.data), [a.text for a in fig.layout.annotations]
    (3, ['0', '1', '2'])
    >>> [(s.name, s.x0, s.x1) for s in fig.layout.shapes][:2]
    [('baseline', 0, 1), ('focus', 2, 3)]
    """
    _check_option(backend, "backend", BACKENDS)
    ncols = _check_int(ncols, "ncols", minimum=1)
    frame = _frame(df, "df", cols)
    shades = _shaded_windows(windows, frame.index, "windows")
    ncols = min(ncols, frame.shape[1])
    nrows = -(-frame.shape[1] // ncols)
    if backend == "bokeh":
        from bokeh.layouts import column, gridplot
        from bokeh.models import BoxAnnotation, Div

        figs, x_range = [], None
        for col in frame.columns:
            extra = {"x_range": x_range} if shared_x and x_range is not None else {}
            fig = _bokeh_figure(str(col), frame.index, row_height, len(frame),
                                sizing_mode="stretch_width", **extra)
            x, y, _ = _xy(frame, col, max_points)
            fig.line(_bokeh_x(x), y, name=str(col))
            for x0, x1, label, color in shades:
                fig.add_layout(BoxAnnotation(left=x0, right=x1, fill_color=color,
                                             fill_alpha=_WINDOW_ALPHA, line_alpha=0,
                                             name=label))
            x_range = fig.x_range
            figs.append(fig)
        grid = gridplot(figs, ncols=ncols, sizing_mode="stretch_width")
        keys = "".join(f' <span style="color:{color}">&#9632; {label}</span>'
                       for _, _, label, color in shades)
        return column(Div(text=f"<b>{title or ''}</b>{keys}"), grid,
                      sizing_mode="stretch_width")
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=nrows, cols=ncols, shared_xaxes="all" if shared_x else False,
                        subplot_titles=[str(c) for c in frame.columns],
                        vertical_spacing=min(0.08, 0.3 / nrows))
    for k, col in enumerate(frame.columns):
        x, y, n = _xy(frame, col, max_points)
        trace = _plotly_scatter(len(y))
        fig.add_trace(trace(x=x, y=y, mode="lines", name=str(col), showlegend=False,
                            meta={"n_points": n, "decimated": n > len(y)}),
                      row=k // ncols + 1, col=k % ncols + 1)
    for k in range(frame.shape[1]):
        for x0, x1, label, color in shades:
            fig.add_vrect(x0=x0, x1=x1, fillcolor=color, opacity=_WINDOW_ALPHA, line_width=0,
                          layer="below", name=label, legendgroup=label, showlegend=k == 0,
                          row=k // ncols + 1, col=k % ncols + 1)
    fig.update_layout(title=title, height=max(HEIGHT, row_height * nrows))
    return fig


def _shaded_windows(windows, index: pd.Index, name: str) -> list[tuple[Any, Any, str, str]]:
    """``(first label, last label, label, colour)`` of each window to shade."""
    from lab.preprocessor import window_rows

    if windows is None:
        return []
    if isinstance(windows, str) or not isinstance(windows, Sequence):
        raise ValueError(f"{name} must be a list of (start, end[, label[, color]]) tuples, "
                         f"got {windows!r}")
    out = []
    for k, w in enumerate(windows):
        if isinstance(w, str) or not isinstance(w, Sequence) or not 2 <= len(w) <= 4:
            raise ValueError(f"{name}[{k}] must be a (start, end[, label[, color]]) tuple, "
                             f"got {w!r}")
        s, e = window_rows(tuple(w[:2]), index, name=f"{name}[{k}]")
        label = str(w[2]) if len(w) > 2 else f"window {k}"
        color = str(w[3]) if len(w) > 3 else _WINDOW_COLORS[k % len(_WINDOW_COLORS)]
        out.append((index[s], index[e - 1], label, color))
    return out


# --------------------------------------------------------------------------- distributions


def _hist_kernel(values: np.ndarray, bins: int):
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ValueError("df has no finite value to histogram")
    edges = np.histogram_bin_edges(finite, bins=bins)
    counts = [np.histogram(c[np.isfinite(c)], bins=edges)[0] for c in values.T]
    return edges, counts


def plot_hists(df, cols=None, bins: int = 50, *, title: str | None = None,
               height: int = HEIGHT, backend: str = "plotly"):
    """Overlaid histograms of the series, on shared bins.

    Counts are computed here (``numpy.histogram``), so the figure holds
    ``bins`` bars per series however long the data is. NaN is ignored.

    Parameters
    ----------
    df : DataFrame, Series or ndarray of shape (n_timepoints, n_series)
    cols : list, optional
    bins : int, default 50
        Number of bins shared by all series.
    title : str, optional
    height : int
    backend : {"plotly", "bokeh"}

    Returns
    -------
    plotly Figure or bokeh figure
        One bar trace (plotly) or quad renderer (bokeh) per column.

    Examples
    --------
    >>> import numpy as np
    >>> fig = plot_hists(np.arange(100.0), bins=4)
    >>> fig.data[0].y.tolist()
    [25, 25, 25, 25]
    """
    _check_option(backend, "backend", BACKENDS)
    bins = _check_int(bins, "bins", minimum=1)
    frame = _frame(df, "df", cols)
    edges, counts = _hist_kernel(frame.to_numpy(), bins)
    if backend == "bokeh":
        fig = _bokeh_figure(title, height=height)
        for col, c, color in zip(frame.columns, counts, _palette(len(counts)), strict=True):
            fig.quad(top=c, bottom=0, left=edges[:-1], right=edges[1:], fill_alpha=0.5,
                     color=color, legend_label=str(col), name=str(col))
        fig.yaxis.axis_label = "count"
        return fig
    import plotly.graph_objects as go

    fig = go.Figure()
    centers, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    for col, c in zip(frame.columns, counts, strict=True):
        fig.add_trace(go.Bar(x=centers, y=c, width=widths, name=str(col), opacity=0.6))
    fig.update_layout(title=title, height=height, barmode="overlay", bargap=0,
                      yaxis_title="count")
    return fig


def _box_kernel(values: np.ndarray) -> dict[str, np.ndarray]:
    """Tukey box statistics per column, ignoring NaN."""
    q1, med, q3 = np.nanpercentile(values, [25, 50, 75], axis=0)
    iqr = q3 - q1
    low = np.where(values >= q1 - 1.5 * iqr, values, np.inf)
    high = np.where(values <= q3 + 1.5 * iqr, values, -np.inf)
    return {"q1": q1, "median": med, "q3": q3,
            "lowerfence": np.nanmin(low, axis=0), "upperfence": np.nanmax(high, axis=0)}


def plot_boxes(df, cols=None, *, title: str | None = None, height: int = HEIGHT,
               backend: str = "plotly"):
    """One Tukey box per series (whiskers at the last point within 1.5 IQR).

    Box statistics are computed here, so the figure stays small for long
    series; outliers beyond the whiskers are not drawn. NaN is ignored.

    Parameters
    ----------
    df : DataFrame, Series or ndarray of shape (n_timepoints, n_series)
    cols : list, optional
    title : str, optional
    height : int
    backend : {"plotly", "bokeh"}

    Returns
    -------
    plotly Figure or bokeh figure
        plotly: one precomputed ``Box`` trace per column. bokeh: a categorical
        x axis with a box (``vbar``) and whiskers (``segment``) per column.

    Raises
    ------
    ValueError
        If a selected column has no finite value.

    Examples
    --------
    >>> import numpy as np
    >>> fig = plot_boxes(np.arange(9.0))
    >>> fig.data[0].median, fig.data[0].q1
    ((4.0,), (2.0,))
    """
    _check_option(backend, "backend", BACKENDS)
    frame = _frame(df, "df", cols)
    values = frame.to_numpy()
    empty = [c for c, ok in zip(frame.columns, np.isfinite(values).any(axis=0), strict=True)
             if not ok]
    if empty:
        raise ValueError(f"df columns {empty} have no finite value to summarise")
    st = _box_kernel(values)
    names = [str(c) for c in frame.columns]
    if backend == "bokeh":
        fig = _bokeh_figure(title, height=height, x_range=names)
        fig.segment(names, st["lowerfence"], names, st["upperfence"], color="black")
        fig.vbar(x=names, width=0.6, bottom=st["q1"], top=st["q3"], fill_alpha=0.6,
                 line_color="black", name="boxes")
        fig.scatter(names, st["median"], marker="dash", size=25, color="black",
                    name="median")
        return fig
    import plotly.graph_objects as go

    fig = go.Figure()
    for k, name in enumerate(names):
        fig.add_trace(go.Box(x=[name], name=name,
                             **{key: [float(v[k])] for key, v in st.items()}))
    fig.update_layout(title=title, height=height, showlegend=False)
    return fig


# --------------------------------------------------------------------------- heatmaps


def plot_heatmap(matrix_or_stack, labels=None, *, frame_labels=None, title: str | None = None,
                 colorscale: str = "Viridis", zmin: float | None = None,
                 zmax: float | None = None, height: int = HEIGHT, backend: str = "plotly"):
    """A matrix as a heatmap, or a stack of matrices with a slider.

    Parameters
    ----------
    matrix_or_stack : array-like of shape (rows, cols) or (n_items, rows, cols)
        One matrix, or a stack such as MSCRED signature matrices over time.
        A DataFrame gives its index and columns as labels.
    labels : list or (row_labels, col_labels), optional
        Axis labels; one list is used for both axes of a square matrix.
    frame_labels : list, optional
        One label per matrix of a stack (e.g. timestamps), shown on the slider.
    title : str, optional
    colorscale : str
        plotly colorscale name (bokeh uses Viridis256).
    zmin, zmax : float, optional
        Colour limits; by default the range of the whole stack, so colours
        mean the same on every slider step.
    height : int
    backend : {"plotly", "bokeh"}

    Returns
    -------
    plotly Figure or bokeh layout
        plotly: one ``Heatmap`` trace per matrix, only the current one
        visible, and a slider with one step per matrix. bokeh: an ``image``
        figure, in a ``column`` with a ``Slider`` when given a stack.

    Raises
    ------
    ValueError
        On a wrong number of dimensions, an empty stack, complex values, or
        labels of the wrong length.

    Examples
    --------
    >>> import numpy as np
    >>> stack = np.random.default_rng(0).random((3, 2, 2))
    >>> fig = plot_heatmap(stack, labels=["a", "b"], frame_labels=["t0", "t1", "t2"])
    >>> len(fig.data), len(fig.layout.sliders[0].steps), fig.data[1].visible
    (3, 3, False)
    """
    _check_option(backend, "backend", BACKENDS)
    if isinstance(matrix_or_stack, pd.DataFrame):
        if labels is None:
            labels = (list(matrix_or_stack.index), list(matrix_or_stack.columns))
        matrix_or_stack = matrix_or_stack.to_numpy()
    if np.iscomplexobj(matrix_or_stack):
        raise ValueError("matrix_or_stack has complex values; expected real numbers "
                         "(take .real, .imag or abs() explicitly)")
    arr = np.asarray(matrix_or_stack, dtype=np.float64)
    if arr.ndim not in (2, 3) or 0 in arr.shape:
        raise ValueError(f"matrix_or_stack must have shape (rows, cols) or "
                         f"(n_items, rows, cols) with no empty axis, got {arr.shape}")
    stack = arr[None] if arr.ndim == 2 else arr
    n, rows, cols = stack.shape
    row_labels, col_labels = _heatmap_labels(labels, rows, cols)
    if frame_labels is None:
        frame_labels = [str(i) for i in range(n)]
    elif len(frame_labels) != n:
        raise ValueError(f"frame_labels has {len(frame_labels)} labels for {n} matrices")
    finite = stack[np.isfinite(stack)]
    lo = float(finite.min()) if zmin is None and finite.size else zmin
    hi = float(finite.max()) if zmax is None and finite.size else zmax
    if backend == "bokeh":
        return _heatmap_bokeh(stack, row_labels, col_labels, frame_labels, title, lo, hi, height)
    import plotly.graph_objects as go

    fig = go.Figure()
    for k in range(n):
        fig.add_trace(go.Heatmap(z=stack[k], x=col_labels, y=row_labels, zmin=lo, zmax=hi,
                                 colorscale=colorscale, visible=k == 0,
                                 name=str(frame_labels[k])))
    if n > 1:
        steps = [{"method": "update", "label": str(frame_labels[k]),
                  "args": [{"visible": [j == k for j in range(n)]}]} for k in range(n)]
        fig.update_layout(sliders=[{"active": 0, "steps": steps,
                                    "currentvalue": {"prefix": "matrix: "}}])
    fig.update_layout(title=title, height=height, yaxis={"autorange": "reversed"})
    return fig


def _heatmap_labels(labels, rows: int, cols: int):
    if labels is None:
        return [str(i) for i in range(rows)], [str(i) for i in range(cols)]
    if (isinstance(labels, tuple) and len(labels) == 2 and not isinstance(labels[0], str)
            and isinstance(labels[0], Sequence)):
        row_labels, col_labels = list(labels[0]), list(labels[1])
    else:
        row_labels = col_labels = list(labels)
    if len(row_labels) != rows or len(col_labels) != cols:
        raise ValueError(f"labels give {len(row_labels)} row and {len(col_labels)} column "
                         f"labels for matrices of shape ({rows}, {cols})")
    return [str(v) for v in row_labels], [str(v) for v in col_labels]


def _heatmap_bokeh(stack, row_labels, col_labels, frame_labels, title, lo, hi, height):
    from bokeh.layouts import column
    from bokeh.models import ColumnDataSource, CustomJS, LinearColorMapper, Slider

    n, rows, cols = stack.shape
    mapper = LinearColorMapper(palette="Viridis256", low=lo, high=hi)
    # bokeh's image draws row 0 at the bottom: flip so row 0 is on top, as in plotly.
    images = [m[::-1].copy() for m in stack]
    source = ColumnDataSource({"image": [images[0]]})
    fig = _bokeh_figure(title, height=height, x_range=(0, cols), y_range=(0, rows))
    fig.image(image="image", x=0, y=0, dw=cols, dh=rows, color_mapper=mapper, source=source,
              name="heatmap")
    fig.xaxis.ticker = list(np.arange(cols) + 0.5)
    fig.xaxis.major_label_overrides = {float(i + 0.5): s for i, s in enumerate(col_labels)}
    fig.yaxis.ticker = list(np.arange(rows) + 0.5)
    fig.yaxis.major_label_overrides = {float(rows - i - 0.5): s for i, s in enumerate(row_labels)}
    if n == 1:
        return fig
    slider = Slider(start=0, end=n - 1, value=0, step=1, title="matrix",
                    sizing_mode="stretch_width")
    slider.js_on_change("value", CustomJS(args={"source": source, "images": images,
                                                "labels": [str(v) for v in frame_labels],
                                                "slider": slider}, code="""
        source.data = {image: [images[slider.value]]};
        slider.title = "matrix: " + labels[slider.value];
    """))
    return column(slider, fig, sizing_mode="stretch_width")


# --------------------------------------------------------------------------- scores


def _row_windows(windows, index: pd.Index, name: str) -> list[tuple[int, int]]:
    """``(start, end)`` pairs as half-open rows, read by the lab's one window rule.

    ``int`` bounds are positions, half-open; other bounds are index labels,
    both included (``lab.preprocessor.window_rows``). A reversed pair, or one that
    reaches outside the data, raises a ValueError naming ``name[k]``.
    """
    from lab.preprocessor import window_rows

    return [window_rows(w, index, name=f"{name}[{k}]") for k, w in enumerate(windows)]


def _mask_like(values, n: int) -> bool:
    """Whether a list reads as a 0/1 mask rather than as index labels.

    Booleans always do. 0s and 1s do when there is one per timepoint, or when
    a value repeats (index labels would not).
    """
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size == 0:
        return False
    if arr.dtype == bool:
        return True
    if not np.issubdtype(arr.dtype, np.number) or not np.isin(arr, (0, 1)).all():
        return False
    return arr.size == n or len(np.unique(arr)) < arr.size


def _mask(values, n: int, name: str) -> np.ndarray:
    from lab._validation import _check_labels

    labels = _check_labels(values, name)
    if len(labels) != n:
        raise ValueError(f"{name} has {len(labels)} labels but scores has {n} timepoints; "
                         f"a 0/1 mask needs one value per score")
    return labels


def _windows_from(truth, index: pd.Index, name: str) -> list[tuple[Any, Any]]:
    """True windows as (first label, last label) pairs of rows of ``index``."""
    if truth is None:
        return []
    if isinstance(truth, pd.Series | np.ndarray) or (
            isinstance(truth, Sequence) and len(truth) and all(np.isscalar(v) for v in truth)):
        from lab.metrics import label_ranges

        ranges = label_ranges(_mask(truth, len(index), name))
    else:
        try:
            pairs = list(truth)
        except TypeError:
            raise ValueError(f"{name} must be a 0/1 mask or a list of (start, end) pairs, "
                             f"got {type(truth).__name__}") from None
        _check_unambiguous(pairs, index, name)
        ranges = _row_windows(pairs, index, name)
    return [(index[s], index[e - 1]) for s, e in ranges]


def _check_unambiguous(pairs: list, index: pd.Index, name: str) -> None:
    """Refuse int bounds where they could mean labels as well as positions.

    On an integer index other than ``0 .. n-1`` (a test split of a RangeIndex,
    say), ``(12000, 12009)`` may be meant as labels; read as positions it would
    be shaded elsewhere, or not at all.
    """
    if not pd.api.types.is_integer_dtype(index.dtype) or index.equals(pd.RangeIndex(len(index))):
        return
    for k, w in enumerate(pairs):
        try:
            bounds = tuple(w)
        except TypeError:
            continue  # window_rows names the malformed pair
        if len(bounds) == 2 and all(
                isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in bounds):
            raise ValueError(
                f"{name}[{k}]={bounds!r}: int bounds are positions, but the scores index "
                f"holds integer labels other than 0..{len(index) - 1} ({index[0]} .. "
                f"{index[-1]}), so they could be meant as labels; pass a 0/1 mask with one "
                f"value per score instead")


def _detections_from(events, scores: pd.DataFrame, threshold, name: str) -> np.ndarray:
    """Positions of detections: from ``events``, else where a score exceeds ``threshold``."""
    index = scores.index
    if events is None:
        if threshold is None:
            return np.array([], dtype=np.int64)
        return np.flatnonzero((scores.to_numpy() > threshold).any(axis=1))
    if isinstance(events, pd.Series | np.ndarray | Sequence) and _mask_like(events, len(index)):
        return np.flatnonzero(_mask(events, len(index), name))
    positions = []
    for e in events:
        if isinstance(e, int | np.integer) and not _is_datetime(index) and e not in index:
            raise ValueError(f"{name} holds {e!r}, not a label of the scores index")
        try:
            positions.append(index.get_loc(e))
        except (KeyError, TypeError):
            raise ValueError(f"{name} holds {e!r}, not a label of the scores index; pass index "
                             f"labels, or a 0/1 mask with one value per score ({len(index)})"
                             ) from None
    return np.array(positions, dtype=np.int64)


def plot_scores(scores, threshold: float | None = None, events=None, truth=None, *,
                title: str | None = None, yaxis_title: str = "score", height: int = HEIGHT,
                max_points: int = MAX_POINTS_PER_TRACE, backend: str = "plotly"):
    """An anomaly or distance score with its threshold, detections and true windows.

    Parameters
    ----------
    scores : Series, DataFrame or ndarray
        One score (or several columns of scores) indexed by time.
    threshold : float, optional
        Drawn as a horizontal dashed line; a finite number.
    events : labels, 0/1 mask or None
        Detections, marked on the (first) score: index labels, or a 0/1 or
        boolean mask with one value per score (array, Series or list; a list
        of 0s and 1s is a mask when it has that length or repeats a value).
        By default, the points where a score exceeds ``threshold`` (none
        without a threshold).
    truth : 0/1 mask or list of (start, end), optional
        True anomaly windows, shaded: a 0/1 mask with one value per score, or
        ``(start, end)`` pairs read as in :func:`lab.preprocessor.rank_changes`
        (``int`` bounds are positions, half-open; other bounds are index
        labels, both included). On an integer index other than ``0 .. n-1``,
        where ``int`` bounds could be meant as labels, pairs of ints are
        refused: pass a mask there.
    title, yaxis_title : str, optional
    height : int
    max_points : int
        Score traces longer than this are decimated (detections are not).
    backend : {"plotly", "bokeh"}

    Returns
    -------
    plotly Figure or bokeh figure
        plotly: a line per score, a ``"detections"`` marker trace, one shaded
        ``rect`` shape per true window and a dashed ``line`` shape for the
        threshold. bokeh: line renderers, a ``"detections"`` scatter, one
        ``BoxAnnotation`` per window and a ``Span`` for the threshold.

    Raises
    ------
    ValueError
        On a mask of the wrong length or with values other than 0/1, a
        ``truth`` window that is reversed or reaches outside the data,
        detections that are not in the index, or a ``threshold`` that is not
        a finite number.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.Series([0.1, 0.2, 0.9, 0.8, 0.1], name="score")
    >>> fig = plot_scores(s, threshold=0.5, truth=[0, 0, 1, 1, 0])
    >>> [t.name for t in fig.data], fig.data[1].x.tolist(), len(fig.layout.shapes)
    (['score', 'detections'], [2, 3], 2)
    """
    _check_option(backend, "backend", BACKENDS)
    if threshold is not None:
        threshold = _check_float(threshold, "threshold")
    if isinstance(scores, pd.Series) and scores.name is None:
        scores = scores.rename("score")
    frame = _frame(scores, "scores")
    if not isinstance(scores, pd.Series | pd.DataFrame) and frame.shape[1] == 1:
        frame.columns = ["score"]
    windows = _windows_from(truth, frame.index, "truth")
    hits = _detections_from(events, frame, threshold, "events")
    hit_x, hit_y = frame.index[hits], frame.iloc[hits, 0].to_numpy()
    if backend == "bokeh":
        from bokeh.models import BoxAnnotation, Span

        fig = _bokeh_figure(title, frame.index, height, len(frame))
        for col, color in zip(frame.columns, _palette(frame.shape[1]), strict=True):
            x, y, _ = _xy(frame, col, max_points)
            fig.line(_bokeh_x(x), y, legend_label=str(col), color=color, name=str(col))
        for start, end in windows:
            fig.add_layout(BoxAnnotation(left=start, right=end, fill_color="#d62728",
                                         fill_alpha=0.15, line_alpha=0))
        if threshold is not None:
            fig.add_layout(Span(location=float(threshold), dimension="width",
                                line_dash="dashed", line_color=_THRESHOLD_COLOR))
        fig.scatter(_bokeh_x(hit_x), hit_y, color=_DETECTION_COLOR, size=7, marker="x",
                    legend_label="detections", name="detections")
        fig.yaxis.axis_label = yaxis_title
        return fig
    import plotly.graph_objects as go

    fig = go.Figure()
    for col in frame.columns:
        x, y, n = _xy(frame, col, max_points)
        fig.add_trace(_plotly_scatter(len(y))(x=x, y=y, mode="lines", name=str(col),
                                              meta={"n_points": n, "decimated": n > len(y)}))
    fig.add_trace(_plotly_scatter(len(hits))(
        x=hit_x, y=hit_y, mode="markers", name="detections",
        marker={"color": _DETECTION_COLOR, "symbol": "x", "size": 8}))
    shapes = [{"type": "rect", "xref": "x", "yref": "paper", "x0": s, "x1": e, "y0": 0,
               "y1": 1, "fillcolor": _TRUTH_COLOR, "line": {"width": 0}, "layer": "below",
               "name": "truth"} for s, e in windows]
    if threshold is not None:
        shapes.append({"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1,
                       "y0": float(threshold), "y1": float(threshold), "name": "threshold",
                       "line": {"color": _THRESHOLD_COLOR, "dash": "dash"}})
    fig.update_layout(title=title, height=height, yaxis_title=yaxis_title, shapes=shapes)
    return fig


# --------------------------------------------------------------------------- saving


def _is_plotly(fig) -> bool:
    import plotly.graph_objects as go

    return isinstance(fig, go.Figure)


def _is_bokeh(fig) -> bool:
    from bokeh.model import Model

    return isinstance(fig, Model)


def _png_exporter(fig) -> bool:
    """Whether a PNG exporter for this figure's library is installed."""
    if _is_plotly(fig):
        return importlib.util.find_spec("kaleido") is not None
    return importlib.util.find_spec("selenium") is not None


def save(fig, path, *, png: bool | str = "auto", title: str | None = None) -> list[Path]:
    """Write a figure as standalone HTML (plotly.js or BokehJS inline), and PNG if possible.

    Parameters
    ----------
    fig : plotly Figure or bokeh figure/layout
    path : str or Path
        Destination; the HTML file gets the ``.html`` suffix, the PNG the
        ``.png`` suffix, whatever suffix ``path`` has.
    png : {"auto", True, False}
        ``"auto"`` writes a PNG only when an image exporter is installed
        (``kaleido`` for plotly, ``selenium`` and a browser driver for bokeh)
        and silently skips it otherwise; ``True`` raises if none is
        installed; ``False`` never writes one.
    title : str, optional
        Title of the HTML page (bokeh); defaults to the file name.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    ValueError
        If ``fig`` is not a plotly or bokeh figure.
    RuntimeError
        With ``png=True`` when no image exporter is installed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> fig = plot_lines([1.0, 2.0, 3.0])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     written = save(fig, pathlib.Path(d) / "lines", png=False)
    ...     [p.name for p in written], written[0].stat().st_size > 1_000_000
    (['lines.html'], True)
    """
    if png not in ("auto", True, False):
        raise ValueError(f"png must be 'auto', True or False, got {png!r}")
    if not (_is_plotly(fig) or _is_bokeh(fig)):
        raise ValueError(f"fig must be a plotly Figure or a bokeh model, got {type(fig).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    html = path.with_suffix(".html")
    if _is_plotly(fig):
        fig.write_html(html, include_plotlyjs=True, full_html=True)
    else:
        from bokeh.embed import file_html
        from bokeh.resources import INLINE

        html.write_text(file_html(fig, INLINE, title or path.stem), encoding="utf-8")
    written = [html]
    exporter = _png_exporter(fig)
    if png is True and not exporter:
        raise RuntimeError("png=True but no image exporter is installed: install kaleido "
                           "(plotly) or selenium with a browser driver (bokeh)")
    if png and exporter:
        target = path.with_suffix(".png")
        if _is_plotly(fig):
            fig.write_image(target)
        else:
            from bokeh.io import export_png

            export_png(fig, filename=str(target))
        written.append(target)
    return written


# --------------------------------------------------------------------------- leaderboards


def plot_critical_difference(result, *, title: str | None = None, height: int | None = None):
    """Demšar's critical-difference diagram of a :func:`lab.evaluation.critical_difference`.

    The axis holds the mean ranks (1, the best, on the left); each method
    hangs from its mean rank to its label, the best half to the left and the
    rest to the right; a thick bar joins the methods that are not
    significantly different (Nemenyi), and the CD segment above the axis
    shows the critical difference.

    Parameters
    ----------
    result : CriticalDifference
        From :func:`lab.evaluation.critical_difference`.
    title : str, optional
        Defaults to the CD, alpha, number of data sets and Friedman's p-value.
    height : int, optional
        Pixels; grows with the number of methods by default.

    Returns
    -------
    plotly Figure

    Raises
    ------
    ValueError
        If ``result`` is not a CriticalDifference.

    Examples
    --------
    >>> import pandas as pd
    >>> from lab.evaluation import critical_difference
    >>> cd = critical_difference(pd.DataFrame({"a": [3, 2, 3.0], "b": [1, 1, 2.0], "c": [2, 3, 1.0]}))
    >>> fig = plot_critical_difference(cd)
    >>> [t.name for t in fig.data][:3]
    ['a', 'c', 'b']
    """
    import plotly.graph_objects as go

    from lab.evaluation import CriticalDifference

    if not isinstance(result, CriticalDifference):
        raise ValueError(f"result must be a CriticalDifference from "
                         f"lab.evaluation.critical_difference, got {type(result).__name__}")
    ranks = result.mean_ranks
    k = len(ranks)
    half = (k + 1) // 2
    step = 1.0
    fig = go.Figure()
    for i, (name, r) in enumerate(ranks.items()):
        left = i < half
        depth = -(i + 1 if left else k - i) * step - len(result.cliques) * 0.4
        x_end = 0.5 if left else k + 0.5
        fig.add_trace(go.Scatter(
            x=[r, r, x_end], y=[0, depth, depth], mode="lines+text", name=str(name),
            line={"color": "black", "width": 1}, hovertemplate=f"{name}: mean rank {r:.2f}",
            text=["", "", f"{name} ({r:.2f})"],
            textposition="middle left" if left else "middle right", showlegend=False))
    for j, members in enumerate(result.cliques):
        lo, hi = ranks[list(members)].min(), ranks[list(members)].max()
        y = -0.4 * (j + 1)
        fig.add_trace(go.Scatter(x=[lo - 0.03, hi + 0.03], y=[y, y], mode="lines",
                                 line={"color": "#d62728", "width": 5}, showlegend=False,
                                 name=f"clique {j + 1}", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[1, 1 + result.cd], y=[1, 1], mode="lines+text",
                             line={"color": "black", "width": 2}, text=["", f"CD {result.cd:.2f}"],
                             textposition="middle right", showlegend=False, name="CD"))
    rows = max(half, k - half) + len(result.cliques) * 0.4
    fig.update_xaxes(range=[-1.5 - 0.1 * k, k + 2.5 + 0.1 * k], tickvals=list(range(1, k + 1)),
                     side="top", showgrid=False, zeroline=False)
    fig.update_yaxes(visible=False, range=[-rows - 1, 1.7])
    fig.add_shape(type="line", x0=1, x1=k, y0=0, y1=0, line={"color": "black", "width": 2})
    fig.update_layout(
        title=title or (f"Mean rank (1 = best); CD = {result.cd:.2f} at alpha = {result.alpha:g} "
                        f"over {result.n_datasets} data sets, Friedman p = {result.pvalue:.2g}"),
        height=height or int(140 + 32 * rows), plot_bgcolor="white")
    return fig


def __getattr__(name: str):
    # The explorer lives in lab.explorer (ipywidgets, imported when it is used); these
    # names stay reachable here for code written before it moved.
    if name in ("focus_explorer", "FocusExplorer"):
        import lab.explorer

        return getattr(lab.explorer, name)
    raise AttributeError(f"module 'lab.plots' has no attribute {name!r}")
