"""Models that lie about themselves are refused at load; exports and card rewrites never destroy.

Each test builds a tiny synthetic model (no TensorFlow): a graph whose metadata does not fit
it, a file with one flipped weight byte, a writer killed with SIGTERM just before it would
replace a good model (an environment hook pauses it at exactly that moment and says so).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import build_tiny_onnx

from edgefer.models import MODELS_DIR
from edgefer.runtime.classifiers import load_classifier
from edgefer.runtime.cli import main
from edgefer.runtime.errors import ModelError
from edgefer.runtime.labels import FER2013_LABELS
from edgefer.runtime.metadata import (
    PAUSE_ENV,
    SHA256_KEY,
    card_path,
    onnx_props,
    onnx_with_props,
    read_card,
    read_model_info,
    stamp,
    write_card,
)
from edgefer.runtime.preprocess import PreprocessSpec

REPO = Path(__file__).resolve().parents[1]
SAMPLE = MODELS_DIR / "sample_face.mp4"
SPEC48 = json.loads(PreprocessSpec().to_json())


def _with_props(path: Path, **changes: str) -> Path:
    """Rewrite some edgefer metadata of an ONNX file in place, the graph untouched."""
    data = path.read_bytes()
    props = onnx_props(data) | changes
    path.write_bytes(onnx_with_props(data, props))
    return path


def _spec(**changes) -> str:
    return json.dumps(SPEC48 | changes)


# ---------------------------------------------------------------- metadata that does not fit the graph
SEVEN = list(FER2013_LABELS)
MISFITS = {
    "5 labels for 7 outputs": {"edgefer.labels": json.dumps(SEVEN[:5])},
    "9 labels for 7 outputs": {"edgefer.labels": json.dumps([*SEVEN, "contempt", "unknown"])},
    "size 64 on a 48 model": {"edgefer.preprocess": _spec(size=[64, 64])},
    "3 channels on a gray model": {"edgefer.preprocess": _spec(channels=3)},
    "NCHW on an NHWC model": {"edgefer.preprocess": _spec(layout="NCHW")},
    "NaN scale": {"edgefer.preprocess": _spec(scale=0.0).replace('"scale": 0.0', '"scale": NaN')},
    "duplicate labels": {"edgefer.labels": json.dumps([*SEVEN[:6], "happy"])},
    "negative margin": {"edgefer.preprocess": _spec(margin=-0.4)},
}
WHAT_IT_SAYS = {
    "5 labels for 7 outputs": "7 outputs but the metadata names 5 labels",
    "9 labels for 7 outputs": "7 outputs but the metadata names 9 labels",
    "size 64 on a 48 model": "does not fit the metadata's preprocessing",
    "3 channels on a gray model": "does not fit the metadata's preprocessing",
    "NCHW on an NHWC model": "does not fit the metadata's preprocessing",
    "NaN scale": "scale must be a finite",
    "duplicate labels": "labels must be unique; repeated: happy",
    "negative margin": "margin must be in [0, 1]",
}


@pytest.mark.parametrize("case", list(MISFITS))
def test_metadata_that_does_not_fit_the_graph_is_refused_at_load(tmp_path: Path, case: str) -> None:
    model = _with_props(build_tiny_onnx(tmp_path / "m.onnx"), **MISFITS[case])
    with pytest.raises(ModelError) as err:
        load_classifier(model)
    message = str(err.value)
    assert WHAT_IT_SAYS[case] in message and "m.onnx" in message and "\n" not in message, message


@pytest.mark.parametrize("case", list(MISFITS))
def test_cli_refuses_a_misfit_model_before_the_first_frame(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    model = _with_props(build_tiny_onnx(tmp_path / "m.onnx"), **MISFITS[case])
    blank = tmp_path / "no-face.png"  # no face to classify: only a check at load can catch the misfit
    cv2.imwrite(str(blank), np.full((120, 160), 128, np.uint8))
    rc = main(["run", "--model", str(model), "--source", str(blank), "--headless", "--detector", "haar"])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert rc == 2, err
    assert err.startswith("edgefer run: error:") and len(err.splitlines()) == 1, err
    assert captured.out == ""  # not one JSON line came out of the misfit model


def test_a_tflite_card_that_does_not_fit_its_file_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("ai_edge_litert")
    model = tmp_path / "m.tflite"
    shutil.copy(MODELS_DIR / "fer2013-full-int8.tflite", model)
    card = json.loads(card_path(MODELS_DIR / "fer2013-full-int8.tflite").read_text())
    card["preprocess"]["size"] = [64, 64]
    card_path(model).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="does not fit the metadata's preprocessing"):
        load_classifier(model)


# ---------------------------------------------------------------- integrity
def _flip_weight_byte(path: Path) -> None:
    """Flip one bit in the middle of the largest weight tensor's raw bytes."""
    import onnx

    model = onnx.load(str(path))
    weights = max(model.graph.initializer, key=lambda t: len(t.raw_data)).raw_data
    data = bytearray(path.read_bytes())
    at = bytes(data).index(weights) + len(weights) // 2
    data[at] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_flipped_weight_byte_is_refused_and_no_verify_loads_it(tmp_path: Path) -> None:
    model = build_tiny_onnx(tmp_path / "m.onnx")
    stamp(model)
    faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    before = load_classifier(model).predict(faces)
    _flip_weight_byte(model)
    with pytest.raises(ModelError, match="integrity check failed") as err:
        load_classifier(model)
    assert "\n" not in str(err.value)
    after = load_classifier(model, verify=False).predict(faces)
    assert not np.array_equal(before, after)  # the flip did change the answers: that is what was caught


def test_cli_run_refuses_a_damaged_model_unless_told_not_to_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = build_tiny_onnx(tmp_path / "m.onnx")
    stamp(model)
    _flip_weight_byte(model)
    args = ["run", "--model", str(model), "--source", str(SAMPLE), "--headless", "--max-frames", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "integrity check failed" in err and len(err.splitlines()) == 1, err
    assert main([*args, "--no-verify"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["faces"] is not None


def test_a_damaged_tflite_file_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("ai_edge_litert")
    model = tmp_path / "m.tflite"
    shutil.copy(MODELS_DIR / "fer2013-full-int8.tflite", model)
    shutil.copy(card_path(MODELS_DIR / "fer2013-full-int8.tflite"), card_path(model))
    stamp(model)
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="integrity check failed"):
        load_classifier(model)
    load_classifier(model, verify=False)


def test_rewriting_the_card_keeps_the_hash_valid_and_the_graph_bytes(tmp_path: Path) -> None:
    from edgefer.runtime.metadata import top_level_fields
    from edgefer.train.cards import record_metrics

    model = build_tiny_onnx(tmp_path / "m.onnx")
    info = stamp(model)
    graph = [bytes(model.read_bytes()[s:e]) for n, s, _, e in top_level_fields(model.read_bytes()) if n != 14]
    record_metrics(model, "fer2013-publictest", {"accuracy": 0.5})
    data = model.read_bytes()
    assert [bytes(data[s:e]) for n, s, _, e in top_level_fields(data) if n != 14] == graph
    assert onnx_props(data)[SHA256_KEY] == info.sha256
    assert read_model_info(model).card["metrics"]["fer2013-publictest"] == {"accuracy": 0.5}
    load_classifier(model)  # still verifies


def test_a_model_without_a_hash_loads_with_one_warning(tmp_path: Path, capsys) -> None:
    model = build_tiny_onnx(tmp_path / "old.onnx")
    load_classifier(model)
    load_classifier(model)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "no integrity hash" in line]
    assert len(warnings) == 1 and "old.onnx" in warnings[0]


def test_the_shipped_models_carry_a_hash_that_verifies() -> None:
    from edgefer.models import available

    for path in available():
        assert read_model_info(path).sha256, f"{path.name} is not stamped"
        if path.suffix == ".tflite":
            pytest.importorskip("ai_edge_litert")
        load_classifier(path)  # raises if the hash does not match
        assert read_card(path).sha256 == read_model_info(path).sha256


# ---------------------------------------------------------------- eval reads the model's input size
def _fer_tree(root: Path, size: int = 48) -> Path:
    rng = np.random.default_rng(0)
    for name in FER2013_LABELS:
        d = root / "test" / name
        d.mkdir(parents=True)
        for j in range(2):
            cv2.imwrite(str(d / f"{j}.png"), rng.integers(0, 256, (size, size), dtype=np.uint8))
    return root


def test_eval_feeds_a_64_pixel_model_64_pixel_faces(tmp_path: Path) -> None:
    from edgefer.train.data import load_fer2013
    from edgefer.train.evaluate import map_predictions

    tree = _fer_tree(tmp_path / "fer", size=96)
    model = build_tiny_onnx(tmp_path / "m64.onnx", spec=PreprocessSpec(size=(64, 64)))
    out = tmp_path / "m.json"
    assert main(["eval", str(model), "--data", str(tree), "--no-timing", "--json", str(out)]) == 0
    accuracy = json.loads(out.read_text())[str(model)]["accuracy"]
    data = load_fer2013(tree, "test", (64, 64))
    clf = load_classifier(model)
    want = float(np.mean(map_predictions(clf.predict(data.x), clf.labels, data.labels) == data.y))
    assert accuracy == pytest.approx(want, abs=1e-4)


def test_eval_refuses_a_damaged_model_unless_told_not_to_verify(tmp_path: Path, capsys) -> None:
    tree = _fer_tree(tmp_path / "fer")
    model = build_tiny_onnx(tmp_path / "m.onnx")
    stamp(model)
    _flip_weight_byte(model)
    assert main(["eval", str(model), "--data", str(tree), "--no-timing"]) == 2
    err = capsys.readouterr().err.strip()
    assert "integrity check failed" in err and len(err.splitlines()) == 1, err
    assert main(["eval", str(model), "--data", str(tree), "--no-timing", "--no-verify"]) == 0


# ---------------------------------------------------------------- writers killed before they replace a model
def _kill_at_pause(cmd: list[str], final: Path) -> tuple[int, str]:
    """Run ``cmd`` paused just before it replaces ``final``; SIGTERM it there; (rc, stderr)."""
    path = os.pathsep.join(p for p in (str(REPO / "tests"), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, PAUSE_ENV: final.name, "PYTHONPATH": path}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "paused before replacing" in line and final.name in line:
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.communicate(timeout=120)[1]
    text = "".join(seen) + (rest or "")
    assert any("paused before replacing" in line for line in seen), f"the writer never paused:\n{text}"
    return proc.returncode, text


def test_sigterm_during_eval_write_card_leaves_the_model_whole(tmp_path: Path) -> None:
    tree = _fer_tree(tmp_path / "fer")
    model = build_tiny_onnx(tmp_path / "m.onnx")
    stamp(model)
    before = model.read_bytes()
    cmd = [sys.executable, "-m", "edgefer.runtime.cli", "eval", str(model), "--data", str(tree),
           "--no-timing", "--write-card"]
    rc, err = _kill_at_pause(cmd, model)
    assert rc == 128 + signal.SIGTERM, err
    assert model.read_bytes() == before
    load_classifier(model)
    assert not list(tmp_path.glob(".edgefer-tmp-*")), "the killed writer left its temporary file"


EXPORT_SCRIPT = """
import sys
from pathlib import Path
from helpers import build_tiny_onnx
from edgefer.export.formats import Check, ExportFormat
from edgefer.export.runner import export_model
from edgefer.export.source import SourceModel
from edgefer.runtime.labels import FER2013_LABELS
from edgefer.runtime.metadata import ModelInfo
from edgefer.runtime.preprocess import PreprocessSpec

out = Path(sys.argv[1])
fmt = ExportFormat("onnx", ".onnx", "test", (), False, Check(0.995, 1e-4),
                   lambda ctx, path: (build_tiny_onnx(path, with_metadata=False, seed=5), {"tool": "test"})[1])
source = SourceModel(None, out / "src.keras", ModelInfo(FER2013_LABELS, PreprocessSpec(), {"params": 10}))
export_model(source, [fmt], out, "tiny", echo=None)
"""


def test_sigterm_during_export_keeps_the_previous_model(tmp_path: Path) -> None:
    previous = build_tiny_onnx(tmp_path / "tiny.onnx", seed=1)
    stamp(previous)
    before = previous.read_bytes()
    rc, err = _kill_at_pause([sys.executable, "-c", EXPORT_SCRIPT, str(tmp_path)], previous)
    assert rc != 0, err
    assert previous.read_bytes() == before
    load_classifier(previous)


def _fake_export(tmp_path: Path, exporter) -> tuple[Path, list]:
    from edgefer.export.formats import Check, ExportFormat
    from edgefer.export.runner import export_model
    from edgefer.export.source import SourceModel
    from edgefer.runtime.metadata import ModelInfo

    fmt = ExportFormat("onnx", ".onnx", "test", (), False, Check(0.995, 1e-4), exporter)
    source = SourceModel(None, tmp_path / "src.keras", ModelInfo(FER2013_LABELS, PreprocessSpec(), {"params": 10}))
    return tmp_path / "tiny.onnx", export_model(source, [fmt], tmp_path, "tiny", echo=None)


def test_a_failed_export_keeps_the_previous_model(tmp_path: Path) -> None:
    previous = build_tiny_onnx(tmp_path / "tiny.onnx", seed=1)
    write_card(previous, stamp(previous))
    before, card_before = previous.read_bytes(), card_path(previous).read_text()

    def partial(ctx, path: Path) -> dict:
        path.write_bytes(before[: len(before) // 2])  # a converter that died half way
        raise RuntimeError("converter crashed")

    final, results = _fake_export(tmp_path, partial)
    assert results[0].error and "converter crashed" in results[0].error
    assert final.read_bytes() == before and card_path(final).read_text() == card_before
    assert not list(tmp_path.glob(".edgefer-tmp-*"))


def test_an_export_that_cannot_load_is_kept_aside_not_over_the_previous_model(tmp_path: Path) -> None:
    previous = build_tiny_onnx(tmp_path / "tiny.onnx", seed=1)
    stamp(previous)
    before = previous.read_bytes()

    def five_outputs(ctx, path: Path) -> dict:  # a graph with 5 outputs for the source's 7 labels
        build_tiny_onnx(path, labels=FER2013_LABELS[:5], with_metadata=False)
        return {"tool": "test"}

    final, results = _fake_export(tmp_path, five_outputs)
    assert results[0].error and "5 outputs" in results[0].error
    assert final.read_bytes() == before
    load_classifier(final)


def test_a_good_export_replaces_the_previous_model_stamped(tmp_path: Path) -> None:
    build_tiny_onnx(tmp_path / "tiny.onnx", seed=1)

    def good(ctx, path: Path) -> dict:
        build_tiny_onnx(path, with_metadata=False, seed=7)
        return {"tool": "test"}

    final, results = _fake_export(tmp_path, good)
    assert results[0].ok, results[0].error
    info = read_model_info(final)
    assert info.sha256 and read_card(final).sha256 == info.sha256
    assert json.loads(card_path(final).read_text())["model"] == "tiny.onnx"
    load_classifier(final)
    assert not list(tmp_path.glob(".edgefer-tmp-*"))


def test_a_damaged_detector_file_is_refused(tmp_path: Path) -> None:
    from edgefer.runtime.detectors import BlazeFaceDetector, DetectorError

    shipped = MODELS_DIR / "detectors" / "blazeface_short.onnx"
    model = tmp_path / shipped.name
    shutil.copy(shipped, model)
    shutil.copy(card_path(shipped), card_path(model))
    BlazeFaceDetector("blazeface", model)  # an intact copy loads
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(DetectorError, match="integrity check failed") as err:
        BlazeFaceDetector("blazeface", model)
    assert "\n" not in str(err.value)


def test_eval_refuses_a_keras_run_whose_run_json_does_not_fit_the_network(tmp_path: Path, capsys) -> None:
    pytest.importorskip("tensorflow")
    from export_synthetic import train_tiny_run

    run = train_tiny_run(tmp_path / "run")
    record = json.loads((run / "run.json").read_text())
    record["preprocess"]["size"] = [64, 64]
    (run / "run.json").write_text(json.dumps(record))
    assert main(["eval", str(run), "--data", str(_fer_tree(tmp_path / "fer")), "--no-timing"]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not fit the preprocessing" in err and len(err.splitlines()) == 1, err


def test_export_falls_back_to_last_keras_when_best_is_empty(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    keras = pytest.importorskip("keras")
    from edgefer.export.source import load_source

    model = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Flatten(), keras.layers.Dense(7, "softmax")])
    model.save(tmp_path / "last.keras")
    (tmp_path / "best.keras").write_bytes(b"")  # what an in-place write killed at the wrong moment left
    (tmp_path / "run.json").write_text(json.dumps({"labels": list(FER2013_LABELS),
                                                   "preprocess": json.loads(PreprocessSpec().to_json())}))
    source = load_source(tmp_path)
    assert source.path == tmp_path / "last.keras"
    assert "best.keras: Keras cannot load it" in capsys.readouterr().err
    (tmp_path / "last.keras").write_bytes(b"")
    with pytest.raises(ModelError, match=r"last\.keras: Keras cannot load it"):
        load_source(tmp_path)
