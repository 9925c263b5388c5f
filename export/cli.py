"""``edgefer export``: the command line over :func:`edgefer.export.runner.export_model`.

Registered through the ``edgefer.commands`` entry point; only argparse and the format
table are imported here, TensorFlow only once the command runs.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgefer.runtime.cli import CommandError

if TYPE_CHECKING:
    from edgefer.train.data import Dataset

from .formats import DEFAULT_OPSET, OPSETS, ExportFormat, formats_table, parse_formats

DEFAULT_CALIB_SIZE = 300  # training faces that calibrate the INT8 ranges

DESCRIPTION = """\
Export a trained Keras model to ONNX and TFLite, float and quantized, for the runtime.

MODEL is a run folder from `edgefer train` (its best.keras and run.json are used) or a
.keras file. Every artifact gets the model's labels and preprocessing: inside the .onnx
file (metadata_props) and in a JSON card with the same stem beside every file; for
.tflite the card is the only metadata, so keep the two together.

Each artifact is then loaded through the runtime (as `edgefer run` would) and compared
with the float Keras model on real faces of the run's validation split: argmax agreement,
largest probability difference, and accuracy before -> after. A format below its check makes the command
exit 1; its file is kept for inspection as STEM.rejected.SUFFIX. Each file is built under
a temporary name and renamed into place only once it has passed, so an earlier export at
the same name stays whole and loadable until then, even if the export is interrupted.
Every artifact records its sha256, which the runtime checks when it loads the model.

INT8 formats calibrate activation ranges on real training faces, sampled evenly across
classes and preprocessed exactly as the runtime does. Calibrating on random noise is how
quantized models silently lose accuracy; this command has no such fallback.
"""

EPILOG = """\
formats:
{table}

data (--calib-data ROOT):
  a FER2013 image tree: ROOT/train/<class>/*.jpg calibrates, ROOT/test/<class>/* verifies
  a CK+ class folder:   for a CK+ run, the split in its run.json: the training side calibrates,
                        the validation side verifies
  a class folder:       ROOT/<class>/*; verification uses images calibration did not (no
                        validation split: the model may have trained on them)
  fer2013.csv:          Training rows calibrate, PublicTest rows verify
  Default: the training data recorded in the run's run.json, if that path exists here.

examples:
  edgefer export runs/report
      float ONNX to runs/report/export/report.onnx (+ report.json), verified
  edgefer export runs/report --format all --calib-data ../shared/data/fer2013
  edgefer export runs/report/best.keras --format onnx-int8,tflite-int8 --out dist --name fer-report \\
      --calib-size 500 --verify-size all
  edgefer export --list-formats
"""


def _verify_size(text: str) -> int:
    if text.lower() == "all":
        return 1 << 31
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("use a positive number or 'all' (or --no-verify)")
    return n


def positive_int(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a Keras model to ONNX / TFLite (float, fp16, INT8) with metadata, verified",
        description=DESCRIPTION,
        epilog=EPILOG.format(table=formats_table()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", nargs="?", metavar="MODEL", help="run folder or .keras file")
    p.add_argument("--format", "-f", default="onnx", metavar="LIST",
                   help="comma-separated formats, or 'all' (default: onnx)")
    p.add_argument("--out", "-o", metavar="DIR",
                   help="output folder (default: MODEL's folder/export); never models/ unless you say so")
    p.add_argument("--name", metavar="STEM",
                   help="file name stem (default: the run folder's name, e.g. 'report')")
    p.add_argument("--calib-data", metavar="ROOT",
                   help="real faces for calibration and verification (see 'data' below)")
    p.add_argument("--calib-size", type=positive_int, default=DEFAULT_CALIB_SIZE, metavar="N",
                   help=f"calibration faces, balanced across classes (default: {DEFAULT_CALIB_SIZE}; "
                   "100-500 is typical)")
    p.add_argument("--verify-data", metavar="ROOT",
                   help="validation faces for verification if not those of --calib-data")
    p.add_argument("--verify-size", type=_verify_size, default=1000, metavar="N|all",
                   help="verification faces, class-proportional (default: 1000)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip verification (float formats only; INT8 still needs --calib-data)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset, {OPSETS.start}-{OPSETS.stop - 1} (default: {DEFAULT_OPSET})")
    p.add_argument("--seed", type=int, default=0, help="seed for sampling the faces (default: 0)")
    p.add_argument("--threads", type=positive_int, default=1, help="runtime threads when verifying (default: 1)")
    p.add_argument("--list-formats", action="store_true", help="print the table of formats and exit")
    p.set_defaults(func=run_export)


@dataclass(frozen=True)
class ExportRequest:
    """One `edgefer export` of a model: what, to which formats, on which faces, where."""

    model: str
    formats: str = "onnx"
    out: str | None = None
    name: str | None = None
    calib_data: str | None = None
    calib_size: int = DEFAULT_CALIB_SIZE
    verify_data: str | None = None
    verify_size: int = 1000
    verify: bool = True
    opset: int = DEFAULT_OPSET
    seed: int = 0
    threads: int = 1


def _data_root(calib_data: str | None, run: dict) -> Path | None:
    if calib_data:
        root = Path(calib_data)
        if not root.exists():
            raise CommandError(f"--calib-data {root}: not found")
        return root
    recorded = run.get("config", {}).get("data")
    if recorded and Path(recorded).exists():
        print(f"calibration/verification data: {recorded} (from run.json; --calib-data to change)")
        return Path(recorded)
    return None


def run_export(args: argparse.Namespace) -> int:
    if args.list_formats:
        print(formats_table())
        return 0
    if not args.model:
        raise CommandError("give MODEL, a run folder or .keras file (see edgefer export --help)")
    return export(ExportRequest(
        model=args.model, formats=args.format, out=args.out, name=args.name, calib_data=args.calib_data,
        calib_size=args.calib_size, verify_data=args.verify_data, verify_size=args.verify_size,
        verify=not args.no_verify, opset=args.opset, seed=args.seed, threads=args.threads,
    ))


def export(req: ExportRequest) -> int:
    """Export ``req.model``; 0 when every format passed its check, 1 otherwise (the command's exit code)."""
    formats = _checked_formats(req)
    # Quiet TensorFlow's C++ start-up logs unless the user asked for them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgefer.train.runfolder import RunFolder

    from .calibration import DataError
    from .runner import ExportError, export_model
    from .source import SourceError, default_stem, load_source, resolve_model_path

    try:
        run = RunFolder(resolve_model_path(req.model).parent).run_or_empty()
        roots = _data_roots(req, formats, run)
        source = load_source(req.model)
        model_path = source.path  # last.keras where best.keras did not load
        calib, verify = _faces(req, roots, run, source.info.labels, source.info.preprocess.size)
        out = Path(req.out) if req.out else model_path.parent / "export"
        card = source.info.card
        print(f"exporting {model_path} ({card.get('arch')}, {card.get('params'):,} params) -> {out}/")
        if calib is not None:
            print(f"calibration: {len(calib)} faces from the {calib.name}, balanced across classes")
        if verify is not None:
            print(f"verification: {len(verify)} faces from the {verify.name}")
        results = export_model(source, formats, out, req.name or default_stem(model_path), calib=calib,
                               verify=verify, opset=req.opset, threads=req.threads)
    except (SourceError, DataError, ExportError, json.JSONDecodeError) as exc:
        raise CommandError(str(exc).splitlines()[0]) from None
    for r in results:
        if r.error and "\n" in r.error:
            print(f"\n{r.format}: {r.error}")
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"{len(failed)} of {len(results)} formats failed or fell below their check")
        return 1
    return 0


def _checked_formats(req: ExportRequest) -> list[ExportFormat]:
    """The formats ``req`` asks for, each with what it needs installed, and a valid opset."""
    try:
        formats = parse_formats(req.formats)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if req.opset not in OPSETS:
        raise CommandError(f"--opset {req.opset}: use {OPSETS.start}..{OPSETS.stop - 1}")
    missing = [f"{f.name} needs {', '.join(f.missing())}" for f in formats if f.missing()]
    if missing:
        raise CommandError("missing requirements: " + "; ".join(missing) + "; pip install the extra named")
    return formats


def _data_roots(req: ExportRequest, formats: list[ExportFormat], run: dict) -> tuple[Path | None, Path | None]:
    """Where calibration faces come from (None: no INT8 format asks) and verification faces (None: --no-verify)."""
    root = _data_root(req.calib_data, run)
    vroot = Path(req.verify_data) if req.verify_data else root
    calibrated = [f.name for f in formats if f.calibrated]
    if calibrated and root is None:
        raise CommandError(f"{', '.join(calibrated)} calibrate on real faces: pass --calib-data ROOT "
                           "(e.g. ../shared/data/fer2013)")
    if vroot is None and req.verify:
        raise CommandError("verification needs real faces: pass --calib-data ROOT "
                           "(or --verify-data ROOT), or --no-verify")
    return (root if calibrated else None), (vroot if req.verify else None)


def _faces(req: ExportRequest, roots: tuple[Path | None, Path | None], run: dict, labels: tuple[str, ...],
           size: tuple[int, int]) -> tuple[Dataset | None, Dataset | None]:
    """The calibration and verification faces (either None where it is not needed)."""
    from .calibration import load_calibration, load_verification, run_split

    croot, vroot = roots
    split = run_split(run)
    calib = load_calibration(croot, labels, size, req.calib_size, req.seed, split) if croot is not None else None
    verify = (load_verification(vroot, labels, size, req.verify_size, req.seed, calib, split)
              if vroot is not None else None)
    return calib, verify
