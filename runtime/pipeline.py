"""The recognizer: BGR image in, faces with box, label, probabilities and track id out.

Usable without the CLI::

    from edgefer.runtime.pipeline import Recognizer

    with Recognizer() as rec:                         # default model and detector, smoothing on
        result = rec(frame_bgr)                         # FrameResult
        for face in result.faces:
            print(face.box, face.label, face.probabilities, face.track_id)
        print(result.timings_ms)                       # detect / preprocess / classify / track

All faces of a frame go through the classifier in one batch. :class:`FrameLoop` runs a
whole source through a Recognizer, skipping (and counting) the frames that fail::

    loop = FrameLoop(rec, source)
    for frame, result in loop:
        ...
    print(loop.processed, loop.skipped)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .blazeface import KEYPOINTS
from .classifiers import Classifier, load_classifier
from .detectors import Detection, FaceDetector, Keypoints, make_detector
from .errors import EdgeferError
from .preprocess import Box, crop_faces
from .settings import DEFAULT_DETECTOR, DetectorSettings
from .sources import stderr_warning
from .tracking import DEFAULT_HYSTERESIS, DEFAULT_SMOOTH, IoUTracker

if TYPE_CHECKING:
    from .sources import Frame

STAGES = ("detect", "preprocess", "classify", "track")
HAAR_FULL_SCAN_EVERY = 10


@dataclass(frozen=True)
class Face:
    box: Box  # x, y, w, h in frame pixels
    label: str  # argmax of ``probabilities``
    probabilities: dict[str, float]  # smoothed when tracking+smoothing is on
    track_id: int | None
    score: float  # detector confidence
    raw_probabilities: dict[str, float] = field(default_factory=dict, compare=False)
    keypoints: Keypoints = ()  # frame pixels, in blazeface.KEYPOINTS order (empty for haar)

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]

    def to_dict(self) -> dict:
        d = {
            "box": [int(v) for v in self.box],
            "score": round(float(self.score), 4),
            "label": self.label,
            "probabilities": {k: round(float(v), 5) for k, v in self.probabilities.items()},
            "track_id": self.track_id,
        }
        if self.keypoints:
            d["keypoints"] = {name: [round(x, 1), round(y, 1)] for name, (x, y) in zip(KEYPOINTS, self.keypoints)}
        return d


@dataclass(frozen=True)
class FrameResult:
    faces: list[Face]
    timings_ms: dict[str, float]  # per stage plus "total"

    def to_dict(self) -> dict:
        return {
            "faces": [f.to_dict() for f in self.faces],
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
        }


def _resolve_model(model: str | Path | Classifier | None, threads: int, flip_tta: bool) -> Classifier:
    if isinstance(model, Classifier):
        return model
    from edgefer.models import default_model, resolve

    model = default_model() if model is None else resolve(model)
    return load_classifier(model, threads=threads, flip_tta=flip_tta)


class Recognizer:
    """Face detection + emotion classification + tracking, one call per frame.

    ``model``: path to an edgefer ``.onnx``/``.tflite`` model, a loaded Classifier, or
    None for the bundled default; ``threads`` serve both models (classifier and BlazeFace).
    ``detector``: a name from ``settings.DETECTORS``
    (``"blazeface"``, the default; ``"blazeface-full"``, ``"haar"``, ``"mediapipe"``) or a
    FaceDetector; ``detection`` tunes a named detector (window size, minimum face size and
    score, maximum faces). ``smooth``: EMA weight of the past (0 = off); ``hysteresis``: the evidence (summed lead
    beyond a margin, see :mod:`.tracking`) a new label needs before it replaces the shown one
    (0 = the arg-max of the smoothed probabilities). ``track=False``
    gives stateless per-image results (no track ids, no smoothing). ``align``: level the
    eyes of each face crop with the detector's keypoints (None = as the model's metadata asks).
    """

    def __init__(
        self,
        model: str | Path | Classifier | None = None,
        detector: str | FaceDetector = DEFAULT_DETECTOR,
        threads: int = 1,
        smooth: float = DEFAULT_SMOOTH,
        hysteresis: float = DEFAULT_HYSTERESIS,
        track: bool = True,
        flip_tta: bool = False,
        detection: DetectorSettings | None = None,
        align: bool | None = None,
    ) -> None:
        self.classifier = _resolve_model(model, threads, flip_tta)
        if isinstance(detector, str):
            # A tracked sequence lets Haar search known faces locally between full scans.
            options: dict[str, Any] = (
                {"full_scan_every": HAAR_FULL_SCAN_EVERY} if detector == "haar" and track else {}
            )
            detector = make_detector(detector, detection, threads=threads, **options)
        self.detector = detector
        self.align = self.classifier.info.preprocess.align if align is None else bool(align)
        self.tracker = IoUTracker(smooth=smooth, hysteresis=hysteresis) if track else None

    @property
    def labels(self) -> tuple[str, ...]:
        return self.classifier.labels

    def reset(self) -> None:
        """Forget tracks: call between unrelated images or when the source changes."""
        if self.tracker is not None:
            self.tracker.reset()
        self.detector.reset()

    def __call__(self, image: np.ndarray) -> FrameResult:
        return self.process(image)

    def process(self, image: np.ndarray) -> FrameResult:
        if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
            got = "None (cv2.imread gives None for a missing or unreadable file)" if image is None else repr(image)[:60]
            raise ValueError(f"cannot read image: expected a BGR array, got {got}")
        if self.tracker is None:  # stateless use: nothing may carry over from the last image
            self.detector.reset()
        t0 = time.perf_counter()
        detections = self.detector.detect(image)
        t1 = time.perf_counter()
        return self._classify(image, detections, t0, t1)

    def classify_boxes(self, image: np.ndarray, boxes: Sequence[Box]) -> FrameResult:
        """Skip detection: classify faces at known boxes (e.g. from another detector)."""
        t = time.perf_counter()
        return self._classify(image, [Detection(box, 1.0) for box in boxes], t, t)

    def _classify(self, image: np.ndarray, detections: list[Detection], t0: float, t1: float) -> FrameResult:
        spec = self.classifier.info.preprocess
        boxes = [d.box for d in detections]
        keypoints = [d.keypoints for d in detections] if self.align else None
        crops = crop_faces(image, boxes, spec, keypoints)
        t2 = time.perf_counter()
        raw = self.classifier.predict(crops)  # one batch for every face of the frame
        t3 = time.perf_counter()
        if self.tracker is not None:
            ids, probs = self.tracker.update(boxes, raw)
            track_ids: list[int | None] = list(ids)
            shown = [self.tracker.shown(i) for i in ids]
        else:
            probs, track_ids = raw, [None] * len(boxes)
            shown = [int(np.argmax(p)) for p in raw]
        t4 = time.perf_counter()
        labels = self.labels
        faces = []
        for i, box in enumerate(boxes):
            p = probs[i]
            faces.append(
                Face(
                    box=(int(box[0]), int(box[1]), int(box[2]), int(box[3])),
                    label=labels[shown[i]],
                    probabilities={name: float(v) for name, v in zip(labels, p, strict=True)},
                    track_id=track_ids[i],
                    score=float(detections[i].score),
                    raw_probabilities={name: float(v) for name, v in zip(labels, raw[i], strict=True)},
                    keypoints=detections[i].keypoints,
                )
            )
        timings = {
            "detect": (t1 - t0) * 1e3,
            "preprocess": (t2 - t1) * 1e3,
            "classify": (t3 - t2) * 1e3,
            "track": (t4 - t3) * 1e3,
            "total": (t4 - t0) * 1e3,
        }
        return FrameResult(faces, timings)

    def close(self) -> None:
        self.detector.close()

    def __enter__(self) -> Recognizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FrameLoop:
    """Frames of a source through a Recognizer: an iterable of (frame, result).

    A frame whose detection or classification raises (a cv2.error on an odd image, an
    ONNX Runtime failure) is skipped with one warning naming its index, and counted in
    ``skipped``: one bad frame must not end a folder of photos or an hour of video. Only
    ``max_consecutive_failures`` failures in a row end the loop, since that is a broken
    model or detector rather than a bad frame. Still images (``new_scene``) reset tracking.
    """

    def __init__(
        self,
        recognizer: Recognizer,
        frames: Iterable[Frame],
        warn: Callable[[str], None] = stderr_warning,
        max_consecutive_failures: int = 25,
    ) -> None:
        self.recognizer = recognizer
        self.frames = frames
        self.warn = warn
        self.max_consecutive_failures = max_consecutive_failures
        self.processed = 0
        self.skipped = 0

    def __iter__(self) -> Iterator[tuple[Frame, FrameResult]]:
        in_a_row = 0
        for frame in self.frames:
            if frame.new_scene:
                self.recognizer.reset()
            try:
                result = self.recognizer(frame.image)
            except Exception as exc:  # any per-frame failure: the loop goes on
                self.skipped += 1
                in_a_row += 1
                reason = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[-1]}"
                if in_a_row >= self.max_consecutive_failures:
                    raise EdgeferError(f"{in_a_row} frames in a row failed, stopping; last: {reason}",
                                       code=1) from exc
                self.warn(f"skipping frame {frame.index} of {frame.name}: {reason}")
                self.recognizer.reset()  # its tracks may describe the failed frame
                continue
            in_a_row = 0
            self.processed += 1
            yield frame, result
