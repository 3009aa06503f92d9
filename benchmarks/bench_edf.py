"""EDF workflow speed: ``lab stage`` MB/s beside pyedflib's raw read, ``lab predict`` on a
month, and the explain figure's redraw time on a whole 8-hour night.

Stage reads every EDF file and writes Parquet; its ceiling is pyedflib reading
the same files (digital samples, no conversion, nothing written), timed here
in the same process on the same files (warm page cache for both: the first
pass is discarded). Targets: stage at least 1 GB a minute (16.7 MB/s),
predict on the month under a minute, a redraw under a second.

    .venv/bin/python benchmarks/bench_edf.py [--nights 30] [--repeat 3] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def _raw_read(files: list[Path]) -> float:
    import pyedflib

    t0 = time.perf_counter()
    for p in files:
        with pyedflib.EdfReader(str(p)) as f:
            for i in range(f.signals_in_file):
                f.readSignal(i, digital=True)
            f.readAnnotations()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nights", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="6 nights, one repetition")
    args = ap.parse_args()
    n_nights, repeat = (6, 1) if args.quick else (args.nights, args.repeat)

    from lab import edf_workflow as wf
    from lab.datasets import make_cpap_nights
    from lab.explain_app import _night_data, night_figure

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_cpap_nights(tmp / "raw", n_nights=n_nights, random_state=0, progress=False)
        files = sorted((tmp / "raw").glob("*.edf"))
        mb = sum(p.stat().st_size for p in files) / 1e6
        _raw_read(files)  # warm the page cache
        raw_s, stage_s = [], []
        for _ in range(repeat):
            raw_s.append(_raw_read(files))
            summary = wf.stage(tmp / "raw", tmp / "staged", force=True)
            stage_s.append(summary.seconds)
        raw, stage = statistics.median(raw_s), statistics.median(stage_s)
        print(f"{n_nights} nights, {len(files)} EDF files, {mb:.1f} MB")
        print("| step | median seconds | MB/s | GB/min | ratio vs pyedflib raw read |")
        print("|---|---|---|---|---|")
        print(f"| pyedflib raw read | {raw:.2f} | {mb / raw:.0f} | {mb / raw * 60 / 1e3:.2f} | 1.00x |")
        print(f"| lab stage | {stage:.2f} | {mb / stage:.0f} | {mb / stage * 60 / 1e3:.2f} | "
              f"{stage / raw:.2f}x |")
        nights = wf.list_nights(tmp / "staged")
        split = max(1, len(nights) // 3)
        run_id = wf.train(tmp / "staged", nights=",".join(nights[:split]), runs_dir=tmp / "runs")
        t0 = time.perf_counter()
        wf.predict(run_id, tmp / "staged", tmp / "scores", runs_dir=tmp / "runs")
        predict_s = time.perf_counter() - t0
        print(f"\nlab predict on all {len(nights)} nights (model by run id): {predict_s:.1f} s")
        longest = max(nights, key=lambda n: len(wf.read_scores(tmp / "scores", n)))
        data = _night_data(str(tmp / "staged"), str(tmp / "scores"), longest)
        hours = len(data["scores"]) / 3600
        night_figure(data).to_json()  # imports and plotly's JSON encoder
        redraw = []
        t = data["scores"].index
        spans = [None, (t[0], t[len(t) // 2]), (t[len(t) // 3], t[len(t) // 3 + 600])]
        for span in spans * max(repeat, 2):
            t0 = time.perf_counter()
            night_figure(data, span).to_json()
            redraw.append(time.perf_counter() - t0)
        print(f"explain redraw of a {hours:.1f} h night at 25 Hz (whole, half, 10 min; figure "
              f"built and serialised): median {statistics.median(redraw):.2f} s, "
              f"max {max(redraw):.2f} s")


if __name__ == "__main__":
    main()
