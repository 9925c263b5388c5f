"""Training recipes: a TOML file of named stages, run in order by ``edgefer train --recipe``.

A recipe is::

    description = "what it trains"
    [defaults]                  # TrainConfig fields for every train stage; data/dataset for all stages
    data = "../shared/data/fer2013"
    [[stages]]
    name = "distill"
    kind = "train"              # train | teacher | average | export | eval
    arch = "edge_fast"          # a train stage's keys ARE TrainConfig's fields (config.py)
    teacher = "@teacher"        # "@NAME" is an earlier stage's output, "@NAME/file" a file inside it

A stage's output: train, its run folder (``averaged/`` inside it with ``average_last``); teacher,
``NAME.npz``; average and export, their folder; eval, its folder with eval.md and eval.json.
Every name and value is checked when the recipe is read, so a typo fails before any training.
Only the standard library is imported (``edgefer --help`` stays instant).
"""

from __future__ import annotations

import hashlib
import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from edgefer.runtime.errors import UsageError

from .config import TrainConfig, _scalar, option_fields

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

KINDS = ("train", "teacher", "average", "export", "eval")
RUNNER_KEYS = frozenset({"out", "resume"})  # the recipe runner sets these for each train stage
TOP_KEYS = frozenset({"description", "defaults", "stages"})
SHARED_KEYS = ("data", "dataset")  # defaults that every kind of stage takes
# The keys of the other stage kinds, with their types; the first key of each is required.
KIND_KEYS: dict[str, dict[str, type]] = {
    "teacher": {"models": list, "flip": bool, "votes": float, "data": str, "dataset": str},
    "average": {"members": list, "data": str, "dataset": str},
    "export": {"model": str, "formats": str, "stem": str, "calib_data": str, "calib_size": int,
               "verify_size": int, "seed": int},
    "eval": {"models": list, "data": str, "dataset": str, "split": str, "flip_tta": bool, "timing": bool},
}


@dataclass(frozen=True)
class Stage:
    name: str
    kind: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    name: str
    sha256: str  # of the file's bytes: a changed recipe is another recipe
    description: str
    defaults: dict[str, Any]
    stages: tuple[Stage, ...]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


def train_keys() -> dict[str, type]:
    """The keys of a train stage: TrainConfig's options, less those the runner sets."""
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: _scalar(hints[f.name]) for f in option_fields() if f.name not in RUNNER_KEYS}


def shipped_recipes() -> list[str]:
    folder = resources.files("edgefer.train") / "recipes"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_recipe(name_or_file: str) -> Recipe:
    """A shipped recipe by name (train/recipes/NAME.toml) or a TOML file."""
    path = Path(name_or_file)
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise UsageError(f"--recipe {name_or_file}: no such file")
        return parse_recipe(path.read_bytes(), path.stem)
    shipped = resources.files("edgefer.train") / "recipes" / f"{name_or_file}.toml"
    if not shipped.is_file():
        raise UsageError(f"--recipe {name_or_file}: no such file or shipped recipe "
                         f"(shipped: {', '.join(shipped_recipes())})")
    return parse_recipe(shipped.read_bytes(), name_or_file)


def parse_recipe(raw: bytes, name: str) -> Recipe:
    """The recipe in ``raw`` TOML, checked whole; UsageError (one line) naming the first problem."""
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"recipe {name}: not valid TOML ({exc})") from exc
    unknown = set(doc) - TOP_KEYS
    if unknown:
        raise UsageError(f"recipe {name}: unknown top-level key {sorted(unknown)[0]!r} "
                         f"(expected {', '.join(sorted(TOP_KEYS))})")
    defaults = _table(doc.get("defaults", {}), f"recipe {name}: [defaults]")
    _check_values(defaults, train_keys(), f"recipe {name}: [defaults]", seen=set())
    stages: list[Stage] = []
    for i, entry in enumerate(doc.get("stages", [])):
        stages.append(_stage(_table(entry, f"recipe {name}: stage {i + 1}"), name, i, {s.name for s in stages}))
    if not stages:
        raise UsageError(f"recipe {name}: no [[stages]]")
    return Recipe(name, hashlib.sha256(raw).hexdigest(), str(doc.get("description", "")), defaults, tuple(stages))


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UsageError(f"{where}: expected a table, got {type(value).__name__}")
    return dict(value)


def _stage(entry: dict[str, Any], recipe: str, index: int, seen: set[str]) -> Stage:
    name, kind = entry.pop("name", None), entry.pop("kind", None)
    where = f"recipe {recipe}: stage {index + 1}"
    if not isinstance(name, str) or not name.isidentifier():
        raise UsageError(f"{where}: 'name' must be a plain identifier such as distill, not {name!r}")
    where = f"recipe {recipe}: stage {name!r}"
    if name in seen:
        raise UsageError(f"{where}: a stage of that name comes earlier")
    if kind not in KINDS:
        raise UsageError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    keys = train_keys() if kind == "train" else KIND_KEYS[kind]
    _check_values(entry, keys, where, seen)
    if kind != "train" and next(iter(keys)) not in entry:
        raise UsageError(f"{where}: a {kind} stage needs {next(iter(keys))!r}")
    return Stage(name, kind, entry)


def _check_values(settings: Mapping[str, Any], keys: Mapping[str, type], where: str, seen: set[str]) -> None:
    for key, value in settings.items():
        if key not in keys:
            raise UsageError(f"{where}: unknown key {key!r} (expected one of {', '.join(keys)})")
        want = keys[key]
        ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise UsageError(f"{where}: {key} = {value!r} should be {want.__name__}")
        for item in value if isinstance(value, list) else [value] if isinstance(value, str) else []:
            if not isinstance(item, str):
                raise UsageError(f"{where}: {key} lists {item!r}; expected paths or @stage references")
            ref = reference(item)
            if ref is not None and ref not in seen:
                raise UsageError(f"{where}: {key} = {item!r} names no earlier stage")


def reference(value: str) -> str | None:
    """The stage an ``@NAME`` or ``@NAME/path`` value refers to; None for a plain value."""
    return value[1:].split("/", 1)[0] if value.startswith("@") else None


def resolve(value: Any, outputs: Mapping[str, Path]) -> Any:
    """``value`` with each @reference replaced by the earlier stage's output path (as text)."""
    if isinstance(value, list):
        return [resolve(v, outputs) for v in value]
    if not isinstance(value, str) or reference(value) is None:
        return value
    head, _, rest = value[1:].partition("/")
    return str(outputs[head] / rest) if rest else str(outputs[head])
