#!/usr/bin/env bash
# Trains the report's CK+ model on several random and subject-independent splits and prints
# the final-epoch held-out accuracy of each (final epoch, not best: picking the best epoch on
# the held-out data would flatter the figure).
# Usage: bash scripts/ckplus_splits.sh [DATA=../shared/data/ckplus] [SEEDS="0 1 2 3 4"]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/ckplus}
SEEDS=${SEEDS:-0 1 2 3 4}
EDGEFER=${EDGEFER:-.venv/bin/edgefer}
for split in random subject; do
  for seed in $SEEDS; do
    out=runs/ckplus-$split-seed$seed
    [ -f "$out/history.csv" ] && [ "$(wc -l < "$out/history.csv")" -gt 20 ] || \
      "$EDGEFER" train --arch ckplus --dataset ckplus --data "$DATA" --split "$split" --seed "$seed" \
        --out "$out" --no-report > "$out.log" 2>&1
  done
done
python3 - "$SEEDS" <<'PY'
import csv, statistics, sys
seeds = sys.argv[1].split()
print("| split | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | sd |")
print("|---|" + "---:|" * (len(seeds) + 2))
for split in ("random", "subject"):
    accs = []
    for s in seeds:
        rows = list(csv.DictReader(open(f"runs/ckplus-{split}-seed{s}/history.csv")))
        accs.append(100 * float(rows[-1]["val_accuracy"]))
    sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
    print(f"| {split} | " + " | ".join(f"{a:.1f}" for a in accs) + f" | {statistics.mean(accs):.1f} | {sd:.1f} |")
PY
