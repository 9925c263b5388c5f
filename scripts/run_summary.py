"""Markdown summary of one training run (command, data, recipe, time) from its run.json and history.csv.

Usage: python scripts/run_summary.py RUN_FOLDER
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

FLAGS = {  # TrainConfig field -> `edgefer train` flag, for the fields that differ from the defaults
    "arch": "--arch", "dataset": "--dataset", "data": "--data", "epochs": "--epochs", "batch_size": "--batch",
    "learning_rate": "--lr", "seed": "--seed", "split": "--split", "label_smoothing": "--label-smoothing",
    "schedule": "--schedule", "warmup_epochs": "--warmup-epochs", "weight_decay": "--weight-decay",
    "class_weight": "--class-weight", "precision": "--precision", "init_from": "--init-from",
}
DEFAULTS = {"dataset": "fer2013", "seed": 0, "split": "random", "label_smoothing": 0.0, "schedule": "constant",
            "warmup_epochs": 0, "weight_decay": 0.0, "class_weight": "none", "precision": "float32",
            "init_from": None}


def summary(run: Path) -> str:
    meta = json.loads((run / "run.json").read_text())
    cfg = meta["config"]
    parts = ["edgefer train"]
    for key, flag in FLAGS.items():
        value = cfg.get(key)
        if key in DEFAULTS and value == DEFAULTS[key]:
            continue
        if value is not None:
            parts.append(f"{flag} {value}")
    if cfg.get("augment"):
        parts.append("--augment")
    parts.append(f"--out {run}")
    hist = list(csv.DictReader((run / "history.csv").open()))
    accs = [float(r["val_accuracy"]) for r in hist]
    best = max(range(len(accs)), key=accs.__getitem__)
    secs = sum(float(r.get("epoch_seconds") or 0) for r in hist)
    return "\n".join([
        f"- command: `{' '.join(parts)}`",
        f"- architecture: `{cfg['arch']}`, {meta['params']:,} parameters",
        f"- training data: {meta['train_data']}",
        f"- validation data: {meta['val_data']}",
        f"- epochs run: {len(hist)}; validation accuracy after the last epoch {accs[-1]:.4f}, best "
        f"{accs[best]:.4f} after epoch {best + 1} (the shipped weights: `best.keras`)",
        f"- training time: {secs / 60:.0f} min on this project's 2-core x86-64 CPU machine "
        "(other jobs shared the cores part of the time)",
    ])


if __name__ == "__main__":
    print(summary(Path(sys.argv[1])))
