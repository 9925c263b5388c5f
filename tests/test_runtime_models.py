"""Model loading: edgefer metadata is required, bad files give clear one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import build_tiny_onnx

from edgefer.runtime.classifiers import load_classifier
from edgefer.runtime.cli import main
from edgefer.runtime.labels import FER2013_LABELS
from edgefer.runtime.metadata import ModelError
from edgefer.runtime.preprocess import PreprocessSpec


def test_tiny_model_loads_and_predicts_a_dynamic_batch(tiny_onnx: Path) -> None:
    clf = load_classifier(tiny_onnx)
    assert clf.labels == FER2013_LABELS
    for n in (1, 3):
        probs = clf.predict(np.full((n, 48, 48), 128, dtype=np.uint8))
        assert probs.shape == (n, 7)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_nchw_three_channel_model_gets_its_declared_layout(tmp_path: Path) -> None:
    spec = PreprocessSpec(size=(40, 32), channels=3, layout="NCHW", scale=2 / 255, offset=-1.0)
    clf = load_classifier(build_tiny_onnx(tmp_path / "nchw.onnx", labels=("a", "b"), spec=spec))
    assert clf.predict(np.zeros((2, 40, 32), dtype=np.uint8)).shape == (2, 2)


def test_model_without_metadata_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = build_tiny_onnx(tmp_path / "plain.onnx", with_metadata=False)
    with pytest.raises(ModelError) as err:
        load_classifier(path)
    message = str(err.value)
    assert "not an edgefer model" in message
    assert "edgefer.labels" in message and "edgefer.preprocess" in message
    assert "edgefer export" in message  # tells the user how to fix it


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model file not found"):
        load_classifier(tmp_path / "nope.onnx")


@pytest.mark.parametrize("content", [b"", b"this is not a protobuf \x00\xff" * 20])
def test_corrupt_or_empty_model_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=r"broken\.onnx"):
        load_classifier(path)


def test_unknown_model_suffix_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.h5"
    path.write_bytes(b"x")
    with pytest.raises(ModelError, match="unknown model format"):
        load_classifier(path)


@pytest.mark.parametrize("kind", ["missing", "no-metadata"])
def test_cli_reports_a_bad_model_in_one_line_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    model = tmp_path / "m.onnx"
    if kind == "no-metadata":
        build_tiny_onnx(model, with_metadata=False)
    code = main(["run", "--model", str(model), "--source", str(tmp_path), "--headless"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("edgefer run: error:") and len(err.splitlines()) == 1, err


def test_flip_tta_averages_a_face_and_its_mirror(tmp_path) -> None:
    import numpy as np

    from edgefer.runtime.classifiers import load_classifier

    path = build_tiny_onnx(tmp_path / "m.onnx", seed=3)
    faces = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    plain = load_classifier(path)
    want = (plain.predict(faces) + plain.predict(faces[:, :, ::-1].copy())) / 2
    tta = load_classifier(path, flip_tta=True)
    got = tta.predict(faces)
    assert np.allclose(got, want, atol=1e-6)
    assert not np.allclose(got, plain.predict(faces), atol=1e-4)  # the mirror does change the answer


def test_bundled_models_resolve_by_name_and_files_win(tmp_path: Path, monkeypatch) -> None:
    from edgefer.models import MODELS_DIR, available, resolve

    assert resolve("fer2013") == MODELS_DIR / "fer2013.onnx"
    assert resolve("fer2013-full-int8") == MODELS_DIR / "fer2013-full-int8.tflite"
    assert resolve("blazeface_short") == Path("blazeface_short")  # a detector, not a classifier
    assert not any(p.parent.name == "detectors" for p in available())
    monkeypatch.chdir(tmp_path)
    Path("fer2013").write_bytes(b"x")  # a file in the working directory is taken as given
    assert resolve("fer2013") == Path("fer2013")
    with pytest.raises(ModelError, match=r"bundled models: .*fer2013-int8"):
        load_classifier(resolve("no-such-model"))


def test_models_command_lists_each_classifier_with_its_measured_accuracy(capsys) -> None:
    from edgefer.models import available
    from edgefer.runtime.metadata import read_card
    from edgefer.runtime.models_cli import HEADLINE_METRICS

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    classifiers, detectors = out.split("face detectors")
    rows = {line.split("|")[1].strip().removesuffix(" (default)"): line
            for line in classifiers.splitlines()[3:] if line.startswith("|")}
    assert "fer2013 (default)" in rows["fer2013"]
    for path in available():
        row = rows[path.stem if path.suffix == ".onnx" else path.name]
        metrics = read_card(path).card["metrics"]
        shown = [key for key in HEADLINE_METRICS if key in metrics]
        assert shown, f"{path.name}: no headline metric on its card"
        for key in shown:
            assert f"{100 * metrics[key]['accuracy']:.2f}%" in row, row
    assert "face_detection" not in classifiers and "blazeface" not in classifiers
    assert "| blazeface (default) | blazeface_short.onnx |" in detectors and "| blazeface-full |" in detectors


def test_sessions_with_a_thread_pool_do_not_spin(tiny_onnx: Path) -> None:
    # idle pool threads that spin between runs take the cores the frame's OpenCV work needs
    # (2 threads on 2 cores measured a whole frame twice as slow with spinning on)
    from edgefer.runtime.classifiers import cpu_session

    pooled = cpu_session(tiny_onnx, threads=2).get_session_options()
    assert pooled.intra_op_num_threads == 2
    assert pooled.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    single = cpu_session(tiny_onnx, threads=1).get_session_options()
    assert single.intra_op_num_threads == 1  # no pool: nothing to spin
