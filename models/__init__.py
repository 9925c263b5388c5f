"""Trained models shipped with edgefer (package data), each with a JSON card beside it."""

from __future__ import annotations

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
# Stable names: a better model replaces the file, git history keeps every version, and the
# card inside each file says which architecture and training produced it.
DEFAULT_MODEL = "fer2013.onnx"
# Face detectors (BlazeFace ONNX/TFLite files, their cards and licence) live apart from the
# emotion classifiers, so a classifier name can never pick a detector file.
DETECTORS_DIR = MODELS_DIR / "detectors"


def default_model() -> Path:
    return MODELS_DIR / DEFAULT_MODEL


def available() -> list[Path]:
    """The bundled emotion classifiers."""
    return sorted(
        p for p in MODELS_DIR.iterdir() if p.suffix in (".onnx", ".tflite")
    )


def resolve(model: str | Path) -> Path:
    """A model path, or the name of a bundled model (``ferplus``, ``fer2013-int8``, ``ferplus.onnx``).

    An existing file always wins; a bare name picks the bundled file with that stem, ONNX first.
    Anything else comes back unchanged so that the loader reports the missing file.
    """
    path = Path(model)
    if path.exists() or len(path.parts) > 1:
        return path
    for candidate in (MODELS_DIR / path.name, MODELS_DIR / f"{path.name}.onnx", MODELS_DIR / f"{path.name}.tflite"):
        if candidate.is_file():
            return candidate
    return path
