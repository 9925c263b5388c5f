#!/usr/bin/env bash
# Installs the runtime only (no TensorFlow) into .venv-runtime and runs `edgefer run`:
# camera 0 if there is one, otherwise the bundled sample clip. Extra args go to `edgefer run`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv-runtime/bin/edgefer ]; then
  "$PY" -m venv .venv-runtime
  .venv-runtime/bin/python -m pip install -q --upgrade pip
  .venv-runtime/bin/python -m pip install -q .
fi
exec .venv-runtime/bin/edgefer run "$@"
