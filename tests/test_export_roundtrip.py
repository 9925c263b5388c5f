"""Every format exports from a tiny trained Keras model, reloads in the runtime, and agrees with Keras.

One module-scoped export of all formats is shared by the tests: TensorFlow's import and the
conversions dominate the time, not the checks.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")

from export_synthetic import LABELS, faces, train_tiny_run, write_tree

from edgefer.export.context import ExportContext
from edgefer.export.formats import FORMATS
from edgefer.export.onnx_float import convert_to_onnx
from edgefer.export.runner import export_model
from edgefer.export.source import load_source
from edgefer.runtime.classifiers import load_classifier
from edgefer.runtime.cli import main
from edgefer.runtime.metadata import ModelError, card_path
from edgefer.runtime.preprocess import normalize
from edgefer.train.data import Dataset

# Agreement and probability tolerance against Keras on fresh faces, per format.
TOLERANCE = {"onnx": 1e-5, "tflite": 1e-5, "tflite-fp16": 5e-3, "onnx-int8": 0.08, "tflite-int8": 0.08}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    run = train_tiny_run(tmp / "runs" / "tiny")
    source = load_source(run)
    calib_x, calib_y = faces(6, seed=10)
    verify_x, verify_y = faces(10, seed=11)
    # Without ai-edge-litert (the `litert` extra) the TFLite rows skip; the ONNX rows still run.
    available = [f for f in FORMATS.values() if not f.missing()]
    results = export_model(
        source, available, tmp / "out", "tiny",
        calib=Dataset(calib_x, calib_y, LABELS, name="synthetic-calib"),
        verify=Dataset(verify_x, verify_y, LABELS, name="synthetic-verify"),
        echo=None,
    )
    return source, {r.format: r for r in results}, tmp


def _result(exported, fmt: str):
    results = exported[1]
    if fmt not in results:
        pytest.skip(f"{fmt}: missing {', '.join(FORMATS[fmt].missing())}")
    return results[fmt]


@pytest.fixture(scope="module")
def fresh_faces(exported):
    source = exported[0]
    x, y = faces(8, seed=99)
    return x, y, source.model.predict(normalize(x, source.info.preprocess), verbose=0)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_format_exports_verifies_and_agrees_with_keras_in_the_runtime(exported, fresh_faces, fmt):
    result = _result(exported, fmt)
    assert result.error is None, result.error
    assert result.ok, result.summary()
    assert result.path.stat().st_size > 0 and result.seconds > 0
    assert result.verification.images == 70

    x, y, keras_probs = fresh_faces
    clf = load_classifier(result.path)
    probs = clf.predict(x)
    assert probs.shape == (len(x), len(LABELS))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)  # quantized outputs too
    assert np.mean(probs.argmax(1) == keras_probs.argmax(1)) >= FORMATS[fmt].check.min_agreement
    assert np.abs(probs - keras_probs).max() <= TOLERANCE[fmt]
    # Batch 1 after batch N: the free batch axis must really be free.
    np.testing.assert_allclose(clf.predict(x[:1]), probs[:1], atol=1e-5)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_artifact_carries_edgefer_metadata(exported, fmt):
    path = _result(exported, fmt).path
    info = load_classifier(path).info
    assert info.labels == LABELS
    assert info.preprocess.size == (48, 48)
    assert info.card["arch"] == "tiny" and info.card["source"]["run"].endswith("tiny")
    assert info.card["export"]["format"] == fmt
    assert info.card["verification"]["passed"] is True
    card = json.loads(card_path(path).read_text())
    assert card["model"] == path.name and card["labels"] == list(LABELS)
    assert ("only metadata" in card["metadata"]) == (path.suffix == ".tflite")
    # stamped with the hash the runtime checks, the same in the file (ONNX) and the card
    assert info.sha256 and card["sha256"] == info.sha256 and card["size_bytes"] == path.stat().st_size
    assert not list(path.parent.glob(".edgefer-tmp-*"))


def test_onnx_files_hold_metadata_inside(exported):
    import onnx

    _, results, _ = exported
    for fmt in ("onnx", "onnx-int8"):
        props = {p.key: p.value for p in onnx.load(str(results[fmt].path)).metadata_props}
        assert json.loads(props["edgefer.labels"]) == list(LABELS)
        assert json.loads(props["edgefer.card"])["train_data"].startswith("synthetic")


def test_onnx_int8_is_quantized_with_qdq(exported):
    import onnx

    ops = {n.op_type for n in onnx.load(str(_result(exported, "onnx-int8").path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops


def test_tflite_int8_has_int8_io_and_records_its_parameters(exported):
    path = _result(exported, "tflite-int8").path
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    q = json.loads(card_path(path).read_text())["card"]["export"]["quantization"]
    assert q["input"] == {"dtype": "int8", "scale": pytest.approx(inp["quantization"][0]),
                          "zero_point": inp["quantization"][1]}
    assert q["output"]["scale"] == pytest.approx(out["quantization"][0])
    calibration = json.loads(card_path(path).read_text())["card"]["export"]["calibration"]
    assert calibration["images"] == 42 and set(calibration["per_class"].values()) == {6}


def test_runtime_refuses_artifacts_without_metadata(exported):
    source, results, tmp = exported
    bare = tmp / "bare.onnx"
    convert_to_onnx(ExportContext(source=source, workdir=tmp), bare)
    with pytest.raises(ModelError, match="not an edgefer model: metadata lacks edgefer.labels"):
        load_classifier(bare)
    if "tflite" not in results:
        return
    lonely = tmp / "lonely.tflite"
    shutil.copy(results["tflite"].path, lonely)
    with pytest.raises(ModelError, match="no metadata card lonely.json"):
        load_classifier(lonely)


def test_cli_exports_a_run_folder_from_an_image_tree(exported, tmp_path, capsys):
    _, _, tmp = exported
    data = write_tree(tmp_path / "fer", {"train": 3, "test": 2})
    out = tmp_path / "dist"
    pytest.importorskip("ai_edge_litert")
    argv = ["export", str(tmp / "runs" / "tiny"), "--format", "onnx,tflite-int8", "--out", str(out),
            "--name", "cli", "--calib-data", str(data), "--calib-size", "14", "--verify-size", "all"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"verification: 14 faces from the validation split {data / 'test'}" in printed
    assert f"calibration: 14 faces from the training split {data / 'train'}, balanced" in printed
    assert sorted(p.name for p in out.iterdir()) == ["cli-full-int8.json", "cli-full-int8.tflite", "cli.json",
                                                     "cli.onnx"]
    assert printed.count(" ok\n") == 2
