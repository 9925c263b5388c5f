#!/usr/bin/env bash
# Exports a training run into models/ (float ONNX, INT8 ONNX, INT8 TFLite, each with its card),
# records metrics measured by `edgefer eval` in every card, writes the comparison table and the
# one-page report of the shipped model. Nothing here is typed in by hand.
# Usage: bash scripts/ship_models.sh RUN_FOLDER NAME [DATA]
#   e.g. bash scripts/ship_models.sh runs/report fer2013
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=$1
NAME=$2
DATA=${3:-../shared/data/fer2013}
EDGEFER=${EDGEFER:-.venv/bin/edgefer}
"$EDGEFER" export "$RUN" --format onnx,onnx-int8,tflite-int8 --out models --name "$NAME" --calib-data "$DATA" --verify-size all
ARTIFACTS=(models/"$NAME".onnx models/"$NAME"-int8.onnx models/"$NAME"-full-int8.tflite)
# The Keras run comes first: every other row is compared with the float model it came from.
"$EDGEFER" eval "$RUN" "${ARTIFACTS[@]}" --data "$DATA" --write-card --out models/EVAL_"$NAME".md
mkdir -p models/reports/"$NAME" && cp "$RUN/history.csv" models/reports/"$NAME"/history.csv
"$EDGEFER" inspect models/"$NAME".onnx --data "$DATA" --history models/reports/"$NAME"/history.csv --out models/reports/"$NAME"
ls -l "${ARTIFACTS[@]}"
# The comparison table (first table of the eval report) goes into models/README.md.
python3 - models/EVAL_"$NAME".md > /tmp/edgefer-table-"$NAME".md <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
start = next(i for i, l in enumerate(lines) if l.startswith("| model |"))
end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
print("\n".join(lines[start:end]))
PY
python3 scripts/splice.py models/README.md "eval-$NAME" /tmp/edgefer-table-"$NAME".md
python3 scripts/run_summary.py "$RUN" > /tmp/edgefer-train-"$NAME".md
python3 scripts/splice.py models/README.md "train-$NAME" /tmp/edgefer-train-"$NAME".md
