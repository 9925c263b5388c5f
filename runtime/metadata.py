"""The metadata every edgefer model carries, and how to read it from an artifact.

ONNX models hold it in ``metadata_props``; a TFLite file has it in a JSON card with the
same stem beside it (``model.tflite`` -> ``model.json``). Keys:

- ``edgefer.labels``: JSON list of class names in output order.
- ``edgefer.preprocess``: JSON object, see :class:`PreprocessSpec`.
- ``edgefer.card``: optional JSON object: architecture, training data, measured metrics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelError
from .preprocess import PreprocessSpec

LABELS_KEY = "edgefer.labels"
PREPROCESS_KEY = "edgefer.preprocess"
CARD_KEY = "edgefer.card"


@dataclass(frozen=True)
class ModelInfo:
    labels: tuple[str, ...]
    preprocess: PreprocessSpec
    card: dict = field(default_factory=dict)

    def to_props(self) -> dict[str, str]:
        props = {LABELS_KEY: json.dumps(list(self.labels)), PREPROCESS_KEY: self.preprocess.to_json()}
        if self.card:
            props[CARD_KEY] = json.dumps(self.card, sort_keys=True)
        return props


def parse_props(props: dict[str, str], source: str | Path) -> ModelInfo:
    """Validate raw key/value metadata; raise ModelError naming what is wrong."""
    missing = [k for k in (LABELS_KEY, PREPROCESS_KEY) if k not in props]
    if missing:
        raise ModelError(
            f"{source}: not an edgefer model: metadata lacks {', '.join(missing)}. "
            "Export it with `edgefer export`, which records the label order and preprocessing."
        )
    try:
        labels = json.loads(props[LABELS_KEY])
        if not isinstance(labels, list) or not labels or not all(isinstance(s, str) for s in labels):
            raise ValueError("labels must be a non-empty JSON list of strings")
        spec = PreprocessSpec.from_json(props[PREPROCESS_KEY])
        card = json.loads(props[CARD_KEY]) if CARD_KEY in props else {}
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ModelError(f"{source}: malformed edgefer metadata: {exc}") from exc
    return ModelInfo(labels=tuple(labels), preprocess=spec, card=card)


def card_path(model_path: str | Path) -> Path:
    """The JSON card that sits beside a model file."""
    return Path(model_path).with_suffix(".json")


def read_card(model_path: str | Path) -> ModelInfo:
    path = card_path(model_path)
    if not path.is_file():
        raise ModelError(f"{model_path}: no metadata card {path.name} beside it")
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable card: {exc}") from exc
    # the card's fields, as the JSON strings ONNX metadata_props would hold
    fields = {LABELS_KEY: "labels", PREPROCESS_KEY: "preprocess", CARD_KEY: "card"}
    props = {key: json.dumps(d[name]) for key, name in fields.items() if name in d}
    return parse_props(props, path)


def write_card(model_path: str | Path, info: ModelInfo, extra: dict | None = None) -> Path:
    """Write the JSON card beside a model (also done for ONNX models, for humans)."""
    path = card_path(model_path)
    d = {
        "model": Path(model_path).name,
        "labels": list(info.labels),
        "preprocess": json.loads(info.preprocess.to_json()),
        "card": info.card,
    }
    if extra:
        d.update(extra)
    path.write_text(json.dumps(d, indent=2, sort_keys=False) + "\n")
    return path
