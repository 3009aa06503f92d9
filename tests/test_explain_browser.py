"""The explain app in a real browser: headless Chromium driven by selenium 4.

Debian's ``chromium`` and ``chromium-driver`` (``make browser``; CI installs
them) drive the Dash app served from a thread on a free port. Skipped when
either is absent.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import threading
import time

import pandas as pd
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
WINDOW = (1400, 1000)
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                 reason="chromium and chromium-driver not installed "
                                        "(make browser)")]


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    from lab import edf_workflow as wf
    from lab.datasets import make_cpap_nights

    root = tmp_path_factory.mktemp("explain")
    make_cpap_nights(root / "raw", n_nights=3, hours=(0.5, 0.5), random_state=1)
    wf.stage(root / "raw", root / "staged")
    runs = root / "runs"
    model = wf.train(root / "staged", nights="*", runs_dir=runs)
    pred, episodes = wf.predict(model, root / "staged", root / "scores", runs_dir=runs)
    assert len(episodes), "the tiny nights hold faults; predict found no episode"
    return runs, pred, episodes


@contextlib.contextmanager
def _serving(app):
    from werkzeug.serving import make_server

    srv = make_server("127.0.0.1", 0, app.server, threaded=True)  # a free port, bound at once
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}/"
    finally:
        srv.shutdown()


@pytest.fixture(scope="module")
def server(predicted):
    from lab.explain_app import build_app

    runs, pred, _ = predicted
    with _serving(build_app(runs, pred)) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size={},{}".format(*WINDOW)):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()


def _wait(fn, what="", timeout=90.0):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = fn()
            if last:
                return last
        except Exception as exc:  # the page is still rendering
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last value {last!r}")


_TRACES = "return document.querySelector('#signals .js-plotly-plot').data.map(t => t.name)"
_FLOW_X = ("const d = document.querySelector('#signals .js-plotly-plot').data"
           ".find(t => t.name === 'Flow'); return d && Array.from(d.x)")
_RANGE = "return document.querySelector('#signals .js-plotly-plot').layout.xaxis.range"


def _pick_night(browser, night):
    """Pick ``night`` in the dropdown, as a user would."""
    from selenium.webdriver.common.by import By

    browser.find_element(By.CSS_SELECTOR, "#night").click()
    option = _wait(lambda: browser.find_element(
        By.XPATH, f'//label[contains(@class, "dash-dropdown-option")][.//input[@value="{night}"]]'),
        "the night's option")
    _wait(lambda: option.click() or True, "a clickable option")
    _wait(lambda: night in browser.find_element(By.CSS_SELECTOR, "#night").text, "the pick")


def _zoom_to(browser, lo, hi):
    browser.execute_script("Plotly.relayout(document.querySelector('#signals .js-plotly-plot'),"
                           " {'xaxis.range': [arguments[0], arguments[1]]})",
                           f"{lo:%Y-%m-%d %H:%M:%S}", f"{hi:%Y-%m-%d %H:%M:%S}")


def _slow_figures(app, seconds, zoom_seconds=None):
    """Answer the app's figure callback ``seconds`` late (a loaded server); a call that a
    zoom started, ``zoom_seconds`` late (default ``seconds``)."""
    wsgi_app = app.server.wsgi_app

    def slow(environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        if b'"signals.figure' in body:
            zoomed = "zoom.data" in json.loads(body).get("changedPropIds", [])
            time.sleep(zoom_seconds if zoomed and zoom_seconds is not None else seconds)
        environ["wsgi.input"] = io.BytesIO(body)
        return wsgi_app(environ, start_response)

    app.server.wsgi_app = slow
    return app


def test_the_page_loads_picks_a_night_and_zooms_to_a_clicked_episode(server, browser, predicted):
    from selenium.webdriver.common.by import By

    _, _, episodes = predicted
    browser.get(server)
    names = _wait(lambda: browser.execute_script(_TRACES), "the figure")
    assert {"Flow", "Press", "Leak", "MaskPress", "score", "threshold"} <= set(names)
    # pick the last night through the dropdown, as a user would
    night = sorted(episodes["night"].unique())[-1]
    _pick_night(browser, night)
    first = episodes[episodes["night"] == night].iloc[0]
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#episodes td")
          and first["start"].strftime("%H:%M:%S") in
          browser.find_element(By.CSS_SELECTOR, "#episodes").text, "the night's episodes")
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#episodes td")[0].click() or True,
          "a click on the first episode")

    def zoomed():
        r = browser.execute_script(_RANGE)
        if not r:
            return None
        lo, hi = pd.Timestamp(r[0]), pd.Timestamp(r[1])
        return (hi - lo) < pd.Timedelta(hours=0.4) and lo <= first["start"] <= hi
    _wait(zoomed, "the zoom to the clicked episode")
    assert set(browser.execute_script(_TRACES)) == set(names)
    # a user's zoom (as a drag or the scroll wheel would send it): the signals are
    # resampled for the new span only
    lo, hi = first["start"] - pd.Timedelta(minutes=1), first["start"] + pd.Timedelta(minutes=1)
    _zoom_to(browser, lo, hi)
    slack = pd.Timedelta(seconds=1)

    def resampled():
        x = browser.execute_script(_FLOW_X)
        return x and lo - slack <= pd.Timestamp(x[0]) and pd.Timestamp(x[-1]) <= hi + slack
    _wait(resampled, "the signals resampled for the zoomed span")


def test_a_resize_while_the_figure_loads_does_not_leave_the_graph_empty(predicted, browser):
    # The graph sends a relayout event (autosize) whenever its size changes, e.g. when
    # the episode table appears with a scroll bar. Dash drops a call still in flight when
    # the same callback fires again: a relayout while the night's figure was being built
    # (CI under load) replaced that call with one that answered "no update", and the
    # graph stayed empty. A slow figure and a resize while it loads reproduce it.
    from selenium.webdriver.common.by import By

    from lab.explain_app import build_app

    runs, pred, _ = predicted
    app = _slow_figures(build_app(runs, pred), 3)
    with _serving(app) as url:
        browser.get(url)
        _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#episodes td"), "the episodes")
        browser.set_window_size(1200, 900)  # while the night's figure is being built
        try:
            names = _wait(lambda: browser.execute_script(_TRACES), "the figure", timeout=30)
        finally:
            browser.set_window_size(*WINDOW)
    assert {"Flow", "Press", "score", "threshold"} <= set(names)


def test_a_night_picked_while_a_zoom_loads_wins(predicted, browser):
    # The latest request wins: a zoom into one night, then another night picked while the
    # zoom's figure is still being built (and answered after the night's), ends on the
    # picked night, whole.
    from lab.explain_app import build_app

    runs, pred, episodes = predicted
    first, last = sorted(episodes["night"].unique())[0], sorted(episodes["night"].unique())[-1]
    start = {n: pd.to_datetime(n, format="%Y%m%d_%H%M%S") for n in (first, last)}
    with _serving(_slow_figures(build_app(runs, pred), 1, zoom_seconds=5)) as url:
        browser.get(url)
        _wait(lambda: browser.execute_script(_TRACES), "the figure")
        lo = start[first] + pd.Timedelta(minutes=5)
        _zoom_to(browser, lo, lo + pd.Timedelta(minutes=2))
        _pick_night(browser, last)

        def whole_last_night():
            x = browser.execute_script(_FLOW_X)
            if not x:
                return False
            x0, x1 = pd.Timestamp(x[0]), pd.Timestamp(x[-1])
            return x0 >= start[last] and x1 - x0 > pd.Timedelta(minutes=25)
        _wait(whole_last_night, "the picked night, whole", timeout=30)
        time.sleep(5)  # a late answer to the zoom would land by now
        assert whole_last_night()
