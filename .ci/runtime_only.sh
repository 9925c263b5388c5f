#!/usr/bin/env bash
# Builds a fresh venv with only the runtime (pip install .) and proves that TensorFlow is
# neither installed nor imported while the runtime processes a real clip.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${RUNTIME_VENV:-/tmp/edgefer-runtime-venv}
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q ".[mediapipe]"
if "$VENV/bin/python" -m pip show tensorflow tensorflow-cpu >/dev/null 2>&1; then
  echo "FAIL: the runtime install pulled TensorFlow" >&2
  exit 1
fi
echo "ok: no TensorFlow in the runtime install"
"$VENV/bin/edgefer" --help >/dev/null
CLIP=../shared/data/videos/sadtalker_WDA_KatieHill_000.mp4
if [ ! -f "$CLIP" ]; then
  echo "SKIP: $CLIP absent; runtime-only clip check not run"
  exit 0
fi
cd /tmp  # run from outside the checkout so the installed package, not the source tree, is used
for det in haar mediapipe; do
  "$VENV/bin/python" - "$OLDPWD/$CLIP" "$det" <<'PY'
import json, subprocess, sys, tempfile
from edgefer.runtime.cli import main
clip, det = sys.argv[1], sys.argv[2]
out = tempfile.mktemp(suffix=".jsonl")
rc = main(["run", "--source", clip, "--headless", "--jsonl", out, "--detector", det])
assert rc == 0, f"edgefer run exited {rc}"
lines = [json.loads(l) for l in open(out)]
with_face = sum(1 for l in lines if l["faces"])
assert "tensorflow" not in sys.modules, "tensorflow was imported by the runtime"
assert with_face >= 0.9 * len(lines), f"{det}: faces on only {with_face}/{len(lines)} frames"
labels = {}
for l in lines:
    for f in l["faces"]:
        labels[f["label"]] = labels.get(f["label"], 0) + 1
print(f"ok [{det}]: {len(lines)} frames, faces on {with_face}, labels {labels}, tensorflow not imported")
PY
done
