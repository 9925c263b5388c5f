"""TrainConfig is the one definition of `edgefer train`'s options; a resume reads its settings from run.json."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import MISSING, asdict, fields
from pathlib import Path

import pytest

from edgefer.runtime.errors import UsageError
from edgefer.train.config import (
    DEFAULT_PREPROCESS,
    RECIPE,
    TrainConfig,
    add_train_arguments,
    config_from_args,
    flag_of,
    option_fields,
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_train_arguments(p)
    return p


def _config(*argv: str) -> TrainConfig:
    return config_from_args(_parser().parse_args(list(argv)))


def test_every_setting_has_exactly_one_flag() -> None:
    flags_of: dict[str, list[str]] = {}
    for action in _parser()._actions:
        if action.dest != "help":
            flags_of.setdefault(action.dest, []).extend(action.option_strings)
    options = {f.name for f in option_fields()}
    assert options == {f.name for f in fields(TrainConfig)} - {"preprocess"}  # the one internal field
    assert set(flags_of) == options
    assert all(len(flags) == 1 for flags in flags_of.values()), flags_of
    assert flags_of["batch_size"] == ["--batch"] and flags_of["learning_rate"] == ["--lr"]
    assert flags_of["average_last"] == ["--average-last"] and flags_of["time_budget"] == ["--time-budget"]


def test_parsed_defaults_are_the_field_defaults() -> None:
    parsed = _config()
    for f in option_fields():
        expected = "runs/report" if f.name == "out" else f.default  # --out defaults to runs/<arch>
        assert f.default is not MISSING and getattr(parsed, f.name) == expected, f.name
    assert _config("--arch", "edge_fast").out == "runs/edge_fast"
    assert _config("--arch", "edge_fast", "--out", "x").out == "x"


def test_help_shows_the_dataclass_defaults_and_groups() -> None:
    p = _parser()
    by_dest = {a.dest: a for a in p._actions}
    for f in option_fields():
        if f.default not in (None, "", False):
            assert f"(default {f.default})" in by_dest[f.name].help, f.name
    recipe = next(g for g in p._action_groups if g.title == RECIPE)
    assert {a.dest for a in recipe._group_actions} >= {"augment", "schedule", "init_from", "average_last"}
    assert {a.dest for a in recipe._group_actions}.isdisjoint({"arch", "out", "epochs", "resume"})


def test_flags_convert_and_rename() -> None:
    cfg = _config("--batch", "32", "--lr", "0.01")
    assert (cfg.batch_size, cfg.learning_rate) == (32, 0.01)
    cfg = _config("--augment", "--schedule", "cosine", "--time-budget", "420", "--average-last", "4", "--epochs", "9")
    assert (cfg.augment, cfg.schedule, cfg.time_budget, cfg.average_last, cfg.epochs) == (True, "cosine", 420.0, 4, 9)
    with pytest.raises(SystemExit):
        _parser().parse_args(["--schedule", "linear"])


def test_the_preprocess_literal_is_the_runtime_default() -> None:
    from edgefer.runtime.preprocess import PreprocessSpec

    assert json.loads(PreprocessSpec().to_json()) == DEFAULT_PREPROCESS
    assert TrainConfig().preprocess == DEFAULT_PREPROCESS
    assert TrainConfig().preprocess["size"] is not TrainConfig().preprocess["size"]


def test_validation_lives_with_the_definition(tmp_path: Path) -> None:
    for n in ("1", "-2"):
        with pytest.raises(UsageError, match="at least 2 epochs"):
            _config("--average-last", n)
    with pytest.raises(UsageError, match="--init-from .*: no such file"):
        _config("--init-from", str(tmp_path / "nope.onnx"))
    _config("--init-from", str(tmp_path / "nope.onnx"), "--resume", "--out", str(tmp_path))  # its parent may be gone
    with pytest.raises(UsageError, match="--schedule linear: expected one of constant, cosine"):
        TrainConfig(schedule="linear").validate()  # a library caller gets the CLI's choices


# ---------------------------------------------------------------- resume from run.json
def _recorded_run(folder: Path, extended: list | None = None) -> TrainConfig:
    """A run.json as trainer.py writes it: the config with the arch's epochs, batch and lr resolved."""
    cfg = TrainConfig(data="faces", arch="edge_fast", out=str(folder), epochs=10, batch_size=64, learning_rate=0.003,
                      seed=2, augment=True, schedule="cosine", warmup_epochs=1, average_last=4, teacher="t.npz")
    folder.mkdir()
    meta = {"config": asdict(cfg), "labels": ["a", "b"], **({"extended": extended} if extended else {})}
    (folder / "run.json").write_text(json.dumps(meta, indent=2))
    return cfg


def test_resume_alone_continues_with_the_recorded_settings(tmp_path: Path) -> None:
    run = tmp_path / "run"
    recorded = _recorded_run(run)
    cfg = _config("--out", str(run), "--resume")
    assert cfg == TrainConfig(**{**asdict(recorded), "resume": True})
    # The same command line as the run started with is fine too.
    same = _config("--out", str(run), "--resume", "--arch", "edge_fast", "--lr", "0.003", "--augment", "--seed", "2")
    assert same == cfg


def test_resume_refuses_a_setting_that_changes_the_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _recorded_run(run)
    for argv, shown in ((["--lr", "0.01"], "--lr 0.01 (the run has 0.003)"),
                        (["--arch", "edge"], "--arch edge (the run has edge_fast)"),
                        (["--deterministic"], "--deterministic on (the run has it off)"),
                        (["--epochs", "8"], "--epochs 8 (the run has 10)"),
                        (["--average-last", "2"], "--average-last 2 (the run has 4)")):
        with pytest.raises(UsageError) as err:
            _config("--out", str(run), "--resume", *argv)
        message = str(err.value)
        assert shown in message and "\n" not in message, message
        assert ("may only grow" in message) == (argv[0] in ("--epochs", "--average-last"))


def test_resume_accepts_extensions_and_settings_that_do_not_change_the_weights(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _recorded_run(run)
    cfg = _config("--out", str(run), "--resume", "--epochs", "20", "--average-last", "8", "--workers", "4",
                  "--data", "/elsewhere/faces", "--time-budget", "600")
    assert (cfg.epochs, cfg.average_last, cfg.workers, cfg.data, cfg.time_budget) == (20, 8, 4, "/elsewhere/faces", 600)
    assert (cfg.learning_rate, cfg.teacher, cfg.out) == (0.003, "t.npz", str(run))


def test_resume_with_precision_auto_keeps_the_precision_the_run_started_with(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _recorded_run(run)  # float32, as auto resolved it on the machine that started the run
    assert _config("--out", str(run), "--resume", "--precision", "auto").precision == "float32"
    with pytest.raises(UsageError, match="--precision mixed_bfloat16 \\(the run has float32\\)"):
        _config("--out", str(run), "--resume", "--precision", "mixed_bfloat16")


def test_resume_continues_from_the_latest_extension(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _recorded_run(run, extended=[{"after_epoch": 10, "epochs": 16, "average_last": 6}])
    cfg = _config("--out", str(run), "--resume")
    assert (cfg.epochs, cfg.average_last) == (16, 6)
    with pytest.raises(UsageError, match="--epochs 12 \\(the run has 16\\)"):
        _config("--out", str(run), "--resume", "--epochs", "12")


def test_resume_of_an_older_or_newer_record(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    config = {"data": "d", "arch": "report", "epochs": 25, "batch_size": 128, "learning_rate": 0.001,
              "a_setting_of_later_code": 1}  # and none of the settings added since
    (run / "run.json").write_text(json.dumps({"config": config}))
    cfg = _config("--out", str(run), "--resume")
    assert (cfg.epochs, cfg.average_last, cfg.deterministic) == (25, 0, False)
    with pytest.raises(UsageError, match="--deterministic on"):
        _config("--out", str(run), "--resume", "--deterministic")
    (run / "run.json").write_text("{")
    with pytest.raises(UsageError, match="no readable config"):
        _config("--out", str(run), "--resume")


def test_resume_without_a_record_takes_the_command_line(tmp_path: Path) -> None:
    cfg = _config("--out", str(tmp_path / "new"), "--resume", "--lr", "0.01")
    assert (cfg.learning_rate, cfg.arch, cfg.resume) == (0.01, "report", True)
    run = tmp_path / "run"
    _recorded_run(run)
    assert _config("--out", str(run), "--lr", "0.01").learning_rate == 0.01  # no --resume: a fresh run


def test_cli_prints_a_resume_conflict_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgefer.runtime.cli import main

    run = tmp_path / "run"
    _recorded_run(run)
    assert main(["train", "--out", str(run), "--resume", "--lr", "0.01"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"edgefer train: error: cannot resume {run} "), err


def test_train_help_lists_every_flag_and_imports_nothing_heavy() -> None:
    edgefer = Path(sys.executable).with_name("edgefer")
    out = subprocess.run([str(edgefer), "train", "--help"], capture_output=True, text=True, timeout=60, check=True)
    for f in option_fields():
        assert f"{flag_of(f)} " in out.stdout or f"{flag_of(f)}\n" in out.stdout, flag_of(f)
    assert "--no-report" in out.stdout and RECIPE in out.stdout
    code = ("import sys\nfrom edgefer.train.config import TrainConfig\nimport edgefer.train.cli\n"
            "print(sorted(m for m in ('numpy', 'cv2', 'keras', 'tensorflow') if m in sys.modules))")
    light = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert light.stdout.strip() == "[]"


def test_mixed_bfloat16_is_flagged_only_where_the_cpu_would_emulate_it() -> None:
    from edgefer.train.trainer import emulated_bf16_warning

    assert "--precision float32" in emulated_bf16_warning(["sse4_2", "avx", "avx2", "fma"])
    assert emulated_bf16_warning(["avx2", "avx512f", "avx512_bf16"]) == ""
    assert emulated_bf16_warning(["avx2", "amx_tile"]) == ""
    assert emulated_bf16_warning(["asimd", "bf16"]) == ""
    assert emulated_bf16_warning([]) == ""  # no /proc/cpuinfo: nothing known, nothing said


def test_precision_auto_picks_bfloat16_only_where_it_is_native() -> None:
    from edgefer.train.trainer import auto_precision, resolved_precision

    assert auto_precision(None, ["sse4_2", "avx2", "fma"]) == "float32"
    assert auto_precision(None, ["avx2", "avx512_bf16"]) == "mixed_bfloat16"
    assert auto_precision(None, ["asimd", "bf16"]) == "mixed_bfloat16"
    assert auto_precision(None, []) == "float32"  # features not known: the safe choice
    assert auto_precision("NVIDIA H100", ["avx2"]) == "mixed_bfloat16"
    assert resolved_precision("float32") == "float32" and resolved_precision("mixed_bfloat16") == "mixed_bfloat16"
