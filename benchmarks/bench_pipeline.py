"""End to end: Recognizer on one real 640x480 clip frame with one face, for each detector.

The benchmark times the whole ``Recognizer(frame)`` call; the Recognizer's own per-stage
timings of the timed rounds are kept (as medians) in extra_info, to show where a frame goes.
"""

from __future__ import annotations

import numpy as np
import pytest
from artifacts import artifact_or_skip
from harness import BenchConfig, artifact_info, measure

from edgefer.runtime.settings import DETECTORS

# The default model, and the two INT8 artifacts: the fastest frame is the one the targets judge.
MODELS = ("onnxruntime-float", "onnxruntime-int8", "litert-int8")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("detector_name", DETECTORS)
def bench_pipeline(benchmark, bench_config: BenchConfig, artifacts, one_face, detector_name: str,
                   model: str) -> None:
    from edgefer.runtime.detectors import DetectorError
    from edgefer.runtime.metadata import ModelError
    from edgefer.runtime.pipeline import STAGES, Recognizer

    artifact = artifact_or_skip(artifacts, model)
    try:
        recognizer = Recognizer(model=artifact.path, detector=detector_name, threads=bench_config.threads)
    except DetectorError as exc:  # mediapipe is an optional extra
        pytest.skip(f"{detector_name} detector unavailable: {exc}")
    except ModelError as exc:  # LiteRT is an optional extra
        pytest.skip(str(exc))
    frame = one_face.frame
    timings: list[dict[str, float]] = []

    def process() -> None:
        timings.append(recognizer(frame).timings_ms)

    with recognizer:
        found = len(recognizer(frame).faces)
        if found != 1:  # the end-to-end figure is defined for exactly one face
            pytest.fail(f"{detector_name} found {found} faces in the benchmark frame, expected 1")
        measure(benchmark, bench_config, "pipeline 640x480 1 face", process, stage="pipeline",
                detector=detector_name, resolution="640x480", faces=1, **artifact_info(artifact))
    timed = timings[bench_config.warmup :]
    benchmark.extra_info["stages_p50_ms"] = {
        stage: float(np.median([t[stage] for t in timed])) for stage in (*STAGES, "total")
    }
