#!/usr/bin/env bash
# Several training runs at once on one GPU machine that has JAX or PyTorch but no TensorFlow.
#
# Keras 3 trains the same code on its JAX backend (PyTorch if JAX fails a one-step smoke test).
# A plan's runs either set --time-budget "$BUDGET" (the epochs and the cosine schedule fit the
# time, whatever the GPU) or fixed epochs measured on an earlier call (gpu_plans/distill.sh).
# Prepare .gpu/ first with scripts/gpu_prepare.sh. Afterwards $OUT holds each
# run's best model without optimizer state (<run>.keras, a few MB: export and evaluate them with
# TensorFlow elsewhere) and runs.tgz (run.json, history.csv, logs, the report runs' report.md).
#
# Usage: PLAN=scripts/gpu_plans/survey.sh OUT=/tmp/gpu-out BUDGET=420 bash scripts/gpu_train.sh
#   PLAN lists the runs (launch NAME edgefer-train-arguments...); KILL_AFTER (seconds) stops
#   every run regardless, so the slim models are always written before the machine's limit.
# Trial run on a CPU: SKIP_INSTALL=1 REQUIRE_GPU=0 BACKENDS=jax EXTRA="--limit 512 --epochs 2" BUDGET=60 ...
set -u
PLAN=${PLAN:?PLAN=scripts/gpu_plans/<plan>.sh}
OUT=${OUT:-/tmp/gpu-out}
BUDGET=${BUDGET:-420}      # seconds of training per run, data loading and compilation included
WORKERS=${WORKERS:-3}      # augmentation threads per run
RUNS=/tmp/edgefer-runs
mkdir -p "$OUT" "$RUNS"
t0=$SECONDS
if [ -z "${SKIP_INSTALL:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false TF_CPP_MIN_LOG_LEVEL=2
python3 scripts/datapack.py unpack .gpu/fer2013.npz /tmp/data/fer2013 || exit 1

# One mixed-precision training step of the edge model, on the accelerator (REQUIRE_GPU=0: anywhere).
cat > /tmp/edgefer-smoke.py <<'PY'
import os

import keras
import numpy as np

from edgefer.train.archs import edge

b = keras.backend.backend()
dev = "cpu"
if b == "jax":
    import jax

    dev = str(jax.devices()[0])
    gpu = jax.devices()[0].platform == "gpu"
else:
    import torch

    gpu = torch.cuda.is_available()
    dev = torch.cuda.get_device_name(0) if gpu else dev
assert gpu or os.environ.get("REQUIRE_GPU") == "0", f"{b} sees no GPU ({dev})"
keras.mixed_precision.set_global_policy("mixed_bfloat16")
m = edge((48, 48, 1), 7)
m.compile(optimizer="adamw", loss="categorical_crossentropy")
m.fit(np.random.rand(256, 48, 48, 1).astype("float32"), np.eye(7)[np.arange(256) % 7], batch_size=128, verbose=0)
print(f"smoke ok: keras {keras.__version__} on {b}, {dev}")
PY
for backend in ${BACKENDS:-jax torch}; do
    if KERAS_BACKEND=$backend timeout 180 python3 /tmp/edgefer-smoke.py; then
        export KERAS_BACKEND=$backend
        break
    fi
done
[ -n "${KERAS_BACKEND:-}" ] || { echo "no Keras backend trains on this machine"; exit 1; }
echo "setup took $((SECONDS - t0)) s"

common=(--data /tmp/data/fer2013 --workers "$WORKERS" --no-report)
recipe=(--augment --schedule cosine --warmup-epochs 3 --weight-decay 0.01 --batch 256 --lr 0.003
        --precision mixed_bfloat16 --epochs 400 --time-budget "$BUDGET")
launch() {  # name, then edgefer train arguments
    local name=$1; shift
    timeout "${KILL_AFTER:-$((BUDGET + 60))}" python3 -m edgefer.runtime.cli train --out "$RUNS/$name" "${common[@]}" "$@" \
        ${EXTRA:-} > "$RUNS/$name.log" 2>&1 &
}
# shellcheck source=/dev/null
source "$PLAN"   # its launch lines start the runs

while [ -n "$(jobs -r)" ]; do
    sleep 45
    echo "--- $((SECONDS - t0)) s"
    for log in "$RUNS"/*.log; do
        echo "$(basename "$log" .log): $(grep -E 'Epoch [0-9]+/|val_accuracy|epochs fit|Error|error' "$log" | tail -n 1 | cut -c1-150)"
    done
done
wait

echo "--- analyses and slim models ($((SECONDS - t0)) s)"
for run in "$RUNS"/reference* "$RUNS"/report*; do
    [ -f "$run/best.keras" ] && python3 -m edgefer.runtime.cli inspect "$run" \
        --data /tmp/data/fer2013 > "$run.inspect.log" 2>&1 &
done
python3 - "$RUNS" "$OUT" <<'PY'
import sys
from pathlib import Path

import keras

runs, out = Path(sys.argv[1]), Path(sys.argv[2])
for best in sorted(runs.glob("*/best.keras")):
    if best.parent.name.startswith(("reference", "report")):
        continue  # figures only: their weights are not shipped
    model = keras.models.load_model(best, compile=False)  # drops the optimizer state: a third of the size
    model.save(out / f"{best.parent.name}.keras")
    print(f"{best.parent.name}: {model.count_params()} parameters -> {out / best.parent.name}.keras")
PY
wait
tar czf "$OUT/runs.tgz" -C "$RUNS" --exclude='*.keras' .
ls -la "$OUT"
echo "done in $((SECONDS - t0)) s"
