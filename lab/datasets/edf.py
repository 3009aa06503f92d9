"""EDF and EDF+ files (sleep, EEG and CPAP device recordings) as time-indexed DataFrames.

:func:`read_edf` reads the signals with pyedflib, one DataFrame per sampling
rate, and the EDF+ annotations as a table. :func:`write_edf` is the writer the
generators use (:func:`lab.datasets.make_cpap_nights`); it writes through a
temporary name, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["read_edf", "write_edf"]

#: Digital range of an EDF sample (16-bit two's complement).
DIGITAL_MIN, DIGITAL_MAX = -32768, 32767


def _time_index(start: pd.Timestamp, rate: float, n: int) -> pd.DatetimeIndex:
    step_ns = 1e9 / rate
    if step_ns == int(step_ns):  # 25 Hz, 0.5 Hz, 200 Hz: exact integer steps
        offsets = np.arange(n, dtype=np.int64) * int(step_ns)
    else:
        offsets = np.round(np.arange(n) * step_ns).astype(np.int64)
    return pd.DatetimeIndex(start.as_unit("ns").value + offsets, name="time")


def read_edf(path: str | os.PathLike, channels: list[str] | None = None
             ) -> tuple[pd.DataFrame | dict[float, pd.DataFrame], pd.DataFrame]:
    """Read an EDF or EDF+ file: its signals by sampling rate and its annotations.

    Parameters
    ----------
    path : str or path-like
        The ``.edf`` file.
    channels : list of str, optional
        Signal labels to read (default: all). An absent label raises.

    Returns
    -------
    signals : DataFrame, or dict of float -> DataFrame
        One float32 column per channel in physical units on a DatetimeIndex
        named ``time`` that starts at the recording's start. When the channels
        have different sampling rates, a dict from rate (Hz) to the frame of
        that rate. Each frame's ``attrs`` hold ``rate`` (Hz), ``units``
        (channel -> physical dimension) and ``start``. A file without signals
        (an EDF+ annotations file) gives an empty frame.
    annotations : DataFrame
        EDF+ annotations: ``onset`` (seconds from the start), ``duration``
        (seconds, NaN when not given), ``text`` and ``time`` (the onset as a
        timestamp). Empty for plain EDF.

    Raises
    ------
    ValueError
        If the file cannot be read as EDF (missing, truncated, corrupt; the
        message names the file) or lacks a requested channel (the message
        lists the channels it has).

    Examples
    --------
    >>> import pyedflib.data
    >>> signals, notes = read_edf(pyedflib.data.get_generator_filename(), channels=["ramp"])
    >>> signals.shape, signals.attrs["rate"], signals.attrs["units"]
    ((120000, 1), 200.0, {'ramp': 'uV'})
    >>> notes["text"].tolist()
    ['Recording starts', 'Recording ends']
    """
    import pyedflib

    path = Path(path)
    try:
        reader = pyedflib.EdfReader(str(path))
    except Exception as exc:  # pyedflib raises OSError with the edflib reason
        raise ValueError(f"{path}: not a readable EDF file ({exc})") from None
    try:
        labels = [str(s).strip() for s in reader.getSignalLabels()]
        if channels is None:
            wanted = list(range(len(labels)))
        else:
            missing = [c for c in channels if c not in labels]
            if missing:
                raise ValueError(f"{path} has no channel {missing}; its channels are {labels}")
            wanted = [labels.index(c) for c in channels]
        start = pd.Timestamp(reader.getStartdatetime())
        frames: dict[float, dict[str, np.ndarray]] = {}
        units: dict[float, dict[str, str]] = {}
        for i in wanted:
            rate = float(reader.getSampleFrequency(i))
            digital = reader.readSignal(i, digital=True)
            pmin, pmax = reader.getPhysicalMinimum(i), reader.getPhysicalMaximum(i)
            dmin, dmax = reader.getDigitalMinimum(i), reader.getDigitalMaximum(i)
            gain = (pmax - pmin) / (dmax - dmin)
            values = digital.astype(np.float32)
            values *= np.float32(gain)
            values += np.float32(pmin - dmin * gain)
            frames.setdefault(rate, {})[labels[i]] = values
            units.setdefault(rate, {})[labels[i]] = str(reader.getPhysicalDimension(i)).strip()
        onset, duration, text = reader.readAnnotations()
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"{path}: not a readable EDF file ({exc})") from None
    finally:
        reader.close()
    out: dict[float, pd.DataFrame] = {}
    for rate, cols in frames.items():
        n = min(len(v) for v in cols.values())
        df = pd.DataFrame({k: v[:n] for k, v in cols.items()}, index=_time_index(start, rate, n))
        df.attrs.update(rate=rate, units=units[rate], start=start)
        out[rate] = df
    duration = np.asarray(duration, dtype=np.float64)
    notes = pd.DataFrame({
        "onset": np.asarray(onset, dtype=np.float64),
        "duration": np.where(duration < 0, np.nan, duration),
        "text": [str(t) for t in text],
    })
    notes["time"] = start + pd.to_timedelta(notes["onset"], unit="s")
    if not out:
        empty = pd.DataFrame(index=pd.DatetimeIndex([], name="time"))
        empty.attrs.update(rate=None, units={}, start=start)
        return empty, notes
    return (next(iter(out.values())) if len(out) == 1 else out), notes


def _header_number(x: float, *, down: bool) -> float:
    """``x`` rounded outwards to a number whose decimal form fits EDF's 8 header characters."""
    for decimals in range(6, -1, -1):
        scale = 10.0 ** decimals
        y = (np.floor if down else np.ceil)(x * scale) / scale
        if len(f"{y:.{decimals}f}".rstrip("0").rstrip(".")) <= 8:
            return float(y)
    raise ValueError(f"physical value {x!r} does not fit the 8 characters of an EDF header")


def write_edf(path: str | os.PathLike, signals: dict[str, np.ndarray], rates: dict[str, float],
              start: Any, *, units: dict[str, str] | None = None,
              ranges: dict[str, tuple[float, float]] | None = None,
              annotations: pd.DataFrame | None = None, record_s: int = 60) -> Path:
    """Write signals (and EDF+ annotations) to an EDF+ file, atomically.

    Parameters
    ----------
    path : str or path-like
        Target file; written as ``.<name>.tmp`` then renamed.
    signals : dict of str -> 1-D array
        Physical values per channel label (at most 16 characters).
    rates : dict of str -> float
        Sampling rate of each channel (Hz); ``rate * record_s`` must be whole.
    start : datetime-like
        Recording start.
    units : dict of str -> str, optional
        Physical dimension of each channel.
    ranges : dict of str -> (float, float), optional
        Physical minimum and maximum of each channel (default: the data's,
        widened by 1%); values outside are clipped.
    annotations : DataFrame, optional
        ``onset`` (s), ``duration`` (s) and ``text`` of EDF+ annotations.
    record_s : int, default 60
        Data record duration in seconds.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> p = write_edf(f"{d}/x.edf", {"a": np.arange(120.0)}, {"a": 2.0}, "2020-01-01 22:00")
    >>> df, _ = read_edf(p)
    >>> df.shape, round(float(df["a"].iloc[-1]), 2)
    ((120, 1), 119.0)
    """
    import warnings

    import pyedflib

    path = Path(path)
    units = units or {}
    ranges = ranges or {}
    labels = list(signals)
    headers, digital = [], []
    for label in labels:
        x = np.asarray(signals[label], dtype=np.float64)
        lo, hi = ranges.get(label, (float(x.min()), float(x.max())))
        if label not in ranges:
            pad = max(abs(hi - lo) * 0.01, 1e-3)
            lo, hi = lo - pad, hi + pad
        lo, hi = _header_number(lo, down=True), _header_number(hi, down=False)
        gain = (hi - lo) / (DIGITAL_MAX - DIGITAL_MIN)
        d = np.clip(np.round((x - lo) / gain) + DIGITAL_MIN, DIGITAL_MIN, DIGITAL_MAX)
        digital.append(np.ascontiguousarray(d.astype(np.int32)))
        headers.append({"label": label, "dimension": units.get(label, ""),
                        "sample_frequency": float(rates[label]), "physical_min": float(lo),
                        "physical_max": float(hi), "digital_min": DIGITAL_MIN,
                        "digital_max": DIGITAL_MAX, "transducer": "", "prefilter": ""})
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = pyedflib.EdfWriter(str(tmp), len(labels), file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            writer.setDatarecordDuration(record_s)
        if headers:
            writer.setSignalHeaders(headers)
        writer.setStartdatetime(pd.Timestamp(start).to_pydatetime().replace(microsecond=0))
        if annotations is not None:
            for row in annotations.itertuples(index=False):
                writer.writeAnnotation(float(row.onset), float(row.duration), str(row.text))
        if digital:
            writer.writeSamples(digital, digital=True)
    finally:
        writer.close()
    os.replace(tmp, path)
    return path

