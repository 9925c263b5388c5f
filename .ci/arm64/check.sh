#!/usr/bin/env bash
# Proves the TensorFlow-free runtime on a Raspberry Pi userland (Debian 12 arm64, Python 3.11)
# under CPU emulation (qemu-user, Cortex-A72), with the real aarch64 wheels of its dependencies.
#
#   bash .ci/arm64/check.sh
#
# Steps: qemu-user-static (installed if missing) -> Debian 12 arm64 sysroot from apt-get download
# + dpkg -x (cached) -> aarch64 wheels of the project's dependencies incl. the litert extra (cached,
# keyed on the wheel's Requires-Dist) -> the project itself as a freshly built wheel ->
# (a) a runtime self-test, (b) `edgefer run --headless --jsonl` on the first frames of a clip with
# each detector that needs no extra (blazeface, the default: a face on every frame; blazeface-full
# and haar: on most), once per model in models/ (ONNX float, ONNX INT8, TFLite), each summarised and
# asserted (valid probabilities) and compared with the same run on x86-64 (boxes, labels).
# Emulated timings are meaningless: nothing here asserts speed.
#
# Environment (all optional):
#   EDGEFER_ARM64_CACHE    cache folder (default ~/.cache/edgefer-arm64), outside the repo
#   EDGEFER_DATA_DIR       data root (default ../shared/data next to the checkout); absent -> SKIP, exit 0
#   EDGEFER_ARM64_CLIP     clip (default $EDGEFER_DATA_DIR/videos/sadtalker_WDA_KatieHill_000.mp4)
#   EDGEFER_ARM64_FRAMES   frames per model and detector (default 50 = 2 s of the 25 fps clip)
#   EDGEFER_ARM64_FULL_FRAMES  frames for blazeface-full (default 20: ~4x the short-range model's cost)
#   EDGEFER_ARM64_MODELS   space-separated model files instead of the packaged models/
#   EDGEFER_ARM64_SYNTHETIC=1  no packaged classifier -> build tiny random ones (plumbing test only)
#   EDGEFER_ARM64_COMPARE=0    skip the x86-64 comparison run
#   EDGEFER_ARM64_PYTEST=0     skip tests/test_runtime_*.py under emulation
#   EDGEFER_ARM64_REFRESH=1    re-resolve and re-download the aarch64 wheels
#   PYTHON                 host Python with pip (default .venv/bin/python, else python3)
set -euo pipefail

T0=$SECONDS
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
log() { printf '[arm64 %4ss] %s\n' "$((SECONDS - T0))" "$*"; }
die() { printf '[arm64 %4ss] ERROR: %s\n' "$((SECONDS - T0))" "$*" >&2; exit 1; }

DATA_DIR=${EDGEFER_DATA_DIR:-$ROOT/../shared/data}
if [ ! -d "$DATA_DIR" ]; then
  echo "SKIP arm64 emulation check: data folder $DATA_DIR is absent (set EDGEFER_DATA_DIR to run it)"
  exit 0
fi
DATA_DIR=$(cd "$DATA_DIR" && pwd)
CLIP=${EDGEFER_ARM64_CLIP:-$DATA_DIR/videos/sadtalker_WDA_KatieHill_000.mp4}
[ -f "$CLIP" ] || die "clip $CLIP not found (data folder $DATA_DIR exists); set EDGEFER_ARM64_CLIP"
FRAMES=${EDGEFER_ARM64_FRAMES:-50}
CACHE=${EDGEFER_ARM64_CACHE:-$HOME/.cache/edgefer-arm64}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
case "$CACHE/" in "$ROOT"/*) die "EDGEFER_ARM64_CACHE=$CACHE is inside the repository; put it outside" ;; esac

if [ -n "${PYTHON:-}" ]; then HOST_PY=$PYTHON
elif [ -x "$ROOT/.venv/bin/python" ]; then HOST_PY=$ROOT/.venv/bin/python
else HOST_PY=$(command -v python3) || die "no host python3"; fi
"$HOST_PY" -m pip --version >/dev/null 2>&1 || die "$HOST_PY has no pip"

SUDO=
if [ "$(id -u)" != 0 ]; then command -v sudo >/dev/null && SUDO="sudo -n"; fi

# ------------------------------------------------------------------ 1. qemu-user-static
if ! command -v qemu-aarch64-static >/dev/null; then
  command -v apt-get >/dev/null || die "qemu-aarch64-static missing and no apt-get to install it"
  log "installing qemu-user-static"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq qemu-user-static >/dev/null
fi
for tool in apt-get dpkg-deb; do command -v $tool >/dev/null || die "$tool is required (Debian/Ubuntu host)"; done
log "$(qemu-aarch64-static --version | head -1)"

# ------------------------------------------------------------------ 2. Debian 12 arm64 sysroot
# python3.11 and the C++ runtime, with their dependency closure; plus the X11/GL/GLib libraries
# that opencv-python (the non-headless wheel the project depends on) links against: its bundled
# Qt needs them to *load*, even with no display. libgl1/libglx0/libglvnd0 come without their
# dependencies (they only dlopen mesa when a GL context is made, which never happens here).
SYSROOT_PKGS="python3.11 libstdc++6 libgcc-s1 libglib2.0-0 libsm6 libice6 libx11-6 libxext6 libxcb1"
SYSROOT_NODEPS="libgl1 libglx0 libglvnd0"
MIRROR=${EDGEFER_ARM64_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECMIRROR=${EDGEFER_ARM64_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
SYSKEY=$(printf '%s|%s|%s|%s|v1' "$SYSROOT_PKGS" "$SYSROOT_NODEPS" "$MIRROR" "$SECMIRROR" | sha256sum | cut -c1-12)
SYSROOT=$CACHE/sysroot-$SYSKEY
if [ -f "$SYSROOT/.complete" ]; then
  log "sysroot: reusing $SYSROOT"
else
  log "sysroot: building $SYSROOT (Debian 12 bookworm arm64)"
  if [ ! -f "$KEYRING" ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq debian-archive-keyring >/dev/null \
      || die "need $KEYRING (package debian-archive-keyring)"
  fi
  APTDIR=$CACHE/apt
  rm -rf "$APTDIR" "$SYSROOT.tmp"
  mkdir -p "$APTDIR"/{sources,lists/partial,cache/archives/partial,debs} "$SYSROOT.tmp"
  : >"$APTDIR/status"
  cat >"$APTDIR/sources/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: $KEYRING

Types: deb
URIs: $SECMIRROR
Suites: bookworm-security
Components: main
Signed-By: $KEYRING
EOF
  APT=(apt-get -q -oAPT::Architecture=arm64 -oAPT::Architectures=arm64 -oDir::Etc::SourceList=/dev/null
       "-oDir::Etc::SourceParts=$APTDIR/sources" "-oDir::State::Lists=$APTDIR/lists"
       "-oDir::Cache=$APTDIR/cache" "-oDir::State::Status=$APTDIR/status"
       -oDebug::NoLocking=1 -oAPT::Sandbox::User=root)
  "${APT[@]}" update >"$APTDIR/update.log" 2>&1 || { cat "$APTDIR/update.log"; die "apt-get update (arm64) failed"; }
  # shellcheck disable=SC2086
  PKGS=$("${APT[@]}" -s install --no-install-recommends $SYSROOT_PKGS 2>&1 | awk '/^Inst /{print $2}')
  [ -n "$PKGS" ] || die "could not resolve the arm64 packages $SYSROOT_PKGS"
  # shellcheck disable=SC2086
  (cd "$APTDIR/debs" && "${APT[@]}" download $PKGS $SYSROOT_NODEPS >"$APTDIR/download.log" 2>&1) \
    || { cat "$APTDIR/download.log"; die "apt-get download (arm64) failed"; }
  for deb in "$APTDIR"/debs/*.deb; do dpkg-deb -x "$deb" "$SYSROOT.tmp"; done
  # Empty site dirs shadow the host's: qemu's -L falls back to host paths that are missing in the sysroot.
  mkdir -p "$SYSROOT.tmp"/usr/lib/python3/dist-packages "$SYSROOT.tmp"/usr/local/lib/python3.11/dist-packages \
           "$SYSROOT.tmp"/usr/local/lib/python3/dist-packages "$SYSROOT.tmp/proc"
  ls "$APTDIR"/debs >"$SYSROOT.tmp/.packages"
  touch "$SYSROOT.tmp/.complete"
  for old in "$CACHE"/sysroot-*; do [ "$old" = "$SYSROOT.tmp" ] || rm -rf "$old"; done
  mv "$SYSROOT.tmp" "$SYSROOT"
  rm -rf "$APTDIR"
  log "sysroot: $(wc -l <"$SYSROOT/.packages") packages, $(du -sh "$SYSROOT" | cut -f1)"
fi
# onnxruntime reads /proc/cpuinfo at import; qemu's -L prefix redirects it here. Without an ARM
# description it sees the x86 host and dies with SIGSEGV. Raspberry Pi 4: 4x Cortex-A72.
{
  for i in 0 1 2 3; do
    printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$i"
    printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n'
  done
  printf 'Hardware\t: BCM2835\nRevision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n'
} >"$SYSROOT/proc/cpuinfo"
QEMU=(qemu-aarch64-static -cpu cortex-a72 -L "$SYSROOT" "$SYSROOT/usr/bin/python3.11")
arch=$("${QEMU[@]}" -c 'import platform; print(platform.machine())') || die "emulated python3.11 does not start"
[ "$arch" = aarch64 ] || die "emulated python reports machine=$arch"

# ------------------------------------------------------------------ 3. the project as a wheel
WORK=$CACHE/work
rm -rf "$WORK"
mkdir -p "$WORK/src" "$WORK/dist" "$WORK/out"
# Build from a copy of what git would commit (tracked + untracked-not-ignored), so stale build/
# folders and ignored files (venvs, runs/) never leak into the wheel.
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
     | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
     | tar --null -T - -cf -) | tar -C "$WORK/src" -xf -
else
  tar -C "$ROOT" --exclude=./.git --exclude='./.venv*' --exclude=./runs --exclude=./build \
      --exclude=./dist --exclude='*.egg-info' --exclude=__pycache__ -cf - . | tar -C "$WORK/src" -xf -
fi
"$HOST_PY" -m pip wheel -q --no-deps -w "$WORK/dist" "$WORK/src" >"$WORK/wheel.log" 2>&1 \
  || { cat "$WORK/wheel.log"; die "pip wheel of the project failed"; }
WHL=$(ls "$WORK"/dist/edgefer-*.whl)
SITE_APP=$WORK/site-edgefer
"$HOST_PY" "$HERE/wheeltool.py" unpack "$SITE_APP" "$WHL"
log "project: $(basename "$WHL")"

# ------------------------------------------------------------------ 4. aarch64 wheels of the dependencies
# Not the mediapipe extra: its aarch64 wheel (1.2.3) is built for ARMv8.1 atomics (LSE) and dies with
# SIGILL on the Pi 4's Cortex-A72; it also pulls opencv-contrib-python 5.x, whose cv2 has no Haar.
EXTRAS=litert
# Debian 12 has glibc 2.36: accept every manylinux tag up to that.
PLAT=(--only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 --platform manylinux2014_aarch64)
for v in $(seq 17 36); do PLAT+=(--platform "manylinux_2_${v}_aarch64"); done
# Test-only wheels (pytest, and onnx for tests/helpers.py's tiny model) live in a separate folder
# that only the pytest step sees, so the runtime checks cannot lean on them.
TEST_REQS=("pytest>=8" "onnx>=1.16")
DEPKEY=$({ "$HOST_PY" "$HERE/wheeltool.py" requires "$WHL"; echo "$EXTRAS ${TEST_REQS[*]} ${PLAT[*]} v1"; } \
         | sha256sum | cut -c1-12)
DEPS=$CACHE/deps-$DEPKEY
[ "${EDGEFER_ARM64_REFRESH:-0}" = 1 ] && rm -rf "$DEPS"
if [ -f "$DEPS/.complete" ]; then
  log "wheels: reusing $DEPS"
else
  log "wheels: resolving edgefer[$EXTRAS] for cp311 manylinux aarch64"
  rm -rf "$DEPS.tmp"
  mkdir -p "$DEPS.tmp/wheels"
  "$HOST_PY" -m pip download -q --disable-pip-version-check "${PLAT[@]}" -d "$DEPS.tmp/wheels" \
      "edgefer[$EXTRAS] @ file://$WHL" >"$DEPS.tmp/download.log" 2>&1 \
    || { cat "$DEPS.tmp/download.log"; die "pip download of the aarch64 wheels failed"; }
  rm -f "$DEPS.tmp"/wheels/edgefer-*.whl
  "$HOST_PY" "$HERE/wheeltool.py" unpack "$DEPS.tmp/site" "$DEPS.tmp"/wheels/*.whl
  (cd "$DEPS.tmp/wheels" && ls) >"$DEPS.tmp/wheels.txt"
  mkdir -p "$DEPS.tmp/test-wheels"
  "$HOST_PY" -m pip download -q --disable-pip-version-check "${PLAT[@]}" -d "$DEPS.tmp/test-wheels" \
      "${TEST_REQS[@]}" >>"$DEPS.tmp/download.log" 2>&1 \
    || { cat "$DEPS.tmp/download.log"; die "pip download of the aarch64 test wheels failed"; }
  for w in "$DEPS.tmp"/test-wheels/*.whl; do  # only what the runtime set lacks (by distribution name)
    grep -q "^$(basename "$w" | cut -d- -f1)-" "$DEPS.tmp/wheels.txt" && continue
    "$HOST_PY" "$HERE/wheeltool.py" unpack "$DEPS.tmp/site-test" "$w"
    basename "$w" >>"$DEPS.tmp/test-wheels.txt"
  done
  rm -rf "$DEPS.tmp/wheels" "$DEPS.tmp/test-wheels"
  touch "$DEPS.tmp/.complete"
  for old in "$CACHE"/deps-*; do [ "$old" = "$DEPS.tmp" ] || rm -rf "$old"; done
  mv "$DEPS.tmp" "$DEPS"
fi
log "wheels: $(tr '\n' ' ' <"$DEPS/wheels.txt")"
log "test-only wheels: $(tr '\n' ' ' <"$DEPS/test-wheels.txt")"

# The aarch64 site dirs go only to the emulated python (the host python must never see them).
export PYTHONNOUSERSITE=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
unset PYTHONHOME PYTHONPATH DISPLAY WAYLAND_DISPLAY
QEMU=(env "PYTHONPATH=$SITE_APP:$DEPS/site" "${QEMU[@]}")

# ------------------------------------------------------------------ 5. which models
declare -a MODELS=()
if [ -n "${EDGEFER_ARM64_MODELS:-}" ]; then
  read -r -a MODELS <<<"$EDGEFER_ARM64_MODELS"
else
  for m in "$SITE_APP"/edgefer/models/*.onnx "$SITE_APP"/edgefer/models/*.tflite; do
    [ -f "$m" ] || continue
    if [ "${m##*.}" = tflite ] && [ ! -f "${m%.*}.json" ]; then
      log "models: skipping $(basename "$m") (no JSON card: not an edgefer classifier, e.g. the BlazeFace detector)"
      continue
    fi
    MODELS+=("$m")
  done
  for m in "$ROOT"/models/*.onnx "$ROOT"/models/*.tflite; do
    [ -f "$m" ] && [ ! -f "$SITE_APP/edgefer/models/$(basename "$m")" ] \
      && log "WARNING: $(basename "$m") is in models/ but not in the wheel (package-data?)"
  done
  if [ ${#MODELS[@]} = 0 ] && [ "${EDGEFER_ARM64_SYNTHETIC:-0}" = 1 ]; then
    log "models: no packaged classifier; building tiny random ones (plumbing test only, labels meaningless)"
    flags=(--int8)
    "$HOST_PY" -c 'import tensorflow' >/dev/null 2>&1 && flags+=(--tflite)
    "$HOST_PY" "$HERE/tiny_model.py" "$WORK/models" "${flags[@]}" >"$WORK/tiny_model.log" 2>&1 \
      || { tail -n 20 "$WORK/tiny_model.log"; die "building the synthetic models failed"; }
    mapfile -t MODELS < <(grep -E '^/.*\.(onnx|tflite)$' "$WORK/tiny_model.log")
  fi
fi
[ ${#MODELS[@]} -gt 0 ] || die "no edgefer classifier (.onnx, or .tflite with its .json card) in models/ to test (EDGEFER_ARM64_SYNTHETIC=1 tests the plumbing with tiny random models)"
kinds=" ${MODELS[*]##*/} "
case "$kinds" in *int8*.onnx*) ;; *) log "WARNING: no INT8 ONNX model among: ${MODELS[*]##*/}" ;; esac
case "$kinds" in *.tflite*) ;; *) log "WARNING: no TFLite model among: ${MODELS[*]##*/}" ;; esac
log "models: ${MODELS[*]##*/}"

# ------------------------------------------------------------------ 6. (a) runtime self-test under emulation
log "selftest under qemu-aarch64 (cortex-a72)"
timeout 900 "${QEMU[@]}" "$HERE/emulated_check.py" selftest --clip "$CLIP" "${MODELS[@]}" \
  || die "runtime self-test failed under aarch64 emulation"

# The project's own runtime tests (tests/test_runtime_*.py) under emulation, against the wheel.
# Deselected: the whole-clip `edgefer run` tests (minutes each emulated; step 7 covers them per model) and
# blazeface-full on the shared photos (tiles on large photos; the selftest and step 7 run it on the clip),
# and the browser view's server tests (real-time paced streams; pure Python, nothing arch-specific).
if [ "${EDGEFER_ARM64_PYTEST:-1}" = 1 ] && compgen -G "$ROOT/tests/test_runtime_*.py" >/dev/null; then
  log "pytest tests/test_runtime_*.py under qemu-aarch64"
  QEMU_PREFIX=$("$HOST_PY" -c 'import json, sys; print(json.dumps(sys.argv[1:]))' \
                "$(command -v qemu-aarch64-static)" -cpu cortex-a72 -L "$SYSROOT")
  (cd "$ROOT" && EDGEFER_ARM64_QEMU_PREFIX=$QEMU_PREFIX timeout 1200 env \
     "PYTHONPATH=$SITE_APP:$DEPS/site:$DEPS/site-test:$HERE" "${QEMU[@]:2}" -m pytest -p qemu_subprocess \
     -p no:cacheprovider -q -m "not network" -k "not real_video and not (photo and full) and not serve" --durations=8 \
     tests/test_runtime_*.py) \
    || die "the runtime tests failed under aarch64 emulation"
fi

# ------------------------------------------------------------------ 7. (b) edgefer run --headless per model
if "${QEMU[@]}" -m edgefer.runtime.cli run --help 2>/dev/null | grep -q -- '--jsonl'; then
  RUNNER=edgefer
else
  RUNNER=fallback
  log "WARNING: this 'edgefer run' has no --headless/--jsonl yet; using the harness' own Haar+classifier loop"
fi
HOST_OK=0
if [ "${EDGEFER_ARM64_COMPARE:-1}" = 1 ] && "$HOST_PY" -c 'import cv2, numpy, onnxruntime' >/dev/null 2>&1; then
  HOST_OK=1
fi
run_pipeline() {  # run_pipeline PYTHON... -- MODEL JSONL DETECTOR FRAMES
  local -a py=()
  while [ "$1" != -- ]; do py+=("$1"); shift; done
  shift
  local model=$1 jsonl=$2 detector=$3 frames=$4
  if [ $RUNNER = edgefer ]; then
    timeout 1200 "${py[@]}" -m edgefer.runtime.cli run --source "$CLIP" --headless --jsonl "$jsonl" --model "$model" \
      --detector "$detector" --max-frames "$frames"
  else
    timeout 1200 "${py[@]}" "$HERE/emulated_check.py" pipeline --model "$model" --source "$CLIP" \
      --max-frames "$frames" --jsonl "$jsonl"
  fi
}
declare -a RESULTS=()
check_model() {  # check_model MODEL DETECTOR FRAMES MIN_FACE_FRAC
  local model=$1 detector=$2 frames=$3 min_face=$4 name
  name="$(basename "$model") [$detector]"
  local arm="$WORK/out/$(basename "$model").$detector.aarch64.jsonl" x86="$WORK/out/$(basename "$model").$detector.x86_64.jsonl"
  log "edgefer run (aarch64) $name, $frames frames of $(basename "$CLIP")"
  run_pipeline "${QEMU[@]}" -- "$model" "$arm" "$detector" "$frames" >"$arm.log" 2>&1 \
    || { tail -n 30 "$arm.log"; die "$name: edgefer run failed under aarch64 emulation"; }
  "$HOST_PY" "$HERE/emulated_check.py" summarize "$arm" --name "$name" --frames "$frames" --min-face-frac "$min_face" \
    | tee -a "$WORK/out/summary.txt" || { tail -n 30 "$arm.log"; die "$name: results check failed"; }
  if [ $HOST_OK = 1 ]; then
    if run_pipeline env PYTHONPATH="$SITE_APP" "$HOST_PY" -- "$model" "$x86" "$detector" "$frames" >"$x86.log" 2>&1; then
      PYTHONPATH="$SITE_APP" "$HOST_PY" "$HERE/emulated_check.py" compare "$arm" "$x86" --name "$name" \
        | tee -a "$WORK/out/summary.txt" || die "$name: aarch64 results differ from x86-64"
    else
      log "note: x86-64 comparison run failed for $name (host environment), skipped: $(tail -n 1 "$x86.log")"
    fi
  fi
}
FULL_FRAMES=${EDGEFER_ARM64_FULL_FRAMES:-20}
for m in "${MODELS[@]}"; do
  check_model "$m" blazeface "$FRAMES" 1.0  # the default detector: a face on every checked frame
  check_model "$m" blazeface-full "$FULL_FRAMES" 0.9
  check_model "$m" haar "$FRAMES" 0.8
done

# ------------------------------------------------------------------ 8. edgefer bench completes and its JSON validates
# Emulated timings say nothing about a Pi's speed, so only completion and the file are checked.
if "${QEMU[@]}" -m edgefer.runtime.cli bench --help >/dev/null 2>&1; then
  log "edgefer bench (aarch64): blazeface x the bundled models, 3 frames each"
  timeout 900 "${QEMU[@]}" -m edgefer.runtime.cli bench --rounds 3 --warmup 1 --detectors blazeface --threads 1 \
    --json "$WORK/out/bench.aarch64.json" >"$WORK/out/bench.log" 2>&1 \
    || { tail -n 30 "$WORK/out/bench.log"; die "edgefer bench failed under aarch64 emulation"; }
  PYTHONPATH="$SITE_APP" "$HOST_PY" -c 'import sys; from edgefer.runtime.bench import load_json
info, rows = load_json(sys.argv[1]); assert rows and info["arch"] == "aarch64", info
print(f"ok [edgefer bench]: {len(rows)} pipelines measured under emulation, JSON valid")' "$WORK/out/bench.aarch64.json" \
    | tee -a "$WORK/out/summary.txt" || die "edgefer bench JSON from aarch64 does not validate"
fi

log "summary (aarch64, Debian 12, Python 3.11, qemu cortex-a72, runner=$RUNNER):"
sed 's/^/    /' "$WORK/out/summary.txt"
log "OK: arm64 emulation check passed in $((SECONDS - T0)) s"
