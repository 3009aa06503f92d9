"""lab.plots: figure structure for both backends, decimation, saving, the explorer."""

from __future__ import annotations

import importlib.util
import re
import warnings

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from bokeh.layouts import column
from bokeh.models import (
    BoxAnnotation,
    ColumnDataSource,
    CustomJS,
    Div,
    GlyphRenderer,
    GridPlot,
    Slider,
    Span,
)
from bokeh.plotting import figure as bokeh_figure

from lab import explorer, plots
from lab import preprocessor as pp
from lab.config import MAX_POINTS_PER_TRACE


def _renderers(fig, name=None):
    out = [r for r in fig.renderers if isinstance(r, GlyphRenderer)]
    return [r for r in out if name is None or r.name == name]


@pytest.fixture
def frame(rng):
    idx = pd.date_range("2024-01-01", periods=300, freq="min")
    return pd.DataFrame(rng.normal(size=(300, 3)).cumsum(axis=0), index=idx,
                        columns=["cpu", "mem", "disk"])


# --------------------------------------------------------------------- lines


def test_plot_lines_plotly_structure(frame):
    fig = plots.plot_lines(frame, cols=["mem", "cpu"], title="load", yaxis_title="%")
    assert isinstance(fig, go.Figure)
    assert [t.name for t in fig.data] == ["mem", "cpu"]
    assert all(t.type == "scatter" and t.mode == "lines" for t in fig.data)
    assert fig.layout.title.text == "load" and fig.layout.yaxis.title.text == "%"
    np.testing.assert_array_equal(fig.data[0].y, frame["mem"].to_numpy())
    assert pd.DatetimeIndex(fig.data[0].x).equals(frame.index)


def test_plot_lines_bokeh_structure(frame):
    fig = plots.plot_lines(frame, title="load", yaxis_title="%", backend="bokeh")
    assert isinstance(fig, bokeh_figure)
    assert fig.title.text == "load" and fig.yaxis[0].axis_label == "%"
    assert [r.name for r in _renderers(fig)] == ["cpu", "mem", "disk"]
    assert type(fig.xaxis[0]).__name__ == "DatetimeAxis"
    np.testing.assert_array_equal(_renderers(fig, "disk")[0].data_source.data["y"],
                                  frame["disk"].to_numpy())


def test_a_million_points_are_decimated_keeping_spikes():
    n = 1_000_000
    y = np.sin(np.arange(n) / 5000.0)
    y[777_777] = 50.0  # a one-point spike must survive decimation
    y[123_456] = -50.0
    df = pd.DataFrame({"y": y})
    fig = plots.plot_lines(df)
    trace = fig.data[0]
    assert trace.type == "scattergl"
    assert len(trace.y) <= MAX_POINTS_PER_TRACE
    assert trace.meta == {"n_points": n, "decimated": True}
    assert trace.y.max() == 50.0 and trace.y.min() == -50.0
    assert (np.diff(np.asarray(trace.x)) > 0).all()  # still in time order
    fig_b = plots.plot_lines(df, backend="bokeh")
    data = _renderers(fig_b)[0].data_source.data
    assert len(data["y"]) <= MAX_POINTS_PER_TRACE and max(data["y"]) == 50.0
    assert fig_b.output_backend == "webgl"


def test_decimate_matches_bucket_extremes(rng):
    y = rng.normal(size=1000)
    keep = plots.decimate(1000, y, max_points=100)
    for b in range(50):  # 50 buckets of 20 points
        block = y[b * 20:(b + 1) * 20]
        assert b * 20 + block.argmin() in keep and b * 20 + block.argmax() in keep
    assert len(keep) <= 100
    np.testing.assert_array_equal(plots.decimate(10, y[:10]), np.arange(10))


def test_plot_lines_grid_both_backends(frame):
    fig = plots.plot_lines_grid(frame, ncols=2, title="grid")
    assert [a.text for a in fig.layout.annotations] == ["cpu", "mem", "disk"]
    assert len(fig.data) == 3 and fig.layout.title.text == "grid"
    axes = sorted(k for k in fig.layout.to_plotly_json() if k.startswith("xaxis"))
    assert len(axes) == 4  # 2 x 2 grid, one cell empty
    assert {fig.data[k].xaxis for k in range(3)} == {"x", "x2", "x3"}
    lay = plots.plot_lines_grid(frame, ncols=2, title="grid", backend="bokeh")
    assert isinstance(lay, type(column())) and isinstance(lay.children[0], Div)
    grid = lay.children[1]
    assert isinstance(grid, GridPlot)
    figs = [child[0] for child in grid.children]
    assert [f.title.text for f in figs] == ["cpu", "mem", "disk"]
    assert figs[0].x_range is figs[2].x_range  # shared zoom


def test_plot_lines_grid_shades_windows_in_every_plot(frame):
    idx = frame.index
    windows = [(100, 200, "baseline"), ("2024-01-01 03:20", "2024-01-01 04:09", "focus", "red")]
    fig = plots.plot_lines_grid(frame, ncols=2, windows=windows)
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == 2 * 3  # every window in each of the three plots
    assert {(s.name, pd.Timestamp(s.x0), pd.Timestamp(s.x1), s.xref) for s in rects} == {
        (name, x0, x1, f"x{k}") for name, x0, x1 in
        [("baseline", idx[100], idx[199]), ("focus", idx[200], idx[249])]
        for k in ("", "2", "3")}
    assert [s.fillcolor for s in rects[:2]] == [plots._WINDOW_COLORS[0], "red"]
    assert sum(bool(s.showlegend) for s in rects) == 2  # one legend entry per window
    lay = plots.plot_lines_grid(frame, ncols=2, windows=windows, backend="bokeh")
    for row in lay.children[1].children:
        boxes = [a for a in row[0].center if isinstance(a, BoxAnnotation)]
        assert [(b.name, pd.Timestamp(b.left), pd.Timestamp(b.right)) for b in boxes] == [
            ("baseline", idx[100], idx[199]), ("focus", idx[200], idx[249])]
    assert "baseline" in lay.children[0].text and "focus" in lay.children[0].text
    assert not [s for s in plots.plot_lines_grid(frame).layout.shapes]


@pytest.mark.parametrize(
    "windows, match",
    [
        ([(200, 100)], r"windows\[0\]=\(200, 100\) is reversed"),
        ([(0, 10), (250, 301, "late")], r"windows\[1\]=\(250, 301\) is outside the data"),
        ([(0,)], r"windows\[0\] must be a \(start, end"),
        ((0, 10), r"windows\[0\] must be"),
        ("focus", "windows must be a list"),
    ],
)
def test_plot_lines_grid_rejects_bad_windows(frame, windows, match):
    with pytest.raises(ValueError, match=match):
        plots.plot_lines_grid(frame, windows=windows)


def test_unknown_columns_and_backend_raise(frame):
    with pytest.raises(ValueError, match=r"cols \['gpu'\] are not columns of df"):
        plots.plot_lines(frame, cols=["cpu", "gpu"])
    with pytest.raises(ValueError, match="backend must be one of"):
        plots.plot_lines(frame, backend="matplotlib")
    with pytest.raises(ValueError, match="non-numeric"):
        plots.plot_boxes(pd.DataFrame({"a": ["x", "y"]}))


# --------------------------------------------------------------------- distributions


def test_plot_hists_counts_match_numpy(frame):
    fig = plots.plot_hists(frame, bins=20, title="h")
    edges = np.histogram_bin_edges(frame.to_numpy(), bins=20)
    assert [t.name for t in fig.data] == ["cpu", "mem", "disk"]
    for t, col in zip(fig.data, frame.columns, strict=True):
        np.testing.assert_array_equal(t.y, np.histogram(frame[col], bins=edges)[0])
    fig_b = plots.plot_hists(frame, bins=20, title="h", backend="bokeh")
    quads = _renderers(fig_b)
    assert [r.name for r in quads] == ["cpu", "mem", "disk"] and fig_b.title.text == "h"
    np.testing.assert_array_equal(quads[1].data_source.data["top"],
                                  np.histogram(frame["mem"], bins=edges)[0])


def test_plot_boxes_statistics_match_numpy(frame):
    with_nan = frame.copy()
    with_nan.iloc[::7, 0] = np.nan
    with_nan.iloc[5, 1] = 1e6  # an outlier beyond the whisker
    fig = plots.plot_boxes(with_nan, title="b")
    for t, col in zip(fig.data, with_nan.columns, strict=True):
        x = with_nan[col].dropna().to_numpy()
        q1, med, q3 = np.percentile(x, [25, 50, 75])
        iqr = q3 - q1
        assert (t.q1[0], t.median[0], t.q3[0]) == pytest.approx((q1, med, q3))
        assert t.upperfence[0] == pytest.approx(x[x <= q3 + 1.5 * iqr].max())
        assert t.lowerfence[0] == pytest.approx(x[x >= q1 - 1.5 * iqr].min())
    fig_b = plots.plot_boxes(with_nan, title="b", backend="bokeh")
    assert list(fig_b.x_range.factors) == ["cpu", "mem", "disk"]
    assert _renderers(fig_b, "boxes")[0].data_source.data["top"][1] == pytest.approx(
        fig.data[1].q3[0])


# --------------------------------------------------------------------- heatmaps


def test_plot_heatmap_stack_has_a_slider(rng):
    stack = rng.random((4, 3, 3))
    fig = plots.plot_heatmap(stack, labels=["a", "b", "c"], frame_labels=list("wxyz"),
                             title="sig")
    assert len(fig.data) == 4 and all(t.type == "heatmap" for t in fig.data)
    assert [t.visible for t in fig.data] == [True, False, False, False]
    assert {t.zmin for t in fig.data} == {stack.min()} and {t.zmax for t in fig.data} == {
        stack.max()}
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == list("wxyz")
    assert steps[2].args[0]["visible"] == [False, False, True, False]
    np.testing.assert_array_equal(fig.data[2].z, stack[2])
    assert list(fig.data[0].x) == ["a", "b", "c"] and fig.layout.title.text == "sig"
    single = plots.plot_heatmap(stack[0])
    assert len(single.data) == 1 and not single.layout.sliders


def test_plot_heatmap_bokeh_slider_and_labels(rng):
    stack = rng.random((3, 2, 4))
    lay = plots.plot_heatmap(stack, labels=(["r0", "r1"], list("abcd")), backend="bokeh",
                             title="sig")
    slider, fig = lay.children
    assert isinstance(slider, Slider) and (slider.start, slider.end) == (0, 2)
    assert isinstance(slider.js_property_callbacks["change:value"][0], CustomJS)
    source = _renderers(fig, "heatmap")[0].data_source
    assert isinstance(source, ColumnDataSource)
    np.testing.assert_array_equal(source.data["image"][0], stack[0][::-1])
    assert fig.title.text == "sig"
    assert sorted(fig.xaxis[0].major_label_overrides.values()) == list("abcd")
    single = plots.plot_heatmap(stack[0], backend="bokeh")
    assert isinstance(single, bokeh_figure)


def test_plot_heatmap_rejects_bad_shapes(rng):
    with pytest.raises(ValueError, match=r"got \(5,\)"):
        plots.plot_heatmap(np.zeros(5))
    with pytest.raises(ValueError, match="labels give 2 row"):
        plots.plot_heatmap(np.zeros((3, 3)), labels=["a", "b"])
    with pytest.raises(ValueError, match="frame_labels has 1"):
        plots.plot_heatmap(np.zeros((2, 3, 3)), frame_labels=["x"])


# --------------------------------------------------------------------- scores


def _score_case():
    idx = pd.date_range("2024-01-01", periods=100, freq="h")
    score = pd.Series(np.linspace(0, 1, 100) ** 4, index=idx, name="ae")
    truth = np.zeros(100, int)
    truth[10:20] = 1
    truth[90:95] = 1
    return score, truth, idx


def test_plot_scores_plotly_structure():
    score, truth, idx = _score_case()
    fig = plots.plot_scores(score, threshold=0.5, truth=truth, title="scores")
    assert [t.name for t in fig.data] == ["ae", "detections"]
    detected = np.flatnonzero(score.to_numpy() > 0.5)
    assert pd.DatetimeIndex(fig.data[1].x).equals(idx[detected])
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert [(pd.Timestamp(s.x0), pd.Timestamp(s.x1)) for s in rects] == [
        (idx[10], idx[19]), (idx[90], idx[94])]
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(lines) == 1 and lines[0].y0 == 0.5
    assert fig.layout.title.text == "scores"
    # explicit detections, given as labels, win over the threshold
    fig = plots.plot_scores(score, threshold=0.5, events=[idx[3], idx[50]],
                            truth=[(idx[10], idx[19])])
    assert pd.DatetimeIndex(fig.data[1].x).equals(idx[[3, 50]])
    assert len([s for s in fig.layout.shapes if s.type == "rect"]) == 1


def test_plot_scores_bokeh_structure():
    score, truth, idx = _score_case()
    fig = plots.plot_scores(score, threshold=0.5, events=score > 0.9, truth=truth,
                            title="scores", backend="bokeh")
    boxes = [a for a in fig.center if isinstance(a, BoxAnnotation)]
    spans = [a for a in fig.center if isinstance(a, Span)]
    assert len(boxes) == 2 and len(spans) == 1 and spans[0].location == 0.5
    hits = _renderers(fig, "detections")[0].data_source.data
    assert len(hits["y"]) == int((score > 0.9).sum())
    assert [r.name for r in _renderers(fig)] == ["ae", "detections"]
    assert fig.title.text == "scores"


def test_plot_scores_rejects_misaligned_inputs():
    score, truth, idx = _score_case()
    with pytest.raises(ValueError, match="truth has 99 labels"):
        plots.plot_scores(score, truth=np.asarray(truth[:-1]))
    with pytest.raises(ValueError, match="truth must hold only 0/1"):
        plots.plot_scores(score, truth=np.full(100, 2))
    with pytest.raises(ValueError, match="events holds"):
        plots.plot_scores(score, events=[pd.Timestamp("1999-01-01")])


def _rects(fig):
    return [(pd.Timestamp(s.x0), pd.Timestamp(s.x1)) for s in fig.layout.shapes if s.type == "rect"]


@pytest.mark.parametrize("backend", ["plotly", "bokeh"])
def test_plot_scores_truth_pairs_follow_the_window_rule(backend):
    """int bounds are positions (half-open) even on a DatetimeIndex; labels are inclusive."""
    score, _, idx = _score_case()
    truth = [(10, 20), (idx[90], idx[94]), ("2024-01-04 08:00", "2024-01-04 09:00")]
    fig = plots.plot_scores(score, truth=truth, backend=backend)
    expected = [(idx[10], idx[19]), (idx[90], idx[94]), (idx[80], idx[81])]
    if backend == "plotly":
        assert _rects(fig) == expected
    else:
        boxes = [a for a in fig.center if isinstance(a, BoxAnnotation)]
        assert [(pd.Timestamp(b.left), pd.Timestamp(b.right)) for b in boxes] == expected


@pytest.mark.parametrize(
    "truth, match",
    [
        ([(20, 10)], r"truth\[0\]=\(20, 10\) is reversed"),
        ([(0, 5), (90, 101)], r"truth\[1\]=\(90, 101\) is outside the data"),
        ([(-1, 5)], r"truth\[0\].* is outside the data"),
        ([(pd.Timestamp("1999-01-01"), pd.Timestamp("1999-01-02"))], r"truth\[0\].* outside"),
        ([("2024-01-03", "2024-01-02")], r"truth\[0\].* is reversed"),
        ([(5, 10, 15)], r"truth\[0\] must be a \(start, end\) pair"),
    ],
)
def test_plot_scores_rejects_bad_truth_windows(truth, match):
    score, _, _ = _score_case()
    with pytest.raises(ValueError, match=match):
        plots.plot_scores(score, truth=truth)


def test_plot_scores_refuses_int_pairs_where_they_could_be_labels():
    """A test split of a RangeIndex: (1010, 1020) could mean labels; a mask cannot be misread."""
    score = pd.Series(np.linspace(0, 1, 100), index=pd.RangeIndex(1000, 1100))
    with pytest.raises(ValueError, match=r"truth\[0\]=\(1010, 1020\).* pass a 0/1 mask"):
        plots.plot_scores(score, truth=[(1010, 1020)])
    mask = np.zeros(100, int)
    mask[10:21] = 1
    assert [(s.x0, s.x1) for s in plots.plot_scores(score, truth=mask).layout.shapes] == [
        (1010, 1020)]
    # on 0..n-1 positions and labels name the same rows: positions, half-open
    fig = plots.plot_scores(score.reset_index(drop=True), truth=[(10, 21)])
    assert [(s.x0, s.x1) for s in fig.layout.shapes] == [(10, 20)]


@pytest.mark.parametrize("threshold", ["0.5", np.nan, np.inf, True, [0.5]])
def test_plot_scores_threshold_must_be_a_finite_number(threshold):
    score, _, _ = _score_case()
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        plots.plot_scores(score, threshold=threshold)
    fig = plots.plot_scores(score, threshold=np.float32(0.5))
    assert [s.y0 for s in fig.layout.shapes if s.type == "line"] == [0.5]


def test_plot_scores_events_as_a_list_mask_like_truth():
    score, truth, idx = _score_case()
    mask = (score > 0.9).to_numpy()
    expected = idx[mask]
    for events in (mask, mask.astype(int).tolist(), mask.tolist(), pd.Series(mask, index=idx)):
        fig = plots.plot_scores(score, events=events)
        assert pd.DatetimeIndex(fig.data[1].x).equals(expected), type(events)
    # truth takes the same list form
    assert _rects(plots.plot_scores(score, truth=truth.tolist())) == \
        _rects(plots.plot_scores(score, truth=truth))
    with pytest.raises(ValueError, match="events has 4 labels but scores has 100 timepoints"):
        plots.plot_scores(score, events=[0, 1, 1, 0])
    with pytest.raises(ValueError, match="events has 3 labels"):
        plots.plot_scores(score, events=[True, False, True])
    with pytest.raises(ValueError, match="0/1 mask with one value per score"):
        plots.plot_scores(score, events=[0, 1])
    # on a RangeIndex, distinct integers are labels
    fig = plots.plot_scores(score.reset_index(drop=True), events=[1, 0])
    assert list(fig.data[1].x) == [1, 0]


# --------------------------------------------------------------------- save


def test_save_writes_standalone_html_and_skips_png_cleanly(tmp_path, frame):
    fig = plots.plot_lines(frame, title="saved")
    written = plots.save(fig, tmp_path / "fig.png")  # suffix is replaced
    html = (tmp_path / "fig.html").read_text()
    assert "saved" in html and "plotly.js v" in html  # library inline, works offline
    assert not re.search(r'<script[^>]*src="http', html)
    has_kaleido = importlib.util.find_spec("kaleido") is not None
    assert [p.suffix for p in written] == ([".html", ".png"] if has_kaleido else [".html"])
    if not has_kaleido:
        with pytest.raises(RuntimeError, match="no image exporter"):
            plots.save(fig, tmp_path / "fig2", png=True)
    lay = plots.plot_heatmap(np.random.default_rng(0).random((2, 2, 2)), backend="bokeh")
    out = plots.save(lay, tmp_path / "heat", png=False)
    text = out[0].read_text()
    assert out == [tmp_path / "heat.html"] and "Bokeh" in text
    assert not re.search(r'<script[^>]*src="http', text)
    with pytest.raises(ValueError, match="fig must be a plotly Figure or a bokeh model"):
        plots.save("not a figure", tmp_path / "x")


# --------------------------------------------------------------------- explorer


def test_focus_explorer_is_still_reachable_from_lab_plots():
    # it moved to lab.explorer; code written before the move keeps working
    assert plots.focus_explorer is explorer.focus_explorer
    assert plots.FocusExplorer is explorer.FocusExplorer
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        plots.nothing  # noqa: B018


@pytest.mark.parametrize("method", ["ks", "volume"])
def test_focus_explorer_updates_in_place(method, rng):
    idx = pd.date_range("2024-01-01", periods=400, freq="min")
    df = pd.DataFrame(rng.normal(size=(400, 6)) + 10, index=idx, columns=list("abcdef"))
    df.iloc[100:130, 4] += 6  # e changes early, c late
    df.iloc[350:380, 2] += 6
    ex = explorer.focus_explorer(df, method=method, top=2, focus=(350, 380))
    assert ex.ranking.index[0] == "c" and ex.children[0] is ex.slider
    table, fig = ex.table.value, ex.figure
    assert [t.name for t in fig.data] == list(ex.ranking.index[:2])
    assert "baseline: " + str(idx[230]) in ex.label.value and "cut" not in ex.label.value
    with warnings.catch_warnings():
        # near the start the baseline is cut: said in the status line, not warned on every drag
        warnings.simplefilter("error")
        ex.slider.value = (100, 130)  # what a user's drag does
    assert "(100 rows), cut at the start of the data (4 x 30 = 120 rows wanted)" in ex.label.value
    pd.testing.assert_frame_equal(
        ex.ranking, pp.rank_changes(df, focus=(100, 130), baseline=(0, 100), method=method))
    assert ex.ranking.index[0] == "e"
    assert ex.figure is not fig and ex.table.value != table
    assert [t.name for t in ex.figure.data][0] == "e"
    assert pd.Timestamp(ex.figure.layout.shapes[0].x0) == idx[100]
    assert "e" in ex.table.value and str(idx[100]) in ex.label.value
    ranking = ex.ranking
    ex.slider.value = (200, 200)  # an empty focus while dragging: reported, nothing breaks
    assert "holds no rows" in ex.error and "holds no rows" in ex.table.value
    assert ex.ranking is ranking
    ex.slider.value = (350, 380)
    assert ex.error is None and ex.ranking.index[0] == "c"


def test_setup_notebook_sets_renderer():
    import plotly.io as pio

    previous = pio.renderers.default
    try:
        assert plots.setup_notebook() is None
        assert pio.renderers.default == "plotly_mimetype+notebook"
    finally:
        pio.renderers.default = previous


@pytest.mark.slow
def test_setup_notebook_embeds_figures_in_nbconvert_report(tmp_path):
    """Execute a notebook headless and check the HTML report shows the figure offline."""
    nbformat = pytest.importorskip("nbformat")
    papermill = pytest.importorskip("papermill")
    from nbconvert import HTMLExporter

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import lab.plots\nlab.plots.setup_notebook()"),
        nbformat.v4.new_code_cell("lab.plots.plot_lines([1.0, 3.0, 2.0], title='report-check')"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    src, out = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    papermill.execute_notebook(str(src), str(out), kernel_name="python3", progress_bar=False)
    executed = nbformat.read(out, as_version=4)
    mimes = [set(o.get("data", {})) for c in executed.cells for o in c.get("outputs", [])]
    assert {"application/vnd.plotly.v1+json", "text/html"} in mimes  # JupyterLab + report
    assert not any("text/plain" in m and len(m) == 1 for m in mimes)  # setup shows nothing
    html, _ = HTMLExporter(exclude_input=True).from_notebook_node(executed)
    assert "report-check" in html and 'class="plotly-graph-div"' in html
    assert "Plotly.newPlot" in html and html.count("plotly.js v") == 1  # inline, once
    assert "cdn.plot.ly/plotly" not in html
