"""Weight averaging: snapshots of a run's last epochs, their mean, BatchNorm re-estimation, `edgefer average`."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from test_train_run import _tiny_fer_tree

from edgefer.export.readme_blocks import run_summary
from edgefer.train.trainer import TrainConfig, train


@pytest.fixture(scope="module")
def swa_run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("avg")
    data = _tiny_fer_tree(root / "fer")
    run = root / "run"
    train(TrainConfig(data=str(data), arch="edge_fast", out=str(run), epochs=3, batch_size=8, seed=0,
                      augment=True, average_last=2))
    return data, run


def _weights(path: Path) -> list[np.ndarray]:
    import keras

    from edgefer.train.archs import ARCHS

    model = ARCHS["edge_fast"].build((48, 48, 1), 7)
    if path.suffix == ".keras":
        return keras.models.load_model(path, compile=False).get_weights()
    model.load_weights(path)
    return model.get_weights()


def test_last_epochs_are_averaged_into_a_run_folder(swa_run: tuple[Path, Path]) -> None:
    _, run = swa_run
    snaps = sorted((run / "snapshots").iterdir())
    assert [p.name for p in snaps] == ["epoch_002.weights.h5", "epoch_003.weights.h5"]
    avg = run / "averaged"
    meta = json.loads((avg / "run.json").read_text())
    assert meta["averaged"]["members"] == [str(p) for p in snaps]
    assert 0.0 <= meta["averaged"]["val_accuracy"] <= 1.0
    assert (avg / "history.csv").read_text() == (run / "history.csv").read_text()
    a, b = (_weights(p) for p in snaps)
    got = _weights(avg / "best.keras")
    # The first kernel is the members' mean; the two epochs really differ, so this is not a copy.
    assert not np.allclose(a[0], b[0])
    np.testing.assert_allclose(got[0], (a[0] + b[0]) / 2, rtol=1e-6, atol=1e-7)
    text = run_summary(avg)
    script = Path(__file__).resolve().parents[1] / "scripts" / "averaging_table.py"
    assert "--average-last 2" in text
    assert "the average of 2 checkpoints (epoch_002.weights.h5 … epoch_003.weights.h5)" in text
    assert f"validation accuracy {meta['averaged']['val_accuracy']:.4f}" in text
    with (run / "history.csv").open() as fh:
        logged = [float(r["val_accuracy"]) for r in csv.DictReader(fh)]
    table = subprocess.run([sys.executable, str(script), str(avg)],
                           capture_output=True, text=True, check=True).stdout
    assert (f"| 2: run epoch 2, run epoch 3 | {min(logged[1:]):.4f} – {max(logged[1:]):.4f} "
            f"| {sum(logged[1:]) / 2:.4f} | **{meta['averaged']['val_accuracy']:.4f}** |") in table


def test_batchnorm_statistics_are_those_of_the_averaged_network(swa_run: tuple[Path, Path]) -> None:
    import keras

    from edgefer.runtime.preprocess import PreprocessSpec, normalize
    from edgefer.train.data import load_fer2013

    data, run = swa_run
    model = keras.models.load_model(run / "averaged" / "best.keras", compile=False)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns
    faces = normalize(load_fer2013(data, "train").x, PreprocessSpec())  # 42 images: all used
    for bn in bns:
        act = keras.Model(model.inputs, bn.input).predict(faces, verbose=0)
        act = act.reshape(-1, act.shape[-1])
        mean, var = bn.get_weights()[-2:]
        np.testing.assert_allclose(mean, act.mean(0), rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(var, act.var(0), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_input_statistics_stream_over_batches_to_the_whole_set_figures(batch: int) -> None:
    import keras

    from edgefer.train.archs import ARCHS
    from edgefer.train.average import input_statistics

    keras.utils.set_random_seed(3)
    model = ARCHS["edge_fast"].build((48, 48, 1), 7)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)][:3]
    faces = np.random.default_rng(3).normal(0.0, 1.0, (23, 48, 48, 1)).astype(np.float32)
    whole = keras.Model(model.inputs, [bn.input for bn in bns]).predict(faces, verbose=0)
    for (mean, var), act in zip(input_statistics(model, bns, faces, batch), whole):
        act = act.reshape(-1, act.shape[-1]).astype(np.float64)
        np.testing.assert_allclose(mean, act.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(var, act.var(0), rtol=1e-5, atol=1e-6)


def test_a_shipped_model_averages_with_a_run_that_started_from_it(swa_run: tuple[Path, Path], tmp_path: Path) -> None:
    """A soup of a shipped .onnx and a run continued from it (--init-from) needs no run folder of
    the parent. The import folds each BatchNorm into its convolution, the layout the continuation
    started in; with a learning rate of ~0 the continuation is the parent, and so is their average."""
    pytest.importorskip("tf2onnx")
    import keras
    import onnxruntime as ort

    from edgefer.export.formats import FORMATS
    from edgefer.export.runner import export_model
    from edgefer.export.source import load_source
    from edgefer.runtime.preprocess import PreprocessSpec, normalize
    from edgefer.train.average import AverageError, write_averaged_run
    from edgefer.train.data import load_fer2013

    data, run = swa_run
    [parent] = export_model(load_source(run), [FORMATS["onnx"]], tmp_path / "models", "parent", echo=None)
    assert parent.error is None, parent.error
    child = tmp_path / "child"
    train(TrainConfig(data=str(data), arch="edge_fast", out=str(child), epochs=1, batch_size=8, seed=0,
                      init_from=str(parent.path), learning_rate=1e-12, weight_decay=0.0))
    train_ds = load_fer2013(data, "train")
    soup = write_averaged_run([child, parent.path], tmp_path / "soup", train_ds)
    x = normalize(train_ds.x, PreprocessSpec())
    sess = ort.InferenceSession(str(parent.path))
    expected = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    got = keras.models.load_model(soup / "best.keras", compile=False).predict(x, verbose=0)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    meta = json.loads((soup / "run.json").read_text())
    assert meta["averaged"]["members"][1] == str(parent.path)
    [lineage] = meta["averaged"]["imported"]  # the parent file may be replaced: its hash and recipe stay
    assert lineage["file"] == str(parent.path) and len(lineage["sha256"]) == 64 and lineage["arch"] == "edge_fast"
    with pytest.raises(AverageError, match="put a training checkpoint first"):
        write_averaged_run([parent.path, child], tmp_path / "first", train_ds)


def test_cli_average_and_its_refusals(swa_run: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    from edgefer.runtime.cli import main

    data, run = swa_run
    out = tmp_path / "soup"
    assert main(["average", str(run), str(run / "last.keras"), "--out", str(out), "--data", str(data),
                 "--no-report"]) == 0
    assert "the average of 2 checkpoints scores" in capsys.readouterr().out
    # Averaging again into the same folder replaces it whole: nothing of the earlier average stays.
    (out / "report.md").write_text("stale")
    assert main(["average", str(run), str(run / "last.keras"), "--out", str(out), "--data", str(data),
                 "--no-report"]) == 0
    assert not (out / "report.md").exists()
    # A training run is never overwritten by an average.
    before = (run / "best.keras").read_bytes()
    assert main(["average", str(run), str(run / "last.keras"), "--out", str(run), "--data", str(data)]) == 2
    assert "is not an earlier average" in capsys.readouterr().err
    assert (run / "best.keras").read_bytes() == before
    assert json.loads((out / "run.json").read_text())["averaged"]["members"][0] == str(run / "best.keras")

    assert main(["average", str(run), "--out", str(tmp_path / "one"), "--data", str(data)]) == 2
    assert "at least 2 checkpoints" in capsys.readouterr().err

    other = tmp_path / "other"
    shutil.copytree(run, other, ignore=shutil.ignore_patterns("snapshots", "averaged"))
    meta = json.loads((other / "run.json").read_text())
    meta["config"]["arch"] = "report"
    (other / "run.json").write_text(json.dumps(meta))
    assert main(["average", str(run), str(other), "--out", str(tmp_path / "mixed"), "--data", str(data)]) == 2
    assert "differs" in capsys.readouterr().err

    assert main(["train", "--average-last", "1", "--out", str(tmp_path / "t"), "--data", str(data)]) == 2
    assert "at least 2 epochs" in capsys.readouterr().err

    assert main(["average", str(run), str(tmp_path / "missing.keras"), "--out", str(tmp_path / "x"),
                 "--data", str(data)]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    # A refused request leaves an earlier average where it was.
    assert main(["average", str(run), str(tmp_path / "missing.keras"), "--out", str(out), "--data", str(data)]) == 2
    assert (out / "best.keras").is_file() and (out / "run.json").is_file()


def test_a_fresh_run_drops_the_snapshots_of_an_earlier_one(swa_run: tuple[Path, Path], tmp_path: Path) -> None:
    data, run = swa_run
    again = tmp_path / "again"
    shutil.copytree(run, again)
    train(TrainConfig(data=str(data), arch="edge_fast", out=str(again), epochs=1, batch_size=8, seed=0))
    assert not (again / "snapshots").exists() and not (again / "averaged").exists()


def test_a_resumed_run_extends_its_epochs_and_its_average(swa_run: tuple[Path, Path], tmp_path: Path) -> None:
    data, run = swa_run
    longer = tmp_path / "longer"
    shutil.copytree(run, longer)
    train(TrainConfig(data=str(data), arch="edge_fast", out=str(longer), epochs=4, batch_size=8, seed=0,
                      augment=True, average_last=3, resume=True))
    meta = json.loads((longer / "run.json").read_text())
    assert meta["config"]["epochs"] == 3  # the command the run started with
    assert meta["extended"] == [{"after_epoch": 3, "epochs": 4, "average_last": 3}]
    members = json.loads((longer / "averaged" / "run.json").read_text())["averaged"]["members"]
    assert [Path(m).name for m in members] == [f"epoch_00{i}.weights.h5" for i in (2, 3, 4)]
    text = run_summary(longer / "averaged")
    assert "then resumed after epoch 3 with `--resume --epochs 4 --average-last 3`" in text


def test_batchnorm_faces_are_one_seeded_sample_whether_or_not_sampled_before() -> None:
    """`edgefer average` re-crops only the sampled faces; they must be those training would pick."""
    from edgefer.train.average import BN_FACES, batchnorm_sample
    from edgefer.train.data import Dataset

    n = BN_FACES + 300
    ds = Dataset(x=np.arange(n, dtype=np.int64).reshape(n, 1, 1), y=np.zeros(n, np.int64),
                 labels=("a", "b"), files=[f"a/{i}.png" for i in range(n)])
    once = batchnorm_sample(ds)
    ids = once.x.ravel()
    assert len(once) == BN_FACES and len(np.unique(ids)) == BN_FACES and np.all(np.diff(ids) > 0)
    assert once.files == [f"a/{i}.png" for i in ids]
    assert batchnorm_sample(once) is once
    assert not np.array_equal(batchnorm_sample(ds, seed=1).x, once.x)
    small = ds.subset(np.arange(10))
    assert batchnorm_sample(small) is small


def test_a_soup_of_runs_names_each_member_and_the_run_that_trained_it() -> None:
    from edgefer.export.readme_blocks import averaged_line

    averaged = {"members": ["runs/b/best.keras", "runs/a/best.keras"], "batchnorm_faces": 8192, "val_accuracy": 0.86}
    [line] = averaged_line(averaged, 0.85)
    assert "(b/best.keras … a/best.keras)" in line and "0.8600 vs 0.8500" in line
    snaps = {"members": ["r/snapshots/epoch_002.weights.h5", "r/snapshots/epoch_009.weights.h5"], "batchnorm_faces": 9}
    assert "(epoch_002.weights.h5 … epoch_009.weights.h5)" in averaged_line(snaps, 0.5)[0]
