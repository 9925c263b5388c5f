"""The shared wrapper every format goes through, and the loop over the requested formats.

For each format: run its exporter (timed), insist on a non-empty file, attach edgefer
metadata (ONNX props + JSON card), verify against the float Keras model through the
runtime, record the verification in the metadata, and print one summary line. A failing
format is reported and the others still run.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgefer.runtime.errors import ExportError
from edgefer.runtime.metadata import card_path
from edgefer.train.data import Dataset

from .artifact_metadata import artifact_info, attach_metadata, with_verification
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


def export_format(fmt: ExportFormat, ctx: ExportContext, out_dir: Path, stem: str) -> ExportResult:
    path = out_dir / fmt.filename(stem)
    result = ExportResult(fmt.name, path)
    # A stale file must not pass the non-empty check, nor a stale card describe a new file.
    path.unlink(missing_ok=True)
    card_path(path).unlink(missing_ok=True)
    try:
        t0 = time.perf_counter()
        details = fmt.exporter(ctx, path)
        result.seconds = time.perf_counter() - t0
        if not path.is_file() or path.stat().st_size == 0:
            raise ExportError(f"{fmt.name}: the exporter wrote no data to {path}")
        result.size = path.stat().st_size
        calibration = None
        if fmt.calibrated and ctx.calib is not None:
            calibration = {**ctx.calib.describe(), "sampling": "class-balanced",
                           "preprocessing": "runtime normalize"}
        info = artifact_info(ctx.source.info, fmt.name, path.name, details, calibration)
        # Metadata first: verification loads the file through the runtime, which needs it.
        attach_metadata(path, info)
        if ctx.verify is not None and len(ctx.verify):
            t0 = time.perf_counter()
            reference = ctx.reference_probs()
            result.verification = verify_artifact(path, reference, ctx.verify, fmt.check, ctx.threads)
            result.verify_seconds = time.perf_counter() - t0
            attach_metadata(path, with_verification(info, result.verification.to_dict()))
            result.size = path.stat().st_size
    except Exception as exc:  # one broken format must not hide the others' results
        result.error = f"{type(exc).__name__}: {exc}"
    return result


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
