"""Fixtures: pinned threads, fixed rounds, real inputs and the artifacts to time.

One pytest process runs at one thread count, because TensorFlow's thread pools cannot be
resized once started; ``run.py`` starts one process per count. The timing itself lives in
:mod:`harness`, so every benchmark shares the warm-up and round counts given here.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import cv2
import numpy as np
import pytest
from artifacts import Artifact, resolve
from harness import BenchConfig
from inputs import FaceScene, MissingData, four_face_scene, one_face_scene

DEFAULT_ROUNDS = 100
DEFAULT_WARMUP = 10


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("edgefer benchmarks")
    group.addoption("--bench-threads", type=int, default=1, help="threads for every backend (default 1)")
    group.addoption("--bench-rounds", type=int, default=DEFAULT_ROUNDS, help="timed rounds per benchmark")
    group.addoption("--bench-warmup", type=int, default=DEFAULT_WARMUP, help="untimed rounds first")


def pytest_configure(config: pytest.Config) -> None:
    threads = config.getoption("--bench-threads")
    # OpenCV's parallel_for (Haar, resize, colour conversion) would otherwise use every core.
    cv2.setNumThreads(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def bench_config(pytestconfig: pytest.Config) -> BenchConfig:
    return BenchConfig(
        threads=pytestconfig.getoption("--bench-threads"),
        rounds=pytestconfig.getoption("--bench-rounds"),
        warmup=pytestconfig.getoption("--bench-warmup"),
    )


def _scene(make: Callable[[], FaceScene]) -> FaceScene:
    try:
        return make()
    except MissingData as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def one_face() -> FaceScene:
    return _scene(one_face_scene)


@pytest.fixture(scope="session")
def four_faces() -> FaceScene:
    return _scene(four_face_scene)


@pytest.fixture(scope="session")
def face_crops(one_face: FaceScene, four_faces: FaceScene) -> dict[int, np.ndarray]:
    """uint8 (N, 48, 48) crops of real faces, made once: the classifiers' fixed inputs."""
    from edgefer.runtime.preprocess import PreprocessSpec, crop_faces

    spec = PreprocessSpec()
    return {
        1: crop_faces(one_face.frame, one_face.boxes, spec),
        4: crop_faces(four_faces.frame, four_faces.boxes, spec),
    }


@pytest.fixture(scope="session")
def artifacts() -> dict[tuple[str, str], Artifact]:
    return resolve(build=True)


_SKIPPED: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Kept so that BENCHMARKS.md can say what was not measured, and why (e.g. no mediapipe).
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        _SKIPPED.append(f"{report.nodeid.split('::')[-1]}: {reason}")


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: list, output_json: dict) -> None:
    output_json["skipped"] = list(_SKIPPED)
    output_json["bench_threads"] = config.getoption("--bench-threads")
