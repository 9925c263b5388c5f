"""Progress within each training epoch, and the time the whole run has left.

An epoch takes from under a minute to ten on a CPU, and Keras' one line per epoch (verbose=2)
comes only at its end. This adds a line of steps done, time elapsed and the epoch's ETA: on a
terminal one line redrawn in place a few times a second, otherwise (a log file, CI) a plain
line at most every 30 s and every 10% of the epoch. After each epoch: how long it took and
the run's ETA, epochs left times the measured epoch time.

runtime/progress.py draws `edgefer run`'s bar over frames and writes to stderr; this one
counts steps and epochs and writes to stdout, beside Keras' own epoch lines.
"""

from __future__ import annotations

import datetime as dt
import math
import sys
import time
from collections.abc import Callable
from typing import TextIO

REDRAW_S = 0.25  # a terminal line redraws at most 4 times a second
LOG_EVERY_S = 30.0  # without a terminal, a line at most this often ...
LOG_EVERY_FRACTION = 0.1  # ... and at most once per this share of the epoch


def duration(seconds: float) -> str:
    """41 s, 341 s, 12 min, 10 h 14 min."""
    s = max(0, int(round(seconds)))
    if s < 600:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    return f"{s // 3600} h {s // 60 % 60} min"


def finish_time(now: dt.datetime, seconds: float) -> str:
    """When ``seconds`` from ``now`` (UTC) falls: 'about 07:05 UTC', '... tomorrow', '... on 2026-12-04'."""
    end = now + dt.timedelta(seconds=seconds)
    days = (end.date() - now.date()).days
    when = "" if days == 0 else " tomorrow" if days == 1 else f" on {end:%Y-%m-%d}"
    return f"about {end:%H:%M} UTC{when}"


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class TrainProgress:
    """Progress lines of one fit: ``begin_epoch``, ``step`` after each batch, ``end_steps`` before
    Keras prints the epoch's line, ``end_run`` at the end. An epoch is reported when the next one
    begins, so its time includes validation and the checkpoint writes."""

    def __init__(self, epochs: int, stream: TextIO | None = None, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic, now: Callable[[], dt.datetime] = _utc_now) -> None:
        self.epochs = epochs
        self.stream = stream if stream is not None else sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty
        self.clock = clock
        self.now = now
        self.epoch = -1  # the epoch running, 0-based
        self.steps = 0
        self.times: list[float] = []  # seconds of each epoch this process ran
        self._t_epoch = self._t_line = 0.0
        self._done_line = 0
        self._drawn = False

    # ------------------------------------------------------------ events
    def begin_epoch(self, epoch: int, steps: int) -> None:
        self._report_epoch(final=False)
        self.epoch, self.steps = epoch, max(1, steps)
        self._t_epoch = self._t_line = self.clock()
        self._done_line = 0

    def step(self, done: int) -> None:
        now = self.clock()
        if self.tty:
            if now - self._t_line < REDRAW_S and done < self.steps:
                return
            self._draw(self.step_line(done, now - self._t_epoch))
        elif (now - self._t_line >= LOG_EVERY_S
              and done - self._done_line >= math.ceil(LOG_EVERY_FRACTION * self.steps) and done < self.steps):
            self._print(self.step_line(done, now - self._t_epoch))
        else:
            return
        self._t_line, self._done_line = now, done

    def validating(self) -> None:
        if self.tty and self.epoch >= 0:
            self._draw(f"{self._head()}: {self.steps}/{self.steps} steps, validating")

    def end_steps(self) -> None:
        """Clear the redrawn line, so that Keras' epoch line starts on an empty one."""
        if self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._drawn = False

    def end_run(self) -> None:
        self._report_epoch(final=True)
        self.epoch = -1

    # ------------------------------------------------------------ lines
    def step_line(self, done: int, elapsed: float) -> str:
        eta = elapsed / done * (self.steps - done) if done else 0.0
        return (f"{self._head()}: {done}/{self.steps} steps ({done / self.steps:.0%}), {duration(elapsed)}, "
                f"epoch ETA {duration(eta)}")

    def epoch_line(self, epoch: int, seconds: float, final: bool = False) -> str:
        """After an epoch: its time and the run's ETA; after the last one run (all done, or stopped
        by the time budget), the time of all epochs this process ran."""
        head = f"epoch {epoch + 1}/{self.epochs} done in {duration(seconds)}"
        if final or epoch + 1 >= self.epochs:
            n = len(self.times)
            return f"{head}; {n} epoch{'s' if n != 1 else ''} trained in {duration(sum(self.times))}"
        eta = (self.epochs - (epoch + 1)) * self.epoch_seconds()
        return f"{head}; run ETA {duration(eta)} ({finish_time(self.now(), eta)})"

    def epoch_seconds(self) -> float:
        """The measured time of one epoch: the mean of those run, less the first (it also traces
        the graph) once there are others."""
        times = self.times[1:] if len(self.times) > 1 else self.times
        return sum(times) / len(times) if times else 0.0

    def _head(self) -> str:
        return f"epoch {self.epoch + 1}/{self.epochs}"

    def _report_epoch(self, final: bool) -> None:
        if self.epoch < 0:
            return
        self.times.append(self.clock() - self._t_epoch)
        self.end_steps()
        self._print(self.epoch_line(self.epoch, self.times[-1], final))

    def _draw(self, line: str) -> None:
        self.stream.write(f"\r\033[K{line}")
        self.stream.flush()
        self._drawn = True

    def _print(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()


def progress_callback(progress: TrainProgress):
    """The Keras callback that feeds ``progress``; Keras' own bar must be off (fit verbose=2)."""
    import keras

    class Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            progress.begin_epoch(epoch, int(self.params.get("steps") or 0))

        def on_train_batch_end(self, batch, logs=None):
            progress.step(batch + 1)

        def on_test_begin(self, logs=None):
            progress.validating()

        def on_epoch_end(self, epoch, logs=None):
            progress.end_steps()

        def on_train_end(self, logs=None):
            progress.end_run()

    return Progress()
