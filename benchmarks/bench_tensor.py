"""signature_matrices against the loops it replaces, same data, same process.

For ``n`` series and ``T`` rows (default the issue's n=30, T=20000, windows
10, 30, 60, step 10) it times, alternately, best of ``--repeat``:

* ``signature_matrices`` (the block-sum kernel);
* the reference implementation's pairwise loop: one ``np.inner`` per pair
  of series, per window, per end (timed on the first ``--inner-ends`` ends
  and scaled to all of them, as it takes minutes in full);
* a per-step ``seg.T @ seg`` loop;
* filling a fresh output array of the same size (``np.empty(...).fill``):
  the memory floor no implementation can beat.

and checks the max abs difference from the per-step loop.

Each implementation first runs ``WARMUP_ROUNDS`` times untimed. On this
project's virtual machines the first touch of fresh memory is slow: filling
a new 43 MB array took 133 ms the first time in a process and 7 ms after
that, and the first calls of ``signature_matrices`` took about 90 ms
instead of 10. Later calls reuse pages the process freed. The per-step loop
writes an output of the same size and gets the same warm-up. Best and
median times are shown; both move with the machine's state (see the
README), so compare rows of one run only.

    .venv/bin/python benchmarks/bench_tensor.py [--repeat 15] [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import naive  # noqa: E402

from lab.tensor_utility import signature_matrices  # noqa: E402
from lab.timing import best_of

WINDOWS = (10, 30, 60)
STEP = 10
#: Untimed rounds of every implementation before the timed ones (see above).
WARMUP_ROUNDS = 5



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--T", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--inner-ends", type=int, default=100,
                    help="ends timed for the np.inner loop (then scaled)")
    ap.add_argument("--quick", action="store_true", help="3 repeats, 20 ends of the inner loop")
    args = ap.parse_args()
    repeat, inner_ends = (3, 20) if args.quick else (args.repeat, args.inner_ends)
    X = np.random.default_rng(0).normal(size=(args.T, args.n))
    M, ends = signature_matrices(X, WINDOWS, STEP)
    ref, _ = naive.signature_matrices_matmul(X, WINDOWS, STEP)
    err = float(np.abs(M - ref).max())
    head = X[: max(WINDOWS) + (inner_ends - 1) * STEP]
    inner_head, _ = naive.signature_matrices(head, WINDOWS, STEP)
    assert np.abs(inner_head - ref[:inner_ends]).max() < 1e-12

    runs = {
        "fast": lambda: signature_matrices(X, WINDOWS, STEP),
        "matmul": lambda: naive.signature_matrices_matmul(X, WINDOWS, STEP),
        "fill": lambda: np.empty(M.shape).fill(1.0),
    }
    for _ in range(1 if args.quick else WARMUP_ROUNDS):
        for run in runs.values():
            run()
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):  # alternate, so all see the same load
        for name, run in runs.items():
            samples[name].append(best_of(run, 1))
    times = {name: min(v) for name, v in samples.items()}
    medians = {name: float(np.median(v)) for name, v in samples.items()}
    t_inner = best_of(lambda: naive.signature_matrices(head, WINDOWS, STEP), 1)
    t_inner *= len(ends) / inner_ends
    fast = times["fast"]
    print(f"signature_matrices, n={args.n}, T={args.T}, windows={WINDOWS}, step={STEP}: "
          f"output {M.shape} ({M.nbytes / 1e6:.0f} MB), max abs diff {err:.1e} (target < 1e-12)")
    print()
    med = medians["fast"]
    print(f"Best and median of {repeat} alternated rounds after {WARMUP_ROUNDS} untimed ones.")
    print()
    print("| implementation | best s | median s | signature_matrices speed-up (best; median) "
          "| target |")
    print("|---|---|---|---|---|")
    print(f"| signature_matrices | {fast:.4f} | {med:.4f} | 1.0x | |")
    print(f"| pairwise np.inner loop (scaled from {inner_ends} ends, timed once) | {t_inner:.2f} "
          f"| | {t_inner / fast:.0f}x | >= 300x |")
    print(f"| per-step seg.T @ seg loop | {times['matmul']:.4f} | {medians['matmul']:.4f} | "
          f"{times['matmul'] / fast:.1f}x; {medians['matmul'] / med:.1f}x | >= 5x |")
    print(f"| fill an output array of the same size | {times['fill']:.4f} | "
          f"{medians['fill']:.4f} | {times['fill'] / fast:.2f}x; {medians['fill'] / med:.2f}x "
          f"(signature_matrices = {fast / times['fill']:.1f}x the floor) | reported |")


if __name__ == "__main__":
    main()
