"""Recipes: the parser's checks, a whole recipe on generated data, and a kill at mid-train then a rerun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from export_synthetic import write_tree

from edgefer.runtime.errors import UsageError
from edgefer.train.recipe import load_recipe, parse_recipe, resolve, shipped_recipes
from edgefer.train.recipe_run import outputs

ROOT = Path(__file__).resolve().parents[1]
SHARED_FER = ROOT.parent / "shared" / "data" / "fer2013"

# Every stage kind; stage b's 3 epochs write last.keras:2, which stage a (1 epoch) never does,
# so the pause hook stops the run in the middle of b.
TINY = """
description = "test"
[defaults]
arch = "ckplus"
batch_size = 8
deterministic = true

[[stages]]
name = "a"
kind = "train"
epochs = 1

[[stages]]
name = "teacher"
kind = "teacher"
models = ["@a"]
flip = false

[[stages]]
name = "b"
kind = "train"
init_from = "@a"
teacher = "@teacher"
epochs = 3
average_last = 2

[[stages]]
name = "soup"
kind = "average"
members = ["@a", "@b"]

[[stages]]
name = "export"
kind = "export"
model = "@b"
formats = "onnx"

[[stages]]
name = "eval"
kind = "eval"
models = ["@b", "@export/tiny.onnx"]
"""


def _stage(extra: str, kind: str = "train", name: str = "x") -> bytes:
    return f'[[stages]]\nname = "{name}"\nkind = "{kind}"\n{extra}\n'.encode()


# ---------------------------------------------------------------- the parser
def test_every_shipped_recipe_parses() -> None:
    assert {"smoke", "fer2013-edge", "ferplus", "report", "report-reference", "ckplus"} <= set(shipped_recipes())
    for name in shipped_recipes():
        assert load_recipe(name).stages


def test_unknown_key_is_refused_in_one_line() -> None:
    with pytest.raises(UsageError, match=r"stage 'x': unknown key 'lr' \(expected one of arch, data") as info:
        parse_recipe(_stage("lr = 0.1"), "t")
    assert "\n" not in str(info.value)
    with pytest.raises(UsageError, match=r"\[defaults\]: unknown key 'out'"):
        parse_recipe(b'[defaults]\nout = "x"\n' + _stage(""), "t")  # the runner decides where runs go
    with pytest.raises(UsageError, match="unknown top-level key 'stage'"):
        parse_recipe(b'[[stage]]\nname = "x"\nkind = "train"\n', "t")


def test_values_are_checked_against_trainconfig_types() -> None:
    with pytest.raises(UsageError, match="epochs = 'ten' should be int"):
        parse_recipe(_stage('epochs = "ten"'), "t")
    with pytest.raises(UsageError, match="epochs = True should be int"):
        parse_recipe(_stage("epochs = true"), "t")
    recipe = parse_recipe(_stage("learning_rate = 1"), "t")  # an int is a float
    assert recipe.stages[0].settings == {"learning_rate": 1}


def test_bad_stage_kind_and_names_are_refused() -> None:
    with pytest.raises(UsageError, match="kind 'fit' is not one of train, teacher, average, export, eval"):
        parse_recipe(_stage("", kind="fit"), "t")
    with pytest.raises(UsageError, match="a stage of that name comes earlier"):
        parse_recipe(_stage("") + _stage(""), "t")
    with pytest.raises(UsageError, match="a teacher stage needs 'models'"):
        parse_recipe(_stage("", kind="teacher"), "t")


def test_references_resolve_to_earlier_outputs_only() -> None:
    with pytest.raises(UsageError, match=r"init_from = '@later' names no earlier stage"):
        parse_recipe(_stage('init_from = "@later"') + _stage("", name="later"), "t")
    recipe = parse_recipe(TINY.encode(), "tiny")
    places = outputs(recipe, Path("D"))
    assert places["b"] == Path("D/b/averaged") and places["teacher"] == Path("D/teacher.npz")
    settings = {k: resolve(v, places) for k, v in recipe.stage("eval").settings.items()}
    assert settings["models"] == [str(Path("D/b/averaged")), str(Path("D/export/tiny.onnx"))]
    assert resolve("@a", places) == str(Path("D/a")) and resolve("plain", places) == "plain"


def test_cli_refuses_train_options_beside_a_recipe(capsys) -> None:
    from edgefer.runtime.cli import main

    assert main(["train", "--recipe", "smoke", "--out", "x", "--epochs", "3"]) == 2
    assert "--epochs is the recipe's to set" in capsys.readouterr().err
    assert main(["train", "--recipe", "no-such-recipe", "--out", "x"]) == 2
    assert "shipped: " in capsys.readouterr().err


# ---------------------------------------------------------------- running one
pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("recipe")
    recipe = root / "tiny.toml"
    recipe.write_text(TINY)
    return recipe, write_tree(root / "tree", {"train": 8, "test": 3})


@pytest.fixture(scope="module")
def finished(tiny: tuple[Path, Path], tmp_path_factory) -> Path:
    from edgefer.runtime.cli import main

    recipe, tree = tiny
    out = tmp_path_factory.mktemp("uninterrupted") / "D"
    assert main(["train", "--recipe", str(recipe), "--out", str(out), "--data", str(tree), "--no-progress",
                 "--no-report"]) == 0
    return out


def test_recipe_runs_every_stage_and_records_itself(finished: Path, tiny: tuple[Path, Path], capsys) -> None:
    from edgefer.runtime.cli import main

    state = json.loads((finished / "recipe.json").read_text())
    assert state["finished"] == ["a", "teacher", "b", "soup", "export", "eval"]
    card = json.loads((finished / "export" / "tiny.json").read_text())["card"]
    assert card["training"]["recipe"] == {"name": "tiny", "sha256": state["sha256"], "stage": "b"}
    parent = json.loads((finished / "b" / "run.json").read_text())["init_from"]
    assert parent["file"] == str(finished / "a" / "best.keras")
    assert len(json.loads((finished / "eval" / "eval.json").read_text())) == 2  # one entry per model
    # A rerun skips every finished stage; a changed recipe is refused in the same folder.
    recipe, tree = tiny
    assert main(["train", "--recipe", str(recipe), "--out", str(finished), "--data", str(tree)]) == 0
    assert capsys.readouterr().out.count("finished earlier, skipped") == 6
    changed = recipe.with_name("tiny2.toml")
    changed.write_text(TINY.replace("epochs = 3", "epochs = 4"))
    assert main(["train", "--recipe", str(changed), "--out", str(finished), "--data", str(tree)]) == 2
    assert "the recipe changed; train into another --out" in capsys.readouterr().err


def _weights(path: Path) -> list[np.ndarray]:
    import keras

    return keras.models.load_model(path, compile=False).get_weights()


def test_kill_mid_train_then_rerun_equals_the_uninterrupted_run(finished: Path, tiny: tuple[Path, Path],
                                                                tmp_path: Path) -> None:
    recipe, tree = tiny
    out = tmp_path / "D"
    cmd = [str(Path(sys.executable).with_name("edgefer")), "train", "--recipe", str(recipe), "--out", str(out),
           "--data", str(tree), "--no-progress", "--no-report"]
    env = dict(os.environ, EDGEFER_TEST_PAUSE_CHECKPOINT="last.keras:2", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    deadline, paused = time.monotonic() + 300, False
    for line in proc.stdout:
        if line.startswith("EDGEFER_TEST_PAUSED"):
            paused = True
            break
        if time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert paused, "the run never reached stage b's second epoch"
    assert json.loads((out / "recipe.json").read_text())["finished"] == ["a", "teacher"]

    rerun = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert "[1/6] a (train): finished earlier, skipped" in rerun.stdout
    assert "[2/6] teacher (teacher): finished earlier, skipped" in rerun.stdout
    assert "resuming" in rerun.stdout and "after epoch 1" in rerun.stdout
    for name in ("b/last.keras", "b/averaged/best.keras", "soup/best.keras"):
        for got, want in zip(_weights(out / name), _weights(finished / name), strict=True):
            np.testing.assert_allclose(got, want, atol=1e-6, err_msg=name)
    got = json.loads((out / "eval" / "eval.json").read_text())
    want = json.loads((finished / "eval" / "eval.json").read_text())
    assert [m["accuracy"] for m in got.values()] == [m["accuracy"] for m in want.values()]


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_FER / "train").is_dir(), reason=f"no FER2013 tree at {SHARED_FER}")
def test_smoke_recipe_on_the_real_data_subset(tmp_path: Path) -> None:
    if os.environ.get("EDGEFER_REAL_SMOKE") != "1":
        pytest.skip(".ci/run trains the smoke recipe on FER2013 (minutes); EDGEFER_REAL_SMOKE=1 runs it here")
    cmd = [str(Path(sys.executable).with_name("edgefer")), "train", "--recipe", "smoke", "--out", str(tmp_path / "D"),
           "--data", str(SHARED_FER), "--no-progress", "--no-report"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert json.loads((tmp_path / "D" / "recipe.json").read_text())["finished"][-1] == "eval"
