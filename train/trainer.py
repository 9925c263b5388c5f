"""Training runs: a run folder (train/runfolder.py) with checkpoints every epoch, history.csv and resume.

Every file is written whole or not at all (runtime/atomic.py). Each epoch writes history.csv,
then best.keras and its snapshot, and last.keras last; both checkpoints carry, inside the
.keras zip, the number of epochs they finished. A resume starts from that number, drops any
history row after it and reruns that epoch, so a kill at any moment loses at most one epoch and
the resumed run ends where an uninterrupted one would. Shuffling, augmentation and dropout are
seeded from (seed, epoch), never from state that lives only in the process.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgefer.runtime.errors import ModelError
from edgefer.runtime.preprocess import PreprocessSpec, normalize

from .checkpoints import STATE_ENTRY, checkpoint_epoch, save_checkpoint
from .config import TrainConfig
from .data import Dataset, ckplus_train_val, load_ckplus, load_fer2013, load_ferplus
from .distribute import check_batches, replicated, run_folder
from .runfolder import RunFolder

__all__ = ["STATE_ENTRY", "TrainConfig", "checkpoint_epoch", "save_checkpoint", "train"]


def load_splits(cfg: TrainConfig) -> tuple[Dataset, Dataset, str]:
    """Return (train, val, description of the validation data)."""
    size = tuple(cfg.preprocess["size"])
    if cfg.dataset == "fer2013":
        train = load_fer2013(cfg.data, "train", size)
        val = load_fer2013(cfg.data, "test", size)
        return train, val, "FER2013 PublicTest"
    if cfg.dataset == "ferplus":
        train = load_ferplus(cfg.data, "train", size)
        val = load_ferplus(cfg.data, "test", size)
        return train, val, "FER2013 PublicTest with FER+ majority labels"
    if cfg.dataset == "ckplus":
        return ckplus_train_val(load_ckplus(cfg.data, size), cfg.split, cfg.val_fraction, cfg.seed)
    raise ValueError(f"unknown dataset {cfg.dataset!r}; expected fer2013, ferplus or ckplus")


def resume_point(run: RunFolder) -> tuple[Any, Path, int] | None:
    """(model, checkpoint, epochs it finished) to continue ``run`` from; None if it has no checkpoint.

    last.keras first; if it is unreadable, best.keras (it carries the optimizer too), which
    reruns the epochs after it. A run folder of the old layout (no epoch in the checkpoint)
    counts its history rows, as it always did.
    """
    import keras

    problems = []
    for path in run.resume_order():
        try:
            done = checkpoint_epoch(path)
            if done is None and path == run.best:
                raise ModelError(f"{path} does not record its epoch")
            model = keras.models.load_model(path)
        except ModelError as exc:
            problems.append(str(exc))
            continue
        except Exception as exc:  # Keras raises ValueError, OSError or h5py errors for a damaged file
            problems.append(f"{path} does not load ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
            continue
        if done is None:
            done = run.finished_epochs()
        if problems:
            print(f"warning: {problems[0]}; resuming from {path.name} after epoch {done}", file=sys.stderr)
        return model, path, done
    if problems:
        raise ModelError(f"cannot resume {run.path}: {'; '.join(problems)} (train without --resume to start over)")
    return None


@dataclass(frozen=True)
class Plan:
    """The numbers a run trains with: the config's, else its architecture's defaults."""

    epochs: int
    batch_size: int
    learning_rate: float

    @classmethod
    def of(cls, cfg: TrainConfig) -> Plan:
        from .archs import ARCHS

        arch = ARCHS[cfg.arch]
        return cls(cfg.epochs or arch.epochs, cfg.batch_size or arch.batch_size,
                   cfg.learning_rate or arch.learning_rate)


@dataclass
class Splits:
    train: Dataset
    val: Dataset
    val_desc: str  # what the validation images are, for run.json

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.train.labels)


@dataclass(frozen=True)
class TrainBatches:
    """Each epoch's training batches, seeded by (seed, epoch) so any process draws the same ones."""

    data: Dataset
    spec: PreprocessSpec
    batch_size: int
    seed: int
    workers: int
    augment: Any = None  # an Augmenter, or None
    class_weights: np.ndarray | None = None
    mix: Any = None  # an augment.Mixing, or None

    def of_epoch(self, epoch: int):
        return _batches(self.data, self.spec, self.batch_size, len(self.data.labels), shuffle=True,
                        seed=self.seed, epoch=epoch, augment=self.augment, class_weights=self.class_weights,
                        mix=self.mix, workers=self.workers)

    def steps(self) -> int:
        return (len(self.data) + self.batch_size - 1) // self.batch_size


@dataclass
class Start:
    """Where fitting begins: the compiled model, the epochs it has done and the epochs the run ends at."""

    model: Any
    epochs_done: int
    epochs: int
    resumed: bool


def train(cfg: TrainConfig, progress: bool = True, record: dict[str, Any] | None = None) -> Path:
    """Train ``cfg`` into its run folder; ``progress`` adds the step and ETA lines (train/progress.py);
    ``record`` adds entries to run.json when the run starts (the recipe runner's stage)."""
    cfg.validate()  # a library caller gets the CLI's checks too
    cfg = replace(cfg, precision=resolved_precision(cfg.precision))
    t_start = time.perf_counter()
    run = RunFolder(run_folder(cfg.distribute, cfg.out))
    run.path.mkdir(parents=True, exist_ok=True)
    plan = Plan.of(cfg)
    spec = PreprocessSpec.from_dict(cfg.preprocess)
    set_up_backend(cfg)
    splits = load_data(cfg)
    batches = training_batches(cfg, plan, splits, spec)
    val_seq = _batches(splits.val, spec, 256, len(splits.labels), workers=cfg.workers)
    check_batches(cfg.distribute, ("training", len(splits.train), plan.batch_size),
                  ("validation", len(splits.val), 256))
    start = resume_state(cfg, run, plan) or fresh_start(cfg, run, plan, splits, spec, batches, val_seq, t_start)
    record_run(cfg, run, plan, splits, spec, start, record or {})
    fit(cfg, run, start, batches, val_seq, progress, t_start)
    finalise(cfg, run, splits)
    return run.path


def set_up_backend(cfg: TrainConfig) -> None:
    """Seeds, determinism and the precision policy, before anything is built."""
    import keras

    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        _enable_determinism()
    keras.mixed_precision.set_global_policy(cfg.precision)


# CPU features with bfloat16 arithmetic (/proc/cpuinfo names); without one, bfloat16 is emulated.
BF16_NATIVE = ("avx512_bf16", "amx_tile", "bf16")


def resolved_precision(requested: str) -> str:
    """The precision a run trains with: auto made mixed_bfloat16 on an accelerator or a CPU with
    bfloat16 arithmetic, else float32 (also where the CPU's features are not known); an explicit
    mixed_bfloat16 that this CPU would emulate is kept, with a warning. One look at the machine."""
    if requested == "float32":
        return requested
    from edgefer.runtime.machine import simd_features

    kind, features = accelerator(), simd_features()
    if requested == "auto":
        chosen = auto_precision(kind, features)
        print(f"precision auto: {chosen}")
        return chosen
    warning = "" if kind else emulated_bf16_warning(features)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    return requested


def _bf16_native(features: list[str]) -> bool:
    return any(f in features for f in BF16_NATIVE)


def auto_precision(accelerator_kind: str | None, features: list[str]) -> str:
    """What --precision auto trains with, given the accelerator (None: the CPU) and CPU features."""
    return "mixed_bfloat16" if accelerator_kind is not None or _bf16_native(features) else "float32"


def emulated_bf16_warning(features: list[str]) -> str:
    """Why mixed_bfloat16 will be slow on a CPU with ``features``, or "" (native, or not known).

    On a 2-core AVX2 CPU, edge_fast trained at 19 images/s under mixed_bfloat16 and 149 in float32.
    """
    if not features or _bf16_native(features):
        return ""
    return ("--precision mixed_bfloat16 on a CPU without bfloat16 arithmetic (no AVX512-BF16, AMX "
            "or Arm BF16) trains several times slower than float32; pass --precision float32")


def accelerator() -> str | None:
    """The accelerator Keras trains on (its device kind or name), or None on the CPU."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        first = jax.devices()[0]
        return None if first.platform == "cpu" else first.device_kind
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return gpus[0].name if gpus else None
    return None


def load_data(cfg: TrainConfig) -> Splits:
    """The training and validation images, the training subset (``limit``) and teacher targets."""
    train_ds, val_ds, val_desc = load_splits(cfg)
    if cfg.limit:
        pick = np.random.default_rng(cfg.seed).permutation(len(train_ds))[: cfg.limit]
        train_ds = train_ds.subset(np.sort(pick))
    if cfg.crops != "dataset":
        from .recrop import training_crops

        train_ds = training_crops(train_ds, cfg.crops, PreprocessSpec.from_dict(cfg.preprocess))
    print(train_ds.summary())
    print(val_ds.summary())
    if cfg.teacher:
        from .teacher import load_teacher

        labels = train_ds.targets if train_ds.targets is not None else np.eye(len(train_ds.labels))[train_ds.y]
        w = cfg.teacher_weight
        train_ds.targets = ((1 - w) * labels + w * load_teacher(cfg.teacher, train_ds)).astype(np.float32)
        print(f"distilling from {cfg.teacher} (weight {w})")
    return Splits(train_ds, val_ds, val_desc)


def training_batches(cfg: TrainConfig, plan: Plan, splits: Splits, spec: PreprocessSpec) -> TrainBatches:
    augment = None
    if cfg.augment:
        from .augment import Augmenter

        augment = Augmenter()
    weights = class_weights(splits.train.y, len(splits.labels), cfg.class_weight)
    mix = None
    if cfg.mixup or cfg.cutmix:
        from .augment import Mixing

        mix = Mixing(cfg.mixup, cfg.cutmix)
    return TrainBatches(splits.train, spec, plan.batch_size, cfg.seed, cfg.workers, augment, weights, mix)


def resume_state(cfg: TrainConfig, run: RunFolder, plan: Plan) -> Start | None:
    """With --resume and a checkpoint: continue after its epoch; else None (a fresh start)."""
    run.remove_unfinished_writes()
    with replicated(cfg.distribute):
        found = resume_point(run) if cfg.resume else None
    if found is None:
        if cfg.resume:
            print(f"nothing to resume in {run.path}: starting fresh")
        return None
    model, _, done = found
    epochs = plan.epochs
    if cfg.time_budget and run.has_run():  # the schedule in last.keras spans the epochs fitted then
        epochs = run.config()["epochs"]
    run.truncate(done)  # epochs whose checkpoint never landed run again
    print(f"resuming {run.path} after epoch {done}")
    return Start(model, done, epochs, resumed=True)


def fresh_start(cfg: TrainConfig, run: RunFolder, plan: Plan, splits: Splits, spec: PreprocessSpec,
                batches: TrainBatches, val_seq, t_start: float) -> Start:
    """A new model (from --init-from if given); with --time-budget, as many epochs as fit."""
    run.start_fresh()
    weights = initial_weights(cfg, splits, spec)
    epochs = plan.epochs
    if cfg.time_budget:
        from .budget import epochs_within, probe_epoch_seconds

        probe = compiled_model(cfg, plan, splits, spec, epochs, weights)
        cost = probe_epoch_seconds(probe, batches.of_epoch(0), val_seq)
        epochs = epochs_within(cfg.time_budget - (time.perf_counter() - t_start), cost, plan.epochs)
        print(f"time budget {cfg.time_budget:.0f} s: {cost}; {epochs} of at most {plan.epochs} epochs fit")
    return Start(compiled_model(cfg, plan, splits, spec, epochs, weights), 0, epochs, resumed=False)


def _build(cfg: TrainConfig, splits: Splits, spec: PreprocessSpec):
    import keras

    from .archs import ARCHS

    keras.utils.set_random_seed(cfg.seed)  # every build starts from the same initialisation
    return ARCHS[cfg.arch].build((*spec.size, spec.channels), len(splits.labels))


def initial_weights(cfg: TrainConfig, splits: Splits, spec: PreprocessSpec) -> list[np.ndarray]:
    """The weights training starts from: the seed's initialisation, or --init-from's weights."""
    model = _build(cfg, splits, spec)
    if cfg.init_from:
        from .transfer import init_weights

        pick = np.random.default_rng(cfg.seed).permutation(len(splits.train))[:2048]
        probe = normalize(splits.train.x[pick], spec)
        print(f"initialised from {init_weights(model, cfg.init_from, splits.labels, probe)}")
    return model.get_weights()


def compiled_model(cfg: TrainConfig, plan: Plan, splits: Splits, spec: PreprocessSpec, epochs: int,
                   weights: list[np.ndarray]):
    """The model to fit: built, given ``weights``, compiled with a schedule spanning ``epochs``."""
    import keras

    steps = (len(splits.train) + plan.batch_size - 1) // plan.batch_size
    with replicated(cfg.distribute):
        model = _build(cfg, splits, spec)
        model.set_weights(weights)
        model.compile(
            optimizer=_optimizer(cfg, plan.learning_rate, steps * epochs, steps * cfg.warmup_epochs),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
            metrics=["accuracy"],
        )
    return model


def record_run(cfg: TrainConfig, run: RunFolder, plan: Plan, splits: Splits, spec: PreprocessSpec,
               start: Start, record: dict[str, Any]) -> None:
    """run.json: written when a run starts; a resumed run only records how it was extended."""
    if start.resumed and run.has_run():
        _record_extension(run, start.epochs_done, start.epochs, cfg.average_last)
        return
    meta: dict[str, Any] = {
        "config": asdict(cfg) | {"epochs": start.epochs, "batch_size": plan.batch_size,
                                 "learning_rate": plan.learning_rate},
        "labels": list(splits.labels),
        "preprocess": spec.to_dict(),
        "train_data": splits.train.summary(),
        "val_data": f"{splits.val_desc}: {splits.val.summary()}",
        "params": int(start.model.count_params()),
        "machine": machine(),
        **record,
    }
    if cfg.init_from:  # only when the run starts: a resumed run keeps the parent it started from
        from .transfer import lineage

        meta["init_from"] = lineage(cfg.init_from)
    run.write_run(meta)


def fit(cfg: TrainConfig, run: RunFolder, start: Start, batches: TrainBatches, val_seq, progress: bool,
        t_start: float) -> None:
    """Epochs ``start.epochs_done`` .. ``start.epochs``, each checkpointed into ``run``."""
    from . import callbacks as cb

    epochs = start.epochs
    if start.epochs_done >= epochs:
        print(f"{run.path}: all {epochs} epochs already done")
        return
    snapshots_after = epochs - cfg.average_last if cfg.average_last else None
    callbacks = [
        # First: its on_epoch_end clears the redrawn line before another callback prints.
        *([cb.progress(epochs)] if progress else []),
        cb.epoch_seeds(cfg.seed),
        cb.epoch_timer(),
        *([cb.deadline(t_start + cfg.time_budget)] if cfg.time_budget else []),
        cb.run_checkpoints(run, run.best_val_accuracy(), snapshots_after),
    ]
    steps = batches.steps()
    start.model.fit(
        # shuffle=False: FaceBatches shuffles by (seed, epoch); Keras would also reorder the
        # batches with Python's global random state, which a resumed process does not share.
        cb.epoch_stream(batches.of_epoch, start.epochs_done, epochs, steps, cfg.workers), steps_per_epoch=steps,
        shuffle=False,
        validation_data=val_seq, epochs=epochs, initial_epoch=start.epochs_done,
        # Keras' own bar only where ours is off: two bars on one terminal line would fight.
        callbacks=callbacks, verbose=2 if progress or not _is_tty() else 1,
    )


def finalise(cfg: TrainConfig, run: RunFolder, splits: Splits) -> Path | None:
    """With --average-last: the average of the run's last epochs, as the run folder ``run/averaged``."""
    if not cfg.average_last:
        return None
    from .average import average_run

    return average_run(run, splits.train, splits.val)


def report(run: RunFolder) -> list[Path]:
    """The one-page report (report.md, metrics.json, plots) of the run and of its average, if any."""
    from .report import write_run_report

    return [write_run_report(folder.path) for folder in (run, run.averaged) if folder.checkpoints()]


def _record_extension(run: RunFolder, after_epoch: int, epochs: int, average_last: int) -> None:
    """A resumed run asked for more epochs (or a longer average) than it started with: say so.

    The recorded config stays the command the run started with; each extension is listed after it,
    so the record still tells how to reproduce the weights.
    """
    meta = run.read_run()
    now = (meta.get("extended") or [meta["config"]])[-1]
    if (now.get("epochs"), now.get("average_last", 0)) == (epochs, average_last):
        return
    ext = {"after_epoch": after_epoch, "epochs": epochs, "average_last": average_last}
    meta["extended"] = [*meta.get("extended", []), ext]
    run.write_run(meta)
    print(f"extending the run after epoch {after_epoch}: --epochs {epochs} --average-last {average_last}")


def machine() -> str:
    """Where a run trained, for its record: Keras backend, accelerator, CPU cores."""
    import platform

    import keras

    device = f"{os.cpu_count()}-core {platform.machine()} CPU"
    kind = accelerator()
    if kind:
        device = f"{kind} + {device}"
    return f"Keras {keras.__version__} on {keras.backend.backend()}, {device}"


def _optimizer(cfg: TrainConfig, lr: float, total_steps: int, warmup_steps: int):
    import keras

    rate = lr
    if cfg.schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=lr / 100 if warmup_steps else lr,
            decay_steps=max(1, total_steps - warmup_steps),
            alpha=0.01,
            warmup_target=lr if warmup_steps else None,
            warmup_steps=warmup_steps,
        )
    elif cfg.schedule != "constant":
        raise ValueError(f"unknown schedule {cfg.schedule!r}; expected constant or cosine")
    if cfg.weight_decay > 0:
        return keras.optimizers.AdamW(rate, weight_decay=cfg.weight_decay)
    return keras.optimizers.Adam(rate)


def class_weights(y: np.ndarray, n_cls: int, mode: str) -> np.ndarray | None:
    """Per-class loss weights, normalised to mean 1 over the training samples."""
    if mode == "none":
        return None
    counts = np.bincount(y, minlength=n_cls).astype(np.float64)
    w = 1.0 / np.maximum(counts, 1)
    if mode == "sqrt":
        w = np.sqrt(w)
    elif mode != "balanced":
        raise ValueError(f"unknown class weighting {mode!r}; expected none, sqrt or balanced")
    w /= (w[y]).mean()
    return w.astype(np.float32)


def _batches(ds: Dataset, spec: PreprocessSpec, batch: int, n_cls: int, **kw):
    from .sequence import FaceBatches

    return FaceBatches(ds.x, ds.y, spec, batch, num_classes=n_cls, targets=ds.targets, **kw)


def _is_tty() -> bool:
    return sys.stdout.isatty()


def _enable_determinism() -> None:
    """TensorFlow's CPU/GPU kernels may sum in any order across threads; this pins it."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
