"""The body of `edgefer eval`: load every model, the data once per input size, print and write one table.

The images are those the first model's run.json or card records (eval_data.py) unless data
options are given. Faces are loaded at the size each model's metadata declares (a 64x64 model
is scored on 64x64 faces, as `edgefer run` would feed it), resized from the same images in the
same order.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .data import Dataset
from .eval_data import EvalData, choose_eval_data, load_eval_data, recorded_of
from .evaluate import Evaluation, evaluate, input_size, load_predictor, time_predictor

if TYPE_CHECKING:
    from edgefer.runtime.preprocess import PreprocessSpec


@dataclass(frozen=True)
class EvalRequest:
    """What `edgefer eval` was asked for; ``data`` holds only the data options the user gave."""

    models: list[str]
    data: Mapping[str, Any] = field(default_factory=dict)
    exclude_train_duplicates: bool = False
    threads: int = 1
    flip_tta: bool = False
    detector_crops: bool = False  # score each face as BlazeFace and the model's crop frame it (recrop.py)
    verify: bool = True
    timing: bool = True
    out: str | None = None
    json: str | None = None
    write_card: bool = False


def comparison_table(evals: list[Evaluation], timing: dict[Path, tuple[float, float]]) -> str:
    ref = evals[0]
    head = "| model | format | size MB | accuracy | balanced acc. | Δ acc. vs first | agreement vs first |"
    sep = "|---|---|---:|---:|---:|---:|---:|"
    if timing:
        head += " ms/face (batch 1) | faces/s (batch 64) |"
        sep += "---:|---:|"
    rows = [head, sep]
    for e in evals:
        agree = e.agreement(ref)
        row = (
            f"| {e.path.name} | {e.format} | {e.size_mb:.2f} | {e.metrics.accuracy:.4f} | "
            f"{e.metrics.balanced_accuracy:.4f} | {100 * (e.metrics.accuracy - ref.metrics.accuracy):+.2f} pt | "
            f"{'-' if math.isnan(agree) else f'{agree:.4f}'} |"
        )
        if timing:
            ms1, fps64 = timing.get(e.path, (float("nan"), float("nan")))
            row += f" {ms1:.3f} | {fps64:.0f} |"
        rows.append(row)
    return "\n".join(rows)


def speed(predictor: Any, x: Any) -> tuple[float, float]:
    """(ms per face at batch 1, faces per second at batch 64) on the faces ``x``: the table's two columns."""
    t1 = time_predictor(predictor, x, batch=1, rounds=200)
    t64 = time_predictor(predictor, x, batch=64, rounds=20)
    return 1000 * t1, 64 / t64


def _load_models(req: EvalRequest) -> list[tuple[str, Any]]:
    from edgefer.runtime.cli import CommandError
    from edgefer.runtime.errors import EdgeferError

    loaded = []
    for name in req.models:
        try:
            loaded.append((name, load_predictor(name, threads=req.threads, flip_tta=req.flip_tta, verify=req.verify)))
        except EdgeferError as exc:
            raise CommandError(str(exc)) from exc
        except Exception as exc:  # any other loader error is a user-facing message here
            raise CommandError(f"{name}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    return loaded


def eval_data_for(models: list[tuple[str, Any]], given: Mapping[str, Any]) -> EvalData:
    """The images the first model with a record of its training data picks, ``given`` over it.

    All models are scored on the same images (the table compares them); one that trained on
    other data is named in a warning.
    """
    records = [(name, recorded_of(Path(p.path), p.info.card)) for name, p in models]
    first = next((rec for _, rec in records if rec is not None), None)
    spec = choose_eval_data(given, first)
    for name, rec in records:
        own = choose_eval_data(given, rec)
        if rec is not None and own.images() != spec.images():
            print(f"warning: {name} trained on other data ({own.title()}, {rec.origin}); "
                  f"it is scored on {spec.title()} like the others", file=sys.stderr)
    if spec.warning:
        print(f"warning: {spec.warning}", file=sys.stderr)
    return spec


def _load_data(spec: EvalData, pre: PreprocessSpec, req: EvalRequest, first: bool) -> tuple[Dataset, str]:
    from edgefer.runtime.cli import CommandError

    size = (int(pre.size[0]), int(pre.size[1]))
    try:
        data, key = load_eval_data(spec, size, req.exclude_train_duplicates)
    except (FileNotFoundError, RuntimeError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    if first:
        print(spec.line(len(data)))
    if req.detector_crops:
        from .recrop import through_detector

        data, key = through_detector(data, key, pre)
    print(data.summary() + (f" at {size[0]}x{size[1]}" if size != (48, 48) else ""))
    return data, key + ("-flip-tta" if req.flip_tta else "")


def _faces_key(predictor: Any, req: EvalRequest) -> tuple:
    """Models that read the same faces share them: the same size, and with detector crops the same crop."""
    pre = predictor.info.preprocess
    return (input_size(predictor), pre.margin, pre.align) if req.detector_crops else (input_size(predictor),)


def run_eval(req: EvalRequest) -> int:
    from edgefer.runtime.cli import CommandError

    models = _load_models(req)
    spec = eval_data_for(models, req.data)
    datasets: dict[tuple, tuple[Dataset, str]] = {}
    evals: list[Evaluation] = []
    timing: dict[Path, tuple[float, float]] = {}
    sections = []
    for name, predictor in models:
        faces = _faces_key(predictor, req)
        if faces not in datasets:
            datasets[faces] = _load_data(spec, predictor.info.preprocess, req, first=not datasets)
        data, key = datasets[faces]
        try:
            ev = evaluate(predictor, data)
        except ValueError as exc:
            raise CommandError(f"{name}: {exc}") from exc
        evals.append(ev)
        if req.timing:
            timing[ev.path] = speed(predictor, data.x)
        sections.append(eval_section(name, ev))
        print(sections[-1])
        if req.write_card:
            _write_card(ev, key, timing.get(ev.path))
    table = comparison_table(evals, timing)
    print(table)
    title = " and ".join(dict.fromkeys(d.name for d, _ in datasets.values()))
    _write_outputs(req, title, table, sections, evals, timing)
    return 0


def eval_section(name: str, ev: Evaluation) -> str:
    """One model's part of an eval report: headline figures, per-class table, confusion matrix."""
    m = ev.metrics
    return (
        f"## {name}\n\naccuracy {m.accuracy:.4f}, balanced accuracy {m.balanced_accuracy:.4f} "
        f"on {m.n} images ({ev.data.name})\n\n{m.table()}\n\nconfusion matrix (rows: true, columns: predicted)\n\n"
        f"```\n{m.confusion_text()}\n```\n"
    )


def _write_outputs(req: EvalRequest, title: str, table: str, sections: list[str], evals: list[Evaluation],
                   timing: dict[Path, tuple[float, float]]) -> None:
    from edgefer.runtime.atomic import write_text

    if req.out:
        Path(req.out).parent.mkdir(parents=True, exist_ok=True)
        write_text(req.out, f"# edgefer eval on {title}\n\ncommand: `{_command()}`\n\n{table}\n\n"
                   + "\n".join(sections))
        print(f"wrote {req.out}")
    if req.json:
        write_text(req.json, json.dumps(
            {str(e.path): e.metrics.to_dict() | {"timing": timing.get(e.path)} for e in evals}, indent=2
        ))


def _command() -> str:
    return "edgefer " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def card_metrics(ev: Evaluation, command: str, timing: tuple[float, float] | None) -> dict[str, Any]:
    """The entry a model card records for one evaluation (what `--write-card` and `edgefer ship` write)."""
    d = ev.metrics.to_dict()
    metrics: dict[str, Any] = {
        "accuracy": d["accuracy"],
        "balanced_accuracy": d["balanced_accuracy"],
        "per_class_recall": {k: v["recall"] for k, v in d["per_class"].items()},
        "n": d["n"],
        "data": ev.data.name,
        "measured_by": command,
        "date": dt.date.today().isoformat(),
    }
    if timing:
        metrics["ms_per_face_batch1_1thread_here"] = round(timing[0], 3)
    return metrics


def _write_card(ev: Evaluation, key: str, timing: tuple[float, float] | None) -> None:
    from .cards import record_metrics

    metrics = card_metrics(ev, _command(), timing)
    if ev.format == "keras":
        from edgefer.runtime.atomic import write_text

        run = ev.path.parent
        write_text(run / f"metrics-{key}.json", json.dumps(metrics, indent=2) + "\n")
        return
    record_metrics(ev.path, key, metrics)
    print(f"recorded {key} metrics in {ev.path}'s card")
