"""00-quickstart runs headless with --smoke and records sensible metrics."""

from __future__ import annotations

import pytest
from conftest import run_smoke

from lab.datasets import load_forex


@pytest.mark.slow
def test_quickstart_smoke(tmp_path):
    run_dir, metrics = run_smoke("00", tmp_path)
    rates = load_forex(["USD", "GBP"], start="2024-01-01", end="2024-03-31")
    assert metrics["n_days"] == len(rates)
    assert set(metrics["volatility"]) == {"USD", "GBP"}
    assert all(0 < v < 1 for v in metrics["volatility"].values())
    assert metrics["most_volatile"] in ("USD", "GBP")
    html = (run_dir / "report.html").read_text()
    assert "plotly" in html.lower() and "load_forex(" not in html  # figure embedded, code hidden
