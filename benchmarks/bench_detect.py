"""Face detection on a real talking-head frame, letterboxed to 640x480, 1280x720 and 1920x1080."""

from __future__ import annotations

import numpy as np
import pytest
from harness import BenchConfig, measure
from inputs import RESOLUTIONS, MissingData, clip_frame

from edgefer.runtime.settings import DETECTORS


@pytest.fixture(scope="module")
def frames() -> dict[str, np.ndarray]:
    try:
        return {name: clip_frame(name) for name in RESOLUTIONS}
    except MissingData as exc:
        pytest.skip(str(exc))


def open_detector(name: str, threads: int):
    from edgefer.runtime.detectors import DetectorError, make_detector

    try:
        return make_detector(name, threads=threads)
    except DetectorError as exc:  # mediapipe is an optional extra
        pytest.skip(f"{name} detector unavailable: {exc}")


@pytest.mark.parametrize("resolution", list(RESOLUTIONS))
@pytest.mark.parametrize("detector_name", DETECTORS)
def bench_detect(benchmark, bench_config: BenchConfig, frames, detector_name: str, resolution: str) -> None:
    frame = frames[resolution]
    with open_detector(detector_name, bench_config.threads) as detector:
        found = len(detector.detect(frame))  # also a warm-up of lazy initialisation
        # MediaPipe sizes its own XNNPACK thread pool; only OpenCV/ONNX/LiteRT/TF obey --bench-threads.
        # blazeface-full tiles the 1920x1080 frame (frames wider than 1280 px): that row is 9 windows.
        measure(benchmark, bench_config, f"detect {resolution}", lambda: detector.detect(frame),
                stage="detect", detector=detector_name, resolution=resolution, faces_found=found)
