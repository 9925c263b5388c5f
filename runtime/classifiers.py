"""Emotion classifiers: one small class per backend, chosen from the artifact.

``.onnx`` -> ONNX Runtime; ``.tflite`` -> the LiteRT interpreter (``ai-edge-litert``,
the ``litert`` extra). Each reads labels and preprocessing from the artifact itself and
takes uint8 face crops (N, h, w), returning probabilities (N, classes).

Loading checks everything a first face would otherwise find out the hard way: the file's
integrity hash, and that the graph's input and output fit the metadata (size, channels,
layout, one output per label). The bytes that were verified are the bytes that run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .metadata import ModelError, ModelInfo, check_integrity, read_card, read_model_info, warn_if_unhashed
from .preprocess import PreprocessSpec, normalize


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


def expected_input(spec: PreprocessSpec) -> tuple[int, int, int]:
    """The input shape without the batch axis that ``spec`` produces."""
    h, w = spec.size
    return (h, w, spec.channels) if spec.layout == "NHWC" else (spec.channels, h, w)


def _describe(spec: PreprocessSpec) -> str:
    h, w = spec.size
    return f"{spec.layout} {h}x{w}, {spec.channels} channel{'s' if spec.channels > 1 else ''}"


def check_fits(path: Path, info: ModelInfo, input_shape: Sequence, output_shape: Sequence) -> None:
    """Refuse a graph whose declared input or output disagrees with the metadata.

    Symbolic dimensions (a free batch axis, a dynamic size) match anything; the probe run in
    :func:`probe` catches what they hide.
    """
    spec = info.preprocess
    want = expected_input(spec)
    got = tuple(input_shape)
    if len(got) != 4:
        raise ModelError(f"{path}: the graph's input has shape {list(got)}, but edgefer feeds 4-D batches "
                         f"(N, {', '.join(map(str, want))}) for its preprocessing ({_describe(spec)})")
    if any(isinstance(g, int) and g > 0 and g != e for g, e in zip(got[1:], want, strict=True)):
        raise ModelError(f"{path}: the graph's input {list(got[1:])} does not fit the metadata's preprocessing "
                         f"({_describe(spec)} gives {list(want)})")
    width = tuple(output_shape)[-1] if len(output_shape) else None
    if isinstance(width, int) and width > 0 and width != len(info.labels):
        raise ModelError(f"{path}: the graph has {width} outputs but the metadata names {len(info.labels)} "
                         f"labels ({', '.join(info.labels)})")


def probe(clf: Classifier) -> None:
    """Classify one blank face now, so a graph that cannot run its metadata fails at load."""
    h, w = clf.info.preprocess.size
    try:
        y = np.asarray(clf.infer(clf._preprocess(np.zeros((1, h, w), np.uint8))))
    except ModelError:
        raise
    except Exception as exc:  # ORT and LiteRT raise their own exception types
        raise ModelError(f"{clf.path}: cannot run on the input its metadata describes "
                         f"({_describe(clf.info.preprocess)}): {str(exc).splitlines()[0]}") from exc
    if y.size != len(clf.labels):
        raise ModelError(f"{clf.path}: the graph gives {y.size} outputs per face but the metadata names "
                         f"{len(clf.labels)} labels ({', '.join(clf.labels)})")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read it: {exc.strerror or exc}") from exc


def _check_file(path: Path) -> None:
    if not path.is_file():
        from edgefer.models import available

        names = ", ".join(p.stem if p.suffix == ".onnx" else p.name for p in available())
        raise ModelError(f"model file not found: {path} (bundled models: {names}; `edgefer models` lists them)")
    if path.stat().st_size == 0:
        raise ModelError(f"model file is empty: {path}")


def cpu_session(model: str | Path | bytes, threads: int = 1):
    """The runtime's one ONNX Runtime session recipe: CPU, ``threads`` intra-op threads, quiet.

    ``model`` is a path or the serialised model itself (bytes already verified)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if threads > 1:
        # An idle pool thread spins for its next task by default. The detector and the classifier
        # each have a pool, and between their runs the frame's OpenCV and numpy work competes with
        # those spinning threads: with 2 threads on 2 cores a whole frame took 12.8-17.2 ms p50
        # with spinning and 7.1-10.1 ms without (1 thread: 5.6-8.7 ms).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])


class OnnxClassifier(Classifier):
    def __init__(self, model_path: str | Path, threads: int = 1, verify: bool = True) -> None:
        self.path = Path(model_path)
        _check_file(self.path)
        data = _read(self.path)
        # Metadata and hash come from the bytes first: a damaged file is named as such,
        # not as whatever ONNX Runtime makes of it.
        self.info = read_model_info(self.path, data)
        check_integrity(self.path, self.info, data, verify)
        try:
            self.session = cpu_session(data, threads)
        except Exception as exc:  # onnxruntime raises several private exception types
            raise ModelError(f"{self.path}: ONNX Runtime cannot load it: {str(exc).splitlines()[0]}") from exc
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise ModelError(f"{self.path}: the graph has {len(inputs)} inputs; edgefer models take one face batch")
        if inputs[0].type != "tensor(float)":
            raise ModelError(f"{self.path}: the graph's input is {inputs[0].type}; edgefer feeds float32 faces")
        check_fits(self.path, self.info, inputs[0].shape, outputs[0].shape)
        self.input_name = inputs[0].name
        probe(self)

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]


class TFLiteClassifier(Classifier):
    """LiteRT interpreter; quantized int8/uint8 input and output are handled here."""

    def __init__(self, model_path: str | Path, threads: int = 1, verify: bool = True) -> None:
        self.path = Path(model_path)
        _check_file(self.path)
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise ModelError(
                f"{self.path}: TFLite models need the LiteRT runtime: pip install 'edgefer[litert]'"
            ) from exc
        self.info = read_card(self.path)
        data = _read(self.path)
        check_integrity(self.path, self.info, data, verify)
        try:
            self.interpreter = Interpreter(model_content=data, num_threads=max(1, int(threads)))
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{self.path}: LiteRT cannot load it: {str(exc).splitlines()[0]}") from exc
        self._model_data = data  # LiteRT reads the buffer in place: it must outlive the interpreter
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1:
            raise ModelError(f"{self.path}: the graph has {len(inputs)} inputs; edgefer models take one face batch")
        self._inp, self._out = inputs[0], outputs[0]
        check_fits(self.path, self.info, [int(d) for d in self._inp["shape"]],
                   [int(d) for d in self._out["shape"]])
        self._batch: int | None = None
        self._fixed_batch = False
        probe(self)

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


def load_classifier(model_path: str | Path, threads: int = 1, flip_tta: bool = False,
                    verify: bool = True) -> Classifier:
    """Pick the backend from the file suffix; the artifact's own metadata does the rest.

    ``verify=False`` skips the integrity hash, for people who edit a model on purpose; the
    checks that the graph fits its metadata always run.
    """
    path = Path(model_path)
    _check_file(path)
    backend = BACKENDS.get(path.suffix.lower())
    if backend is None:
        raise ModelError(f"{path}: unknown model format {path.suffix!r}; expected one of {sorted(BACKENDS)}")
    clf = backend(path, threads=threads, verify=verify)  # type: ignore[call-arg]
    if verify:
        warn_if_unhashed(path, clf.info)
    clf.flip_tta = flip_tta
    return clf
