"""The metadata every edgefer model carries, and how to read, write and verify it.

ONNX models hold it in ``metadata_props``; a TFLite file has it in a JSON card with the
same stem beside it (``model.tflite`` -> ``model.json``). Keys:

- ``edgefer.labels``: JSON list of class names in output order.
- ``edgefer.preprocess``: JSON object, see :class:`PreprocessSpec`.
- ``edgefer.card``: optional JSON object: architecture, training data, measured metrics.
- ``edgefer.sha256``: the model's integrity hash (:func:`model_digest`). For ONNX it covers
  every top-level ModelProto field except ``metadata_props``, byte for byte, so rewriting
  the card keeps it valid; for TFLite it is the sha256 of the whole file, kept in the card.

ONNX files are read and rewritten here at the protobuf wire level, without the ``onnx``
package: the runtime depends only on numpy, OpenCV and ONNX Runtime, and a card rewrite
that copies the graph's bytes verbatim cannot change the weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import atomic_path
from .errors import ModelError
from .preprocess import PreprocessSpec

LABELS_KEY = "edgefer.labels"
PREPROCESS_KEY = "edgefer.preprocess"
CARD_KEY = "edgefer.card"
SHA256_KEY = "edgefer.sha256"
# What the hash covers, written beside it in every card so a reader can recompute it.
SHA256_OF = {
    ".onnx": "sha256 of the ONNX ModelProto's top-level fields except metadata_props (field 14), "
             "each as its verbatim wire bytes, in file order",
    ".tflite": "sha256 of the whole .tflite file",
}
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ModelInfo:
    labels: tuple[str, ...]
    preprocess: PreprocessSpec
    card: dict = field(default_factory=dict)
    sha256: str | None = None  # see model_digest(); None for files exported before hashes existed

    def __post_init__(self) -> None:
        if not self.labels:
            raise ValueError("labels must be a non-empty list")
        dup = sorted({name for name in self.labels if self.labels.count(name) > 1})
        if dup:
            # two outputs with one name would silently merge in every per-label result
            raise ValueError(f"labels must be unique; repeated: {', '.join(dup)}")
        if self.sha256 is not None and not _HEX64.fullmatch(self.sha256):
            raise ValueError(f"sha256 must be 64 lower-case hex digits, not {self.sha256!r}")

    def to_props(self) -> dict[str, str]:
        props = {LABELS_KEY: json.dumps(list(self.labels)), PREPROCESS_KEY: self.preprocess.to_json()}
        if self.card:
            props[CARD_KEY] = json.dumps(self.card, sort_keys=True)
        if self.sha256:
            props[SHA256_KEY] = self.sha256
        return props

    def with_sha256(self, sha256: str | None) -> ModelInfo:
        return dataclasses.replace(self, sha256=sha256)


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
        return ModelInfo(labels=tuple(labels), preprocess=spec, card=card, sha256=props.get(SHA256_KEY))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ModelError(f"{source}: malformed edgefer metadata: {str(exc).splitlines()[0]}") from exc


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
    if not isinstance(d, dict):
        raise ModelError(f"{path}: unreadable card: not a JSON object")
    # the card's fields, as the JSON strings ONNX metadata_props would hold
    fields = {LABELS_KEY: "labels", PREPROCESS_KEY: "preprocess", CARD_KEY: "card"}
    props = {key: json.dumps(d[name]) for key, name in fields.items() if name in d}
    if d.get("sha256") is not None:
        props[SHA256_KEY] = str(d["sha256"])
    return parse_props(props, path)


def _card_json(model_path: Path, info: ModelInfo, base: dict) -> str:
    d = {
        **base,
        "model": model_path.name,
        "labels": list(info.labels),
        "preprocess": info.preprocess.to_dict(),
        "card": info.card,
    }
    if info.sha256:
        d["sha256"] = info.sha256
        d["sha256_of"] = SHA256_OF.get(model_path.suffix.lower(), "")
    else:
        d.pop("sha256", None)
        d.pop("sha256_of", None)
    return json.dumps(d, indent=2, sort_keys=False) + "\n"


def write_card(model_path: str | Path, info: ModelInfo, extra: dict | None = None) -> Path:
    """Write the JSON card beside a model (also done for ONNX models, for humans), atomically."""
    path = card_path(model_path)
    text = _card_json(Path(model_path), info, dict(extra or {}))
    with atomic_path(path) as tmp:
        tmp.write_text(text)
        pause_for_tests(path)
    return path


def update_card(model_path: str | Path, info: ModelInfo) -> Path:
    """Rewrite the card beside a model with new metadata, keeping its other keys (notes, size)."""
    path = card_path(model_path)
    try:
        old = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable card: {exc}") from exc
    base = old if isinstance(old, dict) else {}
    if Path(model_path).is_file():
        base["size_bytes"] = Path(model_path).stat().st_size
    # the same order as before, so a rewrite's diff shows what changed and nothing else
    info = dataclasses.replace(info, card=_in_order_of(base.get("card"), info.card))
    with atomic_path(path) as tmp:
        tmp.write_text(_card_json(Path(model_path), info, base))
        pause_for_tests(path)
    return path


def _in_order_of(old, new):
    """``new`` with its dict keys in ``old``'s order where both have them, new keys last."""
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [_in_order_of(o, n) for o, n in zip(old, new, strict=True)]
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return new
    ordered = {k: _in_order_of(old[k], new[k]) for k in old if k in new}
    return {**ordered, **{k: v for k, v in new.items() if k not in ordered}}


# ---------------------------------------------------------------- test hook
PAUSE_ENV = "EDGEFER_TEST_PAUSE_BEFORE_REPLACE"
PAUSE_SECONDS = 60.0


def pause_for_tests(final: Path) -> None:
    """When EDGEFER_TEST_PAUSE_BEFORE_REPLACE names ``final``'s file, say so on stderr and wait just
    before a finished file replaces it: a test can then kill the writer at exactly that moment
    instead of guessing a delay."""
    if os.environ.get(PAUSE_ENV) != final.name:
        return
    print(f"edgefer: paused before replacing {final}", file=sys.stderr, flush=True)
    time.sleep(PAUSE_SECONDS)


# ---------------------------------------------------------------- ONNX wire format
# The ONNX ModelProto field that holds metadata_props (a repeated StringStringEntryProto).
METADATA_FIELD = 14


class WireError(ValueError):
    """Bytes that are not a protobuf message."""


def _varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise WireError("truncated varint")
        b = data[pos]
        value |= (b & 0x7F) << shift
        pos += 1
        if not b & 0x80:
            return value, pos
        shift += 7


def top_level_fields(data: bytes | memoryview) -> list[tuple[int, int, int, int]]:
    """The message's top-level fields as (number, start, value_start, end) byte offsets."""
    fields, pos, n = [], 0, len(data)
    while pos < n:
        start = pos
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError(f"field number 0 at byte {start}")
        if wire == 0:
            _, pos = _varint(data, pos)
            value_start = start
        elif wire == 1:
            value_start, pos = pos, pos + 8
        elif wire == 2:
            length, value_start = _varint(data, pos)
            pos = value_start + length
        elif wire == 5:
            value_start, pos = pos, pos + 4
        else:  # groups (3, 4) are not used by ONNX; 6 and 7 do not exist
            raise WireError(f"wire type {wire} at byte {start}")
        if pos > n:
            raise WireError(f"field {number} runs past the end of the data")
        fields.append((number, start, value_start, pos))
    return fields


def _string_pairs(entry: memoryview) -> tuple[str, str]:
    key = value = ""
    for number, _, value_start, end in top_level_fields(entry):
        text = bytes(entry[value_start:end]).decode("utf-8")
        if number == 1:
            key = text
        elif number == 2:
            value = text
    return key, value


def onnx_props(data: bytes) -> dict[str, str]:
    """metadata_props of a serialised ONNX model, as a dict (later keys win, like ONNX Runtime)."""
    view = memoryview(data)
    props = {}
    for number, _, value_start, end in top_level_fields(view):
        if number == METADATA_FIELD:
            key, value = _string_pairs(view[value_start:end])
            props[key] = value
    return props


def onnx_digest(data: bytes) -> str:
    """sha256 over every top-level field but metadata_props, verbatim and in order."""
    view = memoryview(data)
    h = hashlib.sha256()
    for number, start, _, end in top_level_fields(view):
        if number != METADATA_FIELD:
            h.update(view[start:end])
    return h.hexdigest()


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def _encode_props(props: dict[str, str]) -> bytes:
    entries = []
    for key, value in props.items():
        entry = _length_delimited(1, key.encode("utf-8")) + _length_delimited(2, value.encode("utf-8"))
        entries.append(_length_delimited(METADATA_FIELD, entry))
    return b"".join(entries)


def onnx_with_props(data: bytes, props: dict[str, str]) -> bytes:
    """The same model with ``props`` as its whole metadata_props; every other byte is kept.

    The entries go where metadata_props stood (or in field-number order when there were
    none), so a file rewritten twice is identical to one rewritten once.
    """
    view = memoryview(data)
    fields = top_level_fields(view)
    encoded = _encode_props(props)
    parts: list[bytes | memoryview] = []
    placed = False
    for number, start, _, end in fields:
        if number == METADATA_FIELD:
            if not placed:
                parts.append(encoded)
                placed = True
            continue
        if number > METADATA_FIELD and not placed:
            parts.append(encoded)
            placed = True
        parts.append(view[start:end])
    if not placed:
        parts.append(encoded)
    return b"".join(parts)


# ---------------------------------------------------------------- integrity
def model_digest(path: str | Path, data: bytes | None = None) -> str:
    """The integrity hash recorded for a model file (see the module docstring)."""
    path = Path(path)
    if data is None:
        data = path.read_bytes()
    if path.suffix.lower() == ".onnx":
        try:
            return onnx_digest(data)
        except WireError as exc:
            raise ModelError(f"{path}: not a readable ONNX file ({exc})") from exc
    return hashlib.sha256(data).hexdigest()


_warned_unhashed: set[str] = set()


def check_integrity(path: Path, info: ModelInfo, data: bytes, verify: bool = True) -> None:
    """Refuse a model whose bytes are not those its metadata was stamped with (one without a hash
    passes; :func:`warn_if_unhashed` says so once it has loaded)."""
    if not verify or info.sha256 is None:
        return
    actual = model_digest(path, data)
    if actual != info.sha256:
        raise ModelError(
            f"{path}: integrity check failed: the file's sha256 {actual[:12]}... is not the "
            f"{info.sha256[:12]}... it was exported with (a damaged or edited file; "
            "--no-verify loads it anyway)"
        )


def warn_if_unhashed(path: Path, info: ModelInfo) -> None:
    """One warning per file for models exported before hashes existed.

    They still load: refusing them would break every older model people have, and a hash
    they never had proves nothing either way.
    """
    if info.sha256 is None and str(path) not in _warned_unhashed:
        _warned_unhashed.add(str(path))
        print(f"edgefer: warning: {path} carries no integrity hash and is loaded unverified "
              f"(`edgefer models --stamp {path}` records one)", file=sys.stderr)


# ---------------------------------------------------------------- reading and rewriting a model
def read_model_info(path: str | Path, data: bytes | None = None) -> ModelInfo:
    """The edgefer metadata of a model: from inside an ONNX file, from the card of a TFLite file."""
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        return read_card(path)
    if data is None:
        data = path.read_bytes()
    try:
        props = onnx_props(data)
    except (WireError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not a readable ONNX file ({exc})") from exc
    return parse_props(props, path)


def write_model_info(path: str | Path, info: ModelInfo, card_extra: dict | None = None) -> None:
    """Replace a model's edgefer metadata: inside the ONNX file (the graph's bytes kept verbatim)
    and in its card, each file written whole or not at all. ``card_extra`` replaces the card's
    other keys; without it they are kept."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        data = path.read_bytes()
        try:
            props = {k: v for k, v in onnx_props(data).items() if not k.startswith("edgefer.")}
            new = onnx_with_props(data, {**props, **info.to_props()})
        except (WireError, UnicodeDecodeError) as exc:
            raise ModelError(f"{path}: not a readable ONNX file ({exc})") from exc
        with atomic_path(path) as tmp:
            tmp.write_bytes(new)
            pause_for_tests(path)
    if card_extra is not None:
        write_card(path, info, extra={**card_extra, "size_bytes": path.stat().st_size})
    elif card_path(path).is_file() or path.suffix.lower() != ".onnx":
        update_card(path, info)


def stamp(path: str | Path) -> ModelInfo:
    """Record the integrity hash of a model file as it is now; returns the stamped metadata."""
    path = Path(path)
    data = path.read_bytes()
    info = read_model_info(path, data).with_sha256(model_digest(path, data))
    write_model_info(path, info)
    return info
