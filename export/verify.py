"""Check an exported artifact against the float Keras model on real faces.

The artifact is loaded with the runtime's own ``load_classifier``, so verification covers
what users run: metadata parsing, preprocessing, int8 input/output handling, batching.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgefer.runtime.classifiers import load_classifier
from edgefer.train.data import Dataset
from edgefer.train.evaluate import map_predictions

from .formats import Check

BATCH = 64


@dataclass(frozen=True)
class Verification:
    images: int
    agreement: float  # argmax agreement with Keras
    max_abs_diff: float  # largest probability difference on any image and class
    mean_abs_diff: float
    keras_accuracy: float
    accuracy: float
    data: str
    passed: bool
    check: str

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in d.items()}

    def summary(self) -> str:
        return (f"agree {self.agreement:7.2%} of {self.images}  max|dp| {self.max_abs_diff:.4f}  "
                f"acc {self.keras_accuracy:.1%} -> {self.accuracy:.1%}")


def predict_batched(path: Path, faces: np.ndarray, threads: int = 1) -> tuple[np.ndarray, tuple[str, ...]]:
    clf = load_classifier(path, threads=threads)
    probs = np.concatenate([clf.predict(faces[i : i + BATCH]) for i in range(0, len(faces), BATCH)])
    return probs, tuple(clf.labels)


def accuracy(probs: np.ndarray, faces: Dataset, model_labels: tuple[str, ...] | None = None) -> float:
    """Share of faces predicted right, by the rule ``edgefer eval`` uses.

    A model with other labels (a FER+ model verified on FER2013 folders) is scored by label
    name over the classes both share; images of a class the model lacks count as wrong.
    """
    if model_labels is None:
        return float(np.mean(probs.argmax(1) == faces.y))
    return float(np.mean(map_predictions(probs, model_labels, faces.labels) == faces.y))


def compare(probs: np.ndarray, reference: np.ndarray, faces: Dataset, check: Check,
            model_labels: tuple[str, ...] | None = None) -> Verification:
    diff = np.abs(probs - reference)
    agreement = float(np.mean(probs.argmax(1) == reference.argmax(1)))
    max_diff = float(diff.max())
    keras_accuracy = accuracy(reference, faces, model_labels)
    artifact_accuracy = accuracy(probs, faces, model_labels)
    diff_ok = check.max_abs_diff is None or max_diff <= check.max_abs_diff
    # The small epsilon keeps a drop of exactly the limit (one face in 200) from failing on rounding.
    drop_ok = check.max_accuracy_drop is None or keras_accuracy - artifact_accuracy <= check.max_accuracy_drop + 1e-9
    return Verification(
        images=len(faces), agreement=agreement, max_abs_diff=max_diff, mean_abs_diff=float(diff.mean()),
        keras_accuracy=keras_accuracy, accuracy=artifact_accuracy, data=faces.name,
        passed=agreement >= check.min_agreement and diff_ok and drop_ok, check=check.describe(),
    )


def verify_artifact(path: Path, reference: np.ndarray, faces: Dataset, check: Check,
                    threads: int = 1) -> Verification:
    probs, labels = predict_batched(path, faces.x, threads)
    return compare(probs, reference, faces, check, labels)
