"""A 1-epoch train on generated data, resume after an interruption, the run report, eval parity."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("tensorflow")

from edgefer.runtime.labels import FER2013_LABELS
from edgefer.train.trainer import TrainConfig, train


def _tiny_fer_tree(root: Path, per_class: int = 6) -> Path:
    """Seven classes whose images differ in brightness, so a model can learn something."""
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("test", 2)):
        for i, name in enumerate(FER2013_LABELS):
            d = root / split / name
            d.mkdir(parents=True)
            for j in range(n):
                img = np.clip(rng.normal(30 + 30 * i, 10, (48, 48)), 0, 255).astype(np.uint8)
                cv2.imwrite(str(d / f"{split}_{j}.png"), img)
    return root


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return _tiny_fer_tree(tmp_path_factory.mktemp("fer"))


def _history(run: Path) -> list[dict]:
    with (run / "history.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_train_then_resume_after_interruption(tiny_data: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    cfg = TrainConfig(data=str(tiny_data), arch="ckplus", out=str(run), epochs=1, batch_size=8, seed=1,
                      precision="auto")
    train(cfg)
    assert (run / "last.keras").is_file() and (run / "best.keras").is_file()
    assert len(_history(run)) == 1
    meta = json.loads((run / "run.json").read_text())
    assert meta["labels"] == list(FER2013_LABELS)
    assert meta["preprocess"]["size"] == [48, 48]
    assert meta["machine"].startswith("Keras ") and "CPU" in meta["machine"]  # where it trained, for its card
    # auto is recorded as what it chose on this machine; the resume below asks for auto again
    from edgefer.runtime.machine import simd_features
    from edgefer.train.trainer import accelerator, auto_precision

    assert meta["config"]["precision"] == auto_precision(accelerator(), simd_features())
    # "killed" after epoch 1: a resumed run continues at epoch 2 instead of starting over.
    capsys.readouterr()
    cfg.epochs, cfg.resume = 3, True
    train(cfg)
    rows = _history(run)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert all(float(r["epoch_seconds"]) > 0 for r in rows)
    # progress: after each epoch its time and the run's ETA; captured output is no terminal, so no \r
    printed = capsys.readouterr().out
    assert re.search(r"^epoch 2/3 done in \d+ s; run ETA \d+ s \(about \d\d:\d\d UTC", printed, re.M), printed
    assert re.search(r"^epoch 3/3 done in \d+ s; 2 epochs trained in \d+ s$", printed, re.M), printed
    assert "\r" not in printed


def test_same_seed_same_history(tiny_data: Path, tmp_path: Path) -> None:
    losses = []
    for name in ("a", "b"):
        cfg = TrainConfig(data=str(tiny_data), arch="ckplus", out=str(tmp_path / name), epochs=2, batch_size=8, seed=3)
        train(cfg)
        losses.append([float(r["loss"]) for r in _history(tmp_path / name)])
    assert losses[0] == losses[1]  # bit for bit: batches, augmentation and dropout are seeded per epoch


def test_run_report_has_every_analysis(tiny_data: Path, tmp_path: Path) -> None:
    from edgefer.train.report import write_run_report

    run = tmp_path / "run"
    train(TrainConfig(data=str(tiny_data), arch="ckplus", out=str(run), epochs=2, batch_size=8, seed=0))
    report = write_run_report(run)
    text = report.read_text()
    for png in ("curves.png", "confusion.png", "samples.png", "kernels.png", "filtered.png"):
        assert (run / png).stat().st_size > 1000, png
        assert png in text
    m = json.loads((run / "metrics.json").read_text())
    assert m["n"] == 14 and 0.0 <= m["accuracy"] <= 1.0
    assert "| angry |" in text


def test_full_recipe_trains_and_resumes(tiny_data: Path, tmp_path: Path) -> None:
    """Augmentation, mixup and CutMix, label smoothing, cosine with warm-up, AdamW and class weights together."""
    run = tmp_path / "recipe"
    cfg = TrainConfig(
        data=str(tiny_data), arch="ckplus", out=str(run), epochs=1, batch_size=8, seed=0, augment=True,
        mixup=0.2, cutmix=1.0,
        label_smoothing=0.1, schedule="cosine", warmup_epochs=1, weight_decay=1e-4, class_weight="sqrt",
    )
    train(cfg)
    cfg.epochs, cfg.resume = 2, True
    train(cfg)
    rows = _history(run)
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    # The schedule is a function of the optimizer's step count, which the checkpoint carries:
    # after resuming, the count covers both epochs (42 images / batch 8 = 6 steps each).
    import keras

    opt = keras.models.load_model(run / "last.keras").optimizer
    assert int(opt.iterations.numpy()) == 12


def test_class_weights_normalised() -> None:
    from edgefer.train.trainer import class_weights

    y = np.array([0] * 90 + [1] * 10)
    w = class_weights(y, 2, "balanced")
    assert np.isclose(w[y].mean(), 1.0)
    assert np.isclose(w[1] / w[0], 9.0)
    assert np.isclose(class_weights(y, 2, "sqrt")[1] / class_weights(y, 2, "sqrt")[0], 3.0)
    assert class_weights(y, 2, "none") is None


def test_augmenter_is_seeded_and_keeps_shape() -> None:
    from edgefer.train.augment import AugmentConfig, Augmenter

    x = np.random.default_rng(0).integers(0, 256, (8, 48, 48), dtype=np.uint8)
    a = Augmenter()
    y1 = a(x, np.random.default_rng(5))
    y2 = a(x, np.random.default_rng(5))
    assert y1.shape == x.shape and y1.dtype == np.uint8
    assert np.array_equal(y1, y2)
    assert not np.array_equal(y1, x)
    assert np.array_equal(Augmenter(AugmentConfig.off())(x, np.random.default_rng(5)), x)


def test_mixed_bfloat16_run_loads_as_float32(tiny_data: Path, tmp_path: Path) -> None:
    import keras

    from edgefer.train.checkpoints import load_inference_model

    run = tmp_path / "bf16"
    try:
        train(TrainConfig(data=str(tiny_data), arch="ckplus", out=str(run), epochs=1, batch_size=8,
                          precision="mixed_bfloat16"))
        mixed = keras.models.load_model(run / "best.keras", compile=False)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert any(layer.compute_dtype == "bfloat16" for layer in mixed.layers)
    model = load_inference_model(run / "best.keras")
    assert all(layer.compute_dtype == "float32" for layer in model.layers)
    x = np.random.default_rng(0).random((4, 48, 48, 1), dtype=np.float32)
    # bfloat16 keeps 8 bits of mantissa: the float32 rebuild agrees within that precision
    assert np.allclose(model(x).numpy(), mixed(x).numpy(), atol=0.05)


def test_cli_resume_with_only_the_run_folder(tiny_data: Path, tmp_path: Path, capsys) -> None:
    """`--out DIR --resume` continues with the settings of DIR/run.json, and may ask for more epochs."""
    from edgefer.runtime.cli import main

    run = tmp_path / "run"
    assert main(["train", "--arch", "ckplus", "--data", str(tiny_data), "--out", str(run), "--epochs", "1",
                 "--batch", "8", "--lr", "0.002", "--seed", "4", "--limit", "21", "--no-report"]) == 0
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2", "--no-report"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert [int(r["epoch"]) for r in _history(run)] == [0, 1]
    meta = json.loads((run / "run.json").read_text())
    assert (meta["config"]["arch"], meta["config"]["learning_rate"], meta["config"]["limit"]) == ("ckplus", 0.002, 21)
    assert meta["extended"] == [{"after_epoch": 1, "epochs": 2, "average_last": 0}]
    assert main(["train", "--out", str(run), "--resume", "--batch", "16", "--no-report"]) == 2
    assert "--batch 16 (the run has 8)" in capsys.readouterr().err
