#!/usr/bin/env bash
# Scores the FER2013 and the FER+ model against both label sets of PublicTest (FER2013's original
# labels and the FER+ annotators' majority), so the choice of default rests on measured figures.
# Writes the table into models/README.md (block cross-labels). Nothing is typed in by hand.
# Usage: bash scripts/cross_eval.sh [DATA]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/fer2013}
EDGEFER=${EDGEFER:-.venv/bin/edgefer}
PY=${PY:-.venv/bin/python}
out=$(mktemp -d)
for dataset in fer2013 ferplus; do
  "$EDGEFER" eval models/fer2013.onnx models/ferplus.onnx --data "$DATA" --dataset "$dataset" --no-timing \
    --json "$out/$dataset.json" > "$out/$dataset.log"
done
python3 - "$out" > "$out/table.md" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
names = {"fer2013": "FER2013 labels (3,589 images)", "ferplus": "FER+ majority labels (3,524 images)"}
res = {d: json.loads((out / f"{d}.json").read_text()) for d in names}
models = list(res["fer2013"])
print("Measured by `bash scripts/cross_eval.sh` (`edgefer eval --dataset fer2013|ferplus`). A model "
      "that lacks a class (the FER2013 model has no contempt) is scored wrong on its images.\n")
print("| model | " + " | ".join(f"accuracy, {v}" for v in names.values()) + " | "
      + " | ".join(f"balanced, {d}" for d in names) + " |")
print("|---|" + "---:|" * (2 * len(names)))
for m in models:
    accs = [f"{res[d][m]['accuracy']:.4f}" for d in names]
    bals = [f"{res[d][m]['balanced_accuracy']:.4f}" for d in names]
    print(f"| {Path(m).name} | " + " | ".join(accs) + " | " + " | ".join(bals) + " |")
PY
cat "$out/table.md"
"$PY" -m edgefer.export.readme_blocks splice models/README.md cross-labels "$out/table.md"
