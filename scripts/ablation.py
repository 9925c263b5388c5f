"""Recipe ablation: the full recipe, then each ingredient switched off (or on) alone.

Every variant trains the same architecture from scratch on the same seeded subset of FER2013
Training for the same number of epochs and is scored on PublicTest. The final-epoch accuracy
is the headline (the best epoch is selected on PublicTest itself, so it flatters). Runs are
resumable: run the script again after a kill and finished variants are skipped.

Usage: python scripts/ablation.py [--limit 7000] [--epochs 15] [--jobs 2] [--out runs/ablation]
Writes OUT/ablation.md (a Markdown table) and prints it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from edgefer.train.config import PRECISIONS
from edgefer.train.runfolder import RunFolder

FULL = ["--augment", "--label-smoothing", "0.1", "--schedule", "cosine", "--warmup-epochs", "1",
        "--weight-decay", "0.01"]


def _without(*flags: str) -> list[str]:
    """FULL minus the named flags (and their values)."""
    out, skip = [], False
    for i, tok in enumerate(FULL):
        if skip:
            skip = False
            continue
        if tok in flags:
            skip = i + 1 < len(FULL) and not FULL[i + 1].startswith("--")
            continue
        out.append(tok)
    return out


VARIANTS: dict[str, tuple[str, list[str]]] = {
    "full": ("full recipe", FULL),
    "no-augment": ("without augmentation", _without("--augment")),
    "no-smoothing": ("without label smoothing", _without("--label-smoothing")),
    "constant-lr": ("constant learning rate instead of cosine + warm-up", _without("--schedule", "--warmup-epochs")),
    "no-decay": ("Adam without weight decay", _without("--weight-decay")),
    "class-weight": ("plus sqrt class weights", [*FULL, "--class-weight", "sqrt"]),
    "plain": ("none of them (the report's plain recipe)", []),
}


def _epochs_done(run: Path) -> int:
    return RunFolder(run).finished_epochs()


def _command(args: argparse.Namespace, name: str) -> list[str]:
    edgefer = str(Path(sys.executable).with_name("edgefer"))
    return [edgefer, "train", "--arch", args.arch, "--data", args.data, "--epochs", str(args.epochs),
            "--batch", "128", "--lr", str(args.lr), "--limit", str(args.limit), "--precision", args.precision,
            "--no-report", "--resume", "--out", str(Path(args.out) / name), *VARIANTS[name][1]]


def run_all(args: argparse.Namespace, names: list[str]) -> None:
    env = dict(os.environ, TF_NUM_INTRAOP_THREADS=str(args.threads), TF_NUM_INTEROP_THREADS="1",
               OMP_NUM_THREADS=str(args.threads), TF_CPP_MIN_LOG_LEVEL="2")
    pending = [n for n in names if _epochs_done(Path(args.out) / n) < args.epochs]
    running: dict[str, subprocess.Popen] = {}
    while pending or running:
        while pending and len(running) < args.jobs:
            name = pending.pop(0)
            log = (Path(args.out) / f"{name}.log").open("a")
            (Path(args.out) / name).mkdir(parents=True, exist_ok=True)
            print(f"start {name}: {' '.join(_command(args, name))}", flush=True)
            running[name] = subprocess.Popen(_command(args, name), stdout=log, stderr=subprocess.STDOUT, env=env)
        time.sleep(5)
        for name, proc in list(running.items()):
            if proc.poll() is not None:
                print(f"{name}: exit {proc.returncode}, {_epochs_done(Path(args.out) / name)} epochs", flush=True)
                del running[name]


def table(args: argparse.Namespace, names: list[str]) -> str:
    rows = ["| variant | epochs | final PublicTest acc. | Δ vs full recipe | best epoch acc. | train acc. (last) "
            "| minutes |", "|---|---:|---:|---:|---:|---:|---:|"]
    results = {}
    for name in names:
        if rows := RunFolder(Path(args.out) / name).read_history():
            results[name] = rows
    ref = float(results["full"][-1]["val_accuracy"]) if results.get("full") else None
    for name in names:
        h = results.get(name)
        if not h:
            rows.append(f"| {VARIANTS[name][0]} | 0 | not run | | | | |")
            continue
        final = float(h[-1]["val_accuracy"])
        delta = f"{100 * (final - ref):+.2f} pt" if ref is not None and name != "full" else ""
        best = max(float(r["val_accuracy"]) for r in h)
        minutes = sum(float(r.get("epoch_seconds") or 0) for r in h) / 60
        rows.append(f"| {VARIANTS[name][0]} | {len(h)} | {final:.4f} | {delta} | {best:.4f} | "
                    f"{float(h[-1]['accuracy']):.4f} | {minutes:.0f} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/fer2013")
    ap.add_argument("--arch", default="edge")
    ap.add_argument("--limit", type=int, default=7000, help="training images per variant (same seeded subset)")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--lr", type=float, default=0.002)
    ap.add_argument("--precision", default="auto", choices=PRECISIONS)
    ap.add_argument("--jobs", type=int, default=2, help="variants trained at once")
    ap.add_argument("--threads", type=int, default=1, help="TensorFlow threads per variant")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {list(VARIANTS)}")
    ap.add_argument("--out", default="runs/ablation")
    ap.add_argument("--table-only", action="store_true", help="only collect the table from finished runs")
    args = ap.parse_args()
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        run_all(args, names)
    text = (f"{args.arch}, {args.limit} FER2013 Training images (seeded subset), {args.epochs} epochs, batch 128, "
            f"peak learning rate {args.lr}, {args.precision}; scored on PublicTest (3,589 images)\n\n"
            + table(args, names) + "\n")
    (Path(args.out) / "ablation.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
