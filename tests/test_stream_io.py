"""lab.stream.io: the codec, replay, the Parquet sink, point checks, read_source (no broker)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.stream.io import (
    Batch,
    ParquetSink,
    check_points,
    decode_batch,
    encode_batch,
    read_parquet_sink,
    read_source,
    replay,
)


def _frame(n=50, cols=("a", "b")):
    t = pd.date_range("2024-01-01", periods=n, freq="min")
    rng = np.random.default_rng(0)
    return pd.DataFrame({c: rng.normal(size=n) for c in cols}, index=t)


@pytest.mark.parametrize("fmt", ["json", "arrow"])
def test_codec_round_trip(fmt):
    b = Batch("s/1", timestamp=np.arange(5, dtype=np.int64) * 10**9, value=np.linspace(0, 1, 5),
              score=np.ones(5), alert=np.array([0, 1, 0, 0, 1], bool))
    out = decode_batch(encode_batch(b, fmt), b"s/1")
    assert out.series == "s/1"
    for k in b:
        np.testing.assert_array_equal(out[k], b[k])


@pytest.mark.parametrize("payload,match", [
    (b"{not json", "not valid JSON"), (b"\x00\x01garbage", "neither JSON nor Arrow"),
    (b'{"series": "a", "value": [1]}', "timestamp"),
    (b'{"series": "a", "timestamp": [1, 2], "value": [1]}', "one length"),
    (b'{"timestamp": [1], "value": [1]}', "names no series"),
])
def test_decode_rejects(payload, match):
    with pytest.raises(ValueError, match=match):
        decode_batch(payload)


def test_check_points_reasons():
    b = decode_batch(b'{"series": "a", "timestamp": [10, 11, 9, 12, 13], '
                     b'"value": [1.0, "x", 2.0, null, 3.0]}')
    ok, bad = check_points(b, last=5)
    assert ok["timestamp"].tolist() == [10, 13] and ok["value"].tolist() == [1.0, 3.0]
    reasons = [r for _, _, r in bad]
    assert reasons[0].startswith("value is not a number") and "older" not in reasons[0]
    assert reasons[1].startswith("timestamp not after")
    assert reasons[2].startswith("value is not a number")
    ok, bad = check_points(Batch("a", timestamp=np.array([1, 2]), value=np.array([1.0, 2.0])), 1)
    assert ok["timestamp"].tolist() == [2] and len(bad) == 1


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 3), st.one_of(st.none(), st.integers(1, 50)))
def test_replay_keeps_every_point_in_order(n, k, batch):
    df = _frame(n, cols=[f"c{i}" for i in range(k)])
    if batch is None:
        pts = list(replay(df))
        assert [p[0] for p in pts] == sorted(p[0] for p in pts)
        got = pd.DataFrame(pts, columns=["t", "s", "v"]).pivot(index="t", columns="s", values="v")
    else:
        parts = list(replay(df, batch=batch))
        assert all(len(b) <= batch for b in parts)
        got = pd.concat([b.frame() for b in parts]).pivot(index="timestamp", columns="series",
                                                         values="value")
    np.testing.assert_array_equal(got[df.columns].to_numpy(), df.to_numpy())


def test_replay_rate():
    df = _frame(20, cols=("a",))
    start = time.monotonic()
    assert len(list(replay(df, rate=100))) == 20
    assert 0.15 < time.monotonic() - start < 1.5
    with pytest.raises(ValueError, match="rate"):
        list(replay(df, rate=0))
    with pytest.raises(ValueError, match="DatetimeIndex"):
        list(replay(df.reset_index(drop=True)))


def test_parquet_sink_drops_duplicates(tmp_path):
    def batch(lo, hi):
        ts = np.arange(lo, hi, dtype=np.int64)
        return Batch("a", timestamp=ts, value=ts * 1.0, score=ts * 0.0, alert=ts % 7 == 0)

    assert ParquetSink(tmp_path).write([batch(0, 10)]) == 10
    sink = ParquetSink(tmp_path)                       # a restarted writer
    assert sink.write([batch(5, 15)]) == 5             # rows 5..9 are already there
    assert sink.write([batch(0, 15)]) == 0
    (tmp_path / ".part-x.parquet.tmp").write_bytes(b"half")   # a killed write leaves this
    out = read_parquet_sink(tmp_path)
    assert out["timestamp"].tolist() == list(range(15))


def test_read_source(tmp_path):
    df = _frame(10)
    df.rename_axis("timestamp").reset_index().to_csv(tmp_path / "x.csv", index=False)
    got = read_source(tmp_path / "x.csv")
    np.testing.assert_allclose(got.to_numpy(), df.to_numpy())
    df.to_parquet(tmp_path / "x.parquet")
    assert read_source(tmp_path / "x.parquet").shape == (10, 2)
    pd.DataFrame({"v": [1, 2]}).to_csv(tmp_path / "y.csv", index=False)
    with pytest.raises(ValueError, match="no time column"):
        read_source(tmp_path / "y.csv")


def test_read_source_nab_name():
    from lab.datasets import find_data

    try:
        find_data("nab")
    except FileNotFoundError:
        pytest.skip("NAB is not on this machine")
    got = read_source("nyc_taxi")
    assert list(got.columns) == ["nyc_taxi"] and got.index.is_monotonic_increasing
    with pytest.raises(ValueError, match="not a NAB series"):
        read_source("no_such_series")
