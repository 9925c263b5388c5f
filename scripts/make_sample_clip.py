"""Build models/sample_face.mp4, the clip `edgefer run` plays when there is no camera.

Source: scikit-image's ``astronaut`` test image (Eileen Collins, NASA photo, public
domain). A slow pan and zoom moves the face across a 320x240 frame so that detection,
tracking and smoothing all have work to do. Deterministic: the same input gives the
same frames (the encoded bytes may differ between OpenCV builds).

    python scripts/make_sample_clip.py                       # uses scikit-image if installed
    python scripts/make_sample_clip.py --image astronaut.png # or the PNG from its wheel:
    #   pip download scikit-image --no-deps -d /tmp/ski && unzip -j /tmp/ski/*.whl \
    #       skimage/data/astronaut.png -d /tmp/ski
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import cv2
import numpy as np

OUT = Path(__file__).resolve().parents[1] / "models" / "sample_face.mp4"
SIZE = (320, 240)  # w, h
FPS = 15
SECONDS = 4
FACE_CENTER = (223 / 512, 113 / 512)  # fractions of the original width, height


def load_astronaut(path: str | None) -> np.ndarray:
    if path:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"cannot read {path}")
        return image
    try:
        from skimage import data
    except ImportError as exc:
        raise SystemExit("scikit-image is not installed: pass --image astronaut.png (see above)") from exc
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def crop_window(t: float, shape: tuple[int, int]) -> tuple[float, float, float]:
    """Centre (x, y) and width of the crop at time t in [0, 1]: a slow pan, zooming in then out."""
    h, w = shape
    width = w * (0.78 - 0.22 * math.sin(math.pi * t))  # 0.78 -> 0.56 -> 0.78 of the image width
    height = width * SIZE[1] / SIZE[0]
    # The face is centred near (223, 113) in the 512x512 original: pan left-right across it,
    # keeping the crop inside the picture vertically.
    cx = FACE_CENTER[0] * w + 0.08 * w * math.cos(2 * math.pi * t)
    cy = max(height / 2, FACE_CENTER[1] * h + 0.12 * height) + 0.02 * h * math.sin(2 * math.pi * t)
    return cx, cy, width


def render(image: np.ndarray, t: float) -> np.ndarray:
    h, w = image.shape[:2]
    cx, cy, cw = crop_window(t, (h, w))
    ch = cw * SIZE[1] / SIZE[0]
    # Affine map from the crop rectangle to the output frame (sub-pixel, so the motion is smooth).
    s = SIZE[0] / cw
    m = np.array([[s, 0, -(cx - cw / 2) * s], [0, s, -(cy - ch / 2) * s]], dtype=np.float64)
    return cv2.warpAffine(image, m, SIZE, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", help="path to astronaut.png (default: skimage.data.astronaut())")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    image = load_astronaut(args.image)
    writer = cv2.VideoWriter(args.out, cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    if not writer.isOpened():
        raise SystemExit(f"cannot write {args.out}")
    n = FPS * SECONDS
    for i in range(n):
        writer.write(render(image, i / n))
    writer.release()
    size = Path(args.out).stat().st_size
    print(f"wrote {args.out}: {n} frames, {SIZE[0]}x{SIZE[1]} at {FPS} fps, {size} bytes")


if __name__ == "__main__":
    main()
