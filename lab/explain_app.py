"""``lab explain``: a Dash app over the prediction runs of :func:`lab.edf_workflow.predict`.

Pick a prediction run and a night; the figure shows the night's signals
(flow and pressure at 25 Hz, the 0.5 Hz channels), the score with its
threshold, the detected episodes (red) and the true events where known
(faults orange, scored apneas and hypopneas grey). Zoom and pan over a whole
night: every redraw takes the visible span of each signal and resamples it
for display, keeping each bucket's minimum and maximum (plotly-resampler's
idea, written here: that package needs plotly < 7), so a redraw sends about
:data:`DISPLAY_POINTS` points a trace whatever the zoom. The table lists the
night's episodes ranked by score with the channels that drive each one;
clicking a row zooms to it.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["build_app", "serve", "night_figure", "minmax_downsample", "DISPLAY_POINTS"]

#: Points a trace keeps on screen (half minima, half maxima of as many buckets).
DISPLAY_POINTS = 2000
#: Seconds shown either side of an episode when its row is clicked.
ZOOM_MARGIN_S = 120
_RANGE_KEY = re.compile(r"^xaxis\d*\.range(\[0\])?$")
_AUTORANGE_KEY = re.compile(r"^xaxis\d*\.autorange$")
#: In the browser: only the x-axis zooms, pans and resets of the graph reach the server,
#: stamped so that the same zoom twice is two events. An autosize (the graph resized) or a
#: mode change would start a figure call that makes Dash drop the one in flight.
_X_ZOOMS_ONLY = """
function (relayout) {
    const keys = Object.keys(relayout || {});
    if (!keys.some(k => /^xaxis\\d*\\.(range|autorange)/.test(k))) {
        return window.dash_clientside.no_update;
    }
    return {relayout: relayout, at: Date.now()};
}
"""


def minmax_downsample(x: np.ndarray, y: np.ndarray, n_out: int = DISPLAY_POINTS
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Keep the minimum and maximum of each of ``n_out // 2`` equal buckets, in time order.

    Parameters
    ----------
    x : 1-D array
        Sorted positions (times as int64 nanoseconds, or floats).
    y : 1-D array
        Values, as long as ``x``.
    n_out : int, default 2000
        Points to return at most (an even number; series this short or
        shorter come back whole).

    Returns
    -------
    (x, y) : arrays of at most ``n_out`` points
        Per bucket, the positions of its minimum and maximum, the earlier first.

    Raises
    ------
    ValueError
        If ``x`` and ``y`` differ in length or ``n_out < 2``.

    Examples
    --------
    >>> x = np.arange(8)
    >>> y = np.array([0, 5, 1, 2, 9, 3, 4, 4])
    >>> [v.tolist() for v in minmax_downsample(x, y, 4)]
    [[0, 1, 4, 5], [0, 5, 9, 3]]
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D and of one length; got shapes {x.shape} and "
                         f"{y.shape}")
    if n_out < 2:
        raise ValueError(f"n_out must be at least 2, got {n_out}")
    n = len(y)
    buckets = n_out // 2
    if n <= n_out:
        return x, y
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    size = np.diff(edges)
    # equal buckets of the largest whole size, padded with the bucket's own last value
    width = int(size.max())
    idx = edges[:-1, None] + np.minimum(np.arange(width)[None, :], size[:, None] - 1)
    block = y[idx]
    lo = idx[np.arange(buckets), np.argmin(block, axis=1)]
    hi = idx[np.arange(buckets), np.argmax(block, axis=1)]
    keep = np.sort(np.stack([lo, hi], axis=1), axis=1).ravel()
    return x[keep], y[keep]


def _visible(df: pd.DataFrame, x0: pd.Timestamp | None, x1: pd.Timestamp | None) -> pd.DataFrame:
    if x0 is None:
        return df
    t = df.index
    a = max(int(t.searchsorted(x0, "left")) - 1, 0)
    b = min(int(t.searchsorted(x1, "right")) + 1, len(t))
    return df.iloc[a:b]


def night_figure(data: dict[str, Any], x_range: tuple[Any, Any] | None = None,
                 n_points: int = DISPLAY_POINTS):
    """The explain figure of one night, the signals resampled for the visible span.

    Parameters
    ----------
    data : dict
        ``signals`` (rate -> DataFrame on a time index), ``scores`` (a
        :func:`lab.edf_workflow.predict` frame), ``episodes`` and ``truth``
        (DataFrames with ``start`` and ``end``; ``truth`` also ``kind`` and
        ``fault``).
    x_range : (start, end), optional
        Visible span (default: the whole night).
    n_points : int, default :data:`DISPLAY_POINTS`

    Returns
    -------
    plotly.graph_objects.Figure
        One row per sampling rate and one for the score; traces named by
        channel, ``score`` and ``threshold``.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    x0 = x1 = None
    if x_range is not None:
        x0, x1 = pd.Timestamp(x_range[0]), pd.Timestamp(x_range[1])
    rates = sorted(data["signals"], reverse=True)
    rows = len(rates) + 1
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.03,
                        row_heights=[0.35] + [0.6 / max(rows - 1, 1)] * (rows - 1))
    for row, rate in enumerate(rates, start=1):
        df = _visible(data["signals"][rate], x0, x1)
        t = df.index.asi8
        for col in df.columns:
            xs, ys = minmax_downsample(t, df[col].to_numpy(), n_points)
            fig.add_trace(go.Scattergl(x=pd.to_datetime(xs), y=ys, name=col, mode="lines",
                                       line={"width": 1}), row=row, col=1)
        fig.update_yaxes(title_text=f"{rate:g} Hz", row=row, col=1)
    scores = _visible(data["scores"], x0, x1)
    xs, ys = minmax_downsample(scores.index.asi8, scores["score"].to_numpy(), n_points)
    fig.add_trace(go.Scattergl(x=pd.to_datetime(xs), y=ys, name="score", mode="lines",
                               line={"width": 1, "color": "black"}), row=rows, col=1)
    if len(scores):
        thr = float(scores["threshold"].iloc[0])
        fig.add_trace(go.Scattergl(x=[scores.index[0], scores.index[-1]], y=[thr, thr],
                                   name="threshold", mode="lines",
                                   line={"dash": "dash", "color": "red"}), row=rows, col=1)
    fig.update_yaxes(title_text="score", type="log", row=rows, col=1)
    shapes = []
    for ep in data["episodes"].itertuples(index=False):
        shapes.append(_band(ep.start, ep.end, "rgba(220,0,0,0.25)", "episode"))
    truth = data.get("truth")
    if truth is not None:
        for ev in truth.itertuples(index=False):
            color = "rgba(255,140,0,0.3)" if ev.fault else "rgba(120,120,120,0.15)"
            shapes.append(_band(ev.start, ev.end, color, ev.kind))
    if x0 is not None:
        shapes = [s for s in shapes if s["x1"] >= x0 and s["x0"] <= x1]
        fig.update_xaxes(range=[x0, x1])
    fig.update_layout(shapes=shapes, height=760, margin={"l": 60, "r": 20, "t": 30, "b": 30},
                      legend={"orientation": "h", "y": 1.04})
    return fig


def _band(start, end, color: str, name: str) -> dict[str, Any]:
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    if end <= start:
        end = start + pd.Timedelta(seconds=1)
    return {"type": "rect", "xref": "x", "yref": "paper", "x0": start, "x1": end, "y0": 0,
            "y1": 1, "fillcolor": color, "line": {"width": 0}, "layer": "below", "name": name}


@functools.lru_cache(maxsize=4)
def _night_data(staged: str, output: str, night: str) -> dict[str, Any]:
    from lab import edf_workflow as wf

    signals = {}
    for rate, df in wf.load_night(staged, night).items():
        signals[rate] = df.set_index("time") if "time" in df.columns else df
    truth = wf.load_truth(staged)
    if truth is not None:
        truth = truth[truth["night"] == night]
    episodes = pd.read_parquet(Path(output) / "episodes.parquet")
    if len(episodes):
        episodes = episodes[episodes["night"] == night].reset_index(drop=True)
    return {"signals": signals, "scores": wf.read_scores(output, night), "episodes": episodes,
            "truth": truth}


def _parse_range(relayout: dict | None) -> tuple[Any, Any] | None | str:
    """The x range a relayout event asks for; "auto" for a reset; None when it is no zoom."""
    if not relayout:
        return None
    for key, value in relayout.items():
        if _AUTORANGE_KEY.match(key) and value:
            return "auto"
        m = _RANGE_KEY.match(key)
        if m and m.group(1):
            end = relayout.get(key.replace("[0]", "[1]"))
            if end is not None:
                return value, end
        elif m and isinstance(value, list | tuple) and len(value) == 2:
            return value[0], value[1]
    return None


def build_app(runs_dir: str | os.PathLike | None = None, run_id: str | None = None):
    """The explain app over the prediction runs in ``runs_dir``'s MLflow store.

    Parameters
    ----------
    runs_dir : str or path-like, optional
        Runs directory (default ``lab.config.RUNS_DIR``).
    run_id : str, optional
        Prediction run selected first (default: the latest).

    Returns
    -------
    dash.Dash

    Raises
    ------
    lab.runner.LabError
        If the store holds no prediction run, or not ``run_id``.
    """
    import dash
    from dash import Input, Output, State, dash_table, dcc, html

    from lab import edf_workflow as wf
    from lab.runner import LabError

    runs = wf.prediction_runs(runs_dir)
    if runs.empty:
        raise LabError(f"no prediction run in the MLflow store of {runs_dir or 'runs/'}; run "
                       "lab predict first")
    if run_id is not None and run_id not in set(runs["run_id"]):
        raise LabError(f"{run_id!r} is not a prediction run in the MLflow store of "
                       f"{runs_dir or 'runs/'}; its prediction runs: "
                       f"{', '.join(runs['run_id'][:5])}")
    by_id = runs.set_index("run_id")
    first = run_id or runs["run_id"].iloc[0]

    def nights_of(rid: str) -> list[str]:
        out = Path(by_id.at[rid, "output"])
        return sorted(p.name.removeprefix("night=") for p in out.glob("night=*")
                      if (p / "scores.parquet").exists())

    app = dash.Dash(__name__, title="lab explain")
    run_options = [{"label": f"{r.run_id[:8]}  model {str(r.model_run_id)[:8]}  "
                             f"{r.start:%Y-%m-%d %H:%M}", "value": r.run_id}
                   for r in runs.itertuples(index=False)]
    first_nights = nights_of(first)
    app.layout = html.Div([
        html.H3("lab explain"),
        html.Div([
            html.Label("prediction run"),
            dcc.Dropdown(id="run", options=run_options, value=first, clearable=False),
            html.Label("night"),
            dcc.Dropdown(id="night", options=first_nights,
                         value=first_nights[0] if first_nights else None, clearable=False),
        ], style={"width": "420px"}),
        dcc.Graph(id="signals", config={"scrollZoom": True}),
        html.H4("episodes, highest score first (click a row to zoom)"),
        dash_table.DataTable(id="episodes", columns=[
            {"name": c, "id": c} for c in ("start", "end", "peak", "channels")],
            page_size=15, style_cell={"fontFamily": "monospace", "textAlign": "left"}),
        dcc.Store(id="zoom"),
    ], style={"margin": "12px"})

    @app.callback(Output("night", "options"), Output("night", "value"), Input("run", "value"))
    def _nights(rid):
        names = nights_of(rid)
        return names, names[0] if names else None

    @app.callback(Output("episodes", "data"), Output("episodes", "active_cell"),
                  Input("run", "value"), Input("night", "value"))
    def _table(rid, night):
        if not night:
            return [], None
        row = by_id.loc[rid]
        eps = _night_data(row["staged"], row["output"], night)["episodes"]
        # "id" is the row's id in the table's active_cell, whatever page shows it
        return [{"id": i, "start": f"{e.start:%H:%M:%S}", "end": f"{e.end:%H:%M:%S}",
                 "peak": round(float(e.peak), 1), "channels": e.channels,
                 "t0": e.start.isoformat(), "t1": e.end.isoformat()}
                for i, e in enumerate(eps.itertuples(index=False))], None

    app.clientside_callback(_X_ZOOMS_ONLY, Output("zoom", "data"),
                            Input("signals", "relayoutData"), prevent_initial_call=True)

    # One callback draws the figure, so the latest of a night pick, an episode click
    # and a zoom wins (Dash drops a call still in flight when the same callback fires).
    @app.callback(Output("signals", "figure"),
                  Input("night", "value"), Input("episodes", "active_cell"),
                  Input("zoom", "data"), State("run", "value"), State("episodes", "data"))
    def _figure(night, cell, zoom, rid, rows):
        if not night:
            return {}
        row = by_id.loc[rid]
        data = _night_data(row["staged"], row["output"], night)
        fired = dash.callback_context.triggered_prop_ids
        x_range = None
        if "episodes.active_cell" in fired and cell and rows:
            ep = {r["id"]: r for r in rows}[cell["row_id"]]
            margin = pd.Timedelta(seconds=ZOOM_MARGIN_S)
            x_range = (pd.Timestamp(ep["t0"]) - margin, pd.Timestamp(ep["t1"]) + margin)
        elif "zoom.data" in fired and "night.value" not in fired and zoom:
            asked = _parse_range(zoom["relayout"])
            if asked is None:
                return dash.no_update
            x_range = None if asked == "auto" else asked
        return night_figure(data, x_range)

    return app


def serve(run_id: str | None = None, port: int = 8050,
          runs_dir: str | os.PathLike | None = None) -> None:
    """Serve :func:`build_app` on 127.0.0.1:``port`` until interrupted."""
    app = build_app(runs_dir, run_id)
    print(f"lab explain on http://127.0.0.1:{port}/ (Ctrl-C to stop)")
    app.run(host="127.0.0.1", port=port, debug=False)
