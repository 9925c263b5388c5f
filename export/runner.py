"""The shared wrapper every format goes through, and the loop over the requested formats.

For each format: run its exporter (timed) into a temporary file beside the final name,
insist on a non-empty file, attach edgefer metadata (ONNX props + JSON card) and the
integrity hash, load it through the runtime, verify it against the float Keras model,
record the verification in the metadata, and only then rename it over the final name. A
previous model at that name stays in place, whole and loadable, until its replacement has
passed; an interrupted export leaves it untouched. A failing format is kept beside it as
``STEM.rejected.SUFFIX`` for inspection and the other formats still run.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgefer.runtime.atomic import atomic_path, temp_sibling
from edgefer.runtime.classifiers import load_classifier
from edgefer.runtime.errors import ExportError
from edgefer.runtime.metadata import ModelInfo, card_path, pause_for_tests, write_card
from edgefer.train.data import Dataset

from .artifact_metadata import artifact_info, attach_metadata, card_extra, with_verification
from .context import DEFAULT_OPSET, ExportContext
from .formats import ExportFormat
from .source import SourceModel
from .verify import Verification, verify_artifact


@dataclass
class ExportResult:
    format: str
    path: Path
    size: int = 0
    seconds: float = 0.0  # conversion time, metadata and verification excluded
    verify_seconds: float = 0.0
    verification: Verification | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and (self.verification is None or self.verification.passed)

    def summary(self, float_bytes: int | None = None) -> str:
        head = f"{self.format:<12} {self.path.name:<28}"
        if self.error is not None:
            return f"{head} FAILED: {self.error.splitlines()[0]}"
        # Size against float32 weights (4 bytes a parameter): the number quantization is judged by.
        shrink = float_bytes / self.size if float_bytes and self.size else 0.0
        ratio = f" ({shrink:.1f}x smaller)" if shrink >= 1.2 else ""
        line = f"{head} {self.size / 1e6:7.2f} MB{ratio:<17} {self.seconds:5.1f}s"
        if self.verification is None:
            return f"{line}  not verified"
        status = "ok" if self.verification.passed else f"BELOW CHECK ({self.verification.check})"
        return f"{line}  {self.verification.summary()}  {status}"


def check_ready(formats: Sequence[ExportFormat], calib: Dataset | None) -> None:
    """Fail before any work if a format lacks a module or calibration images."""
    problems = [f"{f.name} needs {', '.join(f.missing())}" for f in formats if f.missing()]
    if problems:
        raise ExportError("missing requirements: " + "; ".join(problems))
    if calib is None and any(f.calibrated for f in formats):
        names = ", ".join(f.name for f in formats if f.calibrated)
        raise ExportError(f"{names} calibrate on real images: give calibration data (--calib-data)")


def rejected_path(path: Path) -> Path:
    """Where an artifact that failed its check is kept: ``report-int8.onnx`` -> ``report-int8.rejected.onnx``."""
    return path.with_name(f"{path.stem}.rejected{path.suffix}")


def publish(tmp: Path, final: Path, info: ModelInfo) -> None:
    """Rename a finished artifact over ``final``, then write its card (naming ``final``).

    The model goes first: for ONNX the card is only a copy, and for TFLite a kill between
    the two renames leaves a card whose hash refuses the new file rather than a silent mix.
    """
    with atomic_path(final) as staged:
        os.replace(tmp, staged)
        pause_for_tests(final)
    write_card(final, info, extra={**card_extra(final), "size_bytes": final.stat().st_size})


def _discard(tmp: Path) -> None:
    tmp.unlink(missing_ok=True)
    card_path(tmp).unlink(missing_ok=True)


def export_format(fmt: ExportFormat, ctx: ExportContext, out_dir: Path, stem: str) -> ExportResult:
    path = out_dir / fmt.filename(stem)
    result = ExportResult(fmt.name, path)
    # Everything is built and checked under a temporary name: the final name keeps the previous
    # good model until this one has passed.
    tmp = temp_sibling(path)
    try:
        _build_and_check(fmt, ctx, tmp, result)
    except Exception as exc:  # one broken format must not hide the others' results
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        _discard(tmp)
    return result


def _build_and_check(fmt: ExportFormat, ctx: ExportContext, tmp: Path, result: ExportResult) -> None:
    t0 = time.perf_counter()
    details = fmt.exporter(ctx, tmp)
    result.seconds = time.perf_counter() - t0
    if not tmp.is_file() or tmp.stat().st_size == 0:
        raise ExportError(f"{fmt.name}: the exporter wrote no data to {result.path}")
    calibration = None
    if fmt.calibrated and ctx.calib is not None:
        calibration = {**ctx.calib.describe(), "sampling": "class-balanced",
                       "preprocessing": "runtime normalize"}
    info = artifact_info(ctx.source.info, fmt.name, result.path.name, details, calibration)
    # Metadata first: the runtime needs it to load the file, with every check it makes at load.
    info = attach_metadata(tmp, info)
    load_classifier(tmp, threads=ctx.threads)
    if ctx.verify is not None and len(ctx.verify):
        t0 = time.perf_counter()
        reference = ctx.reference_probs()
        result.verification = verify_artifact(tmp, reference, ctx.verify, fmt.check, ctx.threads)
        result.verify_seconds = time.perf_counter() - t0
        info = attach_metadata(tmp, with_verification(info, result.verification.to_dict()))
    result.size = tmp.stat().st_size
    if not result.ok:
        result.path = rejected_path(result.path)
    publish(tmp, result.path, info)


def export_model(
    source: SourceModel,
    formats: Sequence[ExportFormat],
    out_dir: str | Path,
    stem: str,
    calib: Dataset | None = None,
    verify: Dataset | None = None,
    opset: int = DEFAULT_OPSET,
    threads: int = 1,
    echo: Callable[[str], None] | None = print,
) -> list[ExportResult]:
    """Export ``source`` to every format in ``formats``; returns one result per format."""
    check_ready(formats, calib)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    float_bytes = 4 * int(source.info.card.get("params") or source.model.count_params())
    results = []
    with tempfile.TemporaryDirectory(prefix="edgefer-export-") as tmp:
        ctx = ExportContext(source=source, workdir=Path(tmp), calib=calib, verify=verify, opset=opset,
                            threads=threads)
        for fmt in formats:
            result = export_format(fmt, ctx, out, stem)
            results.append(result)
            if echo is not None:
                echo(result.summary(float_bytes))
    return results
