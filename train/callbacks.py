"""The Keras callbacks and the batch stream of a training run (train/trainer.py puts them together)."""

from __future__ import annotations

import time

import numpy as np

from edgefer.runtime.atomic import atomic_path

from .checkpoints import save_checkpoint
from .runfolder import RunFolder


def progress(epochs: int):
    from .progress import TrainProgress, progress_callback

    return progress_callback(TrainProgress(epochs))


def deadline(t_end: float):
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


def epoch_stream(batches_of, first: int, epochs: int, steps: int, workers: int):
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


def run_checkpoints(run: RunFolder, best_so_far: float | None, snapshots_after: int | None):
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
            rows = [r for r in run.read_history() if int(r["epoch"]) < epoch]
            run.write_history([*rows, {"epoch": epoch, **{k: float(v) for k, v in logs.items()}}])
            acc = logs.get("val_accuracy")
            if acc is not None and (self.best is None or float(acc) > self.best):
                self.best = float(acc)
                save_checkpoint(self.model, run.best, done)
            if snapshots_after is not None and done > snapshots_after:
                run.snapshot_dir.mkdir(exist_ok=True)
                with atomic_path(run.snapshot(done)) as tmp:
                    self.model.save_weights(tmp)
            save_checkpoint(self.model, run.last, done)

    return RunCheckpoints()


def epoch_seeds(seed: int):
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


def epoch_timer():
    """Adds epoch_seconds to the logs; listed before the checkpoint callback so history.csv records it."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["epoch_seconds"] = round(time.perf_counter() - self.t0, 1)

    return EpochTimer()
