"""Keep a kernel's output readable: no TensorFlow start-up lines, warnings as notes.

TensorFlow 2.21 writes a few lines from C++ straight to file descriptor 2 when
it is imported (the oneDNN notice, "Could not find cuda drivers", absl's
"log messages before absl::InitializeLog()"), and ``TF_CPP_MIN_LOG_LEVEL``
no longer silences them. In a kernel, ipykernel reads that descriptor and
turns what it reads into red ``stderr`` blocks in the notebook, and echoes it
to the terminal. :func:`install` puts a filter in front of ipykernel's reader:
descriptor 2 becomes a pipe whose lines are passed on unchanged, except the
start-up lines that :func:`is_benign` knows. Python's own errors, warnings and
any other line still show. ``lab run`` loads this module as an IPython
extension in every kernel it starts (:data:`KERNEL_ARGS`).

:func:`warnings_as_notes` shows the warnings a notebook expects (a model's
own diagnostics) as labelled notes in the report instead of red blocks that
name a temporary file.

Examples
--------
>>> is_benign("I0000 00:00:1796529502.227110    6204 cudart_stub.cc:31] "
...           "Could not find cuda drivers on your machine, GPU will not be used.")
True
>>> is_benign("E0000 00:00:1796529502.227110    6204 some_op.cc:12] out of memory")
False
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import warnings

__all__ = ["BENIGN_LINES", "KERNEL_ARGS", "install", "is_benign", "load_ipython_extension",
           "warnings_as_notes"]

#: Arguments that make an IPython kernel load this filter at start-up.
KERNEL_ARGS = ("--IPKernelApp.extensions=lab.kernel_output",)

# An absl/glog line: severity and date, time, thread id, file:line] message.
_ABSL = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ (?P<file>[\w.\-]+):\d+\] (?P<msg>.*)$")
#: (source file, message pattern) of the absl lines TensorFlow writes at start-up on a
#: machine with or without a GPU; each says nothing about the user's work.
BENIGN_LINES: tuple[tuple[str, re.Pattern], ...] = (
    ("port.cc", re.compile(r"oneDNN custom operations are on")),
    ("cudart_stub.cc", re.compile(r"Could not find cuda drivers on your machine")),
    ("cpu_feature_guard.cc", re.compile(r"This TensorFlow binary is optimized to use available CPU"
                                        r"|To enable the following instructions")),
    ("cuda_dnn.cc", re.compile(r"Unable to register cuDNN factory|Loaded cuDNN version")),
    ("cuda_fft.cc", re.compile(r"Unable to register cuFFT factory")),
    ("cuda_blas.cc", re.compile(r"Unable to register cuBLAS factory")),
    ("computation_placer.cc", re.compile(r"computation placer already registered")),
    ("cuda_executor.cc", re.compile(r"failed call to cuInit")),
    ("gpu_device.cc", re.compile(r"Created device /job:")),
    ("service.cc", re.compile(r"XLA service 0x[0-9a-f]+ initialized for platform"
                              r"|StreamExecutor device \(\d+\)")),
    ("device_compiler.h", re.compile(r"Compiled cluster using XLA!")),
)
# absl's own notice that precedes the first of them.
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# The second line of cpu_feature_guard's notice, which absl writes without its prefix.
_CPU_GUARD_TAIL = re.compile(r"^To enable the following instructions: [\w ,.]+ in other operations, "
                             r"rebuild TensorFlow with the appropriate compiler flags\.$")
# A partial line (no newline yet) is held this long in case the rest follows, then passed on.
_PARTIAL_WAIT_S = 0.2
_READ_BYTES = 65536


def is_benign(line: str) -> bool:
    """Whether ``line`` is one of TensorFlow's known start-up lines (safe to drop).

    Examples
    --------
    >>> is_benign("WARNING: All log messages before absl::InitializeLog() is called are "
    ...           "written to STDERR\\n")
    True
    >>> is_benign("To enable the following instructions: AVX2 FMA, in other operations, "
    ...           "rebuild TensorFlow with the appropriate compiler flags.")
    True
    >>> is_benign("Traceback (most recent call last):")
    False
    """
    line = line.rstrip("\r\n")
    if line == _ABSL_PREAMBLE or _CPU_GUARD_TAIL.match(line):
        return True
    m = _ABSL.match(line)
    return bool(m) and any(m["file"] == f and p.search(m["msg"]) for f, p in BENIGN_LINES)


def _filter_lines(data: bytes) -> bytes:
    """Drop the benign lines of ``data`` (complete lines, each ending in a newline)."""
    kept = [ln for ln in data.splitlines(keepends=True)
            if not is_benign(ln.decode("utf-8", "replace"))]
    return b"".join(kept)


def _copy(read_fd: int, write_fd: int) -> None:
    """Copy ``read_fd`` to ``write_fd`` until end of file, without the benign lines."""
    pending = b""
    while True:
        if pending:
            ready, _, _ = select.select([read_fd], [], [], _PARTIAL_WAIT_S)
            if not ready:  # nothing more came: the partial line is not a log line
                os.write(write_fd, pending)
                pending = b""
                continue
        chunk = os.read(read_fd, _READ_BYTES)
        if not chunk:  # every writer closed the pipe (or died)
            if pending:
                os.write(write_fd, pending)
            return
        pending += chunk
        head, sep, pending = pending.rpartition(b"\n")
        if sep:
            out = _filter_lines(head + sep)
            if out:
                os.write(write_fd, out)


def install(fd: int = 2) -> subprocess.Popen:
    """Route ``fd`` through a filter process that drops :func:`is_benign` lines.

    Whatever ``fd`` pointed to (a terminal, a file, ipykernel's pipe) keeps
    receiving every other byte, in order. The filter is a small process of
    its own, not a thread: when this process exits, or crashes in C++ (a
    TensorFlow check failure, an abort), the filter still reads the last
    lines to the end of the pipe and passes them on. It ignores Ctrl-C, which
    reaches the whole process group, and ends when the pipe closes.

    Returns
    -------
    subprocess.Popen
        The filter process (it ends once every copy of ``fd`` is closed).

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryFile() as sink:
    ...     fd = os.dup(sink.fileno())
    ...     proc = install(fd)
    ...     _ = os.write(fd, (_ABSL_PREAMBLE + "\\nreal error\\n").encode())
    ...     os.close(fd)  # the filter passes on what it holds and stops
    ...     proc.wait(10)
    ...     _ = sink.seek(0)
    ...     sink.read()
    0
    b'real error\\n'
    """
    read_fd, write_fd = os.pipe()
    downstream = os.dup(fd)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "lab.kernel_output"], stdin=read_fd,
                                stdout=downstream, close_fds=True)
    finally:
        os.close(read_fd)
        os.close(downstream)
    os.dup2(write_fd, fd)
    os.close(write_fd)
    return proc


def load_ipython_extension(ipython) -> None:
    """IPython extension hook: filter the kernel's file descriptor 2 (see :func:`install`)."""
    install(2)


@contextlib.contextmanager
def warnings_as_notes(*categories: type[Warning]):
    """Show the warnings of ``categories`` raised in the block as labelled notes.

    In a notebook each becomes a Markdown note (**SeparationWarning:** the
    message); elsewhere a printed line. Other warnings are shown as usual.

    Parameters
    ----------
    *categories : Warning subclasses
        The warnings to show as notes.

    Raises
    ------
    TypeError
        If a category is not a Warning subclass.

    Examples
    --------
    >>> with warnings_as_notes(UserWarning):
    ...     warnings.warn("train longer")
    UserWarning: train longer
    """
    for category in categories:
        if not (isinstance(category, type) and issubclass(category, Warning)):
            raise TypeError(f"categories must be Warning subclasses, got {category!r}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for category in categories:
            warnings.simplefilter("always", category)
        yield
    for w in caught:
        if issubclass(w.category, categories):
            _note(w.category.__name__, str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _note(label: str, text: str) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:  # pragma: no cover - IPython comes with the lab's dependencies
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(Markdown(f"**{label}:** {text}"))
    else:
        print(f"{label}: {text}")


if __name__ == "__main__":  # the filter process of install(): stdin to stdout
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):  # the reader at the other end went away
        _copy(0, 1)
