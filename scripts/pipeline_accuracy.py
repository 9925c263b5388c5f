"""Accuracy through the runtime's own detector and crop, with and without eye-levelling.

    .venv/bin/python scripts/pipeline_accuracy.py                      # CK+48 (all) and FER2013 PublicTest
    .venv/bin/python scripts/pipeline_accuracy.py --model models/ferplus.onnx --datasets ckplus
    .venv/bin/python scripts/pipeline_accuracy.py --margins 0,0.05,0.15,0.2 --no-clips  # other crop margins

Each dataset face (a 48x48 crop) is enlarged 3x and placed on a grey 256x256 canvas
(``edgefer.train.recrop.largest_detections``, the same framing `edgefer train --crops` trains on), so
the detector sees a face with some context, as it would in a frame. The detector's largest
face is then cropped by the model's preprocessing contract, once as it is and once turned so
its eyes are level (``PreprocessSpec.align``), and classified. ``direct`` classifies the
dataset crop itself (what ``edgefer eval`` scores). Labels the model lacks (CK+'s contempt for
a FER2013 model) are left out. CK+ is a cross-dataset score here, never a selection set.

The clips have no labels: for each talking-head clip the script counts, without smoothing,
how often the label changes from one frame to the next with and without levelling, and on
how many frames the two agree.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from edgefer.runtime.classifiers import load_classifier
from edgefer.runtime.detectors import make_detector
from edgefer.train.data import load_ckplus, load_fer2013
from edgefer.train.evaluate import map_predictions
from edgefer.train.recrop import crop_detection, largest_detections

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WATCH = ("angry", "disgust", "fear")


def score(pred: np.ndarray, y: np.ndarray, labels: tuple[str, ...]) -> str:
    acc = float((pred == y).mean()) if len(y) else float("nan")
    recall = []
    for name in WATCH:
        if name in labels:
            k = labels.index(name)
            recall.append(f"{name} {float((pred[y == k] == k).mean()):.1%}")
    return f"{acc:.2%} ({', '.join(recall)})"


def run(model: Path, dataset: str, detector: str, margins: tuple[float, ...] = ()) -> list[str]:
    clf = load_classifier(model)
    data = load_ckplus(DATA / "ckplus") if dataset == "ckplus" else load_fer2013(DATA / "fer2013", "test")
    keep = np.array([name in clf.labels for name in data.labels])[data.y]
    x, y = data.x[keep], data.y[keep]
    spec = clf.info.preprocess
    # (margin, align) -> crops; the model's own margin as cropped and eye-levelled, then each other margin
    variants = [(spec.margin, False), (spec.margin, True)] + [(m, False) for m in margins if m != spec.margin]
    specs = {v: dataclasses.replace(spec, margin=v[0], align=v[1]) for v in variants}
    found_idx: list[int] = []
    crops: dict[tuple[float, bool], list[np.ndarray]] = {v: [] for v in variants}
    with make_detector(detector) as det:
        for i, (frame, best) in enumerate(largest_detections(x, det)):
            if best is None:
                continue
            found_idx.append(i)
            for v, s in specs.items():
                crops[v].append(crop_detection(frame, best, s))
    idx = np.array(found_idx, int)

    def predict(faces: np.ndarray) -> np.ndarray:
        probs = np.concatenate([clf.predict(faces[i : i + 256]) for i in range(0, len(faces), 256)])
        return map_predictions(probs, clf.labels, data.labels)

    direct = predict(x)
    rows = [
        f"| {dataset} | {len(x)} | direct crop | {len(x)} | {score(direct, y, data.labels)} |",
        f"| {dataset} | {len(x)} | direct crop, same faces as below | {len(idx)} | "
        f"{score(direct[idx], y[idx], data.labels)} |",
    ]
    for margin, align in variants:
        pred = predict(np.stack(crops[margin, align]))
        what = f"{detector} crop, margin {margin:g}" + (", eyes levelled" if align else "")
        rows.append(f"| {dataset} | {len(x)} | {what} | {len(idx)} | {score(pred, y[idx], data.labels)} |")
    return rows


def clip_rows(model: Path, detector: str) -> list[str]:
    from edgefer.runtime.pipeline import Recognizer
    from edgefer.runtime.sources import open_source

    rows = []
    for clip in sorted((DATA / "videos").glob("sadtalker_*.mp4")):
        labels: dict[bool, list[str]] = {}
        for align in (False, True):
            with Recognizer(model=model, detector=detector, smooth=0.0, align=align) as rec, open_source(clip) as src:
                labels[align] = [max(r.faces, key=lambda f: f.box[2]).label if r.faces else "-"
                                 for r in (rec(frame.image) for frame in src)]
        changes = {a: sum(x != y for x, y in zip(v, v[1:])) for a, v in labels.items()}
        agree = sum(x == y for x, y in zip(labels[False], labels[True])) / len(labels[False])
        rows.append(f"| {clip.name} | {len(labels[False])} | {changes[False]} | {changes[True]} | {agree:.1%} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=Path(__file__).resolve().parents[1] / "models" / "fer2013.onnx")
    p.add_argument("--datasets", nargs="+", default=["ckplus", "fer2013"], choices=["ckplus", "fer2013"])
    p.add_argument("--detector", default="blazeface")
    p.add_argument("--margins", type=lambda v: tuple(float(m) for m in v.split(",")), default=(),
                   help="also crop with these margins (comma-separated fractions of the box per side), "
                        "to compare with the model's own")
    p.add_argument("--no-clips", action="store_true", help="skip the clip rows")
    args = p.parse_args(argv)
    print(f"model {args.model.name}, detector {args.detector}")
    print("| data | faces | crop | faces scored | accuracy (recall of angry, disgust, fear) |")
    print("|---|---|---|---|---|")
    for name in args.datasets:
        for row in run(args.model, name, args.detector, args.margins):
            print(row, flush=True)
    if args.no_clips:
        return 0
    print("\n| clip | frames | label changes, as cropped | label changes, eyes levelled | same label |")
    print("|---|---|---|---|---|")
    for row in clip_rows(args.model, args.detector):
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
