"""Real face images for calibration and verification, sampled by class.

Calibration (INT8 activation ranges) draws a class-balanced sample from the training split:
rare classes such as FER2013's "disgust" still shape the ranges. Verification draws a
class-proportional sample from the held-out split, so its accuracy mirrors the test set.
Only the sampled files are decoded, with the same gray -> INTER_AREA steps as training.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from edgefer.runtime.errors import DataError
from edgefer.runtime.labels import canonical_label
from edgefer.train.data import Dataset, list_class_images, read_gray

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


def _from_folder(folder: Path, labels, size, n, seed, balanced, exclude=frozenset()) -> Dataset:
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
    return Dataset(np.stack(faces), np.asarray(ys, np.int64), labels, files=list(files), name=str(folder))


def _from_csv(path: Path, split: str, labels, size, n, seed, balanced) -> Dataset:
    from edgefer.train.data import load_fer_csv

    ds = load_fer_csv(path, CSV_USAGE.get(split, split), size)
    if tuple(ds.labels) != tuple(labels):
        raise DataError(f"{path}: FER2013 labels do not match the model's ({', '.join(labels)})")
    pick = (balanced_indices if balanced else proportional_indices)(ds.y, len(labels), n, seed)
    return Dataset(ds.x[pick], ds.y[pick], labels, name=f"{path}[{CSV_USAGE.get(split, split)}]")


def load_calibration(root: str | Path, labels: tuple[str, ...], size: tuple[int, int], n: int = 300,
                     seed: int = 0) -> Dataset:
    """A class-balanced sample of ``n`` training faces from a FER2013 tree, a class folder or fer2013.csv."""
    root = Path(root)
    if root.suffix.lower() == ".csv" and root.is_file():
        return _from_csv(root, "train", labels, size, n, seed, balanced=True)
    if not root.is_dir():
        raise DataError(f"calibration data not found: {root}")
    folder = split_folder(root, "train", labels)
    if folder is None:
        raise DataError(f"{root}: expected train/<class>/ or <class>/ image folders named after "
                        f"the labels ({', '.join(labels)})")
    return _from_folder(folder, labels, size, n, seed, balanced=True)


def load_verification(root: str | Path, labels: tuple[str, ...], size: tuple[int, int], n: int = 1000,
                      seed: int = 0, calib: Dataset | None = None) -> Dataset:
    """A class-proportional sample of held-out faces: ``test/`` if there is one, else what
    calibration did not use (so no verification image was also a calibration image)."""
    root = Path(root)
    if root.suffix.lower() == ".csv" and root.is_file():
        return _from_csv(root, "test", labels, size, n, seed + 1, balanced=False)
    if not root.is_dir():
        raise DataError(f"verification data not found: {root}")
    folder = split_folder(root, "test", labels)
    if folder is not None:
        return _from_folder(folder, labels, size, n, seed + 1, balanced=False)
    folder = split_folder(root, "train", labels)
    if folder is None:
        raise DataError(f"{root}: expected test/<class>/ or <class>/ image folders named after "
                        f"the labels ({', '.join(labels)})")
    used = frozenset(calib.files) if calib is not None else frozenset()
    return _from_folder(folder, labels, size, n, seed + 1, balanced=False, exclude=used)
