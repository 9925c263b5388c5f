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
