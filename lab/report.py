"""A run's HTML report, written from its executed notebook, with plotly.js stored once.

:func:`lab.runner.execute` calls :func:`write_report` when a notebook ends.
plotly's notebook renderer embeds plotly.js (about 4.8 MB) in the first
figure's output; :func:`share_plotlyjs` replaces it by a link to one copy per
runs directory, so a hundred runs do not carry a hundred copies and reports
still open offline.
"""

from __future__ import annotations

import functools
import os
import tempfile
import threading
from pathlib import Path

__all__ = ["EXPORT_LOCK", "STATIC_DIR", "html_exporter", "share_plotlyjs", "write_report"]

#: Files shared by the runs of one runs directory (plotly.js), in ``<runs>/_static``.
STATIC_DIR = "_static"
#: Held while an exporter runs: an exporter is not made to be used by two threads at once
#: (``lab.runner`` warms one up in a thread while the first notebook runs).
EXPORT_LOCK = threading.Lock()


def write_report(notebook: Path, html: Path | None, show_code: bool) -> None:
    """Share ``notebook``'s plotly.js (:func:`share_plotlyjs`), then write ``html`` from it.

    Parameters
    ----------
    notebook : Path
        An executed notebook at ``<runs>/<experiment>/<run>/notebook.ipynb``; rewritten in
        place when its plotly.js is replaced by a link.
    html : Path or None
        Where the report goes, written atomically (a temporary file renamed into place);
        None shares plotly.js only.
    show_code : bool
        Keep the code cells in the report (by default a report shows outputs only).

    Examples
    --------
    >>> import nbformat, tempfile
    >>> run = Path(tempfile.mkdtemp()) / "demo" / "r1"
    >>> run.mkdir(parents=True)
    >>> nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Hi")]),
    ...                run / "notebook.ipynb")
    >>> write_report(run / "notebook.ipynb", run / "report.html", show_code=False)
    >>> "Hi" in (run / "report.html").read_text()
    True
    """
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    if share_plotlyjs(nb, notebook.parent.parent.parent):
        nbformat.write(nb, notebook)
    if html is None:
        return
    with EXPORT_LOCK:
        body, _ = html_exporter(show_code).from_notebook_node(nb)
    tmp = html.with_suffix(".html.tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, html)


def share_plotlyjs(nb, out_root: Path) -> bool:
    """Replace plotly.js embedded in ``nb``'s outputs by a link to one copy under ``out_root``.

    The copy is ``<out_root>/_static/plotly-<version>.min.js``, linked relatively
    from ``<out_root>/<experiment>/<run>/``: reports still work offline, as long
    as they stay inside the runs directory. It is written atomically, since
    concurrent runs may write it at once.

    Parameters
    ----------
    nb : nbformat.NotebookNode
        An executed notebook, changed in place.
    out_root : Path
        The runs directory.

    Returns
    -------
    bool
        Whether ``nb`` changed. It is left alone when it holds no plotly.js, or
        another version than this process's.

    Examples
    --------
    >>> import nbformat, tempfile
    >>> share_plotlyjs(nbformat.v4.new_notebook(), Path(tempfile.mkdtemp()))
    False
    """
    outputs = [o for c in nb.cells for o in c.get("outputs", [])
               if len(o.get("data", {}).get("text/html", "")) > 1_000_000]
    if not outputs:  # no output big enough to hold plotly.js: skip importing plotly
        return False
    from plotly.offline import get_plotlyjs, get_plotlyjs_version

    inline = f"<script>{get_plotlyjs()}</script>"
    name = f"plotly-{get_plotlyjs_version()}.min.js"
    link = f'<script src="../../{STATIC_DIR}/{name}"></script>'
    changed = False
    for output in outputs:
        html = output["data"]["text/html"]
        if isinstance(html, str) and inline in html:
            output["data"]["text/html"] = html.replace(inline, link)
            changed = True
    shared = out_root / STATIC_DIR / name
    if changed and not shared.is_file():
        shared.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=shared.parent, prefix=f".{name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(get_plotlyjs())
        os.chmod(tmp, 0o644)
        os.replace(tmp, shared)
    return changed


@functools.cache
def html_exporter(show_code: bool):
    """nbconvert's HTML exporter for reports, one per setting and reused.

    Its first export compiles the templates (about 1 s), so it is made once.
    Hold :data:`EXPORT_LOCK` while it runs.

    Parameters
    ----------
    show_code : bool
        Keep code cells and their prompts.

    Returns
    -------
    nbconvert.HTMLExporter

    Examples
    --------
    >>> html_exporter(False) is html_exporter(False)
    True
    """
    from nbconvert import HTMLExporter

    return HTMLExporter(exclude_input=not show_code, exclude_input_prompt=not show_code,
                        exclude_output_prompt=True)
