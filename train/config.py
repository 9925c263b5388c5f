"""Every setting of a training run, defined once: `TrainConfig` and the `edgefer train` options made from it.

Each field carries its CLI flag, help text, choices, argument group and what a resume may do
with it, so a new setting is one field here. Only the standard library (and the light error
classes) is imported: ``edgefer --help`` registers these options without loading numpy or Keras.
"""

from __future__ import annotations

import argparse
import copy
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar, cast

from edgefer.runtime.errors import EdgeferError, UsageError

if typing.TYPE_CHECKING:
    from .runfolder import RunFolder

DEFAULT_DATA = "../shared/data/fer2013"
ARCH_NAMES = ("reference", "report", "ckplus", "edge", "edge_fast", "edge_wide")
DATASETS = ("fer2013", "ferplus", "ckplus")
CROPS = ("dataset", "detector", "both")  # train/recrop.py makes the latter two
# Where each dataset lies unless told: a model card names its dataset but not the folder it was read from.
DEFAULT_DATA_OF = {"fer2013": DEFAULT_DATA, "ferplus": DEFAULT_DATA, "ckplus": "../shared/data/ckplus"}
RECIPE = "recipe (all off by default: the report's plain recipe)"
PRECISIONS = ("float32", "mixed_bfloat16", "auto")  # trainer.resolved_precision turns auto into one of the two
DATA_KEYS = ("dataset", "data", "split", "seed", "val_fraction")  # the settings that pick a run's images

# What a resume may do with a setting given again on its command line.
SAME = "same"  # must equal the recorded value: it shaped the weights so far
GROW = "grow"  # may be larger: more epochs, a longer average (trainer.py records the extension)
FREE = "free"  # may differ: where things are or how fast they run, not what is learned
RESOLVED = "resolved"  # as SAME, or "auto": resolved when the run started, so the recorded value stands

# PreprocessSpec().to_dict(); runtime/preprocess.py imports cv2 and numpy, so the
# literal lives here and a test keeps the two equal.
DEFAULT_PREPROCESS: dict[str, Any] = {
    "channels": 1, "layout": "NHWC", "margin": 0.1, "offset": 0.0, "scale": 1 / 255, "size": [48, 48],
}

T = TypeVar("T")


@dataclass(frozen=True)
class CkplusSplit:
    """How a CK+ run divides its images into training and validation (train/data.py draws them).

    The defaults here are the only ones: training, evaluation and export read a run's split through
    ``of``, so a record that leaves a setting out means the same split everywhere.
    """

    split: str = "random"
    val_fraction: float = 0.2
    seed: int = 0

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> CkplusSplit:
        """The split recorded in ``settings`` (a run's config, a card's training section)."""
        d = cls()
        return cls(str(settings.get("split", d.split)), float(settings.get("val_fraction", d.val_fraction)),
                   int(settings.get("seed", d.seed)))


CKPLUS_DEFAULT = CkplusSplit()


def setting(
    default: T, help: str, *, flag: str | None = None, choices: tuple[str, ...] | None = None,
    metavar: str | None = None, group: str | None = None, on_resume: str = SAME,
) -> T:
    """A TrainConfig field with its CLI flag (default ``--field-name``) and help."""
    meta = {"help": help, "flag": flag, "choices": choices, "metavar": metavar, "group": group,
            "on_resume": on_resume}
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    arch: str = setting("report", "architecture", choices=ARCH_NAMES)
    # The dataset itself is --dataset and the labels; the same files may lie elsewhere on another machine.
    data: str = setting(DEFAULT_DATA, "dataset location", on_resume=FREE)
    dataset: str = setting(
        "fer2013", "labels; ferplus: FER2013 images with FER+ vote distributions as targets (8 classes)",
        choices=DATASETS)
    out: str = setting("", "run folder (default runs/<arch>)", on_resume=FREE)
    epochs: int | None = setting(None, "epochs (default: the arch's recipe)", on_resume=GROW)
    batch_size: int | None = setting(None, "batch size (default: the arch's recipe)", flag="--batch")
    learning_rate: float | None = setting(None, "learning rate (default: the arch's recipe)", flag="--lr")
    seed: int = setting(CKPLUS_DEFAULT.seed, "seed of shuffling, augmentation, dropout and the CK+ split")
    split: str = setting(CKPLUS_DEFAULT.split, "CK+ split", choices=("random", "subject"))
    val_fraction: float = setting(CKPLUS_DEFAULT.val_fraction, "CK+ held-out fraction")
    resume: bool = setting(
        False, "continue from the run folder's last.keras (or best.keras if last.keras is damaged); "
        "settings left out come from its run.json, settings given must match it, except more --epochs "
        "or a longer --average-last", on_resume=FREE)
    limit: int | None = setting(None, "train on a random subset of N images (smoke tests)", metavar="N")
    augment: bool = setting(
        False, "shifts, flips, rotation, scale, random erasing, brightness/contrast (input pipeline)", group=RECIPE)
    crops: str = setting(
        "dataset", "training faces as the dataset crops them, as the runtime's BlazeFace box and margin "
        "crop them (train/recrop.py; a face it misses keeps its own crop), or both (twice the images per "
        "epoch); validation keeps the dataset's crops", choices=CROPS, group=RECIPE)
    mixup: float = setting(
        0.0, "mixup: blend each training batch with a shuffled copy of itself, the targets alike, "
        "weight ~ Beta(A, A) (e.g. 0.2)", metavar="A", group=RECIPE)
    cutmix: float = setting(
        0.0, "CutMix: paste a box of a shuffled copy into each training batch, targets mixed by area "
        "~ Beta(A, A) (e.g. 1.0); with --mixup too, each batch draws one of the two", metavar="A", group=RECIPE)
    label_smoothing: float = setting(0.0, "e.g. 0.1", group=RECIPE)
    schedule: str = setting("constant", "learning-rate schedule; cosine decays per step, after the warm-up",
                            choices=("constant", "cosine"), group=RECIPE)
    warmup_epochs: int = setting(0, "linear warm-up before the cosine decay", group=RECIPE)
    weight_decay: float = setting(0.0, "> 0 uses AdamW with this decay", group=RECIPE)
    class_weight: str = setting("none", "weight the loss against class imbalance (disgust has 436 FER2013 images)",
                                choices=("none", "sqrt", "balanced"), group=RECIPE)
    init_from: str | None = setting(
        None, "start from these weights: .keras, .weights.h5, a run folder (its best.keras), or a shipped "
        ".onnx (e.g. models/fer2013.onnx: a new training cycle from a shipped model; a head with other "
        "labels is mapped by name)", group=RECIPE)
    precision: str = setting(
        "float32", "mixed_bfloat16 trains about 2x faster on CPUs with AMX or AVX512-BF16 and several "
        "times slower on CPUs without; auto: mixed_bfloat16 on a GPU or such a CPU, else float32 "
        "(run.json records which)", choices=PRECISIONS, group=RECIPE, on_resume=RESOLVED)
    # Augmentation is seeded per (seed, epoch, image), so the thread count changes speed only.
    workers: int = setting(1, "input-pipeline threads for augmentation; 4+ keep a GPU busy", on_resume=FREE)
    # A resumed budgeted run keeps the epochs fitted at its start; the budget bounds this process only.
    time_budget: float | None = setting(
        None, "time a few steps first, then train as many epochs (up to --epochs) as fit in SECONDS; "
        "the cosine schedule spans exactly those epochs", metavar="SECONDS", on_resume=FREE)
    teacher: str | None = setting(
        None, "knowledge distillation: teacher targets from 'python -m edgefer.train.teacher'", group=RECIPE)
    teacher_weight: float = setting(0.5, "weight of the teacher in the targets; the rest is the label", group=RECIPE)
    average_last: int = setting(
        0, "stochastic weight averaging: keep the weights of the last N epochs and write their average "
        "(BatchNorm re-estimated) as the run folder <out>/averaged; pairs with --schedule constant",
        metavar="N", group=RECIPE, on_resume=GROW)
    # Every process keeps --batch as the global batch: one or several devices learn the same steps.
    distribute: str = setting(
        "none", "data-parallel: every GPU of this machine (TensorFlow MirroredStrategy, or JAX DataParallel "
        "with KERAS_BACKEND=jax); multi-worker: several machines, the cluster in TF_CONFIG "
        "(MultiWorkerMirroredStrategy); --batch is the global batch, split between them",
        choices=("none", "data-parallel", "multi-worker"), on_resume=FREE)
    deterministic: bool = setting(
        False, "TensorFlow op determinism: a rerun or a resumed run gives bit-identical weights "
        "(may be slower on a GPU)")
    # Not an option: the run records it, and export and serving read it back from run.json.
    preprocess: dict = field(default_factory=lambda: copy.deepcopy(DEFAULT_PREPROCESS))

    def __post_init__(self) -> None:
        if not self.out:
            self.out = f"runs/{self.arch}"

    def validate(self) -> None:
        """Raise UsageError for a setting no run can use."""
        for f in option_fields():
            choices = f.metadata["choices"]
            if choices and getattr(self, f.name) not in choices:
                raise UsageError(f"{flag_of(f)} {getattr(self, f.name)}: expected one of {', '.join(choices)}")
        for name in ("mixup", "cutmix"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name} {getattr(self, name)}: the Beta parameter must be > 0 (0 turns it off)")
        if self.average_last < 0 or self.average_last == 1:
            raise UsageError(f"--average-last {self.average_last}: averaging needs at least 2 epochs (0 turns it off)")
        if self.time_budget and self.distribute == "multi-worker":  # each worker would fit its own count
            raise UsageError("--time-budget cannot be used with --distribute multi-worker: give --epochs")
        # A resumed run continues from last.keras, so its parent file may since have been replaced or removed.
        if self.init_from and not self.resume and not Path(self.init_from).exists():
            raise UsageError(f"--init-from {self.init_from}: no such file or run folder")


# ---------------------------------------------------------------- the options
def option_fields() -> list[Field]:
    """The fields that are `edgefer train` options (all but the internal ones)."""
    return [f for f in fields(TrainConfig) if "flag" in f.metadata]


def flag_of(f: Field) -> str:
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per setting. None is given a default: a flag absent from the command line is
    absent from the namespace, so a resume can tell the settings given from those recorded."""
    groups: dict[str, Any] = {}
    hints = typing.get_type_hints(TrainConfig)
    for f in option_fields():
        meta = f.metadata
        where = parser if meta["group"] is None else groups.setdefault(
            meta["group"], parser.add_argument_group(meta["group"]))
        kind = _scalar(hints[f.name])
        flag = flag_of(f)
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": _help(f)}
        if kind is bool:
            kw["action"] = "store_true"
        elif meta["choices"]:
            kw.update(type=kind, choices=meta["choices"])
        else:  # named after the flag, not the field: --batch BATCH, --lr LR
            kw.update(type=kind, metavar=meta["metavar"] or flag[2:].upper().replace("-", "_"))
        where.add_argument(flag, **kw)


def _scalar(hint: Any) -> type:
    """int for ``int | None``; the type argparse converts the option's text with."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (hint,) = args
    return cast(type, hint)


def _help(f: Field) -> str:
    """The field's help with its default, which thus cannot drift from the dataclass."""
    text = f.metadata["help"]
    if f.default is not None and f.default is not False and f.default not in ("", MISSING):
        text += f" (default {f.default})"
    return text.replace("%", "%%")


def config_from_args(namespace: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of an `edgefer train` command line (see ``add_train_arguments``)."""
    given = {f.name: getattr(namespace, f.name) for f in option_fields() if hasattr(namespace, f.name)}
    return build_config(given)


# ---------------------------------------------------------------- building and resuming
def build_config(given: Mapping[str, Any]) -> TrainConfig:
    """A validated config from the settings a user gave; the rest are the defaults or, for a
    resume of a run folder with a run.json, the settings that run recorded."""
    from .runfolder import RunFolder

    cfg = TrainConfig(**given)
    run = RunFolder(cfg.out)
    if cfg.resume and run.has_run():
        cfg = resumed_config(recorded_settings(run), given, cfg.out)
    cfg.validate()
    return cfg


def recorded_settings(run: RunFolder) -> dict[str, Any]:
    """The settings a run now trains with: the config it started with, then its latest extension."""
    try:
        meta = run.read_run()
        settings = dict(meta["config"])
        settings.update((meta.get("extended") or [{}])[-1])
    except (EdgeferError, KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"cannot resume: {run.run_json} has no readable config ({type(exc).__name__}: {exc})") from exc
    names = {f.name for f in fields(TrainConfig)}
    return {k: v for k, v in settings.items() if k in names}  # a record may be older or newer than this code


def resumed_config(recorded: Mapping[str, Any], given: Mapping[str, Any], out: str) -> TrainConfig:
    """The recorded settings with those given on the command line, which must not change the run."""
    defaults = TrainConfig()
    given = dict(given)
    conflicts = []
    grows = False
    for f in option_fields():
        if f.name not in given:
            continue
        now, before = given[f.name], recorded.get(f.name, getattr(defaults, f.name))
        policy = f.metadata["on_resume"]
        if policy == RESOLVED and now == "auto":
            del given[f.name]
            continue
        if policy == FREE or now == before or (policy == GROW and (before is None or now > before)):
            continue
        grows |= policy == GROW
        conflicts.append(_conflict(flag_of(f), now, before))
    if conflicts:
        hint = " (--epochs and --average-last may only grow)" if grows else ""
        raise UsageError(f"cannot resume {out} with other settings than it trains with: {'; '.join(conflicts)}"
                         f"{hint}; leave them out to continue as recorded, or train into another --out")
    return TrainConfig(**{**recorded, **given, "out": out})  # the folder found, however it was once spelled


def _conflict(flag: str, now: Any, before: Any) -> str:
    if isinstance(now, bool):
        return f"{flag} {'on' if now else 'off'} (the run has it {'on' if before else 'off'})"
    return f"{flag} {now} (the run has {before})"
