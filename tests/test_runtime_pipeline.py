"""The Recognizer API and `edgefer run --headless` on real video; the runtime never loads TensorFlow."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgefer.runtime.blazeface import KEYPOINTS
from edgefer.runtime.classifiers import load_classifier
from edgefer.runtime.cli import main
from edgefer.runtime.detectors import Detection, FaceDetector
from edgefer.runtime.drawing import annotate
from edgefer.runtime.pipeline import STAGES, Recognizer

HAS_MEDIAPIPE = importlib.util.find_spec("mediapipe") is not None


class FixedBoxes(FaceDetector):
    name = "fixed"

    def __init__(self, boxes: list[tuple[int, int, int, int]]) -> None:
        self.boxes = boxes

    def _detect(self, image: np.ndarray) -> list[Detection]:
        return [Detection(b, 0.9) for b in self.boxes]


def validate_record(record: dict, labels: tuple[str, ...], frame_size: tuple[int, int]) -> None:
    """Every field of one JSON line, as documented in the README."""
    w, h = frame_size
    assert set(record) == {"frame", "timestamp", "source", "faces", "timings_ms"}
    assert isinstance(record["frame"], int) and record["frame"] >= 0
    ts = record["timestamp"]
    assert ts is None or (isinstance(ts, float | int) and ts >= 0)
    assert set(STAGES) | {"total"} == set(record["timings_ms"])
    for face in record["faces"]:
        assert set(face) - {"keypoints"} == {"box", "score", "label", "probabilities", "track_id"}
        if "keypoints" in face:
            assert list(face["keypoints"]) == list(KEYPOINTS)
            assert all(-0.5 * w <= kx <= 1.5 * w and -0.5 * h <= ky <= 1.5 * h
                       for kx, ky in face["keypoints"].values())
        x, y, bw, bh = face["box"]
        assert all(isinstance(v, int) for v in face["box"])
        assert x >= 0 and y >= 0 and bw > 0 and bh > 0 and x + bw <= w and y + bh <= h
        assert 0.0 < face["score"] <= 1.0
        assert tuple(face["probabilities"]) == labels
        assert math.isclose(sum(face["probabilities"].values()), 1.0, abs_tol=1e-3)
        # The shown label: the arg-max, or (hysteresis) a label the arg-max has not yet out-led for long.
        assert face["label"] in labels
        assert isinstance(face["track_id"], int) and face["track_id"] >= 1


@pytest.mark.parametrize(
    "detector",
    [
        "blazeface",
        "blazeface-full",
        "haar",
        pytest.param(
            "mediapipe", marks=pytest.mark.skipif(not HAS_MEDIAPIPE, reason="mediapipe not installed")
        ),
    ],
)
def test_run_headless_on_real_video_reports_faces_on_most_frames(
    katie_clip: Path, pipeline_model: Path, tmp_path: Path, detector: str
) -> None:
    out = tmp_path / "faces.jsonl"
    code = main([
        "run", "--source", str(katie_clip), "--headless", "--detector", detector,
        "--model", str(pipeline_model), "--jsonl", str(out),
    ])
    assert code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 200  # 8 s at 25 fps: every frame of a file, none dropped
    labels = load_classifier(pipeline_model).labels
    for r in records:
        validate_record(r, labels, (512, 512))
    with_face = sum(1 for r in records if r["faces"])
    assert with_face >= 0.9 * len(records), f"{detector}: faces on only {with_face}/{len(records)} frames"
    # One talking head: tracking should keep (nearly) one id for the whole clip.
    ids = [f["track_id"] for r in records for f in r["faces"]]
    main_id = max(set(ids), key=ids.count)
    assert ids.count(main_id) >= 0.85 * len(records)
    assert [r["frame"] for r in records] == list(range(200))
    assert records[-1]["timestamp"] == pytest.approx(199 / 25, abs=0.05)


@pytest.mark.parametrize("clip", ["sadtalker_WDA_KatieHill_000.mp4", "sadtalker_WDA_AlexandriaOcasioCortez_000.mp4"])
def test_real_video_default_detector_finds_the_face_on_95_percent_of_frames(
    shared_data: Path, pipeline_model: Path, tmp_path: Path, clip: str
) -> None:
    out = tmp_path / "faces.jsonl"
    assert main(["run", "--source", str(shared_data / "videos" / clip), "--headless",
                 "--model", str(pipeline_model), "--jsonl", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    with_face = sum(1 for r in records if r["faces"])
    assert len(records) == 200 and with_face >= 0.95 * len(records), f"faces on {with_face}/{len(records)}"
    assert all("keypoints" in f for r in records for f in r["faces"])  # the default is BlazeFace


def test_all_faces_of_a_frame_are_classified_in_one_batch(tiny_onnx: Path) -> None:
    clf = load_classifier(tiny_onnx)
    calls = []
    original = clf.predict

    def spy(faces: np.ndarray) -> np.ndarray:
        calls.append(len(faces))
        return original(faces)

    clf.predict = spy
    boxes = [(10, 10, 60, 60), (100, 20, 50, 50), (200, 40, 80, 80)]
    rec = Recognizer(model=clf, detector=FixedBoxes(boxes))
    result = rec(np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8))
    assert calls == [3]
    assert [f.box for f in result.faces] == boxes
    assert [f.track_id for f in result.faces] == [1, 2, 3]
    assert set(result.timings_ms) == set(STAGES) | {"total"}


def test_recognizer_api_returns_faces_with_box_label_probabilities(tiny_onnx: Path) -> None:
    frame = np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    with Recognizer(model=tiny_onnx, detector=FixedBoxes([(50, 50, 100, 100)]), smooth=0.0) as rec:
        (face,) = rec(frame).faces
        assert face.label in rec.labels and face.label == max(face.probabilities, key=face.probabilities.get)
        assert face.probabilities == face.raw_probabilities  # smooth=0: nothing averaged
        json.dumps(face.to_dict())
        (again,) = rec(frame).faces
        assert again.track_id == face.track_id
        rec.reset()  # a new, unrelated image: its faces are numbered from 1 again
        (fresh,) = rec(frame).faces
        assert fresh.track_id == 1
    stateless = Recognizer(model=tiny_onnx, detector=FixedBoxes([(50, 50, 100, 100)]), track=False)
    assert stateless(frame).faces[0].track_id is None
    empty = Recognizer(model=tiny_onnx, detector=FixedBoxes([]))(frame)
    assert empty.faces == []


def test_annotate_draws_on_a_copy(tiny_onnx: Path) -> None:
    frame = np.full((240, 320, 3), 100, dtype=np.uint8)
    result = Recognizer(model=tiny_onnx, detector=FixedBoxes([(200, 60, 100, 100)]))(frame)
    out = annotate(frame, result.faces, fps=24.0, timings_ms=result.timings_ms)
    assert out.shape == frame.shape and not np.array_equal(out, frame)
    assert np.all(frame == 100)


FRESH_INTERPRETER_CHECK = """
import json, sys
from pathlib import Path
import edgefer.runtime
from edgefer.models import MODELS_DIR
from edgefer.runtime.pipeline import Recognizer
from edgefer.runtime.sources import open_source

after_import = sorted(m for m in ("tensorflow", "keras", "tf_keras") if m in sys.modules)
faces = 0
clip = MODELS_DIR / "sample_face.mp4"
with Recognizer(model=sys.argv[1], detector="haar") as rec, open_source(clip) as src:
    for i, frame in enumerate(src):
        faces += len(rec(frame.image).faces)
        if i == 9:
            break
from edgefer.runtime.cli import main
code = main(["run", "--source", str(MODELS_DIR / "sample_face.mp4"), "--headless", "--max-frames", "3",
             "--model", sys.argv[1], "--jsonl", sys.argv[2]])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
print(json.dumps({"after_import": after_import, "loaded": loaded[:5], "faces": faces, "code": code}))
"""


def test_runtime_never_loads_tensorflow_in_a_fresh_interpreter(tiny_onnx: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", FRESH_INTERPRETER_CHECK, str(tiny_onnx), str(tmp_path / "o.jsonl")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["after_import"] == [] and report["loaded"] == [], f"TensorFlow/Keras got imported: {report}"
    assert report["faces"] >= 8 and report["code"] == 0
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 3


def test_run_command_registration_imports_nothing_heavy() -> None:
    code = (
        "import argparse, sys\n"
        "from edgefer.runtime import run_cli\n"
        "run_cli.register(argparse.ArgumentParser().add_subparsers())\n"
        "print(sorted(m for m in ('cv2', 'numpy', 'onnxruntime') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
