"""LSTMAutoencoderDetector: window scores are the placed row scores; a chunk batch is scored alike."""

from __future__ import annotations

import numpy as np
import pytest

from lab.models.lstm_ae import LSTMAutoencoderDetector, build_lstm_autoencoder
from lab.tensor_utility import sliding_windows


@pytest.mark.slow
def test_score_windows_matches_row_scores_and_rejects_bad_batches():
    rng = np.random.default_rng(0)
    x = np.sin(np.arange(300) / 4)[:, None] + 0.1 * rng.standard_normal((300, 2))
    det = LSTMAutoencoderDetector(window=12, stride=6, units=(4,), epochs=1, verbose=0).fit(x)
    rows = det.score(x).to_numpy()
    windows = np.ascontiguousarray(sliding_windows(x, 12))
    np.testing.assert_allclose(det.score_windows(windows), rows[11:], rtol=1e-6)
    # reconstruction error by hand: standardise, reconstruct, mean square
    z = ((windows[:3] - det.mean_) / det.scale_).astype(np.float32)
    recon = det.model_.predict(z, verbose=0).astype(np.float64)
    np.testing.assert_allclose(det.score_windows(windows[:3]),
                               ((recon - z) ** 2).mean(axis=(1, 2)), rtol=1e-6)
    with pytest.raises(ValueError, match=r"shape \(n, 12, 2\)"):
        det.score_windows(windows[:, :5])
    bad = windows[:2].copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        det.score_windows(bad)


def test_autoencoder_shape():
    m = build_lstm_autoencoder(20, 3, units=(8, 4))
    assert m.output_shape == (None, 20, 3)
