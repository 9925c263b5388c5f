#!/usr/bin/env bash
# Exports a training run into models/ (float ONNX, INT8 ONNX, INT8 TFLite, each with its card),
# records metrics measured by `edgefer eval` in every card, writes the comparison table and the
# one-page report of the shipped model. Nothing here is typed in by hand.
# Usage: bash scripts/ship_models.sh RUN_FOLDER NAME [DATA] [DATASET]
#   e.g. bash scripts/ship_models.sh runs/edge fer2013
#        bash scripts/ship_models.sh runs/ferplus ferplus ../shared/data/fer2013 ferplus
# DATASET (fer2013 or ferplus) picks the labels the evaluations score against.
# CALIB_SIZE (default 300) and CALIB_SEED (default 0): how many training faces calibrate the INT8
# ranges, and which; the sample moves INT8 accuracy by about 0.2 points either way.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=$1
NAME=$2
DATA=${3:-../shared/data/fer2013}
DATASET=${4:-fer2013}
EDGEFER=${EDGEFER:-.venv/bin/edgefer}
CALIB_SIZE=${CALIB_SIZE:-300}
CALIB_SEED=${CALIB_SEED:-0}
PY=${PY:-.venv/bin/python}
KEY=$("$PY" -c "import sys; from edgefer.runtime.metric_keys import metric_key; print(metric_key(sys.argv[1]))" "$DATASET")
"$EDGEFER" export "$RUN" --format onnx,onnx-int8,tflite-int8 --out models --name "$NAME" --calib-data "$DATA" --calib-size "$CALIB_SIZE" --seed "$CALIB_SEED" --verify-size all
ARTIFACTS=(models/"$NAME".onnx models/"$NAME"-int8.onnx models/"$NAME"-full-int8.tflite)
# The Keras run comes first: every other row is compared with the float model it came from.
"$EDGEFER" eval "$RUN" "${ARTIFACTS[@]}" --data "$DATA" --dataset "$DATASET" --write-card --out models/EVAL_"$NAME".md
# Two more views of the float model, recorded in its card: PublicTest without the images that
# are pixel-identical to training images, and with horizontal-flip test-time averaging.
for variant in --exclude-train-duplicates --flip-tta; do
  "$EDGEFER" eval models/"$NAME".onnx --data "$DATA" --dataset "$DATASET" --no-timing --write-card $variant > /dev/null
done
mkdir -p models/reports/"$NAME" && cp "$RUN/history.csv" models/reports/"$NAME"/history.csv
"$EDGEFER" inspect models/"$NAME".onnx --data "$DATA" --dataset "$DATASET" --history models/reports/"$NAME"/history.csv --out models/reports/"$NAME"
ls -l "${ARTIFACTS[@]}"
# The comparison table (first table of the eval report) goes into models/README.md.
python3 - models/EVAL_"$NAME".md > /tmp/edgefer-table-"$NAME".md <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
start = next(i for i, l in enumerate(lines) if l.startswith("| model |"))
end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
print("Measured by `" + lines[2].removeprefix("command: `").rstrip("`") + "`:\n")
print("\n".join(lines[start:end]))
PY
python3 scripts/splice.py models/README.md "eval-$NAME" /tmp/edgefer-table-"$NAME".md
python3 scripts/run_summary.py "$RUN" > /tmp/edgefer-train-"$NAME".md
python3 scripts/splice.py models/README.md "train-$NAME" /tmp/edgefer-train-"$NAME".md
python3 - models/"$NAME".json "$KEY" > /tmp/edgefer-variants-"$NAME".md <<'PY'
import json, sys
metrics = json.load(open(sys.argv[1]))["card"]["metrics"]
key = sys.argv[2]
names = {key: "PublicTest, single pass",
         f"{key}-dedup": "PublicTest without the images pixel-identical to a training image",
         f"{key}-flip-tta": "PublicTest with horizontal-flip averaging (`--flip-tta`)"}
print("| float model | images | accuracy | balanced accuracy |\n|---|---:|---:|---:|")
for key, label in names.items():
    if key in metrics:
        m = metrics[key]
        print(f"| {label} | {m['n']} | {m['accuracy']:.4f} | {m['balanced_accuracy']:.4f} |")
PY
python3 scripts/splice.py models/README.md "variants-$NAME" /tmp/edgefer-variants-"$NAME".md
