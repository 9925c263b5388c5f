"""Face detection on a real talking-head frame, letterboxed to 640x480 and 1280x720."""

from __future__ import annotations

import numpy as np
import pytest
from harness import BenchConfig, measure
from inputs import RESOLUTIONS, MissingData, clip_frame

DETECTORS = ("haar", "mediapipe")


@pytest.fixture(scope="module")
def frames() -> dict[str, np.ndarray]:
    try:
        return {name: clip_frame(name) for name in RESOLUTIONS}
    except MissingData as exc:
        pytest.skip(str(exc))


def open_detector(name: str):  # noqa: ANN201 - a FaceDetector
    from edgefer.runtime.detectors import DetectorError, make_detector

    try:
        return make_detector(name)
    except DetectorError as exc:  # mediapipe is an optional extra
        pytest.skip(f"{name} detector unavailable: {exc}")


@pytest.mark.parametrize("resolution", list(RESOLUTIONS))
@pytest.mark.parametrize("detector_name", DETECTORS)
def bench_detect(benchmark, bench_config: BenchConfig, frames, detector_name: str, resolution: str) -> None:
    frame = frames[resolution]
    with open_detector(detector_name) as detector:
        found = len(detector.detect(frame))  # also a warm-up of lazy initialisation
        # MediaPipe sizes its own XNNPACK thread pool; only OpenCV/ONNX/LiteRT/TF obey --bench-threads.
        measure(benchmark, bench_config, f"detect {resolution}", lambda: detector.detect(frame),
                stage="detect", detector=detector_name, resolution=resolution, faces_found=found)
