"""Where numbers were measured: CPU, SIMD features, cores, OS, package versions, load, date."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# Distribution names, first installed one wins (e.g. opencv-contrib-python replaces opencv-python).
PACKAGES: dict[str, tuple[str, ...]] = {
    "numpy": ("numpy",),
    "onnxruntime": ("onnxruntime",),
    "opencv": ("opencv-python", "opencv-contrib-python", "opencv-python-headless"),
    "tensorflow": ("tensorflow-cpu", "tensorflow"),
    "keras": ("keras",),
    "ai-edge-litert": ("ai-edge-litert",),
    "mediapipe": ("mediapipe",),
    "pytest-benchmark": ("pytest-benchmark",),
}


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith(("model name", "Model")):  # x86 / Raspberry Pi
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


# The SIMD extensions the runtime's kernels use (ONNX Runtime's MLAS, XNNPACK, OpenCV), as
# /proc/cpuinfo names them: x86 "flags", Arm "Features" (asimd = NEON, asimddp = dot product).
SIMD_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile",
    "neon", "asimd", "asimddp", "i8mm", "bf16", "sve",
)


def simd_features() -> list[str]:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return []
    for line in cpuinfo.read_text().splitlines():
        if line.startswith(("flags", "Features")):
            have = set(line.split(":", 1)[1].split())
            return [f for f in SIMD_FLAGS if f in have]
    return []


def package_versions() -> dict[str, str]:
    found = {}
    for label, dists in PACKAGES.items():
        for dist in dists:
            try:
                found[label] = version(dist)
                break
            except PackageNotFoundError:
                continue
    return found


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:  # not on every platform
        return None


def usable_cores() -> int:
    """The cores this process may run on (a container or taskset can allow fewer than exist)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def describe() -> dict:
    usable = usable_cores()
    return {
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "simd": simd_features(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "packages": package_versions(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_before": load_average(),
    }
