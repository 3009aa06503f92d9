"""02-betsi-autoencoder runs headless with --smoke and records sensible change-point scores."""

from __future__ import annotations

import pytest
from conftest import REPO_ROOT, run_smoke

from lab.datasets import make_behaviour_changes
from lab.metrics import covering, f1_margin
from lab.notebook import read_notebook


@pytest.mark.slow
def test_betsi_notebook_smoke(tmp_path):
    run_dir, metrics = run_smoke("02", tmp_path)
    smoke = read_notebook(REPO_ROOT / "notebooks" / "02-betsi-autoencoder.ipynb").smoke
    df, truth = make_behaviour_changes(n_segments=smoke["n_segments"], length=smoke["length"],
                                       random_state=0)
    for name in ("f1_margin", "covering"):
        assert isinstance(metrics[name], float), name
        assert 0.0 <= metrics[name] <= 1.0, name
    assert isinstance(metrics["n_events"], int) and 0 <= metrics["n_events"] < smoke["length"]
    # the automatic window follows the length: 400 rows -> 32-row windows, stride 4
    assert (metrics["window_size"], metrics["stride"]) == (32, 4)
    # scores agree with what reporting nothing would get when nothing is reported
    annotations = {"truth": truth.tolist()}
    if metrics["n_events"] == 0:
        assert metrics["f1_margin"] == pytest.approx(f1_margin(annotations, [], len(df)))
        assert metrics["covering"] == pytest.approx(covering(annotations, [], len(df)))
    # the TCPD leaderboard (references only in the smoke run) reproduces TCPDBench
    from lab.config import TCPD_ROOT

    if (TCPD_ROOT / "published_default_scores.json").is_file():
        assert metrics["tcpd_binseg_preset_f1"] == pytest.approx(0.763, abs=0.05)
        assert metrics["tcpd_bocpd_f1"] == pytest.approx(0.710, abs=0.05)
        assert metrics["tcpd_best_f1_on_binseg"] >= metrics["tcpd_binseg_preset_f1"]
        assert isinstance(metrics["tcpd_best_detector"], str)
    html = (run_dir / "report.html").read_text()
    assert "plotly" in html.lower() and "Bottleneck codes" in html
    # synthetic rows are plotted against row numbers, not the generator's minute stamps
    assert str(df.index[0].date()) not in (run_dir / "notebook.ipynb").read_text()
