"""Progress of long work (a file source's frames, a dataset's faces) on stderr: a redrawn bar on a
terminal, a line every few seconds otherwise (a log file, CI). Never on stdout, where JSON Lines may go."""

from __future__ import annotations

import sys
import time
from typing import TextIO

REDRAW_S = 0.1  # a terminal bar redraws at most 10 times a second
LOG_EVERY_S = 5.0  # without a terminal, one status line this often


class Progress:
    def __init__(self, total: int, label: str = "", stream: TextIO | None = None,
                 log_every_s: float = LOG_EVERY_S, unit: str = "frames") -> None:
        self.unit = unit
        self.total = max(1, int(total))
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.log_every_s = log_every_s
        self.start = time.perf_counter()
        self._last = 0.0 if self.tty else self.start
        self._shown = False

    def line(self, done: int) -> str:
        elapsed = time.perf_counter() - self.start
        fps = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / fps if fps > 0 else 0.0
        pct = min(1.0, done / self.total)
        head = f"{self.label}: " if self.label else ""
        return f"{head}{done}/{self.total} {self.unit} ({pct:.0%}), {fps:.1f} {self._rate}, ETA {_clock(eta)}"

    @property
    def _rate(self) -> str:
        return "FPS" if self.unit == "frames" else f"{self.unit}/s"

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if self.tty:
            if now - self._last < REDRAW_S and done < self.total:
                return
            filled = round(24 * min(1.0, done / self.total))
            self.stream.write(f"\r\033[K[{'#' * filled}{'.' * (24 - filled)}] {self.line(done)}")
            self.stream.flush()
            self._shown = True
        elif now - self._last >= self.log_every_s:
            print(self.line(done), file=self.stream, flush=True)
        else:
            return
        self._last = now

    def close(self) -> None:
        if self.tty and self._shown:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
