"""Build tiny edgefer-compatible classifiers for exercising the arm64 harness without shipped models.

Runs on the HOST (needs ``onnx``; ``--int8`` needs ``onnxruntime``; ``--tflite`` needs TensorFlow).
The weights are random, so the labels mean nothing: this only proves the plumbing.

    python tiny_model.py OUT_DIR [--int8] [--tflite]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
PREPROCESS = {"size": [48, 48], "channels": 1, "layout": "NHWC", "scale": 1 / 255, "offset": 0.0, "margin": 0.1}
PROPS = {"edgefer.labels": json.dumps(LABELS), "edgefer.preprocess": json.dumps(PREPROCESS)}


def weights() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(0, 0.05, (48 * 48, len(LABELS))).astype(np.float32), np.zeros(len(LABELS), np.float32)


def card(path: Path) -> None:
    d = {"model": path.name, "labels": LABELS, "preprocess": PREPROCESS, "card": {"note": "synthetic test model"}}
    path.with_suffix(".json").write_text(json.dumps(d, indent=2) + "\n")


def build_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w, b = weights()
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["mm"]),
        helper.make_node("Add", ["mm", "B"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "tiny_fer",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 48, 48, 1])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", len(LABELS)])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    helper.set_model_props(model, PROPS)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    card(path)
    return path


def build_int8(src: Path, path: Path) -> Path:
    import onnx
    from onnx import helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(path), weight_type=QuantType.QInt8)
    m = onnx.load(str(path))  # quantize_dynamic keeps metadata_props on recent versions; make sure
    helper.set_model_props(m, PROPS)
    onnx.save(m, str(path))
    card(path)
    return path


def build_tflite(path: Path) -> Path:
    import tensorflow as tf

    w, b = weights()
    inp = tf.keras.Input((48, 48, 1))  # dynamic batch: the runtime resizes to the number of faces
    x = tf.keras.layers.Flatten()(inp)
    dense = tf.keras.layers.Dense(len(LABELS), activation="softmax")
    out = dense(x)
    model = tf.keras.Model(inp, out)
    dense.set_weights([w, b])
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    path.write_bytes(conv.convert())
    card(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--int8", action="store_true")
    ap.add_argument("--tflite", action="store_true")
    a = ap.parse_args()
    a.out_dir.mkdir(parents=True, exist_ok=True)
    made = [build_onnx(a.out_dir / "tiny.onnx")]
    if a.int8:
        made.append(build_int8(made[0], a.out_dir / "tiny_int8.onnx"))
    if a.tflite:
        made.append(build_tflite(a.out_dir / "tiny.tflite"))
    for p in made:
        print(p)


if __name__ == "__main__":
    main()
