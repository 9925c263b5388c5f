"""edgefer metadata on every artifact: ONNX ``metadata_props`` and a JSON card beside it.

The runtime reads labels and preprocessing from the ONNX file itself, and for a .tflite
file from the card with the same stem (``report-full-int8.tflite`` ->
``report-full-int8.json``): that card is the TFLite file's only metadata, so ship them
together. ONNX files get the card too, as a readable copy.

Every artifact is stamped with its integrity hash (``edgefer.sha256``), which the runtime
checks at load. The metadata itself is written by :mod:`edgefer.runtime.metadata`, the one
owner of the format; this module only decides what an export puts in it.
"""

from __future__ import annotations

import datetime as _dt
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from edgefer.runtime.metadata import ModelInfo, model_digest, write_model_info

METADATA_NOTE = {
    ".onnx": "The .onnx file carries labels, preprocessing and this card in its metadata_props "
             "(edgefer.labels, edgefer.preprocess, edgefer.card); this JSON is a copy for people.",
    ".tflite": "This card is the only metadata of the .tflite file: the runtime reads labels and "
               "preprocessing from it. Keep it beside the model, with the same stem.",
}


def _edgefer_version() -> str:
    try:
        return version("edgefer")
    except PackageNotFoundError:
        return "unknown"


def artifact_info(base: ModelInfo, fmt_name: str, filename: str, details: dict[str, Any],
                  calibration: dict | None) -> ModelInfo:
    """The source model's card plus what this export did."""
    export = {"format": fmt_name, "file": filename, **details,
              "exported": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "edgefer": _edgefer_version()}
    if calibration is not None:
        export["calibration"] = calibration
    return ModelInfo(base.labels, base.preprocess, {**base.card, "export": export})


def with_verification(info: ModelInfo, verification: dict) -> ModelInfo:
    return ModelInfo(info.labels, info.preprocess, {**info.card, "verification": verification})


def attach_metadata(path: Path, info: ModelInfo) -> ModelInfo:
    """Stamp ``path`` with its integrity hash, embed the metadata (ONNX) and write the card beside
    it; returns the metadata as stamped. For ONNX the hash leaves metadata_props out, so a later
    card rewrite keeps it valid."""
    stamped = info.with_sha256(model_digest(path))
    write_model_info(path, stamped, card_extra=card_extra(path))
    return stamped


def card_extra(path: Path) -> dict[str, str]:
    """The card's keys beyond the metadata: a note on where the runtime reads it."""
    return {"metadata": METADATA_NOTE.get(path.suffix, "")}
