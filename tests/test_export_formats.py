"""Export pieces that need no TensorFlow: the format table, sampling, data loading, checks, CLI errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ckplus_synthetic import write_ckplus_tree
from export_synthetic import LABELS, SIZE, write_tree

from edgefer.export.calibration import (
    DataError,
    balanced_indices,
    load_calibration,
    load_verification,
    proportional_indices,
    run_split,
)
from edgefer.export.context import ExportContext
from edgefer.export.formats import FORMATS, Check, ExportFormat, parse_formats
from edgefer.export.onnx_int8 import calib_batch_size
from edgefer.export.runner import export_format
from edgefer.export.source import SourceModel, default_stem
from edgefer.export.verify import compare
from edgefer.runtime.classifiers import BACKENDS
from edgefer.runtime.cli import main
from edgefer.runtime.metadata import ModelInfo, card_path
from edgefer.runtime.preprocess import PreprocessSpec
from edgefer.train.config import CkplusSplit
from edgefer.train.data import CKPLUS_LABELS, Dataset


def test_table_rows_have_distinct_cards_and_runtime_backends():
    files = [f.filename("m") for f in FORMATS.values()]
    cards = {card_path(Path(name)).name for name in files}
    assert len(cards) == len(files), "two formats would share one JSON card"
    assert {f.suffix for f in FORMATS.values()} <= set(BACKENDS)
    assert {f.name for f in FORMATS.values() if f.calibrated} == {"onnx-int8", "tflite-int8"}


def test_parse_formats_keeps_order_drops_repeats_and_rejects_unknown():
    assert [f.name for f in parse_formats("tflite-int8, onnx,tflite-int8")] == ["tflite-int8", "onnx"]
    assert len(parse_formats("all")) == len(FORMATS)
    with pytest.raises(ValueError, match="unknown format tflite-int4"):
        parse_formats("onnx,tflite-int4")


def test_balanced_indices_share_out_what_small_classes_lack():
    y = np.repeat(np.arange(3), [2, 50, 50])
    idx = balanced_indices(y, 3, 30, seed=1)
    counts = np.bincount(y[idx], minlength=3)
    assert counts.tolist() == [2, 14, 14]
    assert len(set(idx.tolist())) == 30
    assert np.array_equal(idx, balanced_indices(y, 3, 30, seed=1))


def test_proportional_indices_keep_class_shares():
    y = np.repeat(np.arange(3), [10, 30, 60])
    counts = np.bincount(y[proportional_indices(y, 3, 20, seed=0)], minlength=3)
    assert counts.tolist() == [2, 6, 12]
    assert len(proportional_indices(y, 3, 1000, seed=0)) == 100


def test_calibration_and_verification_come_from_train_and_test(tmp_path):
    root = write_tree(tmp_path / "fer", {"train": 6, "test": 3})
    calib = load_calibration(root, LABELS, SIZE, n=14, seed=0)
    assert calib.x.shape == (14, *SIZE) and calib.x.dtype == np.uint8
    assert set(calib.describe()["per_class"].values()) == {2}
    verify = load_verification(root, LABELS, SIZE, n=1000, seed=0, calib=calib)
    assert len(verify) == 21 and all("/test/" in f for f in verify.files)
    assert calib.name == f"training split {root / 'train'}" and verify.name == f"validation split {root / 'test'}"


def test_a_ckplus_run_calibrates_on_its_training_split_and_verifies_on_its_validation_split(tmp_path):
    from edgefer.train.trainer import TrainConfig, load_splits

    root = write_ckplus_tree(tmp_path / "ckplus")
    run = {"config": {"dataset": "ckplus", "data": str(root), "split": "random", "seed": 3, "val_fraction": 0.25}}
    split = run_split(run)
    assert split == CkplusSplit("random", 0.25, 3)
    assert run_split({"config": {"dataset": "fer2013", "split": "random"}}) is None
    trained, validated = (set(d.files) for d in load_splits(TrainConfig(**run["config"]))[:2])
    calib = load_calibration(root, CKPLUS_LABELS, SIZE, n=14, seed=0, split=split)
    verify = load_verification(root, CKPLUS_LABELS, SIZE, n=1000, seed=0, calib=calib, split=split)
    assert len(calib) == 14 and set(calib.files) <= trained
    assert set(verify.files) == validated and not set(verify.files) & trained  # the run never trained on them
    assert calib.name == f"CK+ training split of {root} (random split, seed 3)"
    assert verify.name == f"CK+ validation split of {root} (random split, seed 3, 25%)"
    assert "held-out" not in calib.name + verify.name
    with pytest.raises(DataError, match="not CK\\+'s"):
        load_verification(root, LABELS, SIZE, split=split)


def test_class_folder_without_test_split_verifies_on_unused_images(tmp_path, capsys):
    root = write_tree(tmp_path / "flat", {"": 4}, folder_names=[*LABELS[:-1], "Neutral"])
    (root / "contempt").mkdir()
    calib = load_calibration(root, LABELS, SIZE, n=7, seed=0)
    verify = load_verification(root, LABELS, SIZE, n=1000, seed=0, calib=calib)
    assert len(calib) == 7 and len(verify) == 21
    assert not set(calib.files) & set(verify.files)
    assert "no validation split: the model may have trained on them" in verify.name
    assert "contempt" in capsys.readouterr().err


def test_missing_data_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_calibration(tmp_path / "nope", LABELS, SIZE)
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="train/<class>/"):
        load_calibration(tmp_path / "empty", LABELS, SIZE)


def test_compare_gates_on_agreement_and_difference():
    faces = Dataset(np.zeros((4, *SIZE), np.uint8), np.array([0, 1, 1, 0]), ("a", "b"), name="t")
    ref = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]], np.float32)
    got = ref.copy()
    got[2] = [0.55, 0.45]
    v = compare(got, ref, faces, Check(0.7, 0.2))
    assert v.agreement == 0.75 and v.accuracy == 0.75 and v.keras_accuracy == 1.0
    assert v.max_abs_diff == pytest.approx(0.15) and v.passed
    assert not compare(got, ref, faces, Check(0.8, None)).passed
    assert not compare(got, ref, faces, Check(0.5, 0.1)).passed
    assert not compare(got, ref, faces, Check(0.5, None, max_accuracy_drop=0.2)).passed
    assert compare(got, ref, faces, Check(0.5, None, max_accuracy_drop=0.25)).passed


def test_compare_scores_a_model_with_other_labels_by_name():
    # A FER+-style model (other order, an extra class) verified on folders with FER2013-style labels.
    faces = Dataset(np.zeros((3, *SIZE), np.uint8), np.array([0, 1, 2]), ("a", "b", "c"), name="t")
    model_labels = ("b", "x", "a")  # no "c": the third face can never be right
    ref = np.array([[0.1, 0.1, 0.8], [0.8, 0.1, 0.1], [0.2, 0.5, 0.3]], np.float32)
    v = compare(ref, ref, faces, Check(0.5, None), model_labels)
    assert v.accuracy == v.keras_accuracy == pytest.approx(2 / 3)
    assert compare(ref, ref, faces, Check(0.5, None)).accuracy == 0.0  # index order alone is wrong here
    # As `edgefer eval` scores it: the arg-max over the classes both share, so a high "x" (a class
    # the data lacks, like FER+'s contempt on FER2013 folders) does not hide the right answer.
    extra = np.array([[0.2, 0.5, 0.3]], np.float32)
    one = Dataset(np.zeros((1, *SIZE), np.uint8), np.array([0]), ("a", "b", "c"), name="t")
    assert compare(extra, extra, one, Check(0.5, None), model_labels).accuracy == 1.0


def test_an_exporter_that_writes_nothing_is_reported_not_raised(tmp_path):
    info = ModelInfo(LABELS, PreprocessSpec(), {"arch": "none"})
    source = SourceModel(model=None, path=tmp_path / "m.keras", info=info)
    ctx = ExportContext(source=source, workdir=tmp_path)
    empty = ExportFormat("empty", ".onnx", "writes an empty file", (), False, Check(1.0, None),
                         lambda ctx, path: path.write_bytes(b"") and {})
    result = export_format(empty, ctx, tmp_path, "m")
    assert not result.ok and "wrote no data" in result.error
    assert "FAILED" in result.summary()


@pytest.mark.parametrize(("n", "batch"), [(300, 30), (1000, 25), (97, 1), (14, 14)])
def test_calibration_batches_are_equal_sized(n, batch):
    assert calib_batch_size(n) == batch


def test_default_stem_names_artifacts_after_the_run():
    assert default_stem(Path("runs/report/best.keras")) == "report"
    assert default_stem(Path("models/my-model.keras")) == "my-model"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export", "x.keras", "--format", "onnx,bogus"], "unknown format bogus"),
        (["export", "missing.keras"], "model not found"),
        (["export"], "give MODEL"),
        (["export", "x.keras", "--opset", "9"], "--opset 9"),
    ],
)
def test_cli_user_errors_are_one_line_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_needs_real_faces_for_int8_and_for_verification(tmp_path, capsys):
    model = tmp_path / "m.keras"
    model.write_bytes(b"not loaded before the data check")
    assert main(["export", str(model), "--format", "tflite-int8"]) == 2
    assert "tflite-int8 calibrate on real faces: pass --calib-data" in capsys.readouterr().err
    assert main(["export", str(model), "--format", "onnx"]) == 2
    assert "verification needs real faces" in capsys.readouterr().err


def test_registering_the_command_imports_no_tensorflow():
    code = (
        "import argparse, sys\n"
        "from edgefer.export.cli import register\n"
        "register(argparse.ArgumentParser().add_subparsers())\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'tf2onnx', 'onnx') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
