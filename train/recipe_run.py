"""Run a recipe (train/recipe.py) into one folder, resumable after a kill at any point.

DIR/recipe.json records the recipe's name and sha256 and the stages that finished, each
written (atomically) only once its stage is complete. A rerun of the same command skips the
finished stages, resumes an interrupted train stage with the trainer's own --resume (it loses at
most the epoch in progress), and reruns any other interrupted stage from the start, its partial
output removed first. A recipe whose bytes changed is another recipe: it is refused in a DIR
that an earlier one started.

Stages other than train run the commands a user would type (``python -m edgefer.train.teacher``,
``edgefer average``, ``edgefer export``, ``edgefer eval``) in this process, so a recipe does
nothing a command line cannot, and train never imports export.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefer.runtime.atomic import write_text
from edgefer.runtime.errors import EdgeferError, UsageError

from .config import build_config
from .recipe import SHARED_KEYS, Recipe, Stage, resolve
from .runfolder import RunFolder

STATE = "recipe.json"


@dataclass
class RecipeState:
    """DIR/recipe.json: which recipe the folder belongs to and which of its stages finished."""

    path: Path
    name: str
    sha256: str
    finished: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, out: Path, recipe: Recipe) -> RecipeState:
        path = out / STATE
        if not path.is_file():
            state = cls(path, recipe.name, recipe.sha256)
            state.save()
            return state
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path}: unreadable ({exc}); train into another --out") from exc
        if saved.get("sha256") != recipe.sha256:
            raise UsageError(f"{out} holds recipe {saved.get('name')!r} (sha256 {str(saved.get('sha256'))[:12]}…), "
                             f"not this {recipe.name!r} (sha256 {recipe.sha256[:12]}…): the recipe changed; "
                             "train into another --out")
        return cls(path, recipe.name, recipe.sha256, list(saved.get("finished", [])))

    def finish(self, stage: str) -> None:
        self.finished.append(stage)
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text(self.path, json.dumps({"name": self.name, "sha256": self.sha256, "finished": self.finished},
                                         indent=2) + "\n")


def outputs(recipe: Recipe, out: Path) -> dict[str, Path]:
    """Where each stage's output lies (what ``@NAME`` stands for)."""
    found = {}
    for stage in recipe.stages:
        where = out / stage.name
        if stage.kind == "teacher":
            where = out / f"{stage.name}.npz"
        elif stage.kind == "train" and _train_settings(recipe, stage).get("average_last"):
            where = RunFolder(where).averaged.path
        found[stage.name] = where
    return found


def _train_settings(recipe: Recipe, stage: Stage) -> dict[str, Any]:
    return {**recipe.defaults, **stage.settings}


def _shared(recipe: Recipe, stage: Stage, key: str) -> Any:
    return stage.settings.get(key, recipe.defaults.get(key))


def with_data(recipe: Recipe, data: str | None) -> Recipe:
    """``recipe`` reading its images from ``data`` (where they lie is no part of what it trains)."""
    if data is None:
        return recipe
    stages = tuple(Stage(s.name, s.kind, {**s.settings, **({"data": data} if "data" in s.settings else {})})
                   for s in recipe.stages)
    return Recipe(recipe.name, recipe.sha256, recipe.description, {**recipe.defaults, "data": data}, stages)


def run_recipe(recipe: Recipe, out: Path, progress: bool = True, report: bool = True) -> None:
    """Every stage of ``recipe`` not yet finished in ``out``, in order."""
    state = RecipeState.open(out, recipe)
    places = outputs(recipe, out)
    for i, stage in enumerate(recipe.stages, 1):
        head = f"recipe {recipe.name} [{i}/{len(recipe.stages)}] {stage.name} ({stage.kind})"
        if stage.name in state.finished:
            print(f"{head}: finished earlier, skipped", flush=True)
            continue
        print(f"{head} -> {places[stage.name]}", flush=True)
        settings = {k: resolve(v, places) for k, v in stage.settings.items()}
        if stage.kind == "train":
            _train(recipe, stage, settings, out / stage.name, progress, report)
        else:
            _command(recipe, stage, settings, places[stage.name])
        state.finish(stage.name)
    print(f"recipe {recipe.name}: all {len(recipe.stages)} stages done in {out}")


def _train(recipe: Recipe, stage: Stage, settings: dict[str, Any], run: Path, progress: bool, report: bool) -> None:
    from .trainer import report as write_reports
    from .trainer import train

    given = {**recipe.defaults, **settings, "out": str(run), "resume": RunFolder(run).has_run()}
    record = {"recipe": {"name": recipe.name, "sha256": recipe.sha256, "stage": stage.name}}
    train(build_config(given), progress=progress, record=record)
    if report:
        for path in write_reports(RunFolder(run)):
            print(f"report: {path}")


def _command(recipe: Recipe, stage: Stage, settings: dict[str, Any], where: Path) -> None:
    if where.is_dir():  # what an interrupted attempt left: the stage starts over
        shutil.rmtree(where)
    argv = COMMANDS[stage.kind](recipe, stage, settings, where)
    print(f"  {' '.join(argv)}", flush=True)
    if stage.kind == "teacher":
        from .teacher import main as teacher_main

        try:
            code = teacher_main(argv[3:])
        except SystemExit as exc:  # argparse's own errors
            code = int(exc.code or 0)
    else:
        from edgefer.runtime.cli import main

        code = main(argv[1:])
    if code:
        raise EdgeferError(f"recipe {recipe.name}: stage {stage.name!r} failed (exit {code}); rerun to retry it")


def _data_args(recipe: Recipe, stage: Stage, settings: dict[str, Any]) -> list[str]:
    args = []
    for key in SHARED_KEYS:
        value = settings.get(key, _shared(recipe, stage, key))
        if value is not None:
            args += [f"--{key}", str(value)]
    return args


def _teacher_argv(recipe: Recipe, stage: Stage, s: dict[str, Any], where: Path) -> list[str]:
    argv = ["python", "-m", "edgefer.train.teacher", str(where), *s["models"], *_data_args(recipe, stage, s)]
    if not s.get("flip", True):
        argv.append("--no-flip")
    if s.get("votes"):
        argv += ["--votes", str(s["votes"])]
    return argv


def _average_argv(recipe: Recipe, stage: Stage, s: dict[str, Any], where: Path) -> list[str]:
    return ["edgefer", "average", *s["members"], "--out", str(where), "--no-report", *_data_args(recipe, stage, s)]


def _export_argv(recipe: Recipe, stage: Stage, s: dict[str, Any], where: Path) -> list[str]:
    argv = ["edgefer", "export", s["model"], "--format", s.get("formats", "onnx"), "--out", str(where),
            "--name", s.get("stem", recipe.name)]
    calib = s.get("calib_data", _shared(recipe, stage, "data"))
    if calib:
        argv += ["--calib-data", str(calib)]
    for key in ("calib_size", "verify_size", "seed"):
        if key in s:
            argv += ["--" + key.replace("_", "-"), str(s[key])]
    return argv


def _eval_argv(recipe: Recipe, stage: Stage, s: dict[str, Any], where: Path) -> list[str]:
    argv = ["edgefer", "eval", *s["models"], *_data_args(recipe, stage, s),
            "--out", str(where / "eval.md"), "--json", str(where / "eval.json")]
    if "split" in s:
        argv += ["--split", s["split"]]
    if s.get("flip_tta"):
        argv.append("--flip-tta")
    if not s.get("timing", False):  # timings vary run to run; a recipe's result should not
        argv.append("--no-timing")
    where.mkdir(parents=True, exist_ok=True)
    return argv


COMMANDS = {"teacher": _teacher_argv, "average": _average_argv, "export": _export_argv, "eval": _eval_argv}
