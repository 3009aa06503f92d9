"""Kafka source and sink (confluent-kafka), the replay producer and the scoring loop.

Delivery is at least once, and duplicates are removed where they land:

- the source never commits on its own; :func:`score_stream` commits a
  batch's offsets only after its scores are written;
- :class:`KafkaSink` writes each batch in a transaction, with the consumed
  offsets inside it when it is fed by a :class:`KafkaSource` (Kafka's
  exactly-once pattern);
- :class:`lab.stream.io.ParquetSink` drops rows it already holds, by series
  and timestamp;
- consumers use a session timeout of a few seconds, so a restarted or an
  added scorer gets its partitions in seconds, not librdkafka's 45 s.

tansu 0.6, the bundled broker, shows aborted transactional records to
``read_committed`` consumers. :func:`read_alerts` therefore drops duplicates
by series and timestamp as it reads, which makes the result exact on tansu
too.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from lab.stream.broker import BrokerError, bootstrap
from lab.stream.io import Batch, check_points, decode_batch, encode_batch, replay

__all__ = ["SESSION_TIMEOUT_MS", "KafkaSource", "KafkaSink", "DeadLetterTopic", "parse_kafka_url",
           "produce_frame", "score_stream", "read_alerts", "ScoreStats", "client_config"]

#: Consumer session timeout: a dead scorer's partitions move after this long.
SESSION_TIMEOUT_MS = 6000
#: Consumer heartbeat interval (a third of the session timeout or less).
HEARTBEAT_MS = 1000
#: Seconds without a reachable broker after which a run fails.
BROKER_LOST_TIMEOUT = 30.0
#: First retry delay (doubles to BACKOFF_MAX) while the broker is unreachable.
BACKOFF_START, BACKOFF_MAX = 0.25, 4.0
#: Messages taken from the consumer at once.
POLL_MESSAGES = 500
#: Extra seconds ``max_idle`` waits for a first partition (a group join takes a few).
JOIN_GRACE = 15.0
#: Default points per message of the replay producer.
DEFAULT_BATCH = 1000


#: librdkafka's own log lines go here (silent by default); errors reach the caller instead.
LOG = logging.getLogger("lab.stream.kafka")
LOG.addHandler(logging.NullHandler())
LOG.propagate = False


def client_config(address: str, **extra: Any) -> dict:
    """The librdkafka settings every lab client uses for ``address``, plus ``extra``.

    Parameters
    ----------
    address : str
        ``host:port`` of the broker.
    **extra
        More librdkafka settings (dotted names), which win over the defaults.

    Returns
    -------
    dict
        ``bootstrap.servers``, the lab's logger and the reconnect backoff cap.

    Examples
    --------
    >>> conf = client_config("127.0.0.1:9092", **{"linger.ms": 5})
    >>> conf["bootstrap.servers"], conf["linger.ms"]
    ('127.0.0.1:9092', 5)
    """
    return {"bootstrap.servers": address, "logger": LOG,
            "reconnect.backoff.max.ms": int(BACKOFF_MAX * 1000), **extra}


def parse_kafka_url(url: str) -> tuple[str, str]:
    """``kafka://HOST:PORT/TOPIC`` -> (bootstrap, topic); ``kafka:///TOPIC`` uses :func:`bootstrap`.

    Examples
    --------
    >>> parse_kafka_url("kafka://127.0.0.1:9092/points")
    ('127.0.0.1:9092', 'points')
    """
    if not url.startswith("kafka://"):
        raise ValueError(f"expected kafka://HOST:PORT/TOPIC, got {url!r}")
    rest = url[len("kafka://"):]
    host, sep, topic = rest.partition("/")
    if not sep or not topic:
        raise ValueError(f"expected kafka://HOST:PORT/TOPIC (a topic after the slash), got {url!r}")
    return bootstrap(host or None), topic


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(client_config(address, **{"socket.timeout.ms": 2000}))
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException:
        raise BrokerError(f"no Kafka broker at {address} (nothing answered within "
                          f"{timeout:g} s; start one with `lab stream broker`, or set "
                          "LAB_KAFKA_BOOTSTRAP)") from None


class KafkaSource:
    """Batches from a topic, as one member of a consumer group; commits only when told.

    Parameters
    ----------
    topic, group : str
    bootstrap_servers : str, optional
        ``host:port``; :func:`lab.stream.broker.bootstrap` by default.
    session_timeout_ms : int
        See :data:`SESSION_TIMEOUT_MS`.
    """

    def __init__(self, topic: str, group: str, bootstrap_servers: str | None = None, *,
                 session_timeout_ms: int = SESSION_TIMEOUT_MS, check: bool = True):
        from confluent_kafka import Consumer

        self.topic, self.group = topic, group
        self.bootstrap = bootstrap(bootstrap_servers)
        if check:
            _check_reachable(self.bootstrap)
        #: (monotonic time, error) of the first transport error since the last message
        self.down_since: tuple[float, Any] | None = None
        self.consumer = Consumer(client_config(self.bootstrap, **{
            "group.id": group, "error_cb": self._on_error,
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": session_timeout_ms, "heartbeat.interval.ms": HEARTBEAT_MS,
            "isolation.level": "read_committed", "enable.partition.eof": False,
            "topic.metadata.refresh.interval.ms": 2000,
        }))
        self.consumer.subscribe([topic])

    def _on_error(self, err) -> None:
        from confluent_kafka import KafkaError

        if err.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN,
                          KafkaError._RESOLVE) and self.down_since is None:
            self.down_since = (time.monotonic(), err)

    def poll(self, timeout: float = 0.5, n: int = POLL_MESSAGES) -> list:
        """Raw messages (up to ``n``); errors are returned as messages with ``error()`` set."""
        msgs = self.consumer.consume(num_messages=n, timeout=timeout)
        if msgs:
            self.down_since = None
        return msgs

    def commit(self) -> None:
        """Commit the positions of everything polled so far (synchronously)."""
        from confluent_kafka import KafkaException

        try:
            self.consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if "NO_OFFSET" not in str(exc):
                raise

    def lag(self) -> int:
        """Messages left on the assigned partitions (high watermark minus position)."""
        total = 0
        try:
            for tp in self.consumer.position(self.consumer.assignment()):
                lo, hi = self.consumer.get_watermark_offsets(tp, cached=True) or (0, 0)
                if tp.offset >= 0 and hi is not None and hi >= 0:
                    total += max(hi - tp.offset, 0)
        except Exception:  # lag is for display only
            return -1
        return total

    def close(self) -> None:
        self.consumer.close()


class KafkaSink:
    """Batches to a topic, keyed by series; in transactions when ``transactional_id`` is given.

    Parameters
    ----------
    topic : str
    bootstrap_servers : str, optional
    fmt : {"json", "arrow"}
    transactional_id : str, optional
        Each :meth:`write` is then one transaction, which can also commit a
        consumer's offsets (:meth:`write` ``source=``).
    """

    def __init__(self, topic: str, bootstrap_servers: str | None = None, fmt: str = "json", *,
                 transactional_id: str | None = None, check: bool = True):
        from confluent_kafka import Producer

        self.topic, self.fmt = topic, fmt
        self.bootstrap = bootstrap(bootstrap_servers)
        if check:
            _check_reachable(self.bootstrap)
        conf = client_config(self.bootstrap, **{"linger.ms": 5,
                                        "message.timeout.ms": int(BROKER_LOST_TIMEOUT * 1000)})
        if transactional_id:
            conf.update({"transactional.id": transactional_id, "enable.idempotence": True,
                         "transaction.timeout.ms": 60000})
        self.producer = Producer(conf)
        self.transactional = bool(transactional_id)
        self._errors: list[str] = []
        if self.transactional:
            self.producer.init_transactions(BROKER_LOST_TIMEOUT)

    def _report(self, err, msg) -> None:
        if err is not None:
            self._errors.append(str(err))

    def send(self, batch: Batch) -> None:
        payload = encode_batch(batch, self.fmt)
        while True:
            try:
                self.producer.produce(self.topic, payload, key=batch.series.encode(),
                                      on_delivery=self._report)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.producer.poll(0)

    def write(self, batches: Iterable[Batch], source: KafkaSource | None = None) -> int:
        """Send ``batches`` (in one transaction, with ``source``'s offsets if transactional)."""
        n = 0
        if self.transactional:
            self.producer.begin_transaction()
        for b in batches:
            if len(b):
                self.send(b)
                n += len(b)
        if self.transactional:
            if source is not None:
                c = source.consumer
                self.producer.send_offsets_to_transaction(
                    c.position(c.assignment()), c.consumer_group_metadata(), BROKER_LOST_TIMEOUT)
            self.producer.commit_transaction(BROKER_LOST_TIMEOUT)
        else:
            self.flush()
        if self._errors:
            raise BrokerError(f"could not write to {self.topic} at {self.bootstrap}: "
                              f"{self._errors[0]}")
        return n

    def flush(self, timeout: float = BROKER_LOST_TIMEOUT) -> None:
        left = self.producer.flush(timeout)
        if left:
            raise BrokerError(f"{left} messages to {self.topic} not delivered to "
                              f"{self.bootstrap} within {timeout:g} s")


class DeadLetterTopic:
    """Rejected messages and points to a topic, as JSON with the reason."""

    def __init__(self, topic: str, bootstrap_servers: str | None = None):
        from confluent_kafka import Producer

        self.topic = topic
        self.producer = Producer(client_config(bootstrap(bootstrap_servers)))
        self.count = 0

    def send(self, record: dict) -> None:
        import json

        self.producer.produce(self.topic, json.dumps(record, default=str).encode())
        self.producer.poll(0)
        self.count += 1

    def flush(self) -> None:
        self.producer.flush(BROKER_LOST_TIMEOUT)


def produce_frame(df: pd.DataFrame, topic: str, bootstrap_servers: str | None = None, *,
                  fmt: str = "json", batch: int = DEFAULT_BATCH, rate: float | None = None,
                  on_progress: Callable[[int], None] | None = None) -> int:
    """Replay a frame to a topic, one message per ``batch`` points of a series; points sent.

    Examples
    --------
    >>> callable(produce_frame)
    True
    """
    sink = KafkaSink(topic, bootstrap_servers, fmt)
    n = 0
    for b in replay(df, rate=rate, batch=batch):
        sink.send(b)
        n += len(b)
        if on_progress is not None:
            on_progress(n)
    sink.flush()
    return n


@dataclass
class ScoreStats:
    """What a :func:`score_stream` run did."""

    points: int = 0
    messages: int = 0
    alerts: int = 0
    rejected: int = 0
    seconds: float = 0.0
    lag: int = 0
    per_series: dict = field(default_factory=dict)
    #: wall-clock times (time.time()) of the first message and of the last write
    first_at: float | None = None
    last_at: float | None = None

    @property
    def busy_rate(self) -> float:
        """Points per second from the first message to the last write (no join, no idle)."""
        if self.first_at is None or self.last_at is None or self.last_at <= self.first_at:
            return 0.0
        return self.points / (self.last_at - self.first_at)

    @property
    def rate(self) -> float:
        return self.points / self.seconds if self.seconds else 0.0


def score_stream(source: KafkaSource, make_detector: Callable[[], Any], sink: Any, *,
                 threshold: float, dead_letter: Any = None, max_idle: float | None = None,
                 max_points: int | None = None, poll_messages: int = POLL_MESSAGES,
                 on_progress: Callable[[ScoreStats], None] | None = None,
                 broker_lost_timeout: float = BROKER_LOST_TIMEOUT) -> ScoreStats:
    """Score every message of ``source`` with one online detector per series, into ``sink``.

    For each poll: decode the messages, reject the bad ones and bad points
    to ``dead_letter`` (with the reason), score the rest with
    ``detector.update``, write them (``series, timestamp, value, score,
    alert``) to ``sink``, and only then commit the source's offsets (in the
    sink's transaction when it is a transactional :class:`KafkaSink`).

    Parameters
    ----------
    source : KafkaSource
    make_detector : callable
        Returns a fresh online detector (one per series).
    sink : KafkaSink or ParquetSink
        Anything with ``write(list_of_batches)``.
    threshold : float
        ``alert = score >= threshold``.
    dead_letter : DeadLetterFile or DeadLetterTopic, optional
        Rejected records; dropped (and counted) without one.
    max_idle : float, optional
        Stop after this many seconds without a message; run until Ctrl-C
        (SIGINT or SIGTERM) if None.
    max_points : int, optional
        Stop after this many points.
    broker_lost_timeout : float
        Seconds of broker errors, retried with backoff, before the run fails.

    Returns
    -------
    ScoreStats

    Raises
    ------
    BrokerError
        When the broker stays unreachable for ``broker_lost_timeout``.
    """
    from confluent_kafka import KafkaError

    stats = ScoreStats()
    detectors: dict[str, Any] = {}
    last_ts: dict[str, int] = {}
    stop = {"now": False}

    def _stop(signum, frame):
        stop["now"] = True

    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            old[sig] = signal.signal(sig, _stop)
        except ValueError:  # not the main thread
            pass
    start = time.monotonic()
    last_msg = None     # the idle clock starts at the first message or the first assignment
    lost_since = None
    backoff = BACKOFF_START
    last_report = 0.0
    try:
        while not stop["now"]:
            msgs = source.poll(timeout=0.5, n=poll_messages)
            now = time.monotonic()
            good = []
            transport_error = None
            for m in msgs:
                err = m.error()
                if err is None:
                    good.append(m)
                elif err.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN,
                                    KafkaError._RESOLVE, KafkaError._TIMED_OUT):
                    transport_error = err
                elif err.fatal():
                    raise BrokerError(f"Kafka error at {source.bootstrap}: {err.str()}")
            if source.down_since is not None and not good:
                lost_since, transport_error = source.down_since
            if transport_error is not None and not good:
                lost_since = lost_since or now
                if now - lost_since > broker_lost_timeout:
                    raise BrokerError(f"lost the Kafka broker at {source.bootstrap} for more "
                                      f"than {broker_lost_timeout:g} s: {transport_error.str()}")
                time.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            if not good:
                if last_msg is None and source.consumer.assignment():
                    last_msg = now
                if max_idle is not None and (
                        now - (last_msg or start) > max_idle + (0 if last_msg else JOIN_GRACE)):
                    break
                continue
            lost_since, backoff, last_msg = None, BACKOFF_START, now
            if stats.first_at is None:
                stats.first_at = time.time()
            out = []
            for m in good:
                try:
                    batch = decode_batch(m.value(), m.key())
                except ValueError as exc:
                    _reject(dead_letter, stats, {"reason": str(exc), "topic": m.topic(),
                                                 "partition": m.partition(),
                                                 "offset": m.offset(),
                                                 "payload": (m.value() or b"")[:1000]})
                    continue
                valid, bad = check_points(batch, last_ts.get(batch.series))
                for t, v, reason in bad:
                    _reject(dead_letter, stats, {"reason": reason, "series": batch.series,
                                                 "timestamp": t, "value": v,
                                                 "offset": m.offset()})
                if not len(valid):
                    continue
                det = detectors.get(batch.series)
                if det is None:
                    det = detectors[batch.series] = make_detector()
                scores = det.update(valid["value"])
                valid["score"] = scores
                valid["alert"] = scores >= threshold
                last_ts[batch.series] = int(valid["timestamp"][-1])
                out.append(valid)
                stats.points += len(valid)
                stats.alerts += int(valid["alert"].sum())
                stats.per_series[batch.series] = stats.per_series.get(batch.series, 0) + len(valid)
            stats.messages += len(good)
            if dead_letter is not None:
                dead_letter.flush()
            _write_then_commit(sink, out, source)
            stats.last_at = time.time()
            stats.seconds = time.monotonic() - start
            if on_progress is not None and now - last_report > 1.0:
                stats.lag = source.lag()
                on_progress(stats)
                last_report = now
            if max_points is not None and stats.points >= max_points:
                break
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    stats.seconds = time.monotonic() - start
    return stats


def _reject(dead_letter: Any, stats: ScoreStats, record: dict) -> None:
    stats.rejected += 1
    if dead_letter is not None:
        dead_letter.send(record)


def _write_then_commit(sink: Any, out: list[Batch], source: KafkaSource) -> None:
    if isinstance(sink, KafkaSink) and sink.transactional:
        sink.write(out, source=source)      # offsets committed inside the transaction
        return
    sink.write(out)
    source.commit()


def read_alerts(topic: str, bootstrap_servers: str | None = None, *, timeout: float = 5.0,
                idle: float = 2.0) -> pd.DataFrame:
    """Every scored row on a topic, read from the start, duplicates by series and time dropped.

    Reads until ``idle`` seconds pass without a message, or ``timeout``
    seconds without any from the group join (which may take
    :data:`JOIN_GRACE` seconds more).
    """
    import uuid

    src = KafkaSource(topic, f"lab-read-{uuid.uuid4().hex[:8]}", bootstrap_servers)
    frames = []
    start = last = time.monotonic()
    joined = None       # the "nothing read" clock starts at the first assignment
    try:
        while True:
            msgs = src.poll(timeout=0.3)
            now = time.monotonic()
            if joined is None and src.consumer.assignment():
                joined = now
            got = [m for m in msgs if m.error() is None]
            for m in got:
                frames.append(decode_batch(m.value(), m.key()).frame())
            if got:
                last = now
            elif frames and now - last > idle:
                break
            elif not frames and now - (joined or start) > timeout + (0 if joined else JOIN_GRACE):
                break
    finally:
        src.close()
    if not frames:
        return pd.DataFrame(columns=["series", "timestamp", "value", "score", "alert"])
    out = pd.concat(frames, ignore_index=True)
    out = out.drop_duplicates(["series", "timestamp"]).sort_values(["series", "timestamp"])
    out["alert"] = out["alert"].astype(bool)
    return out.reset_index(drop=True)


