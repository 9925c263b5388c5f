"""`edgefer train`, `edgefer eval` and `edgefer inspect`.

Registered through the ``edgefer.commands`` entry points. Only argparse and the standard-library
settings of config.py are imported here; TensorFlow loads inside the command that needs it, so
``edgefer --help`` stays instant.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgefer.runtime.errors import UsageError

from .config import (
    CKPLUS_DEFAULT,
    DATA_KEYS,
    DATASETS,
    DEFAULT_DATA,
    DEFAULT_DATA_OF,
    add_train_arguments,
    config_from_args,
)


def _need_train_extra() -> None:
    from edgefer.runtime.cli import CommandError

    try:
        import keras  # noqa: F401
    except ImportError as exc:
        raise CommandError("this command needs TensorFlow: pip install 'edgefer[train]'") from exc


def _add_data_args(p: argparse.ArgumentParser) -> None:
    """The data options of eval and inspect. None means not given: the model's own record decides."""
    p.add_argument(
        "--data", default=None,
        help="FER2013 image tree (train/, test/ of <class>/ folders), the Kaggle fer2013.csv, "
        "or a CK+48 folder with --dataset ckplus (default: the folder the run recorded, else "
        f"{DEFAULT_DATA_OF['fer2013']}, or {DEFAULT_DATA_OF['ckplus']} for CK+)",
    )
    p.add_argument(
        "--dataset", choices=DATASETS, default=None,
        help="fer2013 labels, FER+ majority labels (ferplus_join.csv beside the image tree), or CK+ "
        "(default: the dataset the run's run.json or the model's card records, else fer2013)",
    )
    p.add_argument(
        "--split", default=None,
        help="fer2013: train | test (= PublicTest, the default); ckplus: random | subject (the validation "
        "side of that split) | all (every image; the default for a model that did not train on CK+)",
    )
    p.add_argument("--seed", type=int, default=None,
                   help=f"seed of the CK+ split (default: the run's, else {CKPLUS_DEFAULT.seed})")
    p.add_argument("--val-fraction", type=float, default=None,
                   help=f"CK+ validation fraction (default: the run's, else {CKPLUS_DEFAULT.val_fraction})")
    p.add_argument(
        "--exclude-train-duplicates", action="store_true",
        help="FER2013/FER+: leave out test images pixel-identical to a training image (about 280 of PublicTest)",
    )


def _given_data(args: argparse.Namespace) -> dict:
    """The data options given on the command line (argparse leaves the others None)."""
    return {k: getattr(args, k) for k in DATA_KEYS if getattr(args, k) is not None}


# ---------------------------------------------------------------- train
def register_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a Keras model (reference, report, ckplus, edge) with checkpoints and resume",
        description="Train a model; every epoch writes last.keras, best.keras and a history.csv row "
        "to the run folder, so a killed run continues with --resume. A report.md with curves, "
        "confusion matrix and first-layer kernels is written at the end.",
        epilog="examples:\n"
        "  edgefer train --arch report --out runs/report                 # FER2013, 25 epochs\n"
        "  edgefer train --out runs/report --resume                      # continue after a kill, as recorded\n"
        "  edgefer train --recipe fer2013-edge --out runs/fer2013-edge   # every stage of the default model;\n"
        "      # the same line again after a kill resumes it (train/recipes/ holds the shipped recipes)\n"
        "  edgefer train --arch ckplus --dataset ckplus --data ../shared/data/ckplus --split subject\n"
        "  edgefer train --arch report --data fer2013.csv                # the Kaggle CSV\n"
        "  edgefer train --arch edge --augment --label-smoothing 0.1 --schedule cosine --warmup-epochs 2 \\\n"
        "      --weight-decay 0.01 --lr 0.002 --epochs 50 --precision auto   # the edge recipe\n"
        "  edgefer train --arch edge --init-from models/fer2013.onnx --lr 0.001 ...    # a new cycle from it\n"
        "  edgefer train --arch edge --dataset ferplus --init-from models/fer2013.onnx ... # FER+ (8 classes)\n"
        "  KERAS_BACKEND=jax edgefer train --arch edge_wide --epochs 300 --time-budget 420 --workers 4 ...\n"
        "      # a GPU machine without TensorFlow: as many epochs as fit in 7 minutes",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_train_arguments(p)
    p.add_argument("--recipe", metavar="NAME|FILE",
                   help="run a multi-stage recipe (a shipped one by name, or a TOML file) into --out; "
                   "rerunning the same command after a kill resumes it (see train/recipe.py)")
    p.add_argument("--no-report", action="store_true", help="skip report.md at the end")
    p.add_argument("--no-progress", action="store_true",
                   help="no step/ETA lines within and after each epoch (Keras' own output only)")
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from edgefer.runtime.cli import CommandError

    if args.recipe:
        return _train_recipe(args)
    cfg = config_from_args(args)
    _need_train_extra()
    from .data import DataError
    from .trainer import train
    from .transfer import TransferError

    try:
        out = train(cfg, progress=not args.no_progress)
    except (DataError, TransferError) as exc:
        raise CommandError(str(exc)) from exc
    if not args.no_report:
        _write_reports(out)
    return 0


RECIPE_FLAGS = ("out", "data")  # what a recipe leaves to its command line: where things are


def _train_recipe(args: argparse.Namespace) -> int:
    from .config import flag_of, option_fields
    from .recipe import load_recipe

    others = [flag_of(f) for f in option_fields() if hasattr(args, f.name) and f.name not in RECIPE_FLAGS]
    if others:
        raise UsageError(f"--recipe: {others[0]} is the recipe's to set; with --recipe give only --out and --data")
    if not getattr(args, "out", None):
        raise UsageError("--recipe needs --out DIR, the folder its stages train into")
    recipe = load_recipe(args.recipe)
    _need_train_extra()
    from .recipe_run import run_recipe, with_data

    run_recipe(with_data(recipe, getattr(args, "data", None)), Path(args.out), progress=not args.no_progress,
               report=not args.no_report)
    return 0


def _write_reports(run: Path) -> None:
    from .runfolder import RunFolder
    from .trainer import report

    for path in report(RunFolder(run)):
        print(f"report: {path}")


# ---------------------------------------------------------------- average
def register_average(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "average", help="average the weights of several checkpoints of one network (SWA, model soups)",
        description="Write a run folder whose best.keras holds the mean weights of the given checkpoints, "
        "with BatchNorm statistics re-estimated on training faces, and print its validation accuracy. "
        "Members must share the architecture and a starting point: the epochs of one run (its snapshots/ "
        "from `edgefer train --average-last N`) or runs that continued from the same model. That model "
        "may be a member as the float .onnx file they started from (--init-from), after a training "
        "checkpoint: a soup of a shipped model and its continuation. The result exports, evaluates and "
        "inspects like any run folder.",
        epilog="examples:\n"
        "  edgefer average runs/swa/snapshots/*.weights.h5 --out runs/swa-avg\n"
        "  edgefer average runs/cycle2 runs/cycle2/last.keras runs/cycle3 --out runs/soup\n"
        "  edgefer average runs/cycle2 models/fer2013.onnx --out runs/soup   # cycle2 started from it\n"
        "  edgefer export runs/soup --format onnx,onnx-int8 --out models --name fer-soup",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("members", nargs="+", help="run folders (best.keras), .keras files, .weights.h5 "
                   "snapshots, or after them the float .onnx model the runs started from")
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument("--data", default=DEFAULT_DATA, help=f"training/validation data (default: {DEFAULT_DATA})")
    p.add_argument("--dataset", choices=("fer2013", "ferplus"), default=None,
                   help="labels to evaluate against (default: the first member's run)")
    p.add_argument("--no-report", action="store_true", help="skip report.md")
    p.set_defaults(func=_average)


def _average(args: argparse.Namespace) -> int:
    from edgefer.runtime.cli import CommandError

    _need_train_extra()
    from edgefer.runtime.preprocess import PreprocessSpec

    from .average import AverageError, batchnorm_sample, member_path, run_folder, write_averaged_run
    from .data import DataError
    from .recrop import training_crops
    from .trainer import TrainConfig, load_splits

    try:
        first = run_folder(member_path(args.members[0])).read_run()
        dataset = args.dataset or first["config"].get("dataset", "fer2013")
        train_ds, val_ds, _ = load_splits(TrainConfig(data=args.data, dataset=dataset, preprocess=first["preprocess"]))
        # BatchNorm statistics come from faces framed as the members trained on them; only the
        # sampled faces are re-cropped (the whole training set through the detector takes ~90 s).
        train_ds = training_crops(batchnorm_sample(train_ds), first["config"].get("crops", "dataset"),
                                  PreprocessSpec.from_dict(first["preprocess"]))
        out = write_averaged_run(args.members, args.out, train_ds, val_ds)
    except (AverageError, DataError) as exc:
        raise CommandError(str(exc)) from exc
    if not args.no_report:
        _write_reports(out)
    return 0


# ---------------------------------------------------------------- eval
def register_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="accuracy, balanced accuracy, per-class recall, confusion matrix; compare artifacts",
        description="Evaluate one or more models (Keras .keras / run folder, .onnx, .tflite) on the same "
        "data: by default the validation data the first model's run.json records (for CK+, the run's "
        "own validation split), or the dataset its card names. With several models it prints one table: "
        "format, size, accuracy, balanced accuracy, change vs the first model, arg-max agreement with it, "
        "ms per face (batch 1), faces/s (batch 64).",
        epilog="examples:\n"
        "  edgefer eval models/fer2013.onnx\n"
        "  edgefer eval runs/report models/fer2013.onnx models/fer2013-int8.onnx --out table.md\n"
        "  edgefer eval models/*.onnx --write-card      # record the metrics in each model's card",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("models", nargs="+", help="model files or run folders; the first is the reference")
    _add_data_args(p)
    p.add_argument("--threads", type=int, default=1, help="inference threads for ONNX/TFLite (default 1)")
    p.add_argument("--no-timing", action="store_true", help="skip the latency columns")
    p.add_argument("--flip-tta", action="store_true", help="average each face with its mirror image")
    p.add_argument("--detector-crops", action="store_true",
                   help="score each face as the runtime frames it: placed on a grey frame, found by BlazeFace, "
                   "cropped by the model's margin (a face it misses keeps its own crop)")
    p.add_argument("--out", help="also write the report as Markdown here")
    p.add_argument("--json", help="also write all metrics as JSON here")
    p.add_argument("--write-card", action="store_true", help="store the metrics in each model's card")
    p.add_argument("--no-verify", action="store_true",
                   help="skip each model file's sha256 check (for a model you edited on purpose)")
    p.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    from .evaluate_cli import EvalRequest, run_eval

    return run_eval(EvalRequest(
        models=args.models, data=_given_data(args), exclude_train_duplicates=args.exclude_train_duplicates,
        threads=args.threads, flip_tta=args.flip_tta, detector_crops=args.detector_crops,
        verify=not args.no_verify, timing=not args.no_timing,
        out=args.out, json=args.json, write_card=args.write_card,
    ))


# ---------------------------------------------------------------- inspect
def register_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect", help="one-page report for a model: confusion matrix, kernels, filtered images, samples",
        description="Write report.md (+ PNGs) for a saved model or run folder: training curves (run "
        "folders), confusion matrix (counts and row-normalised), per-class precision/recall/F1, sample "
        "images per class, first-layer kernels and one real image filtered by each kernel.",
        epilog="example:\n  edgefer inspect runs/report --out runs/report\n"
        "  edgefer inspect models/fer2013.onnx --out reports/shipped",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="run folder, .keras or .onnx file")
    _add_data_args(p)
    p.add_argument("--out", help="output folder (default: the run folder, or reports/<model stem>)")
    p.add_argument("--history", help="history.csv of the training run, for the curves of an exported model")
    p.set_defaults(func=_inspect)


def _inspect(args: argparse.Namespace) -> int:
    from .report import write_model_report

    model = Path(args.model)
    out = Path(args.out) if args.out else (model if model.is_dir() else Path("reports") / model.stem)
    history = Path(args.history) if args.history else None
    print(f"report: {write_model_report(model, out, _given_data(args), history, args.exclude_train_duplicates)}")
    return 0
