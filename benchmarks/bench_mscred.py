"""MSCRED on CPU: training throughput and score time, fused ConvLSTM against Keras' ConvLSTM2D.

The reference is the same network (paper size, 30 series, 3 scales, 5 steps)
with every :class:`lab.models.mscred_layers.ConvLSTMSequence` replaced by
``keras.layers.ConvLSTM2D(..., return_sequences=True)`` holding the same
weights. Both are checked to give the same output, then timed alternately in
this process (best of the repeats, the least disturbed by other load):

- training throughput, in samples per second of ``train_on_batch``;
- inference time per 1000 matrices (``predict`` on sequences);
- for the lab model, the reconstruction of every window of a stack of
  matrices: ``predict`` on each window (the path ``score`` took before issue
  20) against :func:`lab.models.mscred_layers.reconstruct_sliding`, which
  encodes each matrix once (also per ``--chunks`` value of its batch size);
- for the lab model, ``MSCREDDetector.score`` per 1000 matrices end to end
  (signature matrices, reconstruction, counting);
- the compute floor of that reconstruction: the multiply-adds of its
  convolutions and attention per matrix (:func:`score_flops`, counted from the
  layers' shapes), at the fp32 rate this process gets from one large matrix
  product (:func:`gemm_rate`), the best case of the kernels a convolution
  runs on; the reconstruction's time is given as a multiple of that floor;
- for the lab model, training on blocks of ``BATCH`` consecutive windows,
  each matrix encoded once (``MSCREDDetector(batching="blocks")``, the
  default), against training on ``BATCH`` separate windows (``"windows"``).

``--convs`` measures only the state convolutions, level by level: the
time of each ConvLSTM's state convolution on a chunk of windows (its share of
the reconstruction per 1000 matrices, ``steps - 1`` per window), and, for the
3x3 ones, the same convolution in bfloat16 and as Winograd's F(2x2, 3x3) written in
TensorFlow ops (2.25x fewer multiplies), with its error; then the encoder,
input-gate and decoder convolutions, so that the table sums every convolution
of the reconstruction per 1000 matrices.

``--bf16`` measures ``precision="bfloat16"`` (``reconstruct_sliding``) and
``MSCREDDetector(score_precision="bfloat16")`` against float32: the
reconstruction's and ``score``'s time, the largest difference, and how many
of a fitted detector's scores change.

``--onednn`` measures only the training throughputs, each in child processes
with oneDNN's kernels off and on (``TF_ENABLE_ONEDNN_OPTS=0`` or ``1``, read
once when TensorFlow is imported), alternated, and gives every figure as a
ratio of the ``"windows"`` path with oneDNN off.

    .venv/bin/python benchmarks/bench_mscred.py [--repeat 3] [--quick] [--chunks 32,64,128]
    .venv/bin/python benchmarks/bench_mscred.py --onednn [--repeat 3]
    .venv/bin/python benchmarks/bench_mscred.py --convs [--repeat 3]
    .venv/bin/python benchmarks/bench_mscred.py --bf16 [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from lab.datasets import make_mscred_synthetic  # noqa: E402
from lab.models.mscred import MSCREDDetector  # noqa: E402
from lab.models.mscred_layers import (  # noqa: E402
    SLIDING_BATCH,
    ConvLSTMSequence,
    block_model,
    build_mscred,
    reconstruct_sliding,
    window_sequences,
)
from lab.timing import best_of

N_SERIES, N_SCALES, STEPS, BATCH = 30, 3, 5, 8


def keras_reference(model: keras.Model) -> keras.Model:
    """The same network with Keras' ConvLSTM2D, weights copied."""

    def clone(layer):
        if isinstance(layer, ConvLSTMSequence):
            return keras.layers.ConvLSTM2D(layer.filters, layer.kernel_size, padding="same",
                                           return_sequences=True, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    reference = keras.models.clone_model(model, clone_function=clone)
    reference.set_weights(model.get_weights())
    return reference



def score_flops(model: keras.Model, *, per_window: bool = False) -> float:
    """FLOP per matrix of ``reconstruct_sliding``: each matrix encoded once, every window.

    Counted from the layers' kernels and output sizes, two FLOP per multiply-add: the
    encoder convolutions and the ConvLSTM input convolutions once per matrix, the
    ConvLSTM state convolutions ``steps - 1`` times (the first step's state is zero),
    the attention's dot products and weighted sums, and the decoder's transposed
    convolutions once per window. Gate nonlinearities and additions are left out, so
    this is a lower bound of the work. ``per_window=True`` counts ``predict`` on one
    window instead, which encodes all ``steps`` of its matrices.
    """
    steps = model.input_shape[1]
    encoded = steps if per_window else 1
    flops = 0
    for level in (1, 2, 3, 4):
        conv, lstm = model.get_layer(f"conv{level}"), model.get_layer(f"convlstm{level}")
        pixels = int(np.prod(conv.output.shape[2:4]))
        flops += encoded * 2 * pixels * np.prod(conv.layer.kernel.shape)
        flops += encoded * 2 * pixels * np.prod(lstm.kernel.shape)
        flops += (steps - 1) * 2 * pixels * np.prod(lstm.recurrent_kernel.shape)
        flops += 2 * 2 * steps * pixels * lstm.filters
        deconv = model.get_layer(f"deconv{level}")
        flops += 2 * int(np.prod(deconv.input.shape[1:3])) * np.prod(deconv.kernel.shape)
    return float(flops)


def gemm_rate(repeat: int, n: int = 4096) -> float:
    """FLOP per second of one ``n x n`` float32 matrix product in TensorFlow, best of ``repeat``."""
    import tensorflow as tf

    rng = np.random.default_rng(1)
    a, b = (tf.constant(rng.random((n, n), dtype=np.float32)) for _ in range(2))
    tf.linalg.matmul(a, b).numpy()  # warm up
    return 2 * n ** 3 / best_of(lambda: tf.linalg.matmul(a, b).numpy(), repeat)


# Winograd F(2x2, 3x3) (Lavin and Gray 2016): input, kernel and output transforms.
_WINO_B = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], "float32")
_WINO_G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], "float32")
_WINO_A = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], "float32")


def winograd_conv(kernel: np.ndarray):
    """A "same" 3x3 stride-1 convolution with ``kernel`` as Winograd's F(2x2, 3x3), in TF ops.

    Each 2x2 output tile is read from a 4x4 input tile; the 16 transformed
    positions are 16 matrix products over the input channels.
    """
    import tensorflow as tf

    cin, cout = kernel.shape[2:]
    U = tf.constant(np.einsum("ai,ijcd,bj->abcd", _WINO_G, kernel, _WINO_G).reshape(16, cin, cout))

    def conv(x):
        size = x.shape[1]
        tiles = (size + 1) // 2
        pad = 2 * tiles - size
        x = tf.pad(x, [[0, 0], [1, 1 + pad], [1, 1 + pad], [0, 0]])
        p = tf.image.extract_patches(x, [1, 4, 4, 1], [1, 2, 2, 1], [1, 1, 1, 1], "VALID")
        p = tf.reshape(p, (-1, tiles, tiles, 4, 4, cin))
        v = tf.einsum("bj,ntsajc->abntsc", _WINO_B, tf.einsum("ai,ntsijc->ntsajc", _WINO_B, p))
        m = tf.reshape(tf.matmul(tf.reshape(v, (16, -1, cin)), U), (4, 4, -1, tiles, tiles, cout))
        y = tf.einsum("bj,ajntsd->ntsabd", _WINO_A, tf.einsum("ai,ijntsd->ajntsd", _WINO_A, m))
        y = tf.reshape(tf.transpose(y, (0, 1, 3, 2, 4, 5)), (-1, 2 * tiles, 2 * tiles, cout))
        return y[:, :size, :size]

    return conv


def conv_table(repeat: int) -> None:
    """Time each level's state convolution on a chunk of windows, direct and Winograd,
    then the other convolutions of the reconstruction, per 1000 matrices."""
    import tensorflow as tf

    model = build_mscred(N_SERIES, N_SCALES, STEPS)
    rng = np.random.default_rng(2)

    def per_call(conv, x):
        # one traced convolution per call: the call's dispatch (tens of microseconds) is a
        # small share of a convolution of 10 to 20 ms, and nothing else is timed with it
        run = tf.function(conv)
        run(x)
        return best_of(lambda: run(x), repeat)

    print(f"State convolutions of the paper network on {SLIDING_BATCH} windows, "
          f"{STEPS - 1} per window; "
          f"matmul rate {gemm_rate(repeat) / 1e9:.0f} GFLOP/s")
    print()
    print("| level | map, channels, kernel | direct (ms) | GFLOP/s | s per 1000 matrices | "
          "bfloat16 (ms) | Winograd F(2x2,3x3) (ms) | its error |")
    print("|---|---|---|---|---|---|---|---|")
    total = 0.0
    for level in (1, 2, 3, 4):
        lstm = model.get_layer(f"convlstm{level}")
        size = model.get_layer(f"conv{level}").output.shape[2]
        kernel = np.asarray(lstm.recurrent_kernel)
        k, _, f, _ = kernel.shape
        x = tf.constant(rng.normal(size=(SLIDING_BATCH, size, size, f)).astype("float32"))
        w = tf.constant(kernel)
        t = per_call(lambda x, w=w: tf.nn.conv2d(x, w, 1, "SAME"), x)
        w16 = tf.cast(w, tf.bfloat16)
        t16 = per_call(lambda x, w=w16: tf.nn.conv2d(x, w, 1, "SAME"), tf.cast(x, tf.bfloat16))
        flops = 2 * SLIDING_BATCH * size * size * kernel.size
        share = t * 1000 / SLIDING_BATCH * (STEPS - 1)
        total += share
        wino = err = ""
        if k == 3:
            conv = winograd_conv(kernel)
            ref = tf.nn.conv2d(x, w, 1, "SAME")
            err = f"{float(tf.reduce_max(tf.abs(conv(x) - ref)) / tf.reduce_max(tf.abs(ref))):.1e}"
            wino = f"{1000 * per_call(conv, x):.1f}"
        print(f"| {level} | {size} x {size}, {f}, {k}x{k} | {1000 * t:.1f} | {flops / t / 1e9:.0f} | "
              f"{share:.2f} | {1000 * t16:.1f} | {wino} | {err} |")
    print(f"| all state convolutions | | | | {total:.2f} | | | |")

    # the rest of the floor's convolutions, once per matrix (encoder, input gates) or per
    # window (decoder), each layer with its activation, on a chunk of 64
    def layer_time(layer, shape):
        x = tf.constant(rng.normal(size=(SLIDING_BATCH, *shape)).astype("float32"))
        return per_call(layer, x) * 1000 / SLIDING_BATCH

    parts = {"encoder convolutions": 0.0, "ConvLSTM input convolutions": 0.0,
             "decoder (transposed convolutions)": 0.0}
    for level in (1, 2, 3, 4):
        conv, lstm = model.get_layer(f"conv{level}"), model.get_layer(f"convlstm{level}")
        parts["encoder convolutions"] += layer_time(conv.layer, conv.input.shape[2:])
        kernel = tf.constant(np.asarray(lstm.kernel))
        parts["ConvLSTM input convolutions"] += layer_time(
            lambda x, w=kernel: tf.nn.conv2d(x, w, 1, "SAME"), conv.output.shape[2:])
        deconv = model.get_layer(f"deconv{level}")
        parts["decoder (transposed convolutions)"] += layer_time(deconv, deconv.input.shape[1:])
    for name, seconds in parts.items():
        print(f"| {name} | | | | {seconds:.2f} | | | |")
    print(f"| every convolution of the reconstruction | | | | {total + sum(parts.values()):.2f} "
          f"| | | |")


def bf16_table(repeat: int, quick: bool) -> None:
    """``precision="bfloat16"`` against float32: reconstruction, and a fitted detector's scores."""
    from scipy.stats import spearmanr

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    n_score = 100 if quick else 400
    model = build_mscred(N_SERIES, N_SCALES, STEPS)
    M = rng.normal(size=(n_score + STEPS - 1, N_SERIES, N_SERIES, N_SCALES)).astype("float32")
    ref = reconstruct_sliding(model, M)
    diff = float(np.abs(reconstruct_sliding(model, M, precision="bfloat16") - ref).max())
    t32 = t16 = np.inf
    for _ in range(repeat):  # alternate, so both see the same load
        t32 = min(t32, best_of(lambda: reconstruct_sliding(model, M), 1))
        t16 = min(t16, best_of(lambda: reconstruct_sliding(model, M, precision="bfloat16"), 1))
    # two detectors fitted as in the main table (the same training: it is float32 in both)
    df, _ = make_mscred_synthetic(n_series=N_SERIES, length=4000 if quick else 8000)
    fitted = {p: MSCREDDetector(epochs=1, score_precision=p).fit(df.iloc[:1200],
                                                                valid=df.iloc[1200:1600])
              for p in ("float32", "bfloat16")}
    part = df.iloc[1600:]
    rows = fitted["float32"].scored_rows(part)
    scores = {p: det.score(part).to_numpy()[rows] for p, det in fitted.items()}
    t_score = dict.fromkeys(fitted, np.inf)
    for _ in range(repeat):
        for p, det in fitted.items():
            t_score[p] = min(t_score[p], best_of(lambda d=det: d.score(part), 1))
    s32, s16 = scores["float32"], scores["bfloat16"]
    print(f"precision=\"bfloat16\" (encoder, input and state convolutions) against float32, "
          f"{n_score} windows; {os.cpu_count()} CPU cores")
    print()
    print("| measure | float32 | bfloat16 | ratio |")
    print("|---|---|---|---|")
    print(f"| reconstruction per 1000 matrices (s) | {1000 * t32 / n_score:.2f} | "
          f"{1000 * t16 / n_score:.2f} | {t32 / t16:.2f}x |")
    print(f"| `score` per 1000 matrices, end to end (s) | "
          f"{1000 * t_score['float32'] / len(rows):.2f} | "
          f"{1000 * t_score['bfloat16'] / len(rows):.2f} | "
          f"{t_score['float32'] / t_score['bfloat16']:.2f}x |")
    print(f"| largest difference of a reconstruction (its largest value) | | {diff:.1e} "
          f"({np.abs(ref).max():.2f}) | |")
    print(f"| scores that change, of {len(rows)} | | {np.mean(s16 != s32):.1%}, by up to "
          f"{np.abs(s16 - s32).max():.0f} of {N_SERIES ** 2} entries | |")
    print(f"| Spearman correlation of the two scores | | "
          f"{spearmanr(s32, s16).statistic:.4f} | |")
    print(f"| `tau_`, `threshold_` | {fitted['float32'].tau_:.4g}, "
          f"{fitted['float32'].threshold_:.4g} | {fitted['bfloat16'].tau_:.4g}, "
          f"{fitted['bfloat16'].threshold_:.4g} | |")


def training_throughputs(model: keras.Model, n_train: int, repeat: int, rng) -> dict:
    """Samples per second of training on separate windows and on blocks, alternated."""
    M = rng.normal(size=(n_train + STEPS - 1, N_SERIES, N_SERIES, N_SCALES)).astype("float32")
    X = window_sequences(M, STEPS)
    blocks = block_model(model)
    for m in (model, blocks):
        m.compile(optimizer=keras.optimizers.Adam(2e-4), loss="mse")
    model.train_on_batch(X[:BATCH], X[:BATCH, -1])  # build both training graphs
    blocks.train_on_batch(M[None, :BATCH + STEPS - 1], M[None, STEPS - 1:BATCH + STEPS - 1])

    def windows():
        for lo in range(0, n_train, BATCH):
            model.train_on_batch(X[lo:lo + BATCH], X[lo:lo + BATCH, -1])

    def by_blocks():
        for lo in range(0, n_train, BATCH):
            block = M[None, lo:lo + BATCH + STEPS - 1]
            blocks.train_on_batch(block, block[:, STEPS - 1:])

    best = {"windows": np.inf, "blocks": np.inf}
    for _ in range(repeat):
        best["windows"] = min(best["windows"], best_of(windows, 1))
        best["blocks"] = min(best["blocks"], best_of(by_blocks, 1))
    return {name: n_train / t for name, t in best.items()}


def onednn_table(repeat: int, quick: bool) -> None:
    """Training throughputs with oneDNN off and on, in alternated child processes."""
    runs: dict[str, list[dict]] = {"0": [], "1": []}
    for _ in range(repeat):
        for flag in runs:
            env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": flag}
            cmd = [sys.executable, __file__, "--train-only", "--repeat", "1"]
            done = subprocess.run(cmd + (["--quick"] if quick else []), env=env,
                                  capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"the child with TF_ENABLE_ONEDNN_OPTS={flag} failed:\n"
                                 f"{done.stderr[-3000:]}")
            runs[flag].append(json.loads(done.stdout.strip().splitlines()[-1]))
    best = {(flag, path): max(r[path] for r in rs) for flag, rs in runs.items()
            for path in ("windows", "blocks")}
    ref = best[("0", "windows")]
    print(f"MSCRED training throughput (samples/s, batch {BATCH}, paper network, {N_SERIES} "
          f"series); best of {repeat} child processes each; {os.cpu_count()} CPU cores")
    print()
    print("| batching | oneDNN off | oneDNN on |")
    print("|---|---|---|")
    for path in ("windows", "blocks"):
        cells = [f"{best[(flag, path)]:.1f} ({best[(flag, path)] / ref:.2f}x)" for flag in "01"]
        print(f"| {path} | {' | '.join(cells)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="2 repeats, fewer samples")
    ap.add_argument("--chunks", default="",
                    help="comma-separated batch sizes of reconstruct_sliding to time as well")
    ap.add_argument("--onednn", action="store_true",
                    help="training only, with oneDNN off and on, in child processes")
    ap.add_argument("--convs", action="store_true",
                    help="only the state convolutions, level by level, direct and Winograd")
    ap.add_argument("--bf16", action="store_true",
                    help="only bfloat16 convolutions against the float32 reconstruction")
    ap.add_argument("--train-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.onednn:
        onednn_table(args.repeat, args.quick)
        return
    if args.convs:
        conv_table(args.repeat)
        return
    if args.bf16:
        bf16_table(args.repeat, args.quick)
        return
    chunks = [int(c) for c in args.chunks.split(",") if c]
    repeat = args.repeat if args.train_only else 2 if args.quick else args.repeat
    n_train = 4 * BATCH if args.quick else 16 * BATCH
    n_score = 100 if args.quick else 400
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    if args.train_only:  # a child of --onednn: one JSON line
        print(json.dumps(training_throughputs(build_mscred(N_SERIES, N_SCALES, STEPS), n_train,
                                              repeat, rng)))
        return
    X = rng.normal(size=(n_train, STEPS, N_SERIES, N_SERIES, N_SCALES)).astype("float32")
    ours = build_mscred(N_SERIES, N_SCALES, STEPS)
    reference = keras_reference(ours)
    diff = np.abs(np.asarray(ours(X[:2])) - np.asarray(reference(X[:2]))).max()
    assert diff < 1e-3, f"the two networks disagree by {diff}"
    for model in (ours, reference):
        model.compile(optimizer=keras.optimizers.Adam(2e-4), loss="mse")
        model.train_on_batch(X[:BATCH], X[:BATCH, -1])  # build the training graph
        model.predict(X[:BATCH], verbose=0)

    def train(model):
        def run():
            for lo in range(0, n_train, BATCH):
                model.train_on_batch(X[lo:lo + BATCH], X[lo:lo + BATCH, -1])
        return run

    Xs = rng.normal(size=(n_score, STEPS, N_SERIES, N_SERIES, N_SCALES)).astype("float32")
    t_train = {"keras": np.inf, "lab": np.inf}
    t_pred = {"keras": np.inf, "lab": np.inf}
    for _ in range(repeat):  # alternate, so both see the same load
        for name, model in (("keras", reference), ("lab", ours)):
            t_train[name] = min(t_train[name], best_of(train(model), 1))
            t_pred[name] = min(t_pred[name], best_of(
                lambda m=model: m.predict(Xs, batch_size=64, verbose=0), 1))

    # every window of one stack of matrices: per window against each matrix encoded once
    M = rng.normal(size=(n_score + STEPS - 1, N_SERIES, N_SERIES, N_SCALES)).astype("float32")

    def per_window():
        return ours.predict(window_sequences(M, STEPS), batch_size=64, verbose=0)

    sliding = {b: (lambda b=b: reconstruct_sliding(ours, M, batch_size=b))
               for b in dict.fromkeys([SLIDING_BATCH, *chunks])}
    diff = np.abs(np.asarray(per_window()) - sliding[SLIDING_BATCH]()).max()
    assert diff <= 1e-4 * np.abs(M).max(), f"the two paths disagree by {diff}"
    t_window, t_sliding = np.inf, dict.fromkeys(sliding, np.inf)
    rate = 0.0
    for _ in range(repeat):
        t_window = min(t_window, best_of(per_window, 1))
        for b, run in sliding.items():
            t_sliding[b] = min(t_sliding[b], best_of(run, 1))
        rate = max(rate, gemm_rate(1))
    floor_s = 1000 * score_flops(ours) / rate

    # training on blocks of consecutive windows against separate windows, same network
    throughput = training_throughputs(build_mscred(N_SERIES, N_SCALES, STEPS), n_train,
                                      repeat, rng)

    # end to end: a detector fitted for one epoch on a short synthetic series
    df, _ = make_mscred_synthetic(n_series=N_SERIES, length=4000 if args.quick else 8000)
    det = MSCREDDetector(epochs=1).fit(df.iloc[:1200], valid=df.iloc[1200:1600])
    part = df.iloc[1600:]
    n_matrices = len(det.scored_rows(part))
    t_score = best_of(lambda: det.score(part), repeat)

    print(f"MSCRED, {N_SERIES} series x {N_SCALES} scales, {STEPS} steps, paper filters; "
          f"{os.cpu_count()} CPU cores")
    print()
    print("| measure | Keras ConvLSTM2D | lab ConvLSTMSequence | speed-up |")
    print("|---|---|---|---|")
    thr_ref, thr = n_train / t_train["keras"], n_train / t_train["lab"]
    print(f"| training throughput (samples/s, batch {BATCH}) | {thr_ref:.1f} | {thr:.1f} | "
          f"{thr / thr_ref:.2f}x |")
    per_ref, per = 1000 * t_pred["keras"] / n_score, 1000 * t_pred["lab"] / n_score
    print(f"| predict time per 1000 matrices (s) | {per_ref:.1f} | {per:.1f} | "
          f"{per_ref / per:.2f}x |")
    print()
    print(f"Every window of {STEPS} of {len(M)} matrices ({n_score} windows), lab network; "
          f"largest difference {diff:.1e}")
    print()
    print("| measure | predict per window | reconstruct_sliding | speed-up |")
    print("|---|---|---|---|")
    per_window_s = 1000 * t_window / n_score
    for b, t in t_sliding.items():
        print(f"| reconstruction time per 1000 matrices (s), batch_size {b} | "
              f"{per_window_s:.1f} | {1000 * t / n_score:.1f} | {t_window / t:.2f}x |")
    print(f"| `score` time per 1000 matrices, end to end (s) | | "
          f"{1000 * t_score / n_matrices:.1f} | |")
    print()
    best_sliding = min(t_sliding.values())
    print(f"Compute floor: {score_flops(ours) / 1e9:.2f} GFLOP per matrix (convolutions and "
          f"attention) at {rate / 1e9:.0f} GFLOP/s (a 4096 x 4096 float32 matmul here) is "
          f"{floor_s:.1f} s per 1000 matrices; reconstruct_sliding takes "
          f"{1000 * best_sliding / n_score / floor_s:.2f}x that, "
          f"{score_flops(ours) * n_score / best_sliding / 1e9:.0f} GFLOP/s")
    print()
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "TensorFlow's default")
    print(f"Training the lab network (TF_ENABLE_ONEDNN_OPTS: {onednn})")
    print()
    print("| measure | batching=\"windows\" | batching=\"blocks\" | speed-up |")
    print("|---|---|---|---|")
    print(f"| training throughput (samples/s, batch {BATCH}) | {throughput['windows']:.1f} | "
          f"{throughput['blocks']:.1f} | {throughput['blocks'] / throughput['windows']:.2f}x |")


if __name__ == "__main__":
    main()
