"""Record measured metrics in a model's own metadata: its JSON card and, for ONNX, metadata_props."""

from __future__ import annotations

import json
from pathlib import Path

from edgefer.runtime.metadata import CARD_KEY, card_path


def record_metrics(model_path: str | Path, key: str, metrics: dict) -> None:
    """Store ``metrics`` under ``card["metrics"][key]`` in every place the model keeps its card."""
    path = Path(model_path)
    if path.suffix == ".onnx":
        import onnx

        model = onnx.load(str(path))
        props = {p.key: p.value for p in model.metadata_props}
        card = json.loads(props.get(CARD_KEY, "{}"))
        card.setdefault("metrics", {})[key] = metrics
        props[CARD_KEY] = json.dumps(card, sort_keys=True)
        del model.metadata_props[:]
        for k, v in props.items():
            model.metadata_props.add(key=k, value=v)
        onnx.save(model, str(path))
    cp = card_path(path)
    if cp.is_file():
        d = json.loads(cp.read_text())
        d.setdefault("card", {}).setdefault("metrics", {})[key] = metrics
        d["size_bytes"] = path.stat().st_size
        cp.write_text(json.dumps(d, indent=2) + "\n")
    elif path.suffix == ".tflite":
        raise FileNotFoundError(f"{cp} missing: a .tflite model keeps its metadata in that card")
