"""The table of export formats: the single place that says what edgefer can export.

Each row gives the file name tail, what the exporter needs (importable modules and whether
it calibrates on real images), the verification thresholds against the float Keras model,
and the function that writes the file. Adding a format means adding a row here and a
converter function; the wrapper in :mod:`.runner` does the rest.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .context import ExportContext

DEFAULT_OPSET = 17
OPSETS = range(13, 19)  # what tf2onnx 1.17 + onnxruntime handle for these models

# Which install provides a module, for the "missing requirement" message.
_PROVIDER = {
    "tensorflow": "edgefer[train]",
    "tf2onnx": "edgefer[train]",
    "onnx": "edgefer[train]",
    "onnxruntime": "edgefer",
    "ai_edge_litert": "edgefer[litert]",
}


@dataclass(frozen=True)
class Check:
    """Pass thresholds for an artifact compared with the float Keras model on real images."""

    min_agreement: float  # fraction of images whose argmax matches Keras
    # None: reported but not gated. INT8 can move one image's probabilities by 0.1+ while
    # leaving its prediction unchanged, so agreement is the meaningful gate there.
    max_abs_diff: float | None
    # Largest accuracy loss (fraction) on the verification faces; None: not gated.
    max_accuracy_drop: float | None = None

    def describe(self) -> str:
        diff = f", max|dp| <= {self.max_abs_diff:g}" if self.max_abs_diff is not None else ""
        drop = f", accuracy drop <= {self.max_accuracy_drop * 100:g} pt" if self.max_accuracy_drop is not None else ""
        return f"agreement >= {self.min_agreement:.1%}{diff}{drop}"


Exporter = Callable[["ExportContext", Path], dict[str, Any]]


@dataclass(frozen=True)
class ExportFormat:
    name: str
    tail: str  # appended to the stem; stems must differ across rows (cards are <stem>.json)
    about: str
    requires: tuple[str, ...]
    calibrated: bool  # needs real calibration images
    check: Check
    # "module:function" inside edgefer.export, imported only when the format is exported,
    # so that listing formats (``edgefer --help``) loads no numpy, OpenCV or converter;
    # or the function itself.
    exporter_ref: str | Exporter

    @property
    def exporter(self) -> Exporter:
        if callable(self.exporter_ref):
            return self.exporter_ref
        module, _, func = self.exporter_ref.partition(":")
        return getattr(importlib.import_module(f"{__package__}.{module}"), func)

    def filename(self, stem: str) -> str:
        return f"{stem}{self.tail}"

    @property
    def suffix(self) -> str:
        return Path(f"stem{self.tail}").suffix  # Path(".onnx").suffix is "" (a dot file)

    def missing(self) -> list[str]:
        """Required modules that cannot be imported here, with the install that provides them."""
        absent = [mod for mod in self.requires if importlib.util.find_spec(mod) is None]
        return [f"{mod} ({_PROVIDER.get(mod, mod)})" for mod in absent]


# INT8 gates, the bar a quantized model must clear to ship: >= 98% argmax agreement with the float
# model and <= 0.5 accuracy points lost (a user should not see labels change on 1 face in 50).
INT8_CHECK = Check(0.98, None, 0.005)
_TF_ONNX = ("tensorflow", "tf2onnx", "onnx", "onnxruntime")
# LiteRT is required to verify TFLite files through the same interpreter the runtime uses.
_TF_LITE = ("tensorflow", "ai_edge_litert")

FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat(
            "onnx", ".onnx", "float32 ONNX (tf2onnx), dynamic batch, softmax probabilities",
            _TF_ONNX, False, Check(0.995, 1e-4), "onnx_float:export_onnx",
        ),
        ExportFormat(
            "onnx-int8", "-int8.onnx",
            "ONNX Runtime static INT8 (QDQ, per-channel weights), float input/output",
            _TF_ONNX, True, INT8_CHECK, "onnx_int8:export_onnx_int8",
        ),
        ExportFormat(
            "tflite", "-float32.tflite", "float32 TFLite",
            _TF_LITE, False, Check(0.995, 1e-4), "tflite:export_tflite_float32",
        ),
        ExportFormat(
            "tflite-fp16", "-float16.tflite", "TFLite with float16 weights (float32 compute on CPU)",
            _TF_LITE, False, Check(0.99, 0.02), "tflite:export_tflite_float16",
        ),
        ExportFormat(
            "tflite-int8", "-full-int8.tflite",
            "TFLite full integer: int8 weights, activations, input and output",
            _TF_LITE, True, INT8_CHECK, "tflite:export_tflite_int8",
        ),
    )
}


def parse_formats(text: str) -> list[ExportFormat]:
    """``"onnx,tflite-int8"`` or ``"all"`` -> table rows, in the order given, without repeats."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return list(FORMATS.values())
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise ValueError(
            f"unknown format {', '.join(unknown) or repr(text)}; choose from {', '.join(FORMATS)} or 'all'"
        )
    return [FORMATS[n] for n in dict.fromkeys(names)]


def formats_table() -> str:
    """The table as text, for ``edgefer export --help`` and ``--list-formats``."""
    rows = [("format", "file", "calibrated", "verified by"), *(
        (f.name, f.filename("STEM"), "yes" if f.calibrated else "no", f.check.describe())
        for f in FORMATS.values()
    )]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        "  " + "  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3] for r in rows
    )
