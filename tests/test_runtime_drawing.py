"""Overlay layout: nothing drawn collides or leaves the frame; every colour has contrast."""

from __future__ import annotations

import numpy as np
import pytest

from edgefer.runtime.drawing import (
    BAND_DARKEN,
    LABEL_COLORS,
    PANEL_DARKEN,
    annotate,
    draw_stats,
    layout,
    overlaps,
)
from edgefer.runtime.labels import FER2013_LABELS, FERPLUS_LABELS
from edgefer.runtime.pipeline import Face


def _luminance(bgr: tuple[float, float, float]) -> float:
    def lin(c: float) -> float:
        c /= 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    b, g, r = bgr
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)


def contrast(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _faces(rng: np.random.Generator, w: int, h: int, n: int, labels: tuple[str, ...]) -> list[Face]:
    faces = []
    for i in range(n):
        side = int(rng.integers(max(8, min(w, h) // 30), max(9, min(w, h) // 3)))
        x, y = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
        p = rng.dirichlet(np.ones(len(labels)))
        faces.append(Face(box=(x, y, side, side), label=labels[int(p.argmax())],
                          probabilities=dict(zip(labels, map(float, p))), track_id=i + 1, score=0.9))
    return faces


@pytest.mark.parametrize("seed", range(40))
def test_no_label_or_panel_collides_or_leaves_the_frame(seed: int) -> None:
    rng = np.random.default_rng(seed)
    w, h = [(320, 240), (640, 480), (1280, 720), (1920, 1080), (3840, 2160), (600, 604)][seed % 6]
    labels = FERPLUS_LABELS if seed % 2 else FER2013_LABELS
    faces = _faces(rng, w, h, int(rng.integers(1, 12)), labels)
    band = draw_stats(np.zeros((h, w, 3), np.uint8), 30.0, {"detect": 3.1, "preprocess": 0.2, "classify": 0.5,
                                                            "track": 0.0, "total": 3.8})
    placed = layout(faces, w, h, band)
    drawn = [r for p in placed for r in (p.label, p.panel) if r is not None]
    boxes = [(f.box[0], f.box[1], f.box[0] + f.box[2], f.box[1] + f.box[3]) for f in faces]
    for i, r in enumerate(drawn):
        assert 0 <= r[0] < r[2] <= w and 0 <= r[1] < r[3] <= h, r
        assert band is None or not overlaps(r, band)
        assert not any(overlaps(r, other) for other in drawn[i + 1:])
    for p in placed:  # a panel covers no face, a label no other face
        own = (p.face.box[0], p.face.box[1], p.face.box[0] + p.face.box[2], p.face.box[1] + p.face.box[3])
        if p.panel:
            assert not any(overlaps(p.panel, b) for b in boxes)
        if p.label:
            assert not any(overlaps(p.label, b) for b in boxes if b != own)
    # Where there is room, faces keep their labels: with one face every label is placed.
    assert layout(faces[:1], w, h, band)[0].label is not None


def test_every_label_colour_reads_on_its_outline_and_white_reads_on_the_panels() -> None:
    for name, color in LABEL_COLORS.items():
        assert contrast(color, (0, 0, 0)) >= 4.5, name
    white = (255, 255, 255)
    assert contrast(white, (255 * PANEL_DARKEN,) * 3) >= 4.5  # the panel over a white image
    assert contrast(white, (255 * BAND_DARKEN,) * 3) >= 4.5  # the stats band over a white image


def test_overlay_modes() -> None:
    img = np.full((480, 640, 3), 200, np.uint8)
    faces = _faces(np.random.default_rng(0), 640, 480, 2, FER2013_LABELS)
    full = annotate(img, faces, overlay="full", stats=False)
    label = annotate(img, faces, overlay="label", stats=False)
    none = annotate(img, faces, overlay="none", stats=False)
    assert np.array_equal(none, img)
    assert (full != img).sum() > (label != img).sum() > 0
    with pytest.raises(ValueError):
        annotate(img, faces, overlay="bars")
