"""Fit a run's epoch count to a wall-clock budget, measured on the machine that trains.

A cosine schedule has to know its length before the first step, so a budgeted run first
times a few training steps and one validation pass on a throwaway copy of the model, then
builds the real one with as many epochs as fit. The same command thus trains ~10 epochs on
a laptop and ~200 on a GPU, and both end on a finished schedule instead of a cut-off one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

SAFETY = 0.93  # checkpoint writes and other jobs on the machine: keep ~7% in hand


@dataclass(frozen=True)
class EpochCost:
    train_s: float  # one pass over the training batches
    val_s: float  # one validation pass
    compile_s: float  # one-off cost of a fresh model's first steps (graph tracing / XLA compile)

    @property
    def epoch_s(self) -> float:
        return self.train_s + self.val_s

    def __str__(self) -> str:
        split = f"{self.train_s:.1f} train + {self.val_s:.1f} val"
        return f"{self.epoch_s:.1f} s/epoch ({split}), {self.compile_s:.0f} s compile"


def epochs_within(seconds: float, cost: EpochCost, max_epochs: int) -> int:
    """How many whole epochs of ``cost`` fit in ``seconds`` (at least 1, at most ``max_epochs``)."""
    usable = SAFETY * (seconds - cost.compile_s)
    return max(1, min(max_epochs, math.floor(usable / cost.epoch_s))) if cost.epoch_s > 0 else max_epochs


def probe_epoch_seconds(model, train_batches, val_batches, warm_steps: int = 3, timed_steps: int = 20) -> EpochCost:
    """Time ``model`` (compiled, then discarded by the caller) on real batches."""
    n = len(train_batches)
    timed_steps = max(1, min(timed_steps, n))
    t0 = time.perf_counter()
    model.fit(train_batches, epochs=1, steps_per_epoch=min(warm_steps, n), verbose=0)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.fit(train_batches, epochs=1, steps_per_epoch=timed_steps, verbose=0)
    step_s = (time.perf_counter() - t0) / timed_steps
    t0 = time.perf_counter()
    model.evaluate(val_batches, verbose=0)
    first_val = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.evaluate(val_batches, verbose=0)
    val_s = time.perf_counter() - t0
    compile_s = max(0.0, first - min(warm_steps, n) * step_s) + max(0.0, first_val - val_s)
    return EpochCost(train_s=step_s * n, val_s=val_s, compile_s=compile_s)
