"""What ``lab run`` shows on the console while a notebook executes.

:class:`RunProgress` receives the executor's events (a notebook starts, a cell
starts) and the notebook's own output streams, and shows:

- on a terminal, one live line, redrawn every second: the run's label, a bar
  of the cells done, the cell being run, the elapsed time, and the latest
  line the notebook printed (a training progress bar, say);
- elsewhere (a log file, CI), plain lines: one when each code cell starts,
  and the final state of each progress bar the notebook draws (a line it
  rewrote with carriage returns), so a log stays readable.

Examples
--------
>>> import io
>>> out = io.StringIO()
>>> p = RunProgress("[1/1] demo", stream=out, tty=False, clock=iter([0, 75]).__next__)
>>> p.notebook_start(notebook={"cells": [{"cell_type": "code", "source": "x = 1"}]})
>>> p.cell_start(cell={"cell_type": "code", "source": "x = 1\\ny = 2"}, cell_index=0)
>>> p.close()
>>> print(out.getvalue(), end="")
[1/1] demo  cell 1/1  1:15  x = 1
"""

from __future__ import annotations

import re
import shutil
import sys
import threading
import time
from typing import Any, TextIO

__all__ = ["RunProgress", "format_elapsed"]

#: Seconds between redraws of the live line (the elapsed time moves on between events).
REFRESH_S = 1.0
#: Width of the bar of cells on a terminal, in characters.
BAR_WIDTH = 20
# Terminal control: go to the start of the line and clear it.
_CLEAR = "\r\x1b[2K"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# The bar of a tqdm line ("|█████     |"): a notebook's bar is as wide as the terminal, so on
# the live line it gives way to the numbers beside it.
_TQDM_BAR = re.compile(r"\|[\s#\u2588-\u258f]{3,}\|")


def format_elapsed(seconds: float) -> str:
    """``m:ss`` under an hour, ``h:mm:ss`` beyond.

    Examples
    --------
    >>> format_elapsed(75.4), format_elapsed(3725)
    ('1:15', '1:02:05')
    """
    s = int(seconds)
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{s // 60}:{s % 60:02d}"


def _first_line(source: Any) -> str:
    text = "".join(source) if isinstance(source, list) else str(source or "")
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line.strip()
    return ""


class RunProgress:
    """Console progress of one notebook run (see the module's docstring).

    Parameters
    ----------
    label : str
        What the run is, e.g. ``"[2/5] 01-mscred-forex"``.
    stream : file, optional
        Where to write (default ``sys.stderr``).
    tty : bool, optional
        Live line (True) or plain lines (False); default: whether ``stream``
        is a terminal.
    clock : callable, optional
        Seconds, monotonic (for tests).

    Notes
    -----
    The methods :meth:`notebook_start` and :meth:`cell_start` have the
    signatures of nbclient's ``on_notebook_start`` and ``on_cell_start``
    hooks, and :meth:`write` that of a file, for papermill's
    ``stdout_file``/``stderr_file``: the runner passes them as they are.
    """

    def __init__(self, label: str, stream: TextIO | None = None, *, tty: bool | None = None,
                 clock=time.monotonic) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty
        self._clock = clock
        self._t0 = clock()
        self._n_code = 0
        self._done = 0
        self._cell = ""
        self._note = ""
        self._partial = ""  # notebook output after its last newline
        self._redrawn = False  # the partial line was rewritten with \r: a progress bar
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if self.tty:
            self._ticker = threading.Thread(target=self._tick, name="lab-progress", daemon=True)
            self._ticker.start()

    # ----------------------------------------------------------- executor hooks
    def notebook_start(self, notebook: Any = None, **_: Any) -> None:
        """The executor starts ``notebook``: count its code cells."""
        cells = (notebook or {}).get("cells", [])
        self._n_code = sum(c.get("cell_type") == "code" for c in cells)

    def cell_start(self, cell: Any = None, cell_index: int = 0, **_: Any) -> None:
        """A cell starts; only code cells count."""
        if (cell or {}).get("cell_type") != "code":
            return
        with self._lock:
            self._done += 1
            self._cell = _first_line(cell.get("source", ""))
            self._note = ""
            if self.tty:
                self._draw()
            else:
                self._print(f"{self.label}  cell {self._position()}  {self._elapsed()}"
                            + (f"  {self._cell}" if self._cell else ""))

    # ------------------------------------------------------- notebook's streams
    def write(self, text: str) -> int:
        """Take text the notebook printed (stdout or stderr)."""
        text = _ANSI.sub("", text)
        with self._lock:
            data = self._partial + text
            *lines, self._partial = re.split(r"\r\n|\n", data)
            for line in lines:
                final = line.rsplit("\r", 1)[-1]
                # a line drawn over and over is a progress bar: keep its final state
                if not self.tty and ("\r" in line or self._redrawn) and final.strip():
                    self._print(f"    {final.rstrip()}")
                self._redrawn = False
                if final.strip():
                    self._note = final.strip()
            if "\r" in self._partial:
                self._redrawn = True
                self._partial = self._partial.rsplit("\r", 1)[-1]
            if self._partial.strip():
                self._note = self._partial.strip()
            if self.tty:
                self._draw()
        return len(text)

    def flush(self) -> None:
        """Files have it; nothing is buffered here."""

    def engine_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``papermill.execute_notebook`` that feed this display."""
        return {"on_notebook_start": self.notebook_start, "on_cell_start": self.cell_start,
                "stdout_file": self, "stderr_file": self}

    # ------------------------------------------------------------------- end
    def close(self) -> None:
        """Stop the live line and clear it (the runner then prints the outcome)."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        with self._lock:
            if self.tty:
                self.stream.write(_CLEAR)
                self.stream.flush()

    # --------------------------------------------------------------- drawing
    def _elapsed(self) -> str:
        return format_elapsed(self._clock() - self._t0)

    def _position(self) -> str:
        return f"{self._done}/{self._n_code}" if self._n_code else str(self._done)

    def _print(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def _draw(self) -> None:
        if self._n_code:
            filled = round(BAR_WIDTH * max(self._done - 1, 0) / self._n_code)
            bar = "|" + "#" * filled + "-" * (BAR_WIDTH - filled) + "| "
        else:
            bar = ""
        where = f"cell {self._position()}" if self._done else "starting the kernel"
        note = _TQDM_BAR.sub("|", self._note) or self._cell
        line = f"{self.label}  {bar}{where}  {self._elapsed()}  {note}".rstrip()
        width = shutil.get_terminal_size((100, 24)).columns - 1
        self.stream.write(_CLEAR + line[:width])
        self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(REFRESH_S):
            with self._lock:
                self._draw()
