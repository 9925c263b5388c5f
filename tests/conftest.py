"""Shared fixtures: a tiny edgefer ONNX model, the shared data folder, the model for pipeline tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import SHARED_DATA, build_tiny_onnx, first_frames


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid 7-class edgefer ONNX classifier (48x48x1 NHWC), built once per session and
    stamped with its integrity hash like an exported model (so no test sees the unhashed warning)."""
    from edgefer.runtime.metadata import stamp

    path = build_tiny_onnx(tmp_path_factory.mktemp("models") / "tiny.onnx")
    stamp(path)
    return path


@pytest.fixture(scope="session")
def pipeline_model(tiny_onnx: Path) -> Path:
    """The shipped default model once it exists, the tiny model until then."""
    from edgefer.models import default_model

    real = default_model()
    return real if real.is_file() else tiny_onnx


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (expected ../shared/data beside the checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def faces_dir(shared_data: Path) -> Path:
    d = shared_data / "faces"
    if not d.is_dir():
        pytest.skip(f"{d} not found")
    return d


@pytest.fixture(scope="session")
def katie_clip(shared_data: Path) -> Path:
    clip = shared_data / "videos" / "sadtalker_WDA_KatieHill_000.mp4"
    if not clip.is_file():
        pytest.skip(f"{clip} not found")
    return clip


@pytest.fixture(scope="session")
def sample_frames() -> list:
    """Eight frames of the bundled sample clip (always present: it ships in models/)."""
    from edgefer.models import MODELS_DIR

    frames = first_frames(MODELS_DIR / "sample_face.mp4", 8)
    assert len(frames) == 8
    return frames
