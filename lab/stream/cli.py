"""``lab stream``: ``replay`` a source to Kafka, ``score`` a topic, run the bundled ``broker``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["add_stream_parser", "run_stream"]

#: Default alert threshold per online detector (``score >= threshold``); SPOT's is its own z_q.
DEFAULT_THRESHOLDS = {"spot": 1.0, "dspot": 1.0, "hst": 0.95, "ks": 0.6, "zscore": 5.0,
                      "retrain": 1.0}


def add_stream_parser(sub) -> None:
    """Add ``stream`` and its commands to the ``lab`` argument parser."""
    ps = sub.add_parser("stream", help="stream points through Kafka and score them online")
    ss = ps.add_subparsers(dest="stream_command", required=True)

    pr = ss.add_parser("replay", help="replay a CSV/Parquet file or NAB series to a topic")
    pr.add_argument("source", help="CSV or Parquet file with a time column, or a NAB series name")
    pr.add_argument("--to", required=True, metavar="kafka://HOST:PORT/TOPIC")
    pr.add_argument("--rate", type=float, default=None, help="points per second (default: max)")
    pr.add_argument("--batch", type=int, default=1000, help="points per message")
    pr.add_argument("--format", choices=("json", "arrow"), default="json")
    pr.add_argument("--partitions", type=int, default=1, help="partitions if the topic is new")

    sc = ss.add_parser("score", help="score a topic with an online detector")
    sc.add_argument("--from", dest="source", required=True, metavar="kafka://HOST:PORT/TOPIC")
    sc.add_argument("--detector", required=True, help="online detector name")
    sc.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    sc.add_argument("--to", required=True, metavar="kafka://HOST:PORT/TOPIC or DIR")
    sc.add_argument("--group", default="lab-scorer", help="consumer group")
    sc.add_argument("--threshold", type=float, default=None, help="alert when score >= this")
    sc.add_argument("--max-idle", type=float, default=None, metavar="SECONDS",
                    help="stop after this long without a message (default: until Ctrl-C)")
    sc.add_argument("--format", choices=("json", "arrow"), default="json")
    sc.add_argument("--poll", type=int, default=500, help="messages taken at once")
    sc.add_argument("--dead-letter", default=None,
                    help="kafka://.../TOPIC or FILE (default: <to>.dead or <to>/dead_letter.jsonl)")

    pb = ss.add_parser("broker", help="run the bundled tansu broker in the foreground")
    pb.add_argument("--port", type=int, default=9092)
    pb.add_argument("--host", default="127.0.0.1")


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def _status(msg: str) -> None:
    print(f"\r{msg}", end="", file=sys.stderr, flush=True)


def run_stream(args: argparse.Namespace) -> int:
    """Run one ``lab stream`` command; the exit status."""
    from lab.runner import LabError
    from lab.stream.broker import BrokerError

    try:
        if args.stream_command == "replay":
            return _replay(args)
        if args.stream_command == "score":
            return _score(args)
        return _broker(args)
    except (BrokerError, ValueError) as exc:
        raise LabError(str(exc)) from None


def _replay(args) -> int:
    from lab.stream.broker import create_topic
    from lab.stream.io import read_source
    from lab.stream.kafka import parse_kafka_url, produce_frame

    address, topic = parse_kafka_url(args.to)
    df = read_source(args.source)
    create_topic(topic, address, partitions=args.partitions)
    start = time.monotonic()

    def progress(n: int) -> None:
        if n % (args.batch * 20) < args.batch:
            dt = time.monotonic() - start
            _status(f"replay: {n} points, {n / max(dt, 1e-9):,.0f} points/s")

    try:
        n = produce_frame(df, topic, address, fmt=args.format, batch=args.batch, rate=args.rate,
                          on_progress=progress)
    except KeyboardInterrupt:
        print("\nreplay: interrupted", file=sys.stderr)
        return 130
    dt = time.monotonic() - start
    print(f"\rreplay: {n} points of {df.shape[1]} series to {topic} at {address} in {dt:.1f} s "
          f"({n / max(dt, 1e-9):,.0f} points/s)", file=sys.stderr)
    return 0


def _score(args) -> int:
    from lab.cli import parse_pairs
    from lab.stream.broker import create_topic
    from lab.stream.detectors import get_stream_detector
    from lab.stream.io import DeadLetterFile, ParquetSink
    from lab.stream.kafka import (
        DeadLetterTopic,
        KafkaSink,
        KafkaSource,
        parse_kafka_url,
        score_stream,
    )

    params = {k: _value(v) for k, v in parse_pairs(args.param).items()}
    get_stream_detector(args.detector, **params)  # fail early on a bad name or parameter
    threshold = args.threshold
    if threshold is None:
        threshold = DEFAULT_THRESHOLDS[args.detector]
    address, topic = parse_kafka_url(args.source)
    source = KafkaSource(topic, args.group, address)
    if args.to.startswith("kafka://"):
        out_address, out_topic = parse_kafka_url(args.to)
        create_topic(out_topic, out_address)
        import os
        import uuid

        sink = KafkaSink(out_topic, out_address, args.format,
                         transactional_id=f"lab-{args.group}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        dead = args.dead_letter or f"kafka://{out_address}/{out_topic}.dead"
    else:
        sink = ParquetSink(args.to)
        dead = args.dead_letter or str(Path(args.to) / "dead_letter.jsonl")
    if dead.startswith("kafka://"):
        d_address, d_topic = parse_kafka_url(dead)
        create_topic(d_topic, d_address)
        dead_letter = DeadLetterTopic(d_topic, d_address)
    else:
        dead_letter = DeadLetterFile(dead)

    def progress(stats) -> None:
        _status(f"score: {stats.points} points, {stats.rate:,.0f} points/s, lag {stats.lag} "
                f"messages, {stats.alerts} alerts, {stats.rejected} rejected")

    try:
        stats = score_stream(source, lambda: get_stream_detector(args.detector, **params), sink,
                             threshold=threshold, dead_letter=dead_letter,
                             max_idle=args.max_idle, poll_messages=args.poll,
                             on_progress=progress)
    finally:
        source.close()
    print(f"\rscore: {stats.points} points of {len(stats.per_series)} series in "
          f"{stats.seconds:.1f} s ({stats.rate:,.0f} points/s), {stats.alerts} alerts, "
          f"{stats.rejected} rejected", file=sys.stderr)
    return 0


def _broker(args) -> int:
    import subprocess

    from lab.stream.broker import broker_bin

    url = f"tcp://{args.host}:{args.port}"
    print(f"tansu broker on {args.host}:{args.port} (memory storage); Ctrl-C stops it",
          file=sys.stderr)
    proc = subprocess.Popen([str(broker_bin()), "broker", "--listener-url", url,
                             "--advertised-listener-url", url,
                             "--storage-engine", "memory://tansu/"])
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(10)
        print("broker stopped", file=sys.stderr)
        return 0
