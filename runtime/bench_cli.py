"""``edgefer bench``: how fast is each pipeline on this machine (a laptop, a Raspberry Pi)?"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import bench

EPILOG = """\
examples:
  edgefer bench --quick                         every detector x bundled model, 10 frames each (~30 s)
  edgefer bench --json pi4.json                 the full run, saved with the machine description
  edgefer bench --size 1280x720 --detectors blazeface,blazeface-full --models fer2013-int8
  edgefer bench --compare laptop.json pi4.json  two machines side by side

Rows: end to end = decoding the frame + detect + crop + classify + track, p50 and p90 over the
timed frames; 'vs 45 ms' compares with the report's Haar + Keras webcam loop. The accuracy
column comes from each model's card (measured by 'edgefer eval' on FER2013 PublicTest).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="measure per-frame latency of every detector and bundled model on this machine",
        description="Measure per-stage and end-to-end latency of every available detector with every "
                    "bundled classifier, at 1 thread and at all cores, on the bundled clip (or --source).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--source", help="a video or image folder to time (default: the bundled sample clip)")
    p.add_argument("--size", action="append", metavar="WxH",
                   help="frame size the frames are resized to, repeatable (default 640x480)")
    p.add_argument("--detectors", help="comma-separated subset of the detectors (default: every available one)")
    p.add_argument("--models", help="comma-separated model names or files (default: every bundled classifier)")
    p.add_argument("--threads", help="comma-separated thread counts (default: 1 and all usable cores)")
    p.add_argument("--quick", action="store_true", help="10 timed frames per pipeline instead of 60")
    p.add_argument("--rounds", type=int, help="timed frames per pipeline (overrides --quick)")
    p.add_argument("--warmup", type=int, help="untimed frames first (default 3 quick, 5 full)")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the results and machine description here")
    p.add_argument("--compare", nargs=2, type=Path, metavar=("A.json", "B.json"),
                   help="print two saved runs side by side and exit (measures nothing)")
    p.set_defaults(func=run_bench)


def _csv(text: str | None) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()] if text else []


def _threads(text: str | None) -> list[int]:
    from .errors import UsageError
    from .machine import usable_cores

    if not text:
        return sorted({1, usable_cores()})
    try:
        values = sorted({int(t) for t in _csv(text)})
    except ValueError:
        raise UsageError(f"--threads {text}: comma-separated whole numbers, e.g. 1,4") from None
    if not values or values[0] < 1:
        raise UsageError(f"--threads {text}: each count must be at least 1")
    return values


def _notice(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _progress(i: int, total: int, case: object) -> None:
    line = f"[{i + 1}/{total}] {getattr(case, 'key', case)}"
    if sys.stderr.isatty():
        print(f"\r\033[K{line}", end="", file=sys.stderr, flush=True)
    else:
        _notice(line)


def run_bench(args: argparse.Namespace) -> int:
    from . import bench, machine
    from .atomic import write_text

    if args.compare:
        a, b = (bench.load_json(p) for p in args.compare)
        names = (args.compare[0].stem, args.compare[1].stem)
        print(bench.compare(a, b, names=names if names[0] != names[1] else ("A", "B")))
        return 0
    rounds = _rounds(args)
    sizes = [bench.parse_size(s) for s in (args.size or ["640x480"])]
    threads = _threads(args.threads)
    detectors, models = _pipelines(args)

    from edgefer.models import MODELS_DIR

    source = args.source or MODELS_DIR / "sample_face.mp4"
    frames = {s: bench.read_frames(source, s, limit=max(1, min(rounds.rounds, 30))) for s in sizes}
    cases = bench.plan(detectors, models, threads, sizes)
    info = machine.describe()
    _notice(f"timing {len(cases)} pipelines x {rounds.rounds} frames (+{rounds.warmup} warm-up) on {source}")
    rows = list(bench.run(cases, frames, rounds, progress=_progress))
    if sys.stderr.isatty():
        print(file=sys.stderr)
    _print_results(rows, info, rounds, Path(source).name)
    if args.json:
        settings = {"source": str(source), "rounds": rounds.rounds, "warmup": rounds.warmup,
                    "sizes": [list(s) for s in sizes], "threads": threads}
        import json

        write_text(args.json, json.dumps(bench.to_json(rows, info, settings), indent=1) + "\n")
        _notice(f"wrote {args.json}")
    return 0


def _rounds(args: argparse.Namespace) -> bench.Rounds:
    """--quick or the full count, with --rounds and --warmup overriding either."""
    from . import bench
    from .errors import UsageError

    preset = bench.QUICK if args.quick else bench.FULL
    rounds = bench.Rounds(preset.rounds if args.rounds is None else args.rounds,
                          preset.warmup if args.warmup is None else args.warmup)
    if rounds.rounds < 1 or rounds.warmup < 0:
        raise UsageError("--rounds must be at least 1 and --warmup at least 0")
    return rounds


def _pipelines(args: argparse.Namespace) -> tuple[list[str], list[Path]]:
    """The detectors and models asked for that load here; those that do not are named and skipped."""
    from . import bench
    from .errors import UsageError
    from .settings import DETECTORS

    unknown = [d for d in _csv(args.detectors) if d not in DETECTORS]
    if unknown:
        raise UsageError(f"--detectors: unknown {', '.join(unknown)}; choose from {', '.join(DETECTORS)}")
    detectors, skipped = bench.available_detectors(_csv(args.detectors) or DETECTORS)
    models, skipped_models = bench.available_models(_csv(args.models) or None)
    for name, why in {**skipped, **skipped_models}.items():
        _notice(f"skipping {name}: {why}")
    if not detectors or not models:
        raise UsageError("nothing to measure: no detector or no model could be loaded (see above)")
    return detectors, models


def _print_results(rows: list[bench.Row], info: dict, rounds: bench.Rounds, source_name: str) -> None:
    from . import bench

    print(f"machine: {bench.describe_machine(info)}")
    print(f"{rounds.rounds} timed frames per pipeline after {rounds.warmup} warm-up, from {source_name}\n")
    print(bench.table(rows))
    tip = bench.recommend(rows)
    if tip:
        print(f"\n{tip}")
        print("(speed only: the detectors differ in what they find; BENCHMARKS.md has their recall on "
              "crowds, photos and talking heads)")
