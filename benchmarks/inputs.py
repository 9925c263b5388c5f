"""Fixed, real inputs for every benchmark: one talking-head frame and one group photo.

Both are read from ``../shared/data`` (never copied into the project) and letterboxed to
the camera resolutions a user would feed the runtime, so every round times the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgefer.runtime.preprocess import Box

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CLIP = SHARED_DATA / "videos" / "sadtalker_WDA_KatieHill_000.mp4"
# Two seconds in: the head is frontal and mid-sentence, both detectors find exactly one face.
CLIP_FRAME_INDEX = 50
GROUP_PHOTO = SHARED_DATA / "faces" / "deepface_selfie-many-people.jpg"
RESOLUTIONS: dict[str, tuple[int, int]] = {"640x480": (640, 480), "1280x720": (1280, 720), "1920x1080": (1920, 1080)}
MULTI_FACES = 4


class MissingData(RuntimeError):
    """The shared data folder or one of its files is absent: benchmarks skip with this reason."""


def require(path: Path) -> Path:
    if not path.is_file():
        raise MissingData(f"needs {path} (the read-only shared data next to the project)")
    return path


def letterbox(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to fit (aspect kept) and pad with black, like a 4:3 / 16:9 camera frame around the clip."""
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    nw, nh = round(w * scale), round(h * scale)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interp)
    out = np.zeros((height, width, 3), dtype=np.uint8)
    y0, x0 = (height - nh) // 2, (width - nw) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = resized
    return out


def clip_frame(resolution: str = "640x480") -> np.ndarray:
    cap = cv2.VideoCapture(str(require(CLIP)))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, CLIP_FRAME_INDEX)
        ok, frame = cap.read()
    finally:
        cap.release()
    if not ok:
        raise MissingData(f"cannot decode frame {CLIP_FRAME_INDEX} of {CLIP}")
    return letterbox(frame, *RESOLUTIONS[resolution])


def group_photo(resolution: str = "640x480") -> np.ndarray:
    image = cv2.imread(str(require(GROUP_PHOTO)))
    if image is None:
        raise MissingData(f"cannot decode {GROUP_PHOTO}")
    return letterbox(image, *RESOLUTIONS[resolution])


@dataclass(frozen=True)
class FaceScene:
    """A frame with face boxes found once, before timing, by the Haar detector."""

    frame: np.ndarray
    boxes: list[Box]


def find_faces(frame: np.ndarray, count: int) -> list[Box]:
    from edgefer.runtime.detectors import make_detector

    with make_detector("haar") as detector:
        boxes = [d.box for d in detector.detect(frame)]
    # Largest first: the same, deterministic pick of faces on every machine.
    boxes.sort(key=lambda b: (-b[2] * b[3], b[0], b[1]))
    if len(boxes) < count:
        raise MissingData(f"expected {count} faces in the benchmark frame, the Haar detector found {len(boxes)}")
    return boxes[:count]


def one_face_scene() -> FaceScene:
    frame = clip_frame("640x480")
    return FaceScene(frame, find_faces(frame, 1))


def four_face_scene() -> FaceScene:
    frame = group_photo("640x480")
    return FaceScene(frame, find_faces(frame, MULTI_FACES))
