"""Evaluate Keras models and exported artifacts on the same data, with the same numbers.

Keras models are run through the runtime's ``normalize``; ONNX / TFLite artifacts through
the runtime's own classifiers, so an evaluation measures exactly what users will run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgefer.runtime.metadata import ModelInfo
from edgefer.runtime.preprocess import PreprocessSpec, normalize

from .data import Dataset
from .metrics import Metrics
from .runfolder import RunFolder, load_first

KERAS_SUFFIXES = {".keras", ".h5"}


class KerasPredictor:
    """A Keras model with the labels and preprocessing of its run folder (run.json).

    A run folder means the checkpoint runfolder.py names: best.keras, else last.keras.
    """

    def __init__(self, path: str | Path, flip_tta: bool = False) -> None:
        from .checkpoints import load_inference_model

        self.flip_tta = flip_tta
        self.model, path = load_first(path, load_inference_model)
        self.path = path
        run = RunFolder.of_model(path)
        if run is not None:
            self.info = ModelInfo(tuple(run.read_run()["labels"]), run.preprocess(), {})
        else:
            from edgefer.runtime.labels import FER2013_LABELS

            n = int(self.model.output_shape[-1])
            if n != len(FER2013_LABELS):
                raise ValueError(f"{path}: no run.json beside it to name its {n} outputs")
            self.info = ModelInfo(FER2013_LABELS, PreprocessSpec(), {})
        self._check_fits()

    def _check_fits(self) -> None:
        """The same promise the runtime's loader makes: run.json describes this network's input and output."""
        from edgefer.runtime.classifiers import expected_input

        want = expected_input(self.info.preprocess)
        got = tuple(self.model.input_shape[1:])
        if got != want:
            raise ValueError(f"{self.path}: the network's input {list(got)} does not fit the preprocessing "
                             f"in run.json (gives {list(want)})")
        if int(self.model.output_shape[-1]) != len(self.labels):
            raise ValueError(f"{self.path}: the network has {self.model.output_shape[-1]} outputs but run.json "
                             f"names {len(self.labels)} labels")

    @property
    def labels(self) -> tuple[str, ...]:
        return self.info.labels

    def predict(self, faces: np.ndarray, batch_size: int = 256) -> np.ndarray:
        if len(faces) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        if self.flip_tta:
            n = len(faces)
            both = self._predict(np.concatenate([faces, faces[:, :, ::-1]]), batch_size)
            return (both[:n] + both[n:]) / 2
        return self._predict(faces, batch_size)

    def _predict(self, faces: np.ndarray, batch_size: int) -> np.ndarray:
        x = normalize(faces, self.info.preprocess)
        if len(x) <= batch_size:
            return np.asarray(self.model(x, training=False), dtype=np.float32)
        return self.model.predict(x, batch_size=batch_size, verbose=0).astype(np.float32)


def load_predictor(path: str | Path, threads: int = 1, flip_tta: bool = False, verify: bool = True):
    """Keras model or run folder -> KerasPredictor; .onnx / .tflite -> the runtime's classifier.

    ``verify=False`` skips an artifact's integrity hash (its fit to its metadata is still checked).
    """
    from edgefer.models import resolve
    from edgefer.runtime.classifiers import load_classifier

    resolved = resolve(path)
    if resolved.is_dir() or resolved.suffix in KERAS_SUFFIXES:
        return KerasPredictor(resolved, flip_tta=flip_tta)

    return load_classifier(resolved, threads=threads, flip_tta=flip_tta, verify=verify)


def input_size(predictor) -> tuple[int, int]:
    """The face size (h, w) a predictor reads, from its own metadata: data is loaded at this size."""
    h, w = predictor.info.preprocess.size
    return int(h), int(w)


def predict_all(predictor, faces: np.ndarray, batch: int = 256) -> np.ndarray:
    out = [predictor.predict(faces[i : i + batch]) for i in range(0, len(faces), batch)]
    return np.concatenate(out) if out else np.zeros((0, len(predictor.labels)), np.float32)


def shared_classes(model_labels: tuple[str, ...], data_labels: tuple[str, ...]) -> list[int]:
    """Indices into data_labels of the classes the model has; a model sharing none is an error."""
    shared = [i for i, name in enumerate(data_labels) if name in model_labels]
    if not shared:
        raise ValueError(f"model labels {list(model_labels)} share no class with the data's {list(data_labels)}")
    return shared


def map_predictions(probs: np.ndarray, model_labels: tuple[str, ...], data_labels: tuple[str, ...]) -> np.ndarray:
    """Arg-max over the model's classes that the data also has, as indices into data_labels.

    A model sharing no class with the data is an error.
    """
    shared = shared_classes(model_labels, data_labels)
    cols = [model_labels.index(data_labels[i]) for i in shared]
    return np.asarray(shared)[probs[:, cols].argmax(axis=1)]


@dataclass
class Evaluation:
    path: Path
    metrics: Metrics
    probs: np.ndarray
    pred: np.ndarray  # indices into data.labels
    data: Dataset  # the images scored: the given ones, less any class the model has no output for
    index: np.ndarray  # their positions in the given dataset

    @property
    def format(self) -> str:
        if self.path.suffix in KERAS_SUFFIXES or self.path.is_dir():
            return "keras"
        quant = "int8" if "int8" in self.path.stem else ("fp16" if "fp16" in self.path.stem else "float")
        return f"{self.path.suffix.lstrip('.')}-{quant}" if quant != "float" else self.path.suffix.lstrip(".")

    @property
    def size_mb(self) -> float:
        p = RunFolder(self.path).model_file() if self.path.is_dir() else self.path
        return p.stat().st_size / 1e6

    def agreement(self, other: Evaluation) -> float:
        """Share of the images both scored on which the two models give the same class."""
        _, mine, theirs = np.intersect1d(self.index, other.index, assume_unique=True, return_indices=True)
        if not len(mine):
            return float("nan")
        return float((np.asarray(self.data.labels)[self.pred[mine]]
                      == np.asarray(other.data.labels)[other.pred[theirs]]).mean())


def evaluate(predictor, data: Dataset) -> Evaluation:
    """Score ``predictor`` on ``data``; images of a class it has no output for are left out, and said so."""
    shared_classes(tuple(predictor.labels), data.labels)  # before restricting, so the error names the data's classes
    scored, index = data.restricted_to(predictor.labels)
    probs = predict_all(predictor, scored.x)
    pred = map_predictions(probs, tuple(predictor.labels), scored.labels)
    if len(scored) < len(data):
        print(f"note: {getattr(predictor, 'path', 'model')} has no output for "
              f"{', '.join(n for n in data.labels if n not in scored.labels)}: "
              f"scoring it on the other {len(scored)} of {len(data)} images")
    metrics = Metrics.from_predictions(scored.y, pred, scored.labels)
    return Evaluation(Path(getattr(predictor, "path", "?")), metrics, probs, pred, scored, index)


def time_predictor(predictor, faces: np.ndarray, batch: int, rounds: int) -> float:
    """Median seconds per call of ``predict`` on ``batch`` faces, after a warm-up."""
    x = faces[:batch]
    if len(x) < batch:
        x = np.resize(faces, (batch, *faces.shape[1:]))
    for _ in range(3):
        predictor.predict(x)
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        predictor.predict(x)
        times.append(time.perf_counter() - t)
    return float(np.median(times))
