"""``lab data get``: the download path on local copies through file:// URLs (no internet here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lab.cli import main
from lab.datasets import DataNotFoundError, find_data
from lab.datasets.download import (
    MANIFEST,
    SOURCES,
    DownloadError,
    _zip_of,
    file_digest,
    get_data,
)


def _shared(name: str) -> Path:
    try:
        return find_data(name)
    except DataNotFoundError:
        pytest.skip(f"{name} data not found")


def _files(folder: Path, keep) -> dict[str, bytes]:
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and keep(rel):
            out[rel] = path.read_bytes()
    return out


@pytest.fixture(scope="module")
def skab_files():
    return _files(_shared("skab"), SOURCES["skab"].keep)


def _archive(tmp_path: Path, files: dict[str, bytes], top="SKAB-master", name="a.zip") -> str:
    path = tmp_path / name
    path.write_bytes(_zip_of(files, top, compress=False))
    return path.as_uri()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_skab_round_trip(tmp_path, skab_files):
    from lab.datasets import load_skab

    extra = {"notebooks/model.py": b"print()\n", "README.md": b"# SKAB\n",
             "data/other/15.csv": b"x\n", "data/valve1/2 (2).csv": b"x\n"}
    url = _archive(tmp_path, {**skab_files, **extra})
    dest = tmp_path / "data"
    target = get_data("skab", dest, url=url, progress=False)
    assert target == dest / "skab"
    assert _leftovers(dest) == ["skab"]                       # no temporary file left
    assert not (target / "notebooks").exists() and not (target / "README.md").exists()
    assert not (target / "data/other/15.csv").exists()      # not one of SKAB v0.9's 34
    mine, shared = load_skab(root=target), load_skab()
    assert list(mine) == list(shared)
    pd.testing.assert_frame_equal(mine["other/14"], shared["other/14"])
    manifest = pd.read_json(target / MANIFEST, typ="series")
    assert manifest["url"] == url and len(manifest["verified"]) == 35
    assert manifest["files"]["data/valve1/0.csv"] == file_digest(skab_files["data/valve1/0.csv"])


def test_line_ends_do_not_change_the_checksum(tmp_path, skab_files):
    files = {k: v.replace(b"\r\n", b"\n") for k, v in skab_files.items()}
    assert files != skab_files                      # the shared copy has CRLF files
    get_data("skab", tmp_path, url=_archive(tmp_path, files), progress=False)


def test_checksum_mismatch_installs_nothing(tmp_path, skab_files):
    files = dict(skab_files)
    files["data/valve2/3.csv"] = files["data/valve2/3.csv"].replace(b"0.0", b"0.1", 1)
    del files["data/other/7.csv"]
    with pytest.raises(DownloadError, match=r"missing 1 file.*other/7.csv.*valve2/3.csv"):
        get_data("skab", tmp_path / "data", url=_archive(tmp_path, files), progress=False)
    assert _leftovers(tmp_path / "data") == []


def test_existing_copy_needs_force(tmp_path, skab_files):
    url = _archive(tmp_path, skab_files)
    get_data("skab", tmp_path, url=url, progress=False)
    with pytest.raises(FileExistsError, match="--force"):
        get_data("skab", tmp_path, url=url, progress=False)
    (tmp_path / "skab" / "stale.txt").write_text("old")
    get_data("skab", tmp_path, url=url, force=True, progress=False)
    assert not (tmp_path / "skab" / "stale.txt").exists()
    assert sorted(p for p in _leftovers(tmp_path) if p.startswith(".")) == []


def test_bad_sources(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(DownloadError, match="not a readable zip"):
        get_data("nab", tmp_path / "d", url=str(junk), progress=False)   # a plain path works
    with pytest.raises(DownloadError, match="could not download"):
        get_data("nab", tmp_path / "d", url=(tmp_path / "absent.zip").as_uri(), progress=False)
    other = _archive(tmp_path, {"src/main.c": b"int main;\n"}, top="x-main")
    with pytest.raises(DownloadError, match="none of the files"):
        get_data("nab", tmp_path / "d", url=other, progress=False)
    assert _leftovers(tmp_path / "d") == []
    with pytest.raises(ValueError, match="name must be one of"):
        get_data("mnist", tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="dest must be a folder"):
        get_data("nab", tmp_path / "file")


def test_interrupted_download_leaves_nothing(tmp_path, skab_files, monkeypatch):
    import lab.datasets.download as download

    def fetch(url, into, **kwargs):
        into.write(b"PK\x03\x04 half")
        raise KeyboardInterrupt

    monkeypatch.setattr(download, "_fetch", fetch)
    with pytest.raises(KeyboardInterrupt):
        get_data("skab", tmp_path / "d", url=_archive(tmp_path, skab_files), progress=False)
    assert _leftovers(tmp_path / "d") == []


def test_ucr_conversion_reproduces_the_shared_copy(tmp_path):
    """The archive's one-file-per-series .txt becomes the TRAIN/TEST csv aeon ships, byte for byte."""
    from lab.datasets import load_ucr_anomaly

    shared = _shared("ucr_anomaly")
    test = pd.read_csv(shared / "135_UCR_Anomaly_InternalBleeding16_TEST.csv")
    rows = np.flatnonzero(test["is_anomaly"].to_numpy())
    text = "".join(f"  {v:.7e}\n" for v in test["value"])
    folder = "AnomalyDatasets_2021/UCR_TimeSeriesAnomalyDatasets2021/FilesAreInHere/"
    files = {f"{folder}135_UCR_Anomaly_InternalBleeding16_1200_{rows[0]}_{rows[-1] + 1}.txt":
             text.encode(),
             f"{folder}136_UCR_Anomaly_InternalBleeding17_1600_3198_3309.txt":
             b"1.0 2.0\n" * 2000}
    url = _archive(tmp_path, files, top="UCR_Anomaly")
    target = get_data("ucr", tmp_path / "data", url=url, progress=False)
    assert target.name == "ucr_anomaly"
    assert sorted(p.name for p in target.glob("*.csv")) == [
        "135_UCR_Anomaly_InternalBleeding16_TEST.csv", "135_UCR_Anomaly_InternalBleeding16_TRAIN.csv"]
    for split in ("TRAIN", "TEST"):
        name = f"135_UCR_Anomaly_InternalBleeding16_{split}.csv"
        assert (target / name).read_bytes() == (shared / name).read_bytes()
    mine, ref = load_ucr_anomaly(root=target), load_ucr_anomaly(shared)
    pd.testing.assert_frame_equal(mine["135_InternalBleeding16"], ref["135_InternalBleeding16"])
    every = get_data("ucr_anomaly", tmp_path / "all", url=url, series=None, progress=False)
    assert len(list(every.glob("136_*.csv"))) == 2
    with pytest.raises(DownloadError, match=r"no series numbered \['999'\]"):
        get_data("ucr", tmp_path / "none", url=url, series=["999"], progress=False)


def test_nab_round_trip(tmp_path):
    from lab.datasets import load_nab

    files = _files(_shared("nab"), SOURCES["nab"].keep)
    files["nab/detectors/base.py"] = b"pass\n"
    url = _archive(tmp_path, files, top="NAB-ea702d75cc2258d9d7dd35ca8e5e2539d71f3140")
    target = get_data("nab", tmp_path, url=url, progress=False)
    mine, shared = load_nab(root=target, category="realKnownCause"), load_nab(
        category="realKnownCause")
    assert list(mine) == list(shared)
    pd.testing.assert_frame_equal(mine["realKnownCause/nyc_taxi"], shared["realKnownCause/nyc_taxi"])
    assert len(list((target / "data").rglob("*.csv"))) == 58


def test_cli_data_get(tmp_path, skab_files, capsys):
    url = _archive(tmp_path, skab_files)
    assert main(["data", "get", "skab", "--url", url, "--dest", str(tmp_path / "d")]) == 0
    out = capsys.readouterr()
    assert str(tmp_path / "d" / "skab") in out.out
    assert "lab data get skab" in out.err                      # the progress bar
    assert main(["data", "get", "skab", "--url", url, "--dest", str(tmp_path / "d")]) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["data", "get", "skab", "--url", url + "x", "--dest", str(tmp_path / "e")]) == 1
    assert "lab: error: could not download" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["data", "get", "mnist"])


def test_ucr_file_that_is_not_numbers(tmp_path):
    url = _archive(tmp_path, {"135_UCR_Anomaly_X_10_12_14.txt": b"1.0 oops\n"}, top="u")
    with pytest.raises(DownloadError, match="not a list of numbers"):
        get_data("ucr", tmp_path / "d", url=url, progress=False)
    url = _archive(tmp_path, {"135_UCR_Anomaly_X_10_12_14.txt": b"1.0\n" * 12}, top="u",
                   name="b.zip")
    with pytest.raises(DownloadError, match="holds 12 values"):
        get_data("ucr", tmp_path / "d", url=url, progress=False)
    assert _leftovers(tmp_path / "d") == []
