"""LiteRT models with a dynamic batch run all faces at once; fixed-batch files fall back to one by one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert")

from edgefer.runtime.classifiers import load_classifier  # noqa: E402
from edgefer.runtime.labels import FER2013_LABELS  # noqa: E402
from edgefer.runtime.metadata import ModelInfo, write_card  # noqa: E402
from edgefer.runtime.preprocess import PreprocessSpec, normalize  # noqa: E402


def _tiny_keras(batch: int | None):
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((48, 48, 1), batch_size=batch)
    x = keras.layers.Conv2D(4, 3, strides=4, activation="relu")(inp)
    x = keras.layers.Flatten()(x)  # a fixed batch freezes this reshape: resizing then fails
    return keras.Model(inp, keras.layers.Dense(7, activation="softmax")(x))


@pytest.mark.parametrize("batch", [None, 1])
def test_tflite_batches_or_falls_back(tmp_path: Path, batch: int | None) -> None:
    model = _tiny_keras(batch)
    path = tmp_path / "m.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    write_card(path, ModelInfo(FER2013_LABELS, PreprocessSpec(), {}))
    faces = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    clf = load_classifier(path)
    assert list(clf._inp["shape_signature"])[0] == (batch or -1)
    probs = clf.predict(faces)
    want = model(normalize(faces, PreprocessSpec()), training=False).numpy()
    assert probs.shape == (3, 7)
    assert np.allclose(probs, want, atol=1e-5)
    assert clf.predict(faces[:1]).shape == (1, 7)
    assert clf._fixed_batch == (batch == 1)
    assert json.loads(path.with_suffix(".json").read_text())["labels"] == list(FER2013_LABELS)
