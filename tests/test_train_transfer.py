"""--init-from a shipped ONNX model: folded BatchNorm comes back exactly, heads map by label name."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")

import keras
from export_synthetic import LABELS, faces, train_tiny_run, write_tree

from edgefer.export.formats import FORMATS
from edgefer.export.readme_blocks import run_summary
from edgefer.export.runner import export_model
from edgefer.export.source import load_source
from edgefer.runtime.labels import FERPLUS_LABELS
from edgefer.runtime.preprocess import PreprocessSpec, normalize
from edgefer.train.archs import edge
from edgefer.train.transfer import TransferError, init_weights

SPEC = PreprocessSpec()
NARROW = (4, 6, 8, 8, 12)  # the edge architecture's layout at a test-sized width


def _save_run(model: keras.Model, run_dir) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / "best.keras")
    (run_dir / "run.json").write_text(json.dumps({
        "config": {"arch": model.name, "dataset": "fer2013", "data": "synthetic"},
        "labels": list(LABELS), "preprocess": json.loads(SPEC.to_json()),
        "train_data": "synthetic", "val_data": "synthetic", "params": int(model.count_params()),
    }))


def _to_onnx(run_dir, out_dir):
    [result] = export_model(load_source(run_dir), [FORMATS["onnx"]], out_dir, "src", echo=None)
    assert result.error is None, result.error
    return result.path


@pytest.fixture(scope="module")
def edge_onnx(tmp_path_factory):
    """A narrow edge model whose BatchNorms hold non-trivial statistics, exported to ONNX."""
    tmp = tmp_path_factory.mktemp("transfer")
    keras.utils.set_random_seed(3)
    model = edge((48, 48, 1), len(LABELS), widths=NARROW)
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(0, 0.3, n), np.zeros(n), np.ones(n)])
            layer.momentum = 0.0
    x = normalize(faces(12, seed=5)[0], SPEC)
    # As after training, the moving statistics are those of the data (one pass, momentum 0).
    model(x, training=True)
    _save_run(model, tmp / "run")
    return _to_onnx(tmp / "run", tmp / "out"), model.predict(x, verbose=0), x, _pooled(model)(x, training=True)


def _pooled(model: keras.Model) -> keras.Model:
    gap = next(layer for layer in model.layers if isinstance(layer, keras.layers.GlobalAveragePooling2D))
    return keras.Model(model.inputs, gap.output)


def test_edge_import_reproduces_the_onnx_model_and_recalibrates_batchnorm(edge_onnx):
    path, expected, x, pooled_training = edge_onnx
    keras.utils.set_random_seed(0)  # a different initialisation than the exported model's
    model = edge((48, 48, 1), len(LABELS), widths=NARROW)
    note = init_weights(model, path, LABELS, x)
    assert "fresh" not in note
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-4)
    # BatchNorm was recalibrated on these faces, so in training mode (batch statistics) the
    # features are the exported model's too, although its gamma and beta were folded away.
    np.testing.assert_allclose(_pooled(model)(x, training=True), pooled_training, rtol=1e-3, atol=1e-3)


def test_head_with_other_labels_is_mapped_by_name(edge_onnx):
    path, expected, x, _ = edge_onnx
    model = edge((48, 48, 1), len(FERPLUS_LABELS), widths=NARROW)
    note = init_weights(model, path, FERPLUS_LABELS, x)
    assert "7 shared" in note and "fresh: contempt" in note
    got = model.predict(x, verbose=0)
    shared = [FERPLUS_LABELS.index(name) for name in LABELS]
    renorm = got[:, shared] / got[:, shared].sum(1, keepdims=True)
    np.testing.assert_allclose(renorm, expected, atol=1e-4)


def test_conv_bias_and_dense_layers_import_exactly(tmp_path):
    run = train_tiny_run(tmp_path / "run")
    path = _to_onnx(run, tmp_path / "out")
    src = keras.models.load_model(run / "best.keras")
    x = normalize(faces(6, seed=8)[0], SPEC)
    fresh = keras.models.clone_model(src)
    init_weights(fresh, path, LABELS, x)
    np.testing.assert_allclose(fresh.predict(x, verbose=0), src.predict(x, verbose=0), atol=1e-4)


def test_other_architecture_and_missing_file_are_refused(edge_onnx, tmp_path):
    path, _, x, _ = edge_onnx
    with pytest.raises(TransferError, match="not the same architecture"):
        init_weights(_three_conv(), path, LABELS, x)
    with pytest.raises(TransferError, match="no such file"):
        init_weights(_three_conv(), tmp_path / "missing.onnx", LABELS, x)


def _three_conv() -> keras.Model:
    inp = keras.Input((48, 48, 1))
    y = inp
    for _ in range(3):
        y = keras.layers.Conv2D(4, 3, padding="same")(y)
    y = keras.layers.GlobalAveragePooling2D()(y)
    return keras.Model(inp, keras.layers.Dense(7, activation="softmax")(y))


def test_cli_reports_a_bad_init_from_in_one_line(edge_onnx, tmp_path, capsys):
    from edgefer.runtime.cli import main

    assert main(["train", "--arch", "edge", "--init-from", str(tmp_path / "nope.onnx"), "--out", str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err
    data = write_tree(tmp_path / "data", {"train": 2, "test": 1})
    code = main(["train", "--arch", "ckplus", "--data", str(data), "--init-from", str(edge_onnx[0]), "--epochs", "1",
                 "--out", str(tmp_path / "run"), "--no-report"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "not the same architecture" in err and len(err.splitlines()) == 1, err


def test_keras_source_copies_by_layer_and_leaves_a_resized_head_fresh(tmp_path):
    run = train_tiny_run(tmp_path / "run")
    src = keras.models.load_model(run / "best.keras")
    x = normalize(faces(2, seed=4)[0], SPEC)
    same = keras.models.clone_model(src)
    assert "fresh" not in init_weights(same, run / "best.keras", LABELS)
    np.testing.assert_allclose(same.predict(x, verbose=0), src.predict(x, verbose=0), atol=1e-6)

    def eight_classes(layer):
        if layer is src.layers[-1]:
            return keras.layers.Dense(8, activation="softmax")
        return layer.__class__.from_config(layer.get_config())

    eight = keras.models.clone_model(src, clone_function=eight_classes)
    assert "fresh: dense" in init_weights(eight, run / "best.keras", FERPLUS_LABELS)
    first_conv = next(layer for layer in eight.layers if layer.get_weights())
    np.testing.assert_array_equal(first_conv.get_weights()[0], src.get_layer(first_conv.name).get_weights()[0])


def test_lineage_records_the_parent_file_hash_and_recipe(edge_onnx):
    import hashlib

    from edgefer.train.transfer import lineage

    path = edge_onnx[0]
    parent = lineage(path)
    assert parent["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert parent["arch"] == "edge" and parent["training"]["dataset"] == "fer2013"


def test_resume_does_not_need_the_parent_file_any_more(tmp_path):
    from edgefer.runtime.cli import main
    from edgefer.train.archs import ckplus

    parent = tmp_path / "parent.keras"
    ckplus((48, 48, 1), len(LABELS)).save(parent)
    data = str(write_tree(tmp_path / "data", {"train": 2, "test": 1}))
    run = tmp_path / "run"
    common = ["train", "--arch", "ckplus", "--data", data, "--init-from", str(parent), "--out", str(run), "--no-report"]
    assert main([*common, "--epochs", "1"]) == 0
    recorded = json.loads((run / "run.json").read_text())["init_from"]
    parent.unlink()  # e.g. a shipped model replaced by this run's own export
    assert main([*common, "--epochs", "2", "--resume"]) == 0
    assert len((run / "history.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs
    assert json.loads((run / "run.json").read_text())["init_from"] == recorded


def test_lineage_of_a_run_records_epochs_actually_run(tmp_path):
    """A parent cut short by a time limit says so in its child's card and summary."""

    from edgefer.train.transfer import lineage

    run = train_tiny_run(tmp_path / "run")
    meta = json.loads((run / "run.json").read_text())
    meta.setdefault("config", {}).update(arch="tiny", epochs=9)  # planned 9, history holds fewer rows
    (run / "run.json").write_text(json.dumps(meta))
    rows = 3
    (run / "history.csv").write_text("epoch,accuracy,val_accuracy,epoch_seconds\n" + "".join(
        f"{i},0.5,0.4,1.0\n" for i in range(rows)))
    parent = lineage(run / "best.keras")
    assert parent["training"]["epochs_run"] == rows < 9
    child = tmp_path / "child"
    child.mkdir()
    child_meta = {**meta, "init_from": parent, "params": 1, "train_data": "t", "val_data": "v"}
    (child / "run.json").write_text(json.dumps(child_meta))
    (child / "history.csv").write_text((run / "history.csv").read_text())
    out = run_summary(child)
    assert f"for {rows} of its 9 epochs (stopped early)" in out
