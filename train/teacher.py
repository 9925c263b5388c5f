"""Teacher targets for knowledge distillation: an ensemble's averaged probabilities per training image.

A student trained towards ``(1 - w) * label + w * teacher`` learns which faces are ambiguous
(fear vs surprise, sad vs neutral) from models that already saw the whole training set; the
teacher file is small (N x classes float16 + file keys), so it travels to a GPU machine that
has no TensorFlow and cannot run the teachers itself.

Usage:
  python -m edgefer.train.teacher runs/teacher.npz models/fer2013.onnx runs/a/best.keras ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .data import DataError, Dataset


def file_key(path: str) -> str:
    """class/file name: the same image on another machine, under another root."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}"


def ensemble_probs(models: list[str], ds: Dataset, flip: bool = True, threads: int = 2) -> np.ndarray:
    """Mean probability of ``models`` (any format ``edgefer eval`` reads) in ``ds.labels`` order."""
    from .evaluate import load_predictor, predict_all

    total = np.zeros((len(ds), len(ds.labels)), np.float64)
    for path in models:
        pred = load_predictor(path, threads=threads, flip_tta=flip)
        if set(pred.labels) != set(ds.labels):
            raise DataError(f"teacher {path} has labels {pred.labels}, the data {ds.labels}")
        order = [pred.labels.index(name) for name in ds.labels]
        total += predict_all(pred, ds.x)[:, order]
        print(f"teacher {path}: training accuracy {(total.argmax(1) == ds.y).mean():.4f} (ensemble so far)")
    return (total / len(models)).astype(np.float32)


def blend_votes(ds: Dataset, probs: np.ndarray, votes: Dataset, weight: float) -> tuple[np.ndarray, int]:
    """``(1 - weight) * probs + weight * votes`` for the images of ``ds`` that annotators voted on.

    ``votes`` is FER+ (:func:`load_ferplus`): its vote distributions are mapped to ``ds.labels``
    by name and renormalised; emotions the data lacks (contempt for FER2013) drop out, and an image
    whose votes were all for them keeps the models' probabilities. Returns the targets and the
    number of images blended.
    """
    assert votes.targets is not None
    cols = [list(votes.labels).index(name) for name in ds.labels]
    mapped = votes.targets[:, cols]
    mass = mapped.sum(axis=1)
    row = {file_key(f): i for i, f in enumerate(votes.files)}
    out, blended = probs.copy(), 0
    for i, f in enumerate(ds.files):
        j = row.get(file_key(f))
        if j is not None and mass[j] > 0:
            out[i] = (1 - weight) * probs[i] + weight * mapped[j] / mass[j]
            blended += 1
    return out, blended


def save_teacher(path: str | Path, ds: Dataset, probs: np.ndarray, sources: list[str]) -> None:
    """Written whole or not at all, to exactly ``path`` (numpy appends .npz only to a file name)."""
    from edgefer.runtime.atomic import atomic_open

    with atomic_open(path, "wb") as fh:
        np.savez_compressed(
            fh, keys=np.array([file_key(f) for f in ds.files]), probs=probs.astype(np.float16),
            labels=np.array(ds.labels), sources=np.array(sources),
        )


def load_teacher(path: str | Path, ds: Dataset) -> np.ndarray:
    """The teacher's probabilities aligned to ``ds`` (rows by file, columns by label name)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"teacher targets not found: {path}")
    with np.load(path) as z:
        keys, probs, labels = list(z["keys"]), z["probs"].astype(np.float32), [str(v) for v in z["labels"]]
    if set(labels) != set(ds.labels):
        raise DataError(f"{path}: teacher labels {labels} differ from the data's {list(ds.labels)}")
    row = {k: i for i, k in enumerate(keys)}
    missing = [f for f in ds.files if file_key(f) not in row]
    if missing:
        raise DataError(f"{path}: no teacher targets for {len(missing)} training images, e.g. {missing[0]}")
    cols = [labels.index(name) for name in ds.labels]
    out = probs[[row[file_key(f)] for f in ds.files]][:, cols]
    return out / out.sum(axis=1, keepdims=True)


def main(argv: list[str] | None = None) -> int:
    from .trainer import TrainConfig, load_splits

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="teacher file to write (.npz)")
    ap.add_argument("models", nargs="+", help="teacher models: .onnx, .tflite, .keras or run folders")
    ap.add_argument("--data", default="../shared/data/fer2013")
    ap.add_argument("--dataset", default="fer2013", choices=("fer2013", "ferplus", "ckplus"))
    ap.add_argument("--no-flip", action="store_true", help="skip averaging each face with its mirror image")
    ap.add_argument("--votes", type=float, default=0.0, metavar="W",
                    help="blend FER+ annotator votes into the FER2013 targets with weight W (0-1) "
                         "wherever an image has them (ferplus_join.csv beside the data)")
    args = ap.parse_args(argv)
    if not 0.0 <= args.votes <= 1.0:
        ap.error(f"--votes {args.votes}: expected a weight between 0 and 1")
    train_ds, _, _ = load_splits(TrainConfig(data=args.data, dataset=args.dataset))
    probs = ensemble_probs(args.models, train_ds, flip=not args.no_flip)
    sources = list(args.models)
    if args.votes > 0:
        from .data import load_ferplus

        probs, n = blend_votes(train_ds, probs, load_ferplus(args.data, "train"), args.votes)
        sources.append(f"FER+ votes (ferplus_join.csv), weight {args.votes}")
        print(f"FER+ votes blended into {n} of {len(train_ds)} targets (weight {args.votes})")
    save_teacher(args.out, train_ds, probs, sources)
    agree = (probs.argmax(1) == train_ds.y).mean()
    print(f"{args.out}: {len(train_ds)} images, the teacher agrees with {agree:.4f} of the labels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
