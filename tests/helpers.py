"""Test helpers shared across the suite (and reusable by export/benchmark code).

:func:`build_tiny_onnx` writes a small but valid edgefer classifier: NHWC float input
with a dynamic batch, a fixed random linear layer and a softmax over the labels, with
the edgefer metadata in ``metadata_props``. Deterministic for a given ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgefer.runtime.labels import FER2013_LABELS
from edgefer.runtime.metadata import ModelInfo
from edgefer.runtime.preprocess import PreprocessSpec

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def first_frames(video: str | Path, count: int) -> list[np.ndarray]:
    """The first ``count`` frames of a video file, read by the runtime's own source."""
    from itertools import islice

    from edgefer.runtime.sources import open_source

    with open_source(video) as src:
        return [frame.image for frame in islice(src, count)]


def build_tiny_onnx(
    path: str | Path,
    labels: Sequence[str] = FER2013_LABELS,
    spec: PreprocessSpec | None = None,
    with_metadata: bool = True,
    seed: int = 0,
    card: dict | None = None,
) -> Path:
    """Write a tiny edgefer ONNX classifier to ``path`` and return the path.

    input ``input``: float32 (N, h, w, c) for NHWC or (N, c, h, w) for NCHW, N dynamic;
    output ``probs``: float32 (N, len(labels)), a softmax of a fixed linear layer.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    spec = spec or PreprocessSpec()
    h, w = spec.size
    c = spec.channels
    dims = ["N", h, w, c] if spec.layout == "NHWC" else ["N", c, h, w]
    features = h * w * c
    rng = np.random.default_rng(seed)
    weights = (rng.standard_normal((features, len(labels))) * 0.05).astype(np.float32)
    bias = rng.standard_normal(len(labels)).astype(np.float32) * 0.1
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["input", "flat_shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "W"], ["logits_nb"]),
            helper.make_node("Add", ["logits_nb", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
        ],
        "edgefer_tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", len(labels)])],
        initializer=[
            numpy_helper.from_array(np.array([-1, features], dtype=np.int64), "flat_shape"),
            numpy_helper.from_array(weights, "W"),
            numpy_helper.from_array(bias, "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="edgefer")
    model.ir_version = 8  # loadable by every onnxruntime >= 1.14, including older Pi builds
    if with_metadata:
        info = ModelInfo(labels=tuple(labels), preprocess=spec, card=card or {"arch": "tiny-test"})
        helper.set_model_props(model, info.to_props())
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
