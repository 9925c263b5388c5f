"""Annotating frames: face boxes, label, per-class confidence bars, FPS and per-stage ms.

Placement is a separate step (:func:`layout`): every face's label and bar panel is put where it
overlaps no other label or panel, no face box and not the stats band, inside the frame: beside
the box, else below or above it, else smaller, else the panel is left out (the label alone).
Colours are chosen for contrast (WCAG 4.5:1 or better) against what they are drawn on: each
label colour against its black outline, white text against the darkened panel and band.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .pipeline import Face
from .settings import OVERLAYS

# BGR colours for the usual FER labels; unknown labels get a stable colour from their name.
LABEL_COLORS: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 230),
    "disgust": (40, 140, 40),
    "fear": (200, 90, 200),
    "happy": (40, 200, 250),
    "sad": (200, 120, 40),
    "surprise": (230, 200, 40),
    "neutral": (190, 190, 190),
    "contempt": (130, 130, 210),
}
FONT = cv2.FONT_HERSHEY_SIMPLEX
PANEL_DARKEN = 0.3  # what the bar panel keeps of the image under it: white text stays >= 8:1
BAND_DARKEN = 0.45  # the same for the stats band: >= 4.7:1 for white text on a white image
PANEL_SCALES = (1.0, 0.75, 0.55)  # tried in turn when a panel finds no room

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)


def label_color(label: str) -> tuple[int, int, int]:
    if label in LABEL_COLORS:
        return LABEL_COLORS[label]
    h = sum(ord(c) * 31 ** i for i, c in enumerate(label)) & 0xFFFFFF
    return (h & 0xFF) | 64, (h >> 8 & 0xFF) | 64, (h >> 16 & 0xFF) | 64


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float, color=(255, 255, 255),
          outline: bool = True) -> None:
    # A dark outline keeps text readable on any background. It is drawn without
    # anti-aliasing: a 3-px anti-aliased stroke cost 0.52 ms per call (9 calls a face, 5.3 ms
    # per annotated 320x240 frame), the plain one 0.15 ms, and under the anti-aliased glyph
    # the two look the same.
    if outline:
        cv2.putText(img, text, org, FONT, scale, (0, 0, 0), 3, cv2.LINE_8)
    cv2.putText(img, text, org, FONT, scale, color, 1, cv2.LINE_AA)


def overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _fits(r: Rect, w: int, h: int, taken: Sequence[Rect]) -> bool:
    return r[0] >= 0 and r[1] >= 0 and r[2] <= w and r[3] <= h and not any(overlaps(r, t) for t in taken)


@dataclass(frozen=True)
class FaceLayout:
    face: Face
    label: Rect | None  # where the label text goes (None: no room, box only)
    label_scale: float
    panel: Rect | None  # the bar panel (None: not drawn)
    panel_scale: float


def _label_text(face: Face) -> str:
    tid = f"#{face.track_id} " if face.track_id is not None else ""
    return f"{tid}{face.label} {face.confidence:.0%}"


def _panel_size(face: Face, scale: float) -> tuple[int, int]:
    n = len(face.probabilities)
    row = max(10, round(22 * scale))
    text_w = cv2.getTextSize(max((k[:8] for k in face.probabilities), key=len), FONT, scale * 0.8, 1)[0][0] + 6
    return text_w + max(40, round(110 * scale)) + 4, n * row + 2


def _around(box: Rect, size: tuple[int, int], gap: int) -> list[Rect]:
    """Where a ``size`` rectangle can go around ``box``: right, left, below, above."""
    x0, y0, x1, y1 = box
    w, h = size
    return [(x1 + gap, y0, x1 + gap + w, y0 + h), (x0 - gap - w, y0, x0 - gap, y0 + h),
            (x0, y1 + gap, x0 + w, y1 + gap + h), (x0, y0 - gap - h, x0 + w, y0 - gap)]


def _shifted_in(r: Rect, w: int, h: int) -> Rect:
    """The rectangle slid (not resized) to lie inside the frame where it can."""
    dx = -r[0] if r[0] < 0 else min(0, w - r[2])
    dy = -r[1] if r[1] < 0 else min(0, h - r[3])
    return (r[0] + dx, r[1] + dy, r[2] + dx, r[3] + dy)


def layout(faces: Sequence[Face], frame_w: int, frame_h: int, stats: Rect | None = None,
           overlay: str = "full") -> list[FaceLayout]:
    """Labels and panels that overlap nothing placed before them, no face box and not the
    stats band, inside the frame; bigger faces choose first."""
    base = max(0.4, min(frame_w, frame_h) / 900)
    boxes = {id(f): (f.box[0], f.box[1], f.box[0] + f.box[2], f.box[1] + f.box[3]) for f in faces}
    taken: list[Rect] = [stats] if stats else []
    out = []
    for face in sorted(faces, key=lambda f: -f.box[2] * f.box[3]):
        box = boxes[id(face)]
        others = [b for k, b in boxes.items() if k != id(face)]
        label = panel = None
        label_scale, panel_scale = base, base
        if overlay in ("full", "label"):
            for label_scale in (base, base * 0.75):
                (tw, th), _ = cv2.getTextSize(_label_text(face), FONT, label_scale, 1)
                size = (tw + 6, th + 10)
                candidates = [(box[0], box[1] - size[1], box[0] + size[0], box[1]),  # above
                              (box[0], box[1], box[0] + size[0], box[1] + size[1]),  # inside, top
                              (box[0], box[3], box[0] + size[0], box[3] + size[1])]  # below
                label = next((r for c in candidates for r in (c, _shifted_in(c, frame_w, frame_h))
                              if _fits(r, frame_w, frame_h, taken + others)), None)
                if label:
                    taken.append(label)
                    break
        if overlay == "full":
            for panel_scale in (base * k for k in PANEL_SCALES):
                size = _panel_size(face, panel_scale)
                panel = next((r for c in _around(box, size, 6) for r in (c, _shifted_in(c, frame_w, frame_h))
                              if _fits(r, frame_w, frame_h, taken + others + [box])), None)
                if panel:
                    taken.append(panel)
                    break
        out.append(FaceLayout(face, label, label_scale, panel, panel_scale))
    return out


def draw_face(img: np.ndarray, placed: FaceLayout) -> None:
    """Box, label and bars of one face where :func:`layout` put them."""
    face = placed.face
    x, y, w, h = face.box
    color = label_color(face.label)
    thickness = max(1, round(min(img.shape[:2]) / 300))
    cv2.rectangle(img, (x, y), (x + w, y + h), color, thickness)
    if placed.label:
        lx0, _, _, ly1 = placed.label
        _text(img, _label_text(face), (lx0 + 3, ly1 - 6), placed.label_scale, color)
    if placed.panel:
        _draw_bars(img, face, placed.panel, placed.panel_scale)


def _draw_bars(img: np.ndarray, face: Face, rect: Rect, scale: float) -> None:
    """One bar per class in ``rect``, over the image darkened to PANEL_DARKEN."""
    x0, y0, x1, y1 = rect
    roi = img[y0:y1, x0:x1]
    roi[:] = (roi * PANEL_DARKEN).astype(img.dtype)
    row = max(10, round(22 * scale))
    width = max(40, round(110 * scale))
    text_w = (x1 - x0) - width - 4
    for i, (name, p) in enumerate(face.probabilities.items()):
        yy = y0 + i * row
        _text(img, name[:8], (x0 + 2, yy + row - 4), scale * 0.8, outline=False)
        bx = x0 + text_w
        cv2.rectangle(img, (bx, yy + 3), (bx + round(width * float(p)), yy + row - 2), label_color(name), -1)


STAGE_ABBREVIATIONS = {"detect": "det", "preprocess": "pre", "classify": "cls", "track": "trk"}


def draw_stats(img: np.ndarray, fps: float | None, timings_ms: Mapping[str, float], extra: str = "") -> Rect | None:
    """FPS and per-stage ms, top left, wrapped when the frame is narrow; returns the band."""
    scale = max(0.4, min(img.shape[:2]) / 1000)
    parts = [f"{fps:.1f} FPS"] if fps else []
    stages = " ".join(f"{STAGE_ABBREVIATIONS.get(k, k)} {v:.1f}" for k, v in timings_ms.items() if k != "total")
    if stages:
        parts.append(stages + (f" = {timings_ms['total']:.1f} ms" if "total" in timings_ms else " ms"))
    if extra:
        parts.append(extra)
    lines: list[str] = []
    for part in parts:
        candidate = f"{lines[-1]}  {part}" if lines else part
        if lines and cv2.getTextSize(candidate, FONT, scale, 1)[0][0] <= img.shape[1] - 16:
            lines[-1] = candidate
        else:
            lines.append(part)
    if not lines:
        return None
    line_h = cv2.getTextSize("Ag", FONT, scale, 1)[0][1] + 8
    height = min(img.shape[0], line_h * len(lines) + 12)
    w = min(img.shape[1], max(cv2.getTextSize(line, FONT, scale, 1)[0][0] for line in lines) + 16)
    band = img[:height, :w]
    band[:] = (band * BAND_DARKEN).astype(img.dtype)
    for i, line in enumerate(lines):
        _text(img, line, (8, 6 + line_h * (i + 1)), scale)
    return (0, 0, w, height)


def annotate(
    img: np.ndarray,
    faces: Sequence[Face],
    fps: float | None = None,
    timings_ms: Mapping[str, float] | None = None,
    bars: bool = True,
    extra: str = "",
    overlay: str = "full",
    stats: bool = True,
) -> np.ndarray:
    """A copy of ``img`` with every face (``overlay``: full, label or none) and the stats band."""
    if overlay not in OVERLAYS:
        raise ValueError(f"overlay must be one of {', '.join(OVERLAYS)}, not {overlay!r}")
    out = img.copy()
    band = draw_stats(out, fps, timings_ms or {}, extra) if stats and (timings_ms is not None or fps) else None
    if overlay == "none":
        return out
    h, w = out.shape[:2]
    for placed in layout(faces, w, h, band, overlay if bars else "label"):
        draw_face(out, placed)
    return out
