"""`edgefer ship`: README blocks are spliced exactly or not at all; a tiny run ships end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgefer.export.readme_blocks import MissingBlockError, splice, splice_text, variants_block
from edgefer.runtime.cli import main

README = """# Models

intro, kept as written

<!-- begin:eval-tiny -->
old table
<!-- end:eval-tiny -->

between the blocks

<!-- begin:train-tiny -->
old summary
<!-- end:train-tiny -->

<!-- begin:variants-tiny -->
old variants
<!-- end:variants-tiny -->

<!-- begin:other -->
another model's table
<!-- end:other -->
"""


def test_splice_replaces_exactly_the_marked_blocks(tmp_path: Path) -> None:
    target = tmp_path / "README.md"
    target.write_text(README)
    splice(target, {"train-tiny": "\n- new summary \\1 $0\n", "eval-tiny": "| a |\n|---|"})
    text = target.read_text()
    expected = (README.replace("old summary", "- new summary \\1 $0")
                .replace("old table", "| a |\n|---|"))
    assert text == expected  # backslashes kept, everything outside the two blocks unchanged
    assert not list(tmp_path.glob(".edgefer-tmp-*"))


def test_splice_refuses_a_missing_block_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "README.md"
    doc = README.replace("<!-- end:variants-tiny -->", "")  # a begin marker without its end is no block
    target.write_text(doc)
    before = target.stat().st_mtime_ns
    with pytest.raises(MissingBlockError, match=r"no <!-- begin:variants-tiny --> \.\.\. <!-- end:variants-tiny -->"):
        splice(target, {"eval-tiny": "new", "variants-tiny": "new"})
    assert target.read_text() == doc and target.stat().st_mtime_ns == before
    with pytest.raises(MissingBlockError):
        splice_text(doc, {"nowhere": "x"})


def test_variants_table_lists_the_recorded_views() -> None:
    m = {"n": 10, "accuracy": 0.5, "balanced_accuracy": 0.25}
    text = variants_block({"fer2013-publictest": m, "fer2013-publictest-flip-tta": {**m, "accuracy": 0.6},
                           "fer2013-publictest-blazeface": {**m, "accuracy": 0.4},
                           "ckplus-all": {**m, "n": 7}, "ckplus-all-blazeface": {**m, "n": 7, "accuracy": 0.3}},
                          "fer2013-publictest")
    assert text.splitlines()[2:] == [
        "| PublicTest, single pass | 10 | 0.5000 | 0.2500 |",
        "| PublicTest with horizontal-flip averaging (`--flip-tta`) | 10 | 0.6000 | 0.2500 |",
        "| PublicTest as the runtime frames it: BlazeFace's box plus margin (`--detector-crops`) "
        "| 10 | 0.4000 | 0.2500 |",
        "| CK+48, every image of the classes it has (cross-dataset) | 7 | 0.5000 | 0.2500 |",
        "| CK+48, every image, as the runtime frames it (cross-dataset, `--detector-crops`) | 7 | 0.3000 | 0.2500 |",
    ]


def test_ship_checks_the_readme_before_exporting(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    (run / "history.csv").write_text("epoch,val_accuracy\n")
    readme = tmp_path / "README.md"
    readme.write_text(README.replace("variants-tiny", "variants-other"))
    out = tmp_path / "models"
    rc = main(["ship", str(run), "--name", "tiny", "--out", str(out), "--readme", str(readme)])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err == (f"edgefer ship: error: {readme}: no <!-- begin:variants-tiny --> ... <!-- end:variants-tiny --> "
                   "block; add the markers where the text goes")
    assert not out.exists()
    readme.write_text(README)  # the blocks are there now, but the run is not summarisable
    assert main(["ship", str(run), "--name", "tiny", "--out", str(out), "--readme", str(readme)]) == 2
    err = capsys.readouterr().err
    assert "run.json or history.csv lacks what the train-tiny block shows (KeyError: 'config')" in err
    assert readme.read_text() == README and not out.exists()


def test_ship_help_loads_nothing_heavy() -> None:
    code = (
        "import sys\nfrom edgefer.runtime.cli import main\n"
        "try:\n    main(['ship', '--help'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "heavy = ('tensorflow', 'keras', 'tf2onnx', 'onnx', 'onnxruntime', 'cv2', 'matplotlib')\n"
        "print('loaded:', sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "usage: edgefer ship" in out and "--calib-seed" in out and "--readme" in out
    assert "loaded: []" in out


@pytest.mark.slow
def test_ship_a_tiny_run_into_a_models_folder(tmp_path: Path, capsys) -> None:
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    pytest.importorskip("ai_edge_litert")
    from ckplus_synthetic import write_ckplus_tree
    from export_synthetic import train_tiny_run, write_tree

    from edgefer.runtime.metadata import card_path
    from edgefer.train.data import load_fer2013
    from edgefer.train.evaluate import evaluate, load_predictor

    run = train_tiny_run(tmp_path / "runs" / "tiny")
    (run / "history.csv").write_text("epoch,accuracy,epoch_seconds,loss,val_accuracy,val_loss\n"
                                     "0,0.4,30,1.5,0.5,1.4\n1,0.8,30,0.6,0.9,0.5\n")
    data = write_tree(tmp_path / "data", {"train": 12, "test": 10}, seed=20)
    write_ckplus_tree(tmp_path / "ckplus", per_class=2)  # beside the data, as ../shared/data has it
    shutil.copy(sorted((data / "train" / "happy").iterdir())[0], data / "test" / "happy" / "dup.png")
    models = tmp_path / "models"
    models.mkdir()
    (models / "README.md").write_text(README)

    rc = main(["ship", str(run), "--name", "tiny", "--data", str(data), "--out", str(models), "--calib-size", "42"])
    assert rc == 0
    progress = capsys.readouterr().err
    assert all(f"ship [{i}/5]" in progress for i in range(1, 6))

    command = f"edgefer ship {run} --name tiny --data {data} --out {models} --calib-size 42"
    test = load_fer2013(data, "test")
    files = [models / n for n in ("tiny.onnx", "tiny-int8.onnx", "tiny-full-int8.tflite")]
    for path in files:
        metrics = json.loads(card_path(path).read_text())["card"]["metrics"]["fer2013-publictest"]
        # the card holds what an evaluation of the shipped file on the same images measures
        assert metrics["n"] == len(test) == 71
        assert metrics["accuracy"] == pytest.approx(evaluate(load_predictor(path), test).metrics.accuracy, abs=1e-4)
        assert metrics["measured_by"] == command and metrics["ms_per_face_batch1_1thread_here"] > 0
        # every file's card carries the cross-dataset score: CK+ less contempt, which a FER2013 model lacks
        cross = json.loads(card_path(path).read_text())["card"]["metrics"]["ckplus-all"]
        assert cross["n"] == 12 and "contempt" not in cross["per_class_recall"]
        assert cross["data"] == "ckplus without contempt"
    float_metrics = json.loads(card_path(files[0]).read_text())["card"]["metrics"]
    assert float_metrics["fer2013-publictest-dedup"]["n"] == 70  # dup.png left out
    assert float_metrics["fer2013-publictest-flip-tta"]["n"] == 71
    # through the runtime's framing: every face kept (a missed one with its own crop), float model only
    assert float_metrics["fer2013-publictest-blazeface"]["n"] == 71
    assert float_metrics["ckplus-all-blazeface"]["n"] == 12
    int8_metrics = json.loads(card_path(files[1]).read_text())["card"]["metrics"]
    assert "fer2013-publictest-blazeface" not in int8_metrics and "ckplus-all-blazeface" not in int8_metrics

    eval_report = (models / "EVAL_tiny.md").read_text()
    assert f"command: `{command}`" in eval_report and "| best.keras | keras |" in eval_report
    assert (models / "reports" / "tiny" / "report.md").is_file()
    assert (models / "reports" / "tiny" / "history.csv").read_text() == (run / "history.csv").read_text()

    readme = (models / "README.md").read_text()
    assert "old table" not in readme and "old summary" not in readme and "old variants" not in readme
    assert "intro, kept as written" in readme and "another model's table" in readme
    eval_block = readme.split("<!-- begin:eval-tiny -->\n")[1].split("\n<!-- end:eval-tiny -->")[0]
    assert eval_block.startswith(f"Measured by `{command}`:\n\n| model | format |")
    assert "| tiny.onnx | onnx |" in eval_block and "| tiny-full-int8.tflite | tflite-int8 |" in eval_block
    assert f"- command: `edgefer train --arch tiny --data synthetic --epochs 6 --out {run}`" in readme
    acc = float_metrics["fer2013-publictest"]["accuracy"]
    assert f"| PublicTest, single pass | 71 | {acc:.4f} |" in readme
    assert "| PublicTest without the images pixel-identical to a training image | 70 |" in readme
    assert "| CK+48, every image of the classes it has (cross-dataset) | 12 |" in readme
    assert not list(models.rglob(".edgefer-tmp-*"))
