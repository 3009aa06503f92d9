"""Streaming: online detectors, replay, Kafka and Parquet sources and sinks, scoring loops."""

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
)

__all__ = ["STREAM_DETECTORS", "DSPOTStream", "KSStream", "OnlineDetector", "Onset", "RetrainingDetector",
           "RiverDetector", "RollingZScore", "SPOTStream", "get_stream_detector",
           "half_space_trees"]
