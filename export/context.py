"""What every exporter receives: the source model, the real images, and the settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgefer.runtime.preprocess import normalize
from edgefer.train.data import Dataset

from .formats import DEFAULT_OPSET
from .source import SourceModel


@dataclass
class ExportContext:
    source: SourceModel
    workdir: Path  # scratch space for intermediate files, removed by the caller
    calib: Dataset | None = None
    verify: Dataset | None = None
    opset: int = DEFAULT_OPSET
    threads: int = 1
    _reference: np.ndarray | None = field(default=None, repr=False)

    def calib_inputs(self) -> np.ndarray:
        """Calibration faces as model input, through the runtime's own preprocessing."""
        if self.calib is None or len(self.calib) == 0:
            raise ValueError("this format calibrates on real images: give calibration data (--calib-data)")
        return normalize(self.calib.x, self.source.info.preprocess)

    def reference_probs(self) -> np.ndarray:
        """Float Keras probabilities on the verification faces, computed once per export run."""
        if self._reference is None:
            assert self.verify is not None
            x = normalize(self.verify.x, self.source.info.preprocess)
            self._reference = np.asarray(self.source.model.predict(x, batch_size=256, verbose=0), np.float32)
        return self._reference
