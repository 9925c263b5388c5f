#!/usr/bin/env bash
# Scores the FER2013 and the FER+ model on three label sets: PublicTest with FER2013's original
# labels, PublicTest with the FER+ annotators' majority, and every image of CK+48 (a dataset
# neither model trained or was selected on), as cropped and as the runtime frames it. Writes both tables into models/README.md (block
# cross-labels), so the choice of default and the cross-dataset figures rest on measured numbers.
# Usage: bash scripts/cross_eval.sh [FER2013_DIR [CKPLUS_DIR]]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/fer2013}
CKPLUS=${2:-$(dirname "$DATA")/ckplus}
EDGEFER=${EDGEFER:-.venv/bin/edgefer}
PY=${PY:-.venv/bin/python}
out=$(mktemp -d)
for dataset in fer2013 ferplus; do
  "$EDGEFER" eval models/fer2013.onnx models/ferplus.onnx --data "$DATA" --dataset "$dataset" --no-timing \
    --json "$out/$dataset.json" > "$out/$dataset.log"
done
"$EDGEFER" eval models/fer2013.onnx models/ferplus.onnx --data "$CKPLUS" --dataset ckplus --split all --no-timing \
  --json "$out/ckplus.json" > "$out/ckplus.log"
"$EDGEFER" eval models/fer2013.onnx models/ferplus.onnx --data "$CKPLUS" --dataset ckplus --split all --no-timing \
  --detector-crops --json "$out/ckplus-blazeface.json" > "$out/ckplus-blazeface.log"
python3 - "$out" > "$out/table.md" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
names = {"fer2013": "PublicTest, FER2013 labels", "ferplus": "PublicTest, FER+ majority", "ckplus": "CK+48, all",
         "ckplus-blazeface": "CK+48, all, runtime framing"}
res = {d: json.loads((out / f"{d}.json").read_text()) for d in names}
models = list(res["fer2013"])
print("Measured by `bash scripts/cross_eval.sh` (`edgefer eval --dataset fer2013|ferplus`, and "
      "`--dataset ckplus --split all`, as it is and with `--detector-crops`: each face cropped as the "
      "runtime frames it, BlazeFace's box plus the model's margin). Each model is scored on the images of "
      "the classes it has an output for (the FER2013 model has no contempt); the image counts say how many "
      "that leaves. CK+ is a cross-dataset score: neither model trained or was selected on it.\n")
print("| model | " + " | ".join(f"accuracy, {v}" for v in names.values()) + " | "
      + " | ".join(f"balanced, {v}" for v in names.values()) + " |")
print("|---|" + "---:|" * (2 * len(names)))
for m in models:
    accs = [f"{res[d][m]['accuracy']:.4f} ({res[d][m]['n']:,})" for d in names]
    bals = [f"{res[d][m]['balanced_accuracy']:.4f}" for d in names]
    print(f"| {Path(m).name} | " + " | ".join(accs) + " | " + " | ".join(bals) + " |")
hard = ("angry", "disgust", "fear")
print("\nRecall of the classes that fail across datasets:\n")
print("| model | " + " | ".join(f"{c}, {v}" for v in names.values() for c in hard) + " |")
print("|---|" + "---:|" * (len(hard) * len(names)))
for m in models:
    cells = [f"{res[d][m]['per_class'][c]['recall']:.3f}" for d in names for c in hard]
    print(f"| {Path(m).name} | " + " | ".join(cells) + " |")
PY
cat "$out/table.md"
"$PY" -m edgefer.export.readme_blocks splice models/README.md cross-labels "$out/table.md"
