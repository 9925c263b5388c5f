"""Time-budgeted runs, distillation targets, threaded input pipeline, the data pack for GPU machines."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgefer.runtime.labels import FER2013_LABELS

ROOT = Path(__file__).resolve().parents[1]


def test_epochs_within_budget_arithmetic() -> None:
    from edgefer.train.budget import SAFETY, EpochCost, epochs_within

    cost = EpochCost(train_s=2.0, val_s=1.0, compile_s=10.0)
    assert epochs_within(100.0, cost, 1000) == int(SAFETY * 90 / 3)
    assert epochs_within(100.0, cost, 5) == 5  # never more than asked for
    assert epochs_within(5.0, cost, 50) == 1  # at least one epoch, even over budget


def test_datapack_round_trip_and_refusals(tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = {"train/happy/a.jpg": b"\xff\xd8abc", "test/sad/b.jpg": b"xyz" * 100, "votes.csv": b"file,happy\n"}
    for name, data in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    pack = tmp_path / "p.npz"
    run = [sys.executable, str(ROOT / "scripts" / "datapack.py")]
    subprocess.run([*run, "pack", str(src), str(pack), "--skip", "votes.csv"], check=True, capture_output=True)
    subprocess.run([*run, "unpack", str(pack), str(tmp_path / "dst")], check=True, capture_output=True)
    dst = tmp_path / "dst"
    got = {p.relative_to(dst).as_posix(): p.read_bytes() for p in dst.rglob("*") if p.is_file()}
    assert got == {k: v for k, v in files.items() if k != "votes.csv"}
    # A truncated pack is refused rather than unpacked into short files.
    with np.load(pack) as z:
        np.savez(tmp_path / "cut.npz", names=z["names"], sizes=z["sizes"], blob=z["blob"][:-1])
    r = subprocess.run([*run, "unpack", str(tmp_path / "cut.npz"), str(tmp_path / "d2")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "truncated" in r.stderr


def test_teacher_targets_align_by_file_and_label_name(tmp_path: Path) -> None:
    from edgefer.train.data import DataError, Dataset
    from edgefer.train.teacher import load_teacher, save_teacher

    rng = np.random.default_rng(0)
    n = 5
    ds = Dataset(
        x=np.zeros((n, 48, 48), np.uint8), y=np.arange(n) % 7, labels=FER2013_LABELS,
        files=[f"/a/train/{FER2013_LABELS[i % 7]}/f{i}.jpg" for i in range(n)],
    )
    probs = rng.dirichlet(np.ones(7), n).astype(np.float32)
    # Written on another machine: other root, reversed rows, labels in another order.
    rev = list(FER2013_LABELS)[::-1]
    other = Dataset(x=ds.x[::-1], y=ds.y[::-1], labels=tuple(rev),
                    files=[f.replace("/a/", "/elsewhere/") for f in ds.files[::-1]])
    save_teacher(tmp_path / "t.npz", other, probs[::-1][:, ::-1], ["m.onnx"])
    got = load_teacher(tmp_path / "t.npz", ds)
    np.testing.assert_allclose(got, probs, atol=2e-3)  # stored as float16
    ds.files[0] = "/a/train/angry/unknown.jpg"
    with pytest.raises(DataError, match="no teacher targets for 1"):
        load_teacher(tmp_path / "t.npz", ds)


def test_threaded_batches_equal_single_threaded() -> None:
    from edgefer.runtime.preprocess import PreprocessSpec
    from edgefer.train.augment import Augmenter
    from edgefer.train.sequence import FaceBatches

    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (40, 48, 48), dtype=np.uint8)
    y = rng.integers(0, 7, 40)
    kw = dict(num_classes=7, shuffle=True, seed=3, augment=Augmenter())
    one = FaceBatches(x, y, PreprocessSpec(), 8, workers=1, **kw)
    four = FaceBatches(x, y, PreprocessSpec(), 8, workers=4, **kw)
    for i in range(len(one)):
        np.testing.assert_array_equal(one[i][0], four[i][0])


@pytest.mark.slow
def test_budgeted_distilled_run_records_the_fitted_epochs(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    from test_train_run import _tiny_fer_tree

    from edgefer.train.data import load_fer2013
    from edgefer.train.teacher import save_teacher
    from edgefer.train.trainer import TrainConfig, train

    data = _tiny_fer_tree(tmp_path / "fer")
    ds = load_fer2013(data, "train")
    uniform = np.full((len(ds), 7), 1 / 7, np.float32)
    save_teacher(tmp_path / "t.npz", ds, uniform, ["uniform"])
    run = tmp_path / "run"
    cfg = TrainConfig(data=str(data), arch="ckplus", out=str(run), epochs=500, batch_size=8, seed=0,
                      schedule="cosine", time_budget=20.0, teacher=str(tmp_path / "t.npz"), teacher_weight=0.5)
    train(cfg)
    meta = json.loads((run / "run.json").read_text())
    with (run / "history.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    fitted = meta["config"]["epochs"]
    assert 1 <= fitted < 500  # a 20 s budget cannot hold 500 epochs, even of a tiny model
    assert 1 <= len(rows) <= fitted
    assert meta["config"]["teacher"].endswith("t.npz")


def test_cli_offers_every_architecture_with_its_measured_size() -> None:
    pytest.importorskip("keras")
    from edgefer.train.archs import ARCHS
    from edgefer.train.config import ARCH_NAMES

    assert set(ARCH_NAMES) == set(ARCHS)  # config.py lists them without importing Keras
    params = {name: ARCHS[name].build((48, 48, 1), 7).count_params() for name in ("edge_fast", "edge_wide")}
    assert params["edge_fast"] < 1.4e6 and params["edge_wide"] < 2e6  # the edge budget: <= 2M parameters


def test_fer_plus_votes_blend_by_file_and_label_name_and_drop_contempt() -> None:
    from edgefer.train.data import Dataset
    from edgefer.train.teacher import blend_votes

    labels = ("angry", "happy", "neutral")
    ds = Dataset(x=np.zeros((3, 4, 4), np.uint8), y=np.array([0, 1, 2]), labels=labels,
                 files=["root/train/angry/a.jpg", "root/train/happy/b.jpg", "root/train/neutral/c.jpg"])
    probs = np.full((3, 3), 1 / 3, np.float32)
    # FER+ order and names differ; c.jpg has no votes, b.jpg's votes are all contempt
    votes = Dataset(x=np.zeros((2, 4, 4), np.uint8), y=np.array([0, 1]),
                    labels=("neutral", "angry", "contempt", "happy"),
                    files=["other/train/angry/a.jpg", "other/train/happy/b.jpg"],
                    targets=np.array([[0.5, 0.25, 0.25, 0.0], [0.0, 0.0, 1.0, 0.0]], np.float32))
    out, n = blend_votes(ds, probs, votes, weight=0.5)
    assert n == 1
    # a.jpg: votes without contempt renormalised -> angry 1/3, happy 0, neutral 2/3
    assert np.allclose(out[0], 0.5 * probs[0] + 0.5 * np.array([1 / 3, 0.0, 2 / 3]))
    assert np.allclose(out[1:], probs[1:]) and np.allclose(out.sum(axis=1), 1.0)
