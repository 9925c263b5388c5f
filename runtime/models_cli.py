"""``edgefer models``: the bundled emotion classifiers, what they read and how well.

Everything printed comes from each model's own card, so a replaced model describes itself.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .metric_keys import metric_key

# Card metric keys worth a column, in display order, with their headings.
HEADLINE_METRICS = {
    metric_key("fer2013"): "FER2013 PublicTest",
    metric_key("ferplus"): "FER+ PublicTest (majority)",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models", help="list the bundled models: labels, format, size, accuracy from each card",
        description="List the emotion classifiers bundled with edgefer. Pass a name to `edgefer run "
        "--model NAME` or `edgefer eval NAME`. Every model records a sha256 of itself that loading "
        "checks; --stamp records a new one for a model you changed on purpose.",
    )
    p.add_argument("--stamp", nargs="+", metavar="MODEL",
                   help="record the integrity hash of these .onnx/.tflite files as they are now "
                   "(only for files you edited on purpose: a damaged file would pass from then on)")
    p.set_defaults(func=run)


def describe(path: Path) -> dict:
    from .metadata import ModelError, read_card

    try:
        info = read_card(path)
    except ModelError as exc:
        return {"name": path.name, "error": str(exc)}
    metrics = info.card.get("metrics", {})
    return {
        "name": path.stem if path.suffix == ".onnx" else path.name,
        "format": info.card.get("export", {}).get("format", path.suffix.lstrip(".")),
        "size_mb": path.stat().st_size / 1e6,
        "labels": info.labels,
        **{key: metrics[key]["accuracy"] for key in HEADLINE_METRICS if key in metrics},
    }


def table(rows: list[dict], default: str) -> str:
    head = ["model", "format", "MB", "classes", *HEADLINE_METRICS.values()]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | unreadable: {r['error']} |")
            continue
        name = r["name"] + (" (default)" if r["name"] == default else "")
        accs = [f"{100 * r[k]:.2f}%" if k in r else "-" for k in HEADLINE_METRICS]
        lines.append(f"| {name} | {r['format']} | {r['size_mb']:.2f} | {len(r['labels'])}: "
                     f"{', '.join(r['labels'])} | " + " | ".join(accs) + " |")
    return "\n".join(lines)


def stamp_models(paths: list[str]) -> int:
    from .errors import ModelError
    from .metadata import stamp

    for name in paths:
        path = Path(name)
        if not path.is_file() or path.suffix.lower() not in (".onnx", ".tflite"):
            raise ModelError(f"--stamp {name}: not an .onnx or .tflite file")
        info = stamp(path)
        print(f"stamped {path}: sha256 {info.sha256}")
    return 0


def run(args: argparse.Namespace) -> int:
    from edgefer.models import DEFAULT_MODEL, MODELS_DIR, available

    if getattr(args, "stamp", None):
        return stamp_models(args.stamp)

    print(f"bundled models in {MODELS_DIR}:\n")
    print(table([describe(p) for p in available()], Path(DEFAULT_MODEL).stem))
    print(f"\nface detectors (--detector), in {MODELS_DIR / 'detectors'}:\n")
    print(detector_table())
    return 0


def detector_table() -> str:
    import json

    from edgefer.models import DETECTORS_DIR

    from .detectors import BLAZEFACE_MODELS, MEDIAPIPE_MODEL
    from .settings import DEFAULT_DETECTOR

    lines = ["| detector | file | MB | input | what it is for |", "|---|---|---|---|---|"]
    for name, file in BLAZEFACE_MODELS.items():
        path = DETECTORS_DIR / file
        try:
            spec = json.loads(path.with_suffix(".json").read_text())["detector"]
        except (OSError, ValueError, KeyError) as exc:
            lines.append(f"| {name} | {file} | unreadable card: {exc} |")
            continue
        size = spec["input_size"]
        default = " (default)" if name == DEFAULT_DETECTOR else ""
        mb = path.stat().st_size / 1e6
        multiple = spec.get("size_multiple", 0)
        shape = f"{size}x{size}" + (f" (or smaller, multiples of {multiple})" if multiple else "")
        lines.append(f"| {name}{default} | {file} | {mb:.2f} | {shape} | {spec['range']} |")
    lines.append("| haar | OpenCV's haarcascade_frontalface_default.xml | - | frame shrunk to 320 px | "
                 "no extra; no keypoints |")
    mp = DETECTORS_DIR / MEDIAPIPE_MODEL
    lines.append(f"| mediapipe | {mp.name} | {mp.stat().st_size / 1e6:.2f} | 128x128 | "
                 "the mediapipe package (extra); not on a Pi 4 |")
    return "\n".join(lines)
