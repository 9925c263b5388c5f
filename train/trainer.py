"""Training runs: a run folder with checkpoints every epoch, history.csv and resume.

Run folder layout::

    run.json        the configuration, labels and preprocessing (written once)
    last.keras      model + optimizer after the last finished epoch (for --resume)
    best.keras      best validation accuracy so far
    history.csv     one row per epoch
    metrics.json    evaluation of best.keras on the validation data
    snapshots/      weights of each of the last N epochs (--average-last N)
    averaged/       a run folder of its own: the average of those snapshots (train/average.py)
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgefer.runtime.preprocess import PreprocessSpec, normalize

from .average import AVERAGED, SNAPSHOTS
from .data import Dataset, ckplus_split, load_ckplus, load_fer2013, load_ferplus


@dataclass
class TrainConfig:
    data: str
    arch: str = "report"
    dataset: str = "fer2013"  # fer2013 | ferplus | ckplus
    out: str = "runs/report"
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    seed: int = 0
    split: str = "random"  # ckplus only: random | subject
    val_fraction: float = 0.2
    resume: bool = False
    limit: int | None = None  # train on a random subset of N images (smoke tests)
    # Recipe switches (all off by default = the report's plain recipe).
    augment: bool = False
    label_smoothing: float = 0.0
    schedule: str = "constant"  # constant | cosine (per step, with linear warm-up)
    warmup_epochs: int = 0
    weight_decay: float = 0.0  # > 0 switches Adam to AdamW
    class_weight: str = "none"  # none | sqrt | balanced
    init_from: str | None = None  # start from these weights (.keras, .weights.h5 or a shipped .onnx): a new cycle
    precision: str = "float32"  # or mixed_bfloat16: ~2x faster on CPUs with AMX / AVX512-BF16
    workers: int = 1  # input-pipeline threads (augmentation); more keep a GPU fed
    time_budget: float | None = None  # seconds: fit the epoch count (and the cosine schedule) to it
    teacher: str | None = None  # knowledge distillation: .npz of train/teacher.py
    teacher_weight: float = 0.5  # targets = (1 - w) * label + w * teacher
    average_last: int = 0  # > 0: keep the last N epochs' weights and average them (SWA) into averaged/
    preprocess: dict = field(default_factory=lambda: json.loads(PreprocessSpec().to_json()))


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
        ds = load_ckplus(cfg.data, size)
        tr, te = ckplus_split(ds, cfg.split, cfg.val_fraction, cfg.seed)
        desc = f"CK+ {cfg.split} split ({len(te)} of {len(ds)} images held out, seed {cfg.seed})"
        return ds.subset(tr, "ckplus/train"), ds.subset(te, f"ckplus/val-{cfg.split}"), desc
    raise ValueError(f"unknown dataset {cfg.dataset!r}; expected fer2013, ferplus or ckplus")


def finished_epochs(history: Path) -> int:
    """Rows of a run's history.csv: the epochs it finished (0 if it has none yet)."""
    if not history.is_file():
        return 0
    with history.open() as fh:
        return sum(1 for _ in csv.DictReader(fh))


def train(cfg: TrainConfig) -> Path:
    import keras

    from .archs import ARCHS

    arch = ARCHS[cfg.arch]
    epochs = cfg.epochs or arch.epochs
    batch = cfg.batch_size or arch.batch_size
    lr = cfg.learning_rate or arch.learning_rate
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    run_json = out / "run.json"
    spec = PreprocessSpec.from_json(json.dumps(cfg.preprocess))

    t_start = time.perf_counter()
    keras.utils.set_random_seed(cfg.seed)
    keras.mixed_precision.set_global_policy(cfg.precision)
    train_ds, val_ds, val_desc = load_splits(cfg)
    if cfg.limit:
        pick = np.random.default_rng(cfg.seed).permutation(len(train_ds))[: cfg.limit]
        train_ds = train_ds.subset(np.sort(pick))
    print(train_ds.summary())
    print(val_ds.summary())
    if cfg.teacher:
        from .teacher import load_teacher

        labels = train_ds.targets if train_ds.targets is not None else np.eye(len(train_ds.labels))[train_ds.y]
        w = cfg.teacher_weight
        train_ds.targets = ((1 - w) * labels + w * load_teacher(cfg.teacher, train_ds)).astype(np.float32)
        print(f"distilling from {cfg.teacher} (weight {w})")

    n_cls = len(train_ds.labels)
    augment = None
    if cfg.augment:
        from .augment import Augmenter

        augment = Augmenter()

    weights = class_weights(train_ds.y, n_cls, cfg.class_weight)

    def train_batches(epoch: int):
        return _batches(
            train_ds, spec, batch, n_cls, shuffle=True, seed=cfg.seed, epoch=epoch, augment=augment,
            class_weights=weights, workers=cfg.workers,
        )

    val_seq = _batches(val_ds, spec, 256, n_cls, workers=cfg.workers)
    start_epoch = 0
    last = out / "last.keras"
    if cfg.resume and last.is_file():
        start_epoch = finished_epochs(out / "history.csv")
        if cfg.time_budget and run_json.is_file():  # the schedule in last.keras spans the epochs fitted then
            epochs = json.loads(run_json.read_text())["config"]["epochs"]
        model = keras.models.load_model(last)
        print(f"resuming {out} after epoch {start_epoch}")
    else:
        if cfg.resume:
            print(f"nothing to resume in {out}: starting fresh")
        (out / "history.csv").unlink(missing_ok=True)
        for stale in (SNAPSHOTS, AVERAGED):  # a fresh run averages only its own epochs
            shutil.rmtree(out / stale, ignore_errors=True)
        steps = (len(train_ds) + batch - 1) // batch

        initial: list = []  # the starting weights, so a budget probe's throwaway model costs no second import

        def fresh_model(n_epochs: int):
            keras.utils.set_random_seed(cfg.seed)
            m = arch.build((*spec.size, spec.channels), len(train_ds.labels))
            if initial:
                m.set_weights(initial)
            else:
                if cfg.init_from:
                    from .transfer import init_weights

                    pick = np.random.default_rng(cfg.seed).permutation(len(train_ds))[:2048]
                    probe = normalize(train_ds.x[pick], spec)
                    print(f"initialised from {init_weights(m, cfg.init_from, train_ds.labels, probe)}")
                initial.extend(m.get_weights())
            m.compile(
                optimizer=_optimizer(cfg, lr, steps * n_epochs, steps * cfg.warmup_epochs),
                loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                metrics=["accuracy"],
            )
            return m

        if cfg.time_budget:
            from .budget import epochs_within, probe_epoch_seconds

            cost = probe_epoch_seconds(fresh_model(epochs), train_batches(0), val_seq)
            fitted = epochs_within(cfg.time_budget - (time.perf_counter() - t_start), cost, epochs)
            print(f"time budget {cfg.time_budget:.0f} s: {cost}; {fitted} of at most {epochs} epochs fit")
            epochs = fitted
        model = fresh_model(epochs)
    meta = {
        "config": asdict(cfg) | {"epochs": epochs, "batch_size": batch, "learning_rate": lr},
        "labels": list(train_ds.labels),
        "preprocess": json.loads(spec.to_json()),
        "train_data": train_ds.summary(),
        "val_data": f"{val_desc}: {val_ds.summary()}",
        "params": int(model.count_params()),
        "machine": machine(),
    }
    if not run_json.is_file() or not cfg.resume:
        if cfg.init_from:  # only when the run starts: a resumed run keeps the parent it started from
            from .transfer import lineage

            meta["init_from"] = lineage(cfg.init_from)
        run_json.write_text(json.dumps(meta, indent=2) + "\n")
    else:
        _record_extension(run_json, start_epoch, epochs, cfg.average_last)

    train_seq = train_batches(start_epoch)
    best_so_far = _best_val(out / "history.csv")
    callbacks = [
        _epoch_timer(),
        *([_deadline(t_start + cfg.time_budget)] if cfg.time_budget else []),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=start_epoch > 0),
        keras.callbacks.ModelCheckpoint(str(last)),
        keras.callbacks.ModelCheckpoint(
            str(out / "best.keras"), monitor="val_accuracy", mode="max", save_best_only=True,
            initial_value_threshold=best_so_far,
        ),
        *([_snapshots(out / SNAPSHOTS, epochs - cfg.average_last)] if cfg.average_last else []),
    ]
    if start_epoch < epochs:
        model.fit(
            train_seq, validation_data=val_seq, epochs=epochs, initial_epoch=start_epoch,
            callbacks=callbacks, verbose=2 if not _is_tty() else 1,
        )
    else:
        print(f"{out}: all {epochs} epochs already done")
    if cfg.average_last:
        from .average import average_run

        average_run(out, train_ds, val_ds)
    return out


def _record_extension(run_json: Path, after_epoch: int, epochs: int, average_last: int) -> None:
    """A resumed run asked for more epochs (or a longer average) than it started with: say so.

    The recorded config stays the command the run started with; each extension is listed after it,
    so the record still tells how to reproduce the weights.
    """
    meta = json.loads(run_json.read_text())
    now = (meta.get("extended") or [meta["config"]])[-1]
    if (now.get("epochs"), now.get("average_last", 0)) == (epochs, average_last):
        return
    ext = {"after_epoch": after_epoch, "epochs": epochs, "average_last": average_last}
    meta["extended"] = [*meta.get("extended", []), ext]
    run_json.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"extending the run after epoch {after_epoch}: --epochs {epochs} --average-last {average_last}")


def machine() -> str:
    """Where a run trained, for its record: Keras backend, accelerator, CPU cores."""
    import os
    import platform

    import keras

    backend = keras.backend.backend()
    device = f"{os.cpu_count()}-core {platform.machine()} CPU"
    if backend == "jax":
        import jax

        first = jax.devices()[0]
        if first.platform != "cpu":
            device = f"{first.device_kind} + {device}"
    return f"Keras {keras.__version__} on {backend}, {device}"


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


def _best_val(history: Path) -> float | None:
    if not history.is_file():
        return None
    with history.open() as fh:
        vals = [float(r["val_accuracy"]) for r in csv.DictReader(fh) if r.get("val_accuracy")]
    return max(vals) if vals else None


def _is_tty() -> bool:
    import sys

    return sys.stdout.isatty()


def _deadline(t_end: float):
    """Stops after the epoch that would leave too little time for another one.

    The probe sets the epoch count to fit; this guards against it having been optimistic
    (other jobs on the machine), so a budgeted run always ends with its checkpoints written.
    """
    import keras

    class Deadline(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            now = time.perf_counter()
            if now + (now - self.t0) > t_end and epoch + 1 < self.params.get("epochs", 0):
                print(f"time budget reached after epoch {epoch + 1}: stopping")
                self.model.stop_training = True

    return Deadline()


def _snapshots(folder: Path, after_epoch: int):
    """Saves the weights (no optimizer: 5 MB, not 15) of every epoch after ``after_epoch``."""
    import keras

    class Snapshots(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 > after_epoch:
                folder.mkdir(exist_ok=True)
                self.model.save_weights(folder / f"epoch_{epoch + 1:03d}.weights.h5")

    return Snapshots()


def _epoch_timer():
    """Adds epoch_seconds to the logs; listed before CSVLogger so history.csv records it."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["epoch_seconds"] = round(time.perf_counter() - self.t0, 1)

    return EpochTimer()
