"""Feeds uint8 faces to Keras in batches through the runtime's ``normalize``.

Shuffling is seeded per epoch (seed + epoch), so a resumed run sees the same order
as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from edgefer.runtime.preprocess import PreprocessSpec, normalize


class FaceBatches(keras.utils.PyDataset):
    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        spec: PreprocessSpec,
        batch_size: int,
        *,
        num_classes: int | None = None,
        targets: np.ndarray | None = None,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        class_weights: np.ndarray | None = None,
        mix: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray | None]] | None = None,
        workers: int = 1,
    ) -> None:
        # Threads, not processes: cv2 and numpy release the GIL, and batch i depends only on
        # (seed, epoch, i), so any number of workers yields the same batches.
        super().__init__(workers=workers, use_multiprocessing=False)
        self.x, self.y, self.spec = x, y, spec
        self.batch_size = batch_size
        self.num_classes = num_classes or int(y.max()) + 1
        # Soft targets (FER+ vote distributions) replace one-hot labels when given.
        self.targets = targets
        self.shuffle, self.seed, self.epoch = shuffle, seed, epoch
        self.augment = augment
        self.class_weights = class_weights
        self.mix = mix  # augment.Mixing: mixup / CutMix across the batch, after normalisation
        self._order = self._make_order()

    def _make_order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.y))
        return np.random.default_rng(self.seed + self.epoch).permutation(len(self.y))

    def __len__(self) -> int:
        return (len(self.y) + self.batch_size - 1) // self.batch_size

    def __getitem__(self, i: int):
        idx = self._order[i * self.batch_size : (i + 1) * self.batch_size]
        faces = self.x[idx]
        if self.augment is not None:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            faces = self.augment(faces, rng)
        if self.targets is not None:
            t = self.targets[idx].astype(np.float32)
        else:
            t = np.eye(self.num_classes, dtype=np.float32)[self.y[idx]]
        x = normalize(faces, self.spec)
        w = None if self.class_weights is None else self.class_weights[self.y[idx]]
        if self.mix:
            spatial = (2, 3) if self.spec.layout == "NCHW" else (1, 2)
            x, t, w = self.mix(x, t, np.random.default_rng((self.seed, self.epoch, i, 1)), spatial, w)
        return (x, t) if w is None else (x, t, w)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._make_order()
