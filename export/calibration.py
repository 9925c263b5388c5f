"""Real face images for calibration and verification, sampled by class and named for what they are.

Calibration (INT8 activation ranges) draws a class-balanced sample from the training split:
rare classes such as FER2013's "disgust" still shape the ranges. Verification draws a
class-proportional sample from the run's validation split, so its accuracy mirrors the run's
validation accuracy and it never scores an image the run trained on: a FER2013 tree's test/
(PublicTest, which `edgefer train` validates on), or for a CK+ run the validation side of the
split its run.json records, drawn by the trainer's own function. A plain class folder without
a recorded split has no validation side, and its name says so.
Only the sampled files are decoded, with the same gray -> INTER_AREA steps as training.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgefer.runtime.errors import DataError
from edgefer.runtime.labels import canonical_label
from edgefer.train.config import CkplusSplit
from edgefer.train.data import CKPLUS_LABELS, Dataset, ckplus_train_val, list_class_images, load_ckplus, read_gray

CSV_USAGE = {"train": "Training", "test": "PublicTest"}


def balanced_indices(y: np.ndarray, n_classes: int, size: int, seed: int) -> np.ndarray:
    """About size/classes images of each class; a class with fewer gives its share to the rest."""
    rng = np.random.default_rng(seed)
    pools = [rng.permutation(np.flatnonzero(y == c)) for c in range(n_classes)]
    take = [0] * n_classes
    remaining = min(size, len(y))
    order = sorted(range(n_classes), key=lambda c: len(pools[c]))  # smallest classes first
    for k, c in enumerate(order):
        take[c] = min(len(pools[c]), remaining // (n_classes - k))
        remaining -= take[c]
    return np.sort(np.concatenate([pools[c][: take[c]] for c in range(n_classes)]).astype(np.int64))


def proportional_indices(y: np.ndarray, n_classes: int, size: int, seed: int) -> np.ndarray:
    """A sample that keeps each class's share (largest remainder), at least one per present class."""
    if size >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    counts = np.bincount(y, minlength=n_classes)
    exact = counts * size / len(y)
    take = np.minimum(counts, np.maximum(np.floor(exact).astype(int), (counts > 0).astype(int)))
    for c in np.argsort(-(exact - np.floor(exact))):
        if take.sum() >= size:
            break
        if take[c] < counts[c]:
            take[c] += 1
    picks = [rng.permutation(np.flatnonzero(y == c))[: take[c]] for c in range(n_classes)]
    return np.sort(np.concatenate(picks).astype(np.int64))


def split_folder(root: Path, split: str, labels: tuple[str, ...]) -> Path | None:
    """``root/<split>/<class>/`` (a FER2013 tree) or, for ``train``, ``root/<class>/`` itself."""
    for folder in (root / split, root) if split == "train" else (root / split,):
        if folder.is_dir() and any(canonical_label(d.name) in labels for d in folder.iterdir() if d.is_dir()):
            return folder
    return None


def run_split(run: Mapping[str, Any]) -> CkplusSplit | None:
    """The CK+ split a run.json records (its training side calibrates, its validation side verifies);
    None for a run on FER2013 (its train/ and test/ are the split)."""
    cfg = run.get("config") or {}
    return CkplusSplit.of(cfg) if cfg.get("dataset") == "ckplus" else None


def _ckplus_side(root: Path, labels: tuple[str, ...], size: tuple[int, int], split: CkplusSplit,
                 validation: bool) -> Dataset:
    """One side of a CK+ run's split, the very images the trainer drew (train/data.py ckplus_train_val)."""
    if tuple(labels) != CKPLUS_LABELS:
        raise DataError(f"{root}: the run trained on CK+ but the model's labels ({', '.join(labels)}) are not "
                        f"CK+'s ({', '.join(CKPLUS_LABELS)})")
    train, val, _ = ckplus_train_val(load_ckplus(root, size), split.split, split.val_fraction, split.seed)
    how = f"{split.split} split, seed {split.seed}"
    if validation:
        return replace(val, name=f"CK+ validation split of {root} ({how}, {split.val_fraction:.0%})")
    return replace(train, name=f"CK+ training split of {root} ({how})")


def _sample(ds: Dataset, n: int, seed: int, balanced: bool, name: str | None = None) -> Dataset:
    pick = (balanced_indices if balanced else proportional_indices)(ds.y, len(ds.labels), n, seed)
    return ds.subset(pick, name)


def _from_folder(folder: Path, labels, size, n, seed, balanced, exclude=frozenset(), name: str = "") -> Dataset:
    paths, y = list_class_images(folder, labels)
    if exclude:
        keep = np.asarray([str(p) not in exclude for p in paths], dtype=bool)
        paths, y = [p for p, k in zip(paths, keep, strict=True) if k], y[keep]
    if not paths:
        raise DataError(f"{folder}: no images in <class>/ sub-folders named after the labels "
                        f"({', '.join(labels)})")
    pick = (balanced_indices if balanced else proportional_indices)(y, len(labels), n, seed)
    faces, ys, files = [], [], []
    for i in pick:
        face = read_gray(paths[i], size)
        if face is None:
            print(f"warning: unreadable image skipped: {paths[i]}", file=sys.stderr)
            continue
        faces.append(face)
        ys.append(y[i])
        files.append(str(paths[i]))
    if not faces:
        raise DataError(f"{folder}: none of the sampled images could be read")
    return Dataset(np.stack(faces), np.asarray(ys, np.int64), labels, files=list(files), name=name or str(folder))


def _from_csv(path: Path, split: str, labels, size, n, seed, balanced, name: str) -> Dataset:
    from edgefer.train.data import load_fer_csv

    ds = load_fer_csv(path, CSV_USAGE.get(split, split), size)
    if tuple(ds.labels) != tuple(labels):
        raise DataError(f"{path}: FER2013 labels do not match the model's ({', '.join(labels)})")
    return _sample(ds, n, seed, balanced, name=f"{name} {path}[{CSV_USAGE.get(split, split)}]")


def load_calibration(root: str | Path, labels: tuple[str, ...], size: tuple[int, int], n: int = 300,
                     seed: int = 0, split: CkplusSplit | None = None) -> Dataset:
    """A class-balanced sample of ``n`` training faces: the training side of a CK+ run's ``split``,
    else a FER2013 tree's train/, fer2013.csv's Training rows, or a class folder."""
    root = Path(root)
    if split is not None:
        return _sample(_ckplus_side(root, labels, size, split, validation=False), n, seed, balanced=True)
    if root.suffix.lower() == ".csv" and root.is_file():
        return _from_csv(root, "train", labels, size, n, seed, balanced=True, name="training split")
    if not root.is_dir():
        raise DataError(f"calibration data not found: {root}")
    folder = split_folder(root, "train", labels)
    if folder is None:
        raise DataError(f"{root}: expected train/<class>/ or <class>/ image folders named after "
                        f"the labels ({', '.join(labels)})")
    name = f"training split {folder}" if folder != root else f"class folder {folder}"
    return _from_folder(folder, labels, size, n, seed, balanced=True, name=name)


def load_verification(root: str | Path, labels: tuple[str, ...], size: tuple[int, int], n: int = 1000,
                      seed: int = 0, calib: Dataset | None = None, split: CkplusSplit | None = None) -> Dataset:
    """A class-proportional sample of validation faces: the validation side of a CK+ run's ``split``,
    else a FER2013 tree's test/ or fer2013.csv's PublicTest rows. A class folder without either
    gives what calibration did not use (so no verification image was also a calibration image),
    named as no validation split."""
    root = Path(root)
    if split is not None:
        return _sample(_ckplus_side(root, labels, size, split, validation=True), n, seed + 1, balanced=False)
    if root.suffix.lower() == ".csv" and root.is_file():
        return _from_csv(root, "test", labels, size, n, seed + 1, balanced=False, name="validation split")
    if not root.is_dir():
        raise DataError(f"verification data not found: {root}")
    folder = split_folder(root, "test", labels)
    if folder is not None:
        return _from_folder(folder, labels, size, n, seed + 1, balanced=False, name=f"validation split {folder}")
    folder = split_folder(root, "train", labels)
    if folder is None:
        raise DataError(f"{root}: expected test/<class>/ or <class>/ image folders named after "
                        f"the labels ({', '.join(labels)})")
    used = frozenset(calib.files) if calib is not None else frozenset()
    name = (f"class folder {folder} less the calibration images "
            "(no validation split: the model may have trained on them)")
    return _from_folder(folder, labels, size, n, seed + 1, balanced=False, exclude=used, name=name)
