"""Emotion classification of real face crops, batch 1 and 4, per backend and artifact.

Every runtime variant is compared with Keras ``model.predict`` timed in the same process,
at the same thread count and batch, so the speed-up survives a noisy machine.
"""

from __future__ import annotations

import numpy as np
import pytest
from artifacts import artifact_or_skip
from harness import BenchConfig, artifact_info, measure

KERAS_VARIANTS = ("keras-predict", "keras-call")
RUNTIME_VARIANTS = ("onnxruntime-float", "onnxruntime-int8", "litert-float", "litert-fp16", "litert-int8")


@pytest.fixture(scope="session")
def keras_baseline(bench_config: BenchConfig):
    pytest.importorskip("keras", reason="the Keras baseline needs the train extra (TensorFlow)")
    from keras_baseline import KerasBaseline

    return KerasBaseline(bench_config.threads)


@pytest.mark.parametrize("faces", [1, 4])
@pytest.mark.parametrize("variant", KERAS_VARIANTS)
def bench_classify_keras(benchmark, bench_config: BenchConfig, keras_baseline, face_crops, variant: str,
                         faces: int) -> None:
    crops = face_crops[faces]
    fn = keras_baseline.predict if variant == "keras-predict" else keras_baseline.call
    measure(benchmark, bench_config, f"classify {faces} face{'s' * (faces > 1)}", lambda: fn(crops),
            stage="classify", variant=variant, faces=faces, backend="keras",
            precision="float", params=keras_baseline.params)


@pytest.mark.parametrize("faces", [1, 4])
@pytest.mark.parametrize("variant", RUNTIME_VARIANTS)
def bench_classify_runtime(benchmark, bench_config: BenchConfig, artifacts, face_crops, variant: str,
                           faces: int) -> None:
    from edgefer.runtime.classifiers import load_classifier
    from edgefer.runtime.metadata import ModelError

    artifact = artifact_or_skip(artifacts, variant)
    try:
        classifier = load_classifier(artifact.path, threads=bench_config.threads)
    except ModelError as exc:  # e.g. LiteRT not installed
        pytest.skip(str(exc))
    crops = face_crops[faces]
    probs = classifier.predict(crops)
    assert probs.shape == (faces, len(classifier.labels)) and np.all(np.isfinite(probs))
    measure(benchmark, bench_config, f"classify {faces} face{'s' * (faces > 1)}",
            lambda: classifier.predict(crops), stage="classify", variant=variant, faces=faces,
            **artifact_info(artifact))
