"""``lab data get``: fetch a labelled benchmark from its public home into ``data/``.

Each data set comes as one archive from where its authors publish it:

- ``nab``: the Numenta Anomaly Benchmark, the GitHub archive of
  ``numenta/NAB`` at a pinned commit (the MIT relicensing, December 2024);
- ``skab``: the Skoltech Anomaly Benchmark, the GitHub archive of
  ``waico/SKAB`` (its ``master`` branch);
- ``ucr``: the UCR Time Series Anomaly Archive (KDD Cup 2021), the zip on
  the archive's site at UC Riverside, converted into the
  ``<id>_UCR_Anomaly_<name>_{TRAIN,TEST}.csv`` files that
  :func:`lab.datasets.load_ucr_anomaly` reads (``data/ucr_anomaly``).

Only the files the lab reads are kept. The download is atomic: the archive
goes to a temporary file beside the target, the files are extracted and
checked in a temporary folder, and that folder is renamed into place only
when everything is there and every checksum matches. An interrupted or
failed download leaves nothing behind.

Checksums are of the extracted files, not of the archive: GitHub builds
its archives on the fly and does not promise the same bytes twice (it
changed its compression in January 2023, then reverted), while the files in
them are fixed by the commit. Each file's SHA-256 is taken over its bytes
with CRLF line ends read as LF, so a checkout with other line ends has the
same digest. The expected digests (:mod:`lab.datasets._checksums`) are those
of the copies the lab's tests run on. ``lab-download.json`` in the target
folder records the URL, the archive's own SHA-256, and every file's digest.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab import config
from lab.datasets._checksums import CHECKSUMS

__all__ = ["get_data", "DownloadError", "SOURCES", "file_digest"]

#: NAB's commit: the relicensing to MIT (December 2024); data v1.1.
NAB_COMMIT = "ea702d75cc2258d9d7dd35ca8e5e2539d71f3140"
#: The UCR series that the lab's tests and notebooks read (the others are optional).
UCR_SERIES = ("135",)
#: Bytes read per chunk while downloading.
_CHUNK = 1 << 16
#: The record written beside the files.
MANIFEST = "lab-download.json"

_UCR_FILE = re.compile(r"(?:^|/)(\d{3})_UCR_Anomaly_([^/]+?)_(\d+)_(\d+)_(\d+)\.txt$")


class DownloadError(OSError):
    """A download that failed: the network, the archive, or a checksum."""


@dataclass(frozen=True)
class Source:
    """Where a data set lives and what the lab keeps of it."""

    url: str
    target: str                  # folder under data/ (the name find_data looks for)
    keep: Callable[[str], bool]  # archive path (top folder stripped) -> kept as is
    licence: str
    convert: Callable | None = None  # (zipfile, series) -> {relative path: bytes}


def _keep_nab(path: str) -> bool:
    return (re.fullmatch(r"data/[A-Za-z]+/[^/]+\.csv", path) is not None
            or path in ("labels/combined_windows.json", "labels/combined_labels.json",
                        "config/profiles.json", "LICENSE.txt"))


def _keep_skab(path: str) -> bool:
    # v0.9's 34 experiments and anomaly-free run, by name: SKAB's repository has held other
    # files beside them over time ("11 (2).csv", other/15-23), which would change the protocol
    return path in CHECKSUMS["skab"] or path == "LICENSE"


def _ucr_convert(archive: zipfile.ZipFile, series) -> dict[str, bytes]:
    """The archive's ``<id>_UCR_Anomaly_<name>_<train>_<begin>_<end>.txt`` as TRAIN/TEST csv."""
    out = {}
    found = set()
    for member in archive.namelist():
        match = _UCR_FILE.search(member)
        if not match:
            continue
        ident, name, train, begin, end = match.groups()
        if series is not None and ident not in series:
            continue
        found.add(ident)
        try:
            values = [float(v) for v in archive.read(member).decode("utf-8").split()]
        except (UnicodeDecodeError, ValueError) as exc:
            raise DownloadError(f"UCR file {member} is not a list of numbers: {exc}") from exc
        train, begin, end = int(train), int(begin), int(end)
        if not 0 < train <= len(values) or not 0 <= begin < end <= len(values):
            raise DownloadError(f"UCR file {member}: its name says train {train}, anomaly "
                                f"{begin}-{end}, but it holds {len(values)} values")
        for split, rows in (("TRAIN", range(train)), ("TEST", range(len(values)))):
            lines = ["timestamp,value,is_anomaly"]
            lines += [f"{i},{values[i]!r},{int(begin <= i < end)}" for i in rows]
            out[f"{ident}_UCR_Anomaly_{name}_{split}.csv"] = ("\n".join(lines) + "\n").encode()
    missing = sorted(set(series or ()) - found)
    if missing:
        raise DownloadError(f"the UCR archive holds no series numbered {missing}")
    if not out:
        raise DownloadError("the archive holds no <id>_UCR_Anomaly_<name>_<train>_<begin>_"
                            "<end>.txt file: it is not the UCR anomaly archive")
    return out


#: The data sets ``lab data get`` knows: name -> source.
SOURCES = {
    "nab": Source(f"https://github.com/numenta/NAB/archive/{NAB_COMMIT}.zip", "nab",
                  _keep_nab, "MIT"),
    "skab": Source("https://github.com/waico/SKAB/archive/refs/heads/master.zip", "skab",
                   _keep_skab, "GPL-3.0 (data)"),
    "ucr": Source("https://www.cs.ucr.edu/~eamonn/time_series_data_2018/"
                  "UCR_TimeSeriesAnomalyDatasets2021.zip", "ucr_anomaly",
                  lambda path: False, "free for research (UCR archive)", _ucr_convert),
}
_ALIASES = {"ucr_anomaly": "ucr"}


def file_digest(data: bytes) -> str:
    """SHA-256 of a file's bytes with CRLF line ends read as LF.

    Parameters
    ----------
    data : bytes

    Returns
    -------
    str
        The hex digest; the same for a file checked out with either line end.

    Examples
    --------
    >>> file_digest(b"a,b\\r\\n1,2\\r\\n") == file_digest(b"a,b\\n1,2\\n")
    True
    """
    return hashlib.sha256(data.replace(b"\r\n", b"\n")).hexdigest()


def _url(url: str) -> str:
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url):
        return url
    return Path(url).expanduser().resolve().as_uri()   # a local path


def _fetch(url: str, into, *, progress: bool, label: str) -> str:
    """Stream ``url`` into the open file ``into``; return the SHA-256 of the bytes."""
    from tqdm.auto import tqdm

    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - http(s)/file
            total = response.headers.get("Content-Length")
            with tqdm(total=int(total) if total else None, unit="B", unit_scale=True,
                      unit_divisor=1024, desc=label, disable=not progress) as bar:
                while chunk := response.read(_CHUNK):
                    into.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except urllib.error.URLError as exc:
        raise DownloadError(f"could not download {url}: {getattr(exc, 'reason', exc)}") from exc
    except (OSError, ValueError) as exc:   # a reset connection, a malformed URL
        raise DownloadError(f"could not download {url}: {exc}") from exc
    return digest.hexdigest()


def _extract(archive: zipfile.ZipFile, source: Source, series) -> dict[str, bytes]:
    if source.convert is not None:
        return source.convert(archive, series)
    files = {}
    for member in archive.infolist():
        if member.is_dir():
            continue
        # GitHub archives hold one top folder (<repo>-<ref>/); paths are taken below it
        path = member.filename.split("/", 1)[1] if "/" in member.filename else member.filename
        if source.keep(path):
            files[path] = archive.read(member)
    if not files:
        raise DownloadError("the archive holds none of the files the lab reads: it is not "
                            "this data set")
    return files


def _verify(name: str, files: dict[str, bytes]) -> tuple[dict[str, str], list[str]]:
    digests = {path: file_digest(data) for path, data in sorted(files.items())}
    expected = CHECKSUMS.get(name, {})
    if name == "ucr":       # only the series asked for are expected
        wanted = {p.split("_", 1)[0] for p in files}
        expected = {p: d for p, d in expected.items() if p.split("_", 1)[0] in wanted}
    missing = sorted(set(expected) - set(digests))
    wrong = sorted(p for p in expected if p in digests and digests[p] != expected[p])
    if missing or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} file(s): {', '.join(missing[:5])}")
        if wrong:
            parts.append(f"{len(wrong)} file(s) differ from the lab's checksums: "
                         + ", ".join(f"{p} (sha256 {digests[p][:12]}, expected "
                                     f"{expected[p][:12]})" for p in wrong[:5]))
        raise DownloadError(f"{name}: the downloaded data is not the version the lab was "
                            f"tested with; {'; '.join(parts)}. Nothing was installed")
    return digests, sorted(expected)


def get_data(name: str, dest=None, *, url: str | None = None, force: bool = False,
             series=UCR_SERIES, progress: bool = True) -> Path:
    """Download a labelled benchmark into ``data/``, checked and atomic.

    Parameters
    ----------
    name : {"nab", "skab", "ucr"}
        The data set (``"ucr_anomaly"`` is the same as ``"ucr"``).
    dest : str or Path, optional
        The folder that receives ``<target>/`` (``nab``, ``skab`` or
        ``ucr_anomaly``); the project's ``data/`` by default, where
        :func:`lab.datasets.find_data` looks.
    url : str, optional
        Another place for the same archive: an ``https://`` or ``file://``
        URL, or a local path (a zip downloaded by hand, a mirror). The
        checksums still apply.
    force : bool, default False
        Replace a copy already there (the old one stays until the new one is
        complete).
    series : sequence of str, or None
        For ``ucr``: the archive's series numbers to convert (the lab uses
        ``135``); None converts all 250.
    progress : bool, default True
        Show a progress bar on stderr.

    Returns
    -------
    Path
        The data set's folder, ready for the loaders.

    Raises
    ------
    ValueError
        On an unknown name, or ``dest`` that is not a folder.
    FileExistsError
        If the data set is already there and ``force`` is False.
    DownloadError
        If the download fails, the file is not a zip archive of this data set,
        or a file's checksum differs from the lab's; nothing is left behind.

    Notes
    -----
    The expected digests are per file (:func:`file_digest`), of the files
    the lab's tests read: all of NAB's and SKAB's, and the converted UCR
    series 135. Other UCR series are converted and recorded in
    ``lab-download.json``, without a digest to compare with.

    Examples
    --------
    >>> get_data("mnist")
    Traceback (most recent call last):
    ...
    ValueError: name must be one of nab, skab, ucr (or ucr_anomaly), got 'mnist'
    """
    key = _ALIASES.get(name, name)
    if key not in SOURCES:
        raise ValueError(f"name must be one of {', '.join(SOURCES)} (or ucr_anomaly), "
                         f"got {name!r}")
    source = SOURCES[key]
    root = Path(dest) if dest is not None else config.REPO_ROOT / "data"
    if root.exists() and not root.is_dir():
        raise ValueError(f"dest must be a folder, got the file {root}")
    root.mkdir(parents=True, exist_ok=True)
    target = root / source.target
    if target.exists() and not force:
        raise FileExistsError(f"{target} already exists; pass force=True (lab data get "
                              f"{key} --force) to replace it")
    wanted = None if series is None or key != "ucr" else {str(s) for s in series}
    where = _url(url or source.url)

    archive_file = tempfile.NamedTemporaryFile(dir=root, prefix=f".{source.target}-",
                                               suffix=".zip.part", delete=False)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{source.target}.partial-"))
    try:
        with archive_file:
            archive_sha = _fetch(where, archive_file, progress=progress,
                                 label=f"lab data get {key}")
        try:
            with zipfile.ZipFile(archive_file.name) as archive:
                files = _extract(archive, source, wanted)
        except (zipfile.BadZipFile, EOFError) as exc:
            raise DownloadError(f"{where} is not a readable zip archive ({exc})") from exc
        digests, verified = _verify(key, files)
        for path, data in files.items():
            out = staging / path
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
        manifest = {"dataset": key, "url": where, "licence": source.licence,
                    "archive_sha256": archive_sha,
                    "downloaded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "digest": "sha256 of the file with CRLF read as LF",
                    "verified": verified, "files": digests}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        if target.exists():
            old = Path(tempfile.mkdtemp(dir=root, prefix=f".{source.target}.old-"))
            os.replace(target, old / "copy")
            try:
                os.replace(staging, target)
            except BaseException:
                os.replace(old / "copy", target)   # the old copy stays where it was
                raise
            finally:
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, target)
    finally:
        Path(archive_file.name).unlink(missing_ok=True)
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _digests_of(folder, name: str) -> dict[str, str]:
    """Digests of the files of an existing copy that ``name``'s download would keep."""
    folder = Path(folder)
    source = SOURCES[name]
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and (source.keep(rel) or (name == "ucr" and rel.endswith(".csv"))):
            out[rel] = file_digest(path.read_bytes())
    return out


def _zip_of(files: dict[str, bytes], top: str = "", *, compress: bool = True) -> bytes:
    """A zip archive of ``files`` under the folder ``top`` (for tests and mirrors)."""
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for path, data in files.items():
            archive.writestr(f"{top}/{path}" if top else path, data)
    return buffer.getvalue()
