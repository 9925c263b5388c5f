"""Loaders on tiny generated folders and CSVs, including malformed input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgefer.runtime.labels import FER2013_LABELS
from edgefer.train.data import (
    CKPLUS_LABELS,
    DataError,
    group_split,
    load_ckplus,
    load_fer2013,
    load_fer_csv,
    load_image_folder,
    random_split,
)

RNG = np.random.default_rng(0)


def _write_images(folder: Path, names: list[str], size: int = 48) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        cv2.imwrite(str(folder / name), RNG.integers(0, 256, (size, size), dtype=np.uint8))


def test_image_folder_counts_aliases_and_bad_files(tmp_path: Path, capsys) -> None:
    _write_images(tmp_path / "happy", ["a.jpg", "b.png"])
    _write_images(tmp_path / "Anger", ["c.jpg"], size=64)  # alias + resize to 48
    _write_images(tmp_path / "cats", ["d.jpg"])  # unknown class folder
    (tmp_path / "happy" / "broken.jpg").write_bytes(b"not a jpeg")
    ds = load_image_folder(tmp_path)
    err = capsys.readouterr().err
    assert len(ds) == 3
    assert ds.x.shape == (3, 48, 48) and ds.x.dtype == np.uint8
    assert ds.counts()["happy"] == 2 and ds.counts()["angry"] == 1
    assert "unknown class folder 'cats'" in err
    assert "broken.jpg" in err
    assert ds.labels == FER2013_LABELS


def test_image_folder_missing_or_empty(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_image_folder(tmp_path / "nope")
    (tmp_path / "happy").mkdir()
    with pytest.raises(DataError, match="no images"):
        load_image_folder(tmp_path)


def _pixels(v: int, n: int = 2304) -> str:
    return " ".join([str(v)] * n)


def test_fer_csv_usage_filter_and_malformed_rows(tmp_path: Path, capsys) -> None:
    p = tmp_path / "fer2013.csv"
    rows = [
        "emotion,pixels,Usage",
        f"3,{_pixels(10)},Training",
        f"6,{_pixels(200)},Training",
        f"0,{_pixels(30)},PublicTest",
        f"9,{_pixels(30)},Training",  # label out of range
        f"2,{_pixels(30, 99)},Training",  # 99 pixels is not 48x48
        "1,12 abc 7,Training",  # not numbers, and 3 pixels
        f"4,{_pixels(300)},Training",  # out of 0..255
    ]
    p.write_text("\n".join(rows) + "\n")
    train = load_fer_csv(p, "Training")
    err = capsys.readouterr().err
    assert len(train) == 2
    assert train.y.tolist() == [3, 6]
    assert train.x[0].mean() == 10 and train.x[1].mean() == 200
    assert err.count("row dropped") == 4
    assert train.dropped == {"bad emotion index": 1, "wrong pixel count": 2, "pixel not an integer 0..255": 1}
    test = load_fer2013(p, "test")  # split names map to Usage values
    assert test.y.tolist() == [0]


def test_fer_csv_wrong_columns(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="expected columns"):
        load_fer_csv(p)


def test_ckplus_subject_split_has_no_shared_subject(tmp_path: Path) -> None:
    for cls in ("anger", "happy", "surprise"):
        names = [f"S{s:03d}_00{q}_0000000{f}.png" for s in range(1, 11) for q in (1,) for f in (1, 2)]
        _write_images(tmp_path / cls, names)
    ds = load_ckplus(tmp_path)
    assert ds.labels == CKPLUS_LABELS
    assert len(ds) == 60 and set(ds.groups.tolist()) == set(range(1, 11))
    tr, te = group_split(ds.groups, 0.2, seed=0)
    assert set(ds.groups[tr]).isdisjoint(ds.groups[te])
    assert len(tr) + len(te) == len(ds) and len(te) > 0
    tr2, te2 = random_split(len(ds), 0.2, seed=0)
    assert len(te2) == 12 and not set(tr2) & set(te2)


SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "fer2013").is_dir(), reason="../shared/data/fer2013 not present")
def test_real_fer2013_publictest_counts() -> None:
    ds = load_fer2013(SHARED / "fer2013", "test")
    assert len(ds) == 3589
    assert ds.counts() == {
        "angry": 467, "disgust": 56, "fear": 496, "happy": 895, "sad": 653, "surprise": 415, "neutral": 607,
    }


def test_ferplus_votes_targets_and_drops(tmp_path: Path, capsys) -> None:
    from edgefer.runtime.labels import FERPLUS_LABELS
    from edgefer.train.data import load_ferplus

    _write_images(tmp_path / "train" / "happy", ["a.jpg", "b.jpg", "c.jpg", "d.jpg"])
    head = "file,ferplus_image,jpeg_vs_png_mae,dup_group_size,dup_votes_identical," \
        "neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
    rows = [
        head,
        "train/happy/a.jpg,x.png,1.3,1,1,2,8,0,0,0,0,0,0,0,0",  # happy majority
        "train/happy/b.jpg,x.png,1.3,1,1,0,1,0,0,0,0,0,0,0,9",  # not a face: dropped
        "train/happy/c.jpg,x.png,1.3,1,1,0,0,0,0,0,0,0,0,0,0",  # no votes: dropped
        "train/happy/d.jpg,x.png,1.3,1,1,1,0,0,0,0,0,0,3,0,0",  # contempt majority
        "test/happy/e.jpg,x.png,1.3,1,1,5,5,0,0,0,0,0,0,0,0",  # other split: ignored
    ]
    (tmp_path / "ferplus_join.csv").write_text("\n".join(rows) + "\n")
    ds = load_ferplus(tmp_path, "train")
    err = capsys.readouterr().err
    assert ds.labels == FERPLUS_LABELS and len(ds) == 2
    assert [ds.labels[i] for i in ds.y] == ["happy", "contempt"]
    assert np.allclose(ds.targets[0], [0.2, 0.8, 0, 0, 0, 0, 0, 0])
    assert "1 images dropped (unknown or not a face)" in err and "1 images dropped (no votes)" in err
