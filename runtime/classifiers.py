"""Emotion classifiers: one small class per backend, chosen from the artifact.

``.onnx`` -> ONNX Runtime; ``.tflite`` -> the LiteRT interpreter (``ai-edge-litert``,
the ``litert`` extra). Each reads labels and preprocessing from the artifact itself and
takes uint8 face crops (N, h, w), returning probabilities (N, classes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .metadata import ModelError, ModelInfo, parse_props, read_card
from .preprocess import normalize


class Classifier:
    """Shared flow: _preprocess -> infer -> _postprocess."""

    info: ModelInfo
    path: Path
    # Average each face with its mirror image (one batch of 2N): steadier and usually a
    # little more accurate, for about twice the classification time.
    flip_tta: bool = False

    @property
    def labels(self) -> tuple[str, ...]:
        return self.info.labels

    def _preprocess(self, faces: np.ndarray) -> np.ndarray:
        return normalize(faces, self.info.preprocess)

    def infer(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _postprocess(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float32).reshape(len(y), -1)
        if y.shape[1] != len(self.labels):
            raise ModelError(f"{self.path}: {y.shape[1]} outputs but {len(self.labels)} labels in metadata")
        # A model exported without its softmax still yields valid probabilities.
        sums = y.sum(axis=1)
        if np.any(y < -1e-3) or np.any(np.abs(sums - 1.0) > 0.05):
            e = np.exp(y - y.max(axis=1, keepdims=True))
            y = e / e.sum(axis=1, keepdims=True)
        return y

    def predict(self, faces: np.ndarray) -> np.ndarray:
        """uint8 faces (N, h, w) -> float32 probabilities (N, classes)."""
        if len(faces) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        if self.flip_tta:
            both = self._postprocess(self.infer(self._preprocess(np.concatenate([faces, faces[:, :, ::-1]]))))
            return (both[: len(faces)] + both[len(faces) :]) / 2
        return self._postprocess(self.infer(self._preprocess(faces)))


def _check_file(path: Path) -> None:
    if not path.is_file():
        from edgefer.models import available

        names = ", ".join(p.stem if p.suffix == ".onnx" else p.name for p in available())
        raise ModelError(f"model file not found: {path} (bundled models: {names}; `edgefer models` lists them)")
    if path.stat().st_size == 0:
        raise ModelError(f"model file is empty: {path}")


def cpu_session(path: str | Path, threads: int = 1):
    """The runtime's one ONNX Runtime session recipe: CPU, ``threads`` intra-op threads, quiet."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class OnnxClassifier(Classifier):
    def __init__(self, model_path: str | Path, threads: int = 1) -> None:
        self.path = Path(model_path)
        _check_file(self.path)
        try:
            self.session = cpu_session(self.path, threads)
        except Exception as exc:  # onnxruntime raises several private exception types
            raise ModelError(f"{self.path}: ONNX Runtime cannot load it: {str(exc).splitlines()[0]}") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        self.info = parse_props(meta, self.path)
        self.input_name = self.session.get_inputs()[0].name

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]


class TFLiteClassifier(Classifier):
    """LiteRT interpreter; quantized int8/uint8 input and output are handled here."""

    def __init__(self, model_path: str | Path, threads: int = 1) -> None:
        self.path = Path(model_path)
        _check_file(self.path)
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise ModelError(
                f"{self.path}: TFLite models need the LiteRT runtime: pip install 'edgefer[litert]'"
            ) from exc
        self.info = read_card(self.path)
        try:
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=max(1, int(threads)))
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{self.path}: LiteRT cannot load it: {exc}") from exc
        self._inp = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]
        self._batch: int | None = None
        self._fixed_batch = False

    def _resize(self, n: int) -> None:
        if self._batch != n:
            shape = list(self._inp["shape"])
            shape[0] = n
            self.interpreter.resize_tensor_input(self._inp["index"], shape, strict=False)
            self.interpreter.allocate_tensors()
            self._inp = self.interpreter.get_input_details()[0]
            self._out = self.interpreter.get_output_details()[0]
            self._batch = n

    def infer(self, x: np.ndarray) -> np.ndarray:
        if len(x) > 1 and not self._fixed_batch:
            try:
                self._resize(len(x))
                return self._invoke(x)
            except (RuntimeError, ValueError):
                # Files converted with a fixed batch of 1 cannot be resized (XNNPack refuses):
                # run them one face at a time rather than failing on multi-face frames.
                self._fixed_batch = True
                self._batch = None
        self._resize(1)
        return np.concatenate([self._invoke(x[i : i + 1]) for i in range(len(x))])

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        dtype = self._inp["dtype"]
        if dtype in (np.int8, np.uint8):
            s, z = self._inp["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / s + z), info.min, info.max).astype(dtype)
        self.interpreter.set_tensor(self._inp["index"], x)
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self._out["index"])
        if self._out["dtype"] in (np.int8, np.uint8):
            s, z = self._out["quantization"]
            y = (y.astype(np.float32) - z) * s
            # A quantized softmax moves in steps of 1/256, so its sum is off by up to ~1%:
            # renormalise so every backend returns probabilities that sum to 1.
            y = y / np.maximum(y.sum(axis=-1, keepdims=True), 1e-6)
        return y


BACKENDS: dict[str, type[Classifier]] = {".onnx": OnnxClassifier, ".tflite": TFLiteClassifier}


def load_classifier(model_path: str | Path, threads: int = 1, flip_tta: bool = False) -> Classifier:
    """Pick the backend from the file suffix; the artifact's own metadata does the rest."""
    path = Path(model_path)
    _check_file(path)
    backend = BACKENDS.get(path.suffix.lower())
    if backend is None:
        raise ModelError(f"{path}: unknown model format {path.suffix!r}; expected one of {sorted(BACKENDS)}")
    clf = backend(path, threads=threads)
    clf.flip_tta = flip_tta
    return clf
