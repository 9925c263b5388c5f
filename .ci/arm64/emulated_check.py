"""Checks for the emulated aarch64 run (see check.sh). Subcommands:

- ``selftest MODEL...``  (aarch64) the runtime's no-display, no-TensorFlow checks: platform,
  imports, where modules come from, preprocessing, the Haar cascade, every model's backend.
- ``pipeline``           (aarch64) fallback used only while ``edgefer run`` lacks ``--headless
  --jsonl``: Haar + classifier over a clip, one JSON line per frame.
- ``summarize JSONL``    (any Python, stdlib only) one compact line per model + assertions.
- ``compare A B``        (any Python, stdlib only) aarch64 vs x86-64 results of the same run.

Emulated timings mean nothing, so nothing here looks at speed.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import sys
from pathlib import Path


def fail(msg: str) -> None:
    print(f"FAIL: {msg}", flush=True)
    raise SystemExit(1)


# ---------------------------------------------------------------- selftest (aarch64)
def selftest(models: list[str], clip: str | None) -> None:
    import platform

    machine = platform.machine()
    if machine != "aarch64":
        fail(f"platform.machine() is {machine!r}, not aarch64: this is not running under emulation")
    with open("/proc/cpuinfo") as f:
        cpu = f.read()
    if "0xd08" not in cpu:
        fail("/proc/cpuinfo does not describe a Cortex-A72 (onnxruntime would see the host CPU)")

    import cv2
    import numpy as np
    import onnxruntime as ort

    import edgefer.runtime as rt
    from edgefer.runtime import classifiers, cli, detectors, labels, metadata, preprocess

    # `edgefer --help` must build (it loads the edgefer.commands plug-ins; a broken one only warns).
    parser = cli.build_parser()
    if "run" not in parser.format_help():
        fail("`edgefer --help` does not list the run command")
    bad = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras", "jax"))
    if bad:
        fail(f"the runtime imported TensorFlow-family modules: {bad[:5]}")

    # Every module must come from the sysroot's stdlib or the harness' site dirs, never the host.
    allowed = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    # sys.prefix is the sysroot's /usr (python3.11 is started by its host path inside the sysroot).
    allowed += [sys.prefix, sys.exec_prefix, "/usr/lib/python3.11", os.path.dirname(os.path.abspath(__file__))]
    strays = set()
    for name, mod in list(sys.modules.items()):
        f = getattr(mod, "__file__", None)
        if f and not any(os.path.abspath(f).startswith(os.path.abspath(a)) for a in allowed):
            strays.add(f"{name} ({f})")
    if strays:
        fail(f"modules loaded from outside the aarch64 environment: {sorted(strays)[:5]}")

    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cv2": cv2.__version__,
        "onnxruntime": ort.__version__,
    }
    try:
        from importlib.metadata import version

        import ai_edge_litert  # noqa: F401

        versions["ai-edge-litert"] = version("ai-edge-litert")
    except ImportError:
        versions["ai-edge-litert"] = "absent"
    print("selftest: aarch64 " + " ".join(f"{k}={v}" for k, v in versions.items()))
    print(f"selftest: edgefer.runtime from {Path(rt.__file__).parent}")

    # Preprocessing contract.
    spec = preprocess.PreprocessSpec()
    if preprocess.PreprocessSpec.from_json(spec.to_json()) != spec:
        fail("PreprocessSpec JSON round trip changed it")
    frame = (np.arange(120 * 160 * 3) % 251).astype(np.uint8).reshape(120, 160, 3)
    batch = preprocess.prepare(frame, [(10, 10, 50, 60), (150, 100, 40, 40)], spec)
    if batch.shape != (2, 48, 48, 1) or batch.dtype != np.float32 or not (0 <= batch.min() <= batch.max() <= 1):
        fail(f"prepare() gave {batch.shape} {batch.dtype} in [{batch.min()}, {batch.max()}]")
    nchw = preprocess.PreprocessSpec(layout="NCHW", channels=3)
    if preprocess.normalize(np.zeros((1, 48, 48), np.uint8), nchw).shape != (1, 3, 48, 48):
        fail("NCHW/3-channel normalize has the wrong shape")
    if preprocess.expand_box((0, 0, 10, 10), 0.5, (8, 8)) != (0, 0, 8, 8):
        fail("expand_box does not clip to the frame")
    if labels.canonical_label(" Happiness ") != "happy":
        fail("canonical_label")
    try:
        metadata.parse_props({}, "x.onnx")
        fail("parse_props accepted a model without metadata")
    except metadata.ModelError:
        pass
    try:
        classifiers.load_classifier("missing.onnx")
        fail("load_classifier accepted a missing file")
    except metadata.ModelError:
        pass

    # Haar detector (the packaged cascade) on a real frame.
    det = detectors.make_detector("haar")
    if clip:
        cap = cv2.VideoCapture(clip)
        ok, img = cap.read()
        cap.release()
        if not ok:
            fail(f"OpenCV (aarch64) cannot decode {clip}")
        faces = det.detect(img)
        if not faces:
            fail("Haar found no face on the clip's first frame")
        print(f"selftest: decoded {clip} {img.shape[1]}x{img.shape[0]}; Haar boxes {[d.box for d in faces]}")
        for name in ("blazeface", "blazeface-full"):  # ONNX Runtime on NEON, decoding in numpy
            found = detectors.make_detector(name).detect(img)
            if len(found) != 1 or len(found[0].keypoints) != 6:
                fail(f"{name} found {len(found)} faces (or no keypoints) on the clip's first frame")
            print(f"selftest: {name} box {found[0].box} score {found[0].score:.3f}")

    # Every model loads with its backend and yields probabilities on random faces.
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (3, 48, 48), dtype=np.uint8)
    for m in models:
        clf = classifiers.load_classifier(m)
        p = clf.predict(faces if clf.info.preprocess.size == (48, 48) else
                        rng.integers(0, 256, (3, *clf.info.preprocess.size), dtype=np.uint8))
        if p.shape != (3, len(clf.labels)) or not np.all(np.isfinite(p)) or np.any(p < 0) \
                or not np.allclose(p.sum(1), 1, atol=1e-3):
            fail(f"{m}: predict() gave invalid probabilities {p}")
        if len(clf.predict(np.zeros((0, 48, 48), np.uint8))) != 0:
            fail(f"{m}: predict() on an empty batch")
        print(f"selftest: {Path(m).name}: {type(clf).__name__} labels={len(clf.labels)} ok")
    print("selftest: OK")


# ---------------------------------------------------------------- pipeline fallback (aarch64)
def pipeline(model: str, source: str, max_frames: int, jsonl: str) -> None:
    import cv2

    from edgefer.runtime import classifiers, detectors, preprocess

    clf = classifiers.load_classifier(model)
    det = detectors.make_detector("haar")
    cap = cv2.VideoCapture(source)
    with open(jsonl, "w") as out:
        for i in range(max_frames):
            ok, img = cap.read()
            if not ok:
                break
            boxes = [d.box for d in det.detect(img)]
            probs = clf.predict(preprocess.crop_faces(img, boxes, clf.info.preprocess)) if boxes else []
            rec = {"frame": i, "faces": [
                {"box": list(map(int, b)), "label": clf.labels[int(p.argmax())],
                 "probs": {n: round(float(v), 6) for n, v in zip(clf.labels, p)}}
                for b, p in zip(boxes, probs)]}
            out.write(json.dumps(rec) + "\n")
    cap.release()


# ---------------------------------------------------------------- summarize / compare (stdlib)
def _faces(rec: dict) -> list[dict]:
    for key in ("faces", "detections", "results"):
        if isinstance(rec.get(key), list):
            return rec[key]
    return []


def _probs(face: dict) -> dict[str, float] | list[float] | None:
    for key in ("probs", "probabilities", "scores", "emotions"):
        if key in face:
            return face[key]
    return None


def _label(face: dict) -> str | None:
    for key in ("label", "emotion", "top"):
        if isinstance(face.get(key), str):
            return face[key]
    return None


def load_frames(path: str) -> list[dict]:
    frames = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rec = json.loads(line)
                if "faces" in rec or "detections" in rec or "results" in rec or "frame" in rec:
                    frames.append(rec)
    return frames


def summarize(jsonl: str, name: str, expect_frames: int, min_face_frac: float) -> None:
    if not os.path.isfile(jsonl) or os.path.getsize(jsonl) == 0:
        fail(f"{name}: `edgefer run` wrote no JSONL to {jsonl}")
    frames = load_frames(jsonl)
    n = len(frames)
    if n < expect_frames:
        fail(f"{name}: {n} frame records, expected {expect_frames}")
    with_face = 0
    dist: collections.Counter[str] = collections.Counter()
    for rec in frames:
        faces = _faces(rec)
        with_face += bool(faces)
        for face in faces:
            label, probs = _label(face), _probs(face)
            if probs is None:
                fail(f"{name}: a face without probabilities: {face}")
            vals = list(probs.values()) if isinstance(probs, dict) else list(probs)
            if not vals or not all(isinstance(v, (int, float)) and math.isfinite(v) and -1e-6 <= v <= 1 + 1e-6
                                   for v in vals):
                fail(f"{name}: invalid probabilities {probs}")
            if abs(sum(vals) - 1) > 0.01:
                fail(f"{name}: probabilities sum to {sum(vals):.4f}: {probs}")
            # The shown label changes on evidence: it may trail the arg-max for a few frames, but it
            # is always one of the model's classes (the x86-64 comparison checks it exactly).
            if isinstance(probs, dict) and label is not None and label not in probs:
                fail(f"{name}: label {label!r} is not one of the model's classes {list(probs)}")
            dist[label or "?"] += 1
    frac = with_face / max(n, 1)
    top = ", ".join(f"{k} {v}" for k, v in dist.most_common())
    print(f"RESULT {name}: frames={n} faces_on={with_face}/{n} ({frac:.0%}) faces={sum(dist.values())} "
          f"labels: {top or '-'}", flush=True)
    if frac < min_face_frac:
        fail(f"{name}: faces on only {with_face}/{n} frames (< {min_face_frac:.0%})")


def compare(arm: str, x86: str, name: str, min_match: float, min_agree: float) -> None:
    """Same clip, same model, same code on x86-64: faces should match (IoU >= 0.5) and mostly agree.

    Not bit-exact: OpenCV's and the inference engines' SIMD paths differ between NEON and AVX,
    so Haar boxes can move by a pixel or two and probabilities by a little.
    """
    # the edgefer runtime is importable wherever the comparison runs (the host's runtime venv)
    from edgefer.runtime.tracking import iou as box_iou

    a, b = load_frames(arm), load_frames(x86)
    if len(a) != len(b):
        fail(f"{name}: {len(a)} frames on aarch64 but {len(b)} on x86-64")
    n_arm = n_x86 = matched = agree = 0
    ious: list[float] = []
    max_dp = 0.0
    for ra, rb in zip(a, b):
        fa, fb = _faces(ra), _faces(rb)
        n_arm += len(fa)
        n_x86 += len(fb)
        used: set[int] = set()
        for x in fa:
            best, bi = 0.0, -1
            for j, y in enumerate(fb):
                if j not in used and x.get("box") and y.get("box"):
                    iou = box_iou(x["box"], y["box"])
                    if iou > best:
                        best, bi = iou, j
            if best < 0.5:
                continue
            used.add(bi)
            y = fb[bi]
            matched += 1
            ious.append(best)
            agree += _label(x) == _label(y)
            px, py = _probs(x), _probs(y)
            if isinstance(px, dict) and isinstance(py, dict):
                max_dp = max([max_dp] + [abs(px[k] - py.get(k, 0)) for k in px])
            elif isinstance(px, list) and isinstance(py, list):
                max_dp = max([max_dp] + [abs(u - v) for u, v in zip(px, py)])
    denom = max(n_arm, n_x86, 1)
    mean_iou = sum(ious) / len(ious) if ious else 0.0
    print(f"COMPARE {name}: aarch64 vs x86-64: faces {n_arm} vs {n_x86}, matched {matched} (mean IoU "
          f"{mean_iou:.3f}), same label on {agree}/{matched}, max |dp| {max_dp:.4f}", flush=True)
    if matched / denom < min_match:
        fail(f"{name}: only {matched}/{denom} faces match between aarch64 and x86-64")
    if matched and agree / matched < min_agree:
        fail(f"{name}: aarch64 and x86-64 labels agree on only {agree}/{matched} faces")


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("selftest")
    p.add_argument("models", nargs="*")
    p.add_argument("--clip")
    p = sub.add_parser("pipeline")
    p.add_argument("--model", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--max-frames", type=int, required=True)
    p.add_argument("--jsonl", required=True)
    p = sub.add_parser("summarize")
    p.add_argument("jsonl")
    p.add_argument("--name", required=True)
    p.add_argument("--frames", type=int, required=True)
    p.add_argument("--min-face-frac", type=float, default=0.8)
    p = sub.add_parser("compare")
    p.add_argument("arm")
    p.add_argument("x86")
    p.add_argument("--name", required=True)
    p.add_argument("--min-match", type=float, default=0.9)
    p.add_argument("--min-agree", type=float, default=0.8)
    a = ap.parse_args()
    if a.cmd == "selftest":
        selftest(a.models, a.clip)
    elif a.cmd == "pipeline":
        pipeline(a.model, a.source, a.max_frames, a.jsonl)
    elif a.cmd == "summarize":
        summarize(a.jsonl, a.name, a.frames, a.min_face_frac)
    else:
        compare(a.arm, a.x86, a.name, a.min_match, a.min_agree)


if __name__ == "__main__":
    main()
