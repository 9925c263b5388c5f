"""edgefer metadata on every artifact: ONNX ``metadata_props`` and a JSON card beside it.

The runtime reads labels and preprocessing from the ONNX file itself, and for a .tflite
file from the card with the same stem (``report-full-int8.tflite`` ->
``report-full-int8.json``): that card is the TFLite file's only metadata, so ship them
together. ONNX files get the card too, as a readable copy.
"""

from __future__ import annotations

import datetime as _dt
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from edgefer.runtime.metadata import ModelInfo, write_card

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


def embed_onnx_props(path: Path, info: ModelInfo) -> None:
    """Replace the edgefer keys in the ONNX file's metadata_props; other keys are kept."""
    import onnx

    model = onnx.load(str(path))
    props = info.to_props()
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    for key, value in [*kept, *props.items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def attach_metadata(path: Path, info: ModelInfo) -> Path:
    """Embed (ONNX) and write the card; returns the card's path."""
    if path.suffix == ".onnx":
        embed_onnx_props(path, info)
    return write_card(path, info, extra={"metadata": METADATA_NOTE.get(path.suffix, "")})
