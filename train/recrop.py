"""Dataset faces re-cropped the way the runtime crops a face in a frame: detector, box, margin.

FER2013 and CK+48 ship their own 48x48 crops, framed otherwise than a BlazeFace box plus the
preprocessing margin: on 1,000 PublicTest faces the runtime's crop is 0.83-1.27 times the
dataset crop's side (10th-90th percentile, median 1.04) and centred 8% of that side lower.
A model trained on the dataset's framing meets the detector's at serving time, and loses
accuracy there: the shipped FER2013 model scores 70.55% on PublicTest's own crops and 67.96%
on the same faces cropped by BlazeFace. ``detector_crops`` gives a training set (or a test
set) that framing.

Each face is enlarged and centred on a grey canvas, so that the detector sees it with some
context, as in a frame; the largest detection is cropped by the model's ``PreprocessSpec``.
A face the detector misses keeps its dataset crop, so the set keeps every image and label.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import cv2
import numpy as np

from edgefer.runtime.detectors import Detection, FaceDetector, make_detector
from edgefer.runtime.preprocess import PreprocessSpec, crop_faces
from edgefer.runtime.progress import Progress

from .config import CROPS
from .data import Dataset

CANVAS = 256  # side of the grey frame each face is placed on
SCALE = 3  # 48 px faces become 144 px: BlazeFace's short-range model finds 99% of PublicTest at this size


def frame_of(face: np.ndarray, canvas: int = CANVAS, scale: int = SCALE) -> np.ndarray:
    """A BGR frame holding ``face`` (uint8 gray, h x w) enlarged ``scale`` times, centred on grey."""
    big = cv2.resize(face, (face.shape[1] * scale, face.shape[0] * scale), interpolation=cv2.INTER_CUBIC)
    if max(big.shape) > canvas:
        raise ValueError(f"a {face.shape[1]}x{face.shape[0]} face enlarged {scale}x does not fit a {canvas} px canvas")
    out = np.full((canvas, canvas), 128, np.uint8)
    y, x = (canvas - big.shape[0]) // 2, (canvas - big.shape[1]) // 2
    out[y : y + big.shape[0], x : x + big.shape[1]] = big
    return cv2.cvtColor(out, cv2.COLOR_GRAY2BGR)


@dataclasses.dataclass(frozen=True)
class Recropped:
    faces: np.ndarray  # uint8 (N, h, w) in the spec's size
    found: np.ndarray  # bool (N,): the detector found the face (False: the dataset crop, resized)


def largest_detections(faces: np.ndarray, detector: FaceDetector) -> Iterator[tuple[np.ndarray, Detection | None]]:
    """Each face of ``faces`` (uint8 N x h x w) on its canvas (:func:`frame_of`), with the largest
    face ``detector`` finds there, or None where it finds none."""
    for face in faces:
        frame = frame_of(face)
        hits = detector.detect(frame)
        yield frame, max(hits, key=lambda d: d.box[2] * d.box[3]) if hits else None


def crop_detection(frame: np.ndarray, found: Detection, spec: PreprocessSpec) -> np.ndarray:
    """The runtime's crop of one detection, eye-levelled by its keypoints where ``spec`` says so."""
    return crop_faces(frame, [found.box], spec, [found.keypoints] if spec.align else None)[0]


def detector_crops(faces: np.ndarray, spec: PreprocessSpec, detector: str | FaceDetector = "blazeface",
                   progress: Callable[[int], None] | None = None) -> Recropped:
    """Every face of ``faces`` (uint8 N x h x w) as the runtime's detector and crop would give it;
    ``progress`` is told how many faces are done."""
    if isinstance(detector, str):
        with make_detector(detector) as det:
            return detector_crops(faces, spec, det, progress)
    out = np.empty((len(faces), *spec.size), np.uint8)
    found = np.zeros(len(faces), bool)
    for i, (frame, best) in enumerate(largest_detections(faces, detector)):
        if best is not None:
            out[i] = crop_detection(frame, best, spec)
            found[i] = True
        else:
            out[i] = cv2.resize(faces[i], (spec.size[1], spec.size[0]), interpolation=cv2.INTER_AREA)
        if progress is not None:
            progress(i + 1)
    return Recropped(out, found)


DETECTOR_KEY = "-blazeface"  # suffix of the card metric key of a score through the detector


def as_detector_frames(ds: Dataset, spec: PreprocessSpec, detector: str = "blazeface") -> Dataset:
    """``ds`` with every face re-cropped by ``detector`` and ``spec`` (labels, files, targets kept)."""
    meter = Progress(len(ds), f"{ds.name}: {detector} crops", unit="faces")
    try:
        got = detector_crops(ds.x, spec, detector, progress=meter.update)
    finally:
        meter.close()
    print(f"{ds.name}: {int(got.found.sum())} of {len(ds)} faces found by {detector}; "
          "the rest keep their dataset crop")
    return dataclasses.replace(ds, x=got.faces, name=f"{ds.name} ({detector} crops)")


def through_detector(ds: Dataset, key: str, spec: PreprocessSpec) -> tuple[Dataset, str]:
    """``ds`` as the runtime frames it for a model of ``spec``, and the card metric key of a score on it."""
    return as_detector_frames(ds, spec), key + DETECTOR_KEY


def training_crops(ds: Dataset, how: str, spec: PreprocessSpec, detector: str = "blazeface") -> Dataset:
    """``ds`` as ``how`` says (``CROPS``): its own crops, the detector's, or both (twice the images).

    The teacher targets and FER+ votes follow each image, since they are looked up by file.
    """
    if how == "dataset":
        return ds
    if how not in CROPS:
        raise ValueError(f"crops must be one of {', '.join(CROPS)}, not {how!r}")
    recropped = as_detector_frames(ds, spec, detector)
    if how == "detector":
        return recropped
    both = ds.subset(np.concatenate([np.arange(len(ds))] * 2), f"{ds.name} (dataset and {detector} crops)")
    both.x = np.concatenate([ds.x, recropped.x])
    return both
