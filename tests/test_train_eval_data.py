"""`edgefer eval` / `inspect` score a model on the data it recorded: a CK+ run on its own validation split."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from ckplus_synthetic import write_ckplus_tree
from helpers import build_tiny_onnx

from edgefer.runtime.cli import main
from edgefer.runtime.labels import FER2013_LABELS
from edgefer.train.data import CKPLUS_LABELS
from edgefer.train.eval_data import CARD, RUN, EvalData, Recorded, choose_eval_data, load_eval_data, recorded_of
from edgefer.train.trainer import TrainConfig, load_splits

# A CK+ run records these; not the defaults, so a test sees that they come from the record.
CK_SPLIT = {"dataset": "ckplus", "split": "random", "seed": 3, "val_fraction": 0.25}


def write_fer_tree(root: Path) -> Path:
    rng = np.random.default_rng(1)
    for split, n in (("train", 2), ("test", 3)):
        for name in FER2013_LABELS:
            (root / split / name).mkdir(parents=True)
            for j in range(n):
                cv2.imwrite(str(root / split / name / f"{j}.png"), rng.integers(0, 256, (48, 48), dtype=np.uint8))
    return root


@pytest.fixture(scope="module")
def ck_tree(tmp_path_factory) -> Path:
    return write_ckplus_tree(tmp_path_factory.mktemp("ckplus"))


@pytest.fixture(scope="module")
def fer_tree(tmp_path_factory) -> Path:
    return write_fer_tree(tmp_path_factory.mktemp("fer"))


def _trainer_sides(ck_tree: Path) -> tuple[set[str], set[str]]:
    """The files the trainer itself would train and validate a CK_SPLIT run on."""
    train, val, _ = load_splits(TrainConfig(data=str(ck_tree), **CK_SPLIT))
    return set(train.files), set(val.files)


def _write_run_json(run: Path, ck_tree: Path) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "run.json").write_text(json.dumps({
        "config": {"arch": "tiny", "data": str(ck_tree), "epochs": 1, "batch_size": 8, "learning_rate": 0.001,
                   "limit": None, **CK_SPLIT},
        "labels": list(CKPLUS_LABELS),
        "preprocess": {"channels": 1, "layout": "NHWC", "margin": 0.1, "offset": 0.0, "scale": 1 / 255,
                       "size": [48, 48]},
        "train_data": "ckplus/train", "val_data": "ckplus/val-random", "params": 0,
    }))


def test_a_ckplus_run_is_scored_on_exactly_its_validation_split(ck_tree: Path, tmp_path: Path) -> None:
    _write_run_json(tmp_path / "run", ck_tree)
    recorded = recorded_of(tmp_path / "run" / "best.keras", {})
    assert recorded is not None and recorded.origin == RUN
    spec = choose_eval_data({}, recorded)
    assert (spec.dataset, spec.split, spec.seed, spec.val_fraction, spec.data) == ("ckplus", "random", 3, 0.25,
                                                                                   str(ck_tree))
    assert not spec.warning
    data, key = load_eval_data(spec)
    trained, validated = _trainer_sides(ck_tree)
    assert set(data.files) == validated and len(data) == len(validated) == 10  # 25% of 42
    assert not set(data.files) & trained
    assert key == "ckplus-random-seed3-val25"
    assert spec.line(len(data)) == ("scoring on CK+ validation split (seed 3, 25%, random): 10 images, "
                                    "as the run recorded")


def test_given_options_override_the_record() -> None:
    recorded = Recorded(dict(CK_SPLIT, data="/elsewhere/ckplus"), RUN)
    moved = choose_eval_data({"data": "/here/ckplus"}, recorded)  # the same images in another place
    assert (moved.dataset, moved.seed, moved.data, moved.warning) == ("ckplus", 3, "/here/ckplus", "")
    assert moved.origin == "as the run recorded, with --data as given"
    reseeded = choose_eval_data({"seed": 0}, recorded)
    assert reseeded.seed == 0 and "may include ones it trained on" in reseeded.warning
    other = choose_eval_data({"dataset": "fer2013"}, recorded)  # another dataset: the record says nothing of it
    assert (other.dataset, other.split, other.data) == ("fer2013", "test", "../shared/data/fer2013")
    assert other.origin == "as given (--dataset)" and not other.warning
    fer_run = choose_eval_data({}, Recorded({"dataset": "fer2013", "split": "random", "seed": 1}, RUN))
    assert (fer_run.split, fer_run.title()) == ("test", "FER2013 PublicTest")  # it validated on PublicTest
    assert choose_eval_data({}, None) == EvalData()
    assert choose_eval_data({"dataset": "ckplus"}, None).split == "all"  # a model that never trained on CK+


def test_a_model_card_names_its_dataset(ck_tree: Path, tmp_path: Path, capsys) -> None:
    card = {"arch": "tiny", "training": {**CK_SPLIT, "arch": "tiny"}}
    model = build_tiny_onnx(tmp_path / "ck.onnx", labels=CKPLUS_LABELS, card=card)
    recorded = recorded_of(model, card)
    assert recorded is not None and recorded.origin == CARD
    out = tmp_path / "m.json"
    assert main(["eval", str(model), "--data", str(ck_tree), "--no-timing", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert ("scoring on CK+ validation split (seed 3, 25%, random): 10 images, as the model card records, "
            "with --data as given") in printed
    assert json.loads(out.read_text())[str(model)]["n"] == 10


def test_cli_eval_and_inspect_of_a_ckplus_run(ck_tree: Path, fer_tree: Path, tmp_path: Path, capsys) -> None:
    keras = pytest.importorskip("keras")
    run = tmp_path / "run"
    _write_run_json(run, ck_tree)
    inp = keras.Input((48, 48, 1))
    keras.Model(inp, keras.layers.Dense(len(CKPLUS_LABELS), activation="softmax")(
        keras.layers.Flatten()(inp))).save(run / "best.keras")
    out = tmp_path / "m.json"
    assert main(["eval", str(run), "--no-timing", "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert "scoring on CK+ validation split (seed 3, 25%, random): 10 images, as the run recorded" in captured.out
    assert "no output for" not in captured.out + captured.err  # scored on its own labels, not FER2013's
    (metrics,) = json.loads(out.read_text()).values()
    assert metrics["n"] == 10
    # an explicit dataset overrides the record
    assert main(["eval", str(run), "--dataset", "fer2013", "--data", str(fer_tree), "--no-timing",
                 "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert "scoring on FER2013 PublicTest: 21 images, as given (--dataset, --data)" in captured.out
    # CK+ has no neutral class: the FER2013 neutral faces are left out, not counted as errors
    assert "has no output for neutral: scoring it on the other" in captured.out
    neutral = sum(1 for f in (fer_tree / "test" / "neutral").iterdir())
    assert neutral > 0
    assert next(iter(json.loads(out.read_text()).values()))["n"] == 21 - neutral
    assert main(["inspect", str(run), "--out", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    assert "- validation data: CK+ validation split (seed 3, 25%, random) (10 images, as the run recorded)" in report
