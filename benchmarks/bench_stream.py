"""Streaming speed: SPOTStream.update in process, and end to end through the bundled broker.

Prints, in one run on one machine:

1. in process: ``SPOTStream.update`` (1000-point batches, after calibration) beside the raw
   libspot ``step`` loop on the same values (the reference: the per-point C call that the
   detector must make for every value);
2. the broker's raw rate: producing the points (1000 per message, JSON) and consuming them
   back with no scoring, the limit of anything end to end;
3. end to end: replay to a topic, score with SPOT, scores written to Parquet, offsets
   committed, from the first message to the last write (the group join of a few seconds is
   not counted);
4. scale-out: the same topic with 4 partitions scored by 1 and by 2 scorer processes of one
   consumer group; the rate is all points over first message to last write of the group.

    .venv/bin/python benchmarks/bench_stream.py            # 2 M points in process, 1 M via Kafka
    .venv/bin/python benchmarks/bench_stream.py --quick    # 10x less
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from lab.spot import Spot
from lab.stream import SPOTStream
from lab.stream.broker import Broker, create_topic
from lab.stream.io import ParquetSink
from lab.stream.kafka import KafkaSource, produce_frame, score_stream

ROOT = Path(__file__).resolve().parents[1]
#: The issue's bars (points per second).
BAR_UPDATE, BAR_E2E, BAR_SCALE = 1_000_000, 100_000, 1.4

SCORER = """
import json, sys, time
from lab.stream import SPOTStream
from lab.stream.io import ParquetSink
from lab.stream.kafka import KafkaSource, score_stream
src = KafkaSource(sys.argv[1], sys.argv[2], sys.argv[3])
st = score_stream(src, lambda: SPOTStream(), ParquetSink(sys.argv[4]), threshold=1.0,
                  max_idle=3)
src.close()
print(json.dumps({"points": st.points, "first": st.first_at, "last": st.last_at}))
"""


def in_process(n: int) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=n + 1000)
    det = SPOTStream(n_init=1000, tail="upper")
    det.update(x[:1000])
    start = time.perf_counter()
    for i in range(1000, len(x), 1000):
        det.update(x[i:i + 1000])
    rate = n / (time.perf_counter() - start)
    spot = Spot().fit(x[:1000])._spot
    values = x[1000:].tolist()
    start = time.perf_counter()
    for v in values:
        spot.step(v)
    return rate, n / (time.perf_counter() - start)


def frame(n: int, n_series: int = 4) -> pd.DataFrame:
    t = pd.date_range("2024-01-01", periods=n // n_series, freq="s")
    rng = np.random.default_rng(1)
    return pd.DataFrame({f"s{k}": rng.normal(size=len(t)) for k in range(n_series)}, index=t)


def raw_broker(address: str, df: pd.DataFrame) -> tuple[float, float]:
    topic = f"raw-{uuid.uuid4().hex[:6]}"
    create_topic(topic, address, partitions=4)
    start = time.perf_counter()
    n = produce_frame(df, topic, address, batch=1000)
    produce = n / (time.perf_counter() - start)
    src = KafkaSource(topic, f"g-{uuid.uuid4().hex[:6]}", address)
    got, first = 0, None
    while got < n:
        for m in src.poll(0.5):
            if m.error() is None:
                first = first or time.perf_counter()
                got += len(json.loads(m.value())["value"])
    consume = n / (time.perf_counter() - first)
    src.close()
    return produce, consume


def end_to_end(address: str, df: pd.DataFrame) -> tuple[float, float]:
    topic = f"e2e-{uuid.uuid4().hex[:6]}"
    create_topic(topic, address, partitions=4)
    start = time.perf_counter()
    n = produce_frame(df, topic, address, batch=1000)
    replay = n / (time.perf_counter() - start)
    src = KafkaSource(topic, f"g-{uuid.uuid4().hex[:6]}", address)
    stats = score_stream(src, lambda: SPOTStream(), ParquetSink(tempfile.mkdtemp()),
                         threshold=1.0, max_points=n, max_idle=5)
    src.close()
    return replay, stats.busy_rate


def scale_out(address: str, df: pd.DataFrame, n_procs: int) -> float:
    topic = f"scale-{uuid.uuid4().hex[:6]}"
    create_topic(topic, address, partitions=4)
    produce_frame(df, topic, address, batch=1000)
    group = f"g-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", SCORER, topic, group, address,
                               tempfile.mkdtemp()], stdout=subprocess.PIPE, env=env)
             for _ in range(n_procs)]
    results = [json.loads(p.communicate(timeout=600)[0].decode().strip().splitlines()[-1])
               for p in procs]
    points = sum(r["points"] for r in results)
    assert points == df.size, (points, df.size)
    first = min(r["first"] for r in results if r["first"])
    last = max(r["last"] for r in results if r["last"])
    return points / (last - first)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    scale = 10 if args.quick else 1
    update, libspot_loop = in_process(2_000_000 // scale)
    print(f"in process   SPOTStream.update      {update:>12,.0f} points/s   (bar {BAR_UPDATE:,})")
    print(f"             libspot step loop      {libspot_loop:>12,.0f} points/s   (reference)")
    df = frame(1_000_000 // scale)
    with Broker() as broker:
        produce, consume = raw_broker(broker.bootstrap, df)
        print(f"broker       produce (no scoring)   {produce:>12,.0f} points/s")
        print(f"             consume (no scoring)   {consume:>12,.0f} points/s   (the limit)")
        replay, e2e = end_to_end(broker.bootstrap, df)
        print(f"end to end   replay                 {replay:>12,.0f} points/s")
        print(f"             score SPOT -> Parquet  {e2e:>12,.0f} points/s   (bar {BAR_E2E:,})")
        one = scale_out(broker.bootstrap, df, 1)
        two = scale_out(broker.bootstrap, df, 2)
        print(f"scale-out    1 scorer process       {one:>12,.0f} points/s")
        print(f"             2 scorer processes     {two:>12,.0f} points/s   "
              f"({two / one:.2f}x, bar {BAR_SCALE}x)")
    print(f"({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end)")


if __name__ == "__main__":
    main()
