"""Stream plumbing without a broker: the message codec, ``replay``, the Parquet sink, dead letters.

A *batch* is the points of one series: ``(series, timestamps, values)``,
timestamps as int64 nanoseconds since the epoch. On the wire a batch is one
message, keyed by the series name, in JSON
(``{"series": ..., "timestamp": [...], "value": [...]}``) or as an Arrow IPC
stream (columns ``timestamp`` and ``value``, the series in the key and in
the schema metadata). Scored batches carry ``score`` and ``alert`` too.
"""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["FORMATS", "Batch", "encode_batch", "decode_batch", "replay", "ParquetSink",
           "read_parquet_sink", "DeadLetterFile", "check_points", "read_source"]

#: Wire formats of a batch.
FORMATS = ("json", "arrow")
#: Columns of a scored batch, in order.
SCORED_COLUMNS = ("series", "timestamp", "value", "score", "alert")


class Batch(dict):
    """One series' points: ``series`` (str) and arrays ``timestamp`` (int64 ns), ``value``, ...

    Examples
    --------
    >>> b = Batch("a", timestamp=np.array([1, 2]), value=np.array([0.5, 0.7]))
    >>> b.series, len(b)
    ('a', 2)
    """

    def __init__(self, series: str, **columns: np.ndarray):
        super().__init__(columns)
        self.series = str(series)

    def __len__(self) -> int:
        return len(self["timestamp"])

    def frame(self) -> pd.DataFrame:
        """The batch as rows of :data:`SCORED_COLUMNS` (or the columns it has)."""
        out = pd.DataFrame({k: np.asarray(v) for k, v in self.items()})
        out.insert(0, "series", self.series)
        return out


def encode_batch(batch: Batch, fmt: str = "json") -> bytes:
    """A batch as the bytes of one message.

    Examples
    --------
    >>> b = Batch("a", timestamp=np.array([1, 2]), value=np.array([0.5, 0.7]))
    >>> decode_batch(encode_batch(b, "arrow"))["value"].tolist()
    [0.5, 0.7]
    """
    if fmt == "json":
        body = {"series": batch.series}
        for k, v in batch.items():
            body[k] = np.asarray(v).tolist()
        return json.dumps(body, separators=(",", ":")).encode()
    if fmt == "arrow":
        import pyarrow as pa

        table = pa.table({k: np.asarray(v) for k, v in batch.items()})
        table = table.replace_schema_metadata({"series": batch.series})
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue()
    raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")


def decode_batch(payload: bytes, key: bytes | None = None) -> Batch:
    """The batch in one message (JSON or Arrow, told apart by its first byte).

    Values that are not numbers come back as NaN-free object arrays for
    :func:`check_points` to reject point by point.

    Raises
    ------
    ValueError
        If the payload is neither, lacks ``timestamp``/``value`` or their
        lengths differ.

    Examples
    --------
    >>> decode_batch(b'{"series": "a", "timestamp": [1], "value": [2.0]}').series
    'a'
    >>> decode_batch(b'not json')
    Traceback (most recent call last):
    ...
    ValueError: message is neither JSON nor Arrow: Expecting value: line 1 column 1 (char 0)
    """
    if payload is None:
        raise ValueError("message has no payload")
    series = key.decode(errors="replace") if key else None
    if payload[:1] in (b"{", b" "):
        try:
            body = json.loads(payload)
        except ValueError as exc:
            raise ValueError(f"message is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ValueError(f"JSON message must be an object, got {type(body).__name__}")
        series = body.pop("series", series)
        series = str(series) if series is not None else None
        columns = body
    else:
        try:
            import pyarrow as pa

            table = pa.ipc.open_stream(payload).read_all()
        except Exception as exc:
            try:
                json.loads(payload)
            except ValueError as jexc:
                raise ValueError(f"message is neither JSON nor Arrow: {jexc}") from None
            raise ValueError(f"message is not a valid Arrow stream: {exc}") from None
        meta = table.schema.metadata or {}
        series = meta.get(b"series", series.encode() if series else b"").decode()
        columns = {name: table.column(name).to_numpy(zero_copy_only=False)
                   for name in table.column_names}
    if not series:
        raise ValueError("message names no series (no key and no 'series' field)")
    for need in ("timestamp", "value"):
        if need not in columns:
            raise ValueError(f"message lacks the {need!r} field; has {sorted(columns)}")
    lengths = {k: len(v) if isinstance(v, (list, np.ndarray)) else -1 for k, v in columns.items()}
    if len(set(lengths.values())) != 1 or -1 in lengths.values():
        raise ValueError(f"message fields must be lists of one length, got {lengths}")
    out = Batch(series)
    for k, v in columns.items():
        arr = np.asarray(v)
        if arr.dtype.kind in "USO" and isinstance(v, list):
            arr = np.empty(len(v), dtype=object)   # mixed JSON: keep each item as it came
            arr[:] = v
        if k == "timestamp" and arr.dtype.kind == "M":
            arr = arr.astype("datetime64[ns]").view(np.int64)
        out[k] = arr
    return out


def check_points(batch: Batch, last: int | None) -> tuple[Batch, list[tuple[int, Any, str]]]:
    """Split a batch into its valid points and the rejected ones, with the reason.

    A point is rejected if its value is not a finite number, its timestamp
    is not an integer, or its timestamp is not after the series' ``last``
    one (and the previous valid point of the batch).

    Returns
    -------
    valid : Batch
        ``timestamp`` (int64) and ``value`` (float64) of the points kept.
    rejected : list of (timestamp, value, reason)

    Examples
    --------
    >>> b = Batch("a", timestamp=np.array([5, 3, 6, 7]), value=np.array([1, 2, "x", 4], object))
    >>> ok, bad = check_points(b, last=None)
    >>> ok["timestamp"].tolist(), [r[2].split(":")[0] for r in bad]
    ([5, 7], ['timestamp not after the last one', 'value is not a number'])
    """
    ts_raw, val_raw = batch["timestamp"], batch["value"]
    if ts_raw.dtype.kind in "iu" and val_raw.dtype.kind in "fiu":
        ts = ts_raw.astype(np.int64)
        vals = val_raw.astype(np.float64)
        prev = np.maximum.accumulate(np.r_[np.iinfo(np.int64).min if last is None else last,
                                           ts[:-1]])
        fast_ok = np.isfinite(vals) & (ts > prev)
        if fast_ok.all():
            return Batch(batch.series, timestamp=ts, value=vals), []
    keep_t, keep_v, bad = [], [], []
    for t, v in zip(ts_raw.tolist(), val_raw.tolist(), strict=True):
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
            bad.append((t, v, f"timestamp is not an integer (ns): {t!r}"))
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            bad.append((t, v, f"value is not a number: {v!r}"))
            continue
        if last is not None and t <= last:
            bad.append((t, v, f"timestamp not after the last one: {t} <= {last}"))
            continue
        keep_t.append(t)
        keep_v.append(float(v))
        last = t
    return Batch(batch.series, timestamp=np.array(keep_t, dtype=np.int64),
                 value=np.array(keep_v, dtype=np.float64)), bad


def _long(df: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df must be a DataFrame, got {type(df).__name__}")
    if not isinstance(df.index, pd.DatetimeIndex):
        raise ValueError(f"df must have a DatetimeIndex, got {type(df.index).__name__}")
    values = df.select_dtypes("number")
    if values.shape[1] == 0:
        raise ValueError(f"df has no numeric column; columns {list(df.columns)}")
    ts = df.index.as_unit("ns").asi8
    return values, ts


def replay(df: pd.DataFrame, rate: float | None = None, batch: int | None = None
           ) -> Iterator[Any]:
    """Yield a frame's points in time order, as fast as possible or at ``rate`` points a second.

    Parameters
    ----------
    df : DataFrame
        A DatetimeIndex and one numeric column per series (other columns,
        such as labels, are left out).
    rate : float, optional
        Points per second (all series together); as fast as possible if None.
    batch : int, optional
        None: yield ``(timestamp, series, value)`` one point at a time.
        An int: yield :class:`Batch` es, each of up to ``batch`` rows of one
        series, the rows of every series in one time slice before the next.

    Examples
    --------
    >>> t = pd.date_range("2024-01-01", periods=3, freq="min")
    >>> df = pd.DataFrame({"a": [1.0, 2, 3], "b": [4.0, 5, 6]}, index=t)
    >>> [(s, v) for _, s, v in replay(df)][:3]
    [('a', 1.0), ('b', 4.0), ('a', 2.0)]
    >>> [(b.series, len(b)) for b in replay(df, batch=2)]
    [('a', 2), ('b', 2), ('a', 1), ('b', 1)]
    """
    values, ts = _long(df)
    if rate is not None and not rate > 0:
        raise ValueError(f"rate must be > 0 points per second, got {rate}")
    names = [str(c) for c in values.columns]
    arr = values.to_numpy(dtype=np.float64)
    start = time.monotonic()
    sent = 0

    def pace(k: int) -> None:
        nonlocal sent
        sent += k
        if rate is not None:
            wait = start + sent / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)

    if batch is None:
        for i in range(len(ts)):
            for j, name in enumerate(names):
                yield int(ts[i]), name, float(arr[i, j])
                pace(1)
        return
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    for lo in range(0, len(ts), batch):
        hi = min(lo + batch, len(ts))
        for j, name in enumerate(names):
            yield Batch(name, timestamp=ts[lo:hi], value=arr[lo:hi, j])
            pace(hi - lo)


def read_source(source: str | os.PathLike) -> pd.DataFrame:
    """A SOURCE of ``lab stream replay``: a CSV or Parquet file with a time column, or a NAB name.

    The time column is the first one named ``timestamp``, ``time``, ``date``
    or ``datetime`` (or the Parquet index, if a DatetimeIndex). A NAB name
    (``realKnownCause/nyc_taxi.csv`` or ``nyc_taxi``) gives its ``value``
    column named after the series.

    Raises
    ------
    ValueError
        If the source is none of these.
    """
    path = Path(source)
    if path.suffix.lower() in (".csv", ".parquet", ".pq") and path.is_file():
        df = pd.read_parquet(path) if path.suffix.lower() != ".csv" else pd.read_csv(path)
        if not isinstance(df.index, pd.DatetimeIndex):
            for col in df.columns:
                if str(col).lower() in ("timestamp", "time", "date", "datetime"):
                    df = df.set_index(pd.to_datetime(df.pop(col)))
                    break
            else:
                raise ValueError(f"{source}: no time column (timestamp/time/date/datetime); "
                                 f"columns {list(df.columns)}")
        return df.select_dtypes("number")
    from lab.datasets import load_nab

    try:
        nab = load_nab()
    except FileNotFoundError:
        raise ValueError(f"SOURCE {str(source)!r} is not a CSV/Parquet file, and NAB is not "
                         "on this machine to look it up as a series name") from None
    wanted = str(source).removesuffix(".csv")
    for key, frame in nab.items():
        if key.removesuffix(".csv") == wanted or key.split("/")[-1].removesuffix(".csv") == wanted:
            name = key.split("/")[-1].removesuffix(".csv")
            out = frame[["value"]].rename(columns={"value": name})
            return out[~out.index.duplicated()].sort_index()
    raise ValueError(f"SOURCE {str(source)!r} is not a file and not a NAB series; NAB has e.g. "
                     f"{', '.join(sorted(nab)[:3])}")


class ParquetSink:
    """Scored batches into a folder of Parquet files, without duplicates by series and timestamp.

    Each :meth:`write` is one file, written to a temporary name and renamed,
    so a killed writer leaves no half file. On opening, the sink reads the
    last timestamp of each series already there, and drops any row at or
    before it: a batch scored again after a restart is written once. The
    points of a series arrive in time order (one partition per key), so that
    is the whole of the duplicate check.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> b = Batch("a", timestamp=np.array([1, 2]), value=np.array([0.1, 0.2]),
    ...           score=np.array([0.0, 1.0]), alert=np.array([False, True]))
    >>> ParquetSink(d).write([b]), ParquetSink(d).write([b])
    (2, 0)
    >>> len(read_parquet_sink(d))
    2
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.last: dict[str, int] = {}
        for f in sorted(self.path.glob("part-*.parquet")):
            cols = pd.read_parquet(f, columns=["series", "timestamp"])
            if len(cols):
                for s, t in cols.groupby("series")["timestamp"].max().items():
                    self.last[s] = max(self.last.get(s, t), int(t))

    def write(self, batches: list[Batch]) -> int:
        """Write the new rows of ``batches`` as one file; the number of rows written."""
        frames = []
        for b in batches:
            if not len(b):
                continue
            f = b.frame()
            last = self.last.get(b.series)
            if last is not None:
                f = f[f["timestamp"] > last]
            if len(f):
                self.last[b.series] = int(f["timestamp"].iloc[-1])
                frames.append(f)
        if not frames:
            return 0
        out = pd.concat(frames, ignore_index=True)
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = self.path / f".{name}.tmp"
        out.to_parquet(tmp, index=False)
        os.replace(tmp, self.path / name)
        return len(out)


def read_parquet_sink(path: str | os.PathLike) -> pd.DataFrame:
    """Every row a :class:`ParquetSink` wrote, sorted by series and time, duplicates dropped."""
    files = sorted(Path(path).glob("part-*.parquet"))
    if not files:
        return pd.DataFrame(columns=list(SCORED_COLUMNS))
    out = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    out = out.drop_duplicates(["series", "timestamp"]).sort_values(["series", "timestamp"])
    return out.reset_index(drop=True)


class DeadLetterFile:
    """Rejected messages and points as JSON lines (``reason``, ``series``, ``payload``...)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def send(self, record: dict) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
        self.count += 1

    def flush(self) -> None:
        pass
