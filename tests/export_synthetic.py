"""Synthetic faces for the export tests: each class is a bright band at its own height.

The pattern is easy enough that a tiny CNN becomes confident in a few steps, so INT8
agreement with Keras is a fair test of the exporters rather than of near-ties.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from edgefer.runtime.labels import FER2013_LABELS
from edgefer.runtime.preprocess import PreprocessSpec

LABELS = FER2013_LABELS
SIZE = (48, 48)


def faces(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = per_class * len(LABELS)
    y = np.repeat(np.arange(len(LABELS)), per_class)
    x = rng.integers(0, 90, size=(n, *SIZE)).astype(np.uint8)
    for i, c in enumerate(y):
        top = 6 * c + int(rng.integers(0, 2))
        x[i, top : top + 6, 4:44] = rng.integers(190, 256)
    return x, y.astype(np.int64)


def write_tree(root: Path, splits: dict[str, int], seed: int = 0, folder_names=None) -> Path:
    """root/<split>/<class>/*.png with ``splits[split]`` images per class (split '' = no split level)."""
    names = folder_names or LABELS
    for k, (split, per_class) in enumerate(splits.items()):
        x, y = faces(per_class, seed + k)
        for i, (img, c) in enumerate(zip(x, y, strict=True)):
            d = root / split / names[c]
            d.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(d / f"{i:04d}.png"), img)
    return root


def train_tiny_run(run_dir: Path, seed: int = 0) -> Path:
    """A run folder like `edgefer train` writes: best.keras + run.json, for a few-filter CNN."""
    import keras
    from keras import layers

    from edgefer.runtime.preprocess import normalize

    keras.utils.set_random_seed(seed)
    spec = PreprocessSpec()
    inp = keras.Input((*SIZE, 1), name="face")
    x = layers.Conv2D(4, 3, padding="same")(inp)
    x = layers.BatchNormalization(momentum=0.7)(x)  # settles in a few steps
    x = layers.LeakyReLU(negative_slope=0.01)(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    out = layers.Dense(len(LABELS), activation="softmax", name="probs")(x)
    model = keras.Model(inp, out, name="tiny")
    model.compile(optimizer=keras.optimizers.Adam(5e-3), loss="sparse_categorical_crossentropy")
    xs, ys = faces(24, seed)
    model.fit(normalize(xs, spec), ys, batch_size=32, epochs=6, shuffle=True, verbose=0)
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / "best.keras")
    (run_dir / "run.json").write_text(json.dumps({
        "config": {"arch": "tiny", "dataset": "fer2013", "epochs": 6, "seed": seed, "data": "synthetic"},
        "labels": list(LABELS),
        "preprocess": json.loads(spec.to_json()),
        "train_data": f"synthetic bands: {len(ys)} images",
        "val_data": "synthetic bands",
        "params": int(model.count_params()),
    }))
    return run_dir
