"""The report's classifier as the report ran it: the ``report`` architecture in Keras.

Weights are random (seeded): latency does not depend on their values, and the same graph
is what the shipped artifacts were exported from.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from edgefer.runtime.preprocess import PreprocessSpec, normalize

SEED = 0


def pin_tensorflow_threads(threads: int) -> None:
    """Must run before TensorFlow executes its first op; later calls raise RuntimeError."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        # One op at a time, like the ONNX Runtime sessions (inter_op_num_threads = 1).
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already ran an op in this process: fine only if it matches
        if tf.config.threading.get_intra_op_parallelism_threads() != threads:
            raise RuntimeError(
                f"TensorFlow started before the benchmarks could pin it to {threads} threads; "
                "run the Keras benchmarks in their own pytest process (benchmarks/run.py does)"
            ) from None


class KerasBaseline:
    def __init__(self, threads: int) -> None:
        pin_tensorflow_threads(threads)
        import keras

        from edgefer.runtime.labels import FER2013_LABELS
        from edgefer.train.archs import ARCHS

        keras.utils.set_random_seed(SEED)
        self.spec = PreprocessSpec()
        self.model: Any = ARCHS["report"].build((*self.spec.size, self.spec.channels), len(FER2013_LABELS))
        self.params = int(self.model.count_params())

    def predict(self, faces: np.ndarray) -> np.ndarray:
        """The report's live loop: ``model.predict`` (a tf.data pipeline per call)."""
        return self.model.predict(normalize(faces, self.spec), verbose=0)

    def call(self, faces: np.ndarray) -> np.ndarray:
        """Keras without ``predict``'s per-call overhead: the model called as a function."""
        return np.asarray(self.model(normalize(faces, self.spec), training=False))
