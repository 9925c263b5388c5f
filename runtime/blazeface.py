"""MediaPipe's BlazeFace face detector without the mediapipe package.

The same two models MediaPipe's ``FaceDetection`` graphs run (short range, 128x128, faces
within ~2 m; full range, 192x192, faces within ~5 m), run here by ONNX Runtime (or LiteRT
for a ``.tflite``) with MediaPipe's pre- and post-processing written in numpy, following
``mediapipe/modules/face_detection/face_detection*.pbtxt``:

- ``ImageToTensorCalculator``: RGB, aspect ratio kept (letterbox, zero border), pixels
  mapped to [-1, 1];
- ``SsdAnchorsCalculator``: anchor centres on each stride's grid; ``fixed_anchor_size``, so
  every anchor is 1x1 in normalised units and only their count per cell matters;
- ``TensorsToDetectionsCalculator``: ``reverse_output_order`` (x before y), raw scores
  clipped to +-100 then a sigmoid, boxes and 6 keypoints offset from the anchor centre;
- ``NonMaxSuppressionCalculator``: WEIGHTED, IoU > 0.3: each kept face is the
  score-weighted mean of the boxes and keypoints it suppresses.

Each model file carries these settings (:class:`BlazeFaceSpec`) in its metadata, so a
model is usable without reading this code.

Input size: MediaPipe letterboxes every frame into the square input, so a 640x480 frame
spends a quarter of each pass on the black border. The network is fully convolutional, so
the bundled ONNX files take any height and width that are multiples of its total stride
(:attr:`BlazeFaceSpec.size_multiple`), and a frame is letterboxed into the smallest such
input that holds it: 128x96 for 4:3, 128x80 for 16:9 (1.40 -> 1.20 and 0.98 ms per pass,
1 thread). The anchors are laid on that input's grid, so the decoding is unchanged.

Large frames: a 1080p frame letterboxed to 192 px shrinks faces tenfold, and faces under
~60 px vanish. :func:`tile_grid` covers the frame with overlapping square windows that are
run as one batch beside the whole frame; a detection touching a window's inner edge is
dropped (its face lies whole inside a neighbouring window, as windows overlap by more than
a face that size), and the rest are merged by the same weighted suppression.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from .classifiers import cpu_session

DETECTOR_KEY = "edgefer.detector"
# MediaPipe's keypoint order; "right" is the person's right (the left side of the image).
KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion", "left_ear_tragion")


@dataclass(frozen=True)
class BlazeFaceSpec:
    """A BlazeFace model's input and decoding settings, as MediaPipe's graph sets them."""

    input_size: int  # square input, pixels
    strides: tuple[int, ...]  # one per output layer
    interpolated_scale_aspect_ratio: float  # > 0 adds one anchor per cell and layer
    score_threshold: float  # MediaPipe's min_score_thresh for this model
    score_clip: float = 100.0
    nms_iou: float = 0.3
    num_keypoints: int = 6
    range: str = ""  # what the model is for, in words
    # The network's total stride: a file with a free input size takes any height and width that
    # are multiples of it, up to input_size (0: the square input only).
    size_multiple: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["strides"] = list(self.strides)
        d["kind"] = "blazeface"
        d["keypoints"] = list(KEYPOINTS[: self.num_keypoints])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> BlazeFaceSpec:
        if d.get("kind") != "blazeface":
            raise ValueError(f"not a BlazeFace detector spec (kind {d.get('kind')!r})")
        spec = cls(
            input_size=int(d["input_size"]),
            strides=tuple(int(s) for s in d["strides"]),
            interpolated_scale_aspect_ratio=float(d["interpolated_scale_aspect_ratio"]),
            score_threshold=float(d["score_threshold"]),
            score_clip=float(d.get("score_clip", 100.0)),
            nms_iou=float(d.get("nms_iou", 0.3)),
            num_keypoints=int(d.get("num_keypoints", 6)),
            range=str(d.get("range", "")),
            size_multiple=int(d.get("size_multiple", 0)),
        )
        if spec.input_size <= 0 or not spec.strides or min(spec.strides) <= 0 or spec.size_multiple < 0:
            raise ValueError(f"bad BlazeFace spec {d}")
        return spec


# face_detection_short_range.pbtxt and face_detection_full_range.pbtxt
# (short range: four stride-2 stages down to 8x8; full range: five down to 6x6, then upsampled)
SHORT_RANGE = BlazeFaceSpec(128, (8, 16, 16, 16), 1.0, 0.5, range="short range: faces within about 2 m",
                            size_multiple=16)
FULL_RANGE = BlazeFaceSpec(192, (4,), 0.0, 0.6, range="full range: faces within about 5 m", size_multiple=32)


def ssd_anchors(spec: BlazeFaceSpec, height: int | None = None, width: int | None = None) -> np.ndarray:
    """Anchor centres (N, 2) as x, y, in the model's output order, for an input of ``height`` x
    ``width`` (default: the square input).

    Units are the square input's: (0, 0) to (1, 1) is ``input_size`` pixels on each side, so a
    smaller input's anchors cover part of that square and decoding needs no other change.
    """
    height, width = height or spec.input_size, width or spec.input_size
    centres = []
    layer = 0
    n = len(spec.strides)
    while layer < n:
        # consecutive layers with one stride share a grid: their anchors interleave per cell
        same = layer
        per_cell = 0
        while same < n and spec.strides[same] == spec.strides[layer]:
            per_cell += 1 + (spec.interpolated_scale_aspect_ratio > 0)  # aspect ratio 1.0 (+ interpolated)
            same += 1
        stride = spec.strides[layer]
        ys, xs = np.meshgrid(np.arange(-(-height // stride)), np.arange(-(-width // stride)), indexing="ij")
        grid = np.stack([(xs + 0.5) * stride, (ys + 0.5) * stride], axis=-1).reshape(-1, 1, 2) / spec.input_size
        centres.append(np.repeat(grid, per_cell, axis=1).reshape(-1, 2))
        layer = same
    return np.concatenate(centres).astype(np.float32)


def input_shape(spec: BlazeFaceSpec, w: int, h: int, free: bool) -> tuple[int, int]:
    """(height, width) of the model input a ``w`` x ``h`` region is letterboxed into.

    ``free``: the model file takes other sizes than its square one (see ``size_multiple``).
    """
    size, m = spec.input_size, spec.size_multiple
    if not free or m <= 0:
        return size, size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    return min(size, -(-nh // m) * m), min(size, -(-nw // m) * m)


@dataclass(frozen=True)
class Decoded:
    """Detections in one coordinate frame: boxes (N, 4) x0 y0 x1 y1, keypoints (N, K, 2), scores (N,)."""

    boxes: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @staticmethod
    def empty(num_keypoints: int = 6) -> Decoded:
        return Decoded(np.zeros((0, 4), np.float32), np.zeros((0, num_keypoints, 2), np.float32),
                       np.zeros(0, np.float32))

    def take(self, index: np.ndarray) -> Decoded:
        return Decoded(self.boxes[index], self.keypoints[index], self.scores[index])

    @staticmethod
    def concat(parts: Sequence[Decoded]) -> Decoded:
        return Decoded(np.concatenate([p.boxes for p in parts]), np.concatenate([p.keypoints for p in parts]),
                       np.concatenate([p.scores for p in parts]))


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, spec: BlazeFaceSpec,
           min_score: float) -> Decoded:
    """One image's raw outputs (N, 4 + 2K) and (N,) or (N, 1) -> detections in [0, 1] input coordinates."""
    raw_boxes = np.asarray(raw_boxes, np.float32).reshape(len(anchors), -1)
    logits = np.asarray(raw_scores, np.float32).reshape(-1)
    # sigmoid(logit) >= min_score  <=>  logit >= logit(min_score): only the kept ones need a sigmoid
    # (and the clip, which moves no logit across a cut inside +-score_clip)
    cut = -np.inf if min_score <= 0 else np.inf if min_score >= 1 else np.log(min_score / (1 - min_score))
    keep = np.flatnonzero(logits >= cut)
    if keep.size == 0:
        return Decoded.empty(spec.num_keypoints)
    clipped = np.clip(logits[keep], -spec.score_clip, spec.score_clip)
    scores = 0.5 * (1.0 + np.tanh(0.5 * clipped))  # the sigmoid, without exp overflow at -100
    r, a, size = raw_boxes[keep], anchors[keep], float(spec.input_size)
    cx = r[:, 0] / size + a[:, 0]  # anchors are 1x1, so w/h need no anchor factor
    cy = r[:, 1] / size + a[:, 1]
    w, h = r[:, 2] / size, r[:, 3] / size
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    k = spec.num_keypoints
    kp = r[:, 4 : 4 + 2 * k].reshape(-1, k, 2) / size + a[:, None, :]
    return Decoded(boxes, kp, scores.astype(np.float32))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N, 4) with every box in b (M, 4), corners x0 y0 x1 y1."""
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(det: Decoded, iou_threshold: float, max_faces: int | None = None) -> Decoded:
    """MediaPipe's WEIGHTED non-max suppression.

    Take the best remaining detection; every remaining detection overlapping it by IoU >
    ``iou_threshold`` (itself included) is removed and averaged into it, weighted by score.
    The merged detection keeps the best score.
    """
    if len(det) == 0:
        return det
    order = np.argsort(-det.scores, kind="stable")
    remaining = order
    overlaps = iou_matrix(det.boxes, det.boxes)
    boxes: list[np.ndarray] = []
    kps: list[np.ndarray] = []
    scores: list[float] = []
    while remaining.size and (max_faces is None or len(scores) < max_faces):
        best = remaining[0]
        similar = overlaps[best, remaining] > iou_threshold
        similar[0] = True
        group = remaining[similar]
        w = det.scores[group]
        boxes.append((det.boxes[group] * w[:, None]).sum(0) / w.sum())
        kps.append((det.keypoints[group] * w[:, None, None]).sum(0) / w.sum())
        scores.append(float(det.scores[best]))
        remaining = remaining[~similar]
    return Decoded(np.array(boxes, np.float32), np.array(kps, np.float32), np.array(scores, np.float32))


@dataclass(frozen=True)
class Window:
    """A region of the frame (x, y, w, h) and how it was letterboxed into the model input."""

    x: int
    y: int
    w: int
    h: int
    scale: float  # input pixels per frame pixel
    pad_x: float
    pad_y: float

    def to_frame(self, points: np.ndarray, size: int) -> np.ndarray:
        """Points (..., 2) in [0, 1] input coordinates -> frame pixels."""
        p = np.asarray(points, np.float32) * size
        p[..., 0] = (p[..., 0] - self.pad_x) / self.scale + self.x
        p[..., 1] = (p[..., 1] - self.pad_y) / self.scale + self.y
        return p


def letterbox(image: np.ndarray, region: tuple[int, int, int, int], size: int, out: np.ndarray,
              interpolation: int = cv2.INTER_LINEAR) -> Window:
    """Fit ``region`` of a BGR frame into ``out`` (H, W, 3 float32, RGB in [-1, 1]), centred.

    The region's long side becomes ``size`` pixels (``out`` is ``size`` square, or the smaller
    shape :func:`input_shape` gives). The border stays at -1 (black), as MediaPipe's BORDER_ZERO
    letterbox leaves it. Bilinear shrinking is what MediaPipe's ImageToTensorCalculator does; it reads a few rows of the
    frame where INTER_AREA reads all of them (0.05 vs 0.56 ms for 640x480 -> 128x96 here).
    """
    x, y, w, h = region
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    px, py = (out.shape[1] - nw) // 2, (out.shape[0] - nh) // 2
    small = cv2.resize(image[y : y + h, x : x + w], (nw, nh), interpolation=interpolation)
    small = cv2.cvtColor(small, cv2.COLOR_GRAY2RGB if small.ndim == 2 else cv2.COLOR_BGR2RGB)
    out.fill(-1.0)
    out[py : py + nh, px : px + nw] = small.astype(np.float32) * np.float32(1 / 127.5) - np.float32(1.0)
    return Window(x, y, w, h, nw / w, float(px), float(py))


def tile_grid(frame_w: int, frame_h: int, tile: int, overlap: float = 0.25) -> list[tuple[int, int, int, int]]:
    """Square windows of ``tile`` px covering the frame, neighbours overlapping by ``overlap``."""
    def starts(length: int) -> list[int]:
        if length <= tile:
            return [0]
        step = tile * (1 - overlap)
        n = int(np.ceil((length - tile) / step)) + 1
        return [round(i * (length - tile) / (n - 1)) for i in range(n)]

    return [(x, y, min(tile, frame_w), min(tile, frame_h)) for y in starts(frame_h) for x in starts(frame_w)]


def touches_inner_edge(boxes: np.ndarray, window: Window, frame_w: int, frame_h: int, tol: float = 2.0) -> np.ndarray:
    """Boxes (frame pixels) that reach a window edge that is not also the frame's edge."""
    left = (boxes[:, 0] <= window.x + tol) & (window.x > 0)
    top = (boxes[:, 1] <= window.y + tol) & (window.y > 0)
    right = (boxes[:, 2] >= window.x + window.w - tol) & (window.x + window.w < frame_w)
    bottom = (boxes[:, 3] >= window.y + window.h - tol) & (window.y + window.h < frame_h)
    return left | top | right | bottom


class _OnnxBackend:
    def __init__(self, path: Path, threads: int) -> None:
        self.session = cpu_session(path, threads)
        self.input_name = self.session.get_inputs()[0].name
        names = [o.name for o in self.session.get_outputs()]
        # regressors (…, 16) and classificators (…, 1), whatever the converter named them
        shapes = [o.shape for o in self.session.get_outputs()]
        self.box_out = next(n for n, s in zip(names, shapes) if s[-1] != 1)
        self.score_out = next(n for n, s in zip(names, shapes) if s[-1] == 1)
        self.props = self.session.get_modelmeta().custom_metadata_map
        dims = self.session.get_inputs()[0].shape
        self.batched = not isinstance(dims[0], int)
        self.free_size = not isinstance(dims[1], int) and not isinstance(dims[2], int)

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self.batched and len(x) > 1:
            parts = [self(x[i : i + 1]) for i in range(len(x))]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        boxes, scores = self.session.run([self.box_out, self.score_out], {self.input_name: x})
        return boxes.reshape(len(x), -1, boxes.shape[-1]), scores.reshape(len(x), -1)


class _LiteRTBackend:
    def __init__(self, path: Path, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=max(1, int(threads)))
        self.interpreter.allocate_tensors()
        self.inp = self.interpreter.get_input_details()[0]
        outs = self.interpreter.get_output_details()
        self.box_out = next(o["index"] for o in outs if o["shape"][-1] != 1)
        self.score_out = next(o["index"] for o in outs if o["shape"][-1] == 1)
        self.props: dict[str, str] = {}
        self.free_size = False  # the .tflite files' reshapes fix the input size

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes, scores = [], []
        for i in range(len(x)):  # the files have a fixed batch of 1
            self.interpreter.set_tensor(self.inp["index"], x[i : i + 1])
            self.interpreter.invoke()
            boxes.append(self.interpreter.get_tensor(self.box_out)[0])
            scores.append(self.interpreter.get_tensor(self.score_out).reshape(-1))
        return np.stack(boxes), np.stack(scores)


def read_spec(path: Path, props: dict[str, str]) -> BlazeFaceSpec:
    """The spec from ONNX metadata, or from the JSON card beside the file (``.tflite``)."""
    if DETECTOR_KEY in props:
        return BlazeFaceSpec.from_dict(json.loads(props[DETECTOR_KEY]))
    card = path.with_suffix(".json")
    if not card.is_file():
        raise ValueError(f"no detector metadata in the file and no card {card.name} beside it")
    return BlazeFaceSpec.from_dict(json.loads(card.read_text())["detector"])


def check_integrity(path: Path) -> None:
    """Refuse a detector file whose sha256 is not the one its card records.

    The card beside the shipped detectors (written by ``python -m edgefer.export.detectors``)
    lists the whole-file sha256 of the .onnx and the .tflite; a file without a card, or a card
    without its hash, is someone's own detector and loads as it is.
    """
    import hashlib

    from .errors import ModelError

    card = path.with_suffix(".json")
    try:
        recorded = json.loads(card.read_text()).get("sha256", {}) if card.is_file() else {}
    except (OSError, ValueError):
        return  # read_spec reports an unreadable card when it needs one
    expected = recorded.get(path.suffix.lower().lstrip(".")) if isinstance(recorded, dict) else None
    if expected and hashlib.sha256(path.read_bytes()).hexdigest() != expected:
        raise ModelError(f"integrity check failed: its sha256 is not the {str(expected)[:12]}... "
                         f"that {card.name} records (a damaged or edited file)")


def open_backend(path: Path, threads: int) -> tuple[_OnnxBackend | _LiteRTBackend, BlazeFaceSpec]:
    check_integrity(path)
    backend = _LiteRTBackend(path, threads) if path.suffix.lower() == ".tflite" else _OnnxBackend(path, threads)
    return backend, read_spec(path, backend.props)
