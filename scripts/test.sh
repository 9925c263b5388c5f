#!/usr/bin/env bash
# Creates (or reuses) .venv with the dev extras and runs the test suite.
# Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/dev_venv.sh
exec .venv/bin/python -m pytest -q "$@"
