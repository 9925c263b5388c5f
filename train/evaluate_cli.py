"""The body of `edgefer eval`: load every model, the data once per input size, print and write one table.

Faces are loaded at the size each model's metadata declares (a 64x64 model is scored on
64x64 faces, as `edgefer run` would feed it), resized from the same images in the same order.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
from pathlib import Path

import numpy as np

from edgefer.runtime.metric_keys import metric_key

from .data import Dataset, ckplus_split, load_ckplus, load_fer2013, load_ferplus, pixel_duplicates
from .evaluate import Evaluation, evaluate, input_size, load_predictor, time_predictor


def load_eval_data(args: argparse.Namespace, size: tuple[int, int] = (48, 48)) -> tuple[Dataset, str]:
    """The dataset named by the data arguments, and a short key naming it (for cards)."""
    if args.dataset == "ckplus":
        ds = load_ckplus(args.data, size)
        if args.split in ("random", "subject"):
            _, held_out = ckplus_split(ds, args.split, args.val_fraction, args.seed)
            ds = ds.subset(held_out, f"ckplus/{args.split}-heldout")
        return ds, f"ckplus-{args.split}-seed{args.seed}"
    if args.dataset == "ferplus":
        ds = load_ferplus(args.data, args.split, size)
    else:
        ds = load_fer2013(args.data, args.split, size)
    key = metric_key(args.dataset, args.split)
    if getattr(args, "exclude_train_duplicates", False):
        reference = load_fer2013(args.data, "train", size)
        dup = pixel_duplicates(ds, reference)
        keep = np.setdiff1d(np.arange(len(ds)), dup)
        print(f"excluding {len(dup)} images pixel-identical to a training image")
        ds = ds.subset(keep, f"{ds.name} without {len(dup)} training duplicates")
        key += "-dedup"
    if getattr(args, "flip_tta", False):
        key += "-flip-tta"
    return ds, key


def comparison_table(evals: list[Evaluation], timing: dict[Path, tuple[float, float]]) -> str:
    ref = evals[0]
    head = "| model | format | size MB | accuracy | balanced acc. | Δ acc. vs first | agreement vs first |"
    sep = "|---|---|---:|---:|---:|---:|---:|"
    if timing:
        head += " ms/face (batch 1) | faces/s (batch 64) |"
        sep += "---:|---:|"
    rows = [head, sep]
    for e in evals:
        agree = float((e.pred == ref.pred).mean())
        row = (
            f"| {e.path.name} | {e.format} | {e.size_mb:.2f} | {e.metrics.accuracy:.4f} | "
            f"{e.metrics.balanced_accuracy:.4f} | {100 * (e.metrics.accuracy - ref.metrics.accuracy):+.2f} pt | "
            f"{agree:.4f} |"
        )
        if timing:
            ms1, fps64 = timing.get(e.path, (float("nan"), float("nan")))
            row += f" {ms1:.3f} | {fps64:.0f} |"
        rows.append(row)
    return "\n".join(rows)


def _load_models(args: argparse.Namespace) -> list[tuple[str, object]]:
    from edgefer.runtime.cli import CommandError
    from edgefer.runtime.errors import EdgeferError

    verify = not getattr(args, "no_verify", False)
    loaded = []
    for name in args.models:
        try:
            loaded.append((name, load_predictor(name, threads=args.threads, flip_tta=args.flip_tta, verify=verify)))
        except EdgeferError as exc:
            raise CommandError(str(exc)) from exc
        except Exception as exc:  # any other loader error is a user-facing message here
            raise CommandError(f"{name}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    return loaded


def run_eval(args: argparse.Namespace) -> int:
    from edgefer.runtime.atomic import write_text
    from edgefer.runtime.cli import CommandError

    models = _load_models(args)
    datasets: dict[tuple[int, int], tuple[Dataset, str]] = {}
    evals: list[Evaluation] = []
    timing: dict[Path, tuple[float, float]] = {}
    sections = []
    for name, predictor in models:
        size = input_size(predictor)
        if size not in datasets:
            try:
                datasets[size] = load_eval_data(args, size)
            except (FileNotFoundError, RuntimeError, ValueError) as exc:
                raise CommandError(str(exc)) from exc
            print(datasets[size][0].summary() + (f" at {size[0]}x{size[1]}" if size != (48, 48) else ""))
        data, key = datasets[size]
        try:
            ev = evaluate(predictor, data)
        except ValueError as exc:
            raise CommandError(f"{name}: {exc}") from exc
        evals.append(ev)
        m = ev.metrics
        if not args.no_timing:
            t1 = time_predictor(predictor, data.x, batch=1, rounds=200)
            t64 = time_predictor(predictor, data.x, batch=64, rounds=20)
            timing[ev.path] = (1000 * t1, 64 / t64)
        text = (
            f"## {name}\n\naccuracy {m.accuracy:.4f}, balanced accuracy {m.balanced_accuracy:.4f} "
            f"on {m.n} images ({data.name})\n\n{m.table()}\n\nconfusion matrix (rows: true, columns: predicted)\n\n"
            f"```\n{m.confusion_text()}\n```\n"
        )
        sections.append(text)
        print(text)
        if args.write_card:
            _write_card(ev, key, data, timing.get(ev.path))
    table = comparison_table(evals, timing)
    print(table)
    title = " and ".join(dict.fromkeys(d.name for d, _ in datasets.values()))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_text(args.out, f"# edgefer eval on {title}\n\ncommand: `{_command()}`\n\n{table}\n\n"
                   + "\n".join(sections))
        print(f"wrote {args.out}")
    if args.json:
        write_text(args.json, json.dumps(
            {str(e.path): e.metrics.to_dict() | {"timing": timing.get(e.path)} for e in evals}, indent=2
        ))
    return 0


def _command() -> str:
    return "edgefer " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _write_card(ev: Evaluation, key: str, data: Dataset, timing: tuple[float, float] | None) -> None:
    from .cards import record_metrics

    d = ev.metrics.to_dict()
    metrics = {
        "accuracy": d["accuracy"],
        "balanced_accuracy": d["balanced_accuracy"],
        "per_class_recall": {k: v["recall"] for k, v in d["per_class"].items()},
        "n": d["n"],
        "data": data.name,
        "measured_by": _command(),
        "date": dt.date.today().isoformat(),
    }
    if timing:
        metrics["ms_per_face_batch1_1thread_here"] = round(timing[0], 3)
    if ev.format == "keras":
        from edgefer.runtime.atomic import write_text

        run = ev.path.parent
        write_text(run / f"metrics-{key}.json", json.dumps(metrics, indent=2) + "\n")
        return
    record_metrics(ev.path, key, metrics)
    print(f"recorded {key} metrics in {ev.path}'s card")



