"""Training runs: a run folder with checkpoints every epoch, history.csv and resume.

Run folder layout::

    run.json        the configuration, labels and preprocessing (written once)
    last.keras      model + optimizer after the last finished epoch (for --resume)
    best.keras      best validation accuracy so far
    history.csv     one row per epoch
    metrics.json    evaluation of best.keras on the validation data
    snapshots/      weights of each of the last N epochs (--average-last N)
    averaged/       a run folder of its own: the average of those snapshots (train/average.py)

Every file is written whole or not at all (runtime/atomic.py). Each epoch writes history.csv,
then best.keras and its snapshot, and last.keras last; both checkpoints carry, inside the
.keras zip, the number of epochs they finished. A resume starts from that number, drops any
history row after it and reruns that epoch, so a kill at any moment loses at most one epoch and
the resumed run ends where an uninterrupted one would. Shuffling, augmentation and dropout are
seeded from (seed, epoch), never from state that lives only in the process.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
import time
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edgefer.runtime.atomic import atomic_path, remove_stale_temps, write_text
from edgefer.runtime.errors import ModelError
from edgefer.runtime.preprocess import PreprocessSpec, normalize

from .average import AVERAGED, SNAPSHOTS
from .config import TrainConfig
from .data import Dataset, ckplus_train_val, load_ckplus, load_fer2013, load_ferplus


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


def finished_epochs(history: Path) -> int:
    """Rows of a run's history.csv: the epochs it finished (0 if it has none yet).

    Only for run folders written before checkpoints carried their epoch; see ``checkpoint_epoch``.
    """
    return len(read_history(history))


def read_history(history: Path) -> list[dict[str, str]]:
    if not history.is_file():
        return []
    with history.open(newline="") as fh:
        return list(csv.DictReader(fh))


def write_history(history: Path, rows: list[dict]) -> None:
    """The whole history.csv in one atomic write (it is a few kB even after 300 epochs)."""
    fields = ["epoch", *sorted({k for r in rows for k in r} - {"epoch"})]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(history, buf.getvalue())


STATE_ENTRY = "edgefer_state.json"  # inside a .keras zip; Keras ignores entries it does not know
PAUSE_ENV = "EDGEFER_TEST_PAUSE_CHECKPOINT"


def save_checkpoint(model, path: Path, epochs_done: int) -> None:
    """``model`` (with its optimizer) and the number of epochs it finished, in one atomic write."""
    with atomic_path(path) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as z:
            z.writestr(STATE_ENTRY, json.dumps({"epochs_done": epochs_done}))
        _test_pause(path, epochs_done, tmp)


def _test_pause(path: Path, epochs_done: int, tmp: Path) -> None:
    """Test hook: with EDGEFER_TEST_PAUSE_CHECKPOINT=<file name>:<epoch>, the write of that
    checkpoint stops before its rename, prints a marker and sleeps, so a test can kill the
    process at exactly that point (tests/test_faults_train.py)."""
    if os.environ.get(PAUSE_ENV) == f"{path.name}:{epochs_done}":
        print(f"EDGEFER_TEST_PAUSED {tmp}", flush=True)
        time.sleep(3600)


def checkpoint_epoch(path: Path) -> int | None:
    """Epochs finished by the checkpoint ``path``; None if it predates that record.

    Raises ModelError for a file that is empty or not a .keras zip (a checkpoint cut short by
    a kill before writes were atomic).
    """
    size = path.stat().st_size
    if size == 0:
        raise ModelError(f"{path} is empty (0 bytes)")
    try:
        with zipfile.ZipFile(path) as z:
            if STATE_ENTRY not in z.namelist():
                return None
            return int(json.loads(z.read(STATE_ENTRY))["epochs_done"])
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError) as exc:
        raise ModelError(f"{path} is not a readable Keras checkpoint ({size} bytes: {exc})") from exc


def resume_point(out: Path) -> tuple[Any, Path, int] | None:
    """(model, checkpoint, epochs it finished) to continue ``out`` from; None if it has no checkpoint.

    last.keras first; if it is unreadable, best.keras (it carries the optimizer too), which
    reruns the epochs after it. A run folder of the old layout (no epoch in the checkpoint)
    counts its history rows, as it always did.
    """
    import keras

    problems = []
    for name in ("last.keras", "best.keras"):
        path = out / name
        if not path.is_file():
            continue
        try:
            done = checkpoint_epoch(path)
            if done is None and name == "best.keras":
                raise ModelError(f"{path} does not record its epoch")
            model = keras.models.load_model(path)
        except ModelError as exc:
            problems.append(str(exc))
            continue
        except Exception as exc:  # Keras raises ValueError, OSError or h5py errors for a damaged file
            problems.append(f"{path} does not load ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
            continue
        if done is None:
            done = finished_epochs(out / "history.csv")
        if problems:
            print(f"warning: {problems[0]}; resuming from {name} after epoch {done}", file=sys.stderr)
        return model, path, done
    if problems:
        raise ModelError(f"cannot resume {out}: {'; '.join(problems)} (train without --resume to start over)")
    return None


def train(cfg: TrainConfig, progress: bool = True) -> Path:
    """Train ``cfg`` into its run folder; ``progress`` adds the step and ETA lines (train/progress.py)."""
    import keras

    cfg.validate()  # a library caller gets the CLI's checks too
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
    if cfg.deterministic:
        _enable_determinism()
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
    for folder in (out, out / SNAPSHOTS):
        if folder.is_dir() and (n := remove_stale_temps(folder)):
            print(f"{folder}: removed {n} unfinished file(s) of an interrupted write")
    found = resume_point(out) if cfg.resume else None
    if found:
        model, _, start_epoch = found
        if cfg.time_budget and run_json.is_file():  # the schedule in last.keras spans the epochs fitted then
            epochs = json.loads(run_json.read_text())["config"]["epochs"]
        rows = read_history(out / "history.csv")
        if len(rows) > start_epoch:  # epochs whose checkpoint never landed: they run again
            write_history(out / "history.csv", rows[:start_epoch])
        for snap in (out / SNAPSHOTS).glob("epoch_*.weights.h5"):  # an average takes only epochs that run
            if snap.name[6:9].isdigit() and int(snap.name[6:9]) > start_epoch:
                snap.unlink()
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
        write_text(run_json, json.dumps(meta, indent=2) + "\n")
    else:
        _record_extension(run_json, start_epoch, epochs, cfg.average_last)

    best_so_far = _best_val(out / "history.csv")
    callbacks = [
        # First: its on_epoch_end clears the redrawn line before another callback prints.
        *([_progress(epochs)] if progress else []),
        _epoch_seeds(cfg.seed),
        _epoch_timer(),
        *([_deadline(t_start + cfg.time_budget)] if cfg.time_budget else []),
        _run_checkpoints(out, best_so_far, epochs - cfg.average_last if cfg.average_last else None),
    ]
    if start_epoch < epochs:
        steps = len(train_batches(start_epoch))
        model.fit(
            # shuffle=False: FaceBatches shuffles by (seed, epoch); Keras would also reorder the
            # batches with Python's global random state, which a resumed process does not share.
            _epoch_stream(train_batches, start_epoch, epochs, steps, cfg.workers), steps_per_epoch=steps,
            shuffle=False,
            validation_data=val_seq, epochs=epochs, initial_epoch=start_epoch,
            # Keras' own bar only where ours is off: two bars on one terminal line would fight.
            callbacks=callbacks, verbose=2 if progress or not _is_tty() else 1,
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
    write_text(run_json, json.dumps(meta, indent=2) + "\n")
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


def _progress(epochs: int):
    from .progress import TrainProgress, progress_callback

    return progress_callback(TrainProgress(epochs))


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


def _epoch_stream(batches_of, first: int, epochs: int, steps: int, workers: int):
    """Epochs ``first``..``epochs - 1`` of training batches as one stream: item k is batch
    k % steps of epoch first + k // steps, whichever thread asks for it and whenever.

    Feeding Keras one FaceBatches and letting its on_epoch_end advance the shuffle is not
    reproducible: Keras opens (and tf.data starts prefetching) the next epoch's iterator before
    it calls on_epoch_end, and calls on_epoch_end once more when fit starts, so how many of an
    epoch's batches came from the previous order depended on thread timing. Measured (with the
    Keras batch shuffle that fit(shuffle=False) now turns off): a run resumed after epoch 1 had
    weights 0.006 away from an uninterrupted run's after epoch 2; with both fixed, 0.
    """
    import keras

    class EpochStream(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__(workers=workers, use_multiprocessing=False)
            self._epochs: dict[int, object] = {}

        def __len__(self) -> int:
            return (epochs - first) * steps

        def __getitem__(self, k: int):
            epoch = first + k // steps
            seq = self._epochs.get(epoch)
            if seq is None:  # two threads may both build it: the same batches either way
                seq = self._epochs[epoch] = batches_of(epoch)
                self._epochs.pop(epoch - 2, None)
            return seq[k % steps]  # type: ignore[index]

    return EpochStream()


def _run_checkpoints(out: Path, best_so_far: float | None, snapshots_after: int | None):
    """Each epoch: its history row, best.keras if it improved, its snapshot, then last.keras.

    last.keras goes last because a resume trusts the epoch it records: a kill before it lands
    leaves the previous last.keras, and the files written ahead of it are rewritten when that
    epoch runs again. Snapshots are weights only (no optimizer: 5 MB, not 15).
    """
    import keras

    class RunCheckpoints(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.best = best_so_far

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            done = epoch + 1
            history = out / "history.csv"
            rows = [r for r in read_history(history) if int(r["epoch"]) < epoch]
            write_history(history, [*rows, {"epoch": epoch, **{k: float(v) for k, v in logs.items()}}])
            acc = logs.get("val_accuracy")
            if acc is not None and (self.best is None or float(acc) > self.best):
                self.best = float(acc)
                save_checkpoint(self.model, out / "best.keras", done)
            if snapshots_after is not None and done > snapshots_after:
                (out / SNAPSHOTS).mkdir(exist_ok=True)
                with atomic_path(out / SNAPSHOTS / f"epoch_{done:03d}.weights.h5") as tmp:
                    self.model.save_weights(tmp)
            save_checkpoint(self.model, out / "last.keras", done)

    return RunCheckpoints()


def _epoch_seeds(seed: int):
    """Re-seeds every dropout (Keras SeedGenerator) from (seed, epoch) at each epoch's start.

    A .keras checkpoint does not restore SeedGenerator state (measured: a reloaded Dropout
    starts from a fresh seed and counter 0), so without this a resumed run would drop other
    units than an uninterrupted one from the first resumed step on.
    """
    import keras

    class EpochSeeds(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            states = [v for v in self.model.variables if v.path.endswith("seed_generator_state")]
            for i, v in enumerate(states):
                base = np.random.default_rng((seed, epoch, i)).integers(0, 2**31 - 1)
                v.assign(np.array([base, 0], dtype=v.dtype))

    return EpochSeeds()


def _enable_determinism() -> None:
    """TensorFlow's CPU/GPU kernels may sum in any order across threads; this pins it."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def _epoch_timer():
    """Adds epoch_seconds to the logs; listed before the checkpoint callback so history.csv records it."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["epoch_seconds"] = round(time.perf_counter() - self.t0, 1)

    return EpochTimer()
