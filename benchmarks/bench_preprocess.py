"""Preprocessing: crop + grayscale + resize (crop_faces) and normalize, for 1 and 4 faces."""

from __future__ import annotations

import pytest
from harness import BenchConfig, measure


@pytest.mark.parametrize("faces", [1, 4])
def bench_preprocess(benchmark, bench_config: BenchConfig, one_face, four_faces, faces: int) -> None:
    from edgefer.runtime.preprocess import PreprocessSpec, crop_faces, normalize

    scene = one_face if faces == 1 else four_faces
    spec = PreprocessSpec()

    def prepare():
        return normalize(crop_faces(scene.frame, scene.boxes, spec), spec)

    measure(benchmark, bench_config, "preprocess 640x480", prepare, stage="preprocess", faces=faces,
            resolution="640x480")
