#!/usr/bin/env bash
# ruff and mypy over the code, clean or it fails; CI runs it before the tests.
# Usage: bash scripts/lint.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/dev_venv.sh
.venv/bin/ruff check .
# The code folders install as edgefer.runtime, edgefer.train, edgefer.export through an
# editable-install import hook that mypy cannot follow; a tree of links gives mypy the
# installed layout, so imports across the packages are checked too.
# A fixed place, so that mypy's cache stays valid from one run to the next.
tree=.cache/typecheck
mkdir -p "$tree/edgefer"
for d in runtime train export models; do ln -sfn "$PWD/$d" "$tree/edgefer/$d"; done
MYPYPATH="$tree" .venv/bin/mypy -p edgefer.runtime -p edgefer.export -p edgefer.train
