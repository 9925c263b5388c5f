"""``edgefer ship RUN --name NAME``: a training run becomes the shipped models, cards and tables.

The release steps, in order, each a library call:

1. export float ONNX, INT8 ONNX and INT8 TFLite into OUT (:func:`edgefer.export.runner.export_model`),
   calibrated on CALIB_SIZE training faces and verified on every validation face;
2. evaluate the run and the three files on the same images (``edgefer.train.evaluate``), record
   the metrics in every file's card and write OUT/EVAL_NAME.md;
3. more views of the float model, recorded in its card: PublicTest without the images
   pixel-identical to a training image, with horizontal-flip averaging, and as the runtime
   frames it (BlazeFace's box plus margin, ``edgefer.train.recrop``); every file on all of CK+48
   beside the data, and the float model on CK+48 as the runtime frames it (cross-dataset);
4. copy the run's history.csv to OUT/reports/NAME/ and write the one-page report there
   (:func:`edgefer.train.report.write_model_report`);
5. fill the blocks eval-NAME, train-NAME and variants-NAME of the README
   (:func:`edgefer.export.readme_blocks.splice`), in one atomic rewrite.

The README is checked for the three marker pairs before anything is exported, so a missing
block costs nothing but a one-line error.

Where this command lives: it needs export's converters and train's evaluation. export already
depends on train (source.py loads checkpoints through ``edgefer.train.checkpoints``;
calibration.py, runner.py and verify.py use ``edgefer.train.data`` and ``.evaluate``), while
train never imports export, so the command belongs in export and the direction
runtime <- train <- export stays as it is.

Only the standard library is imported at start-up; numpy, OpenCV, onnxruntime and TensorFlow
load inside :func:`ship`, so ``edgefer --help`` stays instant.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefer.runtime.errors import DataError, ExportError, UsageError
from edgefer.train.runfolder import RunFolder

from .cli import DEFAULT_CALIB_SIZE, positive_int
from .readme_blocks import check_blocks, eval_block, run_summary, splice, variants_block

if TYPE_CHECKING:
    from edgefer.train.data import Dataset
    from edgefer.train.eval_data import EvalData
    from edgefer.train.evaluate import Evaluation

FORMATS = "onnx,onnx-int8,tflite-int8"
DATASETS = ("fer2013", "ferplus")  # what the duplicate exclusion and the variants table know
ALL_FACES = 1 << 31  # verification on every validation face, as `--verify-size all`

DESCRIPTION = """\
Ship a training run: export it into OUT as float ONNX, INT8 ONNX and INT8 TFLite (each with
its card), evaluate the run and the three files on the same images and record the metrics in
every card, record more views of the float model (without PublicTest's training
duplicates; with flip averaging; as the runtime's detector and crop frame each face; all of
CK+48 beside the data, a cross-dataset score), write OUT/EVAL_NAME.md and the report in OUT/reports/NAME/,
and fill the blocks eval-NAME, train-NAME and variants-NAME of the README.

The README must already hold the three marker pairs, e.g. <!-- begin:eval-NAME --> and
<!-- end:eval-NAME -->; the command checks them before it exports anything and rewrites the
README atomically at the end.
"""

EPILOG = """\
examples:
  edgefer ship runs/edge --name fer2013
  edgefer ship runs/ferplus --name ferplus --data ../shared/data/fer2013 --dataset ferplus
  edgefer ship runs/edge --name trial --out /tmp/models --readme /tmp/models/README.md
"""


@dataclass(frozen=True)
class ShipRequest:
    """What to ship and where; ``data`` and ``dataset`` None: as the run recorded them."""

    run: Path
    name: str
    data: str | None = None
    dataset: str | None = None
    out: Path = Path("models")
    calib_size: int = DEFAULT_CALIB_SIZE
    calib_seed: int = 0
    readme: Path | None = None

    @property
    def readme_path(self) -> Path:
        return self.readme if self.readme is not None else self.out / "README.md"

    @property
    def keys(self) -> tuple[str, str, str]:
        """The README blocks this run fills: its comparison table, its training, its float model's variants."""
        return f"eval-{self.name}", f"train-{self.name}", f"variants-{self.name}"

    def command(self) -> str:
        """The command line that ships this request, recorded in the cards and tables it measured."""
        parts = ["edgefer", "ship", str(self.run), "--name", self.name]
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in ("run", "name") and value is not None and value != f.default:
                parts += ["--" + f.name.replace("_", "-"), str(value)]
        return " ".join(shlex.quote(p) for p in parts)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ship", help="export a run into models/, measure every file, fill models/README.md's tables",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", metavar="RUN", help="run folder from `edgefer train` (best.keras, run.json, history.csv)")
    p.add_argument("--name", required=True, metavar="NAME",
                   help="file stem of the shipped models (NAME.onnx, NAME-int8.onnx, NAME-full-int8.tflite)")
    p.add_argument("--data", metavar="DIR",
                   help="FER2013 image tree for calibration and evaluation (default: the run's recorded data)")
    p.add_argument("--dataset", choices=DATASETS,
                   help="labels the evaluations score against (default: the run's dataset)")
    p.add_argument("--out", default=str(ShipRequest.out), metavar="DIR",
                   help=f"folder of the shipped models (default: {ShipRequest.out})")
    p.add_argument("--calib-size", type=positive_int, default=ShipRequest.calib_size, metavar="N",
                   help="training faces that calibrate the INT8 ranges, balanced across classes "
                   f"(default: {ShipRequest.calib_size})")
    p.add_argument("--calib-seed", type=int, default=ShipRequest.calib_seed, metavar="S",
                   help=f"which faces calibrate (default: {ShipRequest.calib_seed}); the sample moves INT8 "
                   "accuracy by about 0.2 points")
    p.add_argument("--readme", metavar="PATH", help="README with the marker blocks (default: OUT/README.md)")
    p.set_defaults(func=_run_ship)


@dataclass
class ShipResult:
    artifacts: list[Path]
    eval_report: Path
    report: Path
    readme: Path
    blocks: dict[str, str] = field(default_factory=dict)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _run_ship(args: argparse.Namespace) -> int:
    req = ShipRequest(
        run=Path(args.run), name=args.name, data=args.data, dataset=args.dataset, out=Path(args.out),
        calib_size=args.calib_size, calib_seed=args.calib_seed, readme=Path(args.readme) if args.readme else None,
    )
    result = ship(req)
    for path in [*result.artifacts, result.eval_report, result.report]:
        print(f"wrote {path}")
    print(f"filled {', '.join(result.blocks)} in {result.readme}")
    return 0


def _check_request(req: ShipRequest) -> None:
    name = req.name
    if not name or name.startswith(".") or any(c in name for c in "/\\ ") or Path(name).name != name:
        raise UsageError(f"--name {name!r}: use a plain file stem such as fer2013")
    if not req.run.is_dir():
        raise UsageError(f"{req.run}: not a run folder")
    run = RunFolder(req.run)
    for needed in (run.run_json, run.history):
        if not needed.is_file():
            raise DataError(f"{req.run}: no {needed.name} (is it an `edgefer train` run folder?)")


def ship(req: ShipRequest, progress: Callable[[str], None] = _stderr) -> ShipResult:
    """Run every release step for ``req`` (see the module docstring); returns what was written."""
    train_text = _preflight(req)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up logs
    spec = _eval_data(req, progress)

    progress(f"ship [1/5] export {FORMATS} of {req.run} -> {req.out}/ (calibration data {spec.data})")
    artifacts = _export(req, spec.data)

    progress(f"ship [2/5] evaluate {req.run} and {len(artifacts)} files on {spec.title()}")
    measured = _Measure(spec, req.command())
    table, eval_report = _compare(req, measured, artifacts)
    float_model = artifacts[0]
    _variants(measured, artifacts, progress)

    reports = req.out / "reports" / req.name
    progress(f"ship [4/5] report of {float_model.name} -> {reports}/")
    report = _report(req, float_model, reports, spec)

    eval_key, train_key, variants_key = req.keys
    blocks = {
        eval_key: eval_block(req.command(), table),
        train_key: train_text,
        variants_key: variants_block(measured.recorded[float_model], spec.key()),
    }
    readme = req.readme_path
    progress(f"ship [5/5] fill {', '.join(blocks)} in {readme}")
    splice(readme, blocks)
    return ShipResult(artifacts, eval_report, report, readme, blocks)


def _preflight(req: ShipRequest) -> str:
    """Every check that needs no export, so a bad request costs one line; returns the train block's text."""
    _check_request(req)
    check_blocks(req.readme_path, req.keys)
    try:  # a run it cannot summarise fails before any export
        return run_summary(req.run)
    except (ValueError, KeyError) as exc:
        raise DataError(f"{req.run}: run.json or history.csv lacks what the train-{req.name} block shows "
                        f"({type(exc).__name__}: {exc})") from exc


def _eval_data(req: ShipRequest, progress: Callable[[str], None]) -> EvalData:
    """The images every step scores on: the request's data and dataset, else the run's recorded ones."""
    from edgefer.train.eval_data import choose_eval_data, recorded_of

    given = {k: v for k, v in (("dataset", req.dataset), ("data", req.data)) if v is not None}
    spec = choose_eval_data(given, recorded_of(req.run, {}))
    if spec.dataset not in DATASETS:
        raise UsageError(f"{req.run} trained on {spec.dataset}: ship handles {' and '.join(DATASETS)} runs")
    if spec.warning:
        progress(f"warning: {spec.warning}")
    return spec


def _compare(req: ShipRequest, measured: _Measure, artifacts: list[Path]) -> tuple[str, Path]:
    """Step 2: the run and its files on the same images; the table, and OUT/EVAL_NAME.md holding it."""
    from edgefer.runtime.atomic import write_text

    table, sections = measured.compare([req.run, *artifacts])
    eval_report = req.out / f"EVAL_{req.name}.md"
    write_text(eval_report, f"# edgefer eval on {measured.title()}\n\ncommand: `{req.command()}`\n\n{table}\n\n"
               + "\n".join(sections))
    return table, eval_report


def _variants(measured: _Measure, artifacts: list[Path], progress: Callable[[str], None]) -> None:
    """Step 3: the float model's other views, and every file on all of CK+48 beside the data."""
    from edgefer.train.eval_data import EvalData

    float_model = artifacts[0]
    progress(f"ship [3/5] variants of {float_model.name}: without training duplicates, with flip averaging, "
             "through the detector")
    measured.variant(float_model, exclude_train_duplicates=True)
    measured.variant(float_model, flip_tta=True)
    measured.variant(float_model, detector_crops=True)
    ckplus = Path(measured.spec.data).parent / "ckplus"
    if not ckplus.is_dir():
        progress(f"ship [3/5] no {ckplus} beside the data: the cards carry no cross-dataset score")
        return
    progress(f"ship [3/5] cross-dataset: {len(artifacts)} files on every image of {ckplus}")
    everything = EvalData(dataset="ckplus", data=str(ckplus), split="all")
    measured.cross_dataset(artifacts, everything)
    measured.cross_dataset([float_model], everything, detector_crops=True)


def _report(req: ShipRequest, float_model: Path, reports: Path, spec: EvalData) -> Path:
    """Step 4: the run's curves beside the shipped model's one-page report."""
    from edgefer.runtime.atomic import write_bytes
    from edgefer.train.report import write_model_report

    reports.mkdir(parents=True, exist_ok=True)
    history = RunFolder(reports).history
    write_bytes(history, RunFolder(req.run).history.read_bytes())
    return write_model_report(float_model, reports, {"dataset": spec.dataset, "data": spec.data}, history)


def _export(req: ShipRequest, data: str) -> list[Path]:
    from .calibration import load_calibration, load_verification
    from .formats import parse_formats
    from .runner import export_model
    from .source import load_source

    if not Path(data).exists():
        raise DataError(f"{data}: not found (calibration and evaluation data); pass --data DIR")
    source = load_source(req.run)
    labels, size = source.info.labels, source.info.preprocess.size
    calib = load_calibration(data, labels, size, req.calib_size, req.calib_seed)
    verify = load_verification(data, labels, size, ALL_FACES, req.calib_seed, calib)
    results = export_model(source, parse_formats(FORMATS), req.out, req.name, calib=calib, verify=verify)
    failed = [r for r in results if not r.ok]
    if failed:
        why = "; ".join(f"{r.format}: {(r.error or r.summary()).splitlines()[0]}" for r in failed)
        raise ExportError(f"{len(failed)} of {len(results)} formats failed, nothing measured or spliced: {why}")
    return [r.path for r in results]


class _Measure:
    """Scores models on the images of one EvalData and records the metrics in their cards.

    Faces are loaded once per input size (as `edgefer eval` does); the card entries have the
    fields `edgefer eval --write-card` writes, with this ship command as ``measured_by``.
    """

    def __init__(self, spec: EvalData, command: str) -> None:
        self.spec = spec
        self.command = command
        self.data: dict[tuple[int, int], tuple[Dataset, str]] = {}
        self.recorded: dict[Path, dict[str, dict[str, Any]]] = {}  # model -> metric key -> metrics

    def _faces(self, size: tuple[int, int]) -> tuple[Dataset, str]:
        from edgefer.train.eval_data import load_eval_data

        if size not in self.data:
            self.data[size] = load_eval_data(self.spec, size)
        return self.data[size]

    def title(self) -> str:
        return " and ".join(dict.fromkeys(d.name for d, _ in self.data.values()))

    def compare(self, models: list[Path]) -> tuple[str, list[str]]:
        """Evaluate ``models`` (the first is the reference); the comparison table and one section per model."""
        from edgefer.train.evaluate import evaluate, input_size, load_predictor
        from edgefer.train.evaluate_cli import comparison_table, eval_section, speed

        evals, sections = [], []
        timing: dict[Path, tuple[float, float]] = {}
        for path in models:
            predictor = load_predictor(path)
            data, key = self._faces(input_size(predictor))
            ev = evaluate(predictor, data)
            timing[ev.path] = speed(predictor, data.x)
            evals.append(ev)
            sections.append(eval_section(str(path), ev))
            if ev.format != "keras":  # a run folder has no card; its figures are the table's first row
                self._record(path, key, ev, timing[ev.path])
        return comparison_table(evals, timing), sections

    def variant(self, path: Path, exclude_train_duplicates: bool = False, flip_tta: bool = False,
                detector_crops: bool = False) -> None:
        """Evaluate one model on a variant of the data and record it under the variant's key."""
        from edgefer.train.eval_data import load_eval_data
        from edgefer.train.evaluate import evaluate, input_size, load_predictor
        from edgefer.train.recrop import through_detector

        predictor = load_predictor(path, flip_tta=flip_tta)
        size = input_size(predictor)
        if exclude_train_duplicates:
            data, key = load_eval_data(self.spec, size, exclude_train_duplicates=True)
        else:
            data, key = self._faces(size)
        if detector_crops:
            data, key = through_detector(data, key, predictor.info.preprocess)
        key += "-flip-tta" if flip_tta else ""
        self._record(path, key, evaluate(predictor, data), None)

    def cross_dataset(self, models: list[Path], other: EvalData, detector_crops: bool = False) -> None:
        """Score ``models`` on a dataset none of them trained or was selected on, and record it."""
        from edgefer.train.eval_data import load_eval_data
        from edgefer.train.evaluate import evaluate, input_size, load_predictor
        from edgefer.train.recrop import through_detector

        faces: dict[tuple[int, int], tuple[Dataset, str]] = {}
        for path in models:
            predictor = load_predictor(path)
            size = input_size(predictor)
            if size not in faces:  # every artifact of a run reads the same size: load the images once
                faces[size] = load_eval_data(other, size)
                if detector_crops:
                    faces[size] = through_detector(*faces[size], predictor.info.preprocess)
            data, key = faces[size]
            self._record(path, key, evaluate(predictor, data), None)

    def _record(self, path: Path, key: str, ev: Evaluation, timing: tuple[float, float] | None) -> None:
        from edgefer.train.cards import record_metrics
        from edgefer.train.evaluate_cli import card_metrics

        metrics = card_metrics(ev, self.command, timing)
        record_metrics(path, key, metrics)
        self.recorded.setdefault(path, {})[key] = metrics
