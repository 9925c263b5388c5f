#!/usr/bin/env bash
# Prepare .gpu/ for scripts/gpu_train.sh on a GPU machine that has no network and no TensorFlow:
#   .gpu/whl/      Keras (the version this venv trains with) + its two pure extras, and this
#                  checkout as an edgefer wheel (shipped model binaries left out: not needed there)
#   .gpu/fer2013.npz   the FER2013 tree with ferplus_join.csv, packed by scripts/datapack.py
# Usage: bash scripts/gpu_prepare.sh [DATA_DIR]      (default ../shared/data/fer2013)
# Add /.gpu/ to .git/info/exclude so it never lands in a commit.
set -euo pipefail
DATA=${1:-../shared/data/fer2013}
PY=${PY:-.venv/bin/python}
KERAS=$($PY -c "import importlib.metadata as m; print(m.version('keras'))")
rm -rf .gpu/whl && mkdir -p .gpu/whl
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .gpu/whl "keras==$KERAS" namex optree
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
git ls-files --cached --others --exclude-standard | grep -vE '\.(onnx|tflite|mp4)$' | tar -cf - -T - | tar -xf - -C "$src"
$PY -m pip wheel -q --no-deps -w .gpu/whl "$src"
$PY scripts/datapack.py pack "$DATA" .gpu/fer2013.npz --skip fer2013new.csv
du -sh .gpu/whl .gpu/fer2013.npz
