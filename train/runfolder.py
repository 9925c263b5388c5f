"""A training run's folder: the one owner of its layout and of what the folder means as a model.

Layout::

    run.json        the configuration, labels and preprocessing (written when the run starts)
    last.keras      model + optimizer after the last finished epoch (for --resume)
    best.keras      best validation accuracy so far
    history.csv     one row per epoch
    metrics.json    evaluation of the folder's model on its validation data (the run report)
    snapshots/      epoch_NNN.weights.h5: weights of each of the last N epochs (--average-last N)
    averaged/       a run folder of its own: the average of those snapshots (train/average.py)

Which checkpoint a folder means, for every reader (eval, inspect, export, ship, average, a
teacher, --init-from): best.keras; if it is missing or Keras cannot load it, last.keras, with a
warning that the run's last epoch stands in for its best. A checkpoint emptied by a crash thus
never blocks a reader while the run has another. Resuming is the one exception and reads the
other way round (``resume_order``): it wants the latest state, so last.keras first.

Every file is written whole or not at all (runtime/atomic.py). Only the standard library and
the runtime's light modules are imported: config.py reads run.json through this at start-up.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from edgefer.runtime.atomic import remove_stale_temps, write_text
from edgefer.runtime.errors import DataError, ModelError

from .config import DATA_KEYS, CkplusSplit

if TYPE_CHECKING:
    from edgefer.runtime.preprocess import PreprocessSpec

RUN_JSON = "run.json"
HISTORY = "history.csv"
BEST = "best.keras"
LAST = "last.keras"
METRICS = "metrics.json"
SNAPSHOTS = "snapshots"
AVERAGED = "averaged"
SNAPSHOT_SUFFIX = ".weights.h5"

M = TypeVar("M")


@dataclass(frozen=True)
class RunFolder:
    path: Path

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", Path(path))

    @classmethod
    def of_model(cls, model: str | Path) -> RunFolder | None:
        """The run a model belongs to: a run folder itself, a checkpoint's folder, or the folder
        above a snapshot; None for a file that no run.json describes (a shipped .onnx)."""
        model = Path(model)
        if model.is_dir():
            candidates = [model]
        else:
            candidates = [model.parent, *([model.parent.parent] if model.parent.name == SNAPSHOTS else [])]
        for folder in candidates:
            if (folder / RUN_JSON).is_file():
                return cls(folder)
        return None

    # ---------------------------------------------------------------- the files
    @property
    def run_json(self) -> Path:
        return self.path / RUN_JSON

    @property
    def history(self) -> Path:
        return self.path / HISTORY

    @property
    def best(self) -> Path:
        return self.path / BEST

    @property
    def last(self) -> Path:
        return self.path / LAST

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def snapshot_dir(self) -> Path:
        return self.path / SNAPSHOTS

    @property
    def averaged(self) -> RunFolder:
        return RunFolder(self.path / AVERAGED)

    def snapshot(self, epochs_done: int) -> Path:
        return self.snapshot_dir / f"epoch_{epochs_done:03d}{SNAPSHOT_SUFFIX}"

    def snapshots(self) -> list[Path]:
        return sorted(self.snapshot_dir.glob(f"epoch_*{SNAPSHOT_SUFFIX}"))

    # ---------------------------------------------------------------- run.json
    def has_run(self) -> bool:
        return self.run_json.is_file()

    def read_run(self) -> dict[str, Any]:
        try:
            meta = json.loads(self.run_json.read_text())
        except FileNotFoundError as exc:
            raise DataError(f"{self.path}: no {RUN_JSON} (is it an `edgefer train` run folder?)") from exc
        except (OSError, ValueError) as exc:
            raise DataError(f"{self.run_json}: unreadable {RUN_JSON} ({exc})") from exc
        if not isinstance(meta, dict):
            raise DataError(f"{self.run_json}: not a JSON object")
        return meta

    def run_or_empty(self) -> dict[str, Any]:
        """run.json, or {} for a folder without one."""
        return self.read_run() if self.has_run() else {}

    def write_run(self, meta: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_text(self.run_json, json.dumps(meta, indent=2) + "\n")

    def config(self) -> dict[str, Any]:
        return dict(self.read_run().get("config") or {})

    def data_settings(self) -> dict[str, Any]:
        """The recorded settings that picked the run's images (config.DATA_KEYS)."""
        config = self.config()
        return {k: config[k] for k in DATA_KEYS if k in config}

    def ckplus_split(self) -> CkplusSplit | None:
        """The CK+ split the run trained with; None for a FER2013 / FER+ run (train/ and test/ are its split)."""
        config = self.config()
        return CkplusSplit.of(config) if config.get("dataset") == "ckplus" else None

    def preprocess(self) -> PreprocessSpec:
        from edgefer.runtime.preprocess import PreprocessSpec

        recorded = self.read_run().get("preprocess")
        return PreprocessSpec.from_dict(recorded) if recorded else PreprocessSpec()

    # ---------------------------------------------------------------- history and metrics
    def read_history(self) -> list[dict[str, str]]:
        if not self.history.is_file():
            return []
        with self.history.open(newline="") as fh:
            return list(csv.DictReader(fh))

    def write_history(self, rows: list[dict]) -> None:
        """The whole history.csv in one atomic write (it is a few kB even after 300 epochs)."""
        fields = ["epoch", *sorted({k for r in rows for k in r} - {"epoch"})]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text(self.history, buf.getvalue())

    def finished_epochs(self) -> int:
        """Rows of history.csv: the epochs the run finished (checkpoints carry their own count too)."""
        return len(self.read_history())

    def best_val_accuracy(self) -> float | None:
        vals = [float(r["val_accuracy"]) for r in self.read_history() if r.get("val_accuracy")]
        return max(vals) if vals else None

    def read_metrics(self) -> dict[str, Any] | None:
        """metrics.json, None if absent; an unreadable one is warned about and skipped (it is derived data)."""
        if not self.metrics.is_file():
            return None
        try:
            return dict(json.loads(self.metrics.read_text()))
        except (OSError, ValueError, TypeError):
            print(f"warning: {self.metrics}: unreadable, ignored", file=sys.stderr)
            return None

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_text(self.metrics, json.dumps(metrics, indent=2) + "\n")

    # ---------------------------------------------------------------- checkpoints
    def checkpoints(self) -> list[Path]:
        """The files the folder may stand for, in the order readers try them: best.keras, then last.keras."""
        return [p for p in (self.best, self.last) if p.is_file()]

    def resume_order(self) -> list[Path]:
        """For --resume only: the latest state first."""
        return [p for p in (self.last, self.best) if p.is_file()]

    def model_file(self) -> Path:
        """The checkpoint the folder means (see the module docstring), before any load is tried."""
        found = self.checkpoints()
        if not found:
            raise ModelError(f"{self.path}: no {BEST} or {LAST} in this folder (is it an `edgefer train` run?)")
        return found[0]

    # ---------------------------------------------------------------- a run's lifecycle
    def remove_unfinished_writes(self) -> None:
        for folder in (self.path, self.snapshot_dir):
            if folder.is_dir() and (n := remove_stale_temps(folder)):
                print(f"{folder}: removed {n} unfinished file(s) of an interrupted write")

    def start_fresh(self) -> None:
        """Forget earlier epochs: a fresh run averages and reports only its own."""
        self.history.unlink(missing_ok=True)
        for stale in (self.snapshot_dir, self.averaged.path):
            shutil.rmtree(stale, ignore_errors=True)

    def truncate(self, epochs_done: int) -> None:
        """Drop the history rows and snapshots of epochs after ``epochs_done``: a resume reruns them."""
        rows = self.read_history()
        if len(rows) > epochs_done:
            self.write_history(rows[:epochs_done])
        for snap in self.snapshots():
            number = snap.name[len("epoch_"):-len(SNAPSHOT_SUFFIX)]
            if number.isdigit() and int(number) > epochs_done:
                snap.unlink()


def model_files(path: str | Path) -> list[Path]:
    """A model path's candidates, in order: a run folder's checkpoints, else the file itself."""
    path = Path(path)
    if path.is_dir():
        return RunFolder(path).checkpoints() or [RunFolder(path).model_file()]
    if not path.is_file():
        raise ModelError(f"model not found: {path}")
    return [path]


def load_first(path: str | Path, load: Callable[[Path], M]) -> tuple[M, Path]:
    """``load`` the checkpoint ``path`` means (a folder: best.keras, else last.keras); (model, file loaded)."""
    candidates = model_files(path)
    for i, candidate in enumerate(candidates):
        try:
            return load(candidate), candidate
        except Exception as exc:  # Keras raises ValueError, OSError, zip or h5py errors for a damaged file
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if i + 1 == len(candidates):
                raise ModelError(f"{candidate}: Keras cannot load it: {why}") from exc
            print(f"warning: {candidate}: Keras cannot load it ({why}); using {candidates[i + 1].name} "
                  "instead, the run's last epoch rather than its best", file=sys.stderr)
    raise ModelError(f"{path}: no model to load")
