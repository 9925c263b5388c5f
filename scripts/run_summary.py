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
    "teacher": "--teacher", "teacher_weight": "--teacher-weight", "time_budget": "--time-budget",
    "average_last": "--average-last",
}
DEFAULTS = {"dataset": "fer2013", "seed": 0, "split": "random", "label_smoothing": 0.0, "schedule": "constant",
            "warmup_epochs": 0, "weight_decay": 0.0, "class_weight": "none", "precision": "float32",
            "init_from": None, "teacher": None, "time_budget": None, "average_last": 0}


def command(cfg: dict, out: str | None) -> str:
    parts = ["edgefer train"]
    for key, flag in FLAGS.items():
        value = cfg.get(key)
        if key in DEFAULTS and value == DEFAULTS[key]:
            continue
        if key == "teacher_weight" and not cfg.get("teacher"):
            continue
        if isinstance(value, dict):  # a recorded parent model: its file name was the flag's value
            value = value.get("file")
        if value is not None:
            parts.append(f"{flag} {value}")
    if cfg.get("augment"):
        parts.append("--augment")
    if out:
        parts.append(f"--out {out}")
    return " ".join(parts)


def _epochs(training: dict) -> str:
    if "epochs" not in training:
        return ""
    run = training.get("epochs_run")
    if run is not None and run != training["epochs"]:
        return f" for {run} of its {training['epochs']} epochs (stopped early)"
    return f" for {training['epochs']} epochs"


def parent_lines(parent: dict | None) -> list[str]:
    """One line per earlier cycle: the file a run started from and how that file was trained."""
    lines = []
    while parent:
        accs = ", ".join(f"{k} {100 * v:.2f}%" for k, v in parent.get("metrics", {}).items()
                         if k.endswith("publictest") or k.endswith("majority"))
        training = parent.get("training") or {}
        lines.append(
            f"- started from `{parent['file']}` (sha256 {parent['sha256'][:12]}…{'; ' + accs if accs else ''}), "
            f"trained by `{command(training, None)}`" + _epochs(training)
        )
        parent = training.get("init_from") if isinstance(training.get("init_from"), dict) else None
    return lines


def averaged_line(averaged: dict | None, best_epoch_acc: float) -> list[str]:
    """For a run folder written by weight averaging: which checkpoints, and what it gained."""
    if not averaged:
        return []
    names = [Path(m).name for m in averaged["members"]]
    acc = averaged.get("val_accuracy")
    return [
        f"- shipped weights: the average of {len(names)} checkpoints ({names[0]} … {names[-1]}), BatchNorm "
        f"re-estimated on {averaged['batchnorm_faces']} training faces"
        + (f": validation accuracy {acc:.4f} vs {best_epoch_acc:.4f} for the best single epoch" if acc else "")
    ]


def extension_lines(extended: list[dict] | None) -> list[str]:
    return [f"- then resumed after epoch {e['after_epoch']} with `--resume --epochs {e['epochs']}"
            + (f" --average-last {e['average_last']}" if e.get("average_last") else "") + "`"
            for e in extended or []]


def summary(run: Path) -> str:
    meta = json.loads((run / "run.json").read_text())
    cfg = meta["config"]
    hist = list(csv.DictReader((run / "history.csv").open()))
    accs = [float(r["val_accuracy"]) for r in hist]
    best = max(range(len(accs)), key=accs.__getitem__)
    secs = sum(float(r.get("epoch_seconds") or 0) for r in hist)
    shipped = "the average below" if meta.get("averaged") else "`best.keras`"
    return "\n".join([
        f"- command: `{command(cfg, str(run))}`",
        *extension_lines(meta.get("extended")),
        *parent_lines(meta.get("init_from")),
        f"- architecture: `{cfg['arch']}`, {meta['params']:,} parameters",
        f"- training data: {meta['train_data']}",
        f"- validation data: {meta['val_data']}",
        f"- epochs run: {len(hist)}; validation accuracy after the last epoch {accs[-1]:.4f}, best "
        f"{accs[best]:.4f} after epoch {best + 1} (the shipped weights: {shipped})",
        *averaged_line(meta.get("averaged"), accs[best]),
        f"- training time: {secs / 60:.0f} min (sum of epoch times), "
        + (f"on {meta['machine']}" if meta.get("machine") else "machine not recorded in run.json"),
    ])


if __name__ == "__main__":
    print(summary(Path(sys.argv[1])))
