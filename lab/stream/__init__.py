"""Streaming: online detectors, replay, Kafka and Parquet sources and sinks, scoring loops.

See docs/streaming.md. The submodules: :mod:`lab.stream.detectors` (online detectors),
:mod:`lab.stream.io` (codec, ``replay``, Parquet sink), :mod:`lab.stream.kafka` (Kafka source
and sink, ``score_stream``), :mod:`lab.stream.broker` (the bundled tansu broker),
:mod:`lab.stream.evaluate` (NAB scores and delays of a stream), :mod:`lab.stream.pipeline`
(a labelled corpus through Kafka) and :mod:`lab.stream.cli` (``lab stream``).
"""

from lab.stream.broker import Broker, BrokerError
from lab.stream.detectors import (
    STREAM_DETECTORS,
    DSPOTStream,
    KSStream,
    OnlineDetector,
    Onset,
    RetrainingDetector,
    RiverDetector,
    RollingZScore,
    SPOTStream,
    get_stream_detector,
    half_space_trees,
    onset_filter,
)
from lab.stream.io import ParquetSink, read_parquet_sink, replay
from lab.stream.kafka import KafkaSink, KafkaSource, read_alerts, score_stream

__all__ = ["STREAM_DETECTORS", "DSPOTStream", "KSStream", "OnlineDetector", "Onset",
           "onset_filter", "RetrainingDetector", "RiverDetector", "RollingZScore", "SPOTStream",
           "get_stream_detector", "half_space_trees", "replay", "ParquetSink",
           "read_parquet_sink", "KafkaSource", "KafkaSink", "score_stream", "read_alerts",
           "Broker", "BrokerError"]
