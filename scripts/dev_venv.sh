#!/usr/bin/env bash
# Creates (or reuses) .venv with the dev extras; scripts/test.sh and scripts/lint.sh call it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
.venv/bin/python -m pip install -q -e ".[dev]"
