"""Cost of every `--arch` on this machine, measured before committing training compute to one.

For each architecture: parameters, multiply-accumulates and MFLOPs per 48x48 face, Keras
training throughput (images/s, synthetic batches, the given precision) and ONNX Runtime float
latency (ms per face, batch 1, 1 thread) of the tf2onnx export. Prints a Markdown table.

Usage: python scripts/arch_table.py [--precision mixed_bfloat16] [--archs edge,report] [--out FILE]
Run it on an idle machine: other jobs on the cores inflate both timings.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

STEPS, WARMUP, BATCH = 12, 3, 128


def train_images_per_s(build, precision: str) -> float:
    import keras

    keras.mixed_precision.set_global_policy(precision)
    try:
        model = build((48, 48, 1), 7)
        model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="categorical_crossentropy")
        rng = np.random.default_rng(0)
        x = rng.random((BATCH * (STEPS + WARMUP), 48, 48, 1), np.float32)
        y = np.eye(7, dtype=np.float32)[rng.integers(0, 7, len(x))]
        model.fit(x[: BATCH * WARMUP], y[: BATCH * WARMUP], batch_size=BATCH, epochs=1, verbose=0)
        t0 = time.perf_counter()
        model.fit(x[BATCH * WARMUP :], y[BATCH * WARMUP :], batch_size=BATCH, epochs=1, verbose=0)
        return BATCH * STEPS / (time.perf_counter() - t0)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def onnx_ms_per_face(build, workdir: Path, rounds: int = 300) -> float:
    import onnxruntime as ort

    from edgefer.export.context import ExportContext
    from edgefer.export.onnx_float import convert_to_onnx
    from edgefer.export.source import load_source

    path = workdir / f"{build.__name__}.keras"
    build((48, 48, 1), 7).save(path)
    onnx_path = workdir / f"{build.__name__}.onnx"
    convert_to_onnx(ExportContext(source=load_source(path), workdir=workdir), onnx_path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).random((1, 48, 48, 1), np.float32)
    for _ in range(30):
        sess.run(None, {name: x})
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        sess.run(None, {name: x})
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def main() -> None:
    from edgefer.train.archs import ARCHS
    from edgefer.train.complexity import complexity

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--precision", default="mixed_bfloat16", choices=("float32", "mixed_bfloat16"))
    ap.add_argument("--archs", default=",".join(ARCHS), help="comma-separated --arch names")
    ap.add_argument("--out", help="also write the table here")
    args = ap.parse_args()
    rows = ["| arch | parameters | MMACs | MFLOPs | train images/s | ONNX float ms/face |",
            "|---|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory(prefix="edgefer-arch-") as tmp:
        for name in args.archs.split(","):
            spec = ARCHS[name]
            c = complexity(spec.build((48, 48, 1), 7))
            ips = train_images_per_s(spec.build, args.precision)
            ms = onnx_ms_per_face(spec.build, Path(tmp))
            rows.append(f"| `{name}` | {c.params:,} | {c.macs / 1e6:.1f} | {c.mflops:.1f} | {ips:.0f} | {ms:.3f} |")
            print(rows[-1], flush=True)
    table = "\n".join(rows) + f"\n\ntraining throughput with {args.precision} compute, batch {BATCH}; " \
        "latency: ONNX Runtime, batch 1, 1 thread, median of 300 runs\n"
    print(table)
    if args.out:
        Path(args.out).write_text(table)


if __name__ == "__main__":
    main()
