"""Face detectors: BGR frame in, face boxes (x, y, w, h in frame pixels) with scores out.

Four back-ends behind one interface (and one :class:`DetectorSettings` for all of them):

- ``blazeface`` (default) and ``blazeface-full``: MediaPipe's BlazeFace short- and
  full-range models on ONNX Runtime, decoded in numpy (:mod:`.blazeface`); 6 keypoints
  per face. No extra package; a ``.tflite`` model runs on LiteRT instead.
- ``haar``: OpenCV's frontal-face cascade, shipped with every opencv-python wheel.
  Run naively on a 640x480 frame it costs 50-120 ms; here it runs on a grayscale copy
  downscaled so the long side is at most ``max_side`` pixels (faces smaller than
  ``min_size`` pixels at that scale are not searched for), which keeps it at a few ms.
- ``mediapipe``: the MediaPipe Tasks ``FaceDetector`` with BlazeFace short-range
  (``models/detectors/face_detection_short_range.tflite``, shipped with edgefer; mediapipe
  1.x wheels bundle no model). Needs the ``mediapipe`` extra.

Why the mediapipe import is fenced (see :func:`_import_mediapipe_face_detector`):
every mediapipe Tasks module imports ``mediapipe.tasks.python.core.optional_dependencies``,
which does ``from tensorflow.tools.docs import doc_controls`` only to decorate API docs,
and ``metadata.py`` tries ``import tensorflow`` to open files. When TensorFlow happens
to be installed (a training environment) that adds ~3 s and ~1 GB to a runtime that
promises to be TensorFlow-free. Both places already fall back when TensorFlow is
absent, so while importing mediapipe we make ``tensorflow`` look absent.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import blazeface as bf
from .errors import ModelError
from .preprocess import Box
from .settings import DETECTORS, DetectorSettings

__all__ = ["DETECTORS", "Detection", "DetectorError", "DetectorSettings", "FaceDetector", "make_detector"]

MEDIAPIPE_MODEL = "face_detection_short_range.tflite"
# detector name -> the bundled model file it runs by default
BLAZEFACE_MODELS = {"blazeface": "blazeface_short.onnx", "blazeface-full": "blazeface_full.onnx"}
Keypoints = tuple[tuple[float, float], ...]


# A detector that cannot be created (missing extra, missing model file, bad settings).
DetectorError = ModelError


@dataclass(frozen=True)
class Detection:
    box: Box  # x, y, w, h in pixels of the frame given to detect()
    # blazeface/mediapipe: BlazeFace confidence. haar: n / (n + min_neighbors) where n is the
    # number of raw detections merged into the box (0.5 = just accepted); a vote share,
    # not a calibrated probability.
    score: float
    # (x, y) frame pixels in blazeface.KEYPOINTS order; empty for haar
    keypoints: Keypoints = ()


class FaceDetector:
    """``detect`` = the back-end's ``_detect`` then the settings every detector shares."""

    name = "base"
    settings = DetectorSettings()

    def detect(self, image: np.ndarray) -> list[Detection]:
        found = self._detect(image)
        s = self.settings
        if s.min_face:
            found = [d for d in found if d.box[2] >= s.min_face]
        if s.min_score is not None:
            found = [d for d in found if d.score >= s.min_score]
        if s.max_faces is not None and len(found) > s.max_faces:
            found = sorted(found, key=lambda d: -d.score)[: s.max_faces]
        return found

    def _detect(self, image: np.ndarray) -> list[Detection]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def reset(self) -> None:
        """Forget anything carried over from previous frames (call when the scene changes)."""

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _clip_box(x: float, y: float, w: float, h: float, frame_w: int, frame_h: int) -> Box | None:
    x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
    x1, y1 = min(frame_w, int(round(x + w))), min(frame_h, int(round(y + h)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return x0, y0, x1 - x0, y1 - y0


class HaarDetector(FaceDetector):
    """OpenCV frontal-face cascade on a downscaled grayscale frame."""

    name = "haar"

    def __init__(
        self,
        max_side: int = 320,
        min_size: int = 24,
        scale_factor: float = 1.15,
        min_neighbors: int = 5,
        cascade: str = "haarcascade_frontalface_default.xml",
        full_scan_every: int = 1,
        settings: DetectorSettings | None = None,
    ) -> None:
        if not hasattr(cv2, "CascadeClassifier"):
            raise DetectorError(
                f"this OpenCV ({cv2.__version__}) has no CascadeClassifier (OpenCV 5 dropped it); "
                "install 'opencv-python<5' (and 'opencv-contrib-python<5' if mediapipe pulled it in)"
            )
        path = Path(cv2.data.haarcascades) / cascade  # type: ignore[attr-defined]  # cv2.data has no stub
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise DetectorError(f"cannot load the Haar cascade {path}")
        self.settings = settings or DetectorSettings()
        self.max_side = int(self.settings.det_size or max_side)
        self.min_size = int(min_size)
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        # Video: between full scans, look for each known face only near where it was and
        # at about its size. That is a small image and three or four scales instead of a
        # whole frame and a dozen: the cascade's cost falls roughly tenfold. A full scan
        # still runs every ``full_scan_every`` frames (new faces) and whenever a known face
        # is not found again. 1 (the default, stateless) = always scan the whole frame; the
        # Recognizer turns it on for frame sequences it tracks.
        self.full_scan_every = int(full_scan_every)
        self._known: list[Box] = []
        self._since_full = 0

    def reset(self) -> None:
        self._known, self._since_full = [], 0

    def _detect(self, image: np.ndarray) -> list[Detection]:
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if self._known and self._since_full + 1 < self.full_scan_every:
            found = [d for d in (self._find_near(gray, box) for box in self._known) if d is not None]
            if len(found) == len(self._known):
                self._since_full += 1
                self._known = [d.box for d in found]
                return found
        found = self._full_scan(gray)
        self._known, self._since_full = [d.box for d in found], 0
        return found

    # A known face is searched for at about ROI_FACE pixels. At 48 the cascade's boxes came
    # out ~11% larger than a full scan's and drifted; at 64 they match it (mean IoU 0.96 on
    # the KatieHill clip) at a quarter of the full scan's cost.
    ROI_FACE = 64

    def _find_near(self, gray: np.ndarray, box: Box) -> Detection | None:
        x, y, bw, bh = box
        fh, fw = gray.shape[:2]
        x0, y0 = max(0, x - bw // 2), max(0, y - bh // 2)
        x1, y1 = min(fw, x + bw + bw // 2), min(fh, y + bh + bh // 2)
        s = min(1.0, self.ROI_FACE / max(bw, 1))
        roi = gray[y0:y1, x0:x1]
        if s < 1.0:
            roi = cv2.resize(roi, (max(1, round(roi.shape[1] * s)), max(1, round(roi.shape[0] * s))),
                             interpolation=cv2.INTER_AREA)
        roi = cv2.equalizeHist(roi)
        lo, hi = round(bw * s / 1.35), round(bw * s * 1.35)
        found, found_votes = self.cascade.detectMultiScale2(
            roi, scaleFactor=1.1, minNeighbors=self.min_neighbors, minSize=(lo, lo), maxSize=(hi, hi)
        )
        boxes, votes = np.asarray(found).reshape(-1, 4), np.asarray(found_votes).reshape(-1)
        if len(boxes) == 0:
            return None
        # the candidate closest to where the face was
        cx, cy = (x + bw / 2 - x0) * s, (y + bh / 2 - y0) * s
        i = int(np.argmin((boxes[:, 0] + boxes[:, 2] / 2 - cx) ** 2 + (boxes[:, 1] + boxes[:, 3] / 2 - cy) ** 2))
        bx, by, bbw, bbh = boxes[i]
        clipped = _clip_box(x0 + bx / s, y0 + by / s, bbw / s, bbh / s, fw, fh)
        n = float(votes[i])
        return None if clipped is None else Detection(clipped, n / (n + self.min_neighbors))

    def _full_scan(self, gray: np.ndarray) -> list[Detection]:
        h, w = gray.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        # a very thin image (10000x10) would shrink to zero rows
        if scale < 1.0 and min(h, w) * scale >= self.min_size:
            small = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        else:
            small, scale = gray, 1.0
        # Equalisation makes the cascade far less sensitive to exposure, for ~0.1 ms.
        small = cv2.equalizeHist(small)
        found, found_votes = self.cascade.detectMultiScale2(
            small,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(max(self.min_size, round((self.settings.min_face or 0) * scale)),) * 2,
        )
        out = []
        boxes, votes = np.asarray(found).reshape(-1, 4), np.asarray(found_votes).reshape(-1)
        for (x, y, bw, bh), n in zip(boxes, votes, strict=True):
            box = _clip_box(x / scale, y / scale, bw / scale, bh / scale, w, h)
            if box is not None:
                out.append(Detection(box, float(n) / (float(n) + self.min_neighbors)))
        return out


class _HideTensorFlow(importlib.abc.MetaPathFinder):
    """Makes ``import tensorflow`` raise ModuleNotFoundError while installed."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "tensorflow" or fullname.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {fullname!r} (hidden by edgefer)", name=fullname)
        return None


@contextmanager
def _tensorflow_hidden() -> Iterator[None]:
    if "tensorflow" in sys.modules:  # already paid for by the caller: nothing to save
        yield
        return
    finder = _HideTensorFlow()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def _import_mediapipe_face_detector():
    # MediaPipe's C++ core logs INFO lines (LiteRT, XNNPACK) to stderr; keep warnings and errors.
    os.environ.setdefault("GLOG_minloglevel", "1")
    try:
        with _tensorflow_hidden():
            from mediapipe.tasks.python.vision import face_detector
    except ImportError as exc:
        raise DetectorError(
            f"the mediapipe detector needs the mediapipe extra: pip install 'edgefer[mediapipe]' ({exc})"
        ) from exc
    return face_detector


def bundled_detector_model(name: str) -> Path:
    """A model file in the package's ``models/detectors/``."""
    from edgefer.models import DETECTORS_DIR

    return DETECTORS_DIR / name


class MediaPipeDetector(FaceDetector):
    """MediaPipe Tasks FaceDetector (BlazeFace short-range, best for faces within ~2 m)."""

    name = "mediapipe"

    def __init__(
        self,
        model_path: str | Path | None = None,
        min_confidence: float = 0.5,
        min_suppression: float = 0.3,
        settings: DetectorSettings | None = None,
    ) -> None:
        self.settings = settings or DetectorSettings()
        if self.settings.min_score is not None:
            min_confidence = self.settings.min_score
        fd = _import_mediapipe_face_detector()
        with _tensorflow_hidden():
            from mediapipe.tasks.python.core.base_options import BaseOptions
            from mediapipe.tasks.python.vision.core import image as mp_image

        path = Path(model_path) if model_path else bundled_detector_model(MEDIAPIPE_MODEL)
        if not path.is_file():
            raise DetectorError(f"BlazeFace model not found: {path}")
        self._image = mp_image
        options = fd.FaceDetectorOptions(
            # A buffer, not a path: mediapipe's path resolution differs between versions.
            base_options=BaseOptions(model_asset_buffer=path.read_bytes()),
            min_detection_confidence=float(min_confidence),
            min_suppression_threshold=float(min_suppression),
        )
        try:
            self._detector = fd.FaceDetector.create_from_options(options)
        except Exception as exc:  # mediapipe raises RuntimeError/ValueError from its C layer
            raise DetectorError(f"mediapipe cannot load {path}: {exc}") from exc
        # An unclosed mediapipe task fails noisily at interpreter exit (its executor is already
        # shut down); this finalizer closes it first, or at worst disarms it.
        self._finalizer = weakref.finalize(self, _close_quietly, self._detector)

    def _detect(self, image: np.ndarray) -> list[Detection]:
        rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB if image.ndim == 2 else cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        mp_img = self._image.Image(image_format=self._image.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        result = self._detector.detect(mp_img)
        out = []
        for det in result.detections:
            bb = det.bounding_box
            box = _clip_box(bb.origin_x, bb.origin_y, bb.width, bb.height, w, h)
            if box is not None:
                score = float(det.categories[0].score) if det.categories else 1.0
                kps = tuple((float(k.x) * w, float(k.y) * h) for k in (det.keypoints or ()))
                out.append(Detection(box, score, kps))
        return out

    def close(self) -> None:
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer()  # runs mediapipe's close once; later calls are no-ops


def _close_quietly(detector) -> None:
    try:
        detector.close()
    except RuntimeError:  # "cannot schedule new futures after shutdown": the process is exiting
        detector._handle = None  # stops mediapipe's __del__ from retrying; the OS frees the rest


class BlazeFaceDetector(FaceDetector):
    """MediaPipe's BlazeFace (short or full range) on ONNX Runtime or LiteRT, see :mod:`.blazeface`."""

    # Frames whose long side exceeds AUTO_TILE_ABOVE get tiles of TILE[name] px by default
    # (camera frames up to 1280x720 never do). Measured on the labelled set (benchmarks/
    # face_boxes.json): on 1080p crowd frames (faces 28-130 px) one full-range pass finds 0 of
    # 65 faces, 800-px tiles 48 (640-px tiles: also 48, with more false positives and windows);
    # on photos up to 2280 px, 640-px tiles take short range from 27 to 29 of 32 faces.
    AUTO_TILE_ABOVE = 1280
    TILE = {"blazeface": 640, "blazeface-full": 800}

    def __init__(
        self,
        name: str = "blazeface",
        model_path: str | Path | None = None,
        threads: int = 1,
        settings: DetectorSettings | None = None,
    ) -> None:
        self.name = name
        self.settings = settings or DetectorSettings()
        path = Path(model_path) if model_path else bundled_detector_model(BLAZEFACE_MODELS[name])
        if not path.is_file():
            raise DetectorError(f"BlazeFace model not found: {path}")
        try:
            self._run, self.spec = bf.open_backend(path, threads)
        except ImportError as exc:
            raise DetectorError(f"{path}: .tflite detectors need LiteRT: pip install 'edgefer[litert]'") from exc
        except Exception as exc:  # ONNX Runtime's private exception types, malformed metadata
            raise DetectorError(f"{path}: cannot load it as a BlazeFace detector: {exc}") from exc
        self.path = path
        self.min_score = self.spec.score_threshold if self.settings.min_score is None else self.settings.min_score
        # per input shape (height, width): its anchors, and an input buffer per batch size
        self._anchors: dict[tuple[int, int], np.ndarray] = {}
        self._buffers: dict[tuple[int, int, int], np.ndarray] = {}

    def windows(self, frame_w: int, frame_h: int) -> list[tuple[int, int, int, int]]:
        """The regions one frame is searched in: the whole frame, plus tiles when asked or automatic."""
        whole = [(0, 0, frame_w, frame_h)]
        tile = self.settings.det_size
        if tile is None and max(frame_w, frame_h) > self.AUTO_TILE_ABOVE:
            tile = self.TILE.get(self.name)
        if not tile or max(frame_w, frame_h) <= tile:
            return whole
        return whole + bf.tile_grid(frame_w, frame_h, tile)

    def anchors(self, shape: tuple[int, int]) -> np.ndarray:
        if shape not in self._anchors:
            self._anchors[shape] = bf.ssd_anchors(self.spec, *shape)
        return self._anchors[shape]

    def _run_regions(self, image: np.ndarray, regions: list[tuple[int, int, int, int]]
                     ) -> list[tuple[bf.Window, bf.Decoded]]:
        """Each region letterboxed into its input shape, one batch per shape, decoded in frame pixels."""
        shapes = [bf.input_shape(self.spec, r[2], r[3], self._run.free_size) for r in regions]
        out: dict[int, tuple[bf.Window, bf.Decoded]] = {}
        size = self.spec.input_size
        for shape in dict.fromkeys(shapes):
            members = [i for i, s in enumerate(shapes) if s == shape]
            key = (len(members), *shape)
            if key not in self._buffers:
                self._buffers[key] = np.empty((len(members), *shape, 3), np.float32)
            x = self._buffers[key]
            windows = [bf.letterbox(image, regions[i], size, x[j]) for j, i in enumerate(members)]
            raw_boxes, raw_scores = self._run(x)
            for j, (i, win) in enumerate(zip(members, windows)):
                det = bf.decode(raw_boxes[j], raw_scores[j], self.anchors(shape), self.spec, self.min_score)
                if len(det):
                    boxes = win.to_frame(det.boxes.reshape(-1, 2, 2), size).reshape(-1, 4)
                    det = bf.Decoded(boxes, win.to_frame(det.keypoints, size), det.scores)
                out[i] = (win, det)
        return [out[i] for i in range(len(regions))]

    def _detect(self, image: np.ndarray) -> list[Detection]:
        fh, fw = image.shape[:2]
        regions = self.windows(fw, fh)
        parts = []
        for i, (win, det) in enumerate(self._run_regions(image, regions)):
            if i > 0 and len(det):  # a tile: a face cut by its inner edge is found whole in a neighbour
                det = det.take(~bf.touches_inner_edge(det.boxes, win, fw, fh))
            if len(det):
                parts.append(det)
        if not parts:
            return []
        merged = bf.weighted_nms(bf.Decoded.concat(parts), self.spec.nms_iou)
        out = []
        for (x0, y0, x1, y1), kps, score in zip(merged.boxes, merged.keypoints, merged.scores, strict=True):
            box = _clip_box(x0, y0, x1 - x0, y1 - y0, fw, fh)
            if box is not None:
                out.append(Detection(box, float(score), tuple((float(x), float(y)) for x, y in kps)))
        return out


def make_detector(
    name: str,
    settings: DetectorSettings | None = None,
    *,
    model_path: str | Path | None = None,
    threads: int = 1,
    **options: object,
) -> FaceDetector:
    """Create a detector by name (see ``DETECTORS``); ``options`` go to the back-end's constructor."""
    if name in BLAZEFACE_MODELS:
        return BlazeFaceDetector(name, model_path=model_path, threads=threads, settings=settings)
    if name == "haar":
        return HaarDetector(settings=settings, **options)  # type: ignore[arg-type]
    if name == "mediapipe":
        return MediaPipeDetector(model_path=model_path, settings=settings, **options)  # type: ignore[arg-type]
    raise DetectorError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
