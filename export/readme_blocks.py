"""The Markdown that `edgefer ship` puts into models/README.md, and the one way it is put there.

A README names the places generated text goes with marker pairs, ``<!-- begin:KEY -->`` and
``<!-- end:KEY -->``; :func:`splice` replaces what lies between them, so no figure in the README
is typed by hand. The file is rewritten atomically, and only once every block asked for was
found: a missing block is a one-line error and the file is left as it was.

Also here: the summary of a training run (command, lineage, data, epochs, time) read from its
run.json and history.csv, and the table of the float model's evaluation variants. Only the
standard library is imported, so scripts can use this module without loading numpy or Keras:
``python -m edgefer.export.readme_blocks splice TARGET KEY SOURCE`` and ``... summary RUN``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgefer.runtime.errors import DataError, EdgeferError, OutputError


class MissingBlockError(OutputError):
    """A README lacks a ``<!-- begin:KEY -->`` ... ``<!-- end:KEY -->`` pair that was to be filled."""


def markers(key: str) -> tuple[str, str]:
    return f"<!-- begin:{key} -->", f"<!-- end:{key} -->"


def _pattern(key: str) -> re.Pattern[str]:
    begin, end = markers(key)
    return re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)


def missing_blocks(doc: str, keys: list[str] | tuple[str, ...]) -> list[str]:
    """The keys among ``keys`` that have no complete marker pair in ``doc``."""
    return [key for key in keys if not _pattern(key).search(doc)]


def check_blocks(target: Path, keys: list[str] | tuple[str, ...]) -> None:
    """Raise MissingBlockError unless ``target`` exists and has a marker pair for every key."""
    _refuse_missing(_read(target, keys), keys, f"{target}: ")


def _read(target: Path, keys: list[str] | tuple[str, ...]) -> str:
    if not target.is_file():
        raise MissingBlockError(f"{target}: no such file (it holds the blocks {', '.join(keys)})")
    return target.read_text(encoding="utf-8")


def _refuse_missing(doc: str, keys: list[str] | tuple[str, ...], name: str) -> None:
    absent = missing_blocks(doc, keys)
    if absent:
        begin, end = markers(absent[0])
        more = f" (missing: {', '.join(absent)})" if len(absent) > 1 else ""
        raise MissingBlockError(f"{name}no {begin} ... {end} block{more}; add the markers where the text goes")


def splice_text(doc: str, blocks: Mapping[str, str], name: str = "") -> str:
    """``doc`` with the text between each key's markers replaced by ``blocks[key]`` (stripped).

    Raises MissingBlockError, naming the first key without a marker pair, before replacing any;
    ``name`` (e.g. the file's path) leads the message.
    """
    _refuse_missing(doc, list(blocks), name)
    for key, text in blocks.items():
        begin, end = markers(key)
        found = _pattern(key).search(doc)
        if found is None:  # only if an earlier block's new text swallowed this block's markers
            raise MissingBlockError(f"{name}no {begin} ... {end} block left after filling the others")
        # Sliced in, not re.sub'd: backslashes in a table must stay as written.
        doc = f"{doc[:found.start()]}{begin}\n{text.strip()}\n{end}{doc[found.end():]}"
    return doc


def splice(target: str | Path, blocks: Mapping[str, str]) -> None:
    """Fill the marked blocks of ``target`` (see :func:`splice_text`) in one atomic rewrite.

    The file is read once; if any block is missing, it is left untouched and the error names it.
    """
    from edgefer.runtime.atomic import write_text

    path = Path(target)
    write_text(path, splice_text(_read(path, list(blocks)), blocks, name=f"{path}: "))


# ---------------------------------------------------------------- the tables
VARIANT_TITLES = {  # card metric key suffix -> the row's name
    "": "PublicTest, single pass",
    "-dedup": "PublicTest without the images pixel-identical to a training image",
    "-flip-tta": "PublicTest with horizontal-flip averaging (`--flip-tta`)",
    "-blazeface": "PublicTest as the runtime frames it: BlazeFace's box plus margin (`--detector-crops`)",
}


CROSS_TITLES = {  # card metric key of a dataset the model never trained or was selected on -> the row's name
    "ckplus-all": "CK+48, every image of the classes it has (cross-dataset)",
    "ckplus-all-blazeface": "CK+48, every image, as the runtime frames it (cross-dataset, `--detector-crops`)",
}


def eval_block(command: str, table: str) -> str:
    """The comparison table of the shipped formats, headed by the command that measured it."""
    return f"Measured by `{command}`:\n\n{table.strip()}"


def variants_block(metrics: Mapping[str, Mapping[str, Any]], key: str) -> str:
    """One row per evaluation of the float model found in its card's ``metrics`` under ``key`` + suffix."""
    titles = {key + suffix: title for suffix, title in VARIANT_TITLES.items()}
    titles.update({cross: title for cross, title in CROSS_TITLES.items() if cross != key})
    rows = ["| float model | images | accuracy | balanced accuracy |", "|---|---:|---:|---:|"]
    for k, title in titles.items():
        m = metrics.get(k)
        if m is not None:
            rows.append(f"| {title} | {m['n']} | {m['accuracy']:.4f} | {m['balanced_accuracy']:.4f} |")
    return "\n".join(rows)


# ---------------------------------------------------------------- the training run
# Settings a run's command line leaves out: where and how fast it ran, not what it learned
# (``augment`` is a switch, written last); and those shown even at their default.
_NOT_RECIPE = {"out", "resume", "limit", "workers", "deterministic", "val_fraction", "augment"}
_ALWAYS = {"arch", "data", "epochs", "batch_size", "learning_rate", "teacher_weight"}


def train_command(cfg: Mapping[str, Any], out: str | None) -> str:
    """The `edgefer train` command line a recorded config stands for (settings at their default left out).

    Flags and defaults come from TrainConfig, the one definition of the settings."""
    from edgefer.train.config import flag_of, option_fields

    parts = ["edgefer train"]
    for f in option_fields():
        key = f.name
        if key in _NOT_RECIPE or key not in cfg and key not in _ALWAYS:
            continue
        value = cfg.get(key)
        if key not in _ALWAYS and value == f.default:
            continue
        if key == "teacher_weight" and not cfg.get("teacher"):
            continue
        if isinstance(value, dict):  # a recorded parent model: its file name was the flag's value
            value = value.get("file")
        if value is not None:
            parts.append(f"{flag_of(f)} {value}")
    if cfg.get("augment"):
        parts.append("--augment")
    if out:
        parts.append(f"--out {out}")
    return " ".join(parts)


def _epochs(training: Mapping[str, Any]) -> str:
    if "epochs" not in training:
        return ""
    run = training.get("epochs_run")
    if run is not None and run != training["epochs"]:
        return f" for {run} of its {training['epochs']} epochs (stopped early)"
    return f" for {training['epochs']} epochs"


def parent_lines(parent: Mapping[str, Any] | None) -> list[str]:
    """One line per earlier cycle: the file a run started from and how that file was trained."""
    lines = []
    while parent:
        accs = ", ".join(f"{k} {100 * v:.2f}%" for k, v in parent.get("metrics", {}).items()
                         if k.endswith("publictest") or k.endswith("majority"))
        training = parent.get("training") or {}
        lines.append(
            f"- started from `{parent['file']}` (sha256 {parent['sha256'][:12]}…{'; ' + accs if accs else ''}), "
            f"trained by `{train_command(training, None)}`" + _epochs(training)
        )
        parent = training.get("init_from") if isinstance(training.get("init_from"), dict) else None
    return lines


def averaged_line(averaged: Mapping[str, Any] | None, best_epoch_acc: float) -> list[str]:
    """For a run folder written by weight averaging: which checkpoints, and what it gained."""
    if not averaged:
        return []
    names = [Path(m).name for m in averaged["members"]]
    if len(set(names)) < len(names):  # whole runs (each one's best.keras): name their folders too
        names = [str(Path(Path(m).parent.name) / Path(m).name) for m in averaged["members"]]
    acc = averaged.get("val_accuracy")
    return [
        f"- shipped weights: the average of {len(names)} checkpoints ({names[0]} … {names[-1]}), BatchNorm "
        f"re-estimated on {averaged['batchnorm_faces']} training faces"
        + (f": validation accuracy {acc:.4f} vs {best_epoch_acc:.4f} for the best single epoch" if acc else "")
    ]


def extension_lines(extended: list[Mapping[str, Any]] | None) -> list[str]:
    return [f"- then resumed after epoch {e['after_epoch']} with `--resume --epochs {e['epochs']}"
            + (f" --average-last {e['average_last']}" if e.get("average_last") else "") + "`"
            for e in extended or []]


def run_summary(run: str | Path) -> str:
    """Markdown lines on one training run (command, data, recipe, time) from its run.json and history.csv."""
    from edgefer.train.runfolder import RunFolder

    folder = RunFolder(run)
    meta = folder.read_run()
    cfg = meta["config"]
    hist = folder.read_history()
    if not hist:
        raise DataError(f"{folder.history}: no epochs recorded")
    accs = [float(r["val_accuracy"]) for r in hist]
    best = max(range(len(accs)), key=accs.__getitem__)
    secs = sum(float(r.get("epoch_seconds") or 0) for r in hist)
    shipped = "the average below" if meta.get("averaged") else "`best.keras`"
    # An average's run.json is its first member's: that run's own folder is what the command wrote.
    trained_into = cfg.get("out") if meta.get("averaged") and cfg.get("out") else str(folder.path)
    return "\n".join([
        f"- command: `{train_command(cfg, trained_into)}`",
        *extension_lines(meta.get("extended")),
        *parent_lines(meta.get("init_from")),
        f"- architecture: `{cfg['arch']}`, {meta['params']:,} parameters",
        f"- training data: {meta['train_data']}",
        f"- validation data: {meta['val_data']}",
        f"- epochs run: {len(hist)}; validation accuracy after the last epoch {accs[-1]:.4f}, best "
        f"{accs[best]:.4f} after epoch {best + 1} (the shipped weights: {shipped})",
        *averaged_line(meta.get("averaged"), accs[best]),
        f"- training time: {secs / 60:.0f} min (sum of epoch times), "
        + (f"on {meta['machine']}" if meta.get("machine") else "machine not recorded in run.json"),
    ])


USAGE = """usage: python -m edgefer.export.readme_blocks splice TARGET KEY SOURCE
       python -m edgefer.export.readme_blocks summary RUN_FOLDER"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        if len(args) == 4 and args[0] == "splice":
            splice(args[1], {args[2]: Path(args[3]).read_text(encoding="utf-8")})
            return 0
        if len(args) == 2 and args[0] == "summary":
            print(run_summary(args[1]))
            return 0
    except (EdgeferError, OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
