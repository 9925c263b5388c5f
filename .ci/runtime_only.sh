#!/usr/bin/env bash
# Builds a fresh venv with only the runtime and its optional extras (mediapipe, litert) and
# proves that TensorFlow is neither installed nor imported while the runtime processes a real
# clip, with each detector and each shipped model artifact. Then a plain `pip install .` (no
# extras at all) runs `edgefer run --headless` with its default detector on both talking-head
# clips and must find a face on at least 95% of their frames.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${RUNTIME_VENV:-/tmp/edgefer-runtime-venv}
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q ".[mediapipe,litert]"
if "$VENV/bin/python" -m pip show tensorflow tensorflow-cpu >/dev/null 2>&1; then
  echo "FAIL: the runtime install pulled TensorFlow" >&2
  exit 1
fi
echo "ok: no TensorFlow in the runtime install"
"$VENV/bin/edgefer" --help >/dev/null
CLIP=$PWD/../shared/data/videos/sadtalker_WDA_KatieHill_000.mp4
if [ ! -f "$CLIP" ]; then
  echo "SKIP: $CLIP absent; runtime-only clip check not run"
  exit 0
fi
ROOT=$PWD
MODELS=$(ls models/*.onnx models/*.tflite 2>/dev/null || true)
cd /tmp  # outside the checkout: the installed package is what runs
"$VENV/bin/python" - "$ROOT" "$CLIP" $MODELS <<'PY'
import json, os, sys, tempfile
from collections import Counter
from edgefer.runtime.cli import main

root, clip, models = sys.argv[1], sys.argv[2], sys.argv[3:]
# every detector, default model, whole clip
runs = [(d, None, None) for d in ("blazeface", "blazeface-full", "haar", "mediapipe")]
runs += [("blazeface", os.path.join(root, m), 100) for m in models]  # each shipped artifact
for det, model, frames in runs:
    out = tempfile.mktemp(suffix=".jsonl")
    args = ["run", "--source", clip, "--headless", "--jsonl", out, "--detector", det]
    args += ["--model", model] if model else []
    args += ["--max-frames", str(frames)] if frames else []
    rc = main(args)
    assert rc == 0, f"edgefer run exited {rc}"
    lines = [json.loads(l) for l in open(out)]
    with_face = sum(1 for l in lines if l["faces"])
    for l in lines:
        for f in l["faces"]:
            assert abs(sum(f["probabilities"].values()) - 1) < 1e-3, f
    labels = Counter(f["label"] for l in lines for f in l["faces"])
    ms = sum(l["timings_ms"]["total"] for l in lines) / max(1, len(lines))
    assert with_face >= 0.9 * len(lines), f"{det}: faces on only {with_face}/{len(lines)} frames"
    name = os.path.basename(model) if model else "default model"
    print(f"ok [{det}, {name}]: {len(lines)} frames, faces on {with_face}, labels {dict(labels)}, "
          f"mean pipeline {ms:.1f} ms/frame")
assert "tensorflow" not in sys.modules, "tensorflow was imported by the runtime"
print("ok: tensorflow never imported")
PY

cd "$ROOT"
PLAIN=${PLAIN_VENV:-/tmp/edgefer-plain-venv}
rm -rf "$PLAIN"
python3 -m venv "$PLAIN"
"$PLAIN/bin/python" -m pip install -q --upgrade pip
"$PLAIN/bin/python" -m pip install -q .
cd /tmp
"$PLAIN/bin/python" - "$ROOT/../shared/data/videos" <<'PY'
import importlib.util, json, os, sys, tempfile
from edgefer.runtime.cli import main

for extra in ("mediapipe", "ai_edge_litert", "tensorflow"):
    assert importlib.util.find_spec(extra) is None, f"{extra} is installed in the plain venv"
for clip in ("sadtalker_WDA_KatieHill_000.mp4", "sadtalker_WDA_AlexandriaOcasioCortez_000.mp4"):
    out = tempfile.mktemp(suffix=".jsonl")
    assert main(["run", "--source", os.path.join(sys.argv[1], clip), "--headless", "--jsonl", out]) == 0
    lines = [json.loads(l) for l in open(out)]
    with_face = sum(1 for l in lines if l["faces"])
    assert with_face >= 0.95 * len(lines), f"{clip}: faces on only {with_face}/{len(lines)} frames"
    assert all("keypoints" in f for l in lines for f in l["faces"]), "the default detector is not BlazeFace"
    print(f"ok [plain install, default detector, {clip}]: faces on {with_face}/{len(lines)} frames")

# The shipped recipes are package data: every one is in the wheel and parses (tomllib, no TensorFlow).
from edgefer.train.recipe import load_recipe, shipped_recipes
names = shipped_recipes()
assert {"smoke", "fer2013-edge", "ferplus", "report", "report-reference", "ckplus"} <= set(names), names
stages = {n: len(load_recipe(n).stages) for n in names}
print(f"ok [plain install, recipes in the wheel]: {stages}")

# edgefer bench with no extras: every available detector x every bundled ONNX model, JSON that
# validates and compares with itself (timings are not checked: this is a shared CI machine).
from edgefer.runtime import bench
out = tempfile.mktemp(suffix=".json")
assert main(["bench", "--quick", "--json", out]) == 0
info, rows = bench.load_json(out)
pairs = {(r.detector, r.model) for r in rows}
assert {d for d, _ in pairs} == {"blazeface", "blazeface-full", "haar"}, pairs
assert all(m.endswith(".onnx") for _, m in pairs), "a .tflite row without LiteRT installed"
assert main(["bench", "--compare", out, out]) == 0
print(f"ok [plain install, edgefer bench --quick]: {len(rows)} pipelines, JSON valid")

# edgefer serve with no extras: the page, a snapshot and /health from a real server process.
import re, signal, subprocess, time, urllib.request
clip = os.path.join(sys.argv[1], "sadtalker_WDA_KatieHill_000.mp4")
proc = subprocess.Popen([sys.executable, "-m", "edgefer.runtime.cli", "serve", "--source", clip, "--loop",
                         "--port", "0"], stderr=subprocess.PIPE, text=True)
line = ""
while "serving" not in line:
    line = proc.stderr.readline()
    assert line, "edgefer serve exited before serving"
base = re.search(r"(http://127\.0\.0\.1:\d+)/", line).group(1)
time.sleep(3)
health = json.loads(urllib.request.urlopen(base + "/health", timeout=10).read())
page = urllib.request.urlopen(base + "/", timeout=10).read()
jpeg = urllib.request.urlopen(base + "/snapshot.jpg", timeout=10).read()
proc.send_signal(signal.SIGTERM)
assert proc.wait(30) == 143
assert health["status"] == "running" and health["frames"] > 0, health
assert b"EventSource" in page and jpeg[:2] == b"\xff\xd8"
print(f"ok [plain install, edgefer serve]: {health['frames']} frames in 3 s, page and snapshot served")
PY
