"""One training process for tests/test_train_distribute.py; prints its history as one JSON line.

    python tests/distribute_worker.py MODE DATA OUT [--cpus N] [--no-dropout]

``--cpus N`` splits TensorFlow's CPU into N logical devices, which has to happen before
TensorFlow initialises: hence a process of its own. The backend is KERAS_BACKEND's.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import cv2
import numpy as np

from edgefer.runtime.labels import FER2013_LABELS

MARK = "HISTORY "
EPOCHS, BATCH, SEED = 2, 8, 1


def tiny_tree(root: Path, per_class: int = 6) -> Path:
    """Seven classes of 48x48 noise at their own brightness: 42 training and 14 test images."""
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("test", 2)):
        for i, name in enumerate(FER2013_LABELS):
            d = root / split / name
            d.mkdir(parents=True)
            for j in range(n):
                img = np.clip(rng.normal(30 + 30 * i, 10, (48, 48)), 0, 255).astype(np.uint8)
                cv2.imwrite(str(d / f"{j}.png"), img)
    return root


def _split_cpu(n: int) -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode")
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--cpus", type=int, default=1)
    p.add_argument("--no-dropout", action="store_true")
    args = p.parse_args()
    import keras

    if args.cpus > 1 and keras.backend.backend() == "tensorflow":
        _split_cpu(args.cpus)
    if args.no_dropout:  # before the arch is built: archs.py looks up layers.Dropout at build time
        keras.layers.Dropout = lambda rate, **kw: keras.layers.Identity()
    from edgefer.train.trainer import TrainConfig, train

    cfg = TrainConfig(data=args.data, arch="ckplus", out=args.out, epochs=EPOCHS, batch_size=BATCH, seed=SEED,
                      distribute=args.mode)
    run = train(cfg, progress=False)
    with (run / "history.csv").open() as fh:
        rows = [{k: float(r[k]) for k in ("loss", "accuracy", "val_loss", "val_accuracy")} for r in csv.DictReader(fh)]
    print(MARK + json.dumps({"run": str(run), "history": rows}), flush=True)


if __name__ == "__main__":
    main()
