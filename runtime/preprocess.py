"""The preprocessing contract shared by training and serving.

A face goes through: crop (detector box grown by ``margin``, clipped to the frame; with
``align``, turned about its centre so the detector's two eye keypoints are level)
-> grayscale -> resize with INTER_AREA to ``size`` -> ``pixel * scale + offset``.
Training imports these same functions, so the two can never drift apart.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h in pixels

# Bounds a spec must respect; outside them a model's metadata is a typo, not a choice.
MAX_SIZE = 1024
MAX_MARGIN = 1.0


@dataclass(frozen=True)
class PreprocessSpec:
    """What a model expects as input; serialised into the model's metadata."""

    size: tuple[int, int] = (48, 48)  # (h, w)
    channels: int = 1
    layout: str = "NHWC"  # or "NCHW"
    scale: float = 1.0 / 255.0
    offset: float = 0.0
    # Fraction of the detector box added on each side before cropping. FER2013 crops
    # show a little forehead and chin beyond what Haar/BlazeFace boxes cover.
    margin: float = 0.1
    # Level the eyes before cropping when the detector gives keypoints (BlazeFace does;
    # Haar does not, and its crops stay as they are).
    align: bool = False
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.layout not in ("NHWC", "NCHW"):
            raise ValueError(f"layout must be NHWC or NCHW, not {self.layout!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, not {self.channels}")
        if len(self.size) != 2 or min(self.size) <= 0 or max(self.size) > MAX_SIZE:
            raise ValueError(f"size must be [h, w] with values in 1..{MAX_SIZE}, not {list(self.size)}")
        # A NaN or infinite scale turns every face into NaN probabilities that still "work".
        if not (math.isfinite(self.scale) and self.scale != 0.0):
            raise ValueError(f"scale must be a finite, non-zero number, not {self.scale}")
        if not math.isfinite(self.offset):
            raise ValueError(f"offset must be a finite number, not {self.offset}")
        # Negative margins shrink boxes to nothing on small faces; beyond 1 a crop is mostly background.
        if not 0.0 <= self.margin <= MAX_MARGIN:
            raise ValueError(f"margin must be in [0, {MAX_MARGIN:g}] (a fraction of the box added on each "
                             f"side), not {self.margin}")

    def to_dict(self) -> dict:
        """The JSON object a card or run.json records (``to_json`` is its text)."""
        d = asdict(self)
        d["size"] = list(self.size)
        if not d["extra"]:
            d.pop("extra")
        if not d["align"]:  # files written before alignment existed stay byte-identical
            d.pop("align")
        return dict(sorted(d.items()))  # the order to_json always wrote, so rewritten cards stay byte-identical

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PreprocessSpec:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, d: object) -> PreprocessSpec:
        """A spec from its recorded JSON object, checked as strictly as ``from_json``."""
        if not isinstance(d, dict):
            raise ValueError("preprocess metadata must be a JSON object")
        missing = {"size", "scale", "offset"} - d.keys()
        if missing:
            raise ValueError(f"preprocess metadata lacks {sorted(missing)}")
        known = {"size", "channels", "layout", "scale", "offset", "margin", "align"}
        size = d["size"]
        if not isinstance(size, list) or len(size) != 2 or not all(isinstance(v, int) for v in size):
            raise ValueError(f"size must be a JSON list [h, w] of two integers, not {size!r}")
        return cls(
            size=(int(size[0]), int(size[1])),
            channels=int(d.get("channels", 1)),
            layout=str(d.get("layout", "NHWC")),
            scale=float(d["scale"]),
            offset=float(d["offset"]),
            margin=float(d.get("margin", 0.1)),
            align=bool(d.get("align", False)),
            extra={k: v for k, v in d.items() if k not in known},
        )


def to_gray(image: np.ndarray) -> np.ndarray:
    """BGR, BGRA or gray uint8 image -> 2-D gray uint8."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"unsupported image shape {image.shape}")


def resize_face(gray: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a gray face to (h, w); INTER_AREA is the anti-aliased choice for shrinking."""
    h, w = size
    if gray.shape[:2] == (h, w):
        return gray
    interp = cv2.INTER_AREA if gray.shape[0] >= h and gray.shape[1] >= w else cv2.INTER_LINEAR
    return cv2.resize(gray, (w, h), interpolation=interp)


def expand_box(box: Box, margin: float, frame_shape: Sequence[int]) -> Box:
    """Grow a box by ``margin`` of its size on each side and clip it to the frame."""
    x, y, w, h = box
    fh, fw = frame_shape[0], frame_shape[1]
    dx, dy = round(w * margin), round(h * margin)
    x0, y0 = max(0, x - dx), max(0, y - dy)
    x1, y1 = min(fw, x + w + dx), min(fh, y + h + dy)
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


def eye_angle(keypoints: Sequence[tuple[float, float]]) -> float:
    """Degrees the eye line is turned clockwise in the image (keypoints: right eye, left eye, ...).

    The person's right eye is on the image's left, so a level face gives 0.
    """
    (rx, ry), (lx, ly) = keypoints[0], keypoints[1]
    return math.degrees(math.atan2(ly - ry, lx - rx))


# Below this tilt a rotation changes the 48x48 crop by less than interpolation noise.
MIN_ALIGN_DEGREES = 2.0


def crop_face(image: np.ndarray, box: Box, spec: PreprocessSpec,
              keypoints: Sequence[tuple[float, float]] | None = None) -> np.ndarray:
    """One gray face crop (the expanded box), eye-levelled when keypoints are given.

    Only the pixels the crop reads are converted to gray (a 640x480 frame's conversion is a
    third of the preprocessing time of one face); the result is the same as converting the
    whole frame first, as the conversion is per pixel.
    """
    x, y, w, h = expand_box(box, spec.margin, image.shape)
    if w == 0 or h == 0:
        raise ValueError(f"box {box} lies outside the {image.shape[1]}x{image.shape[0]} frame")
    angle = eye_angle(keypoints) if keypoints and len(keypoints) >= 2 else 0.0
    if abs(angle) < MIN_ALIGN_DEGREES:
        return resize_face(to_gray(image[y : y + h, x : x + w]), spec.size)
    # rotate about the box centre (counter-clockwise by the tilt) and cut the box out in one warp
    m = np.asarray(cv2.getRotationMatrix2D((x + w / 2, y + h / 2), angle, 1.0), np.float64)
    m[:, 2] -= (x, y)
    # the frame pixels the warp samples: the rotated box's bounds, plus one pixel for bilinear
    # interpolation, clipped to the frame (so border replication still starts at the frame's edge)
    inverse = cv2.invertAffineTransform(m)
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64) @ inverse.T
    fh, fw = image.shape[:2]
    sx0, sy0 = max(0, int(np.floor(corners[:, 0].min())) - 1), max(0, int(np.floor(corners[:, 1].min())) - 1)
    sx1, sy1 = min(fw, int(np.ceil(corners[:, 0].max())) + 2), min(fh, int(np.ceil(corners[:, 1].max())) + 2)
    m[:, 2] += m[:, :2] @ np.array((sx0, sy0), np.float64)
    source = to_gray(image[sy0:sy1, sx0:sx1])
    upright = cv2.warpAffine(source, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return resize_face(upright, spec.size)


def crop_faces(image: np.ndarray, boxes: Sequence[Box], spec: PreprocessSpec,
               keypoints: Sequence[Sequence[tuple[float, float]]] | None = None) -> np.ndarray:
    """Crop, grayscale and resize every box: uint8 array (N, h, w).

    ``keypoints`` (one sequence per box, right eye first) turn each crop upright; None or an
    empty sequence for a box leaves it as it is.
    """
    out = np.empty((len(boxes), *spec.size), dtype=np.uint8)
    for i, box in enumerate(boxes):
        out[i] = crop_face(image, box, spec, keypoints[i] if keypoints else None)
    return out


def normalize(faces: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 faces (N, h, w) -> float32 model input in the spec's layout and channels."""
    if faces.ndim != 3:
        raise ValueError(f"expected faces of shape (N, h, w), got {faces.shape}")
    x = faces.astype(np.float32) * np.float32(spec.scale) + np.float32(spec.offset)
    x = x[..., None]
    if spec.channels == 3:
        x = np.repeat(x, 3, axis=-1)
    if spec.layout == "NCHW":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x


def prepare(image: np.ndarray, boxes: Sequence[Box], spec: PreprocessSpec,
            keypoints: Sequence[Sequence[tuple[float, float]]] | None = None) -> np.ndarray:
    """The full serving contract: frame + boxes (+ keypoints when the spec aligns) -> model input batch."""
    return normalize(crop_faces(image, boxes, spec, keypoints if spec.align else None), spec)
