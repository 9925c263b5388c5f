"""Stand-in artifacts for benchmarking before (or without) the shipped models.

Writes a randomly initialised, seeded Keras model of the shipped default's architecture (from its card) as a run folder
(best.keras + run.json, like ``edgefer train``) and exports it with ``edgefer export`` to
float/INT8 ONNX and TFLite. Latency does not depend on weight values, so these files time
the same graph as the trained models; their accuracy is meaningless and is never reported.

Run as a script (TensorFlow is imported here only, never by the benchmark renderer)::

    .venv/bin/python benchmarks/build_models.py [--out .cache/bench_models]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / ".cache" / "bench_models"
SHARED_DATA = REPO.parent / "shared" / "data"
STEM = "fer2013"
SEED = 0
# INT8 calibration must see real faces (the exporter refuses noise); 100 keeps it quick,
# and the calibration quality does not change the latency of the quantized graph.
CALIB_SIZE = 100


def shipped_arch() -> str:
    """The architecture named in the default model's card; ``report`` when nothing is shipped."""
    from edgefer.models import default_model

    card = default_model().with_suffix(".json")
    if card.is_file():
        arch = json.loads(card.read_text()).get("card", {}).get("arch")
        if arch:
            return str(arch)
    return "report"


def write_random_run(run_dir: Path, seed: int = SEED) -> Path:
    """best.keras + run.json for an untrained model of the shipped default's architecture."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from edgefer.runtime.labels import FER2013_LABELS
    from edgefer.runtime.preprocess import PreprocessSpec
    from edgefer.train.archs import ARCHS
    from edgefer.train.runfolder import RunFolder

    keras.utils.set_random_seed(seed)
    spec = PreprocessSpec()
    arch = shipped_arch()
    model = ARCHS[arch].build((*spec.size, spec.channels), len(FER2013_LABELS))
    run = RunFolder(run_dir)
    run.path.mkdir(parents=True, exist_ok=True)
    model.save(run.best)
    run.write_run({
        "config": {"arch": arch, "dataset": "fer2013", "seed": seed, "data": None},
        "labels": list(FER2013_LABELS),
        "preprocess": spec.to_dict(),
        "train_data": "none: random initialisation for latency benchmarks (benchmarks/build_models.py)",
        "params": int(model.count_params()),
    })
    return run_dir


def export_run(run_dir: Path, out: Path, calib_data: Path | None) -> int:
    """Float formats always; INT8 ones only with real calibration faces."""
    formats = ["onnx", "tflite"]
    if calib_data is not None:
        formats += ["onnx-int8", "tflite-int8"]
    cmd = [
        sys.executable, "-m", "edgefer.runtime.cli", "export", str(run_dir),
        "--format", ",".join(formats), "--out", str(out), "--name", STEM,
        # Verification compares against Keras accuracy, which is meaningless for random weights.
        "--no-verify",
    ]
    if calib_data is not None:
        cmd += ["--calib-data", str(calib_data), "--calib-size", str(CALIB_SIZE)]
    return subprocess.call(cmd, cwd=REPO)


def build(out: Path = DEFAULT_OUT) -> int:
    run_dir = write_random_run(out / "run")
    fer = SHARED_DATA / "fer2013"
    return export_run(run_dir, out, fer if fer.is_dir() else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    return build(args.out)


if __name__ == "__main__":
    sys.exit(main())
