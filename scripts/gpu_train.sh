#!/usr/bin/env bash
# A training recipe on a GPU machine that has JAX or PyTorch but no TensorFlow and no network.
#
# Keras 3 trains the same code on its JAX backend (PyTorch if JAX fails a one-step smoke test).
# Prepare .gpu/ first with scripts/gpu_prepare.sh. The recipe (edgefer train --recipe) runs into
# $RUNS, which survives a cut call: run the same command again and it resumes. Afterwards $OUT
# holds each train stage's best model without optimizer state (<stage>.keras, a few MB: export
# and evaluate them with TensorFlow elsewhere) and runs.tgz (run.json, history.csv, the log).
#
# Usage: RECIPE=fer2013-edge OUT=/tmp/gpu-out bash scripts/gpu_train.sh
#   KILL_AFTER (seconds) stops the recipe regardless, so the slim models are always written
#   before the machine's limit; the next call continues where it stopped.
# Trial run on a CPU: SKIP_INSTALL=1 REQUIRE_GPU=0 BACKENDS=jax RECIPE=smoke ...
set -u
RECIPE=${RECIPE:?RECIPE=<shipped recipe name or .toml file>}
OUT=${OUT:-/tmp/gpu-out}
RUNS=${RUNS:-/tmp/edgefer-runs}
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

timeout "${KILL_AFTER:-3600}" python3 -m edgefer.runtime.cli train --recipe "$RECIPE" --out "$RUNS" \
    --data /tmp/data/fer2013 --no-progress --no-report 2>&1 | tee -a "$RUNS/recipe.log"

echo "--- slim models ($((SECONDS - t0)) s)"
python3 - "$RUNS" "$OUT" <<'PY'
import sys
from pathlib import Path

import keras

runs, out = Path(sys.argv[1]), Path(sys.argv[2])
for best in sorted(runs.glob("*/best.keras")):
    model = keras.models.load_model(best, compile=False)  # drops the optimizer state: a third of the size
    model.save(out / f"{best.parent.name}.keras")
    print(f"{best.parent.name}: {model.count_params()} parameters -> {out / best.parent.name}.keras")
PY
tar czf "$OUT/runs.tgz" -C "$RUNS" --exclude='*.keras' .
ls -la "$OUT"
echo "done in $((SECONDS - t0)) s"
