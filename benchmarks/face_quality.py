"""Detection quality against hand-labelled boxes: recall, precision, false positives per image.

    .venv/bin/python benchmarks/face_quality.py                 # every detector, Markdown table
    .venv/bin/python benchmarks/face_quality.py --json out.json --detectors blazeface haar

The labels (``benchmarks/face_boxes.json``) are boxes drawn by hand and checked by eye on
the shared photos and on frames of the shared clips; the images stay in ``../shared/data``.
A detection matches a labelled face at IoU >= 0.4 (each face and each detection at most
once, best pairs first). A detection that matches no face is a false positive unless it
overlaps a box on the image's ``ignore`` list (faces too small, turned away or unclear to
count either way). Each image is a fresh scene: the detector is reset before it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgefer.runtime.atomic import write_text

HERE = Path(__file__).resolve().parent
LABELS = HERE / "face_boxes.json"
IOU_MATCH = 0.4
DETECTORS = ("blazeface", "blazeface-full", "haar", "mediapipe")


def group_of(source: str) -> str:
    if source.startswith("faces/"):
        return "photos"
    return "crowd frames (1080p)" if "crowd" in source else "talking-head frames"


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of x, y, w, h boxes a (N, 4) and b (M, 4): the runtime's corner IoU."""
    from edgefer.runtime.blazeface import iou_matrix

    def corners(boxes: np.ndarray) -> np.ndarray:
        boxes = np.asarray(boxes, float).reshape(-1, 4)
        return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)

    return iou_matrix(corners(a), corners(b))


@dataclass
class Count:
    images: int = 0
    faces: int = 0
    found: int = 0  # labelled faces matched by a detection
    detections: int = 0  # detections that count (matched or false)
    false: int = 0

    def add(self, other: Count) -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)

    @property
    def recall(self) -> float:
        return self.found / self.faces if self.faces else float("nan")

    @property
    def precision(self) -> float:
        return (self.detections - self.false) / self.detections if self.detections else float("nan")

    @property
    def fp_per_image(self) -> float:
        return self.false / self.images if self.images else float("nan")


def score_image(detected: list, faces: list, ignore: list, threshold: float = IOU_MATCH) -> Count:
    """Greedy one-to-one matching, highest IoU first."""
    det = np.asarray(detected, float).reshape(-1, 4)
    truth = np.asarray(faces, float).reshape(-1, 4)
    matched_det: set[int] = set()
    found = 0
    if len(det) and len(truth):
        iou = box_iou(det, truth)
        pairs = sorted(((iou[i, j], i, j) for i in range(len(det)) for j in range(len(truth))
                        if iou[i, j] >= threshold), reverse=True)
        used_truth: set[int] = set()
        for _, i, j in pairs:
            if i not in matched_det and j not in used_truth:
                matched_det.add(i)
                used_truth.add(j)
        found = len(used_truth)
    rest = [i for i in range(len(det)) if i not in matched_det]
    ignored = 0
    if rest and ignore:
        overlaps = box_iou(det[rest], np.asarray(ignore, float))
        ignored = int((overlaps.max(axis=1) >= threshold).sum())
    false = len(rest) - ignored
    return Count(images=1, faces=len(truth), found=found, detections=len(det) - ignored, false=false)


def load_images(labels: Path, root: Path) -> list[tuple[dict, np.ndarray]]:
    """Every labelled image with its pixels: photos read whole, clip frames by sequential read."""
    from itertools import islice

    import cv2

    from edgefer.runtime.sources import open_source

    data = json.loads(labels.read_text())
    out = []
    videos: dict[str, dict[int, np.ndarray]] = {}
    for entry in data["images"]:
        path = root / entry["source"]
        if not path.is_file():
            raise FileNotFoundError(f"{path} (labelled in {labels.name}) is missing")
        if entry.get("frame") is None:
            image = cv2.imread(str(path))
        else:
            if entry["source"] not in videos:
                wanted = {e["frame"] for e in data["images"] if e["source"] == entry["source"]}
                with open_source(path) as src:  # sequential reads: frame numbers are exact
                    videos[entry["source"]] = {f.index: f.image for f in islice(src, max(wanted) + 1)
                                               if f.index in wanted}
            image = videos[entry["source"]].get(entry["frame"])
        if image is None or [image.shape[1], image.shape[0]] != list(entry["size"]):
            raise ValueError(f"{path} frame {entry.get('frame')}: unreadable or not {entry['size']}")
        out.append((entry, image))
    return out


def evaluate(detector_name: str, images: list[tuple[dict, np.ndarray]], threads: int = 1) -> dict:
    from edgefer.runtime.detectors import make_detector

    per_group: dict[str, Count] = {}
    times: dict[str, list[float]] = {}
    with make_detector(detector_name, threads=threads) as det:
        det.detect(images[0][1])  # warm-up
        for entry, image in images:
            det.reset()
            t0 = time.perf_counter()
            found = det.detect(image)
            elapsed = (time.perf_counter() - t0) * 1e3
            group = group_of(entry["source"])
            per_group.setdefault(group, Count()).add(
                score_image([d.box for d in found], entry["faces"], entry.get("ignore", [])))
            times.setdefault(group, []).append(elapsed)
    return {g: {**asdict(c), "recall": c.recall, "precision": c.precision, "fp_per_image": c.fp_per_image,
                "ms_p50": float(np.median(times[g]))} for g, c in per_group.items()}


def run(detectors: tuple[str, ...] = DETECTORS, labels: Path = LABELS, root: Path | None = None) -> dict:
    """{detector: {group: figures}}; a detector that cannot be created (missing extra) is left out."""
    from edgefer.runtime.detectors import DetectorError

    root = root or HERE.parent.parent / "shared" / "data"
    images = load_images(labels, root)
    results = {}
    for name in detectors:
        try:
            results[name] = evaluate(name, images)
        except DetectorError as exc:
            print(f"{name}: skipped ({exc})", file=sys.stderr)
    return results


def markdown(results: dict) -> list[str]:
    rows = []
    for name, groups in results.items():
        for group, r in sorted(groups.items()):
            precision = f"{r['precision']:.0%}" if r["detections"] else "- (no detections)"
            rows.append(f"| {name} | {group} | {r['images']} | {r['faces']} | {r['found']} ({r['recall']:.0%}) | "
                        f"{precision} | {r['fp_per_image']:.2f} | {r['ms_p50']:.1f} |")
    return ["| detector | set | images | faces | found (recall) | precision | false positives / image "
            "| ms / image p50 |",
            "|---|---|---|---|---|---|---|---|", *rows]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--detectors", nargs="+", default=list(DETECTORS), help="default: all four")
    p.add_argument("--labels", type=Path, default=LABELS)
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    args = p.parse_args(argv)
    results = run(tuple(args.detectors), args.labels)
    print("\n".join(markdown(results)))
    if args.json:
        write_text(args.json, json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
