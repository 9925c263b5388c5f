"""Record measured metrics in a model's own metadata: its JSON card and, for ONNX, metadata_props."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edgefer.runtime.metadata import card_path, read_model_info, write_model_info


def record_metrics(model_path: str | Path, key: str, metrics: dict) -> None:
    """Store ``metrics`` under ``card["metrics"][key]`` in every place the model keeps its card.

    Each file is replaced whole (a kill leaves the previous one), and an ONNX graph's bytes
    are copied verbatim, so the model's integrity hash still holds afterwards.
    """
    path = Path(model_path)
    if path.suffix == ".tflite" and not card_path(path).is_file():
        raise FileNotFoundError(f"{card_path(path)} missing: a .tflite model keeps its metadata in that card")
    info = read_model_info(path)
    card = {**info.card, "metrics": {**info.card.get("metrics", {}), key: metrics}}
    write_model_info(path, dataclasses.replace(info, card=card))
