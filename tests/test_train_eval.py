"""`edgefer eval`: one table over several artifacts, metrics recorded in cards, duplicate exclusion."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from helpers import build_tiny_onnx

from edgefer.runtime.cli import main
from edgefer.runtime.labels import FER2013_LABELS
from edgefer.runtime.metadata import CARD_KEY, ModelInfo, write_card
from edgefer.runtime.preprocess import PreprocessSpec
from edgefer.train.data import load_fer2013, pixel_duplicates
from edgefer.train.evaluate import load_predictor, map_predictions


@pytest.fixture(scope="module")
def fer_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fer")
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in FER2013_LABELS:
            d = root / split / name
            d.mkdir(parents=True)
            for j in range(3):
                cv2.imwrite(str(d / f"{j}.png"), rng.integers(0, 256, (48, 48), dtype=np.uint8))
    # one test image that is a copy of a training image
    shutil.copy(root / "train" / "happy" / "0.png", root / "test" / "happy" / "dup.png")
    return root


def test_pixel_duplicates(fer_tree: Path) -> None:
    train, test = load_fer2013(fer_tree, "train"), load_fer2013(fer_tree, "test")
    dup = pixel_duplicates(test, train)
    assert [Path(test.files[i]).name for i in dup] == ["dup.png"]


def test_eval_table_cards_and_dedup(fer_tree: Path, tmp_path: Path, capsys) -> None:
    a = build_tiny_onnx(tmp_path / "a.onnx", seed=0, card={"arch": "tiny"})
    write_card(a, ModelInfo(FER2013_LABELS, PreprocessSpec(), {"arch": "tiny"}))
    b = build_tiny_onnx(tmp_path / "b-int8.onnx", seed=1)
    out = tmp_path / "table.md"
    rc = main(["eval", str(a), str(b), "--data", str(fer_tree), "--no-timing", "--write-card",
               "--out", str(out), "--exclude-train-duplicates"])
    assert rc == 0
    text = out.read_text()
    assert "| a.onnx | onnx |" in text and "| b-int8.onnx | onnx-int8 |" in text
    assert "+0.00 pt | 1.0000 |" in text  # the first model against itself
    printed = capsys.readouterr().out
    assert "excluding 1 images pixel-identical to a training image" in printed
    # the same numbers the evaluation computes, now inside the ONNX file and its card
    props = {p.key: p.value for p in onnx.load(str(a)).metadata_props}
    recorded = json.loads(props[CARD_KEY])["metrics"]["fer2013-publictest-dedup"]
    data = load_fer2013(fer_tree, "test")
    keep = np.setdiff1d(np.arange(len(data)), pixel_duplicates(data, load_fer2013(fer_tree, "train")))
    pred = load_predictor(a)
    y = map_predictions(pred.predict(data.x[keep]), pred.labels, data.labels)
    assert recorded["accuracy"] == round(float((y == data.y[keep]).mean()), 4)
    assert recorded["n"] == 21
    card = json.loads(a.with_suffix(".json").read_text())
    assert card["card"]["metrics"]["fer2013-publictest-dedup"] == recorded
    assert card["card"]["arch"] == "tiny"


def test_eval_missing_model_is_one_line_error(fer_tree: Path, capsys) -> None:
    rc = main(["eval", "nope.onnx", "--data", str(fer_tree), "--no-timing"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.onnx" in err[0] and "not found" in err[0]


def test_a_class_the_model_lacks_is_left_out_not_counted_wrong(fer_tree: Path, tmp_path: Path) -> None:
    """A 6-class model (no disgust) on 7-class data: scored on the other six classes' images only."""
    from edgefer.train.evaluate import evaluate

    six = tuple(name for name in FER2013_LABELS if name != "disgust")
    small = load_predictor(build_tiny_onnx(tmp_path / "six.onnx", labels=six, seed=2))
    full = load_predictor(build_tiny_onnx(tmp_path / "seven.onnx", seed=2))
    data = load_fer2013(fer_tree, "test")
    ev = evaluate(small, data)
    disgust = int((data.y == FER2013_LABELS.index("disgust")).sum())
    assert disgust == 3 and ev.metrics.n == len(data) - disgust
    assert ev.data.labels == six and "disgust" not in ev.metrics.to_dict()["per_class"]
    kept = [data.files[i] for i in ev.index]
    assert ev.data.files == kept and not any("/disgust/" in f for f in kept)
    # every scored image keeps its own class under the new numbering
    assert [six[c] for c in ev.data.y] == [FER2013_LABELS[c] for c in data.y[ev.index]]
    ref = evaluate(full, data)
    assert ref.metrics.n == len(data)
    # agreement is over the images both were scored on, by class name
    shared = np.asarray(FER2013_LABELS)[ref.pred[ev.index]] == np.asarray(six)[ev.pred]
    assert ev.agreement(ref) == pytest.approx(float(shared.mean()))


def test_a_model_sharing_no_class_names_the_datas_classes(fer_tree: Path, tmp_path: Path) -> None:
    from edgefer.train.evaluate import evaluate

    other = load_predictor(build_tiny_onnx(tmp_path / "other.onnx", labels=("a", "b"), seed=2))
    with pytest.raises(ValueError, match=r"share no class with the data's \['angry'"):
        evaluate(other, load_fer2013(fer_tree, "test"))
