"""Data augmentation for uint8 face batches (N, h, w), run in the input pipeline.

Augmentation stays out of the model graph, so exported models contain inference ops only.
Every transform draws from the generator it is given; FaceBatches seeds it per (epoch, batch),
which keeps augmented runs reproducible and resumable.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True
    shift: float = 0.1  # max translation, fraction of the side
    rotate: float = 10.0  # max degrees
    scale: float = 0.1  # max relative zoom in or out
    erase: float = 0.5  # probability of random erasing (one rectangle)
    brightness: float = 0.2  # max relative brightness change
    contrast: float = 0.2  # max relative contrast change

    @classmethod
    def off(cls) -> AugmentConfig:
        return cls(flip=False, shift=0.0, rotate=0.0, scale=0.0, erase=0.0, brightness=0.0, contrast=0.0)


class Augmenter:
    def __init__(self, cfg: AugmentConfig | None = None) -> None:
        self.cfg = cfg or AugmentConfig()

    def __call__(self, faces: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.cfg
        n, h, w = faces.shape
        out = faces.astype(np.float32)
        if c.shift or c.rotate or c.scale:
            ang = np.asarray(rng.uniform(-c.rotate, c.rotate, n))
            sc = np.asarray(rng.uniform(1 - c.scale, 1 + c.scale, n))
            tx = rng.uniform(-c.shift, c.shift, n) * w
            ty = rng.uniform(-c.shift, c.shift, n) * h
            for i in range(n):
                m = cv2.getRotationMatrix2D((w / 2, h / 2), float(ang[i]), float(sc[i]))
                m[:, 2] += (tx[i], ty[i])
                out[i] = cv2.warpAffine(out[i], m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        if c.flip:
            flip = rng.random(n) < 0.5
            out[flip] = out[flip, :, ::-1]
        if c.brightness or c.contrast:
            b = rng.uniform(-c.brightness, c.brightness, (n, 1, 1)) * 255
            k = rng.uniform(1 - c.contrast, 1 + c.contrast, (n, 1, 1))
            mean = out.mean(axis=(1, 2), keepdims=True)
            out = (out - mean) * k + mean + b
        if c.erase:
            for j in np.flatnonzero(rng.random(n) < c.erase):
                eh, ew = int(rng.integers(h // 8, h // 3 + 1)), int(rng.integers(w // 8, w // 3 + 1))
                y0, x0 = int(rng.integers(0, h - eh + 1)), int(rng.integers(0, w - ew + 1))
                out[j, y0 : y0 + eh, x0 : x0 + ew] = rng.integers(0, 256)
        return np.clip(out, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Mixing:
    """Mixup and CutMix on a normalised batch: each image meets a partner from the same batch.

    Mixup blends the whole image, ``lam * a + (1 - lam) * b``; CutMix pastes a box of ``b``
    covering ``1 - lam`` of ``a``; ``lam ~ Beta(alpha, alpha)`` per batch, and the targets (and
    sample weights) are mixed with the share of pixels each image kept. With both on, each batch
    draws one of the two at even odds.
    """

    mixup: float = 0.0  # Beta alpha; 0 = off
    cutmix: float = 0.0

    def __bool__(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0

    def __call__(self, x: np.ndarray, t: np.ndarray, rng: np.random.Generator, spatial: tuple[int, int] = (1, 2),
                 weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        if not self or len(x) < 2:
            return x, t, weights
        cut = self.cutmix > 0 and (self.mixup == 0 or rng.random() < 0.5)
        alpha = self.cutmix if cut else self.mixup
        lam = float(rng.beta(alpha, alpha))
        partner = rng.permutation(len(x))
        if cut:
            x, lam = _paste_box(x, partner, lam, rng, spatial)
        else:
            x = (lam * x + (1 - lam) * x[partner]).astype(x.dtype)
        t = (lam * t + (1 - lam) * t[partner]).astype(t.dtype)
        if weights is not None:
            weights = (lam * weights + (1 - lam) * weights[partner]).astype(weights.dtype)
        return x, t, weights


def _paste_box(x: np.ndarray, partner: np.ndarray, lam: float, rng: np.random.Generator,
               spatial: tuple[int, int]) -> tuple[np.ndarray, float]:
    """CutMix's box (sides ``sqrt(1 - lam)`` of the image's, centre anywhere, clipped at the border)
    from each partner; returns the batch and the share of pixels each image kept."""
    h, w = x.shape[spatial[0]], x.shape[spatial[1]]
    side = np.sqrt(1.0 - lam)
    bh, bw = int(round(h * side)), int(round(w * side))
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0, y1 = max(cy - bh // 2, 0), min(cy + (bh - bh // 2), h)
    x0, x1 = max(cx - bw // 2, 0), min(cx + (bw - bw // 2), w)
    box = [slice(None)] * x.ndim
    box[spatial[0]], box[spatial[1]] = slice(y0, y1), slice(x0, x1)
    out = x.copy()
    out[tuple(box)] = x[partner][tuple(box)]
    return out, 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
