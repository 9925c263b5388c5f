"""Dataset loaders: FER2013 image folders, the Kaggle ``fer2013.csv``, CK+48, FER+ votes.

Everything lands in memory as uint8 (N, h, w) through the runtime's own preprocessing
(gray -> INTER_AREA resize), so a training image looks exactly like a served face crop.
Bad input is reported and skipped, never silently dropped.
"""

from __future__ import annotations

import csv
import dataclasses
import re
import sys
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgefer.runtime.errors import DataError
from edgefer.runtime.labels import FER2013_LABELS, canonical_label
from edgefer.runtime.preprocess import resize_face, to_gray

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
CKPLUS_NAME = re.compile(r"^S(\d+)_(\d+)_(\d+)")


@dataclass
class Dataset:
    x: np.ndarray  # uint8 (N, h, w)
    y: np.ndarray  # int64 (N,) indices into labels
    labels: tuple[str, ...]
    files: list[str] = field(default_factory=list)
    groups: np.ndarray | None = None  # subject ids, for subject-independent splits
    name: str = ""
    targets: np.ndarray | None = None  # soft labels (FER+ vote distributions), float32 (N, classes)
    dropped: dict[str, int] = field(default_factory=dict)  # rows of the source left out, by reason

    def __len__(self) -> int:
        return len(self.y)

    def counts(self) -> dict[str, int]:
        c = Counter(self.y.tolist())
        return {name: c.get(i, 0) for i, name in enumerate(self.labels)}

    def describe(self) -> dict:
        """Where the images came from and how many per class, for model cards."""
        return {"data": self.name, "images": len(self), "per_class": self.counts()}

    def summary(self) -> str:
        per = ", ".join(f"{k} {v}" for k, v in self.counts().items())
        return f"{self.name or 'dataset'}: {len(self)} images ({per})"

    def subset(self, idx: np.ndarray, name: str | None = None) -> Dataset:
        return Dataset(
            x=self.x[idx],
            y=self.y[idx],
            labels=self.labels,
            files=[self.files[i] for i in idx] if self.files else [],
            groups=None if self.groups is None else self.groups[idx],
            name=name or self.name,
            targets=None if self.targets is None else self.targets[idx],
        )

    def restricted_to(self, labels: Sequence[str]) -> tuple[Dataset, np.ndarray]:
        """The images of the classes in ``labels``, relabelled to those classes, and their indices here.

        A model can only be scored on classes it has an output for: a FER2013 model on CK+
        leaves out CK+'s contempt faces rather than counting them as errors.
        """
        kept = tuple(name for name in self.labels if name in labels)
        if kept == self.labels:
            return self, np.arange(len(self))
        cols = [self.labels.index(name) for name in kept]
        idx = np.flatnonzero(np.isin(self.y, cols))
        dropped = ", ".join(name for name in self.labels if name not in kept)
        remap = np.array([kept.index(name) if name in kept else -1 for name in self.labels])
        sub = self.subset(idx, f"{self.name} without {dropped}")
        targets = None if sub.targets is None else sub.targets[:, cols]
        return dataclasses.replace(sub, y=remap[sub.y], labels=kept, targets=targets), idx


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


def _present(image: np.ndarray | None) -> np.ndarray:
    assert image is not None  # callers keep only the images that decoded
    return image


def read_gray(path: Path, size: tuple[int, int]) -> np.ndarray | None:
    """Decode any image (any depth) to uint8 gray at ``size``; None if unreadable."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        return None
    if img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)  # type: ignore[call-overload]  # dst=None is documented; the stub lacks it
    return resize_face(to_gray(img), size)


def _read_many(paths: list[Path], size: tuple[int, int], workers: int = 4) -> list[np.ndarray | None]:
    # cv2 releases the GIL while decoding, so threads keep both cores busy.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda p: read_gray(p, size), paths, chunksize=256))


def list_class_images(root: Path, labels: tuple[str, ...]) -> tuple[list[Path], np.ndarray]:
    """Image files of ``root/<class>/`` matched to ``labels`` through the aliases; others reported."""
    paths: list[Path] = []
    ys: list[int] = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        label = canonical_label(d.name)
        if label not in labels:
            n = sum(1 for _ in d.iterdir())
            _warn(f"{d}: unknown class folder '{d.name}' ({n} files) skipped; known: {', '.join(labels)}")
            continue
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        paths += files
        ys += [labels.index(label)] * len(files)
    return paths, np.asarray(ys, dtype=np.int64)


def load_image_folder(
    root: str | Path,
    labels: tuple[str, ...] = FER2013_LABELS,
    size: tuple[int, int] = (48, 48),
    name: str | None = None,
) -> Dataset:
    """Read ``root/<class>/*`` images; class folders are matched through label aliases."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    paths, ys = list_class_images(root, labels)
    if not paths:
        raise DataError(f"{root}: no images in <class>/ sub-folders (expected e.g. {root}/happy/*.jpg)")
    images = _read_many(paths, size)
    keep = [i for i, im in enumerate(images) if im is not None]
    for i in set(range(len(paths))) - set(keep):
        _warn(f"unreadable image skipped: {paths[i]}")
    return Dataset(
        x=np.stack([_present(images[i]) for i in keep]) if keep else np.zeros((0, *size), np.uint8),
        y=ys[keep] if keep else np.zeros(0, np.int64),
        labels=labels,
        files=[str(paths[i]) for i in keep],
        name=name or root.name,
    )


FER_CSV_USAGES = ("Training", "PublicTest", "PrivateTest")
FER_CSV_SIDE = 48  # the Kaggle file's images are 48x48: 2304 pixels a row, no other size
WARN_ROWS_PER_REASON = 3  # then only the count: a damaged 35,887-row file would flood the terminal


class RowError(ValueError):
    """A CSV row that cannot be used; ``reason`` names the count it goes to."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def parse_fer_row(row: list[str], col: dict[str, int]) -> tuple[int, np.ndarray]:
    """(emotion, 48x48 uint8 face) of one row of the Kaggle CSV, or RowError saying why not."""
    text = row[col["emotion"]].strip()
    if not text.isdigit() or not 0 <= int(text) < len(FER2013_LABELS):
        raise RowError("bad emotion index", f"emotion {text!r} is not one of 0..{len(FER2013_LABELS) - 1}")
    values = row[col["pixels"]].split()
    if len(values) != FER_CSV_SIDE * FER_CSV_SIDE:
        raise RowError("wrong pixel count", f"{len(values)} pixels, expected {FER_CSV_SIDE * FER_CSV_SIDE}")
    # Digits only: int() would also take '+5', ' 5' or '٥', float() takes 'nan' and '12.7'.
    bad = next((v for v in values if not (v.isascii() and v.isdigit() and int(v) <= 255)), None)
    if bad is not None:
        raise RowError("pixel not an integer 0..255", f"pixel value {bad!r}")
    return int(text), np.asarray(values, dtype=np.int64).astype(np.uint8).reshape(FER_CSV_SIDE, FER_CSV_SIDE)


def load_fer_csv(
    path: str | Path, usage: str | tuple[str, ...] = "Training", size: tuple[int, int] = (48, 48)
) -> Dataset:
    """Read the Kaggle ``fer2013.csv`` (emotion,pixels,Usage); rows of other usages are skipped.

    A row that cannot be used is dropped, counted by reason in ``Dataset.dropped`` and reported
    on stderr: bad or empty Usage, short row, extra column, bad emotion index, wrong pixel count,
    pixel not an integer 0..255. Rows of a valid other Usage are not drops: they are the other splits.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"CSV not found: {path}")
    usages = {usage} if isinstance(usage, str) else set(usage)
    xs, ys, names = [], [], []
    dropped: Counter[str] = Counter()
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        col = {name: i for i, name in enumerate(header)}
        if not {"emotion", "pixels"} <= col.keys() or len(col) != len(header):
            raise DataError(f"{path}: expected columns emotion,pixels[,Usage]; found {header}")
        for line, row in enumerate(reader, start=2):
            if not row:  # a blank line (a trailing newline) carries no row
                continue
            try:
                if len(row) != len(col):
                    why = "short row" if len(row) < len(col) else "extra column"
                    raise RowError(why, f"{len(row)} fields, expected {len(col)}")
                if "Usage" in col:
                    use = row[col["Usage"]].strip()
                    if use not in FER_CSV_USAGES:
                        raise RowError("bad or empty Usage", f"Usage {use!r} is not one of {', '.join(FER_CSV_USAGES)}")
                    if use not in usages:
                        continue
                label, face = parse_fer_row(row, col)
            except RowError as exc:
                dropped[exc.reason] += 1
                if dropped[exc.reason] <= WARN_ROWS_PER_REASON:
                    _warn(f"{path.name} line {line}: row dropped, {exc.reason} ({exc})")
                continue
            xs.append(resize_face(face, size))
            ys.append(label)
            names.append(f"{path.name}:{line}")
    if dropped:
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(dropped.items()))
        _warn(f"{path.name}: {sum(dropped.values())} rows dropped ({why})")
    if not xs:
        raise DataError(f"{path}: no usable rows with Usage in {sorted(usages)}")
    return Dataset(
        x=np.stack(xs), y=np.asarray(ys, np.int64), labels=FER2013_LABELS, files=names,
        name=f"{path.stem}[{'+'.join(sorted(usages))}]", dropped=dict(dropped),
    )


CKPLUS_LABELS: tuple[str, ...] = ("angry", "contempt", "disgust", "fear", "happy", "sad", "surprise")


def load_ckplus(root: str | Path, size: tuple[int, int] = (48, 48)) -> Dataset:
    """CK+48: ``root/<class>/S<subject>_<seq>_<frame>.png``; subject ids kept as groups."""
    ds = load_image_folder(root, labels=CKPLUS_LABELS, size=size, name="ckplus")
    groups = []
    for f in ds.files:
        m = CKPLUS_NAME.match(Path(f).name)
        groups.append(int(m.group(1)) if m else -1)
    ds.groups = np.asarray(groups, dtype=np.int64)
    if (ds.groups < 0).any():
        _warn(f"{int((ds.groups < 0).sum())} CK+ files without an S<subject>_ prefix: grouped as subject -1")
    return ds


def load_fer2013(root: str | Path, split: str, size: tuple[int, int] = (48, 48)) -> Dataset:
    """``root`` is a Kaggle image tree (``train/``, ``test/``) or a ``fer2013.csv``."""
    root = Path(root)
    if root.suffix.lower() == ".csv":
        usage = {"train": "Training", "test": "PublicTest", "val": "PublicTest", "private": "PrivateTest"}
        return load_fer_csv(root, usage.get(split, split), size)
    return load_image_folder(root / split, size=size, name=f"fer2013/{split}")


def pixel_duplicates(query: Dataset, reference: Dataset) -> np.ndarray:
    """Indices of ``query`` images pixel-identical (after decoding) to some ``reference`` image."""
    import hashlib

    seen = {hashlib.sha1(x.tobytes()).digest() for x in reference.x}
    return np.asarray([i for i, x in enumerate(query.x) if hashlib.sha1(x.tobytes()).digest() in seen], np.int64)


def random_split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.random.default_rng(seed).permutation(n)
    k = int(round(n * test_fraction))
    return np.sort(idx[k:]), np.sort(idx[:k])


def group_split(groups: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split so that no group (subject) appears on both sides."""
    uniq = np.random.default_rng(seed).permutation(np.unique(groups))
    k = max(1, int(round(len(uniq) * test_fraction)))
    test_mask = np.isin(groups, uniq[:k])
    return np.flatnonzero(~test_mask), np.flatnonzero(test_mask)


def load_ferplus(root: str | Path, split: str, size: tuple[int, int] = (48, 48)) -> Dataset:
    """FER2013 images with FER+ annotator votes (``root/ferplus_join.csv``).

    Images whose votes are mostly 'unknown' or 'not a face' are dropped (counted in a warning).
    ``targets`` holds the vote distribution over the 8 emotions; ``y`` is its majority label.
    """
    from edgefer.runtime.labels import FERPLUS_LABELS, FERPLUS_VOTE_COLUMNS

    root = Path(root)
    table = root / "ferplus_join.csv"
    if not table.is_file():
        raise DataError(f"FER+ votes not found: {table} (expected ferplus_join.csv beside train/ and test/)")
    folder = {"train": "train", "test": "test", "val": "test"}.get(split, split)
    paths, votes = [], []
    dropped = {"unknown or not a face": 0, "no votes": 0}
    with table.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if not row["file"].startswith(f"{folder}/"):
                continue
            try:
                v = np.asarray([float(row[c] or 0) for c in FERPLUS_VOTE_COLUMNS])
                junk = max(float(row["unknown"] or 0), float(row["NF"] or 0))
            except (KeyError, ValueError):
                dropped["no votes"] += 1
                continue
            if v.sum() <= 0:
                dropped["no votes"] += 1
            elif junk >= v.max():
                dropped["unknown or not a face"] += 1
            else:
                paths.append(root / row["file"])
                votes.append(v / v.sum())
    if not paths:
        raise DataError(f"{table}: no usable rows for split '{split}'")
    for why, n in dropped.items():
        if n:
            _warn(f"FER+ {split}: {n} images dropped ({why})")
    images = _read_many(paths, size)
    keep = [i for i, im in enumerate(images) if im is not None]
    for i in set(range(len(paths))) - set(keep):
        _warn(f"unreadable image skipped: {paths[i]}")
    targets = np.stack([votes[i] for i in keep]).astype(np.float32)
    return Dataset(
        x=np.stack([_present(images[i]) for i in keep]),
        y=targets.argmax(axis=1).astype(np.int64),
        labels=FERPLUS_LABELS,
        files=[str(paths[i]) for i in keep],
        name=f"ferplus/{split}",
        targets=targets,
    )


def ckplus_split(ds: Dataset, split: str, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices of a CK+ dataset: ``random`` or ``subject`` (no shared subject)."""
    if split == "subject":
        if ds.groups is None:
            raise ValueError(f"{ds.name}: the subject split needs subject ids in the file names")
        return group_split(ds.groups, fraction, seed)
    if split == "random":
        return random_split(len(ds), fraction, seed)
    raise ValueError(f"unknown CK+ split {split!r}; expected random or subject")


def ckplus_train_val(ds: Dataset, split: str, fraction: float, seed: int) -> tuple[Dataset, Dataset, str]:
    """(training split, validation split, description) of a CK+ dataset.

    The one place the two sides are drawn: training, evaluation and export all call it, so an
    evaluation or an export verification of a CK+ run sees exactly the images it validated on.
    """
    tr, te = ckplus_split(ds, split, fraction, seed)
    desc = f"CK+ {split} split ({len(te)} of {len(ds)} images held out, seed {seed})"
    return ds.subset(tr, "ckplus/train"), ds.subset(te, f"ckplus/val-{split}"), desc
