"""Trained models shipped with edgefer (package data), each with a JSON card beside it."""

from __future__ import annotations

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
# Stable names: a better model replaces the file, git history keeps every version, and the
# card inside each file says which architecture and training produced it.
DEFAULT_MODEL = "fer2013.onnx"


def default_model() -> Path:
    return MODELS_DIR / DEFAULT_MODEL


def available() -> list[Path]:
    return sorted(p for p in MODELS_DIR.iterdir() if p.suffix in (".onnx", ".tflite"))
