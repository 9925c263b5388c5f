"""A tiny CK+48-layout folder for the tests of CK+ splits (eval, inspect, export)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edgefer.train.data import CKPLUS_LABELS


def write_ckplus_tree(root: Path, subjects: int = 8, per_class: int = 6) -> Path:
    """root/<class>/S<subject>_<sequence>_<frame>.png; each class a brightness of its own."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(CKPLUS_LABELS):
        (root / name).mkdir(parents=True)
        for j in range(per_class):
            img = np.clip(rng.normal(30 + 30 * c, 10, (48, 48)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / name / f"S{10 + j % subjects:03d}_{c + 1:03d}_{j:08d}.png"), img)
    return root
