"""Training faces re-cropped by the runtime's detector and crop (``--crops``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgefer.runtime.detectors import Detection, FaceDetector
from edgefer.runtime.preprocess import PreprocessSpec, crop_faces
from edgefer.train.config import TrainConfig
from edgefer.train.data import Dataset, load_fer2013
from edgefer.train.recrop import CANVAS, SCALE, detector_crops, frame_of, training_crops

SPEC = PreprocessSpec()


class _Fixed(FaceDetector):
    """Finds one box on every frame whose centre pixel is bright, none otherwise."""

    box = (90, 80, 70, 90)

    def _detect(self, image: np.ndarray) -> list[Detection]:
        if image[CANVAS // 2, CANVAS // 2, 0] < 128:
            return []
        small = Detection((100, 100, 20, 20), 0.9)
        return [small, Detection(self.box, 0.8)]


def _faces(n: int, seed: int = 0) -> np.ndarray:
    faces = np.random.default_rng(seed).integers(0, 256, (n, 48, 48), dtype=np.uint8)
    faces[::2, 24, 24] = 255  # even faces are "found"
    faces[1::2, 24, 24] = 0
    return faces


def test_frame_of_centres_the_enlarged_face_on_grey() -> None:
    face = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    frame = frame_of(face)
    assert frame.shape == (CANVAS, CANVAS, 3)
    side = 48 * SCALE
    lo = (CANVAS - side) // 2
    assert (frame[:lo] == 128).all() and (frame[lo + side :] == 128).all()
    assert (frame[:, :lo] == 128).all() and (frame[:, lo + side :] == 128).all()
    inner = frame[lo : lo + side, lo : lo + side, 0].astype(int)
    assert abs(inner.mean() - face.mean()) < 3  # the face itself, enlarged
    with pytest.raises(ValueError, match="does not fit"):
        frame_of(np.zeros((100, 100), np.uint8))


def test_detector_crops_crop_the_largest_box_and_keep_missed_faces() -> None:
    faces = _faces(6)
    got = detector_crops(faces, SPEC, _Fixed())
    assert got.faces.shape == (6, 48, 48) and got.faces.dtype == np.uint8
    assert got.found.tolist() == [True, False] * 3
    for i in (0, 2, 4):
        expect = crop_faces(frame_of(faces[i]), [_Fixed.box], SPEC)[0]
        assert np.array_equal(got.faces[i], expect)
    for i in (1, 3, 5):  # missed: the dataset crop, unchanged at the model's size
        assert np.array_equal(got.faces[i], faces[i])


def _dataset(n: int) -> Dataset:
    y = np.arange(n) % 7
    targets = np.eye(7, dtype=np.float32)[y] * 0.8 + 0.2 / 7
    return Dataset(x=_faces(n), y=y, labels=("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
                   files=[f"train/c/{i}.png" for i in range(n)], name="toy", targets=targets)


def test_training_crops_both_keeps_labels_files_and_targets_with_each_copy(monkeypatch) -> None:
    import edgefer.train.recrop as recrop

    monkeypatch.setattr(recrop, "make_detector", lambda name: _Fixed())
    ds = _dataset(8)
    assert training_crops(ds, "dataset", SPEC) is ds
    det = training_crops(ds, "detector", SPEC)
    assert len(det) == 8 and np.array_equal(det.y, ds.y) and det.files == ds.files
    assert not np.array_equal(det.x[0], ds.x[0]) and np.array_equal(det.x[1], ds.x[1])
    both = training_crops(ds, "both", SPEC)
    assert len(both) == 16
    assert np.array_equal(both.x[:8], ds.x) and np.array_equal(both.x[8:], det.x)
    assert np.array_equal(both.y, np.concatenate([ds.y, ds.y])) and both.files == ds.files * 2
    assert both.targets is not None and ds.targets is not None
    assert np.array_equal(both.targets, np.concatenate([ds.targets, ds.targets]))
    with pytest.raises(ValueError, match="crops must be one of"):
        training_crops(ds, "random", SPEC)


def test_crops_is_a_recorded_setting_that_a_resume_cannot_change() -> None:
    from edgefer.train.config import SAME

    cfg = TrainConfig(crops="detector")
    assert dataclasses.asdict(cfg)["crops"] == "detector"
    crops = next(f for f in dataclasses.fields(TrainConfig) if f.name == "crops")
    assert crops.metadata["on_resume"] == SAME
    with pytest.raises(Exception, match="crops"):
        TrainConfig(crops="sideways").validate()


def test_blazeface_finds_and_recrops_fer2013_test_faces(shared_data) -> None:
    """Real faces: BlazeFace finds nearly all PublicTest faces on the canvas, and its crop reframes them."""
    test = load_fer2013(shared_data / "fer2013", "test")
    pick = np.random.default_rng(0).permutation(len(test))[:150]
    faces = test.x[np.sort(pick)]
    got = detector_crops(faces, SPEC, "blazeface")
    assert got.found.mean() >= 0.95
    # The detector's box plus 10% frames the face tighter than FER2013 does: the crops differ.
    diff = np.abs(got.faces[got.found].astype(int) - faces[got.found].astype(int)).mean()
    assert diff > 10


def test_load_data_trains_on_both_framings_and_validates_on_the_dataset_crops(tmp_path, monkeypatch) -> None:
    import cv2

    import edgefer.train.recrop as recrop
    from edgefer.runtime.labels import FER2013_LABELS
    from edgefer.train.trainer import load_data

    for split in ("train", "test"):
        for i, name in enumerate(FER2013_LABELS):
            (tmp_path / split / name).mkdir(parents=True)
            cv2.imwrite(str(tmp_path / split / name / "a.png"), np.full((48, 48), 30 * i, np.uint8))
    monkeypatch.setattr(recrop, "make_detector", lambda name: _Fixed())
    splits = load_data(TrainConfig(data=str(tmp_path), crops="both"))
    assert len(splits.train) == 14 and "dataset and blazeface crops" in splits.train.name
    assert len(splits.val) == 7 and "crops" not in splits.val.name


def test_eval_detector_crops_records_the_score_through_blazeface(shared_data, tmp_path, capsys) -> None:
    """`edgefer eval --detector-crops --write-card` on real PublicTest faces: the card's new key holds
    what the shipped model scores on the faces as BlazeFace and its crop frame them."""
    import json
    import shutil

    from edgefer.models import MODELS_DIR
    from edgefer.runtime.cli import main
    from edgefer.runtime.metadata import card_path
    from edgefer.train.evaluate import load_predictor, map_predictions

    src = shared_data / "fer2013" / "test"
    for d in sorted(p for p in src.iterdir() if p.is_dir()):
        (tmp_path / "data" / "test" / d.name).mkdir(parents=True)
        for f in sorted(d.iterdir())[:12]:
            shutil.copy(f, tmp_path / "data" / "test" / d.name / f.name)
    model = tmp_path / "fer2013.onnx"
    shutil.copy(MODELS_DIR / "fer2013.onnx", model)
    shutil.copy(card_path(MODELS_DIR / "fer2013.onnx"), card_path(model))
    assert main(["eval", str(model), "--data", str(tmp_path / "data"), "--no-timing", "--no-verify",
                 "--detector-crops", "--write-card"]) == 0
    assert "faces found by blazeface" in capsys.readouterr().out
    recorded = json.loads(card_path(model).read_text())["card"]["metrics"]["fer2013-publictest-blazeface"]
    test = load_fer2013(tmp_path / "data", "test")
    pred = load_predictor(model, verify=False)
    faces = detector_crops(test.x, pred.info.preprocess, "blazeface").faces
    y = map_predictions(pred.predict(faces), pred.labels, test.labels)
    assert recorded["n"] == len(test) == 84
    assert recorded["accuracy"] == round(float((y == test.y).mean()), 4)
    assert "blazeface crops" in recorded["data"]
